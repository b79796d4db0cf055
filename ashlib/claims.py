"""The paper's claims as checks, run on the paper's own numbers and on any run's: does a claim hold here?

Each chapter covers a few claims of the paper. A :class:`Claim` is the sentence, where the paper makes
it, and one function of *evidence* (a few small tables in the paper's layout) that says whether it
holds and why. The same function reads the paper's tables (:func:`paper_evidence`, quoted numbers from
:mod:`ashlib.paper`) and a run's results (:func:`run_evidence`, computed with :mod:`ashlib.experiments`,
so a chapter's own evaluations are reused from the context's memo). :func:`table` puts the paper and
several runs side by side: the default benchmark, its raw variant and Fashion-MNIST, so a reader sees
whether a conclusion survives a change of benchmark.

Verdicts are computed, never typed: a cell reads "holds: <numbers>" or "fails: <numbers>".
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import pandas as pd

from ashlib import experiments, paper
from ashlib._checks import check_choice

__all__ = ["Claim", "CLAIMS", "CHAPTERS", "paper_key", "paper_evidence", "run_evidence", "verdicts",
           "table", "variant_runs", "styled"]


@dataclass(frozen=True)
class Claim:
    """A claim of the paper: ``text``, where it is made (``source``), and ``check(evidence) ->
    (holds, what the numbers are)``."""

    text: str
    source: str
    check: Callable[[dict], tuple[bool, str]]


def _f(x: float) -> str:
    return f"{x:.1f}"


# ------------------------------------------------------------------------------- 01: the methods


def _ash_s_beats_energy(ev):
    e, s = ev["avg"].loc["Energy"], ev["avg"].loc["ASH-S"]
    holds = s["AUROC"] > e["AUROC"] and s["FPR95"] < e["FPR95"]
    return bool(holds), f"AUROC {_f(e['AUROC'])} → {_f(s['AUROC'])}, FPR95 {_f(e['FPR95'])} → {_f(s['FPR95'])}"


def _ash_is_best(ev):
    auroc = ev["avg"]["AUROC"].dropna()
    best = auroc.idxmax()
    return bool(best.startswith("ASH")), f"best {best} ({_f(auroc.max())})"


def _scaling_helps(ev):
    p, s = ev["avg"].loc["ASH-P", "AUROC"], ev["avg"].loc["ASH-S", "AUROC"]
    return bool(s > p), f"ASH-P {_f(p)}, ASH-S {_f(s)}"


def _plug_and_play(ev):
    plug = ev["plug"]["AUROC"]
    names = ["Softmax", "ODIN", "Energy", "ReAct"]
    gains = {n: plug[f"{n} + ASH"] - plug[n] for n in names}
    return bool(all(g > 0 for g in gains.values())), ", ".join(f"{n} {g:+.1f}" for n, g in gains.items())


def _same_accuracy(ev):
    gap = ev["accuracy_gap"]
    if gap is None:
        return True, "stated (exact same curves)"
    return bool(gap == 0), f"largest gap {gap:.2f} points over p"


# --------------------------------------------------------------------------- 02: the placements


def _deeper_is_better(metric):
    def check(ev):
        rows = ev["a1"].reindex(["ASH-P@90 block1", "ASH-P@90 block2", "ASH-P@90 block3"])[metric].dropna()
        values = rows.tolist()
        holds = len(values) >= 2 and all(a < b for a, b in zip(values, values[1:]))
        return bool(holds), "blocks 1→3: " + " → ".join(_f(v) for v in values)
    return check


def _penultimate_best(metric):
    def check(ev):
        ash = ev["a1"].drop(index="Energy", errors="ignore")[metric].dropna()
        best = ash.idxmax()
        return bool(best.endswith("penultimate")), f"best {best} ({_f(ash.max())}), penultimate " \
                                             f"{_f(ash.get('ASH-S@90 penultimate', float('nan')))}"
    return check


# ---------------------------------------------------------------------- 03: local vs global thresholds


def _local_always(variant):
    def check(ev):
        t = ev[f"local_vs_global_{variant}"]
        wins = int((t["local"] > t["global"]).sum())
        losses = [int(p) for p in t.index[t["local"] <= t["global"]]]
        return bool(wins == len(t)), f"local wins at {wins} of {len(t)} p" + (
            f" (not at p = {', '.join(map(str, losses))})" if losses else "")
    return check


def _best_is_local(ev):
    best = max(((v, thr, p, ev[f"local_vs_global_{v}"].loc[p, thr]) for v in "SB"
                for thr in ("local", "global") for p in ev[f"local_vs_global_{v}"].index), key=lambda r: r[3])
    v, thr, p, value = best
    return bool(thr == "local"), f"best ASH-{v}@{p:g} {thr} ({_f(value)})"


# ------------------------------------------------------------------------------------ 04: ASH-RAND


def _rand_not_better(ev):
    rand, ref = ev["rand"], ev["references"]["AUROC"]
    top = rand["AUROC"].max()
    bar = min(ref["ASH-S"], ref["ASH-B"])
    return bool(top < bar), f"ASH-RAND at most {_f(top)}; ASH-S {_f(ref['ASH-S'])}, ASH-B {_f(ref['ASH-B'])}"


def _rand_beats_baselines(ev):
    rand, ref = ev["rand"]["AUROC"], ev["references"]["AUROC"]
    bar = max(ref["Energy"], ref["Softmax"], ref["ODIN"])
    return bool(rand.min() > bar), f"ASH-RAND at least {_f(rand.min())}; best of Energy/Softmax/ODIN {_f(bar)}"


#: The claims each chapter checks, in the order the chapter discusses them.
CLAIMS: dict[str, list[Claim]] = {
    "01_methods": [
        Claim("ASH-S improves on the energy score: higher mean AUROC and lower mean FPR95",
              "Tables 2 and 3", _ash_s_beats_energy),
        Claim("An ASH variant has the best mean AUROC of all methods (\"a new state of the art\")",
              "Section 1; Tables 2 and 3", _ash_is_best),
        Claim("Scaling the survivors helps: ASH-S detects better than pruning alone (ASH-P)",
              "Section 4.1", _scaling_helps),
        Claim("ASH raises the mean AUROC of every score it is plugged into (Softmax, ODIN, Energy, ReAct)",
              "Table 5", _plug_and_play),
        Claim("ASH-P and ASH-S give the same ID accuracy at every pruning level", "Section 4.1, Figure 3",
              _same_accuracy),
    ],
    "02_placements": [
        Claim("Placing ASH earlier costs more ID accuracy (ASH-P@90 after blocks 1, 2, 3)",
              "Section 5, Figure 5; Table A1", _deeper_is_better("ID acc")),
        Claim("Placing ASH earlier detects OOD worse (mean AUROC, same rows)", "Appendix A, Table A1",
              _deeper_is_better("AUROC")),
        Claim("The penultimate placement preserves ID accuracy best", "Appendix A, Table A1",
              _penultimate_best("ID acc")),
        Claim("The penultimate placement detects OOD best (mean AUROC)", "Appendix A, Table A1",
              _penultimate_best("AUROC")),
    ],
    "03_global_vs_local": [
        Claim("At aligned p a local threshold always beats a global one: ASH-S (mean AUROC)",
              "Section 5, Figure 4", _local_always("S")),
        Claim("The same for ASH-B", "Appendix C, Table A4", _local_always("B")),
        Claim("The best overall result uses a local threshold", "Section 5", _best_is_local),
    ],
    "04_ash_rand": [
        Claim("ASH-RAND is comparable to, but not better than, ASH-S and ASH-B (mean AUROC)",
              "Table 4 caption", _rand_not_better),
        Claim("ASH-RAND consistently beats Energy, Softmax and ODIN (mean AUROC at every p)",
              "Table 4 caption", _rand_beats_baselines),
    ],
}
CHAPTERS = tuple(CLAIMS)


def paper_key(benchmark: str) -> str:
    """The paper's column a benchmark is compared with: its own, or CIFAR-10's for the embedded ones."""
    return benchmark if benchmark in paper.PAPER_PERCENTILES else "cifar10"


# ------------------------------------------------------------------------------------ evidence


def paper_evidence(chapter: str, benchmark: str = "cifar10") -> dict:
    """The evidence for ``chapter``'s claims, from the paper's tables (benchmark: the paper column of
    Tables 2/3/5; placements, thresholds and ASH-RAND exist for ImageNet only)."""
    check_choice("chapter", chapter, CHAPTERS)
    key = paper_key(benchmark)
    if chapter == "01_methods":
        avg = (paper.table2("ResNet-50").xs("Average", axis=1, level=0) if key == "imagenet"
               else paper.table3(key))
        return {"avg": avg, "plug": paper.table5(key), "accuracy_gap": None}
    if chapter == "02_placements":
        return {"a1": paper.table_a1()}
    if chapter == "03_global_vs_local":
        return {f"local_vs_global_{v}": paper.local_vs_global(v).xs("AUROC", axis=1, level=1) for v in "SB"}
    t4 = paper.table4()
    rand = t4[t4.index.str.startswith("ASH-RAND")]
    refs = t4.loc[["Energy", "Softmax", "ODIN", "ASH-S@90", "ASH-B@65"]].rename(
        index={"ASH-S@90": "ASH-S", "ASH-B@65": "ASH-B"})
    return {"rand": rand, "references": refs}


def _averages(results: pd.DataFrame) -> pd.DataFrame:
    avg = results[results["ood_set"] == "Average"].set_index("method")
    avg.index = avg.index.str.replace(r"@.*", "", regex=True)
    return avg


def run_evidence(chapter: str, run, convention: str = "paper", **params) -> dict:
    """The evidence for ``chapter``'s claims from a prepared run (:func:`ashlib.runs.prepare`),
    with the chapter's parameters: 01 ``percentiles`` (dict, default the paper's for the benchmark)
    and ``accuracy_sweep``; 02 ``placements`` (default: every stage, then the feature layer);
    03 ``percentiles`` (list); 04 ``rand_percentiles`` and ``seeds``."""
    check_choice("chapter", chapter, CHAPTERS)
    ctx, key = run.ctx, paper_key(run.settings["benchmark"])
    if chapter == "01_methods":
        choices = params.get("percentiles") or paper.PAPER_PERCENTILES[key]
        results = experiments.evaluate(experiments.paper_methods(choices), ctx, convention, progress=False)
        plug = experiments.evaluate(experiments.plug_and_play_methods(paper.TABLE5_ASH[key]), ctx, convention,
                                    progress=False)
        sweep = params.get("accuracy_sweep") or experiments.ACCURACY_SWEEP
        acc = experiments.id_accuracy([experiments.ash(v, p) for v in "PS" for p in sweep], ctx, progress=False)
        gap = acc.pivot_table(index="percentile", columns="family", values="ID acc")
        return {"avg": _averages(results), "plug": plug[plug["ood_set"] == "Average"].set_index("method"),
                "accuracy_gap": float((gap["ASH-P"] - gap["ASH-S"]).abs().max())}
    if chapter == "02_placements":
        stages = params.get("placements") or experiments.stage_placements(run.model, ctx)
        rows = experiments.table_a1_methods(stages)
        res = experiments.evaluate([m for _, m in rows] + [experiments.Method("Energy")], ctx, convention,
                                   progress=False)
        avg = res[res["ood_set"] == "Average"].set_index("method")
        a1 = pd.DataFrame({label: avg.loc[m.label, ["AUROC", "ID acc"]] for label, m in rows}).T
        return {"a1": pd.concat([a1, avg.loc[["Energy"], ["AUROC", "ID acc"]]])}
    if chapter == "03_global_vs_local":
        percentiles = params.get("percentiles") or experiments.THRESHOLD_PERCENTILES
        res = experiments.evaluate(experiments.threshold_grid(percentiles), ctx, convention, progress=False)
        avg = res[res["ood_set"] == "Average"]
        return {f"local_vs_global_{v}": avg[avg["family"] == f"ASH-{v}"].pivot_table(
                    index="percentile", columns="threshold", values="AUROC") for v in "SB"}
    rand, refs = experiments.table4_methods(params.get("rand_percentiles") or experiments.RAND_PERCENTILES,
                                            params.get("seeds") or experiments.RAND_SEEDS)
    res = experiments.evaluate(rand + refs, ctx, convention, progress=False)
    avg = res[res["ood_set"] == "Average"]
    by_p = avg[avg["family"] == "ASH-RAND"].groupby("percentile")[["AUROC"]].mean()
    ref = avg[avg["family"] != "ASH-RAND"].set_index("method")[["AUROC"]]
    ref.index = ref.index.str.replace(r"@.*", "", regex=True)
    return {"rand": by_p, "references": ref}


def verdicts(chapter: str, evidence: dict) -> list[str]:
    """One cell per claim of ``chapter``: "holds: ..." or "fails: ..."."""
    out = []
    for claim in CLAIMS[check_choice("chapter", chapter, CHAPTERS)]:
        holds, numbers = claim.check(evidence)
        out.append(f"{'holds' if holds else 'fails'}: {numbers}")
    return out


def table(chapter: str, runs: Mapping[str, object], benchmark: str = "mnist5k", convention: str = "paper",
          **params) -> pd.DataFrame:
    """Claim | source | Paper | one column per run: whether each claim of ``chapter`` holds.

    ``runs`` maps a column name to a prepared run, or to an exception saying why that run could not
    be made (a missing data set): its column then reads "not run: ..." instead of vanishing.
    ``benchmark`` picks the paper's column (:func:`paper_key`).
    """
    claims = CLAIMS[check_choice("chapter", chapter, CHAPTERS)]
    columns = {"claim": [c.text for c in claims], "source": [c.source for c in claims],
               f"Paper ({_paper_label(chapter, benchmark)})": verdicts(chapter, paper_evidence(chapter, benchmark))}
    for name, run in runs.items():
        if isinstance(run, BaseException):
            reason = str(run).split("\n")[0]
            columns[name] = [f"not run: {type(run).__name__}: {reason}"] * len(claims)
        else:
            columns[name] = verdicts(chapter, run_evidence(chapter, run, convention, **params))
    return pd.DataFrame(columns)


def _paper_label(chapter: str, benchmark: str) -> str:
    if chapter == "01_methods":
        return {"imagenet": "ImageNet", "cifar10": "CIFAR-10", "cifar100": "CIFAR-100"}[paper_key(benchmark)]
    return "ImageNet"


def variant_runs(run, profiles, data_root: str | None = None) -> dict[str, object]:
    """The runs to check a chapter's claims on besides ``run``: one per profile of ``profiles``
    (:func:`ashlib.runs.prepare_profile`, same width, epochs, seed and device), keyed by its label;
    a variant whose data are missing maps to the error (shown as "not run"), and one identical to
    ``run`` is left out."""
    from ashlib.data import DataNotFoundError, default_preprocessing
    from ashlib.params import load_profile
    from ashlib.runs import prepare_profile

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
    """The claims table for display: verdict cells shaded (holds: green, fails: red, not run: grey)."""
    colours = {"holds": "background-color: #e3f1e3", "fails": "background-color: #f8e0e0",
               "not run": "background-color: #eeeeee; color: #555"}

    def shade(value):
        return next((c for k, c in colours.items() if isinstance(value, str) and value.startswith(k)), "")

    verdict_columns = [c for c in claims_table.columns if c not in ("claim", "source")]
    return (claims_table.style.map(shade, subset=verdict_columns).hide(axis="index")
            .set_caption(caption or "Does each claim of the paper hold? Paper: its own quoted numbers; "
                         "the other columns: benchmarks run here"))
