"""Numbers reported in the ASH paper (Djurisic et al., ICLR 2023), transcribed from its text.

These are the paper's results, never ours: every table a notebook shows labels them as such
("Paper, Table X"), beside the numbers this run produced. Source: ../shared/seeds/001 (the paper
with its appendix, as plain text; it has no page numbers, so each table is cited by its number and
section, e.g. "Table 2, Section 4.2").

The numbers are kept as CSV files, ``ashlib/book/reference/paper_*.csv`` (one per table; ``_FILES``
below names the file of each), laid out like the paper's tables (same rows, same column order, the
paper's row labels without citation marks or bold), so a reviewer can compare them line by line
with the paper. A DICE cell written ``25.99 ± 5.10`` keeps the paper's spread. Everything is read
(:func:`ashlib.book._tables.read_reference`) and parsed once, at import, into one long table per paper
table:

* :func:`paper_results` -- the tidy long form of one table (see :data:`TABLES`);
* :func:`table2`, :func:`table3`, :func:`table4`, :func:`table5`, :func:`local_vs_global`,
  :func:`table_a1`, :func:`table_a2_a3` -- wide views laid out like the paper, each with
  ``attrs["source"]`` naming the table and section.

Where the paper contradicts itself the numbers are kept as printed; the known cases are listed
in :data:`KNOWN_INCONSISTENCIES` (and checked in ``tests/book/test_paper.py``).
"""
from __future__ import annotations

import re

import numpy as np
import pandas as pd

from ashlib.book import _tables
from ashlib._checks import check_choice

CITATION = ("A. Djurisic, N. Bozanic, A. Ashok, R. Liu. Extremely Simple Activation Shaping for "
            "Out-of-Distribution Detection. ICLR 2023.")

# ---------------------------------------------------------------------------------------------
# The paper's tables, as printed (ashlib/book/reference/paper_*.csv). All values are percentages.
# ---------------------------------------------------------------------------------------------

# The file of ashlib/book/reference/ (read by _tables.read_reference) that transcribes each table.
_FILES = {
    # Table 2, Section 4.2: ImageNet, ResNet-50 and MobileNetV2, per OOD set and average.
    "Table 2": "paper_table2",
    # Table 3, Section 4.2: CIFAR-10/100, DenseNet-101, averages over 6 OOD sets.
    "Table 3": "paper_table3",
    # Table 4, Section 4.4: ASH-RAND, ImageNet, ResNet-50, averages over 4 OOD sets.
    "Table 4": "paper_table4",
    # Table 5, Section 5: ASH plugged into other methods; averages over 6 (CIFAR) or 4 (ImageNet) sets.
    "Table 5": "paper_table5",
    # Figure 4 (a), Section 5: ASH-S, local vs global threshold, ImageNet, ResNet-50, averages.
    "Figure 4": "paper_figure4",
    # Table A1, Appendix A: ASH placements in a ResNet-50 on ImageNet, averages over 4 OOD sets.
    "Table A1": "paper_table_a1",
    # Table A2, Appendix B: CIFAR-10, DenseNet-101, per OOD set (DICE with its spread).
    "Table A2": "paper_table_a2",
    # Table A3, Appendix B: CIFAR-100, DenseNet-101, per OOD set (DICE with its spread).
    "Table A3": "paper_table_a3",
    # Table A4, Appendix C: ASH-B, local vs global threshold, ImageNet, ResNet-50, averages.
    "Table A4": "paper_table_a4",
}

# ---------------------------------------------------------------------------------------------
# Appendix D: which p (and, for Table 5, which ASH variant) each ASH row uses.
# ---------------------------------------------------------------------------------------------

# Appendix D: the p used for each ASH row of Tables 2 (ImageNet; both models), 3, A2 and A3.
PAPER_PERCENTILES = {
    "imagenet": {"P": 60, "B": 65, "S": 90},
    "cifar10": {"P": 90, "B": 95, "S": 95},
    "cifar100": {"P": 80, "B": 85, "S": 90},
}

