"""Models: the small ResNet-like CNN of the embedded benchmark and the paper's networks as sequentials.

Every model is an :class:`torch.nn.Sequential` whose top-level children run in order, starting with
``normalize`` (inputs are images in [0, 1]; each model standardises them with its training mean and
std) and ending with ``avgpool, flatten, fc`` (MobileNetV2: ``avgpool, flatten, dropout, fc``).
That one convention lets :mod:`ashlib.assets.features` cache the output of any stage and replay only the
rest of the network, and lets :mod:`ashlib.assets.placement` hook any named module.

=================  =========================================================================  =======
name               top-level children                                                           feature
=================  =========================================================================  =======
``smallresnet``    normalize, stem, layer1..layer4, [head,] avgpool, flatten, fc                8 * width
                   (``expansion`` > 0: ``head``, a 1x1 conv, BN, ReLU to that many units)      or expansion
``densenet100``    normalize, stem, block1, trans1, block2, trans2, block3, head, avgpool,      342
                   flatten, fc (DenseNet-BC-100, growth 12: the paper's "DenseNet-101")
``resnet50``       normalize, stem, layer1..layer4, avgpool, flatten, fc (torchvision layout)   2048
``mobilenet_v2``   normalize, stem, layer1..layer7, head, avgpool, flatten, dropout, fc         1280
``smallvit``       normalize, embed, block1..block4, norm, fc (a small vision transformer; its   width
                   feature is the final LayerNorm's output for the class token, ``norm``)
=================  =========================================================================  =======

``smallresnet_logsoftmax`` (MiSP thesis, :mod:`ashlib.methods.misp`) is ``smallresnet`` with the ReLU after
each residual sum (``layer1.relu`` .. ``layer4.relu``) replaced by ``nn.LogSoftmax(dim=1)``, a
log-softmax over the channels at every position; same children, keys and feature size.

``smallvit`` (:func:`small_vit`, chapter *ASH beyond CNNs*) is a pre-norm vision transformer whose
last block computes the class token's row only (the only row its head reads), so that token's MLP
hidden units are one placement, ``block4.mlp.act`` (GELU, shape ``(N, mlp_dim)``).

No module works in place (every ReLU has ``inplace=False``), so a forward hook always sees the
tensor the module produced, never one a later layer overwrote.

:func:`block_merge_layers` names the "before the last ReLU of each block" placements of the paper's
Appendix A for each architecture (see its docstring for the choice made for DenseNet and MobileNetV2,
which have no "residual sum followed by a ReLU"). :func:`pretrained_model` returns the paper's networks
with their published weights: it builds the network and loads the file that :func:`ashlib.assets.fetch.weights_path`
found and verified (this module downloads and checks nothing). :func:`model_for` says which networks each
benchmark is evaluated with.

Training (:func:`train`, :func:`load_or_train`) takes a :class:`TrainRecipe`; its ``entropy_weight``
(lambda) adds the MiSP thesis's per-pixel entropy loss over the log-softmax layers
(:func:`entropy_loss`), for ``smallresnet_logsoftmax``.
"""
from __future__ import annotations

import hashlib
import inspect
import json
import math
import re
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from ashlib.assets import cache as ashcache
from ashlib import cache_dir
from ashlib._checks import ParameterError, check_choice, check_positive_int, check_range
from ashlib.assets.cache import tensor_digest
from ashlib.assets.data import BENCHMARKS
from ashlib.assets.fetch import WeightsNotFoundError, weights_path

__all__ = [
    "MODELS", "PRETRAINED", "Normalize", "BasicBlock", "small_resnet", "densenet100", "resnet50",
    "mobilenet_v2", "build_model", "block_merge_layers", "feature_dim", "pretrained_model",
    "WeightsNotFoundError", "densenet_from_official", "densenet_to_official", "torchvision_to_sequential",
    "TrainRecipe", "train", "load_or_train", "penultimate_units", "DEFAULT_EXPANSION", "EXPANDABLE",
    "default_expansion", "load_or_train_many", "random_shift",
    "TRAINABLE", "small_resnet_logsoftmax", "logsoftmax_layers", "pixel_entropy", "entropy_loss",
    "training_loss", "BENCHMARK_MODELS", "model_for", "small_vit", "PatchEmbedding", "EncoderBlock",
    "OPTIMIZERS",
]

MODELS = ("smallresnet", "densenet100", "resnet50", "mobilenet_v2", "smallresnet_logsoftmax", "smallvit")
PRETRAINED = ("densenet100", "resnet50", "mobilenet_v2")
TRAINABLE = ("smallresnet", "smallresnet_logsoftmax", "smallvit")
OPTIMIZERS = ("sgd", "adamw")
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081
#: The CIFAR statistics DICE and ASH normalise with (their test transform; the DenseNet has none inside).
CIFAR_MEAN, CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
#: The networks each benchmark is evaluated with (the first is the default); paper Table 1.
BENCHMARK_MODELS = {"mnist5k": ("smallresnet", "smallresnet_logsoftmax"),
                    "fmnist": ("smallresnet", "smallresnet_logsoftmax"),
                    "cifar10": ("densenet100",), "cifar100": ("densenet100",),
                    "imagenet": ("resnet50", "mobilenet_v2")}


def model_for(benchmark: str, model: str | None) -> str:
    """``model``, checked against the benchmark's networks; None picks the benchmark's default."""
    check_choice("benchmark", benchmark, BENCHMARKS)
    allowed = BENCHMARK_MODELS[benchmark]
    if model is None:
        return allowed[0]
    check_choice("model", model, MODELS)
    if model not in allowed:
        raise ParameterError(f"model={model!r} is not allowed for benchmark={benchmark!r}: expected one of "
                             + ", ".join(repr(m) for m in allowed) + " (or None for the default).")
    return model


class Normalize(nn.Module):
    """Standardise inputs inside the network, so data stay in [0, 1] everywhere else.

    ``mean``/``std`` are numbers (every channel) or one value per channel.
    """

    def __init__(self, mean, std):
        super().__init__()
        self.register_buffer("mean", self._shape(mean))
        self.register_buffer("std", self._shape(std))

    @staticmethod
    def _shape(value) -> Tensor:
        t = torch.as_tensor(value, dtype=torch.float32).clone()
        return t.reshape(-1, 1, 1) if t.ndim == 1 else t

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.mean) / self.std


# ------------------------------------------------------------------------------------ small ResNet


