"""What every form of the command line shares: exit codes, ``UsageError``, the main parser (its style options
generated from ``StyleConfig``'s field metadata), the checks made before anything slow (inputs, outputs under
``nst_jax.files``' rules, sizes, memory), device and weights set-up, the progress bar over one or many runs, the
JSON log, and ``StopSignals``.

Known user errors (bad images, paths, options, missing weights, a run too large for memory) are one
``nst-jax: error: ...`` line and exit code 2, found before any slow work; anything else keeps its traceback.
Outputs follow ``nst_jax.files``' rules: no input is ever written, an existing file is replaced only if nst_jax
wrote it (or with ``--overwrite``), every file is written whole, and a run that finished no iteration writes no
image. Ctrl-C and SIGTERM save what is finished (further signals wait for that). Exit codes: 0 done, 1 failed
(non-finite loss, or a file could not be written), 2 bad input, 130 interrupted (Ctrl-C), 143 terminated (SIGTERM).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import math
import os
import re
import signal
import sys
import threading
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np
from tqdm import tqdm

from nst_jax import files, image_io, memory
from nst_jax.argparsing import OneLineParser
from nst_jax.cli import distributed
from nst_jax.cli.distributed import DistributedError
from nst_jax.config import INITS, ConfigError, StyleConfig, option_help, render_fields
from nst_jax.optimize import Progress, Status, clear_stop, request_stop
from nst_jax.problem import check_shapes, configure_for, content_shape
from nst_jax.result import StyleResult
from nst_jax.weights import RandomWeightsWarning, VGGWeights, WeightsError, default_weights_path, load_weights

PROG = "nst-jax"
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED, EXIT_TERMINATED = 0, 1, 2, 130, 143
DEVICES: tuple[str, ...] = ("cpu", "gpu")
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

style per region (Gatys et al. 2017, spatial control):
  --style-masks M1,M2,... gives each STYLE its region of the output: one greyscale image per style image,
  white where that style applies (resized to the output). Each style's Gram matrices are matched only by the
  output's features in its region, normalized by the region's area; the content loss applies everywhere,
  overlapping masks blend and places no mask covers keep the content only. --style-source-masks S1,S2,...
  selects, per style image, the part whose statistics define the style (white; 'all' for the whole image).
  With --batch a mask name may contain {stem}, the content file's name without its suffix, so that each
  content has its own masks (one mask set for all otherwise).

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


def flag(field: str) -> str:
    """The option of a ``StyleConfig`` field: ``image_size`` -> ``--image-size``."""
    return "--" + field.replace("_", "-")


# How an option of each ``StyleConfig`` field type is parsed, and what "comma-separated" it takes.
_PARSERS: dict[str, tuple[Callable[[str], Any] | None, str]] = {
    "int": (int, ""),
    "int | None": (int, ""),
    "float": (float, ""),
    "float | None": (float, ""),
    "str": (None, ""),
    "str | None": (None, ""),
    "tuple[str, ...]": (comma_names, "comma-separated "),
    "tuple[float, ...] | None": (_numbers, "comma-separated "),
    "tuple[int, ...] | None": (_integers("integers such as 256,512"), "comma-separated "),
}


def add_config_options(group: argparse._ArgumentGroup, names: Sequence[str], *, sweeps: Sequence[str] = ()) -> None:
    """Add the options of the ``StyleConfig`` fields ``names``: help, metavar, choices and default from the field's
    metadata, the parser from its type; a field in ``sweeps`` takes a comma list of values (a weight sweep)."""
    fields = {f.name: f for f in dataclasses.fields(StyleConfig)}
    for name in names:
        config_field, metadata = fields[name], fields[name].metadata
        parse, prefix = _PARSERS[config_field.type]
        metavar = metadata["metavar"]
        help = prefix + option_help(name, flag)
        if name in sweeps:
            parse, metavar, help = _weights, f"{metavar}[,{metavar}...]", f"{help}; a comma list sweeps it"
        default = metadata["default_text"]
        shown = _show(config_field.default) if default is None else render_fields(default, flag)
        group.add_argument(flag(name), dest=name, default=config_field.default, type=parse, metavar=metavar,
                           choices=metadata["choices"], help=f"{help} (default: {shown})")


def command_line_fields() -> list[str]:
    """The ``StyleConfig`` fields the command line offers, in their order."""
    return [f.name for f in dataclasses.fields(StyleConfig) if f.metadata["command_line"]]


def build_parser() -> argparse.ArgumentParser:
    """The main command's argument parser; style options, their help and defaults come from ``StyleConfig``."""
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
    add_config_options(parser.add_argument_group("style transfer"), command_line_fields(), sweeps=list(WEIGHT_TAGS))

    regions = parser.add_argument_group("style per region")
    regions.add_argument(
        "--style-masks", type=comma_names, default=None, metavar="M1,M2,...",
        help="one greyscale image per STYLE, white where that style applies on the output (see below)",
    )
    regions.add_argument(
        "--style-source-masks", type=comma_names, default=None, metavar="S1,S2,...",
        help="per STYLE, the part of the style image that defines it (white), or 'all'",
    )

    batch = parser.add_argument_group("many content images")
    batch.add_argument(
        "--batch", default=None, metavar="DIR_OR_GLOB",
        help="stylize every image file in folder DIR, or every file matching a glob pattern, into folder -o OUTDIR "
        "(created if its parent exists); replaces CONTENT",
    )
    batch.add_argument(
        "--batch-format", choices=BATCH_FORMATS, default=None,
        help=f"file type of the --batch outputs (default: {BATCH_FORMATS[0]})",
    )

    output = add_run_options(parser)
    output.add_argument(
        "--dry-run", action="store_true",
        help="print the plan (memory per device, tiles, devices, evaluations per iteration, the largest image each "
        "strategy fits) and exit without loading the network or running",
    )
    output.add_argument(
        "--save-every", type=_positive_int, default=None, metavar="N",
        help="also save the image every N iterations as OUT's name + _iterN (default: never; not with --batch)",
    )
    output.add_argument(
        "--log-json", type=Path, default=None, metavar="PATH",
        help="write config and losses as JSON (a sweep or --batch: one record per image)",
    )
    return parser