# Appendix D, notes on Table 5: the ASH variant and p behind each "+ ASH" row.
# ("ReAct + ASH" also uses a ReAct clipping threshold of 1.0 everywhere.)
TABLE5_ASH = {
    "cifar10": {"Softmax + ASH": ("ASH-P", 95), "ODIN + ASH": ("ASH-S", 95),
                "Energy + ASH": ("ASH-S", 95), "ReAct + ASH": ("ASH-S", 90)},
    "cifar100": {"Softmax + ASH": ("ASH-B", 70), "ODIN + ASH": ("ASH-S", 90),
                 "Energy + ASH": ("ASH-S", 90), "ReAct + ASH": ("ASH-S", 90)},
    "imagenet": {"Softmax + ASH": ("ASH-B", 65), "ODIN + ASH": ("ASH-S", 90),
                 "Energy + ASH": ("ASH-S", 90), "ReAct + ASH": ("ASH-S", 90)},
}

# ---------------------------------------------------------------------------------------------
# Names: the paper's labels -> the names our code uses.
# ---------------------------------------------------------------------------------------------

TABLES = ("Table 2", "Table 3", "Table 4", "Table 5", "Figure 4",
          "Table A1", "Table A2", "Table A3", "Table A4")

SOURCES = {
    "Table 2": "Table 2, Section 4.2",
    "Table 3": "Table 3, Section 4.2",
    "Table 4": "Table 4, Section 4.4",
    "Table 5": "Table 5, Section 5",
    "Figure 4": "Figure 4 (a), Section 5",
    "Table A1": "Table A1, Appendix A",
    "Table A2": "Table A2, Appendix B",
    "Table A3": "Table A3, Appendix B",
    "Table A4": "Table A4, Appendix C",
}

COLUMNS = ("table", "source", "benchmark", "model", "method", "percentile", "threshold",
           "placement", "ood_set", "metric", "value", "spread")

METRICS = ("FPR95", "AUROC", "AUPR", "ID acc")
BENCHMARKS = ("imagenet", "cifar10", "cifar100")
MODELS = ("ResNet-50", "MobileNetV2")
OOD_SETS = {
    "imagenet": ("iNaturalist", "SUN", "Places", "Textures"),
    "cifar": ("SVHN", "LSUN-C", "LSUN-R", "iSUN", "Textures", "Places365"),
}

# Table A1's placements in our words -> the paper's row wording.
PLACEMENTS = {
    "block1": "before last ReLU of 1st Block",
    "block2": "before last ReLU of 2nd Block",
    "block3": "before last ReLU of 3rd Block",
    "block4": "before last ReLU of 4th Block",
    "penultimate": "after penultimate Layer*",
}

_METHODS = {
    "Softmax score": "Softmax", "ODIN": "ODIN", "GODIN": "GODIN", "Mahalanobis": "Mahalanobis",
    "Energy score": "Energy", "ReAct": "ReAct", "DICE": "DICE", "DICE + ReAct": "DICE+ReAct",
    "ASH-P (Ours)": "ASH-P", "ASH-B (Ours)": "ASH-B", "ASH-S (Ours)": "ASH-S",
    "Softmax score + ASH": "Softmax + ASH", "ODIN + ASH": "ODIN + ASH",
    "Energy score + ASH": "Energy + ASH", "ReAct + ASH": "ReAct + ASH",
    "No ASH (Energy score alone)": "Energy",
}
_BENCHMARKS = {"CIFAR-10": "cifar10", "CIFAR-100": "cifar100", "ImageNet": "imagenet"}
_MODELS = {"ResNet": "ResNet-50", "MobileNet": "MobileNetV2"}
_AT = re.compile(r"^(ASH-[A-Z]+)@(\d+)(?: (.*))?$")

