"""Chapter 01, *ASH versus the baselines* (notebooks/01_methods.ipynb): its parameters."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ashlib.book.chapters import ChapterParameters, parameter
from ashlib.book.chapters import _common as common
from ashlib.book.params import accepts


@dataclass(frozen=True)
class Parameters(ChapterParameters):
    """The parameters of notebooks/01_methods.ipynb (its parameters cell is rendered from these)."""

    benchmark: str = common.benchmark()
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
    compare: list = common.compare()
    n_train: Optional[int] = common.n_train()
    n_test: Optional[int] = common.n_test()
    n_ood: Optional[int] = common.n_ood()
    num_workers: Optional[int] = common.num_workers()
    percentile: Optional[float] = parameter(None, "one p for ASH-P/B/S; None: the paper's choices for the benchmark (Appendix D)", accepts.optional_percentile)
    sweep: list = parameter([50, 60, 65, 70, 75, 80, 85, 90, 95, 99], "p values of the Figure 2 front", accepts.percentiles)
    accuracy_sweep: list = parameter([0, 10, 20, 30, 40, 50, 60, 70, 80, 85, 90, 95, 97, 99, 100], "Figure 3", accepts.percentiles)
    distribution_set: str = parameter("textures", "the OOD set of Figure 6", accepts.ood_set)
    distribution_percentiles: list = parameter([0, 50, 70, 80, 90, 95], "ASH-S strengths shown in Figure 6", accepts.percentiles)
    mahalanobis_n_val: int = parameter(1000, "ID training images (and their FGSM examples) picking Mahalanobis' regression (official: 1,000)", accepts.n_val)
    train_seeds: Optional[list] = parameter(None, "training seeds the main table and the claims average over; None: seed and the next two (a pretrained network: its own)", accepts.train_seeds)
