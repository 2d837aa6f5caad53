"""The live view's web server (``--serve``) and the state it shares with the run: Python's standard library only.

``Feed`` is what the run publishes and every viewer reads: the latest ``progress`` message, the curve's points,
the settings, the latest pictures and, at the end, the ``done`` message, behind one ``threading.Condition`` with a
version counter. Publishing takes the lock only to swap references, so a viewer never blocks the run; a picture is
kept as the run handed it over (a host array) and rendered and PNG-encoded only when a viewer asks for it, once
per version, on the server's thread (encoding a 512 px PNG takes ~40 ms: not the optimizer's time).

``LiveServer`` serves, from a daemon thread, ``/`` (the page, ``page.html``), ``/events`` (Server-Sent Events:
every new message as ``event: progress``, a keep-alive comment after ``KEEP_ALIVE`` quiet seconds, ``event:
done`` at the end, then the stream closes), ``/frame.png`` (the current picture; ``?v=N`` only defeats caches)
and ``/extra/NAME.png`` (further pictures). The page asks for a picture only after the previous one loaded, so
nothing queues when the optimizer outruns the browser. Bound to loopback by default; then it answers only
requests that name a loopback host, so that a web page elsewhere cannot read the run through a DNS name that
resolves to 127.0.0.1 (DNS rebinding).
"""

from __future__ import annotations

import base64
import dataclasses
import importlib.resources
import ipaddress
import json
import socket
import socketserver
import struct
import threading
import time
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from nst_jax.live.message import progress_message

DEFAULT_HOST = "127.0.0.1"
"""Where ``--serve`` listens unless ``--serve-host`` says otherwise: this machine only (not the network)."""
KEEP_ALIVE = 15.0
"""Seconds of silence after which an event stream gets a comment, so that proxies and browsers keep it open."""
LINGER = 2.0
"""The longest a finished run waits for its viewers to receive the ``done`` message before the server stops."""
GRACE = 0.2
"""Seconds a watched server keeps listening after its viewers got ``done``: a picture a page asked for just before
is still served (not refused, an error in its console)."""
SOCKET_TIMEOUT = 30.0
"""A viewer that neither sends its request nor takes a message for this long is dropped (its thread ends)."""
PNG_LEVEL = 1
"""zlib level of the served PNGs (Pillow's default 6 takes twice as long for 2-8 % less, measured on photos)."""
FRAME = "frame"
"""The name of the current picture among a feed's pictures."""
FINAL = "final"
"""The name of the final picture (the ``done`` message's)."""
PAGE = "page.html"

Render = Callable[[np.ndarray], np.ndarray]
"""Turns what the run published (e.g. a batch of images) into the picture shown: (H, W, 3) or (H, W) in [0, 1]."""


