"""``nst-jax CONTENT STYLE [STYLE ...] -o OUT``: one image, with snapshots (``--save-every``), a JSON log and the
live view (``--serve``)."""

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
from nst_jax.cli.serving import LiveView, title
from nst_jax.cli.signals import on_forced_stop
from nst_jax.live import Publisher
from nst_jax.mesh import gather
from nst_jax.optimize import Progress, Status
from nst_jax.result import StyleResult
from nst_jax.transfer import stylize


def snapshots(bar: tqdm, output: Path, save_every: int | None, bit_depth: int, latest: list[Progress],
              publisher: Publisher) -> Callable[[Progress], None]:
    """After each chunk: keep its progress in ``latest`` (what a stop that cannot wait saves), save the snapshot due
    at its iteration (chunks end on multiples of ``save_every``), and show the chunk on the live page (its image
    copied off the device once for both)."""

    def save_due(progress: Progress) -> None:
        latest[:] = [progress]
        image = None
        if save_every and progress.iteration % save_every == 0:
            image = gather(progress.image)  # every process
            save_snapshot(snapshot_path(output, progress.iteration), image, bit_depth, bar, progress.iteration)
        publisher.update(progress, image=image)

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


def run(args: argparse.Namespace, checked: CheckedRun, start: float, live: LiveView) -> int:
    """One content image, checked (``checks.check_run``): load the network, stylize, save and report (and show it on
    the live page); returns the exit code."""
    config, total = checked.config, checked.config.total_iterations
    latest: list[Progress] = []
    with content_run(args, checked) as run, progress_bar(total, "it", args.quiet) as bar:
        on_forced_stop(lambda: save_unfinished([args.output], latest[-1] if latest else None, [config], run.content,
                                               run.vgg, args.bit_depth))
        publisher = live.publisher(total=total, config=config, vgg=run.vgg, title=title(args.content, args.styles),
                                   content=args.content, styles=args.styles, output=args.output)
        callback = bar_callback(bar, total, snapshots(bar, args.output, args.save_every, args.bit_depth, latest,
                                                      publisher))
        result = stylize(run.content, run.styles, vgg=run.vgg, config=timed_chunks(config), callback=callback,
                         style_masks=run.masks, style_source_masks=run.sources)
    saved = save_result(result, args.output, args.bit_depth)
    wall = time.perf_counter() - start
    logged = write_log(args.log_json, log_record(result, args.output, wall))
    image = result.image if result.iterations else None
    if not saved:
        live.finish(EXIT_FAILED, f"could not write {args.output}", image)
        return EXIT_FAILED
    code = report(result, args.output, wall)
    code = EXIT_FAILED if code == EXIT_OK and not logged else code
    note = f"wrote {args.output} ({result.iterations} iterations)" if image is not None else "nothing was written"
    live.finish(code, note, image, non_finite=result.status == Status.NON_FINITE)
    return code
