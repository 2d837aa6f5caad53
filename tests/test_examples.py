"""Every examples/ script end to end at a tiny size with random weights: it says so, and writes what it promises."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from nst_jax.image_io import load_image

pytestmark = pytest.mark.slow  # each example compiles and runs several optimizations

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
TINY = ["--size", "32", "--iterations", "2", "--quiet"]
# Each script and the files it must write into --out.
WRITES = {
    "transfer": ["transfer_style.png", "transfer_style2.png", "transfer_sheet.png"],
    "ratio_grid": ["ratio_1e-04.png", "ratio_1e-01.png", "ratio_grid.png"],
    "reconstructions": ["reconstruct_content_relu1_2.png", "reconstruct_content_relu5_2.png",
                        "reconstruct_style_relu1_1.png", "reconstruct_style_relu1_1-relu5_1.png",
                        "reconstructions.png"],
    "init_study": ["init_noise_seed_0.png", "init_noise_seed_1.png", "init_content.png", "init_style.png",
                   "init_study.png"],
    "colour": ["colour_style_colours.png", "colour_luminance.png", "colour_histogram.png", "colour.png"],
    "multiscale": ["multiscale_single.png", "multiscale_coarse_to_fine.png", "multiscale.png"],
    "regions": ["regions_style1alone.png", "regions_style2alone.png", "regions_byregion.png", "regions.png"],
}


@pytest.fixture(scope="module")
def random_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from convert_weights.cli import main as convert_main

    path = tmp_path_factory.mktemp("random") / "random.h5"
    assert convert_main(["--random", "-o", str(path)]) == 0
    return path


def load_example(name: str):
    """The script examples/NAME.py as a module (its folder on sys.path, as when run as a script)."""
    if str(EXAMPLES) not in sys.path:
        sys.path.insert(0, str(EXAMPLES))
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_example_is_tested():
    scripts = {path.stem for path in EXAMPLES.glob("*.py") if not path.stem.startswith("_")} - {"make_style"}
    assert scripts == set(WRITES)


@pytest.mark.parametrize("name", sorted(WRITES))
def test_example_runs_and_writes_its_outputs(name, tmp_path, random_weights, capfd, monkeypatch):
    argv = ["--weights", str(random_weights), "--out", str(tmp_path), *TINY]
    if name == "reconstructions":
        # Both rows as batches, as on an accelerator: two compiled programs instead of ten (55 s of the suite's
        # time, 50 of them compiling). The one-at-a-time path is test_reconstruct's and test_cli_reconstruct's.
        from nst_jax import reconstruct

        monkeypatch.setattr(reconstruct, "batched_by_default", lambda config: True)
    if name == "init_study":
        argv += ["--seeds", "0,1"]
    assert load_example(name).main(argv) == 0
    out, err = capfd.readouterr()
    assert "RANDOM WEIGHTS" in err
    for file in WRITES[name]:
        assert (tmp_path / file).is_file(), file
        assert f"wrote {tmp_path / file}" in out
        assert load_image(tmp_path / file).max() > 0  # a readable, non-blank image
    if name == "multiscale":
        assert "coarse-to-fine took" in out
    if name == "init_study":  # each seed its own noise start (the default start is the content)
        assert not np.array_equal(load_image(tmp_path / "init_noise_seed_0.png"),
                                  load_image(tmp_path / "init_noise_seed_1.png"))
    if name == "regions":
        assert "by region" in out and "compiles included" in out


def test_example_runs_as_a_script_and_fails_clearly_without_weights(tmp_path):
    """``python examples/NAME.py`` from another folder finds its helpers; missing weights name the fix."""
    process = subprocess.run(
        [sys.executable, str(EXAMPLES / "transfer.py"), "--weights", str(tmp_path / "none.h5"), *TINY],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    assert process.returncode != 0 and "Traceback" not in process.stderr
    assert "transfer.py: error:" in process.stderr and "python -m convert_weights" in process.stderr


def test_example_reports_a_bad_input_in_one_line(tmp_path, random_weights):
    process = subprocess.run(
        [sys.executable, str(EXAMPLES / "colour.py"), "--weights", str(random_weights), "--size", "8", "--quiet"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    assert process.returncode == 2 and "Traceback" not in process.stderr
    assert "colour.py: error: the content image is" in process.stderr and "need at least" in process.stderr
