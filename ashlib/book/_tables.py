"""The reference tables of ashlib.book.paper and ashlib.book.related: reading them, melting them to long form,
and pivoting the long form back to the printed layout.

The tables are plain CSV files in ``ashlib/book/reference/`` (shipped as package data), laid out like the
printed tables; each cell keeps the source's text (e.g. ``25.99 ± 5.10``, ``<u>52.81</u> ± 0.63``,
``97.62 [1]*``). Where each one comes from is documented in the module that reads it.
"""
from __future__ import annotations

import re
from importlib import resources
from importlib.resources.abc import Traversable

import numpy as np
import pandas as pd

from ashlib._checks import check_choice

_REFERENCE = "reference"


def reference_names() -> tuple[str, ...]:
    """The names of the reference tables, one per ``ashlib/book/reference/<name>.csv``, sorted."""
    folder = resources.files("ashlib.book").joinpath(_REFERENCE)
    return tuple(sorted(f.name[:-len(".csv")] for f in folder.iterdir()
                        if f.is_file() and f.name.endswith(".csv")))


def reference_file(name: str) -> Traversable:
    """The file ``ashlib/book/reference/<name>.csv``; :class:`~ashlib._checks.ParameterError` naming
    ``name`` and the available names if there is no such table."""
    check_choice("name", name, reference_names())
    return resources.files("ashlib.book").joinpath(_REFERENCE, f"{name}.csv")


def read_reference(name: str) -> pd.DataFrame:
    """The reference table ``name`` (see :func:`reference_names`) as printed: every cell a string,
    empty cells ``''`` (nothing is turned into a number or NaN here; :func:`parse_cell` does that)."""
    with reference_file(name).open("r", encoding="utf-8", newline="") as fh:
        return pd.read_csv(fh, dtype=str, keep_default_na=False)


_CELL = re.compile(r"^(?:<(?P<tag>[bu])>)?(?P<value>[+-]?\d+(?:\.\d+)?)(?:</(?P=tag)>)?"
                   r"\s*(?:±\s*(?P<spread>\d+(?:\.\d+)?))?\s*(?P<detail>.*)$")
_MARKS = {"b": "bold", "u": "underline"}


def parse_cell(text: str) -> tuple[float, float, str | None, str | None] | None:
    """One printed cell -> (value, spread, mark, detail); None for a missing number ('-', '-NA-', '').

    ``'48.73'`` -> (48.73, nan, None, None); ``'25.99 ± 5.10'`` -> (25.99, 5.10, None, None);
    ``'<u>52.81</u> ± 0.63'`` -> (52.81, 0.63, 'underline', None); ``'97.62 [1]*'`` ->
    (97.62, nan, None, '[1]*'); ``'84.89(MSP)'`` -> (84.89, nan, None, 'MSP');
    ``'(+16.02)'`` -> (16.02, nan, None, None).
    """
    text = str(text).strip()
    if text in ("", "-", "-NA-"):
        return None
    if text.startswith("(") and text.endswith(")"):
        text = text[1:-1]
    match = _CELL.match(text)
    if match is None:
        raise ValueError(f"cannot parse the cell {text!r}")
    detail = match["detail"].strip()
    if detail.startswith("(") and detail.endswith(")"):
        detail = detail[1:-1]
    return (float(match["value"]), float(match["spread"]) if match["spread"] else np.nan,
            _MARKS.get(match["tag"]), detail or None)


def melt(wide: pd.DataFrame, keys: dict, columns, split) -> list[dict]:
    """One dict per printed number of ``wide``'s ``columns`` (row by row, then column by column):
    ``keys`` (name -> a Series aligned with the rows of ``wide``, or one value for all), the fields
    ``split(header)`` returns, and value, spread, mark, detail (:func:`parse_cell`). Missing
    numbers have no dict."""
    rows = []
    for i in range(len(wide)):
        for header in columns:
            parsed = parse_cell(wide[header].iloc[i])
            if parsed is None:
                continue
            value, spread, mark, detail = parsed
            fields = {k: (v.iloc[i] if isinstance(v, pd.Series) else v) for k, v in keys.items()}
            rows.append({**fields, **split(header), "value": value, "spread": spread,
                         "mark": mark, "detail": detail})
    return rows


def ordered_unique(values) -> list:
    """The distinct values in order of first appearance."""
    return list(dict.fromkeys(values))


def wide(df: pd.DataFrame, index, columns: list[str], source: str, values: str = "value",
         cols: list | None = None) -> pd.DataFrame:
    """Pivot ``df`` to ``index`` x ``columns`` keeping the source's row and column order (or the
    column order ``cols``); ``attrs["source"]`` names the table."""
    index = [index] if isinstance(index, str) else list(index)
    rows = ordered_unique(zip(*(df[c] for c in index))) if len(index) > 1 else ordered_unique(df[index[0]])
    if cols is None:
        cols = ordered_unique(zip(*(df[c] for c in columns))) if len(columns) > 1 \
            else ordered_unique(df[columns[0]])
    table = df.pivot_table(index=index, columns=columns, values=values, aggfunc="first",
                           sort=False, dropna=False)
    table = table.reindex(
        index=(pd.MultiIndex.from_tuples(rows, names=index) if len(index) > 1
               else pd.Index(rows, name=index[0])),
        columns=pd.MultiIndex.from_tuples(cols, names=columns) if len(columns) > 1 else cols)
    if len(columns) == 1:
        table.columns = pd.Index(list(table.columns), name=None)
    table = table.astype(float)
    table.attrs["source"] = source
    return table
