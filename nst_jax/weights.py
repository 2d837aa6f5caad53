"""VGG weights in HDF5: locate, read, validate against the module's shapes, and write atomically.

Format version 2 (version 1 files still load, as torchvision VGG19s): one group per conv (``kernel`` HWIO, ``bias``),
and root attributes ``architecture`` (vgg19, vgg16), ``preprocessing`` (torchvision: RGB in [0, 1] with ImageNet
mean/std; caffe: BGR 0-255 minus the BGR mean), ``normalized_on`` (what a mean-normalized network was normalized on,
empty for weights as trained) and the provenance (source, pretrained, checksums, versions). The loader adds the
preprocessing as the parameter group ``input`` (``nst_jax.vgg.preprocessing_params``); for caffe it takes the
``scale`` and ``mean`` the file records (files written before nst_jax used Caffe's 255 say 256, and load so).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import jax
import numpy as np

from nst_jax.files import atomic_path, file_kind
from nst_jax.vgg import (
    ARCHITECTURES,
    CAFFE_BGR_MEAN,
    CAFFE_SCALE,
    DEFAULT_ARCHITECTURE,
    DEFAULT_PREPROCESSING,
    PREPROCESSINGS,
    architecture_of,
    conv_layers,
    conv_param_shapes,
    preprocessing_params,
)

FORMAT_VERSION = 2
WEIGHTS_ENV = "NST_JAX_WEIGHTS"
FETCH_COMMAND = "python -m convert_weights"


class WeightsError(Exception):
    """A weights file that cannot be used; the message names the file and how to fix it."""


class RandomWeightsWarning(UserWarning):
    """Weights are a random-init VGG19: results are not real style transfer."""


@dataclasses.dataclass(frozen=True)
class WeightsInfo:
    """Where a weights file came from."""

    path: str
    source: str
    pretrained: bool
    sha256: str
    source_sha256: str
    format_version: int
    torch_version: str = ""
    torchvision_version: str = ""
    architecture: str = DEFAULT_ARCHITECTURE
    preprocessing: str = DEFAULT_PREPROCESSING
    normalized_on: str = ""
    input_scale: float = 1.0
    """What RGB in [0, 1] is multiplied by before the mean is taken off (torchvision 1, caffe 255, or 256 in files
    written before nst_jax used Caffe's 255)."""
    input_mean: tuple[float, ...] = ()
    """The mean taken off the (reordered, scaled) input; empty where it is the convention's own."""

    @property
    def convention(self) -> str:
        """What the activations' scale follows, for the loss-weight defaults: ``mean-normalized`` for a network
        normalized as the paper's (``normalized_on`` set), else the preprocessing (``torchvision``, ``caffe``)."""
        return "mean-normalized" if self.normalized_on else self.preprocessing

    @property
    def description(self) -> str:
        """One line: ``VGG19, caffe preprocessing, pretrained`` ..."""
        kind = "pretrained" if self.pretrained else "RANDOM"
        normalized = f", mean-normalized on {self.normalized_on}" if self.normalized_on else ""
        scale = ""
        if self.preprocessing == "caffe" and self.input_scale != CAFFE_SCALE:
            scale = f" x{self.input_scale:g} as this file was written (Caffe's is x{CAFFE_SCALE:g}: convert it again)"
        mean = f" minus mean {', '.join(f'{m:g}' for m in self.input_mean)}" if self.input_mean else ""
        return f"{self.architecture.upper()}, {self.preprocessing} preprocessing{scale}{mean}{normalized}, {kind}"


@jax.tree_util.register_pytree_node_class
@dataclasses.dataclass(frozen=True)
class VGGWeights(Mapping):
    """The VGG parameter tree ``{conv: {"kernel": HWIO, "bias": O}, "input": preprocessing}`` and its provenance; a
    read-only mapping of the tree itself, so it goes wherever parameters do (``extract_features(weights, ...)``)."""

    params: Mapping[str, Mapping[str, jax.Array]]
    info: WeightsInfo

    def __getitem__(self, layer: str) -> Mapping[str, jax.Array]:
        return self.params[layer]

    def __iter__(self) -> Iterator[str]:
        return iter(self.params)

    def __len__(self) -> int:
        return len(self.params)

    @property
    def pretrained(self) -> bool:
        """Whether these are trained ImageNet weights (False for a random-init VGG)."""
        return self.info.pretrained

    @property
    def architecture(self) -> str:
        """``vgg19`` or ``vgg16``."""
        return self.info.architecture

    @property
    def checksum(self) -> str:
        """SHA-256 of the HDF5 file the weights were read from."""
        return self.info.sha256

    def tree_flatten(self) -> tuple[tuple[Any], WeightsInfo]:
        return (self.params,), self.info

    @classmethod
    def tree_unflatten(cls, info: WeightsInfo, children: tuple[Any]) -> "VGGWeights":
        return cls(children[0], info)


def cache_dir() -> Path:
    """nst_jax's folder for downloaded and converted weights: ``$XDG_CACHE_HOME`` (or ``~/.cache``) ``/nst_jax``."""
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache).expanduser() / "nst_jax"


