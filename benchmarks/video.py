"""Video (issue 29): how stable and how fast each schedule is on a clip, and how good each optical flow is.

Stability is the warp error of every frame, mean c (x_i - w(x_{i-1}))^2 over pixels and channels (c: Ruder et al.'s
consistency weights of the flow to the previous frame, w: the previous output frame warped by it); the look is
the judge distance, the Gram distance of the output to the style measured by *another* trained network
(``judge_distance``), as a fraction of the photo's own (1: no closer to the style than the photo). Modes:

``independent`` -- every frame alone, as the first one (``StyleConfig.init``, the first frame's iterations);
``prev-warped`` -- frames started from the previous result warped, no temporal term (cysmith's port does this);
``temporal`` -- Ruder et al.'s single pass: that start and the temporal term (the default ``VideoConfig``);
``sweep``, ``jacobi``, ``red-black`` -- the multi-pass schedules (``--passes`` of ``--pass-iterations``).

The clip is a pan over a shared photo (``pan_clip``: 4 px per frame at twice the size stylized). The flows: DIS's
settings against a pan of known motion and a block moving over it (end-point error, disocclusions caught, time).

    python -m benchmarks.video --weights ~/.cache/nst_jax/trained/vgg16_torchvision.h5 \\
        --judge ~/.cache/nst_jax/trained/vgg16_caffe.h5 --size 128 --frames 24 --json video.json --plot video.png \\
        --strip docs/video_strip.jpg

``video_rows(size, device)`` returns the rows of one size for ``benchmarks.gpu``.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.report import json_output_problem

IMAGES = Path(os.environ.get("NST_JAX_SHARED_IMAGES", "/work/shared/images"))
PHOTO, STYLE = IMAGES / "tubingen.jpg", IMAGES / "starry_night.jpg"
SINGLE_MODES = ("independent", "prev-warped", "temporal")
MULTI_MODES = ("sweep", "jacobi", "red-black")
MODES = SINGLE_MODES + MULTI_MODES
JUDGE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
COLORS = {"independent": (214, 39, 40), "prev-warped": (255, 127, 14), "temporal": (44, 160, 44),
          "sweep": (31, 119, 180), "jacobi": (148, 103, 189), "red-black": (140, 86, 75)}


def pan_clip(photo: Path, path: Path, *, frames: int, height: int, width: int, step: int,
             rate: Fraction = Fraction(30000, 1001)) -> Path:
    """A clip of ``frames`` (height x width) crops of ``photo``, each ``step`` pixels further right, H.264 at crf
    12: a camera panning over the photo."""
    import av

    from nst_jax.image_io import load_image, resize_image

    picture = resize_image(load_image(photo), height, width + step * frames)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt, stream.options = width, height, "yuv420p", {"crf": "12"}
        for index in range(frames):
            crop = np.round(picture[:, index * step: index * step + width] * 255).astype(np.uint8)
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(crop), format="rgb24")
            frame.pts = index
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def judge_distance(judge: Any, image: np.ndarray, style: np.ndarray, reference: np.ndarray) -> float:
    """How far ``image``'s statistics are from ``style``'s, as a fraction of how far ``reference``'s (the photo's)
    are, in the eyes of the network ``judge`` (``VGGWeights``; another than the one that optimized): per layer of
    relu1_1..relu5_1, |G - G_style|^2 / |G_style|^2 of the Gram matrices (per position, max pooling: the judge as
    trained), averaged over the layers. 1: no closer to the style than the photo. Kept small and pure, so that
    ``benchmarks.quality``'s measure can replace it."""
    from nst_jax.image_io import resize_image
    from nst_jax.vgg import extract_features

    def grams(picture: np.ndarray) -> list[np.ndarray]:
        features = extract_features(judge.params, picture, JUDGE_LAYERS, pooling="max")
        flat = [np.asarray(features[layer], np.float64).reshape(-1, features[layer].shape[-1])
                for layer in JUDGE_LAYERS]
        return [value.T @ value / value.shape[0] for value in flat]

    target = grams(resize_image(style, *image.shape[:2]))

    def distance(picture: np.ndarray) -> float:
        return float(np.mean([np.sum((g - t) ** 2) / np.sum(t**2) for g, t in zip(grams(picture), target)]))

    return distance(image) / distance(reference)


