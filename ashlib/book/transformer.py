"""ASH beyond CNNs: a small vision transformer, where its features differ from a CNN's, and the claims
chapter *ASH beyond CNNs* checks (notebooks/08_transformer.ipynb).

ASH (Djurisic et al., ICLR 2023, Section 3) shapes a CNN's penultimate activations: ReLU outputs,
non-negative, whose per-sample sum grows with how familiar the input is. A vision transformer's usual
pre-logit feature is the final LayerNorm's output for the class token: signed, and normalised per
sample to mean ``beta`` and spread ``gamma``, so its norm carries little of that signal. OpenOOD v1.5
reports ASH near chance on ViT-B/16 (:func:`ashlib.book.related.openood_ash`). The chapter trains
:func:`ashlib.assets.models.small_vit` on the embedded benchmark and applies ASH at two placements:

* ``norm``: the final LayerNorm's output, ``(N, width)``, signed (the usual pre-logit feature);
* ``block4.mlp.act``: the GELU units of the last MLP block for the class token, ``(N, 2 * width)``:
  bounded below (GELU's minimum is -0.17), a long positive tail, like a CNN's ReLU features.

:func:`feature_statistics` measures what separates the placements (share of negative values, the
per-sample norm and ASH-S's exponent ``s1 / s2`` as OOD scores); :data:`CLAIMS` are checked on a run's
mean AUROCs (:func:`evidence`, each method at its best p of the chapter's sweep) by :func:`claims_table`.
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from ashlib.evaluation import experiments
from ashlib.stats import metrics
from ashlib.book.claims import Claim, cells
from ashlib.assets.models import TrainRecipe, load_or_train
from ashlib.methods.shaping import ash_s_exponent

__all__ = ["VIT_WIDTH", "VIT_EPOCHS", "PLACEMENTS", "SWEEP_METHODS", "vit_recipe", "prepare_vit",
           "feature_statistics", "evidence", "CLAIMS", "claims_table"]

#: The ViT's token width (64: 4 heads of 16; its GELU layer has 128 units, as many as the small ResNet's last stage has channels).
VIT_WIDTH = 64
#: Training epochs of the ViT recipe.
VIT_EPOCHS = 15
#: The two placements of the chapter: module name -> what it is.
PLACEMENTS = {"norm": "final LayerNorm output (pre-logit, signed)",
              "block4.mlp.act": "GELU units of the last MLP block (class token)"}


def vit_recipe(epochs: int = VIT_EPOCHS, seed: int = 0) -> TrainRecipe:
    """The ViT's seeded recipe: AdamW (learning rate 1e-3 on a one-cycle schedule, weight decay 0.05,
    the usual ViT choices), batches of 64, random shifts of 2 pixels (as the small ResNet's)."""
    return TrainRecipe(epochs=epochs, seed=seed, lr=1e-3, weight_decay=0.05, optimizer="adamw")


def prepare_vit(run, width: int = VIT_WIDTH, epochs: int = VIT_EPOCHS, progress: bool = True):
    """``(model, checkpoint path, context)`` of the small ViT on ``run``'s benchmark (an
    :class:`ashlib.book.runs.Run`): trained once by :func:`vit_recipe` and cached, its method context built
    on the final LayerNorm's output (``feature_layer="norm"``) with ``run``'s settings."""
    bench, s = run.benchmark, run.settings
    model, path = load_or_train("smallvit", bench.x_train, bench.y_train, bench.num_classes, width=width,
                                recipe=vit_recipe(epochs, s["seed"]), device=s["device"], progress=progress)
    ctx = experiments.build_context(model, bench, feature_layer="norm", head="fc",
                                    baselines=experiments.baseline_settings(s["benchmark"]),
                                    batch_size=s["batch_size"], device=s["device"], num_workers=s["num_workers"])
    return model, path, ctx


def feature_statistics(features: Mapping[str, Tensor], percentile: float,
                       id_set: str = experiments.ID_SET, intervals: int | None = None) -> pd.DataFrame:
    """One row per set of ``features`` (set name -> ``(N, D)`` activations of one placement):

    * ``negative (%)``: the share of values below zero;
    * ``L2 norm``: the mean per-sample norm, and ``L2 norm AUROC``: how well the norm alone tells the
      set from ``id_set`` (higher norm = ID; 50 = not at all);
    * ``s1/s2``: the median of ASH-S's exponent at ``percentile`` (:func:`ashlib.methods.shaping.ash_s_exponent`),
      and ``s1/s2 AUROC``: the exponent alone as a score (ASH-S multiplies the kept values by
      ``exp(s1 / s2)``, so a larger exponent raises the energy score).

    AUROCs are in percent; the ``id_set`` row has none. ``intervals``: a number of bootstrap resamples;
    each AUROC then gets its 95% interval over the images (``<column>_lo``, ``<column>_hi``,
    :func:`ashlib.stats.uncertainty.metric_replicates`, seed 0).
    """
    from ashlib.stats import uncertainty

    ref = features[id_set]
    ref_norm, ref_exp = ref.norm(dim=1), ash_s_exponent(ref, percentile)

    def bounds(column: str, a: Tensor, b: Tensor) -> dict:
        if intervals is None:
            return {}
        values = [None, None] if b is None else uncertainty.interval(uncertainty.metric_replicates(
            a.double().numpy(), b.double().numpy(), intervals)["AUROC"])
        return dict(zip((f"{column}_lo", f"{column}_hi"), values))

    rows = {}
    for name, x in features.items():
        norm, exponent = x.norm(dim=1), ash_s_exponent(x, percentile)
        other = name != id_set
        rows[name] = {"negative (%)": 100 * float((x < 0).double().mean()), "L2 norm": float(norm.mean()),
                      "L2 norm AUROC": 100 * metrics.auroc(ref_norm, norm) if other else None,
                      **bounds("L2 norm AUROC", ref_norm, norm if other else None),
                      "s1/s2": float(torch.nanquantile(exponent.double(), 0.5)),
                      "s1/s2 AUROC": 100 * metrics.auroc(ref_exp, exponent) if other else None,
                      **bounds("s1/s2 AUROC", ref_exp, exponent if other else None)}
    return pd.DataFrame(rows).T.astype(float)


def _f(x: float) -> str:
    return f"{x:.1f}"


#: The sweep's methods, by the names :func:`evidence` expects in ``by_p["method"]``.
SWEEP_METHODS = ("ASH-S at LayerNorm output", "ASH-S |x| at LayerNorm output", "ASH-S at GELU units",
                 "ASH-S at avgpool")


def norm_replicates(ctx, n_resamples: int = experiments.INTERVAL_RESAMPLES) -> "np.ndarray":
    """The pre-logit feature's L2 norm as an OOD score (higher = ID), its AUROC (percent) averaged over
    ``ctx``'s paper-like OOD sets: entry 0 on all test images, then ``n_resamples`` bootstrap replicates
    on the resamples of :func:`ashlib.evaluation.experiments.evaluate`'s intervals (seed 0, a stream per set), so
    that it pairs with the methods' replicates (:func:`ashlib.evaluation.experiments.replicate_table`)."""
    import numpy as np

    from ashlib.stats import uncertainty

    norm = {name: ctx.features[name].double().norm(dim=1).numpy() for name in [experiments.ID_SET, *ctx.ood_sets]}
    value = np.mean([100 * metrics.auroc(norm[experiments.ID_SET], norm[name]) for name in ctx.averaged_sets])
    reps = uncertainty.set_replicates([norm[experiments.ID_SET]], {name: [norm[name]] for name in ctx.ood_sets},
                                      n_resamples, seed=0)
    return np.r_[value, np.mean([reps[name][0]["AUROC"] for name in ctx.averaged_sets], axis=0)]


def evidence(sweep: Mapping[str, pd.DataFrame], energy: pd.DataFrame, norm: pd.DataFrame,
             fixed_p: float | None = None) -> dict:
    """The evidence :data:`CLAIMS` read, as replicate tables (row 0 on all test images, rows 1.. bootstrap
    replicates, :func:`ashlib.evaluation.experiments.replicate_table`): ``sweep[method]`` one column per p of the
    chapter's sweep (mean AUROC over the OOD sets) for each of :data:`SWEEP_METHODS`; ``energy``
    columns "ViT" and "ResNet" (the energy score's mean AUROC); ``norm`` columns "cnn" and "vit" (the
    pre-logit feature's norm as a score, :func:`norm_replicates`). Each method is taken at its best p
    of the sweep in every draw, as the paper picks p per network: p chosen on the test OOD sets, an
    oracle that flatters every method alike. ``fixed_p`` (the paper's p, a column of the sweep): the
    claim comparing the networks is checked there too, with no choice made on test data; None leaves
    it "not computable"."""
    missing = sorted(set(SWEEP_METHODS) - set(sweep))
    if missing:
        raise ValueError(f"sweep has no tables for {missing}: expected the methods {list(SWEEP_METHODS)}.")
    best = {m: sweep[m].max(axis=1) for m in SWEEP_METHODS}
    at = {m: float(sweep[m].iloc[0].idxmax()) for m in SWEEP_METHODS}
    at_fixed = {m: (sweep[m][fixed_p] if fixed_p in sweep[m] else pd.Series(np.nan, index=sweep[m].index))
                for m in SWEEP_METHODS}
    return {"energy": energy, "best": best, "best_p": at, "norm": norm, "fixed": at_fixed, "fixed_p": fixed_p}


def _best(ev, method) -> tuple[pd.Series, str]:
    best = ev["best"][method]
    return best, f"{_f(best.iloc[0])} (p = {ev['best_p'][method]:g})"


def _vit_ash_not_better(ev):
    s, text = _best(ev, "ASH-S at LayerNorm output")
    e = ev["energy"]["ViT"]
    return e - s, f"ViT: Energy {_f(e.iloc[0])}, ASH-S at best {text}"


def _cnn_closer(ev):
    cnn = _best(ev, "ASH-S at avgpool")[0] - ev["energy"]["ResNet"]
    vit = _best(ev, "ASH-S at LayerNorm output")[0] - ev["energy"]["ViT"]
    return cnn - vit, f"ASH-S at best p minus Energy: CNN {cnn.iloc[0]:+.1f}, ViT {vit.iloc[0]:+.1f}"


def _cnn_closer_at_fixed_p(ev):
    cnn = ev["fixed"]["ASH-S at avgpool"] - ev["energy"]["ResNet"]
    vit = ev["fixed"]["ASH-S at LayerNorm output"] - ev["energy"]["ViT"]
    if ev["fixed_p"] is None:
        return cnn - vit, "no fixed p given"
    return cnn - vit, f"ASH-S at p = {ev['fixed_p']:g} minus Energy: CNN {cnn.iloc[0]:+.1f}, ViT {vit.iloc[0]:+.1f}"


def _norm_signal_lost(ev):
    c, v = ev["norm"]["cnn"], ev["norm"]["vit"]
    return c - v, f"feature norm as a score: CNN {_f(c.iloc[0])}, ViT {_f(v.iloc[0])}"


def _gelu_better(ev):
    g, gt = _best(ev, "ASH-S at GELU units")
    n, nt = _best(ev, "ASH-S at LayerNorm output")
    return g - n, f"GELU units {gt}, LayerNorm output {nt}"


def _magnitude_better(ev):
    m, mt = _best(ev, "ASH-S |x| at LayerNorm output")
    n, nt = _best(ev, "ASH-S at LayerNorm output")
    return m - n, f"on magnitudes {mt}, ASH-S {nt}"


def _a_fix_beats_energy(ev):
    names = ("ASH-S at GELU units", "ASH-S |x| at LayerNorm output")
    fixes = pd.concat([ev["best"][n] for n in names], axis=1).max(axis=1)
    name = max(names, key=lambda n: ev["best"][n].iloc[0])
    e = ev["energy"]["ViT"]
    return fixes - e, f"best fix: {name} {_best(ev, name)[1]}; Energy {_f(e.iloc[0])}"


#: The chapter's claims (mean AUROC over the OOD sets; each ASH method at its best p of the sweep),
#: checked on :func:`evidence` by :func:`claims_table`.
CLAIMS = [
    Claim("ASH-S at a vision transformer's pre-logit feature (the final LayerNorm's output) does not improve "
          "on the energy score", "OpenOOD v1.5 (ViT-B/16: ASH near/far-OOD AUROC about chance)",
          "ViT: Energy minus ASH-S at its best p", _vit_ash_not_better),
    Claim("ASH-S comes closer to the energy score (or beats it) on a CNN than on a transformer trained on the "
          "same images, each at its best p (chosen on the test OOD sets: an oracle)",
          "ASH paper, Tables 2-3 (CNNs); OpenOOD v1.5 (ViT-B/16)",
          "(ASH-S minus Energy) on the CNN minus the same on the ViT", _cnn_closer),
    Claim("The same at the paper's p, chosen without the test sets", "ASH paper, Appendix D (p = 95 on CIFAR)",
          "(ASH-S minus Energy) on the CNN minus the same on the ViT, at the chapter's p", _cnn_closer_at_fixed_p),
    Claim("LayerNorm removes the feature-norm signal: the pre-logit feature's norm tells OOD from ID worse in "
          "the transformer than in the CNN", "this chapter (ASH's premise, Section 3)",
          "the norm's AUROC on the CNN minus on the ViT", _norm_signal_lost),
    Claim("Shaping the transformer's GELU units (last MLP block) detects better than shaping its LayerNorm "
          "output", "this chapter (ASH's premise: ReLU-like activations)",
          "best ASH-S at the GELU units minus best at the LayerNorm output", _gelu_better),
    Claim("ASH-S on magnitudes (keep the largest |x| with their signs) detects better than ASH-S at the "
          "LayerNorm output", "this chapter (a fix for signed features)",
          "best ASH-S on magnitudes minus best ASH-S", _magnitude_better),
    Claim("One of the two fixes makes ASH-S improve on the energy score on the transformer",
          "this chapter", "the better fix at its best p minus Energy", _a_fix_beats_energy),
]


def claims_table(evidence: dict, column: str) -> pd.DataFrame:
    """claim | source | effect (points) | ``column``: each of :data:`CLAIMS` checked on ``evidence``
    (:func:`evidence`); a cell reads "<verdict>: <effect> [<95% interval>]; <numbers>"
    (:func:`ashlib.book.claims.cells`)."""
    return pd.DataFrame({"claim": [c.text for c in CLAIMS], "source": [c.source for c in CLAIMS],
                         "effect (points)": [c.effect for c in CLAIMS], column: cells(CLAIMS, evidence)})
