"""The main command's options: its parser (the style options generated from ``StyleConfig``'s field metadata, so
each default and help text lives once), the run-and-output options every command shares, and turning parsed
arguments into a ``StyleConfig`` and a weight sweep."""

from __future__ import annotations

import argparse
import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Any

from nst_jax import image_io
from nst_jax.argparsing import OneLineParser, file_path
from nst_jax.cli import distributed, serving
from nst_jax.cli.exits import PROG, UsageError
from nst_jax.config import ConfigError, StyleConfig, option_help, render_fields
from nst_jax.weights import default_weights_path

DEVICES: tuple[str, ...] = ("cpu", "gpu")


# The weights a comma list sweeps, and the tag of each in the members' file names (out_sw1e+03.png).
WEIGHT_TAGS: dict[str, str] = {"style_weight": "sw", "content_weight": "cw", "tv_weight": "tv"}


# Content images --batch takes from a folder (compared case-insensitively).
BATCH_SUFFIXES: tuple[str, ...] = (".bmp", ".jpeg", ".jpg", ".png", ".tif", ".tiff", ".webp")


BATCH_FORMATS: tuple[str, ...] = ("png", "jpg")


USAGE = (
    "%(prog)s [options] CONTENT STYLE [STYLE ...] -o OUT\n"
    "       %(prog)s [options] --batch DIR_OR_GLOB STYLE [STYLE ...] -o OUTDIR\n"
    "       %(prog)s reconstruct {content,style} IMAGE -o OUTDIR [options]   (see: %(prog)s reconstruct --help)\n"
    "       %(prog)s video IN STYLE [STYLE ...] -o OUT.mp4 [options]   (see: %(prog)s video --help)"
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
  nst-jax never writes an input (content, styles, --init image, masks, weights), also not through a link, not even
  with --overwrite; replaces an existing file only if nst-jax wrote it (an image with its metadata, its own JSON
  log), unless --overwrite, and never a folder, device or FIFO; writes every file whole (a temporary file, then a
  rename); and writes no image for a run that finished no iteration. Every output name (snapshots, sweep members,
  contact sheet, log) is checked before anything slow runs.

exit codes: 0 done, 1 the loss became NaN/inf (last finite image saved; a sweep: that member not written) or
a file could not be written, 2 bad input (--dry-run makes the same checks and exits alike), 130 interrupted by
Ctrl-C and 143 by SIGTERM: the run stops after the iteration in progress and saves the current image (--batch:
finished images kept), or, if that takes over 5 s (one process), saves the last reported image and exits without
waiting; a second Ctrl-C or SIGTERM quits at once without saving.
""".replace("{suffixes}", " ".join(BATCH_SUFFIXES))


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
    parser.add_argument("content", type=file_path, nargs="?", metavar="CONTENT",
                        help="content image (not with --batch)")
    parser.add_argument("styles", type=file_path, nargs="+", metavar="STYLE",
                        help="style image(s); several are blended")
    parser.add_argument(
        "-o", "--output", type=file_path, required=True, metavar="OUT",
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
        "--log-json", type=file_path, default=None, metavar="PATH",
        help="write config and losses as JSON (a sweep or --batch: one record per image)",
    )
    return parser


def add_run_options(parser: argparse.ArgumentParser) -> argparse._ArgumentGroup:
    """The "run and output" group every command has (--weights, --bit-depth, --device, --quiet, --overwrite,
    --skip-memory-check), the "live view" one (``serving.add_options``) and the "several processes" one
    (``distributed.add_options``); returns the first."""
    output = parser.add_argument_group("run and output")
    output.add_argument(
        "--weights", type=file_path, default=None, metavar="PATH",
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
    serving.add_options(parser)
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
