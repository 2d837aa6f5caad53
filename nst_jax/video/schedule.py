"""In what order a clip's frames are optimized, from what start and against which warped neighbours.

A schedule is a list of ``Step``s; a step is a group of frames optimized together (one batched program, its members
spread over the devices) that all read the state as it was before the step, and write their results back after it.

``single`` -- Ruder et al.'s single pass: frame by frame; frame i starts from frame i-1's result warped (``init``)
    and is tied by the temporal term to the results of frames i - j, j in ``long_term`` (e.g. 1, 2, 4).
``sweep`` -- Ruder et al.'s multi-pass algorithm (``artistic_video_multiPass.lua``): ``passes`` passes of
    ``pass_iterations`` over every frame, alternately forwards and backwards; from the second pass on, each frame
    starts from its own last result blended with its neighbour in the pass's direction warped onto it,
    (x + c w) / (1 + c), and from pass ``temporal_from_pass`` on the temporal term ties it to that neighbour. The
    neighbour is the current pass's result (a Gauss-Seidel sweep): one frame at a time.
``jacobi`` -- the same passes with every frame of a pass in one step, each reading its neighbour's result of the
    previous pass: one batch per pass, so the frames of a pass run side by side under ``vmap`` and over every device,
    but a result moves one frame per pass instead of across the clip.
``red-black`` -- the middle ground: each pass in two steps, the even frames, then the odd ones reading the even
    frames' new results; a result moves two frames per pass.

Departures from the reference: its first pass starts every frame from noise (``-init random``); here the first pass
of ``sweep`` starts from ``frame_init`` (the previous frame warped by default; the Lua code allows it too, and ``first``
is the reference's), and the batched schedules start every frame of pass 1 from the content (a warped neighbour does
not exist yet; ``first``: from ``StyleConfig.init``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import numpy as np

SCHEDULES: tuple[str, ...] = ("single", "sweep", "jacobi", "red-black")
MULTI_PASS: tuple[str, ...] = SCHEDULES[1:]


@dataclasses.dataclass(frozen=True)
class Task:
    """One frame of a step: what it is tied to and where it starts."""

    frame: int
    references: tuple[int, ...]
    """Frames whose current results, warped onto this one, are its temporal targets (closest first); the first is
    also what ``start`` warps or blends."""
    start: str
    """``first`` (``StyleConfig.init``), ``prev-warped``, ``prev``, ``content``, ``blend`` (own last result blended
    with the first reference warped) or ``own`` (own last result as it is)."""
    temporal: bool
    """Whether the temporal term is on (its weight is zero otherwise, with the same program)."""


@dataclasses.dataclass(frozen=True)
class Step:
    """Frames optimized together for ``iterations`` in pass ``pass_index`` (1-based; 1 for the single pass)."""

    pass_index: int
    iterations: int
    tasks: tuple[Task, ...]
    stop_early: bool = False
    """Whether the relative-change stop applies (the single pass's frames)."""

    @property
    def frames(self) -> tuple[int, ...]:
        """The frames of the step."""
        return tuple(task.frame for task in self.tasks)


def single_pass(count: int, *, long_term: Sequence[int], init: str, first_iterations: int, iterations: int
                ) -> list[Step]:
    """Ruder et al.'s single pass over ``count`` frames: one step per frame, tied to frames i - j for j in
    ``long_term`` that exist; frame 0 starts from ``StyleConfig.init`` for ``first_iterations``, the others from
    ``init`` for ``iterations``."""
    steps = []
    for frame in range(count):
        references = tuple(frame - j for j in sorted(long_term) if frame - j >= 0)
        start = "first" if frame == 0 else init
        steps.append(Step(1, first_iterations if frame == 0 else iterations,
                          (Task(frame, references, start, bool(references)),), stop_early=True))
    return steps


def multi_pass(count: int, *, schedule: str, passes: int, iterations: int, temporal_from_pass: int, init: str
               ) -> list[Step]:
    """The steps of a multi-pass ``schedule`` (``sweep``, ``jacobi``, ``red-black``) over ``count`` frames: odd
    passes tie each frame to the previous one, even passes to the next (Ruder et al. alternate the direction)."""
    if schedule not in MULTI_PASS:
        raise ValueError(f"unknown multi-pass schedule {schedule!r}; choose {', '.join(MULTI_PASS)}")
    steps = []
    for pass_index in range(1, passes + 1):
        forward = pass_index % 2 == 1
        order = range(count) if forward else range(count - 1, -1, -1)
        tasks = [_pass_task(frame, count, pass_index, forward, schedule, temporal_from_pass, init) for frame in order]
        if schedule == "sweep":
            steps += [Step(pass_index, iterations, (task,)) for task in tasks]
        elif schedule == "jacobi":
            steps.append(Step(pass_index, iterations, tuple(tasks)))
        else:
            for parity in (0, 1):
                group = tuple(task for task in tasks if task.frame % 2 == parity)
                if group:
                    steps.append(Step(pass_index, iterations, group))
    return steps


def _pass_task(frame: int, count: int, pass_index: int, forward: bool, schedule: str, temporal_from_pass: int,
               init: str) -> Task:
    """Frame ``frame``'s task in pass ``pass_index``: tied to the previous frame (``forward``) or the next."""
    neighbour = frame - 1 if forward else frame + 1
    references = (neighbour,) if 0 <= neighbour < count else ()
    if pass_index == 1:
        start = _first_pass_start(init, schedule, bool(references))
    else:
        start = "blend" if references else "own"
    return Task(frame, references, start, bool(references) and pass_index >= temporal_from_pass)


def _first_pass_start(init: str, schedule: str, has_neighbour: bool) -> str:
    """Where a frame starts in the first pass: ``init`` in a sweep (``first`` without a neighbour to warp); in a
    batched schedule, where no neighbour has a result yet, ``StyleConfig.init`` if ``init`` is ``first``, else the
    content: like a warped neighbour, it moves with the scene (measured on 12 frames at 64 px, 6 Jacobi passes: a
    warp error 4.5x lower than from noise, 7.0e-3 against 3.1e-2)."""
    if schedule == "sweep":
        return init if has_neighbour else "first"
    return "first" if init == "first" else "content"


def relative_change_stop(interval: int, tolerance: float) -> Callable[[np.ndarray], bool]:
    """Ruder et al.'s stopping rule (their ``lbfgs.lua``'s ``tolFunRelative``): every ``interval`` iterations the
    loss is compared with the loss ``interval`` iterations before; the run stops once it changed by less than
    ``tolerance`` of that. A function of the totals of every iteration so far (entry k: after iteration k + 1)."""

    def converged(totals: np.ndarray) -> bool:
        for done in range(2 * interval, len(totals) + 1, interval):
            before, after = float(totals[done - interval - 1]), float(totals[done - 1])
            if np.isfinite(before) and np.isfinite(after) and abs(after - before) < tolerance * abs(before):
                return True
        return False

    return converged
