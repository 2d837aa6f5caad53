"""Command line: ``nst-jax CONTENT STYLE [STYLE ...] -o OUT`` (also ``python -m nst_jax``).

Every style option's default comes from ``StyleConfig()``. Known user errors (bad images, paths, options,
missing weights) are one ``nst-jax: error: ...`` line and exit code 2, found before any slow work; anything
else keeps its traceback. Exit codes: 0 done, 1 failed (non-finite loss, or the image could not be written),
2 bad input, 130 interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import json
import math
import os
import re
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np
from tqdm import tqdm

from nst_jax import image_io
from nst_jax.config import DEFAULT_STYLE_WEIGHT, INITS, LBFGS_BACKENDS, OPTIMIZERS, StyleConfig
from nst_jax.losses import LOSS_FORMS
from nst_jax.optimize import Progress
from nst_jax.transfer import StyleResult, prepare_images, stylize
from nst_jax.vgg import POOLINGS
from nst_jax.weights import RandomWeightsWarning, VGGWeights, WeightsError, default_weights_path, load_weights

PROG = "nst-jax"
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
DEVICES: tuple[str, ...] = ("cpu", "gpu")
_DEFAULTS = StyleConfig()


class UsageError(Exception):
    """A user mistake, reported as one line with exit code 2."""


# --------------------------------------------------------------------------- parsing


def _names(text: str) -> tuple[str, ...]:
    """A comma-separated list of names (blanks dropped)."""
    return tuple(name.strip() for name in text.split(",") if name.strip())


def _numbers(text: str) -> tuple[float, ...]:
    """A comma-separated list of numbers."""
    try:
        return tuple(float(value) for value in text.split(",") if value.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers such as 1,0.5; got {text!r}") from None


def _positive_int(text: str) -> int:
    """A positive integer."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _show(value: Any) -> str:
    """A default as the user would type it."""
    return ",".join(map(str, value)) if isinstance(value, tuple) else str(value)


def _flag(field: str) -> str:
    """The option of a ``StyleConfig`` field: ``image_size`` -> ``--image-size``."""
    return "--" + field.replace("_", "-")


def _add_style_option(
    group: argparse._ArgumentGroup, field: str, help: str, *, default_text: str | None = None, **kwargs: Any
) -> None:
    """Add the option of a ``StyleConfig`` field, with the field's own default (shown in the help)."""
    default = getattr(_DEFAULTS, field)
    shown = _show(default) if default_text is None else default_text
    group.add_argument(_flag(field), dest=field, default=default, help=f"{help} (default: {shown})", **kwargs)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser; style options and their defaults mirror ``StyleConfig``."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Neural style transfer (Gatys, Ecker & Bethge, CVPR 2016) in JAX: render CONTENT in the "
        "style of one or more STYLE images.",
        epilog="Exit codes: 0 done, 1 the loss became NaN/inf (last finite image saved), 2 bad input, "
        "130 interrupted (current image saved).",
    )
    parser.add_argument("content", type=Path, metavar="CONTENT", help="content image")
    parser.add_argument("styles", type=Path, nargs="+", metavar="STYLE", help="style image(s); several are blended")
    parser.add_argument("-o", "--output", type=Path, required=True, metavar="OUT", help="output image (.png, .jpg)")

    style = parser.add_argument_group("style transfer")
    add = functools.partial(_add_style_option, style)
    add("image_size", "longest side of the output in pixels", type=int, metavar="PX")
    add("iterations", "optimizer iterations", type=int, metavar="N")
    add("optimizer", "lbfgs (the paper's), lbfgsb (pixels kept in [0, 1]) or adam", choices=OPTIMIZERS)
    add("lbfgs_backend", "implementation of lbfgs", choices=LBFGS_BACKENDS)
    add("history_size", "L-BFGS memory: past steps kept", type=int, metavar="N")
    add("learning_rate", "Adam step size, in pixel units ([0, 1])", type=float, metavar="LR")
    add("content_weight", "content weight (alpha)", type=float, metavar="W")
    add(
        "style_weight", "style weight (beta)", type=float, metavar="W",
        default_text="the loss form's: "
        + ", ".join(f"{weight:.0e} {form}".replace("e+0", "e") for form, weight in DEFAULT_STYLE_WEIGHT.items()),
    )
    add("tv_weight", "total-variation weight (the paper has none)", type=float, metavar="W")
    add("loss_form", "normalized (weights independent of image size) or paper (its equations)", choices=LOSS_FORMS)
    add("content_layers", "comma-separated VGG19 layers of the content", type=_names, metavar="LAYERS")
    add("style_layers", "comma-separated VGG19 layers of the style", type=_names, metavar="LAYERS")
    add(
        "style_layer_weights", "comma-separated weight per style layer", type=_numbers, metavar="WEIGHTS",
        default_text="equal, summing to one",
    )
    add(
        "style_blend_weights", "comma-separated weight per style image", type=_numbers, metavar="WEIGHTS",
        default_text="equal",
    )
    add("style_scale", "style images are resized to the output size times this", type=float, metavar="S")
    add("pooling", "VGG pooling", choices=POOLINGS)
    add("init", f"starting image: {', '.join(INITS)} or an image file", metavar="INIT")
    add("seed", "seed of the noise init", type=int, metavar="N")
    add("chunk_size", "iterations per compiled call (progress is reported between calls)", type=int, metavar="N")

    run = parser.add_argument_group("run and output")
    run.add_argument(
        "--weights", type=Path, default=None, metavar="PATH",
        help=f"VGG19 HDF5 weights (default: {default_weights_path()})",
    )
    run.add_argument(
        "--save-every", type=_positive_int, default=None, metavar="N",
        help="also save the image every N iterations as OUT's name + _iterN (default: never)",
    )
    run.add_argument("--log-json", type=Path, default=None, metavar="PATH", help="write config and losses as JSON")
    run.add_argument("--bit-depth", type=int, choices=(8, 16), default=8, help="PNG bits per channel (default: 8)")
    run.add_argument("--device", choices=DEVICES, default=None, help="JAX platform (default: JAX's choice)")
    run.add_argument("--quiet", action="store_true", help="no progress bar (warnings and errors are still shown)")
    return parser