def encode_png(image: np.ndarray) -> bytes:
    """An (H, W, 3) or (H, W) image in [0, 1] as an 8-bit PNG, every row filtered "Up" (its difference from the row
    above) and deflated at ``PNG_LEVEL``.

    Written here rather than by Pillow because zlib and NumPy let go of Python's GIL while they work and Pillow's
    encoder into memory holds it while it compresses: the optimizer's thread needs the GIL between chunks, and must
    not wait for a viewer's picture (a 512x384 photo: 27 ms here, 51 ms with Pillow at level 1; 4 % larger).
    """
    pixels = np.asarray(image, np.float32)
    if pixels.ndim == 3 and pixels.shape[-1] == 1:
        pixels = pixels[..., 0]
    if pixels.ndim not in (2, 3) or (pixels.ndim == 3 and pixels.shape[-1] != 3):
        raise ValueError(f"a picture must be (H, W, 3) or (H, W), got shape {pixels.shape}")
    height, width = pixels.shape[:2]
    rows = np.round(np.clip(np.nan_to_num(pixels), 0.0, 1.0) * 255.0).astype(np.uint8).reshape(height, -1)
    filtered = np.empty((height, rows.shape[1] + 1), np.uint8)
    filtered[:, 0] = 2  # PNG filter type 2, "Up"
    filtered[0, 1:] = rows[0]
    np.subtract(rows[1:], rows[:-1], out=filtered[1:, 1:])  # modulo 256, as PNG filters are
    colour = 0 if pixels.ndim == 2 else 2  # greyscale or truecolour
    header = struct.pack(">IIBBBBB", width, height, 8, colour, 0, 0, 0)
    return b"".join([PNG_SIGNATURE, _chunk(b"IHDR", header),
                     _chunk(b"IDAT", zlib.compress(filtered.tobytes(), PNG_LEVEL)), _chunk(b"IEND", b"")])


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _chunk(kind: bytes, data: bytes) -> bytes:
    """A PNG chunk: length, type, data, CRC."""
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def data_url(png: bytes) -> str:
    """A PNG as a ``data:`` URL (the ``done`` message carries the final picture so: the server stops after it)."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


@dataclasses.dataclass(frozen=True)
class Picture:
    """A picture as the run handed it over: rendered (``render``) and encoded only when a viewer asks."""

    version: int
    pixels: np.ndarray
    render: Render | None = None
    label: str = ""


class Feed:
    """What the run publishes and the viewers read (thread-safe): see the module's docstring."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._version = 0
        self._message: dict[str, Any] = progress_message(done=0, total=0, elapsed=0.0, speed=None, terms={},
                                                         starting=True)
        self._points: list[list[Any]] = []
        self._settings: dict[str, Any] = {"title": "", "settings": []}
        self._settings_version = 0
        self._pictures: dict[str, Picture] = {}
        self._served = True  # the current frame was sent to a viewer (or there is none yet)
        self._encoded: dict[str, tuple[int, bytes]] = {}
        self._encoding = threading.Lock()
        self._viewers = 0
        self._done: dict[str, Any] | None = None
        self._closed = False

    # ------------------------------------------------------------------ the run's side

    @property
    def viewers(self) -> int:
        """Event streams open (a viewer that left counts until its stream next fails to write)."""
        return self._viewers

    @property
    def watched(self) -> bool:
        """Whether a viewer's event stream is open (the run copies its image off the device only then)."""
        return self._viewers > 0  # an int read is atomic; a stale answer costs one chunk's picture at most

    @property
    def wants_frame(self) -> bool:
        """Whether a new frame would be seen: someone watches, and the current frame (if any) has been sent to a
        viewer, so a run faster than its viewers copies its image no more often than they look."""
        return self._viewers > 0 and self._served

    def set_settings(self, title: str, settings: Sequence[Sequence[str]]) -> None:
        """The run's title and its settings (``[name, value]`` rows), sent to each viewer once and on change."""
        with self._changed:
            self._settings = {"title": title, "settings": [list(row) for row in settings]}
            self._settings_version += 1
            self._bump()

    def publish(
        self, message: Mapping[str, Any], *, point: Sequence[Any] | None = None,
        pictures: Mapping[str, tuple[np.ndarray, Render | None, str]] | None = None,
    ) -> None:
        """The latest ``progress`` message (its ``frame`` and ``extras`` filled in here), a point of the curve, and
        new pictures by name (``FRAME``, or extras): (pixels, render or None, label); pictures not given stay."""
        with self._changed:
            if self._done is not None:
                return
            version = self._version + 1
            for name, (pixels, render, label) in (pictures or {}).items():
                self._pictures[name] = Picture(version, pixels, render, label)
                self._served = self._served and name != FRAME
            frame = self._pictures.get(FRAME)
            self._message = {
                **message,
                "frame": frame.version if frame is not None else None,
                "extras": [{"name": name, "label": picture.label, "version": picture.version}
                           for name, picture in self._pictures.items() if name not in (FRAME, FINAL)],
            }
            if point is not None:
                self._points.append(list(point))
            self._bump()

    def finish(self, message: Mapping[str, Any], final: tuple[np.ndarray, Render | None] | None = None) -> None:
        """The ``done`` message (its ``image`` filled in from ``final``, or else the last frame, when a viewer gets
        it); later publishing is ignored."""
        with self._changed:
            if self._done is not None:
                return
            if final is not None:
                self._pictures[FINAL] = Picture(self._version + 1, final[0], final[1])
            self._done = dict(message)
            self._bump()

    @property
    def finished(self) -> bool:
        """Whether ``finish`` was called."""
        return self._done is not None

    def wait_for_viewers(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s until no event stream is open (after ``finish`` each ends once it sent
        ``done``); whether none is."""
        with self._changed:
            return self._changed.wait_for(lambda: self._viewers == 0, timeout)

    def close(self) -> None:
        """End every event stream (after ``done`` if it was published)."""
        with self._changed:
            self._closed = True
            self._changed.notify_all()

    def _bump(self) -> None:
        """A new version: wake every viewer (call holding the lock)."""
        self._version += 1
        self._changed.notify_all()

    # ------------------------------------------------------------------ the viewers' side

    def events(self, keep_alive: float = KEEP_ALIVE) -> Iterator[tuple[str, dict[str, Any]] | None]:
        """One viewer's events: ``("progress", message)`` for the current state (``reset`` true: its points are the
        whole curve so far) and each change (with the curve points it lacks, and the settings when new to it), None
        after ``keep_alive`` quiet seconds, ``("done", message)`` last. The viewer counts as watching while the
        iterator is open."""
        with self._changed:
            self._viewers += 1
        try:
            seen, points, settings = -1, 0, -1
            while True:
                with self._changed:
                    self._changed.wait_for(lambda seen=seen: self._version != seen or self._closed, keep_alive)
                    if self._version == seen and not self._closed:
                        event = None
                    elif self._done is not None:
                        event = ("done", dict(self._done))
                    elif self._closed:
                        return
                    else:
                        message = {**self._message, "points": self._points[points:], "reset": seen == -1}
                        if self._settings_version != settings:
                            message.update(self._settings)
                            settings = self._settings_version
                        seen, points = self._version, len(self._points)
                        event = ("progress", message)
                if event is not None and event[0] == "done":
                    png = self.png(FINAL) or self.png(FRAME)
                    event[1]["image"] = data_url(png) if png is not None else None
                    yield event
                    return
                yield event
        finally:
            with self._changed:
                self._viewers -= 1
                self._changed.notify_all()

    def png(self, name: str) -> bytes | None:
        """The picture ``name`` as PNG (rendered and encoded once per version, outside the run's lock), or None."""
        with self._changed:
            picture = self._pictures.get(name)
        if picture is None:
            return None
        with self._encoding:  # two viewers asking for the same new picture encode it once
            cached = self._encoded.get(name)
            if cached is None or cached[0] != picture.version:
                image = picture.render(picture.pixels) if picture.render is not None else picture.pixels
                cached = self._encoded[name] = (picture.version, encode_png(image))
        if name == FRAME:
            with self._changed:
                self._served = self._served or self._pictures[FRAME].version == picture.version
        return cached[1]

    def has_extra(self, name: str) -> bool:
        """Whether ``name`` is one of the published further pictures (not the frame)."""
        with self._changed:
            return name in self._pictures and name not in (FRAME, FINAL)


def page() -> bytes:
    """The page (package data)."""
    return importlib.resources.files("nst_jax.live").joinpath(PAGE).read_bytes()


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address) is this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _host_of(header: str) -> str:
    """The host of a ``Host`` header (``127.0.0.1:8000`` -> ``127.0.0.1``, ``[::1]:80`` -> ``::1``)."""
    if header.startswith("["):
        return header[1:].split("]", 1)[0]
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


