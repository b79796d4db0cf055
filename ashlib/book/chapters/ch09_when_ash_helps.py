"""Chapter 09, *When does ASH help?* (notebooks/09_when_ash_helps.ipynb): its parameters."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ashlib.book.chapters import ChapterParameters, parameter
from ashlib.book.chapters import _common as common
from ashlib.book.params import accepts


@dataclass(frozen=True)
class Parameters(ChapterParameters):
    """The parameters of notebooks/09_when_ash_helps.ipynb (its parameters cell is rendered from these)."""

    benchmark: str = parameter("mnist5k", "mnist5k, fmnist (embedded: this chapter trains its networks)", accepts.embedded_benchmark)
    width: int = parameter(16, "smallresnet: channels of the first stage (8 * width penultimate units without a head)", accepts.positive_int)
    units: list = parameter([128, 512, 1024, 2048], "penultimate units of the networks: 8 * width (no head) or a 1x1 expansion head to that many (256 too, at more cost)", accepts.units)
    epochs: int = parameter(12, "training epochs of every network (only when no cached checkpoint matches)", accepts.positive_int)
    device: str = common.device()
    batch_size: int = common.batch_size()
    seed: int = parameter(0, "data split and OOD sets", accepts.seed)
    train_seeds: list = parameter([0], "training seeds of every network in this run (the book's budget: one)", accepts.train_seed_list)
    more_seeds: Optional[str] = parameter("runs/when-ash-helps-seeds", "earlier runs of this chapter (matrices/when_ash_helps.yaml) whose kept scores join as more seeds, when present; relative to the repository", accepts.optional_str)
    fpr_convention: str = common.fpr_convention()
    data_root: Optional[str] = parameter(None, "where Fashion-MNIST may be (default: $ASHLIB_CACHE/data, then Debian's package)", accepts.optional_str)
    results_dir: Optional[str] = common.results_dir()
    preprocessing: Optional[str] = common.preprocessing()
    percentile: Optional[float] = parameter(None, "ASH-S's p for the premise and the decomposition; None: the paper's for the benchmark (CIFAR's 95)", accepts.optional_percentile)
    percentiles: list = parameter([65, 80, 90, 95], "p of ASH-P, ASH-B, ASH-S and SCALE in the grid of gains", accepts.percentiles)
    second_benchmark: Optional[str] = parameter("fmnist", "the gains also on this benchmark, where its data are present (None: skip)", accepts.second_benchmark)
    second_units: list = parameter([512], "the networks on second_benchmark (the book's budget: the default width; [128, 512] adds one training)", accepts.units)
    snapshot_epochs: list = parameter([1, 2, 4, 6, 9, 12], "epochs of the default network's training traced in the redundancy section", accepts.snapshot_epochs)
