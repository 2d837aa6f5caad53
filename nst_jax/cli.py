"""Command line (also ``python -m nst_jax``), in three forms:

* ``nst-jax CONTENT STYLE [STYLE ...] -o OUT``: one image.
* the same with a comma list in ``--style-weight``, ``--content-weight`` or ``--tv-weight``: a weight sweep, run as
  one batched ``stylize_sweep``; each member goes to OUT's name + a suffix per swept weight (``out_sw1e+03.png``),
  and a contact sheet labelled with each member's alpha/beta to OUT's name + ``_grid.png``.
* ``nst-jax --batch DIR_OR_GLOB STYLE [STYLE ...] -o OUTDIR``: many content images with ``stylize_batch``, each to
  ``OUTDIR/<content name>.png``; unreadable contents are skipped, finished ones are not redone.

The sweep and ``--batch`` forms live in ``nst_jax.cli_many``; ``nst-jax reconstruct {content,style} IMAGE -o OUTDIR``
(the paper's figure 1) in ``nst_jax.cli_reconstruct``. This module parses, checks and runs the single form.

Every style option's default comes from ``StyleConfig()``. Known user errors (bad images, paths, options,
missing weights, a run too large for memory) are one ``nst-jax: error: ...`` line and exit code 2, found before
any slow work; anything else keeps its traceback. Outputs follow ``nst_jax.files``' rules: no input is ever
written, an existing file is replaced only if nst_jax wrote it (or with ``--overwrite``), every file is written
whole, and a run that finished no iteration writes no image. Ctrl-C and SIGTERM save what is finished (further
signals wait for that). Exit codes: 0 done, 1 failed (non-finite loss, or a file could not be written), 2 bad
input, 130 interrupted (Ctrl-C), 143 terminated (SIGTERM).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import math
import re
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np
from tqdm import tqdm

from nst_jax import files, image_io, memory
from nst_jax.argparsing import OneLineParser
from nst_jax.config import (
    DEFAULT_STYLE_WEIGHT,
    INITS,
    LBFGS_BACKENDS,
    OPTIMIZERS,
    PRESERVE_COLORS,
    ConfigError,
    StyleConfig,
)
from nst_jax.losses import LOSS_FORMS
from nst_jax.optimize import Progress
from nst_jax.transfer import StyleResult, check_shapes, prepare_images, stylize
from nst_jax.vgg import POOLINGS
from nst_jax.weights import RandomWeightsWarning, VGGWeights, WeightsError, default_weights_path, load_weights

PROG = "nst-jax"
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED, EXIT_TERMINATED = 0, 1, 2, 130, 143
DEVICES: tuple[str, ...] = ("cpu", "gpu")
_DEFAULTS = StyleConfig()
# The weights a comma list sweeps, and the tag of each in the members' file names (out_sw1e+03.png).
WEIGHT_TAGS: dict[str, str] = {"style_weight": "sw", "content_weight": "cw", "tv_weight": "tv"}
# Content images --batch takes from a folder (compared case-insensitively).
BATCH_SUFFIXES: tuple[str, ...] = (".bmp", ".jpeg", ".jpg", ".png", ".tif", ".tiff", ".webp")
BATCH_FORMATS: tuple[str, ...] = ("png", "jpg")
USAGE = (
    "%(prog)s [options] CONTENT STYLE [STYLE ...] -o OUT\n"
    "       %(prog)s [options] --batch DIR_OR_GLOB STYLE [STYLE ...] -o OUTDIR\n"
    "       %(prog)s reconstruct {content,style} IMAGE -o OUTDIR [options]   (see: %(prog)s reconstruct --help)"
)
EPILOG = """\
weight sweeps:
  A comma list in --style-weight, --content-weight or --tv-weight (e.g. --style-weight 1e2,1e3,1e4,1e5) runs
  one batched optimization with one member per value. Lists in several of these options are paired member
  by member, not crossed: they need equal lengths (a single value applies to every member), so
  --content-weight 1,10 --style-weight 1e3,1e4 runs the two weightings (1, 1e3) and (10, 1e4).
  Each member goes to OUT's name + a tag per swept weight (_sw style, _cw content, _tv TV, the value as %.0e,
  with more digits only where needed to tell values apart): -o out.png --style-weight 1e3,1e4 writes
  out_sw1e+03.png and out_sw1e+04.png (not out.png), their snapshots (--save-every) out_sw1e+03_iterN.png,
  and a contact sheet out_grid.png (always PNG) labelling each image with its alpha/beta (content weight /
  style weight) and, when swept, its TV weight. The paper's figure of relative weightings spans
  alpha/beta = 1e-4 to 1e-1 (--loss-form paper); with normalized losses the default is 1e-6.
  A member whose loss turns NaN/inf is not written (its tile is marked; exit 1).

