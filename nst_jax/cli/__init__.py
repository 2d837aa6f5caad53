"""Command line (``nst-jax``, also ``python -m nst_jax``): parse, then hand over to the form asked for.

* ``nst-jax CONTENT STYLE [STYLE ...] -o OUT``: one image (``nst_jax.cli.single``).
* the same with a comma list in ``--style-weight``, ``--content-weight`` or ``--tv-weight``: a weight sweep, one
  batched ``stylize_sweep`` (``nst_jax.cli.sweep``).
* ``nst-jax --batch DIR_OR_GLOB STYLE [STYLE ...] -o OUTDIR``: many content images (``nst_jax.cli.batch``).
* ``nst-jax reconstruct {content,style} IMAGE -o OUTDIR``: the paper's figure 1 (``nst_jax.cli.reconstruct``).
* ``nst-jax video IN STYLE [STYLE ...] -o OUT.mp4``: a clip, frame to frame consistent (``nst_jax.cli.video``).

What the forms share lives in one module per concern: ``exits`` (exit codes, ``UsageError``), ``options`` (the
parser, generated from ``StyleConfig``), ``paths`` (the files a run reads and writes), ``contents`` (``--batch``'s
content images), ``checks`` (every check of a run, before anything slow, which the run and ``--dry-run`` both make),
``device``, ``loading`` (the network), ``progress`` (the bar, timed chunks, snapshots), ``saving`` (images and the
JSON log), ``signals`` (Ctrl-C and SIGTERM with a bounded stop, the work in a thread; one-line errors),
``distributed`` (``--distributed``: several processes, process 0 writing) and ``serving`` (``--serve``: the run in a
web browser).

A new form (a subcommand) plugs in as ``reconstruct`` does: its parser from ``options`` (``add_config_options``,
``add_run_options``), its checks before anything slow (``checks``' functions, each a ``UsageError``), its work as a
``run(args) -> exit code`` under ``signals.run_guarded`` (the stop, the bound, exit codes 2/130/143), timed chunks
(``progress.timed_chunks``), ``serving.LiveView`` entered before anything slow (its publisher fed from the progress
callback) and, for what a stop that cannot wait should save, ``signals.on_forced_stop``.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

from nst_jax.cli import batch, reconstruct, single, sweep, video
from nst_jax.cli.checks import check_run, dry_run
from nst_jax.cli.exits import EXIT_USAGE, PROG
from nst_jax.cli.options import build_parser
from nst_jax.cli.serving import LiveView
from nst_jax.cli.signals import run_guarded


def run(args: argparse.Namespace) -> int:
    """Make every check (``checks.check_run``), then print the plan (``--dry-run``) or run the form the arguments
    ask for (single, sweep, ``--batch``)."""
    start = time.perf_counter()
    checked = check_run(args)
    if args.dry_run:
        return dry_run(args, checked)
    with LiveView(args) as live:  # --serve: the port is taken now, before anything slow
        if checked.batch is not None:
            return batch.run(args, checked, start, live)
        if checked.lists:
            return sweep.run(args, checked, start, live)
        return single.run(args, checked, start, live)


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
