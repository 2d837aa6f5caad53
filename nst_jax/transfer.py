"""``stylize``: one content image rendered in the style of one or more style images (Gatys et al. 2016)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

from nst_jax import image_io
from nst_jax.batching import place_rows
from nst_jax.config import StyleConfig
from nst_jax.image_io import ImageSource
from nst_jax.losses import LossInputs
from nst_jax.memory import plan_run
from nst_jax.mesh import gather
from nst_jax.optimize import Optimization, Progress, Status, minimize
from nst_jax.problem import (
    VGGArgument,
    as_list,
    color_inputs,
    configure_for,
    initial_image,
    loss_spec_for,
    loss_weights_for,
    prepare_images,
    region_masks,
    resolve_vgg,
    results_from,
    solver_spec_for,
    source_masks,
    targets_for,
)
from nst_jax.result import StyleResult


def stylize(
    content: ImageSource,
    style: ImageSource | Sequence[ImageSource],
    *,
    vgg: VGGArgument = None,
    config: StyleConfig = StyleConfig(),
    callback: Callable[[Progress], None] | None = None,
    style_masks: Sequence[ImageSource] | None = None,
    style_source_masks: Sequence[ImageSource | None] | None = None,
    weights: VGGArgument = None,
) -> StyleResult:
    """Render ``content`` in the style of ``style`` (one image or a list, blended) by Gatys et al.'s method.

    ``vgg``: the network (``VGGWeights``, an HDF5 path, or None for the default file; ``weights=`` is its
    deprecated name). ``config.scales``: coarse to fine, ``config.iterations_per_scale`` at each size, each result
    upsampled (Lanczos) to start the next; every size is checked before any optimization. The result's ``losses``
    and ``evaluations`` concatenate the scales' (``scale_iterations`` says how many records came from each); its
    ``final_losses`` are those at the last scale run. A run that stops early (non-finite, interrupted) skips the
    remaining scales and its image is upsampled to the output size. ``callback`` sees iterations counted over all
    scales.

    ``config.preserve_color`` (see ``problem.color_inputs``): with ``luminance`` the optimized image is grey (its
    losses are the result's), and the returned image is its luminance with the content's chrominance, clipped.

    Spatial control (Gatys et al. 2017): ``style_masks``, one greyscale image per style image (white where its style
    applies on the output; resized to the output at every scale), match each style's Gram matrices only by the
    output's features in its region (guided Gram matrices normalized by the region's area); the content loss
    applies everywhere, overlapping masks blend, and places no mask covers get the content loss only.
    ``style_source_masks`` (per style image, None for all of it) select the part of each style image whose
    statistics are its target. ``ValueError`` for a wrong count or an unreadable mask, and with
    ``config.style_blend_weights``.
    """
    vgg = resolve_vgg(vgg, weights, caller="stylize")
    config = configure_for(config, vgg)
    content_image = image_io.load_image(content)
    config, spatial = planned(content_image.shape, config)
    style_images = [image_io.load_image(image) for image in as_list(style)]
    stages = [prepare_images(content_image, style_images, config, size=size)
              for size in config.scales or (config.image_size,)]
    total = config.total_iterations
    optimizations: list[Optimization] = []
    for (stage_content, stage_styles), iterations in zip(stages, config.iterations_per_scale):
        seen_content, seen_styles = color_inputs(stage_content, stage_styles, config.preserve_color)
        targets = targets_for(vgg, seen_content, seen_styles, config, spatial=spatial,
                              regions=region_masks(style_masks, len(stage_styles), stage_content.shape),
                              sources=source_masks(style_source_masks, stage_styles))
        inputs = LossInputs(vgg.params, targets, loss_weights_for(config))
        if optimizations:
            x0 = image_io.resize_image(gather(optimizations[-1].image), *stage_content.shape[:2])
        else:
            x0 = initial_image(config, seen_content, seen_styles)
        if spatial:
            x0, inputs = place_rows(x0, inputs)
        done = sum(optimization.iterations for optimization in optimizations)
        elapsed = sum(optimization.elapsed for optimization in optimizations)
        optimizations.append(
            minimize(
                loss_spec_for(config, spatial=spatial), x0, inputs, spec=solver_spec_for(config), iterations=iterations,
                chunk_size=config.chunk_size, callback=_counting_all_scales(callback, done, total, elapsed),
                progress_seconds=config.progress_seconds,
            )
        )
        if optimizations[-1].status != Status.COMPLETED:
            break
    return results_from(optimizations, [config], inputs, [stages[-1][0]], vgg)[0]


def planned(shape: tuple[int, ...], config: StyleConfig) -> tuple[StyleConfig, bool]:
    """``config`` with the tile size ``shard`` ``auto`` picks (``memory.plan_run``; unchanged if it needs none or
    one was given), and whether the image's rows are split over the devices."""
    if config.shard in ("none", "batch"):  # one image: nothing to batch
        return config, False
    plan = plan_run(shape, config, largest=False)
    if config.tile_size is None and plan.tile_size is not None:
        config = config.replace(tile_size=plan.tile_size)
    return config, plan.shards > 1


def _counting_all_scales(
    callback: Callable[[Progress], None] | None, done: int, total: int, elapsed: float
) -> Callable[[Progress], None] | None:
    """``callback`` receiving progress counted over every scale: ``done`` iterations and ``elapsed`` s before."""
    if callback is None:
        return None
    return lambda progress: callback(
        dataclasses.replace(
            progress, iteration=done + progress.iteration, iterations=total, elapsed=elapsed + progress.elapsed
        )
    )
