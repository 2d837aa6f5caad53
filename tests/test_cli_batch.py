"""The batched command line: weight sweeps (member files, labelled contact sheet, log, snapshots, non-finite
members) and ``--batch`` folders (bad files skipped, resume, overwrite, globs); bad input is one line, exit 2.

JAX compiles dominate the run time: the sweep (3 members) and the batch (groups of 2 and 1 images) each
compile once in module fixtures; the other runs reuse those shapes and configs, so they hit the caches.
Member i of a sweep equalling a single run with weight i is tested at library level (test_sweep.py)."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import save_random_image
from nst_jax import StyleConfig, cli, memory
from nst_jax.cli import loading, options, paths, progress
from nst_jax.cli import sweep as cli_sweep
from nst_jax.color import rgb_to_yiq
from nst_jax.contact_sheet import (
    caption_font_size,
    contact_sheet,
    default_font,
    drawable_text,
    sheet_layout,
)
from nst_jax.image_io import load_image, read_png_metadata
from nst_jax.problem import prepare_images

# Adam compiles several times faster than L-BFGS (no line-search loops), and the optimizer is not under test here.
FAST = [
    "--image-size", "32", "--iterations", "4", "--chunk-size", "2", "--optimizer", "adam",
    "--content-layers", "relu2_1", "--style-layers", "relu1_1,relu2_1", "--quiet",
]
SWEEP = ["--style-weight", "1e2,1e3,1e4"]
SWEEP_FILES = ["out_sw1e+02.png", "out_sw1e+03.png", "out_sw1e+04.png"]
SWEEP_LABELS = ["α/β = 1e-02", "α/β = 1e-03", "α/β = 1e-04"]  # content weight 1 over each style weight


@dataclasses.dataclass(frozen=True)
class Run:
    """A finished ``cli.main`` call."""

    code: int
    out: str
    err: str


def _main(argv: list[str]) -> Run:
    """``cli.main(argv)`` with its stdout and stderr captured (usable in module-scoped fixtures)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main([str(arg) for arg in argv])
    return Run(code, out.getvalue(), err.getvalue())


def _one_error_line(err: str) -> str:
    """The single line of stderr, checked to be a ``nst-jax: error:`` line without a traceback."""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("nst-jax: error: ") and "Traceback" not in err
    return lines[0]


def _sheet_layout(images: list[np.ndarray], labels: list[str], columns: int | None = None):
    """The layout ``contact_sheet`` gives these images and labels with its default font and gap."""
    font = default_font(caption_font_size(max(image.shape[1] for image in images)))
    return sheet_layout([image.shape for image in images], [drawable_text(label, font) for label in labels],
                        columns=columns, font=font, gap=6)


# --------------------------------------------------------------------------- contact sheets (no JAX)


def test_contact_sheet_places_each_image_above_its_label():
    rng = np.random.default_rng(0)
    images = [rng.random((27, 32, 3), dtype=np.float32) for _ in range(5)]
    labels = [f"α/β = 1e-0{i}" for i in range(5)]
    sheet = contact_sheet(images, labels)
    layout = _sheet_layout(images, labels)
    assert (layout.rows, layout.columns) == (2, 3)  # ceil(sqrt(5)) columns
    assert sheet.shape == layout.shape and sheet.dtype == np.float32
    strips = []
    for index, image in enumerate(images):
        top, left = layout.origin(index)
        y, x = top + (layout.cell_height - 27) // 2, left + (layout.cell_width - 32) // 2
        np.testing.assert_array_equal(sheet[y : y + 27, x : x + 32], image)  # tiles are copied exactly
        strip = sheet[top + layout.cell_height : top + layout.cell_height + layout.caption_height,
                      left : left + layout.cell_width]
        assert strip.min() < 0.3 and strip.max() == 1.0  # dark ink on white
        strips.append(strip)
    assert not np.array_equal(strips[0], strips[1])  # different labels, different ink
    top, left = layout.origin(5)  # the empty sixth cell stays background
    assert np.all(sheet[top : top + layout.cell_height, left : left + layout.cell_width] == 1.0)


