"""The chapter *When does ASH help?*: the review's three questions as measurements on a network.

The ASH paper leaves three questions open (the review, ``seeds/``): why does shaping help, why does
pruning keep accuracy, and is the representation redundant? Each function here measures one of them on
penultimate features ``(N, d)`` (non-negative: the ReLU units before the pool), without a network:

* **Why does shaping help?** ASH-S multiplies the kept activations by ``exp(s1 / s2)`` (Algorithm 3;
  ``s1``, ``s2``: a sample's activation sum before and after pruning), so it raises the energy of the
  samples whose mass is spread out (large ``s1/s2``) more than of those whose mass sits in their top
  units. It can only help if ID samples have the larger ratio. :func:`premise` measures that per OOD
  set: the median ``s1/s2`` of ID and OOD samples, the share of the mass in the kept top
  ``(100 - p)``% (``s2/s1``), and the *premise AUROC*, the AUROC of ``s1/s2`` itself as an ID-vs-OOD
  score (above 50: ASH-S scales ID samples up more, as the paper needs; below 50: reversed).
* **Why does pruning keep accuracy?** :func:`logit_share_kept`: the share of the predicted class's
  logit (bias left out) that the kept units carry, and how often pruning leaves the prediction as it is.
* **Is the representation redundant?** :func:`redundancy`: participation ratio and effective rank of
  the features' covariance, and the share of dead units.

:func:`gains` assembles each network's gain over a reference method (Energy) with intervals over
training seeds and test images (:func:`ashlib.evaluation.experiments.differences`).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from ashlib.evaluation import experiments
from ashlib.stats import metrics, uncertainty
from ashlib.methods import shaping
from ashlib._checks import ParameterError, check_percentile

__all__ = ["mass_ratio", "premise", "logit_share_kept", "participation_ratio", "effective_rank", "dead_units",
           "redundancy", "kept_networks", "network_scores", "gains_from_scores", "gains"]


def _features(name: str, x) -> Tensor:
    """``x`` as a float64 ``(samples, units)`` tensor; trailing dimensions (a pooled ``(N, d, 1, 1)``)
    are flattened into the units."""
    x = torch.as_tensor(x)
    if x.ndim < 2 or x.shape[0] == 0 or x[0].numel() == 0:
        raise ParameterError(f"{name} with shape {tuple(x.shape)} is not allowed: expected (samples, units, ...), "
                             "both at least 1.")
    return x.reshape(x.shape[0], -1).to(torch.float64)


def mass_ratio(features, percentile: float) -> np.ndarray:
    """``s1 / s2`` per sample at ``percentile`` (ASH-S's exponent, :func:`ashlib.methods.shaping.ash_s_exponent`):
    the activation sum over the sum of the kept top ``(100 - p)``% units. 1 when the top units carry
    all the mass; NaN where nothing is kept."""
    x = _features("features", features)
    return shaping.ash_s_exponent(x, check_percentile("percentile", percentile)).numpy()


def premise(features: Mapping[str, object], id_set: str, percentile: float) -> pd.DataFrame:
    """ASH-S's premise per OOD set of ``features`` (``{set name: (N, d) features}``, ``id_set`` among
    them): one row per OOD set with the median ``s1/s2`` of the ID and of the OOD samples, the share of
    the mass in the kept units that median means (``100 / median``, percent) for each, and the premise AUROC (percent),
    the AUROC of ``s1/s2`` as a score with ID positive: above 50, ASH-S scales ID samples up more than
    OOD ones (what it needs to help), below 50 the other way round."""
    if id_set not in features:
        raise ParameterError(f"id_set={id_set!r} is not allowed: expected one of {', '.join(map(repr, features))}.")
    ratio = {name: mass_ratio(x, percentile) for name, x in features.items()}
    r_id = ratio[id_set]
    rows = []
    for name, r in ratio.items():
        if name == id_set:
            continue
        ok_id, ok = r_id[np.isfinite(r_id)], r[np.isfinite(r)]
        rows.append({"ood_set": name, "s1/s2 ID": float(np.median(ok_id)), "s1/s2 OOD": float(np.median(ok)),
                     "kept share ID": 100 / float(np.median(ok_id)), "kept share OOD": 100 / float(np.median(ok)),
                     "premise AUROC": 100 * metrics.auroc(ok_id, ok)})
    return pd.DataFrame(rows)


def logit_share_kept(features, weight, percentile: float) -> dict[str, float]:
    """How much of the decision ASH's pruning at ``percentile`` keeps (Algorithm 1, bias left out):
    for each sample, the predicted class ``c`` of the unpruned features and the share ``W_c . a_kept /
    W_c . a`` of its logit carried by the kept units. Returns the median share (percent) over the
    samples and the share of samples whose predicted class pruning leaves unchanged (percent; with the
    bias left out, ASH-S predicts as ASH-P, the paper's footnote 1)."""
    x = _features("features", features)
    w = torch.as_tensor(weight).to(torch.float64)
    if w.ndim != 2 or w.shape[1] != x.shape[1]:
        raise ParameterError(f"weight with shape {tuple(w.shape)} is not allowed: expected (classes, {x.shape[1]}).")
    pruned = shaping.ash_p(x, check_percentile("percentile", percentile))
    logits, kept = x @ w.T, pruned @ w.T
    c = logits.argmax(1)
    full = logits.gather(1, c[:, None])[:, 0]
    part = kept.gather(1, c[:, None])[:, 0]
    ok = full != 0
    return {"logit kept": 100 * float(torch.median(part[ok] / full[ok])) if ok.any() else float("nan"),
            "same prediction": 100 * float((kept.argmax(1) == c).double().mean())}


def _eigenvalues(x: Tensor) -> Tensor:
    """The features' covariance eigenvalues (ddof 1), clipped at 0 against round-off."""
    if x.shape[0] < 2:
        raise ParameterError(f"features with {x.shape[0]} sample is not allowed: expected at least 2.")
    centred = x - x.mean(0)
    return torch.linalg.eigvalsh(centred.T @ centred / (x.shape[0] - 1)).clamp(min=0)


def participation_ratio(features) -> float:
    """``(sum lambda)^2 / sum lambda^2`` of the covariance eigenvalues (Gao et al., 2017): the number of
    dimensions the features spread over; ``d`` for isotropic features, 1 when one direction carries all
    the variance; NaN for constant features."""
    lam = _eigenvalues(_features("features", features))
    total = float((lam ** 2).sum())
    return float(lam.sum()) ** 2 / total if total > 0 else float("nan")


def effective_rank(features) -> float:
    """Roy and Vetterli's effective rank (EUSIPCO 2007): ``exp`` of the entropy of the covariance
    eigenvalues normalised to sum 1; between 1 and ``d``; NaN for constant features."""
    lam = _eigenvalues(_features("features", features))
    if float(lam.sum()) <= 0:
        return float("nan")
    q = lam / lam.sum()
    q = q[q > 0]
    return float(torch.exp(-(q * q.log()).sum()))


def dead_units(features) -> float:
    """Share (percent) of the units that are zero on every sample: a ReLU that never fires."""
    x = _features("features", features)
    return 100 * float((x == 0).all(0).double().mean())


def redundancy(features) -> dict[str, float]:
    """The penultimate layer's redundancy on ``features`` (ID samples): its units, participation ratio
    and effective rank (absolute, and per unit in percent) and dead units (percent)."""
    x = _features("features", features)
    pr, er = participation_ratio(x), effective_rank(x)
    d = x.shape[1]
    return {"units": d, "participation ratio": pr, "participation ratio (% of units)": 100 * pr / d,
            "effective rank": er, "effective rank (% of units)": 100 * er / d, "dead units (%)": dead_units(x)}


def kept_networks(paths, name: str = "when_ash_helps_scores") -> tuple[dict, dict]:
    """The per-image scores that runs of this chapter kept (:meth:`ashlib.book.runs.Run.keep_scores`, files
    ``<name>.npz`` found under each of ``paths``, keys ``units=<u>/train_seed=<t>/<method>/<set>``):
    ``({(units, train seed): {method: {set: scores}}}, {(units, train seed): ID labels})``. A network kept
    by two files counts once (the first file, in sorted order)."""
    from pathlib import Path

    files = sorted({f for p in paths for f in Path(p).rglob(f"{name}.npz")})
    scores, labels, source = {}, {}, {}
    for file in files:
        with np.load(file) as data:
            for key in data.files:
                parts = key.split("/")
                if len(parts) < 3 or not parts[0].startswith("units=") or not parts[1].startswith("train_seed="):
                    raise ParameterError(f"{file} with the key {key!r} is not allowed: expected keys "
                                         "'units=<u>/train_seed=<t>/<method>/<set>' (a run of this chapter).")
                network = (int(parts[0].split("=")[1]), int(parts[1].split("=")[1]))
                if source.setdefault(network, file) != file:  # kept by an earlier file
                    continue
                kept = scores.setdefault(network, {})
                if parts[2] == "ID labels":
                    labels[network] = data[key]
                elif parts[-1] != "ID prediction":
                    kept.setdefault("/".join(parts[2:-1]), {})[parts[-1]] = data[key]
    return scores, labels


def network_scores(methods: Sequence[experiments.Method], ctx: experiments.Context) -> dict[str, dict[str, np.ndarray]]:
    """``{method label: {set: per-image scores}}`` of one network on its ID test set and every OOD set
    (:func:`ashlib.evaluation.experiments.method_scores`, kept in ``ctx.scores``): what :func:`gains_from_scores` reads,
    and what a run's kept scores (:meth:`ashlib.book.runs.Run.keep_scores`) hold under the same names."""
    sets = [experiments.ID_SET, *ctx.ood_sets]
    return {m.label: {name: np.asarray(experiments.method_scores(m, ctx, name), dtype=np.float64) for name in sets}
            for m in methods}


def _auroc_table(labels: Sequence[str], scores: Mapping[str, Mapping[str, np.ndarray]], averaged: Sequence[str],
                 ood_sets: Sequence[str], convention: str, n_resamples: int) -> np.ndarray:
    """One network, one seed: row 0 each method's mean AUROC over ``averaged`` (percent), rows 1.. its
    replicates on the resamples of :func:`ashlib.evaluation.experiments.replicate_table` (seed 0, a stream per set
    in ``ood_sets``' order), so that the numbers equal :func:`ashlib.evaluation.experiments.differences`'."""
    s_id = [scores[m][experiments.ID_SET] for m in labels]
    per_set = {name: [scores[m][name] for m in labels] for name in ood_sets}
    reps = uncertainty.set_replicates(s_id, per_set, n_resamples, seed=0, convention=convention,
                                      metrics_wanted=("AUROC",))
    point = np.array([metrics.ood_metrics_many(np.stack(s_id), np.stack(per_set[name]), convention)["AUROC"]
                      for name in averaged]).sum(axis=0) / len(averaged)
    columns = [np.mean([reps[name][k]["AUROC"] for name in averaged], axis=0) for k in range(len(labels))]
    return np.vstack([point, np.column_stack(columns)])


def gains_from_scores(methods: Sequence[experiments.Method], reference: experiments.Method,
                      networks: Mapping[object, Sequence[Mapping[str, Mapping[str, np.ndarray]]]],
                      averaged: Sequence[str], ood_sets: Sequence[str] | None = None, convention: str = "paper",
                      n_resamples: int = experiments.INTERVAL_RESAMPLES) -> pd.DataFrame:
    """Each method's mean AUROC over the OOD sets ``averaged`` minus ``reference``'s (points), per network
    of ``networks`` (``{label: one score mapping per training seed}``, each ``{method label: {set:
    per-image scores}}`` with the ID test set under :data:`ashlib.evaluation.experiments.ID_SET`, as
    :func:`network_scores` gives and a run's kept scores hold), with the 95% interval of the paired
    hierarchical bootstrap over the seeds, then the test images, and the verdict on "better than the
    reference". ``ood_sets``: every OOD set, in the order whose resampling streams the intervals use
    (default ``averaged``). One row per network and method: ``network, method, family, percentile,
    seeds, difference, lo, hi, verdict``."""
    if not networks:
        raise ParameterError("networks={} is not allowed: expected at least one network.")
    ood_sets = list(averaged if ood_sets is None else ood_sets)
    labels = list(dict.fromkeys([reference.label, *(m.label for m in methods)]))
    rows = []
    for label, seeds in networks.items():
        seeds = list(seeds)
        if not seeds:
            raise ParameterError(f"networks[{label!r}] is empty: expected the scores of at least one training seed.")
        for k, scores in enumerate(seeds):
            missing = [m for m in labels if m not in scores]
            if missing:
                raise ParameterError(f"networks[{label!r}][{k}] without scores of {missing[0]!r} is not allowed: "
                                     "expected every method's scores.")
        tables = [pd.DataFrame(_auroc_table(labels, s, averaged, ood_sets, convention, n_resamples), columns=labels)
                  for s in seeds]
        table = experiments.across_seeds(tables, n_resamples)
        for m in methods:
            effect = (table[m.label] - table[reference.label]).to_numpy()
            lo, hi = uncertainty.interval(effect[1:])
            rows.append(dict(network=label, method=m.label, family=m.family, percentile=m.percentile,
                             seeds=len(seeds), difference=float(effect[0]), lo=lo, hi=hi,
                             verdict=uncertainty.verdict(lo, hi, claim=">")))
    return pd.DataFrame(rows)


def gains(methods: Sequence[experiments.Method], reference: experiments.Method,
          networks: Mapping[object, Sequence[experiments.Context]], convention: str = "paper",
          n_resamples: int = experiments.INTERVAL_RESAMPLES) -> pd.DataFrame:
    """:func:`gains_from_scores` on networks given as contexts (``{label: one context per training
    seed}``): the same numbers as :func:`ashlib.evaluation.experiments.differences` on each network."""
    if not networks:
        raise ParameterError("networks={} is not allowed: expected at least one network.")
    every = list(dict.fromkeys([reference, *methods]))
    first = next(iter(networks.values()))[0]
    return gains_from_scores(methods, reference,
                             {label: [network_scores(every, c) for c in contexts] for label, contexts in networks.items()},
                             first.averaged_sets, first.ood_sets, convention, n_resamples)
