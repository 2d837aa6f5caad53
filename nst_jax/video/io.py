"""Video files in and out with PyAV (FFmpeg's libraries, H.264 and AAC inside its wheel).

Reading: ``probe`` demuxes the video stream without decoding it, so a clip's frame count, each frame's timestamp,
its rate and its audio are known (and a bad file or frame range refused) before anything slow; ``read_frames``
decodes the frames of a range as RGB in [0, 1].

Writing: ``VideoWriter`` encodes H.264 (yuv420p, ``crf``) into MP4, MOV or MKV at the source's timestamps (each
frame keeps its own, so a variable frame rate survives, and the rate is the source's exact fraction such as
30000/1001), and copies the source's audio of the same span packet by packet (re-encoded as AAC only when the
container cannot hold its codec). The file is written under a hidden temporary name beside the target and renamed
onto it once complete (``nst_jax.files.atomic_path``), so an interrupted run leaves no half-written video; it
carries nst_jax's mark in its ``comment`` tag (``is_own_video``), so that a later run may replace it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import sys
from collections.abc import Iterator, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from nst_jax.files import SOFTWARE, atomic_path

VIDEO_SUFFIXES: tuple[str, ...] = (".mp4", ".mov", ".mkv")
"""Output containers (by suffix) and the FFmpeg format each is written as."""
_FORMATS = {".mp4": "mp4", ".mov": "mov", ".mkv": "matroska"}
# Audio codecs MP4 and MOV take as they are (others are re-encoded as AAC); Matroska takes every codec FFmpeg has.
_MP4_AUDIO = frozenset({"aac", "mp3", "ac3", "eac3", "alac", "opus", "flac"})
CRF = 18
"""libx264's constant rate factor: 18 is about visually lossless (0 lossless, 51 worst; x264's default is 23)."""
_IMAGE_FORMATS = ("image2", "_pipe")  # FFmpeg demuxes a still image as a one-frame video: not a video for us


class VideoError(ValueError):
    """A file that is not a usable video, or a frame range outside it; the message says which and why."""


def _av() -> Any:
    """PyAV, or a ``VideoError`` naming the extra to install."""
    try:
        import av
    except ImportError:
        raise VideoError("video needs PyAV and OpenCV: pip install 'nst-jax[video]'") from None
    return av


@dataclasses.dataclass(frozen=True)
class VideoInfo:
    """What ``probe`` learns of a video without decoding it."""

    path: Path
    width: int
    height: int
    time_base: Fraction
    timestamps: tuple[int, ...]
    """Every frame's presentation timestamp, in ``time_base`` units, in presentation order."""
    rate: Fraction | None
    """The stream's average frame rate as an exact fraction (30000/1001), None if the file does not say."""
    audio_codec: str | None
    """The first audio stream's codec (None: no audio)."""
    duration: float
    """Seconds from the first frame to the end of the last (the container's, else the timestamps')."""

    @property
    def frames(self) -> int:
        """Number of frames."""
        return len(self.timestamps)

    def seconds(self, index: int) -> float:
        """Time of frame ``index`` from the first frame, in seconds."""
        return float((self.timestamps[index] - self.timestamps[0]) * self.time_base)

    def frame_range(self, start: float | None = None, end: float | None = None, max_frames: int | None = None
                    ) -> range:
        """The frames shown from ``start`` (seconds from the first frame, None: 0) up to ``end`` (excluded; None: the
        end), at most ``max_frames``; ``VideoError`` if that holds no frame or asks for times outside the clip."""
        length = f"{self.duration:.3f} s, {self.frames} frames"
        if start is not None and not (math.isfinite(start) and start >= 0):
            raise VideoError(f"--start must be a time in seconds of at least 0, got {start}")
        if end is not None and not math.isfinite(end):
            raise VideoError(f"--end must be a time in seconds, got {end}")
        if max_frames is not None and max_frames < 1:
            raise VideoError(f"--max-frames must be at least 1, got {max_frames}")
        if start is not None and start >= self.duration:
            raise VideoError(f"--start {start:g} s is at or past the end of the clip ({length})")
        if end is not None and start is not None and end <= start:
            raise VideoError(f"--end {end:g} s must be after --start {start:g} s")
        if end is not None and end > self.duration + 1e-6:
            raise VideoError(f"--end {end:g} s is past the end of the clip ({length})")
        times = [self.seconds(index) for index in range(self.frames)]
        first = next((i for i, t in enumerate(times) if start is None or t >= start - 1e-9), self.frames)
        stop = next((i for i, t in enumerate(times) if end is not None and t >= end - 1e-9), self.frames)
        if max_frames is not None:
            stop = min(stop, first + max_frames)
        if stop <= first:
            until = "its end" if end is None else f"{end:g} s"
            raise VideoError(f"no frame of the clip ({length}) is shown from {start or 0:g} s to {until}")
        return range(first, stop)


