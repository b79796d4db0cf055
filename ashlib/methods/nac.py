"""Neuron Activation Coverage, NAC (Liu, Tian, Li, Ma & Wang, ICLR 2024, arXiv:2306.02879).

A neuron is "covered" at a state if enough in-distribution training samples put it there; an input
whose neurons sit where training data rarely did is likely OOD. The pieces, each a small function:

1. **Neuron state** (paper Eq. 3, slides "Formulation of neuron state"):
   ``z_hat = sigmoid(alpha * z * dKL(u || p)/dz)`` with ``u`` the uniform distribution over the ``C``
   classes. ``KL(u || p) = sum_c -(1/C) log p_c + const``, so the loss is
   ``sum_c -(1/C) log softmax(logits)_c`` (summed over the samples of a batch: they are independent
   once BatchNorm is in eval mode, so each sample gets the gradient of its own loss). For a linear
   head ``logits = W z + b`` the gradient is ``W^T (p - u)``. For conv outputs ``(N, C, H, W)`` the
   output ``o`` and its gradient ``g`` are *each summed* over ``H, W`` first, then multiplied:
   ``state = sigmoid(alpha * sum_hw(o) * sum_hw(g))`` (official ``avg_pooling``, "we directly sum each
   element, since the denominator can be scaled by sigmoid smooth"). :func:`kl_gradients`,
   :func:`states_from`, :func:`neuron_states`.
2. **Histogram** per neuron over the states of a class-balanced ID training subset (official
   ``TrainSubset``, 1000 images, ``n // C`` per class). :func:`class_balanced_subset`, :func:`fit_layer`,
   :func:`fit_nac`.
3. **Coverage** ``Phi = min(count / O, 1)`` of the bin a state falls in (slides: ``Phi = min(kappa, r)/r``),
   averaged over the neurons of a layer. :func:`coverage`.
4. **NAC-UE** (uncertainty estimation): the per-layer coverage averaged over the layers
   (official ``single_ood_test``: ``scores += layer_score / layer_num``); higher = more ID.
   :func:`nac_score`, :func:`nac_ue`.
5. **NAC-ME** (model evaluation, slides): ``G(X, theta) = 1/N sum_i int_0^1 Phi_i(xi) dxi`` from ID
   training data only; see :func:`nac_me`. Its official setup (the DomainBed code) differs from NAC-UE's:
   one layer (``avgpool``), ``O = 500``, ``M = 50`` linear thresholds, ``alpha = 0.1``, histograms over
   *all* training images that the model classifies *correctly* (:func:`nac_me_configs`, :func:`fit_nac_me`).

Official per-layer values (:func:`default_configs`): the ``layer_kwargs`` of
``configs/postprocessors/nac/resnet/nac_{cifar10,cifar100,imagenet}.yml`` (ResNet-18 on CIFAR, ResNet-50
on ImageNet; layers ``avgpool, layer3, layer2, layer1``, fitted on 1,000 class-balanced training images,
README ``--valid-num 1000``). The published numbers come from the official ``aps`` mode (README:
every reproduction command ends in ``aps``): a joint grid search over those files'
``postprocessor_sweep`` values, keeping the combination with the highest AUROC of ID validation images
against an OOD validation set (``openood/evaluation_api/evaluator.py``, ``hyperparam_search``);
:func:`search_configs` does the same on the data a caller gives, :data:`SEARCH_GRIDS` holds the grids.

Bin edges (``LayerConfig.binning``):

* ``"official"`` (default): what the official NAC-UE code uses (``openood/postprocessors/nac/coverage.py``,
  ``Estimator.thresh = logspace(1e3, M)``): ``M`` thresholds, symmetric about 0.5 and dense near it,
  ``t_i = log(1 + i (sqrt(1000) - 1)/(k - 1)) / log(1000)`` for ``i < k = M/2`` (0 ... 0.5), mirrored as
  ``1 - t_i`` (0.5 ... 1), the top one moved to 1.01, and a last threshold 1.2. Intervals are
  ``[t_j, t_{j+1})``. The last interval ``[1.01, 1.2)`` can never hold a sigmoid state, so it is dropped
  here: ``M`` thresholds give ``M - 2`` usable bins (M=50: 48; M=500: 498), with exactly the official
  counts and scores. The official code needs an even ``M`` (an odd one fails its ``view(M, -1)``), so
  we require an even ``M >= 4``. The density near 0.5 matters: with the CIFAR-10 ``alpha = 0.001`` of
  layer1/layer2 almost every state lies within 1e-2 of 0.5, where these bins are ~1e-3 wide (M=500),
  while equal-width bins would put all of them into one or two bins.
* ``"linear"``: ``M`` equal-width bins on [0, 1], the last one closed so a saturated state 1.0 counts
  (the official NAC-ME code, ``domainbed/benchmark_notes/coverage.py``, uses ``linspace(0, 1, M)``
  thresholds, i.e. ``M - 1`` half-open bins in which a state of exactly 1.0 is lost).

pytorch-ood 0.4.0 ``NACUE`` (``pytorch_ood/detector/nac.py``) differs from the official code in:
(a) the spatial reduction: it averages the *product*, ``sigmoid(alpha * mean_hw(o * g))``, instead of
``sigmoid(alpha * sum_hw(o) * sum_hw(g))``: the same for ``(N, C)`` and 1x1 outputs, different for
conv maps; (b) the bins: "geometric", dense near 0 and 1 (``logspace(1e-6, 0.5)`` mirrored), intervals
``(t_j, t_{j+1}]``, where the official ones are dense near 0.5; (c) layers are summed, not averaged,
and the result is negated (pytorch-ood's "higher = more OOD"); (d) ``log(p + 1e-12)`` in the loss;
(e) it fits on every sample of the loader it is given (no class-balanced subset). We follow the
official code because the published hyperparameters (:data:`CIFAR10_DEFAULTS`: ``alpha`` from 0.001 to
1000, ``M`` 50 or 500) were tuned for its state scale and its bins; with pytorch-ood's reduction and
bins the same numbers mean something else.
"""
from __future__ import annotations

