"""The live view's server (nst_jax.live.server) through a standard-library client: the page, the event stream
(progress, keep-alive, done), the pictures, viewers that come and go, the Host check, the port, the stop."""

from __future__ import annotations

import base64
import http.client
import io
import json
import socket
import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest
from PIL import Image

from nst_jax.live.message import done_message, progress_message
from nst_jax.live.server import FINAL, FRAME, Feed, LiveServer, data_url, encode_png, is_loopback


def _message(done: int) -> dict:
    return progress_message(done=done, total=10, elapsed=float(done), speed=None, terms={"total": 1.0 / (done + 1)})


def _events(response: http.client.HTTPResponse) -> Iterator[tuple[str, dict | None]]:
    """(event name, data) of a Server-Sent Events stream; ("comment", None) for a keep-alive."""
    name, data = None, None
    for raw in response:
        line = raw.decode().rstrip("\n")
        if line.startswith(":"):
            yield "comment", None
        elif line.startswith("event: "):
            name = line[len("event: "):]
        elif line.startswith("data: "):
            data = json.loads(line[len("data: "):])
        elif line == "" and name is not None:
            yield name, data
            name, data = None, None


def _get(server: LiveServer, path: str, host: str | None = None) -> http.client.HTTPResponse:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    connection.putrequest("GET", path, skip_host=host is not None)
    if host is not None:
        connection.putheader("Host", host)
    connection.endheaders()
    return connection.getresponse()


@pytest.fixture
def served() -> Iterator[tuple[Feed, LiveServer]]:
    feed = Feed()
    with LiveServer(feed, port=0) as server:
        yield feed, server


def test_the_page_is_served_and_names_its_routes(served):
    _, server = served
    response = _get(server, "/")
    body = response.read().decode()
    assert response.status == 200 and response.headers["Content-Type"] == "text/html; charset=utf-8"
    assert "<svg" in body and 'EventSource("/events")' in body and "/frame.png" in body
    assert "http" not in body.replace("http://www.w3.org/2000/svg", "")  # nothing fetched from elsewhere
    assert server.url == f"http://127.0.0.1:{server.port}/"


def test_unknown_paths_are_404_and_no_picture_yet_is_503(served):
    _, server = served
    assert _get(server, "/etc/passwd").status == 404
    assert _get(server, "/extra/frame.png").status == 404  # the frame is not an extra
    response = _get(server, "/frame.png?v=1")
    assert response.status == 503 and response.headers["Retry-After"] == "1"


def test_events_give_the_state_then_each_change_with_new_points_then_done(served):
    feed, server = served
    feed.set_settings("a run", [["image size", "32"]])
    feed.publish(_message(1), point=[1, {"total": 0.5}])
    response = _get(server, "/events")
    assert response.headers["Content-Type"] == "text/event-stream"
    events = _events(response)
    name, first = next(events)
    assert name == "progress" and first["reset"] and first["iteration"] == 1
    assert first["points"] == [[1, {"total": 0.5}]] and first["title"] == "a run"
    assert first["settings"] == [["image size", "32"]]
    feed.publish(_message(2), point=[2, {"total": 0.25}], pictures={FRAME: (np.zeros((4, 6, 3)), None, "")})
    name, second = next(events)
    assert name == "progress" and not second["reset"] and second["points"] == [[2, {"total": 0.25}]]
    assert "settings" not in second and second["frame"] is not None
    feed.finish(done_message(status="completed", note="wrote out.png", done=2, total=10, elapsed=2.0))
    name, done = next(events)
    assert name == "done" and done["note"] == "wrote out.png"
    with Image.open(io.BytesIO(base64.b64decode(done["image"].split(",", 1)[1]))) as last:
        assert last.size == (6, 4)  # no final picture given: the last frame
    assert list(events) == []  # the stream ends after done


def test_a_quiet_stream_gets_keep_alive_comments():
    feed = Feed()
    events = feed.events(keep_alive=0.01)
    assert next(events)[0] == "progress"
    assert next(events) is None  # nothing new within keep_alive
    events.close()
    assert not feed.watched


def test_pictures_are_pngs_of_their_size_rendered_and_encoded_once_per_version(served):
    feed, server = served
    renders = []

    def render(batch: np.ndarray) -> np.ndarray:
        renders.append(batch.shape)
        return np.concatenate(list(batch), axis=1)

    batch = np.random.default_rng(0).random((2, 5, 7, 3))
    feed.publish(_message(1), pictures={FRAME: (batch, render, ""), "mask": (np.ones((5, 7)), None, "occlusion")})
    for _ in range(2):
        response = _get(server, "/frame.png?v=1")
        assert response.status == 200 and response.headers["Content-Type"] == "image/png"
        with Image.open(io.BytesIO(response.read())) as image:
            assert image.size == (14, 5) and image.mode == "RGB"
    assert renders == [(2, 5, 7, 3)]  # the second viewer got the cached PNG
    with Image.open(io.BytesIO(_get(server, "/extra/mask.png").read())) as mask:
        assert mask.size == (7, 5) and mask.mode == "L" and mask.getpixel((0, 0)) == 255
    _, message = next(feed.events())
    assert message["extras"] == [{"name": "mask", "label": "occlusion", "version": message["frame"]}]


