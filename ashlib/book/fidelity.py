"""Is a miniature benchmark faithful to the paper's setting? The measurements of notebooks/00_benchmark.

At paper scale (CIFAR, ImageNet) ID and OOD images share their preprocessing and their low-level
statistics, and the energy score, ASH's baseline, detects far-OOD sets well: about 90% mean AUROC
(paper Tables 2 and 3). A CPU-sized benchmark can break that for a reason that has nothing to do with
ASH: a ReLU network's logits grow with the norm of its input far from the training data (Hein,
Andriushchenko and Bitterwolf, *Why ReLU networks yield high-confidence predictions far away from the
training data and how to mitigate the problem*, CVPR 2019), so OOD images brighter than the ID digits
get *higher* energies. This module measures that artifact (:func:`energy_and_norm`,
:func:`energy_under_scaling`) and chooses among principled, uniform preprocessings the one on which
the baselines behave as at paper scale (:func:`baseline_check`, :func:`choose_preprocessing`). The
choice looks at the baseline only, never at ASH's numbers: whatever ASH does there is the finding.
"""
from __future__ import annotations

import pandas as pd
import torch
from torch import nn

from ashlib.evaluation import experiments
from ashlib.book import paper
from ashlib.methods import scores
from ashlib._checks import ParameterError, check_choice
from ashlib.assets.data import PREPROCESSINGS

__all__ = ["BASELINE", "MIN_PER_SET", "MIN_MEAN", "PREFERENCE", "variant_methods", "paper_baseline",
           "energy_and_norm", "energy_under_scaling", "baseline_check", "choose_preprocessing", "PAPER_UNITS",
           "NETWORK_BASELINES", "network_check", "choose_network"]

#: The baseline whose behaviour decides: ASH's own score, the negative energy (paper Eq. 1).
BASELINE = "Energy"
#: Its AUROC (%) must exceed chance on every paper-like OOD set ...
MIN_PER_SET = 50.0
#: ... and reach this mean over them (paper scale: about 90; Tables 2 and 3).
MIN_MEAN = 80.0
#: Candidates in order of intervention, least first: the default is the first one that passes.
#: ``raw`` changes nothing; ``match`` changes only the OOD images' intensities; ``standardize``
#: changes every image and therefore the trained network.
PREFERENCE = ("raw", "match", "standardize")


def variant_methods(percentiles: dict[str, float]) -> list[experiments.Method]:
    """The comparison's rows: Energy, ReAct, Mahalanobis (penultimate) and ASH-P/B/S at ``percentiles``
    (the paper's p for the benchmark, e.g. ``ashlib.book.paper.PAPER_PERCENTILES["cifar10"]``)."""
    return [experiments.Method("energy"), experiments.Method("energy", react=True),
            experiments.Method("mahalanobis_penultimate"),
            *(experiments.ash(v, p) for v, p in percentiles.items())]


def paper_baseline() -> pd.DataFrame:
    """The energy score's AUROC per OOD set in the paper's four settings, quoted (Tables A2, A3 and 2),
    as rows like :func:`ashlib.evaluation.experiments.evaluate`'s: setting, method, ood_set, AUROC."""
    tables = {"CIFAR-10, DenseNet-101 (Table A2)": paper.table_a2_a3("cifar10"),
              "CIFAR-100, DenseNet-101 (Table A3)": paper.table_a2_a3("cifar100"),
              "ImageNet, ResNet-50 (Table 2)": paper.table2("ResNet-50"),
              "ImageNet, MobileNetV2 (Table 2)": paper.table2("MobileNetV2")}
    rows = [dict(setting=setting, method=BASELINE, ood_set=ood_set, AUROC=value)
            for setting, t in tables.items()
            for ood_set, value in t.loc[BASELINE].xs("AUROC", level="metric").items() if ood_set != "Average"]
    return pd.DataFrame(rows)


@torch.no_grad()
def energy_and_norm(model: nn.Module, sets: dict[str, torch.Tensor], batch_size: int = 256,
                    device: str = "cpu") -> pd.DataFrame:
    """One row per image: its set, its input's L2 norm and the network's energy score (higher = more
    in-distribution). The inputs are not modified."""
    model = model.eval().to(device)
    rows = []
    for name, x in sets.items():
        logits = torch.cat([model(b.to(device)).cpu() for b in x.split(batch_size)])
        rows.append(pd.DataFrame({"set": name, "input norm": x.flatten(1).norm(dim=1).numpy(),
                                  "energy": scores.energy(logits).numpy()}))
    return pd.concat(rows, ignore_index=True)


@torch.no_grad()
def energy_under_scaling(model: nn.Module, sets: dict[str, torch.Tensor], factors, n: int = 200,
                         batch_size: int = 256, device: str = "cpu") -> pd.DataFrame:
    """Mean energy score of the first ``n`` images of each set multiplied by each of ``factors``.

    Hein et al. (2019), Theorem 3.1: a ReLU network is piecewise affine, so for almost every input
    x and large enough a, its logits f(a x) grow linearly in a; the energy (a log-sum-exp of logits)
    then grows linearly too: scaling any image up makes it look *more* in-distribution.
    """
    factors = [float(f) for f in factors]
    if not factors or any(f <= 0 for f in factors):
        raise ParameterError(f"factors={factors!r} is not allowed: expected positive numbers.")
    model = model.eval().to(device)
    rows = []
    for name, x in sets.items():
        x = x[:n]
        for f in factors:
            logits = torch.cat([model((b * f).to(device)).cpu() for b in x.split(batch_size)])
            energy = scores.energy(logits)
            rows.append(dict(set=name, factor=f, energy=float(energy.mean()),
                             **{"max logit": float(logits.max(1).values.mean())}))
    return pd.DataFrame(rows)


