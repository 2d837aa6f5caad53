"""Turn a torchvision-layout VGG19 or VGG16 state dict (torchvision's own, or the Caffe models converted to that
layout) into nst_jax's parameter tree."""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from convert_weights.network import ConversionError
from nst_jax.files import file_kind
from nst_jax.vgg import ARCHITECTURES, conv_layers, conv_param_shapes, torchvision_index
from nst_jax.weights import file_sha256

# torchvision's VGG19_Weights.IMAGENET1K_V1 and VGG16_Weights.IMAGENET1K_V1; the hash prefix in the name lets
# torch.hub verify the download.
TORCHVISION_URLS: dict[str, str] = {
    "vgg19": "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth",
    "vgg16": "https://download.pytorch.org/models/vgg16-397923af.pth",
}
TORCHVISION_URL = TORCHVISION_URLS["vgg19"]
# The Caffe VGGs (Simonyan & Zisserman's) converted to torchvision's layout, as jcjohnson/neural-style-pt's
# models/download_models.py fetches them: their values expect Caffe's preprocessing.
CAFFE_FILES: dict[str, str] = {"vgg19-d01eb7cb.pth": "vgg19", "vgg16-00b39a1b.pth": "vgg16"}


def detect_architecture(state_dict: Mapping[str, Any]) -> str:
    """``vgg19`` or ``vgg16``: the one whose conv positions (``features.N.weight``) the state dict holds more of
    (VGG19 on a tie), so that a damaged file is reported layer by layer against the right network."""
    held = {key for key, value in state_dict.items() if len(getattr(value, "shape", ())) == 4}
    if not held:
        raise ConversionError("no 4-D features.N.weight tensors: not a VGG state dict")

    def matches(architecture: str) -> int:
        return sum(f"features.{torchvision_index(conv, architecture)}.weight" in held
                   for conv in conv_layers(architecture))

    return max(ARCHITECTURES, key=lambda architecture: (matches(architecture), architecture == "vgg19"))


def convert_state_dict(
    state_dict: Mapping[str, Any], architecture: str | None = None
) -> dict[str, dict[str, np.ndarray]]:
    """nst_jax params (HWIO kernels) from a torchvision-layout ``features.N.*`` state dict of ``architecture``
    (default: ``detect_architecture``); classifier keys are ignored."""
    features = {key: value for key, value in state_dict.items() if key.startswith("features.")}
    if not features:
        raise ConversionError(
            "no 'features.N.weight' keys: not a torchvision-layout VGG state dict "
            f"(first keys: {', '.join(list(state_dict)[:5]) or 'none'})"
        )
    not_float = {key: _dtype(value) for key, value in features.items() if not _floating(value)}
    if not_float:  # cast to float32 they would run, meaninglessly (all zeros, for small weights)
        first, dtype = next(iter(not_float.items()))
        raise ConversionError(f"{len(not_float)} of the {len(features)} features tensors hold integers, not floating "
                              f"point numbers ({first}: {dtype}): not trained VGG weights")
    architecture = architecture or detect_architecture(features)
    expected = conv_param_shapes(architecture)
    problems: list[str] = []
    params: dict[str, dict[str, np.ndarray]] = {}
    for name in conv_layers(architecture):
        index = torchvision_index(name, architecture)
        weight, bias = features.get(f"features.{index}.weight"), features.get(f"features.{index}.bias")
        if weight is None or bias is None:
            problems.append(f"features.{index} ({name}) missing")
            continue
        weight, bias = _to_numpy(weight), _to_numpy(bias)
        kernel = weight.transpose(2, 3, 1, 0) if weight.ndim == 4 else weight
        if kernel.shape != expected[name]["kernel"] or bias.shape != expected[name]["bias"]:
            out_channels, in_channels = expected[name]["kernel"][3], expected[name]["kernel"][2]
            problems.append(
                f"features.{index} ({name}) weight {tuple(weight.shape)} / bias {tuple(bias.shape)}, "
                f"expected ({out_channels}, {in_channels}, 3, 3) / ({out_channels},)"
            )
            continue
        if not (np.all(np.isfinite(kernel)) and np.all(np.isfinite(bias))):
            problems.append(f"features.{index} ({name}) has NaN or infinite values")
            continue
        params[name] = {"kernel": np.ascontiguousarray(kernel), "bias": bias}
    if problems:
        raise ConversionError(f"not a usable {architecture.upper()} state dict: " + "; ".join(problems))
    return params


