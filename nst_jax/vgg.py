"""VGG19 and VGG16 feature extractors (torchvision's ``vgg19().features`` / ``vgg16().features``) as a Flax module,
with the input preprocessing their weights expect.

Where this departs from the paper's network: Gatys et al. used a *normalized* VGG19, each filter rescaled so that
its mean activation over images and positions is one; ``python -m convert_weights --normalize-on IMAGES`` makes one
from any weights (``convert_weights.normalize``), otherwise the weights are used as trained. Pooling is the paper's
average pooling by default, taken as a plain mean over each 2x2 window, with weights that were trained with max
pooling and are not rescaled for it (the paper's normalization would absorb the change in scale).

The preprocessing is part of the parameters (the group ``input``: a channel mix, a scale, a mean and a std), so
torchvision's convention (RGB in [0, 1], ImageNet mean/std) and Caffe's (BGR pixel values 0-255 minus the BGR mean,
as Caffe, Keras, MatConvNet and neural-style-pt feed the original VGG) run through one compiled program; the optimized
image is RGB in [0, 1] either way.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.ad_checkpoint import checkpoint_name

# Output channels of each conv, block by block: torchvision's configurations "E" (VGG19) and "D" (VGG16).
ARCHITECTURES: dict[str, tuple[tuple[int, ...], ...]] = {
    "vgg19": ((64, 64), (128, 128), (256, 256, 256, 256), (512, 512, 512, 512), (512, 512, 512, 512)),
    "vgg16": ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512)),
}
DEFAULT_ARCHITECTURE = "vgg19"
BLOCK_CHANNELS = ARCHITECTURES[DEFAULT_ARCHITECTURE]

# torchvision normalizes RGB in [0, 1] with the ImageNet statistics.
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
# Caffe's VGG takes BGR pixel values 0-255 minus this BGR mean, no std: Caffe's own data layer, Keras' "caffe" mode,
# MatConvNet and neural-style-pt's ``preprocess`` (``Loader(image) * 255``) all scale [0, 1] by 255. jcjohnson's Lua
# neural-style scaled by 256, and so did nst_jax's files before this was measured (neural-style-pt's losses were 2.6 %
# off at 256, 1.6e-4 at 255): those record scale 256 and load as written (``nst_jax.weights.load_weights``).
CAFFE_BGR_MEAN: tuple[float, float, float] = (103.939, 116.779, 123.68)
CAFFE_SCALE = 255.0
PREPROCESSINGS: tuple[str, ...] = ("torchvision", "caffe")
DEFAULT_PREPROCESSING = PREPROCESSINGS[0]

POOLINGS: tuple[str, ...] = ("avg", "max")
DEFAULT_POOLING = POOLINGS[0]
PRECISIONS = ("default", "float32", "tf32", "bfloat16")
"""Arithmetic of VGG's convolutions: JAX's default for the device (TF32 on NVIDIA GPUs since Ampere, float32 on
CPUs), float32 (``Precision.HIGHEST``), TF32 where the device has it (``Precision.HIGH``; float32 on a CPU), or
bfloat16 activations and weights. Everything after VGG (Gram matrices, losses, the optimizer) is float32."""
DEFAULT_PRECISION = PRECISIONS[0]
_LAX_PRECISION = {"default": None, "float32": lax.Precision.HIGHEST, "tf32": lax.Precision.HIGH, "bfloat16": None}


@functools.cache
def _layer_table(architecture: str) -> tuple[tuple[str, ...], tuple[str, ...], dict[str, int]]:
    """All layer names in network order, the conv names, and each conv's index in torchvision's ``features``."""
    names: list[str] = []
    convs: list[str] = []
    torch_index: dict[str, int] = {}
    index = 0
    for block, channels in enumerate(_blocks(architecture), start=1):
        for position in range(1, len(channels) + 1):
            conv = f"conv{block}_{position}"
            names += [conv, f"relu{block}_{position}"]
            convs.append(conv)
            torch_index[conv] = index
            index += 2
        names.append(f"pool{block}")
        index += 1
    return tuple(names), tuple(convs), torch_index


def _blocks(architecture: str) -> tuple[tuple[int, ...], ...]:
    """The channel table of ``architecture``; ``ValueError`` naming the known ones."""
    if architecture not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {architecture!r}; choose {', '.join(ARCHITECTURES)}")
    return ARCHITECTURES[architecture]


def layer_names(architecture: str = DEFAULT_ARCHITECTURE) -> tuple[str, ...]:
    """Every layer of ``architecture`` in network order (conv, relu and pool)."""
    return _layer_table(architecture)[0]


def conv_layers(architecture: str = DEFAULT_ARCHITECTURE) -> tuple[str, ...]:
    """The convs of ``architecture`` in network order."""
    return _layer_table(architecture)[1]


LAYER_NAMES, CONV_LAYERS, TORCHVISION_CONV_INDEX = _layer_table(DEFAULT_ARCHITECTURE)
"""VGG19's layers (every VGG16 layer name is among them)."""


