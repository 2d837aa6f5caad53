"""Optical flow between frames (OpenCV's DIS), warping by a flow field, and Middlebury ``.flo`` files.

A flow ``f`` from frame a to frame b gives, for each pixel x of a, where it moved in b: a(x) ~ b(x + f(x)), with
``f[..., 0]`` the horizontal and ``f[..., 1]`` the vertical displacement in pixels (OpenCV's and the ``.flo``
layout). Ruder et al. warp the previous stylized frame onto the current one with the *backward* flow b (current to
previous): w(x) = previous(x + b(x)).

Ruder et al. used DeepFlow (and EpicFlow); OpenCV's DIS (Kroeger et al. 2016, "Fast Optical Flow using Dense
Inverse Search") runs on the CPU in milliseconds. ``FLOW_METHODS`` are DIS settings from fast to fine; their
end-point errors and times, measured by ``python -m benchmarks.video --flow-only``, are in their help (and in
benchmarks/RESULTS.md).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np

VGG_MEAN_PIXEL = (0.485, 0.456, 0.406)
"""What Ruder et al.'s ``warpImage`` puts where a warp samples outside the image: the network's mean pixel (RGB)."""
FLO_MAGIC = 202021.25
"""The first four bytes of a Middlebury ``.flo`` file, as a little-endian float32."""


@dataclasses.dataclass(frozen=True)
class FlowMethod:
    """A DIS setting: OpenCV's preset, then the finest pyramid level and variational refinement iterations."""

    preset: str
    finest_scale: int | None = None
    variational_iterations: int | None = None
    help: str = ""


# Measured at 384x512 on the shared photo (python -m benchmarks.video --flow-only --flow-size 384,512; CPU time per
# field on 2 cores, from whole-process timings of 10 fields): a pan of 3 px, and a block of a painting moving over it.
FLOW_METHODS: dict[str, FlowMethod] = {
    "dis-fast": FlowMethod("FAST", help="DIS fast preset: 15 ms of CPU per 384x512 field; end-point error 0.14 px on "
                           "a pan, 0.39 px around a moving object"),
    "dis-medium": FlowMethod("MEDIUM", help="DIS medium preset: 30 ms; 0.07 and 0.16 px, but misses more "
                             "disocclusions (62 % marked, against 91 %)"),
    "dis-fine": FlowMethod("MEDIUM", finest_scale=0, variational_iterations=10,
                           help="DIS medium down to full resolution with 10 variational iterations: 130 ms; 0.001 and "
                           "0.05 px, as accurate as OpenCV's DeepFlow (Ruder et al.'s) at a fifth of its time"),
}
DEFAULT_FLOW = "dis-fine"


def _cv2():
    """OpenCV, or an ``ImportError`` naming the extra to install."""
    try:
        import cv2
    except ImportError:
        raise ImportError("video needs PyAV and OpenCV: pip install 'nst-jax[video]'") from None
    return cv2


def grey(image: np.ndarray) -> np.ndarray:
    """An (H, W, 3) RGB image in [0, 1] as 8-bit luma (ITU-R 601 weights), the input DIS takes."""
    luma = np.asarray(image, np.float32) @ np.asarray([0.299, 0.587, 0.114], np.float32)
    return np.clip(np.round(luma * 255.0), 0, 255).astype(np.uint8)


def optical_flow(first: np.ndarray, second: np.ndarray, method: str = DEFAULT_FLOW) -> np.ndarray:
    """The (H, W, 2) float32 flow from ``first`` to ``second`` ((H, W, 3) RGB in [0, 1]) by ``method``
    (``FLOW_METHODS``)."""
    if method not in FLOW_METHODS:
        raise ValueError(f"unknown flow method {method!r}; choose {', '.join(FLOW_METHODS)}")
    if np.shape(first) != np.shape(second):
        raise ValueError(f"frames differ in shape: {np.shape(first)} and {np.shape(second)}")
    cv2 = _cv2()
    setting = FLOW_METHODS[method]
    dis = cv2.DISOpticalFlow_create(getattr(cv2, f"DISOPTICAL_FLOW_PRESET_{setting.preset}"))
    if setting.finest_scale is not None:
        dis.setFinestScale(setting.finest_scale)
    if setting.variational_iterations is not None:
        dis.setVariationalRefinementIterations(setting.variational_iterations)
    return dis.calc(grey(first), grey(second), None).astype(np.float32)


def sample(image: np.ndarray, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``image`` (H, W, ...) read bilinearly at positions (``x``, ``y``) (float arrays of one shape), and where they
    lie inside [0, W - 1] x [0, H - 1] (outside, the nearest edge pixels are read)."""
    height, width = image.shape[:2]
    inside = (x >= 0) & (x <= width - 1) & (y >= 0) & (y <= height - 1)
    x, y = np.clip(x, 0, width - 1), np.clip(y, 0, height - 1)
    x0, y0 = np.minimum(np.floor(x).astype(np.int64), width - 2 if width > 1 else 0), \
        np.minimum(np.floor(y).astype(np.int64), height - 2 if height > 1 else 0)
    x1, y1 = np.minimum(x0 + 1, width - 1), np.minimum(y0 + 1, height - 1)
    ax, ay = (x - x0).astype(np.float32), (y - y0).astype(np.float32)
    if image.ndim == 3:
        ax, ay = ax[..., None], ay[..., None]
    top = (1 - ax) * image[y0, x0] + ax * image[y0, x1]
    bottom = (1 - ax) * image[y1, x0] + ax * image[y1, x1]
    return ((1 - ay) * top + ay * bottom).astype(np.float32), inside


def warp(image: np.ndarray, flow: np.ndarray, fill: tuple[float, ...] | None = VGG_MEAN_PIXEL) -> np.ndarray:
    """``image`` (H, W, C) moved by ``flow`` (H, W, 2): out(x) = image(x + flow(x)), bilinear; where x + flow(x)
    leaves the image, ``fill`` (None: the nearest edge pixel)."""
    height, width = flow.shape[:2]
    if image.shape[:2] != (height, width):
        raise ValueError(f"image {image.shape[:2]} and flow {flow.shape[:2]} differ in size")
    columns, rows = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    warped, inside = sample(np.asarray(image, np.float32), columns + flow[..., 0], rows + flow[..., 1])
    if fill is not None:
        warped = np.where(inside[..., None], warped, np.asarray(fill, np.float32))
    return warped


def write_flo(path: str | os.PathLike, flow: np.ndarray) -> None:
    """Write an (H, W, 2) flow as a Middlebury ``.flo`` file (magic, width, height, then u, v per pixel)."""
    flow = np.asarray(flow, "<f4")
    height, width = flow.shape[:2]
    with open(path, "wb") as handle:
        handle.write(np.asarray([FLO_MAGIC], "<f4").tobytes() + np.asarray([width, height], "<i4").tobytes())
        handle.write(flow.tobytes())


def read_flo(path: str | os.PathLike) -> np.ndarray:
    """An (H, W, 2) float32 flow from a Middlebury ``.flo`` file; ``ValueError`` if it is not one."""
    data = Path(path).read_bytes()
    if len(data) < 12 or np.frombuffer(data[:4], "<f4")[0] != FLO_MAGIC:
        raise ValueError(f"'{path}' is not a .flo file")
    width, height = (int(v) for v in np.frombuffer(data[4:12], "<i4"))
    if width <= 0 or height <= 0 or len(data) != 12 + 8 * width * height:
        raise ValueError(f"'{path}' is a truncated or malformed .flo file")
    return np.frombuffer(data[12:], "<f4").reshape(height, width, 2).astype(np.float32)
