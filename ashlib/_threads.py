"""Compute threads: how OpenMP's idle threads wait, and the share of the cores of each process that
ashlib runs side by side (a class graded, a matrix's local jobs).

Waiting: OpenMP's threads spin (busy-wait) between parallel regions by default. On a small network,
whose every operation is a short parallel region, spinning threads that share their cores with
another busy process take the time the working threads need. One training epoch of the embedded
ResNet (2,000 images) on the 2-core CI machine, medians (``benchmarks/openmp_wait.py``): idle, 6.7 s
spinning and 6.4 s sleeping (``OMP_WAIT_POLICY=PASSIVE``); beside one busy process, 11.8 s and 7.5 s;
beside a whole book build, 24-40 s and 7.5-8 s. The weights are bitwise identical. :func:`passive_waiting`,
which the book machine calls when imported (``import ashlib.book``; the science alone never does), sets
that policy unless the user has set one.

Sharing: torch, numpy's BLAS and numba each start one thread per core by default. Two processes doing so on
two cores fight for them: OpenMP's threads spin while they wait, and a small network's training ran
7x slower (25.7 s instead of 3.5 s for one epoch of the embedded benchmark's width-4 network, two
processes on two cores). Each process side by side gets its share of the cores instead; a variable
the user has set is left as it is.
"""
from __future__ import annotations

import os
import sys

#: OpenMP's setting for how idle threads wait, and the value ashlib uses unless the user set one.
WAIT_VARIABLE, WAIT_POLICY = "OMP_WAIT_POLICY", "PASSIVE"


def passive_waiting() -> bool:
    """Let OpenMP's idle threads sleep instead of spin: set ``OMP_WAIT_POLICY=PASSIVE`` in this process's
    environment unless it is set already (then the user's value stays, e.g. ``ACTIVE``). Returns True
    when this process's OpenMP will wait passively. OpenMP reads the variable once, when torch loads
    it, so it takes effect here only if torch is not imported yet (``import ashlib.book`` first, as every
    notebook's check cell does); the kernels and workers started from this process always inherit it.
    The wait policy decides only how threads wait, never how work is split: results are bitwise the same.
    """
    os.environ.setdefault(WAIT_VARIABLE, WAIT_POLICY)
    return os.environ[WAIT_VARIABLE].upper() == WAIT_POLICY and "torch" not in sys.modules


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
