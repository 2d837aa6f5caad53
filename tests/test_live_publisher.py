"""Publisher (nst_jax.live.publisher): what a command's progress callback publishes to the live page, counted over
consecutive runs, and how often the image leaves the device."""

from __future__ import annotations

import itertools

import jax.numpy as jnp
import numpy as np
import pytest

from nst_jax.contact_sheet import contact_sheet
from nst_jax.live import publisher as publisher_module
from nst_jax.live.publisher import Extra, Publisher
from nst_jax.live.server import FINAL, FRAME, Feed, encode_png
from nst_jax.losses import LossTerms
from nst_jax.optimize import Progress


def _progress(iteration: int, iterations: int, image, total=1.0) -> Progress:
    terms = LossTerms(total=total, content=np.float32(0.5), style=np.float32(0.25), tv=np.float32(0.0))
    return Progress(iteration, iterations, terms, image, 0.0)


def _latest(feed: Feed) -> dict:
    """The message a viewer arriving now gets."""
    events = feed.events()
    try:
        return next(events)[1]
    finally:
        events.close()


@pytest.fixture
def copies(monkeypatch: pytest.MonkeyPatch) -> list:
    """Every device-to-host copy the publisher makes."""
    made = []
    real = publisher_module.gather

    def counted(array):
        made.append(np.shape(array))
        return real(array)

    monkeypatch.setattr(publisher_module, "gather", counted)
    return made


def test_consecutive_runs_count_as_one_and_the_total_grows(copies):
    feed = Feed()
    clock = itertools.count().__next__  # a second per call: the first message at 0 s, then one per update
    publisher = Publisher(feed, total=8, stages=["relu1_1", "relu2_1", "relu3_1"], start=0.0, clock=clock)
    image = jnp.zeros((4, 4, 3))
    for iteration in (1, 2, 4, 2, 4, 4):  # run 1: 1..4, run 2: 2, 4; run 3 restarts at 4
        publisher.update(_progress(iteration, 4, image))
    message = _latest(feed)
    assert message["iteration"] == publisher.done == 12 and message["iterations"] == 12  # a third run: 8 -> 12
    assert message["stage"] == "relu3_1" and message["elapsed"] == 6.0
    assert message["rate"] == pytest.approx((12 - 1) / (6 - 1))  # from the first chunk's end: compiling excluded
    assert [point[0] for point in message["points"]] == [1, 2, 4, 6, 8, 12]
    assert copies == []  # nobody watched: the image never left the device


def test_watched_one_copy_per_chunk_and_none_when_the_snapshot_made_it(copies):
    feed = Feed()
    publisher = Publisher(feed, total=4, clock=itertools.count().__next__)
    viewer = feed.events()
    assert next(viewer)[1]["frame"] is None
    image = jnp.full((3, 5, 3), 0.5)
    publisher.update(_progress(1, 4, image))
    assert copies == [(3, 5, 3)]
    publisher.update(_progress(2, 4, image), image=np.asarray(image))  # copied already (a snapshot)
    assert copies == [(3, 5, 3)]
    message = next(viewer)[1]
    assert message["frame"] is not None and message["terms"] == {"total": 1.0, "content": 0.5, "style": 0.25,
                                                                  "tv": 0.0}
    assert feed.png(FRAME) == encode_png(np.full((3, 5, 3), 0.5))
    viewer.close()


def test_no_copy_until_the_last_picture_was_seen_nor_within_the_frame_interval(copies):
    feed = Feed()
    seconds = iter([0.0, 0.0, 0.1, 0.15, 0.25, 0.35, 0.5])  # the start, the first message, then one per update
    publisher = Publisher(feed, total=9, clock=lambda: next(seconds))
    viewer = feed.events()
    next(viewer)
    image = jnp.zeros((2, 2, 3))
    publisher.update(_progress(1, 9, image))  # 0.1 s: the first picture
    publisher.update(_progress(2, 9, image))  # 0.15 s: not seen yet
    assert len(copies) == 1
    feed.png(FRAME)  # a viewer fetched it
    publisher.update(_progress(3, 9, image))  # 0.25 s: seen, but only 0.15 s after the last
    publisher.update(_progress(4, 9, image))  # 0.35 s: 0.25 s after it
    assert len(copies) == 2
    publisher.update(_progress(5, 9, image))  # 0.5 s: that one is not seen yet
    assert len(copies) == 2
    viewer.close()


