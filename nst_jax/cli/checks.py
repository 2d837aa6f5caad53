"""Every check of a run of the main command, in one place (``check_run``), made before anything slow (loading the
network, compiling) by the run and by ``--dry-run`` alike; then ``--dry-run``'s plan (``dry_run``).

The checks: the form of the command and its options (sweeps and ``--batch``, masks, ``--shard``, options the
optimizer would ignore), the outputs under ``nst_jax.files``' rules (no input is ever written, an existing file is
replaced only if nst_jax wrote it or with ``--overwrite``), the inputs (decoded, large enough at every scale; masks
that select something), and the memory. Each failure is a ``UsageError`` naming the option that fixes it; with
``--batch`` a content that cannot run is skipped with its reason, as the run skips it.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path

import jax
import numpy as np

from nst_jax import files, image_io, memory
from nst_jax.cli import serving
from nst_jax.cli.contents import (
    batch_inputs,
    batch_outputs,
    check_batch_folders,
    find_contents,
    outside_output_folder,
    split_finished,
)
from nst_jax.cli.device import select_device
from nst_jax.cli.exits import EXIT_FAILED, EXIT_OK, UsageError
from nst_jax.cli.options import (
    BATCH_FORMATS,
    BATCH_SUFFIXES,
    config_from_args,
    flag,
    user_message,
    weight_sweep,
)
from nst_jax.cli.paths import (
    STEM,
    existing_snapshots,
    grid_path,
    init_paths,
    mask_paths,
    member_paths,
    run_inputs,
    source_mask_paths,
    style_paths,
    weights_path,
)
from nst_jax.config import StyleConfig, unused_by_optimizer
from nst_jax.problem import check_shapes, checked_mask, content_shape, stage_shapes, style_shape
from nst_jax.weights import WeightsError, load_weights, weights_attributes


@dataclasses.dataclass(frozen=True)
class BatchContents:
    """``--batch``'s contents, checked: each one's output, which run now, which are done, which are skipped."""

    contents: list[Path]
    outputs: dict[Path, Path]
    todo: list[Path]
    """Contents to stylize now, in order."""
    finished: list[Path]
    """Outputs nst_jax already wrote (a resumed run skips them; ``--overwrite`` redoes them)."""
    skipped: dict[Path, str]
    """Contents that will not run, with the reason (an output held by a file nst_jax did not write, an unreadable
    or too small image, its own masks missing or black, no memory)."""


@dataclasses.dataclass(frozen=True)
class CheckedRun:
    """A run of the main command that passed every check, with what its form needs, decoded."""

    config: StyleConfig
    lists: dict[str, tuple[float, ...]]
    """A weight sweep's values by field (empty: no sweep)."""
    device: jax.Device | None
    styles: list[np.ndarray]
    sources: list[np.ndarray | None] | None
    """--style-source-masks, decoded (None: a style image used whole)."""
    content: np.ndarray | None = None
    """The content image (not with --batch)."""
    shape: tuple[int, int] | None = None
    """The content's (height, width) as read (not with --batch)."""
    masks: list[np.ndarray] | None = None
    """--style-masks, decoded (with --batch: the set every content shares; None if each has its own)."""
    batch: BatchContents | None = None


def check_run(args: argparse.Namespace) -> CheckedRun:
    """Every check of the run ``args`` asks for (one image, a weight sweep or ``--batch``), without loading the
    network or compiling; ``UsageError`` at the first problem. Nothing is written."""
    config = config_from_args(args)
    lists = weight_sweep(args, config)
    check_form(args, config, lists)
    if args.batch is not None:
        return _check_batch(args, config)
    if lists:
        paths = member_paths(args.output, lists)
        check_outputs(args, [*paths, grid_path(args.output)], snapshots_of=paths, iterations=config.iterations)
    else:
        check_outputs(args, [args.output], snapshots_of=[args.output], iterations=config.total_iterations)
    device = select_device(args.device)
    shape = checked_shape(args, config)
    check_memory(args, config, shape, device, what="one member of " if lists else "", single=not lists)
    content, styles = load_inputs(args, config)
    masks, sources = load_masks(args)
    for _, content_at, styles_at in stage_shapes(shape, config, [style.shape for style in styles]):
        _check_region_masks(masks, args.style_masks, content_at)
        _check_source_masks(sources, args.style_source_masks, styles_at)
    check_weights(args)
    return CheckedRun(config, lists, device, styles, sources, content, shape, masks)


