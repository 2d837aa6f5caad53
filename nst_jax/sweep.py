"""Batched style transfer: many weightings or many content images optimized as one vmapped, sharded program.

A batch of N images runs one compiled loop in which VGG's forward and backward passes see N images at once;
each member keeps its own optimizer state and line searches (``optimize.batch_solver``), so member i equals a
single ``stylize`` run with member i's settings. The batch is split across every device with a
``NamedSharding`` over a 1-D mesh, and into sub-batches when the estimated memory would not fit a device.

Several hosts: call ``jax.distributed.initialize()`` first in every process, then the same code; every
process computes the same inputs, ``jax.make_array_from_callback`` places each process's share, and the
results are gathered with ``multihost_utils.process_allgather``.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from nst_jax import image_io
from nst_jax.config import StyleConfig
from nst_jax.losses import LossInputs, LossTerms, LossWeights, StyleTargets
from nst_jax.memory import BatchPlan, plan_batch
from nst_jax.optimize import Optimization, Progress, minimize
from nst_jax.transfer import (
    ImageLike,
    StyleResult,
    check_shapes,
    color_inputs,
    content_shape,
    initial_image,
    loss_fn_for,
    loss_weights_for,
    output_colors,
    prepare_images,
    resolve_weights,
    solver_spec_for,
    targets_for,
)
from nst_jax.vgg import extract_features
from nst_jax.weights import VGGWeights

BATCH_AXIS = "batch"


# ----------------------------------------------------------------------------------------------- sharding


def batch_mesh() -> Mesh:
    """A 1-D mesh over every device, axis ``batch``."""
    return Mesh(np.asarray(jax.devices()), (BATCH_AXIS,))


def _place(value: Any, sharding: NamedSharding) -> jax.Array:
    """A host value as a global array with ``sharding`` (each process supplies its own shards)."""
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
    placed = map_by_axes(inputs, input_axes, lambda l: _place(l, split), lambda l: _place(l, replicated))
    return _place(x0, split), placed


def gather(array: jax.Array) -> np.ndarray:
    """A (possibly multi-host) global array as one host NumPy array."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        return np.asarray(multihost_utils.process_allgather(array, tiled=True))
    return np.asarray(array)


def _pad(array: np.ndarray, size: int) -> np.ndarray:
    """``array`` padded along axis 0 to ``size`` by repeating its last entry."""
    if array.shape[0] == size:
        return array
    return np.concatenate([array, np.repeat(array[-1:], size - array.shape[0], axis=0)])


# ----------------------------------------------------------------------------------------------- batched runs


def run_batch(
    x0: np.ndarray,
    inputs: LossInputs,
    input_axes: LossInputs,
    config: StyleConfig,
    *,
    callback: Callable[[Progress], None] | None = None,
) -> Optimization:
    """One batched, sharded optimization of the N images in ``x0``; the batch is padded to fill every device."""
    size = x0.shape[0]
    devices = len(jax.devices())
    padded = math.ceil(size / devices) * devices
    x, placed = shard_inputs(_pad(x0, padded), pad_batch(inputs, input_axes, padded), input_axes)
    return minimize(
        loss_fn_for(config), x, placed, spec=solver_spec_for(config), iterations=config.iterations,
        chunk_size=config.chunk_size, callback=callback, input_axes=input_axes,
    )


def member_results(
    run: Optimization, configs: Sequence[StyleConfig], inputs: LossInputs, input_axes: LossInputs,
    weights: VGGWeights, *, loss_config: StyleConfig | None = None,
) -> list[StyleResult]:
    """One ``StyleResult`` per member of a batched run (padding dropped), each with its member's config.

    ``loss_config``: the config the batch's loss and solver came from (default: the first member's).
    """
    from nst_jax.optimize import compile_solver

    loss_config = configs[0] if loss_config is None else loss_config
    images = gather(run.image)[: len(configs)]
    final = compile_solver(loss_fn_for(loss_config), solver_spec_for(loss_config), input_axes).terms(
        run.image, pad_batch(inputs, input_axes, run.image.shape[0])
    )
    final = LossTerms(*(gather(t) for t in final))
    results = []
    for index, config in enumerate(configs):
        status = run.status if run.status == "interrupted" else ("completed" if run.finite[index] else "non-finite")
        results.append(
            StyleResult(
                image=np.clip(images[index], 0.0, 1.0).astype(np.float32),
                losses=LossTerms(*(t[:, index] for t in run.history)),
                config=config,
                final_losses=LossTerms(*(float(t[index]) for t in final)),
                status=status,
                weights_checksum=weights.checksum,
                weights_pretrained=weights.pretrained,
                evaluations=run.evaluations[:, index],
                dispatches=run.dispatches,
                elapsed=run.elapsed,
            )
        )
    return results


