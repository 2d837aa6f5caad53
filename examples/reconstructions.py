"""The paper's figure 1: what each VGG19 layer keeps of an image's content, and of a painting's style.

    python examples/reconstructions.py [--weights PATH] [--size 256] [--iterations 200]

Content: the example photo reconstructed from white noise by the content loss at relu1_2 ... relu5_2 alone.
Style: textures synthesized from noise by the style loss of the example painting on relu1_1, then relu1_1 and
relu2_1, ... up to all five layers. Writes each to examples/out/reconstruct_*.png and both rows to
reconstructions.png. (``python -m nst_jax reconstruct content|style IMAGE -o DIR`` does one row from the shell.)
"""

from __future__ import annotations

from collections.abc import Sequence

import _common

from nst_jax import StyleConfig, reconstruct_content, reconstruct_style
from nst_jax.reconstruct import CONTENT_LAYERS, STYLE_LAYER_SETS, batched_by_default


def main(argv: Sequence[str] | None = None) -> int:
    """Reconstruct content per layer and style per layer set, then save them in two labelled rows."""
    args = _common.parser(__doc__.splitlines()[0]).parse_args(argv)
    weights = _common.load_weights(args.weights)
    config = StyleConfig(image_size=args.size, iterations=args.iterations)
    runs = 2 if batched_by_default(config) else len(CONTENT_LAYERS) + len(STYLE_LAYER_SETS)  # batched: one per row
    with _common.progress(runs, config.iterations, args.quiet) as callback:
        content = reconstruct_content(args.content, config=config, vgg=weights, callback=callback)
        style = reconstruct_style(args.style, config=config, vgg=weights, callback=callback)
    for reconstruction in content + style:
        name = reconstruction.label.replace("..", "-")
        _common.save_result(args.out, f"reconstruct_{reconstruction.kind}_{name}.png", reconstruction.result)
    images, labels = [], []
    for source, row in ((args.content, content), (args.style, style)):
        images += [_common.at_size(source, args.size), *(r.image for r in row)]
        labels += ["input", *(f"{r.kind}: {r.label}" for r in row)]
    _common.save_sheet(args.out, "reconstructions.png", images, labels, columns=1 + len(CONTENT_LAYERS))
    return 0


if __name__ == "__main__":
    raise SystemExit(_common.run(main))
