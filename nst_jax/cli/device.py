"""The device a command runs on (``--device``)."""

from __future__ import annotations

import contextlib

import jax

from nst_jax.cli.exits import UsageError


def select_device(device: str | None) -> jax.Device | None:
    """Restrict JAX to ``device``'s platform (call before any JAX computation); this process's first device of it,
    or None."""
    if device is None:
        return None
    if device == "cpu":
        jax.config.update("jax_platforms", "cpu")
        return jax.local_devices(backend="cpu")[0]
    try:  # JAX picks a GPU by itself when one works; "gpu" is not accepted as a jax_platforms value
        return jax.local_devices(backend="gpu")[0]
    except RuntimeError:
        raise UsageError(
            f"--device gpu: JAX finds no GPU (it has: {jax.default_backend()}); "
            "install JAX's CUDA plugin with: pip install 'nst-jax[cuda]'"
        ) from None


def on_device(device: jax.Device | None) -> contextlib.AbstractContextManager:
    """A context placing JAX computations on ``device`` (None: JAX's choice)."""
    return jax.default_device(device) if device is not None else contextlib.nullcontext()
