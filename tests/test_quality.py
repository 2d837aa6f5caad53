"""``python -m benchmarks.quality``: its requests checked before anything slow, its settings, and one 32 px run of
two settings on random VGG16s whose JSON, table and pictures hold what the docstring says, every number measured;
the PyTorch baseline stepped in chunks takes the iterates of one long ``.step``."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from benchmarks import metrics, quality, torch_baseline
from nst_jax.config import StyleConfig
from nst_jax.problem import configure_for, initial_image, prepare_images
from nst_jax.weights import load_weights

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
CONTENT, STYLE, STYLE2 = EXAMPLES / "content.jpg", EXAMPLES / "style.jpg", EXAMPLES / "style2.jpg"
SIZE = 32

TOP_KEYS = {"software", "label", "size", "budget", "pairs", "settings", "networks", "lpips", "environment", "runs",
            "summary", "interrupted"}
RUN_KEYS = {"pair", "setting", "network", "judge", "implementation", "shape", "warmup_seconds", "status", "stopped_by",
            "device", "iterations", "evaluations", "seconds", "final_loss", "checkpoints", "final"}
CHECKPOINT_KEYS = {"iteration", "seconds", "evaluations", "loss", "gram_ratio", "mean_covariance_ratio", "lpips"}
FINAL_KEYS = {"gram_ratio", "mean_covariance_ratio", "lpips", "distances", "photo_distances", "layers",
              "photo_layers"}
SUMMARY_KEYS = {"setting", "network", "judge", "pairs", "iterations", "seconds", "gram_ratio",
                "mean_covariance_ratio", "lpips", "curve"}


def run_main(argv: list[str]) -> tuple[int, str, str]:
    """``quality.main(argv)``: its exit code, stdout and stderr."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = quality.main(argv)
    return code, out.getvalue(), err.getvalue()


# --------------------------------------------------------------------------------------------- requests


def test_settings_presets_and_custom_ones():
    assert [s.name for s in quality.resolve_settings(None, [])] == list(quality.DEFAULT_SETTINGS)
    custom = quality.parse_setting("network=caffe,pooling=max,style-weight=1e3,coarse_to_fine=yes")
    assert (custom.network, custom.pooling, custom.style_weight, custom.coarse_to_fine, custom.judge) == (
        "caffe", "max", 1000.0, True, "torchvision")
    assert custom.name == "network=caffe+pooling=max+style_weight=1e3+coarse_to_fine=yes"
    from_preset = quality.parse_setting("preset=torch-adam,name=mine,learning_rate=0.05")
    assert (from_preset.name, from_preset.implementation, from_preset.optimizer, from_preset.learning_rate) == (
        "mine", "torch", "adam", 0.05)
    assert [s.name for s in quality.resolve_settings("adam", ["name=x,init=content"])] == ["adam", "x"]
    for bad, message in (("colour=red", "unknown key"), ("style_weight=big", "must be a number"),
                         ("optimizer=sgd", "optimizer"), ("network=alexnet", "network"),
                         ("implementation=torch,line_search=backtracking", "PyTorch baseline"),
                         ("preset=nope", "unknown preset"), ("pooling", "KEY=VALUE")):
        with pytest.raises(quality.UsageError, match=message):
            quality.parse_setting(bad)
    with pytest.raises(quality.UsageError, match="unknown setting"):
        quality.resolve_settings("lbfgs,fast", [])
    with pytest.raises(quality.UsageError, match="named twice"):
        quality.resolve_settings("adam", ["name=adam"])


def test_coarse_to_fine_sizes_and_iterations():
    assert quality.coarse_sizes(512) == (128, 256, 512)
    assert quality.coarse_sizes(128) == (64, 128)
    assert quality.coarse_sizes(96) == (96,)
    config = quality.PRESETS["lbfgs-scales"].config(512, 101, 10)
    assert config.scales == (128, 256, 512) and config.scale_iterations == (50, 25, 26)
    assert quality.PRESETS["lbfgs-scales"].config(96, 40, 10).scales is None


