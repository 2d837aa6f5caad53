"""``nst-jax reconstruct {content,style} IMAGE -o OUTDIR``: the paper's figure 1 from the command line.

``content``: one reconstruction from white noise per ``--layers`` entry, each matching only that layer's
features of IMAGE. ``style``: one texture per growing prefix of ``--layers`` ((relu1_1), (relu1_1, relu2_1), ...),
each matching only the Gram matrices of its layers. Every reconstruction goes to ``OUTDIR/<kind>_<layers>.png``
as it finishes, and a labelled row of them (IMAGE first) to ``OUTDIR/<kind>_grid.png``. Errors and exit codes
follow the main command (``nst_jax.cli.options``, ``checks``, ``signals``).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from nst_jax import image_io
from nst_jax.argparsing import OneLineParser, file_path
from nst_jax.cli import serving
from nst_jax.cli.checks import check_memory, check_optimizer_options, check_weights, guard_output
from nst_jax.cli.device import on_device, select_device
from nst_jax.cli.distributed import agree, writes
from nst_jax.cli.exits import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, PROG, UsageError
from nst_jax.cli.loading import load_weights_loudly
from nst_jax.cli.options import add_config_options, add_run_options, comma_names, user_message
from nst_jax.cli.paths import weights_path
from nst_jax.cli.progress import bar_callback, progress_bar, timed_chunks
from nst_jax.cli.saving import nothing_finished
from nst_jax.cli.serving import LiveView
from nst_jax.cli.signals import run_guarded
from nst_jax.config import StyleConfig
from nst_jax.memory import plan_batch
from nst_jax.optimize import Status
from nst_jax.problem import prepare_images
from nst_jax.reconstruct import (
    CONTENT_LAYERS,
    STYLE_LAYER_SETS,
    Reconstruction,
    batched_by_default,
    reconstruct_content,
    reconstruct_style,
    reconstruction_sheet,
    union_config,
)

KINDS: tuple[str, ...] = ("content", "style")
# The StyleConfig fields a reconstruction takes (layers and weights are its own; help and defaults are the fields').
FIELDS: tuple[str, ...] = ("image_size", "iterations", "optimizer", "lbfgs_backend", "history_size", "line_search",
                           "step_size", "learning_rate", "loss_form", "pooling", "seed", "style_scale", "chunk_size")
DEFAULT_LAYERS: dict[str, tuple[str, ...]] = {"content": CONTENT_LAYERS, "style": STYLE_LAYER_SETS[-1]}
EPILOG = """\
examples:
  nst-jax reconstruct content photo.jpg -o recon/ --layers relu1_2,relu2_2,relu3_2,relu4_2,relu5_2
  nst-jax reconstruct style painting.jpg -o recon/ --image-size 256

