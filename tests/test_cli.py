"""The command line: defaults from StyleConfig, outputs (image, snapshots, JSON log, metadata), one-line errors
with exit code 2 for every bad input (checked before weights are loaded), non-finite (1) and Ctrl-C (130)."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import jax
import numpy as np
import pytest
from PIL import Image

from conftest import save_random_image
from convert_weights.cli import main as convert_main
from nst_jax import StyleConfig, cli, memory
from nst_jax.cli import device, loading, options, paths, progress, saving, single
from nst_jax.image_io import load_image, read_png_metadata
from nst_jax.weights import file_sha256

# Shallow layers and tiny images: one compile (~5 s on CPU) shared by every run below that optimizes.
FAST = [
    "--image-size", "32", "--iterations", "4", "--chunk-size", "2",
    "--content-layers", "relu2_1", "--style-layers", "relu1_1,relu2_1", "--quiet",
]


@pytest.fixture(scope="module")
def random_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-init VGG19 (pretrained=False) written by the converter."""
    path = tmp_path_factory.mktemp("random") / "random.h5"
    assert convert_main(["--random", "-o", str(path)]) == 0
    return path


def _argv(inputs: dict[str, Path], out: Path, weights: Path, *extra: str) -> list[str]:
    """Arguments of a fast run of content + style into ``out``."""
    return [str(inputs["content"]), str(inputs["style"]), "-o", str(out), "--weights", str(weights), *FAST, *extra]


def _one_error_line(err: str) -> str:
    """The single line of stderr, checked to be a ``nst-jax: error:`` line without a traceback."""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("nst-jax: error: ") and "Traceback" not in err
    return lines[0]


# --------------------------------------------------------------------------- parsing


def test_defaults_come_from_style_config(tmp_path: Path):
    parser = options.build_parser()
    args = parser.parse_args(["c.png", "s.png", "-o", str(tmp_path / "o.png")])
    assert options.config_from_args(args) == StyleConfig()
    for field in dataclasses.fields(StyleConfig):
        assert parser.get_default(field.name) == getattr(StyleConfig(), field.name), field.name


def test_help_shows_defaults(monkeypatch, capsys):
    monkeypatch.setenv("COLUMNS", "300")  # no line wrapping
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "(default: 512)" in out and "(default: 500)" in out
    assert "(default: relu1_1,relu2_1,relu3_1,relu4_1,relu5_1)" in out
    assert "by the weights: torchvision 1e+06 normalized, 1000 paper; caffe 500 normalized" in out


def test_lists_and_choices_are_parsed(tmp_path: Path):
    args = options.build_parser().parse_args([
        "c.png", "s1.png", "s2.png", "-o", str(tmp_path / "o.png"), "--content-layers", "relu3_1",
        "--style-layers", "relu1_1, relu2_1", "--style-layer-weights", "1,0.5", "--style-blend-weights", "3,1",
        "--optimizer", "adam", "--loss-form", "paper", "--pooling", "max", "--init", "content",
    ])
    config = options.config_from_args(args)
    assert config.content_layers == ("relu3_1",) and config.style_layers == ("relu1_1", "relu2_1")
    assert config.style_layer_weights == (1.0, 0.5) and config.style_blend_weights == (3.0, 1.0)
    assert (config.optimizer, config.loss_form, config.pooling, config.init) == ("adam", "paper", "max", "content")
    assert args.styles == [Path("s1.png"), Path("s2.png")]


@pytest.mark.parametrize("chunk,every,expected", [(20, 50, 10), (20, 40, 20), (20, 7, 1), (4, 2, 2)])
def test_save_every_puts_chunk_boundaries_on_snapshots(tmp_path: Path, chunk, every, expected):
    args = options.build_parser().parse_args(
        ["c.png", "s.png", "-o", str(tmp_path / "o.png"), "--chunk-size", str(chunk), "--save-every", str(every)]
    )
    assert options.config_from_args(args).chunk_size == expected


def test_snapshot_path():
    assert paths.snapshot_path(Path("dir/out.png"), 50) == Path("dir/out_iter50.png")
    assert paths.snapshot_path(Path("a.b.jpg"), 5) == Path("a.b_iter5.jpg")


def test_usage_errors_from_argparse_exit_2(capsys):
    assert cli.main(["c.png", "s.png", "-o", "o.png", "--optimizer", "sgd"]) == 2
    assert "invalid choice" in capsys.readouterr().err
    assert cli.main(["c.png"]) == 2


# --------------------------------------------------------------------------- runs


