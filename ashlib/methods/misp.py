"""MiSP: softmax-based OOD scores at intermediate log-softmax layers, and the thesis's baselines.

After P. Annamalai Nathan's master thesis "Generalization of MSP based out-of-distribution detection
to intermediate convolutional layers" (MPII; slides in the book's seeds). The network is
``smallresnet_logsoftmax`` (:func:`ashlib.assets.models.small_resnet_logsoftmax`): the ReLU after each
residual addition is a log-softmax over the channels, so every one of those layers gives, at each
spatial position, a probability distribution over its channels. It may be trained with the
per-pixel entropy loss (``TrainRecipe(entropy_weight=lambda)``, :func:`ashlib.assets.models.entropy_loss`).

* :func:`intermediate_scores` / :func:`layer_scores`: the thesis's nine scores per layer. Per
  position, the maximum (MSP), minimum (MiSP) or mean (ASP) of the channel probabilities; over the
  positions, their maximum, minimum or average: "max of MSP", "min of MiSP", "avg of ASP", ...
  (:data:`SCORE_NAMES`). :func:`score_table` turns ID/OOD scores into a layer x score AUROC table.
* Mahalanobis per layer on globally average-pooled activations (:func:`fit_layer_mahalanobis`,
  :func:`layer_mahalanobis`) and their equal-weight ensemble (:func:`mahalanobis_ensemble`).
* :func:`mix_sets`: OOD sets mixed in given proportions (the thesis's CIFAR-100/SVHN mixtures).

Orientation, as everywhere in :mod:`ashlib.methods.scores`: higher = more in-distribution. The MiSP-based
scores are the *negated* minimum probability, as :func:`ashlib.methods.scores.misp`: a confident (ID-like)
distribution has a tiny minimum, a near-uniform one a minimum near 1/C. Only with that orientation
can MiSP's AUROC exceed MSP's at the final layer, as the thesis reports. The orientation is fixed
for every layer, never chosen per layer from OOD data; an AUROC below 50% means the opposite
orientation would detect that OOD set at that layer.

At the final layer (logits ``(N, C)``, one "position") every aggregation is the same number: "max of
MSP" is :func:`ashlib.methods.scores.msp` and "min of MiSP" is :func:`ashlib.methods.scores.misp`.
"""
from __future__ import annotations

import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from ashlib._checks import ParameterError, check_choice, check_positive_int, check_range, check_seed
from ashlib.assets.features import activations, top_level
from ashlib.assets.models import entropy_loss, logsoftmax_layers, pixel_entropy
from ashlib.methods.scores import MahalanobisFit, fit_mahalanobis, mahalanobis

__all__ = [
    "AGGREGATIONS", "STATISTICS", "SCORE_NAMES", "LOG_ASP_NAMES", "position_probabilities",
    "intermediate_scores", "layer_scores", "score_table", "pooled_features", "mahalanobis_layers",
    "LayerMahalanobis", "fit_layer_mahalanobis", "layer_mahalanobis", "mahalanobis_ensemble", "mix_sets",
    "set_layer_scores", "ENTRIES", "logsoftmax_layers", "pixel_entropy", "entropy_loss",
]

#: Per-position statistics over the channel probabilities.
STATISTICS = ("MSP", "MiSP", "ASP")
#: Aggregations over the spatial positions.
AGGREGATIONS = ("max", "min", "avg")
#: The thesis's nine scores per layer, "<aggregation> of <statistic>".
SCORE_NAMES = tuple(f"{agg} of {stat}" for stat in STATISTICS for agg in AGGREGATIONS)
#: Optional extra scores (``log_asp=True``): ASP computed on the log-probabilities (see intermediate_scores).
LOG_ASP_NAMES = tuple(f"{agg} of log-ASP" for agg in AGGREGATIONS)
#: The name of :func:`intermediate_scores` as a reduction in the feature cache's keys: change it
#: whenever the scores it computes change, so cached scores of the old code are not served.
SCORES_REDUCTION = "misp_scores_v1"

