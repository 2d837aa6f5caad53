"""The same style transfer written the way a PyTorch user writes it: the reference nst_jax is measured against.

Everything that defines the result is shared with nst_jax: the VGG19 weights (our HDF5 file, or a torchvision
``.pth``), the layers and pooling, the loss formulas of ``nst_jax.losses`` in both forms (re-written here for
NCHW tensors, term for term), alpha / beta / TV, the style blend, the initial image, and the settings of a
``nst_jax.StyleConfig``. What differs is only how it runs: eager PyTorch (oneDNN on CPU, cuDNN on CUDA),
targets computed under ``torch.no_grad``, and the optimizer loop of PyTorch's neural-style tutorial:

``adam``  -- ``torch.optim.Adam(lr=config.learning_rate)``, one ``.step`` per iteration; the recorded terms
             are those of the iterate each step starts from (as nst_jax's Adam records them).
``lbfgs`` -- ``torch.optim.LBFGS(history_size=config.history_size, line_search_fn="strong_wolfe")`` with
             ``max_iter=iterations`` in a single ``.step(closure)``, the way neural-style-pt runs it
             (``tolerance_grad = tolerance_change = -1`` so exactly ``iterations`` iterations run, and
             ``max_eval`` above the line search's own cap of 25 evaluations per iteration so it never binds).
             One ``.step`` per iteration (``max_iter=1``) would cost one extra evaluation per iteration, since
             every ``.step`` re-evaluates the closure at its starting point; the single step does not.

Counting is honest: an *evaluation* is one call of the closure (a forward and a backward pass); the one at the
starting point, made before the first iteration, is reported apart as ``initial_evaluations``. Per-iteration
losses of L-BFGS are those of the iterate its line search accepted (read from the line search's return value,
which a single ``.step`` keeps to itself), with the content/style/TV terms of the evaluation that produced it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import os
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from convert_weights.torch_vgg import TorchVGG, TorchVGG19, features_state_dict
from nst_jax.config import StyleConfig
from nst_jax.losses import LOSS_FORMS, LossTerms, equal_layer_weights
from nst_jax.vgg import architecture_of, preprocessing_of

TorchLoss = Callable[[torch.Tensor], LossTerms]

OPTIMIZERS: tuple[str, ...] = ("lbfgs", "adam")


def configure_threads() -> int:
    """Let PyTorch use every CPU core (``torch.set_num_threads(os.cpu_count())``); returns the count."""
    threads = os.cpu_count() or 1
    torch.set_num_threads(threads)
    return threads


def default_device() -> torch.device:
    """CUDA when available, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def device_name(device: torch.device) -> str:
    """A short human-readable name: ``cpu (N threads)`` or the CUDA device's name."""
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return f"cpu ({torch.get_num_threads()} threads)"


def load_torch_vgg(weights: object, pooling: str, device: torch.device | str = "cpu") -> TorchVGG:
    """A ``TorchVGG`` holding ``weights`` (a ``VGGWeights``, a params tree, an nst_jax ``.h5`` or a ``.pth`` file),
    with their architecture and preprocessing."""
    if isinstance(weights, (str, os.PathLike)):
        path = Path(weights)
        if path.suffix in (".pth", ".pt"):
            from convert_weights.convert import convert_state_dict, load_pth

            params = convert_state_dict(load_pth(path))
        else:
            from nst_jax.weights import load_weights

            params = load_weights(path).params
    else:
        params = getattr(weights, "params", weights)
    if preprocessing_of(params) is None:
        raise ValueError("the weights' input group is neither torchvision's nor caffe's preprocessing")
    model = TorchVGG(pooling, architecture_of(params), params.get("input", "torchvision"))
    model.load_state_dict(features_state_dict(params))
    return model.to(device).eval().requires_grad_(False)


