"""The memory planner (``nst_jax.memory``): estimates against XLA's own accounting of the compiled chunk, the choices
``shard`` ``auto`` makes, and ``--dry-run``."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import random_images
from nst_jax import StyleConfig, cli, memory
from nst_jax.cli import loading
from nst_jax.losses import LossInputs, StyleTargets
from nst_jax.optimize import compile_solver
from nst_jax.problem import configure_for, loss_spec_for, loss_weights_for, solver_spec_for
from nst_jax.vgg import layer_stride

GIB = 2**30


def compiled_bytes(vgg_weights, height: int, width: int, config: StyleConfig) -> int:
    """XLA's peak buffers (arguments + outputs + temporaries) of one optimization chunk of ``config``: compiled,
    not run."""
    config = configure_for(config, vgg_weights)
    content = {layer: jnp.zeros((height // layer_stride(layer), width // layer_stride(layer), 512))
               for layer in config.content_layers}
    channels = {"relu1_1": 64, "relu2_1": 128, "relu3_1": 256, "relu4_1": 512, "relu5_1": 512}
    grams = {layer: jnp.zeros((channels[layer],) * 2) for layer in config.style_layers}
    inputs = LossInputs(vgg_weights.params, StyleTargets(content, grams), loss_weights_for(config))
    compiled = compile_solver(loss_spec_for(config), solver_spec_for(config))
    x = jnp.zeros((height, width, 3))
    state = jax.eval_shape(compiled.init, x, inputs, jnp.float32(1.0))
    analysis = compiled.chunk.lower(x, state, inputs, jnp.int32(1), capacity=2).compile().memory_analysis()
    return (analysis.argument_size_in_bytes + analysis.output_size_in_bytes + analysis.temp_size_in_bytes
            - analysis.alias_size_in_bytes)


@pytest.mark.parametrize("shape, config", [
    ((256, 320), StyleConfig()),  # L-BFGS, whole image
    ((352, 480), StyleConfig(optimizer="adam", tile_size=128)),  # Adam, 12 tiles
])
def test_estimate_within_a_quarter_of_what_xla_allocates(vgg_weights, shape, config):
    measured = compiled_bytes(vgg_weights, *shape, config)
    estimate = memory.device_bytes(*shape, config)
    assert abs(estimate - measured) <= 0.25 * measured, (estimate / 2**20, measured / 2**20)


def test_auto_plan_runs_whole_when_it_fits_and_tiles_when_not():
    devices = jax.devices()[:1]
    config = StyleConfig(image_size=1024)
    assert memory.plan_run((768, 1024), config, devices=devices, budget=64 * GIB).strategy == "whole"
    tight = memory.plan_run((768, 1024), config, devices=devices, budget=3 * GIB)
    assert tight.strategy == "tiled" and tight.fits and tight.tiles > 1
    assert tight.process_bytes <= 3 * GIB < memory.run_needs((768, 1024), config)
    largest = dict(tight.largest)
    assert largest[f"tiled ({tight.tile_size} px)"] > largest["whole"]  # tiles fit a larger image in the same memory
    assert memory.plan_run((768, 1024), config.replace(shard="none"), devices=devices, budget=GIB).tile_size is None


def test_auto_plan_splits_rows_over_devices_before_tiling():
    four = jax.devices()[:1] * 4  # the planner only counts them
    config = StyleConfig(image_size=2048)
    whole = memory.run_needs((768, 1024), config)
    plan = memory.plan_run((768, 1024), config, devices=four, budget=whole // 2)
    assert plan.strategy == "spatial" and plan.shards == 4 and plan.fits
    assert plan.device_bytes < memory.device_bytes(1536, 2048, config) / 2
    assert "over 4 devices" in plan.describe() and "spatial" in dict(plan.largest)


def test_dry_run_prints_the_plan_and_loads_nothing(tmp_path, inputs, weights_file, monkeypatch, capsys):
    monkeypatch.setattr(loading, "load_weights", lambda *args: pytest.fail("--dry-run loaded the network"))
    out = tmp_path / "out.png"
    code = cli.main([str(inputs["content"]), str(inputs["style"]), "-o", str(out), "--weights", str(weights_file),
                     "--image-size", "64", "--dry-run"])
    printed = capsys.readouterr().out
    assert code == 0 and not out.exists()
    assert "plan: " in printed and "whole on one device" in printed and "largest long side" in printed


def test_spatial_shard_is_for_single_images(vgg_weights):
    from nst_jax import stylize_sweep

    image = random_images((32, 32, 3))
    with pytest.raises(ValueError, match="shard spatial"):
        stylize_sweep(image, image, style_weights=[1.0, 2.0], vgg=vgg_weights,
                      config=StyleConfig(image_size=32, iterations=1, shard="spatial"))
    assert np.isfinite(memory.device_bytes(32, 32, StyleConfig()))
