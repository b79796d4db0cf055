"""The Mahalanobis detector as the paper's baseline ran it (Lee et al., NeurIPS 2018): class-conditional
Gaussians on several layers, input pre-processing, and a logistic regression over the per-layer scores
fitted on ID versus adversarial validation images. The table rows label it "Mahalanobis"; the
feature-only score on the penultimate layer stays :func:`ashlib.methods.scores.mahalanobis`
("Mahalanobis (penultimate)").

Pipeline: :func:`stage_layers` names the layers, :func:`fit` estimates the Gaussians on ID training
images, :func:`fit_regressor` picks the pre-processing magnitude and fits the logistic regression on a
validation set, :func:`score` scores new images (higher = more in-distribution);
:func:`layer_scores` and :func:`fgsm` are the steps, public for checks.

What the official code does
---------------------------
The ASH paper copies its Mahalanobis numbers: ImageNet (ResNet-50) from ReAct (Sun et al., 2021), CIFAR
(DenseNet-101) from DICE (Sun & Li, 2022). Both teams' code descends from Lee et al.'s release; we read
(never copied):

* ``deeplearning-wisc/react``: ``util/mahalanobis_lib.py`` (``sample_estimator``,
  ``get_Mahalanobis_score``), ``score.py`` (``get_mahalanobis_score``), ``eval.py`` (loads the tuned
  means, precisions, regressor weights and magnitude), ``models/resnet.py`` (``feature_list``,
  ``intermediate_forward``). The tuning script ReAct loads from (``output/mahalanobis_hyperparams/``) is
  not in the repository; the same group's ``deeplearning-wisc/large_scale_ood`` (MOS, the ImageNet
  protocol ReAct follows) has it: ``tune_mahalanobis_hyperparameter.py``
  (``tune_mahalanobis_hyperparams``).
* ``deeplearning-wisc/dice``: ``util/score.py`` (``get_mahalanobis_score``, identical to ReAct's) and
  ``models/densenet.py`` (``DenseNet3.feature_list``/``intermediate_forward``); DICE ships no tuning
  script. Its lineage (same group): ``jfc43/informative-outlier-mining`` (ATOM)
  ``tune_mahalanobis_hyperparams.py`` and ``utils/mahalanobis_lib.py``, the CIFAR protocol.
* Lee et al.'s ``pokaxpoka/deep_Mahalanobis_detector``, ``lib_generation.py`` (``sample_estimator``,
  ``get_Mahalanobis_score``), for the original.

1. **Layers** (``feature_list``): each listed output is mean-pooled over H, W to ``(N, C_l)``. DICE's
   DenseNet3: 4 outputs: ``conv1``, ``trans1(block1)``, ``trans2(block2)``, ``relu(bn1(block3))``.
   ReAct's ResNet-50: ONE output, the pooled ``layer4`` (``feature_list`` appends only it, and
   ``eval.py`` sets ``num_output = 1``). Lee et al.'s ResNet: stem, ``layer1`` .. ``layer4``.
2. **Gaussians** (``sample_estimator``, Lee et al. Eq. 1): per layer the class means ``mu_c`` of the
   pooled training features and ONE shared covariance, ``sklearn.covariance.EmpiricalCovariance``
   (maximum likelihood, divides by N) of the class-centred features; ``precision_`` is its
   pseudo-inverse. Fitted on the ID training set (ReAct's ``sample_estimator`` stops after 50,000
   images, ``if total > 50000: break``; ATOM's and Lee et al.'s use all of it).
3. **Per-layer score with input pre-processing** (``get_Mahalanobis_score``, Eq. 2 and 3): for layer
   ``l`` the closest class ``c* = argmax_c -0.5 d_c`` with ``d_c = (f - mu_c)^T P (f - mu_c)``; the
   loss ``mean(0.5 d_c*)`` is back-propagated to the input the network receives; the step is
   ``x' = x - magnitude * s`` with ``s = +1 where grad >= 0, else -1`` (``torch.ge``: a zero gradient
   steps by ``-magnitude``), i.e. towards the closest Gaussian; no clamping. The layer's score is
   ``max_c -0.5 d_c(f_l(x'))`` (note the 0.5, which Eq. 2 does not have). ReAct, DICE and ATOM do not
   divide ``s`` by the normalisation std; Lee et al.'s original does (``gradient / std_c``), so its
   magnitude is in [0, 1] pixel units.
4. **Validation recipe** (``tune_mahalanobis_hyperparams``): ``m = 500``. ID images: MOS/ReAct take the
   first ``2m`` images of the ID *validation* loader, unshuffled (``shuffle=False``: the first ``2m``
   of its image list; ImageNet val, which is also the ID test set of the paper's ImageNet benchmark), ``m`` to fit the regression and ``m`` to pick the magnitude;
   ATOM takes ``m`` images of the shuffled *training* loader and uses them for both. Negatives: FGSM
   adversarial examples of those images, ``x + 0.05 * s`` with ``s`` the ``torch.ge`` sign of the input
   gradient of the cross-entropy at the TRUE label, clamped to [0, 1]. Labels: ID 0, adversarial 1.
   For each magnitude in ``[0.0, 0.01, 0.005, 0.002, 0.0014, 0.001, 0.0005]`` (MOS/ReAct; ATOM:
   ``np.arange(0, 0.0041, 0.0002)``) the per-layer scores (cast to float32) of the regression half
   train ``LogisticRegressionCV()`` (sklearn defaults: 10 Cs, 5-fold stratified CV, accuracy, L2, lbfgs;
   MOS passes ``n_jobs=-1``); the magnitude with the lowest FPR at 95% TPR on the selection half (ID vs
   its adversarial examples, score ``-P(adversarial)``; MOS computes it with its ``get_measures``,
   ATOM with its ``metric``) wins, the first in list order on ties (strict ``<``); its regressor is kept.
5. **Score** (``get_mahalanobis_score``): ``-regressor.predict_proba(S)[:, 1]``, minus the probability
   of "adversarial", in [-1, 0]; higher = more ID.

Where we differ
---------------
* **Units of the step.** Our models normalise inside (``model.normalize``), so ``x`` is the [0, 1]
  image and the gradient is taken with respect to it. ReAct/MOS feed normalised tensors, so their
  ``magnitude`` is in units of the normalised input: ``x_norm - m s`` is ``x - m * std_c * s`` in pixel
  units (the sign of the gradient is the same in both spaces, std > 0). ``step_units="normalized"``
  (default) reproduces that: every step (pre-processing and FGSM) is scaled by ``model.normalize.std``
  per channel. ``step_units="input"`` steps ``m`` in pixel units, which is what ATOM's CIFAR code does
  (its DenseNet normalises inside, like ours) and what Lee et al.'s ``/ std`` achieves.
* **FGSM clamp.** MOS/ReAct clamp the *normalised* adversarial tensor to [0, 1] (a bug: every pixel
  below the mean becomes the mean); we clamp the [0, 1] image, as ATOM does.
* **Validation images.** The caller passes them (``x_val``, ``y_val``); :func:`fit_regressor` draws
  ``n_val`` (default 1,000 = ``2m``) of them with ``seed`` and, as MOS/ReAct, fits the regression on the
  first half and picks the magnitude on the second, by :func:`ashlib.stats.metrics.fpr95` (the paper's
  convention). The embedded benchmarks have no validation split and ReAct's choice (ID test images)
  would leak the test set, so pass ID *training* images there, as ATOM (the CIFAR lineage) does: no
  test or OOD image is seen. Training images sit closer to
  the class means than unseen ones; that shifts the ID side of the regression a little, not the OOD side.
* **Layers.** :func:`stage_layers` gives the output of every stage: ``smallresnet`` ``layer1..layer4``
  (Lee et al.'s ResNet list without the stem), ``resnet50`` ``layer1..layer4`` (ReAct used only
  ``layer4``: pass ``layers=["layer4"]`` to match), ``densenet100`` ``stem, trans1, trans2, head``
  (exactly DICE's DenseNet3 list), ``mobilenet_v2`` ``layer1..layer7, head``.
* **Precision.** Float64 throughout, means and precision from :func:`ashlib.methods.scores.fit_mahalanobis`
  (the same estimate as ``EmpiricalCovariance``); per-layer scores are passed to the regression in
  float64, not float32. The per-layer score keeps the official ``-0.5 * min_c d_c``, i.e. ``0.5 *``
  :func:`ashlib.methods.scores.mahalanobis`.
* **Regression.** ``LogisticRegressionCV`` with the official defaults written out (so that newer
  scikit-learn keeps them: 10 Cs, 5 folds, accuracy scoring, L2 only, lbfgs, 100 iterations) and
  ``random_state=seed`` (unused by lbfgs); no ``n_jobs``. On a perfectly separable toy problem lbfgs
  may stop at 100 iterations with a ``ConvergenceWarning``, as the official fit would.
* **Computation.** The input gradient of every layer comes from one forward pass (the layers' losses are
  back-propagated one at a time), and is computed once for all magnitudes; forward passes stop at the
  deepest layer needed. The results equal the official per-layer loop's.
"""
from __future__ import annotations

