"""Tiled evaluation (nst_jax.tiling) gives the whole image's loss and gradient: content, style and TV, both
poolings, odd sizes, several tile sizes, and tiles whose halo is really needed (images larger than tile + 2 halos)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import random_images
from nst_jax.losses import LossInputs, LossSpec, LossWeights, compute_targets, loss_function
from nst_jax.tiling import plan_tiles, receptive_radius
from nst_jax.vgg import extract_features, layer_stride

TOLERANCE = 1e-5  # relative, as the issue asks: max |tiled - whole| / max |whole|
extract = jax.jit(extract_features, static_argnames=("layers", "pooling"))

pytestmark = pytest.mark.numerics


def inputs_for(weights, spec: LossSpec, shape, seed=0, factors=False) -> tuple[jax.Array, LossInputs]:
    content = random_images(shape, seed=seed)
    style = random_images((shape[0] + 8, shape[1] - 4, 3), seed=seed + 1)
    targets = compute_targets(weights, content, [style], content_layers=spec.content_layers,
                              style_layers=spec.style_layers, pooling=spec.pooling, form=spec.form)
    loss_weights = LossWeights(jnp.float32(3.0), jnp.float32(1e4), jnp.float32(0.5))
    if factors:
        loss_weights = loss_weights._replace(content_layers=jnp.asarray([1.0, 0.5][: len(spec.content_layers)]),
                                             style_layers=jnp.linspace(0.2, 1.0, len(spec.style_layers)))
    image = random_images(shape, seed=seed + 2)
    return jnp.asarray(image), LossInputs(weights.params, targets, loss_weights)


def relative(ours, reference) -> float:
    ours, reference = np.asarray(ours, np.float64), np.asarray(reference, np.float64)
    return float(np.max(np.abs(ours - reference)) / np.max(np.abs(reference)))


def compare(spec: LossSpec, tiled: LossSpec, image, inputs) -> None:
    # The inputs are arguments of every compiled function here, never closed over: closed over, the weights become
    # constants of the program, which XLA then folds (test_vgg's relu5_1 gradient at 32 px: 9.7 s closed over, 1.6 s
    # with the weights an argument, nearly all of it compiling).
    def value_and_grad(s):
        return jax.jit(jax.value_and_grad(lambda x, given: loss_function(s)(x, given).total))(image, inputs)

    (whole, whole_grad), (ours, ours_grad) = value_and_grad(spec), value_and_grad(tiled)
    whole_terms = jax.jit(loss_function(spec))(image, inputs)
    ours_terms = jax.jit(loss_function(tiled))(image, inputs)
    for name in ("total", "content", "style", "tv"):
        assert relative(getattr(ours_terms, name), getattr(whole_terms, name)) <= TOLERANCE, name
    assert relative(ours, whole) <= TOLERANCE
    assert relative(ours_grad, whole_grad) <= TOLERANCE


@pytest.mark.parametrize("pooling, tile", [("avg", 24)])
def test_shallow_layers_many_tiles(vgg_weights, pooling, tile):
    """relu3_1 needs a 16 px halo: a 93x118 image has tiles whose regions are much smaller than the image."""
    spec = LossSpec(("relu2_2", "relu3_1"), ("relu1_1", "relu2_1", "relu3_1"), pooling=pooling)
    plan = plan_tiles(93, 118, tile, spec.layers, "vgg19")
    assert plan.halo == 16 and plan.count > 4
    assert max(row.stop - row.start for row in plan.rows) < 93
    image, inputs = inputs_for(vgg_weights, spec, (93, 118, 3), factors=True)
    compare(spec, LossSpec(*dataclass_fields(spec), tile_size=tile), image, inputs)


def dataclass_fields(spec: LossSpec) -> tuple:
    return spec.content_layers, spec.style_layers, spec.style_layer_weights, spec.pooling, spec.form


def test_max_pooling_the_paper_form_and_a_single_row_of_tiles(vgg_weights):
    spec = LossSpec(("relu3_2",), ("relu1_1", "relu3_1"), (0.3, 0.7), pooling="max", form="paper")
    image, inputs = inputs_for(vgg_weights, spec, (37, 150, 3), seed=4)
    compare(spec, LossSpec(*dataclass_fields(spec), tile_size=32), image, inputs)


@pytest.mark.parametrize("pooling", ["avg", "max"])
def test_the_halo_covers_the_default_layers(vgg_weights, pooling):
    """The default layers (relu5_1: receptive radius <= 85, halo 96): a region with that halo around a 112 px interior,
    strictly inside a 340x350 image, has the whole image's features in its interior at every layer (the tiled loss
    is assembled from exactly these; the tests above check the assembly with shallow layers)."""
    layers = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu4_2", "relu5_1")
    assert receptive_radius(layers, "vgg19") == 85
    plan = plan_tiles(340, 350, 112, layers, "vgg19")
    assert plan.halo == 96 and plan.count == 16
    row, column = plan.rows[1], plan.columns[1]  # an interior tile
    assert row.start > 0 and row.stop < 340 and column.start > 0 and column.stop < 350
    image = random_images((340, 350, 3), seed=8)
    whole = extract(vgg_weights, image, layers=layers, pooling=pooling)
    region = extract(vgg_weights, image[row.start:row.stop, column.start:column.stop], layers=layers, pooling=pooling)
    for layer in layers:
        stride = layer_stride(layer)
        inner = region[layer][(row.begin - row.start) // stride:(row.end - row.start) // stride,
                              (column.begin - column.start) // stride:(column.end - column.start) // stride]
        expected = whole[layer][row.begin // stride:row.end // stride, column.begin // stride:column.end // stride]
        assert inner.shape == expected.shape and inner.size > 0
        assert relative(inner, expected) <= TOLERANCE, layer


def test_vmapped_tiles_equal_single_images(vgg_weights):
    spec = LossSpec(("relu1_2",), ("relu1_1", "relu1_2"), tile_size=16)
    image, inputs = inputs_for(vgg_weights, spec, (36, 40, 3), seed=2)
    images = jnp.stack([image, image[::-1]])
    batched = jax.jit(jax.vmap(jax.grad(lambda x, given: loss_function(spec)(x, given).total), (0, None)))(
        images, inputs)
    whole = LossSpec(spec.content_layers, spec.style_layers)
    single = jax.jit(jax.grad(lambda x, given: loss_function(whole)(x, given).total))
    for index in range(2):
        assert relative(batched[index], single(images[index], inputs)) <= TOLERANCE


@pytest.mark.parametrize("form", ["normalized", "paper"])
def test_tiled_targets_equal_the_whole_images(vgg_weights, form):
    content, styles = random_images((70, 90, 3), seed=5), [random_images((80, 64, 3), seed=6),
                                                           random_images((66, 96, 3), seed=7)]
    arguments = dict(content_layers=("relu2_2", "relu3_1"), style_layers=("relu1_1", "relu3_1"), blend_weights=(1, 3),
                     form=form)
    whole = compute_targets(vgg_weights, content, styles, **arguments)
    tiled = compute_targets(vgg_weights, content, styles, tile_size=16, **arguments)
    for layer in ("relu2_2", "relu3_1"):
        assert relative(tiled.content[layer], whole.content[layer]) <= TOLERANCE, layer
    for layer in ("relu1_1", "relu3_1"):
        assert relative(tiled.style_grams[layer], whole.style_grams[layer]) <= TOLERANCE, layer


def test_a_tiled_run_follows_the_whole_run(vgg_weights):
    """Adam, whose steps depend smoothly on the gradient (an L-BFGS zoom search from the content image can take a
    different extrapolation on a last-digit difference in the slopes, tiled or not: measured, both ways)."""
    from nst_jax.config import StyleConfig
    from nst_jax.transfer import stylize

    config = StyleConfig(image_size=48, iterations=4, chunk_size=4, content_layers=("relu2_2",),
                         style_layers=("relu1_1", "relu2_1"), init="content", optimizer="adam")
    content, style = random_images((36, 48, 3), seed=3), random_images((40, 40, 3), seed=4)
    whole = stylize(content, style, vgg=vgg_weights, config=config)
    tiled = stylize(content, style, vgg=vgg_weights, config=config.replace(tile_size=16))
    np.testing.assert_allclose(tiled.losses.total, whole.losses.total, rtol=1e-4)
    assert float(np.max(np.abs(tiled.image - whole.image))) < 1e-3


@pytest.mark.parametrize("form", ["normalized", "paper"])
def test_guided_grams_tiled_equal_the_whole_image(vgg_weights, form):
    """Spatial control: two styles on the halves of a 93x118 image (a soft border) and a source mask on each style,
    in 24 px tiles whose regions are smaller than the image: targets, loss and gradient as the whole image's."""
    spec = LossSpec(("relu2_2",), ("relu1_1", "relu2_1", "relu3_1"), form=form)
    content, image = random_images((93, 118, 3), seed=8), jnp.asarray(random_images((93, 118, 3), seed=9))
    styles = [random_images((80, 64, 3), seed=10), random_images((66, 96, 3), seed=11)]
    left = np.clip((60 - np.arange(118)) / 12, 0, 1)[None].repeat(93, 0).astype(np.float32)
    sources = [np.tri(80, 64, dtype=np.float32), None]
    arguments = dict(content_layers=spec.content_layers, style_layers=spec.style_layers, form=form,
                     regions=np.stack([left, 1 - left]), source_masks=sources)
    whole = compute_targets(vgg_weights, content, styles, **arguments)
    tiled = compute_targets(vgg_weights, content, styles, tile_size=24, **arguments)
    for layer in spec.style_layers:
        assert relative(tiled.style_grams[layer], whole.style_grams[layer]) <= TOLERANCE, layer
    inputs = LossInputs(vgg_weights.params, whole, LossWeights(jnp.float32(3.0), jnp.float32(1e4), jnp.float32(0.5)))
    compare(spec, LossSpec(*dataclass_fields(spec), tile_size=24), image, inputs)
