"""nst_jax's L-BFGS: the two-loop direction against the dense BFGS update, torch's no-line-search steps, the Wolfe
and Armijo conditions of its searches, scale-free curvature, and one evaluation per trial in the compiled program,
batched or not."""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from conftest import random_images
from nst_jax import StyleConfig, lbfgs, stylize, stylize_sweep
from nst_jax.losses import LossInputs, LossTerms, LossWeights, StyleTargets, loss_function
from nst_jax.optimize import SolverSpec, compile_solver, minimize
from nst_jax.problem import initial_image, loss_spec_for, loss_weights_for, prepare_images, targets_for

DIAGONAL = np.linspace(0.5, 40.0, 12).astype(np.float32)  # an ill-conditioned quadratic, minimum at CENTER
CENTER = np.linspace(-1.0, 2.0, 12).astype(np.float32)
X0 = np.zeros(12, np.float32)


def quadratic(x: jax.Array, inputs: LossInputs) -> LossTerms:
    """c * sum(D (x - CENTER)^2) with c = inputs.weights.content; 'style' holds a second, quartic part."""
    distance = jnp.sum(DIAGONAL * jnp.square(x - CENTER))
    quartic = jnp.sum(jnp.square(jnp.square(x - CENTER))) * inputs.weights.style
    total = inputs.weights.content * (distance + quartic)
    return LossTerms(total=total, content=distance, style=quartic, tv=jnp.zeros(()))


def inputs_scaled(scale: float, quartic: float = 0.0) -> LossInputs:
    return LossInputs({}, StyleTargets({}, {}), LossWeights(jnp.float32(scale), jnp.float32(quartic), jnp.float32(0)))


def run(kind: str, scale: float = 1.0, iterations: int = 12, history: int = 5, quartic: float = 0.0):
    spec = SolverSpec("lbfgs", "nst_jax", history, line_search=kind)
    return minimize(quadratic, X0, inputs_scaled(scale, quartic), spec=spec, iterations=iterations, chunk_size=4)


def test_two_loop_direction_equals_the_dense_bfgs_inverse():
    """-H g from the recursion equals the explicit update H <- V^T H V + rho s s^T from gamma I (Nocedal & Wright
    eq. 7.19), pairs oldest first, gamma from the newest pair."""
    rng = np.random.default_rng(0)
    n, pairs = 6, 3
    matrix = rng.normal(size=(n, n))
    hessian = matrix @ matrix.T + n * np.eye(n)
    steps = rng.normal(size=(pairs, n))
    changes = steps @ hessian  # y = A s: positive curvature
    g = rng.normal(size=n)
    gamma = steps[-1] @ changes[-1] / (changes[-1] @ changes[-1])
    inverse = gamma * np.eye(n)
    for s, y in zip(steps, changes):
        rho = 1.0 / (y @ s)
        v = np.eye(n) - rho * np.outer(y, s)
        inverse = v.T @ inverse @ v + rho * np.outer(s, s)
    memory = 5  # two slots unused: the pairs fill the memory from its end
    padded = lambda a: np.concatenate([np.zeros((memory - pairs, n)), a]).astype(np.float32)  # noqa: E731
    d = lbfgs.direction(jnp.asarray(g, jnp.float32), jnp.asarray(padded(steps)), jnp.asarray(padded(changes)),
                        jnp.asarray(pairs))
    np.testing.assert_allclose(np.asarray(d), -inverse @ g, rtol=2e-4, atol=1e-5)


@pytest.mark.numerics
@pytest.mark.parametrize("kind", ["none", "backtracking", "zoom"])
def test_the_loss_scale_changes_nothing(kind):
    """The first step (L1 length 1 per unit step size) and the curvature test are scale-free: a loss 1e-8 or 1e8
    times as large takes the same steps. torch's absolute test y.s > 1e-10 would keep no pair at 1e-8."""
    reference = run(kind, 1.0, iterations=30, quartic=0.05)
    for scale in (1e-8, 1e8):
        scaled = run(kind, scale, iterations=30, quartic=0.05)
        # float32 rounding differs with the scale, ~1e-7 relative per step; L-BFGS carries it along.
        np.testing.assert_allclose(scaled.history.content[:12], reference.history.content[:12], rtol=1e-3)
        np.testing.assert_allclose(np.asarray(scaled.image), CENTER, atol=1e-4)
    np.testing.assert_allclose(np.asarray(reference.image), CENTER, atol=1e-4)  # and each converges