many content images:
  --batch DIR_OR_GLOB takes the image files directly in folder DIR (suffixes {suffixes},
  any case), or the files a glob pattern matches (quote it: --batch 'photos/*.jpg'), in name order, and
  writes OUTDIR/<content name>.png (see --batch-format). OUTDIR is created if its parent folder exists.
  Same-size contents run as one batch. An unreadable content is skipped with a warning; contents whose
  output already exists are skipped (so an interrupted run resumes) unless --overwrite. Exit 0 if at least
  one image was written, 1 if none.

your files:
  nst-jax never writes an input (content, styles, --init image, weights), also not through a link; replaces an
  existing file only if nst-jax wrote it (an image with its metadata, its own JSON log), unless --overwrite, and
  never a folder, device or FIFO; writes every file whole (a temporary file, then a rename); and writes no image
  for a run that finished no iteration. Every output name (snapshots, sweep members, contact sheet, log) is
  checked before anything slow runs.

exit codes: 0 done, 1 the loss became NaN/inf (last finite image saved; a sweep: that member not written) or
a file could not be written, 2 bad input, 130 interrupted by Ctrl-C and 143 by SIGTERM (current image saved;
--batch: finished images kept; a second Ctrl-C waits for the saving).
""".replace("{suffixes}", " ".join(BATCH_SUFFIXES))


class UsageError(Exception):
    """A user mistake, reported as one line with exit code 2."""


# --------------------------------------------------------------------------- parsing


def comma_names(text: str) -> tuple[str, ...]:
    """A comma-separated list of names (blanks dropped)."""
    return tuple(name.strip() for name in text.split(",") if name.strip())


def _numbers(text: str) -> tuple[float, ...]:
    """A comma-separated list of numbers."""
    try:
        return tuple(float(value) for value in text.split(",") if value.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers such as 1,0.5; got {text!r}") from None


def _weights(text: str) -> tuple[float, ...]:
    """A loss weight, or a comma-separated list of them (a sweep); at least one number."""
    values = _numbers(text)
    if not values:
        raise argparse.ArgumentTypeError(f"expected a number or comma-separated numbers such as 1e3,1e4; got {text!r}")
    return values


def _integers(what: str) -> Callable[[str], tuple[int, ...]]:
    """A parser of comma-separated integers; ``what`` (e.g. ``sizes in pixels such as 256,512``) for its error."""

    def parse(text: str) -> tuple[int, ...]:
        try:
            return tuple(int(value) for value in text.split(",") if value.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected comma-separated {what}; got {text!r}") from None

    return parse


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


def add_style_option(
    group: argparse._ArgumentGroup, field: str, help: str, *, default_text: str | None = None, **kwargs: Any
) -> None:
    """Add the option of a ``StyleConfig`` field, with the field's own default (shown in the help)."""
    default = getattr(_DEFAULTS, field)
    shown = _show(default) if default_text is None else default_text
    group.add_argument(_flag(field), dest=field, default=default, help=f"{help} (default: {shown})", **kwargs)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser; style options and their defaults mirror ``StyleConfig``."""
    parser = OneLineParser(
        prog=PROG,
        usage=USAGE,
        description="Neural style transfer (Gatys, Ecker & Bethge, CVPR 2016) in JAX: render CONTENT in the "
        "style of one or more STYLE images; sweep the loss weights in one batched run; or stylize a folder "
        "of content images with --batch.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    # CONTENT is optional for argparse only: with --batch every positional is a STYLE (``style_paths``).
    parser.add_argument("content", type=Path, nargs="?", metavar="CONTENT", help="content image (not with --batch)")
    parser.add_argument("styles", type=Path, nargs="+", metavar="STYLE", help="style image(s); several are blended")
    parser.add_argument(
        "-o", "--output", type=Path, required=True, metavar="OUT",
        help="output image (.png, .jpg); for a weight sweep the base of the members' names; with --batch the "
        "output folder",
    )

    style = parser.add_argument_group("style transfer")
    add = functools.partial(add_style_option, style)
    add("image_size", "longest side of the output in pixels", type=int, metavar="PX")
    add("iterations", "optimizer iterations", type=int, metavar="N")
    add("optimizer", "lbfgs (the paper's), lbfgsb (pixels kept in [0, 1]) or adam", choices=OPTIMIZERS)
    add("lbfgs_backend", "implementation of lbfgs", choices=LBFGS_BACKENDS)
    add("history_size", "L-BFGS memory: past steps kept", type=int, metavar="N")
    add("learning_rate", "Adam step size, in pixel units ([0, 1])", type=float, metavar="LR")
    add("content_weight", "content weight (alpha); a comma list sweeps it", type=_weights, metavar="W[,W...]")
    add(
        "style_weight", "style weight (beta); a comma list sweeps it", type=_weights, metavar="W[,W...]",
        default_text="the loss form's: "
        + ", ".join(f"{weight:.0e} {form}".replace("e+0", "e") for form, weight in DEFAULT_STYLE_WEIGHT.items()),
    )
    add(
        "tv_weight", "total-variation weight (the paper has none); a comma list sweeps it", type=_weights,
        metavar="W[,W...]",
    )
    add("loss_form", "normalized (weights independent of image size) or paper (its equations)", choices=LOSS_FORMS)
    add("content_layers", "comma-separated VGG19 layers of the content", type=comma_names, metavar="LAYERS")
    add("style_layers", "comma-separated VGG19 layers of the style", type=comma_names, metavar="LAYERS")
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
    add(
        "preserve_color", "keep the content's colours (Gatys et al. 2017): luminance or histogram",
        choices=PRESERVE_COLORS, default_text="off, the style's colours",
    )
    add(
        "scales", "comma-separated coarse-to-fine sizes ending at --image-size, --iterations at each; one image only",
        type=_integers("sizes in pixels such as 256,512"), metavar="PX,PX...", default_text="--image-size only",
    )
    add(
        "scale_iterations", "comma-separated iterations at each of --scales (e.g. 300,100,50); one image only",
        type=_integers("iteration counts such as 300,100,50"), metavar="N,N...", default_text="--iterations at each",
    )

    batch = parser.add_argument_group("many content images")
    batch.add_argument(
        "--batch", default=None, metavar="DIR_OR_GLOB",
        help="stylize every image file in folder DIR, or every file matching a glob pattern, into folder -o OUTDIR "
        "(created if its parent exists); replaces CONTENT",
    )
    batch.add_argument(
        "--batch-format", choices=BATCH_FORMATS, default=None,
        help="file type of the --batch outputs (default: png)",
    )

    run = add_run_options(parser)
    run.add_argument(
        "--save-every", type=_positive_int, default=None, metavar="N",
        help="also save the image every N iterations as OUT's name + _iterN (default: never; not with --batch)",
    )
    run.add_argument(
        "--log-json", type=Path, default=None, metavar="PATH",
        help="write config and losses as JSON (a sweep or --batch: one record per image)",
    )
    return parser


def add_run_options(parser: argparse.ArgumentParser) -> argparse._ArgumentGroup:
    """The "run and output" group every command has (--weights, --bit-depth, --device, --quiet, --overwrite,
    --skip-memory-check); returns it."""
    run = parser.add_argument_group("run and output")
    run.add_argument(
        "--weights", type=Path, default=None, metavar="PATH",
        help=f"VGG19 HDF5 weights (default: {default_weights_path()})",
    )
    run.add_argument("--bit-depth", type=int, choices=(8, 16), default=8, help="PNG bits per channel (default: 8)")
    run.add_argument("--device", choices=DEVICES, default=None, help="JAX platform (default: JAX's choice)")
    run.add_argument("--quiet", action="store_true", help="no progress bar (warnings and errors are still shown)")
    run.add_argument(
        "--overwrite", action="store_true",
        help="replace existing output files even if nst-jax did not write them (never an input); with --batch, also "
        "redo contents whose output exists (default: skip them, so a run can be resumed)",
    )
    run.add_argument(
        "--skip-memory-check", action="store_true",
        help="run even if the estimated memory need exceeds what the device has free (default: refuse, naming the "
        "largest size that fits)",
    )
    return run


def _single(value: Any) -> Any:
    """A weight option's value for the config: the number itself, or the first of a list (a sweep's base)."""
    return value[0] if isinstance(value, tuple) else value


def config_from_args(args: argparse.Namespace) -> StyleConfig:
    """The ``StyleConfig`` of parsed arguments (``UsageError`` naming the option if a value is invalid)."""
    values = {field.name: getattr(args, field.name) for field in dataclasses.fields(StyleConfig)}
    values.update({field: _single(values[field]) for field in WEIGHT_TAGS})
    if args.save_every is not None:  # chunk boundaries must fall on every snapshot iteration
        values["chunk_size"] = math.gcd(values["chunk_size"], args.save_every)
    try:
        return StyleConfig(**values)
    except ValueError as error:
        raise UsageError(user_message(error)) from None


def user_message(error: ValueError) -> str:
    """An error's message for the command line: a ``ConfigError`` names options (``--image-size``), not fields."""
    return error.render(_flag) if isinstance(error, ConfigError) else str(error)


