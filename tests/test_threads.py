"""Processes that ashlib runs side by side (a class graded, a matrix's local jobs) share the cores."""
from __future__ import annotations

import os
import subprocess
import sys

from ashlib import _threads
from ashlib.book import matrix


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


def _python(code: str, **env: str) -> str:
    base = {k: v for k, v in os.environ.items() if k != _threads.WAIT_VARIABLE}
    return subprocess.run([sys.executable, "-c", code], env={**base, **env}, check=True,
                          capture_output=True, text=True).stdout.strip()


def test_import_ashlib_book_makes_openmp_wait_passively_unless_the_user_chose():
    show = "import os, ashlib.book; print(os.environ['OMP_WAIT_POLICY'], ashlib._threads.passive_waiting())"
    assert _python(show) == "PASSIVE True"
    assert _python(show, OMP_WAIT_POLICY="ACTIVE") == "ACTIVE False"
    late = "import os, torch, ashlib.book; print(os.environ['OMP_WAIT_POLICY'], ashlib._threads.passive_waiting())"
    assert _python(late) == "PASSIVE False"  # torch loaded OpenMP first: only child processes wait passively


def test_import_ashlib_alone_sets_no_wait_policy():
    science = ("import os, ashlib, ashlib.stats.metrics, ashlib.assets.models, ashlib.methods.registry, "
               "ashlib.evaluation.experiments; print(os.environ.get('OMP_WAIT_POLICY'))")
    assert _python(science) == "None"


def test_the_wait_policy_changes_no_trained_weight():
    train = ("import hashlib, torch, ashlib; from ashlib.assets.models import TrainRecipe, build_model, train; "
             "g = torch.Generator().manual_seed(0); x = torch.rand(96, 1, 28, 28, generator=g); y = torch.arange(96) % 10; "
             "m = train(build_model('smallresnet', 10, width=4, seed=0), x, y, TrainRecipe(epochs=1, batch_size=32, threads=2), "
             "progress=False); print(hashlib.sha256(b''.join(t.numpy().tobytes() for t in m.state_dict().values())).hexdigest())")
    weights = {policy: _python(train, OMP_WAIT_POLICY=policy, OMP_NUM_THREADS="2") for policy in ("ACTIVE", "PASSIVE")}
    assert len(weights["ACTIVE"]) == 64 and weights["ACTIVE"] == weights["PASSIVE"]
