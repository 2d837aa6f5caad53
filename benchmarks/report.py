"""Where a benchmark's ``--json`` report may go (``nst_jax.files``' rules), checked before anything is timed."""

from __future__ import annotations

from pathlib import Path

from nst_jax.files import OutputError, check_output, is_own_json


def json_output_problem(path: Path | None, weights: Path | None) -> str | None:
    """Why ``--json PATH`` may not be written (never an input; an existing file only if nst_jax wrote it), or None."""
    if path is None:
        return None
    try:
        check_output(path, "--json", [(weights, "the weights file")] if weights is not None else [], owned=is_own_json)
    except OutputError as error:
        return str(error).replace(", or pass --overwrite to replace it", " or remove it")
    return None
