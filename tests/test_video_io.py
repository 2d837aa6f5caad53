"""Video files through PyAV: a clip round trips with its frames, exact rate, timestamps, audio and duration; bad
files and ranges are one clear error; nothing is half-written."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from video_clips import NTSC, pan_frames, write_clip

from nst_jax.video.io import VideoError, VideoWriter, is_own_video, probe, read_frames

av = pytest.importorskip("av")


@pytest.fixture(scope="module")
def two_seconds(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2 s clip at 30000/1001 fps (60 frames of 32x48) with AAC stereo audio."""
    return write_clip(tmp_path_factory.mktemp("clips") / "ntsc.mp4", pan_frames(60, 32, 48))


def copy_clip(info, output: Path, frames: range) -> None:
    """Decode ``frames`` of ``info`` and write them back at their own timestamps, with the audio."""
    first = info.timestamps[frames.start]
    with VideoWriter(output, width=info.width, height=info.height, time_base=info.time_base, rate=info.rate,
                     audio=info, audio_start=info.seconds(frames.start)) as writer:
        for index, image in zip(frames, read_frames(info, frames)):
            writer.write(image, info.timestamps[index] - first)


def test_a_clip_round_trips_with_its_rate_frames_audio_and_duration(two_seconds, tmp_path):
    info = probe(two_seconds)
    assert (info.frames, info.rate, info.audio_codec, info.width, info.height) == (60, NTSC, "aac", 48, 32)
    assert info.duration == pytest.approx(60 / float(NTSC), abs=1e-9)
    copy_clip(info, tmp_path / "copy.mp4", info.frame_range())
    copy = probe(tmp_path / "copy.mp4")
    assert (copy.frames, copy.rate, copy.audio_codec) == (60, NTSC, "aac")  # the exact fraction, not 29.97
    assert copy.duration == pytest.approx(info.duration, abs=1e-9)
    with av.open(str(tmp_path / "copy.mp4")) as container:
        sound = container.streams.audio[0]
        # AAC frames hold 1024 samples: the copied audio ends within one of them (23 ms) of the video's end
        assert float(sound.duration * sound.time_base) == pytest.approx(info.duration, abs=1024 / 44100)
    assert [copy.seconds(i) for i in range(60)] == pytest.approx([info.seconds(i) for i in range(60)], abs=1e-9)
    assert is_own_video(tmp_path / "copy.mp4") and not is_own_video(two_seconds)


def test_decoded_frames_are_the_encoded_ones(tmp_path):
    """Frames come back in order, their luma close to what was encoded (yuv420p halves the chroma's resolution,
    which the test picture's per-pixel noise does not survive)."""
    images = pan_frames(5, 32, 48, seed=3)
    info = probe(write_clip(tmp_path / "clip.mp4", images, audio=False))
    decoded = list(read_frames(info, range(1, 4)))
    luma = np.asarray([0.299, 0.587, 0.114], np.float32)
    errors = [np.abs((d - i) @ luma).mean() for d, i in zip(decoded, images[1:4])]
    assert len(decoded) == 3 and max(errors) < 0.02, errors  # measured 0.005; a neighbouring frame is 0.078 away
    assert info.audio_codec is None


def test_a_variable_rate_keeps_every_timestamp_and_a_range_starts_at_zero(tmp_path):
    stamps = [0, 33, 66, 150, 170, 400, 433]  # milliseconds
    info = probe(write_clip(tmp_path / "vfr.mkv", pan_frames(7, 32, 48), pts=stamps, time_base=Fraction(1, 1000)))
    assert [round(info.seconds(i) * 1000) for i in range(7)] == stamps
    part = info.frame_range(start=0.1, end=0.42)
    assert part == range(3, 6)
    copy_clip(info, tmp_path / "part.mp4", part)
    copy = probe(tmp_path / "part.mp4")
    assert [round(copy.seconds(i) * 1000) for i in range(copy.frames)] == [0, 20, 250]


@pytest.mark.parametrize(("start", "end", "max_frames", "message"), [
    (2.5, None, None, r"--start 2\.5 s is at or past the end of the clip \(2\.002 s, 60 frames\)"),
    (None, 3.0, None, r"--end 3 s is past the end of the clip"),
    (1.0, 0.5, None, r"--end 0\.5 s must be after --start 1 s"),
    (-1.0, None, None, r"--start must be a time in seconds of at least 0"),
    (None, None, 0, r"--max-frames must be at least 1"),
    (1.99, None, None, r"no frame of the clip \(2\.002 s, 60 frames\) is shown from 1\.99 s to its end"),
])
def test_a_range_outside_the_clip_is_refused(two_seconds, start, end, max_frames, message):
    with pytest.raises(VideoError, match=message):
        probe(two_seconds).frame_range(start, end, max_frames)


def test_ranges_by_time_and_count(two_seconds):
    info = probe(two_seconds)
    assert info.frame_range() == range(60)
    assert info.frame_range(start=1.0) == range(30, 60)  # frame 30 is shown at 1.001 s
    assert info.frame_range(end=1.0, max_frames=5) == range(5)


def test_what_is_not_a_video_is_one_clear_error(tmp_path, inputs):
    text = tmp_path / "notes.mp4"
    text.write_text("not a video\n")
    with pytest.raises(VideoError, match="is not a video FFmpeg can read"):
        probe(text)
    with pytest.raises(VideoError, match="is a still image, not a video"):
        probe(inputs["content"])
    with pytest.raises(VideoError, match="does not exist"):
        probe(tmp_path / "missing.mp4")
    sound = tmp_path / "tone.m4a"
    with av.open(str(sound), "w") as out:
        stream = out.add_stream("aac", rate=44100)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 2048), np.float32), format="fltp", layout="mono")
        frame.sample_rate = 44100
        for packet in [*stream.encode(frame), *stream.encode()]:
            out.mux(packet)
    with pytest.raises(VideoError, match="has no video stream"):
        probe(sound)


def test_nothing_is_half_written(tmp_path):
    """An error while writing leaves no file (and no temporary one); an existing file stays as it was."""
    target = tmp_path / "out.mp4"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="mid-run"):
        with VideoWriter(target, width=48, height=32, time_base=Fraction(1, 30), rate=Fraction(30)) as writer:
            writer.write(np.zeros((32, 48, 3), np.float32), 0)
            raise RuntimeError("mid-run")
    assert target.read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4"]
    with pytest.raises(ValueError, match="even width and height"):
        VideoWriter(tmp_path / "odd.mp4", width=47, height=32, time_base=Fraction(1, 30), rate=Fraction(30))


def test_audio_a_container_cannot_hold_is_re_encoded(tmp_path):
    """PCM audio (MKV) cannot go into MP4 as it is: it comes out as AAC of the same length."""
    info = probe(write_clip(tmp_path / "pcm.mkv", pan_frames(30, 32, 48), audio_codec="pcm_s16le"))
    assert info.audio_codec == "pcm_s16le"
    copy_clip(info, tmp_path / "aac.mp4", info.frame_range())
    with av.open(str(tmp_path / "aac.mp4")) as container:
        sound = container.streams.audio[0]
        assert sound.codec_context.name == "aac"
        samples = sum(frame.samples for frame in container.decode(sound))
    assert samples == pytest.approx(44100 * 30 / float(NTSC), abs=2048)  # AAC's priming and padding: 2 frames
