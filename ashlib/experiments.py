"""Experiments: grids of OOD methods evaluated on cached penultimate features, as tidy DataFrames.

A :class:`Method` is one row of the paper's tables: a score (Softmax, Energy, ODIN, ...) with an
optional activation shaping (ASH-P/B/S/RAND, ReAct) at the penultimate layer and optional DICE
weight sparsification. :func:`evaluate` returns one row per (method, OOD set) plus an "Average"
row per method, with FPR95, AUROC, AUPR-In, AUPR-Out (percent) and ID accuracy.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from ashlib import metrics, scores, shaping
from ashlib._checks import check_choice, check_percentile
from ashlib.features import activations
from ashlib.placement import shaping_at

SCORES = (*scores.LOGIT_SCORES, "odin", "mahalanobis")
SHAPINGS = ("none", "ash_p", "ash_b", "ash_s", "ash_rand", "react")
ID_SET = "ID test"


@dataclass(frozen=True)
class Method:
    """One OOD detector: ``score`` on logits computed from (optionally shaped) penultimate features."""

    label: str
    score: str = "energy"
    shaping: str = "none"
    percentile: float | None = None
    dice: bool = False

    def __post_init__(self):
        check_choice("score", self.score, SCORES)
        check_choice("shaping", self.shaping, SHAPINGS)
        if self.shaping.startswith("ash"):
            check_percentile("percentile", self.percentile)

    @property
    def family(self) -> str:
        return {"ash_p": "ASH-P", "ash_b": "ASH-B", "ash_s": "ASH-S", "ash_rand": "ASH-RAND"}.get(
            self.shaping, "baseline")


def ash(variant: str, percentile: float, score: str = "energy") -> Method:
    """ASH-<variant>@p, e.g. ``ash("S", 90)`` -> "ASH-S@90" with the energy score (paper default)."""
    name = f"ASH-{variant.upper()}@{percentile:g}"
    label = name if score == "energy" else f"{score} + {name}"
    return Method(label, score=score, shaping=f"ash_{variant.lower()}", percentile=percentile)


def paper_methods(percentiles: dict[str, float]) -> list[Method]:
    """The rows of the paper's Tables 2/3: baselines, then ASH-P/B/S at ``percentiles`` ({"P": 90, ...})."""
    return [
        Method("Softmax", score="msp"),
        Method("ODIN", score="odin"),
        Method("Mahalanobis", score="mahalanobis"),
        Method("Energy", score="energy"),
        Method("ReAct", shaping="react"),
        Method("DICE", dice=True),
        Method("DICE+ReAct", shaping="react", dice=True),
        *(ash(v, p) for v, p in percentiles.items()),
    ]


@dataclass
class Context:
    """Everything the methods need, computed once: penultimate features and fitted statistics."""

    model: nn.Module
    images: dict[str, Tensor]
    features: dict[str, Tensor]
    y_test: Tensor
    weight: Tensor
    bias: Tensor
    react_threshold: float
    dice_mask: Tensor
    mahalanobis_fit: scores.MahalanobisFit
    feature_layer: str = "avgpool"
    odin_temperature: float = 1000.0
    odin_epsilon: float = 0.0014
    device: str = "cpu"
    rand_seed: int = 0
    extra: dict = field(default_factory=dict)


def build_context(model: nn.Sequential, benchmark, feature_layer: str = "avgpool", head: str = "fc",
                  react_percentile: float = 90, dice_percentile: float = 90,
                  odin_temperature: float = 1000.0, odin_epsilon: float = 0.0014,
                  batch_size: int = 256, device: str = "cpu") -> Context:
    """Compute (or load from cache) the penultimate features of every set and fit ReAct's
    threshold, DICE's mask and Mahalanobis' class means on ID *training* data only."""
    images = {"ID train": benchmark.x_train, ID_SET: benchmark.x_test, **benchmark.ood}
    feats = {name: activations(model, x, [feature_layer], batch_size=batch_size, device=device,
                               desc=name)[feature_layer].flatten(1) for name, x in images.items()}
    fc = model.get_submodule(head)
    train = feats["ID train"]
    return Context(
        model=model, images=images, features=feats, y_test=benchmark.y_test,
        weight=fc.weight.detach().cpu(), bias=fc.bias.detach().cpu(),
        react_threshold=shaping.fit_react_threshold(train, react_percentile),
        dice_mask=scores.fit_dice_mask(fc.weight.detach().cpu(), train.mean(0), dice_percentile),
        mahalanobis_fit=scores.fit_mahalanobis(train, benchmark.y_train, benchmark.num_classes),
        feature_layer=feature_layer, odin_temperature=odin_temperature, odin_epsilon=odin_epsilon,
        device=device)


