"""VGG19 features in Flax equal PyTorch's on the same weights, at every layer."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from conftest import random_images
from nst_jax import LAYER_NAMES, extract_features, min_input_size
from nst_jax.vgg import conv3x3, torchvision_index, validate_layers

# Relative error: max |jax - torch| / max |torch| over a layer's activations.
PARITY_TOLERANCE = 1e-4

extract = jax.jit(extract_features, static_argnames=("layers", "pooling", "precision"))


def relative_error(ours: np.ndarray, reference: np.ndarray) -> float:
    """Largest absolute difference relative to the reference's largest magnitude."""
    return float(np.max(np.abs(ours - reference)) / np.max(np.abs(reference)))


@pytest.mark.parametrize("pooling", ["avg", "max"])
@pytest.mark.parametrize("height,width", [(64, 64), (37, 53)])
def test_every_layer_matches_torch(vgg_weights, torch_models, pooling, height, width):
    images = random_images((2, height, width, 3), seed=height)
    layers = tuple(name for name in LAYER_NAMES if min(height, width) >= min_input_size([name]))
    ours = extract(vgg_weights, images, layers=layers, pooling=pooling)
    with torch.no_grad():
        reference = torch_models[pooling](torch.from_numpy(images).permute(0, 3, 1, 2), layers)
    assert set(ours) == set(layers)
    errors = {}
    for name in layers:
        expected = reference[name].permute(0, 2, 3, 1).numpy()
        assert ours[name].shape == expected.shape, name
        errors[name] = relative_error(np.asarray(ours[name]), expected)
    worst = max(errors, key=errors.get)
    assert errors[worst] <= PARITY_TOLERANCE, f"{worst}: relative error {errors[worst]:.2e}"


def test_single_image_and_batch_agree(vgg_weights):
    image = random_images((40, 48, 3), seed=3)
    single = extract(vgg_weights, image, layers=("relu3_1",))
    batch = extract(vgg_weights, image[None], layers=("relu3_1",))
    assert single["relu3_1"].shape == (10, 12, 256)
    np.testing.assert_allclose(single["relu3_1"], batch["relu3_1"][0], rtol=1e-6, atol=1e-6)


def test_computes_only_up_to_the_deepest_layer(vgg_weights):
    shallow = jax.jit(lambda x: extract_features(vgg_weights, x, ("relu1_1",))).lower(
        random_images((1, 32, 32, 3))
    )
    deep = jax.jit(lambda x: extract_features(vgg_weights, x, ("relu5_1",))).lower(random_images((1, 32, 32, 3)))
    assert shallow.as_text().count("convolution(") == 1
    assert deep.as_text().count("convolution(") == 13


def test_custom_conv_gradient_matches_autodiff():
    rng = np.random.default_rng(0)
    images = rng.standard_normal((2, 9, 11, 4)).astype(np.float32)
    kernel = rng.standard_normal((3, 3, 4, 5)).astype(np.float32)
    cotangent = rng.standard_normal((2, 9, 11, 5)).astype(np.float32)

    def plain(x, k):
        return jax.lax.conv_general_dilated(x, k, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))

    ours = jax.vjp(conv3x3, images, kernel)[1](cotangent)
    reference = jax.vjp(plain, images, kernel)[1](cotangent)
    for got, want in zip(ours, reference):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)


def test_image_gradient_matches_torch(vgg_weights, torch_models):
    images = random_images((1, 32, 32, 3), seed=7)
    ours = jax.jit(jax.grad(lambda x, params: extract_features(params, x, ("relu5_1",))["relu5_1"].sum()))(
        images, vgg_weights.params)  # the weights an argument, not constants folded into the compiled program
    torch_images = torch.from_numpy(images).permute(0, 3, 1, 2).requires_grad_(True)
    torch_models["avg"](torch_images, ["relu5_1"])["relu5_1"].sum().backward()
    expected = torch_images.grad.permute(0, 2, 3, 1).numpy()
    assert relative_error(np.asarray(ours), expected) <= PARITY_TOLERANCE


def test_too_small_image_names_the_minimum(vgg_weights):
    with pytest.raises(ValueError, match="at least 16 pixels"):
        extract_features(vgg_weights, random_images((15, 40, 3)), ("relu5_1",))


def test_unknown_layer_lists_valid_names():
    with pytest.raises(ValueError, match=r"unknown VGG19 layer\(s\) 'conv6_1'.*relu4_2"):
        validate_layers(["relu1_1", "conv6_1"])


def test_layer_names_follow_torchvision_indices():
    assert torchvision_index("conv1_1") == 0
    assert torchvision_index("relu1_1") == 1
    assert torchvision_index("pool1") == 4
    assert torchvision_index("relu4_2") == 22
    assert torchvision_index("conv5_4") == 34
    assert torchvision_index("pool5") == 36
    assert len(LAYER_NAMES) == 37


@pytest.mark.numerics
def test_precisions_return_float32_features_close_to_float32(vgg_weights):
    """Every precision runs on a CPU; TF32 and JAX's default are float32 there, bfloat16 is close (its 8-bit
    mantissa: about 1e-2 relative), and the features handed to the Gram matrices are float32 in every case."""
    from nst_jax.vgg import PRECISIONS

    image = random_images((40, 48, 3), seed=5)
    layers = ("relu1_1", "relu3_1", "relu5_1")
    reference = extract(vgg_weights.params, image, layers, precision="float32")
    for precision in PRECISIONS:
        features = extract(vgg_weights.params, image, layers, precision=precision)
        for layer in layers:
            assert features[layer].dtype == jnp.float32
            error = float(jnp.max(jnp.abs(features[layer] - reference[layer])) / jnp.max(jnp.abs(reference[layer])))
            assert error <= (5e-2 if precision == "bfloat16" else 1e-6), (precision, layer, error)
    with pytest.raises(ValueError, match="precision must be one of"):
        extract_features(vgg_weights, image, layers, precision="float16")
