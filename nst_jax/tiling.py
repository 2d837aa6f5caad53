"""Exact tiled VGG statistics: what the loss reads of the features, with the whole image's numbers, in the memory of
one tile.

The loss reads VGG features only through the content layers' feature maps (small: 1/64 of the image's positions at
``relu4_2``) and the style layers' Gram matrices, sums of f f^T over positions. ``tiled_statistics`` computes both
with the image cut into tiles whose borders lie on multiples of the deepest layer's stride (pooling grids then align
with the whole image's): each tile is run through VGG with a halo at least the receptive-field radius of the deepest
layer, so its *interior* features equal the whole image's, untouched by the tile's own zero padding; the interiors'
content features are placed into whole-image maps and their f f^T added up (the rest of the region masked out).

Its gradient (a ``jax.custom_vjp``) runs each tile again and back-propagates the cotangents of the interior's
statistics (the cotangent map cropped to the interior; the Gram cotangent as it is, the partial Gram being linear in
it): the tiles' shares add up to the exact dL/dx. ``losses.loss_function`` reads these statistics instead of whole
feature maps when a ``LossSpec`` has a ``tile_size``, so every optimizer, ``vmap`` and the compiled loop use it
unchanged. Every tile reads a region of one shape (shifted inside the image at its borders, ``spans``), so all run in
one loop: device memory holds one region's activations at a time, plus the image-sized arrays (the image, its
gradient, the optimizer's state, the content maps and targets). With a shape per border tile, one loop each, XLA
kept every loop's buffers apart: 1484 MiB of temporaries for a 320x320 image in 128 px tiles (9 shapes), 379 MiB
for a 640x640 one (4 shapes), measured with ``memory_analysis()``.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from nst_jax.mesh import FULL_RESOLUTION_LAYERS, gram_sum, guided_gram_sum, spread_rows
from nst_jax.vgg import DEFAULT_PRECISION, architecture_of, extract_features, layer_names, layer_stride

Statistics = tuple[dict[str, jax.Array], dict[str, jax.Array]]
"""Content feature maps (whole image) by content layer, raw Gram sums (sum over positions of f f^T) by style layer
(guided: one per guidance channel, (R, C, C))."""

Masks = dict[str, jax.Array] | None
"""Guidance channels (R, h, w) by style layer, or None (plain Gram sums)."""


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


def spans(length: int, tile: int, halo: int, stride: int = 1) -> tuple[Span, ...]:
    """Tiles of interior ``tile`` (the last one shorter) along an axis of ``length``, each reading a region of one
    length for all: ``tile`` + 2 ``halo`` + ``length`` mod ``stride`` (or the whole axis), shifted inside the
    image at its ends, starting on multiples of ``stride`` (``tile`` and ``halo`` are multiples of it). One length,
    so that every tile is one shape: one compiled loop, whose buffers XLA reuses from tile to tile."""
    region = min(length, tile + 2 * halo + length % stride)
    starts = {begin: min(max(0, begin - halo), length - region) for begin in range(0, length, tile)}
    return tuple(Span(start, begin, min(length, begin + tile), start + region) for begin, start in starts.items())


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

    @property
    def region(self) -> tuple[int, int]:
        """(height, width) of the region every tile reads."""
        return self.rows[0].stop - self.rows[0].start, self.columns[0].stop - self.columns[0].start

    def tiles(self) -> np.ndarray:
        """Every tile as a row of (region row, region column, interior row offset in the region, interior height,
        interior column offset, interior width), in pixels."""
        return np.asarray([(row.start, column.start, row.begin - row.start, row.end - row.begin,
                            column.begin - column.start, column.end - column.begin)
                           for row in self.rows for column in self.columns], np.int32)


def plan_tiles(height: int, width: int, tile_size: int, layers: tuple[str, ...], architecture: str) -> TilePlan:
    """The tiling of an image: interiors of ``tile_size`` rounded up to the deepest layer's stride, halos of the
    receptive radius rounded up to it."""
    stride = max(layer_stride(layer) for layer in layers)
    tile = max(stride, math.ceil(tile_size / stride) * stride)
    halo = math.ceil(receptive_radius(layers, architecture) / stride) * stride
    return TilePlan(height, width, tile, halo, spans(height, tile, halo, stride), spans(width, tile, halo, stride))


def _add_at(whole: jax.Array, part: jax.Array, where: tuple) -> jax.Array:
    """``whole`` with ``part`` added to its block at ``where``."""
    current = jax.lax.dynamic_slice(whole, where, part.shape)
    return jax.lax.dynamic_update_slice(whole, current + part, where)


def _each_tile(body: Callable[[Any, jax.Array], Any], carry: Any, tiles: np.ndarray) -> Any:
    """``carry`` passed through ``body(carry, tile)`` for each row of ``tiles``, in one loop."""
    tiles = jnp.asarray(tiles)
    return jax.lax.fori_loop(0, tiles.shape[0], lambda index, carry: body(carry, tiles[index]), carry)


def _interior(features: jax.Array, tile: jax.Array, stride: int) -> jax.Array:
    """A region's features at ``stride`` with everything outside the tile's interior set to zero: the interior's
    rows [offset, offset + size // stride) of the region's, offsets and sizes in pixels (``TilePlan.tiles``)."""
    rows = jnp.arange(features.shape[0])[:, None, None]
    columns = jnp.arange(features.shape[1])[None, :, None]
    inside = ((rows >= tile[2] // stride) & (rows < tile[2] // stride + tile[3] // stride)
              & (columns >= tile[4] // stride) & (columns < tile[4] // stride + tile[5] // stride))
    return jnp.where(inside, features, 0.0)


def remat_full_resolution(function: Callable) -> Callable:
    """``function`` (of VGG parameters and an image) whose backward pass recomputes VGG's full-resolution
    activations (``mesh.FULL_RESOLUTION_LAYERS``) from the image instead of keeping them from the forward pass."""
    return jax.checkpoint(function, policy=jax.checkpoint_policies.save_anything_except_these_names(
        *FULL_RESOLUTION_LAYERS))


def tiled_statistics(
    vgg_params: Mapping, image: jax.Array, content_layers: tuple[str, ...], style_layers: tuple[str, ...],
    pooling: str, tile_size: int, *, remat: bool = False, spatial: bool = False, precision: str = DEFAULT_PRECISION,
    masks: Mapping[str, jax.Array] | None = None,
) -> Statistics:
    """The whole image's features at ``content_layers`` and raw Gram sums at ``style_layers``, computed tile by tile;
    differentiable with respect to ``image`` (tile by tile too). ``remat``: each tile's full-resolution activations
    recomputed in its backward pass; ``spatial``: each tile split along its height over every device;
    ``precision``: VGG's convolutions' (``vgg.PRECISIONS``); ``masks``: guidance channels (R, h, w) at each style
    layer's resolution, whose guided sums (``mesh.guided_gram_sum``) replace the Gram sums."""
    statistics = _statistics(content_layers, style_layers, pooling, tile_size, remat, spatial, precision)
    return statistics(vgg_params, image, None if masks is None else dict(masks))


@functools.lru_cache(maxsize=64)
def _statistics(content_layers: tuple[str, ...], style_layers: tuple[str, ...], pooling: str, tile_size: int,
                remat: bool, spatial: bool, precision: str):
    """``tiled_statistics`` for one choice of layers, pooling, tile size, remat and spreading, with its custom
    gradient."""
    layers = tuple(dict.fromkeys(content_layers + style_layers))

    def tiling(vgg_params: Mapping, image: jax.Array) -> TilePlan:
        return plan_tiles(image.shape[0], image.shape[1], tile_size, layers, architecture_of(vgg_params))

    def tile_statistics(vgg_params: Mapping, region: jax.Array, tile: jax.Array, masks: Masks) -> Statistics:
        """A region's features with all but the tile's interior zeroed at the content layers, and the interior's
        partial Gram sums (guided by the region's part of ``masks``, if any)."""
        features = extract_features(vgg_params, spread_rows(region) if spatial else region, layers, pooling, precision)
        inner = {layer: _interior(features[layer], tile, layer_stride(layer)) for layer in layers}
        if masks is None:
            sums = {layer: gram_sum(inner[layer], spread=spatial) for layer in style_layers}
        else:
            sums = {layer: guided_gram_sum(inner[layer], jax.lax.dynamic_slice(
                masks[layer], (0, *place(tile, layer)[:2]), (masks[layer].shape[0], *inner[layer].shape[:2])))
                for layer in style_layers}
        return {layer: inner[layer] for layer in content_layers}, sums

    def place(tile: jax.Array, layer: str) -> tuple[jax.Array, jax.Array, int]:
        """Where a tile's region lies in ``layer``'s whole-image map: (row, column, 0)."""
        return tile[0] // layer_stride(layer), tile[1] // layer_stride(layer), 0

    @jax.custom_vjp
    def statistics(vgg_params: Mapping, image: jax.Array, masks: Masks) -> Statistics:
        probe = jax.eval_shape(lambda x: extract_features(vgg_params, x, layers, pooling, precision), image)
        maps = {layer: jnp.zeros(probe[layer].shape, jnp.float32) for layer in content_layers}
        regions = () if masks is None else (next(iter(masks.values())).shape[0],)
        grams = {layer: jnp.zeros((*regions, *(probe[layer].shape[-1],) * 2), jnp.float32) for layer in style_layers}
        plan = tiling(vgg_params, image)

        def body(carry: Statistics, tile: jax.Array) -> Statistics:
            maps, grams = carry
            region = jax.lax.dynamic_slice(image, (tile[0], tile[1], 0), (*plan.region, 3))
            inner, partial = tile_statistics(vgg_params, region, tile, masks)
            # Interiors do not overlap: adding each region's masked map writes every position exactly once.
            maps = {layer: _add_at(maps[layer], inner[layer], place(tile, layer)) for layer in content_layers}
            return maps, {layer: grams[layer] + partial[layer] for layer in style_layers}

        return _each_tile(body, (maps, grams), plan.tiles())

    def forward(vgg_params: Mapping, image: jax.Array, masks: Masks) -> tuple[Statistics, tuple]:
        return statistics(vgg_params, image, masks), (vgg_params, image, masks)

    def backward(residuals: tuple, cotangent: Statistics) -> tuple[Mapping, jax.Array, Masks]:
        vgg_params, image, masks = residuals
        map_cotangents, gram_cotangents = cotangent
        plan = tiling(vgg_params, image)

        def body(gradient: jax.Array, tile: jax.Array) -> jax.Array:
            region = jax.lax.dynamic_slice(image, (tile[0], tile[1], 0), (*plan.region, 3))
            probe = jax.eval_shape(lambda x: tile_statistics(vgg_params, x, tile, masks), region)[0]
            maps = {layer: jax.lax.dynamic_slice(map_cotangents[layer], place(tile, layer), probe[layer].shape)
                    for layer in content_layers}
            of_region = lambda x: tile_statistics(vgg_params, x, tile, masks)  # noqa: E731
            _, vjp = jax.vjp(remat_full_resolution(of_region) if remat else of_region, region)
            (share,) = vjp((maps, gram_cotangents))
            return _add_at(gradient, share, (tile[0], tile[1], 0))

        gradient = _each_tile(body, jnp.zeros_like(image), plan.tiles())
        zeros = functools.partial(jax.tree_util.tree_map, jnp.zeros_like)
        return zeros(vgg_params), gradient, zeros(masks)  # the network and the masks are constants

    statistics.defvjp(forward, backward)
    return statistics


__all__ = ["Statistics", "TilePlan", "plan_tiles", "receptive_radius", "remat_full_resolution", "spans",
           "tiled_statistics"]
