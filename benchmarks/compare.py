"""``python -m benchmarks.compare``: nst_jax against the PyTorch baseline on identical inputs, in one process.

For every image size and optimizer, both implementations get the same weights, content/style images (sized by
``nst_jax.transfer.prepare_images``) and initial image. Each runs once untimed (the warm-up: JAX compiles,
oneDNN/cuDNN pick their kernels), then ``--repeats`` timed runs alternate between them (JAX first on even
repeats, PyTorch first on odd ones, so a drift in machine load hits both). nst_jax runs through
``nst_jax.transfer.stylize`` exactly as a user calls it.

Every number printed is measured in this run:
  loop s       median wall time of the optimization loop (nst_jax: ``StyleResult.elapsed``; PyTorch: the
               optimizer loop), each repeat in the JSON; ms/iter is it divided by the iterations done
  call s       median wall time of the whole call (targets, loop, final losses, conversion to NumPy)
  warm-up s    wall time of the untimed first call
  compile s    JAX tracing + lowering + XLA compilation during the warm-up, from ``jax.monitoring`` events
  evals        loss-and-gradient evaluations the optimizer counted over all iterations (see below)
  peak RSS MB  the process's peak resident memory during a timed run (the kernel's VmHWM, reset before each
               run), with the growth over the RSS at the run's start in parentheses; both implementations
               live in this one process, so the peak includes the other's resident memory
  device MB    peak device memory (GPU only): torch.cuda.max_memory_allocated (reset per run), JAX's
               ``peak_bytes_in_use`` (since the process started; JAX cannot reset it)
  losses       the final total, content and style losses each implementation reports at its final image
  JAX/torch    nst_jax's ms/iter over PyTorch's for the same optimizer, size and loss

Evaluations: jaxopt's counter includes one evaluation per iteration that XLA drops as dead code (its real
cost is about 1.1 per iteration); optax's counts line-search steps, not the extra forward pass that records
the loss terms; PyTorch's counts closure calls, the one before the first iteration included. L-BFGS
implementations take different steps, so compare them by the loss they reach as well as by time.

JSON (``--json PATH``): ``{"software": "nst_jax", "label", "weights": {path, pretrained, source, sha256},
"settings": {...}, "environment": {versions, XLA_FLAGS, cpu_count, loadavg_start, loadavg_end}, "rows": [...],
"ratios": [...]}``; each row holds ``implementation, backend, device, size [h, w], optimizer, iterations,
evaluations, initial_evaluations, loop_seconds [per repeat], loop_seconds_median, ms_per_iteration,
flop_per_evaluation (the counted floor), gflop_per_second, call_seconds [per repeat], call_seconds_median,
warmup_seconds, compile_seconds, compiles_during_timed_runs,
peak_rss_mb, rss_growth_mb, device_peak_mb, final_losses {total, content, style, tv}, loss_history [total
per iteration, last repeat]``; each ratio ``size, optimizer, backend, jax_ms_per_iteration,
torch_ms_per_iteration, ratio``. Numbers not measured on this machine (compile time of PyTorch, device
memory on a CPU) are ``null``.
"""

from __future__ import annotations

import os

# JAX preallocates most of a GPU's memory by default, which would starve PyTorch in the same process.
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

import argparse  # noqa: E402
import contextlib  # noqa: E402
import dataclasses  # noqa: E402
import functools  # noqa: E402
import io  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from collections.abc import Callable, Iterator, Sequence  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import jax  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from benchmarks import torch_baseline  # noqa: E402
from benchmarks.report import json_output_problem  # noqa: E402
from nst_jax.config import StyleConfig  # noqa: E402
from nst_jax.files import write_json  # noqa: E402
from nst_jax.lbfgs import LINE_SEARCHES  # noqa: E402
from nst_jax.optimize import LBFGS_BACKENDS, forget_compilations  # noqa: E402
from nst_jax.problem import initial_image, prepare_images  # noqa: E402
from nst_jax.sweep import stylize_sweep  # noqa: E402
from nst_jax.transfer import stylize  # noqa: E402
from nst_jax.vgg import LAYER_NAMES, PRECISIONS, conv_param_shapes  # noqa: E402
from nst_jax.weights import RandomWeightsWarning, VGGWeights, load_weights  # noqa: E402

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
DEFAULT_CONTENT = EXAMPLES / "content.jpg"
DEFAULT_STYLE = EXAMPLES / "style.jpg"
RANDOM_LABEL = "RANDOM WEIGHTS (random-init VGG19): timings are real, the images are not style transfer"
COMPILE_EVENTS = (
    "/jax/core/compile/jaxpr_trace_duration",
    "/jax/core/compile/jaxpr_to_mlir_module_duration",
    "/jax/core/compile/backend_compile_duration",
)
MB = 1024 * 1024


