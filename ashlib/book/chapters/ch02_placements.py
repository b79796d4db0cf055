"""Chapter 02, *Where to ASH: placements* (notebooks/02_placements.ipynb): its parameters."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ashlib.book.chapters import ChapterParameters, parameter
from ashlib.book.chapters import _common as common
from ashlib.book.params import accepts


@dataclass(frozen=True)
class Parameters(ChapterParameters):
    """The parameters of notebooks/02_placements.ipynb (its parameters cell is rendered from these)."""

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
    placements: Optional[list] = parameter(None, "module names; None: before the last ReLU of each stage, then avgpool", accepts.placements)
    accuracy_sweep: list = parameter([0, 10, 20, 30, 40, 50, 60, 70, 80, 85, 90, 95, 99], "Figure 5", accepts.percentiles)
    train_seeds: Optional[list] = common.train_seeds()
