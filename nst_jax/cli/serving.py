"""Watching a command in the browser (``--serve PORT``, ``--serve-host HOST``; ``nst_jax.live``).

``LiveView`` is one command's live view: entered before anything slow, it binds the server (a port in use or a
host that cannot be listened on is a one-line error, exit 2), starts it, prints its address once; the form then
makes its ``publisher`` once it knows its runs, calls ``publisher.update`` from its progress callback after every
chunk, and ``finish`` with its exit code once its files are written; leaving the block tells the page how the
command ended (if ``finish`` did not: interrupted or failed) and stops the server. Without ``--serve`` (or in a
process other than the first of several) it serves nothing and its publisher publishes nothing.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from nst_jax.cli import distributed
from nst_jax.cli.exits import EXIT_INTERRUPTED, EXIT_OK, EXIT_TERMINATED, PROG, UsageError
from nst_jax.config import StyleConfig
from nst_jax.live import DEFAULT_HOST, Feed, LiveServer, Publisher, config_rows
from nst_jax.live.message import STATUSES
from nst_jax.problem import configure_for
from nst_jax.weights import VGGWeights


def _port(text: str) -> int:
    """A TCP port, 0 to 65535."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port number from 0 to 65535, got {text!r}")
    return value


def _host(text: str) -> str:
    """A host name or address to listen on: not empty (an empty host would listen on every interface)."""
    if not text.strip() or any(character.isspace() or character == "/" for character in text):
        raise argparse.ArgumentTypeError(f"expected a host name or address such as 127.0.0.1, got {text!r}")
    return text


def check_options(args: argparse.Namespace) -> None:
    """``UsageError`` for live-view options that would be ignored: ``--serve-host`` without ``--serve``."""
    if getattr(args, "serve", None) is None and getattr(args, "serve_host", DEFAULT_HOST) != DEFAULT_HOST:
        raise UsageError("--serve-host applies only with --serve PORT")


def add_options(parser: argparse.ArgumentParser) -> None:
    """The "live view" option group."""
    group = parser.add_argument_group("live view")
    group.add_argument(
        "--serve", type=_port, default=None, metavar="PORT",
        help="watch the run in a web browser: serve a page on PORT (0: a free port; the address is printed) with "
        "the current image, iterations, speed, time left, the loss curve and the settings (default: off)",
    )
    group.add_argument(
        "--serve-host", type=_host, default=DEFAULT_HOST, metavar="HOST",
        help=f"address --serve listens on (default: {DEFAULT_HOST}, this machine only; 0.0.0.0 shows the page, "
        "and your images, to every machine that can reach this one)",
    )


def status_of(code: int, *, non_finite: bool = False) -> str:
    """How the page reports an exit code: 0 completed, 130 and 143 interrupted, else non-finite (a loss became
    NaN/inf) or failed."""
    if code == EXIT_OK:
        return STATUSES[0]
    if code in (EXIT_INTERRUPTED, EXIT_TERMINATED):
        return "interrupted"
    return "non-finite" if non_finite else "failed"


def title(content: Any, styles: Sequence[Any]) -> str:
    """The page's title: ``content.jpg in the style of a.jpg and b.jpg``."""
    names = [getattr(style, "name", str(style)) for style in styles]
    styles_text = ", ".join(names[:-1]) + f" and {names[-1]}" if len(names) > 1 else names[0]
    return f"{getattr(content, 'name', str(content))} in the style of {styles_text}"


class LiveView:
    """The live view of one command (see the module's docstring): a context manager."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.port: int | None = getattr(args, "serve", None)
        self.host: str = getattr(args, "serve_host", DEFAULT_HOST)
        self.server: LiveServer | None = None
        self.started = time.perf_counter()
        self._publisher: Publisher | None = None

    @property
    def serving(self) -> bool:
        """Whether this process serves a page."""
        return self.server is not None

    def __enter__(self) -> "LiveView":
        if self.port is None or not distributed.writes():
            return self
        try:
            self.server = LiveServer(Feed(), self.host, self.port)
        except OSError as error:  # in use, not an address of this machine, no such host name
            reason = error.strerror or str(error)
            hint = "; choose another port, or 0 for a free one" if self.port else ""
            raise UsageError(f"--serve {self.port}: cannot listen on {self.host} port {self.port}: {reason}{hint}") \
                from None
        self.server.start()
        print(f"{PROG}: watch the run at {self.server.url}", file=sys.stderr)
        self._publisher = Publisher(self.server.feed, total=0, start=self.started)
        return self

    def publisher(
        self, *, total: int, config: StyleConfig, vgg: VGGWeights, title: str = PROG,
        labels: Sequence[str] | None = None, columns: int | None = None, stages: Sequence[str] = (), **settings: Any,
    ) -> Publisher:
        """The publisher of the command's runs (``Publisher``: ``total`` iterations, batch ``labels``...), telling
        the page the ``title`` and the settings: ``settings`` (e.g. the input files), the network ``vgg``, then
        ``config``'s fields (its loss weights resolved for ``vgg``)."""
        feed = self.server.feed if self.server is not None else None
        self._publisher = Publisher(feed, total=total, labels=labels, columns=columns, stages=stages,
                                    collective=self.port is not None and distributed.active(), start=self.started)
        network = f"{vgg.info.description} ({vgg.info.path})"
        self._publisher.settings(title, config_rows(configure_for(config, vgg), **settings, network=network))
        return self._publisher

    def finish(self, code: int, note: str, image: np.ndarray | None = None, *, non_finite: bool = False) -> None:
        """Tell the page how the command ended (its exit ``code``; ``non_finite``: a loss became NaN/inf), what it
        wrote (``note``) and its final picture (``image``; a batch is tiled; None: the last one stays)."""
        if self._publisher is not None:
            self._publisher.finish(status_of(code, non_finite=non_finite), note, image)

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, trace: Any) -> None:
        if self.server is None:
            return
        try:
            if kind is not None and self._publisher is not None:
                if issubclass(kind, KeyboardInterrupt):
                    self._publisher.finish("interrupted", "interrupted; see the terminal for what was saved")
                else:
                    note = str(error) if isinstance(error, UsageError) else "stopped by an error; see the terminal"
                    self._publisher.finish("failed", note)
        finally:
            self.server.close()