def test_none_takes_torchs_steps():
    """line_search="none" is torch.optim.LBFGS(line_search_fn=None) step for step where torch works (|g|_1 >= 1,
    every pair with positive curvature), history shorter than the run."""
    history, iterations = 3, 10
    ours = run("none", 1.0, iterations=iterations, history=history)
    x = torch.zeros(12, requires_grad=True)
    optimizer = torch.optim.LBFGS([x], lr=1.0, max_iter=iterations + 1, history_size=history, tolerance_grad=-1.0,
                                  tolerance_change=-1.0, line_search_fn=None)
    diagonal, center = torch.as_tensor(DIAGONAL), torch.as_tensor(CENTER)
    values = []

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        value = torch.sum(diagonal * (x - center) ** 2)
        value.backward()
        values.append(float(value.detach()))
        return value

    optimizer.step(closure)
    np.testing.assert_allclose(ours.history.content, values[1 : iterations + 1], rtol=1e-4)


def test_zoom_accepts_strong_wolfe_points_and_backtracking_armijo_ones():
    def rosenbrock(x: jax.Array, inputs: LossInputs) -> LossTerms:
        value = jnp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)
        return LossTerms(value, value, value, value)

    inputs = inputs_scaled(1.0)
    start = lbfgs.evaluate(rosenbrock, jnp.full(6, -1.2), inputs)
    d = -start.grad
    slope = float(jnp.vdot(start.grad, d))
    for kind in ("zoom", "backtracking"):
        point, evaluations = lbfgs.line_search(rosenbrock, start, d, jnp.float32(slope), jnp.float32(1.0), inputs,
                                               kind)
        step = float(jnp.max(jnp.abs(point.x - start.x)) / jnp.max(jnp.abs(d)))
        assert float(point.value) <= float(start.value) + 1e-4 * step * slope  # sufficient decrease (Armijo)
        if kind == "zoom":
            assert abs(float(jnp.vdot(point.grad, d))) <= -0.9 * slope  # strong curvature condition
        assert 1 <= int(evaluations) <= lbfgs.MAX_TRIALS


def test_negative_curvature_from_white_noise_does_not_stall(vgg_weights):
    """From white noise every early pair has y.s < 0 (the loss is concave along -g there, measured: cosines of
    -0.09 to -0.6): no pair is kept, and the uncurved step grows tenfold while the loss falls."""
    content, style = random_images((32, 48, 3), seed=3), random_images((32, 32, 3), seed=4)
    config = StyleConfig(image_size=48, iterations=12, chunk_size=12, lbfgs_backend="nst_jax", line_search="none")
    result = stylize(content, style, vgg=vgg_weights, config=config)
    assert result.losses.total[-1] < 0.5 * result.losses.total[0]


def _convolutions(lowered: jax.stages.Lowered) -> int:
    """Convolutions in the compiled program (dead ones, such as the kernel gradients, removed)."""
    return len(re.findall(r"= \S+ convolution\(", lowered.compile().as_text()))


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["none", "backtracking", "zoom"])
def test_one_evaluation_per_trial_batched_or_not(vgg_weights, kind):
    """The compiled chunk holds exactly the convolutions of one value-and-gradient, single and batched: no branch
    evaluates the loss on both sides (optax's zoom L-BFGS holds 3.5 times as many)."""
    config = StyleConfig(image_size=32, content_layers=("relu2_1",), style_layers=("relu1_1", "relu2_1"))
    content, styles = prepare_images(random_images((32, 32, 3), seed=1), random_images((32, 32, 3), seed=2), config)
    inputs = LossInputs(vgg_weights.params, targets_for(vgg_weights, content, styles, config), loss_weights_for(config))
    x = jnp.asarray(initial_image(config, content, styles))
    spec = loss_spec_for(config)
    one = _convolutions(jax.jit(lambda image, inp: lbfgs.evaluate(loss_function(spec), image, inp)).lower(x, inputs))
    solver = SolverSpec("lbfgs", "nst_jax", 5, line_search=kind)
    single = compile_solver(spec, solver)
    state = single.init(x, inputs, jnp.float32(1.0))
    assert _convolutions(single.chunk.lower(x, state, inputs, jnp.asarray(2), capacity=2)) == one
    axes = LossInputs(None, None, 0)
    batched = compile_solver(spec, solver, axes)
    members = LossInputs(vgg_weights.params, inputs.targets,
                         LossWeights(*(jnp.stack([w, w]) for w in inputs.weights[:3])))
    xs = jnp.stack([x, x])
    states = batched.init(xs, members, jnp.float32(1.0))
    assert _convolutions(batched.chunk.lower(xs, states, members, jnp.asarray(2), capacity=2)) == one


