"""Loading what a checked run needs: its images and masks, and the network (saying which one runs, with which loss
weights, and warning loudly about random weights)."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import sys
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from nst_jax import image_io
from nst_jax.cli import distributed
from nst_jax.cli.checks import check_memory, check_outputs, checked_shape
from nst_jax.cli.device import on_device, select_device
from nst_jax.cli.exits import PROG, UsageError
from nst_jax.cli.options import user_message
from nst_jax.cli.paths import mask_paths, source_mask_paths
from nst_jax.config import INITS, ConfigError, StyleConfig
from nst_jax.problem import configure_for
from nst_jax.weights import RandomWeightsWarning, VGGWeights, WeightsError, load_weights


def load_masks(masks: Sequence[Path | None] | None) -> list[np.ndarray | None] | None:
    """Mask files decoded (None entries kept), ``UsageError`` for one that cannot be read; resized by the run."""
    if masks is None:
        return None
    try:
        return [None if path is None else image_io.load_image(path) for path in masks]
    except ValueError as error:  # image_io.ImageError is a ValueError
        raise UsageError(user_message(error)) from None


def load_inputs(args: argparse.Namespace, config: StyleConfig) -> tuple[np.ndarray, list[np.ndarray]]:
    """The content and style images decoded (``UsageError`` if one cannot be read), and the ``--init`` image checked;
    their sizes were checked from the headers (``checked_shape``), and ``stylize`` resizes them, once."""
    try:
        if config.init not in INITS:
            image_io.load_image(config.init)
        return image_io.load_image(args.content), [image_io.load_image(style) for style in args.styles]
    except ValueError as error:  # image_io.ImageError is a ValueError
        raise UsageError(user_message(error)) from None


@dataclasses.dataclass(frozen=True)
class ContentRun:
    """A run over one content image (one image or a weight sweep), checked and loaded: its images and network."""

    content: np.ndarray
    styles: list[np.ndarray]
    vgg: VGGWeights
    masks: list[np.ndarray] | None = None
    """--style-masks, decoded."""
    sources: list[np.ndarray | None] | None = None
    """--style-source-masks, decoded (None: a style image used whole)."""


@contextlib.contextmanager
def content_run(
    args: argparse.Namespace, config: StyleConfig, outputs: Sequence[Path], *, snapshots_of: Sequence[Path],
    iterations: int, what: str = "", single: bool = False,
) -> Iterator[ContentRun]:
    """Check, in order, that the outputs (and snapshots) may be written, the device, the sizes at every scale and
    the memory (``what`` says whose; ``UsageError`` at the first problem); load the images, then the weights on the
    device, where the block runs."""
    check_outputs(args, outputs, snapshots_of=snapshots_of, iterations=iterations)
    device = select_device(args.device)
    shape = checked_shape(args, config)
    check_memory(args, config, shape, device, what=what, single=single)
    content, styles = load_inputs(args, config)
    masks, sources = load_masks(mask_paths(args)), load_masks(source_mask_paths(args))
    with on_device(device):
        vgg = load_weights_loudly(args.weights, config, args.quiet)
        distributed.agree()
        yield ContentRun(content, styles, vgg, masks, sources)


def load_weights_loudly(path: Path | None, config: StyleConfig | None = None, quiet: bool = False) -> VGGWeights:
    """``load_weights``, printing a one-line WARNING on stderr for random weights (``UsageError`` if missing); with
    ``config``, checks its layers exist in the network and (unless ``quiet``) says which network runs with which
    loss weights."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RandomWeightsWarning)
        try:
            weights = load_weights(path)
        except WeightsError as error:
            raise UsageError(str(error)) from None
    for warning in caught:
        if issubclass(warning.category, RandomWeightsWarning):
            print(f"{PROG}: WARNING: {warning.message}", file=sys.stderr)
        else:
            warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
    if config is not None:
        try:
            configured = configure_for(config, weights)
        except ConfigError as error:
            raise UsageError(user_message(error)) from None
        if not quiet:
            print(f"{PROG}: {network_line(weights, config, configured)}", file=sys.stderr)
    return weights


def network_line(weights: VGGWeights, config: StyleConfig, configured: StyleConfig) -> str:
    """One line: the network, and the loss weights it runs with (which of them are its convention's defaults)."""
    def weight(name: str, value: float | None, resolved: float) -> str:
        return f"{name} {resolved:g}" + (f" (default for {weights.info.convention} weights)" if value is None else "")

    return (f"network {weights.info.description}; "
            f"{weight('content weight', config.content_weight, configured.resolved_content_weight)}, "
            f"{weight('style weight', config.style_weight, configured.resolved_style_weight)}")
