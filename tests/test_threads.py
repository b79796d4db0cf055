"""Processes that ashlib runs side by side (a class graded, a matrix's local jobs) share the cores."""
from __future__ import annotations

import os

from ashlib import _threads, matrix


def test_processes_side_by_side_share_the_cores_and_the_user_setting_wins(monkeypatch):
    monkeypatch.setattr(_threads, "cpus", lambda: 8)
    assert [_threads.share(n) for n in (1, 2, 3, 8, 20)] == [8, 4, 2, 1, 1]
    env = _threads.environment(2, base={"MKL_NUM_THREADS": "6"})
    assert env == {"OMP_NUM_THREADS": "2", "OPENBLAS_NUM_THREADS": "2", "NUMBA_NUM_THREADS": "2"}


def test_a_local_matrix_job_passes_its_share_to_its_kernels(monkeypatch):
    seen = {}
    monkeypatch.setattr(matrix.pipeline, "run", lambda *a, **k: seen.update(os.environ))
    monkeypatch.setattr(os, "environ", {k: v for k, v in os.environ.items() if k not in _threads.THREAD_VARIABLES})
    matrix.run_cell("embedded", ["03_global_vs_local"], "unused", {}, threads=3)
    assert all(seen[name] == "3" for name in _threads.THREAD_VARIABLES)
