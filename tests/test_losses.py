"""Losses against independent NumPy implementations, both formulations, under jit."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import random_images
from nst_jax import extract_features
from nst_jax.losses import (
    LOSS_FORMS,
    LossInputs,
    LossWeights,
    compute_targets,
    content_loss,
    gram_matrix,
    guided_gram_loss,
    guided_grams,
    layer_masks,
    make_loss_fn,
    style_layer_loss,
    style_loss,
    total_variation_loss,
)
from nst_jax.mesh import guided_gram_sum

RTOL = 1e-5  # float32 reductions of a few thousand terms against float64 NumPy


def np_gram(features: np.ndarray, form: str) -> np.ndarray:
    """Gram matrix in float64: the paper's sum over positions, divided by N*M (normalized) or by M (paper, as its
    authors' code)."""
    height, width, channels = features.shape
    flat = features.astype(np.float64).reshape(-1, channels)
    gram = np.einsum("ki,kj->ij", flat, flat)
    return gram / (channels * height * width) if form == "normalized" else gram / (height * width)


def np_style_layer(features: np.ndarray, target: np.ndarray, form: str) -> float:
    """E_l in float64: the mean squared difference of the Gram matrices (both forms)."""
    return float(np.mean((np_gram(features, form) - target) ** 2))


@pytest.fixture(scope="module")
def feature_pair() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return (np.abs(rng.standard_normal((6, 7, 5))).astype(np.float32),
            np.abs(rng.standard_normal((6, 7, 5))).astype(np.float32))


@pytest.mark.parametrize("form", LOSS_FORMS)
class TestGramMatrix:
    def test_matches_numpy(self, feature_pair, form):
        got = jax.jit(gram_matrix, static_argnames="form")(feature_pair[0], form=form)
        np.testing.assert_allclose(got, np_gram(feature_pair[0], form), rtol=RTOL)

    def test_symmetric_positive_semidefinite(self, feature_pair, form):
        gram = np.asarray(gram_matrix(feature_pair[0], form=form), np.float64)
        np.testing.assert_allclose(gram, gram.T, rtol=1e-6)
        assert np.linalg.eigvalsh(gram).min() >= -1e-6 * np.abs(gram).max()

    def test_invariant_to_spatial_permutation(self, feature_pair, form):
        features = feature_pair[0]
        order = np.random.default_rng(1).permutation(features.shape[0] * features.shape[1])
        shuffled = features.reshape(-1, features.shape[2])[order].reshape(features.shape)
        np.testing.assert_allclose(gram_matrix(shuffled, form=form), gram_matrix(features, form=form), rtol=RTOL)


@pytest.mark.parametrize("form", LOSS_FORMS)
def test_content_loss_matches_numpy(feature_pair, form):
    features, target = feature_pair
    diff = features.astype(np.float64) - target
    expected = np.mean(diff**2)
    got = jax.jit(content_loss, static_argnames="form")(features, target, form=form)
    np.testing.assert_allclose(got, expected, rtol=RTOL)


@pytest.mark.parametrize("form", LOSS_FORMS)
def test_style_layer_loss_matches_numpy(feature_pair, form):
    features, other = feature_pair
    target = np_gram(other, form).astype(np.float32)
    got = jax.jit(style_layer_loss, static_argnames="form")(features, target, form=form)
    np.testing.assert_allclose(got, np_style_layer(features, target, form), rtol=RTOL)


