"""nst_jax: neural style transfer (Gatys, Ecker & Bethge, CVPR 2016) in JAX/Flax."""

from nst_jax.color import luminance_transfer, match_color, rgb_to_yiq, yiq_to_rgb
from nst_jax.config import StyleConfig
from nst_jax.image_io import ImageError, load_image, save_image
from nst_jax.losses import (
    LossTerms,
    content_loss,
    gram_matrix,
    make_loss_fn,
    style_layer_loss,
    style_loss,
    total_variation_loss,
)
from nst_jax.memory import BatchPlan
from nst_jax.optimize import Progress, Status
from nst_jax.reconstruct import Reconstruction, reconstruct_content, reconstruct_style
from nst_jax.result import StyleResult
from nst_jax.sweep import BatchItem, stylize_batch, stylize_sweep
from nst_jax.transfer import stylize
from nst_jax.vgg import (
    CONV_LAYERS,
    LAYER_NAMES,
    VGG19Features,
    VGGFeatures,
    extract_features,
    layer_names,
    min_input_size,
)
from nst_jax.video import VideoConfig, VideoResult, stylize_video
from nst_jax.weights import (
    RandomWeightsWarning,
    VGGWeights,
    WeightsError,
    WeightsInfo,
    default_weights_path,
    load_weights,
)

__all__ = [
    "BatchItem",
    "BatchPlan",
    "CONV_LAYERS",
    "ImageError",
    "LAYER_NAMES",
    "LossTerms",
    "Progress",
    "RandomWeightsWarning",
    "Reconstruction",
    "Status",
    "StyleConfig",
    "StyleResult",
    "VGG19Features",
    "VGGFeatures",
    "VGGWeights",
    "VideoConfig",
    "VideoResult",
    "WeightsError",
    "WeightsInfo",
    "content_loss",
    "default_weights_path",
    "extract_features",
    "gram_matrix",
    "layer_names",
    "load_image",
    "load_weights",
    "luminance_transfer",
    "make_loss_fn",
    "match_color",
    "min_input_size",
    "reconstruct_content",
    "reconstruct_style",
    "rgb_to_yiq",
    "save_image",
    "style_layer_loss",
    "style_loss",
    "stylize",
    "stylize_batch",
    "stylize_sweep",
    "stylize_video",
    "total_variation_loss",
    "yiq_to_rgb",
]
