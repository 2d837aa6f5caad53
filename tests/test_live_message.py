"""The live page's messages (nst_jax.live.message): speed, time left, loss terms of one image or a batch, the
settings rows; pure functions, no socket."""

from __future__ import annotations

import json

import numpy as np
import pytest

from nst_jax import StyleConfig
from nst_jax.live.message import (
    config_rows,
    done_message,
    ordered_terms,
    progress_message,
    rate,
    remaining,
    term_values,
)


class TestRate:
    def test_needs_two_samples(self):
        assert rate([]) is None and rate([(1, 5.0)]) is None

    def test_the_first_chunk_compiling_does_not_count(self):
        # chunk 1 (1 step) took 5 s to compile; then 10 steps per second
        samples = [(1, 5.0), (11, 6.0), (21, 7.0)]
        assert rate(samples) == pytest.approx(10.0)

    def test_only_the_recent_window_counts(self):
        # 1 it/s for 100 s, then 10 it/s for the last 20 s: a 10 s window sees only the new speed
        samples = [(i, float(i)) for i in range(0, 101, 10)] + [(100 + 10 * k, 100.0 + k) for k in range(1, 21)]
        assert rate(samples, window=10.0) == pytest.approx(10.0)
        assert rate(samples, window=1000.0) == pytest.approx(300 / 120)

    def test_a_window_shorter_than_a_chunk_uses_the_last_two_samples(self):
        assert rate([(0, 0.0), (20, 100.0), (40, 200.0)], window=1.0) == pytest.approx(0.2)

    def test_no_progress_or_time_is_unknown(self):
        assert rate([(5, 1.0), (5, 2.0)]) is None and rate([(5, 1.0), (9, 1.0)]) is None


def test_remaining():
    assert remaining(40, 100, 3.0) == pytest.approx(20.0)
    assert remaining(120, 100, 3.0) == 0.0  # a total that grew past the estimate: nothing left, not negative
    assert remaining(40, 100, None) is None and remaining(40, 100, 0.0) is None


class TestTermValues:
    def test_one_image(self):
        values, spread = term_values({"total": np.float32(3.5), "content": 1.0, "style": float("nan"), "tv": 0.0})
        assert values == {"total": 3.5, "content": 1.0, "style": None, "tv": 0.0} and spread is None

    def test_a_batch_gives_the_geometric_mean_and_range_of_its_finite_members(self):
        terms = {"total": np.array([1.0, 100.0, np.inf, 7.0]), "style": np.array([2.0, 8.0, 5.0, 0.0])}
        values, spread = term_values(terms, members=3)  # the 4th member is padding
        assert values["total"] == pytest.approx(10.0)  # sqrt(1 * 100): inf dropped
        assert spread["total"] == [1.0, 100.0]
        assert values["style"] == pytest.approx(80.0 ** (1 / 3))  # the padding 0.0 dropped
        assert spread["style"] == [2.0, 8.0]

    def test_a_batch_with_no_finite_member(self):
        values, spread = term_values({"total": np.array([np.nan, np.nan])})
        assert values == {"total": None} and spread == {}

    def test_a_batch_of_zeros_is_zero_not_missing(self):
        values, _ = term_values({"tv": np.zeros(3)})
        assert values == {"tv": 0.0}

    def test_order_is_total_content_style_tv_temporal_then_others(self):
        assert ordered_terms(["extra", "tv", "temporal", "total", "style"]) == ["total", "style", "tv", "temporal",
                                                                                 "extra"]


def test_progress_message_is_json_and_never_claims_fewer_iterations_than_done():
    message = progress_message(done=30, total=20, elapsed=2.0, speed=5.0, terms={"total": 1.0}, stage="frame 2 of 3")
    assert json.loads(json.dumps(message, allow_nan=False)) == message
    assert message["iterations"] == 30 and message["remaining"] == 0.0 and message["status"] == "running"
    assert progress_message(done=0, total=9, elapsed=0.0, speed=None, terms={}, starting=True)["status"] == "starting"


def test_done_message_knows_its_statuses():
    message = done_message(status="interrupted", note="saved out.png", done=3, total=10, elapsed=1.5)
    assert message["status"] == "interrupted" and message["image"] is None and message["iterations"] == 10
    with pytest.raises(ValueError, match="status must be one of"):
        done_message(status="ok", note="", done=0, total=0, elapsed=0.0)


def test_config_rows_list_the_inputs_first_then_every_field():
    rows = config_rows(StyleConfig(style_layers=("relu1_1", "relu2_1"), tv_weight=1e-3), content="a.jpg", mask=None)
    assert rows[0] == ["content", "a.jpg"]
    assert ["style layers", "relu1_1,relu2_1"] in rows and ["tv weight", "0.001"] in rows
    assert ["style weight", "by the weights"] in rows  # unset: the network's convention decides
    assert not any(name == "mask" for name, _ in rows)
    assert len(rows) == 1 + len(StyleConfig().to_dict())
