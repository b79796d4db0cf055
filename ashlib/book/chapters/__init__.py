"""One home per chapter: ``notebooks/<NN>_<name>.ipynb`` has its module ``ashlib.book.chapters.ch<NN>_<name>``.

A chapter's module holds what the book machine needs to know about it, each declared once:

* ``Parameters``: its papermill parameters as a frozen dataclass, each field with its type, default,
  help and check (:func:`parameter`). The notebook's parameters cell is rendered from it
  (:func:`parameters_cell`; tests/book/test_notebooks.py checks the two are equal, and ``python -m ashlib
  book --sync-parameters`` rewrites the cells), and the notebook's next cell checks the values it got
  (``Parameters.check(globals())``), as ``python -m ashlib run`` does before any notebook starts;
* its claims (``CLAIMS``, with ``paper_evidence`` and ``run_evidence``), where it checks the paper's;
* its cost (``cost``), where ``python -m ashlib run --dry-run`` estimates it;
* the code only this chapter uses.

Adding a chapter: a notebook, its module here, a line in ``book/_toc.yml``.
"""
from __future__ import annotations

import copy
import dataclasses
import importlib
import json
import pkgutil
from collections.abc import Callable, Mapping
from types import ModuleType

from ashlib._checks import ParameterError, check_choice


def parameter(default, help: str, check: Callable) -> dataclasses.Field:
    """A chapter parameter: its ``default``, its ``help`` (the comment of the notebook's parameters cell)
    and ``check(name, value, values)``, which raises :class:`ParameterError` for a value it refuses
    (``values``: every parameter of the chapter, for checks that read another)."""
    metadata = {"help": help, "check": check}
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda: copy.deepcopy(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


class ChapterParameters:
    """What every chapter's ``Parameters`` dataclass inherits: reading and checking its values."""

    @classmethod
    def declared(cls) -> dict[str, dataclasses.Field]:
        """Name -> field, in the declared order."""
        return {f.name: f for f in dataclasses.fields(cls)}

    @classmethod
    def defaults(cls) -> dict:
        """Name -> default value."""
        return {name: f.default_factory() if f.default is dataclasses.MISSING else f.default
                for name, f in cls.declared().items()}

    @classmethod
    def check_one(cls, name: str, values: Mapping) -> None:
        """Check parameter ``name`` alone, the others in ``values`` as its context."""
        field = cls.declared()[check_choice("parameter", name, list(cls.declared()))]
        _check(field.metadata["check"], name, values)

    @classmethod
    def check(cls, values: Mapping, first=()):
        """The parameters taken from the mapping ``values`` (a notebook passes ``globals()``), every one
        checked: those named in ``first`` (what a user changed) first, then the others in their declared
        order; :class:`ParameterError` names the first bad one."""
        declared = cls.declared()
        missing = [name for name in declared if name not in values]
        if missing:
            raise ParameterError(f"{cls.__module__.rsplit('.', 1)[-1][2:]}: parameter {missing[0]!r} has no value.")
        given = {name: values[name] for name in declared}
        first = [name for name in first if name in declared]
        for name in [*first, *(n for n in declared if n not in first)]:
            _check(declared[name].metadata["check"], name, given)
        return cls(**given)

    def as_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


def _check(check, name: str, values) -> None:
    from ashlib.book.params import papermill_hint

    try:
        check(name, values[name], values)
    except ParameterError as err:
        hint = papermill_hint(name, values[name])
        if not hint:
            raise
        raise ParameterError(f"{err}{hint}") from None


def module_name(notebook: str) -> str:
    """``01_methods`` -> ``ch01_methods``."""
    return f"ch{notebook}"


def names() -> list[str]:
    """The notebooks that have a chapter module, in order."""
    return sorted(m.name[2:] for m in pkgutil.iter_modules(__path__) if m.name.startswith("ch"))


def chapter(notebook: str) -> ModuleType:
    """The module of ``notebook`` (a name of :func:`names`)."""
    check_choice("notebook", notebook, names())
    return importlib.import_module(f"{__name__}.{module_name(notebook)}")


def parameters(notebook: str) -> type[ChapterParameters]:
    """The ``Parameters`` class of ``notebook``."""
    return chapter(notebook).Parameters


def describe(notebook: str) -> str:
    """``notebook``'s parameters as text, one per line: name, type, default and help
    (``python -m ashlib run --help-notebook``)."""
    cls = parameters(notebook)
    lines = [f"Parameters of {notebook} (ashlib/book/chapters/{module_name(notebook)}.py); set them with "
             f"python -m ashlib run {notebook} -p NAME VALUE, or papermill -y:"]
    for name, default in cls.defaults().items():
        f = cls.declared()[name]
        lines.append(f"  {name}: {f.type} = {_literal(default)}\n      {f.metadata['help']}")
    return "\n".join(lines)


# ------------------------------------------------------------------------ the notebook's parameters cell

def _literal(value) -> str:
    """A default as the parameters cell writes it: strings in double quotes, lists item by item."""
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(_literal(v) for v in value) + "]"
    return repr(value)


def parameters_cell(notebook: str) -> str:
    """The source of ``notebook``'s parameters cell, rendered from its ``Parameters``: one line per
    parameter, ``name: type = default  # help``."""
    cls = parameters(notebook)
    fields = dataclasses.fields(cls)
    lines = [f"# Parameters (papermill), declared in ashlib/book/chapters/{module_name(notebook)}.py. "
             "Every value is checked in the next cell."]
    if any("Optional" in str(f.type) for f in fields):
        lines.append("from typing import Optional")
    lines.append("")
    for name, default in cls.defaults().items():
        f = cls.declared()[name]
        lines.append(f"{name}: {f.type} = {_literal(default)}  # {f.metadata['help']}")
    return "\n".join(lines).rstrip("\n")


def sync_parameters_cells(folder) -> list[str]:
    """Rewrite the parameters cell of every notebook in ``folder`` that differs from its rendering
    (:func:`parameters_cell`); return the names of those rewritten. The notebooks' JSON is written as
    Jupyter writes it (one-space indent), each file whole or not at all."""
    from pathlib import Path

    changed = []
    for path in sorted(Path(folder).glob("*.ipynb")):
        doc = json.loads(path.read_text(encoding="utf-8"))
        cell = next((c for c in doc["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])), None)
        if cell is None or path.stem not in names():
            continue
        want = parameters_cell(path.stem)
        if "".join(cell["source"]) == want:
            continue
        cell["source"] = want.splitlines(keepends=True)
        partial = path.with_name(f".{path.name}.partial")
        partial.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        partial.replace(path)
        changed.append(path.stem)
    return changed
