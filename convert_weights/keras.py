"""Keras' VGG16/VGG19 weights in HDF5: the legacy layout of ``vgg16_weights_tf_dim_ordering_tf_kernels[_notop].h5``
(and a whole model saved with ``model.save``), and Keras 3's ``.weights.h5`` (also inside a ``.keras`` archive).

Legacy: the root (or ``/model_weights`` in a whole-model file) lists its layers in the attribute ``layer_names``, each
layer group lists its arrays in ``weight_names``; both are read, never guessed. A layer whose arrays are a 4-D
kernel and a 1-D bias is a convolution; dense (2-D) and weightless layers are skipped. Kernels are HWIO, except in
Theano-era files (``*_th_dim_ordering_*``): OIHW, and in ``*_th_kernels`` files also flipped, as Theano convolves
where everyone else correlates; those are rotated back, and an OIHW file whose name does not say which it holds is
refused.

Keras 3: ``/layers/conv2d``, ``/layers/conv2d_1``, ... (named after the class, numbered in the model's order, so
ordered by that number: ``conv2d_10`` comes after ``conv2d_9``), each with ``vars/0`` (HWIO kernel) and ``vars/1``.

Keras' ImageNet VGGs are the original Caffe weights: BGR pixels 0-255 minus the BGR mean (``preprocess_input``'s
"caffe" mode), so that is the convention given here.
"""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from convert_weights.network import Conv, ConversionError, ReadNetwork, params_from_convs

KERAS3_CONV = re.compile(r"conv2d(?:_(\d+))?$")
KERAS_ARCHIVE_WEIGHTS = "model.weights.h5"


def read_keras(path: Path, architecture: str | None = None) -> ReadNetwork:
    """The VGG in a Keras HDF5 weights file (or ``.keras`` archive) at ``path``."""
    import h5py

    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            if KERAS_ARCHIVE_WEIGHTS not in archive.namelist():
                raise ConversionError(f"{path} is a zip archive without {KERAS_ARCHIVE_WEIGHTS}: not a .keras file")
            data = io.BytesIO(archive.read(KERAS_ARCHIVE_WEIGHTS))
        with h5py.File(data, "r") as handle:
            return _read_keras3(handle, f"{path} ({KERAS_ARCHIVE_WEIGHTS})", architecture)
    try:
        with h5py.File(path, "r") as handle:
            if "layer_names" in handle.attrs:
                return _read_legacy(handle, path, "", architecture)
            weights = handle.get("model_weights")
            if isinstance(weights, h5py.Group) and "layer_names" in weights.attrs:
                return _read_legacy(weights, path, "/model_weights", architecture)
            if isinstance(handle.get("layers"), h5py.Group):
                return _read_keras3(handle, str(path), architecture)
    except OSError as error:
        raise ConversionError(f"cannot read {path} as HDF5 ({error})") from None
    raise ConversionError(f"{path} is an HDF5 file but not Keras weights: no layer_names attribute (Keras 2's "
                          "*_tf_kernels.h5), no /model_weights (model.save) and no /layers group (Keras 3)")


def _text(value: Any) -> str:
    """An HDF5 name attribute as ``str``."""
    return value.decode() if isinstance(value, bytes) else str(value)


def _read_legacy(root: Any, path: Path, where: str, architecture: str | None) -> ReadNetwork:
    """The convolutions a legacy Keras group lists in ``layer_names`` / ``weight_names``."""
    convs: list[Conv] = []
    skipped: list[str] = []
    for layer in map(_text, root.attrs["layer_names"]):
        if layer not in root:
            raise ConversionError(f"{path}: layer_names lists {layer!r}, which {where or '/'} does not hold")
        group = root[layer]
        names = [_text(name) for name in group.attrs.get("weight_names", [])]
        missing = [name for name in names if name not in group]
        if missing:
            raise ConversionError(f"{path}: layer {layer} lists weight(s) {', '.join(missing)} it does not hold")
        arrays = [np.asarray(group[name][()]) for name in names]
        if not any(array.ndim == 4 for array in arrays):
            if arrays:
                skipped.append(layer)
            continue
        kernels = [array for array in arrays if array.ndim == 4]
        biases = [array for array in arrays if array.ndim == 1]
        if len(arrays) != 2 or len(kernels) != 1 or len(biases) != 1:
            shapes = ", ".join(f"{name} {array.shape}" for name, array in zip(names, arrays))
            raise ConversionError(f"{path}: layer {layer} holds {shapes}; a convolution is a 4-D kernel and a bias")
        convs.append(Conv(layer, kernels[0], biases[0]))
    convs, layout_note = _hwio(convs, path)
    params = params_from_convs(convs, str(path), architecture)
    notes = [layout_note] if layout_note else []
    if skipped:
        notes.append(f"skipped layer(s) without a 3x3 kernel: {', '.join(skipped)}")
    kind = "whole-model HDF5, /model_weights" if where else "HDF5, layer_names"
    return ReadNetwork(params, f"Keras {_architecture_of(params)} ({kind})", "caffe", notes=tuple(notes))