@dataclasses.dataclass(frozen=True)
class Settings:
    """One measurement: the clip's size and length, the iterations, the multi-pass schedule's passes."""

    size: int = 128
    frames: int = 24
    iterations: int = 200
    """The first frame's (and every frame's in ``independent``); the later frames of a single pass take half."""
    passes: int = 6
    pass_iterations: int = 40
    temporal_from_pass: int = 3
    temporal_weight: float | None = None
    """gamma of the temporal and multi-pass modes (None: the default for the weights)."""


def mode_config(mode: str, settings: Settings) -> tuple[Any, Any]:
    """The ``StyleConfig`` and ``VideoConfig`` of ``mode``."""
    from nst_jax import StyleConfig
    from nst_jax.video.config import VideoConfig

    config = StyleConfig(image_size=settings.size, iterations=settings.iterations)
    if mode == "independent":
        return config, VideoConfig(temporal_weight=0.0, frame_init="first", frame_iterations=settings.iterations)
    if mode == "prev-warped":
        return config, VideoConfig(temporal_weight=0.0)
    if mode == "temporal":
        return config, VideoConfig(temporal_weight=settings.temporal_weight)
    return config, VideoConfig(schedule=mode, passes=settings.passes, pass_iterations=settings.pass_iterations,
                               temporal_from_pass=settings.temporal_from_pass,
                               temporal_weight=settings.temporal_weight)


def measure_mode(mode: str, clip: Path, vgg: Any, settings: Settings, judge: Any | None = None,
                 frames_out: dict[str, list[np.ndarray]] | None = None) -> dict[str, Any]:
    """Stylize ``clip`` in ``mode``: time per frame, warp errors, iterations and (with a ``judge`` network) the
    judge distance of every frame."""
    from nst_jax.image_io import load_image, resize_image
    from nst_jax.video.io import probe, read_frames
    from nst_jax.video.stylize import stylize_video

    config, video = mode_config(mode, settings)
    images: list[np.ndarray] = []

    def keep(record: Any, image: np.ndarray) -> None:
        images.append(image)
        print(f"  {mode} frame {record.index}: {record.iterations} iterations, {record.elapsed:.1f} s", flush=True)

    began = time.perf_counter()
    result = stylize_video(clip, STYLE, config=config, video=video, vgg=vgg, max_frames=settings.frames,
                           on_frame=keep)
    wall = time.perf_counter() - began
    row: dict[str, Any] = {
        "mode": mode, "size": settings.size, "height": result.size[0], "width": result.size[1],
        "frames": len(result.frames), "seconds_per_frame": wall / len(result.frames),
        "optimize_seconds_per_frame": float(np.mean([r.elapsed for r in result.frames])),
        "flow_seconds_per_frame": result.flow_seconds / len(result.frames),
        "iterations_per_frame": float(np.mean([r.iterations for r in result.frames])),
        "mean_warp_error": float(result.warp_errors.mean()), "warp_errors": result.warp_errors.tolist(),
        "temporal_weight": result.temporal_weight, "status": str(result.status),
    }
    if judge is not None:
        style = load_image(STYLE)
        contents = [resize_image(frame, *result.size) for frame in read_frames(probe(clip), range(len(images)))]
        distances = [judge_distance(judge, image, style, content) for image, content in zip(images, contents)]
        row["judge_distance"] = float(np.mean(distances))
        row["judge_distances"] = distances
    if frames_out is not None:
        frames_out[mode] = images + [warp_residual(clip, images)]
    return row


