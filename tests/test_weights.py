"""Loading weights: the HDF5 format, the default location, and a clear WeightsError for every bad file."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest

from nst_jax import RandomWeightsWarning, WeightsError, default_weights_path, load_weights
from nst_jax.vgg import CONV_LAYERS, conv_param_shapes
from nst_jax.weights import FORMAT_VERSION, file_sha256


def test_format_matches_the_readme(weights_file: Path):
    with h5py.File(weights_file, "r") as handle:
        assert set(handle.keys()) == set(CONV_LAYERS)
        for name, shapes in conv_param_shapes().items():
            assert handle[name]["kernel"].shape == shapes["kernel"]
            assert handle[name]["kernel"].dtype == np.float32
            assert handle[name]["bias"].shape == shapes["bias"]
        assert int(handle.attrs["format_version"]) == FORMAT_VERSION
        assert bool(handle.attrs["pretrained"]) is True  # a .pth is taken to be trained weights
        np.testing.assert_allclose(handle.attrs["mean"], [0.485, 0.456, 0.406])
        np.testing.assert_allclose(handle.attrs["std"], [0.229, 0.224, 0.225])
        assert len(handle.attrs["source_sha256"]) == 64


def test_loaded_metadata(vgg_weights, weights_file: Path):
    assert vgg_weights.checksum == file_sha256(weights_file)
    assert vgg_weights.info.path == str(weights_file)
    assert vgg_weights.params["conv1_1"]["kernel"].shape == (3, 3, 3, 64)


def test_default_path_resolution(monkeypatch, tmp_path: Path):
    monkeypatch.delenv("NST_JAX_WEIGHTS", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert default_weights_path() == tmp_path / "cache" / "nst_jax" / "vgg19.h5"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert default_weights_path() == Path.home() / ".cache" / "nst_jax" / "vgg19.h5"
    monkeypatch.setenv("NST_JAX_WEIGHTS", str(tmp_path / "mine.h5"))
    assert default_weights_path() == tmp_path / "mine.h5"


def test_missing_default_file_says_how_to_fetch(monkeypatch, tmp_path: Path):
    monkeypatch.setenv("NST_JAX_WEIGHTS", str(tmp_path / "absent.h5"))
    with pytest.raises(WeightsError, match=r"absent\.h5.*python -m convert_weights"):
        load_weights()


def test_random_weights_warn(tmp_path: Path):
    from convert_weights.cli import main

    path = tmp_path / "random.h5"
    assert main(["--random", "--seed", "3", "-o", str(path)]) == 0
    with pytest.warns(RandomWeightsWarning, match="RANDOM WEIGHTS.*NOT real style transfer"):
        weights = load_weights(path)
    assert weights.pretrained is False


def test_pretrained_weights_do_not_warn(weights_file: Path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_weights(weights_file)


def _copy_with(source: Path, target: Path, edit) -> Path:
    """Copy an HDF5 weights file and apply ``edit(handle)`` to the copy."""
    target.write_bytes(source.read_bytes())
    with h5py.File(target, "r+") as handle:
        edit(handle)
    return target


def _set_dataset(handle, name, value):
    del handle[name]
    handle[name] = value


BAD_EDITS = {
    "missing layer": (lambda h: h.__delitem__("conv3_2"), r"missing layer\(s\) conv3_2"),
    "wrong shape": (
        lambda h: _set_dataset(h, "conv2_1/kernel", np.zeros((3, 3, 64, 64), np.float32)),
        r"conv2_1/kernel has shape \(3, 3, 64, 64\), expected \(3, 3, 64, 128\)",
    ),
    "nan": (
        lambda h: _set_dataset(h, "conv4_4/bias", np.full((512,), np.nan, np.float32)),
        r"conv4_4/bias contains NaN",
    ),
    "missing bias": (lambda h: h.__delitem__("conv1_1/bias"), r"conv1_1/bias missing"),
    "extra layer": (lambda h: h.create_group("conv6_1"), r"unexpected layer\(s\) conv6_1"),
    "no format version": (lambda h: h.attrs.__delitem__("format_version"), r"not an nst_jax weights file"),
    "integer kernels": (  # cast to float32 they would run, silently meaningless
        lambda h: _set_dataset(h, "conv1_1/kernel", np.ones((3, 3, 3, 64), np.int8)),
        r"conv1_1/kernel has dtype int8, expected float32",
    ),
    "pretrained neither true nor false": (
        lambda h: h.attrs.__setitem__("pretrained", "maybe"), r"pretrained = 'maybe'",
    ),
    "future format": (lambda h: h.attrs.__setitem__("format_version", 99), r"format version 99"),
}


@pytest.mark.parametrize("case", sorted(BAD_EDITS))
def test_bad_contents_raise_weights_error(weights_file: Path, tmp_path: Path, case: str):
    edit, message = BAD_EDITS[case]
    path = _copy_with(weights_file, tmp_path / "bad.h5", edit)
    with pytest.raises(WeightsError, match=message) as raised:
        load_weights(path)
    assert str(path) in str(raised.value)


@pytest.mark.parametrize("text", ["False", "false", b"False", "0"])
def test_pretrained_written_as_text_false_is_random(weights_file: Path, tmp_path: Path, text):
    """bool("False") is True: a file whose attribute reads "False" must still warn that its weights are random."""
    path = _copy_with(weights_file, tmp_path / "text.h5", lambda h: h.attrs.__setitem__("pretrained", text))
    with pytest.warns(RandomWeightsWarning):
        assert load_weights(path).pretrained is False


def test_a_fifo_is_refused_without_waiting(tmp_path: Path):
    fifo = tmp_path / "weights.h5"
    os.mkfifo(fifo)
    code = "from nst_jax import load_weights, WeightsError\ntry:\n    load_weights(%r)\nexcept WeightsError as e:\n" \
           "    print(e)" % str(fifo)
    process = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                             env={**os.environ, "JAX_PLATFORMS": "cpu"})
    assert "is a FIFO, not an HDF5 file" in process.stdout, process.stderr


@pytest.mark.parametrize("name", ["/dev/null", "photo.jpg"])
def test_fix_hint_never_names_a_file_the_converter_must_not_write(tmp_path: Path, name: str):
    path = Path(name) if name.startswith("/") else tmp_path / name
    if not path.exists():
        path.write_text("a photo, given as --weights by mistake\n")
    with pytest.raises(WeightsError) as raised:
        load_weights(path)
    message = str(raised.value)
    assert f"-o {path}" not in message and "python -m convert_weights -o vgg19.h5" in message


def test_fix_hint_names_a_missing_path(tmp_path: Path):
    with pytest.raises(WeightsError, match=f"python -m convert_weights -o {tmp_path / 'w.h5'}"):
        load_weights(tmp_path / "w.h5")


@pytest.mark.parametrize(
    "case,make",
    [
        ("empty", lambda path, good: path.write_bytes(b"")),
        ("not hdf5", lambda path, good: path.write_text("this is not HDF5\n")),
        ("truncated", lambda path, good: path.write_bytes(good.read_bytes()[: good.stat().st_size // 3])),
    ],
)
def test_unreadable_files_raise_weights_error(weights_file: Path, tmp_path: Path, case: str, make):
    path = tmp_path / "bad.h5"
    make(path, weights_file)
    with pytest.raises(WeightsError, match=r"bad\.h5.*python -m convert_weights"):
        load_weights(path)


def test_directory_is_rejected(tmp_path: Path):
    with pytest.raises(WeightsError, match="is a directory"):
        load_weights(tmp_path)