def test_contact_sheet_columns_and_multiline_labels():
    images = [np.zeros((20, 30, 3), np.float32), np.full((10, 30, 3), 0.5, np.float32)]
    one_row = contact_sheet(images, ["a", "b"], columns=4)  # more columns than images: one row of two
    assert one_row.shape == _sheet_layout(images, ["a", "b"], columns=4).shape
    layout = _sheet_layout(images, ["a", "b"], columns=4)
    assert (layout.rows, layout.columns, layout.cell_height) == (1, 2, 20)
    two_lines = contact_sheet(images, ["a\nb", "c"], columns=1)
    assert two_lines.shape[0] > contact_sheet(images, ["a", "c"], columns=1).shape[0]
    blank = contact_sheet(images, ["", ""], columns=2)  # empty labels draw nothing
    assert blank.shape == _sheet_layout(images, ["", ""], columns=2).shape


def test_labels_spell_out_characters_the_font_lacks():
    font = default_font(12)
    text = drawable_text("α/β = 1e-03", font)
    assert text.endswith("= 1e-03")
    assert text in ("α/β = 1e-03", "alpha/beta = 1e-03")  # Greek kept only where the font has it


def test_contact_sheet_rejects_bad_input():
    image = np.zeros((20, 20, 3), np.float32)
    with pytest.raises(ValueError, match="at least one image"):
        contact_sheet([], [])
    with pytest.raises(ValueError, match="2 labels for 1 images"):
        contact_sheet([image], ["a", "b"])
    with pytest.raises(ValueError, match="expected \\(H, W, 3\\)"):
        contact_sheet([np.zeros((20, 20))], ["a"])


# --------------------------------------------------------------------------- naming and parsing (no JAX)


def test_member_names_and_labels():
    lists = {"style_weight": (1e2, 1e3), "tv_weight": (0.0, 1e-2)}
    assert [p.name for p in cli_sweep.member_paths(Path("d/out.jpg"), lists)] == [
        "out_sw1e+02_tv0e+00.jpg", "out_sw1e+03_tv1e-02.jpg"]
    assert cli_sweep.grid_path(Path("d/out.jpg")) == Path("d/out_grid.png")
    assert cli_sweep.distinct_format([1000.0, 1500.0, 2000.0]) == ["1.0e+03", "1.5e+03", "2.0e+03"]  # 1500 ~ 2e+03
    configs = cli_sweep.member_configs(StyleConfig(content_weight=10.0), lists)
    assert cli_sweep.member_labels(configs, with_tv=True) == ["α/β = 1e-01\nTV = 0e+00", "α/β = 1e-02\nTV = 1e-02"]
    assert cli_sweep.member_labels([StyleConfig(style_weight=0.0)], with_tv=False) == ["α/β = inf"]


def test_both_command_forms_parse():
    parse = options.build_parser().parse_intermixed_args
    single = parse(["c.png", "s1.png", "-o", "o.png", "s2.png"])
    assert (single.content, single.styles, single.batch) == (Path("c.png"), [Path("s1.png"), Path("s2.png")], None)
    batch = parse(["--batch", "photos", "s.png", "-o", "outdir"])
    assert batch.batch == "photos" and paths.style_paths(batch) == [Path("s.png")]
    assert paths.style_paths(parse(["--batch", "photos", "s1.png", "s2.png", "-o", "o"])) == [Path("s1.png"),
                                                                                              Path("s2.png")]
    weights = parse(["c.png", "s.png", "-o", "o.png", "--style-weight", "1e2, 1e3", "--tv-weight", "0.5"])
    config = options.config_from_args(weights)
    assert options.weight_sweep(weights, config) == {"style_weight": (1e2, 1e3)}
    assert config.tv_weight == 0.5 and config.style_weight == 1e2


def test_help_describes_both_forms(monkeypatch, capsys):
    monkeypatch.setenv("COLUMNS", "200")
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "--batch DIR_OR_GLOB STYLE [STYLE ...] -o OUTDIR" in out and "CONTENT STYLE [STYLE ...] -o OUT" in out
    assert "weight sweeps:" in out and "not crossed" in out and "out_grid.png" in out


# --------------------------------------------------------------------------- weight sweeps


@pytest.fixture(scope="module")
def sweep_run(tmp_path_factory, inputs, weights_file) -> tuple[Run, Path]:
    """One sweep over three style weights, with snapshots and a JSON log (the module's one sweep compile)."""
    folder = tmp_path_factory.mktemp("sweep")
    argv = [inputs["content"], inputs["style"], "-o", folder / "out.png", "--weights", weights_file, *FAST, *SWEEP,
            "--save-every", "2", "--log-json", folder / "log.json"]
    return _main(argv), folder


