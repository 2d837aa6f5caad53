"""Content and style reconstructions from noise: one run per layer (set), each matching only its own loss."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import random_images
from nst_jax import StyleConfig, reconstruct
from nst_jax.reconstruct import (
    CONTENT_LAYERS,
    STYLE_LAYER_SETS,
    content_config,
    reconstruct_content,
    reconstruct_style,
    reconstruction_sheet,
    style_config,
)

CONFIG = StyleConfig(image_size=32, iterations=5, chunk_size=5, init="content", style_weight=1e5)
# Two layers (sets) each, shallow and deep: every layer choice compiles its own solver.
CONTENT = ("relu1_2", "relu5_2")
STYLE = (("relu1_1",), ("relu1_1", "relu2_1", "relu3_1"))


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    return random_images((40, 48, 3), seed=31)


@pytest.fixture(scope="module")
def content_runs(vgg_weights, image):
    done = []
    runs = reconstruct_content(image, CONTENT, config=CONFIG, vgg=vgg_weights, batched=False, on_done=done.append)
    assert done == runs
    return runs


@pytest.fixture(scope="module")
def style_runs(vgg_weights, image):
    return reconstruct_style(image, STYLE, config=CONFIG, vgg=vgg_weights, batched=False)


@pytest.mark.numerics
@pytest.mark.slow
@pytest.mark.parametrize("kind", ["content", "style"])
def test_batched_members_equal_the_sequential_runs(vgg_weights, image, kind, request):
    """One vmapped batch over the union of the layers gives each member its own sequential run's result."""
    sequential = request.getfixturevalue(f"{kind}_runs")
    reconstruct, layers = (reconstruct_content, CONTENT) if kind == "content" else (reconstruct_style, STYLE)
    done = []
    batched = reconstruct(image, layers, config=CONFIG, vgg=vgg_weights, batched=True, on_done=done.append)
    assert done == batched
    assert [r.layers for r in batched] == [r.layers for r in sequential]
    for one, alone in zip(batched, sequential):
        assert one.result.config == alone.result.config and one.result.status == "completed"
        # L-BFGS under vmap: float32 summation order differs (see test_sweep's tolerances).
        np.testing.assert_allclose(one.image, alone.image, atol=1e-2)
        np.testing.assert_allclose(one.result.losses.total, alone.result.losses.total, rtol=1e-2)
        np.testing.assert_allclose(one.result.final_losses.total, alone.result.final_losses.total, rtol=1e-2)


def test_defaults_are_the_papers_figure_1():
    assert CONTENT_LAYERS == ("relu1_2", "relu2_2", "relu3_2", "relu4_2", "relu5_2")
    assert STYLE_LAYER_SETS[0] == ("relu1_1",)
    assert STYLE_LAYER_SETS[-1] == ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
    assert [len(s) for s in STYLE_LAYER_SETS] == [1, 2, 3, 4, 5]


def test_configs_keep_one_loss_and_start_from_noise():
    content = content_config(CONFIG.replace(preserve_color="luminance"), "relu3_2")
    assert content.content_layers == ("relu3_2",) and content.style_weight == 0.0
    assert content.init == "noise" and content.preserve_color is None
    style = style_config(CONFIG, ("relu1_1", "relu2_1"))
    assert style.style_layers == ("relu1_1", "relu2_1") and style.content_weight == 0.0
    assert style.style_weight == 1e5 and style.init == "noise"


def test_content_reconstructions_lower_the_content_loss(content_runs):
    assert [r.layers for r in content_runs] == [(layer,) for layer in CONTENT]
    assert [r.label for r in content_runs] == list(CONTENT)
    for run in content_runs:
        result = run.result
        assert run.kind == "content" and result.status == "completed" and result.iterations == 5
        assert result.config.content_layers == run.layers and result.config.style_weight == 0.0
        assert result.image.shape == (27, 32, 3)
        assert result.final_losses.total < 0.5 * float(result.losses.total[0])
        np.testing.assert_allclose(result.final_losses.total, result.final_losses.content, rtol=1e-6)


def test_style_reconstructions_lower_the_style_loss(style_runs):
    assert [r.layers for r in style_runs] == list(STYLE)
    assert [r.label for r in style_runs] == ["relu1_1", "relu1_1..relu3_1"]
    for run in style_runs:
        result = run.result
        assert run.kind == "style" and result.status == "completed" and result.iterations == 5
        assert result.config.style_layers == run.layers and result.config.content_weight == 0.0
        assert result.image.shape == (27, 32, 3)
        assert result.final_losses.total < 0.5 * float(result.losses.total[0])


def test_sheet_has_a_row_per_kind(content_runs, style_runs):
    sheet = reconstruction_sheet(content_runs + style_runs, columns=2)
    assert sheet.ndim == 3 and sheet.shape[-1] == 3 and sheet.dtype == np.float32
    assert sheet.shape[0] > 2 * 27 and sheet.shape[1] > 2 * 32
    assert 0.0 <= sheet.min() and sheet.max() <= 1.0


def test_bad_layer_arguments(image):
    with pytest.raises(ValueError, match="at least one layer"):
        reconstruct_content(image, [], config=CONFIG)
    with pytest.raises(ValueError, match="list of layer sets"):
        reconstruct_style(image, ("relu1_1", "relu2_1"), config=CONFIG)
    with pytest.raises(ValueError, match="unknown VGG19 layer"):
        reconstruct_content(image, ["relu9_9"], config=CONFIG)


@pytest.mark.parametrize("backend, optimizer, expected", [
    ("gpu", "adam", True), ("gpu", "lbfgs", False), ("cpu", "adam", False), ("cpu", "lbfgs", False),
])
def test_default_batches_only_adam_on_an_accelerator(monkeypatch, backend, optimizer, expected):
    monkeypatch.setattr(reconstruct.jax, "default_backend", lambda: backend)
    assert reconstruct.batched_by_default(StyleConfig(optimizer=optimizer)) is expected