def test_paper_and_normalized_forms_are_related(feature_pair):
    """The paper form (its authors' code) weighs each style layer N^2 times the normalized form and has the same
    content term; against the equations the paper prints (1/2 sum (F - P)^2, sum (G - A)^2 / (4 N^2 M^2), G the raw
    sum) its content is 2 / (N M) and its style 4 times theirs."""
    features, other = feature_pair
    height, width, channels = features.shape
    paper = style_layer_loss(features, gram_matrix(other, form="paper"), form="paper")
    normalized = style_layer_loss(features, gram_matrix(other), form="normalized")
    np.testing.assert_allclose(paper, channels**2 * normalized, rtol=RTOL)
    np.testing.assert_allclose(content_loss(features, other, form="paper"),
                               content_loss(features, other, form="normalized"), rtol=RTOL)
    flat, flat_other = (np.asarray(f, np.float64).reshape(-1, channels) for f in (features, other))
    printed_style = np.sum((flat.T @ flat - flat_other.T @ flat_other) ** 2) / (4 * channels**2 * (height * width)**2)
    printed_content = 0.5 * np.sum((flat - flat_other) ** 2)
    np.testing.assert_allclose(paper, 4 * printed_style, rtol=RTOL)
    np.testing.assert_allclose(content_loss(features, other, form="paper"),
                               2 / (channels * height * width) * printed_content, rtol=RTOL)


@pytest.mark.parametrize("form", LOSS_FORMS)
def test_style_loss_weights_layers(feature_pair, form):
    features, other = feature_pair
    layers = {"a": features, "b": other}
    targets = {"a": np_gram(other, form).astype(np.float32), "b": np_gram(features, form).astype(np.float32)}
    got = style_loss(layers, targets, {"a": 0.25, "b": 2.0}, form=form)
    expected = 0.25 * np_style_layer(features, targets["a"], form) + 2.0 * np_style_layer(other, targets["b"], form)
    np.testing.assert_allclose(got, expected, rtol=RTOL)


@pytest.mark.parametrize("form", LOSS_FORMS)
def test_total_variation_matches_numpy(form):
    image = random_images((9, 11, 3), seed=4).astype(np.float64)
    vertical = (image[1:] - image[:-1]) ** 2
    horizontal = (image[:, 1:] - image[:, :-1]) ** 2
    expected = vertical.mean() + horizontal.mean()
    got = jax.jit(total_variation_loss, static_argnames="form")(image.astype(np.float32), form=form)
    np.testing.assert_allclose(got, expected, rtol=RTOL)
    assert float(total_variation_loss(np.full((5, 5, 3), 0.3, np.float32), form=form)) == 0.0


@pytest.mark.parametrize("form", LOSS_FORMS)
def test_total_loss_composes_the_terms(vgg_weights, form):
    content_layers, style_layers = ("relu3_2",), ("relu1_1", "relu2_1", "relu3_1")
    content, style, image = (random_images((32, 40, 3), seed=s) for s in (1, 2, 3))
    targets = compute_targets(
        vgg_weights, content, [style], content_layers=content_layers, style_layers=style_layers, form=form
    )
    loss_fn = make_loss_fn(content_layers=content_layers, style_layers=style_layers,
                           style_layer_weights=(0.5, 0.3, 0.2), form=form)
    terms = jax.jit(loss_fn)(image, LossInputs(vgg_weights.params, targets, LossWeights(2.0, 30.0, 0.7)))

    features = {k: np.asarray(v)
                for k, v in extract_features(vgg_weights, image, content_layers + style_layers).items()}
    style_features = {k: np.asarray(v) for k, v in extract_features(vgg_weights, style, style_layers).items()}
    content_features = np.asarray(extract_features(vgg_weights, content, content_layers)["relu3_2"])
    diff = features["relu3_2"].astype(np.float64) - content_features
    expected_content = np.mean(diff**2)
    expected_style = sum(
        w * np_style_layer(features[layer], np_gram(style_features[layer], form), form)
        for layer, w in zip(style_layers, (0.5, 0.3, 0.2))
    )
    expected_tv = float(total_variation_loss(image, form=form))
    np.testing.assert_allclose(terms.content, expected_content, rtol=1e-4)
    np.testing.assert_allclose(terms.style, expected_style, rtol=1e-4)
    np.testing.assert_allclose(
        terms.total, 2.0 * expected_content + 30.0 * expected_style + 0.7 * expected_tv, rtol=1e-4
    )