def test_sweep_writes_members_snapshots_grid_and_log(sweep_run):
    run, folder = sweep_run
    assert run.code == 0, run.err
    assert run.err == ""
    snapshots = [name.replace(".png", f"_iter{i}.png") for name in SWEEP_FILES for i in (2, 4)]
    assert sorted(p.name for p in folder.iterdir()) == sorted([*SWEEP_FILES, *snapshots, "out_grid.png", "log.json"])
    lines = run.out.strip().splitlines()
    assert [line.split(":")[0] for line in lines] == [f"wrote {folder / name}" for name in SWEEP_FILES] + [
        f"wrote {folder / 'out_grid.png'}"]
    assert "contact sheet of 3 weightings" in lines[-1]
    for name, weight in zip(SWEEP_FILES, [1e2, 1e3, 1e4]):
        config = json.loads(read_png_metadata(folder / name)["nst_jax:config"])
        assert config["style_weight"] == weight and config["iterations"] == 4

    record = json.loads((folder / "log.json").read_text())
    assert record["sweep"] == {"style_weight": [1e2, 1e3, 1e4]}
    assert [m["label"] for m in record["members"]] == SWEEP_LABELS
    assert [m["output"] for m in record["members"]] == [str(folder / name) for name in SWEEP_FILES]
    assert all(m["status"] == "completed" and m["written"] and m["iterations"] == 4 for m in record["members"])
    assert record["contact_sheet"] == str(folder / "out_grid.png")


def test_sweep_grid_has_one_labelled_tile_per_member(sweep_run):
    _, folder = sweep_run
    members = [load_image(folder / name) for name in SWEEP_FILES]
    assert all(m.shape == (27, 32, 3) for m in members)
    for a, b in [(0, 1), (1, 2), (0, 2)]:
        assert np.abs(members[a] - members[b]).max() > 1e-3  # each weighting gave its own image
    grid = np.asarray(Image.open(folder / "out_grid.png").convert("RGB"))
    layout = _sheet_layout(members, SWEEP_LABELS, columns=3)
    assert (layout.rows, layout.columns) == (1, 3) and grid.shape == layout.shape
    # The grid is the contact sheet of the written members with their alpha/beta labels, pixel for pixel.
    sheet = contact_sheet(members, SWEEP_LABELS, columns=3)
    expected = np.rint(np.clip(sheet.astype(np.float64), 0.0, 1.0) * 255).astype(np.uint8)  # as save_image does
    np.testing.assert_array_equal(grid, expected)
    for index in range(3):
        top, left = layout.origin(index)
        strip = grid[top + layout.cell_height : top + layout.cell_height + layout.caption_height,
                     left : left + layout.cell_width]
        assert strip.min() < 80  # the label is drawn


def test_sweep_and_batch_keep_the_content_colours(tmp_path, inputs, weights_file):
    contents = tmp_path / "contents"
    contents.mkdir()
    shutil.copy(inputs["content"], contents / "content.png")
    sweep_run = _main([inputs["content"], inputs["style"], "-o", tmp_path / "out.png", "--weights", weights_file,
                       *FAST, *SWEEP, "--preserve-color", "luminance"])
    batch_run = _main(["--batch", contents, inputs["style"], "-o", tmp_path / "batch", "--weights", weights_file,
                       *FAST, "--preserve-color", "luminance"])
    assert sweep_run.code == 0 and batch_run.code == 0, sweep_run.err + batch_run.err
    content, _ = prepare_images(inputs["content"], inputs["style"], StyleConfig(image_size=32))
    for path in [tmp_path / name for name in SWEEP_FILES] + [tmp_path / "batch" / "content.png"]:
        image = load_image(path)
        inside = np.all((image > 0.02) & (image < 0.98), axis=-1)
        # 8-bit PNG rounding moves I and Q by up to ~1/255 per channel.
        np.testing.assert_allclose(rgb_to_yiq(image)[inside][:, 1:], rgb_to_yiq(content)[inside][:, 1:], atol=0.01)


