"""VGG19 feature extractor (torchvision's ``vgg19().features``) as a Flax module, with its preprocessing.

Where this departs from the paper's network: Gatys et al. used a *normalized* VGG19, each filter rescaled so that
its mean activation over images and positions is one; these are torchvision's weights as trained, unscaled (the
normalized network is what the style weight's default is tuned around, see ``nst_jax.losses``). Pooling is the
paper's average pooling by default, taken as a plain mean over each 2x2 window, with weights that were trained
with max pooling and are not rescaled for it (the paper's normalization would absorb the change in scale).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

# Output channels of each conv, block by block (torchvision's configuration "E").
BLOCK_CHANNELS: tuple[tuple[int, ...], ...] = (
    (64, 64),
    (128, 128),
    (256, 256, 256, 256),
    (512, 512, 512, 512),
    (512, 512, 512, 512),
)

# torchvision normalizes RGB in [0, 1] with the ImageNet statistics.
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)

POOLINGS: tuple[str, ...] = ("avg", "max")
DEFAULT_POOLING = POOLINGS[0]


def _layer_table() -> tuple[tuple[str, ...], tuple[str, ...], dict[str, int]]:
    """All layer names in network order, the conv names, and each conv's index in torchvision's ``features``."""
    names: list[str] = []
    convs: list[str] = []
    torch_index: dict[str, int] = {}
    index = 0
    for block, channels in enumerate(BLOCK_CHANNELS, start=1):
        for position in range(1, len(channels) + 1):
            conv = f"conv{block}_{position}"
            names += [conv, f"relu{block}_{position}"]
            convs.append(conv)
            torch_index[conv] = index
            index += 2
        names.append(f"pool{block}")
        index += 1
    return tuple(names), tuple(convs), torch_index


LAYER_NAMES, CONV_LAYERS, TORCHVISION_CONV_INDEX = _layer_table()


def torchvision_index(layer: str) -> int:
    """The index in torchvision's ``vgg19().features`` whose output is ``layer``."""
    kind, block, position = _parse_layer(layer)
    if kind == "pool":
        return TORCHVISION_CONV_INDEX[f"conv{block}_{len(BLOCK_CHANNELS[block - 1])}"] + 2
    conv_index = TORCHVISION_CONV_INDEX[f"conv{block}_{position}"]
    return conv_index if kind == "conv" else conv_index + 1


def _parse_layer(layer: str) -> tuple[str, int, int]:
    """Split a layer name into (kind, block, position); pools have position 0."""
    if layer not in LAYER_NAMES:
        raise ValueError(f"unknown VGG19 layer {layer!r}; valid names: {', '.join(LAYER_NAMES)}")
    if layer.startswith("pool"):
        return "pool", int(layer[4:]), 0
    kind = layer[:4]
    block, position = layer[4:].split("_")
    return kind, int(block), int(position)


def validate_layers(layers: Sequence[str]) -> tuple[str, ...]:
    """Return ``layers`` as a tuple, raising ``ValueError`` on an empty list or an unknown name."""
    if isinstance(layers, str):
        layers = (layers,)
    layers = tuple(layers)
    if not layers:
        raise ValueError("at least one VGG19 layer is needed")
    unknown = [layer for layer in layers if layer not in LAYER_NAMES]
    if unknown:
        raise ValueError(
            f"unknown VGG19 layer(s) {', '.join(map(repr, unknown))}; valid names: {', '.join(LAYER_NAMES)}"
        )
    return layers


def min_input_size(layers: Sequence[str]) -> int:
    """The smallest image side (pixels) for which every layer in ``layers`` has a non-empty output."""
    deepest = max(LAYER_NAMES.index(layer) for layer in validate_layers(layers))
    pools = sum(1 for name in LAYER_NAMES[: deepest + 1] if name.startswith("pool"))
    return 2**pools


def conv_param_shapes() -> dict[str, dict[str, tuple[int, ...]]]:
    """Shapes of every conv's ``kernel`` (HWIO) and ``bias``, keyed by conv name."""
    shapes: dict[str, dict[str, tuple[int, ...]]] = {}
    in_channels = 3
    for block, channels in enumerate(BLOCK_CHANNELS, start=1):
        for position, out_channels in enumerate(channels, start=1):
            shapes[f"conv{block}_{position}"] = {
                "kernel": (3, 3, in_channels, out_channels),
                "bias": (out_channels,),
            }
            in_channels = out_channels
    return shapes


def normalize(images: jax.Array) -> jax.Array:
    """Map RGB in [0, 1] to torchvision's ImageNet-normalized input."""
    mean = jnp.asarray(IMAGENET_MEAN, dtype=images.dtype)
    std = jnp.asarray(IMAGENET_STD, dtype=images.dtype)
    return (images - mean) / std


