"""``python -m benchmarks.gpu`` without a GPU: the carry it packs (both networks in float16, LPIPS, images), its
``--dry-run`` (the plan fits the 8 minutes by its own estimates, nothing touches a device), the budget that skips
steps, the video hook, and (slow) every step of the tiny plan on the CPU with the reports it writes."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import re
import shutil
import sys
import types
from pathlib import Path

import h5py
import numpy as np
import pytest

from benchmarks import gpu, metrics, quality
from nst_jax.weights import load_weights


def run_main(argv: list[str]) -> tuple[int, str, str]:
    """``gpu.main(argv)``: its exit code, stdout and stderr."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = gpu.main(argv)
    return code, out.getvalue(), err.getvalue()


def pair_images() -> set[Path]:
    """The images of the quality benchmark's default pairs, which the carry takes along."""
    return {path for pair in quality.default_pairs() for path in pair}


@pytest.fixture(scope="module")
def carry(random_vgg16s, tmp_path_factory) -> tuple[Path, str]:
    """``--pack`` into a fresh folder: the folder and what the command printed."""
    folder = tmp_path_factory.mktemp("carry") / "gpu_carry"
    code, out, err = run_main(["--pack", "--carry", str(folder), "--torchvision", str(random_vgg16s["torchvision"]),
                               "--caffe", str(random_vgg16s["caffe"]), "--lpips-lin", str(random_vgg16s["lin"])])
    assert code == 0, err
    return folder, out


def test_pack_rounds_both_networks_to_float16_and_keeps_what_they_are(carry, random_vgg16s):
    folder, out = carry
    for name, file in gpu.CARRY_WEIGHTS.items():
        packed, original = load_weights(folder / file), load_weights(random_vgg16s[name])
        assert packed.info.preprocessing == original.info.preprocessing and packed.architecture == "vgg16"
        assert packed.info.source.startswith(original.info.source) and "float16" in packed.info.source
        with h5py.File(folder / file) as handle:
            assert handle["conv1_1/kernel"].dtype == np.float16
        for layer in ("conv1_1", "conv3_2", "conv5_3"):
            for key in ("kernel", "bias"):
                a, b = np.asarray(packed[layer][key]), np.asarray(original[layer][key])
                # float16 keeps 11 significant bits: rounding moves a value by at most 2^-11 of itself (values
                # below 2^-14 are subnormal and move by at most 2^-25 in absolute terms)
                assert np.all(np.abs(a - b) <= np.maximum(2.0**-11 * np.abs(b), 2.0**-25)), f"{layer}/{key}"
    lin = metrics.load_lpips_lin(random_vgg16s["lin"])
    for ours, expected in zip(metrics.load_lpips_lin(folder / gpu.CARRY_LIN), lin):
        np.testing.assert_array_equal(ours, expected)
    assert {p.name for p in (folder / gpu.CARRY_IMAGES).iterdir()} == {path.name for path in pair_images()}
    assert f"{gpu.CARRY_WEIGHTS['torchvision']}" in out


def test_dry_run_prints_a_plan_that_fits_the_8_minutes_and_touches_no_device(carry):
    folder, _ = carry
    code, out, err = run_main(["--dry-run", "--carry", str(folder)])
    assert code == 0, out + err
    for step in gpu.build_steps(gpu.GPU_PLAN):
        assert re.search(rf"^  {re.escape(step.name)}\s+\d+\s+\d+\s", out, re.MULTILINE), step.name
    assert "would be skipped" not in out  # every step is expected within the budget
    total = float(re.search(r"expected in all: (\d+) s", out).group(1))
    assert total <= gpu.BUDGET <= gpu.WALL_LIMIT
    # 2 networks, LPIPS, the pairs' images (the shared images' 4, else 3 of the examples)
    assert f"carry {folder}: {3 + len(pair_images())} files" in out
    assert re.search(r"travels \(tree \+ carry\): [\d.]+ MiB of 64 MiB$", out, re.MULTILINE)


