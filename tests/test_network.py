"""convert_weights.network: every reader's convolutions, counted, named and checked in one place."""

from __future__ import annotations

import numpy as np
import pytest

from convert_weights.network import Conv, ConversionError, flip_input_channels, params_from_convs
from vgg_reference import expected_params, known_convs


def convs() -> list[Conv]:
    return [Conv(f"layer{i}", kernel.transpose(2, 3, 1, 0), bias) for i, (kernel, bias) in enumerate(known_convs())]


def test_thirteen_convolutions_are_a_vgg16_named_as_nst_jax_names_them():
    params = params_from_convs(convs(), "test")
    assert list(params) == list(expected_params())
    with pytest.raises(ConversionError, match="a VGG16, not the VGG19 --arch asks for"):
        params_from_convs(convs(), "test", "vgg19")
    with pytest.raises(ConversionError, match=r"holds 12 3x3 convolution\(s\), expected 13 \(VGG16\) or 16 \(VGG19\)"):
        params_from_convs(convs()[:12], "test")


def test_every_problem_is_named():
    broken = convs()
    broken[2] = Conv("layer2", np.zeros((3, 3, 64, 128), np.int8), broken[2].bias)
    broken[5] = Conv("layer5", broken[5].kernel.transpose(3, 2, 0, 1), broken[5].bias)
    nan = broken[7].bias.copy()
    nan[0] = np.nan
    broken[7] = Conv("layer7", broken[7].kernel, nan)
    with pytest.raises(ConversionError) as error:
        params_from_convs(broken, "file.h5")
    message = str(error.value)
    assert message.startswith("file.h5 is not a usable VGG16: layer2 (conv2_1) has int8/float32 values")
    assert "layer5 (conv3_2) kernel (256, 256, 3, 3)" in message and "layer7 (conv4_1) has NaN" in message


def test_flipping_input_channels_touches_the_first_kernel_only():
    params = params_from_convs(convs(), "test")
    flipped = flip_input_channels(params)
    np.testing.assert_array_equal(flipped["conv1_1"]["kernel"], params["conv1_1"]["kernel"][:, :, ::-1])
    assert flipped["conv1_2"]["kernel"] is params["conv1_2"]["kernel"]
