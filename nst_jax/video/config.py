"""``VideoConfig``: the options of a video run on top of ``StyleConfig``'s (flow, temporal term, schedule), each with
its default and help once, in its field's metadata (the ``video`` command generates its options from them)."""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable
from typing import Any

from nst_jax.config import ConfigError, _in_float32, _integer, field, option, render_fields
from nst_jax.video.flow import DEFAULT_FLOW, FLOW_METHODS
from nst_jax.video.schedule import MULTI_PASS, SCHEDULES

FRAME_INITS: tuple[str, ...] = ("prev-warped", "prev", "content", "first")

RUDER_TEMPORAL_WEIGHT = 1e3
"""Ruder et al.'s single-pass gamma (``-temporal_weight``), with their content 5 and style 100 per layer on the
Caffe VGG19, on their Lua code's preprocessed image (jcjohnson's: pixels times 256, where Caffe itself takes 255)."""
# gamma on our [0, 1] images: Ruder's times 256^2 for Caffe weights, whose content and style weights are his
# (measured with Keras' Caffe VGG16 at 64 px, 4 frames of a pan, judged by torchvision's VGG16: the warp error 150x
# lower than independent frames', and the Gram distance to the style 17 % lower). torchvision's content term is about
# 3e-5 of the Caffe one's (alpha 1 vs 5, features ~60x smaller: 2.3e-5 to 3.8e-5 measured on the trained VGG16s for
# a shift, noise and another image), so the same balance against the content term would be ~2e3; but measured on 12
# frames of a pan at 64 px (torchvision's VGG16 stylizing, the Caffe VGG16 judging; benchmarks/RESULTS.md), each
# frame's distance to the style grows with gamma while the warp error is already 1/150 of independent frames' at
# 1e2: gamma 0 (the warped start alone) warp error 3.2e-3 and +6.5 % distance, 1e2 3.7e-4 and +7 %, 2e2 2.9e-4 and
# +10 %, 5e2 2.1e-4 and +15 % (independent frames 5.7e-2). So 1e2: stable, the style kept within 10 %. A
# mean-normalized network's activations are of torchvision's order (its alpha is 1 too): the same (not measured: no
# such network here).
DEFAULT_TEMPORAL_WEIGHTS: dict[str, float] = {
    "torchvision": 1e2,
    "caffe": RUDER_TEMPORAL_WEIGHT * 256**2,
    "mean-normalized": 1e2,
}
MULTI_PASS_FACTOR = 0.5
"""The multi-pass default gamma is half the single pass's (Ruder et al.: 5e2 against 1e3)."""


class VideoConfigError(ConfigError):
    """A bad ``VideoConfig`` value; its message may name fields of ``VideoConfig`` and of ``StyleConfig``."""

    def render(self, name: Callable[[str], str]) -> str:
        """The message with each ``{field}`` of either config written as ``name(field)``."""
        return render_video_fields(self.template, name)


def render_video_fields(text: str, name: Callable[[str], str]) -> str:
    """``text`` with each ``{field}`` of ``VideoConfig`` or ``StyleConfig`` written as ``name(field)``."""
    text = re.sub(r"\{(\w+)\}", lambda m: name(m.group(1)) if m.group(1) in _VIDEO_FIELDS else m.group(0), text)
    return render_fields(text, name)


