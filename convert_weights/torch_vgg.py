"""A torchvision-layout VGG19 or VGG16 ``features`` in plain PyTorch, for conversion, the baseline and parity tests."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import nn

from nst_jax.vgg import (
    ARCHITECTURES,
    DEFAULT_ARCHITECTURE,
    LAYER_NAMES,
    architecture_of,
    conv_layers,
    preprocessing_params,
    torchvision_index,
)


class TorchVGG(nn.Module):
    """``nn.Module`` with a ``features`` ``nn.Sequential`` whose state-dict keys equal torchvision's vgg19 (or vgg16),
    preprocessing its RGB input in [0, 1] by a convention of ``nst_jax.vgg.preprocessing_params`` (its name, or an
    ``input`` group of numbers such as a loaded file's)."""

    def __init__(self, pooling: str = "max", architecture: str = DEFAULT_ARCHITECTURE,
                 preprocessing: str | Mapping[str, np.ndarray] = "torchvision") -> None:
        super().__init__()
        if pooling not in ("avg", "max"):
            raise ValueError(f"pooling must be 'avg' or 'max', got {pooling!r}")
        self.architecture = architecture
        layers: list[nn.Module] = []
        in_channels = 3
        for channels in ARCHITECTURES[architecture]:
            for out_channels in channels:
                layers += [nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1), nn.ReLU(inplace=False)]
                in_channels = out_channels
            layers.append(nn.MaxPool2d(2, 2) if pooling == "max" else nn.AvgPool2d(2, 2))
        self.features = nn.Sequential(*layers)
        group = preprocessing_params(preprocessing) if isinstance(preprocessing, str) else preprocessing
        numbers = {key: torch.tensor(np.asarray(group[key], np.float32)) for key in ("mix", "scale", "mean", "std")}
        self.register_buffer("mix", numbers["mix"], persistent=False)
        self.register_buffer("scale", numbers["scale"], persistent=False)
        self.register_buffer("mean", numbers["mean"].view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", numbers["std"].view(1, 3, 1, 1), persistent=False)

    def forward(self, images: torch.Tensor, layers: Sequence[str]) -> dict[str, torch.Tensor]:
        """Activations (NCHW) at ``layers`` for RGB images in [0, 1] of shape (N, 3, H, W)."""
        wanted = {torchvision_index(layer, self.architecture): layer for layer in layers}
        deepest = max(wanted)
        outputs: dict[str, torch.Tensor] = {}
        mixed = torch.einsum("ck,nkhw->nchw", self.mix, images) if not torch.equal(self.mix, torch.eye(3)) else images
        x = (mixed * self.scale - self.mean) / self.std
        for index, module in enumerate(self.features[: deepest + 1]):
            x = module(x)
            if index in wanted:
                outputs[wanted[index]] = x
        return outputs


TorchVGG19 = TorchVGG
"""The name this module had when it was VGG19 only."""


def init_torchvision_(model: TorchVGG19, seed: int) -> TorchVGG19:
    """Initialize the convs in place as torchvision's VGG does (Kaiming normal, fan_out, ReLU; zero bias)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.features:
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu", generator=generator)
                nn.init.zeros_(module.bias)
    return model


def features_state_dict(params: Mapping[str, Mapping[str, np.ndarray]]) -> dict[str, torch.Tensor]:
    """nst_jax params (HWIO kernels) as a torchvision ``features.N.weight`` / ``.bias`` state dict (OIHW)."""
    architecture = architecture_of(params)
    state: dict[str, torch.Tensor] = {}
    for name in conv_layers(architecture):
        index = torchvision_index(name, architecture)
        kernel = np.asarray(params[name]["kernel"], dtype=np.float32)
        state[f"features.{index}.weight"] = torch.tensor(kernel.transpose(3, 2, 0, 1))
        state[f"features.{index}.bias"] = torch.tensor(np.asarray(params[name]["bias"], dtype=np.float32))
    return state


__all__ = ["LAYER_NAMES", "TorchVGG", "TorchVGG19", "features_state_dict", "init_torchvision_"]