class _Handler(BaseHTTPRequestHandler):
    """The routes (module docstring); quiet: the run's terminal is not the server's log."""

    server: _Server
    timeout = SOCKET_TIMEOUT
    server_version = "nst-jax"
    sys_version = ""

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        if self.server.loopback and not is_loopback(_host_of(self.headers.get("Host", ""))):
            self._send(HTTPStatus.FORBIDDEN, b"this page is served to this machine only\n", "text/plain")
            return
        path = urlsplit(self.path).path
        feed = self.server.feed
        if path in ("/", "/index.html"):
            self._send(HTTPStatus.OK, page(), "text/html; charset=utf-8")
        elif path == "/events":
            self._stream(feed)
        elif path == f"/{FRAME}.png" or (path.startswith("/extra/") and path.endswith(".png")
                                         and feed.has_extra(path[len("/extra/"):-len(".png")])):
            png = feed.png(FRAME if path == f"/{FRAME}.png" else path[len("/extra/"):-len(".png")])
            if png is None:
                self._send(HTTPStatus.SERVICE_UNAVAILABLE, b"no picture yet\n", "text/plain", retry=True)
            else:
                self._send(HTTPStatus.OK, png, "image/png")
        else:
            self._send(HTTPStatus.NOT_FOUND, b"not found\n", "text/plain")

    def _send(self, status: HTTPStatus, body: bytes, kind: str, *, retry: bool = False) -> None:
        """A whole response, never cached."""
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        if retry:
            self.send_header("Retry-After", "1")
        self.end_headers()
        self.wfile.write(body)

    def _stream(self, feed: Feed) -> None:
        """The event stream of one viewer, until ``done``, the server's end, or the viewer leaving."""
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        events = feed.events()
        try:
            for event in events:
                if event is None:
                    self.wfile.write(b": keep-alive\n\n")
                    continue
                name, message = event
                data = json.dumps(message, separators=(",", ":"), allow_nan=False)
                self.wfile.write(f"event: {name}\ndata: {data}\n\n".encode())
        except OSError:  # the viewer left (closed tab, lost network): its thread ends, the run goes on
            pass
        finally:
            events.close()

    def log_message(self, format: str, *args: Any) -> None:
        """No access log."""