_REDUCE: dict[str, Callable[[Tensor], Tensor]] = {
    "max": lambda v: v.amax(dim=1), "min": lambda v: v.amin(dim=1), "avg": lambda v: v.mean(dim=1),
}


# ------------------------------------------------------------------------------ softmax scores


def _as_map(log_probs) -> Tensor:
    """``(N, C, H, W)`` float tensor (an ``(N, C)`` input becomes ``(N, C, 1, 1)``), C >= 2."""
    if not isinstance(log_probs, Tensor) or log_probs.ndim not in (2, 4) or log_probs.shape[1] < 2:
        shape = tuple(log_probs.shape) if isinstance(log_probs, Tensor) else type(log_probs).__name__
        raise ParameterError(f"log_probs has shape {shape}: expected a (N, C, H, W) layer output or (N, C) "
                             "logits, with C >= 2 channels.")
    x = log_probs.detach()
    x = x if x.is_floating_point() else x.float()
    return x[:, :, None, None] if x.ndim == 2 else x


def position_probabilities(log_probs: Tensor) -> Tensor:
    """Probabilities over the channels at every position: ``softmax(log_probs, dim=1)``, same shape.

    For a log-softmax output this is ``exp(log_probs)`` (softmax(log_softmax(z)) = softmax(z)),
    renormalised, so every position sums to 1 up to rounding; for any other map (e.g. logits, a
    pre-activation) it is the softmax over channels the thesis applies. ``(N, C)`` inputs give ``(N, C)``.
    """
    x = _as_map(log_probs)
    p = torch.softmax(x, dim=1)
    return p[:, :, 0, 0] if log_probs.ndim == 2 else p


def intermediate_scores(log_probs: Tensor, log_asp: bool = False, chunk_size: int = 512) -> dict[str, Tensor]:
    """The nine scores of one layer: ``{name: (N,) tensor}`` for every name in :data:`SCORE_NAMES`.

    ``log_probs``: the ``(N, C, H, W)`` output of a log-softmax layer (or ``(N, C)`` logits: one
    position). ``p = position_probabilities(log_probs)``; per position ``MSP = max_c p``,
    ``MiSP = min_c p``, ``ASP = mean_c p``; then ``max``/``min``/``avg`` over the ``H * W`` positions.

    - "<agg> of MSP" = ``agg_positions(max_c p)`` (higher = more ID).
    - "<agg> of MiSP" = ``-agg_positions(min_c p)``: aggregated on the probabilities, as the thesis
      names it, then negated as :func:`ashlib.methods.scores.misp` (higher = more ID). So "min of MiSP" is
      minus the smallest channel probability found anywhere in the map.
    - "<agg> of ASP": the per-position mean of a softmax over C channels is ``1/C`` exactly, for every
      position and every input, so all three ASP scores are the constant ``1/C`` (the thesis says so
      for the final layer, "ASP not explored since it is constant"; it holds at every layer). They are
      returned as that exact constant, not as the computed mean: the computed mean differs from 1/C
      only by float rounding (~1e-8), and ranking samples by rounding noise would produce a
      meaningless AUROC different from 50%. The book should show the ASP rows as constant:
      AUROC exactly 50% (no detection), or leave them out with that remark.

    ``log_asp=True`` adds :data:`LOG_ASP_NAMES`: "<agg> of log-ASP" = ``-agg_positions(mean_c log p_c)``,
    the mean of the log-probabilities (the log-softmax output itself), which is *not* constant:
    ``-mean_c log p_c = log C + KL(uniform || p)`` grows as p gets peaked, so the sign keeps "higher =
    more ID" in MiSP's sense. This is a different quantity from the thesis's ASP; it is one reading under
    which an "avg of ASP" at an intermediate layer could carry information, as the thesis's
    CIFAR-10/CIFAR-100 result for "avg of ASP layer4.3" (86.72% AUROC) implies.

    Computed ``chunk_size`` samples at a time (float32 softmax for float32 input).
    """
    x = _as_map(log_probs)
    check_positive_int("chunk_size", chunk_size)
    n, c = x.shape[:2]
    names = SCORE_NAMES + (LOG_ASP_NAMES if log_asp else ())
    parts: dict[str, list[Tensor]] = {name: [] for name in names if not name.endswith("of ASP")}
    for chunk in x.split(chunk_size):
        p = torch.softmax(chunk, dim=1).flatten(2)  # (n, C, H*W)
        per_position = {"MSP": (p.amax(dim=1), 1.0), "MiSP": (p.amin(dim=1), -1.0)}
        if log_asp:
            per_position["log-ASP"] = (torch.log_softmax(chunk, dim=1).flatten(2).mean(dim=1), -1.0)
        for stat, (values, sign) in per_position.items():
            for agg in AGGREGATIONS:
                parts[f"{agg} of {stat}"].append(sign * _REDUCE[agg](values))
    asp = torch.full((n,), 1.0 / c, dtype=x.dtype)
    out = {}
    for name in names:
        if name.endswith("of ASP"):
            out[name] = asp.clone()
        else:
            out[name] = torch.cat(parts[name]) if parts[name] else x.new_zeros((0,))
    return out


