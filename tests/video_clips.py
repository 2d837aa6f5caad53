"""Video clips made by the tests themselves with PyAV: a pan over a picture (known motion), with AAC audio."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np

NTSC = Fraction(30000, 1001)


def natural(height: int, width: int, seed: int = 0) -> np.ndarray:
    """An (H, W, 3) picture in [0, 1] with a photograph's 1/f spectrum: octaves of smooth random noise from 1/16 of
    the size down to single pixels, each finer one weaker (optical flow has texture at every scale to follow)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    picture = np.zeros((height, width, 3), np.float32)
    for octave, amplitude in ((16, 1.0), (8, 0.7), (4, 0.5), (2, 0.35), (1, 0.25)):
        small = rng.random((3, height // octave + 2, width // octave + 2)).astype(np.float32)
        size = (width + 2 * octave, height + 2 * octave)
        layers = [np.asarray(Image.fromarray(channel).resize(size, Image.BICUBIC)) for channel in small]
        picture += amplitude * np.stack(layers, axis=-1)[octave:octave + height, octave:octave + width]
    return (picture - picture.min()) / (picture.max() - picture.min())


def pan_frames(frames: int, height: int, width: int, step: int = 2, seed: int = 0) -> list[np.ndarray]:
    """``frames`` crops of one ``natural`` picture, each ``step`` pixels further right: frame t+1 at x shows
    frame t at x + step (the content moves left by ``step`` pixels per frame)."""
    big = natural(height, width + step * frames, seed)
    return [big[:, t * step: t * step + width] for t in range(frames)]


def write_clip(path: Path, images: list[np.ndarray], *, rate: Fraction = NTSC, audio: bool = True,
               pts: list[int] | None = None, time_base: Fraction | None = None, crf: int = 10,
               audio_codec: str = "aac") -> Path:
    """Encode ``images`` ((H, W, 3) in [0, 1], even sides) as H.264 at ``rate`` (or at ``pts`` in ``time_base``),
    with a 440 Hz tone as long as the video (``audio``)."""
    import av

    height, width = images[0].shape[:2]
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=rate)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.options = {"crf": str(crf)}
        if time_base is not None:
            video.time_base = video.codec_context.time_base = time_base
        sound = out.add_stream(audio_codec, rate=44100) if audio else None
        if sound is not None:
            sound.layout = "stereo"
        for index, image in enumerate(images):
            frame = av.VideoFrame.from_ndarray(np.round(np.clip(image, 0, 1) * 255).astype(np.uint8), format="rgb24")
            frame.pts = index if pts is None else pts[index]
            if time_base is not None:
                frame.time_base = time_base
            for packet in video.encode(frame):
                out.mux(packet)
        for packet in video.encode():
            out.mux(packet)
        if sound is not None:
            seconds = len(images) / rate if pts is None else (pts[-1] + pts[-1] - pts[-2]) * time_base
            samples = int(44100 * seconds)
            tone = (0.2 * np.sin(2 * np.pi * 440 * np.arange(samples) / 44100)).astype(np.float32)
            fmt = sound.codec_context.codec.audio_formats[0].name
            for start in range(0, samples, 1024):
                chunk = np.stack([tone[start:start + 1024]] * 2)
                if fmt == "s16":
                    chunk = (chunk.T.reshape(1, -1) * 32767).astype(np.int16)
                frame = av.AudioFrame.from_ndarray(chunk, format=fmt, layout="stereo")
                frame.sample_rate, frame.pts = 44100, start
                for packet in sound.encode(frame):
                    out.mux(packet)
            for packet in sound.encode():
                out.mux(packet)
    return path
