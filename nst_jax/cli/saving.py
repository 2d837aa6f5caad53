"""Writing a run's results (process 0 of several only): the image, unless no iteration finished, and the JSON log."""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

from nst_jax import files, image_io
from nst_jax.cli import distributed
from nst_jax.cli.exits import PROG
from nst_jax.optimize import Status
from nst_jax.result import StyleResult


def _finite_or_none(value: float) -> float | None:
    """A float for JSON: NaN and infinities become null."""
    return float(value) if math.isfinite(value) else None


def log_record(result: StyleResult, output: Path, wall: float) -> dict[str, Any]:
    """The ``--log-json`` content: config, per-iteration and final losses, status, weights, timings."""
    return {
        "config": result.config.to_dict(),
        "losses": {name: [_finite_or_none(v) for v in values] for name, values in result.losses_dict().items()},
        "final_losses": {name: _finite_or_none(float(v)) for name, v in result.final_losses._asdict().items()},
        "status": result.status,
        "iterations": result.iterations,
        "weights_sha256": result.weights_checksum,
        "weights_pretrained": result.weights_pretrained,
        "elapsed_s": result.elapsed,
        "wall_s": wall,
        "output": str(output),
    }


def write_log(path: Path | None, record: dict[str, Any]) -> bool:
    """Write the ``--log-json`` record atomically, if asked for (process 0 of several only); False (after an error
    line) if it failed."""
    if path is None or not distributed.writes():
        return True
    try:
        files.write_json(path, record)
    except OSError as error:
        print(f"{PROG}: error: cannot write --log-json '{path}': {error.strerror or error}", file=sys.stderr)
        return False
    return True


def save_result(result: StyleResult, output: Path, bit_depth: int) -> bool:
    """Save ``result`` unless no iteration finished (its image would be the untouched start, and an existing
    output must not be replaced by that; process 0 of several only); False (after an error line) if the image could
    not be written."""
    if result.iterations == 0 or not distributed.writes():
        return True
    try:
        result.save(output, bit_depth=bit_depth)
    except image_io.ImageError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return False
    return True


def nothing_finished(result: StyleResult) -> str:
    """Why a run that finished no iteration stopped, and what to do, for messages."""
    if result.status == Status.INTERRUPTED:
        return "interrupted before the first iteration finished"
    if not math.isfinite(result.final_losses.total):
        return ("the loss is NaN or infinite at the starting image, before any iteration: the loss weights are too "
                "large for float32 (lower --content-weight, --style-weight or --tv-weight) or the VGG19 weights "
                "file is broken")
    return ("the first iteration made the loss NaN or infinite: lower --learning-rate (adam) or the loss weights, "
            "or try --optimizer lbfgsb")
