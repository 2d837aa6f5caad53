"""Command line of the converter: choose a source, convert, validate, write atomically, report."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from nst_jax.argparsing import OneLineParser, file_path
from nst_jax.config import SEED_LIMIT
from nst_jax.files import OutputError, check_output
from nst_jax.vgg import ARCHITECTURES, PREPROCESSINGS, conv_layers, preprocessing_params
from nst_jax.weights import (
    WeightsError,
    default_weights_path,
    file_sha256,
    is_weights_file,
    read_pretrained,
    weights_attributes,
    write_weights,
)

PROG = "python -m convert_weights"
NORMALIZE_SIZES = (32, 4096)
"""--normalize-size's range: relu5_4 needs 16 px (32 keeps every pooled map at least 2 wide); at 4096 px one
image's first activation alone is 4 GiB (64 channels x 16.8 M positions in float32)."""


def _seed(text: str) -> int:
    """A --random seed, 0 to 2**32 - 1, as ``nst-jax --seed`` takes."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value < SEED_LIMIT:
        raise argparse.ArgumentTypeError(f"expected an integer from 0 to {SEED_LIMIT - 1}, got {text!r}")
    return value


def _normalize_size(text: str) -> int:
    """--normalize-size in pixels, within ``NORMALIZE_SIZES``."""
    low, high = NORMALIZE_SIZES
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not low <= value <= high:
        raise argparse.ArgumentTypeError(f"expected {low} to {high} pixels, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The converter's argument parser."""
    parser = OneLineParser(
        prog=PROG, error_name="convert_weights",
        description="Convert a VGG19 or VGG16 (torchvision's, or the Caffe models in torchvision's layout) into "
        "nst_jax's HDF5 weights file.",
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--torchvision", action="store_true",
        help="download torchvision's pretrained vgg19 (IMAGENET1K_V1) and convert it (the default)",
    )
    source.add_argument(
        "--pth", type=file_path, metavar="FILE",
        help="convert a torchvision-layout state dict file: torchvision's, or the Caffe VGG19/VGG16 as neural-style-pt "
        "downloads them (vgg19-d01eb7cb.pth, vgg16-00b39a1b.pth; give them --preprocessing caffe)",
    )
    source.add_argument(
        "--random", action="store_true",
        help="write a random-init VGG19 (torchvision's init), for tests and benchmarks only",
    )
    parser.add_argument("--seed", type=_seed, default=0, help=f"seed for --random, 0 to {SEED_LIMIT - 1} (default 0)")
    parser.add_argument(
        "--arch", choices=tuple(ARCHITECTURES), default=None,
        help="vgg19 or vgg16 (default: from the .pth's conv count; vgg19 for --torchvision and --random)",
    )
    parser.add_argument(
        "--preprocessing", choices=PREPROCESSINGS, default=None,
        help="the input the weights expect: torchvision (RGB in [0, 1], ImageNet mean/std) or caffe (BGR x256 minus "
        "the BGR mean, as neural-style-pt feeds the Caffe models); default torchvision, caffe for the two Caffe file "
        "names above",
    )
    parser.add_argument(
        "--normalize-on", metavar="IMAGES", default=None,
        help="make the paper's normalized network: rescale the weights so every post-ReLU channel has mean 1 over "
        "these images (a folder or a glob pattern) and positions",
    )
    parser.add_argument("--normalize-size", type=_normalize_size, default=None, metavar="PX",
                        help=f"longest side the --normalize-on images are resized to, {NORMALIZE_SIZES[0]} to "
                        f"{NORMALIZE_SIZES[1]} (default 512)")
    parser.add_argument(
        "-o", "--output", type=file_path, default=None,
        help=f"output HDF5 file (default: {default_weights_path()}); an existing file is replaced only if it holds "
        "nst_jax weights, and pretrained weights never by random ones",
    )
    parser.add_argument(
        "--overwrite", action="store_true",
        help="replace the output even if it is not an nst_jax weights file, or holds pretrained weights and --random "
        "is given",
    )
    return parser


def converter_inputs(args: argparse.Namespace) -> list[tuple[Path, str]]:
    """Every file the conversion reads: the .pth, and each image --normalize-on takes (a folder, a glob)."""
    from convert_weights.normalize import NormalizationError, image_paths

    inputs = [(args.pth, "the .pth file being converted")] if args.pth is not None else []
    try:
        images = image_paths(args.normalize_on) if args.normalize_on is not None else []
    except NormalizationError:  # none: reported when the conversion reaches them
        images = []
    return inputs + [(path, "an image --normalize-on normalizes on") for path in images]


def check_output_file(output: Path, args: argparse.Namespace) -> None:
    """``OutputError`` unless the converter may write ``output`` (``nst_jax.files``' rules; checked before any
    download): none of the files it reads (``converter_inputs``), by any spelling or link, even with --overwrite;
    an existing file only if it holds nst_jax weights, or with --overwrite; and pretrained weights never replaced by
    random ones without --overwrite. A missing folder is made only for the default output (the cache folder)."""
    if not output.parent.is_dir() and args.output is None:
        return  # write_weights makes the default cache folder: nothing there to keep
    check_output(output, "output", converter_inputs(args), owned=is_weights_file, overwrite=args.overwrite)
    if args.random and not args.overwrite and is_weights_file(output):
        attrs = weights_attributes(output) or {}
        try:
            pretrained = read_pretrained(attrs.get("pretrained", False), str(output))
        except WeightsError:
            pretrained = True  # unclear: treat it as worth keeping
        if pretrained:
            raise OutputError(f"output '{output}' holds pretrained weights and --random would replace them; choose "
                              "another -o, or pass --overwrite to replace them")