import inspect
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from threadpoolctl import threadpool_limits
from torch import Tensor, nn
from torch.utils.data import Dataset, Subset
from tqdm.auto import tqdm

from ashlib.stats import metrics
from ashlib._checks import ParameterError, check_choice, check_positive_int, check_range
from ashlib.assets.features import batches
from ashlib.assets.placement import get_layer
from ashlib.methods.scores import MahalanobisFit, fit_mahalanobis, mahalanobis

__all__ = [
    "ENTRIES",
    "ADV_NOISE",
    "MAGNITUDES",
    "MahalanobisLayersFit",
    "MahalanobisRegressor",
    "STEP_UNITS",
    "fgsm",
    "fit",
    "fit_regressor",
    "layer_scores",
    "score",
    "stage_layers",
]

#: The pre-processing magnitudes MOS/ReAct's tuning script tries, in its order (ties: the first wins).
MAGNITUDES: tuple[float, ...] = (0.0, 0.01, 0.005, 0.002, 0.0014, 0.001, 0.0005)
#: FGSM step of the adversarial validation negatives (``adv_noise`` in every official tuning script).
ADV_NOISE = 0.05
#: What a step of 1 means: "normalized" (ReAct/MOS: one std of the normalised input, per channel) or
#: "input" (ATOM, Lee et al.: one unit of the [0, 1] image).
STEP_UNITS = ("normalized", "input")


