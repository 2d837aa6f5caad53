"""Batched runs on every device: N images padded to fill the devices, split over a 1-D mesh, gathered back.

A batch of N images runs one compiled loop in which VGG's forward and backward passes see N images at once;
each member keeps its own optimizer state and line searches (``optimize.batch_solver``). Several hosts: call
``jax.distributed.initialize()`` first in every process, then the same code; every process computes the same
inputs, ``jax.make_array_from_callback`` places each process's share, and the results are gathered with
``mesh.gather``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from nst_jax.losses import LossInputs, LossSpec
from nst_jax.mesh import BATCH_AXIS, SPACE_AXIS, device_mesh, row_sharding
from nst_jax.optimize import Optimization, Progress, SolverSpec, minimize


def batch_mesh() -> Mesh:
    """A 1-D mesh over every device, axis ``batch``."""
    return device_mesh(BATCH_AXIS)


def _place(value: Any, sharding: NamedSharding) -> jax.Array:
    """A host value as a global array with ``sharding`` (each process supplies its own shards); an array already
    spread over other processes' devices (targets computed with rows split) is moved there on the devices."""
    if isinstance(value, jax.Array) and not value.is_fully_addressable:
        return jax.device_put(value, sharding)
    host = np.asarray(value)
    return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])


def map_by_axes(tree: Any, axes: Any, batched: Callable[[Any], Any], shared: Callable[[Any], Any]) -> Any:
    """Apply ``batched`` to the leaves of subtrees whose vmap axis is 0 and ``shared`` to those with None."""
    if axes is None:
        return jax.tree_util.tree_map(shared, tree)
    if axes == 0 and not isinstance(axes, tuple):
        return jax.tree_util.tree_map(batched, tree)
    return type(tree)(*(map_by_axes(sub, axis, batched, shared) for sub, axis in zip(tree, axes)))


def shard_inputs(x0: np.ndarray, inputs: LossInputs, input_axes: LossInputs) -> tuple[jax.Array, LossInputs]:
    """``x0`` and the batched parts of ``inputs`` split over the mesh's batch axis; the rest replicated."""
    mesh = batch_mesh()
    split = NamedSharding(mesh, PartitionSpec(BATCH_AXIS))
    replicated = NamedSharding(mesh, PartitionSpec())
    placed = map_by_axes(inputs, input_axes, lambda leaf: _place(leaf, split), lambda leaf: _place(leaf, replicated))
    return _place(x0, split), placed


def place_rows(x0: np.ndarray, inputs: LossInputs) -> tuple[jax.Array, LossInputs]:
    """One image ``x0`` split by rows over every device (``mesh.row_sharding``) and ``inputs`` on every device: a
    run spread spatially."""
    replicated = NamedSharding(device_mesh(SPACE_AXIS), PartitionSpec())
    return _place(x0, row_sharding(np.shape(x0)[0])), jax.tree_util.tree_map(lambda leaf: _place(leaf, replicated),
                                                                             inputs)


def _pad(array: np.ndarray, size: int) -> np.ndarray:
    """``array`` padded along axis 0 to ``size`` by repeating its last entry."""
    if array.shape[0] == size:
        return array
    return np.concatenate([array, np.repeat(array[-1:], size - array.shape[0], axis=0)])


def pad_batch(inputs: LossInputs, input_axes: LossInputs, size: int) -> LossInputs:
    """``inputs`` with their batched parts padded to ``size`` members."""
    return map_by_axes(inputs, input_axes, lambda leaf: _pad(np.asarray(leaf), size), lambda leaf: leaf)


def run_batch(
    x0: np.ndarray,
    inputs: LossInputs,
    input_axes: LossInputs,
    loss: LossSpec,
    solver: SolverSpec,
    *,
    iterations: int,
    chunk_size: int,
    callback: Callable[[Progress], None] | None = None,
    progress_seconds: float | None = None,
    spread: bool = True,
) -> Optimization:
    """One batched optimization of the N images in ``x0``, its members split over every device (the batch padded to
    fill them) unless not ``spread`` (then on the default device)."""
    if not spread:
        return minimize(loss, x0, inputs, spec=solver, iterations=iterations, chunk_size=chunk_size,
                        callback=callback, input_axes=input_axes, progress_seconds=progress_seconds)
    size = x0.shape[0]
    devices = len(jax.devices())
    padded = math.ceil(size / devices) * devices
    x, placed = shard_inputs(_pad(x0, padded), pad_batch(inputs, input_axes, padded), input_axes)
    return minimize(loss, x, placed, spec=solver, iterations=iterations, chunk_size=chunk_size, callback=callback,
                    input_axes=input_axes, progress_seconds=progress_seconds)
