"""Content and style reconstructions from white noise (Gatys et al. 2016, fig. 1): what each layer keeps.

A content reconstruction matches one layer's features of an image and nothing else (style weight 0); a style
reconstruction (texture synthesis) matches the Gram matrices of a set of layers and nothing else (content
weight 0). Each equals a ``stylize`` run whose config differs from the given one only in layers and weights.

All reconstructions of one image have its shape, so they can run as one batch (``batched=True``): one loss over
the union of the layers, each member keeping only its own through traced per-layer factors
(``LossWeights.content_layers`` / ``style_layers``), vmapped and sharded like ``stylize_sweep``. Every member then
computes VGG up to the deepest layer of the union, where a sequential run stops at its own layer, and batched
L-BFGS waits for the longest line search; on 2 CPU cores batching was slower for both optimizers
(benchmarks/NOTES.md), so the default batches only Adam on an accelerator, where one small image leaves the device
idle. ``reconstruction_sheet`` lays results out as a labelled grid like the paper's figure 1.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Sequence

import jax
import numpy as np

from nst_jax.config import StyleConfig
from nst_jax.contact_sheet import contact_sheet
from nst_jax.image_io import ImageSource
from nst_jax.losses import LossInputs, LossWeights
from nst_jax.memory import plan_batch
from nst_jax.optimize import Progress, Status
from nst_jax.problem import (
    Part,
    VGGArgument,
    configure_for,
    initial_image,
    prepare_images,
    resolve_vgg,
    run_parts,
    spans,
    targets_for,
)
from nst_jax.result import StyleResult
from nst_jax.transfer import stylize
from nst_jax.vgg import LAYER_NAMES, validate_layers
from nst_jax.weights import VGGWeights

# The paper's fig. 1: content from conv1_2 ... conv5_2, style from growing sets conv1_1 ... conv5_1
# (Caffe's ReLUs are in place, so its "conv" outputs are post-ReLU: relu here).
CONTENT_LAYERS: tuple[str, ...] = ("relu1_2", "relu2_2", "relu3_2", "relu4_2", "relu5_2")
STYLE_LAYER_SETS: tuple[tuple[str, ...], ...] = tuple(
    tuple(f"relu{block}_1" for block in range(1, last + 1)) for last in range(1, 6)
)


@dataclasses.dataclass(frozen=True)
class Reconstruction:
    """One reconstruction: the layers it matched, whether content or style, and its ``StyleResult``."""

    kind: str
    layers: tuple[str, ...]
    result: StyleResult

    @property
    def label(self) -> str:
        """A short caption: the layer, or the first and last of a set (``relu1_1..relu3_1``)."""
        return self.layers[0] if len(self.layers) == 1 else f"{self.layers[0]}..{self.layers[-1]}"

    @property
    def image(self) -> np.ndarray:
        """The reconstructed image (H, W, 3) in [0, 1]."""
        return self.result.image


def reconstruction_sheet(
    reconstructions: Sequence[Reconstruction], *, original: np.ndarray | None = None, columns: int | None = None
) -> np.ndarray:
    """The reconstructions in a labelled grid (``kind: label``), ``columns`` per row; ``original`` first if given."""
    images = [r.image for r in reconstructions]
    labels = [f"{r.kind}: {r.label}" for r in reconstructions]
    if original is not None:
        images, labels = [original, *images], ["input", *labels]
    return contact_sheet(images, labels, columns=columns)


def content_config(config: StyleConfig, layer: str) -> StyleConfig:
    """``config`` reduced to matching ``layer``'s features from noise (style weight 0, original colours)."""
    # The loss needs a style layer; the same layer with weight 0 adds one Gram matrix and no deeper layers.
    return config.replace(
        content_layers=(layer,), style_layers=(layer,), style_layer_weights=None, style_blend_weights=None,
        style_weight=0.0, init="noise", preserve_color=None,
    )


