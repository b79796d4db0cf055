"""The run matrix (ashlib/book/matrix.py): cells and their folder names, the checks before any job, the
aggregation over seeds against a hand computation, the command line, and a 2 x 2 matrix run through
submitit's LocalExecutor (real processes) in which one cell's job is killed, then resumed."""
from __future__ import annotations

import json
import math
import os
import re
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from ashlib.book import matrix
from ashlib.book.cli import main
from ashlib._checks import ParameterError

ROOT = Path(__file__).parents[2]
#: a quick chapter: a small network (trained once into the cache), one percentile, no variant runs
#: A cell as cheap as the chapter allows: a tiny network, one p, no variant benchmarks, and the claims on
#: one training seed (the matrix machinery is under test here, not the chapter's numbers).
QUICK = {"epochs": 1, "width": 4, "percentiles": [90], "compare": [], "train_seeds": [0]}


def _checked(raw: dict) -> list[matrix.Cell]:
    spec = matrix.normalize(raw)
    cells = matrix.expand(spec)
    matrix.check(spec, cells)
    return cells


# ------------------------------------------------------------------------------------------- cells


def test_cells_are_profile_x_notebook_set_x_seed_x_grid_point_with_readable_stable_names():
    spec = matrix.normalize({"profiles": ["embedded", "embedded-raw"],
                             "notebooks": [["03_global_vs_local"], ["04_ash_rand", "01_methods"]],
                             "seeds": [0, 1], "grid": {"fpr_convention": ["paper", "roc"], "width": [8]},
                             "parameters": {"compare": []}})
    cells = matrix.expand(spec)
    assert len(cells) == 2 * 2 * 2 * 2
    assert [c.id for c in cells[:3]] == ["embedded__03_global_vs_local__seed=0__fpr_convention=paper__width=8",
                                         "embedded__03_global_vs_local__seed=0__fpr_convention=roc__width=8",
                                         "embedded__03_global_vs_local__seed=1__fpr_convention=paper__width=8"]
    assert cells[4].id == "embedded__04_ash_rand+01_methods__seed=0__fpr_convention=paper__width=8"
    assert cells[4].notebooks == ["04_ash_rand", "01_methods"]
    assert cells[-1].id == "embedded-raw__04_ash_rand+01_methods__seed=1__fpr_convention=roc__width=8"
    assert cells[-1].overrides == {"compare": [], "seed": 1, "fpr_convention": "roc", "width": 8}
    assert [c.id for c in matrix.expand(spec)] == [c.id for c in cells]  # stable
    # no seeds, no grid, the profile's notebooks ('all'); values written as folder names
    alone = matrix.expand(matrix.normalize({"profile": "embedded"}))
    assert [(c.id, c.overrides) for c in alone] == [("embedded__all", {})]
    assert alone[0].notebooks == list(yaml.safe_load((ROOT / "profiles/embedded.yaml").read_text())["notebooks"])
    assert matrix.cell_id("embedded", "04_ash_rand", 0, {"p": 90}) == "embedded__04_ash_rand__seed=0__p=90"
    assert matrix.cell_id("fmnist", "all", None, {"percentiles": [90, 95], "data_root": "/a b"}, "s") == \
        "fmnist__all__percentiles=90,95__data_root=-a-b"


