"""Batched style transfer: many weightings of one image (``stylize_sweep``) or many content images
(``stylize_batch``) optimized as one vmapped, sharded program per sub-batch.

Member i equals a single ``stylize`` run with member i's settings (each keeps its own optimizer state and line
searches). The batch is split across every device (``nst_jax.batching``), and into sub-batches when the estimated
memory would not fit a device (``nst_jax.memory.plan_batch``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np

from nst_jax import image_io
from nst_jax.config import StyleConfig
from nst_jax.image_io import ImageSource
from nst_jax.losses import LossInputs, LossWeights, StyleTargets, layer_masks
from nst_jax.memory import BatchPlan, plan_batch
from nst_jax.optimize import Progress, Status
from nst_jax.problem import (
    Part,
    VGGArgument,
    as_list,
    check_shapes,
    color_inputs,
    configure_for,
    content_shape,
    initial_image,
    loss_weights_for,
    prepare_images,
    region_masks,
    resolve_vgg,
    run_parts,
    source_masks,
    spans,
    targets_for,
)
from nst_jax.result import StyleResult
from nst_jax.vgg import extract_features
from nst_jax.weights import VGGWeights


def _one_scale(config: StyleConfig, what: str) -> None:
    """Raise ``ValueError`` if ``config`` asks for coarse-to-fine or for rows split over the devices, which
    batched runs do not do (they split their members)."""
    if config.scales is not None:
        raise ValueError(f"{what} optimizes at one size; config.scales is not supported (use stylize per image)")
    if config.shard == "spatial":
        raise ValueError(f"{what} spreads its members over the devices; shard spatial (one image's rows) is for "
                         f"stylize (use shard batch, auto or none)")


def _weight_grid(
    config: StyleConfig,
    style_weights: Sequence[float] | None,
    content_weights: Sequence[float] | None,
    tv_weights: Sequence[float] | None,
) -> list[StyleConfig]:
    """One config per weighting; lists of length 1 (or None: the config's value) broadcast."""
    columns = {
        "style_weight": list(style_weights) if style_weights is not None else [config.resolved_style_weight],
        "content_weight": list(content_weights) if content_weights is not None else [config.resolved_content_weight],
        "tv_weight": list(tv_weights) if tv_weights is not None else [config.tv_weight],
    }
    size = max(len(values) for values in columns.values())
    for name, values in columns.items():
        if len(values) not in (1, size):
            raise ValueError(f"{name} list has {len(values)} values; expected 1 or {size}")
    return [config.replace(**{name: float(values[i % len(values)]) for name, values in columns.items()})
            for i in range(size)]


def stylize_sweep(
    content: ImageSource,
    style: ImageSource | Sequence[ImageSource],
    *,
    style_weights: Sequence[float] | None = None,
    content_weights: Sequence[float] | None = None,
    tv_weights: Sequence[float] | None = None,
    config: StyleConfig = StyleConfig(),
    vgg: VGGArgument = None,
    callback: Callable[[Progress], None] | None = None,
    on_plan: Callable[[BatchPlan], None] | None = None,
    style_masks: Sequence[ImageSource] | None = None,
    style_source_masks: Sequence[ImageSource | None] | None = None,
    weights: VGGArgument = None,
) -> list[StyleResult]:
    """One batched optimization per weighting (alpha, beta, TV); result i equals ``stylize`` with weighting i.

    ``config.preserve_color``, ``style_masks`` and ``style_source_masks`` apply as in ``stylize``;
    ``config.scales`` is refused (``ValueError``). ``vgg`` as in ``stylize``.
    """
    _one_scale(config, "stylize_sweep")
    vgg = resolve_vgg(vgg, weights, caller="stylize_sweep")
    config = configure_for(config, vgg)
    configs = _weight_grid(config, style_weights, content_weights, tv_weights)
    content_image, styles = prepare_images(content, style, config)
    seen_content, seen_styles = color_inputs(content_image, styles, config.preserve_color)
    targets = targets_for(vgg, seen_content, seen_styles, config,
                          regions=region_masks(style_masks, len(styles), content_image.shape),
                          sources=source_masks(style_source_masks, styles))
    x0 = initial_image(config, seen_content, seen_styles)
    plan = plan_batch(len(configs), *content_image.shape[:2], config)
    if on_plan is not None:
        on_plan(plan)

    def part(members: Sequence[StyleConfig]) -> Part:
        loss_weights = LossWeights(
            content=np.asarray([c.resolved_content_weight for c in members], np.float32),
            style=np.asarray([c.resolved_style_weight for c in members], np.float32),
            tv=np.asarray([c.tv_weight for c in members], np.float32),
        )
        return Part(
            x0=np.broadcast_to(x0, (len(members),) + x0.shape).copy(),
            inputs=LossInputs(vgg.params, targets, loss_weights),
            input_axes=LossInputs(vgg_params=None, targets=None, weights=0),
            configs=members,
            contents=[content_image] * len(members),
        )

    parts = (part(configs[span]) for span in spans(len(configs), plan.per_run))
    return [result for results in run_parts(parts, vgg, config, callback=callback) for result in results]


@dataclasses.dataclass(frozen=True)
class BatchItem:
    """One content image of ``stylize_batch``: its source, and its result or the reason it was skipped."""

    source: Any
    result: StyleResult | None = None
    error: str | None = None


def stylize_batch(
    contents: Sequence[ImageSource],
    style: ImageSource | Sequence[ImageSource],
    *,
    config: StyleConfig = StyleConfig(),
    vgg: VGGArgument = None,
    on_done: Callable[[BatchItem], None] | None = None,
    on_plan: Callable[[BatchPlan], None] | None = None,
    callback: Callable[[Progress], None] | None = None,
    style_masks: Sequence[ImageSource] | Sequence[Sequence[ImageSource]] | None = None,
    style_source_masks: Sequence[ImageSource | None] | None = None,
    weights: VGGArgument = None,
) -> list[BatchItem]:
    """Stylize many content images with one style: same-size images run as one batch; bad images are skipped.

    ``config.preserve_color`` applies to each content as in ``stylize`` (the styles are then recoloured per content,
    so each member gets its own style targets); ``config.scales`` is refused (``ValueError``). ``style_masks``: one
    mask per style image for every content, or (a list of such lists, one per content) each content's own; a
    content whose own masks cannot be read is skipped like a bad image. ``style_source_masks`` as in ``stylize``.
    ``vgg`` as in ``stylize``. ``callback`` sees each sub-batch's progress, every sub-batch from iteration 1 (its
    image holds the sub-batch's members, padded to fill the devices).
    """
    _one_scale(config, "stylize_batch")
    vgg = resolve_vgg(vgg, weights, caller="stylize_batch")
    config = configure_for(config, vgg)
    count = len(as_list(style))
    own_masks = _own_masks(style_masks, len(contents))
    items: list[BatchItem | None] = [None] * len(contents)

    def done(index: int, item: BatchItem) -> None:
        items[index] = item
        if on_done is not None:
            on_done(item)

    groups: dict[tuple[int, int], list[tuple[int, np.ndarray, np.ndarray | None]]] = {}
    for index, source in enumerate(contents):
        try:
            image = image_io.load_image(source)
            check_shapes(image.shape, config, parts=("content",))
            shape = content_shape(image.shape, config.image_size)
            image = image_io.resize_image(image, *shape)
            regions = region_masks(style_masks[index], count, shape) if own_masks else None
        except ValueError as error:  # image_io.ImageError and ConfigError are ValueErrors
            done(index, BatchItem(source, error=str(error)))
            continue
        groups.setdefault(shape, []).append((index, image, regions))
    for (height, width), members in groups.items():
        _, styles = prepare_images(members[0][1], style, config)
        sources = source_masks(style_source_masks, styles)
        shared = None if own_masks else region_masks(style_masks, count, (height, width))
        if not own_masks:
            members = [(index, image, shared) for index, image, _ in members]
        # The group's style targets, unless the styles are recoloured to each content (then each member has its own).
        grams = None
        if config.preserve_color is None:
            grams = targets_for(vgg, members[0][1], styles, config, regions=members[0][2], sources=sources).style_grams
        plan = plan_batch(len(members), height, width, config)
        if on_plan is not None:
            on_plan(plan)
        member_spans = list(spans(len(members), plan.per_run))
        parts = (_batch_part(members[span], styles, sources, grams, vgg, config, own_regions=own_masks)
                 for span in member_spans)
        for span, results in zip(member_spans, run_parts(parts, vgg, config, callback=callback)):
            for (index, _, _), result in zip(members[span], results):
                done(index, BatchItem(contents[index], result=result))
            if any(result.status == Status.INTERRUPTED for result in results):
                return [item for item in items if item is not None]
    return [item for item in items if item is not None]


def _own_masks(style_masks: Sequence[Any] | None, contents: int) -> bool:
    """Whether ``style_masks`` gives each content its own masks (a list per content) rather than one set for all;
    ``ValueError`` for lists whose count is not the contents'."""
    if style_masks is None or not any(isinstance(masks, (list, tuple)) for masks in style_masks):
        return False
    if len(style_masks) != contents or not all(isinstance(masks, (list, tuple)) for masks in style_masks):
        raise ValueError(f"style_masks holds {len(style_masks)} entries for {contents} content image(s): give one list "
                         "of masks (one per style image) per content image, or one mask per style image for all")
    return True


def _batch_part(members: Sequence[tuple[int, np.ndarray, np.ndarray | None]], styles: Sequence[np.ndarray],
                sources: Sequence[np.ndarray | None] | None, grams: dict[str, jax.Array] | None, vgg: VGGWeights,
                config: StyleConfig, *, own_regions: bool) -> Part:
    """The sub-batch of ``members`` (index, content image, style regions or None): each member's own content
    targets, and the group's style ``grams``, or (None) each member's own, computed from the styles recoloured to
    its content; the style regions each member's own (``own_regions``) or the group's."""
    seen = [color_inputs(image, styles, config.preserve_color) for _, image, _ in members]
    regions = [member_regions for _, _, member_regions in members]
    region_axis = 0 if own_regions else None
    if grams is not None:
        content_targets = _content_targets(vgg, np.stack([content for content, _ in seen]), config)
        layers = None
        if regions[0] is not None:
            per_member = [layer_masks(member_regions, config.style_layers) for member_regions in regions]
            layers = jax.tree_util.tree_map(lambda *leaves: np.stack(leaves), *per_member) if own_regions \
                else per_member[0]
        targets = StyleTargets(content=content_targets, style_grams=grams, regions=layers)
        target_axes = StyleTargets(content=0, style_grams=None, regions=region_axis)
    else:
        per_member = [targets_for(vgg, content, recoloured, config, regions=member_regions, sources=sources)
                      for (content, recoloured), member_regions in zip(seen, regions)]
        targets = jax.tree_util.tree_map(lambda *leaves: np.stack(leaves), *per_member)
        target_axes = StyleTargets(content=0, style_grams=0, regions=None if regions[0] is None else 0)
    return Part(
        x0=np.stack([initial_image(config, content, recoloured) for content, recoloured in seen]),
        inputs=LossInputs(vgg.params, targets, loss_weights_for(config)),
        input_axes=LossInputs(vgg_params=None, targets=target_axes, weights=None),
        configs=[config] * len(members),
        contents=[image for _, image, _ in members],
    )


def _content_targets(vgg: VGGWeights, images: np.ndarray, config: StyleConfig) -> dict[str, jax.Array]:
    """Content-layer features of a batch of content images."""
    return extract_features(vgg.params, images, config.content_layers, config.pooling)
