"""Turn a torchvision-layout VGG19 state dict into nst_jax's parameter tree."""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from nst_jax.files import file_kind
from nst_jax.vgg import CONV_LAYERS, conv_param_shapes, torchvision_index
from nst_jax.weights import file_sha256

# torchvision's VGG19_Weights.IMAGENET1K_V1; the hash prefix in the name lets torch.hub verify the download.
TORCHVISION_URL = "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth"


class ConversionError(Exception):
    """A source that cannot be converted; the message says what is wrong and how to fix it."""


def convert_state_dict(state_dict: Mapping[str, Any]) -> dict[str, dict[str, np.ndarray]]:
    """nst_jax params (HWIO kernels) from a torchvision ``features.N.*`` state dict; classifier keys are ignored."""
    features = {key: value for key, value in state_dict.items() if key.startswith("features.")}
    if not features:
        raise ConversionError(
            "no 'features.N.weight' keys: not a torchvision VGG19 state dict "
            f"(first keys: {', '.join(list(state_dict)[:5]) or 'none'})"
        )
    expected = conv_param_shapes()
    problems: list[str] = []
    params: dict[str, dict[str, np.ndarray]] = {}
    for name in CONV_LAYERS:
        index = torchvision_index(name)
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
        raise ConversionError("not a usable VGG19 state dict: " + "; ".join(problems))
    return params


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


def load_torchvision() -> tuple[dict[str, Any], str, str]:
    """torchvision's pretrained VGG19 state dict (downloads once), its source label and checksum."""
    import torch

    try:
        import torchvision  # noqa: F401
        from torchvision.models import VGG19_Weights, vgg19

        model = vgg19(weights=VGG19_Weights.IMAGENET1K_V1)
        url = VGG19_Weights.IMAGENET1K_V1.url
        state_dict = model.state_dict()
    except ImportError:
        url = TORCHVISION_URL
        state_dict = torch.hub.load_state_dict_from_url(url, map_location="cpu", check_hash=True, progress=True)
    cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(url).name
    checksum = file_sha256(cached) if cached.is_file() else ""
    return dict(state_dict), f"torchvision vgg19 IMAGENET1K_V1 ({url})", checksum


def random_state_dict(seed: int = 0) -> dict[str, Any]:
    """A random-init VGG19 ``features`` state dict, initialized as torchvision does."""
    from convert_weights.torch_vgg import TorchVGG19, init_torchvision_

    return dict(init_torchvision_(TorchVGG19(), seed).state_dict())