def default_weights_path() -> Path:
    """``$NST_JAX_WEIGHTS`` if set, else ``cache_dir() / "vgg19.h5"``."""
    explicit = os.environ.get(WEIGHTS_ENV)
    if explicit:
        return Path(explicit).expanduser()
    return cache_dir() / "vgg19.h5"


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_params(params: Mapping[str, Mapping[str, Any]], where: str, architecture: str | None = None) -> None:
    """Raise ``WeightsError`` listing every missing, extra, mis-shaped or non-finite conv parameter of
    ``architecture`` (by default the one the convs say: ``architecture_of``); an ``input`` group is allowed."""
    architecture = architecture or architecture_of(params)
    convs = conv_layers(architecture)
    name = architecture.upper()
    problems: list[str] = []
    expected = conv_param_shapes(architecture)
    missing = [conv for conv in convs if conv not in params]
    if missing:
        problems.append(f"missing layer(s) {', '.join(missing)}")
    extra = sorted(set(params) - set(convs) - {"input"})
    if extra:
        problems.append(f"unexpected layer(s) {', '.join(extra)}")
    for conv in convs:
        if conv not in params:
            continue
        for key, shape in expected[conv].items():
            value = params[conv].get(key)
            if value is None:
                problems.append(f"{conv}/{key} missing")
            elif tuple(value.shape) != shape:
                problems.append(f"{conv}/{key} has shape {tuple(value.shape)}, expected {shape}")
            elif not np.all(np.isfinite(np.asarray(value))):
                problems.append(f"{conv}/{key} contains NaN or infinite values")
    if problems:
        raise WeightsError(f"{where} is not a usable {name}: {'; '.join(problems)}")


def _fix_hint(path: Path) -> str:
    """The sentence telling the user how to (re)create a weights file at ``path``.

    It names ``path`` only where the converter could write it: where nothing is, or over a file nst_jax wrote.
    Anything else (``/dev/null``, a photo given as ``--weights`` by mistake) gets a file name of its own instead.
    """
    if path == default_weights_path() and not path.exists():
        return f"fetch and convert the pretrained VGG19 with: {FETCH_COMMAND}"
    if not os.path.lexists(path) or (file_kind(path) is None and weights_attributes(path) is not None):
        return f"fetch and convert the pretrained VGG19 with: {FETCH_COMMAND} -o {path}"
    return f"fetch and convert the pretrained VGG19 into a file of its own with: {FETCH_COMMAND} -o vgg19.h5"


def weights_attributes(path: str | os.PathLike) -> dict[str, Any] | None:
    """The root attributes of an nst_jax weights file (it has ``format_version``); None for any other file."""
    import h5py

    try:
        with h5py.File(path, "r") as handle:
            attrs = dict(handle.attrs)
    except (OSError, ValueError):
        return None
    return attrs if "format_version" in attrs else None


def is_weights_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a regular file holding nst_jax weights (the converter replaces only those)."""
    return file_kind(Path(path)) is None and Path(path).exists() and weights_attributes(path) is not None


def read_pretrained(value: Any, where: str) -> bool:
    """The ``pretrained`` attribute as a bool: True/False as a bool, 0/1, or their text; ``WeightsError`` for
    anything else (``bool("False")`` is True: a file saying "False" must not pass as trained weights)."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)) and value in (0, 1):
        return bool(value)
    if isinstance(value, (str, bytes)):
        text = _text(value).strip().lower()
        if text in ("true", "1"):
            return True
        if text in ("false", "0"):
            return False
    raise WeightsError(f"{where} has attribute pretrained = {value!r}; expected True or False")


