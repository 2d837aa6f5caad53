"""Set-up: from a ``StyleConfig`` and images to what the optimizer runs, and from its runs back to results.

* Sizes (``content_shape``, ``style_shape``, ``stage_shapes``, ``check_shapes``) work on shapes, so every size of a
  run is checked before any image is decoded or resized.
* Images (``prepare_images``, ``color_inputs``, ``output_colors``, ``initial_image``).
* The problem (``loss_spec_for``, ``solver_spec_for``, ``loss_weights_for``, ``targets_for``): static choices as
  hashable specs (the compile keys), everything a sweep varies as traced arrays.
* Results: ``results_from`` builds every ``StyleResult``, of a single run or of each member of a batched one;
  ``run_parts`` is the one loop over sub-batches that sweeps, batches and reconstructions share.
"""

from __future__ import annotations

import dataclasses
import math
import os
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from nst_jax import color, image_io
from nst_jax.batching import pad_batch, run_batch
from nst_jax.config import ConfigError, StyleConfig, field
from nst_jax.image_io import ImageSource
from nst_jax.losses import LossInputs, LossSpec, LossTerms, LossWeights, StyleTargets, compute_targets, loss_function
from nst_jax.mesh import gather
from nst_jax.optimize import LossFn, Optimization, Progress, SolverSpec, Status, compile_solver
from nst_jax.result import StyleResult
from nst_jax.vgg import CAFFE_BGR_MEAN, LAYER_NAMES, min_input_size, validate_layers
from nst_jax.weights import VGGWeights, load_weights

VGGArgument = VGGWeights | str | os.PathLike | None
"""What the API takes as the network: loaded weights, the path of an HDF5 file, or None for the default file."""


# ----------------------------------------------------------------------------------------------- sizes


