"""``StyleConfig``: every option of a style-transfer run, its defaults and their validation, in one place."""

from __future__ import annotations

import dataclasses
import math
import numbers
import os
import re
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from nst_jax.losses import LOSS_FORMS
from nst_jax.vgg import POOLINGS, validate_layers

OPTIMIZERS: tuple[str, ...] = ("lbfgs", "lbfgsb", "adam")
LBFGS_BACKENDS: tuple[str, ...] = ("jaxopt", "optax")
INITS: tuple[str, ...] = ("noise", "content", "style")
PRESERVE_COLORS: tuple[str, ...] = ("luminance", "histogram")

# Default style weight per loss form: see nst_jax.losses for why these balance content and style.
DEFAULT_STYLE_WEIGHT: dict[str, float] = {"normalized": 1e6, "paper": 1e3}


FLOAT32_MAX = float(np.finfo(np.float32).max)
"""The largest number the optimization can hold (3.4e38): loss weights past it become infinite on the device."""
SEED_LIMIT = 2**32
"""Seeds are 32-bit (``jax.random.PRNGKey`` wraps larger ones, so 1 and 2**32 + 1 would give the same noise)."""


class ConfigError(ValueError):
    """A bad ``StyleConfig`` value. The message names fields as ``{field}``: ``str()`` shows the field name, and
    ``render(flag)`` lets a command line show its option (``--image-size``) instead."""

    def __init__(self, template: str) -> None:
        self.template = template
        super().__init__(self.render(lambda field: field))

    def render(self, name: Callable[[str], str]) -> str:
        """The message with each ``{field}`` written as ``name(field)``."""
        return re.sub(r"\{(\w+)\}", lambda m: name(m.group(1)) if m.group(1) in _FIELDS else m.group(0), self.template)


def field(name: str) -> str:
    """``name`` marked for a ``ConfigError`` message: ``{name}``."""
    return "{" + name + "}"


def _floats(name: str, values: Any) -> tuple[float, ...] | None:
    """A sequence of real numbers as a tuple of floats (None stays None); ``ConfigError`` for anything else."""
    if values is None:
        return None
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        raise ConfigError(f"{field(name)} must be a sequence of numbers such as (1.0, 0.5), got {values!r}")
    if any(not _real(value) for value in values):
        raise ConfigError(f"{field(name)} must hold numbers, got {list(values)!r}")
    return tuple(float(value) for value in values)


