"""Style transfer as in Gatys et al. 2016: the example content rendered in each example style.

    python examples/transfer.py [--weights PATH] [--size 256] [--iterations 200]

Writes examples/out/transfer_style.png and transfer_style2.png (content x style), and transfer_sheet.png.
"""

from __future__ import annotations

from collections.abc import Sequence

import _common

from nst_jax import StyleConfig, stylize


def main(argv: Sequence[str] | None = None) -> int:
    """Stylize the content with each style and save the results next to their inputs."""
    parser = _common.parser(__doc__.splitlines()[0])
    parser.add_argument("--style2", default=_common.STYLE2, help="second style image (default: examples/style2.jpg)")
    args = parser.parse_args(argv)
    weights = _common.load_weights(args.weights)
    config = StyleConfig(image_size=args.size, iterations=args.iterations)
    styles = {"style": args.style, "style2": args.style2}
    results = {}
    with _common.progress(len(styles), config.iterations, args.quiet) as callback:
        for name, style in styles.items():
            results[name] = stylize(args.content, style, vgg=weights, config=config, callback=callback)
    for name, result in results.items():
        _common.save_result(args.out, f"transfer_{name}.png", result)
    content = _common.at_size(args.content, args.size)
    images, labels = [], []
    for name, style in styles.items():  # one row per style: content, style, result
        images += [content, _common.at_size(style, args.size), results[name].image]
        labels += ["content", name, f"result ({name})"]
    _common.save_sheet(args.out, "transfer_sheet.png", images, labels, columns=3)
    return 0


if __name__ == "__main__":
    raise SystemExit(_common.run(main))
