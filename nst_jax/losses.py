"""Pure, jittable losses of Gatys et al. (2016): content, style (Gram matrices), total variation.

Two formulations are offered; both are exact functions of the features, they differ only in how each style layer's
Gram matrix is scaled, and both are means, so a weight means the same at every image size:

``"normalized"`` (the default) -- the scaling of jcjohnson/neural-style, neural-style-pt and PyTorch's tutorial:
    content  L_c = mean_ij (F_ij - P_ij)^2
    Gram     G_ij = sum_k F_ik F_jk / (N_l M_l)
    style    E_l = mean_ij (G_ij - A_ij)^2,                   L_s = sum_l w_l E_l
    TV       mean squared difference of neighbouring pixels (horizontal mean + vertical mean)
    total    alpha * L_c + beta * L_s + tv * L_tv
with N_l channels and M_l = height * width positions at layer l.

``"paper"`` -- the paper's terms as its authors computed them for its figures (leongatys/NeuralImageSynthesis:
``LossLayers.lua`` takes ``nn.MSECriterion`` means, its ``GramMSE`` divides G by M_l only, and its notebook weights the
normalized VGG19's content 1e6 against style 1e9, the paper's alpha/beta = 1e-3):
    content  L_c = mean_ij (F_ij - P_ij)^2
    Gram     G_ij = sum_k F_ik F_jk / M_l
    style    E_l = mean_ij (G_ij - A_ij)^2 = N_l^2 * normalized E_l
    TV       as above (the paper has none)
The paper prints L_c = 1/2 sum (F - P)^2 and E_l = sum (G - A)^2 / (4 N_l^2 M_l^2): the same terms up to constants per
layer, N_l M_l / 2 and 4, but those constants make a ratio mean something else. With the printed ones, alpha/beta =
1e-3 weights the content of the paper's mean-normalized network about N M / 8 times (43 000 times at 512 px) more
than the authors' code did, and the result is the photo (measured on a trained VGG16, issue 27); with these it is the
paper's figures. Deeper layers weigh N_l^2 times more than in the normalized form: where every channel's mean
activation is one, the normalized form's Gram matrices shrink as 1 / N_l and its deep layers would barely count.

Spatial control (Gatys et al. 2017, "Controlling Perceptual Factors in Neural Style Transfer", sec. 4): with style
regions, R guidance channels m_r (one per style image, ``layer_masks`` at each layer), the style term compares
guided Gram matrices G_r = sum_k m_rk^2 f_k f_k^T * M / sum_k m_rk^2 (the features weighted by the channel,
rescaled by the region's area so that an all-white channel gives the plain G and a small region is not drowned) with
style r's own target, summed over the regions: E_l = sum_r E_l(G_r, A_r). The content and TV terms are unchanged.

Video (Ruder, Dosovitskiy & Brox, "Artistic style transfer for videos", 2016): a temporal term ties the image to J
targets w_j (earlier stylized frames warped by optical flow) where per-pixel weights c_j in [0, 1] say they are
reliable: L_t = sum_j 1/D sum_k c_jk (x_k - w_jk)^2 over the D = H * W * 3 pixel values, in either form (Ruder's
definition is this mean). It reads the image itself, not VGG's features, so tiles and rows split over devices leave
it unchanged; its weight gamma is traced, and gamma = 0 gives independent frames with the same program. It is
added to the total only (``LossTerms`` keeps the three terms above). Departure: Ruder's x is the Caffe-preprocessed
image (pixels times 256), ours is in [0, 1], so his gamma is ours divided by 256^2.

All functions take single images (H, W, C) features; batch with ``jax.vmap``.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Mapping, Sequence
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from nst_jax.mesh import gram_sum, guided_gram_sum, spread_rows
from nst_jax.tiling import remat_full_resolution, tiled_statistics
from nst_jax.vgg import (
    DEFAULT_POOLING,
    DEFAULT_PRECISION,
    extract_features,
    layer_stride,
    min_input_size,
    validate_layers,
)

LOSS_FORMS: tuple[str, ...] = ("normalized", "paper")
DEFAULT_FORM = LOSS_FORMS[0]


def _check_form(form: str) -> None:
    """Raise ``ValueError`` unless ``form`` is a known loss formulation."""
    if form not in LOSS_FORMS:
        raise ValueError(f"loss form must be one of {LOSS_FORMS}, got {form!r}")


def gram_matrix(features: jax.typing.ArrayLike, *, form: str = DEFAULT_FORM) -> jax.Array:
    """Gram matrix (C, C) of (H, W, C) features: divided by C * H * W (normalized) or by H * W (paper)."""
    _check_form(form)
    features = jnp.asarray(features)
    if features.ndim != 3:
        raise ValueError(f"gram_matrix expects (H, W, C) features, got shape {features.shape}")
    height, width, channels = features.shape
    gram = gram_sum(features, spread=False)
    return gram / _gram_scale(channels, height * width, form)


def _gram_scale(channels: int, positions: int, form: str) -> int:
    """What a Gram matrix's raw sum over ``positions`` is divided by: N M (normalized) or M (paper)."""
    return channels * positions if form == "normalized" else positions