def load_weights(path: str | os.PathLike | None = None) -> VGGWeights:
    """Read and validate a VGG19 HDF5 file (``path=None``: ``default_weights_path()``)."""
    import h5py

    path = Path(path).expanduser() if path is not None else default_weights_path()
    if not path.exists():
        raise WeightsError(f"no VGG19 weights file at {path}; {_fix_hint(path)}")
    kind = file_kind(path)
    if kind is not None:  # h5py would wait forever on a FIFO
        raise WeightsError(f"weights path {path} is {kind}, not an HDF5 file; {_fix_hint(path)}")
    try:
        with h5py.File(path, "r") as handle:
            attrs = dict(handle.attrs)
            if "format_version" not in attrs:
                raise WeightsError(f"{path} is not an nst_jax weights file (no format_version); {_fix_hint(path)}")
            version = int(attrs["format_version"])
            if version > FORMAT_VERSION:
                raise WeightsError(
                    f"{path} has format version {version}; this nst_jax reads up to {FORMAT_VERSION}: upgrade nst_jax"
                )
            groups = {name: group for name, group in handle.items() if isinstance(group, h5py.Group)}
            not_float = [f"{name}/{key} has dtype {group[key].dtype}" for name, group in groups.items()
                         for key in group.keys() if np.dtype(group[key].dtype).kind != "f"]
            if not_float:  # integer weights cast to float32 would run, silently meaningless
                raise WeightsError(f"{path} is not a usable VGG: {'; '.join(not_float)}, expected float32; "
                                   f"{_fix_hint(path)}")
            params = {
                name: {key: np.asarray(group[key][()], dtype=np.float32) for key in group.keys()}
                for name, group in groups.items()
            }
    except WeightsError:
        raise
    except (OSError, KeyError, ValueError, TypeError) as error:
        raise WeightsError(f"cannot read weights file {path} ({error}); {_fix_hint(path)}") from None
    architecture = _choice(attrs, "architecture", DEFAULT_ARCHITECTURE, tuple(ARCHITECTURES), path)
    preprocessing = _choice(attrs, "preprocessing", DEFAULT_PREPROCESSING, PREPROCESSINGS, path)
    try:
        check_params(params, str(path), architecture)
    except WeightsError as error:
        raise WeightsError(f"{error}; {_fix_hint(path)}") from None
    scale, mean = _recorded_input(attrs, preprocessing, path)
    params["input"] = preprocessing_params(preprocessing, scale=scale, mean=mean)
    info = WeightsInfo(
        path=str(path),
        source=_text(attrs.get("source", "")),
        pretrained=read_pretrained(attrs.get("pretrained", False), str(path)),
        sha256=file_sha256(path),
        source_sha256=_text(attrs.get("source_sha256", "")),
        format_version=version,
        torch_version=_text(attrs.get("torch_version", "")),
        torchvision_version=_text(attrs.get("torchvision_version", "")),
        architecture=architecture,
        preprocessing=preprocessing,
        normalized_on=_text(attrs.get("normalized_on", "")),
        input_scale=float(params["input"]["scale"]),
        input_mean=tuple(float(m) for m in mean) if mean is not None else (),
    )
    if not info.pretrained:
        warnings.warn(random_weights_message(info), RandomWeightsWarning, stacklevel=2)
    device_params = jax.tree_util.tree_map(jax.numpy.asarray, params)
    return VGGWeights(device_params, info)