def architecture_of(params: Mapping[str, Any]) -> str:
    """The architecture a parameter tree belongs to: VGG16 where block 5 ends at ``conv5_3``, else VGG19."""
    return "vgg16" if "conv5_3" in params and "conv5_4" not in params and "conv3_4" not in params else "vgg19"


def torchvision_index(layer: str, architecture: str = DEFAULT_ARCHITECTURE) -> int:
    """The index in torchvision's ``vgg19().features`` (or ``vgg16()``) whose output is ``layer``."""
    kind, block, position = _parse_layer(layer, architecture)
    _, _, conv_index = _layer_table(architecture)
    if kind == "pool":
        return conv_index[f"conv{block}_{len(_blocks(architecture)[block - 1])}"] + 2
    index = conv_index[f"conv{block}_{position}"]
    return index if kind == "conv" else index + 1


def _parse_layer(layer: str, architecture: str = DEFAULT_ARCHITECTURE) -> tuple[str, int, int]:
    """Split a layer name into (kind, block, position); pools have position 0."""
    validate_layers((layer,), architecture)
    if layer.startswith("pool"):
        return "pool", int(layer[4:]), 0
    kind = layer[:4]
    block, position = layer[4:].split("_")
    return kind, int(block), int(position)


def validate_layers(layers: Sequence[str], architecture: str = DEFAULT_ARCHITECTURE) -> tuple[str, ...]:
    """Return ``layers`` as a tuple, raising ``ValueError`` on an empty list or a name ``architecture`` lacks."""
    if isinstance(layers, str):
        layers = (layers,)
    layers = tuple(layers)
    if not layers:
        raise ValueError(f"at least one {architecture.upper()} layer is needed")
    names = layer_names(architecture)
    unknown = [layer for layer in layers if layer not in names]
    if unknown:
        raise ValueError(
            f"unknown {architecture.upper()} layer(s) {', '.join(map(repr, unknown))}; valid names: {', '.join(names)}"
        )
    return layers


def layer_stride(layer: str) -> int:
    """Input pixels per position of ``layer``'s output: 2 ** (pools up to and including it)."""
    block = int(layer[4])
    return 2 ** (block if layer.startswith("pool") else block - 1)


def min_input_size(layers: Sequence[str]) -> int:
    """The smallest image side (pixels) for which every layer in ``layers`` has a non-empty output (the same in
    VGG16 and VGG19: one pool per block before it)."""
    pools = [int(layer[4]) - 1 + layer.startswith("pool") for layer in validate_layers(layers)]
    return 2 ** max(pools)


def conv_param_shapes(architecture: str = DEFAULT_ARCHITECTURE) -> dict[str, dict[str, tuple[int, ...]]]:
    """Shapes of every conv's ``kernel`` (HWIO) and ``bias``, keyed by conv name."""
    shapes: dict[str, dict[str, tuple[int, ...]]] = {}
    in_channels = 3
    for block, channels in enumerate(_blocks(architecture), start=1):
        for position, out_channels in enumerate(channels, start=1):
            shapes[f"conv{block}_{position}"] = {
                "kernel": (3, 3, in_channels, out_channels),
                "bias": (out_channels,),
            }
            in_channels = out_channels
    return shapes


def preprocessing_params(convention: str = DEFAULT_PREPROCESSING, *, scale: float | None = None,
                         mean: Sequence[float] | None = None) -> dict[str, np.ndarray]:
    """The ``input`` parameter group of a convention: the network sees ((mix @ rgb) * scale - mean) / std.

    ``scale`` and ``mean`` replace Caffe's 255 and BGR mean where a file records others (a file written with 256,
    MatConvNet's mean pixel); torchvision's numbers are fixed.
    """
    if convention == "torchvision":
        if scale is not None or mean is not None:
            raise ValueError("torchvision's preprocessing has fixed numbers; scale and mean apply to caffe's only")
        mix, scale, mean, std = np.eye(3), 1.0, IMAGENET_MEAN, IMAGENET_STD
    elif convention == "caffe":
        scale = CAFFE_SCALE if scale is None else scale
        mean = CAFFE_BGR_MEAN if mean is None else mean
        mix, std = np.eye(3)[::-1], (1.0, 1.0, 1.0)
    else:
        raise ValueError(f"unknown preprocessing {convention!r}; choose {', '.join(PREPROCESSINGS)}")
    return {"mix": np.asarray(mix, np.float32), "scale": np.asarray(scale, np.float32),
            "mean": np.asarray(mean, np.float32), "std": np.asarray(std, np.float32)}