class _Stop(Exception):
    """Raised by a hook once the deepest layer needed has run: the rest of the network is skipped."""


@dataclass(frozen=True, eq=False)
class MahalanobisLayersFit:
    """Per-layer class-conditional Gaussians with a shared covariance (Lee et al. 2018, Eq. 1).

    ``layers``: module names, early to late; ``fits``: one :class:`ashlib.methods.scores.MahalanobisFit` each,
    on that layer's output mean-pooled over H, W.
    """

    layers: tuple[str, ...]
    fits: tuple[MahalanobisFit, ...]

    @property
    def num_classes(self) -> int:
        return self.fits[0].num_classes


@dataclass(frozen=True, eq=False)
class MahalanobisRegressor:
    """What :func:`fit_regressor` picked: the ``magnitude``, the fitted ``regressor`` (a scikit-learn
    ``LogisticRegressionCV``, class 1 = adversarial) and the validation FPR at 95% TPR (percent, the
    paper's convention) of every magnitude tried. Unpacks as ``magnitude, regressor = ...``."""

    magnitude: float
    regressor: object
    validation_fpr: dict[float, float] = field(default_factory=dict)

    def __iter__(self) -> Iterator:
        return iter((self.magnitude, self.regressor))


# --------------------------------------------------------------------------------------- checks
def _check_data(name: str, data) -> Tensor | Dataset:
    if isinstance(data, Tensor):
        if data.ndim != 4 or not data.is_floating_point():
            raise ParameterError(f"{name} has shape {tuple(data.shape)} and dtype {data.dtype}: expected a "
                                 "float tensor of images (N, C, H, W) in [0, 1].")
    elif not isinstance(data, Dataset):
        raise ParameterError(f"{name} of type {type(data).__name__} is not allowed: expected a tensor of "
                             "images (N, C, H, W) or a torch Dataset of image tensors.")
    if len(data) == 0:
        raise ParameterError(f"{name} is empty: expected at least one image.")
    return data


