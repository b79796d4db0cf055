"""Argument checks that fail with one clear message: the parameter, the bad value, what is allowed."""
from __future__ import annotations

from collections.abc import Iterable
from numbers import Real


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


def check_positive_int(name: str, value) -> int:
    """Return ``value`` if it is an integer >= 1."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise _fail(name, value, "an integer >= 1")
    return value
