"""The paper's claims as checks, run on the paper's own numbers and on any run's: does a claim hold here?

Each chapter covers a few claims of the paper, declared in its module (:mod:`ashlib.book.chapters`:
``claims()``, ``paper_evidence`` and ``run_evidence``; :func:`of` gives them); this module is what they
share. A :class:`Claim` is the sentence, where the paper makes
it, the *effect* that decides it (a number in percentage points, e.g. ASH-S's mean AUROC minus
Energy's) and which side of a line the effect must lie on. Its ``check`` reads *evidence*: a few small
tables, one column per quantity (a method's mean AUROC, its ID accuracy, ...) and one row per *draw*:
row 0 is the value on all test images (the mean over the training seeds, when there are several),
rows 1.. are bootstrap replicates (:func:`ashlib.evaluation.experiments.replicate_table`; over seeds, then
images, :func:`ashlib.evaluation.experiments.across_seeds`). The same check reads the paper's tables
(:func:`paper_evidence`, quoted numbers from :mod:`ashlib.book.paper`, row 0 only) and a run's
(:func:`run_evidence`, a chapter's own evaluations reused from the context's caches).

A run's verdict is one of :data:`ashlib.stats.uncertainty.VERDICTS`: "holds" or "fails" only when the 95%
interval of the effect lies wholly on one side of the claim's line, else "inconclusive"
(:func:`ashlib.stats.uncertainty.verdict`). The paper's numbers come without intervals, so its column says
"holds" or "fails" by the effect's sign alone. A detection claim that holds while every detector it
compares is below chance (AUROC < 50) reads "holds between failures": it says which detector fails
less, not that either detects (:func:`chance_note`). :func:`table` puts the paper and several runs side by
side: the default benchmark (over its training seeds), its raw variant and Fashion-MNIST (one seed
each), so a reader sees whether a conclusion survives a change of benchmark and whether it is
larger than the noise. Verdicts are computed, never typed.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ashlib._checks import ParameterError, check_choice

if TYPE_CHECKING:
    import pandas as pd

# pandas, numpy, torch and the evaluation engine load when a claim is checked, not when a chapter's
# module is imported to check its parameters (well under a second)

__all__ = ["Claim", "CHANCE", "BETWEEN_FAILURES", "chance_note", "of", "chapters", "paper_key", "paper_evidence", "run_evidence", "verdicts", "cells", "table",
           "variant_runs", "styled", "at", "fmt", "smallest", "quoted", "without_p"]

CHANCE = 50.0  # the AUROC (%) of a detector that guesses; below it, the detector ranks OOD above ID
BETWEEN_FAILURES = "holds between failures"  # a detection claim that holds while every detector it compares is below chance


@dataclass(frozen=True)
class Claim:
    """A claim of the paper: ``text``, where it is made (``source``), the ``effect`` that decides it (in
    words), and ``check(evidence) -> (effect per draw, what the numbers are[, compared])``, where the
    optional ``compared`` maps the detectors a detection claim compares to their mean AUROC on all images
    (:func:`chance_note` flags those below chance). The claim holds when
    the effect is above ``threshold`` (``claim`` ">"), below it ("<"), or at most ``threshold``
    ("at most": a tolerance on an effect that cannot be negative)."""

    text: str
    source: str
    effect: str
    check: Callable[[dict], tuple[pd.Series, str]]
    claim: str = ">"
    threshold: float = 0.0

    def verdict(self, effect: pd.Series) -> tuple[str, float, tuple[float, float] | None]:
        """(verdict, effect on all images, its 95% interval or None): with replicates (rows 1..) one of
        :data:`ashlib.stats.uncertainty.VERDICTS`; without (the paper's numbers) "holds" or "fails" by the
        effect alone; "not computable" where the evidence lacks a number the effect needs."""
        import numpy as np

        from ashlib.stats import uncertainty

        values = np.asarray(effect, dtype=np.float64)
        point = float(values[0])
        if not np.isfinite(values).all():  # e.g. fewer than two blocks to compare
            return "not computable", point, None
        claim, threshold = ("<", self.threshold) if self.claim == "at most" else (self.claim, self.threshold)
        if len(values) == 1:
            holds = point > threshold if claim == ">" else point < threshold
            return ("holds" if holds else "fails"), point, None
        lo, hi = uncertainty.interval(values[1:])
        return uncertainty.verdict(lo, hi, claim, threshold), point, (lo, hi)


def chance_note(compared: Mapping[str, float]) -> str:
    """What a detection claim's cell adds when detectors it compares are below chance (AUROC under
    :data:`CHANCE`): "" when none is, else which ones; a claim that holds between two failures is about
    which detector fails less, not about detection."""
    low = [name for name, auroc in compared.items() if auroc < CHANCE]
    if not low:
        return ""
    if len(low) == len(compared):
        return f"; {'both' if len(low) == 2 else 'all'} below chance (AUROC < {CHANCE:g}): none of them detects OOD"
    which = ", ".join(low) if len(low) <= 3 else f"{len(low)} of the {len(compared)} compared, e.g. {low[0]}"
    return f"; below chance (AUROC < {CHANCE:g}): {which}"


def fmt(x: float) -> str:
    """A number in a verdict's text: one decimal."""
    return f"{x:.1f}"


