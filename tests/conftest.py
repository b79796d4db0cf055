"""Shared fixtures: every test gets its own empty cache folder unless it asks for the project's."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

import ashlib.book  # noqa: F401  before torch loads OpenMP: its idle threads sleep (ashlib._threads.passive_waiting)
from torch.utils.data import Dataset


class _ImageSet(Dataset):
    """Images without labels, item by item: how the loaders hand over image folders."""

    def __init__(self, x):
        self.x = x

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i]


def _band_benchmark(seed: int):
    """A tiny 3-class benchmark: 28x28 noise with a bright band whose height gives the class; 90 train
    and 30 test images, OOD sets "noise" (25) and "dark" (20), all drawn from one seeded generator."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    y = torch.arange(120) % 3
    x = torch.rand(120, 1, 28, 28, generator=gen) * 0.3
    for c in range(3):  # class c: a bright horizontal band at height 4 + 7c
        x[y == c, :, 4 + 7 * c:11 + 7 * c, 6:22] += 0.7
    return SimpleNamespace(x_train=x[:90], y_train=y[:90], x_test=x[90:], y_test=y[90:], num_classes=3,
                           ood={"noise": torch.rand(25, 1, 28, 28, generator=gen),
                                "dark": torch.rand(20, 1, 28, 28, generator=gen) * 0.2})


@pytest.fixture(scope="session")
def band_benchmark():
    """The tiny banded benchmark of the experiment tests, by seed (:func:`_band_benchmark`)."""
    return _band_benchmark


@pytest.fixture
def image_set():
    """Wrap an image tensor as a plain Dataset, to check that a function given one matches the tensor."""
    return _ImageSet


@pytest.fixture(autouse=True)
def isolated_cache(request, tmp_path, monkeypatch):
    """Point $ASHLIB_CACHE at a fresh folder, so tests never read or write the book's cache.

    Tests marked ``project_cache`` keep the caller's $ASHLIB_CACHE (the Makefile sets it to
    ``.cache``), so the checkpoint trained there is shared with the book build.
    """
    if "project_cache" not in request.keywords:
        monkeypatch.setenv("ASHLIB_CACHE", str(tmp_path / "cache"))


def pytest_configure(config):
    config.addinivalue_line("markers", "project_cache: use the project's $ASHLIB_CACHE, not a temporary one")
