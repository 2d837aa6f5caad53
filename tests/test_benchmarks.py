"""The PyTorch baseline counts honestly, and ``python -m benchmarks.compare`` reports what it measured."""

from __future__ import annotations

import contextlib
import io
import json
import math
import tempfile
from pathlib import Path

import numpy as np
import pytest

from benchmarks import compare, torch_baseline
from nst_jax.config import StyleConfig
from nst_jax.problem import initial_image, prepare_images
from nst_jax.transfer import stylize
from nst_jax.weights import load_weights

pytestmark = pytest.mark.slow  # the harness compiles and times both implementations

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SIZE = 32
ITERATIONS = 2

TOP_KEYS = {"software", "label", "weights", "settings", "environment", "rows", "ratios"}
ROW_KEYS = {
    "implementation", "backend", "device", "size", "optimizer", "iterations", "evaluations", "initial_evaluations",
    "loop_seconds", "loop_seconds_median", "ms_per_iteration", "flop_per_evaluation", "gflop_per_second",
    "call_seconds", "call_seconds_median",
    "warmup_seconds", "compile_seconds", "compiles_during_timed_runs", "peak_rss_mb", "rss_growth_mb",
    "device_peak_mb", "final_losses", "loss_history",
}
RATIO_KEYS = {"size", "optimizer", "backend", "jax_ms_per_iteration", "torch_ms_per_iteration", "ratio"}


@pytest.fixture(scope="module")
def harness_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, str, dict]:
    """One end-to-end run of the harness at a tiny size (default random weights), its stdout and JSON."""
    path = tmp_path_factory.mktemp("bench") / "report.json"
    argv = [
        "--size", str(SIZE), "--iterations", str(ITERATIONS), "--repeats", "2", "--optimizer", "both",
        "--lbfgs-backend", "optax", "--json", str(path),
    ]
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        code = compare.main(argv)
    return code, stdout.getvalue(), json.loads(path.read_text())


def test_harness_exits_cleanly_and_labels_random_weights(harness_run):
    code, stdout, report = harness_run
    assert code == 0
    assert "RANDOM WEIGHTS" in stdout.splitlines()[0]
    assert "RANDOM WEIGHTS" in report["label"] and report["weights"]["pretrained"] is False


def test_json_has_the_documented_keys(harness_run):
    _, _, report = harness_run
    assert set(report) == TOP_KEYS
    assert {(row["implementation"], row["optimizer"]) for row in report["rows"]} == {
        ("nst_jax", "lbfgs"), ("torch", "lbfgs"), ("nst_jax", "adam"), ("torch", "adam"),
    }
    for row in report["rows"]:
        assert set(row) == ROW_KEYS
    assert len(report["ratios"]) == 2
    for ratio in report["ratios"]:
        assert set(ratio) == RATIO_KEYS


def test_numbers_are_measurements(harness_run):
    _, _, report = harness_run
    for row in report["rows"]:
        assert row["iterations"] == ITERATIONS == len(row["loss_history"])
        assert len(row["loop_seconds"]) == len(row["call_seconds"]) == 2
        assert all(t > 0 for t in row["loop_seconds"])
        assert all(call >= loop for call, loop in zip(row["call_seconds"], row["loop_seconds"]))
        assert row["ms_per_iteration"] == pytest.approx(1000 * row["loop_seconds_median"] / ITERATIONS)
        assert row["warmup_seconds"] > 0 and row["evaluations"] >= ITERATIONS
        assert all(math.isfinite(v) and v >= 0 for v in row["final_losses"].values())
        assert row["final_losses"]["total"] > 0
        if row["implementation"] == "nst_jax":
            assert row["compile_seconds"] > 0 and row["compiles_during_timed_runs"] == 0
        else:
            assert row["compile_seconds"] is None
        assert row["device_peak_mb"] is None or row["device_peak_mb"] > 0
    for ratio in report["ratios"]:
        assert ratio["ratio"] == pytest.approx(ratio["jax_ms_per_iteration"] / ratio["torch_ms_per_iteration"])


