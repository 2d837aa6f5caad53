"""The command line's forms over several images (see ``nst_jax.cli``): a weight sweep (a comma list in a weight
option; one batched ``stylize_sweep``, a file per member and a labelled contact sheet) and ``--batch DIR_OR_GLOB``
(``stylize_batch`` over many content images, skipping unreadable ones and resuming finished ones).
"""

from __future__ import annotations

import argparse
import dataclasses
import glob
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from nst_jax import image_io
from nst_jax.cli import (
    BATCH_FORMATS,
    BATCH_SUFFIXES,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    PROG,
    WEIGHT_TAGS,
    UsageError,
    check_blend_weights,
    check_log,
    check_memory,
    check_outputs,
    checked_shape,
    guard_output,
    init_paths,
    load_inputs,
    load_weights_loudly,
    log_record,
    nothing_finished,
    on_device,
    progress_bar,
    run_inputs,
    save_snapshot,
    select_device,
    snapshot_path,
    style_paths,
    user_message,
    write_log,
)
from nst_jax.config import StyleConfig
from nst_jax.contact_sheet import contact_sheet
from nst_jax.files import same_file
from nst_jax.optimize import Progress
from nst_jax.sweep import BatchItem, BatchPlan, gather, stylize_batch, stylize_sweep
from nst_jax.transfer import StyleResult, check_shapes


# --------------------------------------------------------------------------- weight sweeps


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


def member_configs(config: StyleConfig, lists: dict[str, tuple[float, ...]]) -> list[StyleConfig]:
    """The config of each sweep member (what ``stylize_sweep`` runs)."""
    size = len(next(iter(lists.values())))
    return [config.replace(**{field: values[i] for field, values in lists.items()}) for i in range(size)]


def _alpha_over_beta(config: StyleConfig) -> float:
    """content weight / style weight (inf for a zero style weight, NaN when both are zero)."""
    alpha, beta = config.content_weight, config.resolved_style_weight
    return alpha / beta if beta > 0 else (math.inf if alpha > 0 else math.nan)


def member_labels(configs: Sequence[StyleConfig], *, with_tv: bool) -> list[str]:
    """Each member's contact-sheet label: ``α/β = 1e-04``, and a ``TV = ...`` line when TV is swept."""
    # Rounded to 12 digits: (10, 1e4) and (1, 1e3) are the same ratio even if the divisions differ in the last bit.
    ratios = distinct_format([float(f"{_alpha_over_beta(config):.12e}") for config in configs])
    tvs = distinct_format([config.tv_weight for config in configs])
    return [f"α/β = {ratio}" + (f"\nTV = {tv}" if with_tv else "") for ratio, tv in zip(ratios, tvs)]


def sweep_callbacks(
    bar: tqdm, paths: Sequence[Path], save_every: int | None, bit_depth: int, iterations: int
) -> tuple[Callable[[BatchPlan], None], Callable[[Progress], None]]:
    """``on_plan`` and ``callback`` of a sweep: size the bar, advance it, show the loss range, save snapshots.

    A sweep too large for device memory runs as several sub-batches, each calling ``callback`` from iteration 1;
    the bar then counts every sub-batch's iterations, and snapshots are off (a callback cannot tell which
    members it sees).
    """
    state = {"offset": 0, "last": 0, "snapshots": save_every or 0}  # snapshots: every N iterations, 0 for never

    def on_plan(plan: BatchPlan) -> None:
        if not plan.split:
            return
        bar.total = iterations * plan.runs
        bar.refresh()
        if not bar.disable:
            bar.write(f"{PROG}: {plan.describe()}", file=sys.stderr)
        if state["snapshots"]:
            bar.write(f"{PROG}: warning: --save-every: no snapshots, the sweep runs in {plan.runs} parts",
                      file=sys.stderr)
            state["snapshots"] = 0

    def callback(progress: Progress) -> None:
        if progress.iteration <= state["last"]:  # the next sub-batch started
            state["offset"] += iterations
        state["last"] = progress.iteration
        totals = np.asarray(progress.terms.total, np.float64)
        finite = totals[np.isfinite(totals)]
        if finite.size:
            bar.set_postfix(loss=f"{finite.min():.3g}..{finite.max():.3g}", refresh=False)
        bar.update(state["offset"] + progress.iteration - bar.n)
        if state["snapshots"] and progress.iteration % state["snapshots"] == 0:
            images = gather(progress.image)
            for path, image in zip(paths, images):  # padding members (beyond len(paths)) dropped
                save_snapshot(snapshot_path(path, progress.iteration), np.asarray(image, np.float32), bit_depth, bar,
                              progress.iteration)

    return on_plan, callback


def _one_line(label: str) -> str:
    """A contact-sheet label on one line, for messages and logs."""
    return label.replace("\n", ", ")


def _sweep_columns(count: int) -> int:
    """Contact-sheet columns: one row for up to 5 members (like the paper's figure), else about square."""
    return count if count <= 5 else math.ceil(math.sqrt(count))