def build_parser() -> argparse.ArgumentParser:
    """The harness's argument parser."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.compare",
        description="Time nst_jax against the same algorithm in PyTorch, on identical inputs, in one process.",
    )
    parser.add_argument("--size", type=int, nargs="+", default=[128], help="longest image side(s) in pixels")
    parser.add_argument("--iterations", type=int, default=20, help="optimizer iterations per run (default 20)")
    parser.add_argument("--optimizer", choices=("lbfgs", "adam", "both"), default="both")
    parser.add_argument("--lbfgs-backend", choices=(*LBFGS_BACKENDS, "all"), default="all",
                        help="nst_jax's L-BFGS implementations to run (default: all)")
    parser.add_argument("--line-search", choices=(*LINE_SEARCHES, "all"), default="all",
                        help="line searches of the nst_jax backend (default: all; the others search by zoom)")
    parser.add_argument("--precision", choices=(*PRECISIONS, "all"), default="default",
                        help="nst_jax's convolution arithmetic (default: JAX's default; all: each in turn)")
    parser.add_argument(
        "--target-iterations", type=int, default=None, metavar="N",
        help="instead: time to a target loss, the one PyTorch's strong-Wolfe L-BFGS reaches in N iterations, for "
        "every nst_jax L-BFGS and for PyTorch's without line search (each capped at 3N iterations)",
    )
    parser.add_argument("--content", type=Path, default=DEFAULT_CONTENT, help="content image (default: examples/)")
    parser.add_argument("--style", type=Path, default=DEFAULT_STYLE, help="style image (default: examples/)")
    parser.add_argument(
        "--weights", type=Path, default=None,
        help="VGG19 HDF5 file (default: a random VGG19 written to a temporary file; results labelled so)",
    )
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per implementation (default 3)")
    parser.add_argument("--init", choices=("content", "noise"), default="content", help="initial image")
    parser.add_argument("--loss-form", choices=("normalized", "paper"), default=StyleConfig.loss_form)
    parser.add_argument("--chunk-size", type=int, default=StyleConfig.chunk_size, help="nst_jax chunk size")
    parser.add_argument("--history-size", type=int, default=StyleConfig.history_size,
                        help=f"L-BFGS memory, both libraries (default {StyleConfig.history_size})")
    parser.add_argument(
        "--batch", type=int, default=None, metavar="N",
        help="instead: one batched nst_jax sweep of N style weights vs N sequential nst_jax and PyTorch runs",
    )
    parser.add_argument("--json", type=Path, default=None, metavar="PATH", help="also write the numbers as JSON")
    return parser


# ---------------------------------------------------------------------------------------------- measurement


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark (VmHWM) of this process; False where the kernel does not allow it."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _proc_status_kb(field: str) -> int | None:
    """A ``kB`` field of /proc/self/status (None where there is no /proc)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def current_rss_mb() -> float | None:
    """This process's resident memory now, in MiB."""
    kb = _proc_status_kb("VmRSS")
    return None if kb is None else kb / 1024


def peak_rss_mb() -> float | None:
    """This process's peak resident memory since the last reset, in MiB."""
    kb = _proc_status_kb("VmHWM")
    return None if kb is None else kb / 1024


def load_average() -> list[float] | None:
    """The 1, 5 and 15 minute load averages (other work on the machine shows up here)."""
    try:
        return [float(v) for v in Path("/proc/loadavg").read_text().split()[:3]]
    except OSError:
        return None


@contextlib.contextmanager
def compile_timer() -> Iterator[list[float]]:
    """Collect the durations of JAX's tracing, lowering and compilation events while the block runs."""
    durations: list[float] = []

    def listener(event: str, duration: float, **_: Any) -> None:
        if event in COMPILE_EVENTS:
            durations.append(duration)

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        yield durations
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)


def jax_device_name() -> str:
    """JAX's default device, e.g. ``cpu (jax, 2 cores)`` or the GPU's kind."""
    device = jax.devices()[0]
    if device.platform == "cpu":
        return f"cpu (jax, {os.cpu_count()} cores)"
    return f"{device.platform} ({device.device_kind})"


def jax_device_peak_mb() -> float | None:
    """Peak bytes JAX has had in use on its default device since the process started (None on the CPU)."""
    stats = jax.devices()[0].memory_stats() or {}
    peak = stats.get("peak_bytes_in_use")
    return None if peak is None else peak / MB


@dataclasses.dataclass
class Run:
    """One call of an implementation: what it reported and what it cost."""

    loop_seconds: float
    call_seconds: float
    iterations: int
    evaluations: int
    initial_evaluations: int | None
    final_losses: dict[str, float]
    loss_history: list[float]
    image: np.ndarray
    peak_rss_mb: float | None
    rss_growth_mb: float | None
    device_peak_mb: float | None
    compiles: int
    compile_seconds: float