def warp_residual(clip: Path, images: Sequence[np.ndarray]) -> np.ndarray:
    """What flickers between the last two output frames: |x_i - w(x_{i-1})| where the flow is reliable (c > 0.5),
    times 4, on black (the motion itself is warped away)."""
    from nst_jax.image_io import resize_image
    from nst_jax.video.consistency import reliability
    from nst_jax.video.flow import optical_flow, warp
    from nst_jax.video.io import probe, read_frames

    last = len(images) - 1
    before, after = (resize_image(frame, *images[0].shape[:2])
                     for frame in read_frames(probe(clip), range(last - 1, last + 1)))
    backward, forward = optical_flow(after, before), optical_flow(before, after)
    weights = reliability(backward, forward)[..., None]
    return np.clip(4.0 * np.abs(images[last] - warp(images[last - 1], backward, fill=None)) * (weights > 0.5), 0, 1)


def video_rows(size: int, device: Any = None, *, weights: str | os.PathLike | None = None,
               judge: str | os.PathLike | None = None, frames: int = 8, iterations: int = 100,
               modes: Sequence[str] = ("independent", "temporal", "jacobi")) -> list[dict[str, Any]]:
    """The video rows of one ``size`` on ``device`` (None: JAX's default), for ``benchmarks.gpu``: ``modes`` on a
    ``frames``-frame pan, with the judge distance if ``judge`` names another network's weights."""
    import jax

    from nst_jax import load_weights

    settings = Settings(size=size, frames=frames, iterations=iterations, passes=4, pass_iterations=iterations // 2,
                        temporal_from_pass=2)
    placed = jax.default_device(device) if device is not None else contextlib.nullcontext()
    with tempfile.TemporaryDirectory() as folder, placed:
        clip = pan_clip(PHOTO, Path(folder) / "pan.mp4", frames=frames, height=size * 3 // 4 * 2, width=size * 2,
                        step=4)
        vgg, referee = load_weights(weights), None if judge is None else load_weights(judge)
        rows = [measure_mode(mode, clip, vgg, settings, referee) for mode in modes]
    where = str(device or jax.devices()[0])
    return [{**row, "device": where} for row in rows]


def flow_rows(height: int = 96, width: int = 128, repeats: int = 5) -> list[dict[str, Any]]:
    """Each DIS setting on the shared photo: end-point error on a pan of 3 px (known flow) and on a block of the
    style painting moving (+6, +2) over it, the share of the block's trail caught as disoccluded, and the time per
    flow field (the best of ``repeats``)."""
    from nst_jax.image_io import load_image, resize_image
    from nst_jax.video.consistency import reliability
    from nst_jax.video.flow import FLOW_METHODS, optical_flow

    picture = resize_image(load_image(PHOTO), height, width + 3)
    side, top, left = height // 3, height // 3 - 2, width // 4  # the block: a third of the height, (+6, +2) moved
    block = resize_image(load_image(STYLE), side, side)
    first, second = picture[:, :width].copy(), picture[:, 3:].copy()
    moved_first, moved_second = first.copy(), second.copy()
    moved_first[top:top + side, left:left + side] = block
    moved_second[top + 2:top + 2 + side, left + 6:left + 6 + side] = block
    rows, columns = np.mgrid[0:height, 0:width]
    inside = columns + 3 < width
    in_block = (rows >= top + 2) & (rows < top + 2 + side) & (columns >= left + 6) & (columns < left + 6 + side)
    hidden = (inside & (rows >= top) & (rows < top + side) & (columns + 3 >= left) & (columns + 3 < left + side)
              & ~in_block)
    truth = np.zeros((height, width, 2), np.float32)
    truth[..., 0] = 3.0
    truth[in_block] = (-6.0, -2.0)
    result = []
    for method in FLOW_METHODS:
        seconds = []
        for _ in range(repeats):
            began = time.perf_counter()
            pan = optical_flow(second, first, method)
            seconds.append(time.perf_counter() - began)
        backward = optical_flow(moved_second, moved_first, method)
        forward = optical_flow(moved_first, moved_second, method)
        raw, weights = reliability(backward, forward, blur=False), reliability(backward, forward)
        result.append({
            "method": method, "height": height, "width": width, "seconds": min(seconds),
            "pan_epe": float(np.linalg.norm(pan[:, :width - 3] - (3.0, 0.0), axis=-1).mean()),
            "block_epe": float(np.linalg.norm(backward - truth, axis=-1)[inside & ~hidden].mean()),
            "disocclusions_marked": float((raw[hidden] == -1).mean()),
            "disocclusions_under_half": float((weights[hidden] < 0.5).mean()),
            "reliable_elsewhere": float((weights[inside & ~hidden & ~in_block] >= 0.5).mean()),
        })
    return result


