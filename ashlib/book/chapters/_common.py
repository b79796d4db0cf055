"""The parameters several chapters share, each declared here once: ``device: str = common.device()`` in
a chapter's ``Parameters``. A chapter whose parameter means something else declares its own."""
from __future__ import annotations

from dataclasses import Field, dataclass
from typing import Optional

from ashlib.book.chapters import ChapterParameters, parameter
from ashlib.book.params import accepts


def benchmark() -> Field:
    return parameter("mnist5k", "mnist5k, fmnist (embedded); cifar10, cifar100, imagenet (paper scale)", accepts.benchmark)


def width() -> Field:
    return parameter(16, "smallresnet: channels of the first stage (8 * width channels before the head)", accepts.positive_int)


def expansion() -> Field:
    return parameter(None, "smallresnet: a 1x1 expansion head to this many penultimate units (0: none); None: the default (chapter 00)", accepts.expansion)


def epochs() -> Field:
    return parameter(12, "smallresnet: training epochs (only when no cached checkpoint matches)", accepts.positive_int)


def device() -> Field:
    return parameter("cpu", "\"cpu\", \"cuda\", \"cuda:N\" or \"mps\"", accepts.device)


def batch_size() -> Field:
    return parameter(256, "batch size for feature extraction", accepts.positive_int)


def seed() -> Field:
    return parameter(0, "data split, OOD sets and training seed", accepts.seed)


def fpr_convention() -> Field:
    return parameter("paper", "\"paper\": the official code (OOD strictly above the 5% ID quantile); \"roc\": ties counted; \"openood\": ID rejected at 95% OOD recall", accepts.convention)


def data_root() -> Field:
    return parameter(None, "paper-scale data sets (default: $ASHLIB_CACHE/data; see data_manifest.yaml)", accepts.optional_str)


def results_dir() -> Field:
    return parameter(None, "save result tables here as CSV (`python -m ashlib run` sets it)", accepts.optional_str)


def model() -> Field:
    return parameter(None, "None: the benchmark's network (smallresnet, densenet100, resnet50)", accepts.model)


def checkpoint() -> Field:
    return parameter(None, "a local weights file for the paper's pretrained networks", accepts.checkpoint)


def preprocessing() -> Field:
    return parameter(None, "embedded benchmarks: \"raw\", \"match\" or \"standardize\"; None: the default (chapter 00)", accepts.preprocessing)


def compare() -> Field:
    return parameter([], "profiles to check this chapter's claims on as well, e.g. [embedded-raw, fmnist]", accepts.compare)


def n_train() -> Field:
    return parameter(None, "ID train images (class-balanced) for fitting statistics; None: the benchmark's", accepts.subset)


def n_test() -> Field:
    return parameter(None, "ID test images (class-balanced); None: the whole test set, as the paper", accepts.subset)


def n_ood() -> Field:
    return parameter(None, "images per OOD set; None: the benchmark's (embedded: 1,000; paper scale: all)", accepts.optional_positive_int)


def num_workers() -> Field:
    return parameter(None, "data-loading processes for image files; None: the machine's cores (at most 8)", accepts.num_workers)


def train_seeds() -> Field:
    return parameter(None, "training seeds the claims average over; None: seed and the next two (a pretrained network: its own)", accepts.train_seeds)


@dataclass(frozen=True)
class ASHChapterParameters(ChapterParameters):
    """The parameters the ASH chapters (01-04) share, in the order their parameters cells list them
    first: the benchmark, the network, the run and the subsets."""

    benchmark: str = benchmark()
    model: Optional[str] = model()
    width: int = width()
    expansion: Optional[int] = expansion()
    epochs: int = epochs()
    device: str = device()
    batch_size: int = batch_size()
    seed: int = seed()
    fpr_convention: str = fpr_convention()
    data_root: Optional[str] = data_root()
    checkpoint: Optional[str] = checkpoint()
    results_dir: Optional[str] = results_dir()
    preprocessing: Optional[str] = preprocessing()
    compare: list = compare()
    n_train: Optional[int] = n_train()
    n_test: Optional[int] = n_test()
    n_ood: Optional[int] = n_ood()
    num_workers: Optional[int] = num_workers()