_DIMENSIONS = ("NHWC", "HWIO", "NHWC")


def _conv_same(images: jax.Array, kernel: jax.Array) -> jax.Array:
    """Stride-1 'SAME' convolution, NHWC input and HWIO kernel."""
    return lax.conv_general_dilated(images, kernel, (1, 1), "SAME", dimension_numbers=_DIMENSIONS)


@jax.custom_vjp
def conv3x3(images: jax.Array, kernel: jax.Array) -> jax.Array:
    """Stride-1 'SAME' 3x3 convolution whose input gradient is itself a forward convolution."""
    return _conv_same(images, kernel)


def _conv3x3_fwd(images: jax.Array, kernel: jax.Array) -> tuple[jax.Array, tuple[jax.Array, jax.Array]]:
    return _conv_same(images, kernel), (images, kernel)


def _conv3x3_bwd(residuals: tuple[jax.Array, jax.Array], cotangent: jax.Array) -> tuple[jax.Array, jax.Array]:
    # XLA:CPU lowers the transposed convolution that autodiff emits for the input gradient to a slow path
    # (about 3x slower inside a compiled loop). For an odd kernel with symmetric 'SAME' padding and stride 1
    # the input gradient is exactly a forward convolution with the spatially flipped, in/out-swapped kernel.
    images, kernel = residuals
    flipped = jnp.flip(kernel, axis=(0, 1)).swapaxes(2, 3)
    images_grad = _conv_same(cotangent, flipped)
    # The kernel gradient is dead code in style transfer (weights are frozen) and XLA drops it there.
    _, kernel_vjp = jax.vjp(lambda k: _conv_same(images, k), kernel)
    (kernel_grad,) = kernel_vjp(cotangent)
    return images_grad, kernel_grad


conv3x3.defvjp(_conv3x3_fwd, _conv3x3_bwd)


class Conv3x3(nn.Module):
    """A 3x3 stride-1 'SAME' convolution with bias, parameters ``kernel`` (HWIO) and ``bias``."""

    features: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        kernel = self.param("kernel", nn.initializers.lecun_normal(), (3, 3, x.shape[-1], self.features))
        bias = self.param("bias", nn.initializers.zeros_init(), (self.features,))
        return conv3x3(x, kernel.astype(x.dtype)) + bias.astype(x.dtype)


class VGG19Features(nn.Module):
    """VGG19's convolutional part; returns the activations of ``layers``, computing nothing past the deepest."""

    layers: tuple[str, ...]
    pooling: str = DEFAULT_POOLING

    @nn.compact
    def __call__(self, images: jax.Array) -> dict[str, jax.Array]:
        layers = validate_layers(self.layers)
        if self.pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {self.pooling!r}")
        if images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"expected images of shape (N, H, W, 3), got {images.shape}")
        smallest = min_input_size(layers)
        if min(images.shape[1:3]) < smallest:
            raise ValueError(
                f"image of {images.shape[1]}x{images.shape[2]} pixels is too small for layer(s) "
                f"{', '.join(layers)}: each side must be at least {smallest} pixels"
            )
        wanted = set(layers)
        deepest = max(LAYER_NAMES.index(layer) for layer in layers)
        pool = nn.avg_pool if self.pooling == "avg" else nn.max_pool
        shapes = conv_param_shapes()
        outputs: dict[str, jax.Array] = {}
        x = normalize(images)
        for name in LAYER_NAMES[: deepest + 1]:
            if name.startswith("conv"):
                x = Conv3x3(shapes[name]["bias"][0], name=name)(x)
            elif name.startswith("relu"):
                x = nn.relu(x)
            else:
                x = pool(x, (2, 2), strides=(2, 2), padding="VALID")
            if name in wanted:
                outputs[name] = x
        return outputs


def extract_features(
    params: Mapping[str, Mapping[str, Any]],
    images: jax.typing.ArrayLike,
    layers: Sequence[str],
    pooling: str = DEFAULT_POOLING,
) -> dict[str, jax.Array]:
    """VGG19 activations (NHWC) at ``layers`` for RGB images in [0, 1] of shape (N, H, W, 3) or (H, W, 3).

    ``params``: ``{conv: {"kernel", "bias"}}``, e.g. a ``VGGWeights`` (a mapping of its parameters).
    """
    images = jnp.asarray(images, dtype=jnp.float32)
    single = images.ndim == 3
    batch = images[None] if single else images
    deepest = max(LAYER_NAMES.index(layer) for layer in validate_layers(layers))
    needed = {name: params[name] for name in CONV_LAYERS if LAYER_NAMES.index(name) <= deepest}
    outputs = VGG19Features(tuple(layers), pooling).apply({"params": needed}, batch)
    return {name: out[0] for name, out in outputs.items()} if single else outputs