def _recorded_input(attrs: Mapping[str, Any], preprocessing: str, path: Path,
                    ) -> tuple[float | None, tuple[float, ...] | None]:
    """The Caffe ``scale`` and ``mean`` a file records where they differ from Caffe's own (None: the convention's);
    torchvision's numbers are fixed. Files written before nst_jax used 255 record 256 and load as written."""
    if preprocessing != "caffe":
        return None, None
    scale = np.asarray(attrs.get("scale", CAFFE_SCALE), np.float64)
    mean = np.asarray(attrs.get("mean", CAFFE_BGR_MEAN), np.float64)
    if scale.size != 1 or not np.isfinite(scale).all() or float(scale) <= 0:
        raise WeightsError(f"{path} has scale {scale.tolist()}; expected a positive number such as {CAFFE_SCALE:g}")
    if mean.shape != (3,) or not np.isfinite(mean).all():
        raise WeightsError(f"{path} has mean {mean.tolist()}; expected three numbers (B, G, R)")
    scale_value, mean_value = float(scale), tuple(float(m) for m in mean)
    own_mean = np.allclose(mean_value, CAFFE_BGR_MEAN, rtol=0, atol=1e-4)  # float32 round trip of Caffe's mean
    return (None if scale_value == CAFFE_SCALE else scale_value), (None if own_mean else mean_value)


def _choice(attrs: Mapping[str, Any], key: str, default: str, choices: tuple[str, ...], path: Path) -> str:
    """A text attribute that must be one of ``choices`` (``default`` where absent, as in version-1 files)."""
    value = _text(attrs.get(key, default))
    if value not in choices:
        raise WeightsError(f"{path} has {key} {value!r}; this nst_jax knows {', '.join(choices)}: upgrade nst_jax")
    return value


def random_weights_message(info: WeightsInfo) -> str:
    """The loud notice that a weights file holds a random-init VGG."""
    return (
        f"RANDOM WEIGHTS: {info.path} holds a random-init {info.architecture.upper()} (source: {info.source}). "
        f"Results are NOT real style transfer; for real results run: {FETCH_COMMAND}"
    )


def _text(value: Any) -> str:
    """An HDF5 attribute as ``str``."""
    return value.decode() if isinstance(value, bytes) else str(value)


def write_weights(
    path: str | os.PathLike,
    params: Mapping[str, Mapping[str, Any]],
    *,
    source: str,
    pretrained: bool,
    source_sha256: str = "",
    torch_version: str = "",
    torchvision_version: str = "",
    preprocessing: str = DEFAULT_PREPROCESSING,
    normalized_on: str = "",
    mean: tuple[float, float, float] | None = None,
) -> str:
    """Validate ``params`` (VGG19 or VGG16, by their convs) and write them atomically as an nst_jax HDF5 file with
    the input convention ``preprocessing`` (for caffe, ``mean``: a BGR mean other than Caffe's, such as the mean
    pixel a MatConvNet file holds); returns the file's SHA-256."""
    import h5py

    if preprocessing not in PREPROCESSINGS:
        raise WeightsError(f"unknown preprocessing {preprocessing!r}; choose {', '.join(PREPROCESSINGS)}")
    path = Path(path).expanduser()
    arrays = {
        name: {key: np.ascontiguousarray(np.asarray(value, dtype=np.float32)) for key, value in layer.items()}
        for name, layer in params.items() if name != "input"
    }
    architecture = architecture_of(arrays)
    check_params(arrays, "the converted state dict", architecture)
    try:
        numbers = preprocessing_params(preprocessing, mean=mean)
    except ValueError as error:
        raise WeightsError(str(error)) from None
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as temporary, h5py.File(temporary, "w") as out:
        out.attrs.update(
            format_version=FORMAT_VERSION,
            architecture=architecture,
            preprocessing=preprocessing,
            normalized_on=str(normalized_on),
            source=str(source),
            pretrained=bool(pretrained),
            source_sha256=str(source_sha256),
            torch_version=str(torch_version),
            torchvision_version=str(torchvision_version),
            channel_order="BGR" if preprocessing == "caffe" else "RGB",
            scale=numbers["scale"],
            mean=numbers["mean"],
            std=numbers["std"],
            layout="kernel HWIO float32, bias O float32; the network sees RGB in [0, 1] reordered to channel_order, "
            "times scale, minus mean, divided by std",
        )
        for name in conv_layers(architecture):
            group = out.create_group(name)
            group.create_dataset("kernel", data=arrays[name]["kernel"])
            group.create_dataset("bias", data=arrays[name]["bias"])
    return file_sha256(path)