def at(table):
    """Row 0, the values on all images: what the numbers in a verdict's text are."""
    return table.iloc[0]


def smallest(*effects):
    """The smallest of several effects, draw by draw (a claim that needs all of them)."""
    import pandas as pd

    return pd.concat(effects, axis=1).min(axis=1)


def quoted(values):
    """Quoted values (index: names) as evidence: one draw, the paper's numbers, no replicates."""
    import numpy as np
    import pandas as pd

    return pd.DataFrame([values.to_numpy(dtype=np.float64)], columns=list(values.index)).rename_axis("draw")


def without_p(table):
    """Columns named as the paper's tables name them: "ASH-S@95" becomes "ASH-S"."""
    return table.rename(columns=lambda c: re.sub(r"@.*", "", c))


# ------------------------------------------------------------------------------------ the chapters


def chapters() -> list[str]:
    """The notebooks whose chapter module declares claims of the paper (``claims()``)."""
    from ashlib.book import chapters as modules

    return [name for name in modules.names() if hasattr(modules.chapter(name), "run_evidence")]


def _module(chapter: str):
    from ashlib.book import chapters as modules

    return modules.chapter(check_choice("chapter", chapter, chapters()))


def of(chapter: str) -> list[Claim]:
    """The claims ``chapter`` checks, in the order it discusses them."""
    return _module(chapter).claims()


def paper_key(benchmark: str) -> str:
    """The paper's column a benchmark is compared with: its own, or CIFAR-10's for the embedded ones."""
    from ashlib.book import paper

    return benchmark if benchmark in paper.PAPER_PERCENTILES else "cifar10"


def paper_evidence(chapter: str, benchmark: str = "cifar10") -> dict:
    """The evidence for ``chapter``'s claims from the paper's tables, one draw each (benchmark: the paper
    column of Tables 2/3/5; placements, thresholds and ASH-RAND exist for ImageNet only)."""
    return _module(chapter).paper_evidence(benchmark)


def run_evidence(chapter: str, run, convention: str = "paper", n_resamples: int | None = None, **params) -> dict:
    """The evidence for ``chapter``'s claims from a prepared run (:func:`ashlib.book.runs.prepare`), or from a
    list of runs of the same network trained with different seeds (:func:`ashlib.book.runs.seed_runs`: the
    mean over seeds, replicates by the hierarchical bootstrap; a table of one row, numbers quoted beside
    an effect, is the mean over seeds alone), with the chapter's parameters:
    01 ``percentiles`` (dict, default the paper's for the benchmark) and ``accuracy_sweep``;
    02 ``placements`` (default: every stage, then the feature layer); 03 ``percentiles`` (list);
    04 ``rand_percentiles`` and ``seeds`` (ASH-RAND's own seeds, not the network's). ``n_resamples``: None
    for :data:`ashlib.evaluation.experiments.INTERVAL_RESAMPLES`."""
    from ashlib.evaluation import experiments

    module = _module(chapter)
    n_resamples = experiments.INTERVAL_RESAMPLES if n_resamples is None else n_resamples
    seeds = list(run) if isinstance(run, (list, tuple)) else [run]
    if not seeds:
        raise ParameterError("run=[] is not allowed: expected a run or a non-empty list of runs (one per seed).")
    per_seed = [module.run_evidence(r, convention, n_resamples, **params) for r in seeds]
    return {name: (experiments.across_seeds([ev[name] for ev in per_seed], n_resamples) if len(per_seed[0][name]) > 1
                   else _mean_of_row_0([ev[name] for ev in per_seed]))
            for name in per_seed[0]}


def _mean_of_row_0(tables):
    """Evidence of one row (the values on all images, no replicates: numbers a cell quotes, no effect):
    their mean over the seeds."""
    import pandas as pd

    return pd.concat([t.iloc[[0]] for t in tables]).mean().to_frame().T.rename_axis("draw")


def verdicts(chapter: str, evidence: dict) -> list[str]:
    """One cell per claim of ``chapter`` (:func:`cells`)."""
    return cells(of(chapter), evidence)


