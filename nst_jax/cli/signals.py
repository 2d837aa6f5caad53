"""Running a command under Ctrl-C and SIGTERM (``StopSignals``: save what is finished, exit 130 or 143) with its
user errors as one line and exit code 2 (``run_guarded``)."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

from nst_jax.cli import distributed
from nst_jax.cli.distributed import DistributedError
from nst_jax.cli.exits import EXIT_INTERRUPTED, EXIT_TERMINATED, EXIT_USAGE, PROG, UsageError
from nst_jax.optimize import clear_stop, request_stop


class StopSignals:
    """Ctrl-C (SIGINT) and SIGTERM while a command runs: the first raises ``KeyboardInterrupt``, which ends the
    optimization with what is finished (with ``--distributed``: ``optimize.request_stop``, so that every process
    stops after the same chunk, where an exception would leave the others waiting in a collective); later ones are
    held off with a note, so that the saving completes (by default a second Ctrl-C would abort it and lose every
    finished iteration). Installed only in the main thread, where Python delivers signals.

    ``process``: the command is the whole process (``python -m nst_jax``, ``nst-jax``), so after a first signal
    the later ones stay held off until it exits (JAX's exit handlers must not end in a traceback either); else
    the previous handlers come back when the block ends (the command called from Python, as the tests do).
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, prog: str = PROG, *, process: bool = False) -> None:
        self.prog = prog
        self.process = process
        self.received: int | None = None
        self._noted = False
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> "StopSignals":
        clear_stop()
        if threading.current_thread() is threading.main_thread():
            self._previous = {number: signal.signal(number, self._handle) for number in self.SIGNALS}
        return self

    def __exit__(self, *exc_info: Any) -> None:
        if self.process and self.received is not None:
            return
        for number, handler in self._previous.items():
            signal.signal(number, handler)

    def _handle(self, number: int, frame: Any) -> None:
        if self.received is None:
            self.received = number
            if number == signal.SIGTERM:
                print(f"{self.prog}: SIGTERM received: stopping and saving what is finished", file=sys.stderr)
            if distributed.active():  # every process stops after the same chunk (an exception here would not)
                request_stop()
                return
            raise KeyboardInterrupt
        if not self._noted:
            self._noted = True
            print(f"{self.prog}: saving what is finished, one moment", file=sys.stderr)

    def exit_code(self, code: int) -> int:
        """``code``, with an interruption by SIGTERM reported as 143 (128 + 15) rather than 130."""
        return EXIT_TERMINATED if code == EXIT_INTERRUPTED and self.received == signal.SIGTERM else code


def run_guarded(
    prog: str, run: Callable[[argparse.Namespace], int], args: argparse.Namespace, *, process: bool, interrupted: str
) -> int:
    """``run(args)`` under ``StopSignals``: a ``UsageError`` is one error line (exit 2), an interruption that
    escapes the run's own handling the line ``interrupted`` (exit 130, 143 for SIGTERM). With ``--distributed``,
    after joining the other processes (``distributed.start``); in all but process 0 the run's output (stdout,
    stderr, progress) is discarded and only its error line shown, and every process's checks meet in
    ``distributed.agree`` before anything is computed (here too for a run that computes nothing)."""
    with StopSignals(prog, process=process) as stop:
        try:
            distributed.start(args)
            with _this_process_output(args):
                code = run(args)
            distributed.agree()
        except (UsageError, DistributedError) as error:
            distributed.agree(str(error))
            print(f"{prog}: error: {error}", file=sys.stderr)
            code = EXIT_USAGE
        except KeyboardInterrupt:
            print(f"{prog}: {interrupted}", file=sys.stderr)
            code = EXIT_INTERRUPTED
    return stop.exit_code(code)


@contextlib.contextmanager
def _this_process_output(args: argparse.Namespace) -> Iterator[None]:
    """Process 0 of several (or the only one): nothing changes. Any other: its stdout and stderr discarded (every
    process computes the same run, with the same options; process 0 reports it)."""
    if distributed.writes():
        yield
        return
    with open(os.devnull, "w") as discard, contextlib.redirect_stdout(discard), contextlib.redirect_stderr(discard):
        yield
