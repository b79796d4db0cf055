"""OOD scores. Convention: every score is "higher = more in-distribution".

All functions take torch tensors and return a detached 1-D float tensor with one score per sample.

* Logit-based, pure functions of logits ``(N, C)``: :func:`msp`, :func:`misp`, :func:`energy`,
  :func:`max_logit` (also reachable by name through :data:`LOGIT_SCORES` / :func:`logit_score`).
* Feature-based, given penultimate features ``(N, D)`` and the last linear layer as
  ``weight (C, D)`` / ``bias (C,)`` (``layer.weight``, ``layer.bias`` of an ``nn.Linear``):
  :func:`react`, :func:`fit_dice_mask` + :func:`dice`, :func:`fit_mahalanobis` + :func:`mahalanobis`.
* Model-based: :func:`odin`.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from numbers import Real

import torch
from torch import Tensor

from ashlib._checks import ParameterError, check_choice, check_percentile, check_positive_int, check_range

__all__ = [
    "ENTRIES",
    "LOGIT_SCORES",
    "MahalanobisFit",
    "dice",
    "energy",
    "fit_dice_mask",
    "fit_mahalanobis",
    "logit_score",
    "mahalanobis",
    "max_logit",
    "misp",
    "msp",
    "odin",
    "react",
]


# --------------------------------------------------------------------------------------- checks
def _check_tensor(name: str, value) -> Tensor:
    if not isinstance(value, Tensor):
        raise ParameterError(f"{name} must be a torch.Tensor, got {type(value).__name__}.")
    return value


def _as_float(x: Tensor) -> Tensor:
    return x if x.is_floating_point() else x.float()


def _check_logits(logits, name: str = "logits") -> Tensor:
    """Logits must be a 2-D tensor (N, C) with C >= 2 classes."""
    logits = _check_tensor(name, logits)
    if logits.ndim != 2 or logits.shape[1] < 2:
        raise ParameterError(
            f"{name} has shape {tuple(logits.shape)}: expected a 2-D tensor (N, C) with C >= 2 classes."
        )
    return _as_float(logits.detach())


def _check_temperature(temperature) -> float:
    """Temperature ``T``: a finite real number > 0."""
    if isinstance(temperature, bool) or not isinstance(temperature, Real) or not 0 < temperature < math.inf:
        raise ParameterError(f"temperature={temperature!r} is not allowed: expected a finite number > 0.")
    return float(temperature)


def _check_threshold(name: str, value) -> float:
    return float(check_range(name, value, -math.inf, math.inf))


def _check_features(features, dim: int | None = None, name: str = "features") -> Tensor:
    features = _check_tensor(name, features)
    if features.ndim != 2:
        raise ParameterError(
            f"{name} has shape {tuple(features.shape)}: expected a 2-D tensor (N, D); "
            "flatten pooled feature maps first."
        )
    if dim is not None and features.shape[1] != dim:
        raise ParameterError(f"{name} has shape {tuple(features.shape)}: expected D={dim} features per sample.")
    return _as_float(features.detach())


def _check_linear(weight, bias) -> tuple[Tensor, Tensor]:
    weight, bias = _check_tensor("weight", weight), _check_tensor("bias", bias)
    if weight.ndim != 2 or weight.shape[0] < 2:
        raise ParameterError(f"weight has shape {tuple(weight.shape)}: expected (C, D) with C >= 2 classes.")
    if bias.shape != weight.shape[:1]:
        raise ParameterError(f"bias has shape {tuple(bias.shape)}: expected ({weight.shape[0]},) to match weight.")
    return _as_float(weight.detach()), _as_float(bias.detach())


# --------------------------------------------------------------------------------- logit scores
def msp(logits: Tensor, temperature: float = 1.0) -> Tensor:
    """Maximum softmax probability ``max_c softmax(logits / T)_c`` (Hendrycks & Gimpel, ICLR 2017)."""
    logits, t = _check_logits(logits), _check_temperature(temperature)
    return torch.softmax(logits / t, dim=1).amax(dim=1)


def misp(logits: Tensor) -> Tensor:
    """Negated minimum softmax probability ``-min_c softmax(logits)_c`` (MiSP, thesis slides).

    A confident prediction puts almost all mass on one class, so its *smallest* class probability is
    tiny; a near-uniform (OOD-like) output has a minimum close to ``1/C``. The minimum itself is
    therefore larger for OOD data, and the score is its negation to keep "higher = more ID". Only with
    this orientation can MiSP's AUROC exceed MSP's, as the thesis reports. For ``C = 2`` the minimum
    is ``1 - max``, so MiSP = MSP - 1 and both rank samples identically.
    """
    logits = _check_logits(logits)
    return -torch.softmax(logits, dim=1).amin(dim=1)


def energy(logits: Tensor, temperature: float = 1.0) -> Tensor:
    """Negative energy ``-E(x; f) = T * logsumexp(logits / T)`` (ASH paper Eq. 1; Liu et al. 2020)."""
    logits, t = _check_logits(logits), _check_temperature(temperature)
    return t * _logsumexp(logits / t)


def _logsumexp(x: Tensor) -> Tensor:
    """``torch.logsumexp(x, dim=1)``, the same values (tests/methods/test_scores.py checks equality), computed in
    torch's steps (each row's max ``m``, then ``m + log(sum(exp(x - m)))``) but with the terms whose
    ``exp(x - m)`` is under 3e-38 (float32; 3e-308 in float64) set to zero without calling exp on them: next
    to the max's term 1 they change no bit of the sum, and a CPU's vectorised exp is ten times slower on
    arguments beyond its range (ASH-S's logits reach 1e23: about a third of the terms)."""
    m = x.amax(dim=1, keepdim=True)
    m = torch.where(m.abs() == math.inf, 0.0, m)  # as torch: a row with an infinite max gives inf or nan
    d = x - m
    far = d < math.log(torch.finfo(x.dtype).tiny) + 1  # exp(d) < 3e-38 (float32): 0 next to the max's 1
    return d.masked_fill(far, 0.0).exp().masked_fill(far, 0.0).sum(dim=1).log() + m.squeeze(1)


def max_logit(logits: Tensor) -> Tensor:
    """Maximum logit ``max_c f_c(x)`` (Hendrycks et al., "Scaling OOD detection", ICML 2022)."""
    return _check_logits(logits).amax(dim=1)


LOGIT_SCORES: dict[str, Callable[[Tensor], Tensor]] = {
    "msp": msp,
    "misp": misp,
    "energy": energy,
    "max_logit": max_logit,
}


def logit_score(name: str, logits: Tensor) -> Tensor:
    """Score ``logits`` with the logit score called ``name`` (a key of :data:`LOGIT_SCORES`)."""
    check_choice("name", name, LOGIT_SCORES)
    return LOGIT_SCORES[name](logits)


# ------------------------------------------------------------------------------- feature scores
def _linear_energy(features: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
    return energy(features @ weight.T + bias)


def react(features: Tensor, weight: Tensor, bias: Tensor, threshold: float) -> Tensor:
    """ReAct (Sun et al., NeurIPS 2021): energy of the logits of ``min(features, threshold)``.

    ``threshold`` is usually the 90th percentile of ID training activations of this layer.
    """
    weight, bias = _check_linear(weight, bias)
    features = _check_features(features, weight.shape[1])
    threshold = _check_threshold("threshold", threshold)
    return _linear_energy(features.clamp(max=threshold), weight, bias)


def _percentile(values: Tensor, p: float) -> Tensor:
    """``p``-th percentile (0-100) of all entries, linear interpolation (numpy's default method).

    Written out instead of ``torch.quantile``, which refuses inputs over 2**24 entries.
    """
    s = values.flatten().sort().values
    pos = p / 100 * (s.numel() - 1)
    lo, hi = math.floor(pos), math.ceil(pos)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def fit_dice_mask(weight: Tensor, mean_feature: Tensor, percentile: float) -> Tensor:
    """DICE weight mask (Sun & Li, ECCV 2022, Sec. 3).

    The contribution of weight ``w_cd`` is ``w_cd * mean_feature_d`` (mean ID *training* feature). The
    mask keeps the contributions strictly above the ``percentile``-th percentile of all ``C*D``
    contributions (numpy's linear interpolation), so ``percentile`` is DICE's sparsity ``p``: 90 keeps
    the top 10%. Ties at the threshold are dropped, as in the official code. Returns bool ``(C, D)``.
    """
    weight = _check_tensor("weight", weight)
    if weight.ndim != 2:
        raise ParameterError(f"weight has shape {tuple(weight.shape)}: expected a 2-D tensor (C, D).")
    mean_feature = _check_tensor("mean_feature", mean_feature)
    if mean_feature.shape != weight.shape[1:]:
        raise ParameterError(
            f"mean_feature has shape {tuple(mean_feature.shape)}: expected ({weight.shape[1]},) to match weight."
        )
    check_percentile("percentile", percentile)
    contrib = weight.detach().double() * mean_feature.detach().double().to(weight.device)
    return contrib > _percentile(contrib, percentile)


def dice(
    features: Tensor, weight: Tensor, bias: Tensor, mask: Tensor, threshold: float | None = None
) -> Tensor:
    """DICE (Sun & Li, ECCV 2022): energy of ``features @ (weight * mask).T + bias``.

    ``mask`` comes from :func:`fit_dice_mask`. With ``threshold`` the features are first clipped at it
    as in ReAct (the paper's "DICE + ReAct").
    """
    weight, bias = _check_linear(weight, bias)
    mask = _check_tensor("mask", mask)
    if mask.shape != weight.shape:
        raise ParameterError(f"mask has shape {tuple(mask.shape)}: expected {tuple(weight.shape)} like weight.")
    features = _check_features(features, weight.shape[1])
    if threshold is not None:
        features = features.clamp(max=_check_threshold("threshold", threshold))
    return _linear_energy(features, weight * mask.to(weight.dtype), bias)


@dataclass(frozen=True, eq=False)
class MahalanobisFit:
    """Class-conditional Gaussians with a shared covariance (float64).

    ``means``: class means ``(C, D)``; ``precision``: pseudo-inverse ``(D, D)`` of the pooled
    class-centred covariance.
    """

    means: Tensor
    precision: Tensor

    @property
    def num_classes(self) -> int:
        return self.means.shape[0]


def fit_mahalanobis(features: Tensor, labels: Tensor, num_classes: int) -> MahalanobisFit:
    """Fit the Gaussians of the Mahalanobis score (Lee et al., NeurIPS 2018) on ID training features.

    ``mu_c`` is the mean of class ``c``; the shared covariance is the maximum-likelihood estimate
    ``Sigma = 1/N sum_c sum_{i: y_i = c} (f_i - mu_c)(f_i - mu_c)^T`` (what sklearn's
    ``EmpiricalCovariance`` gives on the class-centred features, as Lee et al.'s and OpenOOD's code use),
    and the precision is its Moore-Penrose pseudo-inverse (``torch.linalg.pinv(hermitian=True)``, which
    is also what ``EmpiricalCovariance.precision_`` computes), so singular covariances (dead units,
    ``D > N``) still give a result. Computed in float64. Every class must occur in ``labels``.
    """
    features = _check_features(features)
    labels = _check_tensor("labels", labels)
    check_positive_int("num_classes", num_classes)
    if labels.shape != features.shape[:1] or labels.is_floating_point() or labels.is_complex():
        raise ParameterError(
            f"labels has shape {tuple(labels.shape)} and dtype {labels.dtype}: "
            f"expected integer class labels of shape ({features.shape[0]},)."
        )
    labels = labels.to(features.device)
    if labels.numel() and (labels.min() < 0 or labels.max() >= num_classes):
        raise ParameterError(f"labels must lie in [0, {num_classes - 1}] for num_classes={num_classes}.")
    missing = (torch.bincount(labels, minlength=num_classes) == 0).nonzero().flatten().tolist()
    if missing:
        raise ParameterError(f"labels has no samples of classes {missing[:10]}: every class needs at least one.")
    dim = features.shape[1]
    means = torch.zeros(num_classes, dim, dtype=torch.float64, device=features.device)
    scatter = torch.zeros(dim, dim, dtype=torch.float64, device=features.device)
    for c in range(num_classes):  # one class at a time: never a float64 copy of all features
        z = features[labels == c].double()
        means[c] = z.mean(dim=0)
        centred = z - means[c]
        scatter += centred.T @ centred
    precision = torch.linalg.pinv(scatter / features.shape[0], hermitian=True)
    return MahalanobisFit(means=means, precision=precision)


def mahalanobis(features: Tensor, fit: MahalanobisFit) -> Tensor:
    """Mahalanobis score ``-min_c (f - mu_c)^T P (f - mu_c)`` (Lee et al., NeurIPS 2018, Eq. 2).

    This is the feature-only version (OpenOOD's "MDS") on one layer: the original paper also perturbs
    the input (ODIN-like preprocessing) and ensembles several layers with a logistic regression fitted
    on validation data, which this function does not do. Returned in the dtype of ``features``.
    """
    if not isinstance(fit, MahalanobisFit):
        raise ParameterError(f"fit must be a MahalanobisFit from fit_mahalanobis, got {type(fit).__name__}.")
    features = _check_features(features, fit.means.shape[1])
    f = features.to(device=fit.means.device, dtype=torch.float64)
    fp = f @ fit.precision
    # (f - mu)^T P (f - mu) = f^T P f - 2 f^T P mu + mu^T P mu, all classes at once (P symmetric);
    # clamp: the expansion can round a zero distance to a tiny negative number
    mu_p_mu = ((fit.means @ fit.precision) * fit.means).sum(dim=1)
    dist = (fp * f).sum(dim=1, keepdim=True) - 2 * fp @ fit.means.T + mu_p_mu
    return (-dist.amin(dim=1).clamp(min=0)).to(device=features.device, dtype=features.dtype)


# --------------------------------------------------------------------------------- model scores
def odin(model: torch.nn.Module, x: Tensor, temperature: float = 1000.0, epsilon: float = 0.0014,
         input_scale: Tensor | float = 1.0) -> Tensor:
    """ODIN (Liang et al., ICLR 2018): MSP at temperature ``T`` of a perturbed input.

    ``x' = x - epsilon * input_scale * sign(-grad_x log S_yhat(x; T))`` with ``yhat`` the predicted
    class, then the score is ``max_c softmax(model(x') / T)_c``. Only the input gradient is taken (the
    model's parameters get no ``.grad``), the model's train/eval mode is left as it is (call
    ``model.eval()`` first), everything runs on ``x``'s device, and it works inside ``torch.no_grad()``.

    ``input_scale`` says in which space ``epsilon`` is a step: the ODIN code of ReAct and DICE
    (``get_odin_score``; ASH's repository has no ODIN code) steps by ``epsilon`` in the *normalised* input the network sees, without
    dividing by the std, so for our models, which normalise inside (``model.normalize``), the same
    step is ``epsilon * std`` per channel in ``x``'s units: pass ``input_scale=model.normalize.std``
    (shape ``(1, C, 1, 1)``). The default 1.0 steps in ``x``'s own units (Liang et al.'s original
    code divides the signed gradient by the std, which is this default on unnormalised images).
    """
    x = _check_tensor("x", x)
    t = _check_temperature(temperature)
    eps = float(check_range("epsilon", epsilon, 0, math.inf))
    if isinstance(input_scale, Tensor):
        if input_scale.ndim > x.ndim or not bool((input_scale > 0).all()):
            raise ParameterError(f"input_scale with shape {tuple(input_scale.shape)} is not allowed: expected "
                                 f"positive values that broadcast against x {tuple(x.shape)}, e.g. (1, C, 1, 1).")
        scale = input_scale.detach().to(x.device)
    else:
        scale = float(check_range("input_scale", input_scale, 0, math.inf))
        if scale == 0:
            raise ParameterError("input_scale=0 is not allowed: expected a number > 0.")
    with torch.inference_mode(False), torch.enable_grad():
        x_in = x.detach().clone().requires_grad_(True)  # clone: inference tensors cannot be used in autograd
        logits = model(x_in)
        _check_logits(logits, "model(x)")
        log_probs = torch.log_softmax(logits / t, dim=1)
        yhat = log_probs.argmax(dim=1, keepdim=True)
        (grad,) = torch.autograd.grad(log_probs.gather(1, yhat).sum(), x_in)
    # -grad of log S_yhat is the gradient of the cross-entropy loss; step against it
    x_hat = x_in.detach() - eps * scale * torch.sign(-grad)
    with torch.no_grad():
        return msp(model(x_hat), t)


# ------------------------------------------------------------------------------ registry entries

from ashlib.methods.detector import Score  # noqa: E402  (the entries sit beside the functions they register)


def _logit_score(name: str, label: str, fn: Callable[[Tensor], Tensor], cite: str) -> Score:
    """A registry score from a function of the (shaped) logits, row by row."""
    def score(ctx, method, set_name: str, logits: Tensor, fitted) -> Tensor:
        return fn(logits)
    return Score(name, label, score, cite, of_logits=fn)


def _odin_score(ctx, method, set_name: str, logits: Tensor, fitted) -> Tensor:
    """ODIN needs input gradients: it runs the whole network, with the method's shaping attached,
    at the context's temperature, magnitude and input scale (:class:`ashlib.evaluation.experiments.BaselineSettings`)."""
    if method.dice:
        raise ParameterError("score='odin' with dice=True is not allowed: not part of the paper's tables.")
    with ctx.shaped_model(method, set_name) as model:
        return torch.cat([odin(model, xb, ctx.odin_temperature, ctx.odin_epsilon, ctx.odin_input_scale).cpu()
                          for xb in ctx.batches(set_name)])


def _fit_penultimate_mahalanobis(ctx, method) -> MahalanobisFit:
    return fit_mahalanobis(ctx.features[ctx.train_set], ctx.y_train, len(ctx.bias))


def _penultimate_mahalanobis(ctx, method, set_name: str, logits: Tensor, fitted: MahalanobisFit) -> Tensor:
    return mahalanobis(ctx.features[set_name], fitted)


#: The scores of this module as :mod:`ashlib.methods.registry` entries.
ENTRIES = (
    _logit_score("msp", "Softmax", msp, "Hendrycks & Gimpel, ICLR 2017"),
    _logit_score("misp", "MiSP", misp, "Annamalai Nathan, MiSP thesis (final layer)"),
    _logit_score("energy", "Energy", energy, "Liu et al., NeurIPS 2020"),
    _logit_score("max_logit", "MaxLogit", max_logit, "Hendrycks et al., ICML 2022"),
    Score("odin", "ODIN", _odin_score, "Liang et al., ICLR 2018"),
    Score("mahalanobis_penultimate", "Mahalanobis (penultimate)", _penultimate_mahalanobis,
          "Lee et al., NeurIPS 2018, the feature-only score on the penultimate layer (OpenOOD's MDS)",
          fit=_fit_penultimate_mahalanobis, shapeable=False),
)
