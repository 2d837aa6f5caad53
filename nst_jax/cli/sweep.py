"""``nst-jax CONTENT STYLE ... -o OUT --style-weight W1,W2,...``: a weight sweep. A comma list in a weight option
runs one batched ``stylize_sweep``; each member goes to OUT's name + a tag per swept weight (``out_sw1e+03.png``),
and a contact sheet labelled with each member's alpha/beta to OUT's name + ``_grid.png``.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

from nst_jax import image_io
from nst_jax.cli.checks import CheckedRun
from nst_jax.cli.distributed import writes
from nst_jax.cli.exits import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, PROG
from nst_jax.cli.loading import content_run
from nst_jax.cli.options import flag
from nst_jax.cli.paths import distinct_format, grid_path, member_paths, snapshot_path
from nst_jax.cli.progress import bar_callback, progress_bar, save_snapshot, timed_chunks
from nst_jax.cli.saving import log_record, nan_hint, nothing_finished, save_unfinished, write_log
from nst_jax.cli.serving import LiveView, title
from nst_jax.cli.signals import on_forced_stop
from nst_jax.config import StyleConfig
from nst_jax.contact_sheet import contact_sheet
from nst_jax.live import Publisher
from nst_jax.memory import BatchPlan
from nst_jax.mesh import gather
from nst_jax.optimize import Progress, Status
from nst_jax.problem import configure_for
from nst_jax.result import StyleResult
from nst_jax.sweep import stylize_sweep


def member_configs(config: StyleConfig, lists: dict[str, tuple[float, ...]]) -> list[StyleConfig]:
    """The config of each sweep member (what ``stylize_sweep`` runs)."""
    size = len(next(iter(lists.values())))
    return [config.replace(**{field: values[i] for field, values in lists.items()}) for i in range(size)]


def _alpha_over_beta(config: StyleConfig) -> float:
    """content weight / style weight (inf for a zero style weight, NaN when both are zero)."""
    alpha, beta = config.resolved_content_weight, config.resolved_style_weight
    return alpha / beta if beta > 0 else (math.inf if alpha > 0 else math.nan)


def member_labels(configs: Sequence[StyleConfig], *, with_tv: bool) -> list[str]:
    """Each member's contact-sheet label: ``α/β = 1e-04``, and a ``TV = ...`` line when TV is swept."""
    # Rounded to 12 digits: (10, 1e4) and (1, 1e3) are the same ratio even if the divisions differ in the last bit.
    ratios = distinct_format([float(f"{_alpha_over_beta(config):.12e}") for config in configs])
    tvs = distinct_format([config.tv_weight for config in configs])
    return [f"α/β = {ratio}" + (f"\nTV = {tv}" if with_tv else "") for ratio, tv in zip(ratios, tvs)]


def sweep_callbacks(
    bar: tqdm, paths: Sequence[Path], save_every: int | None, bit_depth: int, iterations: int,
    latest: list[Progress] | None = None, publisher: Publisher | None = None,
) -> tuple[Callable[[BatchPlan], None], Callable[[Progress], None]]:
    """``on_plan`` and ``callback`` of a sweep: size the bar, advance it, show the loss range, save snapshots, keep
    the latest progress in ``latest`` (what a stop that cannot wait saves), show the chunk on the live page
    (``publisher``; the images copied off the device once for both).

    A sweep too large for device memory runs as several sub-batches, each calling ``callback`` from iteration 1;
    the bar then counts every sub-batch's iterations, the page shows each sub-batch's members, and snapshots are
    off and nothing is kept (a callback cannot tell which members it sees).
    """
    state = {"snapshots": save_every or 0, "whole": True}  # snapshots every N iterations, 0 for never

    def on_plan(plan: BatchPlan) -> None:
        if not plan.split:
            return
        state["whole"] = False
        if publisher is not None:
            publisher.total, publisher.per_run = iterations * plan.runs, plan.per_run
        bar.total = iterations * plan.runs
        bar.refresh()
        if not bar.disable:
            bar.write(f"{PROG}: {plan.describe()}", file=sys.stderr)
        if state["snapshots"]:
            bar.write(f"{PROG}: warning: --save-every: no snapshots, the sweep runs in {plan.runs} parts",
                      file=sys.stderr)
            state["snapshots"] = 0

    def snapshots(progress: Progress) -> None:
        if latest is not None and state["whole"]:
            latest[:] = [progress]
        images = None
        if state["snapshots"] and progress.iteration % state["snapshots"] == 0:
            images = gather(progress.image)
            for path, image in zip(paths, images):  # padding members (beyond len(paths)) dropped
                save_snapshot(snapshot_path(path, progress.iteration), np.asarray(image, np.float32), bit_depth, bar,
                              progress.iteration)
        if publisher is not None:
            publisher.update(progress, image=images)

    return on_plan, bar_callback(bar, iterations, snapshots)


