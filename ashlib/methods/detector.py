"""The two kinds of OOD method, as small frozen dataclasses: :class:`Shaping` and :class:`Score`.

A method's module defines its entries next to its functions (its ``ENTRIES`` tuple);
:mod:`ashlib.methods.registry` collects them. This module imports nothing of the package, so every method
module can use it, however low its layer.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Shaping:
    """An activation shaping. ``shape(x, percentile=None, *, threshold=None, **kwargs)`` returns a new
    tensor shaped like ``x`` (exactly one of ``percentile``/``threshold``). ``label`` names its rows
    ("ASH-S@90") and its family in the figures, drawn in ``colour``. ``seeded``: ``shape`` takes a
    ``generator`` (random shapings, e.g. ASH-RAND). ``cite``: the paper, for docs and captions."""

    name: str
    label: str
    shape: Callable
    colour: str
    cite: str
    seeded: bool = False


@dataclass(frozen=True)
class Score:
    """An OOD score. ``score(ctx, method, set_name, logits, fitted)`` returns one value per image of
    the set, higher = more in-distribution; ``logits`` are the network's outputs with the method's
    shaping, ReAct and DICE applied, ``fitted`` what ``fit(ctx, method)`` returned (None without
    ``fit``). ``ctx`` is an :class:`ashlib.evaluation.experiments.Context`. ``shapeable``: False for scores that
    read unshaped activations (no shaping, ReAct or DICE may be combined with them).
    ``score_only``: options of the method that change the score but not the fit (the fit is kept per
    score and remaining options). ``family``: the group of the figures ("baseline" unless given).
    ``of_logits``: for a score that is a function of the logits alone, row by row, that function (then
    ``score`` calls it): a grid of methods is scored in one call on their logits put together."""

    name: str
    label: str
    score: Callable
    cite: str
    fit: Callable | None = None
    shapeable: bool = True
    family: str = "baseline"
    score_only: tuple[str, ...] = ()
    of_logits: Callable | None = None


__all__ = ["Score", "Shaping"]