BAD = [
    ({"profile": "embedded", "seed": [0]}, r"key='seed' is not allowed: expected one of 'profile', 'profiles'"),
    ({"notebooks": ["03_global_vs_local"]}, r"profile/profiles is not allowed as given: expected exactly one"),
    ({"profile": "nope"}, r"profile='nope' is not allowed: expected one of .*'embedded'"),
    ({"profile": "embedded", "notebooks": ["99_nope"]}, r"notebooks='99_nope' is not allowed: expected one of"),
    ({"profile": "embedded", "notebooks": "03_global_vs_local"}, r"notebooks='03_global_vs_local' is not allowed: "
                                                                 r"expected a list of notebook names"),
    ({"profile": "embedded", "seeds": [0, -1]}, r"seeds=\[0, -1\] is not allowed: expected a non-empty list of "
                                                r"distinct integers >= 0"),
    ({"profile": "embedded", "seeds": [0, 0]}, r"seeds=\[0, 0\] is not allowed"),
    ({"profile": "embedded", "grid": {"fpr_convention": "paper"}},
     r"grid.fpr_convention='paper' is not allowed: expected a non-empty list of values"),
    ({"profile": "embedded", "seeds": [0], "grid": {"seed": [1, 2]}},
     r"parameter 'seed' is not allowed in both seeds and grid"),
    ({"profile": "embedded", "grid": {"width": [8]}, "parameters": {"width": 16}},
     r"parameter 'width' is not allowed in both grid and parameters"),
    ({"profile": "embedded", "notebooks": ["03_global_vs_local"], "grid": {"fpr_convention": ["paper", "paper"]}},
     r"two cells would share the folder 'embedded__03_global_vs_local__fpr_convention=paper'"),
    ({"profile": "embedded", "notebooks": ["03_global_vs_local"], "grid": {"percentile_typo": [1]}},
     r"cell embedded__03_global_vs_local__percentile_typo=1: parameter 'percentile_typo' is not allowed: none "
     r"of the notebooks 03_global_vs_local declares it"),
    ({"profile": "embedded", "notebooks": ["03_global_vs_local"], "grid": {"fpr_convention": ["paper", "nope"]}},
     r"cell embedded__03_global_vs_local__fpr_convention=nope: 03_global_vs_local: fpr_convention='nope' is not "
     r"allowed"),
    ({"profile": "embedded", "notebooks": ["03_global_vs_local", "07_classroom"], "seeds": [0, 1]},
     r"seed_parameter='seed' is not allowed with notebook 07_classroom: it declares no parameter 'seed'.*"
     r"Expected one of its parameters \(sample_assignment, timeout\)"),
    ({"profile": "embedded", "notebooks": ["04_ash_rand"], "seeds": [0], "seed_parameter": "rand_seed"},
     r"seed_parameter='rand_seed' is not allowed with notebook 04_ash_rand"),
    ({"profile": "embedded", "executor": {"cluster": "pbs"}}, r"executor.cluster='pbs' is not allowed: expected "
                                                              r"one of 'local', 'slurm'"),
    ({"profile": "embedded", "executor": {"max_parallel": 0}}, r"executor.max_parallel=0 is not allowed"),
    ({"profile": "embedded", "executor": {"timeout_min": "1h"}},
     r"executor=.*'timeout_min': '1h'.* is not allowed: Parameter \"timeout_min\" expected type"),
    ({"profile": "embedded", "executor": {"cluster": "slurm", "slurm_partion": "gpu"}},
     r"is not allowed: Unknown argument 'partion' for executor 'slurm' in parameter 'slurm_partion'"),
]


@pytest.mark.parametrize("raw, message", BAD, ids=[re.sub(r"\W+", "-", m[:40]) for _, m in BAD])
def test_every_bad_matrix_is_refused_before_any_job_with_one_clear_message(raw, message):
    with pytest.raises(ParameterError, match=message):
        _checked(raw)


def test_a_cuda_device_is_checked_on_the_cluster_node_but_not_here():
    raw = {"profile": "embedded", "notebooks": ["03_global_vs_local"], "parameters": {"device": "cuda"}}
    import torch

    if not torch.cuda.is_available():
        with pytest.raises(ParameterError, match="device='cuda' is not available"):
            _checked(raw)
    assert len(_checked({**raw, "executor": {"cluster": "slurm", "slurm_partition": "gpu"}})) == 1