class BasicBlock(nn.Module):
    """ResNet basic block; ``merge`` (an identity) marks the sum before the block's last ReLU."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))
        self.merge = nn.Identity()
        self.relu = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        out = self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x)))))
        return self.relu(self.merge(out + self.shortcut(x)))


def small_resnet(num_classes: int = 10, width: int = 16, in_channels: int = 1, expansion: int = 0) -> nn.Sequential:
    """ResNet-like CNN for 28x28 images: four stages of widths w, 2w, 4w, 8w; feature size 8w.

    ``expansion`` > 0 adds ``head`` before the pool: a 1x1 convolution from 8w to ``expansion`` channels,
    BatchNorm and ReLU, as the last layer of MobileNetV2 (320 to 1,280 channels; ``head`` in
    :func:`mobilenet_v2`), so the penultimate feature has ``expansion`` ReLU units, the range of the
    paper's networks (342 to 2,048) for the chapter *When does ASH help?*. 0: no head (8w units)."""
    check_positive_int("width", width)
    if isinstance(expansion, bool) or not isinstance(expansion, int) or expansion < 0:
        raise ParameterError(f"expansion={expansion!r} is not allowed: expected 0 (no head) or a positive integer "
                             "(the penultimate units of a 1x1 expansion head).")
    w = width
    layers = OrderedDict(
        normalize=Normalize(MNIST_MEAN, MNIST_STD),
        stem=nn.Sequential(nn.Conv2d(in_channels, w, 3, 1, 1, bias=False), nn.BatchNorm2d(w), nn.ReLU()),
        layer1=BasicBlock(w, w, 1),
        layer2=BasicBlock(w, 2 * w, 2),
        layer3=BasicBlock(2 * w, 4 * w, 2),
        layer4=BasicBlock(4 * w, 8 * w, 2),
    )
    if expansion:
        layers["head"] = nn.Sequential(nn.Conv2d(8 * w, expansion, 1, bias=False), nn.BatchNorm2d(expansion), nn.ReLU())
    layers.update(avgpool=nn.AdaptiveAvgPool2d(1), flatten=nn.Flatten(), fc=nn.Linear(expansion or 8 * w, num_classes))
    return nn.Sequential(layers)


#: The small ResNets' expansion head by default: 512 penultimate units, inside the paper's range (342 to
#: 2,048). Chapter *A faithful miniature* (notebooks/00_benchmark.ipynb) chooses it by a rule that reads
#: only ID accuracy and the baselines (fidelity.choose_network), and stops if the rule stops choosing it.
DEFAULT_EXPANSION = 512
#: The models an expansion head applies to.
EXPANDABLE = ("smallresnet", "smallresnet_logsoftmax")


def default_expansion(model: str, expansion: int | None = None) -> int:
    """The expansion head of ``model`` (a name of :data:`MODELS`): ``expansion`` as given, else
    :data:`DEFAULT_EXPANSION` for the small ResNets and 0 (none) for every other network."""
    if expansion is not None:
        return expansion
    return DEFAULT_EXPANSION if model in EXPANDABLE else 0


def penultimate_units(width: int = 16, expansion: int = 0) -> int:
    """Units of :func:`small_resnet`'s penultimate feature: ``expansion``, or 8 * ``width`` without a head."""
    return expansion or 8 * width


def small_resnet_logsoftmax(num_classes: int = 10, width: int = 16, in_channels: int = 1,
                            expansion: int = 0) -> nn.Sequential:
    """:func:`small_resnet` with the ReLU after each residual addition (``layer1.relu`` ..
    ``layer4.relu``) replaced by ``nn.LogSoftmax(dim=1)``: a log-softmax over the channels at every
    spatial position (MiSP thesis: "replace ReLU after the residual skip connection"). The stem's
    ReLU and the ReLU inside each block (``relu1``) stay. LogSoftmax has no parameters, so the
    state-dict keys, shapes and (for the same seed) the initial weights equal those of
    :func:`small_resnet`; the pooled feature fed to ``fc`` is the average log-probability map of
    ``layer4``.
    """
    model = small_resnet(num_classes=num_classes, width=width, in_channels=in_channels, expansion=expansion)
    for name in ("layer1", "layer2", "layer3", "layer4"):
        model.get_submodule(name).relu = nn.LogSoftmax(dim=1)
    return model


def logsoftmax_layers(model: nn.Module) -> list[str]:
    """Names of the ``nn.LogSoftmax`` modules of ``model``, in definition (= execution) order:
    ``["layer1.relu", .., "layer4.relu"]`` for ``smallresnet_logsoftmax``, ``[]`` for a ReLU model."""
    return [name for name, m in model.named_modules() if isinstance(m, nn.LogSoftmax)]


# ------------------------------------------------------------------------- small vision transformer


