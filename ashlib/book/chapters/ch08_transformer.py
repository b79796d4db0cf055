"""Chapter 08, *ASH beyond CNNs: a vision transformer* (notebooks/08_transformer.ipynb): its parameters."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ashlib.book.chapters import ChapterParameters, parameter
from ashlib.book.chapters import _common as common
from ashlib.book.params import accepts


@dataclass(frozen=True)
class Parameters(ChapterParameters):
    """The parameters of notebooks/08_transformer.ipynb (its parameters cell is rendered from these)."""

    benchmark: str = parameter("mnist5k", "mnist5k, fmnist (embedded: this chapter trains its own transformer)", accepts.embedded_benchmark)
    width: int = parameter(16, "smallresnet, the CNN compared with: channels of the first stage (8 * width channels before the head)", accepts.positive_int)
    expansion: Optional[int] = common.expansion()
    epochs: int = common.epochs()
    vit_width: int = parameter(64, "smallvit: token width, a multiple of its 4 heads; each MLP has 2 * vit_width GELU units", accepts.vit_width)
    vit_epochs: int = parameter(15, "smallvit: training epochs of its AdamW recipe (ashlib.book.transformer.vit_recipe)", accepts.positive_int)
    device: str = common.device()
    batch_size: int = common.batch_size()
    seed: int = common.seed()
    fpr_convention: str = common.fpr_convention()
    results_dir: Optional[str] = common.results_dir()
    preprocessing: Optional[str] = common.preprocessing()
    percentile: Optional[float] = parameter(None, "ASH's p; None: the paper's ASH-S p for the benchmark (CIFAR's 95 for the embedded ones)", accepts.optional_percentile)
    sweep: list = parameter([50, 60, 70, 80, 90, 95], "the percentiles of the sweep across p", accepts.percentiles)
    histogram_set: str = parameter("textures", "the OOD set drawn beside the ID test images in the histograms", accepts.ood_set)
