"""Watching a run in the browser (``--serve PORT``): a web page with the current image, its progress, speed, loss
curve and settings, served by Python's standard library while the run goes on.

``Feed`` (the state the run and the viewers share) and ``LiveServer`` are in ``nst_jax.live.server``, the messages
the page reads in ``nst_jax.live.message``, ``Publisher`` (what a command calls from its progress callback) in
``nst_jax.live.publisher``; the page itself is ``page.html`` (package data).
"""

from nst_jax.live.message import config_rows
from nst_jax.live.publisher import Extra, Publisher, tiles
from nst_jax.live.server import DEFAULT_HOST, Feed, LiveServer

__all__ = ["DEFAULT_HOST", "Extra", "Feed", "LiveServer", "Publisher", "config_rows", "tiles"]