def content_loss(
    features: jax.typing.ArrayLike, target: jax.typing.ArrayLike, *, form: str = DEFAULT_FORM
) -> jax.Array:
    """Mean squared distance between features and target features (both forms)."""
    _check_form(form)
    features, target = jnp.asarray(features), jnp.asarray(target)
    if features.shape != target.shape:
        raise ValueError(f"content features {features.shape} and target {target.shape} differ in shape")
    squared = jnp.square(features - target)
    return jnp.mean(squared)


def style_layer_loss(
    features: jax.typing.ArrayLike, target_gram: jax.typing.ArrayLike, *, form: str = DEFAULT_FORM
) -> jax.Array:
    """E_l: distance between the Gram matrix of (H, W, C) features and a target Gram matrix."""
    return gram_loss(gram_matrix(features, form=form), target_gram, form=form)


def gram_loss(gram: jax.Array, target_gram: jax.typing.ArrayLike, *, form: str = DEFAULT_FORM) -> jax.Array:
    """E_l, the mean squared difference of a (C, C) Gram matrix (``gram_matrix``'s, in the same ``form``) and its
    target."""
    _check_form(form)
    target_gram = jnp.asarray(target_gram)
    if gram.shape != target_gram.shape:
        raise ValueError(f"Gram matrix {gram.shape} and target Gram matrix {target_gram.shape} differ in shape")
    return jnp.mean(jnp.square(gram - target_gram))