import math
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from numbers import Real

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset, Subset
from tqdm.auto import tqdm

from ashlib._checks import ParameterError, check_choice, check_positive_int, check_seed
from ashlib.assets.features import batches
from ashlib.assets.placement import get_layer

__all__ = [
    "BINNINGS",
    "ENTRIES",
    "fitting_states",
    "options",
    "set_states",
    "CIFAR100_DEFAULTS",
    "CIFAR10_DEFAULTS",
    "ConfigSearch",
    "IMAGENET_DEFAULTS",
    "LAYER_NAMES",
    "LayerConfig",
    "LayerFit",
    "NACFit",
    "NAC_ME_ALPHA",
    "NAC_ME_LAYER",
    "NAC_ME_M",
    "NAC_ME_O",
    "OFFICIAL_N_FIT",
    "OFFICIAL_SEARCH_SETS",
    "SEARCH_GRIDS",
    "bin_edges",
    "bin_index",
    "class_balanced_subset",
    "coverage",
    "default_configs",
    "fit_layer",
    "fit_nac",
    "fit_nac_me",
    "fit_states",
    "kl_gradients",
    "layer_nac_me",
    "nac_me",
    "nac_me_configs",
    "nac_score",
    "nac_ue",
    "neuron_states",
    "official_table",
    "search_configs",
    "search_grid",
    "states_from",
    "take",
]

BINNINGS = ("official", "linear")


# ------------------------------------------------------------------------------------ configuration
def _check_positive_finite(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, Real) or not 0 < value < math.inf:
        raise ParameterError(f"{name}={value!r} is not allowed: expected a finite number > 0.")
    return float(value)


@dataclass(frozen=True)
class LayerConfig:
    """NAC hyperparameters of one layer (official ``layer_kwargs``).

    ``layer``: module name (as in ``model.named_modules()``); ``threshold``: ``O`` (the slides' ``r``),
    the count at which a bin is fully covered; ``bins``: ``M`` (see the module docstring: with
    ``binning="official"`` ``M`` thresholds, ``M - 2`` bins; with ``"linear"`` ``M`` bins);
    ``alpha``: sigmoid steepness.
    """

    layer: str
    threshold: float
    bins: int
    alpha: float
    binning: str = "official"

    def __post_init__(self):
        if not isinstance(self.layer, str) or not self.layer:
            raise ParameterError(f"layer={self.layer!r} is not allowed: expected a module name (a non-empty string).")
        try:
            _check_positive_finite("threshold", self.threshold)
            check_positive_int("bins", self.bins)
            _check_positive_finite("alpha", self.alpha)
            check_choice("binning", self.binning, BINNINGS)
            if self.binning == "official" and (self.bins < 4 or self.bins % 2):
                raise ParameterError(f"bins={self.bins!r} is not allowed: expected an even integer >= 4 "
                                     "with binning='official' (M thresholds, M - 2 bins).")
        except ParameterError as err:
            raise ParameterError(f"{err} (LayerConfig of layer {self.layer!r})") from None

    @property
    def edges(self) -> Tensor:
        """Bin edges (float64), see :func:`bin_edges`."""
        return bin_edges(self.bins, self.binning)


def _cfg(layer: str, threshold: float, bins: int, alpha: float) -> LayerConfig:
    return LayerConfig(layer=layer, threshold=threshold, bins=bins, alpha=alpha)


#: Official CIFAR-10 ResNet-18 values (``configs/postprocessors/nac/resnet/nac_cifar10.yml``), (O, M, alpha).
CIFAR10_DEFAULTS: dict[str, LayerConfig] = {
    "avgpool": _cfg("avgpool", 50, 50, 100),
    "layer3": _cfg("layer3", 100, 500, 1000),
    "layer2": _cfg("layer2", 5, 50, 0.001),
    "layer1": _cfg("layer1", 100, 500, 0.001),
}

#: Official CIFAR-100 ResNet-18 values (``configs/postprocessors/nac/resnet/nac_cifar100.yml``).
CIFAR100_DEFAULTS: dict[str, LayerConfig] = {
    "avgpool": _cfg("avgpool", 50, 50, 50),
    "layer3": _cfg("layer3", 500, 1000, 10),
    "layer2": _cfg("layer2", 500, 50, 1),
    "layer1": _cfg("layer1", 5, 50, 0.005),
}

#: Official ImageNet ResNet-50 values (``configs/postprocessors/nac/resnet/nac_imagenet.yml``, whose
#: ``APS_mode: True`` says they are the starting point of the search; the README runs it for all three).
IMAGENET_DEFAULTS: dict[str, LayerConfig] = {
    "avgpool": _cfg("avgpool", 10, 50, 3000),
    "layer3": _cfg("layer3", 500, 50, 300),
    "layer2": _cfg("layer2", 50, 500, 0.01),
    "layer1": _cfg("layer1", 5000, 1000, 1),
}

#: The official search grids, ``postprocessor_sweep`` of the same three files: per official layer the
#: values of O, M and alpha; the search tries every combination over all layers jointly.
SEARCH_GRIDS: dict[str, dict[str, dict[str, tuple]]] = {
    "cifar10": {"avgpool": {"O": (10, 50), "M": (50,), "alpha": (100,)},
                "layer3": {"O": (100,), "M": (50, 500), "alpha": (1000, 5000)},
                "layer2": {"O": (5, 10), "M": (50,), "alpha": (0.001,)},
                "layer1": {"O": (5, 10, 50, 100), "M": (50, 500), "alpha": (0.001, 0.005)}},
    "cifar100": {"avgpool": {"O": (50,), "M": (50, 500), "alpha": (1, 50)},
                 "layer3": {"O": (500,), "M": (50, 500, 1000), "alpha": (10, 50, 100)},
                 "layer2": {"O": (100, 500), "M": (50, 500), "alpha": (1,)},
                 "layer1": {"O": (5, 50), "M": (50,), "alpha": (0.005,)}},
    "imagenet": {"avgpool": {"O": (10, 50, 500), "M": (50, 500), "alpha": (3000,)},
                 "layer3": {"O": (100, 500), "M": (50, 500), "alpha": (50, 100, 300)},
                 "layer2": {"O": (50, 500), "M": (500,), "alpha": (0.01,)},
                 "layer1": {"O": (5000,), "M": (500, 1000), "alpha": (0.1, 1)}},
}