def test_the_readme_slurm_matrix_and_the_example_check_out():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"### Many runs: the matrix.*?```yaml\n(.*?)```", text, flags=re.S).group(1)
    slurm = yaml.safe_load(block)
    assert slurm["executor"]["cluster"] == "slurm" and {"slurm_partition", "gpus_per_node", "timeout_min"} <= set(
        slurm["executor"])
    assert len(_checked(slurm)) == len(slurm["seeds"]) * math.prod(len(v) for v in slurm["grid"].values())
    assert len(_checked(yaml.safe_load((ROOT / "matrices/example.yaml").read_text()))) == 6


# ------------------------------------------------------------------------------------- aggregation


def _table(rows):
    return pd.DataFrame(rows, columns=["method", "percentile", "AUROC", "FPR95"])


def test_aggregate_is_the_mean_and_sample_sd_over_seeds_by_a_hand_computation():
    paper = {"fpr_convention": "paper"}
    roc = {"fpr_convention": "roc"}
    tables = [
        (paper, _table([("Energy", 90, 80.0, 50.0), ("ASH", 90, 90.0, 30.0)])),  # seed 0
        (roc, _table([("Energy", 90, 70.0, 60.0), ("ASH", 90, 60.0, 40.0)])),
        (paper, _table([("Energy", 90, 84.0, 54.0), ("ASH", 90, 91.0, 20.0)])),  # seed 1
        (roc, _table([("ASH", 90, 62.0, 44.0), ("Energy", 90, 71.0, 61.0)])),  # rows in another order
        (paper, _table([("Energy", 90, 82.0, 58.0), ("ASH", 90, 92.0, 25.0)])),  # seed 2 (roc's failed)
    ]
    got = matrix.aggregate(tables)
    r2 = math.sqrt(2)
    expected = pd.DataFrame(
        [("paper", "Energy", 90, 82.0, 2.0, 54.0, 4.0, 3),  # (80+84+82)/3; sd sqrt((4+4+0)/2)
         ("paper", "ASH", 90, 91.0, 1.0, 25.0, 5.0, 3),
         ("roc", "Energy", 90, 70.5, 1 / r2, 60.5, 1 / r2, 2),  # two values: sd |a-b|/sqrt(2)
         ("roc", "ASH", 90, 61.0, r2, 42.0, 4 / r2, 2)],
        columns=["fpr_convention", "method", "percentile", "AUROC_mean", "AUROC_sd", "FPR95_mean", "FPR95_sd",
                 "n_seeds"])
    pd.testing.assert_frame_equal(got, expected, check_dtype=False)


def test_aggregate_matches_rows_by_position_without_key_columns_and_renames_a_label_that_is_a_column():
    a = pd.DataFrame({"p": [90, 95], "x": [1.0, 2.0], "ok": [True, False]})
    b = pd.DataFrame({"p": [90, 95], "x": [3.0, 6.0], "ok": [True, False]})
    got = matrix.aggregate([({"p": "g"}, a), ({"p": "g"}, b)])
    assert list(got.columns) == ["p (matrix)", "p", "x_mean", "x_sd", "ok", "n_seeds"]
    assert got["x_mean"].tolist() == [2.0, 4.0] and got["n_seeds"].tolist() == [2, 2]
    np.testing.assert_allclose(got["x_sd"], [np.std([1, 3], ddof=1), np.std([2, 6], ddof=1)])
    one = matrix.aggregate([({}, a)])  # one seed: nothing varies, the table as it was
    assert list(one.columns) == ["p", "x", "ok", "n_seeds"] and one["x"].tolist() == [1.0, 2.0]


