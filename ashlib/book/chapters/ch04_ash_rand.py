"""Chapter 04, *ASH-RAND: random values for the survivors* (notebooks/04_ash_rand.ipynb): its parameters."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ashlib.book.chapters import parameter
from ashlib.book.claims import Claim, at, fmt
from ashlib.book.chapters import _common as common
from ashlib.book.params import accepts


@dataclass(frozen=True)
class Parameters(common.ASHChapterParameters):
    """The parameters of notebooks/04_ash_rand.ipynb (its parameters cell is rendered from these; the first
    18 are the ASH chapters' shared ones, :class:`~ashlib.book.chapters._common.ASHChapterParameters`)."""

    rand_percentiles: list = parameter([65, 70, 75, 80, 85, 90], "Table 4's p values (plus 85)", accepts.percentiles)
    seeds: list = parameter([0, 1, 2, 3, 4], "ASH-RAND repetitions", accepts.seeds)
    train_seeds: Optional[list] = common.train_seeds()


# -------------------------------------------------------------------------------------------------- cost


def cost(params: dict, work) -> tuple[float, int, list[str]]:
    """This chapter's work beyond the cached features: none (:func:`ashlib.book.estimate.chapters`)."""
    return 0.0, 0, ["works on the cached features only"]


# ------------------------------------------------------------------------------------------------ claims


def _rand_not_better(ev):
    rand, ref = ev["rand"], ev["references"]
    effect = ref[["ASH-S", "ASH-B"]].min(axis=1) - rand.max(axis=1)
    return effect, (f"ASH-RAND at most {fmt(at(rand).max())}; ASH-S {fmt(at(ref)['ASH-S'])}, "
                    f"ASH-B {fmt(at(ref)['ASH-B'])}"), \
        {"best ASH-RAND": at(rand).max(), "ASH-S": at(ref)["ASH-S"], "ASH-B": at(ref)["ASH-B"]}


def _rand_beats_baselines(ev):
    rand, ref = ev["rand"], ev["references"]
    effect = rand.min(axis=1) - ref[["Energy", "Softmax", "ODIN"]].max(axis=1)
    best = at(ref)[["Energy", "Softmax", "ODIN"]].max()
    return effect, (f"ASH-RAND at least {fmt(at(rand).min())}; best of Energy/Softmax/ODIN {fmt(best)}"), \
        {"worst ASH-RAND": at(rand).min(), "best of Energy/Softmax/ODIN": best}


def claims() -> list[Claim]:
    """The paper's claims this chapter checks, in the order it discusses them (Table 4)."""
    return [
        Claim("ASH-RAND is comparable to, but not better than, ASH-S and ASH-B (mean AUROC)",
              "Table 4 caption", "the lower of ASH-S and ASH-B minus the best ASH-RAND p", _rand_not_better),
        Claim("ASH-RAND consistently beats Energy, Softmax and ODIN (mean AUROC at every p)",
              "Table 4 caption", "the worst ASH-RAND p minus the best of Energy, Softmax, ODIN",
              _rand_beats_baselines),
    ]


def paper_evidence(benchmark: str = "cifar10") -> dict:
    """The evidence for :func:`claims` from the paper's tables (quoted, one draw each)."""
    from ashlib.book import claims, paper

    t4 = paper.table4()
    rand = t4[t4.index.str.startswith("ASH-RAND")]["AUROC"]
    refs = t4.loc[["Energy", "Softmax", "ODIN", "ASH-S@90", "ASH-B@65"], "AUROC"].rename(
        index={"ASH-S@90": "ASH-S", "ASH-B@65": "ASH-B"})
    return {"rand": claims.quoted(rand.rename(index=lambda label: float(label.split("@")[1]))), "references": claims.quoted(refs)}


def run_evidence(run, convention: str, n_resamples: int, **params) -> dict:
    """The evidence for :func:`claims` from one prepared run (:func:`ashlib.book.claims.run_evidence`
    averages several seeds)."""
    import pandas as pd

    from ashlib.book import claims
    from ashlib.evaluation import experiments

    ctx = run.ctx

    def reps(methods, quantity="AUROC", labels=None):
        return experiments.replicate_table(methods, ctx, quantity, convention, n_resamples, labels=labels)

    rand, refs = experiments.table4_methods(params.get("rand_percentiles") or experiments.RAND_PERCENTILES,
                                            params.get("seeds") or experiments.RAND_SEEDS)
    table = reps(rand, labels=[f"{m.label} seed {m.seed}" for m in rand])
    by_p = pd.DataFrame({p: table[[f"{m.label} seed {m.seed}" for m in rand if m.percentile == p]].mean(axis=1)
                         for p in dict.fromkeys(m.percentile for m in rand)})
    return {"rand": by_p, "references": claims.without_p(reps(refs))}