def to_tensor(image: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """An (H, W, 3) float image as a (1, 3, H, W) float32 tensor."""
    array = np.ascontiguousarray(np.asarray(image, np.float32).transpose(2, 0, 1)[None])
    return torch.from_numpy(array).to(device)


def to_image(tensor: torch.Tensor) -> np.ndarray:
    """A (1, 3, H, W) tensor as an (H, W, 3) float32 array."""
    return tensor.detach()[0].permute(1, 2, 0).cpu().numpy().astype(np.float32)


def _check_form(form: str) -> None:
    """Raise ``ValueError`` unless ``form`` is a known loss formulation."""
    if form not in LOSS_FORMS:
        raise ValueError(f"loss form must be one of {LOSS_FORMS}, got {form!r}")


def gram_matrix(features: torch.Tensor, *, form: str = "normalized") -> torch.Tensor:
    """Gram matrix (C, C) of (1, C, H, W) features: divided by C * H * W (normalized) or H * W (paper, as the paper's
    authors computed it)."""
    _check_form(form)
    _, channels, height, width = features.shape
    flat = features.reshape(channels, height * width)
    gram = flat @ flat.T
    return gram / (channels * height * width) if form == "normalized" else gram / (height * width)


def content_loss(features: torch.Tensor, target: torch.Tensor, *, form: str = "normalized") -> torch.Tensor:
    """Mean squared distance between features and target features (both forms)."""
    _check_form(form)
    return torch.mean(torch.square(features - target))


def style_layer_loss(features: torch.Tensor, target_gram: torch.Tensor, *, form: str = "normalized") -> torch.Tensor:
    """E_l: mean squared difference of the Gram matrix of (1, C, H, W) features and a target Gram matrix."""
    return torch.mean(torch.square(gram_matrix(features, form=form) - target_gram))


def total_variation_loss(image: torch.Tensor, *, form: str = "normalized") -> torch.Tensor:
    """Mean squared differences between vertically and horizontally neighbouring pixels of a (1, 3, H, W) image."""
    _check_form(form)
    vertical = torch.square(image[:, :, 1:, :] - image[:, :, :-1, :])
    horizontal = torch.square(image[:, :, :, 1:] - image[:, :, :, :-1])
    return torch.mean(vertical) + torch.mean(horizontal)


@dataclasses.dataclass(frozen=True)
class TorchTargets:
    """Content features P at the content layers and the blended style Gram matrices A at the style layers."""

    content: dict[str, torch.Tensor]
    style_grams: dict[str, torch.Tensor]


def style_layer_weights(config: StyleConfig) -> dict[str, float]:
    """w_l per style layer: the config's, or the paper's equal weights."""
    weights = config.style_layer_weights or equal_layer_weights(config.style_layers)
    return dict(zip(config.style_layers, map(float, weights)))


def loss_layers(config: StyleConfig) -> tuple[str, ...]:
    """The content and style layers, each once, in the order nst_jax asks for them."""
    return tuple(dict.fromkeys(config.content_layers + config.style_layers))


@torch.no_grad()
def compute_targets(
    model: TorchVGG19, content: torch.Tensor, styles: Sequence[torch.Tensor], config: StyleConfig
) -> TorchTargets:
    """Content features of the content image and blend-weighted Gram matrices of the style images."""
    blend = config.style_blend_weights or (1.0,) * len(styles)
    if len(blend) != len(styles):
        raise ValueError(f"{len(blend)} style blend weights for {len(styles)} style images")
    total_weight = float(sum(blend))
    content_features = model(content, config.content_layers)
    grams: dict[str, torch.Tensor] = {}
    for image, weight in zip(styles, blend):
        features = model(image, config.style_layers)
        for layer in config.style_layers:
            gram = (weight / total_weight) * gram_matrix(features[layer], form=config.loss_form)
            grams[layer] = gram if layer not in grams else grams[layer] + gram
    return TorchTargets(content={k: v.detach() for k, v in content_features.items()}, style_grams=grams)


def make_loss(model: TorchVGG19, targets: TorchTargets, config: StyleConfig) -> TorchLoss:
    """The loss ``image -> LossTerms`` (tensors) of a (1, 3, H, W) image, as ``nst_jax.losses.make_loss_fn``."""
    form, layers, per_layer = config.loss_form, loss_layers(config), style_layer_weights(config)
    alpha, beta, tv_weight = config.resolved_content_weight, config.resolved_style_weight, config.tv_weight

    def loss_terms(image: torch.Tensor) -> LossTerms:
        features = model(image, layers)
        content = sum(
            content_loss(features[layer], targets.content[layer], form=form) for layer in config.content_layers
        )
        style = sum(
            weight * style_layer_loss(features[layer], targets.style_grams[layer], form=form)
            for layer, weight in per_layer.items()
        )
        tv = total_variation_loss(image, form=form)
        total = alpha * content + beta * style + tv_weight * tv
        return LossTerms(total=total, content=content, style=style, tv=tv)

    return loss_terms


def layer_losses(
    model: TorchVGG19, image: torch.Tensor, targets: TorchTargets, config: StyleConfig
) -> dict[str, float]:
    """Unweighted per-layer losses at ``image``: ``content/<layer>`` and ``style/<layer>`` (E_l)."""
    with torch.no_grad():
        features = model(image, loss_layers(config))
    form = config.loss_form
    values = {f"content/{layer}": content_loss(features[layer], targets.content[layer], form=form)
              for layer in config.content_layers}
    values |= {f"style/{layer}": style_layer_loss(features[layer], targets.style_grams[layer], form=form)
               for layer in config.style_layers}
    return {name: float(value) for name, value in values.items()}


@dataclasses.dataclass(frozen=True)
class TorchResult:
    """The image (H, W, 3) in [0, 1], per-iteration losses and evaluations, the loop's wall time, the device."""

    image: np.ndarray
    losses: LossTerms
    final_losses: LossTerms
    evaluations: np.ndarray
    initial_evaluations: int
    elapsed: float
    targets_elapsed: float
    device: str

    @property
    def iterations(self) -> int:
        """Iterations completed."""
        return int(self.losses.total.shape[0])


def _synchronize(device: torch.device) -> None:
    """Wait for queued CUDA work (a no-op on the CPU), so wall times cover the work."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _stack(records: Sequence[LossTerms]) -> LossTerms:
    """Per-iteration scalar terms as float32 arrays, one per field."""
    return LossTerms(*(np.asarray([float(getattr(r, f)) for r in records], np.float32) for f in LossTerms._fields))


def _detached(terms: LossTerms) -> LossTerms:
    """The terms without their autograd graph."""
    return LossTerms(*(t.detach() for t in terms))


class Trace(NamedTuple):
    """What a run saw: each evaluation's iteration (0 before the first) and terms; L-BFGS's accepted losses."""

    evaluated: list[tuple[int, LossTerms]]
    accepted: list[float] | None


def run_adam(loss: TorchLoss, image: torch.Tensor, config: StyleConfig) -> Trace:
    """``config.iterations`` Adam steps on ``image``, in place."""
    optimizer = torch.optim.Adam([image], lr=config.learning_rate)
    evaluated: list[tuple[int, LossTerms]] = []
    for iteration in range(1, config.iterations + 1):
        optimizer.zero_grad(set_to_none=True)
        terms = loss(image)
        terms.total.backward()
        optimizer.step()
        evaluated.append((iteration, _detached(terms)))
    return Trace(evaluated, None)


@contextlib.contextmanager
def _accepted_line_search_values(accepted: list[float]) -> Iterator[None]:
    """Record the loss of the point each strong-Wolfe line search of ``torch.optim.LBFGS`` accepts."""
    module = importlib.import_module(torch.optim.LBFGS.__module__)
    original = module._strong_wolfe

    def recording(*args, **kwargs):
        result = original(*args, **kwargs)
        accepted.append(float(result[0]))
        return result

    module._strong_wolfe = recording
    try:
        yield
    finally:
        module._strong_wolfe = original


def lbfgs_optimizer(image: torch.Tensor, config: StyleConfig, iterations: int) -> torch.optim.LBFGS:
    """``torch.optim.LBFGS`` over ``image`` as the baseline runs it, ``iterations`` per ``.step``: strong Wolfe, or no
    line search with ``config.line_search == "none"`` (a fixed step of ``config.step_size``); no early stop
    (``tolerance_grad = tolerance_change = -1``) and ``max_eval`` above the line search's own cap of 25 per
    iteration. State (history, direction, step) persists between ``.step`` calls: ``benchmarks.quality`` steps it
    a chunk at a time."""
    return torch.optim.LBFGS(
        [image], lr=config.step_size, max_iter=iterations, max_eval=25 * iterations + 1, tolerance_grad=-1.0,
        tolerance_change=-1.0, history_size=config.history_size,
        line_search_fn=None if config.line_search == "none" else "strong_wolfe",
    )


def run_lbfgs(loss: TorchLoss, image: torch.Tensor, config: StyleConfig) -> Trace:
    """``config.iterations`` L-BFGS iterations on ``image`` in one ``.step``, in place: with torch's strong-Wolfe
    search, or with none (``config.line_search == "none"``: ``line_search_fn=None``,
    ``lr=config.step_size``, as jcjohnson/neural-style and neural-style-pt run it; torch then skips the evaluation
    after the last step)."""
    searching = config.line_search != "none"
    optimizer = lbfgs_optimizer(image, config, config.iterations)
    evaluated: list[tuple[int, LossTerms]] = []

    def closure() -> torch.Tensor:
        optimizer.zero_grad(set_to_none=True)
        terms = loss(image)
        terms.total.backward()
        evaluated.append((optimizer.state[image]["n_iter"], _detached(terms)))
        return terms.total

    accepted: list[float] = []
    if searching:
        with _accepted_line_search_values(accepted):
            optimizer.step(closure)
    else:  # each iteration's one evaluation is at the point it stepped to
        optimizer.step(closure)
        accepted = [float(terms.total) for n_iter, terms in evaluated if n_iter >= 1]
    return Trace(evaluated, accepted)


def history(trace: Trace) -> tuple[list[LossTerms], np.ndarray, int]:
    """Per-iteration terms, per-iteration evaluations, and evaluations made before the first iteration."""
    iterations = max((n for n, _ in trace.evaluated), default=0)
    counts = np.zeros(iterations, np.int32)
    for n_iter, _ in trace.evaluated:
        if n_iter >= 1:
            counts[n_iter - 1] += 1
    initial = sum(1 for n_iter, _ in trace.evaluated if n_iter == 0)
    if trace.accepted is None:
        return [terms for _, terms in trace.evaluated], counts, initial
    return _accepted_terms(trace.evaluated, trace.accepted), counts[: len(trace.accepted)], initial


def _accepted_terms(evaluated: Sequence[tuple[int, LossTerms]], accepted: Sequence[float]) -> list[LossTerms]:
    """For each iteration, the terms of the latest evaluation (up to it) whose total is the accepted loss."""
    latest: dict[float, list[tuple[int, LossTerms]]] = {}
    for n_iter, terms in evaluated:
        latest.setdefault(float(terms.total), []).append((n_iter, terms))
    records = []
    for iteration, value in enumerate(accepted, start=1):
        candidates = [terms for n_iter, terms in latest.get(value, []) if n_iter <= iteration]
        if not candidates:
            raise RuntimeError(f"L-BFGS iteration {iteration} accepted a loss {value} that no evaluation produced")
        records.append(candidates[-1])
    return records


RUNNERS = {"adam": run_adam, "lbfgs": run_lbfgs}


def stylize_torch(
    model: TorchVGG19,
    content: np.ndarray,
    styles: Sequence[np.ndarray],
    init: np.ndarray,
    *,
    config: StyleConfig,
) -> TorchResult:
    """Optimize ``init`` toward ``content`` in the style of ``styles`` (already sized) with PyTorch."""
    if config.optimizer not in RUNNERS:
        raise ValueError(f"the PyTorch baseline runs {', '.join(OPTIMIZERS)}, not {config.optimizer!r}")
    device = next(model.parameters()).device
    start = time.perf_counter()
    targets = compute_targets(model, to_tensor(content, device), [to_tensor(s, device) for s in styles], config)
    _synchronize(device)
    targets_elapsed = time.perf_counter() - start
    loss = make_loss(model, targets, config)
    image = to_tensor(init, device).requires_grad_(True)
    start = time.perf_counter()
    trace = RUNNERS[config.optimizer](loss, image, config)
    _synchronize(device)
    elapsed = time.perf_counter() - start
    records, evaluations, initial = history(trace)
    with torch.no_grad():
        final = loss(image)
    return TorchResult(
        image=np.clip(to_image(image), 0.0, 1.0),
        losses=_stack(records),
        final_losses=LossTerms(*(float(t) for t in final)),
        evaluations=evaluations,
        initial_evaluations=initial,
        elapsed=elapsed,
        targets_elapsed=targets_elapsed,
        device=device_name(device),
    )


def torch_peak_memory(device: torch.device) -> int | None:
    """Peak bytes PyTorch allocated on a CUDA device since the last reset; None on the CPU."""
    return int(torch.cuda.max_memory_allocated(device)) if device.type == "cuda" else None


def reset_torch_peak_memory(device: torch.device) -> None:
    """Reset PyTorch's CUDA peak-memory counter (a no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


__all__ = [
    "TorchResult",
    "TorchTargets",
    "compute_targets",
    "configure_threads",
    "content_loss",
    "default_device",
    "gram_matrix",
    "layer_losses",
    "lbfgs_optimizer",
    "load_torch_vgg",
    "make_loss",
    "style_layer_loss",
    "stylize_torch",
    "to_image",
    "to_tensor",
    "total_variation_loss",
]
