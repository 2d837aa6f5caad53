"""``stylize``: load and size the images, build targets and loss, run the optimizer, return a ``StyleResult``."""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Union

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image

from nst_jax import color, image_io
from nst_jax.config import ConfigError, StyleConfig, field
from nst_jax.losses import LossInputs, LossTerms, LossWeights, StyleTargets, compute_targets, make_loss_fn
from nst_jax.optimize import Optimization, Progress, SolverSpec, compile_solver, minimize
from nst_jax.vgg import LAYER_NAMES, min_input_size
from nst_jax.weights import VGGWeights, load_weights

ImageLike = Union[str, os.PathLike, Image.Image, np.ndarray]


@dataclasses.dataclass(frozen=True)
class StyleResult:
    """The stylized image (H, W, 3) float32 in [0, 1], per-iteration losses, the config and provenance."""

    image: np.ndarray
    losses: LossTerms
    config: StyleConfig
    final_losses: LossTerms
    status: str
    weights_checksum: str
    weights_pretrained: bool
    evaluations: np.ndarray
    dispatches: int
    elapsed: float
    scale_iterations: tuple[int, ...] = ()
    """Iterations completed at each scale of a coarse-to-fine run (``config.scales``); empty for one scale."""

    @property
    def iterations(self) -> int:
        """Iterations completed."""
        return int(self.losses.total.shape[0])

    def metadata(self) -> dict[str, str]:
        """Text fields saved with the image: the full config, weights checksum, status and final losses."""
        return {
            "Software": "nst_jax",
            "nst_jax:config": json.dumps(self.config.to_dict(), sort_keys=True),
            "nst_jax:weights_sha256": self.weights_checksum,
            "nst_jax:weights_pretrained": str(self.weights_pretrained),
            "nst_jax:status": self.status,
            "nst_jax:iterations": str(self.iterations),
            "nst_jax:final_losses": json.dumps({k: float(v) for k, v in self.final_losses._asdict().items()}),
        }

    def save(self, path: str | os.PathLike, *, bit_depth: int = 8) -> Path:
        """Write the image (PNG 8/16 bit or JPEG, by suffix) atomically, with ``metadata()`` embedded."""
        return image_io.save_image(path, self.image, bit_depth=bit_depth, metadata=self.metadata())

    def losses_dict(self) -> dict[str, list[float]]:
        """Per-iteration losses as lists, for JSON logs."""
        return {name: [float(v) for v in values] for name, values in self.losses._asdict().items()}


def _as_list(style: ImageLike | Sequence[ImageLike]) -> list[ImageLike]:
    """One style image or a list of them, as a list."""
    if isinstance(style, (list, tuple)):
        return list(style)
    return [style]


