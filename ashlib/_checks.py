"""Argument checks that fail with one clear message: the parameter, the bad value, what is allowed."""
from __future__ import annotations

from collections.abc import Iterable
from numbers import Integral, Real


class ParameterError(ValueError):
    """A user-facing parameter has a value outside what is allowed."""


def _fail(name: str, value, allowed: str) -> ParameterError:
    return ParameterError(f"{name}={value!r} is not allowed: expected {allowed}.")


def check_choice(name: str, value, allowed: Iterable):
    """Return ``value`` if it is one of ``allowed``, else raise :class:`ParameterError`."""
    allowed = list(allowed)
    if value not in allowed:
        raise _fail(name, value, "one of " + ", ".join(repr(a) for a in allowed))
    return value


def check_range(name: str, value, low: float, high: float) -> float:
    """Return ``value`` if it is a real number in the closed interval [low, high]."""
    if isinstance(value, bool) or not isinstance(value, Real) or not (low <= value <= high):
        raise _fail(name, value, f"a number in [{low}, {high}]")
    return value


def check_percentile(name: str, value) -> float:
    """Percentile ``p`` in the paper's notation: a number in [0, 100] (ASH-S@90 prunes 90%)."""
    return check_range(name, value, 0, 100)


#: The largest integer a count or size may be: what a 64-bit signed integer holds (torch, numpy).
MAX_INT64 = 2**63 - 1


def check_positive_int(name: str, value) -> int:
    """Return ``value`` if it is an integer >= 1 (that fits in 64 bits)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise _fail(name, value, "an integer >= 1")
    if value > MAX_INT64:
        raise _fail(name, value, "an integer >= 1 that fits in 64 bits (at most 2**63 - 1)")
    return value


#: The largest seed: numpy's legacy range. The code derives seeds from seeds (ASH-RAND's generator is
#: seeded with ``seed * 7919 + crc32(set)``) in 64-bit integers, which larger ones overflow.
MAX_SEED = 2**32 - 1


def check_seed(name: str, value) -> int:
    """Return ``value`` as an int if it is an integer (a numpy one too) in [0, :data:`MAX_SEED`]."""
    if isinstance(value, bool) or not isinstance(value, Integral) or not 0 <= value <= MAX_SEED:
        raise ParameterError(f"{name}={value!r} is not allowed: expected an integer in [0, {MAX_SEED}] (2**32 - 1).")
    return int(value)

