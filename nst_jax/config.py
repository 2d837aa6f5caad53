"""``StyleConfig``: every option of a style-transfer run, its defaults and their validation, in one place."""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Sequence
from typing import Any

from nst_jax.losses import LOSS_FORMS
from nst_jax.vgg import POOLINGS, validate_layers

OPTIMIZERS: tuple[str, ...] = ("lbfgs", "lbfgsb", "adam")
LBFGS_BACKENDS: tuple[str, ...] = ("jaxopt", "optax")
INITS: tuple[str, ...] = ("noise", "content", "style")
PRESERVE_COLORS: tuple[str, ...] = ("luminance", "histogram")

# Default style weight per loss form: see nst_jax.losses for why these balance content and style.
DEFAULT_STYLE_WEIGHT: dict[str, float] = {"normalized": 1e6, "paper": 1e3}


def _floats(values: Sequence[float] | None) -> tuple[float, ...] | None:
    """A sequence as a tuple of floats (None stays None)."""
    return None if values is None else tuple(float(value) for value in values)


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
        set_("style_layer_weights", _floats(self.style_layer_weights))
        set_("style_blend_weights", _floats(self.style_blend_weights))
        self._check_choice("optimizer", OPTIMIZERS)
        self._check_choice("lbfgs_backend", LBFGS_BACKENDS)
        self._check_choice("loss_form", LOSS_FORMS)
        self._check_choice("pooling", POOLINGS)
        for name in ("image_size", "iterations", "history_size", "chunk_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        for name in ("learning_rate", "style_scale"):
            if not _finite(getattr(self, name)) or getattr(self, name) <= 0:
                raise ValueError(f"{name} must be a positive number, got {getattr(self, name)!r}")
        for name in ("content_weight", "style_weight", "tv_weight"):
            value = getattr(self, name)
            if value is not None and (not _finite(value) or value < 0):
                raise ValueError(f"{name} must be a non-negative number, got {value!r}")
        if self.style_layer_weights is not None:
            if len(self.style_layer_weights) != len(self.style_layers):
                raise ValueError(
                    f"{len(self.style_layer_weights)} style layer weights for {len(self.style_layers)} style layers"
                )
            if any(not _finite(w) or w < 0 for w in self.style_layer_weights):
                raise ValueError("style layer weights must be non-negative numbers")
        if self.style_blend_weights is not None:
            if any(not _finite(w) or w < 0 for w in self.style_blend_weights) or sum(self.style_blend_weights) <= 0:
                raise ValueError("style blend weights must be non-negative with a positive sum")
        if not isinstance(self.init, str) or not self.init:
            raise ValueError("init must be 'noise', 'content', 'style' or an image path")
        if self.preserve_color is not None and self.preserve_color not in PRESERVE_COLORS:
            raise ValueError(
                f"preserve_color must be one of {', '.join(PRESERVE_COLORS)} or None; got {self.preserve_color!r}"
            )
        set_("scales", _scales(self.scales, self.image_size))
        set_("scale_iterations", _scale_iterations(self.scale_iterations, self.scales))

    def _check_choice(self, name: str, choices: tuple[str, ...]) -> None:
        """Raise ``ValueError`` unless the field ``name`` is one of ``choices``."""
        if getattr(self, name) not in choices:
            raise ValueError(f"{name} must be one of {', '.join(choices)}; got {getattr(self, name)!r}")

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
            field.name: list(value) if isinstance(value, tuple) else value
            for field in dataclasses.fields(self)
            for value in [getattr(self, field.name)]
        }


def _scales(scales: Sequence[int] | None, image_size: int) -> tuple[int, ...] | None:
    """``scales`` as a tuple, raising ``ValueError`` unless increasing positive integers ending at ``image_size``."""
    if scales is None:
        return None
    if isinstance(scales, (str, bytes)) or not isinstance(scales, Sequence):
        raise ValueError(f"scales must be a sequence of sizes in pixels, got {scales!r}")
    if not scales or any(isinstance(s, bool) or not isinstance(s, numbers.Integral) or s <= 0 for s in scales):
        raise ValueError(f"scales must be positive integers, got {list(scales)}")
    scales = tuple(int(s) for s in scales)
    if any(later <= earlier for earlier, later in zip(scales, scales[1:])):
        raise ValueError(f"scales must be increasing, got {list(scales)}")
    if scales[-1] != image_size:
        raise ValueError(
            f"scales must end at image_size (the output size, {image_size}), got {list(scales)}: "
            f"set image_size to {scales[-1]} or end the scales at {image_size}"
        )
    return scales


def _scale_iterations(counts: Sequence[int] | None, scales: tuple[int, ...] | None) -> tuple[int, ...] | None:
    """``counts`` as a tuple, raising ``ValueError`` unless positive integers, one per scale of ``scales``."""
    if counts is None:
        return None
    if scales is None:
        raise ValueError("scale_iterations needs scales (the sizes they apply to)")
    if isinstance(counts, (str, bytes)) or not isinstance(counts, Sequence):
        raise ValueError(f"scale_iterations must be a sequence of iteration counts, got {counts!r}")
    if any(isinstance(n, bool) or not isinstance(n, numbers.Integral) or n <= 0 for n in counts):
        raise ValueError(f"scale_iterations must be positive integers, got {list(counts)}")
    if len(counts) != len(scales):
        raise ValueError(f"scale_iterations has {len(counts)} values for {len(scales)} scales; give one per scale")
    return tuple(int(n) for n in counts)


def _finite(value: Any) -> bool:
    """Whether ``value`` is a real, finite number."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