def _shaper(method: Method, ctx: Context):
    if method.shaping == "none":
        return None
    if method.shaping == "react":
        return shaping.make_shaper("react", threshold=ctx.react_threshold)
    kwargs = {}
    if method.shaping == "ash_rand":
        kwargs["generator"] = torch.Generator().manual_seed(ctx.rand_seed)
    return shaping.make_shaper(method.shaping, method.percentile, **kwargs)


def method_outputs(method: Method, ctx: Context, set_name: str) -> tuple[Tensor, Tensor]:
    """(scores, logits) of ``method`` on one set; logits are those the deployed model would output."""
    shape = _shaper(method, ctx)
    f = ctx.features[set_name]
    f_shaped = f if shape is None else shape(f)
    weight = ctx.weight * ctx.dice_mask if method.dice else ctx.weight
    logits = f_shaped @ weight.T + ctx.bias
    if method.score == "mahalanobis":
        return scores.mahalanobis(f, ctx.mahalanobis_fit), logits
    if method.score == "odin":
        return _odin(method, ctx, set_name, shape), logits
    return scores.logit_score(method.score, logits), logits


def _odin(method: Method, ctx: Context, set_name: str, shape) -> Tensor:
    if method.dice:
        raise NotImplementedError("ODIN with DICE is not part of the paper's tables.")
    x = ctx.images[set_name]
    model = ctx.model.to(ctx.device)
    run = lambda: torch.cat([scores.odin(model, x[i:i + 256].to(ctx.device), ctx.odin_temperature,
                                         ctx.odin_epsilon).cpu() for i in range(0, len(x), 256)])
    if shape is None:
        return run()
    # Shape the (N, D, 1, 1) pooled map per sample: identical to shaping the flattened features.
    with shaping_at(model, ctx.feature_layer, shape):
        return run()


def evaluate(methods: list[Method], ctx: Context, convention: str = "paper",
             progress: bool = True) -> pd.DataFrame:
    """Tidy results: one row per (method, OOD set) and an "Average" row per method (paper Tables 2/3)."""
    ood_sets = [name for name in ctx.features if name not in ("ID train", ID_SET)]
    rows = []
    for method in tqdm(methods, desc="methods", disable=not progress):
        s_id, logits_id = method_outputs(method, ctx, ID_SET)
        id_acc = 100 * metrics.accuracy(logits_id, ctx.y_test)
        per_set = []
        for name in ood_sets:
            s_ood, _ = method_outputs(method, ctx, name)
            per_set.append(dict(ood_set=name, **metrics.ood_metrics(s_id, s_ood, convention=convention)))
        avg = pd.DataFrame(per_set).drop(columns="ood_set").mean().to_dict()
        for r in [*per_set, dict(ood_set="Average", **avg)]:
            rows.append(dict(method=method.label, family=method.family, score=method.score,
                             shaping=method.shaping, percentile=method.percentile, dice=method.dice,
                             **r, **{"ID acc": id_acc}))
    return pd.DataFrame(rows)


def wide_table(results: pd.DataFrame, metrics_shown=("FPR95", "AUROC", "AUPR-In")) -> pd.DataFrame:
    """Paper layout: methods as rows, (OOD set, metric) as columns, 'Average' last."""
    sets = list(dict.fromkeys(results["ood_set"]))
    table = results.pivot_table(index="method", columns="ood_set", values=list(metrics_shown), sort=False)
    table = table.swaplevel(0, 1, axis=1).reindex(columns=pd.MultiIndex.from_product([sets, metrics_shown]))
    return table.loc[list(dict.fromkeys(results["method"]))]
