"""``StyleConfig``: every option of a style-transfer run, with its default, its help and its validation, once.

Each field's help and metavar live in its metadata (``option``); the command lines generate their options from them.
Help texts and error messages name other fields as ``{field}``; ``render_fields`` writes them as field names for
Python or as options (``--image-size``) for a command line.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import os
import re
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from nst_jax.lbfgs import LINE_SEARCHES
from nst_jax.losses import DEFAULT_FORM, LOSS_FORMS
from nst_jax.optimize import CHUNK_SIZE, HISTORY_SIZE, LBFGS_BACKENDS, LEARNING_RATE, OPTIMIZERS, STEP_SIZE
from nst_jax.vgg import DEFAULT_POOLING, DEFAULT_PRECISION, POOLINGS, PRECISIONS, validate_layers

SHARDS = ("auto", "batch", "spatial", "none")

INITS: tuple[str, ...] = ("content", "noise", "flat", "style")
PRESERVE_COLORS: tuple[str, ...] = ("luminance", "histogram")

# The paper's alpha/beta = 1e-3 (paper form, as its authors computed it: nst_jax.losses) in the normalized form: a
# paper style term E_l is N_l^2 normalized ones (its Gram matrix is divided by M_l, not N_l M_l), the content terms
# are the same. With the default style layers (N_l = 64, 128, 256, 512, 512, weighted 1/5 each) alpha = 1 goes with
# beta = 1e3 * mean(N_l^2) = 1.22e8: exact for the layers' weighted sum, not layer by layer (the paper form weighs the
# deep layers more). The 44 this replaced carried 1e-3 over through the paper's printed equations (content 1/2 sum,
# style 1/4), which its authors' code does not use; with it the mean-normalized network gave the photo (issue 27).
MEAN_NORMALIZED_STYLE_WEIGHT = 1e3 * sum(channels**2 for channels in (64, 128, 256, 512, 512)) / 5

# Default (content, style) weights per network convention (``WeightsInfo.convention``) and loss form. Activations
# differ in scale between conventions (Caffe's inputs are ~60x torchvision's, its features accordingly), and the
# style term grows as the fourth power of that scale, the content term as the second:
# - torchvision, normalized form: alpha/beta = 1e-6, PyTorch's neural-style tutorial (see nst_jax.losses);
# - caffe, normalized form: content 5, style 100 on each of the five style layers (ours sums layers with weights
#   summing to one: beta = 500), jcjohnson/neural-style's and neural-style-pt's defaults with the same loss terms;
# - mean-normalized (the paper's network, ``convert_weights --normalize-on``), paper form: alpha/beta = 1e-3, the
#   paper's figures and its authors' code; its normalized-form pair is that ratio carried over (above).
# - the paper form with torchvision's or Caffe's raw weights keeps the paper's ratio 1e-3: measured, each stylizes
#   there too (judge 0.15 and 0.19 at 128 px from the content; benchmarks/RESULTS.md, "The look").
DEFAULT_LOSS_WEIGHTS: dict[str, dict[str, tuple[float, float]]] = {
    "torchvision": {"normalized": (1.0, 1e6), "paper": (1.0, 1e3)},
    "caffe": {"normalized": (5.0, 500.0), "paper": (1.0, 1e3)},
    "mean-normalized": {"normalized": (1.0, MEAN_NORMALIZED_STYLE_WEIGHT), "paper": (1.0, 1e3)},
}
CONVENTIONS: tuple[str, ...] = tuple(DEFAULT_LOSS_WEIGHTS)
DEFAULT_CONVENTION = CONVENTIONS[0]
DEFAULT_STYLE_WEIGHT: dict[str, float] = {
    form: pair[1] for form, pair in DEFAULT_LOSS_WEIGHTS[DEFAULT_CONVENTION].items()
}
"""Default style weight per loss form with torchvision's weights."""