#: The validation data the official search scores on (``openood/evaluation_api/datasets.py``: the
#: ``id.val`` and ``ood.val`` image lists): (ID validation, OOD validation).
OFFICIAL_SEARCH_SETS: dict[str, tuple[str, str]] = {
    "cifar10": ("CIFAR-10 validation images (val_cifar10.txt)", "TinyImageNet validation images (val_tin.txt)"),
    "cifar100": ("CIFAR-100 validation images (val_cifar100.txt)", "TinyImageNet validation images (val_tin.txt)"),
    "imagenet": ("ImageNet validation images (val_imagenet.txt)",
                 "OpenImage-O validation images (val_openimage_o.txt)"),
}

#: Class-balanced training images the official NAC-UE fits on (README: ``--valid-num 1000`` for ResNet-18 on
#: CIFAR-10/100 and ResNet-50 on ImageNet-1k, i.e. 100, 10 and 1 per class).
OFFICIAL_N_FIT = 1000

#: Our module for each official ResNet layer name, per network. ResNets: the same names. DenseNet-100
#: (no official NAC values exist for it): the output of the dense block at the resolution of the CIFAR
#: ResNet-18 stage (layer1 32x32 -> block1, layer2 16x16 -> block2, layer3 8x8 -> block3), and avgpool.
LAYER_NAMES: dict[str, dict[str, str]] = {
    **{m: {n: n for n in ("avgpool", "layer3", "layer2", "layer1")}
       for m in ("smallresnet", "smallresnet_logsoftmax", "resnet50")},
    "densenet100": {"avgpool": "avgpool", "layer3": "block3", "layer2": "block2", "layer1": "block1"},
}

_TABLES = {"mnist5k": "cifar10", "fmnist": "cifar10", "cifar10": "cifar10", "cifar100": "cifar100",
           "imagenet": "imagenet"}
_OFFICIAL = {"cifar10": CIFAR10_DEFAULTS, "cifar100": CIFAR100_DEFAULTS, "imagenet": IMAGENET_DEFAULTS}


def _layer_names(benchmark: str, model: str | None) -> tuple[str, dict[str, str]]:
    """(official table, official layer name -> ours) for ``benchmark`` and network ``model``."""
    from ashlib.assets.models import model_for

    check_choice("benchmark", benchmark, _TABLES)
    if model is not None and not isinstance(model, str):
        raise ParameterError(f"model={type(model).__name__} is not allowed: expected a model name or None "
                             "(pass the module itself as network=).")
    model = model_for(benchmark, model)
    if model not in LAYER_NAMES:
        raise ParameterError(f"model={model!r} is not allowed for NAC: the official per-layer values exist for "
                             f"ResNets only; expected one of {', '.join(repr(m) for m in LAYER_NAMES)}.")
    return _TABLES[benchmark], LAYER_NAMES[model]


def official_table(benchmark: str) -> str:
    """The official configuration a benchmark takes its NAC values from: 'cifar10' (also for the
    embedded mnist5k and fmnist), 'cifar100' or 'imagenet'."""
    return _TABLES[check_choice("benchmark", benchmark, _TABLES)]


def default_configs(benchmark: str = "mnist5k", model: str | None = None,
                    network: nn.Module | None = None) -> list[LayerConfig]:
    """Per-layer NAC hyperparameters for ``benchmark`` and network ``model`` (None: the benchmark's
    default network), layers in the official order avgpool, layer3, layer2, layer1, named as in our model.

    cifar10 / cifar100 / imagenet: the official values (:data:`CIFAR10_DEFAULTS`, :data:`CIFAR100_DEFAULTS`
    for a CIFAR ResNet-18, :data:`IMAGENET_DEFAULTS` for ResNet-50), layer names mapped by
    :data:`LAYER_NAMES`. Our CIFAR network is the DenseNet-100 of DICE/ASH, for which no official values
    exist: the ResNet-18 values are used at the stages of the same resolution, untuned
    (:func:`search_configs` tunes them as the official code tuned its own). mnist5k and fmnist (our
    small ResNet): the CIFAR-10 values, unchanged. They were not tuned on any data here (and never on OOD data). Reasons
    they transfer: same stage layout and names (BasicBlock stages ``layer1..layer4``, then ``avgpool``),
    10 classes (so ``p - u`` has the same size), similar spatial sizes (28x28 vs 32x32 input: the
    H, W sums differ by ~0.77x, far below the 5-10x steps of the official sweeps) and the same 1000-image
    fitting subset, so ``O`` keeps its meaning as a count. The widths differ (16..128 channels vs
    64..512); we have no ID-only argument for rescaling ``alpha`` by it, so we do not.

    With ``network`` (the module of ``model``), every layer must exist in it.
    """
    table, names = _layer_names(benchmark, model)
    configs = [LayerConfig(names[k], c.threshold, c.bins, c.alpha, c.binning) for k, c in _OFFICIAL[table].items()]
    if network is not None:
        for c in configs:
            get_layer(network, c.layer)
    return configs


def search_grid(benchmark: str = "mnist5k", model: str | None = None) -> dict[str, dict[str, tuple]]:
    """The official search grid (:data:`SEARCH_GRIDS`) for ``benchmark`` and ``model``, keyed by our layer
    names (as :func:`default_configs`; mnist5k and fmnist take CIFAR-10's)."""
    table, names = _layer_names(benchmark, model)
    return {names[k]: dict(v) for k, v in SEARCH_GRIDS[table].items()}


