"""The paper's relative weighting of content and style (its figure of alpha/beta = 1e-4 ... 1e-1), one batch.

    python examples/ratio_grid.py [--weights PATH] [--size 256] [--iterations 200] [--ratios 1e-4,1e-3,1e-2,1e-1]

Uses the paper's loss equations (--loss-form paper), where its ratios apply, and runs every ratio as one
batched ``stylize_sweep``. Writes examples/out/ratio_<alpha/beta>.png per ratio and ratio_grid.png.
"""

from __future__ import annotations

from collections.abc import Sequence

import _common

from nst_jax import StyleConfig, stylize_sweep

PAPER_RATIOS = (1e-4, 1e-3, 1e-2, 1e-1)


def main(argv: Sequence[str] | None = None) -> int:
    """Stylize once per alpha/beta (alpha = 1, beta = 1 / ratio) and lay the results out in a row."""
    parser = _common.parser(__doc__.splitlines()[0])
    parser.add_argument("--ratios", type=lambda text: tuple(float(v) for v in text.split(",")), default=PAPER_RATIOS,
                        help="comma-separated alpha/beta values (default: 1e-4,1e-3,1e-2,1e-1, the paper's)")
    args = parser.parse_args(argv)
    weights = _common.load_weights(args.weights)
    config = StyleConfig(image_size=args.size, iterations=args.iterations, loss_form="paper", content_weight=1.0)
    with _common.progress(1, config.iterations, args.quiet) as callback:
        results = stylize_sweep(args.content, args.style, style_weights=[1.0 / r for r in args.ratios],
                                config=config, vgg=weights, callback=callback)
    for ratio, result in zip(args.ratios, results):
        _common.save_result(args.out, f"ratio_{ratio:.0e}.png", result)
    _common.save_sheet(args.out, "ratio_grid.png", [r.image for r in results],
                       [f"α/β = {ratio:.0e}" for ratio in args.ratios], columns=len(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(_common.run(main))
