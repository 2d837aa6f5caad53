"""Flow fields and their weights between the frames of a clip, each pair computed once, ahead of its use.

``Motion.prefetch`` queues pairs of frames for a background thread (OpenCV and NumPy release the GIL, so the flows
of the next frames are computed while the device optimizes the current one); ``Motion.between`` waits for a pair
if it is not done yet. A pair's two flows give both directions' weights at once, so the backward passes of a
multi-pass schedule reuse the forward passes' flows. With a work folder the fields are cached there (``.flo``).
"""

from __future__ import annotations

import concurrent.futures
import threading
import time
from collections.abc import Iterable, Sequence

import numpy as np

from nst_jax.video.consistency import reliability
from nst_jax.video.flow import optical_flow
from nst_jax.video.workdir import WorkDir


class Motion:
    """The flows between the frames ``frames`` ((H, W, 3) RGB in [0, 1], or uint8) by ``method``."""

    def __init__(self, frames: Sequence[np.ndarray], method: str, work_dir: WorkDir | None = None) -> None:
        self.frames, self.method, self.work_dir = frames, method, work_dir
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="nst_jax-flow")
        self._futures: dict[tuple[int, int], concurrent.futures.Future] = {}
        self._lock = threading.Lock()
        self.seconds = 0.0
        """Time spent computing flows and weights (in the background thread)."""

    def __enter__(self) -> "Motion":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Drop the queued pairs and wait for the one in progress."""
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _frame(self, index: int) -> np.ndarray:
        frame = self.frames[index]
        return frame.astype(np.float32) / 255.0 if frame.dtype == np.uint8 else frame

    def _compute(self, low: int, high: int) -> dict[tuple[int, int], tuple[np.ndarray, np.ndarray]]:
        """Both directions of the pair (low, high): each flow with its weights (from the cache if it has them)."""
        cached = None if self.work_dir is None else (self.work_dir.load_flow(low, high),
                                                     self.work_dir.load_flow(high, low))
        if cached is not None and all(part is not None for part in cached):
            return {(low, high): cached[0], (high, low): cached[1]}
        began = time.perf_counter()
        forward = optical_flow(self._frame(low), self._frame(high), self.method)
        backward = optical_flow(self._frame(high), self._frame(low), self.method)
        fields = {(low, high): (forward, reliability(forward, backward)),
                  (high, low): (backward, reliability(backward, forward))}
        self.seconds += time.perf_counter() - began
        if self.work_dir is not None:
            for (first, second), (flow, weights) in fields.items():
                self.work_dir.save_flow(first, second, flow, weights)
        return fields

    def _future(self, first: int, second: int) -> concurrent.futures.Future:
        key = (min(first, second), max(first, second))
        with self._lock:
            if key not in self._futures:
                self._futures[key] = self._pool.submit(self._compute, *key)
            return self._futures[key]

    def prefetch(self, pairs: Iterable[tuple[int, int]]) -> None:
        """Queue the pairs (in this order) for the background thread."""
        for first, second in pairs:
            self._future(first, second)

    def release(self, first: int, second: int) -> None:
        """Forget the pair (first, second) (a later ``between`` computes or loads it again): a single pass uses
        each pair once, and a long clip's fields would fill the memory."""
        with self._lock:
            self._futures.pop((min(first, second), max(first, second)), None)

    def between(self, first: int, second: int) -> tuple[np.ndarray, np.ndarray]:
        """The flow from frame ``first`` to frame ``second`` (first(x) ~ second(x + flow(x))) and its consistency
        weights (``consistency.reliability``), waiting for them if needed."""
        return self._future(first, second).result()[(first, second)]
