"""Batched sweeps and batches: member i equals single run i, early convergence is isolated, sharding, memory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from agreement import STRICT, Spread, assert_agree, assert_strict_somewhere, run_with_spread, spread
from conftest import random_images
from nst_jax import StyleConfig, memory, stylize
from nst_jax.color import rgb_to_yiq
from nst_jax.image_io import load_image, save_image
from nst_jax.memory import device_bytes, plan_batch
from nst_jax.problem import prepare_images
from nst_jax.sweep import stylize_batch, stylize_sweep

CONFIG = StyleConfig(image_size=32, iterations=8, chunk_size=4, init="noise")  # where the zoom cubic failed
# Batching does not depend on how deep the network goes: the other tests run two shallow layers (compiles ~3x faster).
SHALLOW = {"content_layers": ("relu2_2",), "style_layers": ("relu1_1", "relu2_1")}
FAST = CONFIG.replace(**SHALLOW)
ADAM = FAST.replace(optimizer="adam", learning_rate=0.05)
STYLE_WEIGHTS = [1e4, 1e6, 1e8]
# A batched member equals its single run as closely as the run itself allows (tests/agreement.py). L-BFGS's member
# beta = 1e4 is the one whose zoom search once amplified rounding 3e4-fold on every CPU (pixels 4.3e-2 apart: the
# cubic through two nearly equal slopes; nst_jax.lbfgs takes the secant there): now it agrees at the floor.


@pytest.fixture(scope="module")
def images() -> tuple[np.ndarray, np.ndarray]:
    return random_images((48, 64, 3), seed=21), random_images((40, 40, 3), seed=22)


@pytest.fixture(scope="module")
def singles(vgg_weights, images) -> dict[tuple[str, float], tuple[object, Spread]]:
    """Each member's single run and its spread, by (optimizer, style weight)."""
    content, style = images
    found = {}
    for config in (CONFIG, ADAM):
        for weight in STYLE_WEIGHTS:
            member = config.replace(style_weight=weight)
            run = lambda image, member=member: stylize(image, style, vgg=vgg_weights, config=member)  # noqa: E731
            single = run(content)
            found[config.optimizer, weight] = single, spread(run, content, single)
    return found


def assert_same_result(batched, single, run_spread: Spread, what: str = "") -> None:
    assert_agree(batched, single, run_spread, what)


@pytest.fixture(scope="module")
def adam_sweep(vgg_weights, images):
    """The Adam sweep over STYLE_WEIGHTS, shared by the tests that compare against it."""
    return stylize_sweep(*images, style_weights=STYLE_WEIGHTS, config=ADAM, vgg=vgg_weights)


@pytest.mark.numerics
@pytest.mark.slow
@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_sweep_member_equals_single_run(vgg_weights, images, adam_sweep, singles, optimizer):
    results = (stylize_sweep(*images, style_weights=STYLE_WEIGHTS, config=CONFIG, vgg=vgg_weights)
               if optimizer == "lbfgs" else adam_sweep)
    assert [r.config.style_weight for r in results] == STYLE_WEIGHTS
    for weight, result in zip(STYLE_WEIGHTS, results):
        assert result.status == "completed"
        assert_same_result(result, *singles[optimizer, weight], f"beta {weight:g}")
    assert_strict_somewhere([singles[optimizer, weight][1] for weight in STYLE_WEIGHTS], optimizer)
    if optimizer == "lbfgs":  # the member the cubic once broke
        assert singles["lbfgs", 1e4][1].image <= STRICT


@pytest.mark.numerics
@pytest.mark.slow
def test_early_converging_member_does_not_change_the_others(vgg_weights, images):
    # Member 1 has every weight zero: its gradient is zero at once, so its line searches end immediately.
    reference = stylize_sweep(*images, style_weights=[1e6, 1e8], config=FAST, vgg=vgg_weights)
    mixed = stylize_sweep(*images, style_weights=[1e6, 0.0], content_weights=[1.0, 0.0], config=FAST,
                          vgg=vgg_weights)
    np.testing.assert_array_equal(mixed[0].image, reference[0].image)
    np.testing.assert_array_equal(mixed[0].losses.total, reference[0].losses.total)
    assert float(mixed[1].final_losses.total) == 0.0


@pytest.mark.numerics
def test_sweep_split_to_fit_memory_gives_the_same_results(vgg_weights, images, adam_sweep, singles, monkeypatch):
    per_image = device_bytes(24, 32, ADAM)
    monkeypatch.setattr(memory, "device_memory_bytes", lambda device: int(1.5 * per_image))
    plans = []
    split = stylize_sweep(*images, style_weights=STYLE_WEIGHTS, config=ADAM, vgg=vgg_weights,
                          on_plan=plans.append)
    assert plans[0].per_run == 1 and plans[0].runs == 3 and "split into 3 runs" in plans[0].describe()
    for weight, a, b in zip(STYLE_WEIGHTS, adam_sweep, split):
        assert_agree(b, a, singles["adam", weight][1], f"beta {weight:g}")


