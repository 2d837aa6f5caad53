"""``Publisher``: what a command calls from its progress callback to show its run on the live page.

Every form of the command line makes one for its whole run (``Publisher(feed, total=...)``), calls
``publisher.update(progress)`` after each chunk (from the callback that moves its progress bar) and
``publisher.finish(status, note, image)`` once at the end. ``update`` costs the run at most one device-to-host copy
of the image, and only while someone watches, once the previous picture has been sent and ``FRAME_INTERVAL`` has
passed (with several processes every chunk: the copy is then a collective every process makes); turning a batch
into a sheet of tiles and encoding the PNG happen when a viewer asks, on the server's thread.

Consecutive runs (a sweep in several parts, ``--batch``'s groups, ``reconstruct``'s layers one after the other,
a video's frames and passes) are counted as one: a progress whose iteration does not exceed the previous one starts
the next run, as the progress bar counts them.

For a video: one publisher for the whole video, ``total`` = frames x passes x iterations per frame; per chunk,
``update(progress, stage=f"frame {i} of {n}, pass {p} of {passes}", extras=[Extra("previous", "previous frame",
previous), Extra("occlusion", "occlusion mask", mask)], terms={"temporal": temporal})`` (``extras`` and ``terms``
only where they exist: an extra picture once given stays until replaced; a ``temporal`` field of ``progress.terms``
is shown as well); ``finish`` with the last frame.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from nst_jax.contact_sheet import contact_sheet
from nst_jax.live.message import Sample, done_message, progress_message, rate, term_values
from nst_jax.live.server import FRAME, Feed, Render
from nst_jax.mesh import gather
from nst_jax.optimize import Progress

FRAME_INTERVAL = 0.2
"""The fewest seconds between two pictures copied for the page (a GPU finishes a chunk every few milliseconds; five
pictures a second are plenty to watch, and each costs a copy off the device and an encoding)."""


@dataclasses.dataclass(frozen=True)
class Extra:
    """A further picture shown beside the current one, e.g. a video's previous frame or its occlusion mask."""

    name: str
    """Its key in the page's address (``/extra/NAME.png``): letters, digits, ``-`` and ``_``."""
    label: str
    """Its caption on the page."""
    image: np.ndarray
    """(H, W, 3) or (H, W) in [0, 1], on the host."""

    def __post_init__(self) -> None:
        if not self.name or not all(c.isascii() and (c.isalnum() or c in "-_") for c in self.name):
            raise ValueError(f"an extra picture's name must be letters, digits, '-' or '_', got {self.name!r}")


def tiles(labels: Sequence[str] | None = None, columns: int | None = None) -> Render:
    """A ``Render`` laying out a batch (N, H, W, 3) as a sheet of tiles with ``labels`` (padding members beyond them
    dropped; None: unlabelled, every member)."""

    def render(batch: np.ndarray) -> np.ndarray:
        images = list(batch if labels is None else batch[: len(labels)])
        captions = list(labels) if labels is not None else [""] * len(images)
        return contact_sheet(images, captions, columns=columns)

    return render


