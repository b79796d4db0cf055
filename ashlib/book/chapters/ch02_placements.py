"""Chapter 02, *Where to ASH: placements* (notebooks/02_placements.ipynb): its parameters."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ashlib.book.chapters import parameter
from ashlib.book.claims import Claim, at, fmt, smallest
from ashlib.book.chapters import _common as common
from ashlib.book.params import accepts


@dataclass(frozen=True)
class Parameters(common.ASHChapterParameters):
    """The parameters of notebooks/02_placements.ipynb (its parameters cell is rendered from these; the first
    18 are the ASH chapters' shared ones, :class:`~ashlib.book.chapters._common.ASHChapterParameters`)."""

    placements: Optional[list] = parameter(None, "module names; None: before the last ReLU of each stage, then avgpool", accepts.placements)
    accuracy_sweep: list = parameter([0, 10, 20, 30, 40, 50, 60, 70, 80, 85, 90, 95, 99], "Figure 5", accepts.percentiles)
    train_seeds: Optional[list] = common.train_seeds()


# -------------------------------------------------------------------------------------------------- cost


def cost(params: dict, work) -> tuple[float, int, list[str]]:
    """This chapter's work beyond the cached features (:func:`ashlib.book.estimate.chapters`): ASH at inner
    layers, replayed from a layer's output held in memory when it fits the context's replay limit, else
    streamed through the whole network once per method."""
    from ashlib.book.estimate import gib
    from ashlib.evaluation.experiments import table_a1_methods

    n, test_and_ood, stages = work.n, work.test_and_ood, work.stages
    placements = params.get("placements") or stages
    inner = [p for p in placements if p != "avgpool"]
    sweep = len(params.get("accuracy_sweep") or [])
    a1 = [m.placement for _, m in table_a1_methods(stages)]
    passes, peak, notes = 0.0, 0, []
    for p in inner:
        start = work.starts[p]
        per_image = 4 * work.numel[start]
        acc_methods, a1_methods = 2 * sweep, a1.count(p)
        if per_image * max(v for k, v in n.items() if k != "train") <= work.limit:
            held = per_image * (test_and_ood if a1_methods else n["test"])
            passes += test_and_ood if a1_methods else n["test"]
            peak += held  # each set's output is kept in memory once computed, not on disk
            notes.append(f"`{p}`: replayed from the output of `{start}`, held in memory "
                         f"({per_image / 2**20:.2f} MiB per image)")
        else:
            passes += acc_methods * n["test"] + a1_methods * test_and_ood
            notes.append(f"`{p}`: streamed ({per_image / 2**20:.2f} MiB per image at `{start}` would not fit "
                         f"{gib(work.limit)}): {acc_methods + a1_methods} passes")
    return passes, peak, notes


# ------------------------------------------------------------------------------------------------ claims

_BLOCKS = ["ASH-P@90 block1", "ASH-P@90 block2", "ASH-P@90 block3"]


def _deeper_is_better(metric):
    def check(ev):
        import numpy as np
        import pandas as pd

        table = ev[f"a1 {metric}"]
        present = [c for c in _BLOCKS if c in table and not np.isnan(at(table)[c])]
        steps = [table[b] - table[a] for a, b in zip(present, present[1:])]
        effect = smallest(*steps) if steps else pd.Series([np.nan] * len(table))
        compared = {c: at(table)[c] for c in present} if metric == "AUROC" else {}
        return effect, "blocks 1→3: " + " → ".join(fmt(at(table)[c]) for c in present), compared
    return check


def _penultimate_best(metric):
    def check(ev):
        import numpy as np
        import pandas as pd

        table = ev[f"a1 {metric}"].drop(columns="Energy", errors="ignore").dropna(axis=1)
        penultimate = next((c for c in table if c.endswith("penultimate")), None)
        best = at(table).idxmax()
        if penultimate is None:  # custom `placements` without the feature layer
            return pd.Series(np.nan, index=table.index), f"best {best} ({fmt(at(table)[best])}), no penultimate row"
        others = [c for c in table if c != penultimate]
        best_other = at(table)[others].idxmax()
        compared = {penultimate: at(table)[penultimate], best_other: at(table)[best_other]} if metric == "AUROC" else {}
        return table[penultimate] - table[others].max(axis=1), \
            f"best {best} ({fmt(at(table)[best])}), penultimate {fmt(at(table)[penultimate])}", compared
    return check


def claims() -> list[Claim]:
    """The paper's claims this chapter checks, in the order it discusses them (Section 5 and Appendix A)."""
    return [
        Claim("Placing ASH earlier costs more ID accuracy (ASH-P@90 after blocks 1, 2, 3)",
              "Section 5, Figure 5; Table A1", "the smaller ID accuracy step from one block to the next",
              _deeper_is_better("ID acc")),
        Claim("Placing ASH earlier detects OOD worse (mean AUROC, same rows)", "Appendix A, Table A1",
              "the smaller mean AUROC step from one block to the next", _deeper_is_better("AUROC")),
        Claim("The penultimate placement preserves ID accuracy best", "Appendix A, Table A1",
              "penultimate ID accuracy minus the best other placement's", _penultimate_best("ID acc")),
        Claim("The penultimate placement detects OOD best (mean AUROC)", "Appendix A, Table A1",
              "penultimate mean AUROC minus the best other placement's", _penultimate_best("AUROC")),
    ]


def paper_evidence(benchmark: str = "cifar10") -> dict:
    """The evidence for :func:`claims` from the paper's tables (quoted, one draw each)."""
    from ashlib.book import claims, paper

    a1 = paper.table_a1()
    return {"a1 AUROC": claims.quoted(a1["AUROC"]), "a1 ID acc": claims.quoted(a1["ID acc"])}


def run_evidence(run, convention: str, n_resamples: int, **params) -> dict:
    """The evidence for :func:`claims` from one prepared run (:func:`ashlib.book.claims.run_evidence`
    averages several seeds)."""
    from ashlib.evaluation import experiments

    ctx = run.ctx

    def reps(methods, quantity="AUROC", labels=None):
        return experiments.replicate_table(methods, ctx, quantity, convention, n_resamples, labels=labels)

    stages = params.get("placements") or experiments.stage_placements(run.model, ctx)
    rows = experiments.table_a1_methods(stages, feature_layer=ctx.feature_layer)
    methods = [m for _, m in rows] + [experiments.Method("energy")]
    labels = {m.label: label for label, m in rows}
    return {f"a1 {q}": reps(methods, q).rename(columns=labels) for q in ("AUROC", "ID acc")}