def _normalize(params: dict, preprocessing: str, paths: list[Path], size: int, pattern: str) -> tuple[dict, str]:
    """``params`` normalized as the paper's network on the images at ``paths``, and the record of what on."""
    from convert_weights.normalize import channel_means, load_images, normalize_params

    print(f"normalizing on {len(paths)} image(s) at {size} px ...", file=sys.stderr)
    images = load_images(paths, size)
    means = channel_means({**params, "input": preprocessing_params(preprocessing)}, images)
    dead = sum(int(np.sum(mean <= 0)) for mean in means.values())
    print(f"channel means from {min(float(m[m > 0].min()) for m in means.values() if np.any(m > 0)):.3g} to "
          f"{max(float(m.max()) for m in means.values()):.3g}; {dead} dead channel(s) left as they were",
          file=sys.stderr)
    return normalize_params(params, means), f"{len(paths)} image(s) from {pattern} at {size} px, max pooling"


def _fail(message: str) -> int:
    """Print one error line and return exit code 2."""
    print(f"convert_weights: error: {message}", file=sys.stderr)
    return 2


def main(argv: Sequence[str] | None = None) -> int:
    """Run the converter; returns the process exit code."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit_:  # usage errors (2) and --help (0)
        return exit_.code if isinstance(exit_.code, int) else 2
    output = (args.output or default_weights_path()).expanduser()
    if output.is_dir():
        return _fail(f"output {output} is a directory; give a file name such as {output / 'vgg19.h5'}")
    try:
        check_output_file(output, args)
    except OutputError as error:
        return _fail(str(error))
    try:
        import torch
    except ImportError:
        return _fail("PyTorch is needed to convert weights: pip install 'nst-jax[torch]' (or just torch)")
    from convert_weights.convert import (
        TORCHVISION_URLS,
        ConversionError,
        convert_state_dict,
        load_pth,
        load_torchvision,
        random_state_dict,
    )

    torchvision_version = ""
    try:
        import torchvision

        torchvision_version = torchvision.__version__
    except Exception:  # torchvision is optional; a broken install must not stop a --pth conversion
        pass
    from convert_weights.convert import CAFFE_FILES
    from convert_weights.normalize import NORMALIZE_SIZE, NormalizationError, image_paths

    preprocessing = args.preprocessing
    if args.pth is not None and args.pth.name in CAFFE_FILES:
        print(f"{args.pth.name} is the Caffe {CAFFE_FILES[args.pth.name].upper()} in torchvision's layout "
              f"(neural-style-pt's download): its weights expect Caffe's preprocessing", file=sys.stderr)
        if preprocessing is None:
            preprocessing = "caffe"
        elif preprocessing != "caffe":
            print("warning: --preprocessing torchvision given for a Caffe model: its features will be wrong",
                  file=sys.stderr)
    preprocessing = preprocessing or "torchvision"
    if args.normalize_on is not None and not args.normalize_on.strip():
        return _fail("--normalize-on needs a folder or a glob pattern of images, got ''")
    if args.normalize_size is not None and args.normalize_on is None:
        return _fail("--normalize-size needs --normalize-on IMAGES")
    normalize_size = args.normalize_size if args.normalize_size is not None else NORMALIZE_SIZE
    try:
        normalize_paths = image_paths(args.normalize_on) if args.normalize_on is not None else []
        if args.random:
            architecture = args.arch or "vgg19"
            state_dict = random_state_dict(args.seed, architecture)
            source, source_sha, pretrained = (f"random init (torchvision scheme, seed {args.seed})", "", False)
        elif args.pth is not None:
            state_dict = load_pth(args.pth)
            source, source_sha, pretrained = f"pth file {args.pth.name}", file_sha256(args.pth), True
            architecture = args.arch
        else:
            architecture = args.arch or "vgg19"
            print(f"downloading torchvision's pretrained {architecture.upper()} (528-548 MB) ...", file=sys.stderr)
            try:
                state_dict, source, source_sha = load_torchvision(architecture)
            except Exception as error:  # network failures surface as many exception types
                url = TORCHVISION_URLS[architecture]
                return _fail(
                    f"could not download torchvision's {architecture.upper()} ({type(error).__name__}: {error}). "
                    f"On a machine with internet access run 'python -m convert_weights', or download {url} "
                    f"yourself and run 'python -m convert_weights --pth {url.rsplit('/', 1)[1]}'"
                )
            pretrained = True
        params = convert_state_dict(state_dict, architecture)
        normalized_on = ""
        if normalize_paths:
            params, normalized_on = _normalize(params, preprocessing, normalize_paths, normalize_size,
                                               args.normalize_on)
        checksum = write_weights(
            output, params, source=source, pretrained=pretrained, source_sha256=source_sha,
            torch_version=torch.__version__, torchvision_version=torchvision_version, preprocessing=preprocessing,
            normalized_on=normalized_on,
        )
    except (ConversionError, WeightsError, NormalizationError) as error:
        return _fail(str(error))
    except OSError as error:
        return _fail(f"cannot write {output}: {error.strerror or error}")
    convs = [name for name in params if name != "input"]
    count = sum(params[name]["kernel"].size + params[name]["bias"].size for name in convs)
    print(f"architecture: {'VGG16' if len(convs) == len(conv_layers('vgg16')) else 'VGG19'}")
    print(f"layers: {' '.join(convs)}")
    print(f"parameters: {count:,}")
    print(f"preprocessing: {preprocessing}")
    if normalized_on:
        print(f"normalized on: {normalized_on}")
    print(f"source: {source}")
    print(f"sha256: {checksum}")
    print(f"wrote {output}")
    if not pretrained:
        print(
            "WARNING: these are RANDOM weights (pretrained=False). Anything run with them is not real style "
            "transfer; they are for tests and benchmarks only.",
            file=sys.stderr,
        )
    return 0