# Where the paper disagrees with itself; the numbers in ashlib/book/reference/ are kept as printed
# (tests/book/test_paper.py checks that each of these is still there, so a "fix" of the paper's number
# would be noticed).
KNOWN_INCONSISTENCIES = {
    "Table A2, ReAct, Average AUROC":
        "prints 94.67, but the mean of its six per-set AUROCs is 95.30.",
    "Table 3, ReAct, CIFAR-10 AUROC":
        "prints 94.95, Table A2's Average column prints 94.67 for the same number (and the "
        "six sets of Table A2 average to 95.30); all other Table 3 values equal Table A2/A3.",
    "Table A3, Mahalanobis, Average":
        "prints FPR95 55.37 / AUROC 82.73, but its six sets average to 50.14 / 85.03.",
    "Table A3, ReAct, Average":
        "prints FPR95 62.27 / AUROC 84.47, but its six sets average to 65.86 / 83.96.",
    "Table 4, ODIN, AUROC":
        "44.10 is implausible (below chance) beside FPR95 56.48; Table 2 gives ODIN (ResNet-50) "
        "the same FPR95 56.48 with AUROC 85.41, Table 5 gives ODIN on ImageNet 50.80 / 87.57.",
    "Table 4, ASH-RAND@70 and ASH-RAND@75":
        "identical OOD metrics (46.93, 90.67, 98.05) with different ID accuracies "
        "(72.87, 73.19): probably a copied row.",
    "Table 4 caption, 'consistently beats Energy, Softmax and ODIN'":
        "ASH-RAND@90's FPR95 (59.35) is worse than Energy's (57.47) and ODIN's (56.48).",
    "Figure 4 / Table A4 text, 'a local threshold always works better'":
        "not at p=99 (ASH-S: global AUROC 88.94 > 88.23, AUPR 97.37 > 97.01; ASH-B: global "
        "FPR95 41.70 < 45.43, AUROC 89.75 > 89.09, AUPR tied at 97.55) nor ASH-S p=98 AUPR "
        "(global 97.64 > 97.54).",
    "Energy / Softmax on ImageNet (ResNet-50)":
        "two versions: Tables 2 and A1 ('No ASH') give Energy 58.41 / 86.17 (A1: AUPR 96.88) and "
        "Softmax 66.95 / 81.99 (taken from Sun et al.); Tables 4 and 5 give Energy "
        "57.47 / 87.05 / 97.15 and Softmax 64.76 / 82.82 / 95.94 (re-implemented).",
    "Table 5 caption, 'All results are implemented by us'":
        "its ImageNet ReAct row (31.43 / 92.95) is exactly Table 2's ReAct (ResNet-50) average, "
        "which Table 2 says is taken from Sun et al.",
    "Appendix B":
        "says Tables A2 and A3 supplement 'Table 2'; they are the per-set version of Table 3.",
}


# ---------------------------------------------------------------------------------------------
# Parsing: each file -> one long DataFrame with COLUMNS.
# ---------------------------------------------------------------------------------------------

def _split_header(header: str) -> dict[str, str | None]:
    """``'SUN FPR95'`` -> group 'SUN', metric 'FPR95'; ``'ID acc'`` -> group None, metric 'ID acc'."""
    for metric in METRICS:
        if header == metric:
            return {"group": None, "metric": metric}
        if header.endswith(" " + metric):
            return {"group": header[: -len(metric) - 1], "metric": metric}
    raise ValueError(f"unknown column {header!r} in a paper table")


def _melt(table: str, keys: tuple[str, ...]) -> pd.DataFrame:
    """One row per (row of ``table``'s file, value column): ``keys`` + group, metric, value, spread."""
    wide = _tables.read_reference(_FILES[table])
    columns = wide.columns.drop(list(keys))
    rows = _tables.melt(wide, {k: wide[k] for k in keys}, columns, _split_header)
    if len(rows) != len(wide) * len(columns) or any(r["mark"] or r["detail"] for r in rows):
        raise ValueError(f"{_FILES[table]}.csv: every cell of a paper table is a number "
                         "(with its ± spread where printed), without markup or notes")
    return pd.DataFrame(rows).drop(columns=["mark", "detail"])


def _label(label: str) -> tuple[str, float, str | None]:
    """A paper row label -> (method, percentile from the label or nan, placement from the label)."""
    match = _AT.match(label)
    if match:
        method, p, where = match.groups()
        placement = "penultimate"
        if where is not None:
            placement = {v: k for k, v in PLACEMENTS.items()}[where]
        return method, float(p), placement
    return _METHODS[label], np.nan, None


def _is_ash(method: str) -> bool:
    return method.startswith("ASH") or method.endswith("+ ASH")