def test_end_to_end_writes_image_snapshots_log_and_metadata(tmp_path, inputs, weights_file, capsys):
    out, log = tmp_path / "out.png", tmp_path / "log.json"
    argv = _argv(inputs, out, weights_file, "--save-every", "2", "--log-json", str(log), "--bit-depth", "16")
    assert cli.main(argv) == 0
    captured = capsys.readouterr()
    assert captured.err == ""  # pretrained weights: no warning; --quiet: no progress bar
    [line] = captured.out.strip().splitlines()
    assert line.startswith(f"wrote {out}: 4 iterations, loss ")

    assert sorted(p.name for p in tmp_path.iterdir()) == ["log.json", "out.png", "out_iter2.png", "out_iter4.png"]
    assert out.read_bytes()[24] == 16  # IHDR bit depth
    with Image.open(tmp_path / "out_iter2.png") as snapshot:
        assert snapshot.size == (32, 27)

    record = json.loads(log.read_text())
    assert set(record) >= {"config", "losses", "final_losses", "status", "weights_sha256", "weights_pretrained",
                           "elapsed_s", "iterations"}
    assert record["status"] == "completed" and record["iterations"] == 4
    assert all(len(values) == 4 for values in record["losses"].values())
    assert set(record["losses"]) == set(record["final_losses"]) == {"total", "content", "style", "tv"}
    assert record["weights_sha256"] == file_sha256(weights_file) and record["weights_pretrained"] is True
    assert record["config"]["content_layers"] == ["relu2_1"] and record["config"]["chunk_size"] == 2

    metadata = read_png_metadata(out)
    assert json.loads(metadata["nst_jax:config"]) == record["config"]
    assert metadata["nst_jax:weights_sha256"] == file_sha256(weights_file)
    assert metadata["nst_jax:status"] == "completed"


def test_random_weights_warn_loudly_and_progress_bar_shows(tmp_path, inputs, random_weights, capsys):
    out = tmp_path / "out.jpg"
    argv = [arg for arg in _argv(inputs, out, random_weights) if arg != "--quiet"]
    assert cli.main(argv) == 0
    err = capsys.readouterr().err
    warnings_ = [line for line in err.splitlines() if "WARNING" in line]
    assert len(warnings_) == 1 and warnings_[0].startswith("nst-jax: WARNING: RANDOM WEIGHTS")
    assert "python -m convert_weights" in warnings_[0]
    assert "warnings.warn" not in err and "RandomWeightsWarning" not in err  # no Python warning source line
    assert "4/4" in err and "loss=" in err  # the progress bar
    assert out.exists()


def test_missing_weights_name_the_fetch_command(tmp_path, inputs, capsys):
    missing = tmp_path / "elsewhere" / "vgg19.h5"
    assert cli.main(_argv(inputs, tmp_path / "out.png", missing)) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert f"python -m convert_weights -o {missing}" in line
    assert not (tmp_path / "out.png").exists()