def test_pairs(tmp_path):
    assert quality.parse_pairs(f"{CONTENT}:{STYLE},{CONTENT}:{STYLE2}") == [(CONTENT, STYLE), (CONTENT, STYLE2)]
    assert quality.default_pairs(tmp_path) == [(CONTENT, STYLE), (CONTENT, STYLE2)]  # no shared images there
    for name in quality.SHARED_PAIRS[0] + quality.SHARED_PAIRS[1]:
        Image.new("RGB", (40, 30)).save(tmp_path / name)
    assert quality.default_pairs(tmp_path) == [(tmp_path / c, tmp_path / s) for c, s in quality.SHARED_PAIRS]
    assert quality.parse_pairs("tubingen.jpg:the_scream.jpg", tmp_path) == [(tmp_path / "tubingen.jpg",
                                                                             tmp_path / "the_scream.jpg")]
    with pytest.raises(quality.UsageError, match="needs the shared images"):
        quality.parse_pairs("all", tmp_path)
    with pytest.raises(quality.UsageError, match="no image file"):
        quality.parse_pairs(f"{CONTENT}:{tmp_path / 'missing.jpg'}")
    with pytest.raises(quality.UsageError, match="CONTENT:STYLE"):
        quality.parse_pairs(str(CONTENT))


@pytest.mark.parametrize("argv, message", [
    (["--settings", "lbfgs,warp"], "unknown setting"),
    (["--size", "16"], "--size"),
    (["--iterations", "0"], "positive"),
    (["--plot", "out.jpg"], "PNG"),
    (["--torchvision", "/nonexistent/vgg16.h5"], "no weights file"),
])
def test_bad_requests_are_one_line_and_exit_2_before_anything_slow(argv, message):
    code, _, err = run_main(argv + ["--pairs", f"{CONTENT}:{STYLE}"])
    assert code == 2, err
    assert err.count("\n") == 1 and err.startswith("benchmarks.quality: error:") and message in err


def test_an_image_too_small_for_the_size_is_refused_first(tmp_path):
    Image.new("RGB", (400, 20)).save(tmp_path / "strip.png")  # at 128 px: 6x128, relu5_1 needs 16
    code, _, err = run_main(["--pairs", f"{tmp_path / 'strip.png'}:{STYLE}", "--json", str(tmp_path / "q.json")])
    assert code == 2 and "strip.png with lbfgs" in err and "at least" in err
    assert not (tmp_path / "q.json").exists()


def test_the_json_never_replaces_an_input_or_a_file_it_did_not_write(tmp_path):
    foreign = tmp_path / "notes.json"
    foreign.write_text("{}")
    code, _, err = run_main(["--pairs", f"{CONTENT}:{STYLE}", "--json", str(foreign)])
    assert code == 2 and "remove it" in err
    assert foreign.read_text() == "{}"


# --------------------------------------------------------------------------------------------- a run


@pytest.fixture(scope="module")
def quality_run(random_vgg16s, tmp_path_factory) -> tuple[int, str, dict, Path]:
    """One 32 px run: lbfgs (torchvision's network) and caffe-adam on two pairs, 8 iterations measured every 4
    (the chunk ``benchmarks.gpu``'s tiny plan compiles too)."""
    out = tmp_path_factory.mktemp("quality")
    code, stdout, _ = run_main([
        "--size", str(SIZE), "--settings", "lbfgs,caffe-adam", "--iterations", "8", "--checkpoint", "4",
        "--seconds", "600", "--pairs", f"{CONTENT}:{STYLE},{CONTENT}:{STYLE2}",
        "--torchvision", str(random_vgg16s["torchvision"]), "--caffe", str(random_vgg16s["caffe"]),
        "--lpips-lin", str(random_vgg16s["lin"]), "--json", str(out / "q.json"), "--plot", str(out / "q.png"),
        "--sheet", str(out / "sheet.png"),
    ])
    return code, stdout, json.loads((out / "q.json").read_text()), out


@pytest.mark.slow
def test_the_report_has_the_documented_keys(quality_run):
    code, stdout, report, _ = quality_run
    assert code == 0
    assert set(report) == TOP_KEYS and report["label"] == quality.RANDOM_LABEL
    assert len(report["runs"]) == 4 and len(report["summary"]) == 2
    for run in report["runs"]:
        assert set(run) == RUN_KEYS and set(run["final"]) == FINAL_KEYS
        assert all(set(checkpoint) == CHECKPOINT_KEYS for checkpoint in run["checkpoints"])
        assert set(run["final"]["layers"]) == set(metrics.JUDGE_LAYERS)
    assert all(set(row) == SUMMARY_KEYS for row in report["summary"])
    assert stdout.splitlines()[0] == quality.RANDOM_LABEL
    assert "| lbfgs | torchvision / caffe | 2 | 8 |" in stdout
    assert "| caffe-adam | caffe / torchvision | 2 | 8 |" in stdout


