"""Pivoting long-form reference tables (ashlib.paper, ashlib.related) back to their printed layout."""
from __future__ import annotations

import pandas as pd


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