def layer_scores(model: nn.Module, data: Tensor | Dataset, layers: Sequence[str] | None = None, *,
                 batch_size: int = 256, device: str = "cpu", cache: bool = True,
                 log_asp: bool = False) -> dict[str, dict[str, Tensor]]:
    """``{layer: {score name: (N,) tensor}}``: :func:`intermediate_scores` of every layer in ``layers``
    (default :func:`logsoftmax_layers`, e.g. ``layer1.relu`` .. ``layer4.relu``) for ``data``.

    One forward pass computes the scores batch by batch (``reduce=`` of
    :func:`ashlib.assets.features.activations`), so no layer's whole output is ever held or cached, only the
    scores, cached per (weights, data, layer) when ``cache`` is true. The scores are per sample, so
    they equal :func:`intermediate_scores` of the whole output bit for bit on the CPU (on a GPU they
    are computed there, float rounding aside).
    """
    layers = list(logsoftmax_layers(model) if layers is None else layers)
    if not layers:
        raise ParameterError("layers is empty and the model has no nn.LogSoftmax layers: expected "
                             "layer names (or a 'smallresnet_logsoftmax' model).")
    reduce = (SCORES_REDUCTION + ("_log_asp" if log_asp else ""), partial(intermediate_scores, log_asp=log_asp))
    return activations(model, data, layers, batch_size=batch_size, device=device, cache=cache,
                       desc="layer scores", reduce=reduce)


def score_table(id_scores: Mapping[str, Mapping[str, Tensor]], ood_scores: Mapping[str, Mapping[str, Tensor]],
                metric: Callable | None = None, percent: bool = True):
    """A ``pandas.DataFrame`` with one row per layer and one column per score: ``metric(id, ood)``
    (default :func:`ashlib.stats.metrics.auroc`, in percent when ``percent``). Inputs as :func:`layer_scores`
    returns them; the layers and scores are those of ``id_scores``."""
    import pandas as pd

    from ashlib.stats.metrics import auroc

    metric = auroc if metric is None else metric
    scale = 100.0 if percent else 1.0
    rows = {}
    for layer, named in id_scores.items():
        if layer not in ood_scores:
            raise ParameterError(f"ood_scores has no layer {layer!r}: expected the layers of id_scores.")
        rows[layer] = {name: scale * metric(s, ood_scores[layer][name]) for name, s in named.items()}
    return pd.DataFrame.from_dict(rows, orient="index")


# ---------------------------------------------------------------------------- Mahalanobis per layer