def _check_labels(name: str, labels, n: int) -> Tensor:
    if not isinstance(labels, Tensor) or labels.shape != (n,) or labels.is_floating_point() or labels.is_complex():
        shape = tuple(labels.shape) if isinstance(labels, Tensor) else type(labels).__name__
        raise ParameterError(f"{name}={shape} is not allowed: expected an integer label tensor of shape ({n},).")
    return labels


def _check_magnitude(name: str, value) -> float:
    return float(check_range(name, value, 0, math.inf))


def _check_fit(model: nn.Module, fit) -> MahalanobisLayersFit:
    if not isinstance(fit, MahalanobisLayersFit):
        raise ParameterError(f"fit of type {type(fit).__name__} is not allowed: expected a MahalanobisLayersFit "
                             "from ashlib.methods.mahalanobis.fit.")
    for layer in fit.layers:
        get_layer(model, layer)
    return fit


def _check_regressor(regressor, num_layers: int):
    from sklearn.linear_model import LogisticRegressionCV

    coef = getattr(regressor, "coef_", None)
    if not isinstance(regressor, LogisticRegressionCV) or coef is None or coef.shape != (1, num_layers):
        raise ParameterError(f"regressor={regressor!r} is not allowed: expected a LogisticRegressionCV fitted "
                             f"on {num_layers} per-layer scores (from fit_regressor).")
    return regressor


def _step_scale(model: nn.Module, step_units: str) -> Tensor | float:
    """What a step of 1 is in [0, 1] pixel units: the normalisation std per channel, or 1."""
    check_choice("step_units", step_units, STEP_UNITS)
    if step_units == "input":
        return 1.0
    std = getattr(getattr(model, "normalize", None), "std", None)
    if not isinstance(std, Tensor):
        raise ParameterError("step_units='normalized' is not allowed for a model without a `normalize` child "
                             "holding a `std` buffer: expected step_units='input'.")
    return std.detach()


# ------------------------------------------------------------------------------------- internals
def _pool(out: Tensor) -> Tensor:
    """Mean over the spatial positions: (N, C, H, W) -> (N, C); (N, C) stays."""
    return out.flatten(2).mean(2) if out.ndim > 2 else out.flatten(1)


def _pooled_outputs(model: nn.Module, x: Tensor, layers: Sequence[str]) -> list[Tensor]:
    """Pooled outputs of ``layers`` for ``x`` (autograd follows if enabled); the forward pass stops
    as soon as every layer has run."""
    found: dict[str, Tensor] = {}

    def hook(layer):
        def record(_m, _i, out):
            found[layer] = _pool(out)
            if len(found) == len(set(layers)):
                raise _Stop
        return record

    handles = [get_layer(model, layer).register_forward_hook(hook(layer)) for layer in dict.fromkeys(layers)]
    try:
        model(x)
    except _Stop:
        pass
    finally:
        for h in handles:
            h.remove()
    missing = [layer for layer in layers if layer not in found]
    if missing:
        raise ParameterError(f"layers {missing} did not run in model's forward pass: expected modules it calls.")
    return [found[layer] for layer in layers]


def _closest_class(features: Tensor, fit: MahalanobisFit) -> Tensor:
    """Index of the class whose Gaussian is closest, ``argmin_c d_c`` (no autograd)."""
    f = features.detach().double()
    fp = f @ fit.precision
    # d_c = f^T P f - 2 f^T P mu_c + mu_c^T P mu_c; the first term is the same for every class
    return (((fit.means @ fit.precision) * fit.means).sum(dim=1) - 2 * fp @ fit.means.T).argmin(dim=1)


def _distance_to(features: Tensor, fit: MahalanobisFit, classes: Tensor) -> Tensor:
    """``d = (f - mu_c)^T P (f - mu_c)`` to the given class of each row, (N,) float64, differentiable."""
    diff = features.double() - fit.means[classes]
    return ((diff @ fit.precision) * diff).sum(dim=1)


def _closest_gaussian_score(features: Tensor, fit: MahalanobisFit) -> Tensor:
    """Official per-layer score ``max_c -0.5 d_c = 0.5 * scores.mahalanobis`` (float64)."""
    return 0.5 * mahalanobis(features.detach().double(), fit)


def _ge_sign(grad: Tensor) -> Tensor:
    """The official code's sign: +1 where the gradient is >= 0 (zero included), else -1."""
    return torch.where(grad >= 0, 1.0, -1.0).to(grad.dtype)