@dataclasses.dataclass
class Row:
    """An implementation at one setting: its warm-up and timed runs."""

    implementation: str
    backend: str
    device: str
    size: tuple[int, int]
    optimizer: str
    warmup: Run
    compile_seconds: float | None
    runs: list[Run] = dataclasses.field(default_factory=list)

    @property
    def loop_median(self) -> float:
        """Median loop wall time over the timed runs."""
        return statistics.median(r.loop_seconds for r in self.runs)

    @property
    def ms_per_iteration(self) -> float:
        """Median loop time per iteration, in milliseconds."""
        return 1000.0 * self.loop_median / self.runs[-1].iterations

    @property
    def gflop_per_second(self) -> float:
        """Counted VGG FLOPs (``evaluation_flops``) of the timed evaluations over the median loop time, in GFLOP/s."""
        return evaluation_flops(self.size) * self.runs[-1].evaluations / self.loop_median / 1e9

    def to_dict(self) -> dict[str, Any]:
        """The row as JSON-friendly values."""
        last = self.runs[-1]
        peaks = [r.peak_rss_mb for r in self.runs if r.peak_rss_mb is not None]
        growths = [r.rss_growth_mb for r in self.runs if r.rss_growth_mb is not None]
        device_peaks = [r.device_peak_mb for r in self.runs if r.device_peak_mb is not None]
        return {
            "implementation": self.implementation,
            "backend": self.backend,
            "device": self.device,
            "size": list(self.size),
            "optimizer": self.optimizer,
            "iterations": last.iterations,
            "evaluations": last.evaluations,
            "initial_evaluations": last.initial_evaluations,
            "loop_seconds": [r.loop_seconds for r in self.runs],
            "loop_seconds_median": self.loop_median,
            "ms_per_iteration": self.ms_per_iteration,
            "flop_per_evaluation": evaluation_flops(self.size),
            "gflop_per_second": self.gflop_per_second,
            "call_seconds": [r.call_seconds for r in self.runs],
            "call_seconds_median": statistics.median(r.call_seconds for r in self.runs),
            "warmup_seconds": self.warmup.call_seconds,
            "compile_seconds": self.compile_seconds,
            "compiles_during_timed_runs": sum(r.compiles for r in self.runs),
            "peak_rss_mb": max(peaks) if peaks else None,
            "rss_growth_mb": max(growths) if growths else None,
            "device_peak_mb": max(device_peaks) if device_peaks else None,
            "final_losses": last.final_losses,
            "loss_history": last.loss_history,
        }


def evaluation_flops(size: tuple[int, int], layers: Sequence[str] = StyleConfig().content_layers
                     + StyleConfig().style_layers) -> int:
    """The floor of one evaluation: multiply-adds x 2 of VGG19's convolutions up to the deepest of ``layers`` on a
    (height, width) image, forward and input gradient (the same count again); the Gram matrices and losses, under
    1 %, are not counted (benchmarks/NOTES.md, "The floor")."""
    deepest = max(LAYER_NAMES.index(layer) for layer in layers)
    shapes = conv_param_shapes()
    height, width, flops = size[0], size[1], 0
    for name in LAYER_NAMES[: deepest + 1]:
        if name.startswith("pool"):
            height, width = height // 2, width // 2
        elif name.startswith("conv"):
            kernel = shapes[name]["kernel"]
            flops += 2 * height * width * kernel[0] * kernel[1] * kernel[2] * kernel[3]
    return 2 * flops


def measured(call: Callable[[], tuple[Any, float]], device_peak: Callable[[], float | None]) -> tuple[Any, dict]:
    """Run ``call`` (returning its result and loop seconds) and measure wall time, RSS and compiles."""
    resettable = reset_peak_rss()
    start_rss = current_rss_mb()
    with compile_timer() as compiles:
        start = time.perf_counter()
        result, loop_seconds = call()
        call_seconds = time.perf_counter() - start
    peak = peak_rss_mb() if resettable else None
    growth = None if peak is None or start_rss is None else max(0.0, peak - start_rss)
    costs = dict(
        loop_seconds=loop_seconds, call_seconds=call_seconds, peak_rss_mb=peak, rss_growth_mb=growth,
        device_peak_mb=device_peak(), compiles=len(compiles), compile_seconds=float(sum(compiles)),
    )
    return result, costs


def run_jax(weights: VGGWeights, content: np.ndarray, styles: list[np.ndarray], config: StyleConfig) -> Run:
    """One ``nst_jax.transfer.stylize`` call, measured."""
    result, costs = measured(
        lambda: (lambda r: (r, r.elapsed))(stylize(content, styles, vgg=weights, config=config)),
        jax_device_peak_mb,
    )
    return Run(
        iterations=result.iterations,
        evaluations=int(np.sum(result.evaluations)),
        initial_evaluations=None,
        final_losses={k: float(v) for k, v in result.final_losses._asdict().items()},
        loss_history=[float(v) for v in result.losses.total],
        image=result.image,
        **costs,
    )


def run_torch(
    model: torch.nn.Module, content: np.ndarray, styles: list[np.ndarray], init: np.ndarray, config: StyleConfig
) -> Run:
    """One PyTorch baseline call, measured."""
    device = next(model.parameters()).device
    torch_baseline.reset_torch_peak_memory(device)
    result, costs = measured(
        lambda: (lambda r: (r, r.elapsed))(torch_baseline.stylize_torch(model, content, styles, init, config=config)),
        lambda: (lambda b: None if b is None else b / MB)(torch_baseline.torch_peak_memory(device)),
    )
    return Run(
        iterations=result.iterations,
        evaluations=int(np.sum(result.evaluations)) + result.initial_evaluations,
        initial_evaluations=result.initial_evaluations,
        final_losses={k: float(v) for k, v in result.final_losses._asdict().items()},
        loss_history=[float(v) for v in result.losses.total],
        image=result.image,
        **costs,
    )


# ---------------------------------------------------------------------------------------------------- setup