def _in_content_colors(result: StyleResult, content: np.ndarray) -> StyleResult:
    """``result`` with its image in ``content``'s colours where its config asks (``transfer.output_colors``)."""
    return dataclasses.replace(result, image=output_colors(result.image, content, result.config.preserve_color))


def _one_scale(config: StyleConfig, what: str) -> None:
    """Raise ``ValueError`` if ``config`` asks for coarse-to-fine, which batched runs do not do."""
    if config.scales is not None:
        raise ValueError(f"{what} optimizes at one size; config.scales is not supported (use stylize per image)")


def pad_batch(inputs: LossInputs, input_axes: LossInputs, size: int) -> LossInputs:
    """``inputs`` with their batched parts padded to ``size`` members."""
    return map_by_axes(inputs, input_axes, lambda leaf: _pad(np.asarray(leaf), size), lambda leaf: leaf)


def _weight_grid(
    config: StyleConfig,
    style_weights: Sequence[float] | None,
    content_weights: Sequence[float] | None,
    tv_weights: Sequence[float] | None,
) -> list[StyleConfig]:
    """One config per weighting; lists of length 1 (or None: the config's value) broadcast."""
    columns = {
        "style_weight": list(style_weights) if style_weights is not None else [config.resolved_style_weight],
        "content_weight": list(content_weights) if content_weights is not None else [config.content_weight],
        "tv_weight": list(tv_weights) if tv_weights is not None else [config.tv_weight],
    }
    size = max(len(values) for values in columns.values())
    for name, values in columns.items():
        if len(values) not in (1, size):
            raise ValueError(f"{name} list has {len(values)} values; expected 1 or {size}")
    return [config.replace(**{name: float(values[i % len(values)]) for name, values in columns.items()})
            for i in range(size)]


def stylize_sweep(
    content: ImageLike,
    style: ImageLike | Sequence[ImageLike],
    *,
    style_weights: Sequence[float] | None = None,
    content_weights: Sequence[float] | None = None,
    tv_weights: Sequence[float] | None = None,
    config: StyleConfig = StyleConfig(),
    weights: VGGWeights | str | os.PathLike | None = None,
    callback: Callable[[Progress], None] | None = None,
    on_plan: Callable[[BatchPlan], None] | None = None,
) -> list[StyleResult]:
    """One batched optimization per weighting (alpha, beta, TV); result i equals ``stylize`` with weighting i.

    ``config.preserve_color`` applies as in ``stylize``; ``config.scales`` is refused (``ValueError``).
    """
    _one_scale(config, "stylize_sweep")
    weights = resolve_weights(weights)
    configs = _weight_grid(config, style_weights, content_weights, tv_weights)
    content_image, styles = prepare_images(content, style, config)
    seen_content, seen_styles = color_inputs(content_image, styles, config.preserve_color)
    targets = targets_for(weights, seen_content, seen_styles, config)
    x0 = initial_image(config, seen_content, seen_styles)
    input_axes = LossInputs(vgg_params=None, targets=None, weights=0)
    plan = plan_batch(len(configs), *content_image.shape[:2], config)
    if on_plan is not None:
        on_plan(plan)
    results: list[StyleResult] = []
    for start in range(0, len(configs), plan.per_run):
        members = configs[start : start + plan.per_run]
        loss_weights = LossWeights(
            content=np.asarray([c.content_weight for c in members], np.float32),
            style=np.asarray([c.resolved_style_weight for c in members], np.float32),
            tv=np.asarray([c.tv_weight for c in members], np.float32),
        )
        inputs = LossInputs(weights.params, targets, loss_weights)
        batch_x0 = np.broadcast_to(x0, (len(members),) + x0.shape).copy()
        run = run_batch(batch_x0, inputs, input_axes, config, callback=callback)
        results += [_in_content_colors(r, content_image) for r in member_results(run, members, inputs, input_axes,
                                                                                   weights)]
        if run.status == "interrupted":
            break
    return results


