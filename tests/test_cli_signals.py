"""Ctrl-C and SIGTERM (nst_jax.cli.signals): acknowledged at once, the run stopped after the chunk in progress, a
bounded wait past which the last reported image is saved without waiting for the work, and a second signal that
quits at once. In-process tests send real signals to this process; the work's long call is a wait the test
releases (a thread the main thread cannot interrupt, as an XLA call)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest

from nst_jax import StyleResult, cli, files, optimize
from nst_jax.cli import progress, signals, single
from nst_jax.image_io import load_image, read_png_metadata
from nst_jax.losses import LossTerms

FAST = [
    "--image-size", "32", "--iterations", "4", "--chunk-size", "2",
    "--content-layers", "relu2_1", "--style-layers", "relu1_1,relu2_1", "--quiet",
]
CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}


def _argv(inputs: dict[str, Path], out: Path, weights: Path, *extra: str) -> list[str]:
    """Arguments of a fast run of content + style into ``out``."""
    return [str(inputs["content"]), str(inputs["style"]), "-o", str(out), "--weights", str(weights), *FAST, *extra]


def _wait_for(condition, what: str) -> None:
    """Wait until ``condition()`` holds (the main thread handles a signal within its next wait, 0.1 s)."""
    for _ in range(300):
        if condition():
            return
        time.sleep(0.01)
    raise AssertionError(f"{what} did not happen")


def _signal_and_wait_for_the_stop(number: int = signal.SIGINT) -> None:
    """Send this process ``number``, as a terminal or a scheduler does, and wait until the main thread has asked
    the run to stop."""
    os.kill(os.getpid(), number)
    _wait_for(optimize._STOP.is_set, "the stop request")


def _join_work() -> None:
    """Let the command's abandoned worker thread end (it is closed to writing)."""
    for thread in threading.enumerate():
        if thread.name == "nst-jax work":
            thread.join(30)


class _SignallingBar(progress.tqdm):
    """A progress bar that sends a real SIGINT after the first chunk, while the work goes on in its thread."""

    def update(self, n: float | None = 1) -> bool | None:
        result = super().update(n)
        if not optimize._STOP.is_set():
            _signal_and_wait_for_the_stop()
        return result


def test_ctrl_c_is_acknowledged_and_stops_after_the_chunk_in_progress(tmp_path, inputs, weights_file, monkeypatch,
                                                                      capsys):
    monkeypatch.setattr(progress, "tqdm", _SignallingBar)
    out = tmp_path / "out.png"
    handler = signal.getsignal(signal.SIGINT)
    assert cli.main(_argv(inputs, out, weights_file)) == 130
    err = capsys.readouterr().err
    assert "Ctrl-C: stopping after the iteration in progress and saving what is finished" in err
    assert "interrupted at iteration 1 of 4" in err and "Traceback" not in err  # the first chunk is one step
    assert read_png_metadata(out)["nst_jax:status"] == "interrupted"
    assert signal.getsignal(signal.SIGINT) is handler  # restored for the caller


def test_a_second_signal_quits_at_once_without_saving(tmp_path, inputs, weights_file, monkeypatch, capsys):
    """The second Ctrl-C arrives as the image is about to be saved: nothing is written, no temporary file is left,
    and the work can write nothing more."""
    monkeypatch.setattr(progress, "tqdm", _SignallingBar)
    real_save = StyleResult.save

    def save_after_another_ctrl_c(self, *args, **kwargs):
        os.kill(os.getpid(), signal.SIGINT)
        _wait_for(lambda: threading.current_thread() in files._CLOSED, "closing the work to writing")
        return real_save(self, *args, **kwargs)

    monkeypatch.setattr(StyleResult, "save", save_after_another_ctrl_c)
    out = tmp_path / "out.png"
    assert cli.main(_argv(inputs, out, weights_file)) == 130
    _join_work()
    err = capsys.readouterr().err
    assert "quitting at once; nothing more is saved" in err and "Traceback" not in err
    assert sorted(path.name for path in tmp_path.iterdir()) == []


@pytest.fixture
def stuck_work(monkeypatch):
    """``stylize`` that reports one finished iteration, then sits in a call the main thread cannot interrupt until
    the test releases it; ``STOP_WAIT`` short. Yields (the reported image, the signal sender's event)."""
    monkeypatch.setattr(signals, "STOP_WAIT", 0.3)
    release = threading.Event()
    image = np.random.default_rng(0).random((27, 32, 3), dtype=np.float32)
    state = {}

    def stylize(content, styles, *, callback, **kwargs):
        terms = LossTerms(*(1.0 for _ in LossTerms._fields))
        callback(optimize.Progress(3, 4, terms, jnp.asarray(image), 0.1))
        os.kill(os.getpid(), state["signal"])
        release.wait(60)
        raise KeyboardInterrupt  # what the work does once released: nothing is written any more anyway

    monkeypatch.setattr(single, "stylize", stylize)
    yield image, state
    release.set()
    _join_work()