def test_per_layer_factors_select_layers_under_vmap(vgg_weights):
    """Traced per-layer factors of 1/0 give, per vmapped member, the loss whose static layers are the kept ones."""
    content_layers, style_layers = ("relu1_2", "relu2_2"), ("relu1_1", "relu2_1")
    content, style, image = (random_images((32, 36, 3), seed=s) for s in (8, 9, 10))
    targets = compute_targets(vgg_weights, content, [style], content_layers=content_layers, style_layers=style_layers)
    union = make_loss_fn(content_layers=content_layers, style_layers=style_layers, style_layer_weights=(1.0, 1.0))
    factors = LossWeights(
        content=np.ones(2, np.float32), style=np.ones(2, np.float32), tv=np.zeros(2, np.float32),
        content_layers=np.asarray([[1, 0], [0, 1]], np.float32),
        style_layers=np.asarray([[1, 0], [0.5, 0.5]], np.float32),
    )
    batched = jax.jit(jax.vmap(union, in_axes=(None, LossInputs(None, None, 0))))(
        image, LossInputs(vgg_weights.params, targets, factors)
    )
    for member, (content_layer, layers) in enumerate([("relu1_2", ("relu1_1",)), ("relu2_2", style_layers)]):
        alone = make_loss_fn(content_layers=(content_layer,), style_layers=layers)
        terms = alone(image, LossInputs(vgg_weights.params, targets, LossWeights(1.0, 1.0, 0.0)))
        for name in ("total", "content", "style"):
            np.testing.assert_allclose(getattr(batched, name)[member], getattr(terms, name), rtol=1e-5, err_msg=name)


def test_blended_style_targets_average_gram_matrices(vgg_weights):
    first, second, content = (random_images((32, 32, 3), seed=s) for s in (5, 6, 7))
    layers = ("relu1_1", "relu2_1")
    blended = compute_targets(vgg_weights, content, [first, second], content_layers=("relu2_2",),
                              style_layers=layers, blend_weights=[3.0, 1.0])
    for layer in layers:
        grams = [np_gram(np.asarray(extract_features(vgg_weights, im, layers)[layer]), "normalized")
                 for im in (first, second)]
        np.testing.assert_allclose(blended.style_grams[layer], 0.75 * grams[0] + 0.25 * grams[1], rtol=1e-4)


@pytest.mark.parametrize("huge", [1e308, 3e38])
def test_blend_weights_too_large_to_sum_keep_their_ratio(vgg_weights, huge):
    """1e308 + 1e308 overflows to inf; every target would become 0 if the weights were divided by that sum."""
    first, second, content = (random_images((16, 16, 3), seed=s) for s in (5, 6, 7))
    targets = [compute_targets(vgg_weights, content, [first, second], content_layers=("relu1_1",),
                               style_layers=("relu1_1",), blend_weights=weights)
               for weights in ([1.0, 1.0], [huge] * 2)]
    equal, large = (np.asarray(t.style_grams["relu1_1"]) for t in targets)
    assert np.abs(equal).max() > 0
    np.testing.assert_allclose(large, equal, rtol=1e-6)


def test_no_style_image_is_an_error(vgg_weights):
    with pytest.raises(ValueError, match="at least one style image"):
        compute_targets(vgg_weights, random_images((16, 16, 3)), [], content_layers=("relu1_1",),
                        style_layers=("relu1_1",))


def test_shape_errors_are_clear():
    with pytest.raises(ValueError, match=r"expects \(H, W, C\)"):
        gram_matrix(np.zeros((2, 3, 4, 5), np.float32))
    with pytest.raises(ValueError, match="differ in shape"):
        content_loss(np.zeros((2, 3, 4)), np.zeros((2, 3, 5)))
    with pytest.raises(ValueError, match="loss form"):
        gram_matrix(np.zeros((2, 3, 4)), form="caffe")


