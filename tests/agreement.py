"""Comparing two computations of the same optimization (batched and single, split and whole, tiled and whole, over
devices or processes) as closely as the optimization itself allows.

Float32 sums taken in another order differ in their last digits (~1e-7 relative), and an optimizer carries such a
difference as far as the run amplifies it. Some runs amplify it a lot: measured on test_sweep's runs (32 px, 8
iterations), a content image perturbed by 1e-7 moved Adam's image by up to 6e-2 where a pixel's gradient crosses
zero (its normalized step flips by up to the learning rate), and L-BFGS's by up to 8e-4 along the flat directions of a
nearly converged image (the quasi-Newton step is large there), while the neighbouring members moved by 1e-6. Which
member it is changes with the CPU's instruction set and with any change to the problem. So a comparison asks for no
closer agreement than the run's own spread under such a perturbation (``spread``), never less than a floor.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

PERTURBATION = 1e-7
"""Relative size of the content image's perturbation: float32's resolution, the size of a reordered sum's error."""
SPREAD_FACTOR = 10.0
"""How many times the spread a difference may be: the spread is one sample of the run's response to last-digit
changes, the compared difference another of the same origin. Measured on test_sweep's six members (batched against
single, AVX-512 and AVX2): ratios 0.5 to 1.5 for L-BFGS, 0 for Adam (bit for bit equal); 10 leaves room for a run
whose one sample of its spread happens to be small."""
IMAGE_FLOOR = 1e-4
"""Pixels in [0, 1]; well-conditioned members measured 1.4e-6 (L-BFGS) and 1.4e-5 (Adam) apart on AVX-512 and AVX2."""
LOSS_FLOOR = 1e-4
"""Relative; well-conditioned members measured within 5e-6 on AVX-512 and AVX2."""
STRICT = 1e-4
"""A comparison must hold at the floor for at least one of its runs (their spread below this), else it proves little."""


@dataclasses.dataclass(frozen=True)
class Spread:
    """How far a run moves when its content image moves by ``PERTURBATION``: the largest pixel change and the largest
    relative change of its per-iteration total loss."""

    image: float
    loss: float

    @property
    def image_tolerance(self) -> float:
        """How far two computations of the run's image may be apart."""
        return max(IMAGE_FLOOR, SPREAD_FACTOR * self.image)

    @property
    def loss_tolerance(self) -> float:
        """How far (relative) two computations of the run's losses may be apart."""
        return max(LOSS_FLOOR, SPREAD_FACTOR * self.loss)


def perturbed(content: np.ndarray, seed: int = 0) -> np.ndarray:
    """``content`` with each value moved by ``PERTURBATION`` relative (normally distributed), kept in [0, 1]."""
    noise = np.random.default_rng(seed).standard_normal(np.shape(content)).astype(np.float32)
    return np.clip(np.asarray(content, np.float32) * (1 + PERTURBATION * noise), 0.0, 1.0).astype(np.float32)


def spread(run: Callable[[np.ndarray], object], content: np.ndarray, reference: object | None = None) -> Spread:
    """The spread of ``run`` (content image -> ``StyleResult``): its result for ``content`` (or ``reference``, that
    result already computed) against its result for ``perturbed(content)``."""
    reference = run(content) if reference is None else reference
    moved = run(perturbed(content))
    return Spread(float(np.max(np.abs(moved.image - reference.image))), _relative(moved, reference))


def _relative(a: object, b: object) -> float:
    """The largest relative difference of two results' per-iteration and final total losses."""
    values = np.append(np.asarray(a.losses.total, np.float64), a.final_losses.total)
    references = np.append(np.asarray(b.losses.total, np.float64), b.final_losses.total)
    return float(np.max(np.abs(values - references) / np.maximum(np.abs(references), 1e-30)))


def assert_agree(result: object, reference: object, run_spread: Spread, what: str = "") -> None:
    """``result`` and ``reference`` (``StyleResult``s of the same run, computed two ways) agree within the run's own
    spread (``Spread.image_tolerance``, ``Spread.loss_tolerance``)."""
    difference = float(np.max(np.abs(result.image - reference.image)))
    assert difference <= run_spread.image_tolerance, (what, difference, run_spread)
    losses = _relative(result, reference)
    assert losses <= run_spread.loss_tolerance, (what, losses, run_spread)


def assert_strict_somewhere(spreads: list[Spread], what: str = "") -> None:
    """At least one compared run is well conditioned, so that the comparison holds at the floor there."""
    assert min(s.image for s in spreads) <= STRICT, (f"{what}: every run is ill-conditioned on this machine; choose "
                                                     "settings whose runs are not", spreads)


def run_with_spread(run: Callable[[np.ndarray], object], content: np.ndarray) -> tuple[object, Spread]:
    """``run(content)`` (content image -> ``StyleResult``) and its ``spread``."""
    result = run(np.asarray(content, np.float32))
    return result, spread(run, content, result)