@pytest.mark.parametrize("shape", [(37, 53, 3), (37, 53), (1, 1, 3), (5, 4, 1)])
def test_encode_png_decodes_to_the_quantised_image(shape):
    image = np.random.default_rng(0).random(shape)
    with Image.open(io.BytesIO(encode_png(image))) as decoded:
        decoded.load()  # Pillow checks every chunk's CRC and the zlib stream
        expected = np.round(image * 255).astype(np.uint8)
        grey = expected.ndim == 2 or expected.shape[-1] == 1
        np.testing.assert_array_equal(np.asarray(decoded), expected.reshape(shape[:2]) if grey else expected)
        assert decoded.mode == ("L" if grey else "RGB")


def test_encode_png_rounds_and_clips():
    with Image.open(io.BytesIO(encode_png(np.array([[[-1.0, 0.5, 2.0]]])))) as image:
        assert image.getpixel((0, 0)) == (0, 128, 255)
    with pytest.raises(ValueError, match="must be"):
        encode_png(np.zeros((2, 2, 4)))
    assert data_url(b"\x89PNG").startswith("data:image/png;base64,")


def test_a_final_picture_replaces_the_frame_in_done(served):
    feed, server = served
    feed.publish(_message(1), pictures={FRAME: (np.zeros((4, 4)), None, "")})
    feed.finish(done_message(status="completed", note="", done=1, total=1, elapsed=1.0), final=(np.ones((3, 9)), None))
    _, done = next(_events(_get(server, "/events")))
    with Image.open(io.BytesIO(base64.b64decode(done["image"].split(",", 1)[1]))) as last:
        assert last.size == (9, 3)
    assert feed.png(FINAL) is not None
    feed.publish(_message(2))  # after done: ignored
    assert next(feed.events())[0] == "done"


def test_a_viewer_that_leaves_stops_counting_and_others_go_on(served):
    feed, server = served
    leaving = _get(server, "/events")
    staying = _events(_get(server, "/events"))
    assert next(staying)[0] == "progress"
    next(_events(leaving))
    assert feed.viewers == 2
    leaving.close()  # the tab closed mid-run
    deadline = time.monotonic() + 10
    done = 0
    while feed.viewers > 1 and time.monotonic() < deadline:  # its thread finds out at a write (the 1st or 2nd)
        done += 1
        feed.publish(_message(done))
        assert next(staying)[1]["iteration"] == done  # the staying viewer gets every message meanwhile
        time.sleep(0.01)
    assert feed.viewers == 1 and done <= 5


def test_loopback_serving_answers_only_loopback_host_names(served):
    _, server = served
    assert _get(server, "/", host=f"localhost:{server.port}").status == 200
    assert _get(server, "/", host=f"[::1]:{server.port}").status == 200
    response = _get(server, "/frame.png", host=f"attacker.example:{server.port}")  # DNS rebinding
    assert response.status == 403
    assert is_loopback("127.0.0.2") and is_loopback("::1") and not is_loopback("192.0.2.1")
    assert not is_loopback("example.com")


def test_a_port_in_use_is_an_error_when_made_and_port_0_picks_a_free_one():
    with LiveServer(Feed(), port=0) as first:
        with pytest.raises(OSError):
            LiveServer(Feed(), port=first.port)
        with LiveServer(Feed(), port=0) as second:
            assert second.port not in (0, first.port)


def test_after_close_nothing_listens_and_open_streams_end():
    feed = Feed()
    server = LiveServer(feed, port=0).start()
    events = _events(_get(server, "/events"))
    assert next(events)[0] == "progress"
    feed.finish(done_message(status="failed", note="", done=0, total=0, elapsed=0.0))
    server.close()
    assert next(events)[0] == "done"
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", server.port), timeout=5).close()


def test_closing_an_unfinished_feed_ends_its_streams_without_done():
    feed = Feed()
    server = LiveServer(feed, port=0).start()
    events = _events(_get(server, "/events"))
    next(events)
    waiting = threading.Thread(target=lambda: list(events))
    waiting.start()
    server.close()
    waiting.join(timeout=10)
    assert not waiting.is_alive()