def mahalanobis_layers(model: nn.Sequential) -> list[str]:
    """Default layers for Mahalanobis per layer: the top-level ``stem`` and ``layer*`` children, i.e.
    the stem and the output of every residual stage (for the small ResNets ``stem, layer1..layer4``:
    five layers, like Lee et al.'s ResNet ensemble; for ``smallresnet_logsoftmax`` ``layerK`` outputs
    the log-softmax map)."""
    layers = [n for n in top_level(model) if n == "stem" or n.startswith("layer")]
    if not layers:
        raise ParameterError("the model has no top-level 'stem' or 'layer*' children: pass layers=[...].")
    return layers


def pooled_features(model: nn.Module, data: Tensor | Dataset, layers: Sequence[str], *, batch_size: int = 256,
                    device: str = "cpu", cache: bool = True) -> dict[str, Tensor]:
    """``{layer: (N, C) tensor}``: each layer's output averaged over its spatial positions (global
    average pooling, as Lee et al. do for intermediate features); ``(N, D)`` outputs are flattened.
    One forward pass, each batch pooled as soon as it is computed (``reduce="spatial_mean"`` of
    :func:`ashlib.assets.features.activations`): only the pooled features are held and cached, and they equal
    the mean of the whole output bit for bit on the CPU."""
    return activations(model, data, layers, batch_size=batch_size, device=device, cache=cache,
                       desc="pooled features", reduce="spatial_mean")


@dataclass(frozen=True, eq=False)
class LayerMahalanobis:
    """Per-layer class-conditional Gaussians and the ID-training statistics of each layer's score.

    ``fits[layer]``: :class:`ashlib.methods.scores.MahalanobisFit` on that layer's pooled training features;
    ``train_mean[layer]``, ``train_std[layer]``: mean and standard deviation (unbiased) of the layer's
    Mahalanobis score over the ID *training* images, used by :func:`mahalanobis_ensemble`.
    """

    layers: tuple[str, ...]
    fits: dict[str, MahalanobisFit]
    train_mean: dict[str, float]
    train_std: dict[str, float]


def fit_layer_mahalanobis(model: nn.Module, x_train: Tensor | Dataset, y_train: Tensor,
                          layers: Sequence[str] | None = None, num_classes: int | None = None, *,
                          batch_size: int = 256, device: str = "cpu", cache: bool = True) -> LayerMahalanobis:
    """Fit :func:`ashlib.methods.scores.fit_mahalanobis` on the pooled ID training features of every layer
    (default :func:`mahalanobis_layers`), and record each layer's score mean/std on those same
    training images for the ensemble. ``num_classes`` defaults to ``model.fc.out_features``.

    Only ID training data are used: no OOD data, no validation set, no input perturbation.
    """
    layers = tuple(mahalanobis_layers(model) if layers is None else layers)
    if not layers:
        raise ParameterError("layers is empty: expected at least one layer name.")
    if num_classes is None:
        num_classes = model.get_submodule("fc").out_features
    feats = pooled_features(model, x_train, layers, batch_size=batch_size, device=device, cache=cache)
    fits, means, stds = {}, {}, {}
    for layer in layers:
        fits[layer] = fit_mahalanobis(feats[layer], y_train, num_classes)
        s = mahalanobis(feats[layer], fits[layer]).double()
        means[layer], stds[layer] = float(s.mean()), float(s.std())
        if not stds[layer] > 0:
            raise ParameterError(f"layer {layer!r}: the Mahalanobis score is constant on the training data "
                                 "(std 0), it cannot be standardised for the ensemble.")
    return LayerMahalanobis(layers, fits, means, stds)


def layer_mahalanobis(model: nn.Module, data: Tensor | Dataset, fit: LayerMahalanobis, *, batch_size: int = 256,
                      device: str = "cpu", cache: bool = True) -> dict[str, Tensor]:
    """``{layer: (N,) Mahalanobis score}`` (higher = more ID) of ``data`` at every layer of ``fit``."""
    if not isinstance(fit, LayerMahalanobis):
        raise ParameterError(f"fit must be a LayerMahalanobis from fit_layer_mahalanobis, got {type(fit).__name__}.")
    feats = pooled_features(model, data, fit.layers, batch_size=batch_size, device=device, cache=cache)
    return {layer: mahalanobis(feats[layer], fit.fits[layer]) for layer in fit.layers}