def check_form(args: argparse.Namespace, config: StyleConfig, lists: dict[str, tuple[float, ...]]) -> None:
    """``UsageError`` for options that do not fit together: the form (single, sweep, ``--batch``), masks, blend
    weights, ``--shard spatial`` with members, and options the optimizer would ignore."""
    check_mode(args, lists)
    check_single_only(args, lists)
    check_masks(args, config)
    check_blend_weights(config, style_paths(args))
    if config.shard == "spatial" and (lists or args.batch is not None):
        form = "--batch" if args.batch is not None else "a weight sweep"
        raise UsageError(f"--shard spatial splits one image's rows over the devices; {form} spreads its members over "
                         "them instead: use --shard batch, auto or none")
    check_optimizer_options(config)
    serving.check_options(args)


def check_optimizer_options(config: StyleConfig) -> None:
    """``UsageError`` for an option the chosen optimizer would ignore (``config.unused_by_optimizer``)."""
    unused = unused_by_optimizer(config)
    if unused is not None:
        raise UsageError(user_message(unused))


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


def check_weights(args: argparse.Namespace) -> None:
    """``UsageError`` unless the weights file is there and an nst_jax weights file (read from its header only; the
    run reads and validates the whole file), with the message and the fix ``load_weights`` gives."""
    path = weights_path(args)
    if files.file_kind(path) is None and path.is_file() and weights_attributes(path) is not None:
        return
    try:
        load_weights(path)  # fails at once here, saying why and how to fetch the weights
    except WeightsError as error:
        raise UsageError(str(error)) from None


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


def check_batch(args: argparse.Namespace, contents: Sequence[Path], outputs: Sequence[Path]) -> None:
    """``UsageError`` for a ``--batch`` output or log that may not be written (``nst_jax.files``): an output that
    is an input, a folder, a device; an existing output nst_jax did not write is skipped later (``split_finished``)
    unless --overwrite."""
    inputs = batch_inputs(args, contents)
    for output in outputs:
        for source, label in inputs:
            if files.same_file(output, source):
                raise UsageError(f"output '{output}' would overwrite the input image '{source}' ({label}); choose "
                                 "another -o")
        if args.output.is_dir():
            guard_output(output, "output", inputs, args, owned=lambda path: True)  # folders, devices, FIFOs
    check_log(args, [*inputs, *((output, "an image this run writes") for output in outputs)])


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
    if not args.batch.strip():
        raise UsageError("--batch needs a folder or a glob pattern, got ''")
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
        check_shapes(shape, config, styles=[image_io.image_size(style) for style in args.styles])
    except ValueError as error:  # ConfigError and image_io.ImageError are ValueErrors
        raise UsageError(user_message(error)) from None
    return shape


def load_inputs(args: argparse.Namespace, config: StyleConfig) -> tuple[np.ndarray, list[np.ndarray]]:
    """The content and style images decoded (``UsageError`` if one cannot be read), and the ``--init`` image checked;
    their sizes were checked from the headers (``checked_shape``), and ``stylize`` resizes them, once."""
    try:
        for path in init_paths(config.init):
            image_io.load_image(path)
        return image_io.load_image(args.content), [image_io.load_image(style) for style in args.styles]
    except ValueError as error:  # image_io.ImageError is a ValueError
        raise UsageError(user_message(error)) from None


def decode_masks(paths: Sequence[Path | None] | None) -> list[np.ndarray | None] | None:
    """Mask files decoded (None entries kept), ``UsageError`` for one that cannot be read; resized by the run."""
    if paths is None:
        return None
    try:
        return [None if path is None else image_io.load_image(path) for path in paths]
    except ValueError as error:  # image_io.ImageError is a ValueError
        raise UsageError(user_message(error)) from None


def load_masks(args: argparse.Namespace) -> tuple[list[np.ndarray] | None, list[np.ndarray | None] | None]:
    """--style-masks (unless each --batch content has its own, ``{stem}``) and --style-source-masks, decoded
    (``UsageError`` for one that cannot be read)."""
    own = args.style_masks is not None and any(STEM in name for name in args.style_masks)
    return None if own else decode_masks(mask_paths(args)), decode_masks(source_mask_paths(args))