def test_published_tables_have_no_nameless_column_and_read_back_as_written(tmp_path):
    """Issue 30: Run.publish writes every table through runs.as_columns, without pandas' nameless index."""
    from ashlib.book.runs import as_columns

    frame = pd.DataFrame({"AUROC": [1.5, 2.5]})
    named = frame.set_axis(pd.Index([85, 90], name="p"))
    wide = pd.DataFrame([[1.0, 2.0]], index=pd.Index(["ASH-B"], name="family"),
                        columns=pd.MultiIndex.from_tuples([("global", "AUROC"), ("local", "AUROC")], names=["threshold", None]))
    for name, table, columns in (("range", frame, ["AUROC"]), ("named", named, ["p", "AUROC"]),
                                 ("wide", wide, ["family", "global AUROC", "local AUROC"])):
        as_columns(name, table).to_csv(tmp_path / f"{name}.csv", index=False)
        assert (tmp_path / f"{name}.csv").read_text().splitlines()[0] == ",".join(columns)
        assert list(matrix.read_table(tmp_path / f"{name}.csv").columns) == columns
    assert matrix.read_table(tmp_path / "named.csv")["p"].tolist() == [85, 90]
    with pytest.raises(ParameterError, match=r"table 'labels' with an index without a name .*'ASH-S@90'.*rename_axis"):
        as_columns("labels", frame.set_axis(["ASH-S@90", "Energy"]))
    with pytest.raises(ParameterError, match=r"index 'AUROC' that is also a column"):
        as_columns("twice", frame.set_axis(pd.Index([1, 2], name="AUROC")))
    frame.to_csv(tmp_path / "old.csv")  # as ashlib wrote them before issue 30
    with pytest.raises(ParameterError, match=r"old.csv with a nameless first column is not allowed"):
        matrix.read_table(tmp_path / "old.csv")


# ------------------------------------------------------------------------------------ command line


