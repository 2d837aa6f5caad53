"""``nst-jax CONTENT STYLE [STYLE ...] -o OUT``: one image, with snapshots (``--save-every``) and a JSON log."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

from tqdm import tqdm

from nst_jax.cli.checks import CheckedRun
from nst_jax.cli.exits import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, PROG
from nst_jax.cli.loading import content_run
from nst_jax.cli.paths import snapshot_path
from nst_jax.cli.progress import bar_callback, progress_bar, save_snapshot, timed_chunks
from nst_jax.cli.saving import log_record, nan_hint, nothing_finished, save_result, save_unfinished, write_log
from nst_jax.cli.signals import on_forced_stop
from nst_jax.mesh import gather
from nst_jax.optimize import Progress, Status
from nst_jax.result import StyleResult
from nst_jax.transfer import stylize


def snapshots(bar: tqdm, output: Path, save_every: int | None, bit_depth: int,
              latest: list[Progress]) -> Callable[[Progress], None]:
    """After each chunk: keep its progress in ``latest`` (what a stop that cannot wait saves), and save the snapshot
    due at its iteration (chunks end on multiples of ``save_every``)."""

    def save_due(progress: Progress) -> None:
        latest[:] = [progress]
        if save_every and progress.iteration % save_every == 0:
            path = snapshot_path(output, progress.iteration)
            save_snapshot(path, gather(progress.image), bit_depth, bar, progress.iteration)  # every process

    return save_due


def report(result: StyleResult, output: Path, wall: float) -> int:
    """Print how the run ended and return its exit code."""
    iterations, total = result.iterations, result.config.total_iterations
    if iterations == 0:
        verb = "interrupted" if result.status == Status.INTERRUPTED else "error"
        print(f"{PROG}: {verb}: {nothing_finished(result)}; nothing was written", file=sys.stderr)
        return EXIT_INTERRUPTED if result.status == Status.INTERRUPTED else EXIT_FAILED
    if result.status == Status.NON_FINITE:
        print(
            f"{PROG}: error: the loss became NaN or infinite after {iterations} of {total} iterations; saved the "
            f"last finite image to {output}; {nan_hint(result.config)}",
            file=sys.stderr,
        )
        return EXIT_FAILED
    if result.status == Status.INTERRUPTED:
        print(
            f"{PROG}: interrupted at iteration {iterations} of {total}; saved the current image to {output}",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    print(f"wrote {output}: {iterations} iterations, loss {result.final_losses.total:.6g}, {wall:.1f} s")
    return EXIT_OK


def run(args: argparse.Namespace, checked: CheckedRun, start: float) -> int:
    """One content image, checked (``checks.check_run``): load the network, stylize, save and report; returns the
    exit code."""
    config, total = checked.config, checked.config.total_iterations
    latest: list[Progress] = []
    with content_run(args, checked) as run, progress_bar(total, "it", args.quiet) as bar:
        on_forced_stop(lambda: save_unfinished([args.output], latest[-1] if latest else None, [config], run.content,
                                               run.vgg, args.bit_depth))
        callback = bar_callback(bar, total, snapshots(bar, args.output, args.save_every, args.bit_depth, latest))
        result = stylize(run.content, run.styles, vgg=run.vgg, config=timed_chunks(config), callback=callback,
                         style_masks=run.masks, style_source_masks=run.sources)
    saved = save_result(result, args.output, args.bit_depth)
    wall = time.perf_counter() - start
    logged = write_log(args.log_json, log_record(result, args.output, wall))
    if not saved:
        return EXIT_FAILED
    code = report(result, args.output, wall)
    return EXIT_FAILED if code == EXIT_OK and not logged else code
