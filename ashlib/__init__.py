"""ashlib: activation shaping (ASH), OOD scores and metrics, with the benchmarks of the ashbook."""
from __future__ import annotations

import os
from pathlib import Path

from ashlib._checks import ParameterError

__all__ = ["ParameterError", "cache_dir"]
__version__ = "0.1.0"


def cache_dir(*parts: str) -> Path:
    """Folder for cached weights, activations and data; ``$ASHLIB_CACHE`` or ``~/.cache/ashlib``."""
    root = Path(os.environ.get("ASHLIB_CACHE", Path.home() / ".cache" / "ashlib")).expanduser()
    path = root.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path
