"""The fused CPU pass of :mod:`ashlib.methods.shaping` (ASH-P/B/S/RAND, local or global threshold), compiled by
numba on first use and cached on disk.

Plain Python functions at module level: :func:`compiled` imports numba (only then), swaps the module's
helpers for their compiled versions and compiles :func:`_apply` with ``cache=True``. Module-level
functions are what numba's disk cache can find again: the next process loads the compiled pass in a
fraction of a second instead of compiling it for seconds (a pass defined as a closure never matched
its cache entry, so every process compiled it again and added a new entry). The cache sits in
``$NUMBA_CACHE_DIR``, else in ``$ASHLIB_CACHE/numba`` (a read-only checkout, e.g. a grader's sandbox,
has no writable folder beside the source); with no writable folder at all, the pass is compiled in
memory, once per process. The default goes into numba's config, not into the environment, so the
kernels and graders a process starts later choose their own folder.
"""
from __future__ import annotations

import functools
import math
import os

import numpy as np

# ASH-RAND's draws (splitmix64's constants; :func:`ashlib.methods.shaping._uniform_at` is the torch twin).
_GOLDEN, _MIX1, _MIX2 = 0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB

def _uniform(key, counter, low, span):
    """One draw of :func:`ashlib.methods.shaping._uniform_at`, in unsigned 64-bit arithmetic (compiled by numba)."""
    z = key + (counter + np.uint64(1)) * np.uint64(_GOLDEN)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(_MIX1)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(_MIX2)
    z = z ^ (z >> np.uint64(31))
    return low + span * (np.float64(z >> np.uint64(11)) * 2.0**-53)


def _select(a, m, r):
    """The ``r``-th smallest (0-based) of ``a[:m]``, reordering ``a[:m]`` in place: quickselect with
    Hoare's partition around a median of three (compiled by numba for :func:`_apply`)."""
    lo, hi = 0, m - 1
    while hi > lo:
        mid = (lo + hi) >> 1
        if a[mid] < a[lo]:
            a[mid], a[lo] = a[lo], a[mid]
        if a[hi] < a[lo]:
            a[hi], a[lo] = a[lo], a[hi]
        if a[hi] < a[mid]:
            a[hi], a[mid] = a[mid], a[hi]
        pivot, i, j = a[mid], lo, hi
        while i <= j:
            while a[i] < pivot:
                i += 1
            while a[j] > pivot:
                j -= 1
            if i <= j:
                a[i], a[j] = a[j], a[i]
                i += 1
                j -= 1
        if r <= j:  # a[lo..j] <= pivot <= a[i..hi], and everything between them equals the pivot
            hi = j
        elif r >= i:
            lo = i
        else:
            return a[r]
    return a[r]


def _sums(row, t):
    """(sum, sum above ``t``, count above ``t``, count equal to ``t``) of a row, in float64; compiled
    with reassociation allowed, so that the sums vectorise (their order of additions is the compiler's)."""
    s1, s_above, n_above, n_tied = 0.0, 0.0, 0, 0
    for j in range(len(row)):
        v = np.float64(row[j])
        above = v > t
        s1 += v
        s_above += v if above else 0.0
        n_above += above
        n_tied += v == t
    return s1, s_above, n_above, n_tied


#: The loop of :func:`_apply` over chunks of rows; :func:`compiled` makes it ``numba.prange`` (parallel).
prange = range