def style_config(config: StyleConfig, layers: Sequence[str]) -> StyleConfig:
    """``config`` reduced to matching the Gram matrices of ``layers`` from noise (content weight 0)."""
    # The loss needs a content layer; the first style layer with weight 0 costs nothing deeper.
    layers = tuple(layers)
    return config.replace(
        content_layers=layers[:1], style_layers=layers, style_layer_weights=None, style_blend_weights=None,
        content_weight=0.0, style_weight=config.resolved_style_weight, init="noise", preserve_color=None,
    )


def batched_by_default(config: StyleConfig) -> bool:
    """Whether reconstructions run as one batch when not told: Adam on an accelerator (see the module docstring)."""
    return config.optimizer == "adam" and jax.default_backend() != "cpu"


def union_config(kind: str, config: StyleConfig, layer_sets: Sequence[tuple[str, ...]]) -> StyleConfig:
    """The config of one batch running every layer set of ``kind``: all their layers, each style layer weighing 1."""
    every = validate_layers([layer for layers in layer_sets for layer in layers])
    union = tuple(sorted(set(every), key=LAYER_NAMES.index))
    if kind == "content":
        return content_config(config, union[0]).replace(content_layers=union)
    return style_config(config, union).replace(style_layer_weights=(1.0,) * len(union))


def layer_factors(kind: str, union: StyleConfig, layer_sets: Sequence[tuple[str, ...]]) -> LossWeights:
    """Per-member loss weights of a batch over ``union``: alpha, beta, TV, and factors keeping each member's layers.

    Content members keep one layer (factor 1); style members weigh their set's layers equally, summing to one,
    as ``style_config``'s paper weights do.
    """
    count = len(layer_sets)
    if kind == "content":
        factors = [[float(layer in layers) for layer in union.content_layers] for layers in layer_sets]
        per_layer = {"content_layers": np.asarray(factors, np.float32)}
    else:
        factors = [[float(layer in layers) / len(layers) for layer in union.style_layers] for layers in layer_sets]
        per_layer = {"style_layers": np.asarray(factors, np.float32)}
    return LossWeights(
        content=np.full(count, union.resolved_content_weight, np.float32),
        style=np.full(count, union.resolved_style_weight, np.float32),
        tv=np.full(count, union.tv_weight, np.float32),
        **per_layer,
    )


def _batched_runs(
    kind: str,
    image: ImageSource,
    configs: Sequence[tuple[tuple[str, ...], StyleConfig]],
    config: StyleConfig,
    vgg: VGGWeights,
    callback: Callable[[Progress], None] | None,
) -> Iterator[tuple[tuple[str, ...], StyleResult]]:
    """(layers, result) of every config as members of one batched optimization (sub-batches if memory asks)."""
    union = union_config(kind, config, [layers for layers, _ in configs])
    content, styles = prepare_images(image, image, union)
    targets = targets_for(vgg, content, styles, union)
    x0 = initial_image(union, content, styles)
    plan = plan_batch(len(configs), *content.shape[:2], union)

    def part(members: Sequence[tuple[tuple[str, ...], StyleConfig]]) -> Part:
        factors = layer_factors(kind, union, [layers for layers, _ in members])
        return Part(x0=np.stack([x0] * len(members)), inputs=LossInputs(vgg.params, targets, factors),
                    input_axes=LossInputs(vgg_params=None, targets=None, weights=0),
                    configs=[member_config for _, member_config in members], contents=[content] * len(members))

    member_spans = list(spans(len(configs), plan.per_run))
    parts = (part(configs[span]) for span in member_spans)
    for span, results in zip(member_spans, run_parts(parts, vgg, union, callback=callback)):
        yield from zip([layers for layers, _ in configs[span]], results)


def _sequential_runs(
    image: ImageSource,
    configs: Sequence[tuple[tuple[str, ...], StyleConfig]],
    vgg: VGGWeights,
    callback: Callable[[Progress], None] | None,
) -> Iterator[tuple[tuple[str, ...], StyleResult]]:
    """(layers, result) of one ``stylize`` per config, stopping after a run that was interrupted."""
    for layers, layer_config in configs:
        result = stylize(image, image, vgg=vgg, config=layer_config, callback=callback)
        yield layers, result
        if result.status == Status.INTERRUPTED:
            return