def _one_line(label: str) -> str:
    """A contact-sheet label on one line, for messages and logs."""
    return label.replace("\n", ", ")


def _sweep_columns(count: int) -> int:
    """Contact-sheet columns: one row for up to 5 members (like the paper's figure), else about square."""
    return count if count <= 5 else math.ceil(math.sqrt(count))


def run(args: argparse.Namespace, checked: CheckedRun, start: float, live: LiveView) -> int:
    """A weight sweep, checked (``checks.check_run``): one batched ``stylize_sweep``, each member to its own file,
    plus a labelled contact sheet (one tile per member on the live page)."""
    config, lists = checked.config, checked.lists
    paths, grid = member_paths(args.output, lists), grid_path(args.output)
    latest: list[Progress] = []
    with content_run(args, checked) as run, progress_bar(config.iterations, "it", args.quiet) as bar:
        on_forced_stop(lambda: save_unfinished(paths, latest[-1], member_configs(config, lists), run.content,
                                               run.vgg, args.bit_depth) if latest else None)  # none kept: in parts
        captions = member_labels(member_configs(configure_for(config, run.vgg), lists), with_tv="tv_weight" in lists)
        publisher = live.publisher(
            total=config.iterations, config=config, vgg=run.vgg, title=title(args.content, args.styles),
            labels=captions, columns=_sweep_columns(len(captions)), content=args.content, styles=args.styles,
            output=f"{grid} and {len(paths)} images beside it",
            sweep=", ".join(f"{flag(field)} {','.join(map(str, values))}" for field, values in lists.items()),
        )
        on_plan, callback = sweep_callbacks(bar, paths, args.save_every, args.bit_depth, config.iterations, latest,
                                            publisher)
        results = stylize_sweep(
            run.content, run.styles, config=timed_chunks(config), vgg=run.vgg, callback=callback,
            on_plan=on_plan, style_masks=run.masks, style_source_masks=run.sources,
            **{f"{field}s": values for field, values in lists.items()},
        )
    labels = member_labels([result.config for result in results], with_tv="tv_weight" in lists)  # weights resolved
    written, diverged, code = [], [], EXIT_OK
    for path, label, result in zip(paths, labels, results):
        if result.status == Status.NON_FINITE:
            start_hint = f": {nothing_finished(result)}" if result.iterations == 0 else ""
            diverged.append(f"{path.name} ({_one_line(label)}){start_hint}")
            continue
        if result.iterations == 0:  # interrupted before the first iteration: the image is the untouched start
            continue
        try:
            if writes():
                result.save(path, bit_depth=args.bit_depth)
            written.append(path)
        except image_io.ImageError as error:
            print(f"{PROG}: error: {error}", file=sys.stderr)
            code = EXIT_FAILED
    tiles = [label + ("\n(NaN/inf: not written)" if result.status == Status.NON_FINITE else "")
             for label, result in zip(labels, results)]
    sheet = None
    try:
        if any(result.iterations for result in results):  # else every tile is the untouched start
            sheet = contact_sheet([result.image for result in results], tiles, columns=_sweep_columns(len(results)))
            if writes():
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
    code = EXIT_FAILED if code == EXIT_OK and not logged else code
    live.finish(code, f"wrote {len(written)} files ({grid})" if written else "nothing was written", sheet,
                non_finite=bool(diverged))
    return code


def _report_sweep(
    results: Sequence[StyleResult], paths: Sequence[Path], written: Sequence[Path], diverged: Sequence[str],
    grid: Path, wall: float, code: int,
) -> int:
    """Print how a sweep ended and return its exit code."""
    for path, result in zip(paths, results):
        if path in written and result.status == Status.COMPLETED:
            print(f"wrote {path}: {result.iterations} iterations, loss {result.final_losses.total:.6g}")
    if any(result.status == Status.INTERRUPTED for result in results):
        iterations = min(result.iterations for result in results if result.status == Status.INTERRUPTED)
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
            f"written: {'; '.join(diverged)}; {nan_hint(results[0].config)}",
            file=sys.stderr,
        )
        code = EXIT_FAILED
    if grid in written:
        print(f"wrote {grid}: contact sheet of {len(results)} weightings, {wall:.1f} s")
    return code