def content_shape(shape: Sequence[int], image_size: int) -> tuple[int, int]:
    """(height, width) of an image of ``shape`` (height, width, ...) with its longest side resized to ``image_size``."""
    height, width = shape[:2]
    scale = image_size / max(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


def style_shape(content: tuple[int, int], style_scale: float) -> tuple[int, int]:
    """(height, width) the style images are resized to: the content's times ``style_scale``."""
    return max(1, round(content[0] * style_scale)), max(1, round(content[1] * style_scale))


def stage_shapes(shape: Sequence[int], config: StyleConfig) -> list[tuple[int, tuple[int, int], tuple[int, int]]]:
    """(size, content shape, style shape) at each size a run of a content image of ``shape`` optimizes at."""
    stages = []
    for size in config.scales or (config.image_size,):
        content = content_shape(shape, size)
        stages.append((size, content, style_shape(content, config.style_scale)))
    return stages


def check_shapes(
    shape: Sequence[int], config: StyleConfig, *, styles: int = 1, parts: Sequence[str] = ("content", "style")
) -> None:
    """``ConfigError`` naming the fix if, at any size of the run, the content (of original ``shape``) or the
    ``styles`` style images would be smaller than the deepest layer needs; ``parts`` selects which to check."""
    for size, content, style in stage_shapes(shape, config):
        at = f"{field('image_size')} {size}" if config.scales is None else f"the {field('scales')} entry {size}"
        if "content" in parts:
            _check_content(shape, content, at, config)
        if "style" in parts:
            _check_style(content, style, at, config, styles)


def _deepest(layers: Sequence[str]) -> str:
    """The deepest of ``layers``: the one that needs the largest input."""
    return max(layers, key=lambda layer: LAYER_NAMES.index(layer))


def _check_content(shape: Sequence[int], content: tuple[int, int], at: str, config: StyleConfig) -> None:
    """``ConfigError`` if the content at (height, width) ``content`` is too small for the run's deepest layer."""
    layers = config.content_layers + config.style_layers
    smallest = min_input_size(layers)
    if min(content) >= smallest:
        return
    fix = math.ceil(smallest * max(shape[:2]) / min(shape[:2]))
    while min(content_shape(shape, fix - 1)) >= smallest:  # rounding can make one pixel less enough
        fix -= 1
    hint = (f"raise {field('image_size')} to at least {fix}" if config.scales is None
            else f"make every entry of {field('scales')} at least {fix}")
    raise ConfigError(
        f"the content image is {content[0]}x{content[1]} pixels at {at}; layers up to {_deepest(layers)} need at "
        f"least {smallest} pixels on each side: {hint}"
    )


def _check_style(content: tuple[int, int], style: tuple[int, int], at: str, config: StyleConfig, styles: int) -> None:
    """``ConfigError`` if the style images, resized to (height, width) ``style``, are too small for the style
    layers."""
    smallest = min_input_size(config.style_layers)
    if min(style) >= smallest:
        return
    fix = (smallest - 0.5) / min(content)  # round(side * scale) >= smallest
    fix = math.ceil(fix * 1000) / 1000
    what = "style image 1 is" if styles == 1 else f"the {styles} style images are"
    raise ConfigError(
        f"{what} {style[0]}x{style[1]} pixels at {at} (the content's size times {field('style_scale')} "
        f"{config.style_scale:g}); layers up to {_deepest(config.style_layers)} need at least {smallest} pixels on "
        f"each side: raise {field('style_scale')} to at least {fix:g}"
    )


def prepare_images(
    content: ImageLike, style: ImageLike | Sequence[ImageLike], config: StyleConfig, *, size: int | None = None
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Content resized to ``size`` (default ``image_size``; longest side); each style image to the content size
    times ``style_scale``. ``ConfigError`` (a ``ValueError``) if either is too small for the layers, before any
    resizing; ``ImageError`` (also one) if an image cannot be read."""
    styles = _as_list(style)
    if not styles:
        raise ValueError("at least one style image is needed")
    content_image = image_io.load_image(content)
    size = config.image_size if size is None else size
    one_size = config.replace(image_size=size, scales=None, scale_iterations=None)
    check_shapes(content_image.shape, one_size, styles=len(styles))
    height, width = content_shape(content_image.shape, size)
    content_image = image_io.resize_image(content_image, height, width)
    style_height, style_width = style_shape((height, width), config.style_scale)
    return content_image, [image_io.resize_image(image_io.load_image(s), style_height, style_width) for s in styles]


def color_inputs(
    content: np.ndarray, styles: Sequence[np.ndarray], preserve_color: str | None
) -> tuple[np.ndarray, list[np.ndarray]]:
    """The content and style images the optimization sees under ``preserve_color`` (Gatys et al. 2017, sec. 5).

    None: unchanged. ``histogram``: each style recoloured to the content's colour mean and covariance
    (``color.match_color``), then clipped to [0, 1]. ``luminance``: grey images of the content's luminance and of
    each style's luminance matched to the content's in mean and standard deviation, clipped to [0, 1].
    """
    if preserve_color is None:
        return content, list(styles)
    if preserve_color == "histogram":
        return content, [_unit(color.match_color(image, content)) for image in styles]
    if preserve_color == "luminance":
        grey_content = _unit(color.gray(color.luminance(content)))
        return grey_content, [_unit(color.gray(color.match_luminance(image, content))) for image in styles]
    raise ValueError(f"preserve_color must be one of luminance, histogram or None; got {preserve_color!r}")


def output_colors(image: np.ndarray, content: np.ndarray, preserve_color: str | None) -> np.ndarray:
    """An optimized image as returned: under ``luminance`` its luminance with ``content``'s chrominance; clipped."""
    if preserve_color == "luminance":
        image = color.luminance_transfer(image, content)
    return _unit(image)


def _unit(image: np.ndarray) -> np.ndarray:
    """``image`` clipped to [0, 1] as float32."""
    return np.clip(np.asarray(image, np.float32), 0.0, 1.0)


def initial_image(config: StyleConfig, content: np.ndarray, styles: Sequence[np.ndarray]) -> np.ndarray:
    """The starting image: seeded white noise, the content, the first style, or an image file, at content size."""
    height, width = content.shape[:2]
    if config.init == "noise":
        key = jax.random.PRNGKey(config.seed)
        return np.asarray(jax.random.uniform(key, (height, width, 3), jnp.float32))
    if config.init == "content":
        return content
    if config.init == "style":
        return image_io.resize_image(styles[0], height, width)
    return image_io.resize_image(image_io.load_image(config.init), height, width)


@functools.lru_cache(maxsize=32)
def _loss_fn(content_layers: tuple, style_layers: tuple, layer_weights: tuple | None, pooling: str, form: str):
    """The loss function for these static choices (cached, so compiled solvers are reused across runs)."""
    return make_loss_fn(
        content_layers=content_layers,
        style_layers=style_layers,
        style_layer_weights=layer_weights,
        pooling=pooling,
        form=form,
    )


def loss_fn_for(config: StyleConfig):
    """The (cached) loss function of ``config``."""
    return _loss_fn(
        config.content_layers, config.style_layers, config.style_layer_weights, config.pooling, config.loss_form
    )


def solver_spec_for(config: StyleConfig) -> SolverSpec:
    """The solver choices of ``config``."""
    return SolverSpec(config.optimizer, config.lbfgs_backend, config.history_size, config.learning_rate)


def loss_weights_for(config: StyleConfig) -> LossWeights:
    """alpha, beta and the TV weight of ``config`` as float32 scalars."""
    return LossWeights(
        content=jnp.float32(config.content_weight),
        style=jnp.float32(config.resolved_style_weight),
        tv=jnp.float32(config.tv_weight),
    )


_compute_targets = jax.jit(
    compute_targets, static_argnames=("blend_weights", "content_layers", "style_layers", "pooling", "form")
)


def targets_for(
    weights: VGGWeights, content: np.ndarray, styles: Sequence[np.ndarray], config: StyleConfig
) -> StyleTargets:
    """Content features and blended style Gram matrices for ``config``."""
    if config.style_blend_weights is not None and len(config.style_blend_weights) != len(styles):
        raise ValueError(f"{len(config.style_blend_weights)} style blend weights for {len(styles)} style images")
    return _compute_targets(
        weights.params,
        content,
        list(styles),
        blend_weights=config.style_blend_weights,
        content_layers=config.content_layers,
        style_layers=config.style_layers,
        pooling=config.pooling,
        form=config.loss_form,
    )


def resolve_weights(weights: VGGWeights | str | os.PathLike | None) -> VGGWeights:
    """``weights`` as loaded ``VGGWeights`` (None: the default weights file)."""
    return weights if isinstance(weights, VGGWeights) else load_weights(weights)


def stylize(
    content: ImageLike,
    style: ImageLike | Sequence[ImageLike],
    *,
    weights: VGGWeights | str | os.PathLike | None = None,
    config: StyleConfig = StyleConfig(),
    callback: Callable[[Progress], None] | None = None,
) -> StyleResult:
    """Render ``content`` in the style of ``style`` (one image or a list, blended) by Gatys et al.'s method.

    ``config.scales``: coarse to fine, ``config.iterations_per_scale`` at each size, each result upsampled
    (Lanczos) to start the next; every size is checked before any optimization. The result's ``losses`` and
    ``evaluations`` concatenate the scales' (``scale_iterations`` says how many records came from each); its
    ``final_losses`` are those at the last scale run. A run that stops early (non-finite, interrupted) skips the remaining scales
    and its image is upsampled to the output size. ``callback`` sees iterations counted over all scales.

    ``config.preserve_color`` (see ``color_inputs``): with ``luminance`` the optimized image is grey (its losses
    are the result's), and the returned image is its luminance with the content's chrominance (``color.
    luminance_transfer``), clipped to [0, 1].
    """
    weights = resolve_weights(weights)
    content_image = image_io.load_image(content)
    style_images = [image_io.load_image(image) for image in _as_list(style)]
    sizes = config.scales or (config.image_size,)
    stages = [prepare_images(content_image, style_images, config, size=size) for size in sizes]
    total = config.total_iterations
    runs: list[Optimization] = []
    for (stage_content, stage_styles), iterations in zip(stages, config.iterations_per_scale):
        seen_content, seen_styles = color_inputs(stage_content, stage_styles, config.preserve_color)
        targets = targets_for(weights, seen_content, seen_styles, config)
        inputs = LossInputs(weights.params, targets, loss_weights_for(config))
        if runs:
            x0 = image_io.resize_image(np.asarray(runs[-1].image, np.float32), *stage_content.shape[:2])
        else:
            x0 = initial_image(config, seen_content, seen_styles)
        done = sum(run.iterations for run in runs)
        elapsed = sum(run.elapsed for run in runs)
        runs.append(
            minimize(
                loss_fn_for(config), x0, inputs, spec=solver_spec_for(config), iterations=iterations,
                chunk_size=config.chunk_size, callback=_counting_all_scales(callback, done, total, elapsed),
            )
        )
        if runs[-1].status != "completed":
            break
    return _result(runs, inputs, config, weights, stages[-1][0])


def _counting_all_scales(
    callback: Callable[[Progress], None] | None, done: int, total: int, elapsed: float
) -> Callable[[Progress], None] | None:
    """``callback`` receiving progress counted over every scale: ``done`` iterations and ``elapsed`` s before."""
    if callback is None:
        return None
    return lambda progress: callback(
        dataclasses.replace(
            progress, iteration=done + progress.iteration, iterations=total, elapsed=elapsed + progress.elapsed
        )
    )


def _result(
    runs: Sequence[Optimization], inputs: LossInputs, config: StyleConfig, weights: VGGWeights, content: np.ndarray
) -> StyleResult:
    """Package the optimizations of each scale as a ``StyleResult`` at the size of ``content`` (the output's).

    The last run's image is upsampled if it stopped before the last scale, recoloured under ``luminance``, and
    clipped to [0, 1]; the final losses are evaluated once, at the last run's iterate and ``inputs``.
    """
    run = runs[-1]
    final = compile_solver(loss_fn_for(config), solver_spec_for(config)).terms(run.image, inputs)
    image = np.clip(np.asarray(run.image, np.float32), 0.0, 1.0)
    if image.shape != content.shape:
        image = image_io.resize_image(image, *content.shape[:2])
    return StyleResult(
        image=output_colors(image, content, config.preserve_color),
        losses=LossTerms(*(np.concatenate(records) for records in zip(*(r.history for r in runs)))),
        config=config,
        final_losses=LossTerms(*(float(t) for t in final)),
        status=run.status,
        weights_checksum=weights.checksum,
        weights_pretrained=weights.pretrained,
        evaluations=np.concatenate([r.evaluations for r in runs]),
        dispatches=sum(r.dispatches for r in runs),
        elapsed=sum(r.elapsed for r in runs),
        scale_iterations=tuple(r.iterations for r in runs) if config.scales is not None else (),
    )
