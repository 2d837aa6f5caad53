"""Memory and time per iteration against image size, per strategy: whole image, remat, tiled, rows split over devices.

Each (size, strategy) runs in a child process of its own, so that its peak resident memory is its own: the child
compiles one optimization chunk of ``--iterations`` steps, reads XLA's accounting of it (``memory_analysis()``:
arguments + outputs + temporaries - donated, per device), runs it once to compile and once timed, and reports the
process's peak resident memory, the time per iteration, the evaluations and the planner's estimate
(``nst_jax.memory.device_bytes``). ``spatial`` runs on ``--devices`` devices (forced CPU devices on a CPU: they
share its cores, so their time says nothing about speed, their memory per device does).

    python -m benchmarks.scale --weights random.h5 --sizes 256,512,1024 --json scale.json --plot scale.png
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from benchmarks.report import json_output_problem

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
STRATEGIES = ("whole", "remat", "tiled", "spatial")
COLORS = {"whole": (31, 119, 180), "remat": (255, 127, 14), "tiled": (44, 160, 44), "spatial": (214, 39, 40)}


def measure(weights: str | None, size: int, strategy: str, tile_size: int, iterations: int, optimizer: str) -> dict:
    """One row, measured in this process (``child``)."""
    import dataclasses

    import jax
    import jax.numpy as jnp

    from nst_jax import load_weights, memory
    from nst_jax.batching import place_rows
    from nst_jax.config import StyleConfig
    from nst_jax.losses import LossInputs
    from nst_jax.optimize import compile_solver, minimize
    from nst_jax.problem import (
        configure_for,
        initial_image,
        loss_spec_for,
        loss_weights_for,
        prepare_images,
        solver_spec_for,
        targets_for,
    )

    vgg = load_weights(weights)
    config = configure_for(StyleConfig(image_size=size, iterations=iterations, optimizer=optimizer,
                                       tile_size=tile_size if strategy == "tiled" else None), vgg)
    spatial = strategy == "spatial"
    content, styles = prepare_images(EXAMPLES / "content.jpg", [EXAMPLES / "style.jpg"], config)
    inputs = LossInputs(vgg.params, targets_for(vgg, content, styles, config, spatial=spatial),
                        loss_weights_for(config))
    x0 = initial_image(config, content, styles)
    if spatial:
        x0, inputs = place_rows(x0, inputs)
    spec = dataclasses.replace(loss_spec_for(config, spatial=spatial), remat=strategy == "remat")
    solver = solver_spec_for(config)
    compiled = compile_solver(spec, solver)
    x = jnp.asarray(x0)
    state = jax.eval_shape(compiled.init, x, inputs, jnp.float32(solver.rate))
    analysis = compiled.chunk.lower(x, state, inputs, jnp.int32(iterations), capacity=iterations).compile(
    ).memory_analysis()
    xla = (analysis.argument_size_in_bytes + analysis.output_size_in_bytes + analysis.temp_size_in_bytes
           - analysis.alias_size_in_bytes)
    minimize(spec, x0, inputs, spec=solver, iterations=iterations, chunk_size=iterations)  # compiles
    timed = minimize(spec, x0, inputs, spec=solver, iterations=iterations, chunk_size=iterations)
    height, width = content.shape[:2]
    shards = len(jax.devices()) if spatial else 1
    return {
        "size": size, "height": height, "width": width, "pixels": height * width, "strategy": strategy,
        "tile_size": config.tile_size, "devices": shards, "optimizer": optimizer, "iterations": iterations,
        "xla_bytes_per_device": int(xla), "estimate_bytes_per_device": memory.device_bytes(height, width, config,
                                                                                           shards=shards),
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "seconds_per_iteration": timed.elapsed / timed.iterations,
        "evaluations": int(np.sum(timed.evaluations)), "final_loss": float(timed.history.total[-1]),
    }


def run_child(args: argparse.Namespace, size: int, strategy: str) -> dict:
    """``measure`` in a fresh process (forced CPU devices for ``spatial``)."""
    environment = dict(os.environ)
    if strategy == "spatial":
        environment["XLA_FLAGS"] = (environment.get("XLA_FLAGS", "")
                                    + f" --xla_force_host_platform_device_count={args.devices}").strip()
    command = [sys.executable, "-m", "benchmarks.scale", "--child", json.dumps(
        [args.weights, size, strategy, args.tile_size, args.iterations, args.optimizer])]
    completed = subprocess.run(command, capture_output=True, text=True, env=environment)
    if completed.returncode != 0:
        return {"size": size, "strategy": strategy, "error": completed.stderr.strip().splitlines()[-1:]}
    return json.loads(completed.stdout.strip().splitlines()[-1])


def plot(rows: Sequence[dict], path: Path) -> None:
    """Two panels, XLA's memory per device and seconds per iteration against megapixels, one line per strategy."""
    from PIL import Image, ImageDraw

    from nst_jax.files import atomic_path

    width, height, margin = 1000, 420, 60
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    good = [row for row in rows if "error" not in row]
    panels = (("MiB per device (XLA)", lambda row: row["xla_bytes_per_device"] / 2**20),
              ("seconds per iteration", lambda row: row["seconds_per_iteration"]))
    x_max = max(row["pixels"] for row in good) / 1e6
    for index, (title, value) in enumerate(panels):
        left, right = margin + index * width // 2, (index + 1) * width // 2 - 20
        top, bottom = 40, height - margin
        y_max = max(value(row) for row in good) * 1.1
        draw.rectangle((left, top, right, bottom), outline="black")
        draw.text((left, 12), title, fill="black")
        draw.text((right - 80, bottom + 28), "megapixels", fill="black")
        for tick in range(5):
            fraction = tick / 4
            y = bottom - fraction * (bottom - top)
            draw.text((left - 50, y - 6), f"{fraction * y_max:.3g}", fill="black")
            x = left + fraction * (right - left)
            draw.text((x - 10, bottom + 8), f"{fraction * x_max:.2g}", fill="black")
        for number, strategy in enumerate(STRATEGIES):
            points = sorted((row["pixels"] / 1e6, value(row)) for row in good if row["strategy"] == strategy)
            xy = [(left + px / x_max * (right - left), bottom - py / y_max * (bottom - top)) for px, py in points]
            if len(xy) > 1:
                draw.line(xy, fill=COLORS[strategy], width=3)
            for x, y in xy:
                draw.ellipse((x - 4, y - 4, x + 4, y + 4), fill=COLORS[strategy])
            draw.text((left + 10, top + 10 + 14 * number), strategy, fill=COLORS[strategy])
    with atomic_path(path) as temporary:
        canvas.save(temporary, format="PNG")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.scale", description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default=None, help="VGG HDF5 file (default: nst_jax's default path)")
    parser.add_argument("--sizes", default="256,512,1024", help="long sides, comma-separated")
    parser.add_argument("--strategies", default=",".join(STRATEGIES), help=f"some of {', '.join(STRATEGIES)}")
    parser.add_argument("--tile-size", type=int, default=256)
    parser.add_argument("--devices", type=int, default=4, help="devices of the spatial strategy (forced on CPU)")
    parser.add_argument("--iterations", type=int, default=3)
    parser.add_argument("--optimizer", choices=("lbfgs", "adam"), default="lbfgs")
    parser.add_argument("--json", type=Path, default=None, help="write the rows as JSON")
    parser.add_argument("--plot", type=Path, default=None, help="write a PNG of memory and time against pixels")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        print(json.dumps(measure(*json.loads(args.child))))
        return 0
    strategies = [name.strip() for name in args.strategies.split(",")]
    unknown = [name for name in strategies if name not in STRATEGIES]
    problem = (f"unknown strategies: {', '.join(unknown)}" if unknown
               else json_output_problem(args.json, Path(args.weights) if args.weights else None))
    if problem:
        parser.error(problem)
    rows, started = [], time.strftime("%Y-%m-%d %H:%M:%S")
    for size in (int(value) for value in args.sizes.split(",")):
        for strategy in strategies:
            row = run_child(args, size, strategy)
            rows.append(row)
            if "error" in row:
                print(f"{size:5d} {strategy:8s} failed: {row['error']}", flush=True)
                continue
            print(f"{row['height']}x{row['width']:<5d} {strategy:8s} XLA {row['xla_bytes_per_device'] / 2**20:7.0f} "
                  f"MiB/device (estimate {row['estimate_bytes_per_device'] / 2**20:7.0f})  peak RSS "
                  f"{row['peak_rss_bytes'] / 2**20:7.0f} MiB  {row['seconds_per_iteration']:7.2f} s/iteration  "
                  f"{row['evaluations']} evaluations", flush=True)
    if args.json is not None:
        import jax

        from nst_jax.files import write_json

        write_json(args.json, {"started": started, "device": str(jax.devices()[0]), "jax": jax.__version__,
                               "cpu_count": os.cpu_count(), "settings": {key: value for key, value in vars(args).items()
                                                                         if key not in ("json", "plot", "child")},
                               "rows": rows}, allow_nan=True)
    if args.plot is not None and any("error" not in row for row in rows):
        plot(rows, args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