FLOAT32_MAX = float(np.finfo(np.float32).max)
"""The largest number the optimization can hold (3.4e38): loss weights past it become infinite on the device."""
SEED_LIMIT = 2**32
"""Seeds are 32-bit (``jax.random.PRNGKey`` wraps larger ones, so 1 and 2**32 + 1 would give the same noise)."""
IMAGE_SIZE_LIMIT = 2**17
"""The longest side a run may ask for, 131072 px: 200 GiB for the image alone in float32, and more than JPEG (65535)
or any planning (``memory.LARGEST_SIDE``) goes to."""
CHUNK_LIMIT = 100_000
"""The longest chunk: its per-iteration records are allocated on the device for the whole chunk, and its step count
is an int32 (a longer chunk only delays progress and stops)."""


def render_fields(text: str, name: Callable[[str], str]) -> str:
    """``text`` with each ``{field}`` of ``StyleConfig`` written as ``name(field)`` (other braces untouched)."""
    return re.sub(r"\{(\w+)\}", lambda m: name(m.group(1)) if m.group(1) in _FIELDS else m.group(0), text)


class ConfigError(ValueError):
    """A bad ``StyleConfig`` value. The message names fields as ``{field}``: ``str()`` shows the field name, and
    ``render(flag)`` lets a command line show its option (``--image-size``) instead."""

    def __init__(self, template: str) -> None:
        self.template = template
        super().__init__(self.render(lambda field: field))

    def render(self, name: Callable[[str], str]) -> str:
        """The message with each ``{field}`` written as ``name(field)``."""
        return render_fields(self.template, name)


def field(name: str) -> str:
    """``name`` marked for a ``ConfigError`` message or a help text: ``{name}``."""
    return "{" + name + "}"


def option(
    default: Any,
    help: str,
    *,
    metavar: str | None = None,
    choices: tuple[str, ...] | None = None,
    default_text: str | None = None,
    command_line: bool = True,
) -> Any:
    """A ``StyleConfig`` field: its default and, in its metadata, the help (naming fields as ``{field}``), the
    metavar and choices of its option, how to show a default that is not a plain value, and whether command lines
    offer it."""
    metadata = {"help": help, "metavar": metavar, "choices": choices, "default_text": default_text,
                "command_line": command_line}
    return dataclasses.field(default=default, metadata=metadata)


def _floats(name: str, values: Any) -> tuple[float, ...] | None:
    """A sequence of real numbers as a tuple of floats (None stays None); ``ConfigError`` for anything else."""
    if values is None:
        return None
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        raise ConfigError(f"{field(name)} must be a sequence of numbers such as (1.0, 0.5), got {values!r}")
    if any(not _real(value) for value in values):
        raise ConfigError(f"{field(name)} must hold numbers, got {list(values)!r}")
    return tuple(float(value) for value in values)


def _defaults_text(index: int) -> str:
    """The default content (0) or style (1) weight per convention and form, for the help."""
    return "; ".join(f"{convention} " + ", ".join(f"{pair[index]:g} {form}" for form, pair in forms.items())
                     for convention, forms in DEFAULT_LOSS_WEIGHTS.items())