@dataclasses.dataclass(frozen=True)
class StyleConfig:
    """Every option of one style transfer; defaults follow Gatys et al. as its authors ran it."""

    image_size: int = 512
    """Longest side of the output (the content image is resized to it), in pixels."""
    iterations: int = 500
    """Optimizer iterations."""
    optimizer: str = "lbfgs"
    """``lbfgs`` (the paper's), ``lbfgsb`` (L-BFGS-B keeping pixels in [0, 1]) or ``adam``."""
    lbfgs_backend: str = "optax"
    """Implementation of ``lbfgs``: ``optax`` (optax.lbfgs; faster, see benchmarks/NOTES.md) or ``jaxopt``."""
    history_size: int = 10
    """L-BFGS memory: number of past (step, gradient change) pairs (SciPy's, jaxopt's and optax's default)."""
    learning_rate: float = 0.02
    """Adam step size, in image units (pixels in [0, 1])."""
    content_weight: float = 1.0
    """alpha."""
    style_weight: float | None = None
    """beta; None takes the loss form's default (1e6 normalized, 1e3 paper: alpha/beta = 1e-3 as in the paper)."""
    tv_weight: float = 0.0
    """Total-variation weight; 0 as in the paper (which has no TV term)."""
    content_layers: tuple[str, ...] = ("relu4_2",)
    """Layers of the content representation (the paper's "conv4_2" is post-ReLU: Caffe's ReLU is in place)."""
    style_layers: tuple[str, ...] = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
    """Layers of the style representation."""
    style_layer_weights: tuple[float, ...] | None = None
    """w_l per style layer; None gives the paper's equal weights summing to one."""
    style_blend_weights: tuple[float, ...] | None = None
    """Relative weights of several style images (their Gram matrices are blended); None: equal."""
    style_scale: float = 1.0
    """Style images are resized to the content size times this factor."""
    loss_form: str = "normalized"
    """``normalized`` (size-independent weights, the default) or ``paper`` (the paper's equations exactly)."""
    pooling: str = "avg"
    """``avg`` (the paper's choice for synthesis) or ``max``."""
    init: str = "noise"
    """``noise`` (seeded white noise, the paper's), ``content``, ``style``, or the path of an image."""
    seed: int = 0
    """Seed of the noise initialization."""
    chunk_size: int = 20
    """Iterations per compiled call; the loop returns to Python only between chunks (progress, snapshots)."""
    preserve_color: str | None = None
    """Keep the content's colours (Gatys et al. 2017): ``luminance`` (style transfer on luminance only, then the
    content's chrominance), ``histogram`` (style recoloured to the content's colour mean and covariance first),
    or None (the style's colours, as in the 2016 paper)."""
    scales: tuple[int, ...] | None = None
    """Coarse-to-fine sizes (longest side, increasing, ending at ``image_size``): ``iterations`` (or
    ``scale_iterations``) at each, each result upsampled to start the next; None optimizes at ``image_size`` only."""
    scale_iterations: tuple[int, ...] | None = None
    """Iterations at each of ``scales`` instead of ``iterations`` at each, e.g. (300, 100, 50): most of the work
    where it is cheap, a few refining iterations at full size."""

    def __post_init__(self) -> None:
        set_ = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731 (frozen dataclass)
        set_("content_layers", validate_layers(self.content_layers))
        set_("style_layers", validate_layers(self.style_layers))
        for name in ("style_layer_weights", "style_blend_weights"):
            set_(name, _floats(name, getattr(self, name)))
        self._check_choice("optimizer", OPTIMIZERS)
        self._check_choice("lbfgs_backend", LBFGS_BACKENDS)
        self._check_choice("loss_form", LOSS_FORMS)
        self._check_choice("pooling", POOLINGS)
        for name in ("image_size", "iterations", "history_size", "chunk_size"):
            value = getattr(self, name)
            if not _integer(value) or value <= 0:
                raise ConfigError(f"{field(name)} must be a positive integer, got {value!r}")
            set_(name, int(value))
        if not _integer(self.seed) or not 0 <= self.seed < SEED_LIMIT:
            raise ConfigError(f"{field('seed')} must be an integer from 0 to {SEED_LIMIT - 1}, got {self.seed!r}")
        set_("seed", int(self.seed))
        for name in ("learning_rate", "style_scale"):
            value = getattr(self, name)
            if not _in_float32(value) or value <= 0:
                raise ConfigError(f"{field(name)} must be a positive number of at most {FLOAT32_MAX:.3g}, "
                                  f"got {value!r}")
            set_(name, float(value))
        for name in ("content_weight", "style_weight", "tv_weight"):
            value = getattr(self, name)
            if value is None and name == "style_weight":
                continue
            if not _in_float32(value) or value < 0:
                raise ConfigError(f"{field(name)} must be a non-negative number of at most {FLOAT32_MAX:.3g} "
                                  f"(float32), got {value!r}")
            set_(name, float(value))
        if self.style_layer_weights is not None:
            if len(self.style_layer_weights) != len(self.style_layers):
                raise ConfigError(
                    f"{len(self.style_layer_weights)} style layer weights for {len(self.style_layers)} style layers "
                    f"({field('style_layer_weights')} needs one per layer of {field('style_layers')})"
                )
            if any(not _in_float32(w) or w < 0 for w in self.style_layer_weights):
                raise ConfigError(f"style layer weights must be non-negative numbers of at most {FLOAT32_MAX:.3g} "
                                  f"({field('style_layer_weights')} {list(self.style_layer_weights)})")
        if self.style_blend_weights is not None:
            # Only their ratios matter (compute_targets divides by the largest before summing), so any finite
            # non-negative values with one positive are fine, 1e308 included.
            if any(not _finite(w) or w < 0 for w in self.style_blend_weights) or max(self.style_blend_weights) <= 0:
                raise ConfigError(f"style blend weights must be non-negative with a positive sum "
                                  f"({field('style_blend_weights')} {list(self.style_blend_weights)})")
        if isinstance(self.init, os.PathLike):
            set_("init", os.fspath(self.init))
        if not isinstance(self.init, str) or not self.init:
            raise ConfigError(
                f"{field('init')} must be 'noise', 'content', 'style' or an image path, got {self.init!r}"
            )
        if self.preserve_color is not None and self.preserve_color not in PRESERVE_COLORS:
            raise ConfigError(
                f"{field('preserve_color')} must be one of {', '.join(PRESERVE_COLORS)} or None; "
                f"got {self.preserve_color!r}"
            )
        set_("scales", _scales(self.scales, self.image_size))
        set_("scale_iterations", _scale_iterations(self.scale_iterations, self.scales))

    def _check_choice(self, name: str, choices: tuple[str, ...]) -> None:
        """Raise ``ConfigError`` unless the field ``name`` is one of ``choices``."""
        if getattr(self, name) not in choices:
            raise ConfigError(f"{field(name)} must be one of {', '.join(choices)}; got {getattr(self, name)!r}")

    @property
    def resolved_style_weight(self) -> float:
        """beta, with None replaced by the loss form's default."""
        return DEFAULT_STYLE_WEIGHT[self.loss_form] if self.style_weight is None else float(self.style_weight)

    @property
    def iterations_per_scale(self) -> tuple[int, ...]:
        """Iterations at each size the run optimizes at (one entry without ``scales``)."""
        if self.scale_iterations is not None:
            return self.scale_iterations
        return (self.iterations,) * len(self.scales or (self.image_size,))

    @property
    def total_iterations(self) -> int:
        """Iterations over all sizes."""
        return sum(self.iterations_per_scale)

    def replace(self, **changes: Any) -> "StyleConfig":
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """All fields as JSON-friendly values."""
        return {
            f.name: list(value) if isinstance(value, tuple) else value
            for f in dataclasses.fields(self)
            for value in [getattr(self, f.name)]
        }