def test_sweep_member_that_turns_non_finite_is_reported_and_not_written(
    tmp_path, inputs, weights_file, monkeypatch, capsys
):
    real = cli_sweep.stylize_sweep

    def middle_diverges(*args, **kwargs):
        results = real(*args, **kwargs)
        return [results[0], dataclasses.replace(results[1], status="non-finite"), results[2]]

    monkeypatch.setattr(cli_sweep, "stylize_sweep", middle_diverges)
    argv = [inputs["content"], inputs["style"], "-o", tmp_path / "out.png", "--weights", weights_file, *FAST, *SWEEP]
    assert cli.main([str(arg) for arg in argv]) == 1
    captured = capsys.readouterr()
    line = _one_error_line(captured.err)
    assert "NaN or infinite for 1 of 3 weightings" in line and "out_sw1e+03.png (α/β = 1e-03)" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out_grid.png", "out_sw1e+02.png", "out_sw1e+04.png"]
    assert "out_sw1e+03" not in captured.out


def test_ctrl_c_during_a_sweep_saves_the_current_images(tmp_path, inputs, weights_file, monkeypatch, capsys):
    class InterruptingBar(progress.tqdm):
        def update(self, n: float | None = 1) -> bool | None:
            super().update(n)
            raise KeyboardInterrupt

    monkeypatch.setattr(progress, "tqdm", InterruptingBar)
    argv = [inputs["content"], inputs["style"], "-o", tmp_path / "out.png", "--weights", weights_file, *FAST, *SWEEP]
    assert cli.main([str(arg) for arg in argv]) == 130
    err = capsys.readouterr().err
    # the first chunk is one iteration (it compiles; later chunks are timed)
    assert "interrupted at iteration 1 of 4" in err and "3 of 3 weightings" in err and "Traceback" not in err
    for name in SWEEP_FILES:
        metadata = read_png_metadata(tmp_path / name)
        assert metadata["nst_jax:status"] == "interrupted" and metadata["nst_jax:iterations"] == "1"
    assert (tmp_path / "out_grid.png").exists()


def test_sweep_interrupted_before_its_first_iteration_writes_nothing(tmp_path, inputs, weights_file,
                                                                     interrupt_first_chunk, capsys):
    argv = [inputs["content"], inputs["style"], "-o", tmp_path / "out.png", "--weights", weights_file, *FAST, *SWEEP]
    assert cli.main([str(arg) for arg in argv]) == 130
    assert "interrupted before the first iteration finished; nothing was written" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_sweep_split_to_fit_memory_writes_every_member_without_snapshots(
    tmp_path, inputs, weights_file, monkeypatch, capsys
):
    monkeypatch.setattr(memory, "device_memory_bytes", lambda device: 1)  # one member per run
    argv = [inputs["content"], inputs["style"], "-o", tmp_path / "out.png", "--weights", weights_file, *FAST, *SWEEP,
            "--save-every", "2"]
    assert cli.main([str(arg) for arg in argv]) == 0
    err = capsys.readouterr().err
    assert err.strip() == "nst-jax: warning: --save-every: no snapshots, the sweep runs in 3 parts"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*SWEEP_FILES, "out_grid.png"])


# --------------------------------------------------------------------------- many content images


