"""``nst-jax video IN STYLE [STYLE ...] -o OUT.mp4``: a clip stylized frame to frame consistently (Ruder et al.).

Every style option of the main command applies to each frame (its ``--init`` is ``--first-init`` here: ``--init``
says where the later frames start); the video's own options come from ``VideoConfig``. Everything cheap is checked
before anything slow (the clip, its range, the styles, the output under ``nst_jax.files``' rules, the memory); the
output is muxed whole under a temporary name and renamed; Ctrl-C muxes the frames finished and exits 130 (with
``--work-dir``, ``--resume`` goes on from there). Errors and exit codes follow the main command.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from nst_jax import files, image_io
from nst_jax.argparsing import OneLineParser
from nst_jax.cli import distributed
from nst_jax.cli.checks import check_memory, decode_masks, guard_output
from nst_jax.cli.device import on_device, select_device
from nst_jax.cli.exits import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, PROG, UsageError
from nst_jax.cli.loading import load_weights_loudly
from nst_jax.cli.options import add_config_options, add_run_options, comma_names, command_line_fields, flag
from nst_jax.cli.paths import weights_path
from nst_jax.cli.progress import progress_bar, timed_chunks
from nst_jax.cli.signals import run_guarded
from nst_jax.config import ConfigError, StyleConfig, option_help
from nst_jax.optimize import Status
from nst_jax.problem import check_shapes
from nst_jax.video.config import VideoConfig, render_video_fields, video_option_help
from nst_jax.video.io import CRF, VIDEO_SUFFIXES, VideoError, is_own_video, probe
from nst_jax.video.stylize import (
    VideoProgress,
    VideoResult,
    check_video_config,
    frame_shape,
    steps_for,
    stylize_video,
)
from nst_jax.video.workdir import WorkDirError

# StyleConfig fields a video does not take: one size per frame (no coarse-to-fine).
NOT_FOR_VIDEO: tuple[str, ...] = ("scales", "scale_iterations")
# The command line's names where they differ from the fields': the first frame's start is StyleConfig's init.
RENAMED: dict[str, str] = {"init": "--first-init", "frame_init": "--init"}
# How the options of VideoConfig's field types are parsed.
_VIDEO_PARSERS: dict[str, Callable[[str], Any] | None] = {
    "str": None, "float": float, "float | None": float, "int": int, "int | None": int,
    "tuple[int, ...]": lambda text: tuple(int(value) for value in comma_names(text)),
}
EPILOG = f"""\
examples:
  nst-jax video clip.mp4 starry_night.jpg -o clip_starry.mp4 --image-size 512
  nst-jax video clip.mp4 style.jpg -o out.mp4 --start 10 --end 14 --work-dir work/   # Ctrl-C, then --resume
  nst-jax video clip.mp4 style.jpg -o out.mp4 --schedule jacobi --passes 15    # each pass one batch per device

The output ({', '.join(VIDEO_SUFFIXES)}) is H.264 (yuv420p, --crf) at the source's frame times (its exact rate,
variable rates too) with its audio of the same span (copied; re-encoded as AAC where the container needs it); the
frames are optimized at --image-size (both sides rounded down to even). Schedules: single (Ruder et al.'s single
pass, frame by frame, each started from the previous result warped and tied to it by the temporal term), sweep
(their multi-pass algorithm), jacobi and red-black (passes whose frames run as one batch). --log-json records each
frame's warp error, mean c (x_i - w(x_(i-1)))^2, which measures flicker.
exit codes: 0 done, 1 a frame's loss became NaN/inf (its last finite image kept) or a file could not be written,
2 bad input, 130 interrupted by Ctrl-C and 143 by SIGTERM (the frames finished are muxed into the output).
"""


def video_flag(name: str) -> str:
    """The option of a ``StyleConfig`` or ``VideoConfig`` field in this command (``init`` is ``--first-init``)."""
    return RENAMED.get(name, flag(name))


def add_video_options(group: argparse._ArgumentGroup) -> None:
    """The options of ``VideoConfig``'s fields (help, metavar, choices and default from their metadata)."""
    for config_field in dataclasses.fields(VideoConfig):
        metadata = config_field.metadata
        if not metadata["command_line"]:
            continue
        default = metadata["default_text"]
        shown = (",".join(map(str, config_field.default)) if isinstance(config_field.default, tuple)
                 else str(config_field.default)) if default is None else render_video_fields(default, video_flag)
        prefix = "comma-separated " if config_field.type.startswith("tuple") else ""
        text = f"{prefix}{video_option_help(config_field.name, video_flag)} (default: {shown})"
        group.add_argument(video_flag(config_field.name), dest=config_field.name, default=config_field.default,
                           type=_VIDEO_PARSERS[config_field.type], metavar=metadata["metavar"],
                           choices=metadata["choices"], help=text.replace("%", "%%"))  # argparse formats with %