def weight_sweep(args: argparse.Namespace, config: StyleConfig) -> dict[str, tuple[float, ...]]:
    """The swept weights: each weight option given several values, by field (``UsageError`` for bad values)."""
    lists = {
        field: tuple(float(value) + 0.0 for value in values)  # + 0.0: -0.0 -> 0.0
        for field in WEIGHT_TAGS
        for values in [getattr(args, field)]
        if isinstance(values, tuple) and len(values) > 1
    }
    for field, values in lists.items():
        for value in values:
            try:
                config.replace(**{field: value})
            except ValueError as error:
                raise UsageError(f"{user_message(error)} (in {_flag(field)} {_show(values)})") from None
    if len({len(values) for values in lists.values()}) > 1:
        counts = " and ".join(f"{_flag(field)} has {len(values)}" for field, values in lists.items())
        raise UsageError(
            f"weight lists are paired member by member, so they need equal lengths: {counts} values "
            "(a single value applies to every member)"
        )
    members = list(zip(*lists.values()))
    for index, member in enumerate(members):
        if member in members[:index]:
            raise UsageError(
                f"{' / '.join(map(_flag, lists))}: members {members.index(member) + 1} and {index + 1} have the "
                "same weights; give each member of a sweep different weights"
            )
    return lists


# --------------------------------------------------------------------------- checks before any slow work


