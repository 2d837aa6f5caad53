"""``--batch``'s content images: finding them (a folder or a glob), where each one's image goes, which are already
written (a resumed run skips them), and the checks of the output folder."""

from __future__ import annotations

import argparse
import glob
import os
from collections.abc import Sequence
from pathlib import Path

from nst_jax import image_io
from nst_jax.cli.exits import UsageError
from nst_jax.cli.options import BATCH_SUFFIXES
from nst_jax.cli.paths import STEM, mask_paths, run_inputs
from nst_jax.files import same_file


def find_contents(pattern: str) -> list[Path]:
    """``--batch``'s contents: the image files directly in folder ``pattern``, else the files it globs; sorted."""
    folder = Path(pattern).expanduser()
    if folder.is_dir():
        candidates = [path for path in folder.iterdir() if path.suffix.lower() in BATCH_SUFFIXES]
    else:
        candidates = [Path(path) for path in glob.glob(os.path.expanduser(pattern), recursive=True)]
    return sorted(path for path in candidates if path.is_file() and not path.name.startswith("."))


def outside_output_folder(candidates: Sequence[Path], folder: Path, suffix: str) -> list[Path]:
    """``candidates`` without the files inside the output ``folder``: a glob such as ``DIR/**/*.jpg`` with
    ``-o DIR/out`` would take a previous run's outputs as contents, and a resumed run would never end.
    ``UsageError`` for a file there that is not nst_jax's and that its own output would replace."""
    if not folder.is_dir():
        return list(candidates)
    inside = folder.resolve()
    kept = []
    for path in candidates:
        if inside not in path.resolve().parents:
            kept.append(path)
        elif not image_io.is_own_image(path) and same_file(path, folder / f"{path.stem}.{suffix}"):
            raise UsageError(f"output '{folder / path.name}' would overwrite the input image '{path}'; choose another "
                             "-o")
    return kept


def batch_outputs(contents: Sequence[Path], folder: Path, suffix: str) -> list[Path]:
    """Where each content's image goes: ``folder/<content stem>.<suffix>`` (``UsageError`` if two collide)."""
    outputs = [folder / f"{content.stem}.{suffix}" for content in contents]
    seen: dict[Path, Path] = {}
    for content, output in zip(contents, outputs):
        if output in seen:
            raise UsageError(
                f"--batch: '{seen[output]}' and '{content}' would both be written to '{output}'; "
                "rename one or move it elsewhere"
            )
        seen[output] = content
    return outputs


def _check_batch_folder(folder: Path) -> None:
    """``UsageError`` unless the output folder exists and is writable, or can be created in an existing parent."""
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"output folder '{folder}' is a file; with --batch, -o names a folder")
    if not folder.exists() and folder.suffix.lower() in BATCH_SUFFIXES:
        raise UsageError(f"output folder '{folder}' looks like an image file name; with --batch, -o names a folder")
    existing = folder if folder.is_dir() else folder.parent
    if not existing.is_dir():
        raise UsageError(f"output folder '{folder}' cannot be created: '{existing}' does not exist")
    if not os.access(existing, os.W_OK):
        raise UsageError(f"output folder '{existing}' is not writable")


def batch_inputs(args: argparse.Namespace, contents: Sequence[Path]) -> list[tuple[Path, str]]:
    """Every file a ``--batch`` run reads, each with what it is (each content's own style masks included)."""
    own_masks = args.style_masks is not None and any(STEM in name for name in args.style_masks)
    masks = [(path, f"a style mask of '{content}'") for content in contents if own_masks
             for path in mask_paths(args, content)]
    return [*((content, "a content image") for content in contents), *masks, *run_inputs(args)]


def check_batch_folders(args: argparse.Namespace) -> None:
    """``UsageError`` for an output folder that cannot be made or is the ``--batch`` folder."""
    _check_batch_folder(args.output)
    if args.bit_depth == 16 and args.batch_format == "jpg":
        raise UsageError("--bit-depth 16 needs --batch-format png")
    batch_folder = Path(args.batch).expanduser()
    if batch_folder.is_dir() and same_file(args.output, batch_folder):
        raise UsageError(
            f"output folder '{args.output}' is the --batch folder; its outputs would be read as contents next time"
        )


def split_finished(
    contents: Sequence[Path], outputs: Sequence[Path], overwrite: bool
) -> tuple[dict[Path, Path], list[Path], dict[Path, str]]:
    """The contents to do (with their outputs), the outputs already written by nst_jax (a resumed run skips them),
    and the contents skipped because a file nst_jax did not write has their output's name (--overwrite: none)."""
    todo: dict[Path, Path] = {}
    finished: list[Path] = []
    foreign: dict[Path, str] = {}
    for content, output in zip(contents, outputs):
        if overwrite or not output.exists():
            todo[content] = output
        elif image_io.is_own_image(output):
            finished.append(output)
        else:
            foreign[content] = f"'{output}' exists and was not written by nst_jax (--overwrite replaces it)"
    return todo, finished, foreign
