"""The work folder of a video run (``--work-dir``): flow fields and their weights cached, and the results of the
steps done, so that a run stopped by Ctrl-C (or a crash) resumes where it stopped (``--resume``).

Layout: ``manifest.json`` (nst_jax's mark, the keys below, the number of steps done), ``flow/A_B.flo`` (the flow from
frame A to frame B of the clip, Middlebury format, as Ruder et al.'s tools write it) with ``flow/A_B.npy`` (its
consistency weights), and ``frames/I.npy`` (frame I's latest optimized image, float32). Every file is written
atomically, and the manifest after the files it counts, so a crash at any moment leaves a consistent folder.

The flows are kept as long as the ``flow_key`` (the source file, the frames and the size, the flow method) matches;
the frames only when resuming a run whose ``run_key`` (that, plus every setting, the styles and the network) matches.
A folder holding anything else than these is not touched: it must be new, empty, or one nst_jax made.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from nst_jax import files
from nst_jax.video.flow import read_flo, write_flo

MANIFEST = "manifest.json"
KIND = "video work dir"


class WorkDirError(ValueError):
    """A work folder that cannot be used (someone else's, or a resume that does not match it)."""


def _load_manifest(path: Path) -> dict[str, Any] | None:
    """The manifest of an nst_jax work folder, None if there is none; ``WorkDirError`` for a folder with other
    things in it."""
    if path.exists() and not path.is_dir():
        raise WorkDirError(f"--work-dir '{path}' is a file; give a folder")
    manifest = path / MANIFEST
    if manifest.is_file() and files.is_own_json(manifest):
        record = json.loads(manifest.read_text())
        if record.get("kind") == KIND:
            return record
    if path.is_dir() and any(path.iterdir()):
        raise WorkDirError(f"--work-dir '{path}' is not empty and not an nst_jax video work folder; give a new or "
                           "empty folder (nst_jax will not write among files it did not make)")
    return None


class WorkDir:
    """A work folder in use; ``writes``: this process keeps it (process 0 of several only)."""

    def __init__(self, path: str | Path, *, flow_key: dict[str, Any], run_key: dict[str, Any], resume: bool,
                 writes: bool = True) -> None:
        self.path, self.writes = Path(path), writes
        self.flow_key, self.run_key = json.loads(json.dumps(flow_key)), json.loads(json.dumps(run_key))
        record = _load_manifest(self.path)
        self.steps_done = 0
        if resume:
            if record is None or record.get("run_key") != self.run_key:
                what = "holds no run" if record is None else "holds a run with other settings or inputs"
                raise WorkDirError(f"cannot resume: --work-dir '{self.path}' {what}; run without --resume to start "
                                   "over")
            self.steps_done = int(record.get("steps_done", 0))
        if not writes:
            return
        self.path.mkdir(parents=False, exist_ok=True)
        (self.path / "flow").mkdir(exist_ok=True)
        (self.path / "frames").mkdir(exist_ok=True)
        if record is not None and record.get("flow_key") != self.flow_key:
            _clear(self.path / "flow", (".flo", ".npy"))
        if not resume:
            _clear(self.path / "frames", (".npy",))
        self._write_manifest()

    def _write_manifest(self) -> None:
        files.write_json(self.path / MANIFEST, {"kind": KIND, "flow_key": self.flow_key, "run_key": self.run_key,
                                                "steps_done": self.steps_done})

    def _flow_paths(self, first: int, second: int) -> tuple[Path, Path]:
        """The flow file and the weights file of the pair (first, second)."""
        stem = self.path / "flow" / f"{first:06d}_{second:06d}"
        return stem.with_suffix(".flo"), stem.with_suffix(".npy")

    def load_flow(self, first: int, second: int) -> tuple[np.ndarray, np.ndarray] | None:
        """The cached flow from frame ``first`` to ``second`` and its weights, None if not cached (or unreadable)."""
        flow_path, weights_path = self._flow_paths(first, second)
        with contextlib.suppress(OSError, ValueError):
            return read_flo(flow_path), np.load(weights_path)
        return None

    def save_flow(self, first: int, second: int, flow: np.ndarray, weights: np.ndarray) -> None:
        """Cache a flow and its weights (this process keeping the folder only)."""
        if not self.writes:
            return
        flow_path, weights_path = self._flow_paths(first, second)
        with files.atomic_path(flow_path) as temporary:
            write_flo(temporary, flow)
        files.atomic_write(weights_path, lambda handle: np.save(handle, weights))

    def load_frames(self) -> dict[int, np.ndarray]:
        """Every frame result kept, by frame."""
        frames = {}
        for path in sorted((self.path / "frames").glob("*.npy")):
            with contextlib.suppress(ValueError):
                frames[int(path.stem)] = np.load(path)
        return frames

    def save_step(self, results: dict[int, np.ndarray], steps_done: int) -> None:
        """Keep the results of a finished step, then count it done."""
        if not self.writes:
            return
        for frame, image in results.items():
            files.atomic_write(self.path / "frames" / f"{frame:06d}.npy",
                               lambda handle, image=image: np.save(handle, np.asarray(image, np.float32)))
        self.steps_done = steps_done
        self._write_manifest()


def _clear(folder: Path, suffixes: tuple[str, ...]) -> None:
    """Remove the files with ``suffixes`` directly in ``folder`` (what an earlier run left there)."""
    for path in folder.iterdir():
        if path.suffix in suffixes and path.is_file():
            path.unlink()


__all__ = ["WorkDir", "WorkDirError"]
