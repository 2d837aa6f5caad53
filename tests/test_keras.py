"""Keras HDF5 weights (convert_weights.keras): files written here in each layout Keras users have, from known arrays,
converted by the command line, with features equal to an independent reference at every ReLU."""

from __future__ import annotations

import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest

from conftest import random_images
from convert_weights.cli import main
from convert_weights.keras import read_keras
from convert_weights.network import ConversionError
from nst_jax.weights import load_weights
from vgg_reference import assert_features_match, assert_params_equal, caffe_input, known_convs, reference_relus

IMAGE = random_images((32, 40, 3), seed=3)  # not square: a kernel with H and W swapped would show
BLOCKS = (2, 2, 3, 3, 3)


def layer_plan(top: bool) -> list[tuple[str, int | None]]:
    """Keras' VGG16 layer names in order, each with its conv index (None: no weights, or dense)."""
    plan: list[tuple[str, int | None]] = [("input_1", None)]
    index = 0
    for block, count in enumerate(BLOCKS, start=1):
        for position in range(1, count + 1):
            plan.append((f"block{block}_conv{position}", index))
            index += 1
        plan.append((f"block{block}_pool", None))
    if top:
        plan += [("flatten", None), ("fc1", -1), ("predictions", -1)]
    return plan


def write_legacy(path: Path, *, top: bool = False, whole_model: bool = False, theano: str | None = None) -> None:
    """A Keras 2 weights file (``save_weights``) or whole model (``model.save``): ``layer_names``, ``weight_names``
    such as ``block1_conv1/kernel:0`` (nested groups); ``theano``: OIHW kernels, ``"flipped"`` rotated as Theano's."""
    convs = known_convs()
    with h5py.File(path, "w") as handle:
        if whole_model:
            handle.attrs["model_config"] = '{"class_name": "Functional"}'
            root = handle.create_group("model_weights")
        else:
            root = handle
        root.attrs["keras_version"] = "2.2.4"
        root.attrs["backend"] = "theano" if theano else "tensorflow"
        plan = layer_plan(top)
        root.attrs["layer_names"] = np.array([name.encode() for name, _ in plan])
        for name, index in plan:
            group = root.create_group(name)
            if index is None:
                group.attrs["weight_names"] = np.array([], dtype="S1")
                continue
            if index == -1:  # a dense layer: a 2-D kernel, skipped
                kernel, bias = np.ones((8, 4), np.float32), np.zeros(4, np.float32)
            else:
                oihw, bias = convs[index]
                if theano == "flipped":
                    kernel = oihw[:, :, ::-1, ::-1]
                elif theano == "ordered":
                    kernel = oihw
                else:
                    kernel = oihw.transpose(2, 3, 1, 0)
            names = [f"{name}/kernel:0", f"{name}/bias:0"]
            group.attrs["weight_names"] = np.array([n.encode() for n in names])
            group.create_dataset(names[0], data=kernel)
            group.create_dataset(names[1], data=bias)


def write_keras3(target, extra_layers: bool = True) -> None:
    """A Keras 3 ``.weights.h5``: ``layers/conv2d``, ``conv2d_1`` ... (created out of order, so that only the
    numbers can order them), ``vars/0`` kernel HWIO, ``vars/1`` bias; pools and the input without vars."""
    convs = known_convs()
    with h5py.File(target, "w") as handle:
        layers = handle.create_group("layers")
        if extra_layers:
            layers.create_group("input_layer").create_group("vars")
            for pool in ("max_pooling2d", "max_pooling2d_1"):
                layers.create_group(pool).create_group("vars")
        for index in reversed(range(len(convs))):
            name = "conv2d" if index == 0 else f"conv2d_{index}"
            variables = layers.create_group(name).create_group("vars")
            variables.create_dataset("0", data=convs[index][0].transpose(2, 3, 1, 0))
            variables.create_dataset("1", data=convs[index][1])
        handle.create_group("vars")


