"""What the live page is told: pure helpers building its JSON messages (no socket, no thread).

A message is a JSON object sent as one Server-Sent Event (``nst_jax.live.server``):

``event: progress`` after each chunk of iterations (and once at the start, ``status`` ``starting``)::

    status      "starting" (loading, compiling) or "running"
    iteration   iterations done, counted over every run of the command (a sweep split in parts, ``--batch``'s
                groups, ``reconstruct``'s layers, a video's frames and passes)
    iterations  the command's total (it may grow when a run adds parts it did not know of)
    elapsed     seconds since the command started
    rate        iterations per second over the last ``RATE_WINDOW`` seconds (null until two chunks finished)
    remaining   seconds left at that rate (null while unknown)
    stage       what runs now, as text ("frame 3 of 20, pass 2 of 2", "relu3_1"), or null
    members     images optimized together (1, or a batch's size)
    terms       the latest loss terms by name (total, content, style, tv, and any others, e.g. temporal): a
                number, or for a batch the geometric mean over its finite members; null where not finite
    spread      for a batch, each term's [min, max] over its finite members; else null
    frame       the version of the current picture (GET /frame.png?v=N), null while there is none
    extras      further pictures ([{"name", "label", "version"}], GET /extra/NAME.png?v=N), e.g. a video's
                previous frame and occlusion mask

The server adds, per viewer, ``points`` (the curve's points the viewer does not have yet: ``[iteration, {term:
value}]``, one per chunk), ``reset`` (true in its first message, whose ``points`` are the whole curve so far) and,
in its first message and whenever they change, ``title`` and ``settings`` (``[[name, value], ...]``).

``event: done`` once, when the command ends: ``status`` (``completed``, ``interrupted``, ``non-finite``,
``failed``), ``note`` (one line: what was written), ``iteration``, ``iterations``, ``elapsed``, and ``image``, the
final picture as a ``data:image/png`` URL (the server stops right after, so the page keeps it).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from nst_jax.config import StyleConfig

RATE_WINDOW = 30.0
"""Seconds of recent chunks the speed is measured over (a chunk shortened for progress lasts ~2 s)."""
TERM_ORDER: tuple[str, ...] = ("total", "content", "style", "tv", "temporal")
"""The loss terms in the order the page lists and colours them (other names follow, in their order)."""

Sample = tuple[int, float]
"""(iterations done, seconds since the start) after a chunk."""


def rate(samples: Sequence[Sample], window: float = RATE_WINDOW) -> float | None:
    """Iterations per second between the oldest sample in the last ``window`` seconds and the newest; None with fewer
    than two. The first sample (the first chunk, which also compiled) only ever starts the span, so compiling does
    not count."""
    if len(samples) < 2:
        return None
    newest_count, newest_time = samples[-1]
    recent = [sample for sample in samples[:-1] if newest_time - sample[1] <= window] or [samples[-2]]
    count, time = recent[0]
    if newest_time <= time or newest_count <= count:
        return None
    return (newest_count - count) / (newest_time - time)


def remaining(done: int, total: int, speed: float | None) -> float | None:
    """Seconds until ``total`` iterations at ``speed`` per second (None if unknown)."""
    if speed is None or speed <= 0:
        return None
    return max(total - done, 0) / speed


def _finite(value: float) -> float | None:
    """A float for JSON: NaN and infinities become null."""
    return float(value) if math.isfinite(value) else None


def term_values(terms: Mapping[str, Any], members: int | None = None) -> tuple[dict[str, float | None],
                                                                                 dict[str, list[float]] | None]:
    """Loss terms for the page: each a float (null if not finite), and for a batch (arrays; the first ``members``
    entries, padding dropped) the geometric mean of the finite positive values (a log-scale curve's middle) with
    each term's [min, max] over its finite values; the spread is None for one image."""
    values: dict[str, float | None] = {}
    spread: dict[str, list[float]] = {}
    batched = False
    for name in ordered_terms(terms):
        array = np.asarray(terms[name], np.float64).reshape(-1)
        if np.ndim(terms[name]) == 0:
            values[name] = _finite(float(array[0]))
            continue
        batched = True
        array = array[:members] if members is not None else array
        finite = array[np.isfinite(array)]
        positive = finite[finite > 0]
        values[name] = float(np.exp(np.mean(np.log(positive)))) if positive.size else (
            0.0 if finite.size else None)
        if finite.size:
            spread[name] = [float(finite.min()), float(finite.max())]
    return values, spread if batched else None


def ordered_terms(names: Iterable[str]) -> list[str]:
    """Term names in ``TERM_ORDER``, then the others in their given order."""
    names = list(names)
    return [name for name in TERM_ORDER if name in names] + [name for name in names if name not in TERM_ORDER]


def progress_message(
    *, done: int, total: int, elapsed: float, speed: float | None, terms: Mapping[str, float | None],
    spread: Mapping[str, list[float]] | None = None, members: int = 1, stage: str | None = None,
    frame: int | None = None, extras: Sequence[Mapping[str, Any]] = (), starting: bool = False,
) -> dict[str, Any]:
    """An ``event: progress`` message (fields in the module's docstring)."""
    return {
        "status": "starting" if starting else "running",
        "iteration": done,
        "iterations": max(total, done),
        "elapsed": elapsed,
        "rate": speed,
        "remaining": remaining(done, total, speed),
        "stage": stage,
        "members": members,
        "terms": dict(terms),
        "spread": dict(spread) if spread is not None else None,
        "frame": frame,
        "extras": list(extras),
    }


STATUSES: tuple[str, ...] = ("completed", "interrupted", "non-finite", "failed")
"""How a command can end, as the page shows it."""


def done_message(
    *, status: str, note: str, done: int, total: int, elapsed: float, image: str | None = None
) -> dict[str, Any]:
    """The ``event: done`` message: how the command ended, what it wrote, and its final picture (a data URL)."""
    if status not in STATUSES:
        raise ValueError(f"status must be one of {', '.join(STATUSES)}, got {status!r}")
    return {"status": status, "note": note, "iteration": done, "iterations": max(total, done), "elapsed": elapsed,
            "image": image}


def _show(value: Any) -> str:
    """A setting as the command line writes it."""
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value))
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def config_rows(config: StyleConfig, **more: Any) -> list[list[str]]:
    """The settings the page lists: ``more`` first (inputs, network, device; None values dropped), then every
    ``StyleConfig`` field (an unset loss weight: ``by the weights``, their convention's default)."""
    rows = [[name.replace("_", " "), _show(value)] for name, value in more.items() if value is not None]
    rows += [[name.replace("_", " "), "by the weights" if value is None and name.endswith("_weight") else _show(value)]
             for name, value in config.to_dict().items()]
    return rows
