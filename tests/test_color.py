"""Colour controls: YIQ round trip, luminance transfer keeps the content's chrominance, colour matching its
statistics."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import random_images
from nst_jax.color import (
    color_statistics,
    gray,
    luminance,
    luminance_transfer,
    match_color,
    match_luminance,
    rgb_to_yiq,
    yiq_to_rgb,
)


def tinted(seed: int, mix: list[list[float]], offset: list[float]) -> np.ndarray:
    """Random pixels with correlated channels: (H, W, 3) noise mixed by ``mix`` and shifted by ``offset``."""
    return (random_images((20, 30, 3), seed=seed) @ np.asarray(mix, np.float32).T + np.float32(offset)).astype(
        np.float32
    )


@pytest.fixture(scope="module")
def style() -> np.ndarray:
    return tinted(1, [[0.6, 0.2, 0.0], [0.1, 0.3, 0.0], [0.0, 0.1, 0.2]], [0.1, 0.4, 0.2])


@pytest.fixture(scope="module")
def content() -> np.ndarray:
    return tinted(2, [[0.3, 0.0, 0.1], [0.2, 0.5, 0.1], [0.1, 0.1, 0.7]], [0.2, 0.1, 0.05])


class TestYIQ:
    def test_round_trip(self, content):
        np.testing.assert_allclose(yiq_to_rgb(rgb_to_yiq(content)), content, atol=1e-6)
        yiq = rgb_to_yiq(content)
        np.testing.assert_allclose(rgb_to_yiq(yiq_to_rgb(yiq)), yiq, atol=1e-6)

    def test_ntsc_values(self):
        white, red = rgb_to_yiq(np.array([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]]))
        np.testing.assert_allclose(white, [1.0, 0.0, 0.0], atol=1e-6)
        np.testing.assert_allclose(red, [0.299, 0.596, 0.211], atol=1e-6)

    def test_grey_has_no_chrominance(self, content):
        values = luminance(content)
        yiq = rgb_to_yiq(gray(values))
        np.testing.assert_allclose(yiq[..., 0], values, atol=1e-6)
        np.testing.assert_allclose(yiq[..., 1:], 0.0, atol=1e-6)

    def test_rejects_other_channel_counts(self):
        with pytest.raises(ValueError, match="3 channels"):
            rgb_to_yiq(np.zeros((4, 4, 4)))


class TestLuminanceTransfer:
    def test_keeps_content_chrominance_and_stylized_luminance(self, style, content):
        out = rgb_to_yiq(luminance_transfer(style, content))
        np.testing.assert_allclose(out[..., 1:], rgb_to_yiq(content)[..., 1:], atol=1e-6)
        np.testing.assert_allclose(out[..., 0], luminance(style), atol=1e-6)

    def test_shapes_must_agree(self, style, content):
        with pytest.raises(ValueError, match="differ in shape"):
            luminance_transfer(style[:10], content)


class TestMatchColor:
    def test_mean_and_covariance_become_the_content(self, style, content):
        out = match_color(style, content)  # not clipped: the property holds exactly
        mean, covariance = color_statistics(out)
        content_mean, content_covariance = color_statistics(content)
        np.testing.assert_allclose(mean, content_mean, atol=1e-5)
        np.testing.assert_allclose(covariance, content_covariance, atol=1e-5)
        # The statistics really changed, and the style's pattern is kept (a linear map of each pixel).
        assert np.abs(color_statistics(style)[1] - content_covariance).max() > 1e-3
        assert np.corrcoef(luminance(out).ravel(), luminance(style).ravel())[0, 1] > 0.5

    def test_already_matching_style_is_unchanged(self, content):
        np.testing.assert_allclose(match_color(content, content), content, atol=1e-5)

    def test_grey_style_stays_finite(self, content):
        flat = gray(luminance(random_images((10, 10, 3), seed=3)))
        assert np.all(np.isfinite(match_color(flat, content)))


def test_match_luminance_takes_the_content_mean_and_spread(style, content):
    matched = match_luminance(style, content)
    np.testing.assert_allclose(matched.mean(), luminance(content).mean(), atol=1e-6)
    np.testing.assert_allclose(matched.std(), luminance(content).std(), atol=1e-6)
    assert np.corrcoef(matched.ravel(), luminance(style).ravel())[0, 1] > 0.999