def config_from_args(args: argparse.Namespace) -> StyleConfig:
    """The ``StyleConfig`` of parsed arguments (``UsageError`` naming the option if a value is invalid)."""
    values = {field.name: getattr(args, field.name) for field in dataclasses.fields(StyleConfig)}
    if args.save_every is not None:  # chunk boundaries must fall on every snapshot iteration
        values["chunk_size"] = math.gcd(values["chunk_size"], args.save_every)
    try:
        return StyleConfig(**values)
    except ValueError as error:
        raise UsageError(_with_flags(str(error))) from None


def _with_flags(message: str) -> str:
    """A ``StyleConfig`` message with field names (``image_size``) written as options (``--image-size``)."""
    fields = "|".join(field.name for field in dataclasses.fields(StyleConfig))
    return re.sub(rf"\b({fields}) must\b", lambda match: f"{_flag(match.group(1))} must", message)


# --------------------------------------------------------------------------- checks before any slow work


def snapshot_path(output: Path, iteration: int) -> Path:
    """Where the snapshot at ``iteration`` goes: ``out.png`` -> ``out_iter50.png``."""
    return output.with_name(f"{output.stem}_iter{iteration}{output.suffix}")


def _same_file(a: Path, b: Path) -> bool:
    """Whether two paths name the same file (existing or not)."""
    with contextlib.suppress(OSError):
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    return a.resolve() == b.resolve()


def _check_directory(path: Path, what: str) -> None:
    """``UsageError`` unless ``path``'s directory exists and is writable and ``path`` is not a directory."""
    directory = path.parent
    if not directory.is_dir():
        raise UsageError(f"{what} directory '{directory}' does not exist")
    if not os.access(directory, os.W_OK):
        raise UsageError(f"{what} directory '{directory}' is not writable")
    if path.is_dir():
        raise UsageError(f"{what} '{path}' is a directory; give a file name")


def input_paths(args: argparse.Namespace) -> list[Path]:
    """Every image file the run reads: content, styles and an ``--init`` image."""
    paths = [args.content, *args.styles]
    return paths + ([Path(args.init)] if args.init not in INITS else [])


def check_outputs(args: argparse.Namespace) -> None:
    """``UsageError`` for an output or log that cannot be written or would overwrite an input."""
    output: Path = args.output
    if output.suffix.lower() not in image_io.SUPPORTED_SUFFIXES:
        raise UsageError(
            f"output '{output}' has unsupported suffix '{output.suffix}'; use one of "
            f"{', '.join(image_io.SUPPORTED_SUFFIXES)}"
        )
    if args.bit_depth == 16 and output.suffix.lower() != ".png":
        raise UsageError(f"--bit-depth 16 needs a .png output, not '{output.suffix}'")
    _check_directory(output, "output")
    for path in input_paths(args):
        if _same_file(output, path):
            raise UsageError(f"output '{output}' is also an input image; choose another output file")
    if args.log_json is not None:
        _check_directory(args.log_json, "--log-json")
        if any(_same_file(args.log_json, path) for path in [output, *input_paths(args)]):
            raise UsageError(f"--log-json '{args.log_json}' is also an image of this run; choose another file")


def check_blend_weights(config: StyleConfig, styles: Sequence[Path]) -> None:
    """``UsageError`` unless there is one blend weight per style image."""
    weights = config.style_blend_weights
    if weights is not None and len(weights) != len(styles):
        raise UsageError(
            f"--style-blend-weights has {len(weights)} value(s) for {len(styles)} style image(s); give one per style"
        )


def load_inputs(args: argparse.Namespace, config: StyleConfig) -> tuple[np.ndarray, list[np.ndarray]]:
    """Content and styles sized for ``config`` (``UsageError`` if unreadable or too small); checks ``--init``."""
    try:
        if config.init not in INITS:
            image_io.load_image(config.init)
        return prepare_images(args.content, list(args.styles), config)
    except ValueError as error:  # image_io.ImageError is a ValueError
        raise UsageError(str(error)) from None


