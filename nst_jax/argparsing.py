"""An ``argparse.ArgumentParser`` whose usage errors are one line, like every other error of nst_jax's commands, and
the argument types its commands share."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, NoReturn

EXIT_USAGE = 2


class OneLineParser(argparse.ArgumentParser):
    """Prints ``NAME: error: MESSAGE (see PROG --help)`` and exits 2, instead of argparse's usage block + error.

    ``error_name``: how the command's other errors name it (default: ``prog``).
    """

    def __init__(self, *args: Any, error_name: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.error_name = error_name or self.prog

    def error(self, message: str) -> NoReturn:
        """Report a usage error in one line on stderr and exit with code 2."""
        print(f"{self.error_name}: error: {message} (see {self.prog} --help)", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


def file_path(text: str) -> Path:
    """A file or folder argument as a ``Path``; an empty one is a usage error (``Path('')`` is the current folder:
    what ``-o "$OUT"`` gives when ``OUT`` is unset)."""
    if not text:
        raise argparse.ArgumentTypeError("expected a path, got ''")
    return Path(text)
