"""Command line (``nst-jax``, also ``python -m nst_jax``): parse, then hand over to the form asked for.

* ``nst-jax CONTENT STYLE [STYLE ...] -o OUT``: one image (``nst_jax.cli.single``).
* the same with a comma list in ``--style-weight``, ``--content-weight`` or ``--tv-weight``: a weight sweep, one
  batched ``stylize_sweep`` (``nst_jax.cli.sweep``).
* ``nst-jax --batch DIR_OR_GLOB STYLE [STYLE ...] -o OUTDIR``: many content images (``nst_jax.cli.batch``).
* ``nst-jax reconstruct {content,style} IMAGE -o OUTDIR``: the paper's figure 1 (``nst_jax.cli.reconstruct``).
* ``nst-jax video IN STYLE [STYLE ...] -o OUT.mp4``: a clip, frame to frame consistent (``nst_jax.cli.video``).

What the forms share lives in one module per concern: ``exits`` (exit codes, ``UsageError``), ``options`` (the
parser, generated from ``StyleConfig``), ``paths`` (the files a run reads and writes), ``checks`` (everything checked
before anything slow, and ``--dry-run``), ``device``, ``loading`` (images, masks, the network), ``progress`` (the bar,
snapshots), ``saving`` (images and the JSON log), ``signals`` (Ctrl-C and SIGTERM, one-line errors) and
``distributed`` (``--distributed``: several processes, process 0 writing).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Sequence

from nst_jax.cli import batch, reconstruct, single, sweep, video
from nst_jax.cli.checks import check_blend_weights, check_masks, check_mode, check_single_only, dry_run
from nst_jax.cli.exits import EXIT_USAGE, PROG
from nst_jax.cli.options import build_parser, config_from_args, weight_sweep
from nst_jax.cli.signals import run_guarded


def run(args: argparse.Namespace) -> int:
    """Check everything cheap, then run the form the arguments ask for (single, sweep, ``--batch``)."""
    start = time.perf_counter()
    config = config_from_args(args)
    lists = weight_sweep(args, config)
    check_mode(args, lists)
    check_single_only(args, lists)
    check_masks(args, config)
    if args.dry_run:
        contents = [args.content] if args.batch is None else batch.find_contents(args.batch)
        return dry_run(args, config, contents, math.prod(len(values) for values in lists.values()))
    if args.batch is not None:
        return batch.run(args, config, start)
    check_blend_weights(config, args.styles)
    if lists:
        return sweep.run(args, config, lists, start)
    return single.run(args, config, start)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line (``argv`` None: the process's own arguments); returns the process exit code."""
    process, argv = argv is None, sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["reconstruct"]:  # a content image named "reconstruct" can be given as ./reconstruct
        return reconstruct.main(argv[1:], process=process)
    if argv[:1] == ["video"]:  # likewise ./video
        return video.main(argv[1:], process=process)
    try:  # intermixed: positionals may come after options (``-o OUT STYLE``), with CONTENT optional for --batch
        args = build_parser().parse_intermixed_args(argv)
    except SystemExit as exit_:  # usage errors (2) and --help (0)
        return exit_.code if isinstance(exit_.code, int) else EXIT_USAGE
    return run_guarded(PROG, run, args, process=process, interrupted="interrupted before the final image was saved")
