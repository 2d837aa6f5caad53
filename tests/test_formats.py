"""Format detection (convert_weights.formats): each format told from its content, the rest named with what is known."""

from __future__ import annotations

import pickle
import zipfile

import h5py
import numpy as np
import pytest
import torch
from scipy.io import savemat

from convert_weights.formats import FORMATS, detect_format
from convert_weights.network import ConversionError


@pytest.fixture
def files(tmp_path, weights_file):
    tiny = {"features.0.weight": torch.zeros(1)}
    made = {}
    made["pytorch"] = tmp_path / "zip_format.bin"
    torch.save(tiny, made["pytorch"])
    made["pytorch legacy"] = tmp_path / "legacy.weights"
    torch.save(tiny, made["pytorch legacy"], _use_new_zipfile_serialization=False)
    made["keras"] = tmp_path / "vgg16.h5"
    with h5py.File(made["keras"], "w") as handle:
        handle.attrs["layer_names"] = np.array([b"block1_conv1"])
    made["keras archive"] = tmp_path / "model.keras"
    with zipfile.ZipFile(made["keras archive"], "w") as archive:
        archive.writestr("model.weights.h5", b"")
    made["matconvnet"] = tmp_path / "net.mat"
    savemat(made["matconvnet"], {"layers": np.zeros(1)})
    made["flax-pickle"] = tmp_path / "tree.ckpt"
    made["flax-pickle"].write_bytes(pickle.dumps({"Conv_0": {"kernel": np.zeros(1)}}))
    made["onnx"] = tmp_path / "model.pb"
    made["onnx"].write_bytes(b"\x08\x07\x12\x07tf2onnx")  # ir_version 7, producer_name
    made["nst_jax"] = weights_file
    return made


@pytest.mark.parametrize("kind,expected", [("pytorch", "pytorch"), ("pytorch legacy", "pytorch"),
                                           ("keras", "keras"), ("keras archive", "keras"),
                                           ("matconvnet", "matconvnet"), ("flax-pickle", "flax-pickle"),
                                           ("onnx", "onnx")])
def test_each_format_is_told_from_its_content(files, kind, expected):
    assert detect_format(files[kind]) == expected


def test_what_is_not_a_source_is_named(files, tmp_path):
    with pytest.raises(ConversionError, match="already an nst_jax weights file: pass it to nst_jax as --weights"):
        detect_format(files["nst_jax"])
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(b"\xff\xd8\xff\xe0\x00\x10JFIF")
    with pytest.raises(ConversionError, match="cannot tell the format of .*photo.jpg.*nst_jax converts: PyTorch") as e:
        detect_format(photo)
    assert all(description in str(e.value) for description in FORMATS.values())
    other = tmp_path / "other.zip"
    with zipfile.ZipFile(other, "w") as archive:
        archive.writestr("readme.txt", "hello")
    with pytest.raises(ConversionError, match="neither a PyTorch state dict .* nor Keras weights"):
        detect_format(other)
    (tmp_path / "empty.pth").write_bytes(b"")
    with pytest.raises(ConversionError, match="is empty"):
        detect_format(tmp_path / "empty.pth")
    with pytest.raises(ConversionError, match="is a directory"):
        detect_format(tmp_path)
    with pytest.raises(ConversionError, match="no such file"):
        detect_format(tmp_path / "absent.onnx")
