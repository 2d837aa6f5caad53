"""Where a warped frame can be trusted: Ruder et al.'s forward-backward consistency check and long-term weights.

``reliability(flow, other)`` ports ``consistencyChecker.cpp`` of manuelruder/artistic-videos (which takes the
inequalities from Sundaram, Brox & Keutzer 2010), vectorized. For each pixel x of the flow's source frame, with
``flow`` = b (say frame i to frame i-1) and ``other`` = f (frame i-1 to frame i):

* c = 0 if x + b(x) leaves the image (its bilinear neighbours x1 = floor, x1 + 1 must lie inside);
* disocclusion, c = -1, where ``|b + w~|^2 >= 0.01 (|b|^2 + |w~|^2) + 0.5`` with w~ = f(x + b(x)) read bilinearly:
  going there and back does not come home;
* motion boundary, c = 0, where ``|grad b_u|^2 + |grad b_v|^2 > 0.01 |b|^2 + 0.002`` (central differences,
  mirrored at the borders);
* else c = 1.

Then a Gaussian blur (sigma 0.8, 5 taps, normalized, mirrored borders) and clipping to [0, 1]. The -1 (the
reference's -255 of 255) makes the blur spread the disocclusion outwards instead of softening it. Departures: the
reference writes the weights as an 8-bit PGM that the Lua code reads back in steps of 1/255, these stay float32;
and a flow shorter than 2 pixels on a side (the derivatives and the bilinear read need two) is refused.

``long_term_weights`` combines the checks of several earlier frames (Ruder et al. 2018, sec. 3.3): each pixel is
tied to the closest earlier frame where it is visible.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from nst_jax.video.flow import sample

DISOCCLUDED = -1.0
"""What a disoccluded pixel gets before the blur (the reference's -255 on its 0..255 scale)."""
MOTION_BOUNDARY = 0.0
"""What a motion boundary gets (the reference's ``MOTION_BOUNDARIE_VALUE`` 0, uncertain)."""
SMOOTH_SIGMA = 0.8
"""The reference's ``SMOOTH_STRENGH``: the Gaussian's deviation in pixels (with its precision 2: 5 taps)."""


def gaussian_taps(sigma: float = SMOOTH_SIGMA, precision: float = 2.0) -> np.ndarray:
    """The reference's ``CSmooth(sigma, precision)``: 2 ceil(precision sigma) + 1 Gaussian taps summing to 1."""
    radius = int(np.ceil(precision * sigma))
    taps = np.exp(-np.arange(-radius, radius + 1, dtype=np.float64) ** 2 / (2 * sigma**2))
    return taps / taps.sum()


def _filter(values: np.ndarray, taps: np.ndarray, axis: int) -> np.ndarray:
    """``values`` correlated with ``taps`` (odd length, centred) along ``axis``, mirrored at the borders as the
    reference's ``NFilter::filter`` does (index -1 reads 0, index n reads n - 1)."""
    radius = len(taps) // 2
    pad = [(0, 0)] * values.ndim
    pad[axis] = (radius, radius)
    padded = np.pad(values, pad, mode="symmetric")
    length = values.shape[axis]
    return sum(tap * np.take(padded, np.arange(offset, offset + length), axis=axis)
               for offset, tap in enumerate(taps))


def motion_edges(flow: np.ndarray) -> np.ndarray:
    """|grad u|^2 + |grad v|^2 of an (H, W, 2) flow by central differences (``CDerivative(3)``), mirrored borders."""
    derivative = np.asarray([-0.5, 0.0, 0.5])
    flow = np.asarray(flow, np.float64)
    dx, dy = _filter(flow, derivative, axis=1), _filter(flow, derivative, axis=0)
    return np.sum(dx**2 + dy**2, axis=-1)


def reliability(flow: np.ndarray, other: np.ndarray, *, blur: bool = True) -> np.ndarray:
    """Ruder et al.'s per-pixel weights c in [0, 1] (H, W) of ``flow`` (frame a to b) checked against ``other``
    (b to a); ``blur``: the reference's Gaussian (without it, the raw values -1, 0 and 1)."""
    flow, other = np.asarray(flow, np.float32), np.asarray(other, np.float32)
    if flow.shape != other.shape or flow.ndim != 3 or flow.shape[2] != 2:
        raise ValueError(f"flows must be (H, W, 2) of one shape, got {flow.shape} and {other.shape}")
    height, width = flow.shape[:2]
    if height < 2 or width < 2:
        raise ValueError(f"flows must be at least 2x2 pixels, got {height}x{width}")
    columns, rows = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    bx, by = columns + flow[..., 0], rows + flow[..., 1]
    x1, y1 = np.floor(bx), np.floor(by)
    inside = (x1 >= 0) & (x1 + 1 < width) & (y1 >= 0) & (y1 + 1 < height)
    back, _ = sample(other, bx, by)  # w~; its edge reads outside the image are masked by ``inside``
    u, v = back[..., 0].astype(np.float64), back[..., 1].astype(np.float64)
    u2, v2 = flow[..., 0].astype(np.float64), flow[..., 1].astype(np.float64)
    cx, cy = bx + u, by + v
    loop = (cx - columns) ** 2 + (cy - rows) ** 2
    disoccluded = loop >= 0.01 * (u2**2 + v2**2 + u**2 + v**2) + 0.5
    boundary = motion_edges(flow) > 0.01 * (u2**2 + v2**2) + 0.002
    weights = np.where(disoccluded, DISOCCLUDED, np.where(boundary, MOTION_BOUNDARY, 1.0))
    weights = np.where(inside, weights, 0.0)
    if blur:
        taps = gaussian_taps()
        weights = np.clip(_filter(_filter(weights, taps, axis=1), taps, axis=0), 0.0, 1.0)
    return weights.astype(np.float32)


def long_term_weights(checks: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Ruder et al.'s long-term weights (their ``closestFirst``) from the checks c(i - j) of the earlier frames,
    closest first: c_long(i - j) = max(c(i - j) - sum_{k < j} c(i - k), 0), each pixel tied to the closest earlier
    frame where it is visible.

    Departure: the paper's formula, subtracting the earlier frames' checks as they are; the Lua code subtracts them
    after their own subtraction (``processFlowWeights`` updates the table in place), which is the same for checks
    of 0 and 1 and differs only on the blurred edges, where it gives the farther frame a little more weight.
    """
    combined, total = [], None
    for check in checks:
        check = np.asarray(check, np.float32)
        combined.append(check if total is None else np.maximum(check - total, 0.0))
        total = check if total is None else total + check
    return combined