def snapshot_path(output: Path, iteration: int) -> Path:
    """Where the snapshot at ``iteration`` goes: ``out.png`` -> ``out_iter50.png``."""
    return output.with_name(f"{output.stem}_iter{iteration}{output.suffix}")


def existing_snapshots(output: Path, every: int, iterations: int) -> list[Path]:
    """The files already present that snapshots of ``output`` every ``every`` of ``iterations`` iterations would
    replace (only a name that exists can be lost, so the folder is searched instead of every name being tried)."""
    pattern = re.compile(re.escape(output.stem) + r"_iter([1-9][0-9]*)" + re.escape(output.suffix))
    try:
        entries = list(output.parent.iterdir())
    except OSError:
        return []
    return sorted(
        entry for entry in entries
        for match in [pattern.fullmatch(entry.name)]
        if match and int(match.group(1)) % every == 0 and int(match.group(1)) <= iterations
    )


def init_paths(init: str) -> list[Path]:
    """The ``--init`` image, if it names one."""
    return [Path(init)] if init not in INITS else []


def style_paths(args: argparse.Namespace) -> list[Path]:
    """The STYLE images; with ``--batch`` every positional is one (argparse may have taken the first as CONTENT)."""
    if args.batch is not None and args.content is not None:
        return [args.content, *args.styles]
    return list(args.styles)


