"""Exact tiled VGG statistics: what the loss reads of the features, with the whole image's numbers, in the memory of
one tile.

The loss reads VGG features only through the content layers' feature maps (small: 1/64 of the image's positions at
``relu4_2``) and the style layers' Gram matrices, sums of f f^T over positions. ``tiled_statistics`` computes both
with the image cut into tiles whose borders lie on multiples of the deepest layer's stride (pooling grids then align
with the whole image's): each tile is run through VGG with a halo at least the receptive-field radius of the deepest
layer, so its *interior* features equal the whole image's, untouched by the tile's own zero padding; the interiors'
content features are placed into whole-image maps and their f f^T added up.

Its gradient (a ``jax.custom_vjp``) runs each tile again and back-propagates the cotangents of the interior's
statistics (the cotangent map cropped to the interior; the Gram cotangent as it is, the partial Gram being linear in
it): the tiles' shares add up to the exact dL/dx. ``losses.loss_function`` reads these statistics instead of whole
feature maps when a ``LossSpec`` has a ``tile_size``, so every optimizer, ``vmap`` and the compiled loop use it
unchanged. Tiles of one shape run in a ``lax.scan``: device memory holds one tile's activations at a time, plus the
image-sized arrays (the image, its gradient, the optimizer's state, the content maps and targets).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np

from nst_jax.vgg import architecture_of, extract_features, layer_names, layer_stride

Statistics = tuple[dict[str, jax.Array], dict[str, jax.Array]]
"""Content feature maps (whole image) by content layer, raw Gram sums (sum over positions of f f^T) by style layer."""


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
    vgg_params: Mapping, image: jax.Array, content_layers: tuple[str, ...], style_layers: tuple[str, ...],
    pooling: str, tile_size: int,
) -> Statistics:
    """The whole image's features at ``content_layers`` and raw Gram sums at ``style_layers``, computed tile by tile;
    differentiable with respect to ``image`` (tile by tile too)."""
    return _statistics(content_layers, style_layers, pooling, tile_size)(vgg_params, image)


@functools.lru_cache(maxsize=64)
def _statistics(content_layers: tuple[str, ...], style_layers: tuple[str, ...], pooling: str, tile_size: int):
    """``tiled_statistics`` for one choice of layers, pooling and tile size, with its custom gradient."""
    layers = tuple(dict.fromkeys(content_layers + style_layers))

    def groups(vgg_params: Mapping, image: jax.Array):
        plan = plan_tiles(image.shape[0], image.shape[1], tile_size, layers, architecture_of(vgg_params))
        return plan.groups().items()

    def tile_statistics(vgg_params: Mapping, region: jax.Array, tile: jax.Array, inner_h: int, inner_w: int):
        """A tile's interior content features and partial Gram sums."""
        features = extract_features(vgg_params, region, layers, pooling)
        crops = {layer: _crop(features[layer], tile[2], tile[3], inner_h, inner_w, layer_stride(layer))
                 for layer in layers}
        flat = {layer: crops[layer].reshape(-1, crops[layer].shape[-1]) for layer in style_layers}
        return ({layer: crops[layer] for layer in content_layers},
                {layer: flat[layer].T @ flat[layer] for layer in style_layers})

    def place(tile: jax.Array, layer: str) -> tuple[jax.Array, jax.Array, int]:
        """Where a tile's interior lies in ``layer``'s whole-image map: (row, column, 0)."""
        stride = layer_stride(layer)
        return (tile[0] + tile[2]) // stride, (tile[1] + tile[3]) // stride, 0

    @jax.custom_vjp
    def statistics(vgg_params: Mapping, image: jax.Array) -> Statistics:
        probe = jax.eval_shape(lambda x: extract_features(vgg_params, x, layers, pooling), image)
        maps = {layer: jnp.zeros(probe[layer].shape, jnp.float32) for layer in content_layers}
        grams = {layer: jnp.zeros((probe[layer].shape[-1],) * 2, jnp.float32) for layer in style_layers}
        for (region_h, inner_h, region_w, inner_w), tiles in groups(vgg_params, image):
            def body(carry, tile, region_h=region_h, inner_h=inner_h, region_w=region_w, inner_w=inner_w):
                maps, grams = carry
                region = jax.lax.dynamic_slice(image, (tile[0], tile[1], 0), (region_h, region_w, 3))
                crops, partial = tile_statistics(vgg_params, region, tile, inner_h, inner_w)
                maps = {layer: jax.lax.dynamic_update_slice(maps[layer], crops[layer], place(tile, layer))
                        for layer in content_layers}
                return (maps, {layer: grams[layer] + partial[layer] for layer in style_layers}), None

            (maps, grams), _ = jax.lax.scan(body, (maps, grams), jnp.asarray(tiles))
        return maps, grams

    def forward(vgg_params: Mapping, image: jax.Array) -> tuple[Statistics, tuple[Mapping, jax.Array]]:
        return statistics(vgg_params, image), (vgg_params, image)

    def backward(residuals: tuple[Mapping, jax.Array], cotangent: Statistics) -> tuple[Mapping, jax.Array]:
        vgg_params, image = residuals
        map_cotangents, gram_cotangents = cotangent
        gradient = jnp.zeros_like(image)
        for (region_h, inner_h, region_w, inner_w), tiles in groups(vgg_params, image):
            def body(gradient, tile, region_h=region_h, inner_h=inner_h, region_w=region_w, inner_w=inner_w):
                region = jax.lax.dynamic_slice(image, (tile[0], tile[1], 0), (region_h, region_w, 3))
                crops = {layer: jax.lax.dynamic_slice(map_cotangents[layer], place(tile, layer),
                                                      (inner_h // layer_stride(layer), inner_w // layer_stride(layer),
                                                       map_cotangents[layer].shape[-1]))
                         for layer in content_layers}
                _, vjp = jax.vjp(lambda x: tile_statistics(vgg_params, x, tile, inner_h, inner_w), region)
                (share,) = vjp((crops, gram_cotangents))
                current = jax.lax.dynamic_slice(gradient, (tile[0], tile[1], 0), (region_h, region_w, 3))
                return jax.lax.dynamic_update_slice(gradient, current + share, (tile[0], tile[1], 0)), None

            gradient, _ = jax.lax.scan(body, gradient, jnp.asarray(tiles))
        return jax.tree_util.tree_map(jnp.zeros_like, vgg_params), gradient  # the network is frozen

    statistics.defvjp(forward, backward)
    return statistics


__all__ = ["Statistics", "TilePlan", "plan_tiles", "receptive_radius", "spans", "tiled_statistics"]