def build_parser() -> argparse.ArgumentParser:
    """The ``video`` argument parser; style options from ``StyleConfig``, video options from ``VideoConfig``."""
    parser = OneLineParser(
        prog=f"{PROG} video",
        description="Stylize a video in the style of one or more images, frame to frame consistent (Ruder, "
        "Dosovitskiy & Brox, 'Artistic style transfer for videos', 2016): each frame is tied to the earlier results "
        "warped onto it by optical flow, where the flow is reliable.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("video", type=Path, metavar="IN", help="the video to stylize")
    parser.add_argument("styles", type=Path, nargs="+", metavar="STYLE", help="style image(s); several are blended")
    parser.add_argument("-o", "--output", type=Path, required=True, metavar="OUT",
                        help=f"the stylized video ({', '.join(VIDEO_SUFFIXES)})")
    style = parser.add_argument_group("style of each frame")
    names = [name for name in command_line_fields() if name not in NOT_FOR_VIDEO and name != "init"]
    add_config_options(style, names)
    style.add_argument("--first-init", dest="init", default=StyleConfig.init, metavar="INIT",
                       help=f"the first frame's {option_help('init')} (default: {StyleConfig.init})")
    style.add_argument("--style-masks", type=comma_names, default=None, metavar="M1,M2,...",
                       help="one greyscale image per STYLE, white where that style applies, the same on every frame")
    style.add_argument("--style-source-masks", type=comma_names, default=None, metavar="S1,S2,...",
                       help="per STYLE, the part of the style image that defines it (white), or 'all'")
    add_video_options(parser.add_argument_group("frame to frame (Ruder et al.)"))
    clip = parser.add_argument_group("clip and output")
    clip.add_argument("--start", type=float, default=None, metavar="S",
                      help="first frame: the one shown at S seconds or after (default: the first)")
    clip.add_argument("--end", type=float, default=None, metavar="S",
                      help="stop before the frame shown at S seconds (default: the end)")
    clip.add_argument("--max-frames", type=int, default=None, metavar="N", help="at most N frames")
    clip.add_argument("--crf", type=int, default=CRF, metavar="Q",
                      help=f"H.264 quality, 0 (lossless) to 51 (default: {CRF}, about visually lossless)")
    clip.add_argument("--no-audio", dest="audio", action="store_false", help="leave the audio out")
    clip.add_argument("--work-dir", type=Path, default=None, metavar="DIR",
                      help="folder for the flows and the frames finished (made if missing); with it an interrupted "
                      "run can be resumed")
    clip.add_argument("--resume", action="store_true", help="go on from the frames finished in --work-dir")
    clip.add_argument("--log-json", type=Path, default=None, metavar="PATH",
                      help="write the settings and every frame's losses, warp error and time as JSON")
    add_run_options(parser)
    return parser


def configs_from_args(args: argparse.Namespace) -> tuple[StyleConfig, VideoConfig]:
    """The ``StyleConfig`` and ``VideoConfig`` of the options (``UsageError`` naming the option)."""
    try:
        config = StyleConfig(**{name: getattr(args, name) for name in command_line_fields()
                                if name not in NOT_FOR_VIDEO})
        video = VideoConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(VideoConfig)
                               if f.metadata["command_line"]})
        check_video_config(config, video)
    except ConfigError as error:
        raise UsageError(render_video_fields(error.template, video_flag)) from None
    return config, video


def check_request(args: argparse.Namespace, config: StyleConfig) -> tuple[Any, range]:
    """The clip's ``VideoInfo`` and frame range, after checking everything cheap (``UsageError`` at the first
    problem): the output and the log may be written, the clip is a video with those frames, the styles and masks
    can be read and are large enough."""
    if args.resume and args.work_dir is None:
        raise UsageError("--resume needs the --work-dir of the run to resume")
    if args.bit_depth != image_io.BIT_DEPTHS[0]:
        raise UsageError("--bit-depth is for PNG images; the video is 8-bit H.264")
    if args.output.suffix.lower() not in VIDEO_SUFFIXES:
        raise UsageError(f"output '{args.output}' has unsupported suffix '{args.output.suffix}'; use one of "
                         f"{', '.join(VIDEO_SUFFIXES)}")
    masks = [Path(name) for name in args.style_masks or []]
    sources = [Path(name) for name in args.style_source_masks or [] if name != "all"]
    inputs = [(args.video, "IN"), *((path, f"style image {i}") for i, path in enumerate(args.styles, start=1)),
              *((path, "a style mask") for path in [*masks, *sources]), (weights_path(args), "the weights file")]
    if config.init not in ("noise", "content", "style"):
        inputs.append((Path(config.init), "the --first-init image"))
    guard_output(args.output, "output", inputs, args, owned=is_own_video)
    if args.log_json is not None:
        guard_output(args.log_json, "--log-json", [*inputs, (args.output, "the output")], args,
                     owned=files.is_own_json)
    if args.work_dir is not None and files.same_file(args.work_dir, args.output):
        raise UsageError(f"--work-dir '{args.work_dir}' is the output; give another folder")
    for option, names in (("--style-masks", args.style_masks), ("--style-source-masks", args.style_source_masks)):
        if names is not None and len(names) != len(args.styles):
            raise UsageError(f"{option} has {len(names)} image(s) for {len(args.styles)} style image(s); give one "
                             "per style, in the same order")
    try:
        info = probe(args.video)
        frames = info.frame_range(args.start, args.end, args.max_frames)
        check_shapes((info.height, info.width), config, styles=[image_io.image_size(style) for style in args.styles])
    except ValueError as error:  # VideoError, ConfigError and image_io.ImageError are ValueErrors
        message = render_video_fields(error.template, video_flag) if isinstance(error, ConfigError) else str(error)
        raise UsageError(message.replace("the content image is", "a frame is")) from None
    if not 0 <= args.crf <= 51:
        raise UsageError(f"--crf must be from 0 (lossless) to 51, got {args.crf}")
    return info, frames


