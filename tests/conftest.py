"""Shared fixtures: every test gets its own empty cache folder unless it asks for the project's."""
from __future__ import annotations

import pytest
from torch.utils.data import Dataset


class _ImageSet(Dataset):
    """Images without labels, item by item: how the loaders hand over image folders."""

    def __init__(self, x):
        self.x = x

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i]


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
