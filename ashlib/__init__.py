"""ashlib: activation shaping (ASH), OOD scores and metrics, and the benchmarks they are measured on.

The science, in four subpackages, bottom to top (each imports only from those below it; the
contracts in ``pyproject.toml``, ``[tool.importlinter]``, are checked by ``lint-imports`` in the tests):

* :mod:`ashlib.stats`: the metrics (AUROC, FPR95, AUPR, accuracy) and their intervals.
* :mod:`ashlib.assets`: benchmarks and networks: data, downloads verified against the manifest,
  models, the cache, hooks at a layer (placements) and cached activations (features).
* :mod:`ashlib.methods`: the OOD methods, one module per paper (ASH, SCALE, NAC, MiSP, Mahalanobis,
  the classic scores), and the registry that names them.
* :mod:`ashlib.evaluation`: the evaluation engine: methods on a network and a benchmark, as tables.

Beside them, ``_checks`` (argument checks, :class:`ParameterError`) and ``_threads`` (thread pools of
processes run side by side) serve every layer.

The book machine, :mod:`ashlib.book` (running the chapters, profiles, quoted tables, claims, figures,
the classroom and the command line ``python -m ashlib``), sits on top. It imports the science, never the
reverse, and ``import ashlib`` never loads it: importing the science sets no environment variable and
reads no file outside the package.
"""
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
    try:
        path.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        blocking = next(p for p in [path, *path.parents] if p.exists() and not p.is_dir())
        raise ParameterError(f"ASHLIB_CACHE={str(root)!r} is not allowed: {blocking} is a file, not a folder; "
                             "expected a folder (created if missing).") from None
    except PermissionError:
        raise ParameterError(f"ASHLIB_CACHE={str(root)!r} is not allowed: {path} cannot be created here "
                             "(permission denied); expected a folder you may write.") from None
    return path
