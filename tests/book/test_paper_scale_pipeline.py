"""The paper-scale code path end to end, on synthetic images and random weights (nothing downloads):
Dataset-backed benchmarks -> cached features -> every method of the paper's tables."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from ashlib import ParameterError
from ashlib.evaluation import experiments
from ashlib.book import runs
from ashlib.assets.data import ArrayImages, DataNotFoundError
from ashlib.assets.models import block_merge_layers, build_model, model_for


def fake_benchmark(num_classes: int, side: int, n: int = 12, seed: int = 0):
    rng = np.random.default_rng(seed)
    arrays = {name: rng.integers(0, 256, size=(n, 3, side, side), dtype=np.uint8)
              for name in ("train", "test", "ood_a", "ood_b")}
    data = {name: ArrayImages(a, np.arange(n), cache_key=f"fake-{side}-{name}") for name, a in arrays.items()}
    labels = torch.arange(n) % num_classes
    return SimpleNamespace(x_train=data["train"], y_train=labels, x_test=data["test"], y_test=labels,
                           ood={"a": data["ood_a"], "b": data["ood_b"]}, num_classes=num_classes)


@pytest.mark.parametrize("name, num_classes, side, everything", [
    ("mobilenet_v2", 6, 64, True), ("densenet100", 10, 32, False), ("resnet50", 6, 32, False)])
def test_paper_models_run_the_methods_from_datasets(name, num_classes, side, everything):
    """Every method of the paper's tables on one network; the feature, shaping and placement paths
    on the others (the full grid on DenseNet/ResNet-50 is slow on a CPU)."""
    model = build_model(name, num_classes).eval()
    bench = fake_benchmark(num_classes, side)
    ctx = experiments.build_context(model, bench, batch_size=12)
    methods = experiments.paper_methods({"P": 90, "B": 95, "S": 95}) if everything else [
        experiments.Method("msp"), experiments.ash("S", 90, react=True)]
    methods += [experiments.ash("S", 90, threshold="global"), experiments.ash("RAND", 80),
                experiments.ash("P", 90, placement=block_merge_layers(model)[-1])]
    res = experiments.evaluate(methods, ctx, progress=False)
    assert len(res) == len(methods) * 3  # two OOD sets + the average
    assert res[["FPR95", "AUROC", "AUPR-In", "ID acc"]].notna().all().all()
    if everything:  # ODIN ran through the Dataset: its scores exist and differ from Softmax's
        by_method = res.set_index("method")
        assert not by_method.loc["ODIN", "AUROC"].equals(by_method.loc["Softmax", "AUROC"])


def test_model_follows_the_benchmark():
    assert model_for("mnist5k", None) == "smallresnet"
    assert model_for("cifar100", None) == "densenet100"
    assert model_for("imagenet", "mobilenet_v2") == "mobilenet_v2"
    with pytest.raises(ParameterError, match="model='resnet50' is not allowed for benchmark='cifar10'"):
        model_for("cifar10", "resnet50")


def test_prepare_on_a_paper_benchmark_without_its_data_says_what_to_download(tmp_path):
    with pytest.raises(DataNotFoundError, match="CIFAR-10|cifar10"):
        runs.prepare(benchmark="cifar10", data_root=str(tmp_path))