def test_memory_estimate_grows_with_size_and_depth():
    # 4x the pixels, nearly 4x the memory once the image-sized arrays outweigh the network's weights
    small, large = device_bytes(1024, 1024, CONFIG), device_bytes(2048, 2048, CONFIG)
    assert 3.5 < large / small < 4.5
    small = device_bytes(64, 64, CONFIG)
    shallow = CONFIG.replace(content_layers=("relu1_1",), style_layers=("relu1_1",))
    assert device_bytes(64, 64, shallow) < small
    assert plan_batch(5, 64, 64, CONFIG).per_run == 5


def test_weight_lists_must_broadcast(vgg_weights, images):
    with pytest.raises(ValueError, match="content_weight list has 2 values; expected 1 or 3"):
        stylize_sweep(*images, style_weights=STYLE_WEIGHTS, content_weights=[1, 2], config=CONFIG,
                      vgg=vgg_weights)


@pytest.mark.numerics
@pytest.mark.slow
def test_batch_groups_by_size_and_skips_bad_files(tmp_path, vgg_weights, images):
    content, style = images
    paths = [
        save_image(tmp_path / "a.png", content),
        save_image(tmp_path / "b.png", random_images((48, 64, 3), seed=23)),
        tmp_path / "broken.png",
        save_image(tmp_path / "c.png", random_images((64, 48, 3), seed=24)),
    ]
    paths[2].write_text("not an image")
    done, plans = [], []
    items = stylize_batch(paths, style, config=FAST, vgg=vgg_weights, on_done=done.append,
                          on_plan=plans.append)
    assert [item.source for item in items] == paths
    assert items[2].result is None and "broken.png" in items[2].error
    assert [p.size for p in plans] == [2, 1]  # two 24x32 images in one batch, the 32x24 one alone
    assert len(done) == 4
    single, run_spread = run_with_spread(lambda image: stylize(image, style, vgg=vgg_weights, config=FAST),
                                         load_image(paths[1]))  # L-BFGS, as the batch ran
    assert_same_result(items[1].result, single, run_spread)
    assert items[3].result.image.shape == (32, 24, 3)


@pytest.mark.numerics
def test_sweep_keeps_the_content_colours_like_single_runs(vgg_weights, images):
    config = ADAM.replace(preserve_color="luminance")
    results = stylize_sweep(*images, style_weights=[1e4, 1e8], config=config, vgg=vgg_weights)
    content_image, _ = prepare_images(images[0], images[1], config)
    for weight, result in zip([1e4, 1e8], results):
        member = config.replace(style_weight=weight)
        assert_same_result(result, *run_with_spread(
            lambda image, member=member: stylize(image, images[1], vgg=vgg_weights, config=member), images[0]))
        inside = np.all((result.image > 0.0) & (result.image < 1.0), axis=-1)
        np.testing.assert_allclose(rgb_to_yiq(result.image)[inside][:, 1:], rgb_to_yiq(content_image)[inside][:, 1:],
                                   atol=1e-5)


@pytest.mark.numerics
def test_batch_recolours_the_style_for_each_content(tmp_path, vgg_weights, images):
    """Histogram mode: each member's style targets come from the style recoloured to that member's content."""
    content, style = images
    paths = [save_image(tmp_path / "a.png", content),
             save_image(tmp_path / "b.png", random_images((48, 64, 3), seed=25) * np.float32([1.0, 0.2, 0.4]))]
    config = ADAM.replace(preserve_color="histogram")
    items = stylize_batch(paths, style, config=config, vgg=vgg_weights)
    for path, item in zip(paths, items):
        assert_same_result(item.result, *run_with_spread(
            lambda image: stylize(image, style, vgg=vgg_weights, config=config), load_image(path)))


def test_batched_runs_refuse_coarse_to_fine(vgg_weights, images):
    config = CONFIG.replace(scales=(16, 32))
    with pytest.raises(ValueError, match="stylize_sweep optimizes at one size"):
        stylize_sweep(*images, style_weights=STYLE_WEIGHTS, config=config, vgg=vgg_weights)
    with pytest.raises(ValueError, match="stylize_batch optimizes at one size"):
        stylize_batch([images[0]], images[1], config=config, vgg=vgg_weights)