# --------------------------------------------------------------------------- spatial control (Gatys et al. 2017)


def np_layer_mask(mask: np.ndarray, stride: int) -> np.ndarray:
    """Block means of an (H, W) mask over stride x stride blocks, the partial last blocks dropped."""
    height, width = mask.shape[0] // stride, mask.shape[1] // stride
    return np.asarray([[mask[i * stride:(i + 1) * stride, j * stride:(j + 1) * stride].mean()
                        for j in range(width)] for i in range(height)])


def test_layer_masks_are_block_means():
    masks = np.random.default_rng(0).random((2, 37, 45)).astype(np.float32)
    layers = ("relu1_1", "relu2_1", "relu3_1", "relu5_1")
    ours = layer_masks(masks, layers)
    for layer, stride in zip(layers, (1, 2, 4, 16)):
        for region in range(2):
            np.testing.assert_allclose(ours[layer][region], np_layer_mask(masks[region], stride), rtol=1e-6)


@pytest.mark.parametrize("form", LOSS_FORMS)
def test_guided_grams_and_loss_match_numpy(form):
    """G_r = sum_k m_k^2 f_k f_k^T scaled by positions / sum_k m_k^2 (an all-white mask: the plain Gram matrix);
    E_l = sum over non-empty regions of the Gram distance to style r's target."""
    rng = np.random.default_rng(1)
    features = rng.standard_normal((6, 7, 5)).astype(np.float32)
    masks = np.stack([np.ones((6, 7)), rng.random((6, 7)), np.zeros((6, 7))]).astype(np.float32)
    targets = rng.standard_normal((3, 5, 5)).astype(np.float32)
    raw = guided_gram_sum(jnp.asarray(features), jnp.asarray(masks))
    grams = np.asarray(guided_grams(raw, jnp.asarray(masks), form=form))
    flat = features.reshape(-1, 5).astype(np.float64)
    expected_loss = 0.0
    for region, mask in enumerate(masks):
        weights = mask.reshape(-1).astype(np.float64) ** 2
        if weights.sum() == 0:
            np.testing.assert_array_equal(grams[region], 0.0)
            continue
        gram = (flat * weights[:, None]).T @ flat * (42 / weights.sum())
        gram /= 5 * 42 if form == "normalized" else 42
        np.testing.assert_allclose(grams[region], gram, rtol=RTOL, atol=1e-6)
        expected_loss += float(np.mean((gram - targets[region].astype(np.float64)) ** 2))
    np.testing.assert_allclose(grams[0], np_gram(features, form), rtol=RTOL)  # all white = unguided
    loss = guided_gram_loss(jnp.asarray(grams), jnp.asarray(targets), jnp.asarray(masks), form=form)
    np.testing.assert_allclose(loss, expected_loss, rtol=RTOL)


@pytest.mark.parametrize("form", LOSS_FORMS)
def test_white_and_black_masks_equal_the_first_style_alone(vgg_weights, form):
    """Style A under an all-white mask, style B under an all-black one: the loss and gradient of A alone."""
    content_layers, style_layers = ("relu3_2",), ("relu1_1", "relu2_1", "relu3_1")
    content, first, second, image = (random_images((32, 40, 3), seed=s) for s in (30, 31, 32, 33))
    loss_fn = make_loss_fn(content_layers=content_layers, style_layers=style_layers, form=form)
    weights = LossWeights(1.0, 1e3, 0.1)

    def value_and_grad(targets):
        inputs = LossInputs(vgg_weights.params, targets, weights)
        return jax.jit(jax.value_and_grad(lambda x, given: loss_fn(x, given).total))(image, inputs)

    alone = compute_targets(vgg_weights, content, [first], content_layers=content_layers, style_layers=style_layers,
                            form=form)
    regions = np.stack([np.ones((32, 40)), np.zeros((32, 40))]).astype(np.float32)
    guided = compute_targets(vgg_weights, content, [first, second], content_layers=content_layers,
                             style_layers=style_layers, form=form, regions=regions)
    (loss, grad), (expected, expected_grad) = value_and_grad(guided), value_and_grad(alone)
    np.testing.assert_allclose(loss, expected, rtol=1e-5)
    np.testing.assert_allclose(grad, expected_grad, rtol=1e-4, atol=1e-5 * np.abs(expected_grad).max())