def select_device(device: str | None) -> jax.Device | None:
    """Restrict JAX to ``device``'s platform (call before any JAX computation); its first device, or None."""
    if device is None:
        return None
    if device == "cpu":
        jax.config.update("jax_platforms", "cpu")
        return jax.devices("cpu")[0]
    try:  # JAX picks a GPU by itself when one works; "gpu" is not accepted as a jax_platforms value
        return jax.devices("gpu")[0]
    except RuntimeError:
        raise UsageError(
            f"--device gpu: JAX finds no GPU (it has: {jax.default_backend()}); "
            "install JAX's CUDA plugin with: pip install 'nst-jax[cuda]'"
        ) from None


# --------------------------------------------------------------------------- running


def load_weights_loudly(path: Path | None) -> VGGWeights:
    """``load_weights``, printing a one-line WARNING on stderr for random weights (``UsageError`` if missing)."""
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
    return weights


def _save_snapshot(path: Path, image: np.ndarray, bit_depth: int, bar: tqdm) -> None:
    """Write one snapshot; a failure is a warning, not the end of the run."""
    try:
        image_io.save_image(path, np.clip(image, 0.0, 1.0), bit_depth=bit_depth)
    except image_io.ImageError as error:
        bar.write(f"{PROG}: warning: snapshot not saved: {error}", file=sys.stderr)


def progress_callback(bar: tqdm, output: Path, save_every: int | None, bit_depth: int) -> Callable[[Progress], None]:
    """The callback run after each chunk: advance the bar, show the loss, save due snapshots."""

    def callback(progress: Progress) -> None:
        bar.set_postfix(loss=f"{progress.terms.total:.4g}", refresh=False)
        bar.update(progress.iteration - bar.n)
        if save_every and progress.iteration % save_every == 0:
            path = snapshot_path(output, progress.iteration)
            _save_snapshot(path, np.asarray(progress.image, np.float32), bit_depth, bar)

    return callback


def _finite_or_none(value: float) -> float | None:
    """A float for JSON: NaN and infinities become null."""
    return float(value) if math.isfinite(value) else None


def log_record(result: StyleResult, output: Path, wall: float) -> dict[str, Any]:
    """The ``--log-json`` content: config, per-iteration and final losses, status, weights, timings."""
    return {
        "config": result.config.to_dict(),
        "losses": {name: [_finite_or_none(v) for v in values] for name, values in result.losses_dict().items()},
        "final_losses": {name: _finite_or_none(float(v)) for name, v in result.final_losses._asdict().items()},
        "status": result.status,
        "iterations": result.iterations,
        "weights_sha256": result.weights_checksum,
        "weights_pretrained": result.weights_pretrained,
        "elapsed_s": result.elapsed,
        "wall_s": wall,
        "output": str(output),
    }


def _report(result: StyleResult, output: Path, wall: float) -> int:
    """Print how the run ended and return its exit code."""
    iterations, total = result.iterations, result.config.iterations
    if result.status == "non-finite":
        print(
            f"{PROG}: error: the loss became NaN or infinite after {iterations} of {total} iterations; saved the "
            f"last finite image to {output}. Lower --learning-rate (adam) or the loss weights, or try "
            "--optimizer lbfgsb",
            file=sys.stderr,
        )
        return EXIT_FAILED
    if result.status == "interrupted":
        print(
            f"{PROG}: interrupted at iteration {iterations} of {total}; saved the current image to {output}",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    print(f"wrote {output}: {iterations} iterations, loss {result.final_losses.total:.6g}, {wall:.1f} s")
    return EXIT_OK


def run(args: argparse.Namespace) -> int:
    """Check everything cheap, then load weights, stylize, save and report; returns the exit code."""
    start = time.perf_counter()
    config = config_from_args(args)
    check_blend_weights(config, args.styles)
    check_outputs(args)
    device = select_device(args.device)
    content, styles = load_inputs(args, config)
    with jax.default_device(device) if device is not None else contextlib.nullcontext():
        weights = load_weights_loudly(args.weights)
        with tqdm(total=config.iterations, unit="it", file=sys.stderr, disable=args.quiet, dynamic_ncols=True) as bar:
            callback = progress_callback(bar, args.output, args.save_every, args.bit_depth)
            result = stylize(content, styles, weights=weights, config=config, callback=callback)
    try:
        result.save(args.output, bit_depth=args.bit_depth)
    except image_io.ImageError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return EXIT_FAILED
    wall = time.perf_counter() - start
    if args.log_json is not None:
        args.log_json.write_text(json.dumps(log_record(result, args.output, wall), indent=1) + "\n")
    return _report(result, args.output, wall)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit code."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit_:  # usage errors (2) and --help (0)
        return exit_.code if isinstance(exit_.code, int) else EXIT_USAGE
    try:
        return run(args)
    except UsageError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted before the final image was saved", file=sys.stderr)
        return EXIT_INTERRUPTED
