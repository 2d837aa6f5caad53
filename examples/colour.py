"""Colour preservation (Gatys et al. 2017): the style's colours, the content's by luminance-only transfer, or by
matching the style image's colour statistics to the content's first.

    python examples/colour.py [--weights PATH] [--size 256] [--iterations 200]

Writes examples/out/colour_<mode>.png for each mode and colour.png (content, style, the three results).
"""

from __future__ import annotations

from collections.abc import Sequence

import _common

from nst_jax import StyleConfig, stylize

MODES = {"style colours": None, "luminance": "luminance", "histogram": "histogram"}


def main(argv: Sequence[str] | None = None) -> int:
    """Stylize once per colour mode and lay the results out beside the inputs."""
    args = _common.parser(__doc__.splitlines()[0]).parse_args(argv)
    weights = _common.load_weights(args.weights)
    base = StyleConfig(image_size=args.size, iterations=args.iterations)
    results = {}
    with _common.progress(len(MODES), base.iterations, args.quiet) as callback:
        for name, mode in MODES.items():
            config = base.replace(preserve_color=mode)
            results[name] = stylize(args.content, args.style, vgg=weights, config=config, callback=callback)
    for name, result in results.items():
        _common.save_result(args.out, f"colour_{name.replace(' ', '_')}.png", result)
    images = [_common.at_size(args.content, args.size), _common.at_size(args.style, args.size)]
    images += [r.image for r in results.values()]
    _common.save_sheet(args.out, "colour.png", images, ["content", "style", *MODES], columns=len(images))
    return 0


if __name__ == "__main__":
    raise SystemExit(_common.run(main))