def _finish(df: pd.DataFrame, table: str, *, benchmark=None, model=None, ood_set=None,
            threshold=None) -> pd.DataFrame:
    """Fill the shared columns. ``benchmark``/``model``/``ood_set``/``threshold``, when given (a
    value for every row, or a Series), override; otherwise they must already be columns of ``df``
    (threshold: 'local' for ASH rows, None for baselines; ood_set: the column group)."""
    df = df.copy()
    df["table"], df["source"] = table, SOURCES[table]
    labels = df.pop("method").map(_label)
    df["method"] = [m for m, _, _ in labels]
    if "percentile" not in df:
        df["percentile"] = [p for _, p, _ in labels]
    df["placement"] = [pl if pl is not None or not _is_ash(m) else "penultimate"
                       for m, _, pl in labels]
    for name, given in (("benchmark", benchmark), ("model", model), ("ood_set", ood_set),
                        ("threshold", threshold)):
        if given is not None:
            df[name] = given
    if threshold is None:
        df["threshold"] = ["local" if _is_ash(m) else None for m in df["method"]]
    if ood_set is None and "ood_set" not in df:
        df["ood_set"] = df["group"]
    df.loc[df["metric"] == "ID acc", "ood_set"] = None
    df["percentile"] = df["percentile"].astype(float)
    out = df[list(COLUMNS)].reset_index(drop=True)
    for col in ("threshold", "placement", "ood_set"):
        out[col] = out[col].astype(object).where(out[col].notna(), None)
    return out


def _appendix_d(df: pd.DataFrame) -> pd.Series:
    """The p of Table 2/3/A2/A3's ASH rows (ASH-P/B/S), from Appendix D; nan for baselines."""
    return pd.Series([PAPER_PERCENTILES[b][m[-1]] if m.startswith("ASH-") else np.nan
                      for b, m in zip(df["benchmark"], df["method"].map(lambda lab: _label(lab)[0]))],
                     index=df.index, dtype=float)


def _build() -> dict[str, pd.DataFrame]:
    out = {}

    t2 = _melt("Table 2", ("model", "method"))
    t2["model"] = t2["model"].map(_MODELS)
    t2["benchmark"] = "imagenet"
    t2["percentile"] = _appendix_d(t2)
    out["Table 2"] = _finish(t2, "Table 2")

    t3 = _melt("Table 3", ("method",))
    t3["benchmark"] = t3["group"].map(_BENCHMARKS)
    t3["percentile"] = _appendix_d(t3)
    out["Table 3"] = _finish(t3, "Table 3", model="DenseNet-101", ood_set="Average")

    t4 = _melt("Table 4", ("method",))
    out["Table 4"] = _finish(t4, "Table 4", benchmark="imagenet", model="ResNet-50",
                             ood_set="Average")

    t5 = _melt("Table 5", ("method",))
    t5["benchmark"] = t5["group"].map(_BENCHMARKS)
    t5["model"] = t5["benchmark"].map(
        {"cifar10": "DenseNet-101", "cifar100": "DenseNet-101", "imagenet": "ResNet-50"})
    t5["percentile"] = [float(TABLE5_ASH[b][_METHODS[m]][1]) if _METHODS[m] in TABLE5_ASH[b]
                        else np.nan for b, m in zip(t5["benchmark"], t5["method"])]
    out["Table 5"] = _finish(t5, "Table 5", ood_set="Average")

    for table in ("Figure 4", "Table A4"):
        lg = _melt(table, ("method",))
        lg["threshold"] = lg["group"].str.lower()
        out[table] = _finish(lg, table, benchmark="imagenet", model="ResNet-50",
                             ood_set="Average", threshold=lg["threshold"])

    a1 = _melt("Table A1", ("method",))
    out["Table A1"] = _finish(a1, "Table A1", benchmark="imagenet", model="ResNet-50",
                              ood_set="Average")

    for table, benchmark in (("Table A2", "cifar10"), ("Table A3", "cifar100")):
        a = _melt(table, ("method",))
        a["benchmark"] = benchmark
        a["percentile"] = _appendix_d(a)
        out[table] = _finish(a, table, model="DenseNet-101")
    return out


_LONG = _build()


# ---------------------------------------------------------------------------------------------
# Public accessors.
# ---------------------------------------------------------------------------------------------

def paper_results(table: str) -> pd.DataFrame:
    """The paper's ``table`` (one of :data:`TABLES`) in long form, one row per reported number.

    Columns: ``table``, ``source`` (table and section), ``benchmark``, ``model``, ``method``,
    ``percentile`` (p of ASH rows; nan for baselines), ``threshold`` ('local'/'global' for ASH
    rows, None otherwise), ``placement`` ('penultimate' unless Table A1 says otherwise; None for
    baselines), ``ood_set`` ('Average' for averaged tables; None for ID accuracy), ``metric``,
    ``value`` (percent) and ``spread`` (the paper's ± where given, else nan).
    """
    check_choice("table", table, TABLES)
    df = _LONG[table].copy()
    df.attrs["source"] = SOURCES[table]
    return df


