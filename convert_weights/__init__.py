"""Convert a trained VGG19 or VGG16 into nst_jax's HDF5 format: torchvision's download, a file in any format people
have it in (PyTorch, Keras, MatConvNet, ONNX, a pickled Flax tree: ``convert_weights.formats``), a VGG16 from the
Python package registry (``convert_weights.registry``), or a random init."""

from convert_weights.convert import (
    TORCHVISION_URL,
    ConversionError,
    convert_state_dict,
    load_pth,
    load_torchvision,
    random_state_dict,
)

__all__ = [
    "TORCHVISION_URL",
    "ConversionError",
    "convert_state_dict",
    "load_pth",
    "load_torchvision",
    "random_state_dict",
]
