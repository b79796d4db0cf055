"""Chapter 06, *MiSP: softmax scores inside the network* (notebooks/06_misp.ipynb): its parameters."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ashlib.book.chapters import ChapterParameters, parameter
from ashlib.book.chapters import _common as common
from ashlib.book.params import accepts


@dataclass(frozen=True)
class Parameters(ChapterParameters):
    """The parameters of notebooks/06_misp.ipynb (its parameters cell is rendered from these)."""

    benchmark: str = parameter("mnist5k", "mnist5k, fmnist (embedded); cifar10, cifar100, imagenet (paper scale)", accepts.embedded_benchmark)
    model: Optional[str] = common.model()
    width: int = common.width()
    expansion: Optional[int] = common.expansion()
    epochs: int = common.epochs()
    device: str = common.device()
    batch_size: int = common.batch_size()
    seed: int = common.seed()
    fpr_convention: str = common.fpr_convention()
    data_root: Optional[str] = common.data_root()
    checkpoint: Optional[str] = common.checkpoint()
    results_dir: Optional[str] = common.results_dir()
    preprocessing: Optional[str] = common.preprocessing()
    entropy_weights: list = parameter([0.0, 0.01, 0.1], "lambda of the per-pixel entropy loss, one log-softmax model each", accepts.entropy_weights)
    near_set: str = parameter("letters", "near-OOD set for the depth trend and the mixtures", accepts.ood_set)
    far_set: str = parameter("textures", "far-OOD set for the depth trend and the mixtures", accepts.far_set)
    mixture_fractions: list = parameter([0.0, 0.25, 0.5, 0.75, 1.0], "share of the far set in each mixture", accepts.fractions)
    mixture_n: int = parameter(1000, "images per mixture", accepts.positive_int)
