"""The text the chapters generate, checked against the tables it quotes.

A chapter writes sentences from its results (``display(Markdown(f"..."))``). Two things can go wrong
that no table shows: a slot left empty ("higher on  out of 5"), and a number that is not the table's
(rounded from another run, typed, or from a cell the tables did not come from). :func:`problems` finds
both in an executed notebook: every decimal number of its generated text must be, at the precision
printed, a value of one of the chapter's own CSV files or of the quoted reference tables (or a hundredth of
one, a fraction printed as a percent), or be named in ``constants`` (a configuration value, not a result).
Checking against the chapter's own tables, not the whole run's, keeps the test sharp: against all of a
run's 11,000 values nearly any number with one decimal would pass. A whole number printed as a percentage
("51% of its values") is a result rounded to a whole percent and is checked too, except the level of a
95% interval and chance's 50%; other integers (counts, seeds, sizes) are not: most are settings, not
results; nor are durations (a number followed by " s" or " min": how long this machine took).
"""
from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path

#: A decimal number as the chapters print them: digits with a decimal point, thousands commas allowed,
#: an optional sign (the typographic minus too).
NUMBER = re.compile(r"(?<![\w.])[-+−]?\d[\d,]*\.\d+(?!\w)(?!\.\d)")

#: A whole number printed as a percentage ("51%"), checked at precision 0 unless it is one of
#: :data:`PERCENT_CONSTANTS`.
PERCENT_INTEGER = re.compile(r"(?<![\w.,])[-+−]?\d+(?=\s?%)")

#: Whole percentages that are settings, not results: the level of every interval, and chance.
PERCENT_CONSTANTS = {"95": r"\s?%\s+(?:interval|confidence)", "50": r""}

#: Sentences with a slot left empty, each with what it looks like.
EMPTY_SLOTS = {
    r"\b(?:on|of|in|at|is|are|than|by)\s+(?:out of|of)\b": "a preposition with nothing after it",
    r"\(\s*\)|\[\s*\]": "empty brackets",
    r"(?<![\w$\\]){[A-Za-z_][\w.\[\]'\"]*(?::[^{}]*)?}": "an f-string slot that was not filled",
    r"\bnan\b|\bNaN\b|\bNone%": "a missing value printed",
    r",\s*,|,\s*\.(?!\d)": "an empty item in a list",
}


def generated_text(notebook: str | Path) -> list[str]:
    """The Markdown an executed notebook's cells printed (``display(Markdown(...))``), one string per output."""
    cells = json.loads(Path(notebook).read_text(encoding="utf-8"))["cells"]
    return ["".join(o["data"]["text/markdown"]) for c in cells for o in c.get("outputs", [])
            if "text/markdown" in o.get("data", {})]


def _plain(text: str) -> str:
    """Text with each math span (``$...$``) and code span replaced by a word (MATH, CODE): inside them
    braces and brackets are the writer's, and what they held is not empty."""
    text = re.sub(r"\$\$.*?\$\$|\$[^$\n]*\$", "MATH", text, flags=re.S)
    return re.sub(r"`[^`\n]*`", "CODE", text)


def empty_slots(text: str) -> list[str]:
    """Each place in ``text`` where a generated sentence has an empty slot: "<what>: '...context...'"."""
    plain = _plain(text)
    found = []
    for pattern, what in EMPTY_SLOTS.items():
        for m in re.finditer(pattern, plain):
            found.append(f"{what}: {plain[max(0, m.start() - 50):m.end() + 20]!r}")
    return found


def table_values(files: Iterable[str | Path]) -> list[float]:
    """Every number in the CSV files ``files`` (a chapter's own tables, the quoted reference tables)."""
    import numpy as np
    import pandas as pd

    values = []
    for path in files:
        table = pd.read_csv(path)
        for column in table.columns:
            values.append(pd.to_numeric(table[column], errors="coerce").dropna().to_numpy(dtype=float))
    return np.unique(np.concatenate(values)).tolist() if values else []


def chapter_tables(run: str | Path, notebook: str) -> list[Path]:
    """The CSV files ``notebook`` wrote in the run folder ``run`` (its ``run.json``), and the paper's and the
    related works' quoted tables (``ashlib/book/reference/*.csv``): what its text may quote."""
    from importlib import resources

    record = json.loads((Path(run) / "run.json").read_text(encoding="utf-8"))
    own = [Path(run) / f for f in record["notebooks"][notebook].get("files", []) if f.endswith(".csv")]
    reference = Path(str(resources.files("ashlib.book").joinpath("reference")))
    return own + sorted(reference.glob("*.csv"))


def unquoted_numbers(text: str, values: Iterable[float], constants: Iterable[str] = ()) -> list[str]:
    """The decimal numbers and whole percentages of ``text`` that are no value of ``values`` at the
    precision printed (as printed or times 100, with either sign), and not in ``constants``:
    "<number>: '...context...'"."""
    import numpy as np

    table = np.asarray(sorted(set(values)), dtype=float)
    known = set(constants)
    out = []
    percents = [m for m in PERCENT_INTEGER.finditer(text)
                if not (m.group().lstrip("+") in PERCENT_CONSTANTS
                        and re.match(PERCENT_CONSTANTS[m.group().lstrip("+")], text[m.end():]))]
    for m in sorted([*NUMBER.finditer(text), *percents], key=lambda m: m.start()):
        printed = m.group()
        if printed in known or re.match(r"\**\s?(?:s|min)\b", text[m.end():]):
            continue
        digits = printed.replace(",", "").replace("−", "-").lstrip("+")
        x, decimals = float(digits), len(digits.split(".")[1]) if "." in digits else 0
        candidates = np.concatenate([table, -table, 100 * table, -100 * table])
        if not np.any(np.abs(np.round(candidates, decimals) - x) < 0.5 * 10.0 ** -decimals + 1e-9):
            out.append(f"{printed}: {text[max(0, m.start() - 60):m.end() + 20]!r}")
    return out


def problems(notebook: str | Path, values: Iterable[float], constants: Iterable[str] = ()) -> list[str]:
    """Empty slots and unquoted numbers in the generated text of an executed ``notebook``."""
    values = list(values)
    found = []
    for text in generated_text(notebook):
        found += empty_slots(text) + unquoted_numbers(_plain(text), values, constants)
    return found
