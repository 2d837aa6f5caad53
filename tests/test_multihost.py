"""Several processes (``jax.distributed``): 2 processes x 2 forced CPU devices on localhost, gloo collectives. Every
sharded path spread over the 4 devices of the two processes equals one process's run over 4 devices, in both
processes: a sweep of 4 weightings and a batch of 2 contents (members split over the devices), one image split by
rows over all 4 devices (``shard="spatial"``) and a batch of 2 style reconstructions. The command line with
``--distributed``: process 0 alone writes and reports, an error found by one process's checks ends both."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from PIL import Image

from conftest import random_images
from nst_jax import StyleConfig
from nst_jax.image_io import read_png_metadata

# Smooth in the inputs (no line search, from the content); shallow layers: collectives between processes do not depend
# on how deep the network goes, and the deep ones cost most of the compiling (this test ran 94 s with every layer).
CONFIG = StyleConfig(image_size=48, iterations=4, line_search="none", init="content", content_layers=("relu2_1",),
                     style_layers=("relu1_1", "relu2_1"))
STYLE_WEIGHTS = [1e3, 1e4, 1e5, 1e6]

PROCESS_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import jax
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    port, index, weights_path, inputs_path, config, out = sys.argv[1:7]
    if port != "single":
        jax.distributed.initialize(f"127.0.0.1:{port}", num_processes=2, process_id=int(index),
                                   initialization_timeout=120)
    import numpy as np
    from nst_jax import StyleConfig, load_weights, reconstruct_style, stylize
    from nst_jax.sweep import stylize_batch, stylize_sweep

    weights = load_weights(weights_path)
    data = np.load(inputs_path)
    config = StyleConfig(**json.loads(config))
    sweep = stylize_sweep(data["content"], data["style"], style_weights=json.loads(sys.argv[7]), vgg=weights,
                          config=config)
    batch = stylize_batch([data["content"], data["other"]], data["style"], vgg=weights, config=config)
    spatial = stylize(data["content"], data["style"], vgg=weights, config=config.replace(shard="spatial"))
    textures = reconstruct_style(data["style"], [("relu1_1",), ("relu1_1", "relu2_1")], vgg=weights, config=config,
                                 batched=True)
    np.savez(out, sweep=np.stack([r.image for r in sweep]), batch=np.stack([item.result.image for item in batch]),
             sweep_losses=np.asarray([r.final_losses.total for r in sweep]), spatial=spatial.image[None],
             spatial_losses=np.asarray([spatial.final_losses.total]),
             textures=np.stack([r.image for r in textures]))
    print(json.dumps({"devices": len(jax.devices()), "local": len(jax.local_devices()),
                      "processes": jax.process_count()}))
    """
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.numerics
@pytest.mark.slow
def test_two_processes_equal_one(tmp_path, weights_file):
    content, other, style = (random_images((48, 40, 3), seed=31), random_images((48, 40, 3), seed=32),
                             random_images((40, 40, 3), seed=33))
    np.savez(tmp_path / "inputs.npz", content=content, other=other, style=style)
    runs = {name: [str(tmp_path / "inputs.npz"), str(tmp_path / f"{name}.npz")] for name in ("0", "1", "single")}
    port = str(free_port())
    children = {name: subprocess.Popen(
        [sys.executable, "-c", PROCESS_SCRIPT, "single" if name == "single" else port,
         "0" if name == "single" else name, str(weights_file), inputs, json.dumps(CONFIG.to_dict()), out,
         json.dumps(STYLE_WEIGHTS)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=dict(os.environ, JAX_PLATFORMS="cpu",
                 XLA_FLAGS=f"--xla_force_host_platform_device_count={4 if name == 'single' else 2}"))
        for name, (inputs, out) in runs.items()}
    try:
        outputs = {name: child.communicate(timeout=600) for name, child in children.items()}
    finally:
        for child in children.values():  # a hung or failed process ends with the test
            child.kill()
    for name, child in children.items():
        stdout, stderr = outputs[name]
        assert child.returncode == 0, stderr[-3000:]
        expected = {"devices": 4, "local": 4, "processes": 1} if name == "single" else {
            "devices": 4, "local": 2, "processes": 2}
        assert json.loads(stdout.strip().splitlines()[-1]) == expected

    # Both processes return the same (gathered) results; they equal one process's over 4 devices up to how
    # XLA:CPU's threading changes the last digits, which the optimizer's steps amplify (measured: images to 1.3e-3,
    # and 4.8e-3 between 1 and 4 devices in one process).
    first, second, single = (np.load(runs[name][1]) for name in ("0", "1", "single"))
    shapes = {"sweep": (len(STYLE_WEIGHTS), 48, 40, 3), "batch": (2, 48, 40, 3), "spatial": (1, 48, 40, 3),
              "textures": (2, 48, 48, 3)}
    for key in (*shapes, "sweep_losses", "spatial_losses"):
        np.testing.assert_array_equal(first[key], second[key], err_msg=key)
    for key in ("sweep_losses", "spatial_losses"):
        np.testing.assert_allclose(first[key], single[key], rtol=1e-3, err_msg=key)
    for key, shape in shapes.items():
        np.testing.assert_allclose(first[key], single[key], atol=1e-2, err_msg=key)
        assert first[key].shape == shape, key


# --------------------------------------------------------------------------- the command line, --distributed

# Shallow layers: a quick compile (the library's paths above run every default layer).
CLI_RUN = ["--image-size", "48", "--iterations", "4", "--line-search", "none", "--init", "content", "--shard",
           "spatial", "--save-every", "2", "--content-layers", "relu2_1", "--style-layers", "relu1_1,relu2_1"]


def launch(argv: list[str], devices: int) -> subprocess.Popen:
    """``python -m nst_jax ARGV`` on ``devices`` forced CPU devices, its output captured."""
    return subprocess.Popen([sys.executable, "-m", "nst_jax", *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=dict(os.environ, JAX_PLATFORMS="cpu",
                                                XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}"))


def finish(children: dict[str, subprocess.Popen], timeout: float) -> dict[str, tuple[str, str]]:
    """Each child's (stdout, stderr) once it ended; every child is killed after ``timeout`` seconds in all."""
    try:
        return {name: child.communicate(timeout=timeout) for name, child in children.items()}
    finally:
        for child in children.values():  # a hung or failed process ends with the test
            child.kill()


def distributed(port: int, index: int, *extra: str) -> list[str]:
    """The options of process ``index`` of 2 joined at ``port`` on localhost."""
    return ["--distributed", "--coordinator", f"127.0.0.1:{port}", "--num-processes", "2", "--process-id", str(index),
            "--distributed-timeout", "60", *extra]


@pytest.mark.slow
def test_cli_two_processes_write_once_and_equal_one(tmp_path, inputs, weights_file):
    """Two ``--distributed`` processes (one image's rows over their 4 devices): both exit 0, process 0 alone writes
    the image, its snapshots and the log and shows progress; the image equals one process's over 4 devices."""
    common = [str(inputs["content"]), str(inputs["style"]), "--weights", str(weights_file), *CLI_RUN]
    shared, single = tmp_path / "shared", tmp_path / "single"
    shared.mkdir(), single.mkdir()
    port = free_port()
    children = {str(index): launch([*common, "-o", str(shared / "out.png"), "--log-json", str(shared / "log.json"),
                                    *distributed(port, index)], devices=2) for index in (0, 1)}
    children["single"] = launch([*common, "-o", str(single / "out.png"), "--log-json", str(single / "log.json")], 4)
    outputs = finish(children, timeout=600)
    for name, child in children.items():
        assert child.returncode == 0, outputs[name][1][-3000:]

    assert sorted(path.name for path in shared.iterdir()) == ["log.json", "out.png", "out_iter2.png", "out_iter4.png"]
    (out0, err0), (out1, err1) = outputs["0"], outputs["1"]
    assert "wrote" in out0 and "4/4 [" in err0  # process 0 reports, and its progress bar reached the end
    # process 1: nothing of nst-jax's, only the log lines of JAX's collectives (gloo's on stdout, from several
    # threads: lines can interleave mid-way)
    assert "wrote" not in out1 and "loss" not in out1 and "nst-jax" not in out1, out1
    assert "/4 [" not in err1 and "nst-jax" not in err1
    # XLA:CPU's threading changes the last digits (see test_two_processes_equal_one); 8-bit PNGs round to 1/255.
    image, reference = (np.asarray(Image.open(folder / "out.png"), np.float32) / 255 for folder in (shared, single))
    np.testing.assert_allclose(image, reference, atol=1e-2 + 1 / 255)
    losses = [json.loads((folder / "log.json").read_text())["final_losses"]["total"] for folder in (shared, single)]
    np.testing.assert_allclose(losses[0], losses[1], rtol=1e-3)


@pytest.mark.slow
def test_cli_an_error_in_one_process_ends_both(tmp_path, inputs, weights_file):
    """A check that fails in one process only (its style image is missing): it exits 2 with its error, and the
    other, waiting to compute, exits 2 naming it, both within seconds instead of waiting for each other."""
    port = free_port()
    argv = [str(inputs["content"]), "STYLE", "-o", str(tmp_path / "out.png"), "--weights", str(weights_file),
            *CLI_RUN]
    styles = {0: str(inputs["style"]), 1: str(tmp_path / "missing.png")}
    children = {str(index): launch([value if value != "STYLE" else styles[index] for value in argv]
                                   + distributed(port, index), devices=2) for index in (0, 1)}
    outputs = finish(children, timeout=120)
    assert [children[name].returncode for name in ("0", "1")] == [2, 2]
    assert "nst-jax: error: process 1 stopped with an error" in outputs["0"][1]
    assert "nst-jax: error:" in outputs["1"][1] and "missing.png" in outputs["1"][1]
    assert not (tmp_path / "out.png").exists()


@pytest.mark.parametrize("extra, message", [
    (["--distributed"], "--distributed: JAX cannot tell which processes take part (coordinator_address should be "
                        "defined): give --coordinator HOST:PORT"),
    (["--process-id", "1"], "--process-id needs --distributed"),
    (["--distributed", "--num-processes", "2", "--process-id", "2"], "--process-id must be 0 to --num-processes - 1"),
])
def test_cli_process_options_without_what_they_need_exit_2(tmp_path, inputs, extra, message):
    """Process options that cannot work: one error line, exit 2, before anything is loaded (no launcher here)."""
    if extra == ["--distributed"] and {"SLURM_JOB_ID", "JAX_COORDINATOR_ADDRESS"} & set(os.environ):
        pytest.skip("running under a launcher JAX detects")
    child = launch([str(inputs["content"]), str(inputs["style"]), "-o", str(tmp_path / "out.png"), *extra], 1)
    stderr = finish({"cli": child}, timeout=120)["cli"][1]
    lines = stderr.strip().splitlines()
    assert child.returncode == 2 and len(lines) == 1 and lines[0].startswith(f"nst-jax: error: {message}"), stderr
    assert not (tmp_path / "out.png").exists()


def iterating_pair(tmp_path, inputs, weights_file, *, timeout: int) -> tuple[dict, dict]:
    """Two CLI processes of an endless run into tmp_path/out.png (``--distributed-timeout`` ``timeout``), returned
    (with their stderr files) once process 0 iterates; both are killed if it never does."""
    port, logs = free_port(), {index: tmp_path / f"stderr{index}.txt" for index in (0, 1)}
    children = {}
    for index in (0, 1):
        argv = [str(inputs["content"]), str(inputs["style"]), "-o", str(tmp_path / "out.png"), "--weights",
                str(weights_file), *CLI_RUN, "--iterations", "100000", *distributed(port, index),
                "--distributed-timeout", str(timeout)]
        with open(logs[index], "w") as stderr:
            children[index] = subprocess.Popen(
                [sys.executable, "-m", "nst_jax", *argv], stdout=subprocess.DEVNULL, stderr=stderr,
                env=dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="--xla_force_host_platform_device_count=2"))
    deadline = time.monotonic() + 300
    while "loss=" not in logs[0].read_text() and time.monotonic() < deadline:  # both iterate
        time.sleep(0.5)
    if "loss=" not in logs[0].read_text():
        for child in children.values():
            child.kill()
        pytest.fail(logs[0].read_text()[-3000:])
    return children, logs


@pytest.mark.slow
def test_cli_a_process_that_dies_ends_the_other(tmp_path, inputs, weights_file):
    """Process 1 killed while both iterate: process 0 ends within about --distributed-timeout (10 s here) with JAX's
    message and a non-zero exit (134, an abort), writing nothing, instead of waiting forever in a collective."""
    children, logs = iterating_pair(tmp_path, inputs, weights_file, timeout=10)
    try:
        children[1].kill()
        killed = time.monotonic()
        children[0].wait(timeout=120)
        ended = time.monotonic() - killed
    finally:
        for child in children.values():
            child.kill()
    assert children[0].returncode != 0 and ended < 10 + 20, (children[0].returncode, ended)
    assert "JAX distributed service detected fatal errors" in logs[0].read_text()
    assert not (tmp_path / "out.png").exists()


@pytest.mark.slow
def test_cli_ctrl_c_stops_every_process_after_the_same_chunk(tmp_path, inputs, weights_file):
    """SIGINT to process 1 alone while both iterate (a terminal or srun delivers it to each, at slightly different
    moments): both stop after the same chunk, exit 130, and process 0 saves the image, instead of process 0 going
    on alone into a collective that process 1 never joins."""
    children, logs = iterating_pair(tmp_path, inputs, weights_file, timeout=30)
    try:
        children[1].send_signal(signal.SIGINT)
        for child in children.values():
            child.wait(timeout=120)
    finally:
        for child in children.values():
            child.kill()
    assert [children[index].returncode for index in (0, 1)] == [130, 130], [logs[i].read_text()[-2000:] for i in (0, 1)]
    assert "interrupted at iteration" in logs[0].read_text()
    assert read_png_metadata(tmp_path / "out.png")["nst_jax:status"] == "interrupted"
