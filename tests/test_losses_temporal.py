"""The temporal term of video (Ruder et al. 2016, ``losses.temporal_loss``): its value and gradient against NumPy,
nothing where its weights are 0, its weight traced (gamma = 0 is the plain loss with the same program), and tiles
leave it exact."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import random_images
from nst_jax.losses import LossInputs, LossSpec, LossWeights, compute_targets, loss_function, temporal_loss

SPEC = LossSpec(("relu2_1",), ("relu1_1", "relu2_1"))  # shallow: the term reads pixels, any layer proves the point


def problem(shape=(20, 24, 3), references=2, seed=0):
    """An image, J warped targets and weights in [0, 1] with a block of zeros."""
    rng = np.random.default_rng(seed)
    image = rng.random(shape, dtype=np.float32)
    targets = rng.random((references, *shape), dtype=np.float32)
    weights = rng.random((references, *shape[:2]), dtype=np.float32)
    weights[:, 5:12, 3:9] = 0.0
    return image, targets, weights


def test_value_and_gradient_are_ruders_with_nothing_where_the_weights_are_zero():
    image, targets, weights = problem()
    value, gradient = jax.jit(jax.value_and_grad(temporal_loss))(image, targets, weights)
    d = image.size  # D = C * H * W
    x, w, c = image.astype(np.float64), targets.astype(np.float64), weights.astype(np.float64)[..., None]
    expected = sum(np.sum(c[j] * (x - w[j]) ** 2) / d for j in range(len(w)))
    expected_gradient = sum(2 * c[j] * (x - w[j]) / d for j in range(len(w)))
    np.testing.assert_allclose(float(value), expected, rtol=1e-5)  # float32 sums of 1440 terms
    np.testing.assert_allclose(np.asarray(gradient), expected_gradient, rtol=1e-4, atol=1e-9)
    assert np.all(np.asarray(gradient)[5:12, 3:9] == 0)  # c = 0 for every reference: no pull at all
    with pytest.raises(ValueError, match=r"temporal targets must be \(J, \*\(20, 24, 3\)\)"):
        temporal_loss(image, targets[0], weights)


def test_the_term_adds_gamma_times_its_value_and_gamma_zero_is_the_plain_loss(vgg_weights):
    image, targets, weights = problem(seed=1)
    style = random_images((24, 24, 3), seed=2)
    plain = compute_targets(vgg_weights, random_images((20, 24, 3), seed=3), [style],
                            content_layers=SPEC.content_layers, style_layers=SPEC.style_layers)
    video = plain._replace(temporal=jnp.asarray(targets), temporal_weights=jnp.asarray(weights))
    loss = jax.jit(loss_function(SPEC))
    base = LossWeights(jnp.float32(2.0), jnp.float32(1e3), jnp.float32(0.1))
    without = loss(jnp.asarray(image), LossInputs(vgg_weights.params, plain, base))
    gamma = 40.0
    with_term = loss(jnp.asarray(image), LossInputs(vgg_weights.params, video, base._replace(temporal=gamma)))
    programs = loss._cache_size()  # loss_function's result is shared: other tests may have added programs before
    off = loss(jnp.asarray(image), LossInputs(vgg_weights.params, video, base._replace(temporal=0.0)))
    np.testing.assert_allclose(float(with_term.total), float(without.total)
                               + gamma * float(temporal_loss(image, targets, weights)), rtol=1e-6)
    assert float(off.total) == float(without.total)
    assert (with_term.content, with_term.style, with_term.tv) == (without.content, without.style, without.tv)
    assert loss._cache_size() == programs  # gamma 40 and 0 share a program (gamma is traced)
    with pytest.raises(ValueError, match="temporal targets need a temporal weight"):
        loss(jnp.asarray(image), LossInputs(vgg_weights.params, video, base))


def test_tiles_leave_the_term_exact(vgg_weights):
    """The term reads the image, not VGG's features: in 16 px tiles the total and its gradient are the whole
    image's (to the tiling's own 1e-5, tests/test_tiling.py)."""
    image, targets, weights = problem(shape=(40, 44, 3), references=1, seed=4)
    targets_ = compute_targets(vgg_weights, random_images((40, 44, 3), seed=5), [random_images((40, 40, 3), seed=6)],
                               content_layers=SPEC.content_layers, style_layers=SPEC.style_layers)
    inputs = LossInputs(vgg_weights.params, targets_._replace(temporal=targets, temporal_weights=weights),
                        LossWeights(jnp.float32(2.0), jnp.float32(1e3), jnp.float32(0.1), temporal=jnp.float32(50.0)))
    tiled = LossSpec(SPEC.content_layers, SPEC.style_layers, tile_size=16)

    def value_and_grad(spec):
        return jax.jit(jax.value_and_grad(lambda x, given: loss_function(spec)(x, given).total))(jnp.asarray(image),
                                                                                                   inputs)

    (whole, whole_grad), (ours, ours_grad) = value_and_grad(SPEC), value_and_grad(tiled)
    np.testing.assert_allclose(float(ours), float(whole), rtol=1e-5)
    scale = float(np.max(np.abs(whole_grad)))
    assert float(np.max(np.abs(np.asarray(ours_grad) - np.asarray(whole_grad)))) <= 1e-5 * scale