def mahalanobis_ensemble(per_layer: Mapping[str, Tensor], fit: LayerMahalanobis) -> Tensor:
    """Equal-weight Mahalanobis ensemble: the mean over ``fit.layers`` of each layer's score
    standardised with its ID-*training* mean and std, ``mean_l (s_l - mu_l) / sigma_l``.

    Not Lee et al.'s (NeurIPS 2018) ensemble, which the thesis's "Mahalanobis-ensemble" follows: they
    also perturb the input and weight the layers by a logistic regression, fitted on validation data
    with OOD samples or, in their validation-free variant, with FGSM examples (:mod:`ashlib.methods.mahalanobis`
    implements that one without OOD data). This one needs neither input perturbation nor adversarial
    examples; the standardisation only puts the layers on a common scale and uses the ID training
    statistics in ``fit``, never the scored data's, so each sample's ensemble score does not depend on
    the other samples it is scored with.
    """
    missing = [layer for layer in fit.layers if layer not in per_layer]
    if missing:
        raise ParameterError(f"per_layer has no scores for layers {missing}: expected every layer of the fit.")
    z = [(per_layer[layer].double() - fit.train_mean[layer]) / fit.train_std[layer] for layer in fit.layers]
    return torch.stack(z).mean(dim=0).to(per_layer[fit.layers[0]].dtype)


# ----------------------------------------------------------------------------------- mixtures


def mix_sets(sets: Mapping[str, Tensor], proportions: Mapping[str, float], n: int, seed: int = 0,
             return_sources: bool = False):
    """``n`` samples drawn from the ``sets`` in the given ``proportions``, in a random order.

    ``proportions``: ``{set name: fraction}``, fractions >= 0 summing to 1 (within 1e-6); sets not
    named contribute nothing. Counts are ``n * fraction`` rounded by the largest-remainder method
    (ties to the set named first), so they sum to exactly ``n``. A set contributes the first k
    samples of a random permutation that depends only on ``seed`` and the set's name (no repeats,
    and a series with a growing share of one set is nested: 25% of SVHN is part of 50%), then the
    mixture is shuffled with ``seed``. Deterministic; own generators, the global RNG is untouched. With ``return_sources`` also returns a
    ``(n,)`` int64 tensor: the index, in ``proportions``' order, of the set each sample came from.
    E.g. ``mix_sets(bench.ood, {"letters": 0.25, "noise": 0.75}, 1000)``.
    """
    check_positive_int("n", n)
    check_seed("seed", seed)
    if not proportions:
        raise ParameterError("proportions is empty: expected {set name: fraction}.")
    names = list(proportions)
    for name in names:
        if name not in sets:
            raise ParameterError(f"proportions names {name!r}, which is not in sets ({', '.join(map(repr, sets))}).")
        check_range(f"proportions[{name!r}]", proportions[name], 0, 1)
    total = sum(float(proportions[k]) for k in names)
    if abs(total - 1) > 1e-6:
        raise ParameterError(f"proportions sum to {total}: expected 1.")
    exact = [n * float(proportions[k]) / total for k in names]
    counts = [int(e) for e in exact]
    by_remainder = sorted(range(len(names)), key=lambda i: (-(exact[i] - counts[i]), i))
    for i in by_remainder[: n - sum(counts)]:
        counts[i] += 1
    parts, sources = [], []
    for i, (name, k) in enumerate(zip(names, counts)):
        data = sets[name]
        if not isinstance(data, Tensor):
            raise ParameterError(f"sets[{name!r}] is a {type(data).__name__}: expected a tensor.")
        if k > len(data):
            raise ParameterError(f"sets[{name!r}] has {len(data)} samples; the mixture needs {k} of them "
                                 f"(n={n}, proportion {proportions[name]}).")
        gen = torch.Generator().manual_seed(zlib.crc32(f"{seed}|{name}".encode()))  # CPU: 32-bit seeds
        parts.append(data[torch.randperm(len(data), generator=gen)[:k]])
        sources.append(torch.full((k,), i, dtype=torch.int64))
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    mixed, source = torch.cat(parts)[order], torch.cat(sources)[order]
    return (mixed, source) if return_sources else mixed