def plot(rows: Sequence[dict[str, Any]], path: Path) -> None:
    """The warp error of every frame, one line per mode (log scale), and each mode's time per frame."""
    from PIL import Image, ImageDraw

    from nst_jax.files import atomic_path

    width, height, margin = 1000, 420, 60
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    left, right, top, bottom = margin + 10, 640, 40, height - margin
    errors = [value for row in rows for value in row["warp_errors"] if value > 0]
    low, high = np.log10(min(errors)), np.log10(max(errors))
    frames = max(len(row["warp_errors"]) for row in rows)
    draw.rectangle((left, top, right, bottom), outline="black")
    draw.text((left, 12), "warp error per frame (log scale)", fill="black")
    draw.text((right - 60, bottom + 28), "frame", fill="black")
    for tick in range(5):
        value = low + tick / 4 * (high - low)
        draw.text((left - 60, bottom - tick / 4 * (bottom - top) - 6), f"{10 ** value:.1e}", fill="black")
    for number, row in enumerate(rows):
        values = row["warp_errors"]
        xy = [(left + (index + 1) / frames * (right - left),
               bottom - (np.log10(max(v, 10 ** low)) - low) / max(high - low, 1e-9) * (bottom - top))
              for index, v in enumerate(values)]
        if len(xy) > 1:
            draw.line(xy, fill=COLORS[row["mode"]], width=2)
        draw.text((left + 10, top + 8 + 14 * number), row["mode"], fill=COLORS[row["mode"]])
    bars_left, slowest = 720, max(row["seconds_per_frame"] for row in rows)
    draw.text((bars_left, 12), "seconds per frame", fill="black")
    for number, row in enumerate(rows):
        y = top + 10 + 30 * number
        draw.rectangle((bars_left, y, bars_left + 180 * row["seconds_per_frame"] / slowest, y + 18),
                       fill=COLORS[row["mode"]])
        draw.text((bars_left + 185, y + 3), f"{row['seconds_per_frame']:.1f} {row['mode']}", fill="black")
    with atomic_path(path) as temporary:
        canvas.save(temporary, format="PNG")


