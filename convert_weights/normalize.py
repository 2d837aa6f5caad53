"""The paper's normalized VGG: every filter rescaled so that its mean activation over images and positions is one.

Gatys et al. (2016, section 2): "We normalized the network by scaling the weights such that the mean activation of
each convolutional filter over images and positions is equal to one. Such re-scaling can be done for the VGG network
without changing its output, because it contains only rectifying linear activation functions and no normalization
or pooling over feature maps." ReLU, max and average pooling are positively homogeneous per channel, so dividing a
conv's output channel c (kernel and bias) by m_c and multiplying the next conv's input channel c by m_c leaves every
later layer as it was; doing that at every conv with the original network's means m makes each post-ReLU channel
the original one divided by its mean: mean one. Channels that never fire (mean 0) are left as they are.

The means are taken with max pooling, the pooling the network was trained with, over all positions of all images
together (each image resized so its longest side is ``size``).
"""

from __future__ import annotations

import glob
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import jax
import numpy as np

from nst_jax.image_io import ImageError, load_image, resize_image
from nst_jax.vgg import architecture_of, conv_layers, extract_features

NORMALIZE_SIZE = 512
"""Longest side, in pixels, of the images the means are taken over (the paper's images are 512 px)."""
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp")


class NormalizationError(Exception):
    """No usable images to normalize on; the message says what was looked at."""


def image_paths(pattern: str | os.PathLike) -> list[Path]:
    """The images a folder holds (not recursing), or that a glob pattern matches, sorted."""
    path = Path(pattern).expanduser()
    if path.is_dir():
        found = [p for p in sorted(path.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()]
    else:
        found = [Path(p) for p in sorted(glob.glob(os.path.expanduser(str(pattern)), recursive=True))
                 if Path(p).is_file()]
    if not found:
        raise NormalizationError(f"no images in {pattern} (a folder of .jpg/.png/... files, or a glob pattern)")
    return found


def load_images(paths: Sequence[Path], size: int) -> list[np.ndarray]:
    """Each image as RGB in [0, 1], resized so its longest side is ``size``; unreadable ones are an error."""
    images = []
    for path in paths:
        try:
            image = load_image(path)
        except ImageError as error:
            raise NormalizationError(str(error)) from None
        height, width = image.shape[:2]
        scale = size / max(height, width)
        images.append(resize_image(image, max(1, round(height * scale)), max(1, round(width * scale))))
    return images


def channel_means(params: Mapping[str, Mapping[str, np.ndarray]], images: Sequence[np.ndarray],
                  pooling: str = "max") -> dict[str, np.ndarray]:
    """Each conv's post-ReLU channel means over every position of every image, keyed by conv name."""
    architecture = architecture_of(params)
    relus = tuple("relu" + name[4:] for name in conv_layers(architecture))
    features = jax.jit(extract_features, static_argnames=("layers", "pooling"))
    sums = {relu: np.zeros(0) for relu in relus}
    count = {relu: 0 for relu in relus}
    for image in images:
        outputs = features(params, image, layers=relus, pooling=pooling)
        for relu in relus:
            values = np.asarray(outputs[relu], np.float64)
            total = values.reshape(-1, values.shape[-1]).sum(axis=0)
            sums[relu] = total if count[relu] == 0 else sums[relu] + total
            count[relu] += values.shape[0] * values.shape[1]
    return {"conv" + relu[4:]: (sums[relu] / count[relu]).astype(np.float32) for relu in relus}


def normalize_params(params: Mapping[str, Mapping[str, np.ndarray]],
                     means: Mapping[str, np.ndarray]) -> dict[str, dict[str, np.ndarray]]:
    """``params`` rescaled by the post-ReLU channel ``means`` of the original network (``channel_means``): each conv's
    output channel divided by its mean (kept where the mean is 0), its input channels multiplied by the previous
    conv's, so every post-ReLU channel becomes the original divided by its mean."""
    result = {name: dict(group) for name, group in params.items()}
    previous = None
    for name in conv_layers(architecture_of(params)):
        mean = np.asarray(means[name], np.float64)
        scale = np.where(mean > 0, mean, 1.0)
        kernel = np.asarray(params[name]["kernel"], np.float64) / scale
        if previous is not None:
            kernel = kernel * previous[None, None, :, None]
        result[name] = {"kernel": kernel.astype(np.float32),
                        "bias": (np.asarray(params[name]["bias"], np.float64) / scale).astype(np.float32)}
        previous = scale
    return result