@pytest.fixture(scope="module")
def batch_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Contents: a and b (40x48, one batch), c (48x40, JPEG with an upper-case suffix), a broken .png, a text
    file and a sub-folder (neither of which a folder --batch takes)."""
    folder = tmp_path_factory.mktemp("contents")
    save_random_image(folder / "a.png", 40, 48, seed=11)
    save_random_image(folder / "b.png", 40, 48, seed=12)
    save_random_image(folder / "c.JPG", 48, 40, seed=13, format="JPEG")
    (folder / "broken.png").write_text("not an image\n")
    (folder / "notes.txt").write_text("hello\n")
    (folder / "sub").mkdir()
    save_random_image(folder / "sub" / "d.png", 40, 48, seed=14)
    return folder


@pytest.fixture(scope="module")
def batch_run(tmp_path_factory, batch_folder, inputs, weights_file) -> tuple[Run, Path]:
    """``--batch`` over ``batch_folder`` into a folder that does not exist yet, with a JSON log."""
    parent = tmp_path_factory.mktemp("batch")
    argv = ["--batch", batch_folder, inputs["style"], "-o", parent / "styled", "--weights", weights_file, *FAST,
            "--log-json", parent / "log.json"]
    return _main(argv), parent / "styled"


def test_batch_skips_a_bad_file_and_writes_the_others(batch_run, batch_folder):
    run, out = batch_run
    assert run.code == 0, run.err
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "b.png", "c.png"]
    [warning] = run.err.strip().splitlines()
    assert warning.startswith(f"nst-jax: warning: skipping {batch_folder / 'broken.png'}: ")
    assert "not a recognised image format" in warning
    assert run.out.startswith("wrote 3 of 4 images, skipped 1")
    assert load_image(out / "a.png").shape == (27, 32, 3) and load_image(out / "c.png").shape == (32, 27, 3)
    assert read_png_metadata(out / "c.png")["nst_jax:status"] == "completed"
    record = json.loads((out.parent / "log.json").read_text())
    outcomes = {Path(item["content"]).name: item["outcome"] for item in record["batch"]}
    assert outcomes == {"a.png": "written", "b.png": "written", "c.JPG": "written", "broken.png": "skipped"}


def test_resumed_batch_skips_finished_images(batch_run, tmp_path, weights_file, batch_folder, inputs):
    _, done = batch_run
    out = tmp_path / "styled"
    shutil.copytree(done, out)
    (out / "c.png").unlink()
    before = (out / "a.png").stat().st_mtime_ns
    run = _main(["--batch", batch_folder, inputs["style"], "-o", out, "--weights", weights_file, *FAST])
    assert run.code == 0, run.err
    assert "nst-jax: skipping 2 already written" in run.err
    assert run.out.startswith("wrote 1 of 2 images, skipped 1")  # c redone; broken.png still unreadable
    assert (out / "c.png").exists() and (out / "a.png").stat().st_mtime_ns == before


def test_batch_with_nothing_left_to_do_loads_nothing(batch_run, tmp_path, batch_folder, inputs, monkeypatch):
    def must_not_load(*args, **kwargs):
        raise AssertionError("weights were loaded although every output exists")

    monkeypatch.setattr(loading, "load_weights", must_not_load)
    out = tmp_path / "styled"
    shutil.copytree(batch_run[1], out)
    shutil.copy(out / "a.png", out / "broken.png")  # as if broken.png had been written too
    run = _main(["--batch", batch_folder, inputs["style"], "-o", out, *FAST])
    assert run.code == 0 and "skipping 4 already written" in run.err and run.out.startswith("nothing to do")


def test_batch_glob_with_overwrite_redoes_everything(batch_run, tmp_path, weights_file, batch_folder, inputs):
    out = tmp_path / "styled"
    shutil.copytree(batch_run[1], out)
    pattern = str(batch_folder / "*")  # a glob takes every file it matches: notes.txt too, not sub/
    run = _main(["--batch", pattern, inputs["style"], "-o", out, "--weights", weights_file, *FAST, "--overwrite"])
    assert run.code == 0, run.err
    assert "already written" not in run.err
    assert run.out.startswith("wrote 3 of 5 images, skipped 2")
    warnings_ = run.err.strip().splitlines()
    assert len(warnings_) == 2
    for line, name in zip(warnings_, ["broken.png", "notes.txt"]):
        assert line.startswith(f"nst-jax: warning: skipping {batch_folder / name}: cannot read image")


def test_batch_with_no_image_written_exits_1(tmp_path, inputs, weights_file):
    folder = tmp_path / "contents"
    folder.mkdir()
    (folder / "x.png").write_text("not an image\n")
    run = _main(["--batch", folder, inputs["style"], "-o", tmp_path / "out", "--weights", weights_file, *FAST])
    assert run.code == 1
    assert "skipping" in run.err and "none of the 1 images was written" in run.err
    assert run.out.startswith("wrote 0 of 1 images, skipped 1")


def test_batch_leaves_files_nst_jax_did_not_write_alone(tmp_path, inputs, weights_file):
    contents, out = tmp_path / "contents", tmp_path / "styled"
    contents.mkdir(), out.mkdir()
    save_random_image(contents / "a.png", 40, 48, seed=11)
    save_random_image(contents / "b.png", 40, 48, seed=12)
    theirs = save_random_image(out / "a.png", 8, 8, seed=13)  # somebody's file where a.png's output would go
    before = theirs.read_bytes()
    run = _main(["--batch", contents, inputs["style"], "-o", out, "--weights", weights_file, *FAST])
    assert run.code == 0, run.err
    assert f"skipping {contents / 'a.png'}: '{out / 'a.png'}' exists and was not written by nst_jax" in run.err
    assert theirs.read_bytes() == before and read_png_metadata(out / "b.png")["nst_jax:status"] == "completed"
    run = _main(["--batch", contents, inputs["style"], "-o", out, "--weights", weights_file, *FAST, "--overwrite"])
    assert run.code == 0 and read_png_metadata(out / "a.png")["nst_jax:status"] == "completed"


def test_batch_content_too_small_is_skipped_with_the_option_to_change(tmp_path, inputs, weights_file):
    contents = tmp_path / "contents"
    contents.mkdir()
    save_random_image(contents / "thin.png", 4, 48, seed=11)  # 3x32 at --image-size 32: relu2_1 needs 2, but ...
    argv = ["--batch", contents, inputs["style"], "-o", tmp_path / "out", "--weights", weights_file, *FAST,
            "--style-layers", "relu1_1,relu3_1"]  # ... relu3_1 needs 4 pixels on each side
    run = _main(argv)
    assert run.code == 1
    warning = run.err.splitlines()[0]
    assert warning.startswith(f"nst-jax: warning: skipping {contents / 'thin.png'}: the content image is 3x32 pixels")
    assert warning.endswith("raise --image-size to at least 42") and "image_size" not in warning


def test_batch_glob_over_its_own_output_folder_resumes(tmp_path, inputs, weights_file):
    """``--batch 'DIR/**/*.png' -o DIR/out``: the second run must not take the first run's outputs as contents."""
    folder = tmp_path / "photos"
    (folder / "trip").mkdir(parents=True)
    save_random_image(folder / "a.png", 40, 48, seed=11)
    save_random_image(folder / "trip" / "b.png", 40, 48, seed=12)
    argv = ["--batch", f"{folder}/**/*.png", inputs["style"], "-o", folder / "out", "--weights", weights_file, *FAST]
    first = _main(argv)
    assert first.code == 0 and first.out.startswith("wrote 2 of 2 images"), first.err
    second = _main(argv)
    assert second.code == 0 and second.out.startswith("nothing to do: all 2 images"), second.err
    assert sorted(p.name for p in (folder / "out").iterdir()) == ["a.png", "b.png"]