def test_several_processes_copy_every_chunk_watched_or_not_even_without_a_page(copies):
    for feed in (Feed(), None):
        Publisher(feed, total=2, collective=True).update(_progress(1, 2, jnp.zeros((2, 2, 3))))
    assert len(copies) == 2


def test_a_split_batch_shows_each_parts_members_with_their_labels():
    feed = Feed()
    viewer = feed.events()
    next(viewer)
    publisher = Publisher(feed, total=4, labels=["a", "b", "c", "d"], columns=2, clock=itertools.count().__next__)
    publisher.per_run = 2
    rng = np.random.default_rng(0)
    first, second = rng.random((2, 6, 8, 3)), rng.random((3, 6, 8, 3))  # the second part padded to 3 members
    publisher.update(_progress(2, 2, first, total=np.array([1.0, 4.0])))
    assert feed.png(FRAME) == encode_png(contact_sheet(list(first), ["a", "b"], columns=2))
    publisher.update(_progress(2, 2, second, total=np.array([2.0, 8.0, 1e9])))
    assert feed.png(FRAME) == encode_png(contact_sheet(list(second[:2]), ["c", "d"], columns=2))
    message = _latest(feed)
    assert message["members"] == 2 and message["terms"]["total"] == pytest.approx(4.0)  # padding dropped
    assert message["spread"]["total"] == [2.0, 8.0] and message["iteration"] == 4
    publisher.finish("completed", "wrote 4", np.concatenate([first, second[:2]]))
    assert feed.png(FINAL) == encode_png(contact_sheet(list(first) + list(second[:2]), list("abcd"), columns=2))
    viewer.close()


def test_video_fields_stage_extras_and_a_temporal_term():
    feed = Feed()
    viewer = feed.events()
    next(viewer)
    publisher = Publisher(feed, total=6)
    mask = np.eye(4)
    publisher.update(_progress(3, 3, jnp.zeros((4, 4, 3))), stage="frame 1 of 2, pass 1 of 1",
                     extras=[Extra("occlusion", "occlusion mask", mask)], terms={"temporal": np.float32(2.0)})
    publisher.update(_progress(3, 3, jnp.zeros((4, 4, 3))), stage="frame 2 of 2, pass 1 of 1",
                     terms={"temporal": np.float32(1.0)})
    message = _latest(feed)
    assert message["stage"] == "frame 2 of 2, pass 1 of 1" and message["terms"]["temporal"] == 1.0
    assert [extra["name"] for extra in message["extras"]] == ["occlusion"]  # stays until replaced
    assert feed.png("occlusion") == encode_png(mask)
    viewer.close()
    with pytest.raises(ValueError, match="name"):
        Extra("../x", "bad", mask)


def test_finish_reports_the_ending_and_later_updates_are_ignored():
    feed = Feed()
    publisher = Publisher(feed, total=4)
    publisher.update(_progress(2, 4, jnp.zeros((2, 2, 3))))
    publisher.finish("interrupted", "saved out.png")
    publisher.update(_progress(3, 4, jnp.zeros((2, 2, 3))))
    name, message = next(feed.events())
    assert name == "done" and message["status"] == "interrupted" and message["iteration"] == 2
    assert message["image"] is None  # nobody watched: there is no picture to show


def test_without_a_feed_nothing_is_published():
    publisher = Publisher(None, total=2)
    publisher.update(_progress(1, 2, jnp.zeros((2, 2, 3))))
    publisher.finish("completed", "")
    assert publisher.done == 1