def _apply(x, bits, flip, top, k, t_global, variant, cap, stream, low, span, chunks, out, t_out, kept_out):
    """The fused per-row pass (:func:`compiled` compiles it).

    Rows are split into a few chunks per thread; per row, while it sits in the core's cache:

    1. its ``k``-th largest value ``t`` by radix selection on the floats' bits, read as integers whose
       order is the floats' order (a negative value has its 31 or 63 low bits flipped): a histogram of
       the top 11 bits finds the bucket that holds ``t``; the row's values in that bucket (a few
       percent of it, typically) are gathered and a quickselect (:func:`_select`) finds ``t`` among them.
       Linear in the row, and no copy of the whole row, unlike a sort or a partition of it;
    2. the sum ``s1``, the sum and count of the values above ``t`` and the count of those equal to
       ``t``; the tie rule of :func:`ashlib.methods.shaping._keep_mask` gives the kept count and ``s2``;
    3. the output, written once.

    A global threshold (``k = -1``) skips step 1. Sums accumulate in float64. ``t_out``/``kept_out``
    receive each row's threshold and kept count.
    """
    n_rows, n = x.shape
    per_chunk = (n_rows + chunks - 1) // chunks
    for c in prange(chunks):
        hist = np.empty(2048, np.int64)
        cand = np.empty(n, x.dtype)
        where = np.empty(n if variant == 3 else 0, np.int64)
        for i in range(c * per_chunk, min(n_rows, (c + 1) * per_chunk)):
            row, o, b = x[i], out[i], bits[i]
            if k > 0:  # 1. the k-th largest, t: a radix histogram of the bits, then a quickselect
                hist[:] = 0
                for j in range(n):
                    key = np.int64(b[j])
                    key ^= (key >> 63) & flip
                    hist[(key >> top) + 1024] += 1
                need, bucket = k, 2047
                while hist[bucket] < need:
                    need -= hist[bucket]
                    bucket -= 1
                m = 0
                for j in range(n):  # gather the values in that bucket, branch-free
                    key = np.int64(b[j])
                    key ^= (key >> 63) & flip
                    cand[m] = row[j]
                    m += (key >> top) + 1024 == bucket
                ti = _select(cand, m, m - need)  # their need-th largest
            else:
                ti = t_global if k < 0 else math.inf
            s1, s_above, n_above, n_tied = _sums(row, ti)  # 2. the sums that the tie rule needs
            tied_kept = n_tied if k < 0 else max(0, min(n_tied, k - n_above))
            kept = n_above + tied_kept
            s2 = s_above + tied_kept * ti if tied_kept else s_above
            t_out[i], kept_out[i] = ti, kept
            if variant == 1:  # ASH-B
                scale = s1 / kept if kept > 0 else 0.0
            elif variant == 2:  # ASH-S
                scale = math.exp(min(s1 / s2, cap)) if s2 != 0 else 0.0
            else:
                scale = 1.0
            if kept == 0:
                ti = math.inf  # nothing is kept: every value is written as zero below
            if variant == 3:  # ASH-RAND: zeros, the kept positions (branch-free), then their draws
                m, left = 0, tied_kept
                for j in range(n):
                    v = row[j]
                    tie = v == ti
                    keep = (v > ti) | (tie & (left > 0))
                    left -= tie & keep
                    o[j] = 0.0
                    where[m] = j
                    m += keep
                first = np.uint64(i) * np.uint64(n)  # the row's counters: i * n + rank among its kept
                for q in range(m):
                    o[where[q]] = _uniform(stream, first + np.uint64(q), low, span)
            elif tied_kept == n_tied or kept == 0:  # 3. every value >= t is kept (the usual case)
                if variant == 1:
                    for j in range(n):
                        o[j] = scale if row[j] >= ti else 0.0
                else:
                    for j in range(n):
                        o[j] = row[j] * scale if row[j] >= ti else 0.0
            else:  # ties at t: keep the first ones by position
                left = tied_kept
                for j in range(n):
                    v = row[j]
                    keep = v > ti
                    if v == ti and left > 0:
                        keep = True
                        left -= 1
                    o[j] = (scale if variant == 1 else v * scale) if keep else 0.0


@functools.cache
def compiled():
    """:func:`_apply`, compiled by numba (parallel over chunks of rows) and cached on disk where a
    folder can be written; the helpers it calls are compiled into it (they are put in their places
    first, once per process)."""
    import numba

    from ashlib import cache_dir

    if not os.environ.get("NUMBA_CACHE_DIR"):  # numba's own setting wins; else ours, for this process only
        try:  # numba's config, not os.environ: child processes (kernels, graders) must not inherit it
            numba.config.CACHE_DIR = str(cache_dir("numba"))
        except OSError:  # no cache folder: numba compiles in memory (below)
            pass

    globals().update(_select=numba.njit(_select), _uniform=numba.njit(_uniform),
                     _sums=numba.njit(fastmath={"reassoc"})(_sums), prange=numba.prange)
    try:
        return numba.njit(parallel=True, cache=True)(_apply)
    except (RuntimeError, OSError):  # no folder to cache it in: compiled in memory, once per process
        return numba.njit(parallel=True)(_apply)