@dataclasses.dataclass(frozen=True)
class StyleConfig:
    """Every option of one style transfer; defaults follow Gatys et al. as its authors ran it (each field's help is
    in its metadata: ``option_help("image_size")``)."""

    image_size: int = option(512, "longest side of the output in pixels (the content image is resized to it)",
                             metavar="PX")
    iterations: int = option(500, "optimizer iterations", metavar="N")
    optimizer: str = option(OPTIMIZERS[0], "lbfgs (the paper's), lbfgsb (pixels kept in [0, 1]) or adam",
                            choices=OPTIMIZERS)
    lbfgs_backend: str = option(
        LBFGS_BACKENDS[0], "implementation of lbfgs: nst_jax (its own, written to batch under vmap, one evaluation per "
        "trial step, every {line_search}), optax (optax.lbfgs) or jaxopt (unmaintained upstream); benchmarks/NOTES.md "
        "compares them", choices=LBFGS_BACKENDS,
    )
    history_size: int = option(HISTORY_SIZE, "L-BFGS memory: past (step, gradient change) pairs kept", metavar="N")
    line_search: str = option(
        LINE_SEARCHES[0], "L-BFGS line search: zoom (strong Wolfe), backtracking (Armijo) or none (the fixed step "
        "{step_size}, as neural-style and neural-style-pt run torch's L-BFGS); other than zoom with the nst_jax "
        "{lbfgs_backend} only", choices=LINE_SEARCHES,
    )
    step_size: float = option(
        STEP_SIZE, "L-BFGS step with {line_search} none, and the first trial step of the others, in units of the "
        "quasi-Newton step (a step without curvature yet has L1 length T: torch's min(1, 1/|g|_1) where |g|_1 >= 1)",
        metavar="T",
    )
    learning_rate: float = option(LEARNING_RATE, "Adam step size, in pixel units ([0, 1])", metavar="LR")
    content_weight: float | None = option(
        None, "content weight (alpha); unset, the default for the weights' convention and the loss form",
        metavar="W", default_text=f"by the weights: {_defaults_text(0)}",
    )
    style_weight: float | None = option(
        None, "style weight (beta); unset, the default for the weights' convention and the loss form (alpha/beta = "
        "1e-3 as in the paper's figures with the paper form)", metavar="W",
        default_text=f"by the weights: {_defaults_text(1)}",
    )
    tv_weight: float = option(0.0, "total-variation weight (the paper has none)", metavar="W")
    content_layers: tuple[str, ...] = option(
        ("relu4_2",), "VGG19 layers of the content representation (the paper's conv4_2 is post-ReLU: Caffe applies "
        "its ReLUs in place)", metavar="LAYERS",
    )
    style_layers: tuple[str, ...] = option(("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"),
                                           "VGG19 layers of the style representation", metavar="LAYERS")
    style_layer_weights: tuple[float, ...] | None = option(
        None, "weight w_l of each style layer", metavar="WEIGHTS", default_text="equal, summing to one",
    )
    style_blend_weights: tuple[float, ...] | None = option(
        None, "relative weight of each style image (their Gram matrices are blended)", metavar="WEIGHTS",
        default_text="equal",
    )
    style_scale: float = option(1.0, "the style images' longest side is the output's times this (each keeps its own "
                                "aspect ratio)", metavar="S")
    loss_form: str = option(DEFAULT_FORM, "normalized (weights mean the same at every image size) or paper (its "
                            "equations exactly)", choices=LOSS_FORMS)
    pooling: str = option(DEFAULT_POOLING, "VGG pooling: avg (the paper's) or max", choices=POOLINGS)
    init: str = option("content", "starting image: content (measured the most stylized, and the most of the photo "
                       "kept, with every network: benchmarks/RESULTS.md), noise (seeded white noise on [0, 1], the "
                       "paper's; Caffe-convention networks leave it as speckle), flat (jcjohnson/neural-style's: the "
                       "ImageNet mean colour), style, or an image file", metavar="INIT")
    seed: int = option(0, f"seed of the noise and flat inits, 0 to {SEED_LIMIT - 1}", metavar="N")
    chunk_size: int = option(CHUNK_SIZE, "iterations per compiled call (progress is reported between calls)",
                             metavar="N")
    progress_seconds: float | None = option(
        None, "shorten compiled calls so that progress is reported about this often (never past a multiple of "
        "{chunk_size}); None: {chunk_size} iterations per call", metavar="S", command_line=False,
    )
    preserve_color: str | None = option(
        None, "keep the content's colours (Gatys et al. 2017): luminance (style transfer on luminance, then the "
        "content's chrominance) or histogram (style recoloured to the content's colour mean and covariance first)",
        choices=PRESERVE_COLORS, default_text="off, the style's colours",
    )
    scales: tuple[int, ...] | None = option(
        None, "coarse-to-fine sizes, increasing, ending at {image_size}: {iterations} at each, each result upsampled "
        "to start the next; one image only", metavar="PX,PX...", default_text="{image_size} only",
    )
    scale_iterations: tuple[int, ...] | None = option(
        None, "iterations at each of {scales} instead of {iterations} at each (e.g. 300,100,50: most of the work "
        "where it is cheap); one image only", metavar="N,N...", default_text="{iterations} at each",
    )

    tile_size: int | None = option(
        None, "evaluate the loss and its gradient in tiles of PX pixels, each read with a halo of VGG's receptive "
        "field (96 px for the default layers): exactly the whole image's numbers in the memory of one tile, for "
        "images larger than a device holds; each evaluation costs about 4/3 ((PX + 2 * 96) / PX)^2 as much "
        "(about 4x at 256, 2.5x at 512)", metavar="PX", default_text="whole images",
    )
    precision: str = option(
        DEFAULT_PRECISION, "arithmetic of VGG's convolutions: default (JAX's for the device: TF32 on recent NVIDIA "
        "GPUs, float32 on CPUs), float32, tf32 (float32 where the device has no TF32), bfloat16; Gram matrices, "
        "losses and the optimizer are float32 in every case", choices=PRECISIONS,
    )
    shard: str = option(
        "auto", "spread the work over every device: batch (the members of a sweep or batch), spatial (one image's "
        "rows; XLA exchanges the halos), none (one device), auto (batches by member; a single image by rows, and in "
        "tiles if --tile-size is unset, only when it does not fit one device)", choices=SHARDS,
    )

    def __post_init__(self) -> None:
        set_ = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731 (frozen dataclass)
        for name in ("content_layers", "style_layers"):
            set_(name, _layers(name, getattr(self, name)))
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
        if self.image_size > IMAGE_SIZE_LIMIT:
            raise ConfigError(f"{field('image_size')} must be at most {IMAGE_SIZE_LIMIT} pixels, got {self.image_size}")
        if self.chunk_size > CHUNK_LIMIT:
            raise ConfigError(f"{field('chunk_size')} must be at most {CHUNK_LIMIT}, got {self.chunk_size} (a chunk's "
                              "per-iteration records are allocated for its whole length)")
        if self.tile_size is not None:
            if not _integer(self.tile_size) or self.tile_size < 16:
                raise ConfigError(f"{field('tile_size')} must be an integer of at least 16 pixels or None, "
                                  f"got {self.tile_size!r}")
            set_("tile_size", int(self.tile_size))
        if not _integer(self.seed) or not 0 <= self.seed < SEED_LIMIT:
            raise ConfigError(f"{field('seed')} must be an integer from 0 to {SEED_LIMIT - 1}, got {self.seed!r}")
        set_("seed", int(self.seed))
        if self.progress_seconds is not None:
            if not _finite(self.progress_seconds) or self.progress_seconds <= 0:
                raise ConfigError(f"{field('progress_seconds')} must be a positive number or None, "
                                  f"got {self.progress_seconds!r}")
            set_("progress_seconds", float(self.progress_seconds))
        self._check_choice("line_search", LINE_SEARCHES)
        self._check_choice("shard", SHARDS)
        self._check_choice("precision", PRECISIONS)
        if self.line_search != "zoom" and self.lbfgs_backend != "nst_jax" and self.optimizer == "lbfgs":
            raise ConfigError(f"{field('line_search')} {self.line_search} needs {field('lbfgs_backend')} nst_jax "
                              f"(optax's and jaxopt's L-BFGS search by zoom only)")
        for name in ("learning_rate", "style_scale", "step_size"):
            value = getattr(self, name)
            if not _in_float32(value) or value <= 0:
                raise ConfigError(f"{field(name)} must be a positive number of at most {FLOAT32_MAX:.3g}, "
                                  f"got {value!r}")
            set_(name, float(value))
        for name in ("content_weight", "style_weight", "tv_weight"):
            value = getattr(self, name)
            if value is None and name != "tv_weight":
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
                f"{field('init')} must be {', '.join(repr(init) for init in INITS)} or an image path, got {self.init!r}"
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
        """beta, with None replaced by the loss form's default for torchvision's weights (``for_convention`` first
        for others)."""
        return DEFAULT_STYLE_WEIGHT[self.loss_form] if self.style_weight is None else float(self.style_weight)

    @property
    def resolved_content_weight(self) -> float:
        """alpha, with None replaced by the default for torchvision's weights (``for_convention`` first for others)."""
        if self.content_weight is None:
            return DEFAULT_LOSS_WEIGHTS[DEFAULT_CONVENTION][self.loss_form][0]
        return float(self.content_weight)

    def for_convention(self, convention: str) -> "StyleConfig":
        """A copy with unset loss weights set to the defaults for weights of ``convention`` (``CONVENTIONS``)."""
        if convention not in DEFAULT_LOSS_WEIGHTS:
            raise ValueError(f"unknown convention {convention!r}; choose {', '.join(CONVENTIONS)}")
        content, style = DEFAULT_LOSS_WEIGHTS[convention][self.loss_form]
        return self.replace(content_weight=content if self.content_weight is None else self.content_weight,
                            style_weight=style if self.style_weight is None else self.style_weight)

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