# --------------------------------------------------------------------------- bad input: one line, exit 2


BAD_INPUTS: dict[str, tuple[list[str], str]] = {
    "negative in a weight list": (["{content}", "{style}", "-o", "{out}", "--style-weight=1e3,-1"],
                                  "--style-weight must be a non-negative number"),
    "nan in a weight list": (["{content}", "{style}", "-o", "{out}", "--content-weight", "1,nan"],
                             "--content-weight must"),
    "not a number in a list": (["{content}", "{style}", "-o", "{out}", "--tv-weight", "1,x"], "--tv-weight"),
    "lists of unequal length": (
        ["{content}", "{style}", "-o", "{out}", "--style-weight", "1,2,3", "--content-weight", "1,2"],
        "equal lengths: --style-weight has 3 and --content-weight has 2 values",
    ),
    "a repeated weighting": (["{content}", "{style}", "-o", "{out}", "--style-weight", "1e3,1000"], "same weights"),
    "sweep output directory missing": (
        ["{content}", "{style}", "-o", "{tmp}/no/out.png", "--style-weight", "1,2"], "does not exist",
    ),
    "sweep log is the grid": (
        ["{content}", "{style}", "-o", "{out}", "--style-weight", "1,2", "--log-json", "{tmp}/out_grid.png"],
        "--log-json",
    ),
    "one-image option in a sweep": (
        ["{content}", "{style}", "-o", "{out}", "--style-weight", "1,2", "--scales", "256,512"],
        "--scales works for one image only, not with a weight sweep",
    ),
    "no content": (["{style}", "-o", "{out}"], "give a CONTENT image"),
    "format without batch": (["{content}", "{style}", "-o", "{out}", "--batch-format", "jpg"], "only with --batch"),
    "batch with a sweep": (
        ["--batch", "{contents}", "{style}", "-o", "{tmp}/outdir", "--style-weight", "1,2"], "--batch takes one value",
    ),
    "batch with snapshots": (
        ["--batch", "{contents}", "{style}", "-o", "{tmp}/outdir", "--save-every", "2"], "--save-every",
    ),
    "batch matches nothing": (["--batch", "{tmp}/*.webp", "{style}", "-o", "{tmp}/outdir"], "matches no image"),
    "batch folder without images": (["--batch", "{empty}", "{style}", "-o", "{tmp}/outdir"], "matches no image"),
    "batch output folder's parent missing": (
        ["--batch", "{contents}", "{style}", "-o", "{tmp}/no/outdir"], "cannot be created",
    ),
    "batch output folder is a file": (["--batch", "{contents}", "{style}", "-o", "{content}"], "is a file"),
    "batch output folder named like an image": (
        ["--batch", "{contents}", "{style}", "-o", "{tmp}/styled.png"], "looks like an image file name",
    ),
    "batch output folder is the batch folder": (
        ["--batch", "{contents}", "{style}", "-o", "{contents}"], "is the --batch folder",
    ),
    "batch output would overwrite an input": (
        ["--batch", "{contents}/*.png", "{style}", "-o", "{contents}"], "would overwrite the input image",
    ),
    "batch outputs collide": (["--batch", "{twins}", "{style}", "-o", "{tmp}/outdir"], "would both be written"),
    "batch style not an image": (["--batch", "{contents}", "{text}", "-o", "{tmp}/outdir"], "not a recognised"),
    "sweep snapshot would replace an image nst_jax did not write": (
        ["{content}", "{style}", "-o", "{out}", "--style-weight", "1,2", "--save-every", "2", "--iterations", "4"],
        "'{tmp}/out_sw1e+00_iter4.png' exists and was not written by nst_jax",
    ),
    "batch 16-bit jpg": (
        ["--batch", "{contents}", "{style}", "-o", "{tmp}/outdir", "--batch-format", "jpg", "--bit-depth", "16"],
        "--bit-depth 16",
    ),
    # Found by the checks the run and --dry-run share, before the output folder is made.
    "batch with a black source mask": (
        ["--batch", "{contents}", "{style}", "-o", "{tmp}/outdir", "--style-source-masks", "{black}"],
        "--style-source-masks image 1 '{black}' is black everywhere at 40x48 px",
    ),
    "batch with a black shared mask": (
        ["--batch", "{contents}", "{style}", "-o", "{tmp}/outdir", "--style-masks", "{black}"],
        "style image 1 would apply nowhere",
    ),
    "sweep with a black source mask": (
        ["{content}", "{style}", "-o", "{out}", "--style-weight", "1,2", "--style-source-masks", "{black}"],
        "is black everywhere",
    ),
    "batch with rows split": (
        ["--batch", "{contents}", "{style}", "-o", "{tmp}/outdir", "--shard", "spatial"],
        "--shard spatial splits one image's rows over the devices; --batch spreads its members over them instead",
    ),
    "sweep with rows split": (
        ["{content}", "{style}", "-o", "{out}", "--style-weight", "1,2", "--shard", "spatial"],
        "a weight sweep spreads its members over them instead: use --shard batch, auto or none",
    ),
    "empty batch pattern": (["--batch", "", "{style}", "-o", "{tmp}/outdir"], "--batch needs a folder or a glob"),
}