# ------------------------------------------------------------------------------------------- NAC-ME
#: Official NAC-ME setup (``domainbed/config.yaml``, ``coverage_kwargs``): ``build_kwargs`` O = 500, M = 50,
#: ``step_kwargs`` sig_alpha = 1e-1 with method ``sigmoid(o*g_kl[f])`` (``[f]``: only the correctly
#: classified samples, ``benchmark_notes/utils.py`` ``get_state_func``); one layer,
#: ``featurizer.network.avgpool`` for ResNets (``benchmark_notes/instr_state.py`` ``get_intr_name``);
#: thresholds ``linspace(0, 1, M)`` (``benchmark_notes/coverage.py`` ``Estimator``).
NAC_ME_LAYER, NAC_ME_O, NAC_ME_M, NAC_ME_ALPHA = "avgpool", 500, 50, 0.1


def nac_me_configs(layer: str = NAC_ME_LAYER) -> list[LayerConfig]:
    """The official NAC-ME configuration: ``layer`` only, ``O = 500``, ``alpha = 0.1`` and the official
    ``M = 50`` linear thresholds ``linspace(0, 1, 50)``, i.e. ``M - 1 = 49`` equal bins (``binning="linear"``,
    ``bins=49``: the same edges). Fit it with :func:`fit_nac_me`."""
    return [LayerConfig(layer, threshold=NAC_ME_O, bins=NAC_ME_M - 1, alpha=NAC_ME_ALPHA, binning="linear")]


def _check_configs(configs) -> list[LayerConfig]:
    if isinstance(configs, LayerConfig):
        configs = [configs]
    elif isinstance(configs, Mapping):
        configs = list(configs.values())
    configs = list(configs)
    if not configs or not all(isinstance(c, LayerConfig) for c in configs):
        raise ParameterError(f"configs={configs!r} is not allowed: expected a non-empty sequence of LayerConfig.")
    names = [c.layer for c in configs]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ParameterError(f"configs names layers {dup} more than once: expected one LayerConfig per layer.")
    return configs


# -------------------------------------------------------------------------------------------- bins
def bin_edges(bins: int, binning: str = "official") -> Tensor:
    """Bin edges on [0, 1] (float64, increasing); bin ``j`` is ``[edges[j], edges[j+1])``.

    ``"official"``: the official NAC-UE thresholds for ``M = bins`` without the unreachable last
    interval [1.01, 1.2): ``M - 1`` edges from 0 to 1.01, dense near 0.5 (module docstring); equal to
    the official numpy values up to rounding (<= 3e-16), with 0, 0.5 and 1.01 exact.
    ``"linear"``: ``bins + 1`` equal steps from 0 to 1.
    """
    check_choice("binning", binning, BINNINGS)
    check_positive_int("bins", bins)
    if binning == "linear":
        return torch.linspace(0.0, 1.0, bins + 1, dtype=torch.float64)
    if bins < 4 or bins % 2:
        raise ParameterError(f"bins={bins!r} is not allowed: expected an even integer >= 4 with binning='official'.")
    k = bins // 2
    t = torch.linspace(1.0, math.sqrt(1000.0), k, dtype=torch.float64).log() / math.log(1000.0)
    t[0], t[-1] = 0.0, 0.5  # log(1) and log(sqrt(1000))/log(1000), exact
    edges = torch.cat([t[:-1], 1.0 - t.flip(0)])
    edges[-1] = 1.01  # official: the top threshold is raised so that a state of 1.0 is counted
    return edges


def bin_index(states: Tensor, edges: Tensor) -> Tensor:
    """Bin of every state (int64, same shape): ``j`` with ``edges[j] <= s < edges[j+1]``.

    Compared in float64 like the official code (float64 thresholds). States at or above the last edge
    go to the last bin (closing it: a "linear" state of 1.0 counts), below the first to bin 0; sigmoid
    states in [0, 1] never need the latter.
    """
    idx = torch.bucketize(states.detach().double(), edges.to(states.device), right=True) - 1
    return idx.clamp_(0, len(edges) - 2)


# ---------------------------------------------------------------------------------- neuron states
def _pool(t: Tensor, layer: str) -> Tensor:
    """Sum over every dimension after the channel one (H, W for conv maps): ``(N, C, ...) -> (N, C)``."""
    if t.ndim < 2:
        raise ParameterError(f"layer={layer!r} outputs shape {tuple(t.shape)}: expected (N, C) or (N, C, ...).")
    return t if t.ndim == 2 else t.sum(dim=tuple(range(2, t.ndim)))


def _n_items(data) -> int:
    n = len(data)
    if n == 0:
        raise ParameterError("x is empty: expected at least one image.")
    return n


def kl_gradients(model: nn.Module, x: Tensor | Dataset, layers: Sequence[str], batch_size: int = 256,
                 device: str = "cpu", desc: str = "NAC states", num_workers: int = 0
                 ) -> dict[str, tuple[Tensor, Tensor]]:
    """Per layer ``(o, g)``, both ``(N, C)`` on the CPU: the layer output and the gradient of
    ``sum_c -(1/C) log softmax(logits)_c`` (KL(u || p) up to a constant) with respect to it, each summed
    over the spatial dimensions of conv outputs (official NAC).

    Runs the model in eval mode (BatchNorm statistics fixed, so batching never mixes samples) and
    restores every submodule's train/eval mode afterwards; the model is moved to ``device`` (as in
    :func:`ashlib.assets.features.activations`). Gradients come from :func:`torch.autograd.grad`, so no
    parameter ever gets a ``.grad``; works inside ``torch.no_grad()`` and ``torch.inference_mode()``.
    A layer whose output a later in-place operation modifies (``ReLU(inplace=True)``) is refused.
    """
    return _kl_pass(model, x, layers, batch_size, device, desc, num_workers)[0]


