"""MatConvNet MAT files (convert_weights.matconvnet): both layouts written here with scipy from known arrays, RGB
input minus the file's own mean pixel, converted by the command line, features equal to a reference at every ReLU."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.io import loadmat, savemat

from conftest import random_images
from convert_weights.cli import main
from convert_weights.matconvnet import read_matconvnet
from convert_weights.network import ConversionError
from nst_jax.weights import load_weights
from vgg_reference import (
    assert_features_match,
    assert_params_equal,
    expected_params,
    known_convs,
    reference_relus,
    rgb_255_input,
)

IMAGE = random_images((32, 40, 3), seed=5)  # not square: kernels with H and W swapped would show
FILE_MEAN_RGB = (122.5, 115.0, 101.25)  # not Caffe's, so that the file's own mean is what is tested
CAFFE_MEAN_RGB = (123.68, 116.779, 103.939)
BLOCKS = (2, 2, 3, 3, 3)


def rgb_first(kernel: np.ndarray, index: int) -> np.ndarray:
    """The known network reads BGR; MatConvNet's reads RGB: its first kernel's input channels reversed."""
    return kernel[:, ::-1] if index == 0 else kernel


def cell(*items) -> np.ndarray:
    """A 1xN MATLAB cell array."""
    array = np.empty((1, len(items)), dtype=object)
    for index, item in enumerate(items):
        array[0, index] = item
    return array


def write_mat(path: Path, *, layout: str, mean_rgb=FILE_MEAN_RGB) -> None:
    """imagenet-vgg-verydeep-16.mat's structure: ``layers`` a cell array of structs (conv layers with HWIO kernels
    in RGB order, relu and pool layers, the classifier's fc6..fc8 typed conv), and the mean in ``normalization``
    (old: a whole average image, ``filters`` / ``biases`` fields) or ``meta.normalization`` (new: a pixel)."""
    convs = known_convs()
    layers = []
    index = 0
    for block, count in enumerate(BLOCKS, start=1):
        for position in range(1, count + 1):
            kernel, bias = convs[index]
            hwio = rgb_first(kernel, index).transpose(2, 3, 1, 0)
            name = f"conv{block}_{position}"
            if layout == "old":
                layers.append({"name": name, "type": "conv", "filters": hwio, "biases": bias[None, :],
                               "stride": np.array([[1, 1]]), "pad": np.array([[1, 1, 1, 1]])})
            else:
                layers.append({"name": name, "type": "conv", "weights": cell(hwio, bias[:, None]),
                               "stride": np.array([[1, 1]]), "pad": np.array([[1, 1, 1, 1]])})
            layers.append({"name": f"relu{block}_{position}", "type": "relu"})
            index += 1
        layers.append({"name": f"pool{block}", "type": "pool", "method": "max"})
    for name, size in (("fc6", 2), ("fc7", 1), ("fc8", 1)):
        layers.append({"name": name, "type": "conv",
                       "weights": cell(np.ones((size, size, 4, 4), np.float32), np.zeros((4, 1), np.float32))})
    layers.append({"name": "prob", "type": "softmax"})
    mean = np.asarray(mean_rgb, np.float32)
    if layout == "old":
        ramp = np.linspace(-3.0, 3.0, 8 * 8).reshape(8, 8, 1).astype(np.float32)  # averages to zero per channel
        content = {"layers": cell(*layers), "normalization": {"averageImage": mean + ramp, "keepAspect": 1.0},
                   "classes": {"name": cell("a", "b")}}
    else:
        content = {"layers": cell(*layers), "meta": {"normalization": {"averageImage": mean.reshape(1, 1, 3),
                                                                       "imageSize": np.array([[224, 224, 3]])},
                                                     "classes": {"name": cell("a", "b")}}}
    savemat(path, content)


@pytest.mark.parametrize("layout", ["old", "new"])
def test_a_matconvnet_file_converts_to_its_networks_features(tmp_path, capsys, layout):
    source = tmp_path / "imagenet-vgg-verydeep-16.mat"
    write_mat(source, layout=layout)
    output = tmp_path / "out.h5"
    assert main([str(source), "-o", str(output)]) == 0
    out = capsys.readouterr().out
    assert "skipped the classifier: fc6, fc7, fc8" in out and "preprocessing: caffe (mean 101.250, 115.000" in out
    weights = load_weights(output)
    assert weights.info.preprocessing == "caffe" and weights.info.input_mean == FILE_MEAN_RGB[::-1]
    convs = [(rgb_first(kernel, index), bias) for index, (kernel, bias) in enumerate(known_convs())]
    assert_features_match(weights, IMAGE, reference_relus(convs, rgb_255_input(IMAGE, FILE_MEAN_RGB)))


def test_caffes_mean_is_stored_as_caffes_convention(tmp_path):
    """MatConvNet's VGGs hold Caffe's mean pixel: stored with no mean of their own, they are the Caffe network read
    in BGR (the known network here)."""
    source = tmp_path / "imagenet-vgg-verydeep-16.mat"
    write_mat(source, layout="new", mean_rgb=CAFFE_MEAN_RGB)
    network = read_matconvnet(source)
    assert network.mean is None and network.preprocessing == "caffe" and "(Caffe's)" in network.notes[0]
    assert_params_equal(network.params, expected_params())


def test_v73_files_and_foreign_mat_files_are_refused_with_the_reason(tmp_path):
    v73 = tmp_path / "imagenet-vgg-verydeep-19.mat"
    v73.write_bytes(b"MATLAB 7.3 MAT-file, Platform: GLNXA64".ljust(512, b" ") + b"\x89HDF\r\n\x1a\n")
    with pytest.raises(ConversionError, match=r"v7\.3 MAT file .* save\(\.\.\., '-v7'\)"):
        read_matconvnet(v73)
    other = tmp_path / "other.mat"
    savemat(other, {"x": np.zeros(3)})
    with pytest.raises(ConversionError, match="no 'layers' variable"):
        read_matconvnet(other)
    no_mean = tmp_path / "no_mean.mat"
    write_mat(no_mean, layout="new")
    savemat(no_mean, {"layers": loadmat(no_mean)["layers"]})
    with pytest.raises(ConversionError, match="averageImage"):
        read_matconvnet(no_mean)
