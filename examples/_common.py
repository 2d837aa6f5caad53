"""What every example script shares: its flags, the repo's example images, loud weights loading, saving outputs.

Each example is ``python examples/NAME.py [--weights PATH] [--size PX] [--iterations N] [--out DIR]`` and writes
into ``examples/out/`` (git-ignored). Scripts run from anywhere: this folder is on ``sys.path`` as the script's own.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np

from nst_jax import Progress, StyleResult, VGGWeights, load_image, save_image
from nst_jax.cli.exits import UsageError
from nst_jax.cli.loading import load_weights_loudly
from nst_jax.cli.progress import bar_callback, progress_bar
from nst_jax.contact_sheet import contact_sheet
from nst_jax.files import check_output
from nst_jax.image_io import is_own_image, resize_image
from nst_jax.problem import content_shape

EXAMPLES = Path(__file__).resolve().parent
OUT = EXAMPLES / "out"
CONTENT = EXAMPLES / "content.jpg"
STYLE = EXAMPLES / "style.jpg"
STYLE2 = EXAMPLES / "style2.jpg"


def parser(description: str, *, size: int = 256, iterations: int = 200) -> argparse.ArgumentParser:
    """The flags every example takes; a script adds its own."""
    parser = argparse.ArgumentParser(description=description)
    add = parser.add_argument
    add("--weights", type=Path, default=None, help="VGG19 HDF5 weights (default: nst_jax's default path)")
    add("--size", type=int, default=size, help=f"longest side of the outputs in pixels (default: {size})")
    add("--iterations", type=int, default=iterations, help=f"iterations per run (default: {iterations})")
    add("--content", type=Path, default=CONTENT, help="content image (default: examples/content.jpg)")
    add("--style", type=Path, default=STYLE, help="style image (default: examples/style.jpg)")
    add("--out", type=Path, default=OUT, help="output folder (default: examples/out)")
    add("--quiet", action="store_true", help="no progress bars")
    return parser


def run(main: Callable[[], int]) -> int:
    """Run an example's ``main``: a bad input (an unreadable image, a size too small) is one error line, exit 2."""
    try:
        return main()
    except ValueError as error:  # nst_jax.ImageError is a ValueError
        print(f"{Path(sys.argv[0]).name}: error: {error}", file=sys.stderr)
        return 2


def load_weights(path: Path | None) -> VGGWeights:
    """The VGG19 weights, with a loud warning when they are random; exits with the fetch command when missing."""
    try:
        return load_weights_loudly(path)
    except UsageError as error:
        raise SystemExit(f"{Path(sys.argv[0]).name}: error: {error}") from None


@contextlib.contextmanager
def progress(runs: int, iterations: int, quiet: bool) -> Iterator[Callable[[Progress], None]]:
    """A progress bar over ``runs`` consecutive runs of ``iterations`` each; yields their callback."""
    with progress_bar(runs * iterations, "it", quiet) as bar:
        yield bar_callback(bar, iterations)


def at_size(path: Path, size: int) -> np.ndarray:
    """The image at ``path`` with its longest side resized to ``size`` (for sheets next to the results)."""
    image = load_image(path)
    return resize_image(image, *content_shape(image.shape, size))


def writable(folder: Path, name: str) -> Path:
    """``folder/name`` (folder created), refusing to replace a file nst_jax did not write (``nst_jax.files``)."""
    folder.mkdir(parents=True, exist_ok=True)
    check_output(folder / name, "output", [], owned=is_own_image)
    return folder / name


def save_result(folder: Path, name: str, result: StyleResult) -> Path:
    """Write a result (with its config in the PNG metadata) to ``folder/name`` and say so."""
    path = result.save(writable(folder, name))
    print(f"wrote {path} ({result.iterations} iterations, loss {result.final_losses.total:.4g}, {result.status})")
    return path


def save(folder: Path, name: str, image: np.ndarray) -> Path:
    """Write ``image`` to ``folder/name`` (folder created) and say so."""
    path = save_image(writable(folder, name), np.clip(image, 0.0, 1.0))
    print(f"wrote {path}")
    return path


def save_sheet(folder: Path, name: str, images: Sequence[np.ndarray], labels: Sequence[str], *,
               columns: int | None = None) -> Path:
    """Write a labelled contact sheet of ``images`` to ``folder/name``."""
    return save(folder, name, contact_sheet(images, labels, columns=columns))
