"""Device memory: what a run needs (estimated before it starts), what a device offers, how a batch is split, and
the plan of a single run (whole, split over the devices by rows, tiled, or both) that ``--dry-run`` prints.

``device_bytes`` estimates XLA's own accounting of one compiled optimization chunk (``memory_analysis()``: its
arguments, outputs and temporaries) from what scales with the image: VGG's float32 activations up to the deepest
layer used, kept for the backward pass (measured: the temporaries equal them to within 5 % from 384x512 to 683x1024,
none kept twice), the optimizer's image-sized state (in and out of the chunk: L-BFGS keeps 2 x history + 2 image
vectors, donated from chunk to chunk), the network's weights up to that layer and the targets. Tested within 25 % of
``memory_analysis()``.

A process holds more than XLA's buffers: ``run_bytes`` (what the CLI checks against free memory) is
``PROCESS_FACTOR`` times the estimate plus ``RUNTIME_BYTES``. Measured on CPU (peak resident memory of ``stylize``
over 2 iterations minus the process before it, against ``memory_analysis()`` of its chunk): L-BFGS at 384x512
1.18 GiB vs 0.63, at 683x1024 3.53 vs 2.00: 1.8-1.9x.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable, Sequence

import jax

from nst_jax.config import IMAGE_SIZE_LIMIT, StyleConfig
from nst_jax.mesh import agree_min
from nst_jax.problem import content_shape, stage_shapes
from nst_jax.tiling import plan_tiles
from nst_jax.vgg import DEFAULT_ARCHITECTURE, LAYER_NAMES, conv_param_shapes, layer_stride

FLOAT_BYTES = 4
RUNTIME_BYTES = 512 * 2**20
"""What a run needs besides its arrays: XLA compiling it (about 0.4 GiB measured on CPU, at any image size)."""
PROCESS_FACTOR = 1.9
"""A process's peak resident memory over XLA's buffers for its chunk (1.8-1.9 measured on CPU; see above)."""
SPATIAL_SHARE = 0.15
"""Split over n devices by rows, each holds 1/n of the activations plus this fraction of them (halos, padding of
uneven rows): 1/4 + 0.33, 0.40 and 0.55 of a single device's measured at 681x1024, 341x512 and 170x256 px over 4
forced CPU devices (Adam; benchmarks/RESULTS.md); with 0.15 the estimate is within 20 % at the two larger sizes
(+18 %, -7 %) and 31 % under at the smallest, where what is not split (weights, halos) dominates."""
ALLOCATOR_SHARE = 0.1
"""On accelerators, where XLA's buffers are the device's memory: a margin for the allocator (not measured here)."""
TILE_SIZES = (2048, 1024, 512, 256)
"""Tile sizes ``plan_run`` tries under ``shard`` ``auto``, largest (fewest halos) first."""
LARGEST_SIDE = IMAGE_SIZE_LIMIT
"""The longest side ``plan_run`` looks for when it reports what each strategy fits: the largest a run may ask for."""


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


def _weight_elements(layers: Sequence[str]) -> int:
    """Parameters of VGG19's convolutions up to the deepest of ``layers`` (the compiled run drops the rest)."""
    deepest = max(LAYER_NAMES.index(layer) for layer in layers)
    shapes = conv_param_shapes()
    return sum(math.prod(shape) for name in LAYER_NAMES[: deepest + 1] if name.startswith("conv")
               for shape in shapes[name].values())


def _channels(layer: str) -> int:
    """Channels of ``layer``'s output in VGG19."""
    deepest = LAYER_NAMES.index(layer)
    return [conv_param_shapes()[name]["bias"][0] for name in LAYER_NAMES[: deepest + 1] if name.startswith("conv")][-1]