def strip(frames: dict[str, list[np.ndarray]], path: Path, picks: Sequence[int]) -> None:
    """A labelled grid: one row per mode, the frames ``picks`` side by side, then what flickers between the last two
    (``warp_residual``, the last entry of each mode's frames)."""
    from nst_jax.contact_sheet import contact_sheet
    from nst_jax.image_io import save_image

    images, labels = [], []
    for mode, sequence in frames.items():
        for index in picks:
            images.append(sequence[index])
            labels.append(f"{mode} {index}")
        images.append(sequence[-1])  # measure_mode's warp_residual
        labels.append(f"{mode}: flicker x4")
    save_image(path, contact_sheet(images, labels, columns=len(picks) + 1))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.video", description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default=None, help="VGG HDF5 file stylizing (default: nst_jax's default path)")
    parser.add_argument("--judge", default=None, help="another trained VGG HDF5 file, for the judge distance")
    parser.add_argument("--size", type=int, default=Settings.size, help="longest side stylized")
    parser.add_argument("--frames", type=int, default=Settings.frames)
    parser.add_argument("--iterations", type=int, default=Settings.iterations,
                        help="the first frame's (every frame's when independent); later frames of a pass: half")
    parser.add_argument("--passes", type=int, default=Settings.passes)
    parser.add_argument("--pass-iterations", type=int, default=Settings.pass_iterations)
    parser.add_argument("--temporal-from-pass", type=int, default=Settings.temporal_from_pass)
    parser.add_argument("--temporal-weight", type=float, default=None, help="gamma (default: the weights' default)")
    parser.add_argument("--modes", default=",".join(SINGLE_MODES), help=f"some of {', '.join(MODES)}")
    parser.add_argument("--flow-only", action="store_true", help="measure the flow settings only")
    parser.add_argument("--flow-size", default="96,128", help="height,width of the flow measurement")
    parser.add_argument("--json", type=Path, default=None, help="write the rows as JSON")
    parser.add_argument("--plot", type=Path, default=None, help="write a PNG of the warp errors and times")
    parser.add_argument("--strip", type=Path, default=None, help="write a frame strip (JPEG or PNG) of the modes")
    parser.add_argument("--frames-npz", type=Path, default=None,
                        help="write every mode's output frames (uint8) to this .npz, to judge them again later")
    args = parser.parse_args(argv)
    modes = [name.strip() for name in args.modes.split(",")]
    unknown = [name for name in modes if name not in MODES]
    problem = (f"unknown modes: {', '.join(unknown)}" if unknown
               else json_output_problem(args.json, Path(args.weights) if args.weights else None))
    if problem:
        parser.error(problem)
    started = time.strftime("%Y-%m-%d %H:%M:%S")
    flows = flow_rows(*(int(side) for side in args.flow_size.split(",")))
    for row in flows:
        print(f"{row['method']:10s} {row['seconds'] * 1e3:6.1f} ms  pan EPE {row['pan_epe']:.3f} px  block EPE "
              f"{row['block_epe']:.3f} px  disocclusions marked {row['disocclusions_marked']:.0%} (under 0.5: "
              f"{row['disocclusions_under_half']:.0%})  reliable elsewhere {row['reliable_elsewhere']:.0%}",
              flush=True)
    rows: list[dict[str, Any]] = []
    frames: dict[str, list[np.ndarray]] = {}
    if not args.flow_only:
        from nst_jax import load_weights

        settings = Settings(args.size, args.frames, args.iterations, args.passes, args.pass_iterations,
                            args.temporal_from_pass, args.temporal_weight)
        vgg, judge = load_weights(args.weights), None if args.judge is None else load_weights(args.judge)
        with tempfile.TemporaryDirectory() as folder:
            height = round(args.size * 2 * 3 / 4) // 2 * 2
            clip = pan_clip(PHOTO, Path(folder) / "pan.mp4", frames=args.frames, height=height, width=args.size * 2,
                            step=4)
            for mode in modes:
                row = measure_mode(mode, clip, vgg, settings, judge, frames)
                rows.append(row)
                judged = f"  judge {row['judge_distance']:.3f}" if "judge_distance" in row else ""
                print(f"{mode:12s} {row['height']}x{row['width']}  {row['seconds_per_frame']:6.1f} s/frame  "
                      f"{row['iterations_per_frame']:6.1f} it/frame  warp error {row['mean_warp_error']:.3e}"
                      f"{judged}", flush=True)
    if args.json is not None:
        import jax

        from nst_jax.files import write_json

        settings_record = {key: str(value) if isinstance(value, Path) else value for key, value in vars(args).items()
                           if key not in ("json", "plot", "strip", "frames_npz")}
        write_json(args.json, {"started": started, "device": str(jax.devices()[0]), "jax": jax.__version__,
                               "cpu_count": os.cpu_count(), "settings": settings_record, "flows": flows, "rows": rows},
                   allow_nan=True)
    if args.plot is not None and rows:
        plot(rows, args.plot)
    if args.frames_npz is not None and frames:
        from nst_jax.files import atomic_write

        arrays = {mode: np.round(np.stack(sequence[:-1]) * 255).astype(np.uint8) for mode, sequence in frames.items()}
        atomic_write(args.frames_npz, lambda handle: np.savez_compressed(handle, **arrays))
    if args.strip is not None and frames:
        count = min(len(sequence) for sequence in frames.values()) - 1
        strip(frames, args.strip, sorted({0, count // 2, count - 1}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