def random_weights_file(directory: Path) -> Path:
    """Write a random-init VGG19 (seed 0) with the converter's CLI; its chatter is kept off the output."""
    from convert_weights.cli import main as convert_main

    path = directory / "vgg19_random.h5"
    captured = io.StringIO()
    with contextlib.redirect_stdout(captured), contextlib.redirect_stderr(captured):
        code = convert_main(["--random", "--seed", "0", "-o", str(path)])
    if code != 0:
        raise RuntimeError(f"could not write random weights:\n{captured.getvalue()}")
    return path


def load_quietly(path: Path) -> VGGWeights:
    """Load weights without the random-weights warning (the harness labels its output instead)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RandomWeightsWarning)
        return load_weights(path)


@dataclasses.dataclass(frozen=True)
class Variant:
    """One nst_jax optimizer to run: the optimizer, its L-BFGS backend and line search."""

    optimizer: str
    backend: str = LBFGS_BACKENDS[0]
    line_search: str = LINE_SEARCHES[0]
    precision: str = PRECISIONS[0]

    @property
    def name(self) -> str:
        """What runs it: ``optax.adam``, ``optax.lbfgs``, ``jaxopt.LBFGS``, ``nst_jax.lbfgs[none]`` ..., with
        ``@bfloat16`` (etc.) for a precision other than the default."""
        if self.optimizer == "adam":
            name = "optax.adam"
        elif self.backend == "nst_jax":
            name = f"nst_jax.lbfgs[{self.line_search}]"
        else:
            name = {"jaxopt": "jaxopt.LBFGS", "optax": "optax.lbfgs"}[self.backend]
        return name if self.precision == PRECISIONS[0] else f"{name}@{self.precision}"

    def config(self, base: StyleConfig) -> StyleConfig:
        """``base`` running this variant."""
        return base.replace(optimizer=self.optimizer, lbfgs_backend=self.backend, line_search=self.line_search,
                            precision=self.precision)


def settings(args: argparse.Namespace) -> list[Variant]:
    """The nst_jax optimizers to run, L-BFGS's first."""
    optimizers = ("lbfgs", "adam") if args.optimizer == "both" else (args.optimizer,)
    backends = LBFGS_BACKENDS if args.lbfgs_backend == "all" else (args.lbfgs_backend,)
    searches = LINE_SEARCHES if args.line_search == "all" else (args.line_search,)
    precisions = PRECISIONS if getattr(args, "precision", PRECISIONS[0]) == "all" else (args.precision,)
    variants = []
    for precision in precisions:
        for optimizer in optimizers:
            if optimizer == "adam":
                variants.append(Variant("adam", precision=precision))
                continue
            for backend in backends:
                variants += [Variant("lbfgs", backend, search, precision)
                             for search in (searches if backend == "nst_jax" else (LINE_SEARCHES[0],))]
    return variants


TORCH_BACKENDS = {"adam": "torch.optim.Adam", "lbfgs": "torch.optim.LBFGS"}


def sized_inputs(
    size: int, args: argparse.Namespace
) -> tuple[StyleConfig, np.ndarray, list[np.ndarray], np.ndarray]:
    """The base config at ``size`` and the content, styles and initial image both implementations get."""
    base = StyleConfig(
        image_size=size, iterations=args.iterations, init=args.init, loss_form=args.loss_form,
        chunk_size=args.chunk_size, history_size=args.history_size,
    )
    content, styles = prepare_images(args.content, args.style, base)
    return base, content, styles, initial_image(base, content, styles)


def benchmark_size(
    size: int, args: argparse.Namespace, weights: VGGWeights, model: torch.nn.Module, log: Callable[[str], None]
) -> list[Row]:
    """Warm up, then time both implementations at one image size, optimizer by optimizer."""
    base, content, styles, init = sized_inputs(size, args)
    shape = (int(content.shape[0]), int(content.shape[1]))
    torch_device = torch_baseline.device_name(next(model.parameters()).device)
    rows: list[Row] = []
    for optimizer in dict.fromkeys(variant.optimizer for variant in settings(args)):
        configs = {variant.name: variant.config(base) for variant in settings(args) if variant.optimizer == optimizer}
        runners: list[tuple[Row, Callable[[], Run]]] = []
        for name, config in configs.items():
            run = functools.partial(run_jax, weights, content, styles, config)
            log(f"{shape[0]}x{shape[1]} {optimizer} nst_jax[{name}]: warm-up (compiles)")
            forget_compilations()  # a cold compilation, whatever this process compiled before
            warm = run()
            row = Row("nst_jax", name, jax_device_name(), shape, optimizer, warm, warm.compile_seconds)
            runners.append((row, run))
        if len(runners) > 1:  # each cold warm-up cleared JAX's caches: compile the others again, untimed
            for _, rewarm in runners[:-1]:
                rewarm()
        config = base.replace(optimizer=optimizer)
        run = functools.partial(run_torch, model, content, styles, init, config)
        log(f"{shape[0]}x{shape[1]} {optimizer} torch[{TORCH_BACKENDS[optimizer]}]: warm-up")
        runners.append((Row("torch", TORCH_BACKENDS[optimizer], torch_device, shape, optimizer, run(), None), run))
        for repeat in range(args.repeats):
            for row, run in runners if repeat % 2 == 0 else runners[::-1]:
                row.runs.append(run())
                seconds = row.runs[-1].loop_seconds
                log(f"  repeat {repeat + 1}: {row.implementation}[{row.backend}] loop {seconds:.3f} s")
        rows += [row for row, _ in runners]
    return rows


