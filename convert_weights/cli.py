"""Command line of the converter: choose a source, convert, validate, write atomically, report."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from nst_jax.argparsing import OneLineParser
from nst_jax.files import OutputError, check_output
from nst_jax.vgg import CONV_LAYERS
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


def build_parser() -> argparse.ArgumentParser:
    """The converter's argument parser."""
    parser = OneLineParser(
        prog=PROG, error_name="convert_weights",
        description="Convert torchvision's VGG19 into nst_jax's HDF5 weights file.",
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--torchvision", action="store_true",
        help="download torchvision's pretrained vgg19 (IMAGENET1K_V1) and convert it (the default)",
    )
    source.add_argument("--pth", type=Path, metavar="FILE", help="convert a torchvision-layout state dict file")
    source.add_argument(
        "--random", action="store_true",
        help="write a random-init VGG19 (torchvision's init), for tests and benchmarks only",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed for --random (default 0)")
    parser.add_argument(
        "-o", "--output", type=Path, default=None,
        help=f"output HDF5 file (default: {default_weights_path()}); an existing file is replaced only if it holds "
        "nst_jax weights, and pretrained weights never by random ones",
    )
    parser.add_argument(
        "--overwrite", action="store_true",
        help="replace the output even if it is not an nst_jax weights file, or holds pretrained weights and --random "
        "is given",
    )
    return parser


def check_output_file(output: Path, args: argparse.Namespace) -> None:
    """``OutputError`` unless the converter may write ``output`` (``nst_jax.files``' rules; checked before any
    download): not the .pth it reads; an existing file only if it holds nst_jax weights, or with --overwrite; and
    pretrained weights never replaced by random ones without --overwrite."""
    if not output.parent.is_dir():
        return  # write_weights makes the folder (the default cache folder may not exist yet): nothing there to keep
    inputs = [(args.pth, "the .pth file being converted")] if args.pth is not None else []
    check_output(output, "output", inputs, owned=is_weights_file, overwrite=args.overwrite)
    if args.random and not args.overwrite and is_weights_file(output):
        attrs = weights_attributes(output) or {}
        try:
            pretrained = read_pretrained(attrs.get("pretrained", False), str(output))
        except WeightsError:
            pretrained = True  # unclear: treat it as worth keeping
        if pretrained:
            raise OutputError(f"output '{output}' holds pretrained weights and --random would replace them; choose "
                              "another -o, or pass --overwrite to replace them")


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
    try:
        if args.random:
            state_dict = random_state_dict(args.seed)
            source, source_sha, pretrained = f"random init (torchvision scheme, seed {args.seed})", "", False
        elif args.pth is not None:
            state_dict = load_pth(args.pth)
            source, source_sha, pretrained = f"pth file {args.pth.name}", file_sha256(args.pth), True
        else:
            print("downloading torchvision's pretrained VGG19 (548 MB) ...", file=sys.stderr)
            try:
                state_dict, source, source_sha = load_torchvision()
            except Exception as error:  # network failures surface as many exception types
                return _fail(
                    f"could not download torchvision's VGG19 ({type(error).__name__}: {error}). "
                    "On a machine with internet access run 'python -m convert_weights', or download "
                    "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth yourself and run "
                    "'python -m convert_weights --pth vgg19-dcbb9e9d.pth'"
                )
            pretrained = True
        params = convert_state_dict(state_dict)
        checksum = write_weights(
            output, params, source=source, pretrained=pretrained, source_sha256=source_sha,
            torch_version=torch.__version__, torchvision_version=torchvision_version,
        )
    except (ConversionError, WeightsError) as error:
        return _fail(str(error))
    except OSError as error:
        return _fail(f"cannot write {output}: {error.strerror or error}")
    count = sum(layer["kernel"].size + layer["bias"].size for layer in params.values())
    print(f"layers: {' '.join(CONV_LAYERS)}")
    print(f"parameters: {count:,}")
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
