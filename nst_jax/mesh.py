"""The device meshes runs are spread over: members of a batch (axis ``batch``) or rows of one image (axis
``space``), over every device of every process (after ``jax.distributed.initialize()``, every host's)."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

BATCH_AXIS = "batch"
SPACE_AXIS = "space"

FULL_RESOLUTION_LAYERS = ("conv1_1", "relu1_1", "conv1_2", "relu1_2")
"""VGG's layers at the input's resolution: 4 of its 64-channel maps, about half of all activations (``remat``)."""


@functools.lru_cache(maxsize=4)
def device_mesh(axis: str) -> Mesh:
    """A 1-D mesh named ``axis`` over every device (cached: one per process and axis)."""
    return Mesh(np.asarray(jax.devices()), (axis,))


def spread_rows(image: jax.Array) -> jax.Array:
    """``image`` (H, W, C) constrained, inside a compiled function, to be split along its height over every device:
    XLA then partitions VGG's convolutions and poolings with halo exchanges and a Gram matrix becomes a sum of
    per-device C x C matrices (an all-reduce). Heights that do not divide evenly are padded by XLA internally."""
    return jax.lax.with_sharding_constraint(image, NamedSharding(device_mesh(SPACE_AXIS), PartitionSpec(SPACE_AXIS)))


def row_sharding(height: int) -> NamedSharding:
    """Where an image-sized array of ``height`` rows lives when a run is spread spatially: split along its rows
    over every device when they divide evenly (``jax.Array``s placed from the host must), else replicated (its
    activations are still split, by ``spread_rows``)."""
    mesh = device_mesh(SPACE_AXIS)
    split = height % mesh.devices.size == 0
    return NamedSharding(mesh, PartitionSpec(SPACE_AXIS) if split else PartitionSpec())


def gram_sum(features: jax.Array, *, spread: bool) -> jax.Array:
    """sum over positions of f f^T of (H, W, C) features. ``spread`` (rows split over devices): as a contraction
    over (H, W), which stays a sum of per-device Gram matrices, where the product of the (H*W, C) reshape made XLA
    gather unevenly split rows (341x512 px on 4 devices: 169 vs 270 MiB of temporaries per device, 650 on one).
    Otherwise the reshape's product (``losses.gram_matrix``'s), whose summation order the tests of batched against
    single runs were calibrated on (the contraction's order changed sweep members by up to 8e-3 after 20
    iterations)."""
    if spread:
        return jnp.einsum("hwc,hwd->cd", features, features)
    flat = features.reshape(-1, features.shape[-1])
    return flat.T @ flat


def guided_gram_sum(features: jax.Array, masks: jax.Array) -> jax.Array:
    """sum over positions of (m f)(m f)^T of (H, W, C) features for each of the (R, H, W) guidance channels ``masks``
    (Gatys et al. 2017's guided Gram matrices, unnormalized): (R, C, C). A contraction over (H, W), so it stays a
    sum of per-device matrices where rows are split."""
    return jnp.einsum("rhw,hwc,hwd->rcd", jnp.square(masks), features, features)


def agree_min(value: int) -> int:
    """The least of every process's ``value`` (each must call this): memory-based choices (tiles, sub-batches)
    made from it are the same in every process, so all of them compile and run the same programs."""
    if jax.process_count() == 1:
        return value
    from jax.experimental import multihost_utils  # only multi-process runs need it

    # float32 (JAX's default precision): bytes to 7 significant digits, the same in every process
    return int(np.min(multihost_utils.process_allgather(np.float32(value))))


def gather(array: jax.Array) -> np.ndarray:
    """A global array as one host NumPy array in every process: across processes (after
    ``jax.distributed.initialize()``) by an all-gather, since a process cannot read other processes' devices."""
    if jax.process_count() > 1 and not array.is_fully_addressable and not array.is_fully_replicated:
        from jax.experimental import multihost_utils  # only multi-process runs need it

        return np.asarray(multihost_utils.process_allgather(array, tiled=True))
    return np.asarray(array)


__all__ = ["BATCH_AXIS", "FULL_RESOLUTION_LAYERS", "SPACE_AXIS", "agree_min", "device_mesh", "gather", "gram_sum",
           "guided_gram_sum", "row_sharding", "spread_rows"]