@pytest.mark.parametrize("number", [signal.SIGINT, signal.SIGTERM])
def test_a_stop_that_cannot_wait_saves_the_last_reported_image(tmp_path, inputs, weights_file, stuck_work, capsys,
                                                               number):
    """The command returns while the work is still inside its long call: the bound does not depend on it."""
    image, state = stuck_work
    state["signal"] = number
    out = tmp_path / "out.png"
    assert cli.main(_argv(inputs, out, weights_file)) == CODES[number]
    err = capsys.readouterr().err
    assert "the run did not stop within 0.3 s of the signal" in err
    assert f"saved the image of iteration 3 to {out}" in err and "Traceback" not in err
    metadata = read_png_metadata(out)
    assert metadata["nst_jax:status"] == "interrupted" and metadata["nst_jax:iterations"] == "3"
    assert '"content_layers": ["relu2_1"]' in metadata["nst_jax:config"]
    np.testing.assert_allclose(load_image(out), image, atol=0.5 / 255 + 1e-6)  # 8-bit rounding


def test_a_stop_before_any_iteration_saves_nothing(tmp_path, inputs, weights_file, monkeypatch, capsys):
    """Stuck before the first iteration (compiling, or a first tiled iteration): exit 130 at the bound, and an
    existing output is left as it was."""
    monkeypatch.setattr(signals, "STOP_WAIT", 0.3)
    release = threading.Event()

    def stylize(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGINT)
        release.wait(60)
        raise KeyboardInterrupt

    monkeypatch.setattr(single, "stylize", stylize)
    out = tmp_path / "out.png"
    try:
        assert cli.main(_argv(inputs, out, weights_file)) == 130
    finally:
        release.set()
        _join_work()
    assert "no iteration had finished; nothing was written" in capsys.readouterr().err
    assert not out.exists()


def test_a_bug_in_the_work_keeps_its_traceback(tmp_path, inputs, weights_file, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(single, "stylize", broken)
    with pytest.raises(RuntimeError, match="a bug"):
        cli.main(_argv(inputs, tmp_path / "out.png", weights_file))


def test_the_chunks_are_timed_with_quiet_and_a_long_chunk_size():
    """--quiet and --chunk-size 3000 must not make one compiled call long: every form times its chunks."""
    config = cli.options.config_from_args(cli.build_parser().parse_args(
        ["c.png", "s.png", "-o", "o.png", "--quiet", "--chunk-size", "3000"]))
    assert progress.timed_chunks(config).progress_seconds == progress.PROGRESS_SECONDS
    assert optimize.next_chunk(0, 3000, 3000, None, progress.PROGRESS_SECONDS) == 1  # the first: one step
    assert optimize.next_chunk(1, 3000, 3000, 0.5, progress.PROGRESS_SECONDS) == 4  # then ~2 s


# --------------------------------------------------------------------------- real processes


def _env() -> dict[str, str]:
    return {**os.environ, "JAX_PLATFORMS": "cpu"}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.slow
@pytest.mark.parametrize("number", [signal.SIGINT, signal.SIGTERM])
def test_a_process_waiting_for_another_stops_on_a_signal(tmp_path, inputs, number):
    """--distributed, the other process never starts: the signal ends the wait (exit 130/143 after the bound, one
    line each, no abort), where JAX's wait ignored it until --distributed-timeout and then aborted (134)."""
    port = _free_port()
    argv = [str(inputs["content"]), str(inputs["style"]), "-o", str(tmp_path / "out.png"), "--quiet",
            "--distributed", "--coordinator", f"127.0.0.1:{port}", "--num-processes", "2", "--process-id", "0",
            "--distributed-timeout", "600"]
    process = subprocess.Popen([sys.executable, "-m", "nst_jax", *argv], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=_env())
    try:
        deadline = time.monotonic() + 120
        while True:  # process 0 hosts the coordinator: listening means it waits inside jax.distributed.initialize
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the coordinator never listened"
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.2)
        process.send_signal(number)
        _, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == CODES[number], err
    assert "stopping after the iteration in progress" in err and "did not stop within" in err
    assert "Traceback" not in err and "Fatal" not in err and not (tmp_path / "out.png").exists()


@pytest.mark.slow
def test_a_quiet_run_with_one_long_chunk_stops_on_ctrl_c(tmp_path, inputs):
    """--quiet --chunk-size 100000: Ctrl-C once waited for the whole chunk (minutes); now the run stops after the
    iteration in progress, or, still compiling, at the 5 s bound."""
    weights = tmp_path / "random.h5"  # random weights: the warning says when the network is loaded
    subprocess.run([sys.executable, "-m", "convert_weights", "--random", "-o", str(weights)], check=True,
                   capture_output=True, env=_env())
    out = tmp_path / "out.png"
    argv = [*_argv(inputs, out, weights), "--iterations", "100000", "--chunk-size", "100000"]
    process = subprocess.Popen([sys.executable, "-m", "nst_jax", *argv], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=_env())
    try:
        assert "RANDOM WEIGHTS" in process.stderr.readline()  # loaded: compiling, then iterating
        time.sleep(10)
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, err
    assert "stopping after the iteration in progress" in err and "Traceback" not in err
    if "did not stop within" not in err:  # it was iterating: stopped after the iteration, image saved
        assert read_png_metadata(out)["nst_jax:status"] == "interrupted"