content writes OUTDIR/content_relu1_2.png ... one per layer; style writes OUTDIR/style_relu1_1.png,
OUTDIR/style_relu1_1-relu2_1.png ... one per growing layer set; each also writes OUTDIR/<kind>_grid.png.
exit codes: 0 done, 1 a reconstruction's loss became NaN/inf or an image could not be written, 2 bad input,
130 interrupted by Ctrl-C, 143 by SIGTERM (finished reconstructions are kept; the stop takes at most about 5 s).
"""


def build_parser() -> argparse.ArgumentParser:
    """The ``reconstruct`` argument parser; optimizer options and their defaults mirror ``StyleConfig``."""
    parser = OneLineParser(
        prog=f"{PROG} reconstruct",
        description="Reconstruct an image from white noise by one VGG19 layer's content loss at a time (content), "
        "or synthesize its texture by the style loss of growing layer sets (style): Gatys et al. 2016, figure 1.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("kind", choices=KINDS, help="content: per-layer reconstructions; style: texture syntheses")
    parser.add_argument("image", type=file_path, metavar="IMAGE", help="the image to reconstruct")
    parser.add_argument("-o", "--output", type=file_path, required=True, metavar="OUTDIR",
                        help="folder for the images (created if its parent folder exists)")
    parser.add_argument(
        "--layers", type=comma_names, default=None, metavar="LAYERS",
        help="comma-separated VGG19 layers: content, one reconstruction each (default: "
        f"{','.join(DEFAULT_LAYERS['content'])}); style, one per growing prefix (default: "
        f"{','.join(DEFAULT_LAYERS['style'])})",
    )
    parser.add_argument(
        "--batched", action=argparse.BooleanOptionalAction, default=None,
        help="run all reconstructions as one batch (default: with adam on a GPU; with lbfgs, or on a CPU, batching "
        "is slower)",
    )
    add_config_options(parser.add_argument_group("optimization"), FIELDS)
    add_run_options(parser)
    return parser


def config_from_args(args: argparse.Namespace) -> StyleConfig:
    """The base ``StyleConfig`` of the options (``UsageError`` naming the option if a value is invalid)."""
    try:
        config = StyleConfig(**{field: getattr(args, field) for field in FIELDS})
    except ValueError as error:
        raise UsageError(user_message(error)) from None
    check_optimizer_options(config)
    serving.check_options(args)
    return config


def layer_sets(kind: str, layers: Sequence[str] | None) -> list[tuple[str, ...]]:
    """One layer per content reconstruction, or the growing prefixes of ``layers`` for style."""
    layers = DEFAULT_LAYERS[kind] if layers is None else tuple(layers)
    if not layers:
        raise UsageError("--layers needs at least one layer")
    if len(set(layers)) != len(layers):
        raise UsageError(f"--layers names a layer twice: {','.join(layers)}")
    if kind == "content":
        return [(layer,) for layer in layers]
    return [layers[: end + 1] for end in range(len(layers))]


def output_paths(folder: Path, kind: str, sets: Sequence[tuple[str, ...]]) -> tuple[list[Path], Path]:
    """The file of each reconstruction (``content_relu3_2.png``, ``style_relu1_1-relu2_1.png``) and of the grid."""
    names = [layers[0] if len(layers) == 1 else f"{layers[0]}-{layers[-1]}" for layers in sets]
    return [folder / f"{kind}_{name}.png" for name in names], folder / f"{kind}_grid.png"


def check_folder(folder: Path) -> None:
    """``UsageError`` unless the output folder exists, or can be made (its parent exists)."""
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"output '{folder}' is a file; give a folder")
    if not folder.exists() and not folder.parent.is_dir():
        raise UsageError(f"output folder's parent '{folder.parent}' does not exist")


def check_outputs(args: argparse.Namespace, paths: Sequence[Path], grid: Path) -> None:
    """``UsageError`` for a reconstruction or the grid that may not be written (``nst_jax.files``)."""
    if not args.output.is_dir():
        return  # made empty once every check passed
    inputs = [(args.image, "IMAGE"), (weights_path(args), "the VGG19 weights file")]
    for path in [*paths, grid]:
        guard_output(path, "output", inputs, args)


def check_image(
    args: argparse.Namespace, config: StyleConfig, sets: Sequence[tuple[str, ...]], device: object
) -> np.ndarray:
    """IMAGE at the reconstructions' size (``UsageError`` if unreadable, too small, too large for memory, or a layer
    name is unknown)."""
    try:
        union = union_config(args.kind, config, sets)
        check_memory(args, union, image_io.image_size(args.image), device)
        content, _ = prepare_images(args.image, args.image, union)
    except ValueError as error:  # ConfigError and image_io.ImageError are ValueErrors
        raise UsageError(user_message(error).replace("the content image", "IMAGE")) from None
    return content


def saver(paths: dict[tuple[str, ...], Path], bit_depth: int, failed: list[str]) -> Callable[[Reconstruction], None]:
    """``on_done``: save each reconstruction as it finishes; a failure or a non-finite loss goes to ``failed``."""

    def on_done(reconstruction: Reconstruction) -> None:
        path, result = paths[reconstruction.layers], reconstruction.result
        if result.iterations == 0:  # its image is the untouched start: nothing to save
            if result.status == Status.NON_FINITE:
                failed.append(f"{reconstruction.label}: {nothing_finished(result)}; not written")
            return
        if result.status == Status.NON_FINITE:
            failed.append(f"{reconstruction.label}: the loss became NaN or infinite (last finite image saved)")
        try:
            if writes():
                result.save(path, bit_depth=bit_depth)
        except image_io.ImageError as error:
            failed.append(f"{reconstruction.label}: {error}")

    return on_done


def run(args: argparse.Namespace) -> int:
    """Check the inputs, reconstruct, save each image and the grid; returns the exit code."""
    config = config_from_args(args)
    with LiveView(args) as live:  # --serve: the port is taken now, before anything slow
        return _run(args, config, live)


def _run(args: argparse.Namespace, config: StyleConfig, live: LiveView) -> int:
    """``run`` with its live view."""
    start = live.started
    sets = layer_sets(args.kind, args.layers)
    paths, grid = output_paths(args.output, args.kind, sets)
    check_outputs(args, paths, grid)
    device = select_device(args.device)
    original = check_image(args, config, sets, device)
    check_folder(args.output)
    check_weights(args)
    if writes() and not args.output.exists():
        args.output.mkdir()
    reconstruct = reconstruct_content if args.kind == "content" else reconstruct_style
    layers = [s[0] for s in sets] if args.kind == "content" else sets
    batched = args.batched if args.batched is not None else batched_by_default(config)
    failed: list[str] = []
    with on_device(device):
        vgg = load_weights_loudly(args.weights, config, args.quiet)
        agree()
        total = config.iterations * (1 if batched else len(sets))
        names = [path.stem for path in paths]
        publisher = live.publisher(
            total=total, config=config, vgg=vgg, title=f"{args.kind} reconstructions of {args.image.name}",
            labels=names if batched else None, stages=() if batched else names, image=args.image,
            layers=", ".join(names), output=args.output,
        )
        if batched:  # memory may split the batch: each part shows its members
            plan = plan_batch(len(sets), *original.shape[:2], union_config(args.kind, config, sets))
            publisher.total, publisher.per_run = config.iterations * plan.runs, plan.per_run
        with progress_bar(total, "it", args.quiet) as bar:
            done = reconstruct(
                original, layers, config=timed_chunks(config), vgg=vgg, batched=batched,
                callback=bar_callback(bar, config.iterations, publisher.update),
                on_done=saver(dict(zip(sets, paths)), args.bit_depth, failed),
            )
    sheet = None
    if any(r.result.iterations for r in done):  # else every tile is the untouched start
        try:
            sheet = reconstruction_sheet(done, original=original, columns=len(done) + 1)
            if writes():
                image_io.save_image(grid, sheet)
        except image_io.ImageError as error:
            failed.append(f"the grid: {error}")
    code = report(args, done, len(sets), failed, grid, time.perf_counter() - start)
    written = sum(r.result.iterations > 0 for r in done)
    live.finish(code, f"wrote {written} reconstructions and {grid}" if sheet is not None else "nothing was written",
                sheet, non_finite=any(r.result.status == Status.NON_FINITE for r in done))
    return code


def report(
    args: argparse.Namespace, done: Sequence[Reconstruction], total: int, failed: Sequence[str], grid: Path,
    wall: float,
) -> int:
    """Print how the run ended and return its exit code."""
    for problem in failed:
        print(f"{PROG} reconstruct: error: {problem}", file=sys.stderr)
    finished = [r for r in done if r.result.status != Status.INTERRUPTED]
    if len(finished) < total:
        print(f"{PROG} reconstruct: interrupted; {len(finished)} of {total} reconstructions finished, saved in "
              f"{args.output} with the grid (an interrupted one is saved as it stood if it finished an iteration)",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    print(f"wrote {total} {args.kind} reconstructions and {grid} ({wall:.1f} s)")
    return EXIT_FAILED if failed else EXIT_OK


def main(argv: Sequence[str] | None = None, *, process: bool = False) -> int:
    """Run ``reconstruct``; returns the process exit code (``process``: see ``StopSignals``)."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else EXIT_USAGE
    return run_guarded(f"{PROG} reconstruct", run, args, process=process, interrupted="interrupted")
