"""The rules every nst_jax writer keeps (README: "What nst_jax never does to your files"), in one place.

1. An input of a run is never written: content, style and ``--init`` images, the weights file, the ``.pth`` being
   converted -- also when the output names it by another spelling, a symbolic link or a hard link.
2. An existing file is replaced only if nst_jax wrote it (each writer recognises its own files: an image by its
   metadata, a JSON file by its ``software`` field, a weights file by its format attribute) or the user passed
   ``--overwrite``; something that is not a regular file (a folder, a device such as /dev/null, a FIFO) never.
3. A file appears whole or not at all: it is written to a hidden temporary file beside the target, flushed to
   disk, then renamed onto the target; on any failure the temporary file is removed and the old file stays as it
   was.
4. A run that was given up writes nothing more: a command that stops without waiting for its work (a second Ctrl-C,
   or a stop past its bound; ``nst_jax.cli.signals``) closes that work's thread to writing (``close_writes``) and
   removes the temporary files still being written (``remove_pending``), so that rule 3 holds at any exit.

Rules 1 and 2 are ``check_output``, called before any slow work; rules 3 and 4 are ``atomic_path`` and
``atomic_write``.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import tempfile
import threading
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

SOFTWARE = "nst_jax"
"""The mark nst_jax puts in every file it makes (image metadata ``Software``, a JSON file's ``software``)."""

Inputs = Sequence[tuple[Path, str]]
"""The files a run reads, each with what it is for messages: ``(Path("a.jpg"), "the content image")``."""


class OutputError(ValueError):
    """An output nst_jax will not write; the message names the file, the reason and what to do instead."""


_PENDING: set[Path] = set()
"""Temporary files being written now (``atomic_path``), for ``remove_pending``."""
_CLOSED: weakref.WeakSet[threading.Thread] = weakref.WeakSet()
"""Threads closed to writing (``close_writes``; by object: an ident is reused once its thread ends)."""


def close_writes(thread: threading.Thread) -> None:
    """Let ``thread`` write no file from now on: its next ``atomic_path`` raises ``OSError`` (rule 4)."""
    _CLOSED.add(thread)


def remove_pending() -> None:
    """Remove every temporary file still being written (a process about to exit at once leaves none behind)."""
    for temporary in list(_PENDING):
        with contextlib.suppress(OSError):
            temporary.unlink()


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Whether two paths name the same file, existing or not (other spellings and links resolved)."""
    a, b = Path(a), Path(b)
    with contextlib.suppress(OSError):
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    try:
        return a.resolve() == b.resolve()
    except (OSError, RuntimeError):  # a symlink loop
        return False


def file_kind(path: Path) -> str | None:
    """What ``path`` is when it exists but is not a regular file (``a folder``, ``a FIFO`` ...); None otherwise."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return "a broken symbolic link" if os.path.islink(path) else None
    except OSError as error:
        return f"unreadable ({error.strerror or error})"
    if stat.S_ISREG(mode):
        return None
    kinds = {stat.S_ISDIR: "a directory", stat.S_ISFIFO: "a FIFO", stat.S_ISCHR: "a device", stat.S_ISBLK: "a device",
             stat.S_ISSOCK: "a socket"}
    return next((name for test, name in kinds.items() if test(mode)), "not a regular file")


def check_output(
    path: Path,
    what: str,
    inputs: Inputs,
    *,
    owned: Callable[[Path], bool],
    overwrite: bool = False,
) -> None:
    """``OutputError`` unless ``path`` may be written: its folder exists and is writable, it is none of ``inputs``,
    and it is absent, or a regular file that nst_jax wrote (``owned``), or a regular file and ``overwrite``."""
    directory = path.parent
    if not directory.is_dir():
        raise OutputError(f"{what} directory '{directory}' does not exist")
    if not os.access(directory, os.W_OK):
        raise OutputError(f"{what} directory '{directory}' is not writable")
    kind = file_kind(path)
    if kind == "a directory":
        raise OutputError(f"{what} '{path}' is a directory; give a file name")
    for source, label in inputs:
        if same_file(path, source):
            raise OutputError(f"{what} '{path}' is also an input ({label}); nst_jax never writes its inputs: "
                              "choose another file")
    if kind is not None:
        raise OutputError(f"{what} '{path}' is {kind}, not a regular file; choose another file")
    if path.exists() and not overwrite and not owned(path):
        raise OutputError(f"{what} '{path}' exists and was not written by nst_jax; choose another file, or pass "
                          "--overwrite to replace it")


def _umask() -> int:
    """The process umask (read from /proc on Linux, so that it is never changed, even for a moment)."""
    with contextlib.suppress(OSError, ValueError), open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _new_file_mode(target: Path) -> int:
    """Permission bits for the written file: the old file's, else 0o666 minus the umask."""
    try:
        return stat.S_IMODE(target.stat().st_mode)
    except OSError:
        return 0o666 & ~_umask()


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike) -> Iterator[Path]:
    """A hidden temporary path beside ``target`` to write; renamed onto ``target`` if the block ends normally.

    The file is flushed to disk before the rename, keeps the permission bits of the file it replaces, and is
    removed if the block raises anything (Ctrl-C included). ``OSError`` in a thread closed to writing
    (``close_writes``).
    """
    if threading.current_thread() in _CLOSED:
        raise OSError(f"not written: '{target}': the run was stopped")
    target = Path(target)
    mode = _new_file_mode(target)
    handle, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(handle)
    temporary = Path(name)
    _PENDING.add(temporary)
    try:
        yield temporary
        descriptor = os.open(temporary, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        os.chmod(temporary, mode)
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise
    finally:
        _PENDING.discard(temporary)


def atomic_write(target: str | os.PathLike, write: Callable[[IO[bytes]], Any]) -> None:
    """Write ``target`` through ``write(file)`` atomically (``atomic_path``)."""
    with atomic_path(target) as temporary, open(temporary, "wb") as handle:
        write(handle)


def write_json(target: str | os.PathLike, record: Mapping[str, Any], *, allow_nan: bool = False) -> None:
    """Write ``record`` as indented JSON, atomically, with ``"software": "nst_jax"`` first; strict JSON (no NaN)
    unless ``allow_nan``."""
    text = json.dumps({"software": SOFTWARE, **record}, indent=1, allow_nan=allow_nan) + "\n"
    atomic_write(target, lambda handle: handle.write(text.encode("utf-8")))


def is_own_json(path: Path) -> bool:
    """Whether ``path`` is a JSON file nst_jax wrote (an object whose ``software`` is nst_jax's mark)."""
    try:
        with open(path, "rb") as handle:
            if handle.read(1) != b"{":
                return False
            handle.seek(0)
            record = json.load(handle)
    except (OSError, ValueError):
        return False
    return isinstance(record, dict) and record.get("software") == SOFTWARE
