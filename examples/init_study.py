"""Where the optimization starts: white noise with several seeds vs the content image vs the style image.

    python examples/init_study.py [--weights PATH] [--size 256] [--iterations 200] [--seeds 0,1,2]

Every run has the same losses and weights; only the starting image differs. From noise, each seed gives a
different image of about the same loss; from the content or the style image the result is always the same
(one image each). Writes examples/out/init_*.png, init_study.png, and prints each run's final loss.
"""

from __future__ import annotations

from collections.abc import Sequence

import _common
import numpy as np

from nst_jax import StyleConfig, stylize


def main(argv: Sequence[str] | None = None) -> int:
    """Stylize from each start, then compare final losses and how far apart the noise-started results are."""
    parser = _common.parser(__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=lambda text: [int(v) for v in text.split(",")], default=[0, 1, 2],
                        help="seeds of the noise starts (default: 0,1,2)")
    args = parser.parse_args(argv)
    weights = _common.load_weights(args.weights)
    base = StyleConfig(image_size=args.size, iterations=args.iterations)
    # Every start named: the default start is the content since issue 27, so a seed alone would not start from noise.
    starts = {f"noise seed {seed}": base.replace(init="noise", seed=seed) for seed in args.seeds}
    starts |= {"content": base.replace(init="content"), "style": base.replace(init="style")}
    results = {}
    with _common.progress(len(starts), base.iterations, args.quiet) as callback:
        for name, config in starts.items():
            results[name] = stylize(args.content, args.style, vgg=weights, config=config, callback=callback)
    for name, result in results.items():
        _common.save_result(args.out, f"init_{name.replace(' ', '_')}.png", result)
    _common.save_sheet(args.out, "init_study.png", [r.image for r in results.values()],
                       [f"{name}\nloss {r.final_losses.total:.3g}" for name, r in results.items()])
    noise = [r.image for name, r in results.items() if name.startswith("noise")]
    if len(noise) > 1:
        gaps = [np.abs(a - b).mean() for i, a in enumerate(noise) for b in noise[i + 1 :]]
        print(f"noise starts differ from each other by {np.mean(gaps):.3f} per pixel on average (0..1 scale)")
    return 0


if __name__ == "__main__":
    raise SystemExit(_common.run(main))