def test_the_estimates_add_up_to_the_printed_total():
    plan = gpu.GPU_PLAN
    steps = gpu.build_steps(plan)
    total = gpu.COSTS.startup + sum(gpu.estimate(step.name, plan) for step in steps)
    code, out, _ = run_main(["--dry-run", "--carry", "/nonexistent"])
    assert code == 2 and "--pack" in out  # the real run would find nothing to load
    assert f"expected in all: {total:.0f} s" in out
    assert all(gpu.estimate(step.name, plan) > 0 for step in steps)


def test_bad_requests_exit_2(tmp_path):
    code, _, err = run_main(["--only", "compare-512,warp"])
    assert code == 2 and "unknown step(s) warp" in err
    code, _, err = run_main(["--carry", str(tmp_path), "--plan", "tiny"])
    assert code == 2 and "--pack" in err


def test_steps_past_the_budget_are_skipped_with_the_reason(carry, tmp_path, monkeypatch):
    folder, _ = carry
    monkeypatch.setenv(quality.SHARED_IMAGES_ENV, str(tmp_path / "no-shared"))  # restored after setup() sets it
    code, out, err = run_main(["--plan", "tiny", "--carry", str(folder), "--budget", "0.001", "--out", str(tmp_path)])
    assert code == 0, err
    record = json.loads((tmp_path / "gpu.json").read_text())
    assert [step["name"] for step in record["steps"]] == [step.name for step in gpu.build_steps(gpu.TINY_PLAN)]
    assert all(step["status"] == "skipped" and "budget" in step["reason"] for step in record["steps"])
    assert out == (tmp_path / "gpu.md").read_text() + "\n" and "skipped: " in out


def test_video_rows_come_from_benchmarks_video_where_it_is(carry, monkeypatch):
    folder, _ = carry
    ctx = gpu.Context(gpu.GPU_PLAN, folder, None, lambda line: None, 0.0)
    calls = []

    def video_rows(size, device=None, **kwargs):
        calls.append((size, device, kwargs))
        return [{"mode": "temporal", "size": size}]

    monkeypatch.setitem(sys.modules, "benchmarks.video", types.SimpleNamespace(video_rows=video_rows))
    assert gpu.step_video(ctx) == {"rows": [{"mode": "temporal", "size": 256}]}
    size, device, kwargs = calls[0]
    assert (size, device, kwargs["frames"]) == (256, None, gpu.GPU_PLAN.video_frames)
    assert kwargs["weights"].endswith(gpu.CARRY_WEIGHTS["torchvision"]) and kwargs["judge"].endswith(
        gpu.CARRY_WEIGHTS["caffe"])
    monkeypatch.setitem(sys.modules, "benchmarks.video", None)  # not in this tree: the import fails
    assert "cannot be imported" in gpu.step_video(ctx)["skipped"]
    assert gpu.step_video(gpu.Context(gpu.TINY_PLAN, folder, None, print, 0.0)) == {"skipped": "no video in this plan"}


def test_the_batch_step_asks_benchmarks_compare_for_the_plans_sweep(carry, monkeypatch):
    """``batch`` is ``compare.benchmark_batch`` (tested in test_benchmarks) with the plan's numbers: checked here
    without running it (its batched compile alone takes ~20 s on this CPU); its report through ``markdown``."""
    from benchmarks import compare

    seen = {}

    def benchmark_batch(size, args, weights, model, log):
        seen.update(size=size, args=args, weights=weights)
        row = compare.BatchRow("nst_jax batched [nst_jax.lbfgs[zoom]]", "cpu", (24, 32), "lbfgs", args.batch, 1.0,
                               "torch sequential [torch.optim.LBFGS[strong_wolfe]]", [2.0], [1e-3, 2e-3])
        sequential = dataclasses.replace(row, implementation="nst_jax sequential [nst_jax.lbfgs[zoom]]", reference=None)
        return [row, sequential, dataclasses.replace(row, implementation=row.reference, reference=None)]

    monkeypatch.setattr(compare, "benchmark_batch", benchmark_batch)
    ctx = gpu.Context(gpu.TINY_PLAN, carry[0], None, lambda line: None, 0.0)
    ctx.networks = types.SimpleNamespace(weights={"torchvision": "the network"})
    ctx.content, ctx.style = quality.default_pairs()[0]
    ctx.models["avg"] = "a torch model"
    result = gpu.step_batch(ctx)
    args = seen["args"]
    assert (seen["size"], args.batch, args.iterations, args.optimizer, args.lbfgs_backend, args.line_search) == (
        32, 2, 4, "lbfgs", "nst_jax", "zoom")
    assert (args.content, args.style, seen["weights"]) == (ctx.content, ctx.style, "the network")
    assert result["ratios"] == compare.batch_ratios(compare.benchmark_batch(32, args, None, None, print))
    record = {"device": "cpu", "started": "2026-12-07T00:00:00", "plan_name": "tiny", "total_seconds": 1.0,
              "budget_seconds": 2.0, "environment": {},
              "steps": [{"name": "batch", "what": "batch", "status": "ran", "seconds": 1.0, "estimate_seconds": 1.0}
                        | result]}
    assert "nst_jax batched [nst_jax.lbfgs[zoom]]: 1.00 of sequential nst_jax, 1.00 of sequential PyTorch" in (
        gpu.markdown(record))