def cells(claims: list[Claim], evidence: dict) -> list[str]:
    """One cell per claim: "<verdict>: <effect> [<95% interval>]; <numbers>" (numbers without replicates,
    the paper's: no interval), and :func:`chance_note` where the detectors compared are below chance. A
    claim that holds while every detector it compares is below chance reads :data:`BETWEEN_FAILURES`."""
    out = []
    for claim in claims:
        effect, numbers, *compared = claim.check(evidence)
        compared = compared[0] if compared else {}
        verdict, point, bounds = claim.verdict(effect)
        if verdict == "holds" and compared and all(v < CHANCE for v in compared.values()):
            verdict = BETWEEN_FAILURES
        shown = f"{point:+.1f}" + (f" [{bounds[0]:+.1f}, {bounds[1]:+.1f}]" if bounds else "")
        out.append(f"{verdict}: {shown}; {numbers}{chance_note(compared)}")
    return out


def table(chapter: str, runs: Mapping[str, object], benchmark: str = "mnist5k", convention: str = "paper",
          **params) -> pd.DataFrame:
    """Claim | source | effect | Paper | one column per run: whether each claim of ``chapter`` holds.

    ``runs`` maps a column name to a prepared run, to a list of runs of one network trained with
    different seeds (:func:`run_evidence`), or to an exception saying why that run could not be made
    (a missing data set): its cells then read "not run" instead of vanishing, and why is said once, in
    ``attrs["not run"]`` ({column: reason}), which :func:`styled` puts in the caption. A cell reads
    "<verdict>: <effect> [<95% interval>]; <the numbers>". ``benchmark`` picks the paper's column
    (:func:`paper_key`), whose quoted numbers come without an interval.
    """
    import pandas as pd

    claims = of(chapter)
    columns = {"claim": [c.text for c in claims], "source": [c.source for c in claims],
               "effect (points)": [c.effect for c in claims],
               f"Paper ({_paper_label(chapter, benchmark)}; quoted, no interval)":
                   verdicts(chapter, paper_evidence(chapter, benchmark))}
    not_run = {}
    for name, run in runs.items():
        if isinstance(run, BaseException):
            not_run[name] = f"{type(run).__name__}: {str(run).splitlines()[0] if str(run) else ''}"
            columns[name] = ["not run"] * len(claims)
        else:
            columns[name] = verdicts(chapter, run_evidence(chapter, run, convention, **params))
    out = pd.DataFrame(columns)
    out.attrs["not run"] = not_run  # one note per column, in the caption (:func:`styled`), not in every cell
    return out


def _paper_label(chapter: str, benchmark: str) -> str:
    """The paper's column a chapter compares with: the chapter's ``paper_column(benchmark)``, else ImageNet
    (placements, thresholds and ASH-RAND exist for ImageNet only)."""
    module = _module(chapter)
    return module.paper_column(benchmark) if hasattr(module, "paper_column") else "ImageNet"


def variant_runs(run, profiles, data_root: str | None = None) -> dict[str, object]:
    """The runs to check a chapter's claims on besides ``run``: one per profile of ``profiles``
    (:func:`ashlib.book.runs.prepare_profile`, same width, epochs, seed and device), keyed by its label;
    a variant whose data are missing maps to the error (shown as "not run"), and one identical to
    ``run`` is left out."""
    from ashlib.assets.data import DataNotFoundError, default_preprocessing
    from ashlib.book.params import load_profile
    from ashlib.book.runs import prepare_profile

    out: dict[str, object] = {}
    for name in profiles:
        spec = load_profile(name)["defaults"] or {}
        bench = spec.get("benchmark", "mnist5k")
        label = f"{bench} ({spec.get('preprocessing') or default_preprocessing(bench)})"
        if label == run.label:
            continue
        try:
            out[label] = prepare_profile(name, run, data_root)
        except DataNotFoundError as err:
            out[label] = err
    return out


def styled(claims_table: pd.DataFrame, caption: str = ""):
    """The claims table for display: verdict cells shaded (holds: green, holds between failures: pale
    olive, fails: red, inconclusive: yellow, not run: grey)."""
    colours = {BETWEEN_FAILURES: "background-color: #eef1e3; color: #555", "holds": "background-color: #e3f1e3", "fails": "background-color: #f8e0e0",
               "inconclusive": "background-color: #fdf3d0", "not run": "background-color: #eeeeee; color: #555"}

    def shade(value):
        return next((c for k, c in colours.items() if isinstance(value, str) and value.startswith(k)), "")

    verdict_columns = [c for c in claims_table.columns if c not in ("claim", "source", "effect (points)")]
    caption = caption or ("Does each claim of the paper hold? A cell: the verdict, the effect in points and its 95% "
                          "interval, then the numbers. 'holds' or 'fails' only when the interval lies on one side of "
                          "the claim's line, else 'inconclusive'. Paper: its own quoted numbers, without intervals; "
                          "the other columns: benchmarks run here. 'holds between failures': the effect holds but "
                          f"every detector compared is below chance (AUROC < {CHANCE:g}).")
    caption += "".join(f" Not run, {name}: {reason}" for name, reason in claims_table.attrs.get("not run", {}).items())
    return claims_table.style.map(shade, subset=verdict_columns).hide(axis="index").set_caption(caption)
