"""What every reader hands the converter: a VGG16 or VGG19's 3x3 convolutions in network order, checked and named as
nst_jax names them, with the input convention its origin implies.

Readers find the convolutions in their own layout (a state dict's keys, Keras' ``layer_names``, a MatConvNet
``layers`` array, an ONNX graph) and give them here in order; the count says the architecture (13: VGG16, 16:
VGG19), and every kernel and bias is checked against nst_jax's shapes before anything is written.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from nst_jax.vgg import ARCHITECTURES, conv_layers, conv_param_shapes

ARCHITECTURE_OF_COUNT: dict[int, str] = {len(conv_layers(name)): name for name in ARCHITECTURES}
"""The architecture with this many 3x3 convolutions (13: VGG16, 16: VGG19)."""


class ConversionError(Exception):
    """A source that cannot be converted; the message says what is wrong and how to fix it."""


@dataclasses.dataclass(frozen=True)
class Conv:
    """One convolution as a source holds it, already in nst_jax's layout."""

    name: str
    """The source's own name for it (for messages)."""
    kernel: np.ndarray
    """(3, 3, in, out): HWIO, cross-correlation (as every framework here but Theano computes)."""
    bias: np.ndarray
    """(out,)."""


@dataclasses.dataclass(frozen=True)
class ReadNetwork:
    """A network a reader found: nst_jax params and what is known of its input convention."""

    params: dict[str, dict[str, np.ndarray]]
    origin: str
    """What the source was recognised as, for the report (``Keras' ImageNet VGG16 (HDF5, layer_names)``)."""
    preprocessing: str | None
    """The convention its origin implies (``torchvision``, ``caffe``); None where the source does not say."""
    recognised: bool = True
    """Whether ``preprocessing`` is known from the origin (a ``--preprocessing`` that differs is then warned about),
    rather than a format's default."""
    mean: tuple[float, float, float] | None = None
    """For caffe: a BGR mean other than Caffe's that the source holds (MatConvNet's mean pixel)."""
    notes: tuple[str, ...] = ()
    """What the reader did that a user should know (layers skipped, batch norm folded, kernels flipped)."""


def params_from_convs(convs: Sequence[Conv], where: str, architecture: str | None = None,
                      ) -> dict[str, dict[str, np.ndarray]]:
    """nst_jax params from a VGG's 3x3 convolutions in network order; ``ConversionError`` naming every problem (a count
    that is neither VGG16's nor VGG19's, another ``architecture`` than insisted on, a wrong shape, a non-float or
    non-finite value)."""
    found = ARCHITECTURE_OF_COUNT.get(len(convs))
    if found is None:
        counts = " or ".join(f"{count} ({name.upper()})" for count, name in sorted(ARCHITECTURE_OF_COUNT.items()))
        names = ", ".join(conv.name for conv in convs[:20]) + (" ..." if len(convs) > 20 else "")
        raise ConversionError(f"{where} holds {len(convs)} 3x3 convolution(s), expected {counts}: not a VGG16/VGG19"
                              f"{f' ({names})' if convs else ''}")
    if architecture is not None and architecture != found:
        raise ConversionError(f"{where} holds {len(convs)} convolutions: a {found.upper()}, not the "
                              f"{architecture.upper()} --arch asks for")
    expected = conv_param_shapes(found)
    problems: list[str] = []
    params: dict[str, dict[str, np.ndarray]] = {}
    for ours, conv in zip(conv_layers(found), convs, strict=True):
        label = conv.name if conv.name == ours else f"{conv.name} ({ours})"
        kernel, bias = np.asarray(conv.kernel), np.asarray(conv.bias)
        if kernel.dtype.kind != "f" or bias.dtype.kind != "f":
            problems.append(f"{label} has {kernel.dtype}/{bias.dtype} values, not floating point (a quantized model?)")
            continue
        if kernel.shape != expected[ours]["kernel"] or bias.shape != expected[ours]["bias"]:
            problems.append(f"{label} kernel {kernel.shape} / bias {bias.shape}, expected {expected[ours]['kernel']} "
                            f"/ {expected[ours]['bias']}")
            continue
        if not (np.all(np.isfinite(kernel)) and np.all(np.isfinite(bias))):
            problems.append(f"{label} has NaN or infinite values")
            continue
        params[ours] = {"kernel": np.ascontiguousarray(kernel, np.float32), "bias": np.asarray(bias, np.float32)}
    if problems:
        raise ConversionError(f"{where} is not a usable {found.upper()}: " + "; ".join(problems))
    return params


def flip_input_channels(params: dict[str, dict[str, np.ndarray]]) -> dict[str, dict[str, np.ndarray]]:
    """``params`` whose first convolution reads its three input channels in reverse order (RGB <-> BGR): the same
    network for input reordered the other way."""
    flipped = {name: dict(layer) for name, layer in params.items()}
    flipped["conv1_1"]["kernel"] = np.ascontiguousarray(params["conv1_1"]["kernel"][:, :, ::-1, :])
    return flipped
