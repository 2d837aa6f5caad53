"""Content and style reconstructions from white noise (Gatys et al. 2016, fig. 1): what each layer keeps.

A content reconstruction matches one layer's features of an image and nothing else (style weight 0); a style
reconstruction (texture synthesis) matches the Gram matrices of a set of layers and nothing else (content
weight 0). Each is a ``stylize`` run whose config differs from the given one only in layers and weights.

The runs are sequential: each layer choice is a different static loss, hence a different compiled program, so
they cannot share one vmapped batch. Compilations are cached per layer choice and image size, so reconstructing
several images of one size compiles each layer's solver once. ``reconstruction_sheet`` lays results out as a
labelled grid like the paper's figure (rows of content, then style, reconstructions).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Sequence

import numpy as np

from nst_jax.config import StyleConfig
from nst_jax.contact_sheet import contact_sheet
from nst_jax.optimize import Progress
from nst_jax.transfer import ImageLike, StyleResult, resolve_weights, stylize
from nst_jax.weights import VGGWeights

# The paper's fig. 1: content from conv1_2 ... conv5_2, style from growing sets conv1_1 ... conv5_1
# (Caffe's ReLUs are in place, so its "conv" outputs are post-ReLU: relu here).
CONTENT_LAYERS: tuple[str, ...] = ("relu1_2", "relu2_2", "relu3_2", "relu4_2", "relu5_2")
STYLE_LAYER_SETS: tuple[tuple[str, ...], ...] = tuple(
    tuple(f"relu{block}_1" for block in range(1, last + 1)) for last in range(1, 6)
)


@dataclasses.dataclass(frozen=True)
class Reconstruction:
    """One reconstruction: the layers it matched, whether content or style, and its ``StyleResult``."""

    kind: str
    layers: tuple[str, ...]
    result: StyleResult

    @property
    def label(self) -> str:
        """A short caption: the layer, or the first and last of a set (``relu1_1..relu3_1``)."""
        return self.layers[0] if len(self.layers) == 1 else f"{self.layers[0]}..{self.layers[-1]}"

    @property
    def image(self) -> np.ndarray:
        """The reconstructed image (H, W, 3) in [0, 1]."""
        return self.result.image


def reconstruction_sheet(reconstructions: Sequence[Reconstruction], *, columns: int | None = None) -> np.ndarray:
    """The reconstructions in a labelled grid (``kind: label``), e.g. content then style, ``columns`` per row."""
    return contact_sheet(
        [r.image for r in reconstructions], [f"{r.kind}: {r.label}" for r in reconstructions], columns=columns
    )


def content_config(config: StyleConfig, layer: str) -> StyleConfig:
    """``config`` reduced to matching ``layer``'s features from noise (style weight 0, original colours)."""
    # The loss needs a style layer; the same layer with weight 0 adds one Gram matrix and no deeper layers.
    return config.replace(
        content_layers=(layer,), style_layers=(layer,), style_layer_weights=None, style_blend_weights=None,
        style_weight=0.0, init="noise", preserve_color=None,
    )


def style_config(config: StyleConfig, layers: Sequence[str]) -> StyleConfig:
    """``config`` reduced to matching the Gram matrices of ``layers`` from noise (content weight 0)."""
    # The loss needs a content layer; the first style layer with weight 0 costs nothing deeper.
    layers = tuple(layers)
    return config.replace(
        content_layers=layers[:1], style_layers=layers, style_layer_weights=None, style_blend_weights=None,
        content_weight=0.0, style_weight=config.resolved_style_weight, init="noise", preserve_color=None,
    )


def _reconstruct(
    kind: str,
    image: ImageLike,
    configs: Sequence[tuple[tuple[str, ...], StyleConfig]],
    weights: VGGWeights,
    callback: Callable[[Progress], None] | None,
    on_done: Callable[[Reconstruction], None] | None,
) -> list[Reconstruction]:
    """One ``stylize`` of ``image`` by itself per (layers, config); stops after a run that did not complete."""
    done: list[Reconstruction] = []
    for layers, layer_config in configs:
        result = stylize(image, image, weights=weights, config=layer_config, callback=callback)
        done.append(Reconstruction(kind, layers, result))
        if on_done is not None:
            on_done(done[-1])
        if result.status == "interrupted":
            break
    return done


def reconstruct_content(
    image: ImageLike,
    layers: Sequence[str] = CONTENT_LAYERS,
    *,
    config: StyleConfig = StyleConfig(),
    weights: VGGWeights | str | os.PathLike | None = None,
    callback: Callable[[Progress], None] | None = None,
    on_done: Callable[[Reconstruction], None] | None = None,
) -> list[Reconstruction]:
    """One reconstruction of ``image`` from white noise per layer, by that layer's content loss alone.

    ``callback`` sees each run's progress in turn; ``on_done`` each reconstruction as it finishes.
    """
    layers = (layers,) if isinstance(layers, str) else tuple(layers)
    if not layers:
        raise ValueError("reconstruct_content needs at least one layer")
    configs = [((layer,), content_config(config, layer)) for layer in layers]
    weights = resolve_weights(weights)
    return _reconstruct("content", image, configs, weights, callback, on_done)


def reconstruct_style(
    image: ImageLike,
    layer_sets: Sequence[Sequence[str]] = STYLE_LAYER_SETS,
    *,
    config: StyleConfig = StyleConfig(),
    weights: VGGWeights | str | os.PathLike | None = None,
    callback: Callable[[Progress], None] | None = None,
    on_done: Callable[[Reconstruction], None] | None = None,
) -> list[Reconstruction]:
    """One texture synthesized from white noise per layer set, by the style loss of ``image`` on that set alone.

    The texture has the size ``image`` is resized to (``config.image_size``); the Gram matrices are taken at that
    size times ``config.style_scale``.
    """
    if not layer_sets or any(isinstance(layers, str) for layers in layer_sets):
        raise ValueError(f"reconstruct_style needs a list of layer sets, e.g. [('relu1_1',), ('relu1_1', 'relu2_1')]; "
                         f"got {layer_sets!r}")
    configs = [(tuple(layers), style_config(config, layers)) for layers in layer_sets]
    weights = resolve_weights(weights)
    return _reconstruct("style", image, configs, weights, callback, on_done)