@dataclasses.dataclass(frozen=True)
class BatchItem:
    """One content image of ``stylize_batch``: its source, and its result or the reason it was skipped."""

    source: Any
    result: StyleResult | None = None
    error: str | None = None


def stylize_batch(
    contents: Sequence[ImageLike],
    style: ImageLike | Sequence[ImageLike],
    *,
    config: StyleConfig = StyleConfig(),
    weights: VGGWeights | str | os.PathLike | None = None,
    on_done: Callable[[BatchItem], None] | None = None,
    on_plan: Callable[[BatchPlan], None] | None = None,
) -> list[BatchItem]:
    """Stylize many content images with one style: same-size images run as one batch; bad images are skipped.

    ``config.preserve_color`` applies to each content as in ``stylize`` (the styles are then recoloured per content,
    so each member gets its own style targets); ``config.scales`` is refused (``ValueError``).
    """
    _one_scale(config, "stylize_batch")
    weights = resolve_weights(weights)
    items: list[BatchItem | None] = [None] * len(contents)
    groups: dict[tuple[int, int], list[tuple[int, np.ndarray]]] = {}
    for index, source in enumerate(contents):
        try:
            image = image_io.load_image(source)
            check_shapes(image.shape, config, parts=("content",))
            shape = content_shape(image.shape, config.image_size)
            image = image_io.resize_image(image, *shape)
        except (image_io.ImageError, ValueError) as error:
            items[index] = BatchItem(source, error=str(error))
            if on_done is not None:
                on_done(items[index])
            continue
        groups.setdefault(shape, []).append((index, image))
    for (height, width), members in groups.items():
        _, styles = prepare_images(members[0][1], style, config)
        shared = targets_for(weights, members[0][1], styles, config) if config.preserve_color is None else None
        plan = plan_batch(len(members), height, width, config)
        if on_plan is not None:
            on_plan(plan)
        for start in range(0, len(members), plan.per_run):
            part = members[start : start + plan.per_run]
            seen = [color_inputs(image, styles, config.preserve_color) for _, image in part]
            if config.preserve_color is None:  # the group's style targets, each member's content targets
                content_targets = _content_targets(weights, np.stack([c for c, _ in seen]), config)
                targets = StyleTargets(content=content_targets, style_grams=shared.style_grams)
                target_axes = StyleTargets(content=0, style_grams=None)
            else:  # the styles were recoloured to each content: every target is the member's own
                per_member = [targets_for(weights, c, s, config) for c, s in seen]
                targets = jax.tree_util.tree_map(lambda *leaves: np.stack(leaves), *per_member)
                target_axes = StyleTargets(content=0, style_grams=0)
            inputs = LossInputs(weights.params, targets, loss_weights_for(config))
            input_axes = LossInputs(vgg_params=None, targets=target_axes, weights=None)
            x0 = np.stack([initial_image(config, c, s) for c, s in seen])
            run = run_batch(x0, inputs, input_axes, config)
            results = member_results(run, [config] * len(part), inputs, input_axes, weights)
            for (index, image), result in zip(part, results):
                items[index] = BatchItem(contents[index], result=_in_content_colors(result, image))
                if on_done is not None:
                    on_done(items[index])
            if run.status == "interrupted":
                return [item for item in items if item is not None]
    return [item for item in items if item is not None]


def _content_targets(weights: VGGWeights, images: np.ndarray, config: StyleConfig) -> dict[str, jax.Array]:
    """Content-layer features of a batch of content images."""
    return extract_features(weights.params, images, config.content_layers, config.pooling)