class _Server(ThreadingHTTPServer):
    """``ThreadingHTTPServer`` with daemon request threads, holding the feed; no reverse DNS look-up of its host."""

    daemon_threads = True
    feed: Feed
    loopback: bool

    def server_bind(self) -> None:
        socketserver.TCPServer.server_bind(self)  # HTTPServer's would call socket.getfqdn (a DNS query)
        self.server_name, self.server_port = str(self.server_address[0]), int(self.server_address[1])

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A viewer's broken connection is not the run's business: no traceback on the terminal."""


class _Server6(_Server):
    address_family = socket.AF_INET6


class LiveServer:
    """The live view's server for ``feed`` on ``host``:``port`` (0: a free port): bound and listening when made
    (``OSError`` if the port is taken, before anything slow), serving from ``start`` in a daemon thread until
    ``close``. A context manager (``start`` ... ``close``)."""

    def __init__(self, feed: Feed, host: str = DEFAULT_HOST, port: int = 0) -> None:
        server_class = _Server6 if ":" in host else _Server
        self._httpd = server_class((host, port), _Handler)
        self._httpd.feed = feed
        self._httpd.loopback = is_loopback(host)
        self.feed = feed
        self.host = host
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The port listened on (the one picked, for port 0)."""
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        """The page's address; for a wildcard host (0.0.0.0, ::) this machine's name."""
        host = self.host
        if host in ("", "0.0.0.0", "::"):
            host = socket.gethostname()
        return f"http://[{host}]:{self.port}/" if ":" in host else f"http://{host}:{self.port}/"

    def start(self) -> "LiveServer":
        """Serve in a daemon thread."""
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="nst-jax live view", daemon=True)
        self._thread.start()
        return self

    def close(self, linger: float = LINGER) -> None:
        """Stop listening: first (if the feed is finished) up to ``linger`` s for the viewers to get ``done``; then
        every open event stream ends."""
        if self.feed.finished and self.feed.watched:
            self.feed.wait_for_viewers(linger)
            time.sleep(GRACE)
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join()
        self._httpd.server_close()
        self.feed.close()

    def __enter__(self) -> "LiveServer":
        return self.start()

    def __exit__(self, *exc_info: Any) -> None:
        self.close()
