"""Known VGG16 arrays and an independent reference for the format readers' tests.

Each reader's test writes these arrays in its format's exact layout, converts the file with the converter's command
line and compares nst_jax's features with this reference at every ReLU: a plain PyTorch ``nn.Sequential`` built here
from the arrays themselves (neither nst_jax nor convert_weights), fed the input the format's network expects.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import jax
import numpy as np
import torch
from torch import nn

from nst_jax.vgg import extract_features, layer_names

CHANNELS = [64, 64, "P", 128, 128, "P", 256, 256, 256, "P", 512, 512, 512, "P", 512, 512, 512]
CAFFE_BGR_MEAN = np.array([103.939, 116.779, 123.68], np.float32)
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)
RELUS = tuple(name for name in layer_names("vgg16") if name.startswith("relu"))
FEATURE_RTOL = 1e-4
"""max |ours - reference| / max |reference| at each ReLU (issue 26's bound; float32 convolutions measure ~1e-6)."""

extract = jax.jit(extract_features, static_argnames=("layers", "pooling"))


@functools.cache
def known_convs(seed: int = 0) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
    """VGG16's 13 convolutions as (OIHW kernel, bias), He-initialized with non-zero biases (zero biases would hide
    a bias that is lost or misplaced)."""
    rng = np.random.default_rng(seed)
    convs = []
    in_channels = 3
    for out_channels in (c for c in CHANNELS if c != "P"):
        std = np.sqrt(2.0 / (9 * out_channels))
        kernel = (rng.standard_normal((out_channels, in_channels, 3, 3)) * std).astype(np.float32)
        convs.append((kernel, (0.05 * rng.standard_normal(out_channels)).astype(np.float32)))
        in_channels = out_channels
    return tuple(convs)


def expected_params(convs: Sequence[tuple[np.ndarray, np.ndarray]] | None = None) -> dict[str, dict[str, np.ndarray]]:
    """The known convolutions as nst_jax params (HWIO kernels): what a reader must produce where its file holds them
    in the network's own channel order."""
    convs = known_convs() if convs is None else convs
    names = [name for name in layer_names("vgg16") if name.startswith("conv")]
    return {name: {"kernel": kernel.transpose(2, 3, 1, 0), "bias": bias} for name, (kernel, bias) in zip(names, convs)}


def assert_params_equal(params, expected: dict[str, dict[str, np.ndarray]] | None = None) -> None:
    """``params`` hold exactly ``expected`` (default: the known convolutions), conv by conv."""
    expected = expected_params() if expected is None else expected
    assert set(params) - {"input"} == set(expected)
    for name, layer in expected.items():
        for key, value in layer.items():
            np.testing.assert_array_equal(np.asarray(params[name][key]), value, err_msg=f"{name}/{key}")


def caffe_input(rgb: np.ndarray, mean_bgr: Sequence[float] = CAFFE_BGR_MEAN) -> np.ndarray:
    """Caffe's input (CHW): BGR pixels 0-255 minus the BGR mean."""
    return rgb[..., ::-1].transpose(2, 0, 1) * 255.0 - np.asarray(mean_bgr, np.float32)[:, None, None]


def rgb_255_input(rgb: np.ndarray, mean_rgb: Sequence[float]) -> np.ndarray:
    """MatConvNet's input (CHW): RGB pixels 0-255 minus the file's RGB mean pixel."""
    return rgb.transpose(2, 0, 1) * 255.0 - np.asarray(mean_rgb, np.float32)[:, None, None]


def torchvision_input(rgb: np.ndarray) -> np.ndarray:
    """torchvision's input (CHW): RGB in [0, 1] minus the ImageNet mean, divided by its std."""
    return ((rgb - IMAGENET_MEAN) / IMAGENET_STD).transpose(2, 0, 1)


def reference_relus(convs: Sequence[tuple[np.ndarray, np.ndarray]], network_input: np.ndarray,
                    after_conv: Callable[[int], nn.Module] | None = None) -> dict[str, np.ndarray]:
    """Every ReLU's output (HWC) of a max-pooling VGG16 with these (OIHW kernel, bias) convolutions for a CHW
    ``network_input``; ``after_conv(i)`` inserts a module (a batch norm) between conv i and its ReLU."""
    layers: list[nn.Module] = []
    index = 0
    for channels in CHANNELS:
        if channels == "P":
            layers.append(nn.MaxPool2d(2, 2))
            continue
        kernel, bias = convs[index]
        conv = nn.Conv2d(kernel.shape[1], kernel.shape[0], 3, padding=1)
        with torch.no_grad():
            conv.weight.copy_(torch.from_numpy(np.ascontiguousarray(kernel)))
            conv.bias.copy_(torch.from_numpy(bias))
        layers += [conv, *([after_conv(index)] if after_conv else []), nn.ReLU()]
        index += 1
    outputs = {}
    x = torch.from_numpy(np.ascontiguousarray(network_input, np.float32))[None]
    relus = iter(RELUS)
    with torch.no_grad():
        for module in nn.Sequential(*layers).eval():
            x = module(x)
            if isinstance(module, nn.ReLU):
                outputs[next(relus)] = x[0].permute(1, 2, 0).numpy()
    return outputs


def feature_errors(weights, image: np.ndarray, reference: dict[str, np.ndarray]) -> dict[str, float]:
    """nst_jax's features (max pooling) against ``reference`` at every ReLU: max |difference| / max |reference|."""
    ours = extract(weights, image, layers=RELUS, pooling="max")
    return {name: float(np.max(np.abs(np.asarray(ours[name]) - expected)) / np.max(np.abs(expected)))
            for name, expected in reference.items()}


def assert_features_match(weights, image: np.ndarray, reference: dict[str, np.ndarray]) -> None:
    """Every ReLU within ``FEATURE_RTOL`` of the reference."""
    errors = feature_errors(weights, image, reference)
    assert set(errors) == set(RELUS)
    worst = max(errors, key=errors.get)
    assert errors[worst] <= FEATURE_RTOL, f"{worst}: relative error {errors[worst]:.2e}"