# The cases --dry-run once said yes to (and a few more): it makes the run's checks, so it exits 2 alike.
DRY_RUNS = ["batch with a black source mask", "batch with a black shared mask", "sweep with a black source mask",
            "batch with rows split", "sweep with rows split", "batch style not an image",
            "sweep snapshot would replace an image nst_jax did not write"]


@pytest.mark.parametrize("case, dry_run", [*((case, False) for case in BAD_INPUTS),
                                           *((case, True) for case in DRY_RUNS)])
def test_bad_input_is_one_line_and_exit_2(case, dry_run, tmp_path, inputs, weights_file, monkeypatch, capsys):
    """One error line, exit 2, nothing written or made; --dry-run too (the same checks)."""
    def must_not_load(*args, **kwargs):
        raise AssertionError("weights were loaded before the input was checked")

    monkeypatch.setattr(loading, "load_weights", must_not_load)
    contents, empty, twins = tmp_path / "contents", tmp_path / "empty", tmp_path / "twins"
    for folder in (contents, empty, twins):
        folder.mkdir()
    save_random_image(contents / "a.png", 40, 48, seed=5)
    save_random_image(twins / "a.png", 40, 48, seed=6)
    save_random_image(twins / "a.jpg", 40, 48, seed=7, format="JPEG")
    save_random_image(tmp_path / "out_sw1e+00_iter4.png", 8, 8, seed=8)
    Image.fromarray(np.zeros((40, 48), np.uint8)).save(tmp_path / "black.png")
    paths = {name: str(path) for name, path in inputs.items()}
    paths.update(tmp=str(tmp_path), out=str(tmp_path / "out.png"), contents=str(contents), empty=str(empty),
                 twins=str(twins), black=str(tmp_path / "black.png"))
    template, expected = BAD_INPUTS[case]
    argv = [arg.format(**paths) for arg in template]
    before = sorted(tmp_path.rglob("*"))
    assert cli.main([*argv, "--weights", str(weights_file), "--quiet", *(["--dry-run"] if dry_run else [])]) == 2
    captured = capsys.readouterr()
    assert expected.format(**paths) in _one_error_line(captured.err)  # argparse's own errors too
    assert captured.out == ""
    assert sorted(tmp_path.rglob("*")) == before  # nothing written, no folder created


