"""One entry per OOD method: what :func:`ashlib.evaluation.experiments.evaluate` can put in a table.

A method is one of two kinds, each a small frozen dataclass (:mod:`ashlib.methods.detector`) defined next to
its functions, in the method's own module (its ``ENTRIES`` tuple):

* :class:`Shaping`: a per-sample function of one layer's activations (ASH-P/B/S/RAND, SCALE). It
  works with any score that reads the network's outputs, at any placement, with a local
  (``percentile``) or global (``threshold``) cut.
* :class:`Score`: one number per image from a network (Softmax, Energy, ODIN, Mahalanobis, NAC-UE,
  MiSP, ...). ``fit``, if any, is what it needs from ID *training* data; the experiment computes it
  the first time it is needed and keeps it.

:data:`MODULES` names the modules that hold entries. Adding a method means writing one module and
its test, and adding one line here. The modules are imported (by name) when an entry is first asked
for; the architecture test counts those names as imports of this module, which sits above them.
"""
from __future__ import annotations

import functools
import importlib

from ashlib._checks import check_choice
from ashlib.methods.detector import Score, Shaping

#: The modules whose ``ENTRIES`` make up the registry, in the order tables list their methods.
MODULES = (
    "ashlib.methods.shaping",
    "ashlib.methods.scores",
    "ashlib.methods.mahalanobis",
    "ashlib.methods.nac",
    "ashlib.methods.misp",
    "ashlib.methods.scale",
    "ashlib.methods.magnitude",
)


@functools.cache
def _entries() -> tuple[dict[str, Shaping], dict[str, Score]]:
    shapings, scores = {}, {}
    for module in MODULES:
        for entry in importlib.import_module(module).ENTRIES:
            if not isinstance(entry, (Shaping, Score)):
                raise TypeError(f"{module}.ENTRIES holds {entry!r}: expected Shaping or Score entries.")
            table = shapings if isinstance(entry, Shaping) else scores
            if entry.name in shapings or entry.name in scores or entry.name == "none":
                raise ValueError(f"{module} registers {entry.name!r} a second time: names must be unique.")
            table[entry.name] = entry
    return shapings, scores


def shapings() -> dict[str, Shaping]:
    """Every registered shaping by name, in registration order."""
    return dict(_entries()[0])


def scores() -> dict[str, Score]:
    """Every registered score by name, in registration order."""
    return dict(_entries()[1])


def shaping(name: str) -> Shaping:
    """The shaping called ``name``; a clear error lists the others."""
    table = _entries()[0]
    return table[check_choice("shaping", name, list(table))]


def score(name: str) -> Score:
    """The score called ``name``; a clear error lists the others."""
    table = _entries()[1]
    return table[check_choice("score", name, list(table))]


def find(text: str) -> tuple[str, str] | None:
    """The registered score or shaping that ``text`` names, by its name or its label (any case), as
    ``("score", name)`` or ``("shaping", name)``: ``find("Softmax") == ("score", "msp")``,
    ``find("ash_s") == ("shaping", "ash_s")``; None for text that names none ("ASH-S@95", "DICE+ReAct")."""
    key = str(text).strip().lower()
    for kind, table in (("score", _entries()[1]), ("shaping", _entries()[0])):
        for name, entry in table.items():
            if key in (name.lower(), entry.label.lower()):
                return kind, name
    return None


def describe() -> list[dict]:
    """One row per registered method (kind, name, label, family, what it fits, citation): the
    registry as a table for the book."""
    rows = [dict(kind="shaping", name=s.name, label=s.label, family=s.label, fits="—", cite=s.cite)
            for s in _entries()[0].values()]
    rows += [dict(kind="score", name=s.name, label=s.label, family=s.family,
                  fits="ID training data" if s.fit is not None else "—", cite=s.cite)
             for s in _entries()[1].values()]
    return rows


__all__ = ["MODULES", "Score", "Shaping", "describe", "find", "score", "scores", "shaping", "shapings"]
