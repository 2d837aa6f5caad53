"""Running a command under Ctrl-C and SIGTERM with a bound on how long stopping takes (``run_guarded``), its user
errors as one line with exit code 2.

Python runs a signal handler only when the main thread executes bytecode: while that thread sits in one long XLA
call (a chunk of iterations, one iteration of a tiled print-size image, a compilation, ``jax.distributed.initialize``
waiting for a process that never starts) a signal waits for the call to end. So the command's work runs in a worker
thread, and the main thread only waits for it, in short waits that a signal interrupts:

* The first Ctrl-C (SIGINT) or SIGTERM is acknowledged at once, in one line, and asks the work to stop
  (``optimize.request_stop``): the run ends after the chunk in progress (the command line times its chunks to about
  ``progress.PROGRESS_SECONDS``, whatever ``--chunk-size`` and ``--quiet``), saves what is finished and exits 130
  (143 for SIGTERM). With several processes every one stops after the same chunk (they agree on chunk lengths).
* If the work has not ended ``STOP_WAIT`` seconds after that signal (one iteration, a compilation or a wait takes
  longer), the command saves what its form last reported (``on_forced_stop``: the latest image of the run) and exits
  130 or 143 without waiting for the work, which is closed to writing (``files.close_writes``). Not once several
  processes have joined (``--distributed``): they stop together after the same chunk, and one leaving early would
  make JAX abort the others; joining them (a process that never comes) is bounded.
* A second signal quits at once: nothing more is saved, and a file being written is removed
  (``files.remove_pending``); files already written stay whole.

A new form of command plugs in by being a ``run(args) -> exit code`` that ``run_guarded`` runs, and, if it has
something to save when a stop cannot wait for it, by registering that with ``on_forced_stop`` (updated from its
progress callback).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from nst_jax import files
from nst_jax.cli import distributed
from nst_jax.cli.distributed import DistributedError
from nst_jax.cli.exits import EXIT_INTERRUPTED, EXIT_TERMINATED, EXIT_USAGE, PROG, UsageError
from nst_jax.optimize import clear_stop, request_stop

STOP_WAIT = 5.0
"""Seconds the work has after the first signal to stop by itself (the chunk in progress, the final losses, the
saving) before the command saves the last reported image and exits without it. Below ``docker stop``'s 10 s grace
before SIGKILL, leaving the rest for writing a print-size image."""

_POLL = 0.1
"""Seconds between the main thread's checks of the time left (a signal interrupts each wait at once)."""

_NAMES = {signal.SIGINT: "Ctrl-C", signal.SIGTERM: "SIGTERM"}


class _Quit(BaseException):
    """A second signal in a command called from Python: stop waiting for the work and save nothing more."""