def _layer_scores_batch(model: nn.Module, fit: MahalanobisLayersFit, xb: Tensor, magnitudes: Sequence[float],
                        scale) -> list[Tensor]:
    """(B, L) float64 scores of one batch for each magnitude (official ``get_Mahalanobis_score``)."""
    layers = list(fit.layers)
    fits = [MahalanobisFit(g.means.to(xb.device), g.precision.to(xb.device)) for g in fit.fits]
    with torch.inference_mode(False), torch.enable_grad():
        x = xb.detach().clone().requires_grad_(True)  # clone: inference tensors cannot enter autograd
        feats = _pooled_outputs(model, x, layers)
        directions = []
        for i, (f, g) in enumerate(zip(feats, fits)):
            # closest class on the unperturbed input, then 0.5 * its distance, back to the input
            d = _distance_to(f, g, _closest_class(f, g))
            (grad,) = torch.autograd.grad(0.5 * d.sum(), x, retain_graph=i < len(feats) - 1)
            directions.append(_ge_sign(grad) * scale)
    x = x.detach()
    clean = torch.stack([_closest_gaussian_score(f, g) for f, g in zip(feats, fits)], dim=1)
    out = []
    with torch.no_grad():
        for m in magnitudes:
            if m == 0:  # x - 0 * s = x: the clean features already give the scores
                out.append(clean)
                continue
            cols = [_closest_gaussian_score(_pooled_outputs(model, x - m * s, [layer])[0], g)
                    for layer, g, s in zip(layers, fits, directions)]
            out.append(torch.stack(cols, dim=1))
    return out


class _EvalMode:
    """Within the block the model is in eval mode; its previous mode is restored on exit."""

    def __init__(self, model: nn.Module):
        self.model, self.was_training = model, model.training

    def __enter__(self):
        self.model.eval()
        return self.model

    def __exit__(self, *exc):
        self.model.train(self.was_training)


def _regressor_inputs(scores_id: Tensor, scores_adv: Tensor) -> tuple[np.ndarray, np.ndarray]:
    x = torch.cat([scores_id, scores_adv]).numpy()
    y = np.concatenate([np.zeros(len(scores_id), dtype=np.int64), np.ones(len(scores_adv), dtype=np.int64)])
    return x, y


def _new_regressor(seed: int):
    """``LogisticRegressionCV()`` with the defaults the official code ran under written out."""
    from sklearn.linear_model import LogisticRegressionCV

    wanted = dict(Cs=10, cv=5, scoring="accuracy", solver="lbfgs", max_iter=100, random_state=seed,
                  l1_ratios=(0.0,), use_legacy_attributes=False)
    allowed = inspect.signature(LogisticRegressionCV).parameters
    return LogisticRegressionCV(**{k: v for k, v in wanted.items() if k in allowed})


def _ood_score(regressor, s: Tensor) -> Tensor:
    """``-P(adversarial | per-layer scores)``, the official score (higher = more ID)."""
    return -torch.from_numpy(regressor.predict_proba(s.numpy())[:, 1]).to(torch.float64)


# ------------------------------------------------------------------------------------------ API
def stage_layers(model: nn.Module) -> list[str]:
    """The layers whose mean-pooled outputs the detector uses: the output of every stage, the last one
    being the penultimate feature map (the official ``feature_list``, Lee et al. 2018 Sec. 2.2).

    - ``smallresnet`` (and ``smallresnet_logsoftmax``), ``resnet50``: ``layer1`` .. ``layer4``
      (ReAct's ResNet-50 used only ``layer4``; Lee et al.'s ResNet also the stem), then the small ResNet's
      expansion ``head`` where it has one: its output is then the penultimate feature map.
    - ``densenet100``: ``stem, trans1, trans2, head``, exactly DICE's ``DenseNet3.feature_list``
      (``conv1``, ``trans1(block1)``, ``trans2(block2)``, ``relu(bn1(block3))``).
    - ``mobilenet_v2``: ``layer1`` .. ``layer7``, ``head``.
    """
    names = [name for name, _ in model.named_children()]
    if {"trans1", "trans2", "head"} <= set(names):
        return ["stem", "trans1", "trans2", "head"]
    stages = [n for n in names if n.startswith("layer") and n[5:].isdigit()]
    if not stages:
        raise ParameterError(f"model with children {names} is not allowed: expected one of ashlib.assets.models' "
                             "architectures (children layer1.. or DenseNet's trans1, trans2, head).")
    return stages + (["head"] if "head" in names else [])