def _open(path: Path) -> Any:
    """``path`` opened for reading by PyAV; ``VideoError`` if it is missing or not a media file."""
    av = _av()
    if not path.exists():
        raise VideoError(f"video '{path}' does not exist")
    if path.is_dir():
        raise VideoError(f"'{path}' is a directory, not a video")
    try:
        return av.open(str(path))
    except (av.error.FFmpegError, OSError, UnicodeDecodeError) as error:
        raise VideoError(f"'{path}' is not a video FFmpeg can read ({getattr(error, 'strerror', None) or error})"
                         ) from None


def probe(path: str | os.PathLike) -> VideoInfo:
    """The video stream's size, timestamps, rate and audio codec, found by demuxing (no decoding); ``VideoError``
    for a file that is not a video, has no video stream or no frames."""
    path = Path(path)
    with _open(path) as container:
        if any(marker in container.format.name for marker in _IMAGE_FORMATS):
            raise VideoError(f"'{path}' is a still image, not a video (stylize one image with: nst-jax CONTENT STYLE "
                             "-o OUT)")
        if not container.streams.video:
            raise VideoError(f"'{path}' has no video stream")
        stream = container.streams.video[0]
        audio = container.streams.audio[0].codec_context.name if container.streams.audio else None
        try:
            stamps = sorted(packet.pts for packet in container.demux(stream) if packet.pts is not None and packet.size)
        except _av().error.FFmpegError as error:
            raise VideoError(f"'{path}' cannot be read to its end ({error})") from None
        if not stamps:
            raise VideoError(f"'{path}' has a video stream without frames")
        rate = stream.average_rate or stream.guessed_rate
        time_base = stream.time_base
        last = stamps[-1] + (stamps[-1] - stamps[-2] if len(stamps) > 1 else 0)
        duration = float((last - stamps[0]) * time_base)
        if len(stamps) > 1 and rate and len(set(np.diff(stamps))) == 1:  # constant rate: the last frame's length too
            duration = float(len(stamps) / Fraction(rate))
        return VideoInfo(path, stream.codec_context.width, stream.codec_context.height, Fraction(time_base),
                         tuple(stamps), Fraction(rate) if rate else None, audio, duration)


