"""``stylize``: load and size the images, build targets and loss, run the optimizer, return a ``StyleResult``."""

from __future__ import annotations

import dataclasses
import functools
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Union

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image

from nst_jax import image_io
from nst_jax.config import StyleConfig
from nst_jax.losses import LossInputs, LossTerms, LossWeights, StyleTargets, compute_targets, make_loss_fn
from nst_jax.optimize import Optimization, Progress, SolverSpec, compile_solver, minimize
from nst_jax.vgg import min_input_size
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


def content_shape(content: np.ndarray, image_size: int) -> tuple[int, int]:
    """(height, width) of the content image with its longest side resized to ``image_size``."""
    height, width = content.shape[:2]
    scale = image_size / max(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


def prepare_images(
    content: ImageLike, style: ImageLike | Sequence[ImageLike], config: StyleConfig
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Content resized to ``image_size`` (longest side); each style image to the content size times ``style_scale``."""
    content_image = image_io.load_image(content)
    height, width = content_shape(content_image, config.image_size)
    content_image = image_io.resize_image(content_image, height, width)
    style_height = max(1, round(height * config.style_scale))
    style_width = max(1, round(width * config.style_scale))
    styles = [image_io.resize_image(image_io.load_image(s), style_height, style_width) for s in _as_list(style)]
    check_size(content_image, config, "content image")
    for index, image in enumerate(styles):
        check_size(image, config, f"style image {index + 1}", style_only=True)
    return content_image, styles


def check_size(image: np.ndarray, config: StyleConfig, what: str, *, style_only: bool = False) -> None:
    """Raise ``ValueError`` if ``image`` is smaller than the deepest layer needs."""
    layers = config.style_layers if style_only else config.content_layers + config.style_layers
    smallest = min_input_size(layers)
    if min(image.shape[:2]) < smallest:
        raise ValueError(
            f"{what} is {image.shape[0]}x{image.shape[1]} pixels after resizing; layers up to "
            f"{max(layers, key=lambda l: min_input_size([l]))} need at least {smallest} pixels on each side "
            f"(raise --image-size or --style-scale)"
        )


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
    """Render ``content`` in the style of ``style`` (one image or a list, blended) by Gatys et al.'s method."""
    weights = resolve_weights(weights)
    content_image, styles = prepare_images(content, style, config)
    targets = targets_for(weights, content_image, styles, config)
    inputs = LossInputs(weights.params, targets, loss_weights_for(config))
    x0 = initial_image(config, content_image, styles)
    loss_fn = loss_fn_for(config)
    run = minimize(
        loss_fn, x0, inputs, spec=solver_spec_for(config), iterations=config.iterations,
        chunk_size=config.chunk_size, callback=callback,
    )
    return _result(run, inputs, config, weights)


def _result(run: Optimization, inputs: LossInputs, config: StyleConfig, weights: VGGWeights) -> StyleResult:
    """Package an optimization as a ``StyleResult`` (image clipped to [0, 1], final losses evaluated once)."""
    final = compile_solver(loss_fn_for(config), solver_spec_for(config)).terms(run.image, inputs)
    return StyleResult(
        image=np.clip(np.asarray(run.image, np.float32), 0.0, 1.0),
        losses=run.history,
        config=config,
        final_losses=LossTerms(*(float(t) for t in final)),
        status=run.status,
        weights_checksum=weights.checksum,
        weights_pretrained=weights.pretrained,
        evaluations=run.evaluations,
        dispatches=run.dispatches,
        elapsed=run.elapsed,
    )