SHARDED_SCRIPT = textwrap.dedent(
    """
    import json, sys, warnings
    import numpy as np
    warnings.simplefilter("ignore")
    import jax
    from nst_jax import StyleConfig, load_weights
    from nst_jax.batching import run_batch
    from nst_jax.losses import LossInputs, LossWeights
    from nst_jax.problem import initial_image, loss_spec_for, prepare_images, solver_spec_for, targets_for
    weights = load_weights(sys.argv[1])
    data = np.load(sys.argv[2])
    config = StyleConfig(**json.loads(sys.argv[3]))
    content, styles = prepare_images(data["content"], data["style"], config)
    targets = targets_for(weights, content, styles, config)
    x0 = np.stack([initial_image(config, content, styles)] * 3)
    loss_weights = LossWeights(*(np.asarray(v, np.float32) for v in ([1.0] * 3, json.loads(sys.argv[5]), [0.0] * 3)))
    axes = LossInputs(None, None, 0)
    run = run_batch(x0, LossInputs(weights.params, targets, loss_weights), axes, loss_spec_for(config),
                    solver_spec_for(config), iterations=config.iterations, chunk_size=config.chunk_size)
    shards = [tuple(shard.data.shape) for shard in run.image.addressable_shards]
    np.save(sys.argv[4], np.asarray(run.image)[:3])
    print(json.dumps({"devices": len(jax.devices()), "device_set": len(run.image.sharding.device_set),
                      "shards": shards}))
    """
)


@pytest.mark.numerics
@pytest.mark.slow
def test_sharded_batch_equals_single_device(tmp_path, weights_file, images, adam_sweep, singles):
    content, style = images
    np.savez(tmp_path / "inputs.npz", content=content, style=style)
    config = ADAM.to_dict()
    environment = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu")
    out = tmp_path / "images.npy"
    completed = subprocess.run(
        [sys.executable, "-c", SHARDED_SCRIPT, str(weights_file), str(tmp_path / "inputs.npz"),
         json.dumps(config), str(out), json.dumps(STYLE_WEIGHTS)],
        capture_output=True, text=True, timeout=600, env=environment,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    report = json.loads(completed.stdout.strip().splitlines()[-1])
    assert report["devices"] == 4 and report["device_set"] == 4
    assert report["shards"] == [[1, 24, 32, 3]] * 4  # 3 members padded to 4, one per device
    for weight, image, reference in zip(STYLE_WEIGHTS, np.clip(np.load(out), 0, 1), adam_sweep):
        difference = float(np.max(np.abs(image - reference.image)))
        assert difference <= singles["adam", weight][1].image_tolerance, (weight, difference)


def test_sweep_and_batch_are_public_api():
    import nst_jax

    assert nst_jax.stylize_sweep is stylize_sweep and nst_jax.stylize_batch is stylize_batch


@pytest.mark.numerics
@pytest.mark.slow
def test_masks_follow_sweeps_and_each_batch_content(vgg_weights, images):
    """Style regions: a sweep member equals the single run with the same masks; a batch with each content's own
    masks (left/right swapped) equals each content's single run, and one mask set applies to every content."""
    content, style = images
    config = ADAM
    other = random_images((48, 64, 3), seed=25)
    left = np.zeros((48, 64), np.float32)
    left[:, :32] = 1
    styles, masks = [style, style[::-1, ::-1]], [left, 1 - left]
    sweep = stylize_sweep(content, styles, style_weights=[1e4, 1e6], config=config, vgg=vgg_weights, style_masks=masks)

    def single(image, masks, member=config):
        return stylize(image, styles, vgg=vgg_weights, config=member, style_masks=masks)

    assert_same_result(sweep[1], *run_with_spread(lambda image: single(image, masks, config.replace(style_weight=1e6)),
                                                  content))
    own = stylize_batch([content, other], styles, config=config, vgg=vgg_weights, style_masks=[masks, masks[::-1]])
    shared = stylize_batch([content, other], styles, config=config, vgg=vgg_weights, style_masks=masks)
    assert_same_result(own[1].result, *run_with_spread(lambda image: single(image, masks[::-1]), other))
    first, first_spread = run_with_spread(lambda image: single(image, masks), content)
    assert_same_result(shared[1].result, *run_with_spread(lambda image: single(image, masks), other))
    assert_same_result(own[0].result, first, first_spread)
    assert_same_result(shared[0].result, first, first_spread)
    assert np.abs(own[1].result.image - shared[1].result.image).max() > 1e-2  # the swapped masks changed it


def test_batch_masks_for_some_contents_only_are_counted(vgg_weights, images):
    """Masks for 2 of 3 contents: the counts in the message (it read the lists as a mask: "got list")."""
    content, style = images
    masks = [[np.ones((48, 64), np.float32)], [np.ones((48, 64), np.float32)]]
    with pytest.raises(ValueError, match=r"style_masks holds 2 entries for 3 content image\(s\)"):
        stylize_batch([content] * 3, style, config=ADAM, vgg=vgg_weights, style_masks=masks)
    with pytest.raises(ValueError, match=r"holds 2 entries for 2 content"):  # a list for one, one mask for the other
        stylize_batch([content] * 2, style, config=ADAM, vgg=vgg_weights, style_masks=[masks[0], masks[0][0]])