def test_batch_form_in_a_fresh_process(tmp_path, inputs):
    out = tmp_path / "outdir"
    process = subprocess.run(
        [sys.executable, "-m", "nst_jax", "--batch", str(tmp_path / "*.png"), str(inputs["style"]), "-o", str(out),
         "--quiet"],
        capture_output=True, text=True, env={**os.environ, "JAX_PLATFORMS": "cpu"}, timeout=120, check=False,
    )
    assert process.returncode == 2, process.stderr
    assert "matches no image files" in _one_error_line(process.stderr)
    assert not out.exists()


def test_batch_masks_follow_each_content_by_its_name(tmp_path, inputs, weights_file):
    """--style-masks with {stem}: each content reads its own masks; a content without them is skipped, the other
    written."""
    contents, masks = tmp_path / "contents", tmp_path / "masks"
    contents.mkdir(), masks.mkdir()
    for name, seed in (("a", 1), ("b", 2)):
        save_random_image(contents / f"{name}.png", 40, 48, seed=seed)
    top = np.zeros((40, 48), np.uint8)
    top[:20] = 255
    Image.fromarray(top).save(masks / "a_top.png")
    Image.fromarray(255 - top).save(masks / "a_bottom.png")
    run = _main(["--batch", contents, inputs["style"], inputs["style2"], "-o", tmp_path / "out", "--weights",
                 weights_file, *FAST, "--style-masks", f"{masks}/{{stem}}_top.png,{masks}/{{stem}}_bottom.png"])
    assert run.code == 0, run.err
    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == ["a.png"]
    [warning] = run.err.strip().splitlines()
    assert warning.startswith(f"nst-jax: warning: skipping {contents / 'b.png'}: cannot read image") and \
        "b_top.png" in warning


def test_batch_dry_run_names_the_contents_it_would_skip(tmp_path, inputs, weights_file, monkeypatch):
    """--dry-run makes the run's checks per content: missing or black {stem} masks skip a content, and with none
    left to write it exits 1, as the run would; nothing is loaded or made."""
    monkeypatch.setattr(loading, "load_weights", lambda *args: pytest.fail("--dry-run loaded the network"))
    contents, masks = tmp_path / "contents", tmp_path / "masks"
    contents.mkdir(), masks.mkdir()
    for name, seed in (("a", 1), ("b", 2), ("c", 3)):
        save_random_image(contents / f"{name}.png", 40, 48, seed=seed)
    Image.fromarray(np.full((40, 48), 255, np.uint8)).save(masks / "a.png")
    Image.fromarray(np.zeros((40, 48), np.uint8)).save(masks / "c.png")
    argv = ["--batch", contents, inputs["style"], "-o", tmp_path / "out", "--weights", weights_file, *FAST,
            "--style-masks", f"{masks}/{{stem}}.png", "--dry-run"]
    run = _main(argv)
    assert run.code == 0, run.err
    lines = run.out.splitlines()
    assert lines[0].startswith(f"{contents / 'a.png'}: plan: 27x32 px")
    assert any(line.startswith(f"{contents / 'b.png'}: would be skipped: cannot read image") for line in lines)
    assert any(line.startswith(f"{contents / 'c.png'}: would be skipped: style mask 1 '{masks / 'c.png'}' is black "
                               "everywhere at 27x32 px") for line in lines)
    (masks / "a.png").unlink()
    none_left = _main(argv)
    assert none_left.code == 1 and "none of the 3 images would be written" in none_left.out
    assert not (tmp_path / "out").exists()
