"""Chapter 00, *A faithful miniature: the benchmark* (notebooks/00_benchmark.ipynb): its parameters."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ashlib.book.chapters import ChapterParameters, parameter
from ashlib.book.chapters import _common as common
from ashlib.book.params import accepts


@dataclass(frozen=True)
class Parameters(ChapterParameters):
    """The parameters of notebooks/00_benchmark.ipynb (its parameters cell is rendered from these)."""

    benchmark: str = parameter("mnist5k", "the embedded benchmark whose preprocessing is chosen here", accepts.embedded_benchmark)
    width: int = common.width()
    expansion: Optional[int] = common.expansion()
    epochs: int = common.epochs()
    device: str = common.device()
    batch_size: int = common.batch_size()
    seed: int = common.seed()
    fpr_convention: str = common.fpr_convention()
    data_root: Optional[str] = parameter(None, "where Fashion-MNIST may be (default: $ASHLIB_CACHE/data, then Debian's package)", accepts.optional_str)
    results_dir: Optional[str] = common.results_dir()
    candidates: list = parameter(["raw", "match", "standardize"], "preprocessings compared, least intervention first", accepts.candidates)
    second_benchmark: Optional[str] = parameter("fmnist", "a benchmark of dense images compared beside them (None: skip)", accepts.second_benchmark)
    scale_factors: list = parameter([0.25, 0.5, 1, 2, 4, 8, 16], "input multipliers of the scaling experiment", accepts.scale_factors)
    n_scaled: int = parameter(200, "images per set in the scaling experiment", accepts.positive_int)
    network_candidates: list = parameter([512, 1024, 2048], "penultimate units of the expansion heads compared with no head (the network choice)", accepts.units)
