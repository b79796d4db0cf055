"""Chapter 04, *ASH-RAND: random values for the survivors* (notebooks/04_ash_rand.ipynb): its parameters."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ashlib.book.chapters import ChapterParameters, parameter
from ashlib.book.chapters import _common as common
from ashlib.book.params import accepts


@dataclass(frozen=True)
class Parameters(ChapterParameters):
    """The parameters of notebooks/04_ash_rand.ipynb (its parameters cell is rendered from these)."""

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
    rand_percentiles: list = parameter([65, 70, 75, 80, 85, 90], "Table 4's p values (plus 85)", accepts.percentiles)
    seeds: list = parameter([0, 1, 2, 3, 4], "ASH-RAND repetitions", accepts.seeds)
    train_seeds: Optional[list] = common.train_seeds()