@dataclasses.dataclass(frozen=True)
class VideoConfig:
    """How a clip is stylized frame to frame (Ruder, Dosovitskiy & Brox 2016); the style of each frame is
    ``StyleConfig``'s."""

    flow: str = option(DEFAULT_FLOW, "optical flow: " + "; ".join(f"{name}: {method.help}"
                                                                  for name, method in FLOW_METHODS.items()),
                       choices=tuple(FLOW_METHODS))
    temporal_weight: float | None = option(
        None, "weight gamma of the temporal term, which ties each frame to the earlier results warped onto it where "
        "the flow is reliable; 0: frames independent (but for {frame_init})", metavar="W",
        default_text="by the weights: Ruder et al.'s 1e3 on their Lua code's x256 pixels, i.e. 6.55e7 for Caffe "
        "weights, 1e2 for torchvision's (measured); half that in multi-pass schedules",
    )
    long_term: tuple[int, ...] = option(
        (1,), "distances to the earlier frames each frame is tied to (1,2,4: frames i-1, i-2 and i-4; each pixel to "
        "the closest where it is visible); single schedule only", metavar="J,J...",
    )
    frame_init: str = option(
        FRAME_INITS[0], "where every frame after the first starts: prev-warped (the previous result warped by the "
        "flow), prev (as it is), content, or first (as the first frame: {init})", choices=FRAME_INITS,
    )
    schedule: str = option(
        SCHEDULES[0], "single (one pass, frame by frame), sweep (Ruder et al.'s multi-pass: passes alternately "
        "forwards and backwards, one frame at a time), jacobi (every frame of a pass in one batch, each reading its "
        "neighbour's previous pass), red-black (even frames, then odd ones, per pass)", choices=SCHEDULES,
    )
    frame_iterations: int | None = option(
        None, "single schedule: iterations of every frame after the first (the first takes {iterations})",
        metavar="N", default_text="half of {iterations}, as Ruder et al.'s 2000 and 1000",
    )
    stop_tolerance: float = option(
        1e-4, "single schedule: a frame stops once its loss changed by less than this fraction over "
        "{stop_interval} iterations (0: never early)", metavar="T",
    )
    stop_interval: int = option(50, "iterations between the loss comparisons of {stop_tolerance}", metavar="N")
    passes: int = option(15, "multi-pass schedules: passes over the clip", metavar="N")
    pass_iterations: int = option(100, "multi-pass schedules: iterations per frame and pass", metavar="N")
    temporal_from_pass: int = option(8, "multi-pass schedules: the first pass with the temporal term", metavar="P")
    batch_frames: bool = option(
        True, "jacobi and red-black schedules: the frames of a step as one batch, spread over the devices (off: one "
        "at a time, the same results in less memory)", command_line=False,
    )
    blend_weight: float = option(
        1.0, "multi-pass schedules: weight of the warped neighbour in each frame's start, (x + b c w) / (1 + b c)",
        metavar="B",
    )

    def __post_init__(self) -> None:
        set_ = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731 (frozen dataclass)
        for name, choices in (("flow", tuple(FLOW_METHODS)), ("frame_init", FRAME_INITS), ("schedule", SCHEDULES)):
            value = getattr(self, name)
            if value not in choices:
                raise VideoConfigError(f"{field(name)} must be one of {', '.join(choices)}; got {value!r}")
        for name in ("stop_interval", "passes", "pass_iterations", "temporal_from_pass"):
            value = getattr(self, name)
            if not _integer(value) or value <= 0:
                raise VideoConfigError(f"{field(name)} must be a positive integer, got {value!r}")
            set_(name, int(value))
        if self.frame_iterations is not None:
            if not _integer(self.frame_iterations) or self.frame_iterations <= 0:
                raise VideoConfigError(f"{field('frame_iterations')} must be a positive integer, "
                                  f"got {self.frame_iterations!r}")
            set_("frame_iterations", int(self.frame_iterations))
        for name in ("temporal_weight", "stop_tolerance", "blend_weight"):
            value = getattr(self, name)
            if value is None and name == "temporal_weight":
                continue
            if not _in_float32(value) or value < 0:
                raise VideoConfigError(f"{field(name)} must be a non-negative number (float32), got {value!r}")
            set_(name, float(value))
        long_term = self.long_term
        if isinstance(long_term, (str, bytes)) or not hasattr(long_term, "__iter__"):
            raise VideoConfigError(f"{field('long_term')} must be a sequence of frame distances such as (1, 2, 4), "
                              f"got {long_term!r}")
        long_term = tuple(long_term)
        if not long_term or any(not _integer(j) or j < 1 for j in long_term) or len(set(long_term)) != len(long_term):
            raise VideoConfigError(f"{field('long_term')} must be distinct positive integers such as 1,2,4, got "
                              f"{list(long_term)}")
        set_("long_term", tuple(sorted(int(j) for j in long_term)))
        if self.schedule != "single" and self.long_term != (1,):
            raise VideoConfigError(f"{field('long_term')} is for the single {field('schedule')}: a multi-pass schedule "
                              "ties each frame to its neighbour only")

    @property
    def multi_pass(self) -> bool:
        """Whether the schedule makes several passes."""
        return self.schedule in MULTI_PASS

    def resolved_temporal_weight(self, convention: str, form: str) -> float:
        """gamma: the given one, else the default for weights of ``convention`` (``ConfigError`` for the paper loss
        form, which has no published value and grows with the image's size)."""
        if self.temporal_weight is not None:
            return self.temporal_weight
        if form != "normalized":
            raise VideoConfigError(f"{{loss_form}} {form} has no default {field('temporal_weight')} (its content term "
                              "grows with the image size): give one")
        weight = DEFAULT_TEMPORAL_WEIGHTS[convention]
        return weight * MULTI_PASS_FACTOR if self.multi_pass else weight

    def later_iterations(self, iterations: int) -> int:
        """Iterations of every frame after the first in the single pass (``iterations``: the first frame's)."""
        return self.frame_iterations if self.frame_iterations is not None else max(1, math.ceil(iterations / 2))

    def replace(self, **changes: Any) -> "VideoConfig":
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """All fields as JSON-friendly values."""
        return {f.name: list(value) if isinstance(value, tuple) else value
                for f in dataclasses.fields(self) for value in [getattr(self, f.name)]}


_VIDEO_FIELDS = frozenset(f.name for f in dataclasses.fields(VideoConfig))


def video_option_help(name: str, render: Callable[[str], str] = lambda field_name: field_name) -> str:
    """The help of ``VideoConfig`` field ``name``, fields of either config written by ``render``."""
    return render_video_fields(VideoConfig.__dataclass_fields__[name].metadata["help"], render)