def test_the_command_line_dry_run_lists_the_cells_and_runs_nothing(tmp_path, capsys):
    out = tmp_path / "m"
    assert main(["matrix", str(ROOT / "matrices/example.yaml"), "--out", str(out), "--dry-run"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"6 cells into {out} (0 complete, 6 to run); executor: cluster=local")
    assert lines[1].split()[:3] == ["embedded__03_global_vs_local__seed=0__fpr_convention=paper", "to", "run"]
    assert len(lines) == 7 and not out.exists()


def test_the_command_line_names_the_file_and_the_bad_key(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("profile: embedded\nseeds: [zero]\n")
    assert main(["matrix", str(bad), "--out", str(tmp_path / "m")]) == 2
    assert capsys.readouterr().err.strip() == (f"error: {bad}: seeds=['zero'] is not allowed: expected a non-empty "
                                               "list of distinct integers >= 0, e.g. [0, 1, 2].")


def test_a_failed_cell_is_told_in_one_line_from_its_run_or_its_job(tmp_path):
    from types import SimpleNamespace

    job = SimpleNamespace(job_id="12", state="FINISHED")
    failed = tmp_path / "cell.failed-20260101T000000"
    failed.mkdir()
    (failed / "run.json").write_text(json.dumps({"status": "failed", "failed_notebook": "03_global_vs_local",
                                                 "error": "ValueError: boom\n  a traceback line"}))
    assert matrix._error(job, RuntimeError("x"), failed) == "03_global_vs_local: ValueError: boom"
    trace = ("Job (task=0) failed during processing with trace:\n----------------------\n"
             "Traceback (most recent call last):\n  File \"x.py\", line 1, in <module>\n    check()\n"
             "ashlib._checks.ParameterError: device='cuda' is not available\n----------------------\n"
             "You can check full logs with 'job.stderr(0)' and 'job.stdout(0)'or at paths:\n  - a.err\n  - a.out")
    assert matrix._error(job, RuntimeError(trace), None) == ("ashlib._checks.ParameterError: device='cuda' is not "
                                                             "available")
    assert matrix._error(job, RuntimeError("Job 12 (task: 0) with path x\nhas not produced any output"), None) == (
        "job 12 ended without a result (FINISHED): killed, cancelled, or out of time or memory")


# ---------------------------------------------------------------------- acceptance: killed, resumed


def _kill_when_started(folder: Path, cell_id: str, killed: list, stop: threading.Event) -> None:
    """Kill the job of ``cell_id`` (SIGKILL, as an out-of-memory killer or a preemption would) as soon as
    its run starts: its staging folder is named after the job's process id."""
    while not stop.is_set():
        for staging in folder.glob(f".{cell_id}.running-*"):
            pid = int(staging.name.rsplit("-", 1)[1])
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
            return
        time.sleep(0.05)


@pytest.mark.project_cache
def test_a_killed_cell_is_reported_the_others_complete_and_the_rerun_runs_only_it(tmp_path):
    spec = dict(profile="embedded", notebooks=["03_global_vs_local"], seeds=[0, 1],
                grid={"fpr_convention": ["paper", "roc"]}, parameters=QUICK,
                executor={"cluster": "local", "timeout_min": 10})
    out = tmp_path / "matrix"
    victim = "embedded__03_global_vs_local__seed=1__fpr_convention=roc"
    killed, stop, lines = [], threading.Event(), []
    watcher = threading.Thread(target=_kill_when_started, args=(out, victim, killed, stop), daemon=True)
    watcher.start()
    try:
        first = matrix.run(spec, out, echo=lambda *a, **k: lines.append(" ".join(map(str, a))))
    finally:
        stop.set()
        watcher.join()
    assert killed, "the victim's job was never seen running"
    cells = {c["id"]: c for c in first["cells"]}
    assert len(cells) == 4 and first["failed"] == [victim]
    bad = cells[victim]
    assert bad["status"] == "failed" and "ended without a result" in bad["error"], bad
    assert Path(bad["log"]).is_file() and f".{victim}.running-" in bad["partial"] and bad["job_id"]
    assert not (out / victim).exists()
    for cid, cell in cells.items():
        if cid != victim:
            assert cell["status"] == "complete" and cell["error"] is None and cell["seconds"] > 0, cell
            assert json.loads((out / cid / "run.json").read_text())["status"] == "complete"
    assert json.loads((out / "matrix.json").read_text())["failed"] == [victim]
    assert sum(line.startswith("[submitted]") for line in lines) == 4
    assert any(line.startswith("[") and "FAILED] " + victim in line and "log: " in line for line in lines)
    assert sum("complete] " in line for line in lines) == 3

    jobs_before = set((out / "jobs").iterdir())
    second = matrix.run(spec, out, echo=lambda *a, **k: None)
    cells = {c["id"]: c for c in second["cells"]}
    assert second["failed"] == []
    assert {cid: c["status"] for cid, c in cells.items()} == {
        cid: "complete" if cid == victim else "skipped" for cid in cells}
    assert [c["job_id"] for c in cells.values() if c["job_id"]] == [cells[victim]["job_id"]]
    assert len(set((out / "jobs").iterdir()) - jobs_before) == 1

    # the aggregated tables are the mean and sample sd of the cells' own CSVs, per grid point
    assert set(second["aggregate"]) >= {"thresholds_results", "thresholds_ties"}
    for table in second["aggregate"]:
        agg = pd.read_csv(out / "aggregate" / f"{table}.csv")
        measured = [c[:-5] for c in agg.columns if c.endswith("_mean")]
        assert measured and (agg["n_seeds"] == 2).all()
        for convention in ("paper", "roc"):
            a, b = (matrix.read_table(out / f"embedded__03_global_vs_local__seed={s}__fpr_convention={convention}"
                                      / f"{table}.csv") for s in (0, 1))
            rows = agg[agg["fpr_convention"] == convention].reset_index(drop=True)
            assert len(rows) == len(a) == len(b)
            for column in measured:
                np.testing.assert_allclose(rows[f"{column}_mean"], (a[column] + b[column]) / 2)
                np.testing.assert_allclose(rows[f"{column}_sd"], (a[column] - b[column]).abs() / math.sqrt(2))
    assert "AUROC_mean" in pd.read_csv(out / "aggregate" / "thresholds_results.csv").columns