def test_a_keras_file_converts_to_caffes_features(tmp_path, capsys):
    """Keras' ImageNet VGGs are Caffe's: BGR pixels 0-255 minus the BGR mean (features at every ReLU)."""
    source = tmp_path / "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"
    write_legacy(source)
    output = tmp_path / "out.h5"
    assert main([str(source), "-o", str(output)]) == 0
    out = capsys.readouterr().out
    assert "preprocessing: caffe" in out and "architecture: VGG16" in out and "origin: Keras VGG16" in out
    weights = load_weights(output)
    assert weights.info.preprocessing == "caffe" and weights.info.input_scale == 255.0
    assert weights.info.source == f"keras file {source.name}"
    assert_features_match(weights, IMAGE, reference_relus(known_convs(), caffe_input(IMAGE)))


@pytest.mark.parametrize("layout", ["top", "whole model", "th_kernels", "th_dim_ordering_tf_kernels", "keras3",
                                    "keras archive"])
def test_every_layout_reads_the_same_convolutions(tmp_path, layout):
    """The other layouts give exactly the arrays of the file whose features are checked above."""
    if layout == "th_kernels":
        source = tmp_path / "vgg16_weights_th_dim_ordering_th_kernels_notop.h5"
        write_legacy(source, theano="flipped")
    elif layout == "th_dim_ordering_tf_kernels":
        source = tmp_path / "vgg16_weights_th_dim_ordering_tf_kernels_notop.h5"
        write_legacy(source, theano="ordered")
    elif layout == "keras3":
        source = tmp_path / "vgg16.weights.h5"
        write_keras3(source)
    elif layout == "keras archive":
        source = tmp_path / "vgg16.keras"
        write_keras3(tmp_path / "model.weights.h5")
        with zipfile.ZipFile(source, "w") as archive:
            archive.writestr("config.json", '{"class_name": "Functional"}')
            archive.write(tmp_path / "model.weights.h5", "model.weights.h5")
    else:
        source = tmp_path / "vgg16_weights_tf_dim_ordering_tf_kernels.h5"
        write_legacy(source, top=layout == "top", whole_model=layout == "whole model")
    network = read_keras(source)
    assert network.preprocessing == "caffe"
    assert_params_equal(network.params)
    notes = " ".join(network.notes)
    assert ("skipped layer(s) without a 3x3 kernel: fc1, predictions" in notes) == (layout == "top")
    assert ("rotated by 180 degrees" in notes) == (layout == "th_kernels")


def test_theano_kernels_of_unknown_flipping_are_refused(tmp_path):
    source = tmp_path / "my_vgg16.h5"
    write_legacy(source, theano="flipped")
    with pytest.raises(ConversionError, match="Theano-ordered kernels .* name does not say whether they are flipped"):
        read_keras(source)


def test_names_are_read_not_guessed(tmp_path):
    """A layer listed in layer_names but missing, or a weight_names entry that is not there, is an error naming it."""
    source = tmp_path / "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"
    write_legacy(source)
    with h5py.File(source, "r+") as handle:
        handle["block3_conv2"].attrs["weight_names"] = np.array([b"block3_conv2/W:0", b"block3_conv2/bias:0"])
    with pytest.raises(ConversionError, match=r"layer block3_conv2 lists weight\(s\) block3_conv2/W:0"):
        read_keras(source)
    with h5py.File(source, "r+") as handle:
        del handle["block3_conv2"]
    with pytest.raises(ConversionError, match="layer_names lists 'block3_conv2'"):
        read_keras(source)


def test_keras3_layers_are_ordered_by_number_and_checked(tmp_path):
    source = tmp_path / "vgg16.weights.h5"
    write_keras3(source, extra_layers=False)
    network = read_keras(source)
    # created in reverse; lexical order would put conv2d_10 before conv2d_2
    np.testing.assert_array_equal(network.params["conv3_1"]["bias"], known_convs()[4][1])
    with h5py.File(source, "r+") as handle:
        del handle["layers/conv2d_12"]
    with pytest.raises(ConversionError, match=r"holds 12 3x3 convolution\(s\), expected 13 \(VGG16\) or 16"):
        read_keras(source)


def test_an_hdf5_file_that_is_not_keras_is_named(tmp_path):
    source = tmp_path / "other.h5"
    with h5py.File(source, "w") as handle:
        handle.create_dataset("x", data=np.zeros(3))
    with pytest.raises(ConversionError, match="not Keras weights"):
        read_keras(source)