def test_source_masks_select_the_part_of_a_style_that_defines_it(vgg_weights):
    """A style image red on its left half and blue on its right: its target guided by the left half is nearer the
    Gram matrix of a red image than of a blue one, and the other way round."""
    rng = np.random.default_rng(2)
    red, blue = (np.clip(rng.random((32, 32, 3)) * 0.2 + np.eye(3)[c] * 0.8, 0, 1).astype(np.float32)
                 for c in (0, 2))
    both = np.concatenate([red[:, :16], blue[:, 16:]], axis=1)
    left = np.zeros((32, 32), np.float32)
    left[:, :16] = 1
    layers = ("relu1_1", "relu2_1")

    def grams(style, source=None):
        return compute_targets(vgg_weights, both, [style], content_layers=("relu1_1",), style_layers=layers,
                               source_masks=None if source is None else [source]).style_grams

    pure_red, pure_blue = grams(red), grams(blue)
    for source, nearer, farther in ((left, pure_red, pure_blue), (1 - left, pure_blue, pure_red)):
        guided = grams(both, source)
        for layer in layers:
            assert (np.abs(guided[layer] - nearer[layer]).sum() < 0.5 * np.abs(guided[layer] - farther[layer]).sum())


def test_region_and_source_mask_errors_are_clear(vgg_weights):
    content, style = random_images((16, 16, 3), seed=1), random_images((16, 16, 3), seed=2)
    kwargs = dict(content_layers=("relu1_1",), style_layers=("relu1_1",))
    with pytest.raises(ValueError, match=r"style regions must be \(styles, height, width\) = \(1, 16, 16\)"):
        compute_targets(vgg_weights, content, [style], regions=np.ones((2, 16, 16)), **kwargs)
    with pytest.raises(ValueError, match="blend weights do not apply with style regions"):
        compute_targets(vgg_weights, content, [style], regions=np.ones((1, 16, 16)), blend_weights=[1.0], **kwargs)
    with pytest.raises(ValueError, match="2 source masks for 1 style images"):
        compute_targets(vgg_weights, content, [style], source_masks=[None, None], **kwargs)
    with pytest.raises(ValueError, match=r"source mask 1 is \(8, 8\), its style image \(16, 16\)"):
        compute_targets(vgg_weights, content, [style], source_masks=[np.ones((8, 8))], **kwargs)


def test_targets_of_a_style_image_of_another_shape_are_means_in_both_forms(vgg_weights):
    """Style images keep their own shape, so their layers have other position counts than the output's: both forms'
    Gram matrices are means over the positions (the paper's divided by M, the normalized one's by N M), so the
    targets compare with the output's whatever the style's size."""
    content, style = random_images((16, 24, 3), seed=1), random_images((40, 20, 3), seed=2)
    layers = ("relu1_1", "relu2_1")
    paper, normalized = (compute_targets(vgg_weights, content, [style], content_layers=("relu1_1",),
                                         style_layers=layers, form=form).style_grams
                         for form in ("paper", "normalized"))
    features = extract_features(vgg_weights, style, layers)
    for layer, channels in (("relu1_1", 64), ("relu2_1", 128)):
        np.testing.assert_allclose(paper[layer], normalized[layer] * channels, rtol=1e-5)
        np.testing.assert_allclose(normalized[layer], np_gram(np.asarray(features[layer]), "normalized"), rtol=1e-4)
