"""Coarse-to-fine (Gatys et al. 2017): optimize at a quarter, a half and the full size, each result starting the
next, against the same number of iterations all at the full size.

    python examples/multiscale.py [--weights PATH] [--size 256] [--iterations 200]

--iterations is per scale; the single-scale run gets the total (iterations x scales). Both are compiled once
first (a 1-iteration run at each size), so the printed times are optimization only. Writes
examples/out/multiscale_single.png, multiscale_coarse_to_fine.png and multiscale.png.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import _common

from nst_jax import StyleConfig, stylize
from nst_jax.vgg import min_input_size


def scales_for(size: int, smallest: int) -> tuple[int, ...]:
    """A quarter, a half and the full ``size``, dropping sizes below ``smallest``."""
    return tuple(s for s in (size // 4, size // 2) if s >= smallest) + (size,)


def main(argv: Sequence[str] | None = None) -> int:
    """Time the single-scale and coarse-to-fine runs (compiled beforehand) and save both."""
    args = _common.parser(__doc__.splitlines()[0]).parse_args(argv)
    weights = _common.load_weights(args.weights)
    base = StyleConfig(image_size=args.size, iterations=args.iterations)
    # The shorter side of the example images is ~2/3 of the longest; the style layers need min_input_size.
    scales = scales_for(args.size, 2 * min_input_size(base.style_layers))
    runs = {
        "single": base.replace(iterations=args.iterations * len(scales)),
        "coarse_to_fine": base.replace(scales=scales),
    }
    for size in scales:  # compile every size before timing
        stylize(args.content, args.style, vgg=weights, config=base.replace(image_size=size, iterations=1))
    results, seconds = {}, {}
    for name, config in runs.items():
        with _common.progress(1, config.total_iterations, args.quiet) as callback:
            start = time.perf_counter()
            results[name] = stylize(args.content, args.style, vgg=weights, config=config, callback=callback)
            seconds[name] = time.perf_counter() - start
    for name, result in results.items():
        _common.save_result(args.out, f"multiscale_{name}.png", result)
        sizes = ",".join(map(str, runs[name].scales or (args.size,)))
        print(f"{name:>14}: sizes {sizes}, {result.iterations} iterations, {seconds[name]:.1f} s, "
              f"final loss {result.final_losses.total:.4g}")
    print(f"coarse-to-fine took {seconds['coarse_to_fine'] / seconds['single']:.2f} of the single-scale time")
    _common.save_sheet(args.out, "multiscale.png", [r.image for r in results.values()],
                       [f"{name.replace('_', ' ')}\n{seconds[name]:.1f} s" for name in runs])
    return 0


if __name__ == "__main__":
    raise SystemExit(_common.run(main))