@pytest.mark.numerics
@pytest.mark.slow
@pytest.mark.parametrize("kind", ["none", "zoom"])
def test_batched_members_equal_single_runs(vgg_weights, kind):
    content, style = random_images((32, 40, 3), seed=5), random_images((32, 32, 3), seed=6)
    config = StyleConfig(image_size=40, iterations=6, chunk_size=3, lbfgs_backend="nst_jax", line_search=kind,
                         content_layers=("relu2_1",), style_layers=("relu1_1", "relu2_1"))
    batch = stylize_sweep(content, style, style_weights=[1e5, 1e6, 1e7], config=config, vgg=vgg_weights)
    for result, weight in zip(batch, [1e5, 1e6, 1e7]):
        single = stylize(content, style, vgg=vgg_weights, config=config.replace(style_weight=weight))
        np.testing.assert_allclose(result.losses.total, single.losses.total, rtol=1e-3)
        np.testing.assert_allclose(result.image, single.image, atol=1e-2)


def _next_trial(lo: float, f_lo: float, d_lo: float, a: float, f: float, d: float, f0: float, d0: float,
                condition: float = lbfgs.CUBIC_CONDITION) -> float:
    """The zoom search's next trial while bracketing, after lo (accepted) and then a (accepted, still descending)."""
    point = lbfgs.Point(jnp.zeros(1), jnp.float32(f0), jnp.zeros(1), LossTerms(*[jnp.float32(0)] * 4))
    f32 = jnp.float32
    search = lbfgs.Search(trial=f32(a), lo=f32(lo), value_lo=f32(f_lo), slope_lo=f32(d_lo), hi=f32(jnp.inf),
                          value_hi=f32(f0), slope_hi=f32(d0), best=point, done=jnp.asarray(False),
                          evaluations=jnp.asarray(2, jnp.int32))
    original = lbfgs.CUBIC_CONDITION
    lbfgs.CUBIC_CONDITION = condition
    try:
        sufficient = jnp.asarray(f <= f0 + lbfgs.WOLFE_C1 * a * d0)
        return float(lbfgs._zoom(search, f32(a), f32(f), f32(d), jnp.asarray(True), sufficient, f32(d0)).trial)
    finally:
        lbfgs.CUBIC_CONDITION = original


# The first search of a run from white noise (test_sweep's member beta = 1e4, measured): trials at 1 and 10 with slopes
# 7 % apart, values nearly on a line. The cubic through them has a discriminant of 0.4 % of its terms.
FIRST_SEARCH = dict(lo=1.0, f_lo=2.946778259e-04, d_lo=-3.207427199e-06, a=10.0, f=2.668097732e-04,
                    d=-2.982824299e-06, f0=2.978940611e-04, d0=-3.223872227e-06)


@pytest.mark.numerics
def test_the_next_trial_depends_smoothly_on_the_last_digits():
    """Batched and single evaluations (or two CPUs) differ in the last digits of values and slopes (~1e-7 relative).
    The cubic through the first search's trials turns that into steps 6e-4 apart (measured in the compiled run:
    96.820 vs 96.880); where it is that ill-conditioned the search takes the secant of the slopes, which moves no
    more than the data. Perturbations of 1e-6 relative, 10x float32's resolution."""
    rng = np.random.default_rng(0)

    def spread(condition: float) -> float:
        base = _next_trial(**FIRST_SEARCH, condition=condition)
        trials = [_next_trial(**{key: value * (1 + 1e-6 * rng.standard_normal()) if key not in ("lo", "a") else value
                                 for key, value in FIRST_SEARCH.items()}, condition=condition) for _ in range(20)]
        return max(abs(trial / base - 1) for trial in trials)

    assert spread(0.0) > 1e-4  # the cubic wherever it has a minimum, as torch.optim.LBFGS: ill-conditioned here
    assert spread(lbfgs.CUBIC_CONDITION) <= 1e-5


def test_a_well_conditioned_cubic_is_still_used():
    """Where the data fit a cubic well, the search extrapolates by it (as torch does): along f(t) = (t^3 / 3 - 5 t^2 -
    200 t) / 100, a cubic with its minimum at 20, the trials at 1 and 10 give exactly 20, where the secant of the
    slopes (-2.09, -2.0) would extrapolate to 210 (clipped to 100)."""
    f = lambda t: (t**3 / 3 - 5 * t**2 - 200 * t) / 100  # noqa: E731
    d = lambda t: (t - 20) * (t + 10) / 100  # noqa: E731
    cubic = dict(lo=1.0, f_lo=f(1.0), d_lo=d(1.0), a=10.0, f=f(10.0), d=d(10.0), f0=f(0.0), d0=d(0.0))
    assert _next_trial(**cubic) == pytest.approx(20.0, rel=1e-4)
