"""``nst-jax --batch DIR_OR_GLOB STYLE ... -o OUTDIR``: many content images with ``stylize_batch``, each to
``OUTDIR/<content name>.png``; unreadable contents are skipped, finished ones are not redone (a resumed run), and
files nst_jax did not write are left alone.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from tqdm import tqdm

from nst_jax import image_io
from nst_jax.cli.checks import CheckedRun
from nst_jax.cli.device import on_device
from nst_jax.cli.distributed import agree, writes
from nst_jax.cli.exits import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, PROG, UsageError
from nst_jax.cli.loading import load_weights_loudly
from nst_jax.cli.paths import STEM, mask_paths
from nst_jax.cli.progress import progress_bar, timed_chunks
from nst_jax.cli.saving import log_record, write_log
from nst_jax.cli.serving import LiveView, title
from nst_jax.config import StyleConfig
from nst_jax.memory import BatchPlan, plan_batch
from nst_jax.optimize import Status
from nst_jax.problem import content_shape
from nst_jax.result import StyleResult
from nst_jax.sweep import BatchItem, stylize_batch


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


def run(args: argparse.Namespace, checked: CheckedRun, start: float, live: LiveView) -> int:
    """``--batch``, checked (``checks.check_run``): stylize every content image not yet written, grouped by size (the
    current sub-batch on the live page); returns the exit code."""
    batch, config = checked.batch, checked.config
    assert batch is not None
    if batch.finished:
        print(f"{PROG}: skipping {len(batch.finished)} already written in {args.output} (--overwrite redoes them)",
              file=sys.stderr)
    if not batch.todo and not batch.skipped:
        print(f"nothing to do: all {len(batch.contents)} images are in {args.output}")
        live.finish(EXIT_OK, f"nothing to do: all {len(batch.contents)} images are in {args.output}")
        return EXIT_OK
    with on_device(checked.device):
        vgg = load_weights_loudly(args.weights, config, args.quiet) if batch.todo else None
        agree()
    try:
        if writes():
            args.output.mkdir(exist_ok=True)
    except OSError as error:
        raise UsageError(f"cannot create output folder '{args.output}': {error.strerror or error}") from None
    outcomes: list[BatchOutcome] = []
    interrupted = False
    total = len(batch.todo) + len(batch.skipped)
    with on_device(checked.device), progress_bar(total, "img", args.quiet) as bar:
        for content, reason in batch.skipped.items():
            bar.update(1)
            bar.write(f"{PROG}: warning: skipping {content}: {reason}", file=sys.stderr)
            outcomes.append(BatchOutcome(content, batch.outputs[content], "skipped", reason))
        on_done = batch_saver(bar, batch.outputs, args.bit_depth, outcomes)

        def on_plan(plan: BatchPlan) -> None:
            if plan.split and not bar.disable:
                bar.write(f"{PROG}: {plan.describe()}", file=sys.stderr)

        own = args.style_masks is not None and any(STEM in name for name in args.style_masks)
        masks = [mask_paths(args, content) for content in batch.todo] if own else checked.masks
        publisher = live.publisher(
            total=config.iterations * planned_runs(batch.todo, config), config=config, vgg=vgg,
            title=title(f"{len(batch.todo)} images of {args.batch}", checked.styles), batch=args.batch,
            styles=checked.styles, output=args.output,
        ) if vgg is not None else None
        try:
            if batch.todo:
                stylize_batch(batch.todo, checked.styles, config=timed_chunks(config), vgg=vgg, on_done=on_done,
                              on_plan=on_plan, callback=publisher.update if publisher else None, style_masks=masks,
                              style_source_masks=checked.sources)
        except KeyboardInterrupt:
            interrupted = True
    wall = time.perf_counter() - start
    logged = write_log(args.log_json, {"batch": [batch_record(outcome, wall) for outcome in outcomes],
                                       "already_written": [str(output) for output in batch.finished], "wall_s": wall})
    code = _report_batch(outcomes, total, interrupted, args.output, wall)
    code = EXIT_FAILED if code == EXIT_OK and not logged else code
    written = sum(outcome.outcome == "written" for outcome in outcomes)
    live.finish(code, f"wrote {written} of {total} images to {args.output}",
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