def _scales(scales: Sequence[int] | None, image_size: int) -> tuple[int, ...] | None:
    """``scales`` as a tuple; ``ConfigError`` unless increasing positive integers ending at ``image_size``."""
    if scales is None:
        return None
    if isinstance(scales, (str, bytes)) or not isinstance(scales, Sequence):
        raise ConfigError(f"{field('scales')} must be a sequence of sizes in pixels, got {scales!r}")
    if not scales or any(not _integer(s) or s <= 0 for s in scales):
        raise ConfigError(f"{field('scales')} must be positive integers, got {list(scales)}")
    scales = tuple(int(s) for s in scales)
    if any(later <= earlier for earlier, later in zip(scales, scales[1:])):
        raise ConfigError(f"{field('scales')} must be increasing, got {list(scales)}")
    if scales[-1] != image_size:
        raise ConfigError(
            f"{field('scales')} must end at {field('image_size')} (the output size, {image_size}), got "
            f"{list(scales)}: set {field('image_size')} to {scales[-1]} or end {field('scales')} at {image_size}"
        )
    return scales


def _scale_iterations(counts: Sequence[int] | None, scales: tuple[int, ...] | None) -> tuple[int, ...] | None:
    """``counts`` as a tuple; ``ConfigError`` unless positive integers, one per scale of ``scales``."""
    if counts is None:
        return None
    if scales is None:
        raise ConfigError(f"{field('scale_iterations')} needs {field('scales')} (the sizes they apply to)")
    if isinstance(counts, (str, bytes)) or not isinstance(counts, Sequence):
        raise ConfigError(f"{field('scale_iterations')} must be a sequence of iteration counts, got {counts!r}")
    if any(not _integer(n) or n <= 0 for n in counts):
        raise ConfigError(f"{field('scale_iterations')} must be positive integers, got {list(counts)}")
    if len(counts) != len(scales):
        raise ConfigError(
            f"{field('scale_iterations')} has {len(counts)} values for {len(scales)} scales; give one per scale"
        )
    return tuple(int(n) for n in counts)


def _integer(value: Any) -> bool:
    """Whether ``value`` is an integer (Python's or NumPy's), not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def _real(value: Any) -> bool:
    """Whether ``value`` is a real number (Python's or NumPy's), not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def _finite(value: Any) -> bool:
    """Whether ``value`` is a real, finite number."""
    return _real(value) and math.isfinite(value)


def _in_float32(value: Any) -> bool:
    """Whether ``value`` is a real number that float32 holds as a finite number (|value| <= 3.4e38)."""
    return _finite(value) and abs(float(value)) <= FLOAT32_MAX


_FIELDS = frozenset(f.name for f in dataclasses.fields(StyleConfig))
