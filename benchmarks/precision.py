"""How each L-BFGS line search copes with TF32 convolutions, measured on a CPU by emulating them.

On Ampere and newer GPUs JAX (and cuDNN in PyTorch) run float32 convolutions in TF32 by default: each operand
rounded to 10 mantissa bits, products accumulated in float32. This script emulates exactly that on any device, by
replacing ``nst_jax.vgg._conv_same`` in this process with a convolution of ``lax.reduce_precision``-rounded operands
(the forward pass and the input gradient both go through it), and reports for each line search the evaluations
per iteration over the second half of the run, where the loss is flat and rounding noise matters, and the final
loss, next to the same runs in full float32.

    python -m benchmarks.precision --weights random.h5 --size 128 --iterations 100 --json out.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import jax
import numpy as np
from jax import lax

from nst_jax import load_weights, stylize, vgg
from nst_jax.config import StyleConfig
from nst_jax.optimize import forget_compilations

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
METHODS: tuple[tuple[str, str], ...] = (("nst_jax", "zoom"), ("nst_jax", "backtracking"), ("nst_jax", "none"),
                                        ("optax", "zoom"))


def tf32_conv(images: jax.Array, kernel: jax.Array, precision: lax.Precision | None = None) -> jax.Array:
    """``vgg._conv_same`` with both operands rounded to TF32 (8 exponent bits, 10 mantissa bits)."""
    def round_(a: jax.Array) -> jax.Array:
        return lax.reduce_precision(a, exponent_bits=8, mantissa_bits=10)

    return EXACT_CONV(round_(images), round_(kernel), precision)


EXACT_CONV = vgg._conv_same


def run(weights_path: str | None, size: int, iterations: int, init: str) -> list[dict]:
    """Every method in float32 and in emulated TF32; one row each."""
    weights = load_weights(weights_path)
    rows = []
    for precision in ("float32", "tf32"):
        vgg._conv_same = EXACT_CONV if precision == "float32" else tf32_conv
        forget_compilations()
        for backend, search in METHODS:
            config = StyleConfig(image_size=size, iterations=iterations, init=init, lbfgs_backend=backend,
                                 line_search=search)
            began = time.perf_counter()
            result = stylize(EXAMPLES / "content.jpg", EXAMPLES / "style.jpg", vgg=weights, config=config)
            evaluations = np.asarray(result.evaluations)
            rows.append({
                "precision": precision, "method": f"{backend}[{search}]", "iterations": int(result.iterations),
                "evaluations": int(evaluations.sum()),
                "evaluations_per_iteration_second_half": float(evaluations[len(evaluations) // 2:].mean()),
                "final_loss": float(result.final_losses.total), "seconds": time.perf_counter() - began,
            })
            row = rows[-1]
            print(f"{precision:8s} {row['method']:22s} evaluations {row['evaluations']:4d}  per iteration in the "
                  f"second half {row['evaluations_per_iteration_second_half']:.2f}  final loss "
                  f"{row['final_loss']:.4g}  {row['seconds']:.1f} s", flush=True)
    vgg._conv_same = EXACT_CONV
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.precision", description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default=None, help="VGG HDF5 file (default: nst_jax's default path)")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--iterations", type=int, default=100)
    parser.add_argument("--init", choices=("noise", "content"), default="noise")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows as JSON")
    args = parser.parse_args(argv)
    rows = run(args.weights, args.size, args.iterations, args.init)
    if args.json is not None:
        record = {"device": str(jax.devices()[0]), "jax": jax.__version__, "size": args.size,
                  "iterations": args.iterations, "init": args.init, "rows": rows}
        args.json.write_text(json.dumps(record, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