# ----------------------------------------------------------------------------- registry entries

from ashlib.methods.detector import Score  # noqa: E402  (the entries sit beside the functions they register)

_THESIS = "Annamalai Nathan, MiSP thesis"


def set_layer_scores(ctx, set_name: str) -> dict[str, dict[str, Tensor]]:
    """:func:`layer_scores` of one of ``ctx``'s sets (its network's log-softmax layers), kept in the context
    and cached (the scores only: 9 values per image and layer)."""
    return ctx.memoised(("misp layer scores", set_name), lambda: layer_scores(
        ctx.model, ctx.sets[set_name], batch_size=ctx.batch_size, device=ctx.device))


def _intermediate(ctx, method, set_name: str, logits: Tensor, fitted) -> Tensor:
    """Option ``layer`` (a log-softmax layer, :func:`ashlib.assets.models.logsoftmax_layers`) and ``statistic``
    (one of :data:`SCORE_NAMES`, default "min of MiSP")."""
    layer, statistic = method.option("layer"), method.option("statistic", "min of MiSP")
    by_layer = set_layer_scores(ctx, set_name)
    check_choice("layer", layer, by_layer)
    check_choice("statistic", statistic, SCORE_NAMES)
    return by_layer[layer][statistic]


def _fit_layers(ctx, method) -> LayerMahalanobis:
    return ctx.memoised(("layer mahalanobis fit",), lambda: fit_layer_mahalanobis(
        ctx.model, ctx.sets[ctx.train_set], ctx.y_train, batch_size=ctx.batch_size, device=ctx.device))


def _per_layer_of(ctx, set_name: str, fitted: LayerMahalanobis) -> dict[str, Tensor]:
    return ctx.memoised(("layer mahalanobis", set_name), lambda: layer_mahalanobis(
        ctx.model, ctx.sets[set_name], fitted, batch_size=ctx.batch_size, device=ctx.device))


def _stage_mahalanobis(ctx, method, set_name: str, logits: Tensor, fitted: LayerMahalanobis) -> Tensor:
    """Option ``layer``: one of the fit's layers (:func:`mahalanobis_layers`)."""
    layer = method.option("layer")
    check_choice("layer", layer, fitted.layers)
    return _per_layer_of(ctx, set_name, fitted)[layer]


def _ensemble(ctx, method, set_name: str, logits: Tensor, fitted: LayerMahalanobis) -> Tensor:
    return mahalanobis_ensemble(_per_layer_of(ctx, set_name, fitted), fitted)


#: The thesis's scores inside the network as :mod:`ashlib.methods.registry` entries (MiSP at the last layer
#: is :mod:`ashlib.methods.scores`' "misp").
ENTRIES = (
    Score("misp_layer", "MiSP at a layer", _intermediate, f"{_THESIS}: the nine scores per log-softmax layer",
          shapeable=False, family="MiSP"),
    Score("mahalanobis_layer", "Mahalanobis at a layer", _stage_mahalanobis,
          f"{_THESIS} (Lee et al.'s per-layer Gaussians, pooled features)", fit=_fit_layers, shapeable=False),
    Score("mahalanobis_ensemble", "Mahalanobis, equal weights", _ensemble,
          f"{_THESIS}'s layers, ours: equal weights over standardised layers, not Lee et al.'s regression "
          "(:func:`mahalanobis_ensemble`)",
          fit=_fit_layers, shapeable=False),
)