def test_table_prints_the_json_numbers(harness_run):
    _, stdout, report = harness_run
    for row in report["rows"]:
        line = next(
            text for text in stdout.splitlines()
            if text.startswith(row["implementation"]) and f" {row['backend']} " in text
            and f" {row['optimizer']} " in text
        )
        assert f"{row['final_losses']['total']:.5g}" in line
        assert f"{row['ms_per_iteration']:.1f}" in line
    for ratio in report["ratios"]:
        assert f"{ratio['ratio']:.3f}" in stdout


def test_json_losses_are_the_runs_losses(harness_run):
    # Rerun both implementations' Adam in this process: the same inputs must give the losses the JSON holds.
    _, _, report = harness_run
    settings = report["settings"]
    rows = {row["implementation"]: row for row in report["rows"] if row["optimizer"] == "adam"}
    config = StyleConfig(image_size=SIZE, iterations=ITERATIONS, optimizer="adam", init=settings["init"])
    with tempfile.TemporaryDirectory() as scratch:  # the harness's random weights (seed 0), written again
        weights = compare.load_quietly(compare.random_weights_file(Path(scratch)))
    assert weights.checksum == report["weights"]["sha256"]
    content, styles = prepare_images(settings["content"], settings["style"], config)
    ours = stylize(content, styles, vgg=weights, config=config)
    assert ours.final_losses.total == pytest.approx(rows["nst_jax"]["final_losses"]["total"], rel=1e-6)
    np.testing.assert_allclose(ours.losses.total, rows["nst_jax"]["loss_history"], rtol=1e-6)
    model = torch_baseline.load_torch_vgg(weights, "avg")
    reference = torch_baseline.stylize_torch(
        model, content, styles, initial_image(config, content, styles), config=config
    )
    assert reference.final_losses.total == pytest.approx(rows["torch"]["final_losses"]["total"], rel=1e-6)


def test_batch_compares_one_sweep_with_sequential_runs(tmp_path):
    path = tmp_path / "batch.json"
    argv = ["--batch", "2", "--size", str(SIZE), "--iterations", str(ITERATIONS), "--repeats", "1",
            "--optimizer", "adam", "--json", str(path)]
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        assert compare.main(argv) == 0
    report = json.loads(path.read_text())
    rows = {row["implementation"].split(" [")[0]: row for row in report["batch_rows"]}
    assert set(rows) == {"nst_jax batched", "nst_jax sequential", "torch sequential"}
    for row in rows.values():
        assert row["images"] == 2 and len(row["seconds"]) == 1 and row["seconds"][0] > 0
        assert len(row["final_totals"]) == 2
    # Member i of the batch is the sequential run i (Adam, same init): the same final losses.
    np.testing.assert_allclose(rows["nst_jax batched"]["final_totals"], rows["nst_jax sequential"]["final_totals"],
                               rtol=1e-4)
    (ratio,) = report["batch_ratios"]
    assert ratio["batched_over_jax_sequential"] == pytest.approx(
        rows["nst_jax batched"]["seconds_median"] / rows["nst_jax sequential"]["seconds_median"]
    )
    assert f"{ratio['batched_over_jax_sequential']:.3f}" in stdout.getvalue()


def test_non_positive_counts_are_refused(capsys):
    assert compare.main(["--batch", "0"]) == 2
    assert "must be positive" in capsys.readouterr().err


def test_json_report_never_replaces_a_file_nst_jax_did_not_write(tmp_path, capsys):
    notes = tmp_path / "notes.json"
    notes.write_text('{"mine": true}\n')
    assert compare.main(["--size", "16", "--json", str(notes)]) == 2  # refused before anything is timed
    assert "exists and was not written by nst_jax; choose another file or remove it" in capsys.readouterr().err
    assert notes.read_text() == '{"mine": true}\n'


