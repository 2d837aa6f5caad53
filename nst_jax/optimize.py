"""Optimizers over the image (VGG frozen) and the compiled loop that runs them in chunks on the device.

``lbfgs``  -- L-BFGS: nst_jax's own (``backend="nst_jax"``, ``nst_jax.lbfgs``: written to batch under ``vmap``, with a
              zoom, backtracking or no line search), or optax's or jaxopt's, each with a zoom (strong Wolfe) search.
``lbfgsb`` -- jaxopt's L-BFGS-B with every pixel kept in [0, 1] (optax has no bounded L-BFGS).
``adam``   -- optax's Adam.

A chunk of iterations runs inside one ``jax.lax.while_loop`` under ``jit``; Python sees the state only between
chunks (progress, snapshots), so a run of ``n`` iterations makes ``ceil(n / chunk_size)`` dispatches. The chunk
length is traced, so a short last chunk does not recompile; with ``progress_seconds`` the chunks are shortened so
that Python hears from the run about that often (never past a multiple of ``chunk_size``). A non-finite loss or
image stops the chunk and keeps the last finite iterate.

What is compiled is keyed by what changes the program: the loss (a hashable ``LossSpec``, or a function), the
optimizer, its backend and history size. Adam's learning rate is traced (it lives in the optimizer state), so a
run with another learning rate reuses the compilation.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import threading
import time
import warnings
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from nst_jax import lbfgs
from nst_jax.lbfgs import LINE_SEARCHES
from nst_jax.losses import LossInputs, LossSpec, LossTerms, loss_function
from nst_jax.mesh import agree_min, gather

LossFn = Callable[[jax.Array, LossInputs], LossTerms]

OPTIMIZERS: tuple[str, ...] = ("lbfgs", "lbfgsb", "adam")
LBFGS_BACKENDS: tuple[str, ...] = ("nst_jax", "optax", "jaxopt")
"""L-BFGS implementations; the first is the default."""
HISTORY_SIZE = 10
"""L-BFGS memory: past (step, gradient change) pairs kept (SciPy's, jaxopt's and optax's default)."""
LEARNING_RATE = 0.02
"""Adam's step size in image units (pixels in [0, 1])."""
STEP_SIZE = 1.0
"""L-BFGS's step: 1, the quasi-Newton step (the first step of a run scaled by min(1, 1/|g|_1), as torch does)."""
CHUNK_SIZE = 20
"""Iterations per compiled call when nothing asks for more frequent progress."""


class Status(str, enum.Enum):
    """How a run ended. A ``str``, so ``status == "completed"`` and JSON keep working."""

    COMPLETED = "completed"
    NON_FINITE = "non-finite"
    INTERRUPTED = "interrupted"

    def __str__(self) -> str:
        return self.value


def import_jaxopt() -> Any:
    """jaxopt, imported with its deprecation warning silenced (it is unmaintained; users need not see it)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import jaxopt
    return jaxopt


class Solver(NamedTuple):
    """``init(x, inputs, rate) -> state`` and ``step(x, state, inputs) -> (x, state, terms, evaluations)``; ``rate``
    is the traced step scale (Adam's learning rate, L-BFGS's step size; others ignore it).

    ``terms_at_start``: the terms a step returns are those of the iterate it started from (Adam), not of the
    iterate it produced (L-BFGS).
    """

    init: Callable[[jax.Array, LossInputs, jax.Array], Any]
    step: Callable[[jax.Array, Any, LossInputs], tuple[jax.Array, Any, LossTerms, jax.Array]]
    terms_at_start: bool = False


@dataclasses.dataclass(frozen=True)
class SolverSpec:
    """The optimizer of a run (``StyleConfig``'s optimizer fields; defaults are the module's constants)."""

    optimizer: str = OPTIMIZERS[0]
    lbfgs_backend: str = LBFGS_BACKENDS[0]
    history_size: int = HISTORY_SIZE
    learning_rate: float = LEARNING_RATE
    line_search: str = LINE_SEARCHES[0]
    step_size: float = STEP_SIZE

    @property
    def compile_key(self) -> tuple[str, str, int, str]:
        """What changes the compiled program: everything but the (traced) learning rate and step size."""
        return self.optimizer, self.lbfgs_backend, self.history_size, self.line_search

    @property
    def rate(self) -> float:
        """The traced step scale ``Solver.init`` takes: Adam's learning rate, else the L-BFGS step size."""
        return self.learning_rate if self.optimizer == "adam" else self.step_size


# jaxopt starts its first line search at max_stepsize and never goes past it. Its default, 1.0, stalls L-BFGS
# on the normalized loss, whose gradients are tiny: the first, steepest-descent step must be far longer
# (torch's strong-Wolfe search extrapolates without a cap). Measured in benchmarks/NOTES.md.
JAXOPT_MAX_STEPSIZE = 1e6


def _jaxopt_lbfgs(loss_fn: LossFn, history_size: int, bounded: bool) -> Solver:
    """L-BFGS (or L-BFGS-B in [0, 1]) from jaxopt, zoom line search, the loss terms as aux."""
    jaxopt = import_jaxopt()

    def objective(x: jax.Array, inputs: LossInputs) -> tuple[jax.Array, LossTerms]:
        terms = loss_fn(x, inputs)
        return terms.total, terms

    if bounded:
        solver = jaxopt.LBFGSB(fun=objective, has_aux=True, history_size=history_size, maxiter=1 << 30)

        def bounds(x: jax.Array) -> tuple[jax.Array, jax.Array]:
            return jnp.zeros_like(x), jnp.ones_like(x)

        init = lambda x, inputs, rate: solver.init_state(x, bounds(x), inputs)  # noqa: E731
        update = lambda x, state, inputs: solver.update(x, state, bounds(x), inputs)  # noqa: E731
    else:
        solver = jaxopt.LBFGS(
            fun=objective, has_aux=True, history_size=history_size, maxiter=1 << 30, linesearch="zoom",
            max_stepsize=JAXOPT_MAX_STEPSIZE,
        )
        init = lambda x, inputs, rate: solver.init_state(x, inputs)  # noqa: E731
        update = solver.update

    def step(x: jax.Array, state: Any, inputs: LossInputs) -> tuple[jax.Array, Any, LossTerms, jax.Array]:
        new_x, new_state = update(x, state, inputs)
        if bounded:  # jaxopt's projection can leave a pixel a rounding error outside the box (-1.8e-11 measured)
            new_x = jnp.clip(new_x, 0.0, 1.0)
        evaluations = new_state.num_fun_eval - state.num_fun_eval
        return new_x, new_state, new_state.aux, evaluations

    return Solver(init=init, step=step)


def _optax_lbfgs(loss_fn: LossFn, history_size: int) -> Solver:
    """optax.lbfgs with its zoom line search; the loss terms come from a forward pass at the accepted iterate."""
    optimizer = optax.lbfgs(memory_size=history_size)

    def step(x: jax.Array, state: Any, inputs: LossInputs) -> tuple[jax.Array, Any, LossTerms, jax.Array]:
        value_fn = lambda image: loss_fn(image, inputs).total  # noqa: E731
        value, grad = optax.value_and_grad_from_state(value_fn)(x, state=state)
        updates, state = optimizer.update(grad, state, x, value=value, grad=grad, value_fn=value_fn)
        x = optax.apply_updates(x, updates)
        steps = optax.tree.get(state, "info").num_linesearch_steps
        return x, state, loss_fn(x, inputs), jnp.asarray(steps, jnp.int32)

    return Solver(init=lambda x, inputs, rate: optimizer.init(x), step=step)


class AdamState(NamedTuple):
    """``optax.scale_by_adam``'s state and the learning rate, traced (a new one does not recompile)."""

    moments: Any
    learning_rate: jax.Array


def _nst_jax_lbfgs(loss_fn: LossFn, history_size: int, line_search: str) -> Solver:
    """nst_jax's L-BFGS (``nst_jax.lbfgs``): one evaluation per trial step, the terms from the same evaluation."""
    step = lbfgs.make_step(loss_fn, line_search)

    def init(x: jax.Array, inputs: LossInputs, rate: jax.Array) -> lbfgs.State:
        return lbfgs.init(loss_fn, x, inputs, history_size, rate)

    def solver_step(x: jax.Array, state: lbfgs.State, inputs: LossInputs) -> tuple[jax.Array, Any, LossTerms, Any]:
        state, evaluations = step(state, inputs)
        return state.point.x, state, state.point.terms, evaluations

    return Solver(init=init, step=solver_step)


def _adam(loss_fn: LossFn) -> Solver:
    """Adam as ``optax.adam`` computes it (``scale_by_adam``, then minus the learning rate times that), with the
    learning rate in the state; the terms are those of each step's start."""
    # Not optax.inject_hyperparams(optax.adam): measured on a 3-member sweep, its compiled step differs from the
    # 1-member one by rounding, which Adam's normalization of near-zero gradients amplified to 5e-3 per pixel.
    moments = optax.scale_by_adam()

    def init(x: jax.Array, inputs: LossInputs, learning_rate: jax.Array) -> AdamState:
        return AdamState(moments.init(x), jnp.asarray(learning_rate, jnp.float32))

    def step(x: jax.Array, state: AdamState, inputs: LossInputs) -> tuple[jax.Array, AdamState, LossTerms, jax.Array]:
        (_, terms), grad = jax.value_and_grad(lambda image: _with_aux(loss_fn(image, inputs)), has_aux=True)(x)
        direction, moment_state = moments.update(grad, state.moments, x)
        new_x = x - state.learning_rate * direction
        return new_x, AdamState(moment_state, state.learning_rate), terms, jnp.asarray(1, jnp.int32)

    return Solver(init=init, step=step, terms_at_start=True)


def _with_aux(terms: LossTerms) -> tuple[jax.Array, LossTerms]:
    """(total, terms), the form ``jax.value_and_grad(..., has_aux=True)`` wants."""
    return terms.total, terms


def make_solver(loss_fn: LossFn, spec: SolverSpec) -> Solver:
    """The solver named by ``spec`` for ``loss_fn``."""
    if spec.optimizer == "adam":
        return _adam(loss_fn)
    if spec.optimizer == "lbfgsb":
        return _jaxopt_lbfgs(loss_fn, spec.history_size, bounded=True)
    if spec.optimizer == "lbfgs":
        if spec.lbfgs_backend == "optax":
            return _optax_lbfgs(loss_fn, spec.history_size)
        if spec.lbfgs_backend == "jaxopt":
            return _jaxopt_lbfgs(loss_fn, spec.history_size, bounded=False)
        if spec.lbfgs_backend == "nst_jax":
            return _nst_jax_lbfgs(loss_fn, spec.history_size, spec.line_search)
        raise ValueError(f"unknown L-BFGS backend {spec.lbfgs_backend!r}; choose {' or '.join(LBFGS_BACKENDS)}")
    raise ValueError(f"unknown optimizer {spec.optimizer!r}; choose {', '.join(OPTIMIZERS)}")


class ChunkOutput(NamedTuple):
    """What one compiled chunk returns: the new iterate and state, per-iteration records and finite flags."""

    x: jax.Array
    state: Any
    terms: LossTerms
    evaluations: jax.Array
    steps: jax.Array
    finite: jax.Array


def _where(flag: jax.Array, new: Any, old: Any) -> Any:
    """``new`` where ``flag`` holds, else ``old``, leaf by leaf; ``flag`` is a scalar or one entry per member."""

    def pick(new_leaf: jax.Array, old_leaf: jax.Array) -> jax.Array:
        shaped = jnp.reshape(flag, flag.shape + (1,) * (jnp.ndim(new_leaf) - flag.ndim))
        return jnp.where(shaped, new_leaf, old_leaf)

    return jax.tree_util.tree_map(pick, new, old)


def run_chunk(
    solver: Solver,
    batched: bool,
    x: jax.Array,
    state: Any,
    inputs: LossInputs,
    num_steps: jax.Array,
    capacity: int,
) -> ChunkOutput:
    """Up to ``num_steps`` (<= ``capacity``) solver steps in a ``lax.while_loop``.

    A member whose step turns non-finite keeps its last finite iterate and state from then on (for a solver
    whose terms are those of the step's starting point, the iterate before it); the loop ends early once every
    member has failed. With ``batched``, ``x`` and the records have a leading batch axis.
    """
    members = (x.shape[0],) if batched else ()
    history = LossTerms(*(jnp.full((capacity,) + members, jnp.nan, jnp.float32) for _ in LossTerms._fields))
    evaluations = jnp.zeros((capacity,) + members, jnp.int32)
    image_axes = tuple(range(1 if batched else 0, x.ndim))

    def cond(carry: tuple) -> jax.Array:
        step, *_, finite = carry
        return (step < num_steps) & jnp.any(finite)

    def body(carry: tuple) -> tuple:
        step, current, previous, history, evaluations, finite = carry
        new_x, new_state, terms, used = solver.step(*current, inputs)
        ok = finite & jnp.isfinite(terms.total) & jnp.all(jnp.isfinite(new_x), axis=image_axes)
        kept = previous if solver.terms_at_start else current
        current, previous = _where(ok, (new_x, new_state), kept), _where(ok, current, kept)
        history = LossTerms(*(h.at[step].set(t) for h, t in zip(history, terms)))
        evaluations = evaluations.at[step].set(used)
        return step + jnp.any(ok).astype(step.dtype), current, previous, history, evaluations, ok

    start = (x, state)
    carry = (jnp.asarray(0, jnp.int32), start, start, history, evaluations, jnp.ones(members, bool))
    steps, (x, state), _, history, evaluations, finite = jax.lax.while_loop(cond, body, carry)
    return ChunkOutput(x, state, history, evaluations, steps, finite)


class CompiledSolver(NamedTuple):
    """Jitted ``init``, ``chunk`` and ``terms`` for one loss and solver; reused across runs of the same key."""

    init: Callable[[jax.Array, LossInputs, jax.Array], Any]
    chunk: Callable[..., ChunkOutput]
    terms: Callable[[jax.Array, LossInputs], LossTerms]


def batch_solver(solver: Solver, input_axes: Any) -> Solver:
    """``solver`` vmapped over a leading batch axis of the image, its state and the ``input_axes`` of the inputs.

    Each member runs its own line searches; a member that finishes its search early waits masked inside the
    batched ``while_loop``, so it cannot change the others' results.
    """
    return Solver(
        init=jax.vmap(solver.init, in_axes=(0, input_axes, None)),
        step=jax.vmap(solver.step, in_axes=(0, 0, input_axes)),
        terms_at_start=solver.terms_at_start,
    )


def compile_solver(loss: LossSpec | LossFn, spec: SolverSpec, input_axes: Any = None) -> CompiledSolver:
    """Jitted functions for ``loss`` (a ``LossSpec``, or a loss function) and ``spec``, batched over ``input_axes``
    unless None; equal specs (``spec.compile_key``) share one compilation."""
    return _compile(loss, spec.compile_key, input_axes)


@functools.lru_cache(maxsize=32)
def _compile(loss: LossSpec | LossFn, key: tuple[str, str, int, str], input_axes: Any) -> CompiledSolver:
    """``compile_solver``'s cached body: keyed by the loss (by value for a ``LossSpec``) and the solver's key."""
    loss_fn = loss_function(loss) if isinstance(loss, LossSpec) else loss
    optimizer, backend, history_size, line_search = key
    solver = make_solver(loss_fn, SolverSpec(optimizer, backend, history_size, line_search=line_search))
    batched = input_axes is not None
    terms = loss_fn
    if batched:
        solver = batch_solver(solver, input_axes)
        terms = jax.vmap(loss_fn, in_axes=(0, input_axes))
    # The state is donated: the chunk's new state takes its buffers (L-BFGS: 2 x history + 2 image-sized arrays
    # fewer at the peak). Not the image: an interrupted run returns the last chunk's.
    chunk = jax.jit(functools.partial(run_chunk, solver, batched), static_argnames=("capacity",), donate_argnums=(1,))
    return CompiledSolver(init=jax.jit(solver.init), chunk=chunk, terms=jax.jit(terms))


def forget_compilations() -> None:
    """Drop every compiled solver and JAX's own caches, so that the next run compiles from scratch (how a benchmark
    times a cold compilation in a process that has compiled the same program before)."""
    _compile.cache_clear()
    jax.clear_caches()


@dataclasses.dataclass(frozen=True)
class Progress:
    """Where a run stands after a chunk: iterations done, the latest loss terms, the current image."""

    iteration: int
    iterations: int
    terms: LossTerms
    image: jax.Array
    elapsed: float


@dataclasses.dataclass(frozen=True)
class Optimization:
    """The optimized image, per-iteration loss terms and evaluation counts, and how the run ended."""

    image: jax.Array
    history: LossTerms
    evaluations: np.ndarray
    finite: np.ndarray
    status: Status
    dispatches: int
    elapsed: float

    @property
    def iterations(self) -> int:
        """Iterations completed."""
        return int(self.history.total.shape[0])


def next_chunk(done: int, iterations: int, capacity: int, seconds_per_step: float | None,
               progress_seconds: float | None) -> int:
    """Steps of the next chunk: ``capacity``, or fewer so that a chunk takes about ``progress_seconds`` (one step
    first, while the speed is unknown), never past the next multiple of ``capacity`` (snapshots fall there)."""
    steps = capacity
    if progress_seconds is not None:
        steps = 1 if seconds_per_step is None else max(1, min(capacity, int(progress_seconds / seconds_per_step)))
    return min(steps, capacity - done % capacity, iterations - done)


def minimize(
    loss: LossSpec | LossFn,
    x0: jax.typing.ArrayLike,
    inputs: LossInputs,
    *,
    spec: SolverSpec,
    iterations: int,
    chunk_size: int = CHUNK_SIZE,
    callback: Callable[[Progress], None] | None = None,
    input_axes: Any = None,
    progress_seconds: float | None = None,
    converged: Callable[[np.ndarray], bool] | None = None,
) -> Optimization:
    """Minimize ``loss(x, inputs).total`` over ``x`` from ``x0`` in compiled chunks of ``chunk_size`` steps.

    ``callback`` runs after every chunk. ``progress_seconds``: shorter chunks, so that it runs about that often
    (the first chunk is one step, which also compiles; chunk ends stay on multiples of ``chunk_size``). Ctrl-C
    between or during chunks, or ``request_stop``, ends the run with status ``interrupted`` and the image of the last
    finished chunk.
    With ``input_axes`` (a ``LossInputs``-shaped prefix of vmap axes), ``x0`` holds a batch of images optimized
    independently as one program; the records then have a member axis, and ``finite`` says which members stayed
    finite. ``converged``: called after every chunk with the totals of every iteration so far; True ends the run
    there (status completed), a stopping rule such as a relative change of the loss.
    """
    if iterations <= 0 or chunk_size <= 0:
        raise ValueError(f"iterations and chunk_size must be positive, got {iterations} and {chunk_size}")
    compiled = compile_solver(loss, spec, input_axes)
    x = jnp.asarray(x0, jnp.float32)
    if spec.optimizer == "lbfgsb":
        x = jnp.clip(x, 0.0, 1.0)
    capacity = min(chunk_size, iterations)
    records: list[tuple[LossTerms, np.ndarray]] = []
    done, dispatches, status = 0, 0, Status.COMPLETED
    finite = np.ones(np.shape(x)[:1] if input_axes is not None else (), bool)
    seconds_per_step: float | None = None
    start = time.perf_counter()
    try:
        state = compiled.init(x, inputs, jnp.float32(spec.rate))
        while done < iterations:
            steps = next_chunk(done, iterations, capacity, seconds_per_step, progress_seconds)
            # Several processes time their chunks apart but must run the same ones, and stop after the same one.
            steps = agree_min(0 if _STOP.is_set() else steps)
            if steps == 0:
                status = Status.INTERRUPTED
                break
            began = time.perf_counter()
            out = compiled.chunk(x, state, inputs, jnp.asarray(steps, jnp.int32), capacity=capacity)
            dispatches += 1
            completed = int(gather(out.steps))
            seconds_per_step = (time.perf_counter() - began) / max(completed, 1)
            x, state = out.x, out.state
            # gather: under jax.distributed a batch's records lie on every process's devices
            terms = LossTerms(*(gather(t)[:completed] for t in out.terms))
            records.append((terms, gather(out.evaluations)[:completed]))
            done += completed
            finite = gather(out.finite)
            if not np.all(finite):
                status = Status.NON_FINITE
                if not np.any(finite) or completed < steps:
                    break
            if callback is not None and completed:
                latest = LossTerms(*(_latest(t) for t in records[-1][0]))
                callback(Progress(done, iterations, latest, x, time.perf_counter() - start))
            if converged is not None and completed and converged(np.concatenate([r[0].total for r in records])):
                break
    except KeyboardInterrupt:
        status = Status.INTERRUPTED
    empty = np.zeros((0,) + finite.shape)
    history = LossTerms(*(np.concatenate([r[0][i] for r in records] or [empty.astype(np.float32)])
                          for i in range(len(LossTerms._fields))))
    evaluations = np.concatenate([r[1] for r in records] or [empty.astype(np.int32)])
    return Optimization(x, history, evaluations, finite, status, dispatches, time.perf_counter() - start)


_STOP = threading.Event()


def request_stop() -> None:
    """End every run at its next chunk boundary with status ``interrupted`` (and no later run start), as Ctrl-C
    does. Under several processes (``jax.distributed``) this is the way to stop: every process stops after the
    same chunk (they agree on each chunk's length), where an exception in one would leave the others waiting in a
    collective."""
    _STOP.set()


def clear_stop() -> None:
    """Let runs go on again after ``request_stop``."""
    _STOP.clear()


def _latest(values: np.ndarray) -> float | np.ndarray:
    """The last record: a float for one image, an array with one entry per member for a batch."""
    last = values[-1]
    return float(last) if np.ndim(last) == 0 else last