def _check_region_masks(masks: Sequence[np.ndarray] | None, names: Sequence[str] | None,
                        shape: Sequence[int] | None) -> None:
    """``UsageError`` for a --style-masks image that selects nothing at (height, width) ``shape`` (None: its own)."""
    for index, (mask, name) in enumerate(zip(masks or [], names or []), start=1):
        try:
            checked_mask(mask, shape or mask.shape, f"--style-masks image {index} '{name}'",
                         f"style image {index} would apply nowhere")
        except ValueError as error:
            raise UsageError(str(error)) from None


def _check_source_masks(sources: Sequence[np.ndarray | None] | None, names: Sequence[str] | None,
                        shapes: Sequence[Sequence[int]] | None) -> None:
    """``UsageError`` for a --style-source-masks image that selects nothing at its style image's (height, width) in
    ``shapes`` (None: at its own)."""
    for index, (mask, name) in enumerate(zip(sources or [], names or []), start=1):
        if mask is None:
            continue
        try:
            at = shapes[index - 1] if shapes is not None else mask.shape
            checked_mask(mask, at, f"--style-source-masks image {index} '{name}'",
                         f"it selects no part of style image {index}")
        except ValueError as error:
            raise UsageError(str(error)) from None


def _gib(count: int) -> str:
    """Bytes in GiB, for messages."""
    return f"{count / 2**30:.1f} GiB"


def check_memory(
    args: argparse.Namespace, config: StyleConfig, shape: Sequence[int], device: jax.Device | None, *, what: str = "",
    single: bool = False,
) -> None:
    """``UsageError`` if one image of the run (content of ``shape``) needs more memory than ``device`` has free
    (``single``: as ``stylize`` plans it, ``memory.plan_run``, tiles and devices included), naming the largest
    --image-size (and --style-scale) that fits, whole and in tiles; skipped with --skip-memory-check."""
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
    scale = memory.largest_style_scale(shape, config, free)
    hints = [f"the largest --style-scale that fits is {scale:g}"] if scale is not None else []
    hints += _size_hints(shape, config, free, device.platform, single=single)
    raise UsageError(
        f"{what}this run needs about {_gib(needed)} of {device.platform.upper()} memory but {_gib(free)} is free: "
        f"{' and '.join(hints) or 'not even a 16-pixel image fits'}; --skip-memory-check runs it anyway"
    )


def _size_hints(shape: Sequence[int], config: StyleConfig, free: int, platform: str, *, single: bool) -> list[str]:
    """The largest --image-size that fits ``free`` bytes as the run would go (whole, or in tiles where ``--shard
    auto`` or ``--tile-size`` tile it), and the other way's, so that neither limit is mistaken for the only one."""
    devices = len(jax.local_devices())
    shards = devices if single and config.shard in ("auto", "spatial") else 1
    tile = config.tile_size or memory.TILE_SIZES[-1]
    whole = memory.largest_image_size(shape, config.replace(tile_size=None), free, platform=platform,
                                      shards=shards if config.shard == "spatial" else 1, up_to=memory.LARGEST_SIDE)
    tiled = memory.largest_image_size(shape, config.replace(tile_size=tile), free, platform=platform, shards=shards,
                                      up_to=memory.LARGEST_SIDE)
    show = lambda size: "none" if size is None else str(size)  # noqa: E731
    if not single:
        return [f"the largest --image-size that fits is {show(whole)} (a weight sweep or --batch runs whole images)"]
    if config.tile_size is not None:
        return [f"the largest --image-size that fits is {show(tiled)} in tiles of {tile} px ({show(whole)} whole)"]
    if config.shard == "auto":
        return [f"the largest --image-size that fits is {show(tiled)}, in tiles of {tile} px, which --shard auto "
                f"chooses by itself ({show(whole)} whole)"]
    return [f"the largest --image-size that fits is {show(whole)} whole (--tile-size {tile} fits up to {show(tiled)})"]