def baseline_check(results: pd.DataFrame, sanity=(), baseline: str = BASELINE) -> dict:
    """Does ``baseline`` behave as at paper scale on one benchmark variant?

    ``results``: :func:`ashlib.evaluation.experiments.evaluate` rows of that variant; ``sanity``: its
    sanity-check sets (left out). Returns ``{"worst set", "worst AUROC", "mean AUROC", "passes"}``:
    it passes when the AUROC exceeds :data:`MIN_PER_SET` on every other OOD set and their mean
    reaches :data:`MIN_MEAN`.
    """
    rows = results[(results["method"] == baseline) & ~results["ood_set"].isin(["Average", *sanity])]
    if rows.empty:
        raise ParameterError(f"baseline={baseline!r} is not allowed: no rows of it in the results "
                             f"(methods: {', '.join(dict.fromkeys(results['method']))}).")
    auroc = rows.set_index("ood_set")["AUROC"]
    worst, mean = auroc.idxmin(), float(auroc.mean())
    return {"worst set": worst, "worst AUROC": float(auroc[worst]), "mean AUROC": mean,
            "passes": bool(auroc.min() > MIN_PER_SET and mean >= MIN_MEAN)}


def choose_preprocessing(checks: dict[str, dict], preference=PREFERENCE) -> str:
    """The first preprocessing of ``preference`` whose :func:`baseline_check` passes.

    ``checks`` maps a preprocessing name to its check. Raises :class:`ParameterError` when no
    candidate passes or one of ``preference`` was not measured, rather than choosing silently.
    """
    for name in preference:
        check_choice("preprocessing", name, PREPROCESSINGS)
        if name not in checks:
            raise ParameterError(f"preprocessing={name!r} was not measured: expected a check for each of "
                                 f"{', '.join(preference)}.")
        if checks[name]["passes"]:
            return name
    raise ParameterError("no preprocessing passes the baseline check: " + "; ".join(
        f"{n}: worst {c['worst set']} {c['worst AUROC']:.1f}, mean {c['mean AUROC']:.1f}" for n, c in checks.items()))


# ----------------------------------------------------------------------------------- the network

#: Penultimate ReLU units of the paper's networks: DenseNet-101 (342) to ResNet-50 (2,048).
PAPER_UNITS = (342, 2048)
#: The baselines a candidate network must not do worse on than the network without a head.
NETWORK_BASELINES = ("Energy", "ReAct", "Mahalanobis (penultimate)")


def network_check(candidate: pd.DataFrame, reference: pd.DataFrame, units: int, energy_check: dict) -> dict:
    """Is a candidate network as good a miniature of the paper's as the network without a head, and closer
    to the paper's architecture? ``candidate``/``reference``: each network's replicate table with the
    columns "ID acc" and the mean AUROC of each of :data:`NETWORK_BASELINES` (row 0 the value, rows 1.. its
    bootstrap replicates over the test images, :func:`ashlib.evaluation.experiments.replicate_table`, on the *same*
    resamples for both networks, so that their difference is paired); ``energy_check``: the candidate's
    :func:`baseline_check`. It passes when its ``units`` lie in :data:`PAPER_UNITS`, its energy score
    passes the baseline check, and neither its ID accuracy nor any baseline's mean AUROC is worse than the
    reference's beyond the noise of the test images (the upper end of the difference's 95% interval is at
    least zero). Returns each difference with its interval, and ``passes``."""
    from ashlib.stats import uncertainty

    wanted = ["ID acc", *NETWORK_BASELINES]
    for name, table in (("candidate", candidate), ("reference", reference)):
        missing = [c for c in wanted if c not in table.columns]
        if missing or len(table) < 2:
            raise ParameterError(f"{name} without the columns {missing} (or without replicates) is not allowed: "
                                 f"expected {', '.join(wanted)}, row 0 the values, rows 1.. the replicates.")
    if len(candidate) != len(reference):
        raise ParameterError(f"candidate with {len(candidate)} rows and reference with {len(reference)} are not "
                             "allowed: expected the same resamples.")
    out = {"units": units, "in the paper's range": PAPER_UNITS[0] <= units <= PAPER_UNITS[1],
           "energy check": bool(energy_check["passes"])}
    not_worse = True
    for quantity in wanted:
        effect = (candidate[quantity] - reference[quantity]).to_numpy()
        lo, hi = uncertainty.interval(effect[1:])
        out[f"{quantity} difference"], out[f"{quantity} lo"], out[f"{quantity} hi"] = float(effect[0]), lo, hi
        not_worse &= hi >= 0
    out["not worse"] = bool(not_worse)
    out["passes"] = bool(out["in the paper's range"] and out["energy check"] and not_worse)
    return out


def choose_network(checks: dict[int, dict]) -> int:
    """The expansion head of the book's default network: the candidate with the fewest units (the least
    change) whose :func:`network_check` passes, else 0 (no head). ``checks`` maps a head's units to its
    check; the choice never looks at ASH."""
    passing = sorted(units for units, check in checks.items() if check["passes"])
    return passing[0] if passing else 0
