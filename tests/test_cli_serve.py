"""``--serve``: every form of the command line watched through a standard-library client (the page, the event
stream from progress to done, the pictures at the run's size, the address printed once, nothing listening after),
its errors (a port in use, a host not of this machine: exit 2 before anything loads), and the page in a real
browser (headless Chromium driven by playwright; skipped with the reason where either is missing).

The command runs in a thread while the test is its viewer. A tiny run finishes in milliseconds once compiled, so
``held`` makes it wait for a viewer before each chunk and, until the test says go, after it: the test then sees a
picture mid-run. The arguments are those of test_cli.py, test_cli_batch.py and test_cli_reconstruct.py, so a
session running those too compiles nothing more."""

from __future__ import annotations

import argparse
import base64
import http.client
import io
import json
import os
import re
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nst_jax import StyleConfig, cli
from nst_jax.cli import loading, serving
from nst_jax.cli.exits import UsageError
from nst_jax.image_io import load_image
from nst_jax.live import LiveServer, Publisher

SINGLE = ["--image-size", "32", "--iterations", "4", "--chunk-size", "2", "--content-layers", "relu2_1",
          "--style-layers", "relu1_1,relu2_1", "--quiet"]
BATCHED = ["--image-size", "32", "--iterations", "4", "--chunk-size", "2", "--optimizer", "adam",
           "--content-layers", "relu2_1", "--style-layers", "relu1_1,relu2_1", "--quiet"]
RECONSTRUCT = ["--image-size", "32", "--iterations", "3", "--chunk-size", "3", "--quiet"]
WAIT = 60.0
"""Seconds the test and the run wait for each other at most (a compile takes ~5 s here)."""


class Watched:
    """``cli.main(argv)`` in a thread with ``--serve 0``, held at each chunk and at its end until a viewer watches,
and (``hold``) after each chunk until ``go`` (see the module's docstring)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, argv: list, *, hold: bool = True) -> None:
        self.argv = [str(arg) for arg in argv] + ["--serve", "0"]
        self.servers: list[LiveServer] = []
        self.go = threading.Event()
        if not hold:
            self.go.set()
        self.code: int | None = None
        servers, go = self.servers, self.go

        class Spied(LiveServer):
            def __init__(self, *args, **kwargs) -> None:
                super().__init__(*args, **kwargs)
                servers.append(self)

        class Held(Publisher):
            def _watched(self) -> None:
                deadline = time.monotonic() + WAIT
                while self.feed is not None and not self.feed.watched and time.monotonic() < deadline:
                    time.sleep(0.01)

            def update(self, progress, **kwargs) -> None:
                self._watched()
                super().update(progress, **kwargs)
                if self.feed is not None:
                    go.wait(WAIT)

            def finish(self, *args, **kwargs) -> None:
                self._watched()
                super().finish(*args, **kwargs)

        monkeypatch.setattr(serving, "LiveServer", Spied)
        monkeypatch.setattr(serving, "Publisher", Held)
        self.thread = threading.Thread(target=self._main, daemon=True)

    def _main(self) -> None:
        self.code = cli.main(self.argv)

    def __enter__(self) -> "Watched":
        self.thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.go.set()
        self.thread.join(WAIT)
        assert not self.thread.is_alive(), "the command did not end"

    @property
    def server(self) -> LiveServer:
        """The command's server, once it listens."""
        deadline = time.monotonic() + WAIT
        while not self.servers and time.monotonic() < deadline and self.thread.is_alive():
            time.sleep(0.01)
        assert self.servers, f"no server started (exit code {self.code})"
        return self.servers[0]

    def get(self, path: str) -> http.client.HTTPResponse:
        connection = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=WAIT)
        connection.request("GET", path)
        return connection.getresponse()

    def events(self) -> Iterator[tuple[str, dict]]:
        """(event, message) of the event stream, until it ends."""
        name = None
        for raw in self.get("/events"):
            line = raw.decode().rstrip("\n")
            if line.startswith("event: "):
                name = line[len("event: "):]
            elif line.startswith("data: "):
                yield name, json.loads(line[len("data: "):])


