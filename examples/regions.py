"""Spatial control (Gatys et al. 2017): one photo, a style per region. The left part of the output takes the first
style, the right part the second (or the regions of a drawn mask: white for the first style, black for the second);
beside it, each style alone over the whole image.

    python examples/regions.py [--weights PATH] [--size 256] [--iterations 200] [--mask PATH] [--style2 PATH]

Writes examples/out/regions_style1alone.png, regions_style2alone.png, regions_byregion.png and regions.png
(content, mask, styles, the three results), and prints the region run's time against a single style's.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import _common
import numpy as np

from nst_jax import StyleConfig, stylize
from nst_jax.image_io import load_mask


def split_mask(height: int, width: int, soft: float = 0.1) -> np.ndarray:
    """White on the left half, black on the right, with a soft border ``soft`` of the width wide."""
    columns = (np.arange(width) + 0.5) / width
    ramp = np.clip((0.5 - columns) / soft + 0.5, 0.0, 1.0)
    return np.repeat(ramp[None].astype(np.float32), height, axis=0)


def main(argv: Sequence[str] | None = None) -> int:
    """Stylize with each style alone, then with both by region, and lay the results out with the inputs."""
    parser = _common.parser(__doc__.splitlines()[0])
    parser.add_argument("--style2", type=Path, default=_common.STYLE2,
                        help="the second style image (default: examples/style2.jpg)")
    parser.add_argument("--mask", type=Path, default=None,
                        help="greyscale mask: white for the first style, black for the second (default: left/right)")
    args = parser.parse_args(argv)
    weights = _common.load_weights(args.weights)
    config = StyleConfig(image_size=args.size, iterations=args.iterations)
    content = _common.at_size(args.content, args.size)
    height, width = content.shape[:2]
    first = split_mask(height, width) if args.mask is None else load_mask(args.mask, height, width)
    styles = [args.style, args.style2]
    results, seconds = {}, {}
    with _common.progress(3, config.iterations, args.quiet) as callback:
        for name, style in zip(("style 1", "style 2"), styles):
            start = time.perf_counter()
            results[f"{name} alone"] = stylize(args.content, style, vgg=weights, config=config, callback=callback)
            seconds[name] = time.perf_counter() - start
        start = time.perf_counter()
        results["by region"] = stylize(args.content, styles, vgg=weights, config=config, callback=callback,
                                       style_masks=[first, 1.0 - first])
        seconds["by region"] = time.perf_counter() - start
    for name, result in results.items():
        _common.save_result(args.out, f"regions_{name.replace(' ', '')}.png", result)
    # Each run compiles its own program once; the times include that (a single style's second run would not).
    print(f"by region {seconds['by region']:.1f} s, one style {seconds['style 1']:.1f} s and {seconds['style 2']:.1f} "
          f"s (ratio {seconds['by region'] / seconds['style 1']:.2f}, compiles included)")
    images = [content, np.repeat(first[..., None], 3, axis=-1), _common.at_size(args.style, args.size),
              _common.at_size(args.style2, args.size), *(result.image for result in results.values())]
    labels = ["content", "mask (white: style 1)", "style 1", "style 2", *results]
    _common.save_sheet(args.out, "regions.png", images, labels, columns=4)
    return 0


if __name__ == "__main__":
    raise SystemExit(_common.run(main))
