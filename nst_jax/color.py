"""Colour controls of Gatys et al. (2017), "Controlling Perceptual Factors in Neural Style Transfer", sec. 5.

Two ways to keep the content's colours:

``luminance`` -- transfer style on luminance only: stylize the content's luminance Y with the style's luminance
    (matched in mean and standard deviation to the content's), then put back the content's chrominance (I, Q).
``histogram`` -- before stylizing, recolour the style image so that its pixel mean and 3x3 covariance equal the
    content's (a linear map x' = A x + b, ``match_color``).

Pure NumPy functions on (..., 3) float arrays; they compute in float64 and return float32. None of them clips to
[0, 1]: the properties below hold for their exact output, and callers clip where they need a valid image.
"""

from __future__ import annotations

import numpy as np

# NTSC (FCC 1953) RGB -> YIQ; rows give Y, I and Q.
YIQ_FROM_RGB: np.ndarray = np.array(
    [
        [0.299, 0.587, 0.114],
        [0.596, -0.274, -0.322],
        [0.211, -0.523, 0.312],
    ]
)
# The exact inverse (not the rounded matrix usually printed), so rgb -> yiq -> rgb is the identity.
RGB_FROM_YIQ: np.ndarray = np.linalg.inv(YIQ_FROM_RGB)

# Eigenvalues of a covariance are floored at this before the inverse square root (a flat or grey style image
# has a singular covariance; its colours cannot be spread to the content's along the missing directions).
_MIN_EIGENVALUE = 1e-10


def _check_rgb(image: np.ndarray, what: str) -> np.ndarray:
    """``image`` as a float64 array, raising ``ValueError`` unless its last axis has 3 channels."""
    array = np.asarray(image, np.float64)
    if array.ndim < 1 or array.shape[-1] != 3:
        raise ValueError(f"{what} must have 3 channels on its last axis, got shape {array.shape}")
    return array


def rgb_to_yiq(image: np.ndarray) -> np.ndarray:
    """(..., 3) RGB as (..., 3) YIQ (NTSC)."""
    return (_check_rgb(image, "image") @ YIQ_FROM_RGB.T).astype(np.float32)


def yiq_to_rgb(image: np.ndarray) -> np.ndarray:
    """(..., 3) YIQ (NTSC) as (..., 3) RGB, the exact inverse of ``rgb_to_yiq``."""
    return (_check_rgb(image, "image") @ RGB_FROM_YIQ.T).astype(np.float32)


def luminance(image: np.ndarray) -> np.ndarray:
    """The (...,) luminance Y of (..., 3) RGB."""
    return (_check_rgb(image, "image") @ YIQ_FROM_RGB[0]).astype(np.float32)


def gray(values: np.ndarray) -> np.ndarray:
    """(...,) luminance as a (..., 3) grey RGB image (R = G = B = Y, so its Y is ``values`` and I = Q = 0)."""
    # The rows of YIQ_FROM_RGB for I and Q sum to zero (exactly, in decimal), so a grey pixel has no chrominance.
    return np.repeat(np.asarray(values, np.float32)[..., None], 3, axis=-1)


def match_luminance(style: np.ndarray, content: np.ndarray) -> np.ndarray:
    """The style's luminance, shifted and scaled to the content luminance's mean and standard deviation."""
    style_y = _check_rgb(style, "style") @ YIQ_FROM_RGB[0]
    content_y = _check_rgb(content, "content") @ YIQ_FROM_RGB[0]
    spread = style_y.std()
    scale = content_y.std() / spread if spread > 0 else 0.0
    return ((style_y - style_y.mean()) * scale + content_y.mean()).astype(np.float32)


def luminance_transfer(stylized: np.ndarray, content: np.ndarray) -> np.ndarray:
    """RGB with the luminance Y of ``stylized`` and the chrominance I, Q of ``content`` (same shape)."""
    stylized, content = _check_rgb(stylized, "stylized image"), _check_rgb(content, "content image")
    if stylized.shape != content.shape:
        raise ValueError(f"stylized image {stylized.shape} and content image {content.shape} differ in shape")
    yiq = content @ YIQ_FROM_RGB.T
    yiq[..., 0] = stylized @ YIQ_FROM_RGB[0]
    return (yiq @ RGB_FROM_YIQ.T).astype(np.float32)


def _sqrt_and_inverse_sqrt(covariance: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric square root of a covariance matrix and of its inverse, by eigen-decomposition."""
    values, vectors = np.linalg.eigh(covariance)
    values = np.maximum(values, _MIN_EIGENVALUE)
    return (vectors * np.sqrt(values)) @ vectors.T, (vectors / np.sqrt(values)) @ vectors.T


def color_statistics(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean (3,) and 3x3 covariance (population, divided by the pixel count) of an RGB image."""
    pixels = _check_rgb(image, "image").reshape(-1, 3)
    mean = pixels.mean(axis=0)
    centred = pixels - mean
    return mean, centred.T @ centred / len(pixels)


def match_color(style: np.ndarray, content: np.ndarray) -> np.ndarray:
    """The style image recoloured so that its pixel mean and 3x3 colour covariance equal the content's.

    x' = A (x - mu_s) + mu_c with A = Sigma_c^(1/2) Sigma_s^(-1/2), both square roots symmetric (eigen-
    decomposition): the "image analogies" variant of Gatys et al. 2017 (Hertzmann et al. 2001), rather than the
    Cholesky one. Then A Sigma_s A^T = Sigma_c exactly. Not clipped: values may leave [0, 1].
    """
    style_pixels = _check_rgb(style, "style")
    style_mean, style_cov = color_statistics(style_pixels)
    content_mean, content_cov = color_statistics(content)
    content_sqrt, _ = _sqrt_and_inverse_sqrt(content_cov)
    _, style_inverse_sqrt = _sqrt_and_inverse_sqrt(style_cov)
    transform = content_sqrt @ style_inverse_sqrt
    return ((style_pixels - style_mean) @ transform.T + content_mean).astype(np.float32)
