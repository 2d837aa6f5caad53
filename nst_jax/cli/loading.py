"""Loading what a checked run needs (``checks.check_run`` decoded its images and masks): the network, saying which
one runs with which loss weights, and warning loudly about random weights."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from nst_jax.cli import distributed
from nst_jax.cli.checks import CheckedRun
from nst_jax.cli.device import on_device
from nst_jax.cli.exits import PROG, UsageError
from nst_jax.cli.options import user_message
from nst_jax.config import ConfigError, StyleConfig
from nst_jax.problem import configure_for
from nst_jax.weights import RandomWeightsWarning, VGGWeights, WeightsError, load_weights


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
def content_run(args: argparse.Namespace, checked: CheckedRun) -> Iterator[ContentRun]:
    """Load the weights of a checked run (``checks.check_run``) on its device, where the block runs, once every
    process's checks agree."""
    with on_device(checked.device):
        vgg = load_weights_loudly(args.weights, checked.config, args.quiet)
        distributed.agree()
        yield ContentRun(checked.content, checked.styles, vgg, checked.masks, checked.sources)


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