def ratios(rows: Sequence[Row]) -> list[dict[str, Any]]:
    """nst_jax's ms/iter over PyTorch's, for each nst_jax row that has a PyTorch row at its size and optimizer."""
    torch_rows = {(r.size, r.optimizer): r for r in rows if r.implementation == "torch"}
    out = []
    for row in rows:
        reference = torch_rows.get((row.size, row.optimizer))
        if row.implementation == "nst_jax" and reference is not None:
            out.append({
                "size": list(row.size), "optimizer": row.optimizer, "backend": row.backend,
                "jax_ms_per_iteration": row.ms_per_iteration, "torch_ms_per_iteration": reference.ms_per_iteration,
                "ratio": row.ms_per_iteration / reference.ms_per_iteration,
            })
    return out


# ---------------------------------------------------------------------------------------------------- batch


def sweep_weights(config: StyleConfig, count: int) -> list[float]:
    """``count`` style weights spread over two decades on each side of the config's (a ratio sweep)."""
    if count == 1:
        return [config.resolved_style_weight]
    return [config.resolved_style_weight * 10.0 ** (-2.0 + 4.0 * i / (count - 1)) for i in range(count)]


@dataclasses.dataclass
class BatchRow:
    """One way of producing the N images of a sweep: its wall times per repeat and final losses."""

    implementation: str
    device: str
    size: tuple[int, int]
    optimizer: str
    count: int
    warmup_seconds: float
    reference: str | None = None  # the PyTorch row this one is compared with
    seconds: list[float] = dataclasses.field(default_factory=list)
    final_totals: list[float] = dataclasses.field(default_factory=list)

    @property
    def median(self) -> float:
        """Median wall seconds for all N images."""
        return statistics.median(self.seconds)

    def to_dict(self) -> dict[str, Any]:
        """The row as JSON-friendly values."""
        return {
            "implementation": self.implementation, "device": self.device, "size": list(self.size),
            "optimizer": self.optimizer, "images": self.count, "warmup_seconds": self.warmup_seconds,
            "seconds": self.seconds, "seconds_median": self.median, "seconds_per_image": self.median / self.count,
            "final_totals": self.final_totals,
        }


def _timed(call: Callable[[], list[float]]) -> tuple[float, list[float]]:
    """Wall seconds of ``call`` and the final totals it returns."""
    start = time.perf_counter()
    totals = call()
    return time.perf_counter() - start, totals


def torch_method(config: StyleConfig) -> str:
    """The PyTorch optimizer a config runs in the baseline: Adam, L-BFGS with strong Wolfe, or with none."""
    if config.optimizer == "adam":
        return TORCH_BACKENDS["adam"]
    return TORCH_BACKENDS["lbfgs"] + ("[none]" if config.line_search == "none" else "[strong_wolfe]")


def benchmark_batch(
    size: int, args: argparse.Namespace, weights: VGGWeights, model: torch.nn.Module, log: Callable[[str], None]
) -> list[BatchRow]:
    """One batched sweep of ``args.batch`` style weights vs the same runs one after another, both libraries (PyTorch
    once per optimizer it runs: Adam, L-BFGS with strong Wolfe, L-BFGS without line search)."""
    base, content, styles, init = sized_inputs(size, args)
    shape = (int(content.shape[0]), int(content.shape[1]))
    calls: dict[str, tuple[str, str, str | None, Callable[[], list[float]]]] = {}
    for variant in settings(args):
        config = variant.config(base)
        style_weights = sweep_weights(config, args.batch)
        configs = [config.replace(style_weight=w) for w in style_weights]
        reference = f"torch sequential [{torch_method(config)}]"
        calls[f"nst_jax batched [{variant.name}]"] = (
            jax_device_name(), variant.optimizer, reference,
            lambda s=style_weights, c=config: [
                r.final_losses.total for r in stylize_sweep(content, styles, style_weights=s, config=c, vgg=weights)
            ],
        )
        calls[f"nst_jax sequential [{variant.name}]"] = (
            jax_device_name(), variant.optimizer, None,
            lambda cs=configs: [stylize(content, styles, vgg=weights, config=c).final_losses.total for c in cs],
        )
        calls.setdefault(reference, (
            torch_baseline.device_name(next(model.parameters()).device), variant.optimizer, None,
            lambda cs=configs: [
                torch_baseline.stylize_torch(model, content, styles, init, config=c).final_losses.total for c in cs
            ],
        ))
    runners = []
    for name, (device, optimizer, reference, call) in calls.items():
        log(f"{shape[0]}x{shape[1]} {optimizer} {name} x{args.batch}: warm-up")
        warm, _ = _timed(call)
        runners.append((BatchRow(name, device, shape, optimizer, args.batch, warm, reference), call))
    for repeat in range(args.repeats):
        for row, call in runners if repeat % 2 == 0 else runners[::-1]:
            seconds, totals = _timed(call)
            row.seconds.append(seconds)
            row.final_totals = totals
            log(f"  repeat {repeat + 1}: {row.implementation} {seconds:.3f} s")
    return [row for row, _ in runners]


