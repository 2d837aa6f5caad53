"""nst_jax: neural style transfer (Gatys, Ecker & Bethge, CVPR 2016) in JAX/Flax."""

from nst_jax.vgg import CONV_LAYERS, LAYER_NAMES, VGG19Features, extract_features, min_input_size
from nst_jax.weights import (
    RandomWeightsWarning,
    VGGWeights,
    WeightsError,
    WeightsInfo,
    default_weights_path,
    load_weights,
)

__all__ = [
    "CONV_LAYERS",
    "LAYER_NAMES",
    "RandomWeightsWarning",
    "VGG19Features",
    "VGGWeights",
    "WeightsError",
    "WeightsInfo",
    "default_weights_path",
    "extract_features",
    "load_weights",
    "min_input_size",
]