def add_run_options(parser: argparse.ArgumentParser) -> argparse._ArgumentGroup:
    """The "run and output" group every command has (--weights, --bit-depth, --device, --quiet, --overwrite,
    --skip-memory-check), and the "several processes" one (``distributed.add_options``); returns the first."""
    output = parser.add_argument_group("run and output")
    output.add_argument(
        "--weights", type=Path, default=None, metavar="PATH",
        help=f"VGG19 HDF5 weights (default: {default_weights_path()})",
    )
    output.add_argument("--bit-depth", type=int, choices=image_io.BIT_DEPTHS, default=image_io.BIT_DEPTHS[0],
                        help=f"PNG bits per channel (default: {image_io.BIT_DEPTHS[0]})")
    output.add_argument("--device", choices=DEVICES, default=None, help="JAX platform (default: JAX's choice)")
    output.add_argument("--quiet", action="store_true", help="no progress bar (warnings and errors are still shown)")
    output.add_argument(
        "--overwrite", action="store_true",
        help="replace existing output files even if nst-jax did not write them (never an input); with --batch, also "
        "redo contents whose output exists (default: skip them, so a run can be resumed)",
    )
    output.add_argument(
        "--skip-memory-check", action="store_true",
        help="run even if the estimated memory need exceeds what the device has free (default: refuse, naming the "
        "largest size that fits)",
    )
    distributed.add_options(parser)
    return output


def _single(value: Any) -> Any:
    """A weight option's value for the config: the number itself, or the first of a list (a sweep's base)."""
    return value[0] if isinstance(value, tuple) else value


def config_from_args(args: argparse.Namespace) -> StyleConfig:
    """The ``StyleConfig`` of parsed arguments (``UsageError`` naming the option if a value is invalid)."""
    values = {name: getattr(args, name) for name in command_line_fields()}
    values.update({field: _single(values[field]) for field in WEIGHT_TAGS})
    if args.save_every is not None:  # chunk boundaries must fall on every snapshot iteration
        values["chunk_size"] = math.gcd(values["chunk_size"], args.save_every)
    try:
        return StyleConfig(**values)
    except ValueError as error:
        raise UsageError(user_message(error)) from None