def _kl_pass(model: nn.Module, x, layers: Sequence[str], batch_size: int, device: str, desc: str,
             num_workers: int) -> tuple[dict[str, tuple[Tensor, Tensor]], Tensor]:
    """:func:`kl_gradients` and the predicted class of every image (int64, on the CPU), from one pass."""
    check_positive_int("batch_size", batch_size)
    layers = list(layers)
    if not layers or len(set(layers)) != len(layers):
        raise ParameterError(f"layers={layers!r} is not allowed: expected distinct module names.")
    modules = [get_layer(model, layer) for layer in layers]
    n = _n_items(x)
    captured: dict[str, tuple[Tensor, int]] = {}

    def hook_for(layer: str):
        def hook(_module, _inputs, out):
            if not isinstance(out, Tensor):
                raise ParameterError(f"layer={layer!r} returns {type(out).__name__}: expected a tensor output.")
            if layer in captured:
                raise ParameterError(f"layer={layer!r} runs more than once per forward pass: expected a module "
                                     "that runs once (give each use its own module).")
            captured[layer] = (out, out._version)
        return hook

    parts: dict[str, tuple[list[Tensor], list[Tensor]]] = {layer: ([], []) for layer in layers}
    predictions: list[Tensor] = []
    modes = [(m, m.training) for m in model.modules()]
    handles = [m.register_forward_hook(hook_for(layer)) for m, layer in zip(modules, layers)]
    model.eval().to(device)
    try:
        with torch.inference_mode(False), torch.enable_grad():
            for xb in tqdm(batches(x, batch_size, num_workers), total=-(-n // batch_size), desc=desc,
                           unit="batch", leave=False):
                captured.clear()
                # a fresh leaf that requires grad: every hooked output is in the graph even when the
                # parameters are frozen (clone: inference tensors cannot enter autograd)
                xb = xb.to(device).detach().clone().requires_grad_(True)
                logits = model(xb)
                if logits.ndim != 2 or logits.shape[1] < 2:
                    raise ParameterError(f"model(x) has shape {tuple(logits.shape)}: expected logits (N, C), C >= 2.")
                missing = [layer for layer in layers if layer not in captured]
                if missing:
                    raise ParameterError(f"layers {missing} did not run in the forward pass: expected modules "
                                         "that model(x) calls.")
                for layer, (out, version) in captured.items():
                    if out._version != version:
                        raise ParameterError(f"layer={layer!r}: its output is modified in place later in the "
                                             "forward pass (e.g. ReLU(inplace=True)); expected an unmodified output.")
                predictions.append(logits.detach().argmax(dim=1).cpu())
                loss = -torch.log_softmax(logits, dim=1).mean(dim=1).sum()
                outs = [captured[layer][0] for layer in layers]
                grads = torch.autograd.grad(loss, outs, allow_unused=True)
                for layer, o, g in zip(layers, outs, grads):
                    if g is None:
                        raise ParameterError(f"layer={layer!r} does not influence the logits: expected a layer "
                                             "on the path to the output.")
                    parts[layer][0].append(_pool(o.detach(), layer).cpu())
                    parts[layer][1].append(_pool(g, layer).cpu())
                del logits, loss, outs, grads
                captured.clear()
    finally:
        for h in handles:
            h.remove()
        for m, training in modes:
            m.training = training
    return {layer: (torch.cat(os), torch.cat(gs)) for layer, (os, gs) in parts.items()}, torch.cat(predictions)


def states_from(o: Tensor, g: Tensor, alpha: float) -> Tensor:
    """Neuron states ``sigmoid(alpha * (o * g))`` from spatially summed outputs and gradients."""
    alpha = _check_positive_finite("alpha", alpha)
    return torch.sigmoid(alpha * (o * g))


def neuron_states(model: nn.Module, x: Tensor | Dataset, configs, batch_size: int = 256,
                  device: str = "cpu", desc: str = "NAC states", num_workers: int = 0) -> dict[str, Tensor]:
    """NAC states ``(N, C)`` in [0, 1] of every configured layer (``configs``: LayerConfig, a sequence
    of them, or a dict of them), with each layer's ``alpha``. See :func:`kl_gradients`."""
    configs = _check_configs(configs)
    parts = kl_gradients(model, x, [c.layer for c in configs], batch_size, device, desc, num_workers)
    return {c.layer: states_from(*parts[c.layer], c.alpha) for c in configs}


# ------------------------------------------------------------------------------------------ fitting
def class_balanced_subset(labels, n: int, seed: int = 0) -> Tensor:
    """Sorted indices of ``n // C`` random samples of each of the ``C`` classes in ``labels``.

    As the official ``TrainSubset(valid_num=n, balanced=True)``: every class gets the same number,
    ``min(n // C, size of the smallest class)``; the remainder of ``n`` is not used. Seeded.
    """
    labels = torch.as_tensor(labels)
    if labels.ndim != 1 or labels.is_floating_point() or labels.is_complex():
        raise ParameterError(f"labels has shape {tuple(labels.shape)} and dtype {labels.dtype}: expected 1-D integer labels.")
    check_positive_int("n", n)
    check_seed("seed", seed)
    classes, sizes = torch.unique(labels, return_counts=True)
    if n < len(classes):
        raise ParameterError(f"n={n!r} is not allowed: expected at least one sample per class ({len(classes)} classes).")
    per_class = min(n // len(classes), int(sizes.min()))
    gen = torch.Generator().manual_seed(seed)
    picked = []
    for c in classes:
        idx = (labels == c).nonzero().flatten()
        picked.append(idx[torch.randperm(len(idx), generator=gen)[:per_class]])
    return torch.cat(picked).sort().values


@dataclass(frozen=True, eq=False)
class LayerFit:
    """Histogram of one layer: ``counts[c, b]`` = training states of neuron ``c`` in bin ``b`` (int64)."""

    config: LayerConfig
    edges: Tensor
    counts: Tensor

    @property
    def layer(self) -> str:
        return self.config.layer

    @property
    def table(self) -> Tensor:
        """Coverage of every (neuron, bin): ``min(count / O, 1)``, float64 ``(C, B)``."""
        return (self.counts.double() / self.config.threshold).clamp(max=1.0)


@dataclass(frozen=True, eq=False)
class NACFit:
    """Fitted histograms of every layer, and the indices of the training samples they were built from."""

    layers: tuple[LayerFit, ...]
    indices: Tensor | None = None

    @property
    def configs(self) -> list[LayerConfig]:
        return [f.config for f in self.layers]

    def __getitem__(self, layer: str) -> LayerFit:
        check_choice("layer", layer, [f.layer for f in self.layers])
        return next(f for f in self.layers if f.layer == layer)


def _check_states(states, name: str = "states", neurons: int | None = None) -> Tensor:
    if not isinstance(states, Tensor) or states.ndim != 2:
        shape = tuple(states.shape) if isinstance(states, Tensor) else type(states).__name__
        raise ParameterError(f"{name} is {shape}: expected a 2-D tensor (N, C) of neuron states.")
    if neurons is not None and states.shape[1] != neurons:
        raise ParameterError(f"{name} has {states.shape[1]} neurons: expected {neurons} as in the fit.")
    if states.is_floating_point() and not torch.isfinite(states).all():
        raise ParameterError(f"{name} contains NaN or inf: expected sigmoid states in [0, 1].")
    return states.detach()


def fit_layer(states: Tensor, config: LayerConfig) -> LayerFit:
    """Per-neuron histogram of ID training ``states`` ``(N, C)`` over ``config``'s bins."""
    if not isinstance(config, LayerConfig):
        raise ParameterError(f"config must be a LayerConfig, got {type(config).__name__}.")
    states = _check_states(states)
    edges = config.edges
    n_bins = len(edges) - 1
    neurons = states.shape[1]
    flat = bin_index(states, edges).cpu() + torch.arange(neurons) * n_bins
    counts = torch.bincount(flat.flatten(), minlength=neurons * n_bins).view(neurons, n_bins)
    return LayerFit(config=config, edges=edges, counts=counts)


def take(x: Tensor | Dataset, indices) -> Tensor | Dataset:
    """The images ``x[indices]`` of a tensor, or a :class:`~torch.utils.data.Subset` of a Dataset."""
    indices = torch.as_tensor(indices, dtype=torch.long)
    return x[indices] if isinstance(x, Tensor) else Subset(x, indices.tolist())


def fit_states(states: Mapping[str, Tensor], configs, indices: Tensor | None = None) -> NACFit:
    """A :class:`NACFit` from the ID training states ``{layer: (N, C)}`` of every configured layer
    (:func:`neuron_states`); ``indices``: which training images they are (kept in the fit)."""
    configs = _check_configs(configs)
    missing = [c.layer for c in configs if c.layer not in states]
    if missing:
        raise ParameterError(f"states lacks layers {missing}: expected states of every configured layer.")
    return NACFit(layers=tuple(fit_layer(states[c.layer], c) for c in configs), indices=indices)


def fit_nac(model: nn.Module, x_train: Tensor | Dataset, y_train: Tensor, configs, n_fit: int | None = 1000,
            seed: int = 0, batch_size: int = 256, device: str = "cpu", num_workers: int = 0,
            correct_only: bool = False) -> NACFit:
    """Fit NAC on ID training data: states of a class-balanced subset of ``n_fit`` images
    (:func:`class_balanced_subset`; ``None``: every training image), one histogram per layer.

    ``correct_only``: histogram only the images the model classifies correctly (``argmax`` of its
    logits equals the label), as the official NAC-ME code does (``sigmoid(o*g_kl[f])``); the fit's
    ``indices`` are then those images. If none is correct, every count is 0.
    """
    configs = _check_configs(configs)
    if not isinstance(correct_only, bool):
        raise ParameterError(f"correct_only={correct_only!r} is not allowed: expected True or False.")
    y_train = torch.as_tensor(y_train)
    if len(y_train) != _n_items(x_train):
        raise ParameterError(f"y_train has {len(y_train)} labels: expected one per image ({len(x_train)}).")
    idx = torch.arange(len(x_train)) if n_fit is None else class_balanced_subset(y_train, n_fit, seed)
    x_fit = x_train if n_fit is None else take(x_train, idx)
    parts, predicted = _kl_pass(model, x_fit, [c.layer for c in configs], batch_size, device, "NAC fit", num_workers)
    states = {c.layer: states_from(*parts[c.layer], c.alpha) for c in configs}
    if correct_only:
        keep = predicted == y_train[idx].cpu()
        idx, states = idx[keep], {layer: s[keep] for layer, s in states.items()}
    return fit_states(states, configs, idx)


def fit_nac_me(model: nn.Module, x_train: Tensor | Dataset, y_train: Tensor, configs=None, batch_size: int = 256,
               device: str = "cpu", num_workers: int = 0) -> NACFit:
    """The official NAC-ME fitting recipe: :func:`nac_me_configs` (unless ``configs`` is given), histograms
    over *every* training image the model classifies correctly (``fit_nac(..., n_fit=None,
    correct_only=True)``). Score it with :func:`nac_me`."""
    return fit_nac(model, x_train, y_train, nac_me_configs() if configs is None else configs, n_fit=None,
                   batch_size=batch_size, device=device, num_workers=num_workers, correct_only=True)


# -------------------------------------------------------------------------------------- scoring
def coverage(fit: LayerFit, states: Tensor) -> Tensor:
    """Per sample, the mean over neurons of ``min(count / O, 1)`` of the bin each state falls in ``(N,)``."""
    if not isinstance(fit, LayerFit):
        raise ParameterError(f"fit must be a LayerFit, got {type(fit).__name__}.")
    states = _check_states(states, f"states of {fit.layer!r}", fit.counts.shape[0])
    idx = bin_index(states, fit.edges).cpu()
    table = fit.table
    covered = table[torch.arange(table.shape[0]), idx]  # (N, C): row c, column idx[n, c]
    dtype = states.dtype if states.is_floating_point() else torch.float32
    return covered.mean(dim=1).to(device=states.device, dtype=dtype)


def nac_score(fit: NACFit, states: Mapping[str, Tensor]) -> Tensor:
    """NAC-UE: per-layer :func:`coverage` averaged over the fitted layers; higher = more ID."""
    if not isinstance(fit, NACFit):
        raise ParameterError(f"fit must be a NACFit from fit_nac, got {type(fit).__name__}.")
    missing = [f.layer for f in fit.layers if f.layer not in states]
    if missing:
        raise ParameterError(f"states lacks layers {missing}: expected states of every fitted layer.")
    scores = [coverage(f, states[f.layer]) for f in fit.layers]
    return torch.stack(scores).mean(dim=0)


def nac_ue(fit: NACFit, model: nn.Module, x: Tensor | Dataset, batch_size: int = 256, device: str = "cpu",
           num_workers: int = 0) -> Tensor:
    """NAC-UE scores of the images ``x`` ``(N,)`` (the fitted ``model``); higher = more ID."""
    if not isinstance(fit, NACFit):
        raise ParameterError(f"fit must be a NACFit from fit_nac, got {type(fit).__name__}.")
    states = neuron_states(model, x, fit.configs, batch_size, device, "NAC-UE", num_workers)
    return nac_score(fit, states)


def layer_nac_me(fit: LayerFit) -> float:
    """NAC-ME of one layer: ``1/C sum_c int_0^1 Phi_c(xi) dxi`` with ``Phi_c`` piecewise constant on
    the bins, i.e. ``1/C sum_c sum_b width_b * min(count_cb / O, 1)``, widths of the bins clipped to [0, 1]."""
    if not isinstance(fit, LayerFit):
        raise ParameterError(f"fit must be a LayerFit, got {type(fit).__name__}.")
    widths = fit.edges.clamp(0.0, 1.0).diff()
    return float((fit.table @ widths).mean())


def nac_me(fit: NACFit) -> float:
    """NAC-ME, the model-evaluation score (slides: ``G(X, theta) = 1/N sum_i int_0^1 Phi_X^i(xi; r) dxi``;
    higher = larger coverage area, expected to generalise better), from ID training data only.

    Computed from a :class:`NACFit` (``fit_nac(model, x_train, y_train, configs)``): per layer
    :func:`layer_nac_me`, the exact integral over [0, 1] of the histogram estimate of ``Phi``, averaged
    over layers; a number in [0, 1]. No test data, labels of test data or OOD data enter it.

    Official code (``domainbed/benchmark_notes/coverage.py``, ``Estimator.get_score``): ``linspace(0, 1,
    M)`` thresholds (``M - 1`` bins of width ``1/(M - 1)``, intervals ``[t_j, t_{j+1})``),
    ``sum_b min(count_b / O, 1) / M`` averaged over the neurons of one layer, histograms over *all*
    training-domain samples that the model classifies correctly. :func:`nac_me_configs` has the same edges
    (``binning="linear"``, ``bins = M - 1``) and :func:`fit_nac_me` the same samples; the integral here
    weights each bin by its width ``1/(M - 1)``, so the official number is this one times ``(M - 1)/M``
    (49/50: the same ranking of models), apart from a state of exactly 1.0, which the official
    half-open last bin loses and ours counts.
    """
    if not isinstance(fit, NACFit):
        raise ParameterError(f"fit must be a NACFit from fit_nac, got {type(fit).__name__}.")
    return sum(layer_nac_me(f) for f in fit.layers) / len(fit.layers)


# --------------------------------------------------------------------------- the official search
@dataclass(frozen=True, eq=False)
class ConfigSearch:
    """Result of :func:`search_configs`: the chosen per-layer configs, their validation AUROC (%), and
    ``results``, one row per combination in the order tried (per layer ``<layer> O``, ``<layer> M``,
    ``<layer> alpha``, then ``AUROC``)."""

    configs: list[LayerConfig]
    auroc: float
    results: "pd.DataFrame"  # noqa: F821  (pandas, imported when searching)

    def auroc_of(self, configs) -> float:
        """The validation AUROC (%) of ``configs`` (one per searched layer, e.g. the official values);
        NaN if that combination is not in the grid."""
        configs = _check_configs(configs)
        want = {f"{c.layer} {key}": value for c in configs
                for key, value in (("O", c.threshold), ("M", c.bins), ("alpha", c.alpha))}
        if set(want) != set(self.results.columns) - {"AUROC"}:
            return math.nan
        hits = self.results.AUROC[(self.results[list(want)] == list(want.values())).all(axis=1)]
        return float(hits.iloc[0]) if len(hits) else math.nan


def _check_grid(grid) -> dict[str, dict[str, tuple]]:
    if not isinstance(grid, Mapping) or not grid:
        raise ParameterError(f"grid={grid!r} is not allowed: expected {{layer: {{'O': [...], 'M': [...], "
                             "'alpha': [...]}}}} with at least one layer.")
    out = {}
    for layer, values in grid.items():
        if not isinstance(values, Mapping) or set(values) != {"O", "M", "alpha"}:
            raise ParameterError(f"grid[{layer!r}]={values!r} is not allowed: expected the keys 'O', 'M', 'alpha'.")
        out[layer] = {}
        for key in ("O", "M", "alpha"):
            v = values[key]
            if isinstance(v, (str, bytes)) or not isinstance(v, Sequence) or not v:
                raise ParameterError(f"grid[{layer!r}][{key!r}]={v!r} is not allowed: expected a non-empty list.")
            out[layer][key] = tuple(v)
        for o, m, a in itertools.product(*out[layer].values()):
            LayerConfig(layer, o, m, a)  # every value checked, by name
    return out


def search_configs(model: nn.Module, x_train: Tensor | Dataset, y_train: Tensor, x_val_id: Tensor | Dataset,
                   x_val_ood: Tensor | Dataset, grid, n_fit: int | None = OFFICIAL_N_FIT, seed: int = 0,
                   batch_size: int = 256, device: str = "cpu", num_workers: int = 0) -> ConfigSearch:
    """The official automatic parameter search (``aps`` mode, ``evaluator.py`` ``hyperparam_search``):
    every combination of the per-layer ``grid`` values (``{layer: {"O": [...], "M": [...], "alpha":
    [...]}}``, e.g. :func:`search_grid`), jointly over the layers, each fitted on the same class-balanced
    ``n_fit`` training images as :func:`fit_nac` and scored by the AUROC (ID positive) of NAC-UE on
    ``x_val_id`` against ``x_val_ood``; the first combination with the highest AUROC wins (the official
    code keeps the first strict maximum, trying combinations with the first layer's O varying fastest,
    then its M, its alpha, then the next layer's: the same order here).

    Fair only if the validation sets are neither the test images nor the test OOD sets (the official
    ones: :data:`OFFICIAL_SEARCH_SETS`). Each image passes through the network once; the combinations
    reuse its outputs and gradients.
    """
    import pandas as pd

    from ashlib.stats.metrics import auroc

    grid = _check_grid(grid)
    layers = list(grid)
    y_train = torch.as_tensor(y_train)
    if len(y_train) != _n_items(x_train):
        raise ParameterError(f"y_train has {len(y_train)} labels: expected one per image ({len(x_train)}).")
    _n_items(x_val_id), _n_items(x_val_ood)
    x_fit = x_train if n_fit is None else take(x_train, class_balanced_subset(y_train, n_fit, seed))
    parts = {name: kl_gradients(model, x, layers, batch_size, device, f"NAC search ({name})", num_workers)
             for name, x in (("fit", x_fit), ("ID", x_val_id), ("OOD", x_val_ood))}
    options: dict[str, list[tuple[LayerConfig, Tensor, Tensor]]] = {}
    for layer in layers:  # per layer, every (O, M, alpha) in the official order: O fastest, then M, alpha
        by_key = {}
        for alpha in grid[layer]["alpha"]:
            states = {name: states_from(*p[layer], alpha) for name, p in parts.items()}
            for m in grid[layer]["M"]:
                counts = fit_layer(states["fit"], LayerConfig(layer, 1, m, alpha)).counts
                for o in grid[layer]["O"]:
                    cfg = LayerConfig(layer, o, m, alpha)
                    fit = LayerFit(cfg, cfg.edges, counts)
                    by_key[(o, m, alpha)] = (cfg, coverage(fit, states["ID"]), coverage(fit, states["OOD"]))
        options[layer] = [by_key[(o, m, a)] for a in grid[layer]["alpha"] for m in grid[layer]["M"]
                          for o in grid[layer]["O"]]
    rows, best, best_auc = [], None, -math.inf
    # itertools.product varies its last argument fastest: reversed layers, so the first layer varies fastest
    for combo in itertools.product(*(options[layer] for layer in reversed(layers))):
        combo = combo[::-1]
        score_id = torch.stack([c[1] for c in combo]).mean(dim=0)
        score_ood = torch.stack([c[2] for c in combo]).mean(dim=0)
        auc = 100 * auroc(score_id, score_ood)
        row = {}
        for cfg, _, _ in combo:
            row.update({f"{cfg.layer} O": cfg.threshold, f"{cfg.layer} M": cfg.bins, f"{cfg.layer} alpha": cfg.alpha})
        rows.append({**row, "AUROC": auc})
        if auc > best_auc:
            best, best_auc = [c[0] for c in combo], auc
    return ConfigSearch(configs=best, auroc=best_auc, results=pd.DataFrame(rows))


# ----------------------------------------------------------------------------- registry entry

from ashlib.methods.detector import Score  # noqa: E402  (the entries sit beside the functions they register)


def options(configs, n_fit: int | None = OFFICIAL_N_FIT, seed: int = 0, layers=None) -> dict:
    """NAC-UE's options for an :class:`ashlib.evaluation.experiments.Method` (``score="nac_ue"``): the layer
    configurations, the class-balanced fitting subset (``n_fit`` images, None: all, by ``seed``) and
    the ``layers`` whose coverage is averaged (None: every configured one; a subset reuses the fit)."""
    configs = tuple(_check_configs(configs))
    if layers is not None:
        for layer in layers:
            check_choice("layers", layer, [c.layer for c in configs])
        layers = tuple(layers)
    return dict(configs=configs, n_fit=n_fit, seed=seed, layers=layers)


def set_states(ctx, configs, set_name: str) -> dict[str, Tensor]:
    """The neuron states of every image of one of ``ctx``'s sets, kept in the context."""
    configs = tuple(configs)
    return ctx.memoised(("nac states", configs, set_name), lambda: neuron_states(
        ctx.model, ctx.sets[set_name], configs, ctx.batch_size, ctx.device, num_workers=ctx.num_workers))


def fitting_states(ctx, method) -> tuple[dict[str, Tensor], Tensor]:
    """(states, indices) of NAC-UE's fitting subset for ``method`` (``score="nac_ue"``): a class-balanced
    subset of ``n_fit`` ID training images (:func:`class_balanced_subset`; None: all), the states its
    histograms are built from. Kept in the context, so checking them later costs no second pass."""
    configs, n_fit, seed = method.option("configs"), method.option("n_fit", OFFICIAL_N_FIT), method.option("seed", 0)
    if not configs:
        raise ParameterError("score='nac_ue' needs options=nac.options(configs, ...): no configs given.")
    x_train = ctx.sets[ctx.train_set]
    idx = torch.arange(_n_items(x_train)) if n_fit is None else class_balanced_subset(ctx.y_train, n_fit, seed)
    states = ctx.memoised(("nac fitting states", tuple(configs), n_fit, seed), lambda: neuron_states(
        ctx.model, x_train if n_fit is None else take(x_train, idx), configs, ctx.batch_size, ctx.device,
        "NAC fit", ctx.num_workers))
    return states, idx


def _fit_entry(ctx, method) -> NACFit:
    """Histograms of the fitting subset's states (:func:`fitting_states`)."""
    states, idx = fitting_states(ctx, method)
    return fit_states(states, method.option("configs"), idx)


def _score_entry(ctx, method, set_name: str, logits: Tensor, fitted: NACFit) -> Tensor:
    states = set_states(ctx, fitted.configs, set_name)
    layers = method.option("layers") or [f.layer for f in fitted.layers]
    return torch.stack([coverage(fitted[layer], states[layer]) for layer in layers]).mean(0)


#: NAC-UE as an :mod:`ashlib.methods.registry` entry (options: :func:`options`).
ENTRIES = (Score("nac_ue", "NAC-UE", _score_entry, "Liu et al., Neuron Activation Coverage, ICLR 2024",
                 fit=_fit_entry, shapeable=False, family="NAC", score_only=("layers",)),)