def run_sweep(args: argparse.Namespace, config: StyleConfig, lists: dict[str, tuple[float, ...]], start: float) -> int:
    """A weight sweep: one batched ``stylize_sweep``, each member to its own file, plus a labelled contact sheet."""
    paths, grid = member_paths(args.output, lists), grid_path(args.output)
    configs = member_configs(config, lists)
    check_outputs(args, [*paths, grid], snapshots_of=paths, iterations=config.iterations)
    device = select_device(args.device)
    shape = checked_shape(args, config)
    check_memory(args, config, shape, device, what="one member of ")
    content, styles = load_inputs(args, config)
    with on_device(device):
        weights = load_weights_loudly(args.weights)
        with progress_bar(config.iterations, "it", args.quiet) as bar:
            on_plan, callback = sweep_callbacks(bar, paths, args.save_every, args.bit_depth, config.iterations)
            results = stylize_sweep(
                content, styles, config=config, weights=weights, callback=callback, on_plan=on_plan,
                **{f"{field}s": values for field, values in lists.items()},
            )
    labels = member_labels(configs, with_tv="tv_weight" in lists)
    written, diverged, code = [], [], EXIT_OK
    for path, label, result in zip(paths, labels, results):
        if result.status == "non-finite":
            start_hint = f": {nothing_finished(result)}" if result.iterations == 0 else ""
            diverged.append(f"{path.name} ({_one_line(label)}){start_hint}")
            continue
        if result.iterations == 0:  # interrupted before the first iteration: the image is the untouched start
            continue
        try:
            result.save(path, bit_depth=args.bit_depth)
            written.append(path)
        except image_io.ImageError as error:
            print(f"{PROG}: error: {error}", file=sys.stderr)
            code = EXIT_FAILED
    tiles = [label + ("\n(NaN/inf: not written)" if result.status == "non-finite" else "")
             for label, result in zip(labels, results)]
    try:
        if any(result.iterations for result in results):  # else every tile is the untouched start
            sheet = contact_sheet([result.image for result in results], tiles, columns=_sweep_columns(len(results)))
            image_io.save_image(grid, sheet)
            written.append(grid)
    except image_io.ImageError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        code = EXIT_FAILED
    wall = time.perf_counter() - start
    logged = write_log(args.log_json, {
        "sweep": {field: list(values) for field, values in lists.items()},
        "members": [{**log_record(result, path, wall), "label": _one_line(label), "written": path in written}
                    for path, label, result in zip(paths, labels, results)],
        "contact_sheet": str(grid),
        "wall_s": wall,
    })
    code = _report_sweep(results, paths, written, diverged, grid, wall, code)
    return EXIT_FAILED if code == EXIT_OK and not logged else code


def _report_sweep(
    results: Sequence[StyleResult], paths: Sequence[Path], written: Sequence[Path], diverged: Sequence[str],
    grid: Path, wall: float, code: int,
) -> int:
    """Print how a sweep ended and return its exit code."""
    for path, result in zip(paths, results):
        if path in written and result.status == "completed":
            print(f"wrote {path}: {result.iterations} iterations, loss {result.final_losses.total:.6g}")
    if any(result.status == "interrupted" for result in results):
        iterations = min(result.iterations for result in results if result.status == "interrupted")
        if not written:
            print(f"{PROG}: interrupted before the first iteration finished; nothing was written", file=sys.stderr)
            return EXIT_INTERRUPTED
        members = sum(path in written for path in paths)
        print(
            f"{PROG}: interrupted at iteration {iterations} of {results[0].config.iterations}; saved the current "
            f"images of {members} of {len(paths)} weightings ({paths[0].parent}) and the contact sheet {grid}",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    if diverged:
        print(
            f"{PROG}: error: the loss became NaN or infinite for {len(diverged)} of {len(paths)} weightings, not "
            f"written: {'; '.join(diverged)}. Lower --learning-rate (adam) or the loss weights, or try "
            "--optimizer lbfgsb",
            file=sys.stderr,
        )
        code = EXIT_FAILED
    if grid in written:
        print(f"wrote {grid}: contact sheet of {len(results)} weightings, {wall:.1f} s")
    return code


# --------------------------------------------------------------------------- many content images


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
    """Every file a ``--batch`` run reads, each with what it is."""
    return [*((content, "a content image") for content in contents), *run_inputs(args)]


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
        elif result.status == "non-finite":
            skip(content, f"the loss became NaN or infinite after {result.iterations} of "
                          f"{result.config.iterations} iterations; not written", result)
        elif result.status == "interrupted":  # not saved: a resumed run must redo it
            outcomes.append(BatchOutcome(content, outputs[content], "interrupted", None, result))
        else:
            try:
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


def run_many(args: argparse.Namespace, config: StyleConfig, start: float) -> int:
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
    todo, finished, foreign = split_finished(contents, outputs, args.overwrite)
    if finished:
        print(f"{PROG}: skipping {len(finished)} already written in {args.output} (--overwrite redoes them)",
              file=sys.stderr)
    if not todo and not foreign:
        print(f"nothing to do: all {len(contents)} images are in {args.output}")
        return EXIT_OK
    device = select_device(args.device)
    with on_device(device):
        weights = load_weights_loudly(args.weights) if todo else None
    try:
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
        try:
            if remaining:
                stylize_batch(remaining, styles, config=config, weights=weights, on_done=on_done, on_plan=on_plan)
        except KeyboardInterrupt:
            interrupted = True
    wall = time.perf_counter() - start
    logged = write_log(args.log_json, {"batch": [batch_record(outcome, wall) for outcome in outcomes],
                                       "already_written": [str(output) for output in finished], "wall_s": wall})
    code = _report_batch(outcomes, len(todo) + len(foreign), interrupted, args.output, wall)
    return EXIT_FAILED if code == EXIT_OK and not logged else code


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