def content_shape(shape: Sequence[int], image_size: int) -> tuple[int, int]:
    """(height, width) of an image of ``shape`` (height, width, ...) with its longest side resized to ``image_size``."""
    height, width = shape[:2]
    scale = image_size / max(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


def style_side(content: tuple[int, int], style_scale: float) -> int:
    """The longest side of the style images beside a content of (height, width) ``content``: the content's longest
    side times ``style_scale``."""
    return max(1, round(max(content) * style_scale))


def style_shape(style: Sequence[int], content: tuple[int, int], style_scale: float) -> tuple[int, int]:
    """(height, width) a style image of original ``style`` (height, width, ...) is resized to beside a content of
    (height, width) ``content``: its own aspect ratio, its longest side ``style_side``, as jcjohnson/neural-style and
    neural-style-pt size it (a Gram matrix is a mean over positions: it does not care about the style's shape, and
    stretching a painting to the photo's shape would stretch its strokes)."""
    return content_shape(style, style_side(content, style_scale))


Shapes = tuple[tuple[int, int], ...]


def stage_shapes(shape: Sequence[int], config: StyleConfig, styles: Sequence[Sequence[int]] | None = None,
                 ) -> list[tuple[int, tuple[int, int], Shapes]]:
    """(size, content shape, style shapes) at each size a run of a content image of original ``shape`` optimizes at,
    for style images of original ``styles`` shapes (None: one square style image, the largest area a style of that
    longest side can have, for estimates made before the styles are known)."""
    stages = []
    for size in config.scales or (config.image_size,):
        content = content_shape(shape, size)
        side = style_side(content, config.style_scale)
        sized = ((side, side),) if styles is None else tuple(style_shape(style, content, config.style_scale)
                                                             for style in styles)
        stages.append((size, content, sized))
    return stages


def check_shapes(
    shape: Sequence[int], config: StyleConfig, *, styles: Sequence[Sequence[int]] = (),
    parts: Sequence[str] = ("content", "style"),
) -> None:
    """``ConfigError`` naming the fix if, at any size of the run, the content (of original ``shape``) or a style
    image (of original ``styles`` shapes) would be smaller than the deepest layer needs; ``parts`` selects which to
    check."""
    for size, content, sized in stage_shapes(shape, config, styles):
        at = f"{field('image_size')} {size}" if config.scales is None else f"the {field('scales')} entry {size}"
        if "content" in parts:
            _check_content(shape, content, at, config)
        if "style" in parts:
            for index, (original, style) in enumerate(zip(styles, sized), start=1):
                _check_style(original, content, style, at, config, index if len(styles) > 1 else None)


def _deepest(layers: Sequence[str]) -> str:
    """The deepest of ``layers``: the one that needs the largest input."""
    return max(layers, key=lambda layer: LAYER_NAMES.index(layer))


def _check_content(shape: Sequence[int], content: tuple[int, int], at: str, config: StyleConfig) -> None:
    """``ConfigError`` if the content at (height, width) ``content`` is too small for the run's deepest layer."""
    layers = config.content_layers + config.style_layers
    smallest = min_input_size(layers)
    if min(content) >= smallest:
        return
    fix = math.ceil(smallest * max(shape[:2]) / min(shape[:2]))
    while min(content_shape(shape, fix - 1)) >= smallest:  # rounding can make one pixel less enough
        fix -= 1
    hint = (f"raise {field('image_size')} to at least {fix}" if config.scales is None
            else f"make every entry of {field('scales')} at least {fix}")
    raise ConfigError(
        f"the content image is {content[0]}x{content[1]} pixels at {at}; layers up to {_deepest(layers)} need at "
        f"least {smallest} pixels on each side: {hint}"
    )


def _check_style(original: Sequence[int], content: tuple[int, int], style: tuple[int, int], at: str,
                 config: StyleConfig, index: int | None) -> None:
    """``ConfigError`` if a style image of ``original`` shape, resized to (height, width) ``style``, is too small for
    the style layers (``index``: which of several style images it is)."""
    smallest = min_input_size(config.style_layers)
    if min(style) >= smallest:
        return
    fix = math.ceil(smallest * max(original[:2]) / min(original[:2]) / max(content) * 1000) / 1000
    while fix > 0.001 and min(style_shape(original, content, fix - 0.001)) >= smallest:  # rounding
        fix = round(fix - 0.001, 3)
    what = "the style image" if index is None else f"style image {index}"
    raise ConfigError(
        f"{what} is {style[0]}x{style[1]} pixels at {at} (its longest side the content's times "
        f"{field('style_scale')} {config.style_scale:g}); layers up to {_deepest(config.style_layers)} need at least "
        f"{smallest} pixels on each side: raise {field('style_scale')} to at least {fix:g}"
    )


# ----------------------------------------------------------------------------------------------- images


def as_list(style: ImageSource | Sequence[ImageSource]) -> list[ImageSource]:
    """One style image or a list of them, as a list."""
    return list(style) if isinstance(style, (list, tuple)) else [style]


def prepare_images(
    content: ImageSource, style: ImageSource | Sequence[ImageSource], config: StyleConfig, *, size: int | None = None
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Content resized to ``size`` (default ``image_size``; longest side); each style image, its aspect kept, to the
    content's longest side times ``style_scale`` (``style_shape``). ``ConfigError`` (a ``ValueError``) if one is too
    small for the layers, before any resizing; ``ImageError`` (also one) if an image cannot be read."""
    styles = [image_io.load_image(s) for s in as_list(style)]
    if not styles:
        raise ValueError("at least one style image is needed")
    content_image = image_io.load_image(content)
    size = config.image_size if size is None else size
    one_size = config.replace(image_size=size, scales=None, scale_iterations=None)
    check_shapes(content_image.shape, one_size, styles=[image.shape for image in styles])
    height, width = content_shape(content_image.shape, size)
    content_image = image_io.resize_image(content_image, height, width)
    return content_image, [image_io.resize_image(image, *style_shape(image.shape, (height, width), config.style_scale))
                           for image in styles]


def color_inputs(
    content: np.ndarray, styles: Sequence[np.ndarray], preserve_color: str | None
) -> tuple[np.ndarray, list[np.ndarray]]:
    """The content and style images the optimization sees under ``preserve_color`` (Gatys et al. 2017, sec. 5).

    None: unchanged. ``histogram``: each style recoloured to the content's colour mean and covariance
    (``color.match_color``), then clipped to [0, 1]. ``luminance``: grey images of the content's luminance and of
    each style's luminance matched to the content's in mean and standard deviation, clipped to [0, 1].
    """
    if preserve_color is None:
        return content, list(styles)
    if preserve_color == "histogram":
        return content, [_unit(color.match_color(image, content)) for image in styles]
    if preserve_color == "luminance":
        grey_content = _unit(color.gray(color.luminance(content)))
        return grey_content, [_unit(color.gray(color.match_luminance(image, content))) for image in styles]
    raise ValueError(f"preserve_color must be one of luminance, histogram or None; got {preserve_color!r}")


def output_colors(image: np.ndarray, content: np.ndarray, preserve_color: str | None) -> np.ndarray:
    """An optimized image as returned: under ``luminance`` its luminance with ``content``'s chrominance; clipped."""
    if preserve_color == "luminance":
        image = color.luminance_transfer(image, content)
    return _unit(image)


def _unit(image: np.ndarray) -> np.ndarray:
    """``image`` clipped to [0, 1] as float32."""
    return np.clip(np.asarray(image, np.float32), 0.0, 1.0)


def initial_image(config: StyleConfig, content: np.ndarray, styles: Sequence[np.ndarray]) -> np.ndarray:
    """The starting image: seeded white noise, a flat start, the content, the first style, or an image file, at
    content size."""
    height, width = content.shape[:2]
    key = jax.random.PRNGKey(config.seed)
    if config.init == "noise":
        # The paper starts from "white noise" without saying which; this is i.i.d. uniform on [0, 1] per pixel and
        # channel, the whole valid range. Networks trained in Caffe's convention leave much of it in the result
        # (measured: a judge's Gram distance 0.90 of the photo's from noise, 0.27 from a flat start; issue 27).
        return np.asarray(jax.random.uniform(key, (height, width, 3), jnp.float32))
    if config.init == "flat":
        # jcjohnson/neural-style's and neural-style-pt's "random" init: Gaussian noise of deviation 0.001 in Caffe's
        # 0-255 units around the ImageNet mean colour, i.e. a flat image whose noise only breaks the symmetry.
        mean = np.asarray(CAFFE_BGR_MEAN[::-1], np.float32) / 255.0
        noise = jax.random.normal(key, (height, width, 3), jnp.float32) * (0.001 / 255.0)
        return np.asarray(mean + noise, np.float32)
    if config.init == "content":
        return content
    if config.init == "style":
        return image_io.resize_image(styles[0], height, width)
    return image_io.resize_image(image_io.load_image(config.init), height, width)


# ----------------------------------------------------------------------------------------------- spatial control


BLACK_MASK = 8 / 255
"""A mask whose brightest value is below this selects nothing, and is refused. Each region is normalized by its area
(``Σ m²``), so a faint mask is not a weak one: a mask uniformly 1/255 would hold its style as firmly as a white one,
everywhere. A level rather than exact zero, so that a mask meant black but saved with a few grey levels of noise is
refused too; 8/255 is far below the faintest grey a region is drawn with on purpose (a 10 % weight is 26/255)."""


def checked_mask(mask: ImageSource, shape: Sequence[int], what: str, consequence: str) -> np.ndarray:
    """``mask`` as an (H, W) float32 weight at (height, width) ``shape`` (``image_io.load_mask``); ``ValueError``
    naming it as ``what`` (``style mask 2``), then ``consequence``, if it selects nothing there (its brightest value
    below ``BLACK_MASK``)."""
    loaded = image_io.load_mask(mask, *shape[:2])
    peak = float(loaded.max())
    if not peak >= BLACK_MASK:
        raise ValueError(f"{what} is black everywhere at {shape[0]}x{shape[1]} px (its brightest value is "
                         f"{max(peak, 0.0) * 255:.2g}/255, below {BLACK_MASK * 255:.0f}/255): {consequence}")
    return loaded


def region_masks(masks: Sequence[ImageSource] | None, styles: int, shape: Sequence[int]) -> np.ndarray | None:
    """The style masks (one per style image, white where its style applies on the output) as (R, H, W) guidance
    channels at the content's ``shape`` (Gatys et al. 2017, sec. 4.1); None: no spatial control. ``ValueError``
    (``ImageError``) for a wrong count, a mask that cannot be read or one that selects nothing (``checked_mask``:
    its style would apply nowhere)."""
    if masks is None:
        return None
    masks = as_list(masks)
    if len(masks) != styles:
        raise ValueError(f"{len(masks)} style mask(s) for {styles} style image(s): give one per style image")
    return np.stack([checked_mask(mask, shape, f"style mask {index}", "its style would apply nowhere")
                     for index, mask in enumerate(masks, start=1)])


def source_masks(masks: Sequence[ImageSource | None] | None, styles: Sequence[np.ndarray]
                 ) -> list[np.ndarray | None] | None:
    """The style source masks (per style image, None or the part of it whose statistics are its target) at each
    style image's size; ``ValueError`` for a wrong count, an unreadable mask or one that selects nothing
    (``checked_mask``)."""
    if masks is None:
        return None
    masks = as_list(masks)
    if len(masks) != len(styles):
        raise ValueError(f"{len(masks)} style source mask(s) for {len(styles)} style image(s): give one per style "
                         f"image (None, or 'all' on the command line, for the whole image)")
    return [None if mask is None else checked_mask(mask, style.shape, f"style source mask {index}",
                                                   f"it selects no part of style image {index}")
            for index, (mask, style) in enumerate(zip(masks, styles), start=1)]


# ----------------------------------------------------------------------------------------------- the problem


def loss_spec_for(config: StyleConfig, *, spatial: bool = False) -> LossSpec:
    """The static loss choices of ``config`` (``spatial``: each image's rows split over every device): the key its
    compilation is cached under."""
    return LossSpec(config.content_layers, config.style_layers, config.style_layer_weights, config.pooling,
                    config.loss_form, config.tile_size, spatial=spatial, precision=config.precision)


def loss_fn_for(config: StyleConfig) -> LossFn:
    """The loss function of ``config`` (one per distinct ``loss_spec_for(config)``)."""
    return loss_function(loss_spec_for(config))


def solver_spec_for(config: StyleConfig) -> SolverSpec:
    """The optimizer choices of ``config``."""
    return SolverSpec(config.optimizer, config.lbfgs_backend, config.history_size, config.learning_rate,
                      config.line_search, config.step_size)


def loss_weights_for(config: StyleConfig) -> LossWeights:
    """alpha, beta and the TV weight of ``config`` as float32 scalars (traced: new weights never recompile)."""
    return LossWeights(
        content=jnp.float32(config.resolved_content_weight),
        style=jnp.float32(config.resolved_style_weight),
        tv=jnp.float32(config.tv_weight),
    )


def targets_for(
    vgg: VGGWeights, content: np.ndarray, styles: Sequence[np.ndarray], config: StyleConfig, *, spatial: bool = False,
    regions: np.ndarray | None = None, sources: Sequence[np.ndarray | None] | None = None,
) -> StyleTargets:
    """Content features and blended style Gram matrices for ``config`` (``spatial``: rows split over every
    device); with ``regions`` (``region_masks``) each style's own, for its region, guided by ``sources``
    (``source_masks``)."""
    if regions is not None and config.style_blend_weights is not None:
        raise ConfigError(f"{field('style_blend_weights')} does not combine with style masks: each style has its own "
                          f"region (make a style's region larger to give it more of the image)")
    return compute_targets(
        vgg.params, content, list(styles), blend_weights=config.style_blend_weights,
        content_layers=config.content_layers, style_layers=config.style_layers, pooling=config.pooling,
        form=config.loss_form, tile_size=config.tile_size, spatial=spatial, precision=config.precision,
        regions=regions, source_masks=sources,
    )


def resolve_vgg(vgg: VGGArgument, weights: VGGArgument = None, *, caller: str = "this function") -> VGGWeights:
    """The network as loaded ``VGGWeights``: ``vgg`` (None: the default weights file). ``weights`` is ``vgg``'s old
    keyword, still accepted with a ``DeprecationWarning``."""
    if weights is not None:
        if vgg is not None:
            raise TypeError(f"{caller}: give the network as vgg= only (weights= is its old name)")
        warnings.warn(f"{caller}(weights=...) is deprecated; pass the VGG19 weights as vgg=", DeprecationWarning,
                      stacklevel=3)
        vgg = weights
    return vgg if isinstance(vgg, VGGWeights) else load_weights(vgg)


def configure_for(config: StyleConfig, vgg: VGGWeights) -> StyleConfig:
    """``config`` for the network ``vgg``: unset loss weights take the defaults of its convention; a layer it does
    not have (``conv5_4`` in a VGG16) is a ``ConfigError`` naming the valid ones."""
    for name in ("content_layers", "style_layers"):
        try:
            validate_layers(getattr(config, name), vgg.architecture)
        except ValueError as error:
            raise ConfigError(f"{{{name}}}: {error}") from None
    return config.for_convention(vgg.info.convention)


# ----------------------------------------------------------------------------------------------- results


def results_from(
    optimizations: Sequence[Optimization],
    configs: Sequence[StyleConfig],
    inputs: LossInputs,
    contents: Sequence[np.ndarray],
    vgg: VGGWeights,
    *,
    loss_config: StyleConfig | None = None,
    input_axes: LossInputs | None = None,
) -> list[StyleResult]:
    """One ``StyleResult`` per member: of a single image's ``optimizations`` (one per scale, ``input_axes`` None), or
    of each member of one batched optimization (padding dropped).

    Each image is resized to its member's content (when a coarse-to-fine run stopped early), recoloured as its
    config asks (``output_colors``) and clipped. The final losses are evaluated once, at the last run's iterate,
    with ``inputs`` and ``loss_config``'s loss (default: the first member's).
    """
    loss_config = configs[0] if loss_config is None else loss_config
    last = optimizations[-1]
    batched = input_axes is not None
    evaluated = pad_batch(inputs, input_axes, last.image.shape[0]) if batched else inputs
    compiled = compile_solver(loss_spec_for(loss_config), solver_spec_for(loss_config), input_axes)
    final = LossTerms(*(gather(t) for t in compiled.terms(last.image, evaluated)))
    images = gather(last.image) if batched else gather(last.image)[None]

    def member(values: np.ndarray, index: int) -> np.ndarray:
        return values[:, index] if batched else values

    results = []
    for index, (config, content) in enumerate(zip(configs, contents)):
        if last.status == Status.INTERRUPTED or not batched:
            status = last.status
        else:
            status = Status.COMPLETED if last.finite[index] else Status.NON_FINITE
        image = np.clip(np.asarray(images[index], np.float32), 0.0, 1.0)
        if image.shape[:2] != content.shape[:2]:
            image = image_io.resize_image(image, *content.shape[:2])
        results.append(StyleResult(
            image=output_colors(image, content, config.preserve_color),
            losses=LossTerms(*(np.concatenate([member(getattr(done.history, name), index) for done in optimizations])
                               for name in LossTerms._fields)),
            config=config,
            final_losses=LossTerms(*(float(np.asarray(t).reshape(-1)[index if batched else 0]) for t in final)),
            status=status,
            weights_checksum=vgg.checksum,
            weights_pretrained=vgg.pretrained,
            evaluations=np.concatenate([member(done.evaluations, index) for done in optimizations]),
            dispatches=sum(done.dispatches for done in optimizations),
            elapsed=sum(done.elapsed for done in optimizations),
            scale_iterations=tuple(done.iterations for done in optimizations) if config.scales is not None else (),
        ))
    return results


@dataclasses.dataclass(frozen=True)
class Part:
    """One sub-batch ready to run: its starting images, its loss inputs (batched where ``input_axes`` says 0), and
    each member's config and content (for its result)."""

    x0: np.ndarray
    inputs: LossInputs
    input_axes: LossInputs
    configs: Sequence[StyleConfig]
    contents: Sequence[np.ndarray]


def spans(count: int, per_run: int) -> Iterator[slice]:
    """The sub-batches of ``count`` members, at most ``per_run`` each, as slices."""
    for start in range(0, count, per_run):
        yield slice(start, min(start + per_run, count))


def run_parts(
    parts: Iterable[Part],
    vgg: VGGWeights,
    loss_config: StyleConfig,
    *,
    callback: Callable[[Progress], None] | None = None,
) -> Iterator[list[StyleResult]]:
    """Run each sub-batch as one batched, sharded optimization of ``loss_config``'s loss and solver, and yield its
    members' results; no later part runs after one was interrupted."""
    for part in parts:
        optimization = run_batch(
            part.x0, part.inputs, part.input_axes, loss_spec_for(loss_config), solver_spec_for(loss_config),
            iterations=loss_config.iterations, chunk_size=loss_config.chunk_size, callback=callback,
            progress_seconds=loss_config.progress_seconds, spread=loss_config.shard != "none",
        )
        yield results_from([optimization], part.configs, part.inputs, part.contents, vgg, loss_config=loss_config,
                           input_axes=part.input_axes)
        if optimization.status == Status.INTERRUPTED:
            return
