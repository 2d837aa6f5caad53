"""The files a run reads and writes, from its arguments: styles, masks, the ``--init`` image, the weights, snapshot
names, a weight sweep's member and contact-sheet names."""

from __future__ import annotations

import argparse
import re
from collections.abc import Sequence
from pathlib import Path

from nst_jax.cli.options import WEIGHT_TAGS
from nst_jax.config import INITS
from nst_jax.weights import default_weights_path


def snapshot_path(output: Path, iteration: int) -> Path:
    """Where the snapshot at ``iteration`` goes: ``out.png`` -> ``out_iter50.png``."""
    return output.with_name(f"{output.stem}_iter{iteration}{output.suffix}")


def existing_snapshots(output: Path, every: int, iterations: int) -> list[Path]:
    """The files already present that snapshots of ``output`` every ``every`` of ``iterations`` iterations would
    replace (only a name that exists can be lost, so the folder is searched instead of every name being tried)."""
    pattern = re.compile(re.escape(output.stem) + r"_iter([1-9][0-9]*)" + re.escape(output.suffix))
    try:
        entries = list(output.parent.iterdir())
    except OSError:
        return []
    return sorted(
        entry for entry in entries
        for match in [pattern.fullmatch(entry.name)]
        if match and int(match.group(1)) % every == 0 and int(match.group(1)) <= iterations
    )


def distinct_format(values: Sequence[float]) -> list[str]:
    """``values`` as ``%.Ne`` with the fewest digits N that keep different values apart (1000 -> ``1e+03``)."""
    for digits in range(17):
        texts = [f"{value:.{digits}e}" for value in values]
        if len(set(texts)) == len(set(map(repr, values))):
            return texts
    return [repr(value) for value in values]


def member_paths(output: Path, lists: dict[str, tuple[float, ...]]) -> list[Path]:
    """Where each sweep member goes: OUT's name + a tag per swept weight (``out.png`` -> ``out_sw1e+03.png``)."""
    texts = {field: distinct_format(values) for field, values in lists.items()}
    size = len(next(iter(lists.values())))
    return [
        output.with_name(
            output.stem + "".join(f"_{WEIGHT_TAGS[field]}{texts[field][i]}" for field in lists) + output.suffix
        )
        for i in range(size)
    ]


def grid_path(output: Path) -> Path:
    """Where a sweep's contact sheet goes: ``out.jpg`` -> ``out_grid.png``."""
    return output.with_name(f"{output.stem}_grid.png")


def init_paths(init: str) -> list[Path]:
    """The ``--init`` image, if it names one."""
    return [Path(init)] if init not in INITS else []


def style_paths(args: argparse.Namespace) -> list[Path]:
    """The STYLE images; with ``--batch`` every positional is one (argparse may have taken the first as CONTENT)."""
    if args.batch is not None and args.content is not None:
        return [args.content, *args.styles]
    return list(args.styles)


STEM = "{stem}"
"""In a --style-masks name with --batch: the content file's name without its suffix."""


WHOLE_STYLE = "all"
"""A --style-source-masks entry for a style image used whole."""


def mask_paths(args: argparse.Namespace, content: Path | None = None) -> list[Path] | None:
    """The --style-masks files (None: not given); with ``content``, ``{stem}`` replaced by its name's stem."""
    if args.style_masks is None:
        return None
    return [Path(name.replace(STEM, content.stem) if content is not None else name) for name in args.style_masks]


def source_mask_paths(args: argparse.Namespace) -> list[Path | None] | None:
    """The --style-source-masks files, None for a style image used whole (None: not given)."""
    if args.style_source_masks is None:
        return None
    return [None if name == WHOLE_STYLE else Path(name) for name in args.style_source_masks]


def weights_path(args: argparse.Namespace) -> Path:
    """The VGG19 weights file the run reads."""
    return args.weights.expanduser() if args.weights is not None else default_weights_path()


def run_inputs(args: argparse.Namespace) -> list[tuple[Path, str]]:
    """Every file a run reads besides ``--batch`` contents, each with what it is (for messages)."""
    styles = style_paths(args)
    inputs = [(args.content, "the content image")] if args.batch is None and args.content is not None else []
    inputs += [(path, f"style image {index}" if len(styles) > 1 else "the style image")
               for index, path in enumerate(styles, start=1)]
    inputs += [(path, "the --init image") for path in init_paths(args.init)]
    masks = [] if args.style_masks is None or any(STEM in name for name in args.style_masks) else mask_paths(args)
    inputs += [(path, f"style mask {index}") for index, path in enumerate(masks, start=1)]
    inputs += [(path, f"style source mask {index}") for index, path in enumerate(source_mask_paths(args) or [],
                                                                                  start=1) if path is not None]
    return [*inputs, (weights_path(args), "the VGG19 weights file")]
