"""Writing a run's results (process 0 of several only): the image, unless no iteration finished, the JSON log, and
the last reported image of a run that a stop could not wait for."""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np

from nst_jax import files, image_io
from nst_jax.cli import distributed
from nst_jax.cli.exits import PROG
from nst_jax.config import StyleConfig
from nst_jax.optimize import STEP_SIZE, Progress, Status
from nst_jax.problem import configure_for, content_shape, output_colors
from nst_jax.result import StyleResult
from nst_jax.weights import VGGWeights


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


def nan_hint(config: StyleConfig) -> str:
    """What to change when the loss became NaN or infinite during the iterations, naming the option in play."""
    if config.optimizer == "adam":
        return f"lower --learning-rate (now {config.learning_rate:g}) or the loss weights"
    if config.optimizer == "lbfgs" and config.step_size != STEP_SIZE:
        return f"lower --step-size (now {config.step_size:g}) or the loss weights"
    return "lower the loss weights" + (", or try --optimizer lbfgsb" if config.optimizer == "lbfgs" else "")


def nothing_finished(result: StyleResult) -> str:
    """Why a run that finished no iteration stopped, and what to do, for messages."""
    if result.status == Status.INTERRUPTED:
        return "interrupted before the first iteration finished"
    if not math.isfinite(result.final_losses.total):
        return ("the loss is NaN or infinite at the starting image, before any iteration: the loss weights are too "
                "large for float32 (lower --content-weight, --style-weight or --tv-weight) or the VGG19 weights "
                "file is broken")
    return f"the first iteration made the loss NaN or infinite: {nan_hint(result.config)}"


def host_images(progress: Progress) -> np.ndarray | None:
    """The images of ``progress`` on the host (one image or a batch), or None if they span other processes
    (gathering them is a collective that a stuck process could not join)."""
    image = progress.image
    if isinstance(image, jax.Array) and not image.is_fully_addressable:
        return None
    return np.asarray(image, np.float32)


def save_unfinished(
    paths: Sequence[Path], progress: Progress | None, configs: Sequence[StyleConfig], content: np.ndarray,
    vgg: VGGWeights, bit_depth: int,
) -> str | None:
    """Write the latest reported image of each run (one image, or each member of a batch) to ``paths``, as the run
    would have saved it when interrupted (at the output size, colours as its config asks; status ``interrupted``),
    for a stop that cannot wait for the run (``signals.on_forced_stop``); what was saved, for the message."""
    if progress is None or progress.iteration == 0:
        return "no iteration had finished; nothing was written"
    images = host_images(progress)
    if images is None:
        return "the image spans several processes and was not saved"
    if not distributed.writes():
        return None
    images = images.reshape((-1, *images.shape[-3:]))
    height, width = content_shape(content.shape, configs[0].image_size)
    saved = []
    for path, image, config in zip(paths, images, configs):
        if image.shape[:2] != (height, width):  # an earlier size of --scales
            image = image_io.resize_image(image, height, width)
        if config.preserve_color is not None:
            image = output_colors(image, image_io.resize_image(content, height, width), config.preserve_color)
        metadata = {
            "nst_jax:config": json.dumps(configure_for(config, vgg).to_dict(), sort_keys=True),
            "nst_jax:weights_sha256": vgg.checksum, "nst_jax:weights_pretrained": str(vgg.pretrained),
            "nst_jax:status": str(Status.INTERRUPTED), "nst_jax:iterations": str(progress.iteration),
        }
        image_io.save_image(path, np.clip(image, 0.0, 1.0), bit_depth=bit_depth, metadata=metadata)
        saved.append(path)
    where = str(saved[0]) if len(saved) == 1 else f"{len(saved)} images in {saved[0].parent}"
    return f"saved the image of iteration {progress.iteration} to {where}"