def _layers(name: str, layers: Any) -> tuple[str, ...]:
    """``layers`` as a tuple of VGG19 layer names; ``ConfigError`` naming the field for none or an unknown one."""
    if isinstance(layers, str):
        layers = (layers,)
    if isinstance(layers, Sequence) and not layers:
        default = ",".join(StyleConfig.__dataclass_fields__[name].default)
        raise ConfigError(f"{field(name)} needs at least one VGG19 layer, such as {default} (names as in "
                          "torchvision's vgg19().features: conv1_1 ... conv5_4 before ReLU, relu1_1 ... relu5_4 after, "
                          "pool1 ... pool5)")
    try:
        return validate_layers(layers)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"{field(name)}: {error}") from None


# Which optimizers use each optimizer field (``unused_by_optimizer``).
_USED_BY: dict[str, tuple[str, ...]] = {
    "lbfgs_backend": ("lbfgs",),
    "history_size": ("lbfgs", "lbfgsb"),
    "line_search": ("lbfgs",),
    "step_size": ("lbfgs",),
    "learning_rate": ("adam",),
}

# Why an optimizer does without the other optimizers' fields: what it uses instead.
_WHY_UNUSED: dict[str, str] = {
    "adam": "Adam's step is {learning_rate}; it has no line search and no L-BFGS memory",
    "lbfgsb": "lbfgsb is jaxopt's L-BFGS-B, with its own line search and steps",
    "lbfgs": "L-BFGS's steps are scaled by {step_size}",
}


