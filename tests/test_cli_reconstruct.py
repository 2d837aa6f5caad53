"""``nst-jax reconstruct``: end to end on a tiny image (files, grid, metadata), batched and not; one-line errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from nst_jax import cli
from nst_jax.cli import exits
from nst_jax.cli import reconstruct as cli_reconstruct
from nst_jax.image_io import load_image, read_png_metadata

FAST = ["--image-size", "32", "--iterations", "3", "--chunk-size", "3", "--quiet"]


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    """``python -m nst_jax reconstruct ARGV`` in-process: exit code, stdout, stderr."""
    code = cli.main(["reconstruct", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _error_line(err: str) -> str:
    """The one ``nst-jax reconstruct: error:`` line of stderr (no traceback)."""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("nst-jax reconstruct: error: "), err
    return lines[0]


@pytest.mark.parametrize("batched", ["--no-batched", "--batched"])
def test_content_writes_one_image_per_layer_and_a_grid(capsys, tmp_path, inputs, weights_file, batched):
    out = tmp_path / "recon"
    code, stdout, _ = _run(capsys, "content", str(inputs["content"]), "-o", str(out), "--layers", "relu1_2,relu2_2",
                           "--weights", str(weights_file), batched, *FAST)
    assert code == 0 and "wrote 2 content reconstructions" in stdout
    assert sorted(p.name for p in out.iterdir()) == ["content_grid.png", "content_relu1_2.png", "content_relu2_2.png"]
    for layer in ("relu1_2", "relu2_2"):
        path = out / f"content_{layer}.png"
        assert load_image(path).shape == (27, 32, 3)  # the 48x40 input with its longest side at 32
        metadata = read_png_metadata(path)
        config = json.loads(metadata["nst_jax:config"])
        assert config["content_layers"] == [layer] and config["style_weight"] == 0.0 and config["init"] == "noise"
        assert metadata["nst_jax:status"] == "completed" and metadata["nst_jax:iterations"] == "3"
    grid = load_image(out / "content_grid.png")
    assert grid.shape[0] > 27 and grid.shape[1] > 3 * 32  # input + two reconstructions in one row


@pytest.mark.slow
def test_style_writes_growing_layer_sets(capsys, tmp_path, weights_file):
    # A checkerboard, not the noise style of the other tests: from a noise start a noise style's Gram matrices are
    # nearly matched already, and 3 iterations moved the three sets' pictures only 0.008 to 0.02 apart, depending
    # on the line search's first step. The checkerboard's move 0.035 apart (AVX-512 and AVX2 alike).
    y, x = np.mgrid[:40, :40]
    checker = np.where(((x // 5 + y // 5) % 2 == 0)[..., None], [230, 40, 20], [20, 60, 200]).astype(np.uint8)
    Image.fromarray(checker).save(tmp_path / "checker.png")
    out = tmp_path / "texture"
    code, stdout, stderr = _run(capsys, "style", str(tmp_path / "checker.png"), "-o", str(out), "--layers",
                                "relu1_1,relu2_1,relu3_1", "--weights", str(weights_file), *FAST)
    assert code == 0 and "wrote 3 style reconstructions" in stdout and stderr == ""
    names = ["style_relu1_1.png", "style_relu1_1-relu2_1.png", "style_relu1_1-relu3_1.png"]
    assert sorted(p.name for p in out.iterdir()) == sorted(names + ["style_grid.png"])
    sets = [json.loads(read_png_metadata(out / name)["nst_jax:config"])["style_layers"] for name in names]
    assert sets == [["relu1_1"], ["relu1_1", "relu2_1"], ["relu1_1", "relu2_1", "relu3_1"]]
    images = [load_image(out / name) for name in names]
    assert all(image.shape == (32, 32, 3) for image in images)
    assert not np.allclose(images[0], images[2], atol=1e-2)  # different layer sets, different textures


def test_random_weights_are_announced(capsys, tmp_path, inputs):
    from convert_weights.cli import main as convert_main

    weights = tmp_path / "random.h5"
    assert convert_main(["--random", "-o", str(weights)]) == 0
    capsys.readouterr()
    code, _, stderr = _run(capsys, "content", str(inputs["content"]), "-o", str(tmp_path / "r"), "--layers", "relu1_2",
                           "--weights", str(weights), *FAST)
    assert code == 0 and "RANDOM WEIGHTS" in stderr


@pytest.mark.parametrize(
    "argv, message",
    [
        (["content", "{content}", "--layers", "relu9_9"], "unknown VGG19 layer(s) 'relu9_9'"),
        (["content", "{content}", "--layers", "relu1_2,relu1_2"], "names a layer twice"),
        (["style", "{missing}"], "missing.png"),
        (["content", "{text}"], "notes.png"),
        (["content", "{content}", "--image-size", "8"], "need at least"),
        (["content", "{content}", "--iterations", "0"], "--iterations must be a positive integer"),
        (["content", "{content}", "--seed", "4294967297"], "--seed must be an integer from 0 to 4294967295"),
        (["content", "{content}", "--optimiser", "adam"], "unrecognized arguments: --optimiser"),  # argparse's own
        (["texture", "{content}"], "argument kind: invalid choice: 'texture'"),
    ],
)
def test_bad_input_is_one_error_line(capsys, tmp_path, inputs, argv, message):
    paths = {"content": inputs["content"], "text": inputs["text"], "missing": tmp_path / "missing.png"}
    argv = [arg.format(**paths) for arg in argv]
    code, _, stderr = _run(capsys, *argv, "-o", str(tmp_path / "out"), "--weights", str(tmp_path / "none.h5"))
    assert code == 2 and message in _error_line(stderr)
    assert not (tmp_path / "out").exists()  # nothing written before the inputs are checked


def test_output_must_be_a_folder_with_a_parent(capsys, tmp_path, inputs):
    file = tmp_path / "file.png"
    file.write_bytes(b"")
    for out, message in ((file, "is a file"), (tmp_path / "no" / "such", "does not exist")):
        code, _, stderr = _run(capsys, "content", str(inputs["content"]), "-o", str(out))
        assert code == 2 and message in _error_line(stderr)


def test_files_nst_jax_did_not_write_are_kept(capsys, tmp_path, inputs):
    out = tmp_path / "out"
    out.mkdir()
    theirs = out / "content_relu1_2.png"
    theirs.write_bytes(b"somebody's notes")
    code, _, stderr = _run(capsys, "content", str(inputs["content"]), "-o", str(out), "--layers", "relu1_2", *FAST)
    assert code == 2 and "exists and was not written by nst_jax" in _error_line(stderr)
    assert theirs.read_bytes() == b"somebody's notes"


def test_missing_weights_name_the_command_that_fetches_them(capsys, tmp_path, inputs):
    code, _, stderr = _run(capsys, "content", str(inputs["content"]), "-o", str(tmp_path / "o"), "--weights",
                           str(tmp_path / "none.h5"), *FAST)
    assert code == 2 and "python -m convert_weights" in _error_line(stderr)


def test_layer_sets():
    assert cli_reconstruct.layer_sets("content", None) == [(layer,) for layer in cli_reconstruct.CONTENT_LAYERS]
    assert cli_reconstruct.layer_sets("style", ("relu1_1", "relu3_1")) == [("relu1_1",), ("relu1_1", "relu3_1")]
    with pytest.raises(exits.UsageError, match="at least one layer"):
        cli_reconstruct.layer_sets("style", ())
