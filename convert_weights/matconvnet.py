"""MatConvNet's ``imagenet-vgg-verydeep-16.mat`` / ``-19.mat`` (anishathalye/neural-style's and
cysmith/neural-style-tf's file), in both layouts: the old one (``layers`` and ``normalization``) and the new one
(``layers`` and ``meta.normalization``).

Every field is read by name (``type``, ``name``, ``weights``, or the older ``filters`` / ``biases``). Layers typed
``conv`` are the convolutions, except the classifier (``fc6``, ``fc7``, ``fc8``, also typed ``conv``): skipped by name.
Kernels load from the MAT file as HWIO already (MATLAB's H x W x in x out, which scipy keeps), so they are used as
they are: anishathalye/neural-style's transpose of H and W is not copied. The network takes RGB pixels 0-255 minus
the mean pixel the file holds (``averageImage``: a whole mean image in old files, whose pixels are averaged, or a
pixel); nst_jax stores it in Caffe's convention by reading the first layer's input channels as BGR, with the file's
mean in BGR order. MATLAB v7.3 files (HDF5 inside) are refused with the way out; scipy (the ``matconvnet`` extra)
reads the others.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from convert_weights.network import Conv, ConversionError, ReadNetwork, flip_input_channels, params_from_convs
from nst_jax.vgg import CAFFE_BGR_MEAN

MAT_V73_HEADER = b"MATLAB 7.3 MAT-file"
MAT_HEADER = b"MATLAB 5.0 MAT-file"
"""The text header of MATLAB's v5, v6 and v7 MAT files, which scipy reads."""
CLASSIFIER_PREFIX = "fc"


def read_matconvnet(path: Path, architecture: str | None = None) -> ReadNetwork:
    """The VGG in a MatConvNet ``.mat`` file, as nst_jax params in Caffe's convention with the file's mean."""
    with open(path, "rb") as handle:
        head = handle.read(128)
    if head.startswith(MAT_V73_HEADER):
        raise ConversionError(f"{path} is a MATLAB v7.3 MAT file (HDF5 inside), which nst_jax does not read: save it "
                              "again with save(..., '-v7') in MATLAB or Octave, or use MatConvNet's own "
                              "imagenet-vgg-verydeep-19.mat")
    try:
        from scipy.io import loadmat
    except ImportError:
        raise ConversionError("reading MatConvNet files needs scipy: pip install 'nst-jax[matconvnet]'") from None
    try:
        data = loadmat(path, squeeze_me=True, struct_as_record=False)
    except Exception as error:  # scipy raises ValueError, TypeError, MatReadError ... for a damaged file
        raise ConversionError(f"cannot read {path} as a MAT file ({type(error).__name__}: {error})") from None
    if "layers" not in data:
        raise ConversionError(f"{path} has no 'layers' variable: not a MatConvNet network (it holds "
                              f"{', '.join(k for k in data if not k.startswith('__')) or 'nothing'})")
    convs: list[Conv] = []
    skipped: list[str] = []
    for index, layer in enumerate(np.atleast_1d(data["layers"])):
        kind, name = _field(layer, "type", path, index), _field(layer, "name", path, index)
        if str(kind) != "conv":
            continue
        if str(name).startswith(CLASSIFIER_PREFIX):
            skipped.append(str(name))
            continue
        kernel, bias = _weights(layer, str(name), path)
        convs.append(Conv(str(name), kernel, bias))
    params = params_from_convs(convs, str(path), architecture)
    rgb_mean = _mean_pixel(data, path)
    bgr_mean = tuple(float(value) for value in rgb_mean[::-1])
    own = np.allclose(bgr_mean, CAFFE_BGR_MEAN, rtol=0, atol=1e-3)
    layout = "meta" if "meta" in data else "normalization"
    pixel = ", ".join(f"{value:.3f}" for value in rgb_mean)
    notes = [f"mean pixel (RGB) {pixel} from the file" + (" (Caffe's)" if own else "")
             + "; the first layer's input channels reversed to read BGR, Caffe's convention"]
    if skipped:
        notes.append(f"skipped the classifier: {', '.join(skipped)}")
    architecture_name = "VGG19" if "conv5_4" in params else "VGG16"
    return ReadNetwork(flip_input_channels(params), f"MatConvNet {architecture_name} (layers + {layout})", "caffe",
                       mean=None if own else bgr_mean, notes=tuple(notes))


def _field(struct: Any, name: str, path: Path, index: int) -> Any:
    """A MATLAB struct's field by name; ``ConversionError`` naming the fields it has."""
    fields = getattr(struct, "_fieldnames", None)
    if fields is None or name not in fields:
        raise ConversionError(f"{path}: layer {index + 1} has no field {name!r} (fields: "
                              f"{', '.join(fields or []) or 'none: not a struct'}); not a MatConvNet simplenn file")
    return getattr(struct, name)


def _weights(layer: Any, name: str, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """A conv layer's kernel (HWIO) and bias (1-D), from ``weights`` = {filters, biases} or the older fields."""
    fields = getattr(layer, "_fieldnames", [])
    if "weights" in fields:
        weights = np.atleast_1d(layer.weights)
        if weights.dtype != object or len(weights) != 2:
            raise ConversionError(f"{path}: layer {name} has weights of shape {weights.shape}, expected {{filters, "
                                  "biases}")
        kernel, bias = weights
    elif "filters" in fields and "biases" in fields:
        kernel, bias = layer.filters, layer.biases
    else:
        raise ConversionError(f"{path}: conv layer {name} has no 'weights' (nor 'filters' and 'biases') field")
    return np.asarray(kernel), np.asarray(bias).reshape(-1)


def _mean_pixel(data: dict[str, Any], path: Path) -> np.ndarray:
    """The RGB mean pixel: ``meta.normalization.averageImage`` or ``normalization.averageImage``, averaged over its
    pixels where it is a whole image."""
    holder = data.get("meta")
    normalization = getattr(holder, "normalization", None) if holder is not None else data.get("normalization")
    average = getattr(normalization, "averageImage", None)
    if average is None:
        raise ConversionError(f"{path} has no normalization.averageImage (nor meta.normalization.averageImage): the "
                              "mean its network expects is unknown")
    average = np.asarray(average, np.float64)
    if not (average.size == 3 or (average.ndim and average.shape[-1] == 3)):
        raise ConversionError(f"{path}: averageImage has shape {average.shape}, expected 3 channels")
    pixel = average.reshape(-1, 3).mean(axis=0)
    if not np.all(np.isfinite(pixel)):
        raise ConversionError(f"{path}: averageImage holds NaN or infinite values")
    return pixel