def _target_elements(height: int, width: int, config: StyleConfig) -> int:
    """The targets a run holds: content feature maps of the whole image and one Gram matrix per style layer."""
    content = sum((height // layer_stride(layer)) * (width // layer_stride(layer)) * _channels(layer)
                  for layer in config.content_layers)
    return content + sum(_channels(layer) ** 2 for layer in config.style_layers)


def image_vectors(config: StyleConfig) -> int:
    """Image-sized float32 arrays one chunk holds: the optimizer's state (L-BFGS: the history's 2 x
    ``history_size`` pairs, the gradient and the last step; Adam: the two moments and the step), donated to its
    successor, and the image, in and out."""
    state = 2 * config.history_size + 2 if config.optimizer != "adam" else 3
    return state + 2


def tiled(height: int, width: int, config: StyleConfig) -> bool:
    """Whether ``config`` evaluates an image of (height, width) tile by tile."""
    return config.tile_size is not None and max(height, width) > config.tile_size


def device_bytes(height: int, width: int, config: StyleConfig, *, shards: int = 1) -> int:
    """Estimated device memory (XLA's buffers) of one chunk optimizing one (height, width) image, on each of
    ``shards`` devices it is split over by rows: activations of the whole image or of the largest tile region,
    split; the image-sized state split where the rows divide evenly (``mesh.row_sharding``); weights and targets
    on every device."""
    layers = config.content_layers + config.style_layers
    if tiled(height, width, config):
        activations = _activation_elements(*plan_tiles(height, width, config.tile_size, layers,
                                                       DEFAULT_ARCHITECTURE).region, layers)
    else:
        activations = _activation_elements(height, width, layers)
    image = height * width * 3 * image_vectors(config)
    split_image = image // shards if height % shards == 0 else image
    fixed = _weight_elements(layers) + _target_elements(height, width, config)
    activation_size = 2 if config.precision == "bfloat16" else FLOAT_BYTES
    share = 1.0 if shards == 1 else 1 / shards + SPATIAL_SHARE
    return FLOAT_BYTES * (fixed + split_image) + activation_size * math.ceil(activations * share)


def target_bytes(height: int, width: int, config: StyleConfig, *, shards: int = 1) -> int:
    """Estimated device memory computing the style targets (a forward pass, no gradient) of one style image needs
    (of its largest tile region with ``config.tile_size``), on each of ``shards`` devices its rows are split over."""
    if tiled(height, width, config):
        height, width = plan_tiles(height, width, config.tile_size, config.style_layers, DEFAULT_ARCHITECTURE).region
    return FLOAT_BYTES * math.ceil(_activation_elements(height, width, config.style_layers) / shards)


def run_bytes(content: tuple[int, int], style: tuple[int, int], config: StyleConfig, *, shards: int = 1,
              platform: str = "cpu") -> int:
    """Estimated peak of one image's run at one size, per device: its optimization, or its style targets' forward
    pass (at the style images' (height, width)) where that is larger; on CPU times the process's overhead, plus
    the compiler's share (``PROCESS_FACTOR``, ``RUNTIME_BYTES``), elsewhere plus ``ALLOCATOR_SHARE``."""
    arrays = max(device_bytes(*content, config, shards=shards), target_bytes(*style, config, shards=shards))
    if platform == "cpu":
        return RUNTIME_BYTES + int(PROCESS_FACTOR * arrays)
    return int((1 + ALLOCATOR_SHARE) * arrays)


def run_needs(shape: Sequence[int], config: StyleConfig, *, shards: int = 1, platform: str = "cpu") -> int:
    """Estimated peak memory of a run of a content of original (height, width) ``shape``: its largest size's (with a
    square style image of the style's longest side: its largest area, whatever its shape)."""
    return max(run_bytes(content, style, config, shards=shards, platform=platform)
               for _, content, styles in stage_shapes(shape, config) for style in styles)


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


def largest_image_size(shape: Sequence[int], config: StyleConfig, budget: int, *, shards: int = 1,
                       platform: str = "cpu", up_to: int | None = None) -> int | None:
    """The largest ``image_size`` (one scale, below ``up_to``, default the config's) at which a run of a content
    of ``shape`` over ``shards`` devices of ``platform`` fits ``budget`` bytes."""
    one_size = config.replace(scales=None, scale_iterations=None)
    fits = lambda size: run_needs(shape, one_size.replace(image_size=int(size)), shards=shards,  # noqa: E731
                                  platform=platform) <= budget
    size = _largest(fits, 16, config.image_size if up_to is None else up_to, integer=True)
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


def per_device_budget(devices: Sequence[jax.Device]) -> int:
    """Memory each of ``devices`` offers a run: the least free of their allocators, or on CPU the host's available
    memory shared by its devices."""
    if any(_has_allocator_limit(device) for device in devices):
        return min(available_bytes(device) for device in devices)
    return available_bytes(devices[0]) // len(devices)


@dataclasses.dataclass(frozen=True)
class RunPlan:
    """How one image's run uses the devices at its largest size: split over ``shards`` devices by rows (1: not),
    tile by tile (``tile_size``) or whole, and what that needs per device; ``largest`` is the longest side that
    fits per strategy."""

    content: tuple[int, int]
    shards: int
    tile_size: int | None
    tiles: int
    device_bytes: int
    process_bytes: int
    budget: int
    optimizer: str
    largest: tuple[tuple[str, int | None], ...]

    @property
    def strategy(self) -> str:
        """whole, spatial, tiled or tiled+spatial."""
        if self.tile_size is None:
            return "spatial" if self.shards > 1 else "whole"
        return "tiled+spatial" if self.shards > 1 else "tiled"

    @property
    def fits(self) -> bool:
        """Whether the estimate fits each device's free memory."""
        return self.process_bytes <= self.budget

    def describe(self) -> str:
        """The plan for the user (``--dry-run``), several lines."""
        height, width = self.content
        per_eval = "1 value-and-gradient" if self.tiles <= 1 else (
            f"{self.tiles} tiles, each run forward for the statistics, then forward and backward for the gradient")
        searches = "1 per iteration" if self.optimizer == "adam" else (
            "1 per iteration plus the line search's extra trials (1.1-1.3 in all measured with zoom)")
        lines = [
            f"plan: {height}x{width} px, {self.strategy}"
            + (f" over {self.shards} devices (rows split, halos exchanged)" if self.shards > 1 else " on one device")
            + (f", tiles of {self.tile_size} px ({self.tiles})" if self.tile_size is not None else ""),
            f"  memory per device: ~{self.device_bytes / 2**30:.2f} GiB of arrays (XLA's buffers), "
            f"~{self.process_bytes / 2**30:.2f} GiB with overheads, of "
            f"{self.budget / 2**30:.1f} GiB free: {'fits' if self.fits else 'does NOT fit'}",
            f"  evaluations: {searches}; each evaluation {per_eval}",
        ]
        if self.largest:
            lines.append("  largest long side that fits: " + ", ".join(
                f"{name} {size if size is not None else 'none'}" for name, size in self.largest))
        return "\n".join(lines)


def _candidates(config: StyleConfig, devices: int) -> list[tuple[int, int | None]]:
    """(shards, tile size) choices of ``config.shard`` for a single image, in order of preference."""
    spread = devices if config.shard == "spatial" else 1
    if config.shard != "auto":
        return [(spread, config.tile_size)]
    if config.tile_size is not None:
        return [(1, config.tile_size)] + ([(devices, config.tile_size)] if devices > 1 else [])
    choices = [(1, None)] + ([(devices, None)] if devices > 1 else [])
    return choices + [(devices, tile) for tile in TILE_SIZES]


def _needs(shape: Sequence[int], config: StyleConfig, shards: int, tile: int | None, platform: str) -> int:
    """``run_needs`` of ``config`` with ``tile``, over ``shards`` devices of ``platform``."""
    return run_needs(shape, config.replace(tile_size=tile), shards=shards, platform=platform)


def plan_run(shape: Sequence[int], config: StyleConfig, *, devices: Sequence[jax.Device] | None = None,
             budget: int | None = None, largest: bool = True) -> RunPlan:
    """The plan of one image's run (a content of original (height, width) ``shape``): ``config.shard`` and
    ``config.tile_size`` as given, or under ``auto`` the first of whole, rows split over the devices, then tiles of
    ``TILE_SIZES`` (split too) that fits ``budget`` per device (default: what the devices have free).
    ``largest``: also find the longest side that fits per strategy (bisections; ``RunPlan.largest`` empty if not)."""
    devices = list(devices or jax.devices())
    if budget is None:  # a process can query only its own devices; every process must choose the same plan
        local = [device for device in devices if device.process_index == jax.process_index()]
        budget = agree_min(per_device_budget(local))
    choices = _candidates(config, len(devices))
    platform = devices[0].platform
    shards, tile = next(((s, t) for s, t in choices if _needs(shape, config, s, t, platform) <= budget),
                        choices[-1])
    content = content_shape(shape, config.image_size)
    chosen = config.replace(tile_size=tile)
    layers = config.content_layers + config.style_layers
    tiles = plan_tiles(*content, tile, layers, DEFAULT_ARCHITECTURE).count if tiled(*content, chosen) else 1
    strategies = [("whole", 1, None)] + ([("spatial", len(devices), None)] if len(devices) > 1 else [])
    some_tile = tile or config.tile_size or 512
    strategies += [(f"tiled ({some_tile} px)", 1, some_tile)]
    strategies += [(f"tiled+spatial ({some_tile} px)", len(devices), some_tile)] if len(devices) > 1 else []
    return RunPlan(
        content=content, shards=shards, tile_size=tile if tiles > 1 else None, tiles=tiles,
        device_bytes=device_bytes(*content, chosen, shards=shards),
        process_bytes=_needs(shape, config, shards, tile, platform), budget=budget, optimizer=config.optimizer,
        largest=tuple((name, largest_image_size(shape, config.replace(tile_size=t), budget, shards=s,
                                                platform=platform, up_to=LARGEST_SIDE))
                      for name, s, t in strategies if largest),
    )


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
    """Sub-batch size so that each device's share of a run fits ``memory_fraction`` of its free memory (the least
    of every process's: all of them must split the batch alike), the batch spread over every process's devices."""
    devices = len(jax.devices())
    per_image = device_bytes(height, width, config)
    per_device = agree_min(min(device_memory_bytes(device) for device in jax.local_devices()))
    fit_per_device = max(1, int(per_device * memory_fraction) // per_image)
    per_run = min(size, fit_per_device * devices)
    return BatchPlan(size, per_run, devices, per_image, per_device)