def weights_path(args: argparse.Namespace) -> Path:
    """The VGG19 weights file the run reads."""
    return args.weights.expanduser() if args.weights is not None else default_weights_path()


def run_inputs(args: argparse.Namespace) -> list[tuple[Path, str]]:
    """Every file a run reads besides ``--batch`` contents, each with what it is (for messages)."""
    styles = style_paths(args)
    inputs = [(args.content, "the content image")] if args.batch is None and args.content is not None else []
    inputs += [(path, f"style image {index}" if len(styles) > 1 else "the style image")
               for index, path in enumerate(styles, start=1)]
    inputs += [(path, "the --init image") for path in init_paths(args.init)]
    return [*inputs, (weights_path(args), "the VGG19 weights file")]


def guard_output(
    path: Path, what: str, inputs: files.Inputs, args: argparse.Namespace,
    owned: Callable[[Path], bool] = image_io.is_own_image,
) -> None:
    """``UsageError`` unless ``path`` may be written under ``nst_jax.files``' rules (``--overwrite`` relaxes the one
    about files nst_jax did not write)."""
    try:
        files.check_output(path, what, inputs, owned=owned, overwrite=args.overwrite)
    except files.OutputError as error:
        raise UsageError(str(error)) from None


def check_log(args: argparse.Namespace, inputs: files.Inputs) -> None:
    """``UsageError`` unless ``--log-json`` (if given) may be written: not an input or image of the run, and
    absent or an nst_jax log (or ``--overwrite``)."""
    if args.log_json is not None:
        guard_output(args.log_json, "--log-json", inputs, args, owned=files.is_own_json)


def check_outputs(
    args: argparse.Namespace, outputs: Sequence[Path], *, snapshots_of: Sequence[Path] = (), iterations: int = 0
) -> None:
    """``UsageError`` for an output (the image, or a sweep's files), a snapshot of ``snapshots_of`` (every
    ``--save-every`` up to ``iterations``) or the log that may not be written (``nst_jax.files``)."""
    output: Path = args.output
    if output.suffix.lower() not in image_io.SUPPORTED_SUFFIXES:
        raise UsageError(
            f"output '{output}' has unsupported suffix '{output.suffix}'; use one of "
            f"{', '.join(image_io.SUPPORTED_SUFFIXES)}"
        )
    if args.bit_depth == 16 and output.suffix.lower() != ".png":
        raise UsageError(f"--bit-depth 16 needs a .png output, not '{output.suffix}'")
    inputs = run_inputs(args)
    for path in outputs:
        guard_output(path, "output", inputs, args)
    if args.save_every is not None:
        for base in snapshots_of:
            for path in existing_snapshots(base, args.save_every, iterations):
                guard_output(path, f"snapshot (--save-every {args.save_every})", inputs, args)
    check_log(args, [*inputs, *((path, "an image this run writes") for path in outputs)])


def check_blend_weights(config: StyleConfig, styles: Sequence[Path]) -> None:
    """``UsageError`` unless there is one blend weight per style image."""
    weights = config.style_blend_weights
    if weights is not None and len(weights) != len(styles):
        raise UsageError(
            f"--style-blend-weights has {len(weights)} value(s) for {len(styles)} style image(s); give one per style"
        )