def _reconstruct(
    kind: str,
    image: ImageSource,
    configs: Sequence[tuple[tuple[str, ...], StyleConfig]],
    config: StyleConfig,
    vgg: VGGWeights,
    batched: bool | None,
    callback: Callable[[Progress], None] | None,
    on_done: Callable[[Reconstruction], None] | None,
) -> list[Reconstruction]:
    """The reconstructions of ``configs``: batched (None: ``batched_by_default``) or one ``stylize`` at a time."""
    if batched is None:
        batched = batched_by_default(config)
    if batched and len(configs) > 1:
        runs = _batched_runs(kind, image, configs, config, vgg, callback)
    else:
        runs = _sequential_runs(image, configs, vgg, callback)
    done: list[Reconstruction] = []
    for layers, result in runs:
        done.append(Reconstruction(kind, layers, result))
        if on_done is not None:
            on_done(done[-1])
    return done


def reconstruct_content(
    image: ImageSource,
    layers: Sequence[str] = CONTENT_LAYERS,
    *,
    config: StyleConfig = StyleConfig(),
    vgg: VGGArgument = None,
    batched: bool | None = None,
    callback: Callable[[Progress], None] | None = None,
    on_done: Callable[[Reconstruction], None] | None = None,
    weights: VGGArgument = None,
) -> list[Reconstruction]:
    """One reconstruction of ``image`` from white noise per layer, by that layer's content loss alone.

    ``batched``: all layers as one batch (None: Adam on an accelerator; see the module docstring).
    ``callback`` sees each run's (or the batch's) progress; ``on_done`` each reconstruction as it finishes.
    """
    layers = (layers,) if isinstance(layers, str) else tuple(layers)
    if not layers:
        raise ValueError("reconstruct_content needs at least one layer")
    configs = [((layer,), content_config(config, layer)) for layer in layers]  # layer names checked before loading
    vgg = resolve_vgg(vgg, weights, caller="reconstruct_content")
    config = configure_for(config.replace(content_layers=layers), vgg)
    configs = [((layer,), content_config(config, layer)) for layer in layers]
    return _reconstruct("content", image, configs, config, vgg, batched, callback, on_done)


def reconstruct_style(
    image: ImageSource,
    layer_sets: Sequence[Sequence[str]] = STYLE_LAYER_SETS,
    *,
    config: StyleConfig = StyleConfig(),
    vgg: VGGArgument = None,
    batched: bool | None = None,
    callback: Callable[[Progress], None] | None = None,
    on_done: Callable[[Reconstruction], None] | None = None,
    weights: VGGArgument = None,
) -> list[Reconstruction]:
    """One texture synthesized from white noise per layer set, by the style loss of ``image`` on that set alone.

    The texture has the size ``image`` is resized to (``config.image_size``); the Gram matrices are taken at that
    size times ``config.style_scale``. ``batched``, ``callback`` and ``on_done`` as in ``reconstruct_content``.
    """
    if not layer_sets or any(isinstance(layers, str) for layers in layer_sets):
        raise ValueError(f"reconstruct_style needs a list of layer sets, e.g. [('relu1_1',), ('relu1_1', 'relu2_1')]; "
                         f"got {layer_sets!r}")
    configs = [(tuple(layers), style_config(config, layers)) for layers in layer_sets]  # checked before loading
    vgg = resolve_vgg(vgg, weights, caller="reconstruct_style")
    every = tuple(dict.fromkeys(layer for layers in layer_sets for layer in layers))
    config = configure_for(config.replace(style_layers=every, style_layer_weights=None), vgg)
    configs = [(tuple(layers), style_config(config, layers)) for layers in layer_sets]
    return _reconstruct("style", image, configs, config, vgg, batched, callback, on_done)
