"""Compute threads for processes that ashlib runs side by side (a class graded, a matrix's local jobs).

torch, numpy's BLAS and numba each start one thread per core by default. Two processes doing so on
two cores fight for them: OpenMP's threads spin while they wait, and a small network's training ran
7x slower (25.7 s instead of 3.5 s for one epoch of the embedded benchmark's width-4 network, two
processes on two cores). Each process side by side gets its share of the cores instead; a variable
the user has set is left as it is.
"""
from __future__ import annotations

import os

#: The variables that cap torch's (OpenMP), the BLAS libraries' and numba's thread pools.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS")


def cpus() -> int:
    """The cores this process may run on (its affinity, e.g. a SLURM allocation), else all of them."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS
        return os.cpu_count() or 1


def share(processes: int) -> int:
    """Threads for each of ``processes`` processes running at once: the cores divided among them, at least 1."""
    return max(1, cpus() // max(1, processes))


def environment(threads: int, base: dict | None = None) -> dict[str, str]:
    """The :data:`THREAD_VARIABLES` that ``base`` (default: this process's environment) does not set
    already, each set to ``threads``: update a child process's environment with them."""
    base = os.environ if base is None else base
    return {name: str(threads) for name in THREAD_VARIABLES if name not in base}