def check_mode(args: argparse.Namespace, lists: dict[str, tuple[float, ...]]) -> None:
    """``UsageError`` for options that do not fit the form of the command (single, sweep or ``--batch``)."""
    if args.batch is None:
        if args.content is None:
            raise UsageError("give a CONTENT image and at least one STYLE image (or --batch DIR_OR_GLOB STYLE ...)")
        if args.batch_format is not None:
            raise UsageError("--batch-format applies only with --batch")
        return
    if lists:
        raise UsageError(
            f"--batch takes one value of {', '.join(map(_flag, lists))}; sweep weights on one content image at a time"
        )
    if args.save_every is not None:
        raise UsageError("--save-every is not supported with --batch (it saves only the finished images)")


def check_single_only(args: argparse.Namespace, lists: dict[str, tuple[float, ...]]) -> None:
    """``UsageError`` for options the batched runs (weight sweeps, ``--batch``) do not support."""
    if args.batch is None and not lists:
        return
    form = "--batch" if args.batch is not None else "a weight sweep"
    for field in ("scales", "scale_iterations"):
        if getattr(args, field) is not None:
            raise UsageError(f"{_flag(field)} works for one image only, not with {form}")


def checked_shape(args: argparse.Namespace, config: StyleConfig) -> tuple[int, int]:
    """The content's (height, width), read from its header, after checking that it and the styles are large
    enough at every size of the run (``UsageError`` naming the option to change)."""
    try:
        shape = image_io.image_size(args.content)
        check_shapes(shape, config, styles=len(args.styles))
    except ValueError as error:  # ConfigError and image_io.ImageError are ValueErrors
        raise UsageError(user_message(error)) from None
    return shape


def load_inputs(args: argparse.Namespace, config: StyleConfig) -> tuple[np.ndarray, list[np.ndarray]]:
    """Content and styles sized for ``config`` (``UsageError`` if unreadable or too small); checks ``--init``."""
    try:
        if config.init not in INITS:
            image_io.load_image(config.init)
        return prepare_images(args.content, list(args.styles), config)
    except ValueError as error:  # image_io.ImageError is a ValueError
        raise UsageError(user_message(error)) from None


def _gib(count: int) -> str:
    """Bytes in GiB, for messages."""
    return f"{count / 2**30:.1f} GiB"


def check_memory(
    args: argparse.Namespace, config: StyleConfig, shape: Sequence[int], device: jax.Device | None, *, what: str = ""
) -> None:
    """``UsageError`` if one image of the run (content of ``shape``) needs more memory than ``device`` has free,
    naming the largest --image-size (and --style-scale) that fits; skipped with --skip-memory-check."""
    if args.skip_memory_check:
        return
    device = device or jax.local_devices()[0]
    free = memory.available_bytes(device)
    needed = memory.run_needs(shape, config)
    if needed <= free:
        return
    scale, size = memory.largest_style_scale(shape, config, free), memory.largest_image_size(shape, config, free)
    hints = [f"the largest --style-scale that fits is {scale:g}"] if scale is not None else []
    hints += [f"the largest --image-size that fits is {size}"] if size is not None else []
    raise UsageError(
        f"{what}this run needs about {_gib(needed)} of {device.platform.upper()} memory but {_gib(free)} is free: "
        f"{' and '.join(hints) or 'not even a 16-pixel image fits'}; --skip-memory-check runs it anyway"
    )


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


def on_device(device: jax.Device | None) -> contextlib.AbstractContextManager:
    """A context placing JAX computations on ``device`` (None: JAX's choice)."""
    return jax.default_device(device) if device is not None else contextlib.nullcontext()


def progress_bar(total: int, unit: str, quiet: bool) -> tqdm:
    """The progress bar on stderr (disabled by --quiet)."""
    return tqdm(total=total, unit=unit, file=sys.stderr, disable=quiet, dynamic_ncols=True)