@pytest.mark.slow
def test_every_step_of_the_tiny_plan_runs_on_the_cpu(carry, tmp_path, monkeypatch):
    """The GPU command end to end at a few pixels (about a minute on 2 loaded cores: each step compiles), all but
    ``batch`` (above). Neither carried nor shared images: the run then takes the examples, at the shapes
    test_quality compiles for too."""
    monkeypatch.setenv(quality.SHARED_IMAGES_ENV, str(tmp_path / "no-shared"))
    folder = tmp_path / "carry"
    shutil.copytree(carry[0], folder, ignore=shutil.ignore_patterns(gpu.CARRY_IMAGES))
    out_dir = tmp_path / "out"
    names = [step.name for step in gpu.build_steps(gpu.TINY_PLAN) if step.name != "batch"]
    code, out, err = run_main(["--plan", "tiny", "--carry", str(folder), "--out", str(out_dir), "--budget", "3600",
                               "--only", ",".join(names)])
    assert code == 0, err
    record = json.loads((out_dir / "gpu.json").read_text())
    status = {step["name"]: step["status"] for step in record["steps"]}
    assert status == {**{name: "ran" for name in names}, "video": "skipped"}, [
        (s["name"], s.get("reason")) for s in record["steps"]]
    steps = {step["name"]: step for step in record["steps"]}
    compare = steps["compare-32"]
    assert {(r["implementation"], r["optimizer"]) for r in compare["rows"]} == {
        ("nst_jax", "lbfgs"), ("nst_jax", "adam"), ("torch", "lbfgs"), ("torch", "adam")}
    assert len(compare["ratios"]) == 2 * len(gpu.TINY_PLAN.precisions)
    assert steps["lbfgs-long"]["nst_jax_seconds_median"] > 0 and steps["lbfgs-long"]["torch_seconds"] > 0
    assert {run["setting"] for run in steps["quality"]["runs"]} == set(gpu.TINY_PLAN.quality_settings)
    largest = {row["strategy"]: row for row in steps["largest"]["rows"]}
    assert largest["whole"]["run_size"] == 36 and largest["tiled"]["run_size"] == 40
    assert largest["whole"]["planner_longest_side"] > 36 and largest["tiled"]["planner_longest_side"] > 40
    assert all(row["seconds_per_iteration"] > 0 for row in largest.values())
    assert all(step["seconds"] > 0 for step in record["steps"] if step["status"] == "ran")
    assert all(Path(content).parent.name == "examples" for content, _ in steps["quality"]["pairs"])
    text = (out_dir / "gpu.md").read_text()
    for name in names:
        assert f"### {name}: " in text
    assert {p.name for p in out_dir.iterdir()} == {"gpu.json", "gpu.md", "quality.png", "quality_sheet.png"}


def test_the_precisions_are_nst_jaxs():
    """gpu.py keeps its own copy so that --dry-run imports no JAX; it must be the product's list."""
    from nst_jax.vgg import PRECISIONS

    assert gpu.PRECISIONS == PRECISIONS == gpu.GPU_PLAN.precisions