def read_frames(info: VideoInfo, frames: range) -> Iterator[np.ndarray]:
    """Decode the frames ``frames`` (indices in presentation order) of ``info``'s video as (H, W, 3) float32 RGB in
    [0, 1]; seeks to the keyframe before the first."""
    if not frames:
        return
    wanted = info.timestamps[frames.start:frames.stop]
    with _open(info.path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        if frames.start > 0:
            container.seek(wanted[0], stream=stream, backward=True)
        count = 0
        for frame in container.decode(stream):
            if frame.pts is None or frame.pts < wanted[0]:
                continue
            yield frame.to_ndarray(format="rgb24").astype(np.float32) / 255.0
            count += 1
            if count == len(wanted):
                return
    if count < len(wanted):
        raise VideoError(f"'{info.path}' ended after {count} of the {len(wanted)} frames asked for")


def check_output_suffix(path: Path) -> None:
    """``VideoError`` unless ``path`` names a container the writer makes."""
    if path.suffix.lower() not in VIDEO_SUFFIXES:
        raise VideoError(f"output '{path}' has unsupported suffix '{path.suffix}'; use one of "
                         f"{', '.join(VIDEO_SUFFIXES)}")


def is_own_video(path: Path) -> bool:
    """Whether ``path`` is a video nst_jax wrote (its ``comment`` tag carries nst_jax's mark)."""
    try:
        av = _av()
        with av.open(str(path)) as container:
            return str(container.metadata.get("comment", "")).startswith(SOFTWARE)
    except (VideoError, OSError, ValueError):  # PyAV's errors are OSErrors or ValueErrors
        return False


class VideoWriter:
    """H.264 frames at given timestamps, with a source's audio of the same span, written whole or not at all.

    Use as a context manager: the file appears under ``path`` when the block ends normally (encoder flushed,
    audio copied up to the end of the last frame), and nowhere if it raises. ``time_base`` and ``rate`` are the
    source's; ``write`` takes each frame's timestamp in ``time_base`` units from the first frame (0).
    """

    def __init__(self, path: str | os.PathLike, *, width: int, height: int, time_base: Fraction,
                 rate: Fraction | None, crf: int = CRF, audio: VideoInfo | None = None, audio_start: float = 0.0,
                 comment: str = SOFTWARE) -> None:
        """``audio``: the source whose audio is copied, from ``audio_start`` seconds after its first frame (where
        the output's first frame was)."""
        if width % 2 or height % 2:
            raise ValueError(f"H.264 in yuv420p needs an even width and height, got {width}x{height}")
        check_output_suffix(Path(path))
        self.path, self.width, self.height = Path(path), width, height
        self.time_base, self.rate, self.crf, self.comment = time_base, rate, crf, comment
        self.audio, self.audio_start = audio, audio_start
        self.last_pts: int | None = None
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> "VideoWriter":
        av = _av()
        temporary = self._stack.enter_context(atomic_path(self.path))
        self._container = self._stack.enter_context(av.open(str(temporary), "w",
                                                            format=_FORMATS[self.path.suffix.lower()]))
        self._container.metadata["comment"] = self.comment
        stream = self._container.add_stream("libx264", rate=self.rate or Fraction(30))
        stream.width, stream.height, stream.pix_fmt = self.width, self.height, "yuv420p"
        stream.time_base = self.time_base
        stream.codec_context.time_base = self.time_base
        stream.options = {"crf": str(self.crf)}
        self._video = stream
        self._audio_in = self._audio_out = self._packets = self._resampler = None
        if self.audio is not None and self.audio.audio_codec is not None:
            self._open_audio()
        return self

    def _open_audio(self) -> None:
        """Open the source's audio and add its stream: copied, or re-encoded as AAC where the container needs."""
        av = _av()
        self._audio_in = self._stack.enter_context(_open(self.audio.path))
        source = self._audio_in.streams.audio[0]
        first = self.audio.timestamps[0] * self.audio.time_base  # the video's first frame, in seconds
        self._offset = float(first) + self.audio_start  # source seconds at output time 0
        copy = self.path.suffix.lower() == ".mkv" or source.codec_context.name in _MP4_AUDIO
        if copy:
            self._audio_out = self._container.add_stream_from_template(source)
        else:
            rate = source.codec_context.sample_rate or 48000
            # AAC takes named layouts only ("2 channels", PCM's unordered layout, is refused): the standard one of the
            # channel count, up to 5.1
            channels = min(source.codec_context.layout.nb_channels, 6)
            layout = {1: "mono", 2: "stereo", 3: "3.0", 4: "quad", 5: "5.0", 6: "5.1"}[channels]
            self._audio_out = self._container.add_stream("aac", rate=rate)
            self._audio_out.layout = layout
            self._resampler = av.AudioResampler(format="fltp", layout=layout, rate=rate)
        if self._offset > 0:
            self._audio_in.seek(int(self._offset / source.time_base), stream=source, backward=True)
        self._packets = self._audio_in.demux(source)
        self._pending = None  # a packet read ahead: the first one past the video muxed so far

    def write(self, image: np.ndarray, pts: int) -> None:
        """Encode one (H, W, 3) RGB frame in [0, 1] shown at ``pts`` (``time_base`` units from the first frame)."""
        if self.last_pts is not None and pts <= self.last_pts:
            raise ValueError(f"frame timestamps must increase: {pts} after {self.last_pts}")
        av = _av()
        pixels = np.round(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(pixels), format="rgb24")
        frame.pts, frame.time_base = pts, self.time_base
        self.last_pts = pts
        self._mux_video(self._video.encode(frame))

    def _mux_video(self, packets: Sequence[Any]) -> None:
        """Mux video packets, with the audio up to the last of them first (so that the file is interleaved)."""
        for packet in packets:
            if self._packets is not None and packet.pts is not None:
                self._mux_audio(float(packet.pts * self.time_base))
            self._container.mux(packet)

    def _end(self) -> float:
        """The output's end in seconds: the last frame's time plus one frame."""
        if self.last_pts is None:
            return 0.0
        step = 1 / self.rate if self.rate else Fraction(1, 30)
        return float(self.last_pts * self.time_base + step)

    def _mux_audio(self, until: float) -> None:
        """Copy (or re-encode) the source's audio packets whose time, relative to output time 0, is before
        ``until`` seconds and at least 0."""
        source = self._audio_in.streams.audio[0]
        while True:
            pending = self._pending
            if pending is None:
                pending = next(self._packets, None)
                if pending is None:
                    self._packets = None
                    return
                if pending.pts is None or not pending.size:
                    continue
            time = float(pending.pts * source.time_base) - self._offset
            if time >= until:
                self._pending = pending
                return
            self._pending = None
            if time < -1e-9:  # before the span: skipped
                continue
            if self._resampler is None:
                pending.pts = pending.dts = round(time / pending.time_base)
                pending.stream = self._audio_out
                self._container.mux(pending)
            else:
                for frame in pending.decode():
                    for resampled in self._resampler.resample(frame):
                        resampled.pts = None
                        self._container.mux(self._audio_out.encode(resampled))

    def __exit__(self, kind: Any, error: Any, traceback: Any) -> bool | None:
        try:
            if kind is None:
                self._mux_video(self._video.encode(None))  # flush: without it the last frames are lost
                if self._packets is not None:
                    self._mux_audio(self._end())
                if self._resampler is not None:
                    self._container.mux(self._audio_out.encode(None))
        except BaseException:
            self._stack.__exit__(*sys.exc_info())
            raise
        return self._stack.__exit__(kind, error, traceback)
