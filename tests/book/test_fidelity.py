"""ashlib.book.fidelity: the artifact's measurements and the rule that chooses the default preprocessing."""
from __future__ import annotations

import pandas as pd
import pytest
import torch
from torch import nn

from ashlib import ParameterError
from ashlib.book import fidelity, paper


def _rows(auroc: dict[str, float], method: str = "Energy") -> pd.DataFrame:
    sets = [*auroc, "Average"]
    values = [*auroc.values(), sum(auroc.values()) / len(auroc)]
    return pd.DataFrame({"method": method, "ood_set": sets, "AUROC": values})


def test_baseline_check_by_hand():
    ok = fidelity.baseline_check(_rows({"a": 90.0, "b": 80.0, "noise": 10.0}), sanity=["noise"])
    assert ok == {"worst set": "b", "worst AUROC": 80.0, "mean AUROC": 85.0, "passes": True}
    low_mean = fidelity.baseline_check(_rows({"a": 90.0, "b": 60.0}))
    assert low_mean["mean AUROC"] == 75.0 and not low_mean["passes"]
    below_chance = fidelity.baseline_check(_rows({"a": 99.0, "b": 99.0, "c": 49.0}))
    assert below_chance["mean AUROC"] > 80 and not below_chance["passes"]
    on_the_line = fidelity.baseline_check(_rows({"a": 50.0, "b": 100.0, "c": 100.0}))
    assert not on_the_line["passes"]  # "above chance" is strict
    with pytest.raises(ParameterError, match="baseline='Energy' is not allowed: no rows of it"):
        fidelity.baseline_check(_rows({"a": 90.0}, method="ReAct"))


def test_every_setting_of_the_paper_passes_the_check():
    quoted = fidelity.paper_baseline()
    assert set(quoted["setting"]) == {"CIFAR-10, DenseNet-101 (Table A2)", "CIFAR-100, DenseNet-101 (Table A3)",
                                      "ImageNet, ResNet-50 (Table 2)", "ImageNet, MobileNetV2 (Table 2)"}
    cifar10 = quoted[quoted.setting.str.startswith("CIFAR-10,")].set_index("ood_set")["AUROC"]
    assert cifar10["SVHN"] == paper.table_a2_a3("cifar10").loc["Energy", ("SVHN", "AUROC")] == 93.99
    for setting, rows in quoted.groupby("setting"):
        assert fidelity.baseline_check(rows)["passes"], setting


def test_choose_takes_the_first_passing_candidate_in_order_of_intervention():
    passes, fails = {"passes": True}, {"passes": False, "worst set": "x", "worst AUROC": 1.0, "mean AUROC": 2.0}
    assert fidelity.PREFERENCE == ("raw", "match", "standardize")
    assert fidelity.choose_preprocessing({"raw": fails, "match": passes, "standardize": passes}) == "match"
    assert fidelity.choose_preprocessing({"raw": passes, "match": passes, "standardize": passes}) == "raw"
    assert fidelity.choose_preprocessing({"raw": fails, "match": fails, "standardize": passes}) == "standardize"
    assert fidelity.choose_preprocessing({"standardize": passes, "match": fails},
                                         preference=("standardize", "match")) == "standardize"
    with pytest.raises(ParameterError, match="no preprocessing passes the baseline check: raw: worst x 1.0"):
        fidelity.choose_preprocessing({"raw": fails, "match": fails, "standardize": fails})
    with pytest.raises(ParameterError, match="preprocessing='match' was not measured"):
        fidelity.choose_preprocessing({"raw": fails})
    with pytest.raises(ParameterError, match="preprocessing='tanh'"):
        fidelity.choose_preprocessing({"tanh": passes}, preference=("tanh",))


def test_energy_grows_with_scale_exactly_as_for_a_positively_homogeneous_net():
    """Without biases a ReLU network is positively homogeneous, f(a x) = a f(x) (Hein et al., 2019):
    the energy of a scaled input is logsumexp(a f(x)), computed here independently."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(16, 8, bias=False), nn.ReLU(), nn.Linear(8, 3, bias=False))
    x = torch.rand(5, 1, 4, 4)
    before = x.clone()
    got = fidelity.energy_under_scaling(net, {"s": x}, [0.5, 1, 3], n=5)
    with torch.no_grad():
        logits = net(x)
    for f in (0.5, 1, 3):
        want = float(torch.logsumexp(f * logits, 1).mean())
        assert got[got.factor == f]["energy"].item() == pytest.approx(want, rel=1e-5)
        assert got[got.factor == f]["max logit"].item() == pytest.approx(float((f * logits).max(1).values.mean()),
                                                                       rel=1e-5)
    assert torch.equal(x, before)
    with pytest.raises(ParameterError, match="factors=.* expected positive numbers"):
        fidelity.energy_under_scaling(net, {"s": x}, [1, 0])


def test_energy_and_norm_one_row_per_image():
    net = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
    x = torch.tensor([[[[3.0, 4.0], [0.0, 0.0]]], [[[1.0, 0.0], [0.0, 0.0]]]])
    frame = fidelity.energy_and_norm(net, {"a": x, "b": x[:1]})
    assert frame["set"].tolist() == ["a", "a", "b"]
    assert frame["input norm"].tolist() == pytest.approx([5.0, 1.0, 5.0])
    with torch.no_grad():
        assert frame["energy"].iloc[0] == pytest.approx(float(torch.logsumexp(net(x[:1]), 1)))


def test_variant_methods_are_the_issue_list():
    labels = [m.label for m in fidelity.variant_methods(paper.PAPER_PERCENTILES["cifar10"])]
    assert labels == ["Energy", "ReAct", "Mahalanobis (penultimate)", "ASH-P@90", "ASH-B@95", "ASH-S@95"]
