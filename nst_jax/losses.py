"""Pure, jittable losses of Gatys et al. (2016): content, style (Gram matrices), total variation.

Two formulations are offered; both are exact functions of the features, they differ only in scale:

``"paper"`` -- the equations of the paper, term for term:
    content  L_c = 1/2 * sum_ij (F_ij - P_ij)^2
    Gram     G_ij = sum_k F_ik F_jk
    style    E_l = sum_ij (G_ij - A_ij)^2 / (4 N_l^2 M_l^2),   L_s = sum_l w_l E_l
    TV       sum of squared differences of neighbouring pixels
    total    alpha * L_c + beta * L_s + tv * L_tv
with N_l channels and M_l = height * width positions at layer l. E_l is already independent of image size,
but L_c grows with N_l * M_l, so a given alpha/beta means something different at 128 px and at 1024 px.

``"normalized"`` (the default) -- every term is a mean, so weights mean the same at any image size:
    content  L_c = mean_ij (F_ij - P_ij)^2
    Gram     G_ij = sum_k F_ik F_jk / (N_l M_l)
    style    E_l = mean_ij (G_ij - A_ij)^2,                   L_s = sum_l w_l E_l
    TV       mean squared difference of neighbouring pixels (horizontal mean + vertical mean)
This is the scaling of PyTorch's neural-style tutorial, which gives balanced results with torchvision's
VGG19 (inputs in [0, 1] with ImageNet normalization, whose activations are far smaller than the Caffe VGG19
the paper used on 0-255 inputs) at alpha = 1, beta = 1e6. The two forms are related per layer by
    paper E_l = N_l^2 / 4 * normalized E_l,      paper L_c = N_l M_l / 2 * normalized L_c.

All functions take single images (H, W, C) features; batch with ``jax.vmap``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from nst_jax.vgg import extract_features, validate_layers

LOSS_FORMS: tuple[str, ...] = ("normalized", "paper")


def _check_form(form: str) -> None:
    """Raise ``ValueError`` unless ``form`` is a known loss formulation."""
    if form not in LOSS_FORMS:
        raise ValueError(f"loss form must be one of {LOSS_FORMS}, got {form!r}")


def gram_matrix(features: jax.typing.ArrayLike, *, form: str = "normalized") -> jax.Array:
    """Gram matrix (C, C) of (H, W, C) features; divided by C * H * W in the normalized form."""
    _check_form(form)
    features = jnp.asarray(features)
    if features.ndim != 3:
        raise ValueError(f"gram_matrix expects (H, W, C) features, got shape {features.shape}")
    height, width, channels = features.shape
    flat = features.reshape(height * width, channels)
    gram = flat.T @ flat
    return gram / (channels * height * width) if form == "normalized" else gram


def content_loss(
    features: jax.typing.ArrayLike, target: jax.typing.ArrayLike, *, form: str = "normalized"
) -> jax.Array:
    """Squared distance between features and target features: 1/2 sum (paper) or mean (normalized)."""
    _check_form(form)
    features, target = jnp.asarray(features), jnp.asarray(target)
    if features.shape != target.shape:
        raise ValueError(f"content features {features.shape} and target {target.shape} differ in shape")
    squared = jnp.square(features - target)
    return 0.5 * jnp.sum(squared) if form == "paper" else jnp.mean(squared)


def style_layer_loss(
    features: jax.typing.ArrayLike, target_gram: jax.typing.ArrayLike, *, form: str = "normalized"
) -> jax.Array:
    """E_l: distance between the Gram matrix of (H, W, C) features and a target Gram matrix."""
    gram = gram_matrix(features, form=form)
    target_gram = jnp.asarray(target_gram)
    if gram.shape != target_gram.shape:
        raise ValueError(f"Gram matrix {gram.shape} and target Gram matrix {target_gram.shape} differ in shape")
    squared = jnp.square(gram - target_gram)
    if form == "normalized":
        return jnp.mean(squared)
    height, width, channels = jnp.shape(features)
    return jnp.sum(squared) / (4.0 * channels**2 * (height * width) ** 2)


def style_loss(
    features: Mapping[str, jax.typing.ArrayLike],
    target_grams: Mapping[str, jax.typing.ArrayLike],
    layer_weights: Mapping[str, float],
    *,
    form: str = "normalized",
) -> jax.Array:
    """L_style = sum_l w_l E_l over the layers of ``layer_weights``."""
    return sum(
        weight * style_layer_loss(features[layer], target_grams[layer], form=form)
        for layer, weight in layer_weights.items()
    )


def _scaled(terms: Sequence[jax.Array], factors: jax.typing.ArrayLike | None) -> jax.Array:
    """The sum of ``terms``, each times its entry of ``factors`` (None: plain sum)."""
    if factors is None:
        return sum(terms)
    return sum(factors[index] * term for index, term in enumerate(terms))


def total_variation_loss(image: jax.typing.ArrayLike, *, form: str = "normalized") -> jax.Array:
    """Squared differences between neighbouring pixels of an (H, W, C) image: sum (paper) or means."""
    _check_form(form)
    image = jnp.asarray(image)
    vertical = jnp.square(image[1:, :, :] - image[:-1, :, :])
    horizontal = jnp.square(image[:, 1:, :] - image[:, :-1, :])
    if form == "paper":
        return jnp.sum(vertical) + jnp.sum(horizontal)
    return jnp.mean(vertical) + jnp.mean(horizontal)


class LossTerms(NamedTuple):
    """The weighted total and the unweighted content, style and total-variation losses."""

    total: jax.Array
    content: jax.Array
    style: jax.Array
    tv: jax.Array


class LossWeights(NamedTuple):
    """alpha (content), beta (style) and the TV weight; traced, so new weights never recompile.

    ``content_layers`` and ``style_layers`` optionally scale each layer's term (one factor per content layer, and
    per style layer on top of its static w_l), so one batch can give each member its own layers: a factor of 0
    drops a layer from that member's loss. None: every factor 1.
    """

    content: jax.typing.ArrayLike
    style: jax.typing.ArrayLike
    tv: jax.typing.ArrayLike
    content_layers: jax.typing.ArrayLike | None = None
    style_layers: jax.typing.ArrayLike | None = None


class StyleTargets(NamedTuple):
    """Content features P at the content layers and the (blended) style Gram matrices A at the style layers."""

    content: dict[str, jax.Array]
    style_grams: dict[str, jax.Array]


def equal_layer_weights(layers: Sequence[str]) -> tuple[float, ...]:
    """The paper's w_l: equal weights summing to one."""
    return tuple(1.0 / len(layers) for _ in layers)