def _check_batch(args: argparse.Namespace, config: StyleConfig) -> CheckedRun:
    """The checks of ``--batch``: the output folder and every output, the styles and masks, then each content
    (``content_problems``); contents that cannot run are skipped, as the run skips them."""
    check_batch_folders(args)
    suffix = args.batch_format or BATCH_FORMATS[0]
    contents = outside_output_folder(find_contents(args.batch), args.output, suffix)
    if not contents:
        raise UsageError(
            f"--batch '{args.batch}' matches no image files (give a folder holding {', '.join(BATCH_SUFFIXES)} "
            "files, or a glob pattern such as 'photos/*.jpg')"
        )
    outputs = batch_outputs(contents, args.output, suffix)
    check_batch(args, contents, outputs)
    device = select_device(args.device)
    try:
        styles = [image_io.load_image(path) for path in style_paths(args)]
        for path in init_paths(config.init):
            image_io.load_image(path)
    except image_io.ImageError as error:
        raise UsageError(str(error)) from None
    masks, sources = load_masks(args)
    _check_region_masks(masks, args.style_masks, None)  # at their own size here; at each content's below
    _check_source_masks(sources, args.style_source_masks, None)
    todo, finished, foreign = split_finished(contents, outputs, args.overwrite)
    problems = content_problems(args, [content for content in todo if content not in foreign], config,
                                [style.shape for style in styles],
                                masks=masks, sources=sources)
    batch = BatchContents(
        contents=list(contents), outputs=dict(zip(contents, outputs)),
        todo=[content for content in todo if content not in foreign and content not in problems],
        finished=finished, skipped={**foreign, **problems},
    )
    if batch.todo:  # the run loads the network only then
        check_weights(args)
    return CheckedRun(config, {}, device, styles, sources, masks=masks, batch=batch)


def content_problems(
    args: argparse.Namespace, contents: Sequence[Path], config: StyleConfig, styles: Sequence[Sequence[int]], *,
    masks: Sequence[np.ndarray] | None = None, sources: Sequence[np.ndarray | None] | None = None,
) -> dict[Path, str]:
    """The contents of ``--batch`` that cannot run, with the reason in the options' names: unreadable, too small (or
    the style images, of original ``styles`` shapes) at their size, a run too large for memory, or a mask that selects
    nothing at their size: their own (``{stem}``, read here) or the shared ``masks`` and ``sources``, decoded."""
    problems: dict[Path, str] = {}
    own = args.style_masks is not None and any(STEM in name for name in args.style_masks)
    for content in contents:
        try:
            shape = image_io.image_size(content)
            check_shapes(shape, config, styles=styles)
            check_memory(args, config, shape, None)
            content_at = content_shape(shape, config.image_size)
            regions = mask_paths(args, content) if own else masks
            for index, mask in enumerate(regions or [], start=1):
                checked_mask(mask, content_at, f"style mask {index}" + (f" '{mask}'" if own else ""),
                             "its style would apply nowhere")
            for index, (mask, style) in enumerate(zip(sources or [], styles), start=1):
                if mask is not None:
                    checked_mask(mask, style_shape(style, content_at, config.style_scale), f"style source mask {index}",
                                 f"it selects no part of style image {index}")
        except ValueError as error:  # image_io.ImageError and ConfigError
            problems[content] = user_message(error)
        except UsageError as error:
            problems[content] = str(error)
    return problems


def dry_run(args: argparse.Namespace, checked: CheckedRun) -> int:
    """Print the plan of a checked run (``--dry-run``): each content's as one image (``memory.plan_run``) and, for
    a sweep or a batch, how the members are split over the devices; with ``--batch`` the contents that would be
    skipped, and why. Nothing is loaded or run; the exit code is the run's where the checks decide it (a batch
    with nothing it could write: 1)."""
    config = checked.config
    if checked.batch is None:
        print(f"{args.content}: {memory.plan_run(checked.shape, config).describe()}")
        members = len(next(iter(checked.lists.values()), ()))
        if members:
            print("  " + memory.plan_batch(members, *content_shape(checked.shape, config.image_size), config)
                  .describe())
        return EXIT_OK
    batch = checked.batch
    for content in batch.todo:
        shape = image_io.image_size(content)
        print(f"{content}: {memory.plan_run(shape, config).describe()}")
    for content, reason in batch.skipped.items():
        print(f"{content}: would be skipped: {reason}")
    if batch.finished:
        print(f"{len(batch.finished)} already written in {args.output} (--overwrite redoes them)")
    if not batch.todo:
        print(f"nothing to do: all {len(batch.contents)} images are in {args.output}" if not batch.skipped
              else f"none of the {len(batch.skipped)} images would be written")
        return EXIT_FAILED if batch.skipped else EXIT_OK
    sizes: dict[tuple[int, int], int] = {}
    for content in batch.todo:
        at = content_shape(image_io.image_size(content), config.image_size)
        sizes[at] = sizes.get(at, 0) + 1
    for (height, width), count in sizes.items():
        print("  " + memory.plan_batch(count, height, width, config).describe())
    return EXIT_OK