@pytest.mark.slow
def test_every_number_is_measured(quality_run):
    _, _, report, _ = quality_run
    for index, run in enumerate(report["runs"]):
        assert run["judge"] != run["network"] and run["stopped_by"] == "iterations" and run["status"] == "completed"
        first_pair = index < 2
        assert (run["warmup_seconds"] > 0) if first_pair else run["warmup_seconds"] is None  # one compile each
        points = run["checkpoints"]
        assert [p["iteration"] for p in points] == [0, 4, 8]
        assert points[0]["seconds"] == 0 < points[1]["seconds"] < points[2]["seconds"] == run["seconds"]
        assert points[0]["evaluations"] == 0 and points[2]["evaluations"] == run["evaluations"] >= 8
        assert all(np.isfinite(p["loss"]) for p in points[1:])
        assert all(p["gram_ratio"] > 0 and p["mean_covariance_ratio"] > 0 and p["lpips"] >= 0 for p in points)
        assert points[-1]["lpips"] > 0 and points[-1]["gram_ratio"] == run["final"]["gram_ratio"]
    for row in report["summary"]:
        mine = [run for run in report["runs"] if run["setting"] == row["setting"]]
        for key in quality.METRICS:
            assert row[key] == pytest.approx(np.mean([run["final"][key] for run in mine]), rel=1e-12)
        assert [point["iteration"] for point in row["curve"]] == [0, 4, 8]


@pytest.mark.slow
def test_the_plot_and_the_sheet_are_written(quality_run):
    _, _, _, out = quality_run
    with Image.open(out / "q.png") as plot:
        assert plot.size == (1500, 500)
    with Image.open(out / "sheet.png") as sheet:
        assert sheet.width > 4 * SIZE and sheet.height > 2 * 21  # 2 rows of photo, style and two settings


@pytest.mark.slow
def test_the_seconds_budget_stops_a_run_at_its_first_checkpoint(quality_run, random_vgg16s):
    vgg = load_weights(random_vgg16s["torchvision"])
    content, (style,) = prepare_images(CONTENT, STYLE, StyleConfig(image_size=SIZE))
    budget = quality.Budget(iterations=8, seconds=1e-9, checkpoint=4)
    trajectory = quality.run_nst_jax(quality.PRESETS["lbfgs"], vgg, content, style, budget, SIZE, {})
    assert trajectory.stopped_by == "seconds" and trajectory.status == "interrupted"
    assert [s.iteration for s in trajectory.snapshots] == [0, 4]


@pytest.fixture
def one_torch_thread():
    """PyTorch on one thread for the test: with two on this shared 2-core machine its OpenMP workers wait for each
    other (measured 35x slower at 32 px under a load of 7)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("line_search", ["zoom", "none"])
def test_torch_lbfgs_in_chunks_takes_the_iterates_of_one_long_step(random_vgg16s, line_search, one_torch_thread):
    vgg = load_weights(random_vgg16s["torchvision"])
    setting = quality.Setting("chunks", implementation="torch", line_search=line_search)
    content, (style,) = prepare_images(CONTENT, STYLE, StyleConfig(image_size=SIZE))
    trajectory = quality.run_torch(setting, vgg, content, style, quality.Budget(6, 600.0, 2), SIZE, {}, {})
    config = configure_for(setting.config(SIZE, 6, 2), vgg)
    model = torch_baseline.load_torch_vgg(vgg, "avg")
    reference = torch_baseline.stylize_torch(model, content, [style], initial_image(config, content, [style]),
                                             config=config)
    assert [s.iteration for s in trajectory.snapshots] == [0, 2, 4, 6]
    # The same operations on the same numbers (the restart recomputes the gradient the long run kept): measured
    # equal to the last bit on this CPU; 1e-6 leaves room for a library that sums in another order.
    print(f"largest difference: {np.abs(trajectory.snapshots[-1].image - reference.image).max():.1e}")
    np.testing.assert_allclose(trajectory.snapshots[-1].image, reference.image, rtol=0, atol=1e-6)
    assert trajectory.snapshots[-1].evaluations == int(reference.evaluations.sum()) + reference.initial_evaluations


@pytest.mark.slow
def test_ctrl_c_writes_what_was_measured_and_exits_130(random_vgg16s, tmp_path, interrupt_first_chunk):
    code, _, err = run_main([
        "--size", str(SIZE), "--settings", "lbfgs", "--iterations", "8", "--checkpoint", "4",
        "--pairs", f"{CONTENT}:{STYLE}", "--torchvision", str(random_vgg16s["torchvision"]),
        "--caffe", str(random_vgg16s["caffe"]), "--lpips-lin", str(random_vgg16s["lin"]),
        "--json", str(tmp_path / "q.json"),
    ])
    assert code == 130 and "interrupted" in err
    report = json.loads((tmp_path / "q.json").read_text())
    assert report["interrupted"] is True and report["runs"] == [] and report["summary"] == []
