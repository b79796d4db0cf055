"""Chapter 03, *Global versus local thresholds* (notebooks/03_global_vs_local.ipynb): its parameters."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ashlib.book.chapters import parameter
from ashlib.book.claims import Claim, at, fmt
from ashlib.book.chapters import _common as common
from ashlib.book.params import accepts


@dataclass(frozen=True)
class Parameters(common.ASHChapterParameters):
    """The parameters of notebooks/03_global_vs_local.ipynb (its parameters cell is rendered from these; the first
    18 are the ASH chapters' shared ones, :class:`~ashlib.book.chapters._common.ASHChapterParameters`)."""

    percentiles: list = parameter([70, 75, 80, 85, 90, 91, 92, 93, 94, 95, 96, 97, 98, 99], "Figure 4 / Table A4", accepts.percentiles)
    train_seeds: Optional[list] = common.train_seeds()


# -------------------------------------------------------------------------------------------------- cost


def cost(params: dict, work) -> tuple[float, int, list[str]]:
    """This chapter's work beyond the cached features: none (:func:`ashlib.book.estimate.chapters`)."""
    return 0.0, 0, ["works on the cached features only"]


# ------------------------------------------------------------------------------------------------ claims


def _local_always(variant):
    def check(ev):
        local, glob = ev[f"local {variant}"], ev[f"global {variant}"]
        margin = local - glob[local.columns]
        wins = int((at(margin) > 0).sum())
        losses = [f"{p:g}" for p in margin.columns[at(margin) <= 0]]
        compared = {f"{thr} ASH-{variant}@{p:g}": at(table)[p] for thr, table in (("local", local), ("global", glob))
                    for p in local.columns}
        return margin.min(axis=1), f"local wins at {wins} of {margin.shape[1]} p" + (
            f" (not at p = {', '.join(losses)})" if losses else ""), compared
    return check


def _best_is_local(ev):
    import pandas as pd

    best = max(((v, thr, p, at(ev[f"{thr} {v}"])[p]) for v in "SB" for thr in ("local", "global")
                for p in ev[f"{thr} {v}"].columns), key=lambda r: r[3])
    v, thr, p, value = best
    local = pd.concat([ev["local S"], ev["local B"]], axis=1).max(axis=1)
    glob = pd.concat([ev["global S"], ev["global B"]], axis=1).max(axis=1)
    return local - glob, f"best ASH-{v}@{p:g} {thr} ({fmt(value)})", {"best local": at(local), "best global": at(glob)}


def claims() -> list[Claim]:
    """The paper's claims this chapter checks, in the order it discusses them (Section 5 and Appendix C)."""
    return [
        Claim("At aligned p a local threshold always beats a global one: ASH-S (mean AUROC)",
              "Section 5, Figure 4", "the smallest local-minus-global mean AUROC over p", _local_always("S")),
        Claim("The same for ASH-B", "Appendix C, Table A4", "the smallest local-minus-global mean AUROC over p",
              _local_always("B")),
        Claim("The best overall result uses a local threshold", "Section 5",
              "best local mean AUROC minus best global", _best_is_local),
    ]


def paper_evidence(benchmark: str = "cifar10") -> dict:
    """The evidence for :func:`claims` from the paper's tables (quoted, one draw each)."""
    from ashlib.book import claims, paper

    return {f"{thr} {v}": claims.quoted(paper.local_vs_global(v)[(thr, "AUROC")]) for v in "SB" for thr in ("local", "global")}


def run_evidence(run, convention: str, n_resamples: int, **params) -> dict:
    """The evidence for :func:`claims` from one prepared run (:func:`ashlib.book.claims.run_evidence`
    averages several seeds)."""
    import pandas as pd

    from ashlib.evaluation import experiments

    ctx = run.ctx

    def reps(methods, quantity="AUROC", labels=None):
        return experiments.replicate_table(methods, ctx, quantity, convention, n_resamples, labels=labels)

    grid = experiments.threshold_grid(params.get("percentiles") or experiments.THRESHOLD_PERCENTILES)
    table = reps(grid)
    return {f"{thr} {v}": pd.DataFrame({m.percentile: table[m.label] for m in grid
                                        if m.family == f"ASH-{v}" and m.threshold == thr})
            for v in "SB" for thr in ("local", "global")}
