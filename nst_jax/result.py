"""``StyleResult``: what a style transfer returns, and how it is saved with its provenance."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np

from nst_jax import image_io
from nst_jax.config import StyleConfig
from nst_jax.files import SOFTWARE
from nst_jax.losses import LossTerms
from nst_jax.optimize import Status


@dataclasses.dataclass(frozen=True)
class StyleResult:
    """The stylized image (H, W, 3) float32 in [0, 1], per-iteration losses, the config and provenance."""

    image: np.ndarray
    losses: LossTerms
    config: StyleConfig
    final_losses: LossTerms
    status: Status
    weights_checksum: str
    weights_pretrained: bool
    evaluations: np.ndarray
    dispatches: int
    elapsed: float
    scale_iterations: tuple[int, ...] = ()
    """Iterations completed at each scale of a coarse-to-fine run (``config.scales``); empty for one scale."""

    @property
    def iterations(self) -> int:
        """Iterations completed."""
        return int(self.losses.total.shape[0])

    def metadata(self) -> dict[str, str]:
        """Text fields saved with the image: the full config, weights checksum, status and final losses."""
        return {
            "Software": SOFTWARE,
            "nst_jax:config": json.dumps(self.config.to_dict(), sort_keys=True),
            "nst_jax:weights_sha256": self.weights_checksum,
            "nst_jax:weights_pretrained": str(self.weights_pretrained),
            "nst_jax:status": str(self.status),
            "nst_jax:iterations": str(self.iterations),
            "nst_jax:final_losses": json.dumps({k: float(v) for k, v in self.final_losses._asdict().items()}),
        }

    def save(self, path: str | os.PathLike, *, bit_depth: int = image_io.BIT_DEPTHS[0]) -> Path:
        """Write the image (PNG 8/16 bit or JPEG, by suffix) atomically, with ``metadata()`` embedded."""
        return image_io.save_image(path, self.image, bit_depth=bit_depth, metadata=self.metadata())

    def losses_dict(self) -> dict[str, list[float]]:
        """Per-iteration losses as lists, for JSON logs."""
        return {name: [float(v) for v in values] for name, values in self.losses._asdict().items()}