def preprocessing_of(params: Mapping[str, Any]) -> str | None:
    """The convention whose ``input`` group ``params`` holds (torchvision's where it holds none); None for another.
    Caffe's is told by its channel order and std alone: a file may record its own scale and mean."""
    group = params.get("input")
    if group is None:
        return DEFAULT_PREPROCESSING
    for convention in PREPROCESSINGS:
        expected = preprocessing_params(convention)
        keys = ("mix", "std") if convention == "caffe" else tuple(expected)
        if all(np.array_equal(np.asarray(group[key]), expected[key]) for key in keys):
            return convention
    return None


def preprocess(images: jax.Array, group: Mapping[str, jax.Array]) -> jax.Array:
    """RGB in [0, 1] as the network's input: ((mix @ rgb) * scale - mean) / std, per pixel.

    The mix is written out as three products and sums, not a matmul: a 0/1 matrix then reorders channels exactly
    (a matmul on a GPU may round its inputs to TF32), and torchvision's identity costs nothing in accuracy.
    """
    mix = group["mix"].astype(images.dtype)
    mixed = sum(images[..., k, None] * mix[:, k] for k in range(3))
    return (mixed * group["scale"].astype(images.dtype) - group["mean"].astype(images.dtype)) / group["std"].astype(
        images.dtype)


def normalize(images: jax.Array) -> jax.Array:
    """Map RGB in [0, 1] to torchvision's ImageNet-normalized input."""
    mean = jnp.asarray(IMAGENET_MEAN, dtype=images.dtype)
    std = jnp.asarray(IMAGENET_STD, dtype=images.dtype)
    return (images - mean) / std


_DIMENSIONS = ("NHWC", "HWIO", "NHWC")


def _conv_same(images: jax.Array, kernel: jax.Array, precision: lax.Precision | None = None) -> jax.Array:
    """Stride-1 'SAME' convolution, NHWC input and HWIO kernel, at ``precision`` (None: JAX's default), summed in
    float32 whatever the operands' type (bfloat16 operands give a float32 result)."""
    return lax.conv_general_dilated(images, kernel, (1, 1), "SAME", dimension_numbers=_DIMENSIONS,
                                    precision=precision, preferred_element_type=jnp.float32)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def conv3x3(images: jax.Array, kernel: jax.Array, precision: lax.Precision | None = None) -> jax.Array:
    """Stride-1 'SAME' 3x3 convolution whose input gradient is itself a forward convolution (both at
    ``precision``); float32 sums and result for float32 or bfloat16 operands."""
    return _conv_same(images, kernel, precision)


def _conv3x3_fwd(images: jax.Array, kernel: jax.Array, precision: lax.Precision | None,
                 ) -> tuple[jax.Array, tuple[jax.Array, jax.Array]]:
    return _conv_same(images, kernel, precision), (images, kernel)


def _conv3x3_bwd(precision: lax.Precision | None, residuals: tuple[jax.Array, jax.Array], cotangent: jax.Array,
                 ) -> tuple[jax.Array, jax.Array]:
    # XLA:CPU lowers the transposed convolution that autodiff emits for the input gradient to a slow path
    # (about 3x slower inside a compiled loop). For an odd kernel with symmetric 'SAME' padding and stride 1
    # the input gradient is exactly a forward convolution with the spatially flipped, in/out-swapped kernel.
    # The cotangent takes the operands' type (bfloat16 where they are), the sums stay float32.
    images, kernel = residuals
    cotangent = cotangent.astype(images.dtype)
    flipped = jnp.flip(kernel, axis=(0, 1)).swapaxes(2, 3)
    images_grad = _conv_same(cotangent, flipped, precision).astype(images.dtype)
    # The kernel gradient is dead code in style transfer (weights are frozen) and XLA drops it there.
    _, kernel_vjp = jax.vjp(lambda k: _conv_same(images, k, precision).astype(cotangent.dtype), kernel)
    (kernel_grad,) = kernel_vjp(cotangent)
    return images_grad, kernel_grad.astype(kernel.dtype)


conv3x3.defvjp(_conv3x3_fwd, _conv3x3_bwd)


