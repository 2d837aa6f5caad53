"""Device memory: what a run needs (estimated before it starts), what a device offers, and how a batch is split.

The estimates count float32 activations of VGG19 up to the deepest layer a run uses and are meant to err on the
side of too much. Measured on CPU (peak resident memory of ``stylize`` over 2 iterations, random weights, the
default layers, minus the process's size before it), against ``run_bytes``: L-BFGS at 512 px (384x512) 1.18 GiB
measured vs 1.40 + 0.5 estimated, at 1024 px 3.53 vs 5.61 + 0.5; Adam at 512 px 0.77 vs 1.35 + 0.5; L-BFGS at 256 px
with the style 3x larger 0.82 vs 1.00 + 0.5. The fixed 0.5 GiB (``RUNTIME_BYTES``) is XLA compiling the run, about
0.4 GiB at any size (128 px: 0.40 GiB measured).
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable, Sequence

import jax

from nst_jax.config import StyleConfig
from nst_jax.problem import stage_shapes
from nst_jax.tiling import plan_tiles
from nst_jax.vgg import DEFAULT_ARCHITECTURE, LAYER_NAMES, conv_param_shapes, layer_stride

FLOAT_BYTES = 4
RUNTIME_BYTES = 512 * 2**20
"""What a run needs besides its arrays: XLA compiling it (about 0.4 GiB measured on CPU, at any image size)."""


def _activation_elements(height: int, width: int, layers: Sequence[str]) -> int:
    """Float32 values VGG19 produces for one (height, width) image, from the input to the deepest of ``layers``."""
    deepest = max(LAYER_NAMES.index(layer) for layer in layers)
    shapes = conv_param_shapes()
    total, h, w, channels = 0, height, width, 3
    for name in LAYER_NAMES[: deepest + 1]:
        if name.startswith("pool"):
            h, w = h // 2, w // 2
        else:
            channels = shapes["conv" + name[4:]]["bias"][0]
        total += h * w * channels
    return total


def activation_bytes(height: int, width: int, config: StyleConfig) -> int:
    """Estimated device memory one image of (height, width) needs during an optimization step; with
    ``config.tile_size``, the activations of the largest tile region, plus the whole image's content targets."""
    layers = config.content_layers + config.style_layers
    if config.tile_size is not None and max(height, width) > config.tile_size:
        plan = plan_tiles(height, width, config.tile_size, layers, DEFAULT_ARCHITECTURE)
        region = (max(span.stop - span.start for span in plan.rows),
                  max(span.stop - span.start for span in plan.columns))
        shapes = conv_param_shapes()
        targets = sum((height // layer_stride(layer)) * (width // layer_stride(layer)) * shapes["conv" + layer[4:]]
                      ["bias"][0] for layer in config.content_layers if not layer.startswith("pool"))  # held whole
        total = _activation_elements(*region, layers) + targets
    else:
        total = _activation_elements(height, width, layers)
    # Forward activations kept for the backward pass, their cotangents, and XLA's temporaries: about 3x.
    image = height * width * 3
    optimizer_vectors = 2 * config.history_size + 8 if config.optimizer != "adam" else 4
    return FLOAT_BYTES * (3 * total + optimizer_vectors * image)


def target_bytes(height: int, width: int, config: StyleConfig) -> int:
    """Estimated device memory computing the style targets (a forward pass, no gradient) of one style image needs
    (of its largest tile region with ``config.tile_size``)."""
    if config.tile_size is not None and max(height, width) > config.tile_size:
        plan = plan_tiles(height, width, config.tile_size, config.style_layers, DEFAULT_ARCHITECTURE)
        height = max(span.stop - span.start for span in plan.rows)
        width = max(span.stop - span.start for span in plan.columns)
    return FLOAT_BYTES * _activation_elements(height, width, config.style_layers)


def run_bytes(content: tuple[int, int], style: tuple[int, int], config: StyleConfig) -> int:
    """Estimated peak of one image's run at one size: its optimization, or its style targets' forward pass (at
    the style images' (height, width)) where that is larger, plus the compiler's share."""
    return RUNTIME_BYTES + max(activation_bytes(*content, config), target_bytes(*style, config))


def run_needs(shape: Sequence[int], config: StyleConfig) -> int:
    """Estimated peak memory of a run of a content of original (height, width) ``shape``: its largest size's."""
    return max(run_bytes(content, style, config) for _, content, style in stage_shapes(shape, config))


def _largest(fits: Callable[[float], bool], low: float, high: float, *, integer: bool) -> float | None:
    """The largest value in [low, high) for which ``fits`` holds (true below some value, false above), by
    bisection; None if not even ``low`` fits."""
    if not fits(low):
        return None
    for _ in range(60):
        if high - low <= (1 if integer else 1e-3 * low):
            break
        middle = (low + high) // 2 if integer else (low + high) / 2
        low, high = (middle, high) if fits(middle) else (low, middle)
    return low


def largest_image_size(shape: Sequence[int], config: StyleConfig, budget: int) -> int | None:
    """The largest ``image_size`` (one scale) at which a run of a content of ``shape`` fits ``budget`` bytes."""
    one_size = config.replace(scales=None, scale_iterations=None)
    fits = lambda size: run_needs(shape, one_size.replace(image_size=int(size))) <= budget  # noqa: E731
    size = _largest(fits, 16, config.image_size, integer=True)
    return None if size is None else int(size)


def largest_style_scale(shape: Sequence[int], config: StyleConfig, budget: int) -> float | None:
    """The largest ``style_scale`` from 1 up to the config's at which the run fits ``budget`` bytes (None: none)."""
    if config.style_scale <= 1:
        return None
    scale = _largest(lambda s: run_needs(shape, config.replace(style_scale=s)) <= budget, 1.0, config.style_scale,
                     integer=False)
    return None if scale is None else math.floor(scale * 100) / 100


def device_memory_bytes(device: jax.Device) -> int:
    """Memory a device offers to a batch: its allocator's free memory on accelerators, half the available host
    memory on CPU (which the rest of the machine shares)."""
    free = available_bytes(device)
    return free if _has_allocator_limit(device) else free // 2


def _has_allocator_limit(device: jax.Device) -> bool:
    """Whether the device reports its own memory limit (accelerators do; the CPU does not)."""
    stats = device.memory_stats() if hasattr(device, "memory_stats") else None
    return bool(stats and stats.get("bytes_limit"))


def available_bytes(device: jax.Device) -> int:
    """Memory free on ``device`` now: its allocator limit minus what is in use, or the host's available memory."""
    stats = device.memory_stats() if hasattr(device, "memory_stats") else None
    if stats and stats.get("bytes_limit"):
        return int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0))
    try:
        with open("/proc/meminfo") as meminfo:
            fields = dict(line.split(":", 1) for line in meminfo)
        return int(fields["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")


@dataclasses.dataclass(frozen=True)
class BatchPlan:
    """How a batch of ``size`` images is run: sub-batches of at most ``per_run``, each sharded on ``devices``."""

    size: int
    per_run: int
    devices: int
    bytes_per_image: int
    bytes_per_device: int

    @property
    def runs(self) -> int:
        """Number of sub-batches."""
        return math.ceil(self.size / self.per_run)

    @property
    def split(self) -> bool:
        """Whether the batch had to be split to fit memory."""
        return self.runs > 1

    def describe(self) -> str:
        """One line for the user."""
        fits = (
            f"split into {self.runs} runs of up to {self.per_run} images to fit device memory"
            if self.split
            else "one run"
        )
        return (
            f"batch of {self.size}: ~{self.bytes_per_image / 2**20:.0f} MiB per image, "
            f"{self.bytes_per_device / 2**30:.1f} GiB free per device x {self.devices} device(s): {fits}"
        )


def plan_batch(size: int, height: int, width: int, config: StyleConfig, *, memory_fraction: float = 0.8) -> BatchPlan:
    """Sub-batch size so that each device's share of a run fits ``memory_fraction`` of its free memory."""
    devices = jax.local_devices()
    per_image = activation_bytes(height, width, config)
    per_device = min(device_memory_bytes(device) for device in devices)
    fit_per_device = max(1, int(per_device * memory_fraction) // per_image)
    per_run = min(size, fit_per_device * len(devices))
    return BatchPlan(size, per_run, len(devices), per_image, per_device)
