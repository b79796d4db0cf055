"""ASH-S on magnitudes against a hand-worked example, a NumPy computation, and ASH-S itself."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ashlib import ParameterError
from ashlib.methods import registry
from ashlib.methods.magnitude import ash_s_magnitude
from ashlib.methods.shaping import ash_s


def test_hand_worked_example():
    # n = 4, p = 50: k = 2 kept, the magnitudes 5 and 3; s1 = 3 + 5 + 1 + 0.5 = 9.5, s2 = 8
    x = torch.tensor([[3.0, -5.0, 1.0, -0.5]], dtype=torch.float64)
    f = math.exp(9.5 / 8)
    assert torch.allclose(ash_s_magnitude(x, 50), torch.tensor([[3 * f, -5 * f, 0.0, 0.0]], dtype=torch.float64))


def test_equals_ash_s_on_non_negative_input():
    x = torch.rand(64, 100, generator=torch.Generator().manual_seed(0)) * (torch.rand(64, 100) > 0.3)
    for p in (0, 50, 90, 99):
        assert torch.equal(ash_s_magnitude(x, p), ash_s(x, p))


def test_against_numpy_on_signed_features():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(50, 64)) * rng.gamma(1.0, size=(50, 1))
    for p in (10, 65, 90):
        k = 64 - round(64 * p / 100)
        want = np.zeros_like(x)
        for i, row in enumerate(x):
            top = np.argsort(-np.abs(row), kind="stable")[:k]
            want[i, top] = row[top] * np.exp(np.abs(row).sum() / np.abs(row[top]).sum())
        assert np.allclose(ash_s_magnitude(torch.from_numpy(x), p).numpy(), want, rtol=1e-12)


def test_keeps_the_input_and_its_shape_and_rejects_a_global_threshold():
    x = torch.randn(3, 4, 2, 2)
    before = x.clone()
    out = ash_s_magnitude(x, 75)
    assert torch.equal(x, before) and out.shape == x.shape and out.dtype == x.dtype
    assert ((out != 0).reshape(3, -1).sum(1) == 4).all()  # 16 - round(12) kept per sample
    with pytest.raises(ParameterError, match=r"threshold=0\.5 is not allowed"):
        ash_s_magnitude(x, threshold=0.5)
    with pytest.raises(ParameterError, match="x must be a torch.Tensor"):
        ash_s_magnitude([[1.0]], 50)


def test_is_registered():
    entry = registry.shaping("ash_s_magnitude")
    assert entry.shape is ash_s_magnitude and entry.label == "ASH-S |x|"
