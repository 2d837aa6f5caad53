"""Convert torchvision's VGG19 (pretrained download, a local .pth, or a random init) into nst_jax's HDF5 format."""

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
