"""L-BFGS written to batch: every evaluation of the loss is one value-and-gradient with the loss terms as aux, and no
branch of the program evaluates it on both sides.

Under ``vmap`` a ``lax.cond`` becomes a select that runs both branches, and a batched ``while_loop`` runs until its
slowest member is done. So here each line search is one ``while_loop`` whose body evaluates the loss exactly once, at
one trial step per member, and decides everything else (brackets, interpolation, acceptance) with ``jnp.where`` on
scalars; a member that has accepted its step waits, masked. Per iteration a member costs the evaluations its own search
needs, and a batch the largest of them. The accepted point's value, gradient and terms are carried to the next
iteration, so there is no extra forward pass for the recorded terms either.

Why not optax's pieces (``optax.scale_by_lbfgs``, ``optax.lbfgs(linesearch=...)``): its line searches take a value
function returning a scalar (the terms would cost another forward pass), they choose between evaluating branches with
``lax.cond`` (``value_and_grad_from_state``, the zoom search's interval and zoom phases; the backtracking search's
gradient), and ``scale_by_lbfgs`` keeps every curvature pair (a pair with y.s <= 0 makes the inverse-Hessian
approximation indefinite) and scales the first step by the gradient's L2 norm. What is kept from the literature:

* direction: the two-loop recursion (Nocedal & Wright, Algorithm 7.4) over the last ``history_size`` pairs, the initial
  inverse Hessian gamma = s.y / y.y of the newest pair, as ``torch.optim.LBFGS`` does;
* curvature test: a pair (s, y) is kept only if s.y > ``CURVATURE`` * |s| |y| -- scale-free, unlike torch's
  s.y > 1e-10, which at the normalized loss (gradients ~1e-8) rejects every pair so that torch never builds curvature;
  where torch's test passes so does this one, and both keep the same pairs;
* ``none``: the step torch takes with ``line_search_fn=None``, one evaluation per iteration: ``step_size`` times the
  quasi-Newton step, the first (no curvature yet) scaled to L1 length ``step_size`` -- torch scales it by
  min(1, 1 / |g|_1), the same where |g|_1 >= 1 (``_first_scale`` says why not below);
* ``backtracking``: Armijo sufficient decrease, halving the step (at most ``MAX_TRIALS`` evaluations);
* ``zoom``: the strong Wolfe conditions (c1 = 1e-4, c2 = 0.9) by bracketing and zooming (Nocedal & Wright,
  Algorithms 3.5 and 3.6), trial steps from cubic interpolation as ``torch.optim.LBFGS``'s strong-Wolfe search does
  (extrapolating at most 10x while bracketing). Departure from torch: where the cubic is ill-conditioned (its
  discriminant below ``CUBIC_CONDITION`` of its terms: two nearly equal slopes, as on the first search from noise) the
  trial is the secant of the slopes, or the bracket's middle, so that float32's last digits cannot move the step
  (benchmarks/NOTES.md, item 12).

A search that finds no acceptable step takes the best decrease it saw; with none at all the iterate stays, the
memory is cleared, and the next iteration starts again from steepest descent.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from nst_jax.losses import LossInputs, LossTerms

LINE_SEARCHES: tuple[str, ...] = ("zoom", "backtracking", "none")
"""The line searches; the first is the default (benchmarks/NOTES.md, item 8, says why)."""
CURVATURE = 1e-10
"""A pair is kept when s.y > CURVATURE * |s| * |y| (the cosine between step and gradient change)."""
MAX_TRIALS = 20
"""Evaluations one line search may make before it settles for the best decrease seen."""
WOLFE_C1, WOLFE_C2 = 1e-4, 0.9
CUBIC_CONDITION = 1e-2
"""The cubic's minimizer is used where its discriminant is at least this share of the terms it is the difference of
(a relative error of u in the data becomes about u / CUBIC_CONDITION in the step); else the secant or bisection."""
EXTRAPOLATION = 10.0
"""How much further than the last trial a bracketing step may go (torch's strong-Wolfe search: 10x)."""

LossFn = Callable[[jax.Array, LossInputs], LossTerms]


class Point(NamedTuple):
    """An evaluated point of the loss: position, value, gradient and the terms of the value."""

    x: jax.Array
    value: jax.Array
    grad: jax.Array
    terms: LossTerms


class State(NamedTuple):
    """L-BFGS state: the current point, the memory of (s, y) pairs (oldest first, ``used`` of them valid), the
    iteration count and the step size (traced: another one does not recompile)."""

    point: Point
    steps: jax.Array  # (history, n): s = x_{k+1} - x_k
    changes: jax.Array  # (history, n): y = g_{k+1} - g_k
    used: jax.Array  # pairs held (<= history)
    iteration: jax.Array
    step_size: jax.Array
    scale: jax.Array  # the inverse Hessian guess h (d = -h g) while no pair is held


def _dot(a: jax.Array, b: jax.Array) -> jax.Array:
    """Inner product of two arrays of any (equal) shape, in float32."""
    return jnp.vdot(a.astype(jnp.float32), b.astype(jnp.float32))


def evaluate(loss_fn: LossFn, x: jax.Array, inputs: LossInputs) -> Point:
    """One evaluation: the loss at ``x``, its gradient, and its terms (aux of the same forward pass)."""
    (value, terms), grad = jax.value_and_grad(lambda image: _total_and_terms(loss_fn(image, inputs)), has_aux=True)(x)
    return Point(x, value, grad, terms)


def _total_and_terms(terms: LossTerms) -> tuple[jax.Array, LossTerms]:
    return terms.total, terms


def direction(grad: jax.Array, steps: jax.Array, changes: jax.Array, used: jax.Array) -> jax.Array:
    """-H g by the two-loop recursion over the ``used`` newest pairs (stored oldest first at the end of the memory);
    gamma = s.y / y.y of the newest pair, 1 without pairs."""
    history = steps.shape[0]
    valid = jnp.arange(history) >= history - used  # pairs fill the memory from its end
    dots = jax.vmap(_dot)(steps, changes)
    rho = jnp.where(valid, 1.0 / jnp.where(valid, dots, 1.0), 0.0)

    def backward(q: jax.Array, i: jax.Array) -> tuple[jax.Array, jax.Array]:
        alpha = rho[i] * _dot(steps[i], q)
        return q - alpha * changes[i], alpha

    q, alphas = jax.lax.scan(backward, -grad, jnp.arange(history - 1, -1, -1))
    newest_y = changes[history - 1]
    gamma = jnp.where(used > 0, dots[history - 1] / jnp.maximum(_dot(newest_y, newest_y), 1e-38), 1.0)
    r = gamma * q
    alphas = alphas[::-1]

    def forward(r: jax.Array, i: jax.Array) -> tuple[jax.Array, None]:
        beta = rho[i] * _dot(changes[i], r)
        return r + (alphas[i] - beta) * steps[i], None

    r, _ = jax.lax.scan(forward, r, jnp.arange(history))
    return r


def remember(state: State, new: Point) -> State:
    """``state`` moved to ``new``, with the pair (s, y) it makes appended if its curvature passes ``CURVATURE``."""
    s = (new.x - state.point.x).reshape(-1)
    y = (new.grad - state.point.grad).reshape(-1)
    curvature = _dot(s, y)
    keep = curvature > CURVATURE * jnp.sqrt(_dot(s, s)) * jnp.sqrt(_dot(y, y))
    steps = jnp.where(keep, jnp.concatenate([state.steps[1:], s[None]]), state.steps)
    changes = jnp.where(keep, jnp.concatenate([state.changes[1:], y[None]]), state.changes)
    used = jnp.where(keep, jnp.minimum(state.used + 1, state.steps.shape[0]), state.used)
    # Without a pair (negative curvature along every step so far, as from white noise) the step grows tenfold while
    # the loss falls and shrinks tenfold when it rises: the scale of the problem is found in a few iterations.
    scale = jnp.where(new.value < state.point.value, state.scale * 10.0, state.scale * 0.1)
    return State(new, steps, changes, used, state.iteration + 1, state.step_size, scale)


def init(loss_fn: LossFn, x: jax.Array, inputs: LossInputs, history_size: int, step_size: jax.Array) -> State:
    """The state at ``x``: one evaluation, an empty memory."""
    zeros = jnp.zeros((history_size, x.size), jnp.float32)
    point = evaluate(loss_fn, x, inputs)
    return State(point, zeros, zeros, jnp.asarray(0, jnp.int32), jnp.asarray(0, jnp.int32),
                 jnp.asarray(step_size, jnp.float32), _first_scale(point.grad))


def _first_scale(grad: jax.Array) -> jax.Array:
    """h for a step without curvature: 1 / |g|_1, a step of L1 length 1 (times the step size).

    torch takes min(1, 1 / |g|_1): the same wherever |g|_1 >= 1, where torch's L-BFGS works. Below, at the
    normalized loss (|g|_1 ~ 1e-3), its step -g changes the gradient by less than float32 resolves, so no curvature
    pair is ever measured and the run stalls; 1 / |g|_1 is scale-free.
    """
    return 1.0 / jnp.maximum(jnp.sum(jnp.abs(grad)), 1e-30)


class Search(NamedTuple):
    """Where a line search stands: the next trial step, the bracket (lo, hi) with values and slopes along the
    direction (hi is +inf while still bracketing), the best point so far, and whether it is done."""

    trial: jax.Array
    lo: jax.Array
    value_lo: jax.Array
    slope_lo: jax.Array
    hi: jax.Array
    value_hi: jax.Array
    slope_hi: jax.Array
    best: Point
    done: jax.Array
    evaluations: jax.Array


def _cubic_minimum(a: jax.Array, fa: jax.Array, da: jax.Array, b: jax.Array, fb: jax.Array, db: jax.Array,
                   low: jax.Array, high: jax.Array) -> tuple[jax.Array, jax.Array]:
    """The minimizer in [low, high] of the cubic through (a, fa, da) and (b, fb, db), as ``torch.optim.LBFGS``'s
    ``_cubic_interpolate``, and whether it is well conditioned (``CUBIC_CONDITION``); the interval's middle where the
    cubic has none."""
    d1 = da + db - 3.0 * (fa - fb) / jnp.where(a == b, 1.0, a - b)
    square = d1 * d1 - da * db
    d2 = jnp.sqrt(jnp.maximum(square, 0.0))
    d2 = jnp.where(b >= a, d2, -d2)
    denominator = db - da + 2.0 * d2
    point = b - (b - a) * (db + d2 - d1) / jnp.where(denominator == 0.0, 1.0, denominator)
    ok = (square >= 0.0) & (denominator != 0.0) & jnp.isfinite(point)
    # square is a difference of two nearly equal terms where the data fit a cubic with a flat inflection (nearly
    # linear along the line, as on the first step from noise): there float32's last digits in the values and slopes
    # (which differ between a batched and a single evaluation, or between CPUs) move the minimizer by 1e-3 and more.
    conditioned = square > CUBIC_CONDITION * (d1 * d1 + jnp.abs(da * db))
    return jnp.where(ok, jnp.clip(point, low, high), (low + high) / 2.0), ok & conditioned


def _secant_minimum(a: jax.Array, da: jax.Array, b: jax.Array, db: jax.Array, low: jax.Array, high: jax.Array
                    ) -> jax.Array:
    """The zero in [low, high] of the line through the slopes (a, da) and (b, db) (the minimizer of the quadratic
    with those slopes: Moré & Thuente's secant step); ``high`` where the slopes do not rise toward zero."""
    rising = (db - da) * (b - a) > 0
    point = b - db * (b - a) / jnp.where(rising, db - da, 1.0)
    return jnp.where(rising & jnp.isfinite(point), jnp.clip(point, low, high), high)


def line_search(
    loss_fn: LossFn, start: Point, d: jax.Array, slope: jax.Array, first: jax.Array, inputs: LossInputs, kind: str,
) -> tuple[Point, jax.Array]:
    """The accepted point along ``d`` from ``start`` (slope = g.d < 0), starting at step ``first``, and the evaluations
    made. ``kind``: ``none`` (take ``first``), ``backtracking`` (Armijo, halving) or ``zoom`` (strong Wolfe)."""
    if kind == "none":
        return evaluate(loss_fn, start.x + first * d, inputs), jnp.asarray(1, jnp.int32)
    if kind not in LINE_SEARCHES:  # before tracing anything
        raise ValueError(f"unknown line search {kind!r}; choose {', '.join(LINE_SEARCHES)}")
    f0 = start.value
    zero = jnp.zeros((), jnp.float32)
    search = Search(
        trial=jnp.asarray(first, jnp.float32), lo=zero, value_lo=f0, slope_lo=slope, hi=jnp.asarray(jnp.inf),
        value_hi=f0, slope_hi=slope, best=start, done=jnp.asarray(False), evaluations=jnp.asarray(0, jnp.int32),
    )

    def cond(search: Search) -> jax.Array:
        return ~search.done & (search.evaluations < MAX_TRIALS)

    def body(search: Search) -> Search:
        a = search.trial
        point = evaluate(loss_fn, start.x + a * d, inputs)
        f, slope_a = point.value, _dot(point.grad, d)
        finite = jnp.isfinite(f) & jnp.isfinite(slope_a)
        sufficient = finite & (f <= f0 + WOLFE_C1 * a * slope)
        better = sufficient & (f < search.best.value)
        best = jax.tree_util.tree_map(lambda new, old: jnp.where(better, new, old), point, search.best)
        search = search._replace(best=best, evaluations=search.evaluations + 1)
        if kind == "backtracking":
            return search._replace(trial=a * 0.5, done=sufficient)
        return _zoom(search, a, f, slope_a, finite, sufficient, slope)

    search = jax.lax.while_loop(cond, body, search)
    return search.best, search.evaluations


def _zoom(search: Search, a: jax.Array, f: jax.Array, slope_a: jax.Array, finite: jax.Array, sufficient: jax.Array,
          slope0: jax.Array) -> Search:
    """The strong-Wolfe search (Nocedal & Wright, Algorithms 3.5 and 3.6) after evaluating trial ``a``.

    Bracketing and zooming share one rule with hi = +inf while bracketing: a trial that is too far (no sufficient
    decrease, or no lower than lo) becomes hi; else it becomes lo, and the old lo becomes hi if the slope at the
    trial points back across it. A trial with sufficient decrease and a flat enough slope is accepted.
    """
    too_far = ~sufficient | (f >= search.value_lo)
    accept = ~too_far & (jnp.abs(slope_a) <= -WOLFE_C2 * slope0)
    flip = ~too_far & (slope_a * (search.hi - search.lo) >= 0)
    lo = jnp.where(too_far, search.lo, a)
    value_lo = jnp.where(too_far, search.value_lo, f)
    slope_lo = jnp.where(too_far, search.slope_lo, slope_a)
    hi = jnp.where(too_far, a, jnp.where(flip, search.lo, search.hi))
    value_hi = jnp.where(too_far, f, jnp.where(flip, search.value_lo, search.value_hi))
    slope_hi = jnp.where(too_far, slope_a, jnp.where(flip, search.slope_lo, search.slope_hi))
    bracketing = jnp.isinf(hi)
    # Next trial: while bracketing, extrapolate by the cubic through the last two trials, 1.01x to 10x as far;
    # inside a bracket, the cubic through its ends, kept a tenth of the width from each; bisect after a NaN.
    # Where the cubic is ill-conditioned (``_cubic_minimum``), extrapolate by the secant of the slopes instead
    # and bisect a bracket: both depend on the data smoothly, so that the last digits cannot move the step.
    nearest, farthest = a + 0.01 * (a - search.lo), a * EXTRAPOLATION
    cubic, conditioned = _cubic_minimum(search.lo, search.value_lo, search.slope_lo, a, f, slope_a, nearest,
                                        farthest)
    secant = _secant_minimum(search.lo, search.slope_lo, a, slope_a, nearest, farthest)
    extrapolated = jnp.where(conditioned, cubic, secant)
    low, high = jnp.minimum(lo, hi), jnp.maximum(lo, hi)
    margin = 0.1 * (high - low)
    cubic, conditioned = _cubic_minimum(lo, value_lo, slope_lo, hi, value_hi, slope_hi, low + margin, high - margin)
    interpolated = jnp.where(conditioned, cubic, (low + high) / 2.0)
    ends_finite = jnp.isfinite(value_hi) & jnp.isfinite(slope_hi)
    interpolated = jnp.where(ends_finite, interpolated, (low + high) / 2.0)
    trial = jnp.where(bracketing, extrapolated, interpolated)
    collapsed = ~bracketing & (high - low <= 1e-7 * high)
    return search._replace(trial=trial, lo=lo, value_lo=value_lo, slope_lo=slope_lo, hi=hi, value_hi=value_hi,
                           slope_hi=slope_hi, done=accept | collapsed)


def make_step(loss_fn: LossFn, kind: str) -> Callable[[State, LossInputs], tuple[State, Any]]:
    """One L-BFGS iteration with line search ``kind``: direction, search, memory update. Returns the new state and
    the evaluations it made."""

    def step(state: State, inputs: LossInputs) -> tuple[State, jax.Array]:
        point = state.point
        g = point.grad.reshape(-1)
        d = jnp.where(state.used > 0, direction(g, state.steps, state.changes, state.used), -state.scale * g)
        slope = _dot(g, d)
        descent = slope < 0  # with the curvature test H stays positive definite; guard against round-off anyway
        d = jnp.where(descent, d, -state.scale * g)
        slope = jnp.where(descent, slope, -state.scale * _dot(g, g))
        new, evaluations = line_search(loss_fn, point, d.reshape(point.x.shape), slope, state.step_size, inputs, kind)
        moved = new.value < point.value if kind != "none" else jnp.asarray(True)
        advanced = remember(state, new)
        stuck = State(point, jnp.zeros_like(state.steps), jnp.zeros_like(state.changes), jnp.zeros_like(state.used),
                      state.iteration + 1, state.step_size, _first_scale(point.grad))  # no decrease: restart at -g
        return jax.tree_util.tree_map(lambda a, b: jnp.where(moved, a, b), advanced, stuck), evaluations

    return step