def test_missing_default_weights_name_the_fetch_command(tmp_path, inputs, monkeypatch, capsys):
    monkeypatch.delenv("NST_JAX_WEIGHTS", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    argv = [str(inputs["content"]), str(inputs["style"]), "-o", str(tmp_path / "out.png"), *FAST]
    assert cli.main(argv) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert line.endswith("python -m convert_weights")


def test_non_finite_saves_last_finite_image_and_exits_1(tmp_path, inputs, weights_file, capsys):
    out, log = tmp_path / "out.png", tmp_path / "log.json"
    argv = _argv(inputs, out, weights_file, "--optimizer", "adam", "--learning-rate", "1e30", "--log-json", str(log))
    assert cli.main(argv) == 1
    captured = capsys.readouterr()
    assert "NaN or infinite" in captured.err and "--learning-rate" in captured.err and str(out) in captured.err
    assert "Traceback" not in captured.err and captured.out == ""
    assert read_png_metadata(out)["nst_jax:status"] == "non-finite"
    record = json.loads(log.read_text())  # strict JSON: non-finite losses are null
    assert record["status"] == "non-finite" and record["iterations"] < 4


@pytest.mark.parametrize("changes, hint", [
    ({"optimizer": "adam", "learning_rate": 1e30}, "lower --learning-rate (now 1e+30) or the loss weights"),
    ({"step_size": 1e30}, "lower --step-size (now 1e+30) or the loss weights"),
    ({}, "lower the loss weights, or try --optimizer lbfgsb"),
    ({"optimizer": "lbfgsb"}, "lower the loss weights"),
])
def test_the_nan_hint_names_the_option_in_play(changes, hint):
    """A NaN from --step-size 1e30 was answered with a hint about --learning-rate, which L-BFGS does not use."""
    config = StyleConfig(**changes)
    assert saving.nan_hint(config) == hint
    assert ("--learning-rate" in saving.nan_hint(config)) == (config.optimizer == "adam")


class _InterruptingBar(progress.tqdm):
    """A progress bar that acts as if Ctrl-C were pressed right after the first chunk."""

    def update(self, n: float | None = 1) -> bool | None:
        super().update(n)
        raise KeyboardInterrupt


def test_ctrl_c_saves_the_current_image_and_exits_130(tmp_path, inputs, weights_file, monkeypatch, capsys):
    """The first chunk is one iteration (it compiles; then chunks are timed, --quiet too): interrupted after it."""
    monkeypatch.setattr(progress, "tqdm", _InterruptingBar)
    out = tmp_path / "out.png"
    assert cli.main(_argv(inputs, out, weights_file)) == 130
    err = capsys.readouterr().err
    assert f"interrupted at iteration 1 of 4; saved the current image to {out}" in err and "Traceback" not in err
    metadata = read_png_metadata(out)
    assert metadata["nst_jax:status"] == "interrupted" and metadata["nst_jax:iterations"] == "1"


def test_ctrl_c_outside_the_optimizer_exits_130(tmp_path, inputs, weights_file, monkeypatch, capsys):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(single, "stylize", interrupted)
    out = tmp_path / "out.png"
    assert cli.main(_argv(inputs, out, weights_file)) == 130
    err = capsys.readouterr().err
    assert "interrupted" in err and "Traceback" not in err and not out.exists()


def test_unexpected_errors_keep_their_traceback(tmp_path, inputs, weights_file, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(single, "stylize", broken)
    with pytest.raises(RuntimeError, match="a bug"):
        cli.main(_argv(inputs, tmp_path / "out.png", weights_file))


# --------------------------------------------------------------------------- never destroy what the user has


def _huge_weights(source: Path, target: Path) -> Path:
    """A copy of ``source`` whose first kernel is 1e30 times larger: finite, but the loss is infinite at once."""
    target.write_bytes(source.read_bytes())
    with h5py.File(target, "r+") as handle:
        kernel = handle["conv1_1/kernel"][()]
        del handle["conv1_1/kernel"]
        handle["conv1_1/kernel"] = kernel * np.float32(1e30)
    return target


def test_a_run_that_finishes_no_iteration_writes_no_image(tmp_path, inputs, weights_file, capsys):
    """NaN at iteration 0 must not replace a good output with the untouched starting noise; it is a problem of the
    inputs or weights, not of the learning rate, and the noise is no "last finite image"."""
    out, log = tmp_path / "good.png", tmp_path / "log.json"
    assert cli.main(_argv(inputs, out, weights_file)) == 0
    good = out.read_bytes()
    capsys.readouterr()
    huge = _huge_weights(weights_file, tmp_path / "huge.h5")
    assert cli.main(_argv(inputs, out, huge, "--log-json", str(log))) == 1
    line = _one_error_line(capsys.readouterr().err)
    assert "NaN or infinite at the starting image, before any iteration" in line and "weights" in line
    assert "nothing was written" in line and "last finite image" not in line and "--learning-rate" not in line
    assert out.read_bytes() == good
    record = json.loads(log.read_text())
    assert record["iterations"] == 0 and record["status"] == "non-finite" and record["software"] == "nst_jax"


def test_ctrl_c_before_the_first_iteration_writes_no_image(tmp_path, inputs, weights_file, request, capsys):
    out = tmp_path / "good.png"
    assert cli.main(_argv(inputs, out, weights_file)) == 0
    good = out.read_bytes()
    capsys.readouterr()
    request.getfixturevalue("interrupt_first_chunk")
    assert cli.main(_argv(inputs, out, weights_file)) == 130
    err = capsys.readouterr().err
    assert "interrupted before the first iteration finished; nothing was written" in err
    assert out.read_bytes() == good


def test_outputs_nst_jax_did_not_write_need_overwrite(tmp_path, inputs, weights_file, capsys):
    out = save_random_image(tmp_path / "out.png", 8, 8, seed=9)  # somebody's image
    assert cli.main(_argv(inputs, out, weights_file)) == 2
    assert "exists and was not written by nst_jax" in _one_error_line(capsys.readouterr().err)
    assert cli.main(_argv(inputs, out, weights_file, "--overwrite")) == 0
    assert read_png_metadata(out)["Software"] == "nst_jax"
    assert cli.main(_argv(inputs, out, weights_file)) == 0  # its own output: replaced without asking


def test_an_unwritable_log_is_an_error_not_a_traceback(tmp_path, inputs, weights_file, monkeypatch, capsys):
    """The log is written atomically, after the image: a folder removed meanwhile costs the log, not the image."""
    folder = tmp_path / "logs"
    folder.mkdir()
    real = single.stylize

    def stylize_then_remove_the_folder(*args, **kwargs):
        result = real(*args, **kwargs)
        folder.rmdir()
        return result

    monkeypatch.setattr(single, "stylize", stylize_then_remove_the_folder)
    out = tmp_path / "out.png"
    assert cli.main(_argv(inputs, out, weights_file, "--log-json", str(folder / "log.json"))) == 1
    line = _one_error_line(capsys.readouterr().err)
    assert line.startswith(f"nst-jax: error: cannot write --log-json '{folder / 'log.json'}'")
    assert read_png_metadata(out)["nst_jax:status"] == "completed"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png"]


def test_a_run_too_large_for_memory_is_refused_with_the_size_that_fits(tmp_path, inputs, weights_file, monkeypatch,
                                                                       capsys):
    budget = 2**30
    monkeypatch.setattr(memory, "available_bytes", lambda device: budget)
    monkeypatch.setattr(loading, "load_weights", lambda *args: pytest.fail("weights loaded before the memory check"))
    assert cli.main(_argv(inputs, tmp_path / "out.png", weights_file, "--image-size", "2048")) == 2
    line = _one_error_line(capsys.readouterr().err)
    found = re.search(r"the largest --image-size that fits is (\d+), in tiles of 256 px, which --shard auto chooses "
                      r"by itself \((\d+) whole\)", line)
    tiled, whole = int(found.group(1)), int(found.group(2))
    args = options.build_parser().parse_args(_argv(inputs, tmp_path / "out.png", weights_file))
    config = options.config_from_args(args)
    shape, devices = (40, 48), len(jax.local_devices())
    for size, tile, shards in ((whole, None, 1), (tiled, 256, devices)):  # both limits, each exact
        at = config.replace(tile_size=tile)
        assert memory.run_needs(shape, at.replace(image_size=size), shards=shards) <= budget < memory.run_needs(
            shape, at.replace(image_size=size + 1), shards=shards)
    assert tiled > whole and "--skip-memory-check" in line and not (tmp_path / "out.png").exists()


def test_skip_memory_check_runs_anyway(tmp_path, inputs, weights_file, monkeypatch):
    monkeypatch.setattr(memory, "available_bytes", lambda device: 1)
    assert cli.main(_argv(inputs, tmp_path / "out.png", weights_file, "--skip-memory-check")) == 0


@pytest.mark.slow
def test_sigterm_saves_the_current_image_and_exits_143(tmp_path, inputs, weights_file):
    """A timeout, docker stop or Slurm preemption sends SIGTERM: treated like Ctrl-C."""
    out = tmp_path / "out.png"
    argv = [*map(str, _argv(inputs, out, weights_file)), "--iterations", "100000", "--save-every", "2"]
    process = subprocess.Popen([sys.executable, "-m", "nst_jax", *argv], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env={**os.environ, "JAX_PLATFORMS": "cpu"})
    try:
        deadline = time.monotonic() + 120
        while not (tmp_path / "out_iter2.png").exists():
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "no snapshot after 120 s"
            time.sleep(0.1)
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 143, err
    assert "SIGTERM" in err and "Traceback" not in err
    metadata = read_png_metadata(out)
    assert metadata["nst_jax:status"] == "interrupted" and int(metadata["nst_jax:iterations"]) >= 2


def test_weights_hint_never_suggests_writing_a_device(tmp_path, inputs, capsys):
    assert cli.main(_argv(inputs, tmp_path / "out.png", Path("/dev/null"))) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "-o /dev/null" not in line and "python -m convert_weights -o vgg19.h5" in line


# --------------------------------------------------------------------------- bad input: one line, exit 2


# Per case: the arguments ({content}, {style}, {out}, ... filled in by the test) and a piece of the message.
BAD_INPUTS: dict[str, tuple[list[str], str]] = {
    "missing content": (["{tmp}/nope.png", "{style}", "-o", "{out}"], "no such file"),
    "missing second style": (["{content}", "{style}", "{tmp}/nope.png", "-o", "{out}"], "no such file"),
    "not an image": (["{content}", "{text}", "-o", "{out}"], "not a recognised image format"),
    "a directory as input": (["{tmp}", "{style}", "-o", "{out}"], "is a directory"),
    "content too small": (["{content}", "{style}", "-o", "{out}", "--image-size", "8"], "at least 16 pixels"),
    "style too small": (
        ["{content}", "{style}", "-o", "{out}", "--image-size", "32", "--style-scale", "0.1"],
        "the style image is 3x3 pixels at --image-size 32 (its longest side the content's times --style-scale 0.1)",
    ),
    "unknown content layer": (["{content}", "{style}", "-o", "{out}", "--content-layers", "relu4_9"], "'relu4_9'"),
    "unknown style layer": (["{content}", "{style}", "-o", "{out}", "--style-layers", "relu1_1,fc7"], "'fc7'"),
    "no layers": (["{content}", "{style}", "-o", "{out}", "--style-layers", ","],
                  "--style-layers needs at least one VGG19 layer, such as relu1_1,relu2_1"),
    "zero image size": (["{content}", "{style}", "-o", "{out}", "--image-size", "0"], "--image-size must be"),
    "negative image size": (["{content}", "{style}", "-o", "{out}", "--image-size=-5"], "--image-size must be"),
    "zero iterations": (["{content}", "{style}", "-o", "{out}", "--iterations", "0"], "--iterations must be"),
    "negative iterations": (["{content}", "{style}", "-o", "{out}", "--iterations=-3"], "--iterations must be"),
    "zero chunk size": (["{content}", "{style}", "-o", "{out}", "--chunk-size", "0"], "--chunk-size must be"),
    "zero history": (["{content}", "{style}", "-o", "{out}", "--history-size", "0"], "--history-size must be"),
    "zero learning rate": (["{content}", "{style}", "-o", "{out}", "--learning-rate", "0"], "--learning-rate must"),
    "zero style scale": (["{content}", "{style}", "-o", "{out}", "--style-scale", "0"], "--style-scale must"),
    "negative content weight": (["{content}", "{style}", "-o", "{out}", "--content-weight=-1"], "--content-weight"),
    "negative style weight": (["{content}", "{style}", "-o", "{out}", "--style-weight=-1"], "--style-weight must"),
    "negative tv weight": (["{content}", "{style}", "-o", "{out}", "--tv-weight=-1"], "--tv-weight must"),
    "nan style weight": (["{content}", "{style}", "-o", "{out}", "--style-weight", "nan"], "--style-weight must"),
    "negative layer weight": (
        ["{content}", "{style}", "-o", "{out}", "--style-layers", "relu1_1,relu2_1", "--style-layer-weights=1,-1"],
        "non-negative",
    ),
    "layer weights count": (
        ["{content}", "{style}", "-o", "{out}", "--style-layer-weights", "1,2"], "2 style layer weights for 5",
    ),
    "blend weights count": (
        ["{content}", "{style}", "{style2}", "-o", "{out}", "--style-blend-weights", "1"], "1 value(s) for 2 style",
    ),
    "negative blend weight": (
        ["{content}", "{style}", "{style2}", "-o", "{out}", "--style-blend-weights=1,-1"], "non-negative",
    ),
    "output directory missing": (["{content}", "{style}", "-o", "{tmp}/no/out.png"], "does not exist"),
    "output is a directory": (["{content}", "{style}", "-o", "{tmp}/dir.png"], "is a directory"),
    "output is the content": (["{content}", "{style}", "-o", "{content}"], "is also an input"),
    "output is a style, spelled otherwise": (["{content}", "{style}", "-o", "{style_via_parent}"], "is also an input"),
    "output links to the content": (["{content}", "{style}", "-o", "{tmp}/link.png"], "is also an input"),
    "output is the init image": (
        ["{content}", "{style}", "-o", "{tmp}/init.png", "--init", "{tmp}/init.png"], "is also an input",
    ),
    "output suffix": (["{content}", "{style}", "-o", "{tmp}/out.bmp"], "unsupported suffix '.bmp'"),
    "no output suffix": (["{content}", "{style}", "-o", "{tmp}/out"], "unsupported suffix"),
    "16 bits in a jpeg": (["{content}", "{style}", "-o", "{tmp}/out.jpg", "--bit-depth", "16"], "needs a .png"),
    "log directory missing": (
        ["{content}", "{style}", "-o", "{out}", "--log-json", "{tmp}/no/log.json"], "--log-json directory",
    ),
    "log is the output": (["{content}", "{style}", "-o", "{out}", "--log-json", "{out}"], "--log-json"),
    "missing init image": (["{content}", "{style}", "-o", "{out}", "--init", "{tmp}/nope.png"], "no such file"),
    "init not an image": (["{content}", "{style}", "-o", "{out}", "--init", "{text}"], "not a recognised image"),
    # Nothing a user owns is ever written (nst_jax.files), checked before anything slow.
    "log is the weights file": (["{content}", "{style}", "-o", "{out}", "--log-json", "{weights}"], "weights file"),
    "log is a file nst_jax did not write": (
        ["{content}", "{style}", "-o", "{out}", "--log-json", "{text}"], "exists and was not written by nst_jax",
    ),
    "log is a FIFO": (["{content}", "{style}", "-o", "{out}", "--log-json", "{tmp}/fifo"], "is a FIFO"),
    "log is a device": (["{content}", "{style}", "-o", "{out}", "--log-json", "/dev/null"], "is a device"),
    "output is an image nst_jax did not write": (
        ["{content}", "{style}", "-o", "{tmp}/init.png"], "exists and was not written by nst_jax",
    ),
    "a snapshot would be the content": (
        ["{tmp}/photo_iter2.png", "{style}", "-o", "{tmp}/photo.png", "--save-every", "2", "--iterations", "4"],
        "snapshot (--save-every 2) '{tmp}/photo_iter2.png' is also an input (the content image)",
    ),
    "a snapshot would replace an image nst_jax did not write": (
        ["{content}", "{style}", "-o", "{tmp}/photo.png", "--save-every", "2", "--iterations", "4"],
        "'{tmp}/photo_iter2.png' exists and was not written by nst_jax",
    ),
    # Numbers the device cannot hold, seeds that would wrap.
    "content weight beyond float32": (["{content}", "{style}", "-o", "{out}", "--content-weight", "1e40"],
                                      "--content-weight must be a non-negative number of at most 3.4e+38"),
    "style weight beyond float32": (["{content}", "{style}", "-o", "{out}", "--style-weight", "1e39"], "3.4e+38"),
    "tv weight beyond float32": (["{content}", "{style}", "-o", "{out}", "--tv-weight", "1e40"], "3.4e+38"),
    "seed past 32 bits": (["{content}", "{style}", "-o", "{out}", "--seed", "4294967297"],
                          "--seed must be an integer from 0 to 4294967295"),
    "seed past 63 bits": (["{content}", "{style}", "-o", "{out}", "--seed", str(2**63)], "--seed must be"),
    "negative seed": (["{content}", "{style}", "-o", "{out}", "--seed=-1"], "--seed must be"),
    # Sizes at every scale, with a hint that can help, in the options' names.
    "content too small at an early scale": (
        ["{content}", "{style}", "-o", "{out}", "--scales", "8,32", "--image-size", "32"],
        "the content image is 7x8 pixels at the --scales entry 8; layers up to relu5_1 need at least 16 pixels on "
        "each side: make every entry of --scales at least 19",
    ),
    "style too small at an early scale": (
        # The 40x40 style keeps its square shape: 15x15 at 20 px times 0.75; 0.775 rounds up to 16 (15.5).
        ["{content}", "{style}", "-o", "{out}", "--scales", "20,32", "--image-size", "32", "--style-scale", "0.75"],
        "the style image is 15x15 pixels at the --scales entry 20 (its longest side the content's times "
        "--style-scale 0.75); layers up to relu5_1 need at least 16 pixels on each side: raise --style-scale to at "
        "least 0.775",
    ),
    "scales not ending at the image size": (
        ["{content}", "{style}", "-o", "{out}", "--scales", "16,24"], "set --image-size to 24 or end --scales at 512",
    ),
    # Masks that select nothing (an all-black one, or one faint everywhere, which normalized by its area would put
    # its style everywhere), at every size of the run.
    "a black style mask": (["{content}", "{style}", "-o", "{out}", "--style-masks", "{black}"],
                           "--style-masks image 1 '{black}' is black everywhere at 427x512 px (its brightest value "
                           "is 0/255, below 8/255): style image 1 would apply nowhere"),
    "a style mask faint everywhere": (["{content}", "{style}", "-o", "{out}", "--style-masks", "{faint}"],
                                      "is black everywhere at 427x512 px (its brightest value is 1/255"),
    "a black source mask": (["{content}", "{style}", "-o", "{out}", "--style-source-masks", "{black}"],
                            # checked at its style's size: the 40x40 style's longest side at 512
                            "--style-source-masks image 1 '{black}' is black everywhere at 512x512 px"),
    "a black source mask with scales": (
        ["{content}", "{style}", "-o", "{out}", "--style-source-masks", "{black}", "--scales", "256,512"],
        "it selects no part of style image 1",
    ),
    # Options the optimizer would ignore, refused as a line search jaxopt lacks is.
    "line search with adam": (["{content}", "{style}", "-o", "{out}", "--optimizer", "adam", "--line-search", "none"],
                              "--line-search does not apply to --optimizer adam (Adam's step is --learning-rate"),
    "line search with lbfgsb": (
        ["{content}", "{style}", "-o", "{out}", "--optimizer", "lbfgsb", "--line-search", "backtracking"],
        "--line-search does not apply to --optimizer lbfgsb",
    ),
    "step size with adam": (["{content}", "{style}", "-o", "{out}", "--optimizer", "adam", "--step-size", "0.5"],
                            "--step-size does not apply to --optimizer adam"),
    "learning rate with lbfgs": (["{content}", "{style}", "-o", "{out}", "--learning-rate", "0.1"],
                                 "--learning-rate does not apply to --optimizer lbfgs"),
    "no content layers": (["{content}", "{style}", "-o", "{out}", "--content-layers", ""],
                          "--content-layers needs at least one VGG19 layer, such as relu4_2"),
    "an image larger than any plan": (["{content}", "{style}", "-o", "{out}", "--image-size", "200000"],
                                      "--image-size must be at most 131072 pixels"),
    "an empty output name": (["{content}", "{style}", "-o", ""], "argument -o/--output: expected a path, got ''"),
    "a coordinator without a port": (["{content}", "{style}", "-o", "{out}", "--distributed", "--coordinator",
                                      "localhost"], "--coordinator must be HOST:PORT"),
    "a coordinator port out of range": (["{content}", "{style}", "-o", "{out}", "--distributed", "--coordinator",
                                         "localhost:99999"], "--coordinator's port must be 1 to 65535"),
    "a start-up wait JAX cannot take": (["{content}", "{style}", "-o", "{out}", "--distributed",
                                         "--distributed-timeout", "99999999999"],
                                        "--distributed-timeout must be 1 to 86400 seconds"),
    "a missing weights file": (["{content}", "{style}", "-o", "{out}", "--weights", "{tmp}/none.h5"],
                               "no VGG19 weights file at {tmp}/none.h5"),
    # argparse's own errors are one line too.
    "unknown option": (["{content}", "{style}", "-o", "{out}", "--colour", "red"], "unrecognized arguments: --colour"),
    "not a number": (["{content}", "{style}", "-o", "{out}", "--seed", "one"], "argument --seed: invalid int value"),
}


# The cases --dry-run once said yes to (and a few more): it makes the run's checks, so it exits 2 alike.
DRY_RUNS = ["missing second style", "not an image", "a directory as input", "init not an image", "a black style mask",
            "a style mask faint everywhere", "a black source mask", "a black source mask with scales",
            "output is an image nst_jax did not write", "log is a file nst_jax did not write",
            "a snapshot would replace an image nst_jax did not write", "line search with adam",
            "a missing weights file", "an image larger than any plan"]


@pytest.mark.parametrize("case, dry_run", [*((case, False) for case in BAD_INPUTS),
                                           *((case, True) for case in DRY_RUNS)])
def test_bad_input_is_one_line_and_exit_2(case, dry_run, tmp_path, inputs, weights_file, monkeypatch, capsys):
    """One error line, exit 2, before the weights load; --dry-run too (the same checks)."""
    def must_not_load(*args, **kwargs):
        raise AssertionError("weights were loaded before the input was checked")

    monkeypatch.setattr(loading, "load_weights", must_not_load)
    (tmp_path / "dir.png").mkdir()
    (tmp_path / "link.png").symlink_to(inputs["content"])
    os.mkfifo(tmp_path / "fifo")
    save_random_image(tmp_path / "init.png", 40, 40, seed=4)
    save_random_image(tmp_path / "photo_iter2.png", 40, 48, seed=5)
    Image.fromarray(np.zeros((40, 48), np.uint8)).save(tmp_path / "black.png")
    Image.fromarray(np.ones((40, 48), np.uint8)).save(tmp_path / "faint.png")  # 1/255 everywhere
    folder = inputs["style"].parent
    paths = {name: str(path) for name, path in inputs.items()}
    paths.update(tmp=str(tmp_path), out=str(tmp_path / "out.png"), weights=str(weights_file),
                 style_via_parent=str(folder / ".." / folder.name / "style.png"), black=str(tmp_path / "black.png"),
                 faint=str(tmp_path / "faint.png"))
    template, expected = BAD_INPUTS[case]
    argv = [arg.format(**paths) for arg in template]
    before = {path: path.read_bytes() for path in [*tmp_path.iterdir(), weights_file] if path.is_file()}
    assert cli.main(["--weights", str(weights_file), *argv, "--quiet", *(["--dry-run"] if dry_run else [])]) == 2
    captured = capsys.readouterr()
    line = _one_error_line(captured.err)
    assert expected.format(**paths) in line
    assert captured.out == ""
    assert not (tmp_path / "out.png").exists()
    assert {path: path.read_bytes() for path in before} == before


def test_gpu_requested_without_one_is_exit_2(tmp_path, inputs, weights_file, capsys):
    if any(device.platform == "gpu" for device in jax.devices()):
        pytest.skip("this machine has a GPU")
    assert cli.main(_argv(inputs, tmp_path / "out.png", weights_file, "--device", "gpu")) == 2
    assert "--device gpu" in _one_error_line(capsys.readouterr().err)


def test_device_cpu_selects_the_cpu_platform():
    before = jax.config.jax_platforms
    try:
        assert device.select_device("cpu").platform == "cpu"
        assert jax.config.jax_platforms == "cpu"
    finally:
        jax.config.update("jax_platforms", before)
    assert device.select_device(None) is None


# --------------------------------------------------------------------------- end to end, in a fresh process


@pytest.mark.parametrize(
    "case",
    ["missing content", "zero iterations", "output is the content", "missing weights"],
)
def test_subprocess_exit_2_without_traceback(case, tmp_path, inputs):
    out = tmp_path / "out.png"
    argv = {
        "missing content": [str(tmp_path / "nope.png"), str(inputs["style"]), "-o", str(out)],
        "zero iterations": [str(inputs["content"]), str(inputs["style"]), "-o", str(out), "--iterations", "0"],
        "output is the content": [str(inputs["content"]), str(inputs["style"]), "-o", str(inputs["content"])],
        "missing weights": [str(inputs["content"]), str(inputs["style"]), "-o", str(out),
                            "--weights", str(tmp_path / "vgg19.h5")],
    }[case]
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    process = subprocess.run(
        [sys.executable, "-m", "nst_jax", *argv, "--quiet"], capture_output=True, text=True, env=env, timeout=120,
        check=False,
    )
    assert process.returncode == 2, process.stderr
    line = _one_error_line(process.stderr)
    if case == "missing weights":
        assert f"python -m convert_weights -o {tmp_path / 'vgg19.h5'}" in line
    assert not out.exists()


# --------------------------------------------------------------------------- style per region


@pytest.fixture(scope="module")
def masks(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Left and right half masks (a size other than the output's: resized), a text file, and a missing path."""
    folder = tmp_path_factory.mktemp("masks")
    left = np.zeros((30, 40), np.uint8)
    left[:, :20] = 255
    Image.fromarray(left).save(folder / "left.png")
    Image.fromarray(255 - left).save(folder / "right.png")
    (folder / "text.png").write_text("not an image")
    return {"left": folder / "left.png", "right": folder / "right.png", "text": folder / "text.png",
            "missing": folder / "missing.png"}


@pytest.mark.parametrize("options, message", [
    (["--style-masks", "{left}"], r"--style-masks has 1 image\(s\) for 2 style image\(s\)"),
    (["--style-masks", "{left},{missing}"], "cannot read image '.*missing.png': no such file"),
    (["--style-masks", "{left},{text}"], "cannot read image '.*text.png': not a recognised image format"),
    (["--style-masks", "{left},{right}", "--style-blend-weights", "1,2"], "does not combine with --style-masks"),
    (["--style-masks", "{left},masks/{{stem}}.png"], r"\{stem\} in --style-masks stands for each --batch content"),
    (["--style-source-masks", "all"], r"--style-source-masks has 1 image\(s\) for 2 style image\(s\)"),
    (["--style-source-masks", "all,{text}"], "cannot read image '.*text.png'"),
])
def test_bad_masks_are_one_line_errors_before_the_weights_load(tmp_path, inputs, masks, options, message, capsys):
    """Exit 2 with one line, from a weights path that does not exist: nothing was loaded."""
    options = [option.format(**masks) for option in options]
    argv = [str(inputs["content"]), str(inputs["style"]), str(inputs["style"]), "-o", str(tmp_path / "out.png"),
            "--weights", str(tmp_path / "absent.h5"), *FAST[:-1], *options]
    assert cli.main(argv) == 2
    assert re.search(message, _one_error_line(capsys.readouterr().err))
    assert not (tmp_path / "out.png").exists()


def test_masks_run_end_to_end_and_are_never_written(tmp_path, inputs, masks, weights_file, capsys):
    out = tmp_path / "out.png"
    regions = ["--style-masks", f"{masks['left']},{masks['right']}", "--style-source-masks", f"all,{masks['left']}"]
    argv = [str(inputs["content"]), str(inputs["style"]), str(inputs["style2"]), "-o", str(out), "--weights",
            str(weights_file), *FAST, *regions]
    assert cli.main(argv) == 0, capsys.readouterr().err
    assert load_image(out).shape == (27, 32, 3)  # the 40x48 content at --image-size 32
    onto_mask = [*argv[:3], "-o", str(masks["left"]), *argv[5:], "--overwrite"]
    assert cli.main(onto_mask) == 2
    assert "is also an input (style mask 1)" in capsys.readouterr().err


@pytest.mark.parametrize("spelling", ["itself", "a link", "another spelling"])
@pytest.mark.parametrize("kind", ["content", "style", "init", "style mask", "source mask", "weights"])
def test_no_input_is_ever_an_output_even_with_overwrite(tmp_path, inputs, masks, weights_file, kind, spelling, capsys):
    """Every file the run reads, named by -o or --log-json in any spelling: refused, --overwrite or not."""
    files = {"content": inputs["content"], "style": inputs["style"], "init": inputs["style2"],
             "style mask": masks["left"], "source mask": masks["right"], "weights": weights_file}
    target = files[kind]
    named = {"itself": target, "a link": tmp_path / f"link{target.suffix}", "another spelling":
             target.parent / ".." / target.parent.name / target.name}[spelling]
    if spelling == "a link":
        named.symlink_to(target)
    before = target.read_bytes()
    run = [str(inputs["content"]), str(inputs["style"]), "--weights", str(weights_file), *FAST, "--overwrite",
           "--init", str(inputs["style2"]), "--style-masks", str(masks["left"]), "--style-source-masks",
           str(masks["right"])]
    as_image = [["-o", str(named)]] if kind != "weights" else []  # -o takes images only (.h5: the suffix error)
    for output in [*as_image, ["-o", str(tmp_path / "out.png"), "--log-json", str(named)]]:
        assert cli.main([*run, *output]) == 2
        assert "is also an input" in _one_error_line(capsys.readouterr().err)
    assert target.read_bytes() == before and not (tmp_path / "out.png").exists()