def user_message(error: ValueError) -> str:
    """An error's message for the command line: a ``ConfigError`` names options (``--image-size``), not fields."""
    return error.render(flag) if isinstance(error, ConfigError) else str(error)


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
                raise UsageError(f"{user_message(error)} (in {flag(field)} {_show(values)})") from None
    if len({len(values) for values in lists.values()}) > 1:
        counts = " and ".join(f"{flag(field)} has {len(values)}" for field, values in lists.items())
        raise UsageError(
            f"weight lists are paired member by member, so they need equal lengths: {counts} values "
            "(a single value applies to every member)"
        )
    members = list(zip(*lists.values()))
    for index, member in enumerate(members):
        if member in members[:index]:
            raise UsageError(
                f"{' / '.join(map(flag, lists))}: members {members.index(member) + 1} and {index + 1} have the "
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


STEM = "{stem}"
"""In a --style-masks name with --batch: the content file's name without its suffix."""
WHOLE_STYLE = "all"
"""A --style-source-masks entry for a style image used whole."""


def mask_paths(args: argparse.Namespace, content: Path | None = None) -> list[Path] | None:
    """The --style-masks files (None: not given); with ``content``, ``{stem}`` replaced by its name's stem."""
    if args.style_masks is None:
        return None
    return [Path(name.replace(STEM, content.stem) if content is not None else name) for name in args.style_masks]


def source_mask_paths(args: argparse.Namespace) -> list[Path | None] | None:
    """The --style-source-masks files, None for a style image used whole (None: not given)."""
    if args.style_source_masks is None:
        return None
    return [None if name == WHOLE_STYLE else Path(name) for name in args.style_source_masks]


def check_masks(args: argparse.Namespace, config: StyleConfig) -> None:
    """``UsageError`` for mask options that do not fit the run: one mask per style image, {stem} only with --batch,
    style masks without --style-blend-weights."""
    styles = len(style_paths(args))
    for option, names in (("--style-masks", args.style_masks), ("--style-source-masks", args.style_source_masks)):
        if names is not None and len(names) != styles:
            raise UsageError(f"{option} has {len(names)} image(s) for {styles} style image(s); give one per style, "
                             "in the same order")
    if args.style_masks is not None and config.style_blend_weights is not None:
        raise UsageError("--style-blend-weights does not combine with --style-masks: each style has its own region "
                         "(make a style's region larger to give it more of the image)")
    templated = args.style_masks is not None and any(STEM in name for name in args.style_masks)
    if templated and args.batch is None:
        raise UsageError(f"{STEM} in --style-masks stands for each --batch content's name; without --batch, give "
                         "the mask files themselves")
    if args.style_source_masks is not None and any(STEM in name for name in args.style_source_masks):
        raise UsageError(f"--style-source-masks belong to the style images: {STEM} is not replaced there")


def load_masks(masks: Sequence[Path | None] | None) -> list[np.ndarray | None] | None:
    """Mask files decoded (None entries kept), ``UsageError`` for one that cannot be read; resized by the run."""
    if masks is None:
        return None
    try:
        return [None if path is None else image_io.load_image(path) for path in masks]
    except ValueError as error:  # image_io.ImageError is a ValueError
        raise UsageError(user_message(error)) from None


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
    masks = [] if args.style_masks is None or any(STEM in name for name in args.style_masks) else mask_paths(args)
    inputs += [(path, f"style mask {index}") for index, path in enumerate(masks, start=1)]
    inputs += [(path, f"style source mask {index}") for index, path in enumerate(source_mask_paths(args) or [],
                                                                                  start=1) if path is not None]
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
            f"--batch takes one value of {', '.join(map(flag, lists))}; sweep weights on one content image at a time"
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
            raise UsageError(f"{flag(field)} works for one image only, not with {form}")


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
    """The content and style images decoded (``UsageError`` if one cannot be read), and the ``--init`` image checked;
    their sizes were checked from the headers (``checked_shape``), and ``stylize`` resizes them, once."""
    try:
        if config.init not in INITS:
            image_io.load_image(config.init)
        return image_io.load_image(args.content), [image_io.load_image(style) for style in args.styles]
    except ValueError as error:  # image_io.ImageError is a ValueError
        raise UsageError(user_message(error)) from None


def _gib(count: int) -> str:
    """Bytes in GiB, for messages."""
    return f"{count / 2**30:.1f} GiB"


def check_memory(
    args: argparse.Namespace, config: StyleConfig, shape: Sequence[int], device: jax.Device | None, *, what: str = "",
    single: bool = False,
) -> None:
    """``UsageError`` if one image of the run (content of ``shape``) needs more memory than ``device`` has free
    (``single``: as ``stylize`` plans it, ``memory.plan_run``, tiles and devices included), naming the largest
    --image-size (and --style-scale) that fits; skipped with --skip-memory-check."""
    if args.skip_memory_check:
        return
    device = device or jax.local_devices()[0]
    free = memory.available_bytes(device)
    if single and config.shard not in ("none", "batch"):
        # this process's budget: no collective before distributed.agree (a process with an error would not join it)
        plan = memory.plan_run(shape, config, budget=memory.per_device_budget(jax.local_devices()), largest=False)
        needed, free = plan.process_bytes, plan.budget
    else:
        needed = memory.run_needs(shape, config, platform=device.platform)
    if needed <= free:
        return
    scale, size = memory.largest_style_scale(shape, config, free), memory.largest_image_size(shape, config, free)
    hints = [f"the largest --style-scale that fits is {scale:g}"] if scale is not None else []
    hints += [f"the largest --image-size that fits is {size}"] if size is not None else []
    raise UsageError(
        f"{what}this run needs about {_gib(needed)} of {device.platform.upper()} memory but {_gib(free)} is free: "
        f"{' and '.join(hints) or 'not even a 16-pixel image fits'}; --skip-memory-check runs it anyway"
    )


@dataclasses.dataclass(frozen=True)
class ContentRun:
    """A run over one content image (one image or a weight sweep), checked and loaded: its images and network."""

    content: np.ndarray
    styles: list[np.ndarray]
    vgg: VGGWeights
    masks: list[np.ndarray] | None = None
    """--style-masks, decoded."""
    sources: list[np.ndarray | None] | None = None
    """--style-source-masks, decoded (None: a style image used whole)."""


@contextlib.contextmanager
def content_run(
    args: argparse.Namespace, config: StyleConfig, outputs: Sequence[Path], *, snapshots_of: Sequence[Path],
    iterations: int, what: str = "", single: bool = False,
) -> Iterator[ContentRun]:
    """Check, in order, that the outputs (and snapshots) may be written, the device, the sizes at every scale and
    the memory (``what`` says whose; ``UsageError`` at the first problem); load the images, then the weights on the
    device, where the block runs."""
    check_outputs(args, outputs, snapshots_of=snapshots_of, iterations=iterations)
    device = select_device(args.device)
    shape = checked_shape(args, config)
    check_memory(args, config, shape, device, what=what, single=single)
    content, styles = load_inputs(args, config)
    masks, sources = load_masks(mask_paths(args)), load_masks(source_mask_paths(args))
    with on_device(device):
        vgg = load_weights_loudly(args.weights, config, args.quiet)
        distributed.agree()
        yield ContentRun(content, styles, vgg, masks, sources)


def dry_run(args: argparse.Namespace, config: StyleConfig, contents: Sequence[Path], members: int) -> int:
    """Print the plan of the run (``--dry-run``): each content's as one image (``memory.plan_run``) and, for a
    sweep of ``members`` weightings or a batch, how the members are split over the devices; nothing is loaded or
    run."""
    select_device(args.device)
    for content in contents:
        shape = checked_shape(argparse.Namespace(content=content, styles=style_paths(args)), config)
        print(f"{content}: {memory.plan_run(shape, config).describe()}")
        if members > 1 or args.batch is not None:
            size = members if args.batch is None else len(contents)
            print("  " + memory.plan_batch(size, *content_shape(shape, config.image_size), config).describe())
    return 0


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


# --------------------------------------------------------------------------- running


def load_weights_loudly(path: Path | None, config: StyleConfig | None = None, quiet: bool = False) -> VGGWeights:
    """``load_weights``, printing a one-line WARNING on stderr for random weights (``UsageError`` if missing); with
    ``config``, checks its layers exist in the network and (unless ``quiet``) says which network runs with which
    loss weights."""
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
    if config is not None:
        try:
            configured = configure_for(config, weights)
        except ConfigError as error:
            raise UsageError(user_message(error)) from None
        if not quiet:
            print(f"{PROG}: {network_line(weights, config, configured)}", file=sys.stderr)
    return weights


def network_line(weights: VGGWeights, config: StyleConfig, configured: StyleConfig) -> str:
    """One line: the network, and the loss weights it runs with (which of them are its convention's defaults)."""
    def weight(name: str, value: float | None, resolved: float) -> str:
        return f"{name} {resolved:g}" + (f" (default for {weights.info.convention} weights)" if value is None else "")

    return (f"network {weights.info.description}; "
            f"{weight('content weight', config.content_weight, configured.resolved_content_weight)}, "
            f"{weight('style weight', config.style_weight, configured.resolved_style_weight)}")


def on_device(device: jax.Device | None) -> contextlib.AbstractContextManager:
    """A context placing JAX computations on ``device`` (None: JAX's choice)."""
    return jax.default_device(device) if device is not None else contextlib.nullcontext()


def progress_bar(total: int, unit: str, quiet: bool) -> tqdm:
    """The progress bar on stderr (disabled by --quiet)."""
    return tqdm(total=total, unit=unit, file=sys.stderr, disable=quiet, dynamic_ncols=True)


PROGRESS_SECONDS = 2.0
"""How often the progress bar hears from a run: compiled calls are shortened to about this (``progress_seconds``)."""


def with_progress(config: StyleConfig, quiet: bool) -> StyleConfig:
    """``config`` with compiled calls short enough for a progress bar to move every ~2 s, unless ``quiet`` (or the
    config already says how often)."""
    if quiet or config.progress_seconds is not None:
        return config
    return config.replace(progress_seconds=PROGRESS_SECONDS)


def bar_callback(
    bar: tqdm, iterations: int, then: Callable[[Progress], None] | None = None
) -> Callable[[Progress], None]:
    """A ``Progress`` callback advancing ``bar`` over one run, or consecutive runs of ``iterations`` each (each
    restarting at iteration 1): it shows the loss, or the range of a batch's losses, then calls ``then``."""
    state = {"offset": 0, "last": 0}

    def callback(progress: Progress) -> None:
        if progress.iteration <= state["last"]:  # the next run started
            state["offset"] += iterations
        state["last"] = progress.iteration
        totals = np.asarray(progress.terms.total, np.float64).reshape(-1)
        finite = totals[np.isfinite(totals)]
        if finite.size:
            low, high = finite.min(), finite.max()
            bar.set_postfix(loss=f"{low:.4g}" if low == high else f"{low:.3g}..{high:.3g}", refresh=False)
        bar.total = max(bar.total, state["offset"] + progress.iteration)
        bar.update(state["offset"] + progress.iteration - bar.n)
        if then is not None:
            then(progress)

    return callback


def save_snapshot(path: Path, image: np.ndarray, bit_depth: int, bar: tqdm, iteration: int) -> None:
    """Write one snapshot (process 0 of several only); a failure is a warning, not the end of the run."""
    if not distributed.writes():
        return
    try:
        metadata = {"nst_jax:status": "snapshot", "nst_jax:iterations": str(iteration)}
        image_io.save_image(path, np.clip(image, 0.0, 1.0), bit_depth=bit_depth, metadata=metadata)
    except image_io.ImageError as error:
        bar.write(f"{PROG}: warning: snapshot not saved: {error}", file=sys.stderr)


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
    """Write the ``--log-json`` record atomically, if asked for (process 0 of several only); False (after an error
    line) if it failed."""
    if path is None or not distributed.writes():
        return True
    try:
        files.write_json(path, record)
    except OSError as error:
        print(f"{PROG}: error: cannot write --log-json '{path}': {error.strerror or error}", file=sys.stderr)
        return False
    return True


def save_result(result: StyleResult, output: Path, bit_depth: int) -> bool:
    """Save ``result`` unless no iteration finished (its image would be the untouched start, and an existing
    output must not be replaced by that; process 0 of several only); False (after an error line) if the image could
    not be written."""
    if result.iterations == 0 or not distributed.writes():
        return True
    try:
        result.save(output, bit_depth=bit_depth)
    except image_io.ImageError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return False
    return True


def nothing_finished(result: StyleResult) -> str:
    """Why a run that finished no iteration stopped, and what to do, for messages."""
    if result.status == Status.INTERRUPTED:
        return "interrupted before the first iteration finished"
    if not math.isfinite(result.final_losses.total):
        return ("the loss is NaN or infinite at the starting image, before any iteration: the loss weights are too "
                "large for float32 (lower --content-weight, --style-weight or --tv-weight) or the VGG19 weights "
                "file is broken")
    return ("the first iteration made the loss NaN or infinite: lower --learning-rate (adam) or the loss weights, "
            "or try --optimizer lbfgsb")


# --------------------------------------------------------------------------- entry point


class StopSignals:
    """Ctrl-C (SIGINT) and SIGTERM while a command runs: the first raises ``KeyboardInterrupt``, which ends the
    optimization with what is finished (with ``--distributed``: ``optimize.request_stop``, so that every process
    stops after the same chunk, where an exception would leave the others waiting in a collective); later ones are
    held off with a note, so that the saving completes (by default a second Ctrl-C would abort it and lose every
    finished iteration). Installed only in the main thread, where Python delivers signals.

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
        clear_stop()
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
            if distributed.active():  # every process stops after the same chunk (an exception here would not)
                request_stop()
                return
            raise KeyboardInterrupt
        if not self._noted:
            self._noted = True
            print(f"{self.prog}: saving what is finished, one moment", file=sys.stderr)

    def exit_code(self, code: int) -> int:
        """``code``, with an interruption by SIGTERM reported as 143 (128 + 15) rather than 130."""
        return EXIT_TERMINATED if code == EXIT_INTERRUPTED and self.received == signal.SIGTERM else code


def run_guarded(
    prog: str, run: Callable[[argparse.Namespace], int], args: argparse.Namespace, *, process: bool, interrupted: str
) -> int:
    """``run(args)`` under ``StopSignals``: a ``UsageError`` is one error line (exit 2), an interruption that
    escapes the run's own handling the line ``interrupted`` (exit 130, 143 for SIGTERM). With ``--distributed``,
    after joining the other processes (``distributed.start``); in all but process 0 the run's output (stdout,
    stderr, progress) is discarded and only its error line shown, and every process's checks meet in
    ``distributed.agree`` before anything is computed (here too for a run that computes nothing)."""
    with StopSignals(prog, process=process) as stop:
        try:
            distributed.start(args)
            with _this_process_output(args):
                code = run(args)
            distributed.agree()
        except (UsageError, DistributedError) as error:
            distributed.agree(str(error))
            print(f"{prog}: error: {error}", file=sys.stderr)
            code = EXIT_USAGE
        except KeyboardInterrupt:
            print(f"{prog}: {interrupted}", file=sys.stderr)
            code = EXIT_INTERRUPTED
    return stop.exit_code(code)


@contextlib.contextmanager
def _this_process_output(args: argparse.Namespace) -> Iterator[None]:
    """Process 0 of several (or the only one): nothing changes. Any other: its stdout and stderr discarded (every
    process computes the same run, with the same options; process 0 reports it)."""
    if distributed.writes():
        yield
        return
    with open(os.devnull, "w") as discard, contextlib.redirect_stdout(discard), contextlib.redirect_stderr(discard):
        yield