def _dtype(value: Any) -> str:
    """The element type of a torch tensor or array-like, as its library names it (``torch.int64``, ``int32``)."""
    return str(value.dtype) if hasattr(value, "dtype") else str(np.asarray(value).dtype)


def _floating(value: Any) -> bool:
    """Whether a torch tensor or array-like holds floating-point numbers (not integers or booleans)."""
    if hasattr(value, "is_floating_point"):
        return bool(value.is_floating_point())
    return np.issubdtype(np.asarray(value).dtype, np.floating)


def _to_numpy(value: Any) -> np.ndarray:
    """A torch tensor or array-like as float32 NumPy."""
    if hasattr(value, "detach"):
        value = value.detach().cpu().float().numpy()
    return np.asarray(value, dtype=np.float32)


def load_pth(path: str | os.PathLike) -> dict[str, Any]:
    """A state dict from a ``.pth`` file (a bare state dict, or a dict holding one under ``state_dict``)."""
    import torch

    path = Path(path)
    if not path.exists():
        raise ConversionError(f"no such file: {path}")
    kind = file_kind(path)
    if kind is not None:  # torch.load on a FIFO would wait forever
        raise ConversionError(f"{path} is {kind}, not a .pth file")
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols on its way to failing
            warnings.simplefilter("ignore")
            loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for a corrupt or foreign file
        raise ConversionError(_unreadable_pth(path, error)) from None
    if isinstance(loaded, Mapping) and "state_dict" in loaded and isinstance(loaded["state_dict"], Mapping):
        loaded = loaded["state_dict"]
    if not isinstance(loaded, Mapping):
        raise ConversionError(f"{path} holds a {type(loaded).__name__}, not a state dict")
    return dict(loaded)


# A zip archive (torch.save's format since 1.6) or a pickle (protocol 2+ starts with 0x80: the legacy format).
_TORCH_MAGIC = (b"PK\x03\x04", b"\x80")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _unreadable_pth(path: Path, error: Exception) -> str:
    """One line saying what ``path`` is, given that ``torch.load(weights_only=True)`` failed with ``error``."""
    with open(path, "rb") as handle:
        head = handle.read(4)
    if not head:
        return f"{path} is empty, not a PyTorch state dict"
    if not head.startswith(_TORCH_MAGIC):
        return f"{path} is not a PyTorch file (torch.save writes a zip archive or a pickle; this is neither)"
    text = _ANSI.sub("", str(error))
    if "WeightsUnpickler" in text or "Unsupported global" in text:
        # weights_only refuses pickled classes: the file holds a whole model (torch.save(model)), not tensors.
        return (f"{path} holds pickled Python objects, such as a whole model saved with torch.save(model), not a "
                "state dict of tensors; where the model loads, save its weights with "
                "torch.save(model.state_dict(), 'vgg19.pth') and convert that file")
    first = next((line.strip() for line in text.splitlines() if line.strip()), type(error).__name__)
    return f"{path} is not a readable PyTorch state dict ({first})"


def load_torchvision(architecture: str = "vgg19") -> tuple[dict[str, Any], str, str]:
    """torchvision's pretrained VGG19 or VGG16 state dict (downloads once), its source label and checksum."""
    import torch

    try:
        import torchvision  # noqa: F401
        from torchvision.models import VGG16_Weights, VGG19_Weights, vgg16, vgg19

        build, weights = {"vgg19": (vgg19, VGG19_Weights), "vgg16": (vgg16, VGG16_Weights)}[architecture]
        model = build(weights=weights.IMAGENET1K_V1)
        url = weights.IMAGENET1K_V1.url
        state_dict = model.state_dict()
    except ImportError:
        url = TORCHVISION_URLS[architecture]
        state_dict = torch.hub.load_state_dict_from_url(url, map_location="cpu", check_hash=True, progress=True)
    cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(url).name
    checksum = file_sha256(cached) if cached.is_file() else ""
    return dict(state_dict), f"torchvision {architecture} IMAGENET1K_V1 ({url})", checksum


def random_state_dict(seed: int = 0, architecture: str = "vgg19") -> dict[str, Any]:
    """A random-init VGG19 (or VGG16) ``features`` state dict, initialized as torchvision does."""
    from convert_weights.torch_vgg import TorchVGG, init_torchvision_

    return dict(init_torchvision_(TorchVGG(architecture=architecture), seed).state_dict())