def _hwio(convs: list[Conv], path: Path) -> tuple[list[Conv], str]:
    """``convs`` with HWIO kernels: TensorFlow's as they are, Theano's (OIHW) transposed and, in a ``th_kernels``
    file, rotated by 180 degrees (Theano's convolution flips them); the note saying which."""
    def is_oihw(conv: Conv) -> bool:
        shape = conv.kernel.shape
        return shape[2:] == (3, 3) and shape[0] == conv.bias.shape[0] and shape[:2] != (3, 3)

    if not convs or not is_oihw(convs[0]):
        return convs, ""
    name = path.name.lower()
    if "th_kernels" in name:
        rotated = [Conv(c.name, np.ascontiguousarray(c.kernel[:, :, ::-1, ::-1].transpose(2, 3, 1, 0)), c.bias)
                   for c in convs]
        return rotated, "Theano kernels (OIHW, flipped: th_kernels) rotated by 180 degrees and transposed to HWIO"
    if "tf_kernels" in name:
        return ([Conv(c.name, np.ascontiguousarray(c.kernel.transpose(2, 3, 1, 0)), c.bias) for c in convs],
                "Theano-ordered kernels (OIHW, unflipped: tf_kernels) transposed to HWIO")
    raise ConversionError(
        f"{path} holds Theano-ordered kernels (OIHW), and its name does not say whether they are flipped: Keras' "
        "*_th_kernels.h5 files hold kernels flipped for Theano's convolution, *_tf_kernels.h5 files do not, and "
        "the numbers cannot tell; keep the file's original name, or use vgg16_weights_tf_dim_ordering_tf_kernels.h5")


def _read_keras3(handle: Any, where: str, architecture: str | None) -> ReadNetwork:
    """The convolutions of a Keras 3 weights file: ``layers/conv2d[_N]/vars/{0,1}``, ordered by N."""
    import h5py

    groups = _conv_groups(handle)
    if not groups:
        raise ConversionError(f"{where} is a Keras 3 weights file without conv2d layers (found under /layers: "
                              f"{', '.join(list(handle['layers'])[:10]) or 'nothing'})")
    if len(groups) > 1:
        raise ConversionError(f"{where} holds conv2d layers in several models ({', '.join(groups)}); nst_jax reads "
                              "a file holding one VGG")
    (prefix, layers), = groups.items()
    convs = []
    for name in sorted(layers, key=lambda name: int(KERAS3_CONV.match(name).group(1) or 0)):
        variables = layers[name].get("vars")
        if not isinstance(variables, h5py.Group) or set(variables) != {"0", "1"}:
            found = sorted(variables) if isinstance(variables, h5py.Group) else "none"
            raise ConversionError(f"{where}: {prefix}/{name}/vars holds {found}, expected 0 (kernel) and 1 (bias)")
        convs.append(Conv(f"{prefix}/{name}", np.asarray(variables["0"][()]), np.asarray(variables["1"][()])))
    params = params_from_convs(convs, where, architecture)
    return ReadNetwork(params, f"Keras 3 {_architecture_of(params)} (.weights.h5)", "caffe")


def _conv_groups(handle: Any) -> dict[str, dict[str, Any]]:
    """Every ``layers`` group (at any depth: a model inside a model) that holds ``conv2d[_N]`` groups, by path."""
    import h5py

    found: dict[str, dict[str, Any]] = {}

    def visit(name: str, item: Any) -> None:
        if isinstance(item, h5py.Group) and name.split("/")[-1] == "layers":
            convs = {key: value for key, value in item.items() if KERAS3_CONV.match(key)}
            if convs:
                found["/" + name] = convs

    handle.visititems(visit)
    return found


def _architecture_of(params: dict[str, Any]) -> str:
    """``VGG16`` or ``VGG19`` for the report."""
    return "VGG19" if "conv5_4" in params else "VGG16"