def batch_ratios(rows: Sequence[BatchRow]) -> list[dict[str, Any]]:
    """Batched nst_jax time over sequential nst_jax and over sequential PyTorch, per size and optimizer."""
    out = []
    for row in rows:
        if not row.implementation.startswith("nst_jax batched"):
            continue
        peers = {r.implementation: r for r in rows if r.size == row.size}
        sequential = peers[row.implementation.replace("nst_jax batched", "nst_jax sequential")]
        baseline = peers[row.reference]
        out.append({
            "size": list(row.size), "optimizer": row.optimizer, "images": row.count,
            "implementation": row.implementation, "batched_seconds": row.median,
            "jax_sequential_seconds": sequential.median, "torch_sequential_seconds": baseline.median,
            "batched_over_jax_sequential": row.median / sequential.median,
            "batched_over_torch_sequential": row.median / baseline.median,
        })
    return out


BATCH_COLUMNS = ("implementation", "device", "size", "optimizer", "images", "wall s", "s/image", "warm-up s",
                 "final totals")


def format_batch_table(rows: Sequence[BatchRow]) -> str:
    """The batch comparison as a plain-text table."""
    cells = [list(BATCH_COLUMNS)] + [
        [
            row.implementation, row.device, f"{row.size[0]}x{row.size[1]}", row.optimizer, str(row.count),
            f"{row.median:.3f}", f"{row.median / row.count:.3f}", f"{row.warmup_seconds:.2f}",
            " ".join(f"{t:.4g}" for t in row.final_totals),
        ]
        for row in rows
    ]
    return _align(cells)


# --------------------------------------------------------------------------------------------------- output

COLUMNS = (
    "implementation", "backend", "device", "size", "optimizer", "iters", "evals", "loop s", "ms/iter",
    "GFLOP/s", "call s", "warm-up s", "compile s", "peak RSS MB (+run)", "device MB", "final total", "content",
    "style", "JAX/torch",
)


def _fmt(value: float | None, spec: str) -> str:
    """A number formatted by ``spec``, or ``n/a`` where nothing was measured."""
    return "n/a" if value is None else format(value, spec)


def table_rows(rows: Sequence[Row], ratio_list: Sequence[dict[str, Any]]) -> list[list[str]]:
    """The table's cells, one list per row."""
    by_row = {(tuple(r["size"]), r["optimizer"], r["backend"]): r["ratio"] for r in ratio_list}
    cells = []
    for row in rows:
        data = row.to_dict()
        losses = data["final_losses"]
        rss = "n/a" if data["peak_rss_mb"] is None else f"{data['peak_rss_mb']:.0f} (+{data['rss_growth_mb']:.0f})"
        ratio = by_row.get((row.size, row.optimizer, row.backend)) if row.implementation == "nst_jax" else None
        cells.append([
            row.implementation, row.backend, row.device, f"{row.size[0]}x{row.size[1]}", row.optimizer,
            str(data["iterations"]), str(data["evaluations"]), f"{data['loop_seconds_median']:.3f}",
            f"{data['ms_per_iteration']:.1f}", f"{data['gflop_per_second']:.1f}", f"{data['call_seconds_median']:.3f}",
            f"{data['warmup_seconds']:.2f}",
            _fmt(data["compile_seconds"], ".2f"), rss, _fmt(data["device_peak_mb"], ".0f"),
            f"{losses['total']:.5g}", f"{losses['content']:.5g}", f"{losses['style']:.5g}",
            "" if ratio is None else f"{ratio:.3f}",
        ])
    return cells


def format_table(rows: Sequence[Row], ratio_list: Sequence[dict[str, Any]]) -> str:
    """A plain-text table with aligned columns."""
    return _align([list(COLUMNS)] + table_rows(rows, ratio_list))