def bar_callback(bar: Any, steps: Sequence[Any], frames: int) -> Callable[[VideoProgress], None]:
    """A ``VideoProgress`` callback moving ``bar`` over every step's frame-iterations (a step's iterations times its
    frames; a frame that stops early jumps to its step's end), its text naming the frame or pass."""
    before = [0]
    for step in steps:
        before.append(before[-1] + step.iterations * len(step.tasks))

    def callback(progress: VideoProgress) -> None:
        step = steps[progress.step - 1]
        done = before[progress.step - 1] + progress.progress.iteration * len(step.tasks)
        where = (f"frame {progress.frames[0] + 1}/{frames}" if len(progress.frames) == 1
                 else f"{len(progress.frames)} frames")
        if progress.passes > 1:
            where = f"pass {progress.pass_index}/{progress.passes}, {where}"
        bar.set_postfix_str(where, refresh=False)
        bar.update(done - bar.n)

    return callback


def run(args: argparse.Namespace) -> int:
    """Check everything cheap, load the network, stylize the clip and report; returns the exit code."""
    start = time.perf_counter()
    config, video = configs_from_args(args)
    info, frames = check_request(args, config)
    device = select_device(args.device)
    check_memory(args, config, frame_shape(info, config), device, single=True)
    masks = decode_masks(None if args.style_masks is None else [Path(name) for name in args.style_masks])
    sources = decode_masks(None if args.style_source_masks is None
                         else [None if name == "all" else Path(name) for name in args.style_source_masks])
    with on_device(device):
        vgg = load_weights_loudly(args.weights, config, args.quiet)
        try:
            video.resolved_temporal_weight(vgg.info.convention, config.loss_form)
        except ConfigError as error:
            raise UsageError(render_video_fields(error.template, video_flag)) from None
        distributed.agree()
        steps = steps_for(len(frames), config, video)
        with progress_bar(sum(s.iterations * len(s.tasks) for s in steps), "it", args.quiet) as bar:
            try:
                result = stylize_video(
                    args.video, args.styles, args.output, config=timed_chunks(config), video=video,
                    vgg=vgg, start=args.start, end=args.end, max_frames=args.max_frames, crf=args.crf,
                    audio=args.audio, work_dir=args.work_dir, resume=args.resume, overwrite=args.overwrite,
                    style_masks=masks, style_source_masks=sources, callback=bar_callback(bar, steps, len(frames)))
            except (VideoError, WorkDirError) as error:
                raise UsageError(str(error)) from None
    logged = True
    if args.log_json is not None and distributed.writes():
        try:
            files.write_json(args.log_json, {**result.to_dict(), "wall_s": time.perf_counter() - start})
        except OSError as error:
            print(f"{PROG} video: error: cannot write --log-json '{args.log_json}': {error.strerror or error}",
                  file=sys.stderr)
            logged = False
    code = report(result, args.output, time.perf_counter() - start)
    return EXIT_FAILED if code == EXIT_OK and not logged else code


def report(result: VideoResult, output: Path, wall: float) -> int:
    """Print how the run ended and return its exit code."""
    done, total = len(result.frames), result.total_frames
    errors = result.warp_errors
    stability = f", mean warp error {errors.mean():.3g}" if errors.size else ""
    if result.status == Status.INTERRUPTED:
        if done == 0:
            print(f"{PROG} video: interrupted before the first frame finished; nothing was written", file=sys.stderr)
        else:
            print(f"{PROG} video: interrupted after {done} of {total} frames; muxed them into {output}",
                  file=sys.stderr)
        return EXIT_INTERRUPTED
    height, width = result.size
    print(f"wrote {output}: {done} frames of {width}x{height}{stability}, {wall:.1f} s "
          f"({wall / max(done, 1):.1f} s per frame)")
    if result.status == Status.NON_FINITE:
        print(f"{PROG} video: error: the loss of some frames became NaN or infinite; their last finite images were "
              "used. Lower --learning-rate (adam) or the loss weights, or try --optimizer lbfgsb", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def main(argv: Sequence[str] | None = None, *, process: bool = False) -> int:
    """Run ``video``; returns the process exit code (``process``: see ``StopSignals``)."""
    try:
        args = build_parser().parse_intermixed_args(argv)
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else EXIT_USAGE
    return run_guarded(f"{PROG} video", run, args, process=process, interrupted="interrupted; nothing was written")
