"""Progress while a command runs: the bar on stderr over one run or many, how often it hears from the run, and
snapshots."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
from tqdm import tqdm

from nst_jax import image_io
from nst_jax.cli import distributed
from nst_jax.cli.exits import PROG
from nst_jax.config import StyleConfig
from nst_jax.optimize import Progress


def progress_bar(total: int, unit: str, quiet: bool) -> tqdm:
    """The progress bar on stderr (disabled by --quiet)."""
    return tqdm(total=total, unit=unit, file=sys.stderr, disable=quiet, dynamic_ncols=True)


PROGRESS_SECONDS = 2.0
"""How long a compiled call of the command line lasts at most (``progress_seconds``; at least one iteration): the
progress bar moves that often, and a stop (Ctrl-C, SIGTERM; ``signals``) waits no longer for the call in progress."""


def timed_chunks(config: StyleConfig) -> StyleConfig:
    """``config`` with compiled calls of about ``PROGRESS_SECONDS`` (or as the config already says), ``--quiet`` or
    not: a long ``--chunk-size`` must not delay a stop."""
    if config.progress_seconds is not None:
        return config
    return config.replace(progress_seconds=PROGRESS_SECONDS)


def bar_callback(
    bar: tqdm, iterations: int, then: Callable[[Progress], None] | None = None
) -> Callable[[Progress], None]:
    """A ``Progress`` callback advancing ``bar`` over one run, or consecutive runs of ``iterations`` each (each
    restarting at iteration 1): it shows the loss, or the range of a batch's losses, then calls ``then``."""
    state = {"offset": 0, "last": 0}

    def callback(progress: Progress) -> None:
        if progress.iteration <= state["last"]:  # the next run started
            state["offset"] += iterations
        state["last"] = progress.iteration
        totals = np.asarray(progress.terms.total, np.float64).reshape(-1)
        finite = totals[np.isfinite(totals)]
        if finite.size:
            low, high = finite.min(), finite.max()
            bar.set_postfix(loss=f"{low:.4g}" if low == high else f"{low:.3g}..{high:.3g}", refresh=False)
        bar.total = max(bar.total, state["offset"] + progress.iteration)
        bar.update(state["offset"] + progress.iteration - bar.n)
        if then is not None:
            then(progress)

    return callback


def save_snapshot(path: Path, image: np.ndarray, bit_depth: int, bar: tqdm, iteration: int) -> None:
    """Write one snapshot (process 0 of several only); a failure is a warning, not the end of the run."""
    if not distributed.writes():
        return
    try:
        metadata = {"nst_jax:status": "snapshot", "nst_jax:iterations": str(iteration)}
        image_io.save_image(path, np.clip(image, 0.0, 1.0), bit_depth=bit_depth, metadata=metadata)
    except image_io.ImageError as error:
        bar.write(f"{PROG}: warning: snapshot not saved: {error}", file=sys.stderr)
