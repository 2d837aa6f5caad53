"""Coarse-to-fine against one scale: wall time and final loss of ``stylize`` with ``scales`` vs at the final size.

    python -m benchmarks.multiscale --size 256 --coarse 64,128 --iterations 50 --weights random.h5
    python -m benchmarks.multiscale --size 512 --coarse 128,256 --scale-iterations 60,20,10 --weights random.h5

Runs, after compiling every size (a 2-iteration run each): the scales (coarse..., size) with --iterations at each
(or --scale-iterations); the final size alone with the same total iterations; and the final size with the final
scale's iterations only. Prints one line per run (seconds, evaluations, final loss) and the time of the first over
the second. Optimizer: the default (L-BFGS, optax) unless --optimizer. Images: examples/content.jpg and
examples/style.jpg.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

from benchmarks.report import json_output_problem
from nst_jax import RandomWeightsWarning, StyleConfig, load_weights, stylize
from nst_jax.files import write_json
from nst_jax.optimize import OPTIMIZERS

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def main(argv: Sequence[str] | None = None) -> int:
    """Time the three runs and print what was measured."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256, help="final (output) size, longest side in pixels")
    parser.add_argument("--coarse", default="64,128", help="comma-separated coarser sizes, increasing")
    parser.add_argument("--iterations", type=int, default=50, help="iterations per scale")
    parser.add_argument("--scale-iterations", default=None, help="comma-separated iterations per scale instead")
    parser.add_argument("--optimizer", default=OPTIMIZERS[0], choices=OPTIMIZERS)
    parser.add_argument("--weights", type=Path, default=None, help="VGG19 HDF5 weights")
    parser.add_argument("--json", type=Path, default=None, help="also write the measurements as JSON here")
    args = parser.parse_args(argv)
    problem = json_output_problem(args.json, args.weights)
    if problem:
        print(f"benchmarks.multiscale: error: {problem}", file=sys.stderr)
        return 2
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RandomWeightsWarning)
        weights = load_weights(args.weights)
    if caught:
        print("WARNING: random VGG19 weights: timings are real, images and losses are not style transfer")
    content, style = EXAMPLES / "content.jpg", EXAMPLES / "style.jpg"
    coarse = [int(size) for size in args.coarse.split(",") if size.strip()]
    scales = (*coarse, args.size)
    base = StyleConfig(image_size=args.size, optimizer=args.optimizer, iterations=args.iterations)
    per_scale = None if args.scale_iterations is None else [int(n) for n in args.scale_iterations.split(",")]
    coarse_to_fine = base.replace(scales=scales, scale_iterations=per_scale)
    for size in scales:
        stylize(content, style, vgg=weights, config=base.replace(image_size=size, iterations=2))
    counts = "+".join(map(str, coarse_to_fine.iterations_per_scale))
    total, last = coarse_to_fine.total_iterations, coarse_to_fine.iterations_per_scale[-1]
    runs = {
        f"{','.join(map(str, scales))} px, {counts} its": coarse_to_fine,
        f"{args.size} px, {total} its": base.replace(iterations=total),
        f"{args.size} px, {last} its": base.replace(iterations=last),
    }
    measured = {}
    for name, config in runs.items():
        start = time.perf_counter()
        result = stylize(content, style, vgg=weights, config=config)
        seconds = time.perf_counter() - start
        measured[name] = {"seconds": seconds, "evaluations": int(result.evaluations.sum()),
                          "final_loss": result.final_losses.total, "status": result.status}
        print(f"{name:>28}: {seconds:7.1f} s, {measured[name]['evaluations']:5d} evaluations, "
              f"final loss {result.final_losses.total:.4g} ({result.status})", flush=True)
    first, second = list(measured.values())[:2]
    print(f"coarse-to-fine / same iterations at {args.size} px: {first['seconds'] / second['seconds']:.2f}")
    if args.json is not None:
        write_json(args.json, measured, allow_nan=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
