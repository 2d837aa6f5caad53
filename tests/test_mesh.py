"""One image's rows split over several devices (``shard`` spatial, ``nst_jax.mesh``): the same loss, gradient and
stylized image as on one device, alone, with tiling and with style regions; run on 4 forced CPU devices in a child
process (the suite's own process has one)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from conftest import random_images

SPATIAL_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import jax, jax.numpy as jnp, numpy as np
    from nst_jax import StyleConfig, stylize
    from nst_jax.losses import LossInputs, LossSpec, LossWeights, compute_targets, loss_function
    from nst_jax.weights import load_weights

    weights = load_weights(sys.argv[1])
    data = np.load(sys.argv[2])
    report = {"devices": len(jax.devices()), "relative": {}, "max_difference": {}, "exchanges": {}}

    # The loss and its gradient, rows of a 52-row image (not a multiple of 4: XLA pads) over 4 devices.
    # Also guided by two style regions (Gatys et al. 2017): the top rows and the rest, a border inside a device's rows.
    content, style, x = data["content"], data["style"], jnp.asarray(data["x"])
    top = (np.arange(52) < 20)[:, None].repeat(40, 1).astype(np.float32)
    for name, tile, regions in (("whole", None, None), ("tiled", 24, None), ("guided", None, np.stack([top, 1 - top])),
                                ("guided tiled", 24, np.stack([top, 1 - top]))):
        plain = LossSpec(("relu3_1",), ("relu1_1", "relu2_1", "relu3_1"), tile_size=tile)
        spread = LossSpec(("relu3_1",), ("relu1_1", "relu2_1", "relu3_1"), tile_size=tile, spatial=True)
        styles = [style] if regions is None else [style, style[::-1]]
        targets = compute_targets(weights.params, content, styles, content_layers=plain.content_layers,
                                  style_layers=plain.style_layers, regions=regions)
        inputs = LossInputs(weights.params, targets, LossWeights(jnp.float32(2.0), jnp.float32(1e4), jnp.float32(0.5)))
        value = lambda s: jax.jit(jax.value_and_grad(lambda y, given: loss_function(s)(y, given).total))
        compiled = value(spread).lower(x, inputs).compile()  # run, and read for the exchanges it holds
        (v0, g0), (v1, g1) = value(plain)(x, inputs), compiled(x, inputs)
        report["relative"][name] = [abs(float(v1 - v0)) / abs(float(v0)),
                                    float(jnp.max(jnp.abs(g1 - g0)) / jnp.max(jnp.abs(g0)))]
        report["exchanges"][name] = compiled.as_text().count("collective-permute")

    # A whole stylize run, rows split (64 rows: the image itself split too) against one device.
    config = StyleConfig(**json.loads(sys.argv[3]))
    for name, extra in (("whole", {}), ("tiled", {"tile_size": 32})):
        single = stylize(data["content64"], data["style"], vgg=weights, config=config.replace(shard="none", **extra))
        spread = stylize(data["content64"], data["style"], vgg=weights, config=config.replace(shard="spatial", **extra))
        report["max_difference"][name] = float(np.max(np.abs(spread.image - single.image)))
    print(json.dumps(report))
    """
)

pytestmark = pytest.mark.numerics


@pytest.mark.slow
def test_rows_split_over_four_devices_equal_one_device(tmp_path, weights_file):
    np.savez(tmp_path / "inputs.npz", content=random_images((52, 40, 3), seed=1), style=random_images((48, 44, 3), 2),
             x=random_images((52, 40, 3), seed=3), content64=random_images((64, 48, 3), seed=4))
    config = {"image_size": 64, "iterations": 4, "optimizer": "adam", "learning_rate": 0.05, "init": "content",
              "content_layers": ["relu3_1"], "style_layers": ["relu1_1", "relu2_1", "relu3_1"]}  # as the loss above
    environment = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu")
    completed = subprocess.run([sys.executable, "-c", SPATIAL_SCRIPT, str(weights_file), str(tmp_path / "inputs.npz"),
                                json.dumps(config)], capture_output=True, text=True, timeout=900, env=environment)
    assert completed.returncode == 0, completed.stderr[-3000:]
    report = json.loads(completed.stdout.strip().splitlines()[-1])
    assert report["devices"] == 4
    for name, (value, gradient) in report["relative"].items():
        assert value <= 1e-5 and gradient <= 1e-5, (name, value, gradient)
        assert report["exchanges"][name] > 0, name  # XLA really split the rows: halos are exchanged between devices
    for name, difference in report["max_difference"].items():
        assert difference <= 1e-4, (name, difference)