def compute_targets(
    vgg_params: Mapping,
    content_image: jax.typing.ArrayLike,
    style_images: Sequence[jax.typing.ArrayLike],
    *,
    content_layers: Sequence[str],
    style_layers: Sequence[str],
    blend_weights: Sequence[float] | None = None,
    pooling: str = "avg",
    form: str = "normalized",
) -> StyleTargets:
    """Content features of the content image and blend-weighted Gram matrices of the style images."""
    content_layers, style_layers = validate_layers(content_layers), validate_layers(style_layers)
    if not style_images:
        raise ValueError("at least one style image is needed")
    if blend_weights is None:
        blend_weights = [1.0] * len(style_images)
    if len(blend_weights) != len(style_images):
        raise ValueError(f"{len(blend_weights)} blend weights for {len(style_images)} style images")
    # Divided by the largest first: the ratios are what count, and 1e308 + 1e308 would overflow to inf (every
    # target would then be 0).
    largest = max(map(float, blend_weights), default=0.0)
    if not largest > 0 or not math.isfinite(largest) or min(map(float, blend_weights)) < 0:
        raise ValueError(f"style blend weights must be finite, non-negative, with a positive sum; got {blend_weights}")
    blend_weights = [float(weight) / largest for weight in blend_weights]
    total_weight = sum(blend_weights)
    content = extract_features(vgg_params, content_image, content_layers, pooling)
    grams = {layer: 0.0 for layer in style_layers}
    for image, weight in zip(style_images, blend_weights):
        features = extract_features(vgg_params, image, style_layers, pooling)
        for layer in style_layers:
            grams[layer] = grams[layer] + (weight / total_weight) * gram_matrix(features[layer], form=form)
    return StyleTargets(content=content, style_grams=grams)


class LossInputs(NamedTuple):
    """Everything the loss reads besides the image: frozen VGG parameters, targets and weights (all traced)."""

    vgg_params: Mapping
    targets: StyleTargets
    weights: LossWeights


def make_loss_fn(
    *,
    content_layers: Sequence[str],
    style_layers: Sequence[str],
    style_layer_weights: Sequence[float] | None = None,
    pooling: str = "avg",
    form: str = "normalized",
) -> Callable[[jax.Array, LossInputs], LossTerms]:
    """The loss ``(image, inputs) -> LossTerms`` of one (H, W, 3) image; layer choices are static."""
    _check_form(form)
    content_layers, style_layers = validate_layers(content_layers), validate_layers(style_layers)
    if style_layer_weights is None:
        style_layer_weights = equal_layer_weights(style_layers)
    if len(style_layer_weights) != len(style_layers):
        raise ValueError(f"{len(style_layer_weights)} style layer weights for {len(style_layers)} style layers")
    per_layer = dict(zip(style_layers, map(float, style_layer_weights)))
    layers = tuple(dict.fromkeys(content_layers + style_layers))

    def loss_terms(image: jax.Array, inputs: LossInputs) -> LossTerms:
        features = extract_features(inputs.vgg_params, image, layers, pooling)
        targets, weights = inputs.targets, inputs.weights
        content = _scaled(
            [content_loss(features[l], targets.content[l], form=form) for l in content_layers], weights.content_layers
        )
        style = _scaled(
            [w * style_layer_loss(features[l], targets.style_grams[l], form=form) for l, w in per_layer.items()],
            weights.style_layers,
        )
        tv = total_variation_loss(image, form=form)
        total = weights.content * content + weights.style * style + weights.tv * tv
        return LossTerms(total=total, content=content, style=style, tv=tv)

    return loss_terms
