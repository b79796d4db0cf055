"""Chapter 05, *Neuron activation coverage (NAC)* (notebooks/05_nac.ipynb): its parameters."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ashlib.book.chapters import ChapterParameters, parameter
from ashlib.book.chapters import _common as common
from ashlib.book.params import accepts


@dataclass(frozen=True)
class Parameters(ChapterParameters):
    """The parameters of notebooks/05_nac.ipynb (its parameters cell is rendered from these)."""

    benchmark: str = common.benchmark()
    model: Optional[str] = parameter(None, "None: the benchmark's network (smallresnet, densenet100, resnet50; not mobilenet_v2)", accepts.nac_model)
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
    n_train: Optional[int] = parameter(None, "ID train images (class-balanced) NAC may use; None: the benchmark's", accepts.subset)
    n_test: Optional[int] = common.n_test()
    n_ood: Optional[int] = common.n_ood()
    num_workers: Optional[int] = common.num_workers()
    n_fit: int = parameter(1000, "class-balanced ID training images the NAC-UE histograms are fitted on (official: 1,000)", accepts.n_fit)
    nac_layers: Optional[list] = parameter(None, "layers to use; None: the official four (avgpool, layer3, layer2, layer1, as named in the network)", accepts.nac_layers)
    nac_search_set: Optional[str] = parameter(None, "None: the official per-layer values; an OOD set: search them on it as the official `aps` mode", accepts.nac_search_set)
    snapshot_epochs: list = parameter([1, 2, 4, 6, 9, 12], "NAC-ME: checkpoints along one training run", accepts.snapshot_epochs)
    shift_kind: str = parameter("rotate", "covariate shift for NAC-ME: \"rotate\" (degrees) or \"rescale\" (factor)", accepts.shift_kind)
    shift_amount: float = parameter(35.0, "the shift's size: degrees (rotate) or a factor (rescale)", accepts.shift_amount)


# -------------------------------------------------------------------------------------------------- cost


def cost(params: dict, work) -> tuple[float, int, list[str]]:
    """This chapter's work beyond the cached features (:func:`ashlib.book.estimate.chapters`): NAC-UE's
    neuron states, in image passes."""
    n, test_and_ood = work.n, work.test_and_ood
    n_fit = min(params.get("n_fit") or 1000, n["train"])
    # neuron states need a forward and a backward pass: the fitting images, the test and OOD images,
    # and the training images left out of the fit (the overfitting check)
    nac = 2 * (n["train"] + test_and_ood)
    return nac, 0, [f"NAC-UE: forward and backward passes over {n_fit:,} training images to fit, the "
                    f"{test_and_ood:,} test and OOD images, and the other {n['train'] - n_fit:,} training "
                    "images for the overfitting check"]