class StopSignals:
    """Ctrl-C (SIGINT) and SIGTERM while a command runs (see the module's docstring). Installed only in the main
    thread, where Python delivers signals.

    ``process``: the command is the whole process (``python -m nst_jax``, ``nst-jax``): a stop that does not wait
    for the work, or a second signal, ends the process at once (``os._exit``), and after a first signal the handlers
    stay installed until it exits (JAX's exit handlers must not end in a traceback either). Else (the command
    called from Python, as the tests do) such a stop returns the exit code, leaving the work closed to writing, and
    the previous handlers come back when the block ends.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, prog: str = PROG, *, process: bool = False) -> None:
        self.prog = prog
        self.process = process
        self.received: int | None = None
        self.received_at: float | None = None
        self.installed = False
        self._previous: dict[int, Any] = {}
        self._forced: Callable[[], str | None] | None = None
        self._work: threading.Thread | None = None

    def __enter__(self) -> "StopSignals":
        global _CURRENT
        clear_stop()
        if threading.current_thread() is threading.main_thread():
            self._previous = {number: signal.signal(number, self._handle) for number in self.SIGNALS}
            self.installed = True
        _CURRENT = self
        return self

    def __exit__(self, *exc_info: Any) -> None:
        global _CURRENT
        _CURRENT = None
        if self.process and self.received is not None:
            return
        for number, handler in self._previous.items():
            signal.signal(number, handler)

    def _handle(self, number: int, frame: Any) -> None:
        if self.received is not None:
            self._quit()
        self.received, self.received_at = number, time.monotonic()
        request_stop()
        when = " (every process after the same chunk)" if distributed.active() else f", within about {STOP_WAIT:g} s"
        print(f"{self.prog}: {_NAMES.get(number, 'signal')}: stopping after the iteration in progress and saving what "
              f"is finished{when}; a second Ctrl-C or SIGTERM quits at once without saving", file=sys.stderr,
              flush=True)

    def _quit(self) -> None:
        """A second signal: nothing more is saved; exit now (``process``) or stop waiting (``_Quit``)."""
        print(f"{self.prog}: quitting at once; nothing more is saved", file=sys.stderr, flush=True)
        self._close_work()
        if self.process:
            _exit_now(self.exit_code(EXIT_INTERRUPTED))
        raise _Quit

    def _close_work(self) -> None:
        """The work may write nothing more, and what it is writing now is removed."""
        if self._work is not None:
            files.close_writes(self._work)
        files.remove_pending()

    def supervise(self, body: Callable[[], int]) -> int:
        """Run ``body`` (the command's work) in a worker thread and wait for it; its exit code, or that of a stop
        that did not wait for it. Without handlers (not the main thread), ``body`` runs here."""
        if not self.installed:
            return body()
        work = _Work(body)
        self._work = work.thread
        work.thread.start()
        try:
            while work.thread.is_alive():
                # Several processes, once joined, stop together after the same chunk: one exiting alone would leave
                # the others in a collective (JAX aborts them), so they wait for it; not so while still joining.
                bounded = not distributed.active()
                if bounded and self.received_at is not None and time.monotonic() - self.received_at >= STOP_WAIT:
                    return self._forced_stop()
                work.thread.join(_POLL)
        except _Quit:
            return EXIT_INTERRUPTED
        return work.result()

    def _forced_stop(self) -> int:
        """The work did not stop within ``STOP_WAIT``: save what it last reported, exit without it."""
        if self._work is not None:
            files.close_writes(self._work)  # first: it must not replace what is saved here
        try:
            saved = self._forced() if self._forced is not None else None
        except Exception as error:  # an error here must not keep the process from stopping
            saved = f"the last image could not be saved ({error})"
        print(f"{self.prog}: the run did not stop within {STOP_WAIT:g} s of the signal (one iteration, compilation "
              f"or wait takes longer); {saved or 'nothing more was saved'}; exiting without waiting for it",
              file=sys.stderr, flush=True)
        self._close_work()
        if self.process:
            _exit_now(self.exit_code(EXIT_INTERRUPTED))
        return EXIT_INTERRUPTED

    def exit_code(self, code: int) -> int:
        """``code``, with an interruption by SIGTERM reported as 143 (128 + 15) rather than 130."""
        return EXIT_TERMINATED if code == EXIT_INTERRUPTED and self.received == signal.SIGTERM else code


_CURRENT: StopSignals | None = None
"""The signals of the command running now (one at a time per process), for ``on_forced_stop``."""


def on_forced_stop(save: Callable[[], str | None]) -> None:
    """Register what a stop that cannot wait for the work saves: ``save()`` runs in the main thread while the work
    is inside a long call, writes what the work last reported (its latest image) and returns what it wrote, for the
    message ("saved the image of iteration 40 to out.png"), or None. The latest registration counts."""
    if _CURRENT is not None:
        _CURRENT._forced = save


def _exit_now(code: int) -> None:
    """End the process with ``code`` at once (no exit handlers, no waiting for threads), output flushed."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


class _Work:
    """The command's work in a daemon thread (a process can exit without it): its exit code or its exception."""

    def __init__(self, body: Callable[[], int]) -> None:
        self.thread = threading.Thread(target=self._run, args=(body,), name="nst-jax work", daemon=True)
        self._code = EXIT_INTERRUPTED
        self._error: BaseException | None = None

    def _run(self, body: Callable[[], int]) -> None:
        try:
            self._code = body()
        except BaseException as error:  # handed to the main thread, which raises it
            self._error = error

    def result(self) -> int:
        """The exit code; an exception of the work (a bug) is raised, traceback kept."""
        if self._error is not None:
            raise self._error
        return self._code


def run_guarded(
    prog: str, run: Callable[[argparse.Namespace], int], args: argparse.Namespace, *, process: bool, interrupted: str
) -> int:
    """``run(args)`` under ``StopSignals`` (in a worker thread): a ``UsageError`` is one error line (exit 2), an
    interruption that escapes the run's own handling the line ``interrupted`` (exit 130, 143 for SIGTERM). With
    ``--distributed``, after joining the other processes (``distributed.start``); in all but process 0 the run's
    output (stdout, stderr, progress) is discarded and only its error line shown, and every process's checks meet in
    ``distributed.agree`` before anything is computed (here too for a run that computes nothing)."""

    def body() -> int:
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
        return code

    with StopSignals(prog, process=process) as stop:
        code = stop.supervise(body)
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
