"""The schedules of a clip (nst_jax.video.schedule): Ruder et al.'s single pass and multi-pass sweep, and the
batched Jacobi and red-black passes; and the relative-change stop, which ends a run early."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from nst_jax.losses import LossInputs, LossTerms, LossWeights, StyleTargets
from nst_jax.optimize import SolverSpec, Status, minimize
from nst_jax.video.schedule import multi_pass, relative_change_stop, single_pass


def test_the_single_pass_ties_each_frame_to_the_earlier_ones_that_exist():
    steps = single_pass(5, long_term=(1, 2, 4), init="prev-warped", first_iterations=20, iterations=10)
    assert [step.frames for step in steps] == [(0,), (1,), (2,), (3,), (4,)]
    assert [step.tasks[0].references for step in steps] == [(), (0,), (1, 0), (2, 1), (3, 2, 0)]
    assert [step.tasks[0].start for step in steps] == ["first"] + ["prev-warped"] * 4
    assert [step.iterations for step in steps] == [20, 10, 10, 10, 10]
    assert [step.tasks[0].temporal for step in steps] == [False, True, True, True, True]
    assert all(step.stop_early for step in steps)


def test_the_sweep_alternates_directions_blends_and_adds_the_temporal_term_late():
    """Ruder et al.'s artistic_video_multiPass.lua: odd passes forwards from frame 0, even ones backwards; from the
    second pass each frame starts blended with its neighbour in the pass's direction; the temporal term from pass
    ``temporal_from_pass``."""
    steps = multi_pass(3, schedule="sweep", passes=3, iterations=7, temporal_from_pass=3, init="first")
    assert [(step.pass_index, step.frames) for step in steps] == [
        (1, (0,)), (1, (1,)), (1, (2,)), (2, (2,)), (2, (1,)), (2, (0,)), (3, (0,)), (3, (1,)), (3, (2,))]
    tasks = [step.tasks[0] for step in steps]
    assert [task.references for task in tasks] == [(), (0,), (1,), (), (2,), (1,), (), (0,), (1,)]
    assert [task.start for task in tasks] == ["first"] * 3 + ["own", "blend", "blend", "own", "blend", "blend"]
    assert [task.temporal for task in tasks] == [False] * 6 + [False, True, True]
    assert {step.iterations for step in steps} == {7} and not any(step.stop_early for step in steps)
    warped = multi_pass(3, schedule="sweep", passes=1, iterations=7, temporal_from_pass=8, init="prev-warped")
    assert [step.tasks[0].start for step in warped] == ["first", "prev-warped", "prev-warped"]


def test_batched_passes_group_the_frames():
    jacobi = multi_pass(4, schedule="jacobi", passes=2, iterations=5, temporal_from_pass=2, init="prev-warped")
    assert [(step.pass_index, sorted(step.frames)) for step in jacobi] == [(1, [0, 1, 2, 3]), (2, [0, 1, 2, 3])]
    assert {task.start for task in jacobi[0].tasks} == {"content"}  # no neighbour has a result yet
    noise = multi_pass(4, schedule="jacobi", passes=1, iterations=5, temporal_from_pass=2, init="first")
    assert {task.start for task in noise[0].tasks} == {"first"}
    assert {task.frame: task.references for task in jacobi[1].tasks} == {0: (1,), 1: (2,), 2: (3,), 3: ()}
    red_black = multi_pass(5, schedule="red-black", passes=2, iterations=5, temporal_from_pass=1, init="content")
    assert [(step.pass_index, sorted(step.frames)) for step in red_black] == [
        (1, [0, 2, 4]), (1, [1, 3]), (2, [0, 2, 4]), (2, [1, 3])]
    assert {task.start for task in red_black[0].tasks} == {"content"}
    with pytest.raises(ValueError, match="unknown multi-pass schedule"):
        multi_pass(4, schedule="single", passes=2, iterations=5, temporal_from_pass=2, init="first")


def test_the_relative_change_stop_compares_every_interval():
    """lbfgs.lua: at iterations 2k, 3k, ... (k the interval) the loss against k iterations before."""
    stop = relative_change_stop(10, 1e-3)
    falling = 100.0 * 0.9 ** np.arange(40)  # 10 % per iteration: never
    assert not stop(falling)
    flat = np.concatenate([falling[:25], np.full(15, falling[24])])  # flat from iteration 25: 30 vs 20 still moves
    assert not stop(flat[:30]) and stop(flat[:40])
    assert not stop(np.full(19, 5.0)) and stop(np.full(20, 5.0))  # the first comparison is at 2 intervals


def test_a_run_stops_once_converged():
    """``minimize``'s converged rule ends the run after the chunk where it first holds (status completed)."""
    target = jnp.full((4, 4, 3), 0.5)

    def loss(image, inputs):
        distance = jnp.sum(jnp.square(image - target)) + 1.0
        return LossTerms(total=distance, content=distance, style=jnp.zeros(()), tv=jnp.zeros(()))

    inputs = LossInputs({}, StyleTargets({}, {}), LossWeights(jnp.float32(1), jnp.float32(0), jnp.float32(0)))
    done = minimize(loss, jnp.zeros((4, 4, 3)), inputs, spec=SolverSpec("adam", learning_rate=0.1), iterations=400,
                    chunk_size=10, converged=relative_change_stop(20, 1e-3))
    assert done.status == Status.COMPLETED and 40 <= done.iterations < 400 and done.iterations % 10 == 0
    assert relative_change_stop(20, 1e-3)(done.history.total)
