"""The checks made before anything slow: the form of the command and its options, the outputs under
``nst_jax.files``' rules (no input is ever written, an existing file is replaced only if nst_jax wrote it or with
``--overwrite``), the images' sizes at every scale, the memory; and ``--dry-run``'s plan. Each failure is a
``UsageError`` naming the option that fixes it."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from pathlib import Path

import jax

from nst_jax import files, image_io, memory
from nst_jax.cli.device import select_device
from nst_jax.cli.exits import UsageError
from nst_jax.cli.options import flag, user_message
from nst_jax.cli.paths import STEM, existing_snapshots, run_inputs, style_paths
from nst_jax.config import StyleConfig
from nst_jax.problem import check_shapes, content_shape


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
