"""Exact tiled evaluation of the loss and its gradient: the same numbers as the whole image, in the memory of a tile.

The loss reads VGG features through sums over positions only: the content term sums (F - P)^2, and every style
term is a function of a Gram matrix, itself a sum of f f^T over positions. So, with the image cut into tiles whose
borders lie on multiples of the deepest layer's stride (pooling grids then align with the whole image's):

* pass 1: each tile is run through VGG with a halo at least the receptive-field radius of the deepest layer (so its
  *interior* features equal the whole image's, untouched by the tile's own zero padding), and the interior's
  contributions to every Gram matrix and content sum are added up. That gives the loss exactly, and dL/dG for each
  style layer (a small C x C matrix: ``jax.grad`` of the style terms as a function of the Grams);
* pass 2: each tile is run again and differentiated through the linear surrogate sum_l <dL/dG_l, G_l(tile)> + the
  tile's content sum, whose gradient with respect to the tile's pixels is the tile's exact share of dL/dx (halo
  features get no cotangent; their pixels still receive the interior's gradient). The shares add up to dL/dx.

Total variation is computed on the whole image (it needs no network). This is wired in as a ``jax.custom_vjp`` of
the loss, so every optimizer, ``vmap`` and the compiled loop use it unchanged. Tiles of one shape run in a
``lax.scan``, so device memory holds one tile's activations at a time, plus the image-sized arrays (the image, its
gradient, the optimizer's state, the content targets).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from nst_jax.losses import LossInputs, LossSpec, LossTerms, gram_loss, total_variation_loss
from nst_jax.vgg import architecture_of, extract_features, layer_names, layer_stride

LossFn = Callable[[jax.Array, LossInputs], LossTerms]


def receptive_radius(layers: tuple[str, ...], architecture: str) -> int:
    """An upper bound, in input pixels, on how far from a position of the deepest of ``layers`` the input still
    changes it: each 3x3 conv adds its stride on each side, each 2x2 pool its input stride on one."""
    names = layer_names(architecture)
    deepest = max(names.index(layer) for layer in layers)
    radius = 0
    for name in names[: deepest + 1]:
        if name.startswith("conv"):
            radius += layer_stride(name)
        elif name.startswith("pool"):
            radius += layer_stride(name) // 2
    return radius


@dataclasses.dataclass(frozen=True)
class Span:
    """One tile along one axis: the interior [begin, end) it owns and the region [start, stop) it reads."""

    start: int
    begin: int
    end: int
    stop: int


def spans(length: int, tile: int, halo: int) -> tuple[Span, ...]:
    """Tiles of interior ``tile`` (the last one shorter) along an axis of ``length``, each with ``halo`` around."""
    return tuple(Span(max(0, begin - halo), begin, min(length, begin + tile), min(length, begin + tile + halo))
                 for begin in range(0, length, tile))


@dataclasses.dataclass(frozen=True)
class TilePlan:
    """How an image of (height, width) is tiled for the layers of a loss."""

    height: int
    width: int
    tile: int
    halo: int
    rows: tuple[Span, ...]
    columns: tuple[Span, ...]

    @property
    def count(self) -> int:
        """Number of tiles."""
        return len(self.rows) * len(self.columns)

    def groups(self) -> dict[tuple[int, int, int, int], np.ndarray]:
        """Tiles by shape (region height, interior height, region width, interior width): each an (n, 4) array of
        (region row, region column, interior row offset, interior column offset) in pixels."""
        grouped: dict[tuple[int, int, int, int], list[tuple[int, int, int, int]]] = {}
        for row in self.rows:
            for column in self.columns:
                key = (row.stop - row.start, row.end - row.begin, column.stop - column.start, column.end - column.begin)
                grouped.setdefault(key, []).append(
                    (row.start, column.start, row.begin - row.start, column.begin - column.start))
        return {key: np.asarray(value, np.int32) for key, value in grouped.items()}


def plan_tiles(height: int, width: int, tile_size: int, layers: tuple[str, ...], architecture: str) -> TilePlan:
    """The tiling of an image: interiors of ``tile_size`` rounded up to the deepest layer's stride, halos of the
    receptive radius rounded up to it."""
    stride = max(layer_stride(layer) for layer in layers)
    tile = max(stride, math.ceil(tile_size / stride) * stride)
    halo = math.ceil(receptive_radius(layers, architecture) / stride) * stride
    return TilePlan(height, width, tile, halo, spans(height, tile, halo), spans(width, tile, halo))


def _crop(features: jax.Array, row: jax.Array, column: jax.Array, height: int, width: int, stride: int) -> jax.Array:
    """The interior of a tile's features: from pixel offset (row, column), (height, width) pixels, at ``stride``."""
    size = (height // stride, width // stride, features.shape[-1])
    return jax.lax.dynamic_slice(features, (row // stride, column // stride, 0), size)


def tiled_statistics(
    vgg_params: dict, image: jax.Array, content_layers: tuple[str, ...], style_layers: tuple[str, ...], pooling: str,
    tile_size: int,
) -> tuple[dict[str, jax.Array], dict[str, jax.Array]]:
    """The whole image's features at ``content_layers`` and raw Gram sums (sum over positions of f f^T) at
    ``style_layers``, computed tile by tile (the targets of a tiled run, in the memory of one tile)."""
    layers = tuple(dict.fromkeys(content_layers + style_layers))
    plan = plan_tiles(image.shape[0], image.shape[1], tile_size, layers, architecture_of(vgg_params))
    probe = jax.eval_shape(lambda x: extract_features(vgg_params, x, layers, pooling), image)
    features = {layer: jnp.zeros(probe[layer].shape, jnp.float32) for layer in content_layers}
    grams = {layer: jnp.zeros((probe[layer].shape[-1],) * 2, jnp.float32) for layer in style_layers}
    for (region_h, inner_h, region_w, inner_w), tiles in plan.groups().items():
        def body(carry, tile, region_h=region_h, inner_h=inner_h, region_w=region_w, inner_w=inner_w):
            features, grams = dict(carry[0]), dict(carry[1])
            row, column, inner_row, inner_column = tile[0], tile[1], tile[2], tile[3]
            region = jax.lax.dynamic_slice(image, (row, column, 0), (region_h, region_w, 3))
            out = extract_features(vgg_params, region, layers, pooling)
            for layer in content_layers:
                stride = layer_stride(layer)
                mine = _crop(out[layer], inner_row, inner_column, inner_h, inner_w, stride)
                features[layer] = jax.lax.dynamic_update_slice(
                    features[layer], mine, ((row + inner_row) // stride, (column + inner_column) // stride, 0))
            for layer in style_layers:
                mine = _crop(out[layer], inner_row, inner_column, inner_h, inner_w, layer_stride(layer))
                flat = mine.reshape(-1, mine.shape[-1])
                grams[layer] = grams[layer] + flat.T @ flat
            return (features, grams), None

        (features, grams), _ = jax.lax.scan(body, (features, grams), jnp.asarray(tiles))
    return features, grams


def tiled_loss_function(spec: LossSpec, untiled: LossFn) -> LossFn:
    """``untiled`` (``losses.loss_function(spec)`` without tiles) computed tile by tile when the image is larger than
    ``spec.tile_size``; the same terms and gradient."""

    @jax.custom_vjp
    def loss(image: jax.Array, inputs: LossInputs) -> LossTerms:
        return _forward(image, inputs)[0]

    def _plan(image: jax.Array, inputs: LossInputs) -> TilePlan:
        return plan_tiles(image.shape[0], image.shape[1], spec.tile_size, spec.layers,
                          architecture_of(inputs.vgg_params))

    def _full_shape(layer: str, image: jax.Array) -> tuple[int, int]:
        stride = layer_stride(layer)
        return image.shape[0] // stride, image.shape[1] // stride

    def _forward(image: jax.Array, inputs: LossInputs) -> tuple[LossTerms, dict[str, jax.Array]]:
        plan = _plan(image, inputs)
        targets = inputs.targets
        sums = {layer: jnp.zeros((), jnp.float32) for layer in spec.content_layers}
        grams = {layer: jnp.zeros_like(targets.style_grams[layer]) for layer in spec.style_layers}
        for (region_h, inner_h, region_w, inner_w), tiles in plan.groups().items():
            def body(carry, tile, region_h=region_h, inner_h=inner_h, region_w=region_w, inner_w=inner_w):
                sums, grams = carry
                row, column, inner_row, inner_column = tile[0], tile[1], tile[2], tile[3]
                region = jax.lax.dynamic_slice(image, (row, column, 0), (region_h, region_w, 3))
                features = extract_features(inputs.vgg_params, region, spec.layers, spec.pooling)
                sums, grams = dict(sums), dict(grams)
                for layer in spec.content_layers:
                    stride = layer_stride(layer)
                    mine = _crop(features[layer], inner_row, inner_column, inner_h, inner_w, stride)
                    target = _crop(targets.content[layer], row + inner_row, column + inner_column, inner_h, inner_w,
                                   stride)
                    sums[layer] = sums[layer] + jnp.sum(jnp.square(mine - target))
                for layer in spec.style_layers:
                    mine = _crop(features[layer], inner_row, inner_column, inner_h, inner_w, layer_stride(layer))
                    flat = mine.reshape(-1, mine.shape[-1])
                    grams[layer] = grams[layer] + flat.T @ flat
                return (sums, grams), None

            (sums, grams), _ = jax.lax.scan(body, (sums, grams), jnp.asarray(tiles))
        return _terms(image, inputs, sums, grams), grams

    def _content(layer: str, total: jax.Array, image: jax.Array, channels: int) -> jax.Array:
        height, width = _full_shape(layer, image)
        return 0.5 * total if spec.form == "paper" else total / (height * width * channels)

    def _normalized_gram(layer: str, raw: jax.Array, image: jax.Array) -> jax.Array:
        height, width = _full_shape(layer, image)
        return raw / (raw.shape[0] * height * width) if spec.form == "normalized" else raw

    def _style_of(grams: dict[str, jax.Array], image: jax.Array, inputs: LossInputs) -> jax.Array:
        weights = inputs.weights
        terms = []
        for index, (layer, w) in enumerate(zip(spec.style_layers, spec.style_layer_weights)):
            height, width = _full_shape(layer, image)
            term = w * gram_loss(_normalized_gram(layer, grams[layer], image), inputs.targets.style_grams[layer],
                                 height * width, form=spec.form)
            terms.append(term if weights.style_layers is None else weights.style_layers[index] * term)
        return sum(terms)

    def _content_of(sums: dict[str, jax.Array], image: jax.Array, inputs: LossInputs) -> jax.Array:
        weights = inputs.weights
        terms = []
        for index, layer in enumerate(spec.content_layers):
            term = _content(layer, sums[layer], image, inputs.targets.content[layer].shape[-1])
            terms.append(term if weights.content_layers is None else weights.content_layers[index] * term)
        return sum(terms)

    def _terms(image, inputs, sums, grams) -> LossTerms:
        content = _content_of(sums, image, inputs)
        style = _style_of(grams, image, inputs)
        tv = total_variation_loss(image, form=spec.form)
        weights = inputs.weights
        return LossTerms(weights.content * content + weights.style * style + weights.tv * tv, content, style, tv)

    def forward(image: jax.Array, inputs: LossInputs):
        terms, grams = _forward(image, inputs)
        return terms, (image, inputs, grams)

    def backward(residuals, cotangent: LossTerms):
        image, inputs, grams = residuals
        weights, targets = inputs.weights, inputs.targets
        style_scale = cotangent.total * weights.style + cotangent.style
        content_scale = cotangent.total * weights.content + cotangent.content
        tv_scale = cotangent.total * weights.tv + cotangent.tv
        # dL/dG of the raw Gram sums: the style terms as a function of them, differentiated (small C x C work).
        gram_cotangents = jax.grad(lambda g: style_scale * _style_of(g, image, inputs))(grams)
        plan = _plan(image, inputs)
        gradient = jax.grad(lambda x: tv_scale * total_variation_loss(x, form=spec.form))(image)
        for (region_h, inner_h, region_w, inner_w), tiles in plan.groups().items():
            def body(gradient, tile, region_h=region_h, inner_h=inner_h, region_w=region_w, inner_w=inner_w):
                row, column, inner_row, inner_column = tile[0], tile[1], tile[2], tile[3]
                region = jax.lax.dynamic_slice(image, (row, column, 0), (region_h, region_w, 3))

                def surrogate(region: jax.Array) -> jax.Array:
                    features = extract_features(inputs.vgg_params, region, spec.layers, spec.pooling)
                    total = jnp.zeros((), jnp.float32)
                    for index, layer in enumerate(spec.content_layers):
                        stride = layer_stride(layer)
                        mine = _crop(features[layer], inner_row, inner_column, inner_h, inner_w, stride)
                        target = _crop(targets.content[layer], row + inner_row, column + inner_column, inner_h,
                                       inner_w, stride)
                        factor = 1.0 if weights.content_layers is None else weights.content_layers[index]
                        total = total + content_scale * factor * _content(
                            layer, jnp.sum(jnp.square(mine - target)), image, mine.shape[-1])
                    for layer in spec.style_layers:
                        mine = _crop(features[layer], inner_row, inner_column, inner_h, inner_w, layer_stride(layer))
                        flat = mine.reshape(-1, mine.shape[-1])
                        total = total + jnp.sum(jax.lax.stop_gradient(gram_cotangents[layer]) * (flat.T @ flat))
                    return total

                share = jax.grad(surrogate)(region)
                current = jax.lax.dynamic_slice(gradient, (row, column, 0), (region_h, region_w, 3))
                return jax.lax.dynamic_update_slice(gradient, current + share, (row, column, 0)), None

            gradient, _ = jax.lax.scan(body, gradient, jnp.asarray(tiles))
        return gradient, jax.tree_util.tree_map(jnp.zeros_like, inputs)

    loss.defvjp(forward, backward)

    def maybe_tiled(image: jax.Array, inputs: LossInputs) -> LossTerms:
        if image.shape[0] <= spec.tile_size and image.shape[1] <= spec.tile_size:
            return untiled(image, inputs)  # one tile: the plain loss
        return loss(image, inputs)

    return maybe_tiled


__all__ = ["TilePlan", "plan_tiles", "receptive_radius", "spans", "tiled_loss_function",
           "tiled_statistics"]
