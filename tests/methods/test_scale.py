"""SCALE against a hand-worked example and the official definition, and as a registered shaping."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ashlib import ParameterError
from ashlib.evaluation import experiments
from ashlib.methods import registry
from ashlib.methods.scale import scale
from ashlib.methods.shaping import ash_s


def official_scale(x: np.ndarray, percentile: float) -> np.ndarray:
    """The official ``scale`` (SCALE repo, ``scale_net.py``), sample by sample: s1 the sum, s2 the sum
    of the k = n - round(n * p / 100) largest values, every value times exp(s1 / s2)."""
    flat = x.reshape(len(x), -1).astype(np.float64)
    n = flat.shape[1]
    k = n - int(np.round(n * percentile / 100.0))
    out = np.empty_like(flat)
    for i, row in enumerate(flat):
        s2 = np.sort(row)[::-1][:k].sum()
        out[i] = row * math.exp(row.sum() / s2)
    return out.reshape(x.shape)


def test_a_hand_worked_sample():
    x = torch.tensor([[1.0, 2.0, 3.0, 4.0]])
    # p = 50 keeps the 2 largest: s1 = 10, s2 = 3 + 4 = 7; every value is scaled, none pruned
    torch.testing.assert_close(scale(x, 50), x * math.exp(10 / 7))
    # p = 0 keeps everything: s1 / s2 = 1
    torch.testing.assert_close(scale(x, 0), x * math.e)


@pytest.mark.parametrize("shape", [(6, 40), (5, 8, 3, 3)])
@pytest.mark.parametrize("percentile", [10, 65, 85, 95])
def test_equals_the_official_definition(shape, percentile):
    x = torch.relu(torch.randn(*shape, generator=torch.Generator().manual_seed(percentile)))
    x[0] += 0.1  # one sample without zeros
    expected = official_scale(x.numpy(), percentile)
    np.testing.assert_allclose(scale(x, percentile).numpy(), expected, rtol=1e-5)


def test_equals_ash_s_on_the_kept_values_and_keeps_the_rest():
    x = torch.relu(torch.randn(7, 50, generator=torch.Generator().manual_seed(3))) + 0.01
    s, a = scale(x, 80), ash_s(x, 80)
    kept = a != 0
    torch.testing.assert_close(s[kept], a[kept])
    assert (s[~kept] > 0).all() and (s / x).std(dim=1).max() < 1e-4  # one factor per sample


def test_global_threshold_input_untouched_and_degenerate_rows():
    x = torch.tensor([[0.5, 1.0, 2.0], [0.0, 0.0, 0.0]], dtype=torch.float64)
    before = x.clone()
    out = scale(x, threshold=1.0)  # row 0: s2 = 1 + 2 = 3, s1 = 3.5; row 1: nothing left
    torch.testing.assert_close(out, torch.stack([x[0] * math.exp(3.5 / 3), torch.zeros(3, dtype=torch.float64)]))
    assert out.dtype == torch.float64 and torch.equal(x, before)
    assert torch.equal(scale(x, 100), torch.zeros_like(x))


def test_bad_arguments_are_named():
    x = torch.rand(2, 5)
    with pytest.raises(ParameterError, match="percentile=150"):
        scale(x, 150)
    with pytest.raises(ParameterError, match="both given"):
        scale(x, 50, threshold=1.0)
    with pytest.raises(ParameterError, match="x with shape"):
        scale(torch.rand(5), 50)


def test_registered_and_evaluated_like_ash():
    entry = registry.shaping("scale")
    assert entry.shape is scale and entry.label == "SCALE"
    method = experiments.shaped("scale", 85)
    assert method.label == "SCALE@85" and method.family == "SCALE" and method.shaping == "scale"
