"""The set-up layer: sizes on shapes, the network argument, and the specs that key every compilation (counted
through ``jax.monitoring``: a repeated run, a new weighting, learning rate or blend compile nothing new)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import jax
import numpy as np
import pytest

from conftest import random_images
from nst_jax import StyleConfig, make_loss_fn, stylize, stylize_sweep
from nst_jax.config import ConfigError
from nst_jax.image_io import resize_image
from nst_jax.losses import LossSpec
from nst_jax.optimize import SolverSpec, compile_solver
from nst_jax.problem import (
    BLACK_MASK,
    check_shapes,
    content_shape,
    prepare_images,
    region_masks,
    resolve_vgg,
    source_masks,
    style_shape,
)

# Shallow layers and tiny images: what is counted is compilations, not their cost.
TINY = StyleConfig(image_size=24, iterations=2, chunk_size=2, optimizer="adam", content_layers=("relu2_1",),
                   style_layers=("relu1_1", "relu2_1"))


@pytest.mark.parametrize(
    ("shape", "longest", "expected"),
    [((300, 451), 512, (341, 512)), ((451, 300), 200, (200, 133)), ((10, 10), 4, (4, 4)), ((1, 1000), 10, (1, 10))],
)
def test_content_shape_keeps_the_aspect(shape, longest, expected):
    out = resize_image(np.full((*shape, 3), 0.5, np.float32), *content_shape(shape, longest))
    assert out.shape == (*expected, 3)
    assert max(out.shape[:2]) == longest
    h, w = shape
    assert abs(out.shape[0] / out.shape[1] - h / w) <= 1 / min(out.shape[:2])


def test_size_hints_name_what_can_help():
    """A content that is too thin needs a larger image_size (the style scale cannot help it); a style that is too
    small needs a larger style_scale; every size of a coarse-to-fine run is checked before any of them runs."""
    config = StyleConfig(image_size=64)  # relu5_1: 16 pixels
    with pytest.raises(ConfigError) as thin:
        check_shapes((10, 100), config)  # 6x64
    message = str(thin.value)
    assert message.endswith("raise image_size to at least 155") and "style_scale" not in message
    check_shapes((10, 100), config.replace(image_size=155))
    with pytest.raises(ConfigError, match=r"the style image is 13x13 pixels .* raise style_scale to at least 0\.243"):
        check_shapes((64, 64), config.replace(style_scale=0.2), styles=[(64, 64)])
    # A style keeps its aspect: a 9:40 painting's short side is 9/40 of the output's longest side.
    with pytest.raises(ConfigError, match=r"style image 2 is 14x64 pixels .* raise style_scale to at least 1\.071"):
        check_shapes((64, 64), config, styles=[(64, 64), (90, 400)])
    with pytest.raises(ConfigError, match="at the scales entry 8; .* make every entry of scales at least 16"):
        check_shapes((64, 64), config.replace(scales=(8, 64)))


def test_vgg_is_the_network_keyword_and_weights_its_deprecated_name(vgg_weights):
    assert resolve_vgg(vgg_weights) is vgg_weights
    with pytest.warns(DeprecationWarning, match=r"stylize\(weights=...\) is deprecated; pass the VGG19 weights"):
        assert resolve_vgg(None, vgg_weights, caller="stylize") is vgg_weights
    with pytest.raises(TypeError, match="vgg= only"):
        resolve_vgg(vgg_weights, vgg_weights, caller="stylize")


@contextlib.contextmanager
def compilations() -> Iterator[list[str]]:
    """The XLA programs built inside the block (``jax.monitoring``'s events): compiled, or loaded from the persistent
    compilation cache the tests share (conftest), which a program another test compiled would come from."""
    events: list[str] = []

    def listener(event: str, duration: float, **kwargs) -> None:
        if event in ("/jax/core/compile/backend_compile_duration", "/jax/compilation_cache/cache_retrieval_time_sec"):
            events.append(event)

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        yield events
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)


def test_what_a_run_varies_is_traced(vgg_weights):
    """A repeated stylize compiles nothing; nor do other loss weights, Adam's learning rate or another blend."""
    content, first, second = (random_images((24, 32, 3), seed=s) for s in (1, 2, 3))
    config = TINY.replace(style_blend_weights=(1.0, 1.0))
    with compilations() as first_run:
        stylize(content, [first, second], vgg=vgg_weights, config=config)
    assert len(first_run) >= 3  # the targets, the optimizer's init and its chunk at least: the listener hears them
    with compilations() as compiled:
        stylize(content, [first, second], vgg=vgg_weights, config=config)
        stylize(content, [first, second], vgg=vgg_weights, config=config.replace(
            content_weight=3.0, style_weight=1e3, tv_weight=0.5, learning_rate=0.5, style_blend_weights=(3.0, 1.0)))
    assert compiled == []


def test_a_sweep_compiles_once(vgg_weights):
    content, style = random_images((24, 32, 3), seed=4), random_images((24, 24, 3), seed=5)
    stylize_sweep(content, style, style_weights=[1e3, 1e4], vgg=vgg_weights, config=TINY)
    with compilations() as compiled:
        stylize_sweep(content, style, style_weights=[1e5, 1e6], content_weights=[2.0, 0.5], vgg=vgg_weights,
                      config=TINY)
    assert compiled == []


def test_equal_loss_specs_share_one_compilation():
    layers = dict(content_layers=("relu3_1",), style_layers=("relu1_1", "relu3_1"))
    assert make_loss_fn(**layers) is make_loss_fn(**layers)
    first = compile_solver(LossSpec(("relu3_1",), ("relu1_1", "relu3_1")), SolverSpec("adam", learning_rate=0.1))
    second = compile_solver(LossSpec(("relu3_1",), ("relu1_1", "relu3_1"), (0.5, 0.5)), SolverSpec("adam"))
    assert first is second  # equal layers and weights, another (traced) learning rate
    other = LossSpec(("relu3_1",), ("relu1_1", "relu3_1"), pooling="max")
    assert compile_solver(other, SolverSpec("adam")) is not first


@pytest.mark.parametrize("level", [0.0, 1 / 255, 7 / 255])
def test_a_mask_that_selects_nothing_is_refused(level):
    """Black, or faint everywhere: normalized by its area a uniformly 1/255 mask would hold its style everywhere, as
    firmly as a white one; an all-black one would silently drop it. Style and source masks alike."""
    mask = np.full((20, 30), level, np.float32)
    with pytest.raises(ValueError, match=r"style mask 2 is black everywhere at 24x32 px .*: its style would apply "
                                         r"nowhere"):
        region_masks([np.ones((20, 30), np.float32), mask], 2, (24, 32))
    with pytest.raises(ValueError, match="style source mask 1 is black everywhere at 16x16 px .*selects no part of "
                                         "style image 1"):
        source_masks([mask], [np.zeros((16, 16, 3), np.float32)])


def test_a_faint_or_small_region_is_kept():
    """8/255 (BLACK_MASK) is the faintest mask that selects; a small white region at full strength is a region."""
    faint = np.full((24, 32), BLACK_MASK, np.float32)
    small = np.zeros((24, 32), np.float32)
    small[10:12, 10:12] = 1.0
    regions = region_masks([faint, small], 2, (24, 32))
    assert regions.shape == (2, 24, 32) and regions[0].max() >= BLACK_MASK and regions[1].max() > 0.5


def test_style_images_keep_their_aspect_ratio():
    """Each style image is resized so that its longest side is the output's (times style_scale), its aspect kept, as
    jcjohnson/neural-style and neural-style-pt do: Starry Night (1.6:1) beside a 4:3 photo stays 1.6:1 instead of
    having its strokes stretched to the photo's shape; a tall painting stays tall."""
    assert style_shape((460, 730), (96, 128), 1.0) == (81, 128)
    assert style_shape((1000, 790), (96, 128), 1.0) == (128, 101)
    assert style_shape((1000, 790), (96, 128), 0.5) == (64, 51)
    config = StyleConfig(image_size=64, content_layers=("relu2_1",), style_layers=("relu1_1", "relu2_1"))
    content, styles = prepare_images(np.zeros((48, 64, 3), np.float32),
                                     [np.zeros((20, 80, 3), np.float32), np.zeros((90, 30, 3), np.float32)], config)
    assert content.shape == (48, 64, 3) and [style.shape for style in styles] == [(16, 64, 3), (64, 21, 3)]