def save_snapshot(path: Path, image: np.ndarray, bit_depth: int, bar: tqdm, iteration: int) -> None:
    """Write one snapshot; a failure is a warning, not the end of the run."""
    try:
        metadata = {"nst_jax:status": "snapshot", "nst_jax:iterations": str(iteration)}
        image_io.save_image(path, np.clip(image, 0.0, 1.0), bit_depth=bit_depth, metadata=metadata)
    except image_io.ImageError as error:
        bar.write(f"{PROG}: warning: snapshot not saved: {error}", file=sys.stderr)


def progress_callback(bar: tqdm, output: Path, save_every: int | None, bit_depth: int) -> Callable[[Progress], None]:
    """The callback run after each chunk: advance the bar, show the loss, save due snapshots."""

    def callback(progress: Progress) -> None:
        bar.set_postfix(loss=f"{progress.terms.total:.4g}", refresh=False)
        bar.update(progress.iteration - bar.n)
        if save_every and progress.iteration % save_every == 0:
            path = snapshot_path(output, progress.iteration)
            save_snapshot(path, np.asarray(progress.image, np.float32), bit_depth, bar, progress.iteration)

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


def write_log(path: Path | None, record: dict[str, Any]) -> bool:
    """Write the ``--log-json`` record atomically, if asked for; False (after an error line) if it failed."""
    if path is None:
        return True
    try:
        files.write_json(path, record)
    except OSError as error:
        print(f"{PROG}: error: cannot write --log-json '{path}': {error.strerror or error}", file=sys.stderr)
        return False
    return True


def save_result(result: StyleResult, output: Path, bit_depth: int) -> bool:
    """Save ``result`` unless no iteration finished (its image would be the untouched start, and an existing
    output must not be replaced by that); False (after an error line) if the image could not be written."""
    if result.iterations == 0:
        return True
    try:
        result.save(output, bit_depth=bit_depth)
    except image_io.ImageError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return False
    return True


def nothing_finished(result: StyleResult) -> str:
    """Why a run that finished no iteration stopped, and what to do, for messages."""
    if result.status == "interrupted":
        return "interrupted before the first iteration finished"
    if not math.isfinite(result.final_losses.total):
        return ("the loss is NaN or infinite at the starting image, before any iteration: the loss weights are too "
                "large for float32 (lower --content-weight, --style-weight or --tv-weight) or the VGG19 weights "
                "file is broken")
    return ("the first iteration made the loss NaN or infinite: lower --learning-rate (adam) or the loss weights, "
            "or try --optimizer lbfgsb")


def _report(result: StyleResult, output: Path, wall: float) -> int:
    """Print how the run ended and return its exit code."""
    iterations, total = result.iterations, result.config.total_iterations
    if iterations == 0:
        verb = "interrupted" if result.status == "interrupted" else "error"
        print(f"{PROG}: {verb}: {nothing_finished(result)}; nothing was written", file=sys.stderr)
        return EXIT_INTERRUPTED if result.status == "interrupted" else EXIT_FAILED
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


def run_single(args: argparse.Namespace, config: StyleConfig, start: float) -> int:
    """One content image: check outputs and memory, load, stylize, save and report; returns the exit code."""
    check_outputs(args, [args.output], snapshots_of=[args.output], iterations=config.total_iterations)
    device = select_device(args.device)
    shape = checked_shape(args, config)
    check_memory(args, config, shape, device)
    content, styles = load_inputs(args, config)
    with on_device(device):
        weights = load_weights_loudly(args.weights)
        with progress_bar(config.total_iterations, "it", args.quiet) as bar:
            callback = progress_callback(bar, args.output, args.save_every, args.bit_depth)
            result = stylize(content, styles, weights=weights, config=config, callback=callback)
    saved = save_result(result, args.output, args.bit_depth)
    wall = time.perf_counter() - start
    logged = write_log(args.log_json, log_record(result, args.output, wall))
    if not saved:
        return EXIT_FAILED
    code = _report(result, args.output, wall)
    return EXIT_FAILED if code == EXIT_OK and not logged else code