class Conv3x3(nn.Module):
    """A 3x3 stride-1 'SAME' convolution with bias, parameters ``kernel`` (HWIO) and ``bias``. With bfloat16 input
    (``precision="bfloat16"``) the kernel is rounded to bfloat16 and the sums and bias are float32, the output rounded
    to bfloat16 once: so the result does not depend on whether the device has bfloat16 arithmetic."""

    features: int
    precision: lax.Precision | None = None

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        kernel = self.param("kernel", nn.initializers.lecun_normal(), (3, 3, x.shape[-1], self.features))
        bias = self.param("bias", nn.initializers.zeros_init(), (self.features,))
        return (conv3x3(x, kernel.astype(x.dtype), self.precision) + bias.astype(jnp.float32)).astype(x.dtype)


class Preprocess(nn.Module):
    """The weights' input convention as parameters (``preprocessing_params``; torchvision's when initialized)."""

    @nn.compact
    def __call__(self, images: jax.Array) -> jax.Array:
        defaults = preprocessing_params(DEFAULT_PREPROCESSING)
        group = {key: self.param(key, lambda _, value=value: jnp.asarray(value)) for key, value in defaults.items()}
        return preprocess(images, group)


class VGGFeatures(nn.Module):
    """VGG19's or VGG16's convolutional part after the input preprocessing; returns the activations of ``layers``,
    computing nothing past the deepest."""

    layers: tuple[str, ...]
    pooling: str = DEFAULT_POOLING
    architecture: str = DEFAULT_ARCHITECTURE
    precision: str = DEFAULT_PRECISION
    """The convolutions' arithmetic (``PRECISIONS``); the returned activations are float32 whatever it is."""

    @nn.compact
    def __call__(self, images: jax.Array) -> dict[str, jax.Array]:
        layers = validate_layers(self.layers, self.architecture)
        if self.pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {self.pooling!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"expected images of shape (N, H, W, 3), got {images.shape}")
        smallest = min_input_size(layers)
        if min(images.shape[1:3]) < smallest:
            raise ValueError(
                f"image of {images.shape[1]}x{images.shape[2]} pixels is too small for layer(s) "
                f"{', '.join(layers)}: each side must be at least {smallest} pixels"
            )
        names = layer_names(self.architecture)
        wanted = set(layers)
        deepest = max(names.index(layer) for layer in layers)
        pool = nn.avg_pool if self.pooling == "avg" else nn.max_pool
        shapes = conv_param_shapes(self.architecture)
        outputs: dict[str, jax.Array] = {}
        x = Preprocess(name="input")(images)
        if self.precision == "bfloat16":
            x = x.astype(jnp.bfloat16)  # activations, kernels and biases in bfloat16 up to the returned layers
        for name in names[: deepest + 1]:
            if name.startswith("conv"):
                x = Conv3x3(shapes[name]["bias"][0], _LAX_PRECISION[self.precision], name=name)(x)
            elif name.startswith("relu"):
                x = nn.relu(x)
            else:
                x = pool(x, (2, 2), strides=(2, 2), padding="VALID")
            x = checkpoint_name(x, name)  # what a remat policy (losses.LossSpec.remat) saves or recomputes
            if name in wanted:
                outputs[name] = x.astype(jnp.float32)  # Gram matrices and losses always in float32
        return outputs


VGG19Features = VGGFeatures
"""The name this module had when it was VGG19 only (its default architecture)."""


def extract_features(
    params: Mapping[str, Mapping[str, Any]],
    images: jax.typing.ArrayLike,
    layers: Sequence[str],
    pooling: str = DEFAULT_POOLING,
    precision: str = DEFAULT_PRECISION,
) -> dict[str, jax.Array]:
    """VGG activations (NHWC, float32) at ``layers`` for RGB images in [0, 1] of shape (N, H, W, 3) or (H, W, 3).

    ``params``: ``{conv: {"kernel", "bias"}}`` and optionally ``{"input": ...}`` (torchvision's preprocessing
    where absent), e.g. a ``VGGWeights``; VGG16 or VGG19 by its convs (``architecture_of``). ``precision``: the
    convolutions' arithmetic (``PRECISIONS``).
    """
    images = jnp.asarray(images, dtype=jnp.float32)
    single = images.ndim == 3
    batch = images[None] if single else images
    architecture = architecture_of(params)
    names = layer_names(architecture)
    deepest = max(names.index(layer) for layer in validate_layers(layers, architecture))
    needed = {name: params[name] for name in conv_layers(architecture) if names.index(name) <= deepest}
    needed["input"] = params["input"] if "input" in params else preprocessing_params(DEFAULT_PREPROCESSING)
    outputs = VGGFeatures(tuple(layers), pooling, architecture, precision).apply({"params": needed}, batch)
    return {name: out[0] for name, out in outputs.items()} if single else outputs