class PatchEmbedding(nn.Module):
    """ViT's input stage (Dosovitskiy et al., ICLR 2021, Eq. 1): non-overlapping ``patch x patch``
    patches projected to ``dim`` values (a strided convolution), a learned class token put first and
    learned position embeddings added. ``(N, C, H, W)`` -> ``(N, 1 + (H / patch) * (W / patch), dim)``."""

    def __init__(self, in_channels: int, dim: int, patch: int, image_size: int):
        super().__init__()
        self.proj = nn.Conv2d(in_channels, dim, patch, patch)
        self.class_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.position = nn.Parameter(0.02 * torch.randn(1, 1 + (image_size // patch) ** 2, dim))

    def forward(self, x: Tensor) -> Tensor:
        tokens = self.proj(x).flatten(2).transpose(1, 2)
        return torch.cat([self.class_token.expand(len(x), -1, -1), tokens], dim=1) + self.position


class EncoderBlock(nn.Module):
    """A pre-norm transformer block (ViT, Eqs. 2-3): ``x + MSA(LN(x))``, then ``+ MLP(LN(.))`` with
    ``mlp = fc1, act (GELU), fc2``, as torchvision's ``EncoderBlock`` without dropout.

    ``class_token_only``: the block returns the class token's row alone, ``(N, dim)``: its attention
    query is that token (keys and values are every token) and its MLP runs on that row. For a last
    block this is the same network function as computing every row (the head reads the class token
    only), and it makes ``mlp.act`` the class token's hidden units, ``(N, mlp_dim)``, like a CNN's
    pooled feature: a placement the ASH functions shape per sample as they are.
    """

    def __init__(self, dim: int, heads: int, mlp_dim: int, class_token_only: bool = False):
        super().__init__()
        self.ln1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.ln2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = nn.Sequential(OrderedDict(fc1=nn.Linear(dim, mlp_dim), act=nn.GELU(), fc2=nn.Linear(mlp_dim, dim)))
        self.class_token_only = class_token_only

    def forward(self, x: Tensor) -> Tensor:
        h = self.ln1(x)
        if self.class_token_only:
            x = x[:, 0] + self.attn(h[:, :1], h, h, need_weights=False)[0][:, 0]
        else:
            x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.mlp(self.ln2(x))


def small_vit(num_classes: int = 10, width: int = 64, in_channels: int = 1, depth: int = 4, heads: int = 4,
              patch: int = 7, mlp_ratio: int = 2, image_size: int = 28) -> nn.Sequential:
    """A small ViT for 28x28 images: ``patch``-pixel patches (16 tokens at 7) and a class token of
    ``width`` values, ``depth`` pre-norm blocks of ``heads`` heads and ``mlp_ratio * width`` hidden
    units, then the final LayerNorm (``norm``) and the linear head (``fc``) on the class token.

    Top-level children: ``normalize, embed, block1..block<depth>, norm, fc``; the last block returns
    the class token only (:class:`EncoderBlock`), so ``norm``'s output is the usual pre-logit feature,
    ``(N, width)``, and ``block<depth>.mlp.act`` the class token's GELU units, ``(N, mlp_ratio * width)``.
    """
    for name, value in (("width", width), ("depth", depth), ("heads", heads), ("patch", patch),
                        ("mlp_ratio", mlp_ratio)):
        check_positive_int(name, value)
    if width % heads:
        raise ParameterError(f"width={width!r} is not allowed with heads={heads!r}: expected a multiple of heads.")
    if image_size % patch:
        raise ParameterError(f"patch={patch!r} is not allowed for {image_size}-pixel images: expected a divisor "
                             f"of {image_size}.")
    blocks = [(f"block{i + 1}", EncoderBlock(width, heads, mlp_ratio * width, class_token_only=i == depth - 1))
              for i in range(depth)]
    return nn.Sequential(OrderedDict([
        ("normalize", Normalize(MNIST_MEAN, MNIST_STD)),
        ("embed", PatchEmbedding(in_channels, width, patch, image_size)),
        *blocks,
        ("norm", nn.LayerNorm(width, eps=1e-6)),
        ("fc", nn.Linear(width, num_classes)),
    ]))


# ------------------------------------------------------------------------------- DenseNet-BC-100


class DenseLayer(nn.Module):
    """DenseNet-BC bottleneck layer: BN-ReLU-Conv1x1(4k)-BN-ReLU-Conv3x3(k), output concatenated to the input."""

    def __init__(self, c_in: int, growth: int):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(c_in)
        self.relu1 = nn.ReLU()
        self.conv1 = nn.Conv2d(c_in, 4 * growth, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(4 * growth)
        self.relu2 = nn.ReLU()
        self.conv2 = nn.Conv2d(4 * growth, growth, 3, padding=1, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv2(self.relu2(self.bn2(self.conv1(self.relu1(self.bn1(x))))))
        return torch.cat([x, out], 1)


class PreActivation(nn.Module):
    """BN, then ``merge`` (identity: the pre-ReLU activation, an ASH placement), then ReLU."""

    def __init__(self, channels: int):
        super().__init__()
        self.bn = nn.BatchNorm2d(channels)
        self.merge = nn.Identity()
        self.relu = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        return self.relu(self.merge(self.bn(x)))


class Transition(PreActivation):
    """DenseNet transition: BN, ``merge``, ReLU, Conv1x1 (halves the channels), 2x2 average pooling."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__(c_in)
        self.conv = nn.Conv2d(c_in, c_out, 1, bias=False)
        self.pool = nn.AvgPool2d(2)

    def forward(self, x: Tensor) -> Tensor:
        return self.pool(self.conv(super().forward(x)))


def densenet100(num_classes: int = 10, growth: int = 12, depth: int = 100, reduction: float = 0.5) -> nn.Sequential:
    """DenseNet-BC (depth 100, growth rate k = 12) for 32x32 CIFAR images, as trained by DICE.

    The paper calls it "DenseNet-101". Three dense blocks of 16 bottleneck layers; channels
    24 -> 216 -> 108 -> 300 -> 150 -> 342; the 342-d penultimate feature is the average-pooled
    output of ``head`` (BN-ReLU after the last block). Inputs are normalised with the CIFAR
    statistics DICE/ASH use in their test transform (:data:`CIFAR_MEAN`, :data:`CIFAR_STD`).
    """
    n = (depth - 4) // 6  # bottleneck layers per block
    c = 2 * growth
    children: OrderedDict[str, nn.Module] = OrderedDict(
        normalize=Normalize(CIFAR_MEAN, CIFAR_STD),
        stem=nn.Conv2d(3, c, 3, padding=1, bias=False),
    )
    for b in (1, 2, 3):
        children[f"block{b}"] = nn.Sequential(*[DenseLayer(c + i * growth, growth) for i in range(n)])
        c += n * growth
        if b < 3:
            c_out = int(math.floor(c * reduction))
            children[f"trans{b}"] = Transition(c, c_out)
            c = c_out
    children.update(head=PreActivation(c), avgpool=nn.AdaptiveAvgPool2d(1), flatten=nn.Flatten(),
                    fc=nn.Linear(c, num_classes))
    model = nn.Sequential(children)
    for m in model.modules():  # the official initialisation (He normal over fan-out, BN 1/0, fc bias 0)
        if isinstance(m, nn.Conv2d):
            fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
            nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan_out))
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.zeros_(m.bias)
    return model


#: Official DenseNet3 (DICE/ASH ``models/densenet.py``) key prefixes -> ours. Applied in order; the
#: dense layers keep their parameter names (bn1, conv1, bn2, conv2).
_DENSENET_KEYS = (
    (r"^conv1\.", "stem."),
    (r"^block(\d)\.layer\.(\d+)\.", r"block\1.\2."),
    (r"^trans(\d)\.bn1\.", r"trans\1.bn."),
    (r"^trans(\d)\.conv1\.", r"trans\1.conv."),
    (r"^bn1\.", "head.bn."),
    (r"^fc\.", "fc."),
)
_DENSENET_KEYS_BACK = (
    (r"^stem\.", "conv1."),
    (r"^block(\d)\.(\d+)\.", r"block\1.layer.\2."),
    (r"^trans(\d)\.bn\.", r"trans\1.bn1."),
    (r"^trans(\d)\.conv\.", r"trans\1.conv1."),
    (r"^head\.bn\.", "bn1."),
    (r"^fc\.", "fc."),
)


def _rename(state: Mapping[str, Tensor], rules, what: str) -> OrderedDict[str, Tensor]:
    out = OrderedDict()
    for key, value in state.items():
        for pattern, repl in rules:
            new, hits = re.subn(pattern, repl, key)
            if hits:
                out[new] = value
                break
        else:
            raise KeyError(f"{what}: no mapping for state-dict key {key!r}.")
    return out


def _unwrap_checkpoint(obj) -> dict[str, Tensor]:
    """A state dict from a checkpoint: ``{"state_dict": ...}`` (DICE) or a plain one (ASH); drops a
    DataParallel ``module.`` prefix."""
    if isinstance(obj, Mapping) and "state_dict" in obj and isinstance(obj["state_dict"], Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping):
        raise TypeError(f"expected a state dict, got {type(obj).__name__}.")
    return OrderedDict((k.removeprefix("module."), v) for k, v in obj.items())


def densenet_from_official(state: Mapping[str, Tensor]) -> OrderedDict[str, Tensor]:
    """Keys of the official DenseNet3 layout (DICE/ASH checkpoints) -> ours (see :data:`_DENSENET_KEYS`).

    Accepts a full checkpoint (``{"state_dict": ...}``) and DataParallel ``module.`` prefixes.
    """
    return _rename(_unwrap_checkpoint(state), _DENSENET_KEYS, "official DenseNet3 -> ashlib")


def densenet_to_official(state: Mapping[str, Tensor]) -> OrderedDict[str, Tensor]:
    """Our DenseNet keys -> the official DenseNet3 layout (the ``normalize`` buffers have no counterpart)."""
    state = OrderedDict((k, v) for k, v in state.items() if not k.startswith("normalize."))
    return _rename(state, _DENSENET_KEYS_BACK, "ashlib -> official DenseNet3")


# ---------------------------------------------------------------------- torchvision ResNet-50 / MobileNetV2


def _no_inplace(model: nn.Module) -> nn.Module:
    for m in model.modules():
        if hasattr(m, "inplace"):
            m.inplace = False
    return model


def _merge_bottleneck():
    from torchvision.models.resnet import Bottleneck

    class MergeBottleneck(Bottleneck):
        """torchvision's Bottleneck (same parameters and keys) with the sum passing through ``merge``.

        torchvision reuses one ReLU module three times per block; here ``relu1``/``relu2`` are the
        inner activations and ``relu`` fires once, on the block output. Nothing works in place.
        """

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.relu1, self.relu2 = nn.ReLU(), nn.ReLU()
            self.merge = nn.Identity()
            self.relu = nn.ReLU()

        def forward(self, x: Tensor) -> Tensor:
            out = self.relu1(self.bn1(self.conv1(x)))
            out = self.relu2(self.bn2(self.conv2(out)))
            out = self.bn3(self.conv3(out))
            identity = x if self.downsample is None else self.downsample(x)
            return self.relu(self.merge(out + identity))

    return MergeBottleneck


def _merge_inverted_residual():
    from torchvision.models.mobilenetv2 import InvertedResidual

    class MergeInvertedResidual(InvertedResidual):
        """torchvision's InvertedResidual (same parameters and keys); its output, the residual sum
        where there is one, else the linear projection, passes through ``merge``. No activation
        follows in MobileNetV2 (linear bottleneck)."""

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.merge = nn.Identity()

        def forward(self, x: Tensor) -> Tensor:
            out = self.conv(x)
            return self.merge(x + out if self.use_res_connect else out)

    return MergeInvertedResidual


#: torchvision's MobileNetV2 ``features`` indices of each of the 7 inverted-residual stages (t, c, n, s).
MOBILENET_STAGES = ((1,), (2, 3), (4, 5, 6), (7, 8, 9, 10), (11, 12, 13), (14, 15, 16), (17,))


def _torchvision_rules(name: str):
    if name == "resnet50":
        return ((r"^conv1\.", "stem.conv1."), (r"^bn1\.", "stem.bn1."), (r"^(layer[1-4]\.)", r"\1"),
                (r"^fc\.", "fc."))
    rules = [(r"^features\.0\.", "stem."), (r"^features\.18\.", "head."), (r"^classifier\.1\.", "fc.")]
    for s, idx in enumerate(MOBILENET_STAGES, start=1):
        rules += [(rf"^features\.{i}\.", f"layer{s}.{j}.") for j, i in enumerate(idx)]
    return tuple(rules)


def torchvision_to_sequential(name: str, state: Mapping[str, Tensor]) -> OrderedDict[str, Tensor]:
    """A torchvision ``resnet50``/``mobilenet_v2`` state dict with our keys (explicit prefix table):
    resnet50 ``conv1``/``bn1`` -> ``stem.conv1``/``stem.bn1`` (layers and fc unchanged); mobilenet_v2
    ``features.0`` -> ``stem``, ``features.1..17`` -> ``layer1..7.<j>``, ``features.18`` -> ``head``,
    ``classifier.1`` -> ``fc``."""
    check_choice("name", name, ("resnet50", "mobilenet_v2"))
    return _rename(state, _torchvision_rules(name), f"torchvision {name} -> ashlib")


def resnet50(num_classes: int = 1000) -> nn.Sequential:
    """torchvision's ResNet-50 (v1.5) as a sequential; every Bottleneck has a ``merge`` before its last ReLU.

    Built by torchvision's own constructor, so for the same seed the initial weights equal
    ``torchvision.models.resnet50(weights=None)``'s.
    """
    from torchvision.models.resnet import ResNet

    tv = _no_inplace(ResNet(_merge_bottleneck(), [3, 4, 6, 3], num_classes=num_classes))
    return nn.Sequential(OrderedDict(
        normalize=Normalize(IMAGENET_MEAN, IMAGENET_STD),
        stem=nn.Sequential(OrderedDict(conv1=tv.conv1, bn1=tv.bn1, relu=tv.relu, maxpool=tv.maxpool)),
        layer1=tv.layer1, layer2=tv.layer2, layer3=tv.layer3, layer4=tv.layer4,
        avgpool=tv.avgpool, flatten=nn.Flatten(), fc=tv.fc,
    ))


def mobilenet_v2(num_classes: int = 1000) -> nn.Sequential:
    """torchvision's MobileNetV2 as a sequential: ``stem`` (features.0), ``layer1..layer7`` (the seven
    inverted-residual stages), ``head`` (features.18, 1x1 conv to 1280 + BN + ReLU6), ``avgpool``,
    ``flatten``, ``dropout`` and ``fc`` (torchvision's classifier). Initial weights equal torchvision's
    ``mobilenet_v2(weights=None)`` for the same seed."""
    from torchvision.models.mobilenetv2 import MobileNetV2

    tv = _no_inplace(MobileNetV2(num_classes=num_classes, block=_merge_inverted_residual()))
    children: OrderedDict[str, nn.Module] = OrderedDict(normalize=Normalize(IMAGENET_MEAN, IMAGENET_STD),
                                                        stem=tv.features[0])
    for s, idx in enumerate(MOBILENET_STAGES, start=1):
        children[f"layer{s}"] = nn.Sequential(*[tv.features[i] for i in idx])
    children.update(head=tv.features[18], avgpool=nn.AdaptiveAvgPool2d(1), flatten=nn.Flatten(),
                    dropout=tv.classifier[0], fc=tv.classifier[1])
    return nn.Sequential(children)


# ------------------------------------------------------------------------------------ model facts


def feature_dim(model: nn.Module) -> int:
    """Size of the penultimate feature (the input of ``fc``): 342, 2048, 1280 or 8 * width."""
    return model.get_submodule("fc").in_features


def block_merge_layers(model: nn.Module) -> list[str]:
    """The "before the last ReLU of each block" placements of the paper's Appendix A, early to late.

    Rule: the last module called ``merge`` inside each top-level child. What that is per architecture:

    - ``smallresnet``: ``layer1.merge`` .. ``layer4.merge``, the residual sum before the block's ReLU.
    - ``resnet50``: the sum of the *last* Bottleneck of each stage, before its ReLU
      (``layer1.2.merge``, ``layer2.3.merge``, ``layer3.5.merge``, ``layer4.2.merge``): exactly where the
      official ASH code applies it (``use_ash`` on the last block of a stage, after ``out += identity``).
    - ``densenet100``: ``trans1.merge``, ``trans2.merge``, ``head.merge``. DenseNet merges by
      concatenation, not a sum, and its layers are pre-activation (BN-ReLU-Conv), so the only ReLU that
      acts on a whole dense block's output is the BN-ReLU that opens the following transition (after
      block 3: the final BN-ReLU before pooling). The placement is the BN output right before that
      ReLU: like ResNet's merge it is the signed pre-activation of all the stage's channels, and
      ``relu(merge)`` is what the rest of the network consumes. ``head.merge`` is the 342-channel 8x8
      map whose ReLU-and-average is the paper's penultimate feature.
    - ``mobilenet_v2``: the output of the last inverted-residual block of each of the seven stages
      (``layer1.0.merge`` .. ``layer7.0.merge``): the residual sum where the block has one (stages
      2-6), else the linear projection. MobileNetV2's bottlenecks are linear, no ReLU follows the sum,
      so this is the analogue "at the end of the last convolution of each block, before any
      activation": signed, and what the next stage consumes unchanged.
    """
    last: dict[str, str] = {}
    for name, _ in model.named_modules():
        if name.split(".")[-1] == "merge":
            last[name.split(".")[0]] = name
    return list(last.values())


# --------------------------------------------------------------------------------------- building


def build_model(name: str, num_classes: int, width: int = 16, seed: int = 0, expansion: int = 0) -> nn.Sequential:
    """An untrained model by name (see ``MODELS``), its initial weights drawn from ``seed``.

    ``width`` applies to ``smallresnet``/``smallresnet_logsoftmax`` (channels of the first stage) and
    ``smallvit`` (the token width) only; the paper's architectures have fixed widths. For the same seed both small ResNets start from the same weights.
    ``expansion`` (the small ResNets only): the units of a 1x1 expansion head, 0 for none (:func:`small_resnet`).
    """
    if expansion and name not in EXPANDABLE:
        raise ParameterError(f"expansion={expansion!r} is not allowed for model={name!r}: expected 0 (only the small "
                             "ResNets have an expansion head).")
    check_choice("model", name, MODELS)
    check_positive_int("num_classes", num_classes)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if name == "smallresnet":
            return small_resnet(num_classes=num_classes, width=width, expansion=expansion)
        if name == "smallresnet_logsoftmax":
            return small_resnet_logsoftmax(num_classes=num_classes, width=width, expansion=expansion)
        if name == "smallvit":
            return small_vit(num_classes=num_classes, width=width)
        if name == "densenet100":
            return densenet100(num_classes)
        if name == "resnet50":
            return resnet50(num_classes)
        return mobilenet_v2(num_classes)


def pretrained_model(name: str, num_classes: int | None = None, *, dataset: str | None = None,
                     checkpoint: str | Path | None = None, download: bool = True,
                     progress: bool = True, with_path: bool = False):
    """The paper's pretrained network, in eval mode, in our sequential layout.

    - ``resnet50`` / ``mobilenet_v2``: torchvision's ``IMAGENET1K_V1`` weights (``num_classes`` 1000).
    - ``densenet100``: the DenseNet-BC-100 checkpoints DICE trained and ASH evaluates, for
      ``dataset`` "cifar10" or "cifar100" (default: from ``num_classes`` 10 or 100).

    The file comes from :func:`ashlib.assets.fetch.weights_path`: ``checkpoint`` (a path you supply,
    ``-p checkpoint PATH`` on the command line), else ``$ASHLIB_CACHE/weights/<file>`` (file names in
    ``data_manifest.yaml``; the DenseNet also under the names ASH's checkpoints.zip uses), else torch hub's
    cache for torchvision files, and only then downloaded (``download=True``) as ``python -m ashlib fetch``
    does, if it has a published checksum. Offline or missing: :class:`WeightsNotFoundError` saying what to
    run, or download from where and where to put it; never a silently random model. A file found is
    checked every time it is loaded (:class:`ashlib.assets.data.ChecksumError`): against its published
    checksum (DICE: the sha256 of the committed file; torchvision: the sha256 prefix in its name), or the
    sha256 recorded beside it by ``fetch --allow-unverified``; a file with neither is refused, with the
    command that records it. Your own ``checkpoint`` is not the published file and is not checked against
    its checksum (its keys must still fit). Checkpoints are read with ``torch.load(..., weights_only=True)``.
    ``with_path``: return (model, path of the weights file read).
    """
    check_choice("model", name, PRETRAINED)
    if name == "densenet100":
        if dataset is None:
            if num_classes not in (10, 100):
                raise ParameterError(f"num_classes={num_classes!r} is not allowed: expected 10 or 100 "
                                     "(or pass dataset='cifar10'/'cifar100').")
            dataset = f"cifar{num_classes}"
        check_choice("dataset", dataset, ("cifar10", "cifar100"))
        classes = 10 if dataset == "cifar10" else 100
        entry_name = f"densenet100_{dataset}_dice"
    else:
        if dataset not in (None, "imagenet"):
            raise ParameterError(f"dataset={dataset!r} is not allowed: expected None or 'imagenet'.")
        classes = 1000
        entry_name = f"{name}_imagenet1k_v1"
    if num_classes is not None and num_classes != classes:
        raise ParameterError(f"num_classes={num_classes!r} is not allowed: expected {classes} for "
                             f"{name} on {dataset or 'imagenet'}.")
    path = weights_path(entry_name, name, checkpoint=checkpoint, download=download, progress=progress)
    raw = torch.load(path, map_location="cpu", weights_only=True)
    model = build_model(name, classes)
    if name == "densenet100":
        state = densenet_from_official(raw)
    else:
        state = torchvision_to_sequential(name, _unwrap_checkpoint(raw))
    _load_strict(model, state, f"{path}")
    return (model.eval(), path) if with_path else model.eval()


def _load_strict(model: nn.Module, state: Mapping[str, Tensor], what: str) -> None:
    """Load ``state`` into ``model``: every key but ``normalize.*`` must be present and nothing extra;
    BatchNorm ``num_batches_tracked`` counters (absent from checkpoints older than PyTorch 0.4.1) default."""
    own = model.state_dict()
    state = dict(state)
    for key, value in own.items():
        if key not in state and (key.startswith("normalize.") or key.endswith("num_batches_tracked")):
            state[key] = value
    missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    if missing or unexpected:
        raise KeyError(f"{what}: state dict does not fit the model; missing {missing[:5]}"
                       f"{' ...' if len(missing) > 5 else ''}, unexpected {unexpected[:5]}"
                       f"{' ...' if len(unexpected) > 5 else ''}.")
    model.load_state_dict(state, strict=True)


# --------------------------------------------------------------------------------------- training


@dataclass(frozen=True)
class TrainRecipe:
    """Seeded training recipe: SGD with Nesterov momentum (``optimizer="sgd"``) or AdamW (``"adamw"``,
    the usual choice for vision transformers, Dosovitskiy et al. 2021), a one-cycle learning rate,
    random shifts of +-``shift`` pixels. ``optimizer`` enters :func:`load_or_train`'s cache key only
    when it is not the default "sgd", so the checkpoints cached before the field existed keep their names.

    ``threads``: the CPU threads a training step runs on (default 1). A float sum split among threads
    is rounded differently for every split, so torch's default (one thread per core) trains a network
    whose weights depend on the machine's core count. Fixed at one, a checkpoint is the same on a
    2-core laptop and a 64-core node (with the same CPU instruction set and torch), and the cores train
    several networks side by side instead (:func:`load_or_train_many`; :func:`ashlib.book.pipeline.run`'s ``jobs``). It is always part
    of :func:`load_or_train`'s cache key, so no checkpoint trained before the field existed (with the
    machine's thread count) is mixed with the new ones. It does nothing on a GPU.

    ``entropy_weight`` is the MiSP thesis's entropy-loss factor lambda: the loss becomes
    ``cross_entropy + lambda * entropy_loss(log-softmax layer outputs)`` (see :func:`training_loss`);
    it needs a model with log-softmax layers (``smallresnet_logsoftmax``). The default 0 is plain
    cross-entropy training, and it leaves :func:`load_or_train`'s cache key as it was before the field
    existed.
    """

    epochs: int = 12
    batch_size: int = 64
    lr: float = 0.1
    weight_decay: float = 5e-4
    shift: int = 2
    seed: int = 0
    entropy_weight: float = 0.0
    optimizer: str = "sgd"
    threads: int = 1

    def __post_init__(self):
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        check_positive_int("epochs", self.epochs)
        check_positive_int("threads", self.threads)
        check_positive_int("batch_size", self.batch_size)
        check_range("lr", self.lr, 1e-6, 10)
        check_range("entropy_weight", self.entropy_weight, 0, math.inf)


def pixel_entropy(log_probs: Tensor) -> Tensor:
    """Entropy ``-sum_c p_c log p_c`` over the channels at every position of a log-softmax output.

    ``log_probs``: ``(N, C, H, W)`` (or ``(N, C)``) log-probabilities over dim 1; ``p = exp(log_probs)``.
    Returns ``(N, H, W)`` (or ``(N,)``), in nats: 0 for a one-hot position, ``log C`` for a uniform one.
    """
    if not isinstance(log_probs, Tensor) or log_probs.ndim not in (2, 4):
        raise ParameterError(f"log_probs must be a (N, C, H, W) or (N, C) tensor, got "
                             f"{tuple(getattr(log_probs, 'shape', ())) or type(log_probs).__name__}.")
    return -(log_probs.exp() * log_probs).sum(dim=1)


def entropy_loss(log_probs: Sequence[Tensor]) -> Tensor:
    """The MiSP thesis's per-pixel entropy loss (slides, "Experimental setup"):
    ``sum_{i=1..N} sum_{j=1..H_i W_i} sum_k -s(x_ijk) log s(x_ijk)`` over the N log-softmax layers and
    every position of each (:func:`pixel_entropy` summed), per sample, then averaged over the batch
    like the cross-entropy it is added to. Being a sum, it grows with the number of layers and
    positions, so a lambda means what it means in the thesis only for a network of the same shape;
    rows labelled lambda = 0.01 use the thesis's definition (until 2026-11 this was a mean over
    positions and layers, about ``sum_i H_i W_i`` times smaller).
    """
    if not log_probs:
        raise ParameterError("log_probs is empty: expected the outputs of at least one log-softmax layer.")
    return torch.stack([pixel_entropy(lp).reshape(len(lp), -1).sum(dim=1) for lp in log_probs]).sum(dim=0).mean()


def training_loss(model: nn.Module, x: Tensor, y: Tensor, entropy_weight: float = 0.0) -> Tensor:
    """The training objective on one batch: ``cross_entropy(model(x), y)``, plus, when
    ``entropy_weight > 0``, ``entropy_weight * entropy_loss(outputs of logsoftmax_layers(model))``,
    those outputs captured by forward hooks during this same forward pass (hooks always removed).

    ``entropy_weight == 0`` is exactly the plain cross-entropy (no hooks registered).
    """
    check_range("entropy_weight", entropy_weight, 0, math.inf)
    if entropy_weight == 0:
        return nn.functional.cross_entropy(model(x), y)
    layers = logsoftmax_layers(model)
    if not layers:
        raise ParameterError(f"entropy_weight={entropy_weight!r} is not allowed for a model without "
                             "nn.LogSoftmax layers: expected 0 (or use 'smallresnet_logsoftmax').")
    captured: list[Tensor] = []
    handles = [model.get_submodule(name).register_forward_hook(lambda _m, _i, out: captured.append(out))
               for name in layers]
    try:
        logits = model(x)
    finally:
        for h in handles:
            h.remove()
    return nn.functional.cross_entropy(logits, y) + entropy_weight * entropy_loss(captured)


def random_shift(x: Tensor, shift: int, generator: torch.Generator) -> Tensor:
    """Translate each image by a random integer offset in [-shift, shift] (zero padding)."""
    if shift == 0:
        return x
    n, _, h, w = x.shape
    padded = nn.functional.pad(x, (shift,) * 4)
    dy, dx = torch.randint(0, 2 * shift + 1, (2, n), generator=generator)
    rows = (torch.arange(h)[None, :] + dy[:, None])[:, None, :, None]
    cols = (torch.arange(w)[None, :] + dx[:, None])[:, None, None, :]
    idx_n = torch.arange(n)[:, None, None, None]
    idx_c = torch.arange(x.shape[1])[None, :, None, None]
    return padded[idx_n, idx_c, rows, cols]


def train(model: nn.Module, x: Tensor, y: Tensor, recipe: TrainRecipe = TrainRecipe(),
          device: str = "cpu", progress: bool = True,
          on_epoch_end: Callable[[int, nn.Module], None] | None = None) -> nn.Module:
    """Train ``model`` on (x, y) with ``recipe``; deterministic for a given seed and device, and on the
    CPU the same whatever the core count (``recipe.threads``; torch's own setting is restored after).

    The loss is :func:`training_loss` with ``recipe.entropy_weight`` (plain cross-entropy at 0).
    ``on_epoch_end(epoch, model)`` (epochs counted from 1) sees the model after each epoch, e.g.
    to save checkpoints along training; it must not change the model.
    """
    if recipe.entropy_weight > 0 and not logsoftmax_layers(model):
        raise ParameterError(f"entropy_weight={recipe.entropy_weight!r} is not allowed for a model without "
                             "nn.LogSoftmax layers: expected 0 (or use 'smallresnet_logsoftmax').")
    threads = torch.get_num_threads()
    if torch.device(device).type == "cpu":
        torch.set_num_threads(recipe.threads)
    try:
        return _train(model, x, y, recipe, device, progress, on_epoch_end)
    finally:
        torch.set_num_threads(threads)


def _train(model, x, y, recipe, device, progress, on_epoch_end) -> nn.Module:
    torch.manual_seed(recipe.seed)
    gen = torch.Generator().manual_seed(recipe.seed)
    model.to(device).train()
    if recipe.optimizer == "adamw":
        opt = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    else:
        opt = torch.optim.SGD(model.parameters(), lr=recipe.lr, momentum=0.9, nesterov=True,
                              weight_decay=recipe.weight_decay)
    steps = recipe.epochs * -(-len(x) // recipe.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=recipe.lr, total_steps=steps)
    bar = tqdm(total=steps, desc="training", disable=not progress, unit="batch")
    for epoch in range(recipe.epochs):
        order = torch.randperm(len(x), generator=gen)
        for i in range(0, len(x), recipe.batch_size):
            idx = order[i:i + recipe.batch_size]
            xb = random_shift(x[idx], recipe.shift, gen).to(device)
            loss = training_loss(model, xb, y[idx].to(device), recipe.entropy_weight)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            bar.update()
        bar.set_postfix(epoch=epoch + 1, loss=f"{loss.item():.3f}")
        if on_epoch_end is not None:
            on_epoch_end(epoch + 1, model)
    bar.close()
    return model.eval()


def load_or_train(name: str, x_train: Tensor, y_train: Tensor, num_classes: int, width: int = 16,
                  recipe: TrainRecipe = TrainRecipe(), device: str = "cpu", progress: bool = True,
                  expansion: int = 0):
    """Return ``(model, checkpoint_path)``: the cached checkpoint for this architecture, recipe and
    training data, or a freshly trained one that is then cached (``$ASHLIB_CACHE/models``).

    Only the small ResNets (:data:`TRAINABLE`) are trained here; the paper's networks come from
    :func:`pretrained_model`. The cache key covers the name (so the architecture), ``num_classes``,
    ``width``, the recipe, the data and torch's version. ``recipe.entropy_weight`` and ``expansion`` (the
    units of a 1x1 expansion head, :func:`small_resnet`) enter the key only when they are non-zero. The checkpoint is a self-verifying entry (:mod:`ashlib.assets.cache`): one that was
    damaged, or copied from another training run or epoch, is reported, discarded and trained again;
    two processes that need the same checkpoint train it once. A training run also caches the
    checkpoint of every earlier epoch (small files), which :func:`load_snapshots` then finds instead
    of training the same run again.
    """
    path = checkpoint_path(name, x_train, y_train, num_classes, width, recipe, expansion=expansion)
    key = _checkpoint_key(name, x_train, y_train, num_classes, width, recipe, expansion=expansion)
    model = build_model(name, num_classes, width, seed=recipe.seed, expansion=expansion)
    fits = _fits(model)
    state = ashcache.load(path, key, check=fits)
    if state is None:
        with ashcache.locked(path):
            state = ashcache.load(path, key, check=fits)
            if state is None:
                train(model, x_train, y_train, recipe, device=device, progress=progress,
                      on_epoch_end=_epoch_saver(name, x_train, y_train, num_classes, width, recipe,
                                                expansion=expansion))
                state = _cpu_state(model)
    model.load_state_dict(state)
    return model.to(device).eval(), path


def load_or_train_many(specs: Sequence[Mapping], device: str = "cpu", progress: bool = True,
                       workers: int | None = None) -> list[tuple[nn.Module, Path]]:
    """:func:`load_or_train` for each of ``specs`` (its arguments ``name``, ``x_train``, ``y_train``,
    ``num_classes`` and optionally ``width``, ``recipe`` and ``expansion``), in order; on the CPU, the networks not
    cached yet train side by side first, each in a process of its own, at most ``workers`` at once
    (None: all of them when this process may use more than one core; with more networks than cores
    they share the cores and end about together, rather than the last one training alone on one core
    while the others idle). Each trains on ``recipe.threads`` threads as it would here,
    so the weights are exactly those of :func:`load_or_train` one by one. Specs that name the same
    checkpoint train once; a network that another process is training already is not trained twice: the
    workers go on with the others and it is waited for at the end (:func:`ashlib.assets.cache.locked`). On a
    GPU they train one after the other.
    """
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from multiprocessing import get_context

    from ashlib import _threads

    specs = [dict(spec) for spec in specs]
    missing = list({str(path): s for s in specs if not (path := _cached_path(s)).is_file()}.values())  # once each
    if workers is None:  # all at once: with fewer cores they share them and end together, no last one alone
        workers = len(missing) if _threads.cpus() > 1 else 1
    else:
        check_positive_int("workers", workers)
    if torch.device(device).type == "cpu" and len(missing) > 1 and workers > 1:
        context = get_context("spawn")  # a fresh interpreter: no fork of this process's thread pools
        with ProcessPoolExecutor(max_workers=min(workers, len(missing)), mp_context=context) as pool, \
                tqdm(total=len(missing), desc=f"training {len(missing)} networks side by side", disable=not progress,
                     unit="network") as bar:
            for done in as_completed([pool.submit(_train_spec, s) for s in missing]):
                done.result()
                bar.update()
    return [load_or_train(**s, device=device, progress=progress) for s in specs]


_LOAD_OR_TRAIN = inspect.signature(load_or_train)


def _cached_path(spec: Mapping) -> Path:
    """Where :func:`load_or_train` caches the network of ``spec`` (its arguments, its defaults for the rest)."""
    bound = _LOAD_OR_TRAIN.bind(**spec)
    bound.apply_defaults()
    a = bound.arguments
    return checkpoint_path(a["name"], a["x_train"], a["y_train"], a["num_classes"], a["width"], a["recipe"],
                           expansion=a["expansion"])


def _train_spec(spec: Mapping) -> str | None:
    """One network of :func:`load_or_train_many`, in its worker process: trained and cached. One that
    another process is training already (:func:`ashlib.assets.cache.in_use`) is left to it, so that this
    worker takes the next network instead of waiting; the parent waits for it at the end (None)."""
    if ashcache.in_use(_cached_path(spec)):
        return None
    return load_or_train(**spec, progress=False)[1].name


def _epoch_saver(name, x_train, y_train, num_classes, width, recipe, epochs=None, states=None, expansion=0):
    """``on_epoch_end`` for :func:`train`: cache the checkpoint after each epoch (of ``epochs``, default
    all), the last one being :func:`load_or_train`'s; ``states`` collects what was saved."""
    def save(epoch: int, model: nn.Module) -> None:
        if epochs is None or epoch in epochs:
            state = _cpu_state(model)
            ashcache.save(checkpoint_path(name, x_train, y_train, num_classes, width, recipe, epoch, expansion), state,
                          _checkpoint_key(name, x_train, y_train, num_classes, width, recipe, epoch, expansion))
            if states is not None:
                states[epoch] = state
    return save


def _config(name: str, x_train: Tensor, y_train: Tensor, num_classes: int, width: int, recipe: TrainRecipe,
            expansion: int = 0) -> str:
    check_choice("model", name, TRAINABLE)
    recipe_key = asdict(recipe)
    if recipe.optimizer == "sgd":
        del recipe_key["optimizer"]
    if recipe.entropy_weight == 0:
        del recipe_key["entropy_weight"]
    else:  # the thesis's summed loss (entropy_loss); networks trained with the earlier mean get new names
        recipe_key["entropy_loss"] = "thesis sum"
    config = dict(name=name, num_classes=num_classes, width=width, recipe=recipe_key,
                  data=tensor_digest(x_train, y_train), torch=torch.__version__.split("+")[0],
                  **({"expansion": expansion} if expansion else {}))  # no head: the names of before
    return json.dumps(config, sort_keys=True)


def _checkpoint_key(name, x_train, y_train, num_classes, width, recipe, epoch: int | None = None,
                    expansion: int = 0) -> str:
    """What a checkpoint was computed from: the training configuration and the epoch."""
    config = _config(name, x_train, y_train, num_classes, width, recipe, expansion)
    return f"checkpoint|{config}|epoch={epoch or recipe.epochs}"


def checkpoint_path(name: str, x_train: Tensor, y_train: Tensor, num_classes: int, width: int,
                    recipe: TrainRecipe, epoch: int | None = None, expansion: int = 0) -> Path:
    """Where :func:`load_or_train` caches a trained model (``epoch``: a checkpoint along training)."""
    config = _config(name, x_train, y_train, num_classes, width, recipe, expansion)
    key = hashlib.sha256(config.encode()).hexdigest()[:16]
    suffix = "" if epoch is None or epoch == recipe.epochs else f"-e{epoch}"
    head = f"-x{expansion}" if expansion else ""
    return cache_dir("models") / f"{name}-w{width}{head}-{key}{suffix}.pt"


def _cpu_state(model: nn.Module) -> dict[str, Tensor]:
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def _fits(model: nn.Module):
    """A check for :func:`ashlib.assets.cache.load`: the state dict has exactly the model's keys and shapes."""
    own = {k: tuple(v.shape) for k, v in model.state_dict().items()}

    def check(state) -> str | None:
        theirs = {k: tuple(v.shape) for k, v in state.items()} if isinstance(state, dict) else None
        return None if theirs == own else "its tensors do not fit the model's state dict"
    return check


def load_snapshots(name: str, x_train: Tensor, y_train: Tensor, num_classes: int, epochs: Sequence[int],
                   width: int = 16, recipe: TrainRecipe = TrainRecipe(), device: str = "cpu",
                   progress: bool = True, expansion: int = 0) -> dict[int, nn.Module]:
    """Checkpoints of ONE training run with ``recipe``, after each of ``epochs`` (1..recipe.epochs).

    They are saved during a single run (the one-cycle schedule of ``recipe.epochs`` epochs, so epoch
    4 of a 12-epoch run, not a 4-epoch run) and cached as self-verifying entries; the last epoch is
    the checkpoint :func:`load_or_train` gives. A missing or damaged one trains the run again.
    """
    if isinstance(epochs, (str, bytes)) or not isinstance(epochs, Sequence) or not epochs:
        raise ParameterError(f"epochs={epochs!r} is not allowed: expected a non-empty list of integers in "
                             f"[1, {recipe.epochs}].")
    for i, e in enumerate(epochs):
        if isinstance(e, bool) or not isinstance(e, int) or not 1 <= e <= recipe.epochs:
            raise ParameterError(f"epochs[{i}]={e!r} is not allowed: expected an integer in [1, {recipe.epochs}].")
    wanted = sorted({*epochs, recipe.epochs})
    paths = {e: checkpoint_path(name, x_train, y_train, num_classes, width, recipe, e, expansion) for e in wanted}
    keys = {e: _checkpoint_key(name, x_train, y_train, num_classes, width, recipe, e, expansion) for e in wanted}
    fits = _fits(build_model(name, num_classes, width, seed=recipe.seed, expansion=expansion))

    def cached() -> dict[int, dict]:
        return {e: ashcache.load(paths[e], keys[e], check=fits) for e in wanted}

    states = cached()
    if any(v is None for v in states.values()):
        with ashcache.locked(paths[recipe.epochs]):
            states = cached()
            if any(v is None for v in states.values()):
                train(build_model(name, num_classes, width, seed=recipe.seed, expansion=expansion), x_train, y_train,
                      recipe, device=device, progress=progress,
                      on_epoch_end=_epoch_saver(name, x_train, y_train, num_classes, width, recipe, None, states,
                                                expansion))
    out = {}
    for e in sorted(set(epochs)):
        model = build_model(name, num_classes, width, seed=recipe.seed, expansion=expansion)
        model.load_state_dict(states[e])
        out[e] = model.to(device).eval()
    return out
