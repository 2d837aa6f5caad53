"""Exit codes of every command, and ``UsageError``: a user mistake, reported as one line with exit code 2.

Exit codes: 0 done, 1 failed (non-finite loss, or a file could not be written), 2 bad input (found before any slow
work), 130 interrupted (Ctrl-C), 143 terminated (SIGTERM).
"""

from __future__ import annotations

PROG = "nst-jax"


EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED, EXIT_TERMINATED = 0, 1, 2, 130, 143


class UsageError(Exception):
    """A user mistake, reported as one line with exit code 2."""