def fit(model: nn.Module, x_train: Tensor | Dataset, y_train: Tensor, num_classes: int,
        layers: Sequence[str], batch_size: int = 256, device: str = "cpu", num_workers: int = 0
        ) -> MahalanobisLayersFit:
    """Class means and one shared covariance per layer (Lee et al. 2018, Eq. 1; official
    ``sample_estimator``) from the mean-pooled outputs of ``layers`` on the ID training images.

    ``x_train``: [0, 1] images (tensor or Dataset) with integer labels ``y_train``; every class must
    occur. Runs in eval mode on ``device`` (where the model must already be); the model's mode is
    restored; nothing is modified.
    """
    x_train = _check_data("x_train", x_train)
    y_train = _check_labels("y_train", y_train, len(x_train))
    check_positive_int("num_classes", num_classes)
    check_positive_int("batch_size", batch_size)
    if isinstance(layers, str) or not isinstance(layers, Sequence) or not layers:
        raise ParameterError(f"layers={layers!r} is not allowed: expected a non-empty list of module names, "
                             "e.g. stage_layers(model).")
    layers = list(layers)
    if len(set(layers)) != len(layers):
        raise ParameterError(f"layers={layers!r} is not allowed: expected distinct module names.")
    for layer in layers:
        get_layer(model, layer)
    parts: list[list[Tensor]] = [[] for _ in layers]
    total = -(-len(x_train) // batch_size)
    with _EvalMode(model), torch.no_grad():
        for xb in tqdm(batches(x_train, batch_size, num_workers, device), total=total, desc="Mahalanobis fit",
                       unit="batch", leave=False):
            for part, f in zip(parts, _pooled_outputs(model, xb.to(device), layers)):
                part.append(f.float().cpu())
    fits = tuple(fit_mahalanobis(torch.cat(p), y_train.cpu(), num_classes) for p in parts)
    return MahalanobisLayersFit(layers=tuple(layers), fits=fits)


def layer_scores(model: nn.Module, fit: MahalanobisLayersFit, x: Tensor | Dataset, magnitude: float,
                 batch_size: int = 256, device: str = "cpu", step_units: str = "normalized",
                 num_workers: int = 0) -> Tensor:
    """Per-layer Mahalanobis scores with input pre-processing, ``(N, L)`` float64 on the CPU (Lee et al.
    2018, Eq. 2 and 3; official ``get_Mahalanobis_score``).

    For each layer ``l``: ``c*`` is the closest class of the unperturbed image; ``s`` is the sign
    (``+1`` where ``>= 0``) of the input gradient of ``0.5 d_c*``; the image moves to
    ``x' = x - magnitude * step * s`` (``step``: ``model.normalize.std`` per channel for
    ``step_units="normalized"``, else 1; not clamped) and the score is ``max_c -0.5 d_c(f_l(x'))``.
    ``magnitude=0`` gives ``0.5 * scores.mahalanobis`` of the pooled features. Only the input is
    differentiated (no parameter ``.grad``); runs in eval mode on ``device`` (where the model must be),
    the model's mode is restored; ``x`` is not modified.
    """
    fit = _check_fit(model, fit)
    x = _check_data("x", x)
    magnitude = _check_magnitude("magnitude", magnitude)
    check_positive_int("batch_size", batch_size)
    scale = _step_scale(model, step_units)
    scale = scale.to(device) if isinstance(scale, Tensor) else scale
    out = []
    total = -(-len(x) // batch_size)
    with _EvalMode(model):
        for xb in tqdm(batches(x, batch_size, num_workers, device), total=total, desc="Mahalanobis layers",
                       unit="batch", leave=False):
            out.append(_layer_scores_batch(model, fit, xb.to(device).float(), [magnitude], scale)[0].cpu())
    return torch.cat(out)


def fgsm(model: nn.Module, x: Tensor, y: Tensor, epsilon: float = ADV_NOISE, step_units: str = "normalized"
         ) -> Tensor:
    """The official validation negatives: ``clamp(x + epsilon * step * s, 0, 1)`` with ``s`` the sign
    (``+1`` where ``>= 0``) of the input gradient of the cross-entropy at the true labels ``y``
    (one FGSM step, Goodfellow et al. 2015). ``step`` as in :func:`layer_scores`. Eval mode, the model's
    mode restored, no parameter ``.grad``; ``x`` is not modified. Runs on ``x``'s device."""
    if not isinstance(x, Tensor):
        raise ParameterError(f"x of type {type(x).__name__} is not allowed: expected a tensor of images.")
    _check_data("x", x)
    y = _check_labels("y", y, len(x))
    eps = float(check_range("epsilon", epsilon, 0, math.inf))
    scale = _step_scale(model, step_units)
    scale = scale.to(x.device) if isinstance(scale, Tensor) else scale
    with _EvalMode(model), torch.inference_mode(False), torch.enable_grad():
        xin = x.detach().clone().requires_grad_(True)
        loss = nn.functional.cross_entropy(model(xin), y.to(x.device))
        (grad,) = torch.autograd.grad(loss, xin)
    return (xin.detach() + eps * scale * _ge_sign(grad)).clamp(0, 1)


def fit_regressor(model: nn.Module, fit: MahalanobisLayersFit, x_val: Tensor | Dataset, y_val: Tensor,
                  magnitudes: Sequence[float] = MAGNITUDES, n_val: int = 1000, adv_noise: float = ADV_NOISE,
                  step_units: str = "normalized", seed: int = 0, batch_size: int = 256, device: str = "cpu",
                  num_workers: int = 0) -> MahalanobisRegressor:
    """The official validation recipe (Lee et al. 2018, Sec. 2.2 feature ensemble; MOS/ReAct
    ``tune_mahalanobis_hyperparams``): pick the pre-processing magnitude and fit the logistic regression
    over the per-layer scores without looking at any OOD set.

    Draws ``min(n_val, len(x_val))`` ID images with ``seed`` (at least 10); their FGSM examples
    (:func:`fgsm`, ``adv_noise``) are the negatives. For each of ``magnitudes`` a
    ``LogisticRegressionCV`` (ID 0, adversarial 1) is fitted on the per-layer scores of the first half
    and its FPR at 95% TPR (ID positive, score ``-P(adversarial)``, the paper's convention) measured on
    the second half; the lowest wins, the first in ``magnitudes`` on ties. Returns a
    :class:`MahalanobisRegressor` (unpacks as ``magnitude, regressor``). Deterministic for a seed.
    """
    fit = _check_fit(model, fit)
    x_val = _check_data("x_val", x_val)
    y_val = _check_labels("y_val", y_val, len(x_val))
    if isinstance(magnitudes, (str, bytes)) or not isinstance(magnitudes, Sequence) or not magnitudes:
        raise ParameterError(f"magnitudes={magnitudes!r} is not allowed: expected a non-empty list of numbers >= 0.")
    magnitudes = [_check_magnitude("magnitudes", m) for m in magnitudes]
    if len(set(magnitudes)) != len(magnitudes):
        raise ParameterError(f"magnitudes={magnitudes!r} is not allowed: expected distinct values.")
    check_positive_int("n_val", n_val)
    if min(n_val, len(x_val)) < 10:
        raise ParameterError(f"n_val={n_val} with {len(x_val)} validation images is not allowed: expected at "
                             "least 10 images (5 per half for the 5-fold cross-validation).")
    eps = float(check_range("adv_noise", adv_noise, 0, math.inf))
    check_positive_int("batch_size", batch_size)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ParameterError(f"seed={seed!r} is not allowed: expected an integer.")
    scale = _step_scale(model, step_units)
    scale = scale.to(device) if isinstance(scale, Tensor) else scale

    n = min(n_val, len(x_val))
    idx = torch.randperm(len(x_val), generator=torch.Generator().manual_seed(seed))[:n]
    half = n // 2
    subset = x_val[idx] if isinstance(x_val, Tensor) else Subset(x_val, idx.tolist())
    labels = y_val[idx]

    clean = {m: [] for m in magnitudes}
    adv = {m: [] for m in magnitudes}
    total = -(-n // batch_size)
    with _EvalMode(model):
        for i, xb in enumerate(tqdm(batches(subset, batch_size, num_workers, device), total=total,
                                    desc="Mahalanobis validation", unit="batch", leave=False)):
            xb = xb.to(device).float()
            yb = labels[i * batch_size:i * batch_size + len(xb)].to(device)
            both = torch.cat([xb, fgsm(model, xb, yb, eps, step_units)])  # one pass for clean and FGSM
            for m, s in zip(magnitudes, _layer_scores_batch(model, fit, both, magnitudes, scale)):
                clean[m].append(s[:len(xb)].cpu())
                adv[m].append(s[len(xb):].cpu())

    best: MahalanobisRegressor | None = None
    fprs: dict[float, float] = {}
    for m in magnitudes:
        s_clean, s_adv = torch.cat(clean[m]), torch.cat(adv[m])
        # one BLAS thread: on these few columns threads only add overhead (10x slower on a busy CPU)
        with threadpool_limits(limits=1, user_api="blas"):
            regressor = _new_regressor(seed).fit(*_regressor_inputs(s_clean[:half], s_adv[:half]))
        fprs[m] = 100 * metrics.fpr95(_ood_score(regressor, s_clean[half:]), _ood_score(regressor, s_adv[half:]))
        if best is None or fprs[m] < fprs[best.magnitude]:
            best = MahalanobisRegressor(m, regressor)
    return MahalanobisRegressor(best.magnitude, best.regressor, fprs)


def score(model: nn.Module, fit: MahalanobisLayersFit, regressor, magnitude: float, x: Tensor | Dataset,
          batch_size: int = 256, device: str = "cpu", step_units: str = "normalized", num_workers: int = 0
          ) -> Tensor:
    """The Mahalanobis score of the paper's tables, ``(N,)`` float64: ``-P(adversarial)`` of the
    logistic regression over :func:`layer_scores` at ``magnitude`` (official ``get_mahalanobis_score``:
    ``-regressor.predict_proba(S)[:, 1]``), in [-1, 0], higher = more in-distribution. ``regressor`` and
    ``magnitude`` come from :func:`fit_regressor`; ``step_units`` must be the one used there."""
    fit = _check_fit(model, fit)
    regressor = _check_regressor(regressor, len(fit.layers))
    return _ood_score(regressor, layer_scores(model, fit, x, magnitude, batch_size, device, step_units, num_workers))


# ----------------------------------------------------------------------------- registry entry

from ashlib.methods.detector import Score  # noqa: E402  (the entries sit beside the functions they register)


def _fit_entry(ctx, method) -> tuple[MahalanobisLayersFit, MahalanobisRegressor]:
    """Gaussians on the ID training images at the context's layers (``BaselineSettings.mahalanobis_layers``,
    else :func:`stage_layers`), then magnitude and regression by the official validation recipe on
    ``ctx.mahalanobis_n_val`` ID *training* images and their FGSM examples (no test or OOD image)."""
    layers = list(ctx.baselines.mahalanobis_layers or stage_layers(ctx.model))
    common = dict(batch_size=ctx.batch_size, device=ctx.device, num_workers=ctx.num_workers)
    x_train = ctx.sets[ctx.train_set]
    fitted = fit(ctx.model, x_train, ctx.y_train, len(ctx.bias), layers, **common)
    picked = fit_regressor(ctx.model, fitted, x_train, ctx.y_train, n_val=ctx.mahalanobis_n_val, seed=0, **common)
    return fitted, picked


def _score_entry(ctx, method, set_name: str, logits: Tensor, fitted) -> Tensor:
    layers_fit, picked = fitted
    return score(ctx.model, layers_fit, picked.regressor, picked.magnitude, ctx.sets[set_name],
                 batch_size=ctx.batch_size, device=ctx.device, num_workers=ctx.num_workers).float()


#: The paper's Mahalanobis as an :mod:`ashlib.methods.registry` entry.
ENTRIES = (Score("mahalanobis", "Mahalanobis", _score_entry, "Lee et al., NeurIPS 2018, as ReAct's and DICE's code ran it",
                 fit=_fit_entry, shapeable=False),)