# --------------------------------------------------------------------------- entry point


class StopSignals:
    """Ctrl-C (SIGINT) and SIGTERM while a command runs: the first raises ``KeyboardInterrupt``, which ends the
    optimization with what is finished; later ones are held off with a note, so that the saving completes (by
    default a second Ctrl-C would abort it and lose every finished iteration). Installed only in the main thread,
    where Python delivers signals.

    ``process``: the command is the whole process (``python -m nst_jax``, ``nst-jax``), so after a first signal
    the later ones stay held off until it exits (JAX's exit handlers must not end in a traceback either); else
    the previous handlers come back when the block ends (the command called from Python, as the tests do).
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, prog: str = PROG, *, process: bool = False) -> None:
        self.prog = prog
        self.process = process
        self.received: int | None = None
        self._noted = False
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> "StopSignals":
        if threading.current_thread() is threading.main_thread():
            self._previous = {number: signal.signal(number, self._handle) for number in self.SIGNALS}
        return self

    def __exit__(self, *exc_info: Any) -> None:
        if self.process and self.received is not None:
            return
        for number, handler in self._previous.items():
            signal.signal(number, handler)

    def _handle(self, number: int, frame: Any) -> None:
        if self.received is None:
            self.received = number
            if number == signal.SIGTERM:
                print(f"{self.prog}: SIGTERM received: stopping and saving what is finished", file=sys.stderr)
            raise KeyboardInterrupt
        if not self._noted:
            self._noted = True
            print(f"{self.prog}: saving what is finished, one moment", file=sys.stderr)

    def exit_code(self, code: int) -> int:
        """``code``, with an interruption by SIGTERM reported as 143 (128 + 15) rather than 130."""
        return EXIT_TERMINATED if code == EXIT_INTERRUPTED and self.received == signal.SIGTERM else code


def run(args: argparse.Namespace) -> int:
    """Check everything cheap, then run the form the arguments ask for (single, sweep, ``--batch``)."""
    from nst_jax.cli_many import run_many, run_sweep

    start = time.perf_counter()
    config = config_from_args(args)
    lists = weight_sweep(args, config)
    check_mode(args, lists)
    check_single_only(args, lists)
    if args.batch is not None:
        return run_many(args, config, start)
    check_blend_weights(config, args.styles)
    if lists:
        return run_sweep(args, config, lists, start)
    return run_single(args, config, start)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line (``argv`` None: the process's own arguments); returns the process exit code."""
    process, argv = argv is None, sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["reconstruct"]:  # a content image named "reconstruct" can be given as ./reconstruct
        from nst_jax import cli_reconstruct

        return cli_reconstruct.main(argv[1:], process=process)
    try:  # intermixed: positionals may come after options (``-o OUT STYLE``), with CONTENT optional for --batch
        args = build_parser().parse_intermixed_args(argv)
    except SystemExit as exit_:  # usage errors (2) and --help (0)
        return exit_.code if isinstance(exit_.code, int) else EXIT_USAGE
    return run_guarded(PROG, run, args, process=process, interrupted="interrupted before the final image was saved")


def run_guarded(
    prog: str, run: Callable[[argparse.Namespace], int], args: argparse.Namespace, *, process: bool, interrupted: str
) -> int:
    """``run(args)`` under ``StopSignals``: a ``UsageError`` is one error line (exit 2), an interruption that
    escapes the run's own handling the line ``interrupted`` (exit 130, 143 for SIGTERM)."""
    with StopSignals(prog, process=process) as stop:
        try:
            code = run(args)
        except UsageError as error:
            print(f"{prog}: error: {error}", file=sys.stderr)
            code = EXIT_USAGE
        except KeyboardInterrupt:
            print(f"{prog}: {interrupted}", file=sys.stderr)
            code = EXIT_INTERRUPTED
    return stop.exit_code(code)
