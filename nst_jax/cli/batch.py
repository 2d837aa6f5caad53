"""``nst-jax --batch DIR_OR_GLOB STYLE ... -o OUTDIR``: many content images with ``stylize_batch``, each to
``OUTDIR/<content name>.png``; unreadable contents are skipped, finished ones are not redone (a resumed run), and
files nst_jax did not write are left alone.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import glob
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from tqdm import tqdm

from nst_jax import image_io
from nst_jax.cli.checks import check_blend_weights, check_log, check_memory, guard_output
from nst_jax.cli.device import on_device, select_device
from nst_jax.cli.distributed import agree, writes
from nst_jax.cli.exits import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, PROG, UsageError
from nst_jax.cli.loading import load_masks, load_weights_loudly
from nst_jax.cli.options import BATCH_FORMATS, BATCH_SUFFIXES, user_message
from nst_jax.cli.paths import STEM, init_paths, mask_paths, run_inputs, source_mask_paths, style_paths
from nst_jax.cli.progress import progress_bar, with_progress
from nst_jax.cli.saving import log_record, write_log
from nst_jax.cli.serving import LiveView, title
from nst_jax.config import StyleConfig
from nst_jax.files import same_file
from nst_jax.memory import BatchPlan, plan_batch
from nst_jax.optimize import Status
from nst_jax.problem import check_shapes, content_shape
from nst_jax.result import StyleResult
from nst_jax.sweep import BatchItem, stylize_batch


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


def check_batch(args: argparse.Namespace, contents: Sequence[Path], outputs: Sequence[Path]) -> None:
    """``UsageError`` for a ``--batch`` output or log that may not be written (``nst_jax.files``): an output that
    is an input, a folder, a device; an existing output nst_jax did not write is skipped later (``split_finished``)
    unless --overwrite."""
    inputs = batch_inputs(args, contents)
    for output in outputs:
        for source, label in inputs:
            if same_file(output, source):
                raise UsageError(f"output '{output}' would overwrite the input image '{source}' ({label}); choose "
                                 "another -o")
        if args.output.is_dir():
            guard_output(output, "output", inputs, args, owned=lambda path: True)  # folders, devices, FIFOs
    check_log(args, [*inputs, *((output, "an image this run writes") for output in outputs)])


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


def check_batch_styles(config: StyleConfig, styles: Sequence[Path]) -> None:
    """``UsageError`` unless every style (and an ``--init`` image) can be read."""
    try:
        for path in [*styles, *init_paths(config.init)]:
            image_io.load_image(path)
    except image_io.ImageError as error:
        raise UsageError(str(error)) from None


def batch_masks(args: argparse.Namespace) -> Callable[[Sequence[Path]], list[Any] | None]:
    """``stylize_batch``'s style masks for the contents it is given: one set for every content, decoded now
    (``UsageError`` if one cannot be read), or, where a name holds ``{stem}``, each content's own files (one that
    cannot be read skips its content)."""
    if args.style_masks is None or not any(STEM in name for name in args.style_masks):
        shared = load_masks(mask_paths(args))
        return lambda contents: shared
    return lambda contents: [mask_paths(args, content) for content in contents]


def content_problems(args: argparse.Namespace, contents: Sequence[Path], config: StyleConfig) -> dict[Path, str]:
    """Contents too small (or their styles) at their size, or whose run would not fit in memory, with the reason in
    the options' names (an unreadable content is left to ``stylize_batch``, which says why)."""
    problems: dict[Path, str] = {}
    for content in contents:
        try:
            shape = image_io.image_size(content)
        except image_io.ImageError:
            continue
        try:
            check_shapes(shape, config)
            check_memory(args, config, shape, None)
        except ValueError as error:  # a ConfigError
            problems[content] = user_message(error)
        except UsageError as error:
            problems[content] = str(error)
    return problems


@dataclasses.dataclass(frozen=True)
class BatchOutcome:
    """What became of one content image of ``--batch``: ``written``, ``skipped`` or ``interrupted``."""

    content: Path
    output: Path
    outcome: str
    reason: str | None = None
    result: StyleResult | None = None


def batch_saver(
    bar: tqdm, outputs: dict[Path, Path], bit_depth: int, outcomes: list[BatchOutcome]
) -> Callable[[BatchItem], None]:
    """``stylize_batch``'s ``on_done``: save a finished image, warn about a skipped one, advance the bar."""

    def skip(content: Path, reason: str, result: StyleResult | None = None) -> None:
        bar.write(f"{PROG}: warning: skipping {content}: {reason}", file=sys.stderr)
        outcomes.append(BatchOutcome(content, outputs[content], "skipped", reason, result))

    def on_done(item: BatchItem) -> None:
        content, result = item.source, item.result
        bar.update(1)
        if result is None:
            skip(content, item.error or "unknown error")
        elif result.status == Status.NON_FINITE:
            skip(content, f"the loss became NaN or infinite after {result.iterations} of "
                          f"{result.config.iterations} iterations; not written", result)
        elif result.status == Status.INTERRUPTED:  # not saved: a resumed run must redo it
            outcomes.append(BatchOutcome(content, outputs[content], "interrupted", None, result))
        else:
            try:
                if writes():
                    result.save(outputs[content], bit_depth=bit_depth)
            except image_io.ImageError as error:
                skip(content, str(error), result)
                return
            outcomes.append(BatchOutcome(content, outputs[content], "written", None, result))

    return on_done


