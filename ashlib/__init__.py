"""ashlib: activation shaping (ASH), OOD scores and metrics, with the benchmarks of the ashbook.

The modules form layers, bottom to top (:data:`LAYERS`). A module imports only from its own layer or
a lower one, and no imports form a cycle, function-level imports included (tests/test_architecture.py):

1. foundation: ``__init__`` (this file), ``_checks``, ``cache``, ``_sandbox``, ``_threads``. Argument checks,
   the cache folder, self-verifying cache entries; the grader's guard inside a kernel (never imported);
   threads for processes run side by side.
2. method math: ``shaping`` (its compiled pass, ``_kernels``), ``scores``, ``metrics``, ``uncertainty``,
   ``placement``, ``detector``, ``scale``, ``magnitude``. Tensors in, tensors and numbers out.
3. assets: ``data``, ``fetch``, ``models``, ``features``. Benchmarks; finding, downloading and
   verifying files (in fetch alone); building networks; cached activations.
4. detectors on networks: ``mahalanobis``, ``nac``, ``misp``.
5. quoted results: ``paper``, ``related``, ``_tables``. The published numbers of the paper and the related
   works, quoted from their tables (``reference/*.csv``), never computed here.
6. orchestration: ``registry``, ``experiments``, ``params``, ``runs``, ``pipeline``, ``estimate``,
   ``rehearsal``, ``fidelity``, ``claims``, ``classroom``, ``matrix``, ``transformer``, ``when_ash_helps``. Tables of methods,
   the notebooks' parameters and profiles, runs; assignments for a class (nbgrader); many runs as jobs
   (submitit); the vision-transformer chapter's setup and claims; the statistics of the chapter *When does
   ASH help?*.
7. publishing: ``plots``, ``interactive``, ``__main__``. Figures (static, and interactive for the site) and
   the command line.
"""
from __future__ import annotations

import os
from pathlib import Path

from ashlib._checks import ParameterError
from ashlib._threads import passive_waiting

passive_waiting()  # before anything loads torch: OpenMP's idle threads sleep instead of spin (see _threads)

__all__ = ["LAYERS", "ParameterError", "cache_dir"]
__version__ = "0.1.0"

#: The layers of the package, bottom to top, each with its modules (module docstring). A module may
#: be listed before it exists; every module that exists must be listed.
LAYERS: dict[str, tuple[str, ...]] = {
    "foundation": ("__init__", "_checks", "cache", "_sandbox", "_threads"),
    "method math": ("shaping", "_kernels", "scores", "metrics", "uncertainty", "placement", "detector", "scale",
                    "magnitude"),
    "assets": ("data", "fetch", "models", "features"),
    "detectors on networks": ("mahalanobis", "nac", "misp"),
    "quoted results": ("paper", "related", "_tables"),
    "orchestration": ("registry", "experiments", "params", "runs", "pipeline", "estimate", "rehearsal", "fidelity",
                      "claims", "classroom", "matrix", "transformer", "when_ash_helps"),
    "publishing": ("plots", "interactive", "__main__"),
}


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