def _align(cells: list[list[str]]) -> str:
    """Rows of cells as aligned columns, the first row a header."""
    widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def environment() -> dict[str, Any]:
    """Versions and machine facts that the numbers depend on."""
    import jaxlib

    return {
        "python": platform.python_version(),
        "jax": jax.__version__,
        "jaxlib": jaxlib.__version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "XLA_FLAGS": os.environ.get("XLA_FLAGS", ""),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "machine": platform.machine(),
        "processor": platform.processor(),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Run the comparison; returns the process exit code."""
    args = build_parser().parse_args(argv)
    counts = [args.iterations, args.repeats, *args.size] + ([args.batch] if args.batch is not None else [])
    if any(value <= 0 for value in counts):
        print("benchmarks.compare: error: --size, --iterations, --repeats and --batch must be positive",
              file=sys.stderr)
        return 2
    problem = json_output_problem(args.json, args.weights)
    if problem:
        print(f"benchmarks.compare: error: {problem}", file=sys.stderr)
        return 2
    log = lambda message: print(message, file=sys.stderr, flush=True)  # noqa: E731
    torch_baseline.configure_threads()
    loadavg_start = load_average()
    with tempfile.TemporaryDirectory() as scratch:
        path = args.weights if args.weights is not None else random_weights_file(Path(scratch))
        weights = load_quietly(path)
        label = "" if weights.pretrained else RANDOM_LABEL
        model = torch_baseline.load_torch_vgg(weights, StyleConfig.pooling, torch_baseline.default_device())
        if args.batch is not None:
            return report_batch(args, weights, model, log, loadavg_start)
        if args.target_iterations is not None:
            return report_target(args, weights, model, log, loadavg_start)
        rows = [row for size in args.size for row in benchmark_size(size, args, weights, model, log)]
    ratio_list = ratios(rows)
    header = [
        label or f"weights: {weights.info.source} (sha256 {weights.checksum[:12]})",
        f"{args.iterations} iterations, init {args.init}, loss form {args.loss_form}, median of {args.repeats} "
        f"timed runs after one warm-up each, chunk size {args.chunk_size}",
    ]
    print("\n".join(header))
    print(format_table(rows, ratio_list))
    for ratio in ratio_list:
        print(
            f"JAX/torch time per iteration, {ratio['size'][0]}x{ratio['size'][1]} {ratio['optimizer']} "
            f"[{ratio['backend']}]: {ratio['ratio']:.3f} ({ratio['jax_ms_per_iteration']:.1f} / "
            f"{ratio['torch_ms_per_iteration']:.1f} ms)"
        )
    if any(row.to_dict()["compiles_during_timed_runs"] for row in rows):
        print("WARNING: JAX compiled during timed runs; those timings include compilation")
    if label:
        print(label)
    if args.json is not None:
        report = {
            "label": label or "pretrained weights",
            "weights": {
                "path": str(args.weights) if args.weights is not None else None,
                "pretrained": weights.pretrained,
                "source": weights.info.source,
                "sha256": weights.checksum,
            },
            "settings": {
                "sizes": args.size, "iterations": args.iterations, "optimizer": args.optimizer,
                "lbfgs_backend": args.lbfgs_backend, "repeats": args.repeats, "init": args.init,
                "loss_form": args.loss_form, "chunk_size": args.chunk_size,
                "content": str(args.content), "style": str(args.style),
            },
            "environment": environment() | {"loadavg_start": loadavg_start, "loadavg_end": load_average()},
            "rows": [row.to_dict() for row in rows],
            "ratios": ratio_list,
        }
        write_json(args.json, report, allow_nan=True)
    return 0


def run_record(args: argparse.Namespace, weights: VGGWeights, label: str, loadavg_start: Any) -> dict[str, Any]:
    """What every JSON report of the batch and time-to-target modes starts with: label, weights, settings, machine."""
    return {
        "label": label or "pretrained weights",
        "weights": {"pretrained": weights.pretrained, "source": weights.info.source, "sha256": weights.checksum},
        "settings": vars(args) | {"content": str(args.content), "style": str(args.style),
                                  "weights": None if args.weights is None else str(args.weights),
                                  "json": str(args.json)},
        "environment": environment() | {"loadavg_start": loadavg_start, "loadavg_end": load_average()},
    }


def report_batch(
    args: argparse.Namespace, weights: VGGWeights, model: torch.nn.Module, log: Callable[[str], None],
    loadavg_start: list[float] | None,
) -> int:
    """Run and print the ``--batch`` comparison (and write its JSON); returns the exit code."""
    rows = [row for size in args.size for row in benchmark_batch(size, args, weights, model, log)]
    ratio_list = batch_ratios(rows)
    label = "" if weights.pretrained else RANDOM_LABEL
    print(label or f"weights: {weights.info.source} (sha256 {weights.checksum[:12]})")
    print(
        f"{args.batch} style weights (two decades each side of the default), {args.iterations} iterations each, "
        f"init {args.init}; wall time for all {args.batch} images, median of {args.repeats} after one warm-up"
    )
    print(format_batch_table(rows))
    for ratio in ratio_list:
        print(
            f"batched/sequential, {ratio['size'][0]}x{ratio['size'][1]} {ratio['implementation']} N={ratio['images']}: "
            f"{ratio['batched_over_jax_sequential']:.3f} vs nst_jax, {ratio['batched_over_torch_sequential']:.3f} "
            "vs torch"
        )
    if label:
        print(label)
    if args.json is not None:
        report = run_record(args, weights, label, loadavg_start) | {
            "batch_rows": [row.to_dict() for row in rows], "batch_ratios": ratio_list,
        }
        write_json(args.json, report, allow_nan=True)
    return 0


# ----------------------------------------------------------------------------------------------- time to target


@dataclasses.dataclass
class TargetRow:
    """How long one L-BFGS took to reach the target loss (None where it did not within ``cap`` iterations)."""

    implementation: str
    method: str
    device: str
    size: tuple[int, int]
    target: float
    cap: int
    iterations: int | None
    evaluations: int | None
    seconds: float | None
    final_loss: float

    def to_dict(self) -> dict[str, Any]:
        """The row as JSON-friendly values."""
        return dataclasses.asdict(self) | {"size": list(self.size)}


def iterations_to(losses: Sequence[float], target: float) -> int | None:
    """How many iterations the run whose per-iteration ``losses`` these are took to reach ``target`` (or None)."""
    reached = np.flatnonzero(np.asarray(losses, np.float64) <= target)
    return int(reached[0]) + 1 if reached.size else None


def benchmark_target(
    size: int, args: argparse.Namespace, weights: VGGWeights, model: torch.nn.Module, log: Callable[[str], None]
) -> list[TargetRow]:
    """Time to the loss PyTorch's strong-Wolfe L-BFGS reaches in ``args.target_iterations`` iterations.

    Each nst_jax L-BFGS (and PyTorch's without line search) runs up to 3N iterations to find when it first reaches
    the target; then a run of exactly that many iterations is timed (after a compile at that length), so the
    seconds are a real run's loop time. Evaluations: the loss-and-gradient evaluations each counts per iteration
    (line-search trials; PyTorch's include its initial one).
    """
    base, content, styles, init = sized_inputs(size, args)
    shape = (int(content.shape[0]), int(content.shape[1]))
    n, cap = args.target_iterations, 3 * args.target_iterations
    lbfgs = base.replace(optimizer="lbfgs", chunk_size=min(base.chunk_size, n))
    torch_device = torch_baseline.device_name(next(model.parameters()).device)
    log(f"{shape[0]}x{shape[1]}: the target, PyTorch strong-Wolfe L-BFGS x{n}")
    reference = torch_baseline.stylize_torch(model, content, styles, init, config=lbfgs.replace(iterations=n))
    target = float(reference.losses.total[-1])
    rows = [TargetRow("torch", torch_method(lbfgs), torch_device, shape, target, n, n,
                      int(reference.evaluations.sum()) + reference.initial_evaluations, reference.elapsed, target)]

    def measure(run: Callable[[int], tuple[np.ndarray, np.ndarray, int, float]], extra: int) -> tuple[Any, ...]:
        losses, evaluations, initial, _ = run(cap)
        k = iterations_to(losses, target)
        if k is None:
            return None, None, None, float(losses[-1])
        run(k + extra)  # compile at this length (nst_jax), warm caches (torch)
        seconds = run(k + extra)[3]
        return k, int(evaluations[:k].sum()) + initial, seconds, float(losses[-1])

    for variant in settings(args):
        if variant.optimizer != "lbfgs":
            continue
        config = variant.config(lbfgs)

        def nst_jax(iterations: int, config: StyleConfig = config) -> tuple[np.ndarray, np.ndarray, int, float]:
            result = stylize(content, styles, vgg=weights, config=config.replace(iterations=iterations))
            return np.asarray(result.losses.total), np.asarray(result.evaluations), 0, result.elapsed

        log(f"{shape[0]}x{shape[1]}: nst_jax[{variant.name}] to {target:.4g}, at most {cap} iterations")
        rows.append(TargetRow("nst_jax", variant.name, jax_device_name(), shape, target, cap, *measure(nst_jax, 0)))
    none = lbfgs.replace(line_search="none", lbfgs_backend="nst_jax")

    def torch_none(iterations: int) -> tuple[np.ndarray, np.ndarray, int, float]:
        result = torch_baseline.stylize_torch(model, content, styles, init, config=none.replace(iterations=iterations))
        return np.asarray(result.losses.total), np.asarray(result.evaluations), result.initial_evaluations, \
            result.elapsed

    log(f"{shape[0]}x{shape[1]}: PyTorch L-BFGS without line search to {target:.4g}, at most {cap} iterations")
    # +1: without a line search torch does not evaluate after its last step, so k+1 steps evaluate the k-th.
    rows.append(TargetRow("torch", torch_method(none), torch_device, shape, target, cap, *measure(torch_none, 1)))
    return rows


TARGET_COLUMNS = ("implementation", "method", "device", "size", "target", "iterations", "evaluations", "seconds",
                  "loss at the cap")


def format_target_table(rows: Sequence[TargetRow]) -> str:
    """The time-to-target rows as an aligned text table."""
    body = [
        (row.implementation, row.method, row.device, f"{row.size[0]}x{row.size[1]}", f"{row.target:.4g}",
         _fmt(row.iterations, "d") if row.iterations is not None else f"> {row.cap}",
         _fmt(row.evaluations, "d"), _fmt(row.seconds, ".2f"), f"{row.final_loss:.4g}")
        for row in rows
    ]
    widths = [max(len(str(cell)) for cell in column) for column in zip(TARGET_COLUMNS, *body)]
    return "\n".join("  ".join(str(cell).ljust(width) for cell, width in zip(line, widths))
                     for line in [TARGET_COLUMNS, *body])


def report_target(
    args: argparse.Namespace, weights: VGGWeights, model: torch.nn.Module, log: Callable[[str], None],
    loadavg_start: list[float] | None,
) -> int:
    """Run and print the time-to-target comparison (and write its JSON); returns the exit code."""
    rows = [row for size in args.size for row in benchmark_target(size, args, weights, model, log)]
    label = "" if weights.pretrained else RANDOM_LABEL
    print(label or f"weights: {weights.info.source} (sha256 {weights.checksum[:12]})")
    print(f"time to the loss PyTorch's strong-Wolfe L-BFGS reaches in {args.target_iterations} iterations (init "
          f"{args.init}, history {args.history_size}); others capped at {3 * args.target_iterations}")
    print(format_target_table(rows))
    if label:
        print(label)
    if args.json is not None:
        report = run_record(args, weights, label, loadavg_start) | {"target_rows": [row.to_dict() for row in rows]}
        write_json(args.json, report, allow_nan=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