def table2(model: str = "ResNet-50") -> pd.DataFrame:
    """Paper Table 2 for ``model`` ('ResNet-50' or 'MobileNetV2'): ImageNet, per OOD set.

    Index: method; columns: MultiIndex (ood_set, metric) with metric FPR95 and AUROC.
    """
    check_choice("model", model, MODELS)
    df = _LONG["Table 2"]
    return _tables.wide(df[df["model"] == model], "method", ["ood_set", "metric"], SOURCES["Table 2"])


def table3(benchmark: str = "cifar10") -> pd.DataFrame:
    """Paper Table 3 for ``benchmark`` ('cifar10' or 'cifar100'): FPR95 and AUROC averaged over 6 OOD sets.

    Index: method; columns: FPR95, AUROC. DICE's ± is in :func:`paper_results`.
    """
    check_choice("benchmark", benchmark, ("cifar10", "cifar100"))
    df = _LONG["Table 3"]
    return _tables.wide(df[df["benchmark"] == benchmark], "method", ["metric"], SOURCES["Table 3"])


def _at_label(df: pd.DataFrame) -> pd.Series:
    """'ASH-S' with p 90 -> 'ASH-S@90'; baselines keep their method name."""
    return pd.Series([m if np.isnan(p) else f"{m}@{p:g}" for m, p in
                      zip(df["method"], df["percentile"])], index=df.index)


def table4() -> pd.DataFrame:
    """Paper Table 4 (ASH-RAND; ImageNet, ResNet-50): index label (e.g. 'ASH-RAND@65', 'Energy'),
    columns FPR95, AUROC, AUPR, ID acc."""
    df = _LONG["Table 4"].assign(label=lambda d: _at_label(d))
    return _tables.wide(df, "label", ["metric"], SOURCES["Table 4"])


def table5(benchmark: str = "imagenet") -> pd.DataFrame:
    """Paper Table 5 for ``benchmark``: index method (e.g. 'Softmax', 'Softmax + ASH'),
    columns FPR95, AUROC, AUPR. The ASH variant and p of each '+ ASH' row: :data:`TABLE5_ASH`."""
    check_choice("benchmark", benchmark, BENCHMARKS)
    df = _LONG["Table 5"]
    return _tables.wide(df[df["benchmark"] == benchmark], "method", ["metric"], SOURCES["Table 5"])


def local_vs_global(variant: str = "S") -> pd.DataFrame:
    """Local vs global threshold on ImageNet (ResNet-50): 'S' -> Figure 4 (a), 'B' -> Table A4.

    Index: p (int); columns: MultiIndex (threshold, metric).
    """
    check_choice("variant", variant, ("S", "B"))
    table = "Figure 4" if variant == "S" else "Table A4"
    df = _LONG[table].assign(p=lambda d: d["percentile"].astype(int))
    return _tables.wide(df, "p", ["threshold", "metric"], SOURCES[table])


def table_a1() -> pd.DataFrame:
    """Paper Table A1 (ASH placements in a ResNet-50 on ImageNet).

    Index: label such as 'ASH-P@90 block1' ('Energy' for the no-ASH row); columns: method,
    percentile, placement, FPR95, AUROC, AUPR, ID acc. :data:`PLACEMENTS` gives the paper's wording.
    """
    df = _LONG["Table A1"].assign(
        label=lambda d: [lab if pl is None else f"{lab} {pl}"
                         for lab, pl in zip(_at_label(d), d["placement"])])
    values = _tables.wide(df, "label", ["metric"], SOURCES["Table A1"])
    meta = df.drop_duplicates("label").set_index("label")[["method", "percentile", "placement"]]
    out = meta.join(values)
    out.index.name = "label"
    out.attrs["source"] = SOURCES["Table A1"]
    return out


def table_a2_a3(benchmark: str = "cifar10") -> pd.DataFrame:
    """Paper Table A2 ('cifar10') or A3 ('cifar100'): DenseNet-101, per OOD set.

    Index: method; columns: MultiIndex (ood_set, metric). DICE's ± is in :func:`paper_results`.
    """
    check_choice("benchmark", benchmark, ("cifar10", "cifar100"))
    table = "Table A2" if benchmark == "cifar10" else "Table A3"
    return _tables.wide(_LONG[table], "method", ["ood_set", "metric"], SOURCES[table])