def unused_by_optimizer(config: StyleConfig) -> ConfigError | None:
    """The first field set away from its default that ``config``'s optimizer does not use (``step_size`` also with
    optax's and jaxopt's L-BFGS, which pick their own steps), as an error to show; None if there is none. The
    Python API allows them (a config can be shared by several optimizers); the command lines refuse them, as they
    refuse a line search that ``lbfgs_backend`` lacks, rather than ignore an option that was typed."""
    defaults = {f.name: f.default for f in dataclasses.fields(StyleConfig)}
    for name, users in _USED_BY.items():
        if getattr(config, name) == defaults[name]:
            continue
        if config.optimizer not in users:
            return ConfigError(f"{field(name)} does not apply to {field('optimizer')} {config.optimizer} "
                               f"({_WHY_UNUSED[config.optimizer]}); leave {field(name)} out")
        if name == "step_size" and config.lbfgs_backend != "nst_jax":
            return ConfigError(f"{field('step_size')} needs {field('lbfgs_backend')} nst_jax (optax's and jaxopt's "
                               "L-BFGS choose their own steps)")
    return None


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


def option_help(name: str, render: Callable[[str], str] = lambda field_name: field_name) -> str:
    """The help of ``StyleConfig`` field ``name``, other fields written by ``render`` (default: as field names)."""
    return render_fields(StyleConfig.__dataclass_fields__[name].metadata["help"], render)