def _png(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB"))


def _data_url(url: str) -> np.ndarray:
    assert url.startswith("data:image/png;base64,")
    return _png(base64.b64decode(url.split(",", 1)[1]))


def _8bit(path: Path) -> np.ndarray:
    return np.round(load_image(path) * 255).astype(np.uint8)


def _watch(run: Watched) -> tuple[list[dict], dict, np.ndarray]:
    """The progress messages, the done message and the picture fetched mid-run."""
    progress, frame = [], None
    for name, message in run.events():
        if name == "done":
            return progress, message, frame
        progress.append(message)
        if frame is None and message["frame"] is not None:
            frame = _png(run.get(f"/frame.png?v={message['frame']}").read())
            run.go.set()
    raise AssertionError("the event stream ended without done")


def test_single_run_shows_its_progress_pictures_and_end_then_stops_listening(monkeypatch, tmp_path, inputs,
                                                                              weights_file, capsys):
    out = tmp_path / "out.png"
    with Watched(monkeypatch, [inputs["content"], inputs["style"], "-o", out, "--weights", weights_file,
                               *SINGLE]) as run:
        page = run.get("/").read().decode()
        progress, done, frame = _watch(run)
    assert run.code == 0 and "<title>nst-jax</title>" in page
    port = run.server.port
    assert re.findall(r"http://\S+", capsys.readouterr().err) == [f"http://127.0.0.1:{port}/"]  # printed once

    assert progress[0]["status"] == "starting" and progress[-1]["status"] == "running"
    assert [m["iteration"] for m in progress if m["status"] == "running"] == [1, 2, 4]  # 1 step first (compiling)
    assert progress[-1]["iterations"] == 4
    assert progress[-1]["terms"]["total"] > 0 and progress[-1]["rate"] > 0
    settings = dict([m for m in progress if "settings" in m][-1]["settings"])  # set once the network is loaded
    assert settings["content"] == str(inputs["content"]) and settings["image size"] == "32"
    assert settings["network"].startswith("VGG19, torchvision preprocessing, pretrained")

    assert frame.shape == (27, 32, 3)  # the output's size (48 x 40 content, longest side 32)
    assert done["status"] == "completed" and done["iteration"] == 4 and str(out) in done["note"]
    np.testing.assert_array_equal(_data_url(done["image"]), _8bit(out))  # the page keeps the written image
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()


def test_a_port_in_use_is_exit_2_before_anything_loads(monkeypatch, tmp_path, inputs, weights_file, capsys):
    monkeypatch.setattr(loading, "load_weights", lambda *a: pytest.fail("the weights were loaded"))
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        code = cli.main([str(inputs["content"]), str(inputs["style"]), "-o", str(tmp_path / "out.png"),
                         "--weights", str(weights_file), "--serve", str(port)])
    assert code == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line == (f"nst-jax: error: --serve {port}: cannot listen on 127.0.0.1 port {port}: Address already in "
                    "use; choose another port, or 0 for a free one")
    assert not (tmp_path / "out.png").exists()


@pytest.mark.parametrize(("options", "message"), [
    (["--serve", "0", "--serve-host", "192.0.2.1"], "cannot listen on 192.0.2.1 port 0: Cannot assign requested"),
    (["--serve", "65536"], "expected a port number from 0 to 65535"),
])
def test_serve_errors_are_one_line_exit_2(options, message, monkeypatch, tmp_path, inputs, weights_file, capsys):
    monkeypatch.setattr(loading, "load_weights", lambda *a: pytest.fail("the weights were loaded"))
    code = cli.main(["reconstruct", "content", str(inputs["content"]), "-o", str(tmp_path / "r"), *options])
    assert code == 2 and message in capsys.readouterr().err


def test_an_error_after_the_page_is_up_is_shown_on_it():
    args = argparse.Namespace(serve=0, serve_host="127.0.0.1")
    seen: list = []
    with pytest.raises(UsageError), serving.LiveView(args) as live:
        viewer = threading.Thread(target=lambda: seen.extend(live.server.feed.events()))
        viewer.start()
        raise UsageError("output 'out.png' exists and was not written by nst-jax")
    viewer.join(WAIT)
    name, done = seen[-1]
    assert name == "done" and done["status"] == "failed" and "exists" in done["note"]


def test_without_serve_there_is_no_server_and_nothing_is_published(vgg_weights):
    with serving.LiveView(argparse.Namespace(serve=None, serve_host="127.0.0.1")) as live:
        assert live.server is None and not live.serving
        assert live.publisher(total=4, config=StyleConfig(), vgg=vgg_weights).feed is None


@pytest.mark.slow
def test_a_sweep_shows_one_tile_per_member(monkeypatch, tmp_path, inputs, weights_file):
    out = tmp_path / "out.png"
    with Watched(monkeypatch, [inputs["content"], inputs["style"], "-o", out, "--weights", weights_file, *BATCHED,
                               "--style-weight", "1e2,1e3,1e4"]) as run:
        progress, done, frame = _watch(run)
    assert run.code == 0
    grid = _8bit(tmp_path / "out_grid.png")
    assert frame.shape == grid.shape  # the same three labelled tiles as the contact sheet
    assert progress[-1]["members"] == 3 and set(progress[-1]["spread"]) == {"total", "content", "style", "tv"}
    np.testing.assert_array_equal(_data_url(done["image"]), grid)


@pytest.mark.slow
def test_batch_shows_the_images_being_optimized(monkeypatch, tmp_path, inputs, weights_file):
    folder = tmp_path / "contents"
    folder.mkdir()
    for name in ("a.png", "b.png"):
        shutil.copy(inputs["content"], folder / name)
    with Watched(monkeypatch, ["--batch", folder, inputs["style"], "-o", tmp_path / "out", "--weights",
                               weights_file, *BATCHED]) as run:
        progress, done, frame = _watch(run)
    assert run.code == 0 and progress[-1]["members"] == 2 and progress[-1]["iterations"] == 4
    assert frame.shape[1] > 2 * 32  # two tiles side by side
    assert done["status"] == "completed" and done["note"] == f"wrote 2 of 2 images to {tmp_path / 'out'}"


@pytest.mark.slow
def test_reconstruct_names_the_layer_running(monkeypatch, tmp_path, inputs, weights_file):
    out = tmp_path / "recon"
    with Watched(monkeypatch, ["reconstruct", "content", inputs["content"], "-o", out, "--layers",
                               "relu1_2,relu2_2", "--no-batched", "--weights", weights_file, *RECONSTRUCT]) as run:
        progress, done, _ = _watch(run)
    assert run.code == 0
    stages = {(m["stage"], m["iteration"] > 3) for m in progress if m["status"] == "running"}  # 3 iterations each
    assert stages == {("content_relu1_2", False), ("content_relu2_2", True)}
    # The last state reaches a viewer as the done message (the run is held only until the first picture is fetched;
    # after that a viewer may see the end before the last progress message: measured under load, iteration 4 of 6).
    assert progress[-1]["iterations"] == 6 and progress[-1]["iteration"] <= 6
    assert done["iteration"] == done["iterations"] == 6 and done["status"] == "completed"
    np.testing.assert_array_equal(_data_url(done["image"]), _8bit(out / "content_grid.png"))


def test_an_interrupted_run_says_so(monkeypatch, tmp_path, inputs, weights_file, request):
    request.getfixturevalue("interrupt_first_chunk")
    with Watched(monkeypatch, [inputs["content"], inputs["style"], "-o", tmp_path / "out.png", "--weights",
                               weights_file, *SINGLE], hold=False) as run:
        events = list(run.events())
    assert run.code == 130
    assert events[-1][0] == "done" and events[-1][1]["status"] == "interrupted"
    assert events[-1][1]["note"] == "nothing was written" and events[-1][1]["image"] is None


# --------------------------------------------------------------------------- in a browser

CHROMIUM = os.environ.get("NST_JAX_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
BROWSER_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium from the system's packages, driven by playwright (never downloaded: offline)."""
    playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install "
                                         "'nst-jax[test]')")
    if CHROMIUM is None:
        pytest.skip("no Chromium (apt-get install chromium, or NST_JAX_CHROMIUM=/path/to/chrome)")
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
        yield browser
        browser.close()


@pytest.mark.slow
def test_the_page_in_a_browser_follows_the_run_to_done(browser, monkeypatch, tmp_path, inputs, weights_file):
    """A browser, not a client: the script runs, draws the curve, loads the picture, shows the end without an
    error (compiling the run takes most of its ~8 s)."""
    out = tmp_path / "out.png"
    problems: list[str] = []
    page = browser.new_page(viewport={"width": 1000, "height": 700})
    page.on("console", lambda message: problems.append(f"console {message.type}: {message.text}")
            if message.type in ("error", "warning") else None)
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    with Watched(monkeypatch, [inputs["content"], inputs["style"], "-o", out, "--weights", weights_file, *SINGLE],
                 hold=False) as run:
        page.goto(run.server.url)
        page.wait_for_selector("body[data-state=done]", timeout=WAIT * 1000)
    assert run.code == 0
    shown = page.evaluate("() => { const img = document.getElementById('frame'); "
                          "return [img.naturalWidth, img.naturalHeight]; }")
    assert shown == [32, 27]  # the output's size
    curves = page.eval_on_selector_all("path.term", "paths => paths.map(p => [p.dataset.term, p.getAttribute('d')])")
    assert {name for name, _ in curves} >= {"total", "content", "style"}
    assert all(d.count("L") >= 2 for name, d in curves if name != "tv")  # 4 chunks: a line, not a dot
    assert page.text_content("#status") == "finished" and page.text_content("#iteration") == "4 / 4"
    assert str(out) in page.text_content("#note")
    screenshot = tmp_path / "live_view.png"
    page.screenshot(path=str(screenshot), full_page=True)
    print(f"screenshot of the live view: {screenshot}")

    page.set_viewport_size({"width": 390, "height": 844})  # a phone: nothing wider than the screen
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 390
    page.screenshot(path=str(tmp_path / "live_view_phone.png"), full_page=True)
    page.close()
    assert problems == []


def test_serve_host_without_serve_is_refused(inputs, weights_file, tmp_path, capsys):
    """--serve-host alone would be ignored (nothing is served): one line, exit 2, before anything slow."""
    from nst_jax.cli import main

    code = main([str(inputs["content"]), str(inputs["style"]), "-o", str(tmp_path / "out.png"), "--weights",
                 str(weights_file), "--serve-host", "0.0.0.0"])
    err = capsys.readouterr().err
    assert code == 2 and err.strip() == "nst-jax: error: --serve-host applies only with --serve PORT"
    assert not (tmp_path / "out.png").exists()