def style_loss(
    features: Mapping[str, jax.typing.ArrayLike],
    target_grams: Mapping[str, jax.typing.ArrayLike],
    layer_weights: Mapping[str, float],
    *,
    form: str = DEFAULT_FORM,
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


def total_variation_loss(image: jax.typing.ArrayLike, *, form: str = DEFAULT_FORM) -> jax.Array:
    """Mean squared differences between vertically and horizontally neighbouring pixels of an (H, W, C) image, added
    (both forms)."""
    _check_form(form)
    image = jnp.asarray(image)
    vertical = jnp.square(image[1:, :, :] - image[:-1, :, :])
    horizontal = jnp.square(image[:, 1:, :] - image[:, :-1, :])
    return jnp.mean(vertical) + jnp.mean(horizontal)


def temporal_loss(image: jax.typing.ArrayLike, targets: jax.typing.ArrayLike, weights: jax.typing.ArrayLike
                  ) -> jax.Array:
    """Ruder et al.'s temporal term: sum_j 1/D sum_k c_jk (x_k - w_jk)^2 of an (H, W, C) image, J (J, H, W, C)
    targets w and their (J, H, W) per-pixel weights c (one per position, for every channel); D = H * W * C."""
    image, targets, weights = jnp.asarray(image), jnp.asarray(targets), jnp.asarray(weights)
    if targets.ndim != 4 or targets.shape[1:] != image.shape or weights.shape != targets.shape[:3]:
        raise ValueError(f"temporal targets must be (J, *{image.shape}) and their weights (J, *{image.shape[:2]}), "
                         f"got {targets.shape} and {weights.shape}")
    return jnp.sum(weights[..., None] * jnp.square(image[None] - targets)) / image.size


def layer_masks(masks: jax.typing.ArrayLike, layers: Sequence[str]) -> dict[str, jax.Array]:
    """(R, H, W) guidance channels at each layer's resolution: the mean of each stride x stride block (the last
    partial block dropped, as VGG's pooling drops it), i.e. the share of the layer position's pixels in the region.

    Gatys et al. 2017 (sec. 4.1) leave the choice open (re-sampling, or propagating through the network). Block
    means keep every region's area at every layer (nearest-neighbour sampling loses thin regions at ``relu5_1``'s
    1/16 resolution) and turn a hard border into a one-position band where the styles blend.
    """
    masks = jnp.asarray(masks, jnp.float32)
    result = {}
    for layer in layers:
        stride = layer_stride(layer)
        regions, height, width = masks.shape[0], masks.shape[1] // stride, masks.shape[2] // stride
        blocks = masks[:, : height * stride, : width * stride].reshape(regions, height, stride, width, stride)
        result[layer] = blocks.mean(axis=(2, 4))
    return result


def _region_scale(masks: jax.Array) -> tuple[jax.Array, jax.Array]:
    """For (R, h, w) guidance channels: positions / area of each region (0 for an empty one), and which are not
    empty. The area is the sum of m^2, the weight a guided Gram matrix gives each position."""
    areas = jnp.sum(jnp.square(masks), axis=(1, 2))
    present = areas > 0
    positions = masks.shape[1] * masks.shape[2]
    return jnp.where(present, positions / jnp.where(present, areas, 1.0), 0.0), present


def guided_grams(raw: jax.Array, masks: jax.Array, *, form: str = DEFAULT_FORM) -> jax.Array:
    """Guided Gram matrices (R, C, C) from raw guided sums (``mesh.guided_gram_sum``) over (R, h, w) ``masks``:
    normalized by each region's area, so that a region's matrix is the Gram matrix its features would have if they
    covered the image (an all-white mask gives ``gram_matrix`` exactly, a small region is not drowned)."""
    scale, _ = _region_scale(masks)
    positions = masks.shape[1] * masks.shape[2]
    grams = raw * scale[:, None, None]
    return grams / _gram_scale(raw.shape[-1], positions, form)


def guided_gram_loss(grams: jax.Array, target_grams: jax.Array, masks: jax.Array, *, form: str = DEFAULT_FORM
                     ) -> jax.Array:
    """E_l of a guided run: the sum over regions of ``gram_loss`` between each region's guided Gram matrix and its
    style's target; an empty region adds nothing."""
    _, present = _region_scale(masks)
    per_region = jax.vmap(lambda gram, target: gram_loss(gram, target, form=form))(grams, target_grams)
    return jnp.sum(jnp.where(present, per_region, 0.0))


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
    temporal: jax.typing.ArrayLike | None = None
    """gamma, the weight of the temporal term (``temporal_loss``); needed when the targets have temporal targets."""


class StyleTargets(NamedTuple):
    """Content features P at the content layers and the (blended) style Gram matrices A at the style layers."""

    content: dict[str, jax.Array]
    style_grams: dict[str, jax.Array]
    regions: dict[str, jax.Array] | None = None
    """Spatial control (Gatys et al. 2017): each style's region of the output at each style layer's resolution,
    (R, h, w) guidance channels in [0, 1] (``layer_masks``); ``style_grams`` are then (R, C, C), style r's own."""
    temporal: jax.Array | None = None
    """Video (Ruder et al. 2016): (J, H, W, 3) earlier stylized frames warped onto this one (``temporal_loss``)."""
    temporal_weights: jax.Array | None = None
    """Their (J, H, W) per-pixel weights in [0, 1] (0 where a target is not reliable: occlusions, motion edges)."""


def equal_layer_weights(layers: Sequence[str]) -> tuple[float, ...]:
    """The paper's w_l: equal weights summing to one."""
    return tuple(1.0 / len(layers) for _ in layers)


def blend_fractions(blend_weights: Sequence[float] | None, count: int) -> np.ndarray:
    """Each style image's share of the blended Gram matrices: ``blend_weights`` (None: equal) summing to one.

    Divided by the largest first: only the ratios count, and 1e308 + 1e308 would overflow to inf (every target
    would then be 0). ``ValueError`` unless finite, non-negative, one per style image, with a positive sum.
    """
    if count < 1:
        raise ValueError("at least one style image is needed")
    weights = [1.0] * count if blend_weights is None else [float(weight) for weight in blend_weights]
    if len(weights) != count:
        raise ValueError(f"{len(weights)} blend weights for {count} style images")
    largest = max(weights)
    if not largest > 0 or not math.isfinite(largest) or min(weights) < 0:
        raise ValueError(f"style blend weights must be finite, non-negative, with a positive sum; got {blend_weights}")
    shares = np.asarray([weight / largest for weight in weights], np.float64)
    return (shares / shares.sum()).astype(np.float32)


def compute_targets(
    vgg_params: Mapping,
    content_image: jax.typing.ArrayLike,
    style_images: Sequence[jax.typing.ArrayLike],
    *,
    content_layers: Sequence[str],
    style_layers: Sequence[str],
    blend_weights: Sequence[float] | None = None,
    pooling: str = DEFAULT_POOLING,
    form: str = DEFAULT_FORM,
    tile_size: int | None = None,
    spatial: bool = False,
    precision: str = DEFAULT_PRECISION,
    regions: jax.typing.ArrayLike | None = None,
    source_masks: Sequence[jax.typing.ArrayLike | None] | None = None,
) -> StyleTargets:
    """Content features of the content image and blend-weighted Gram matrices of the style images (computed tile by
    tile, exactly, for images larger than ``tile_size``; ``spatial``: with each image's rows split over every
    device; ``precision``: VGG's convolutions', ``vgg.PRECISIONS``).

    Spatial control (Gatys et al. 2017): ``regions`` (R, H, W), one guidance channel in [0, 1] per style image at
    the content's size, gives each style its region of the output: the targets keep each style's own Gram matrix
    (no blending) and the guidance channels at each style layer (``layer_masks``). ``source_masks``: per style
    image, None or an (H_s, W_s) channel selecting the part of it whose statistics are its target (a guided Gram
    matrix, normalized by the area)."""
    count = len(style_images)
    if regions is None:
        shares = blend_fractions(blend_weights, count)
    else:
        regions = jnp.asarray(regions, jnp.float32)
        if blend_weights is not None:
            raise ValueError("style blend weights do not apply with style regions: each style has its own region")
        if regions.ndim != 3 or regions.shape[0] != count or regions.shape[1:] != jnp.shape(content_image)[:2]:
            raise ValueError(f"style regions must be (styles, height, width) = ({count}, "
                             f"{jnp.shape(content_image)[0]}, {jnp.shape(content_image)[1]}), got {regions.shape}")
        shares = np.ones(count, np.float32)
    sources = [None] * count if source_masks is None else list(source_masks)
    if len(sources) != count:
        raise ValueError(f"{len(sources)} source masks for {count} style images")
    for index, (source, image) in enumerate(zip(sources, style_images)):
        if source is not None and jnp.shape(source) != jnp.shape(image)[:2]:
            raise ValueError(f"source mask {index + 1} is {jnp.shape(source)}, its style image "
                             f"{jnp.shape(image)[:2]}")
    sources = [None if source is None else jnp.asarray(source, jnp.float32)[None] for source in sources]
    if tile_size is not None and all(max(jnp.shape(im)[:2]) <= tile_size for im in (content_image, *style_images)):
        tile_size = None  # every image is one tile
    return _blended_targets(vgg_params, content_image, list(style_images), shares, regions, sources,
                            content_layers=validate_layers(content_layers),
                            style_layers=validate_layers(style_layers), pooling=pooling, form=form,
                            tile_size=tile_size, spatial=spatial, precision=precision)


@functools.partial(jax.jit, static_argnames=("content_layers", "style_layers", "pooling", "form", "tile_size",
                                             "spatial", "precision"))
def _blended_targets(
    vgg_params: Mapping,
    content_image: jax.Array,
    style_images: list[jax.Array],
    shares: jax.Array,
    regions: jax.Array | None,
    sources: list[jax.Array | None],
    *,
    content_layers: tuple[str, ...],
    style_layers: tuple[str, ...],
    pooling: str,
    form: str,
    tile_size: int | None,
    spatial: bool,
    precision: str,
) -> StyleTargets:
    """``compute_targets`` compiled once per layer choice (the blend ``shares`` are traced, so another blend of the
    same number of styles does not recompile); tile by tile with ``tile_size`` (``nst_jax.tiling``)."""
    spread = spread_rows if spatial else (lambda image: image)
    if tile_size is None:
        content = extract_features(vgg_params, spread(content_image), content_layers, pooling, precision)
    else:
        content, _ = tiled_statistics(vgg_params, content_image, content_layers, (), pooling, tile_size,
                                      spatial=spatial, precision=precision)
    each = []
    for image, source in zip(style_images, sources):
        masks = None if source is None else layer_masks(source, style_layers)
        if tile_size is None:
            features = extract_features(vgg_params, spread(image), style_layers, pooling, precision)
            if masks is not None:
                sums = {layer: guided_gram_sum(features[layer], masks[layer]) for layer in style_layers}
            elif spatial:
                sums = {layer: gram_sum(features[layer], spread=True) for layer in style_layers}
            else:  # the reshape's product, as the loss's own Gram matrices (``mesh.gram_sum``)
                each.append({layer: gram_matrix(features[layer], form=form) for layer in style_layers})
                continue
        else:
            _, sums = tiled_statistics(vgg_params, image, (), style_layers, pooling, tile_size, spatial=spatial,
                                       precision=precision, masks=masks)
        if masks is None:
            each.append({layer: _normalized_sum(sums[layer], image.shape, layer, form) for layer in style_layers})
        else:
            each.append({layer: guided_grams(sums[layer], masks[layer], form=form)[0] for layer in style_layers})
    if regions is not None:  # each style its own target, for its own region
        return StyleTargets(content=content, style_grams={layer: jnp.stack([grams[layer] for grams in each])
                                                          for layer in style_layers},
                            regions=layer_masks(regions, style_layers))
    grams = {layer: sum(shares[index] * grams[layer] for index, grams in enumerate(each)) for layer in style_layers}
    return StyleTargets(content=content, style_grams=grams)


def _positions(shape: tuple[int, ...], layer: str) -> int:
    """Positions (height * width) of ``layer``'s output for an image of ``shape``."""
    stride = layer_stride(layer)
    return (shape[0] // stride) * (shape[1] // stride)


def _normalized_sum(raw: jax.Array, shape: tuple[int, ...], layer: str, form: str) -> jax.Array:
    """``gram_matrix`` from a raw sum over positions of f f^T of ``layer`` for an image of ``shape``."""
    return raw / _gram_scale(raw.shape[0], _positions(shape, layer), form)


class LossInputs(NamedTuple):
    """Everything the loss reads besides the image: frozen VGG parameters, targets and weights (all traced)."""

    vgg_params: Mapping
    targets: StyleTargets
    weights: LossWeights


@dataclasses.dataclass(frozen=True)
class LossSpec:
    """The static choices of a loss: its layers, per-layer style weights w_l, pooling and form. Hashable and
    compared by value, so equal specs share one loss function and one compilation (``optimize.compile_solver``)."""

    content_layers: tuple[str, ...]
    style_layers: tuple[str, ...]
    style_layer_weights: tuple[float, ...] | None = None
    pooling: str = DEFAULT_POOLING
    form: str = DEFAULT_FORM
    tile_size: int | None = None
    """Read the features of images larger than this (pixels) tile by tile, exactly (``nst_jax.tiling``); None:
    whole."""
    remat: bool = False
    """Recompute VGG's full-resolution activations in the backward pass instead of keeping them (``jax.checkpoint``)."""
    spatial: bool = False
    """Split each image's activations along its height over every device (``nst_jax.mesh.spread_rows``)."""
    precision: str = DEFAULT_PRECISION
    """VGG's convolutions' arithmetic (``vgg.PRECISIONS``); Gram matrices and the loss are float32 whatever it is."""

    def __post_init__(self) -> None:
        _check_form(self.form)
        if self.tile_size is not None and (not isinstance(self.tile_size, (int, np.integer)) or self.tile_size < 1):
            raise ValueError(f"tile size must be a positive integer or None, got {self.tile_size!r}")
        object.__setattr__(self, "content_layers", validate_layers(self.content_layers))
        object.__setattr__(self, "style_layers", validate_layers(self.style_layers))
        weights = self.style_layer_weights
        if weights is None:
            weights = equal_layer_weights(self.style_layers)
        if len(weights) != len(self.style_layers):
            raise ValueError(f"{len(weights)} style layer weights for {len(self.style_layers)} style layers")
        object.__setattr__(self, "style_layer_weights", tuple(float(weight) for weight in weights))

    @property
    def layers(self) -> tuple[str, ...]:
        """Every layer the loss reads, content layers first, each once."""
        return tuple(dict.fromkeys(self.content_layers + self.style_layers))

    @property
    def min_input_size(self) -> int:
        """The smallest image side the loss can take (the deepest layer's need)."""
        return min_input_size(self.layers)


@functools.lru_cache(maxsize=64)
def loss_function(spec: LossSpec) -> Callable[[jax.Array, LossInputs], LossTerms]:
    """The loss ``(image, inputs) -> LossTerms`` of one (H, W, 3) image; one function per distinct ``spec``."""
    per_layer = dict(zip(spec.style_layers, spec.style_layer_weights))
    form = spec.form

    def statistics(vgg_params: Mapping, image: jax.Array, regions: dict[str, jax.Array] | None
                   ) -> tuple[dict[str, jax.Array], dict[str, jax.Array]]:
        maps = extract_features(vgg_params, image, spec.layers, spec.pooling, spec.precision)
        if regions is not None:
            return maps, {layer: guided_grams(guided_gram_sum(maps[layer], regions[layer]), regions[layer], form=form)
                          for layer in spec.style_layers}
        if spec.spatial:
            return maps, {layer: _normalized_sum(gram_sum(maps[layer], spread=True), image.shape, layer, form)
                          for layer in spec.style_layers}
        return maps, {layer: gram_matrix(maps[layer], form=form) for layer in spec.style_layers}

    if spec.remat:
        statistics = remat_full_resolution(statistics)

    def loss_terms(image: jax.Array, inputs: LossInputs) -> LossTerms:
        regions = inputs.targets.regions
        if spec.tile_size is not None and max(image.shape[:2]) > spec.tile_size:
            # Tile by tile (nst_jax.tiling): the content maps and raw Gram sums, exactly the whole image's.
            maps, sums = tiled_statistics(inputs.vgg_params, image, spec.content_layers, spec.style_layers,
                                          spec.pooling, spec.tile_size, remat=spec.remat, spatial=spec.spatial,
                                          precision=spec.precision, masks=regions)
            grams = {layer: _normalized_sum(sums[layer], image.shape, layer, form) if regions is None
                     else guided_grams(sums[layer], regions[layer], form=form) for layer in spec.style_layers}
        else:
            maps, grams = statistics(inputs.vgg_params, spread_rows(image) if spec.spatial else image, regions)
        targets, weights = inputs.targets, inputs.weights
        content = _scaled(
            [content_loss(maps[layer], targets.content[layer], form=form) for layer in spec.content_layers],
            weights.content_layers,
        )

        def layer_loss(layer: str) -> jax.Array:
            if regions is None:
                return gram_loss(grams[layer], targets.style_grams[layer], form=form)
            return guided_gram_loss(grams[layer], targets.style_grams[layer], regions[layer], form=form)

        style = _scaled([w * layer_loss(layer) for layer, w in per_layer.items()], weights.style_layers)
        tv = total_variation_loss(image, form=form)
        total = weights.content * content + weights.style * style + weights.tv * tv
        if targets.temporal is not None:
            if weights.temporal is None:
                raise ValueError("temporal targets need a temporal weight (LossWeights.temporal)")
            total = total + weights.temporal * temporal_loss(image, targets.temporal, targets.temporal_weights)
        return LossTerms(total=total, content=content, style=style, tv=tv)

    return loss_terms


def make_loss_fn(
    *,
    content_layers: Sequence[str],
    style_layers: Sequence[str],
    style_layer_weights: Sequence[float] | None = None,
    pooling: str = DEFAULT_POOLING,
    form: str = DEFAULT_FORM,
) -> Callable[[jax.Array, LossInputs], LossTerms]:
    """The loss ``(image, inputs) -> LossTerms`` of one (H, W, 3) image; layer choices are static, and equal
    arguments give the same function (``loss_function(LossSpec(...))``)."""
    weights = None if style_layer_weights is None else tuple(style_layer_weights)
    return loss_function(LossSpec(tuple(validate_layers(content_layers)), tuple(validate_layers(style_layers)),
                                  weights, pooling, form))