def batch_record(outcome: BatchOutcome, wall: float) -> dict[str, Any]:
    """The ``--log-json`` record of one content image of ``--batch``."""
    record = log_record(outcome.result, outcome.output, wall) if outcome.result is not None else {}
    return {**record, "content": str(outcome.content), "output": str(outcome.output), "outcome": outcome.outcome,
            "reason": outcome.reason}


def planned_runs(contents: Sequence[Path], config: StyleConfig) -> int:
    """How many sub-batches ``stylize_batch`` runs for ``contents`` (for the live page's total): contents of one size
    run together, split where memory needs (``memory.plan_batch``); an unreadable content runs in none."""
    sizes: collections.Counter[tuple[int, int]] = collections.Counter()
    for content in contents:
        try:
            sizes[content_shape(image_io.image_size(content), config.image_size)] += 1
        except image_io.ImageError:
            continue
    return sum(plan_batch(count, height, width, config).runs for (height, width), count in sizes.items())


def run(args: argparse.Namespace, config: StyleConfig, start: float, live: LiveView) -> int:
    """``--batch``: stylize every content image not yet written, grouped by size; returns the exit code."""
    styles = style_paths(args)
    check_blend_weights(config, styles)
    check_batch_folders(args)
    suffix = args.batch_format or BATCH_FORMATS[0]
    contents = outside_output_folder(find_contents(args.batch), args.output, suffix)
    if not contents:
        raise UsageError(
            f"--batch '{args.batch}' matches no image files (give a folder holding {', '.join(BATCH_SUFFIXES)} "
            "files, or a glob pattern such as 'photos/*.jpg')"
        )
    outputs = batch_outputs(contents, args.output, suffix)
    check_batch(args, contents, outputs)
    check_batch_styles(config, styles)
    sources, masks = load_masks(source_mask_paths(args)), batch_masks(args)
    todo, finished, foreign = split_finished(contents, outputs, args.overwrite)
    if finished:
        print(f"{PROG}: skipping {len(finished)} already written in {args.output} (--overwrite redoes them)",
              file=sys.stderr)
    if not todo and not foreign:
        print(f"nothing to do: all {len(contents)} images are in {args.output}")
        live.finish(EXIT_OK, f"nothing to do: all {len(contents)} images are in {args.output}")
        return EXIT_OK
    device = select_device(args.device)
    with on_device(device):
        vgg = load_weights_loudly(args.weights, config, args.quiet) if todo else None
        agree()
    try:
        if writes():
            args.output.mkdir(exist_ok=True)
    except OSError as error:
        raise UsageError(f"cannot create output folder '{args.output}': {error.strerror or error}") from None
    outcomes: list[BatchOutcome] = []
    interrupted = False
    outputs_of = {**todo, **{content: output for content, output in zip(contents, outputs) if content in foreign}}
    with on_device(device), progress_bar(len(todo) + len(foreign), "img", args.quiet) as bar:
        for content, reason in [*foreign.items(), *content_problems(args, list(todo), config).items()]:
            bar.update(1)
            bar.write(f"{PROG}: warning: skipping {content}: {reason}", file=sys.stderr)
            outcomes.append(BatchOutcome(content, outputs_of[content], "skipped", reason))
        skipped = {outcome.content for outcome in outcomes}
        on_done = batch_saver(bar, todo, args.bit_depth, outcomes)

        def on_plan(plan: BatchPlan) -> None:
            if plan.split and not bar.disable:
                bar.write(f"{PROG}: {plan.describe()}", file=sys.stderr)

        remaining = [content for content in todo if content not in skipped]
        publisher = live.publisher(
            total=config.iterations * planned_runs(remaining, config), config=config, vgg=vgg,
            title=title(f"{len(remaining)} images of {args.batch}", styles), batch=args.batch, styles=styles,
            output=args.output,
        ) if vgg is not None else None
        try:
            if remaining:
                stylize_batch(remaining, styles, config=with_progress(config, True, live.serving), vgg=vgg,
                              on_done=on_done, on_plan=on_plan, callback=publisher.update if publisher else None,
                              style_masks=masks(remaining), style_source_masks=sources)
        except KeyboardInterrupt:
            interrupted = True
    wall = time.perf_counter() - start
    logged = write_log(args.log_json, {"batch": [batch_record(outcome, wall) for outcome in outcomes],
                                       "already_written": [str(output) for output in finished], "wall_s": wall})
    code = _report_batch(outcomes, len(todo) + len(foreign), interrupted, args.output, wall)
    code = EXIT_FAILED if code == EXIT_OK and not logged else code
    written = sum(outcome.outcome == "written" for outcome in outcomes)
    live.finish(code, f"wrote {written} of {len(todo) + len(foreign)} images to {args.output}",
                non_finite=any(outcome.result is not None and outcome.result.status == Status.NON_FINITE
                               for outcome in outcomes))
    return code


def _report_batch(outcomes: Sequence[BatchOutcome], total: int, interrupted: bool, folder: Path, wall: float) -> int:
    """Print how a ``--batch`` run ended and return its exit code."""
    written = sum(outcome.outcome == "written" for outcome in outcomes)
    if interrupted or any(outcome.outcome == "interrupted" for outcome in outcomes):
        print(f"{PROG}: interrupted; wrote {written} of {total} images to {folder}; run the same command again to "
              "do the rest", file=sys.stderr)
        return EXIT_INTERRUPTED
    skipped = sum(outcome.outcome == "skipped" for outcome in outcomes)
    print(f"wrote {written} of {total} images, skipped {skipped} ({folder}, {wall:.1f} s)")
    if not written:
        print(f"{PROG}: error: none of the {total} images was written (see the warnings above)", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK
