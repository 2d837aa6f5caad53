"""StyleConfig: values the device cannot hold, seeds, NumPy scalars, sequences given as text, and messages that a
command line can show with its options' names."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from nst_jax import StyleConfig
from nst_jax.config import FLOAT32_MAX, ConfigError, unused_by_optimizer


@pytest.mark.parametrize("name", ["content_weight", "style_weight", "tv_weight", "learning_rate"])
@pytest.mark.parametrize("value", [1e39, 1e40, 3.5e38])
def test_numbers_float32_cannot_hold_are_refused(name, value):
    """Finite in float64, infinite on the device: the loss would be NaN at iteration 0."""
    with pytest.raises(ConfigError, match=f"{name} must be a .*at most 3.4e\\+38"):
        StyleConfig(**{name: value})
    assert getattr(StyleConfig(**{name: FLOAT32_MAX}), name) == FLOAT32_MAX


def test_style_layer_weights_float32_cannot_hold_are_refused():
    with pytest.raises(ConfigError, match="at most 3.4e"):
        StyleConfig(style_layers=("relu1_1", "relu2_1"), style_layer_weights=(1.0, 1e39))


def test_blend_weights_only_need_to_be_finite():
    """Only their ratios count (compute_targets divides by the largest), so 1e308 is as good as 1."""
    assert StyleConfig(style_blend_weights=(1e308, 1e308)).style_blend_weights == (1e308, 1e308)
    with pytest.raises(ConfigError, match="style blend weights"):
        StyleConfig(style_blend_weights=(0.0, 0.0))


@pytest.mark.parametrize("seed", [2**32, 2**32 + 1, 2**63, 2**64, -1, "abc", 1.5, True])
def test_seeds_outside_32_bits_are_refused(seed):
    """jax.random.PRNGKey wraps larger seeds: --seed 1 and --seed 4294967297 would give the same noise."""
    with pytest.raises(ConfigError, match="seed must be an integer from 0 to 4294967295"):
        StyleConfig(seed=seed)
    assert StyleConfig(seed=2**32 - 1).seed == 2**32 - 1


def test_numpy_scalars_are_accepted_as_plain_numbers():
    config = StyleConfig(
        image_size=np.int64(48), iterations=np.int32(3), seed=np.uint32(7), style_weight=np.float32(1e5),
        content_weight=np.float64(2.0), learning_rate=np.float32(0.5), scales=(np.int64(24), np.int64(48)),
    )
    assert (config.image_size, config.iterations, config.seed, config.scales) == (48, 3, 7, (24, 48))
    assert type(config.image_size) is int and type(config.style_weight) is float
    json.dumps(config.to_dict())  # plain Python values only


@pytest.mark.parametrize("name", ["style_blend_weights", "style_layer_weights"])
def test_text_where_a_sequence_belongs_is_refused(name):
    """"1,2" would otherwise be taken character by character."""
    with pytest.raises(ConfigError, match=f"{name} must be a sequence of numbers"):
        StyleConfig(**{name: "1,2"})


def test_messages_name_fields_or_command_line_options():
    with pytest.raises(ConfigError) as raised:
        StyleConfig(scales=(16, 24), image_size=32)
    error = raised.value
    assert str(error).startswith("scales must end at image_size (the output size, 32)")
    flagged = error.render(lambda field: "--" + field.replace("_", "-"))
    assert flagged.startswith("--scales must end at --image-size (the output size, 32)")
    assert "set --image-size to 24" in flagged


def test_validation_leaks_no_numpy_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for value in (1e39, 1e308, np.float64(1e300)):
            with pytest.raises(ConfigError):
                StyleConfig(style_weight=value)


def test_line_searches_other_than_zoom_need_nst_jaxs_lbfgs():
    assert StyleConfig(lbfgs_backend="nst_jax", line_search="none").line_search == "none"
    assert StyleConfig().line_search == "zoom" and StyleConfig(lbfgs_backend="optax").line_search == "zoom"
    assert StyleConfig(optimizer="adam", line_search="none").line_search == "none"  # unused by Adam: allowed
    for backend in ("optax", "jaxopt"):
        with pytest.raises(ConfigError, match="line_search backtracking needs lbfgs_backend nst_jax"):
            StyleConfig(lbfgs_backend=backend, line_search="backtracking")
    with pytest.raises(ConfigError, match="line_search must be one of zoom, backtracking, none"):
        StyleConfig(line_search="wolfe")
    with pytest.raises(ConfigError, match="step_size must be a positive number"):
        StyleConfig(step_size=0.0)


@pytest.mark.parametrize("changes, message", [
    ({"optimizer": "adam", "line_search": "backtracking"}, "line_search does not apply to optimizer adam (Adam's step "
                                                           "is learning_rate"),
    ({"optimizer": "lbfgsb", "line_search": "none"}, "line_search does not apply to optimizer lbfgsb"),
    ({"optimizer": "adam", "step_size": 0.5}, "step_size does not apply to optimizer adam"),
    ({"optimizer": "adam", "history_size": 5}, "history_size does not apply to optimizer adam"),
    ({"optimizer": "adam", "lbfgs_backend": "optax"}, "lbfgs_backend does not apply to optimizer adam"),
    ({"learning_rate": 0.1}, "learning_rate does not apply to optimizer lbfgs (L-BFGS's steps are scaled by "
                             "step_size)"),
    ({"lbfgs_backend": "jaxopt", "step_size": 0.5}, "step_size needs lbfgs_backend nst_jax"),
])
def test_options_the_optimizer_would_ignore_are_named(changes, message):
    """Allowed in the API (a config may serve several optimizers); the command lines refuse them with this."""
    error = unused_by_optimizer(StyleConfig(**changes))
    assert isinstance(error, ConfigError) and message in str(error)


@pytest.mark.parametrize("changes", [{}, {"optimizer": "adam", "learning_rate": 0.1}, {"step_size": 0.5},
                                     {"optimizer": "lbfgsb", "history_size": 5}, {"line_search": "none"}])
def test_options_the_optimizer_uses_pass(changes):
    assert unused_by_optimizer(StyleConfig(**changes)) is None


def test_layers_name_their_field_and_sizes_have_limits():
    with pytest.raises(ConfigError, match=r"^content_layers needs at least one VGG19 layer, such as relu4_2"):
        StyleConfig(content_layers=())
    with pytest.raises(ConfigError, match=r"^style_layers: unknown VGG19 layer\(s\) 'fc7'"):
        StyleConfig(style_layers=("fc7",))
    with pytest.raises(ConfigError, match="chunk_size must be at most 100000"):
        StyleConfig(chunk_size=100_001)
    with pytest.raises(ConfigError, match="image_size must be at most 131072"):
        StyleConfig(image_size=2**17 + 1)
    assert StyleConfig(chunk_size=100_000, image_size=2**17).chunk_size == 100_000