def test_torch_lbfgs_counts_iterations_and_evaluations(vgg_weights):
    config = StyleConfig(image_size=SIZE, iterations=5, optimizer="lbfgs", init="content")
    content, styles = prepare_images(EXAMPLES / "content.jpg", EXAMPLES / "style.jpg", config)
    model = torch_baseline.load_torch_vgg(vgg_weights, "avg")
    calls = []
    original = model.forward
    model.forward = lambda images, layers: calls.append(len(layers)) or original(images, layers)
    result = torch_baseline.stylize_torch(model, content, styles, content, config=config)
    loss_calls = [n for n in calls if n == 6]  # the loss asks for relu4_2 + five style layers; targets fewer
    assert result.iterations == 5 and result.initial_evaluations == 1
    assert int(result.evaluations.sum()) + result.initial_evaluations + 1 == len(loss_calls)  # +1: final losses
    assert np.all(result.evaluations >= 1)
    assert np.all(np.diff(result.losses.total) <= 0)  # strong-Wolfe steps never increase the loss
    # The last accepted iterate is the final image, so its recorded loss is the final loss.
    assert float(result.losses.total[-1]) == pytest.approx(result.final_losses.total, rel=1e-6)


def test_baseline_loads_pth_and_h5_alike(pth_file, weights_file):
    from_pth = torch_baseline.load_torch_vgg(pth_file, "max").state_dict()
    from_h5 = torch_baseline.load_torch_vgg(weights_file, "max").state_dict()
    from_weights = torch_baseline.load_torch_vgg(load_weights(weights_file), "max").state_dict()
    assert from_pth.keys() == from_h5.keys() == from_weights.keys()
    for key in from_pth:
        assert np.array_equal(from_pth[key].numpy(), from_h5[key].numpy())
        assert np.array_equal(from_h5[key].numpy(), from_weights[key].numpy())


def test_baseline_refuses_lbfgsb(vgg_weights):
    config = StyleConfig(image_size=SIZE, iterations=1, optimizer="lbfgsb")
    model = torch_baseline.load_torch_vgg(vgg_weights, "avg")
    image = np.zeros((21, 32, 3), np.float32)
    with pytest.raises(ValueError, match="lbfgs, adam"):
        torch_baseline.stylize_torch(model, image, [image], image, config=config)


def test_multiscale_benchmark_prints_and_writes_its_measurements(tmp_path, weights_file, capsys):
    from benchmarks import multiscale

    out = tmp_path / "multiscale.json"
    argv = ["--size", "48", "--coarse", "32", "--iterations", "2", "--weights", str(weights_file), "--json", str(out)]
    assert multiscale.main(argv) == 0
    printed = capsys.readouterr().out
    measured = json.loads(out.read_text())
    assert measured.pop("software") == "nst_jax"
    assert list(measured) == ["32,48 px, 2+2 its", "48 px, 4 its", "48 px, 2 its"]
    for name, run in measured.items():
        assert run["status"] == "completed" and run["seconds"] > 0 and run["evaluations"] >= 2
        assert f"{run['seconds']:7.1f} s" in printed and name in printed
    first, second = measured["32,48 px, 2+2 its"], measured["48 px, 4 its"]
    assert f"{first['seconds'] / second['seconds']:.2f}" in printed


def test_time_to_target_measures_every_lbfgs(tmp_path):
    path = tmp_path / "target.json"
    argv = ["--size", str(SIZE), "--target-iterations", "3", "--lbfgs-backend", "nst_jax", "--line-search", "none",
            "--init", "noise", "--json", str(path)]
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        assert compare.main(argv) == 0
    rows = json.loads(path.read_text())["target_rows"]
    assert [row["method"] for row in rows] == [
        "torch.optim.LBFGS[strong_wolfe]", "nst_jax.lbfgs[none]", "torch.optim.LBFGS[none]"]
    reference = rows[0]
    assert reference["iterations"] == 3 and reference["target"] == reference["final_loss"]
    for row in rows:
        assert row["target"] == reference["target"] and row["cap"] in (3, 9)
        if row["iterations"] is not None:  # reached: a timed run of exactly that many iterations
            assert 1 <= row["iterations"] <= row["cap"] and row["seconds"] > 0 and row["evaluations"] >= 1
        else:
            assert row["final_loss"] > row["target"]
        assert f"{row['target']:.4g}" in stdout.getvalue()