class Publisher:
    """Publishes a command's runs to ``feed`` (None: publishes nothing, e.g. without ``--serve`` or in a process
    other than the first of several; it still copies the image every chunk when ``collective``).

    ``total``: the command's iterations over all its runs. ``labels``: a batch's tiles, one per member (None for
    one image; a batch without labels is shown unlabelled); ``columns`` of the sheet. ``stages``: the text of each
    consecutive run (e.g. ``reconstruct``'s layers), shown while it runs. ``collective``: several processes, whose
    image copies are collectives (every process must make the same). ``start``: when the command started (by
    ``clock``; default: now). ``per_run``: a batch's members per consecutive run (a sweep split in parts: run k shows
    ``labels[k * per_run:(k + 1) * per_run]``); None: every run shows all ``labels``."""

    def __init__(
        self, feed: Feed | None, *, total: int, labels: Sequence[str] | None = None, columns: int | None = None,
        stages: Sequence[str] = (), collective: bool = False, start: float | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.feed = feed
        self.total = total
        self.labels = list(labels) if labels is not None else None
        self.columns = columns
        self.stages = list(stages)
        self.collective = collective
        self.per_run: int | None = None
        self._clock = clock
        self._start = clock() if start is None else start
        self._offset = 0
        self._last: Progress | None = None
        self._samples: list[Sample] = []
        self._run = 0
        self._copied = -FRAME_INTERVAL
        if feed is not None:
            members = len(self.labels) if self.labels else 1
            feed.publish(progress_message(done=0, total=total, elapsed=clock() - self._start, speed=None, terms={},
                                          members=members, starting=True))

    @property
    def done(self) -> int:
        """Iterations done over every run so far."""
        return self._offset + (self._last.iteration if self._last is not None else 0)

    def settings(self, title: str, rows: Sequence[Sequence[str]]) -> None:
        """The page's title and the run's settings (``message.config_rows``)."""
        if self.feed is not None:
            self.feed.set_settings(title, rows)

    def update(
        self, progress: Progress, *, image: np.ndarray | None = None, stage: str | None = None,
        extras: Sequence[Extra] = (), terms: Mapping[str, Any] | None = None,
    ) -> None:
        """After a chunk: count it, and (watched) publish its image (``image``: already copied to the host, e.g. for
        a snapshot, so not copied again), speed, loss terms (``progress.terms`` and any ``terms`` more, e.g.
        ``temporal``), ``stage`` (else the run's entry of ``stages``) and ``extras``."""
        if self._last is not None and progress.iteration <= self._last.iteration:  # the next run started
            self._offset += self._last.iterations
            self._run += 1
        self._last = progress
        done = self.done
        self.total = max(self.total, self._offset + progress.iterations)
        elapsed = self._clock() - self._start
        self._samples = [*self._samples[-63:], (done, elapsed)]
        wanted = self.feed is not None and self.feed.wants_frame and elapsed - self._copied >= FRAME_INTERVAL
        pixels = None
        if image is not None:
            pixels = np.asarray(image)
        elif self.collective or wanted:
            pixels = np.asarray(gather(progress.image))  # the one device-to-host copy of the chunk
        if self.feed is None:
            return
        if pixels is not None:
            self._copied = elapsed
        labels = self._run_labels()
        named = {**progress.terms._asdict(), **(terms or {})}
        values, spread = term_values(named, members=len(labels) if labels else None)
        members = len(labels) if labels else int(np.size(progress.terms.total))
        if stage is None and self._run < len(self.stages):
            stage = self.stages[self._run]
        pictures: dict[str, tuple[np.ndarray, Render | None, str]] = {
            extra.name: (np.asarray(extra.image), None, extra.label) for extra in extras
        }
        if pixels is not None:
            pictures[FRAME] = (pixels, tiles(labels, self.columns) if pixels.ndim == 4 else None, "")
        speed = rate(self._samples)
        self.feed.publish(
            progress_message(done=done, total=self.total, elapsed=elapsed, speed=speed, terms=values, spread=spread,
                             members=members, stage=stage),
            point=[done, values], pictures=pictures,
        )

    def _run_labels(self) -> list[str] | None:
        """The labels of the members of the run now going (``per_run``)."""
        if self.labels is None or self.per_run is None:
            return self.labels
        return self.labels[self._run * self.per_run:(self._run + 1) * self.per_run]

    def finish(self, status: str, note: str, image: np.ndarray | None = None) -> None:
        """The command ended (``message.STATUSES``): ``note`` says what it wrote; ``image`` is the final picture
        (a batch is tiled as ``update`` does; None: the last frame stays)."""
        if self.feed is None:
            return
        final = None
        if image is not None:
            pixels = np.asarray(image)
            final = (pixels, tiles(self.labels, self.columns) if pixels.ndim == 4 else None)
        elapsed = self._clock() - self._start
        self.feed.finish(done_message(status=status, note=note, done=self.done, total=self.total, elapsed=elapsed),
                         final=final)
