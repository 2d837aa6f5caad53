"""Optimizers and the chunked compiled loop: convergence, dispatch counts, bounds, non-finite and Ctrl-C."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nst_jax.lbfgs import LINE_SEARCHES
from nst_jax.losses import LossInputs, LossTerms, LossWeights, StyleTargets
from nst_jax.optimize import SolverSpec, compile_solver, minimize, next_chunk

SPECS = {
    **{f"lbfgs-nst_jax-{search}": SolverSpec("lbfgs", "nst_jax", line_search=search) for search in LINE_SEARCHES},
    "lbfgs-jaxopt": SolverSpec("lbfgs", "jaxopt"),
    "lbfgs-optax": SolverSpec("lbfgs", "optax"),
    "lbfgsb": SolverSpec("lbfgsb"),
    "adam": SolverSpec("adam", learning_rate=0.05),
}

CENTER = np.linspace(-0.5, 1.5, 12, dtype=np.float32).reshape(2, 2, 3)
SCALES = np.linspace(1.0, 20.0, 12, dtype=np.float32).reshape(2, 2, 3)


def quadratic(x: jax.Array, inputs: LossInputs) -> LossTerms:
    """An ill-conditioned quadratic with its minimum at CENTER; 'content' holds the distance for checks."""
    distance = jnp.sum(SCALES * jnp.square(x - CENTER))
    return LossTerms(total=inputs.weights.content * distance, content=distance, style=jnp.zeros(()), tv=jnp.zeros(()))


INPUTS = LossInputs({}, StyleTargets({}, {}), LossWeights(jnp.float32(1.0), jnp.float32(0.0), jnp.float32(0.0)))
X0 = np.full((2, 2, 3), 0.5, np.float32)


@pytest.mark.parametrize("name", ["lbfgs-jaxopt", "lbfgs-optax", *(f"lbfgs-nst_jax-{s}" for s in LINE_SEARCHES)])
def test_lbfgs_solves_a_quadratic(name):
    run = minimize(quadratic, X0, INPUTS, spec=SPECS[name], iterations=30, chunk_size=7)
    np.testing.assert_allclose(run.image, CENTER, atol=1e-3)
    assert run.status == "completed"


def test_lbfgsb_stops_at_the_box():
    run = minimize(quadratic, X0, INPUTS, spec=SPECS["lbfgsb"], iterations=30, chunk_size=10)
    np.testing.assert_allclose(run.image, np.clip(CENTER, 0.0, 1.0), atol=1e-3)
    assert float(run.image.min()) >= 0.0 and float(run.image.max()) <= 1.0


def test_chunks_make_one_dispatch_each_and_do_not_recompile():
    compiled = compile_solver(quadratic, SPECS["adam"])
    before = compiled.chunk._cache_size()
    run = minimize(quadratic, X0, INPUTS, spec=SPECS["adam"], iterations=100, chunk_size=30)
    assert run.dispatches == 4  # 30 + 30 + 30 + 10, not 100
    assert run.iterations == 100 and run.history.total.shape == (100,)
    assert compiled.chunk._cache_size() - before <= 1  # the short last chunk reuses the compilation
    minimize(quadratic, X0, INPUTS, spec=SPECS["adam"], iterations=45, chunk_size=30)
    assert compiled.chunk._cache_size() - before <= 1


def test_history_records_every_iteration():
    progress = []
    run = minimize(quadratic, X0, INPUTS, spec=SPECS["adam"], iterations=10, chunk_size=4,
                   callback=progress.append)
    assert [p.iteration for p in progress] == [4, 8, 10]
    assert progress[-1].terms.total == pytest.approx(float(run.history.total[-1]))
    assert np.all(np.isfinite(run.history.total)) and np.all(np.diff(run.history.content) < 0)
    assert list(run.evaluations) == [1] * 10


def test_non_finite_loss_stops_and_keeps_last_finite_image():
    spec = SolverSpec("adam", learning_rate=1e38)
    run = minimize(quadratic, X0, INPUTS, spec=spec, iterations=50, chunk_size=10)
    assert run.status == "non-finite"
    assert run.iterations < 50
    assert np.all(np.isfinite(np.asarray(run.image)))
    assert np.all(np.isfinite(run.history.total))
    # Adam records the loss of each step's starting point: the kept image is the last one whose loss was finite.
    assert np.isfinite(float(quadratic(run.image, INPUTS).total))


def test_interrupt_returns_the_last_chunk():
    def interrupt(progress):
        if progress.iteration >= 6:
            raise KeyboardInterrupt

    run = minimize(quadratic, X0, INPUTS, spec=SPECS["adam"], iterations=30, chunk_size=3, callback=interrupt)
    assert run.status == "interrupted"
    assert run.iterations == 6
    assert np.all(np.isfinite(np.asarray(run.image)))


def test_rejects_non_positive_counts():
    with pytest.raises(ValueError, match="positive"):
        minimize(quadratic, X0, INPUTS, spec=SPECS["adam"], iterations=0)


@pytest.mark.parametrize(
    "done,seconds_per_step,expected",
    [
        (0, None, 1),  # the speed is unknown: one step (it also compiles), then measure
        (1, 0.5, 3),  # 2 s / 0.5 s = 4 steps, but the chunk ends at the next multiple of 4 (snapshots fall there)
        (4, 0.5, 4),
        (4, 10.0, 1),  # slower than the target: one step per chunk
        (4, 0.001, 4),  # fast: never more than chunk_size
        (9, 0.001, 1),  # never past the last iteration
    ],
)
def test_next_chunk_aims_at_the_progress_interval(done, seconds_per_step, expected):
    assert next_chunk(done, 10, 4, seconds_per_step, 2.0) == expected


def test_fixed_chunks_without_a_progress_interval():
    assert [next_chunk(done, 10, 4, 0.5, None) for done in (0, 4, 8)] == [4, 4, 2]


def test_progress_interval_changes_the_chunks_not_the_run():
    progress = []
    fixed = minimize(quadratic, X0, INPUTS, spec=SPECS["adam"], iterations=12, chunk_size=4)
    timed = minimize(quadratic, X0, INPUTS, spec=SPECS["adam"], iterations=12, chunk_size=4, progress_seconds=1e-9,
                     callback=progress.append)
    np.testing.assert_array_equal(timed.history.total, fixed.history.total)
    np.testing.assert_array_equal(np.asarray(timed.image), np.asarray(fixed.image))
    assert [p.iteration for p in progress] == list(range(1, 13)) and timed.dispatches == 12


def test_adams_learning_rate_is_traced():
    slow = minimize(quadratic, X0, INPUTS, spec=SolverSpec("adam", learning_rate=0.01), iterations=5, chunk_size=5)
    fast = minimize(quadratic, X0, INPUTS, spec=SolverSpec("adam", learning_rate=0.1), iterations=5, chunk_size=5)
    assert compile_solver(quadratic, SolverSpec("adam", learning_rate=0.01)) is compile_solver(
        quadratic, SolverSpec("adam", learning_rate=0.1))
    assert fast.history.content[-1] < slow.history.content[-1]  # the step size really differs
