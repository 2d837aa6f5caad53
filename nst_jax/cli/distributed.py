"""Several processes (``--distributed``): one run over the devices of several processes or hosts.

``start`` calls ``jax.distributed.initialize`` before any other JAX call, with ``--coordinator``,
``--num-processes`` and ``--process-id`` or what JAX detects from the launcher (Slurm, Open MPI, Kubernetes, Cloud
TPU; ``JAX_COORDINATOR_ADDRESS``). Every process then runs the same command: the same checks, the same
computations (the library's arrays span every process's devices), while only process 0 (``writes``) writes files,
shows progress and prints to stdout. ``agree`` is the one meeting point after the checks: an error one process
found there ends every process with exit 2, where the others would otherwise wait in the first collective. A
process that dies later ends the others through JAX's coordination service within ``--distributed-timeout``.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Sequence

import jax
import numpy as np

DEFAULT_TIMEOUT = 120
"""Seconds a process waits for the others to start, to answer heartbeats and to finish (JAX's defaults, 300 s to
start and 100 s of silence, leave a failed run hanging for minutes)."""
TIMEOUT_LIMIT = 86400
"""The longest ``--distributed-timeout``, a day: JAX takes a 32-bit count of seconds, and a longer wait would leave a
failed run hanging for days."""


class DistributedError(Exception):
    """A multi-process set-up or agreement failure, reported as one line with exit code 2."""


@dataclasses.dataclass
class _Session:
    """This process's part in a multi-process command (module state: ``jax.distributed`` is process-wide too)."""

    started: bool = False
    agreed: bool = False


_SESSION = _Session()


def add_options(parser: argparse.ArgumentParser) -> None:
    """The "several processes" option group."""
    group = parser.add_argument_group("several processes (jax.distributed)")
    group.add_argument(
        "--distributed", action="store_true",
        help="run as one of several processes sharing their devices: start the same command in each, with "
        "--coordinator, --num-processes and --process-id, or under a launcher JAX detects (Slurm's srun, "
        "mpirun; JAX_COORDINATOR_ADDRESS); only process 0 writes files and shows progress",
    )
    group.add_argument("--coordinator", default=None, metavar="HOST:PORT",
                       help="address of process 0, which every process connects to (with --distributed)")
    group.add_argument("--num-processes", type=int, default=None, metavar="N",
                       help="how many processes take part (with --distributed)")
    group.add_argument("--process-id", type=int, default=None, metavar="I",
                       help="this process's index, 0 to N-1 (with --distributed)")
    group.add_argument(
        "--distributed-timeout", type=int, default=DEFAULT_TIMEOUT, metavar="SECONDS",
        help=f"how long a process waits for the others to start, or to answer once one has died, before ending with "
        f"an error, 1 to {TIMEOUT_LIMIT} (with --distributed; default: {DEFAULT_TIMEOUT})",
    )


def check_options(args: argparse.Namespace) -> None:
    """``DistributedError`` for process options without ``--distributed`` or with impossible values."""
    given = [name for name in ("coordinator", "num_processes", "process_id") if getattr(args, name) is not None]
    given += ["distributed_timeout"] if args.distributed_timeout != DEFAULT_TIMEOUT else []
    if not args.distributed:
        if given:
            names = ", ".join("--" + name.replace("_", "-") for name in given)
            raise DistributedError(f"{names} {'needs' if len(given) == 1 else 'need'} --distributed")
        return
    if args.num_processes is not None and not 1 <= args.num_processes < 2**31:
        raise DistributedError(f"--num-processes must be 1 to {2**31 - 1} (JAX counts processes in 32 bits), got "
                               f"{args.num_processes}")
    if args.process_id is not None and not 0 <= args.process_id < (args.num_processes or args.process_id + 1):
        raise DistributedError(f"--process-id must be 0 to --num-processes - 1, got {args.process_id}")
    if not 1 <= args.distributed_timeout <= TIMEOUT_LIMIT:
        raise DistributedError(f"--distributed-timeout must be 1 to {TIMEOUT_LIMIT} seconds, got "
                               f"{args.distributed_timeout}")
    if args.coordinator is not None:
        check_coordinator(args.coordinator)


def check_coordinator(address: str) -> None:
    """``DistributedError`` unless ``address`` is HOST:PORT (an IPv6 host in brackets) with a port of 1 to 65535:
    JAX would wait ``--distributed-timeout`` on anything else, then abort."""
    host, colon, port = address.rpartition(":")
    if not colon or not host or host == "[]" or host.count(":") and not (host.startswith("[") and host.endswith("]")):
        raise DistributedError(f"--coordinator must be HOST:PORT (e.g. 10.0.0.1:12345, or [::1]:12345 for IPv6), got "
                               f"{address!r}")
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise DistributedError(f"--coordinator's port must be 1 to 65535, got {port!r} in {address!r}")


def start(args: argparse.Namespace) -> None:
    """With ``--distributed``: join the other processes (``jax.distributed.initialize``; must come before any other
    JAX call); ``DistributedError`` naming what is missing if neither the options nor the launcher say enough."""
    check_options(args)
    if not args.distributed:
        return
    # On CPU the collectives between processes need an implementation; gloo comes with jaxlib (GPUs use NCCL).
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    if getattr(args, "device", None) == "cpu":  # the platform is fixed when JAX first asks which process this is
        jax.config.update("jax_platforms", "cpu")
    timeout = args.distributed_timeout
    try:
        jax.distributed.initialize(
            args.coordinator, args.num_processes, args.process_id, initialization_timeout=timeout,
            heartbeat_timeout_seconds=timeout, shutdown_timeout_seconds=timeout,
        )
    except (ValueError, TypeError) as error:  # JAX's messages for what it could not find
        raise DistributedError(
            f"--distributed: JAX cannot tell which processes take part ({str(error).rstrip('.')}): give --coordinator "
            "HOST:PORT, --num-processes N and --process-id I, or start each process under a launcher JAX detects "
            "(Slurm's srun, mpirun)"
        ) from None
    except jax.errors.JaxRuntimeError as error:  # e.g. the coordinator never answered
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise DistributedError(f"--distributed: could not join the other processes within {timeout} s: {first}") \
            from None
    _SESSION.started = True


def active() -> bool:
    """Whether this process is one of several (``--distributed`` started)."""
    return _SESSION.started


def writes() -> bool:
    """Whether this process writes files and output: the only one, or process 0 of several."""
    return not _SESSION.started or jax.process_index() == 0


def agree(problem: str | None = None) -> None:
    """Every process's checks done (``problem``: this process's error, else None): ``DistributedError`` in the
    others if any found one. A collective every process reaches once, after its checks and before the first
    computation (or on its way out with an error); without ``--distributed``, nothing."""
    if not _SESSION.started or _SESSION.agreed:
        return
    _SESSION.agreed = True
    from jax.experimental import multihost_utils  # only multi-process runs need it

    failed = _failed(multihost_utils.process_allgather(np.int32(problem is not None)))
    if failed and problem is None:
        raise DistributedError(f"process {', '.join(map(str, failed))} stopped with an error (see its message); "
                               "every process stops")


def _failed(flags: np.ndarray) -> Sequence[int]:
    """The indices of the processes whose flag is set."""
    return [int(index) for index in np.flatnonzero(np.asarray(flags).reshape(-1))]


__all__ = ["DEFAULT_TIMEOUT", "TIMEOUT_LIMIT", "DistributedError", "active", "add_options", "agree",
           "check_coordinator", "check_options", "start", "writes"]
