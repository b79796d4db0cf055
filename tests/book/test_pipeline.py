"""The run pipeline: profiles, parameter plans, executing notebooks into a run folder, the book's toc."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest
import yaml

from ashlib import ParameterError
from ashlib.book import pipeline
from ashlib.book.cli import main
from ashlib.book.params import check_run_parameters
import bad_parameters


def test_every_profile_names_existing_notebooks_and_a_benchmark():
    assert {"embedded", "embedded-raw", "embedded-standardize", "fmnist", "cifar10", "cifar100",
            "imagenet"} <= set(pipeline.profiles())
    for name in pipeline.profiles():
        spec = pipeline.load_profile(name)
        assert set(spec["notebooks"]) <= set(pipeline.notebook_names())
        assert spec["defaults"]["benchmark"] in ("mnist5k", "fmnist", "cifar10", "cifar100", "imagenet")
        check_run_parameters(benchmark=spec["defaults"]["benchmark"], model=None, device="cpu", batch_size=1,
                             seed=0, preprocessing=spec["defaults"].get("preprocessing"),
                             compare=spec["defaults"].get("compare", []))


def test_the_embedded_profile_runs_every_chapter_and_compares_the_ash_chapters():
    plans = pipeline.plan("embedded")
    assert list(plans) == pipeline.notebook_names()
    assert plans["01_methods"]["compare"] == ["embedded-raw", "fmnist"]
    assert "compare" not in plans["05_nac"] and "compare" not in plans["00_benchmark"]
    assert pipeline.plan("embedded-raw", ["02_placements"])["02_placements"]["preprocessing"] == "raw"


def test_plan_merges_defaults_notebook_entries_overrides_and_device():
    plans = pipeline.plan("cifar10", ["01_methods", "03_global_vs_local"], device="cuda:1",
                          overrides={"percentile": 85}, check=False)  # no GPU here: plan, do not check
    assert plans["01_methods"] == {"benchmark": "cifar10", "batch_size": 512, "distribution_set": "Textures",
                                   "percentile": 85, "device": "cuda:1"}
    # a parameter the notebook does not declare is not passed to it
    assert "percentile" not in plans["03_global_vs_local"]
    assert pipeline.plan("embedded", ["04_ash_rand"])["04_ash_rand"]["device"] == "cpu"


def test_unknown_names_are_refused_with_what_is_allowed():
    with pytest.raises(ParameterError, match="parameter 'percentil' is not allowed"):
        pipeline.plan("embedded", ["01_methods"], overrides={"percentil": 85})
    with pytest.raises(ParameterError, match="profile='gpu'"):
        pipeline.load_profile("gpu")
    with pytest.raises(ParameterError, match="notebook='99_nope'"):
        pipeline.plan("embedded", ["99_nope"])
    assert main(["run", "--profile", "gpu"]) == 2


def test_values_are_read_like_papermill_yaml():
    assert pipeline.parse_value("85") == 85
    assert pipeline.parse_value("[70, 90]") == [70, 90]
    assert pipeline.parse_value("cuda") == "cuda"
    assert pipeline.parse_value("null") is None


def test_toc_keeps_only_the_chapters_of_the_run():
    toc = yaml.safe_load(pipeline.TOC.read_text())
    partial = pipeline._toc_for(toc, {"01_methods"})
    files = [c["file"] for part in partial["parts"] for c in part["chapters"]]
    assert files == ["run/01_methods", "results", "references"]  # results: the present chapters' sections
    full = pipeline._toc_for(toc, set(pipeline.notebook_names()))
    assert "results" in [c["file"] for part in full["parts"] for c in part["chapters"]]
    sections = pipeline.results_page({"01_methods"}, pipeline.BOOK / "_fragments")
    assert "## Methods (paper Tables 2 and 3)" in sections and "## Placements" not in sections


@pytest.mark.project_cache
def test_an_override_reaches_the_executed_notebook_and_its_csv(tmp_path, monkeypatch):
    """Issue acceptance: one notebook, a profile and an override -> an executed notebook and CSVs
    whose numbers follow the override (here: only the requested percentiles are evaluated); run again,
    it is reused. One training seed (``train_seeds``): the claims of the book's three would train two more
    networks in this test's empty cache."""
    import shutil

    snapshot = tmp_path / "ashlib"  # the digest of the package as it is now (others may be editing it)
    shutil.copytree(pipeline.SOURCES["ashlib"], snapshot, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setitem(pipeline.SOURCES, "ashlib", snapshot)
    lines = []
    out = pipeline.run("embedded", ["03_global_vs_local"], out=tmp_path / "run",
                       overrides={"percentiles": [80, 90], "compare": [], "train_seeds": [0]}, echo=lambda *a, **k: lines.append(a[0]))
    assert (out / "03_global_vs_local.ipynb").exists()
    results = pd.read_csv(out / "thresholds_results.csv")
    assert sorted(results["percentile"].unique()) == [80, 90]
    record = json.loads((out / "run.json").read_text())
    assert record["notebooks"]["03_global_vs_local"]["parameters"]["percentiles"] == [80, 90]
    assert lines[0].startswith("[1/1] 03_global_vs_local: running on cpu") and "done in" in lines[1]
    published = (out / "03_global_vs_local.ipynb").read_text()
    assert str(tmp_path) not in published and "results_dir = " not in published  # no machine path on the page
    assert record["status"] == "complete" and record["notebooks"]["03_global_vs_local"]["files"] == sorted(
        p.name for p in out.iterdir() if p.name != "run.json")
    # the same run again executes nothing: the notebook and its tables are reused as they are
    import papermill

    files = {p.name: p.read_bytes() for p in out.iterdir() if p.name != "run.json"}
    monkeypatch.setattr(papermill, "execute_notebook", lambda *a, **k: pytest.fail("executed again"))
    pipeline.run("embedded", ["03_global_vs_local"], out=out, overrides={"percentiles": [80, 90], "compare": [], "train_seeds": [0]},
                 echo=lambda *a, **k: lines.append(a[0]))
    assert lines[-2].startswith("[1/1] 03_global_vs_local: reused, inputs unchanged (digest ")
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.name != "run.json"} == files


# ----------------------------------------------------------------------------- all or nothing


def _fake_papermill(monkeypatch, fail_at=None, interrupt=False):
    """papermill.execute_notebook replaced by a stand-in that writes the output notebook and one CSV
    per notebook into its kernel's $ASHLIB_RESULTS_DIR (as the real notebooks do), and can fail half-way."""
    import time

    import papermill

    calls = []

    def execute(src, dst, parameters=None, **kwargs):
        name = Path(src).stem
        calls.append((name, dict(parameters or {})))
        results = Path(kwargs["kernel_manager_class"].extra_env["ASHLIB_RESULTS_DIR"])
        assert Path(dst).parent == results and results.name == f".{name}"
        (results / f"{name}_table.csv").write_text(f"x\n{parameters.get('seed', 0)}\n")
        Path(dst).write_text(json.dumps({"cells": [], "parameters": parameters}))
        if name == fail_at:
            if interrupt:
                raise KeyboardInterrupt
            raise RuntimeError("boom")
        if fail_at:  # side by side, the failure comes first: a notebook that then ends well still counts
            time.sleep(0.5)

    monkeypatch.setattr(papermill, "execute_notebook", execute)
    return calls


def _snapshot(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.mark.parametrize("interrupt", [False, True])
def test_a_failed_run_leaves_the_previous_folder_as_it_was(tmp_path, monkeypatch, interrupt):
    out = tmp_path / "runs" / "embedded"
    _fake_papermill(monkeypatch)
    pipeline.run("embedded", ["01_methods", "03_global_vs_local"], out=out, echo=lambda *a, **k: None)
    before = _snapshot(out)
    _fake_papermill(monkeypatch, fail_at="03_global_vs_local", interrupt=interrupt)
    with pytest.raises(KeyboardInterrupt if interrupt else pipeline.RunFailed, match=None if interrupt else "boom"):
        pipeline.run("embedded", ["01_methods", "03_global_vs_local"], out=out,
                     overrides={"seed": 7}, echo=lambda *a, **k: None)
    assert _snapshot(out) == before  # nothing of the failed run got in
    failed = [p for p in out.parent.iterdir() if p.name.startswith("embedded.failed-")]
    assert len(failed) == 1 and not [p for p in out.parent.iterdir() if ".running-" in p.name]
    record = json.loads((failed[0] / "run.json").read_text())
    assert record["status"] == ("interrupted" if interrupt else "failed")
    assert record["failed_notebook"] == "03_global_vs_local"
    assert list(record["notebooks"]) == ["01_methods", "03_global_vs_local"]  # what completed, what failed
    assert record["notebooks"]["01_methods"]["executed"] == "ran"
    assert record["notebooks"]["03_global_vs_local"]["status"] == "failed"
    _every_file_is_listed(failed[0], record)


def _every_file_is_listed(folder, record):
    """A failed run's run.json describes its folder: each file under the notebook that wrote it."""
    listed = [f for entry in record["notebooks"].values() for f in entry["files"]]
    assert sorted(listed) == sorted(p.name for p in folder.iterdir() if p.name != "run.json"), (listed, record)


def test_an_interrupted_runs_record_names_the_notebook_and_its_partial_files(tmp_path, monkeypatch):
    """Ctrl-C in the main thread (not in a notebook's): the notebook that was running is named, its
    partial files listed under it, beside the completed notebook's. A real SIGINT, sent to the main thread
    while the notebook's thread still runs: it wakes the main thread where it waits, as Ctrl-C does, with
    no race against a timer on a loaded machine."""
    import signal
    import threading
    import time

    import papermill

    def execute(src, dst, parameters=None, **kwargs):
        name = Path(src).stem
        results = Path(kwargs["kernel_manager_class"].extra_env["ASHLIB_RESULTS_DIR"])
        (results / f"{name}_table.csv").write_text("x\n1\n")
        Path(dst).write_text(json.dumps({"cells": []}))
        if name == "03_global_vs_local":
            signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)
            time.sleep(1)  # still running when the main thread stops the run

    monkeypatch.setattr(papermill, "execute_notebook", execute)
    # a process started in the background (`(make test &)`, a CI script) inherits SIGINT ignored
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    out = tmp_path / "runs" / "embedded"
    try:
        with pytest.raises(KeyboardInterrupt):
            pipeline.run("embedded", ["01_methods", "03_global_vs_local"], out=out, jobs=1, echo=lambda *a, **k: None)
    finally:
        signal.signal(signal.SIGINT, previous)
    failed = [p for p in out.parent.iterdir() if p.name.startswith("embedded.failed-")]
    assert len(failed) == 1 and not [p for p in out.parent.iterdir() if ".running-" in p.name]
    record = json.loads((failed[0] / "run.json").read_text())
    assert record["status"] == "interrupted" and record["failed_notebook"] == "03_global_vs_local"
    assert record["notebooks"]["03_global_vs_local"]["files"] == ["03_global_vs_local.ipynb", "03_global_vs_local_table.csv"]
    _every_file_is_listed(failed[0], record)


def test_a_killed_runs_hidden_folder_is_named_and_reported_by_the_next_run(tmp_path, monkeypatch):
    """SIGKILL leaves ``.<run>.running-<stamp>-<pid>``: the next run into the same folder renames it
    ``<run>.failed-<stamp>``, says so in its run.json and on one line; a live run's folder is left."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = int(done.stdout)  # a process that has ended
    out = tmp_path / "runs" / "embedded"
    out.parent.mkdir(parents=True)
    killed = out.parent / f".embedded.running-20260101T000000-{dead}"
    (killed / ".01_methods").mkdir(parents=True)
    (killed / ".01_methods" / "partial.csv").write_text("x\n")
    (killed / "run.json").write_text(json.dumps({"status": "running", "profile": "embedded", "overrides": {}}))
    alive = out.parent / f".embedded.running-20260101T000001-{os.getpid()}"
    alive.mkdir()
    _fake_papermill(monkeypatch)
    lines = []
    pipeline.run("embedded", ["01_methods"], out=out, echo=lambda *a, **k: lines.append(a[0]))
    recovered = out.parent / "embedded.failed-20260101T000000"
    assert recovered.is_dir() and not killed.exists() and alive.exists()
    record = json.loads((recovered / "run.json").read_text())
    assert record["status"] == "killed" and record["profile"] == "embedded"
    assert record["files"] == [".01_methods/partial.csv"] and f"process {dead}" in record["error"]
    assert lines[0] == (f"an earlier run into {out} (process {dead}, 20260101T000000) was killed before it "
                        f"finished; its partial output: {recovered}")


def test_ctrl_c_ends_the_command_without_a_traceback(monkeypatch, capsys):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "run", interrupted)
    assert main(["run", "03_global_vs_local"]) == 130
    assert capsys.readouterr().err == "interrupted\n"


def test_a_rerun_of_one_notebook_carries_the_others_over_and_leaves_nothing_stale(tmp_path, monkeypatch):
    out = tmp_path / "run"
    _fake_papermill(monkeypatch)
    pipeline.run("embedded", ["01_methods", "03_global_vs_local"], out=out, echo=lambda *a, **k: None)
    first = json.loads((out / "run.json").read_text())
    (out / "03_global_vs_local_table.csv").write_text("stale\n")  # must not survive the rerun
    (out / "stray.csv").write_text("not in run.json\n")
    pipeline.run("embedded", ["03_global_vs_local"], out=out, overrides={"seed": 3}, echo=lambda *a, **k: None)
    record = json.loads((out / "run.json").read_text())
    assert record["status"] == "complete" and set(record["notebooks"]) == {"01_methods", "03_global_vs_local"}
    assert record["notebooks"]["01_methods"]["carried_over_from"] == first["started"]
    assert record["notebooks"]["03_global_vs_local"]["overrides"] == {"seed": 3}
    listed = {f for entry in record["notebooks"].values() for f in entry["files"]}
    assert _snapshot(out).keys() == listed | {"run.json"}  # run.json describes exactly the files beside it
    assert (out / "03_global_vs_local_table.csv").read_text() == "x\n3\n"


def test_the_kernel_imports_this_checkouts_ashlib(tmp_path, monkeypatch):
    """Even when another ``ashlib`` comes first on the caller's PYTHONPATH."""
    import subprocess
    import sys

    other = tmp_path / "elsewhere" / "ashlib"
    other.mkdir(parents=True)
    (other / "__init__.py").write_text("WHERE = 'elsewhere'\n")
    monkeypatch.setenv("PYTHONPATH", str(other.parent))
    with pipeline.kernel_environment(tmp_path / "results"):
        import os

        env = dict(os.environ)
    assert env["ASHLIB_RESULTS_DIR"] == str(tmp_path / "results")
    where = subprocess.run([sys.executable, "-c", "import ashlib; print(ashlib.__file__)"], env=env,
                           capture_output=True, text=True, check=True).stdout.strip()
    assert Path(where).resolve() == (pipeline.ROOT / "ashlib" / "__init__.py").resolve()
    import os

    assert os.environ["PYTHONPATH"] == str(other.parent) and "ASHLIB_RESULTS_DIR" not in os.environ


def test_bad_values_stop_the_run_before_anything_runs(tmp_path, monkeypatch, capsys):
    calls = _fake_papermill(monkeypatch)
    assert main(["run", "--out", str(tmp_path / "r"), "01_methods", "05_nac", "-p", "n_fit", "0"]) == 2
    assert "error: 05_nac: n_fit=0 is not allowed: expected an integer >= 1." in capsys.readouterr().err
    assert main(["run", "--out", str(tmp_path / "r"), "01_methods", "-p", "sweep", "[1, 2"]) == 2
    assert "sweep='[1, 2' is not allowed: it is not valid YAML" in capsys.readouterr().err
    assert calls == [] and not (tmp_path / "r").exists()


def test_the_book_is_never_built_from_a_failed_run(tmp_path):
    folder = tmp_path / "embedded.failed-x"
    folder.mkdir()
    (folder / "01_methods.ipynb").write_text("{}")
    (folder / "run.json").write_text(json.dumps({"status": "failed"}))
    with pytest.raises(ParameterError, match="its run.json says the run is 'failed'"):
        pipeline.build_book(folder, book_dir=tmp_path / "book")


@pytest.mark.parametrize("profile", pipeline.profiles())
def test_every_profile_passes_every_notebooks_checks(profile):
    """A profile's parameters (with the notebooks' defaults for the rest) are valid for each of its
    notebooks (device forced to the CPU: no GPU here)."""
    plans = pipeline.plan(profile, device="cpu")
    assert set(plans) == set(pipeline.load_profile(profile)["notebooks"])


def test_the_site_gets_the_notebooks_without_their_stderr(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    nb = {"cells": [{"cell_type": "code", "source": "x", "metadata": {}, "execution_count": 1, "outputs": [
        {"output_type": "stream", "name": "stderr", "text": "/home/me/.venv/tqdm warning\n"},
        {"output_type": "stream", "name": "stdout", "text": "kept\n"}]}], "metadata": {}, "nbformat": 4,
          "nbformat_minor": 5}
    (run / "01_methods.ipynb").write_text(json.dumps(nb))
    target = tmp_path / "book" / "run"
    target.mkdir(parents=True)
    pipeline._without_stderr(run / "01_methods.ipynb", target / "01_methods.ipynb")
    copied = (target / "01_methods.ipynb").read_text()
    assert "/home/me" not in copied and "kept" in copied
    assert "/home/me" in (run / "01_methods.ipynb").read_text()  # the run folder keeps its log


# ----------------------------------------------------------------------------- cached notebooks


def _quiet(lines=None):
    return (lambda *a, **k: lines.append(a[0])) if lines is not None else (lambda *a, **k: None)


def _entries(out):
    return json.loads((out / "run.json").read_text())["notebooks"]


def test_a_second_run_with_nothing_changed_reuses_every_notebook(tmp_path, monkeypatch):
    out, names = tmp_path / "run", ["01_methods", "03_global_vs_local"]
    calls = _fake_papermill(monkeypatch)
    pipeline.run("embedded", names, out=out, echo=_quiet())
    first, files = _entries(out), {k: v for k, v in _snapshot(out).items() if k != "run.json"}
    assert [e["executed"] for e in first.values()] == ["ran", "ran"]
    assert {e["reason"] for e in first.values()} == {"not in the previous run"}
    lines = []
    pipeline.run("embedded", names, out=out, echo=_quiet(lines))
    assert len(calls) == 2  # nothing executed the second time
    second = _entries(out)
    for name in names:
        assert second[name]["executed"] == "reused" and second[name]["digest"] == first[name]["digest"]
        assert second[name]["reason"] == f"inputs unchanged (digest {first[name]['digest'][:12]})"
        assert second[name]["ran_at"] == first[name]["ran_at"] and second[name]["files"] == first[name]["files"]
    assert lines[:2] == [f"[{i}/2] {n}: reused, {second[n]['reason']}" for i, n in enumerate(names, 1)]
    assert {k: v for k, v in _snapshot(out).items() if k != "run.json"} == files
    pipeline.run("embedded", names, out=out, echo=_quiet(), force=True)
    assert len(calls) == 4 and {e["reason"] for e in _entries(out).values()} == {"forced (--force)"}


def test_a_changed_parameter_reruns_only_its_notebook(tmp_path, monkeypatch):
    out, names = tmp_path / "run", ["01_methods", "03_global_vs_local"]
    calls = _fake_papermill(monkeypatch)
    pipeline.run("embedded", names, out=out, echo=_quiet())
    lines = []
    pipeline.run("embedded", names, out=out, overrides={"percentile": 85}, echo=_quiet(lines))  # 01_methods only
    assert [c[0] for c in calls[2:]] == ["01_methods"]
    entries = _entries(out)
    assert entries["01_methods"]["executed"] == "ran" and entries["01_methods"]["reason"] == "its parameters changed"
    assert entries["03_global_vs_local"]["executed"] == "reused"
    assert "[1/2] 01_methods: running on cpu (its parameters changed) ..." in lines


def test_a_changed_notebook_reruns_only_itself(tmp_path, monkeypatch):
    import shutil

    notebooks = tmp_path / "notebooks"
    shutil.copytree(pipeline.NOTEBOOKS, notebooks)
    monkeypatch.setattr(pipeline, "NOTEBOOKS", notebooks)
    out, names = tmp_path / "run", ["01_methods", "03_global_vs_local"]
    calls = _fake_papermill(monkeypatch)
    pipeline.run("embedded", names, out=out, echo=_quiet())
    nb = json.loads((notebooks / "03_global_vs_local.ipynb").read_text())
    nb["cells"].append({"cell_type": "markdown", "id": "more", "metadata": {}, "source": "One more sentence."})
    (notebooks / "03_global_vs_local.ipynb").write_text(json.dumps(nb))
    pipeline.run("embedded", names, out=out, echo=_quiet())
    assert [c[0] for c in calls[2:]] == ["03_global_vs_local"]
    entries = _entries(out)
    assert entries["03_global_vs_local"]["reason"] == "the notebook changed"
    assert entries["01_methods"]["executed"] == "reused"


def test_a_changed_ashlib_source_reruns_every_notebook(tmp_path, monkeypatch):
    source = tmp_path / "ashlib"  # a stand-in for the package: its real files are never edited
    source.mkdir()
    (source / "scores.py").write_text("def energy(x):\n    return x\n")
    monkeypatch.setitem(pipeline.SOURCES, "ashlib", source)
    out, names = tmp_path / "run", ["01_methods", "03_global_vs_local"]
    calls = _fake_papermill(monkeypatch)
    pipeline.run("embedded", names, out=out, echo=_quiet())
    (source / "__pycache__").mkdir()
    (source / "__pycache__" / "scores.cpython-311.pyc").write_bytes(b"compiled")  # not a source
    pipeline.run("embedded", names, out=out, echo=_quiet())
    assert len(calls) == 2
    (source / "scores.py").write_text("def energy(x):\n    return -x\n")
    pipeline.run("embedded", names, out=out, echo=_quiet())
    assert sorted(c[0] for c in calls[2:]) == names  # side by side, in either order
    assert {e["reason"] for e in _entries(out).values()} == {"ashlib source changed"}


def test_a_notebook_whose_files_changed_or_whose_inputs_are_unrecorded_runs_again(tmp_path, monkeypatch):
    out, names = tmp_path / "run", ["01_methods", "03_global_vs_local"]
    calls = _fake_papermill(monkeypatch)
    pipeline.run("embedded", names, out=out, echo=_quiet())
    (out / "03_global_vs_local_table.csv").write_text("edited\n")
    pipeline.run("embedded", names, out=out, echo=_quiet())
    assert [c[0] for c in calls[2:]] == ["03_global_vs_local"]
    assert _entries(out)["03_global_vs_local"]["reason"] == "its files in the previous run are missing or changed"
    assert (out / "03_global_vs_local_table.csv").read_text() == "x\n0\n"
    record = json.loads((out / "run.json").read_text())  # a run folder of an older ashlib: no digests
    for entry in record["notebooks"].values():
        del entry["inputs"]
    (out / "run.json").write_text(json.dumps(record))
    pipeline.run("embedded", names, out=out, echo=_quiet())
    assert {e["reason"] for e in _entries(out).values()} == {"the previous run recorded no digest of its inputs"}


def test_a_failed_run_after_reused_notebooks_leaves_the_previous_folder_as_it_was(tmp_path, monkeypatch):
    out, names = tmp_path / "runs" / "embedded", ["01_methods", "03_global_vs_local"]
    _fake_papermill(monkeypatch)
    pipeline.run("embedded", names, out=out, echo=_quiet())
    before = _snapshot(out)
    (tmp_path / "other").mkdir()
    monkeypatch.setitem(pipeline.SOURCES, "profiles", tmp_path / "other")  # every notebook's inputs change
    calls = _fake_papermill(monkeypatch, fail_at="03_global_vs_local")
    with pytest.raises(pipeline.RunFailed, match="boom"):
        pipeline.run("embedded", names, out=out, echo=_quiet())
    # both ran again, longest first by the seconds the first run recorded (either order: they are tiny)
    assert _snapshot(out) == before and sorted(c[0] for c in calls) == names
    monkeypatch.undo()
    calls = _fake_papermill(monkeypatch, fail_at="03_global_vs_local")
    pipeline.run("embedded", names, out=out, echo=_quiet())  # the folder in place is still reused
    assert calls == [] and _snapshot(out).keys() == before.keys()


def test_the_inputs_name_the_data_present_and_the_packages(tmp_path, monkeypatch):
    monkeypatch.setenv("ASHLIB_CACHE", str(tmp_path / "cache"))
    before = pipeline.data_present()
    (tmp_path / "cache" / "data" / "fashion-mnist").mkdir(parents=True)
    assert pipeline.data_present()["data"] == before["data"] + ["fashion-mnist"]
    versions = pipeline.package_versions()
    assert versions["torch"] and versions["papermill"] and versions["python"]
    assert pipeline.shared_inputs(True)["rehearsal"] == "yes" and pipeline.shared_inputs(False)["rehearsal"] == "no"


def test_the_source_digest_covers_every_file_but_caches(tmp_path):
    source = tmp_path / "pkg"
    (source / "reference").mkdir(parents=True)
    (source / "a.py").write_text("x = 1\n")
    (source / "reference" / "t.csv").write_text("a\n1\n")
    digest = pipeline.files_digest(source)
    (source / "__pycache__").mkdir()
    (source / "__pycache__" / "a.cpython-311.pyc").write_bytes(b"\0")
    (source / ".a.py.swp").write_text("editor")
    assert pipeline.files_digest(source) == digest
    (source / "reference" / "t.csv").write_text("a\n2\n")  # package data counts
    assert pipeline.files_digest(source) != digest
    (source / "reference" / "t.csv").write_text("a\n1\n")
    (source / "reference" / "t.csv").rename(source / "t.csv")  # so does where a file is
    assert pipeline.files_digest(source) != digest


# ----------------------------------------------------------------------------- the site, built only when needed


def _book_and_run(tmp_path):
    """A copy of the book's sources and a run folder of one tiny executed notebook."""
    import shutil

    book = tmp_path / "book"
    shutil.copytree(pipeline.BOOK, book, ignore=shutil.ignore_patterns("_build", "run"))
    run = tmp_path / "run"
    run.mkdir()
    nb = {"cells": [{"cell_type": "markdown", "id": "a", "metadata": {}, "source": "# Methods"}], "metadata": {},
          "nbformat": 4, "nbformat_minor": 5}
    (run / "01_methods.ipynb").write_text(json.dumps(nb))
    (run / "methods_results.csv").write_text("x\n1\n")
    (run / "run.json").write_text(json.dumps({"profile": "embedded", "status": "complete", "started": "t0",
                                              "notebooks": {"01_methods": {"parameters": {"device": "cpu"}}}}))
    return book, run


def test_the_site_is_rebuilt_from_scratch_only_when_its_sources_or_run_changed(tmp_path, monkeypatch):
    builds = []

    def jupyter_book(cmd):  # stands in for a full build: writes the index and one page per build
        html = Path(cmd[2]) / "_build" / "html"
        html.mkdir(parents=True)
        (html / "index.html").write_text("site")
        (html / f"page{len(builds)}.html").write_text("a page of this build")
        builds.append(cmd)

    monkeypatch.setattr(pipeline, "_jupyter_book", jupyter_book)
    book, run = _book_and_run(tmp_path)
    lines = []
    index = pipeline.build_book(run, book, echo=_quiet(lines))
    assert len(builds) == 1 and (book / "_build" / "site.digest").is_file()
    record = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps({**record, "started": "t1"}))  # a rerun that reused everything
    assert pipeline.build_book(run, book, echo=_quiet(lines)) == index and len(builds) == 1
    assert lines[-2].startswith("the site is up to date") and (book / "run" / "run.json").read_text().count("t1")
    for change in (lambda: (run / "methods_results.csv").write_text("x\n2\n"),  # the run
                   lambda: (book / "intro.md").write_text((book / "intro.md").read_text() + "\nMore.\n"),  # a source
                   lambda: (run / "run.json").write_text(json.dumps({**record, "profile": "embedded-raw"}))):  # a page
        change()
        pipeline.build_book(run, book, echo=_quiet())
        pages = sorted(p.name for p in (book / "_build" / "html").glob("page*.html"))
        assert pages == [f"page{len(builds) - 1}.html"]  # a clean build: no page of an earlier one survives
    assert len(builds) == 4

    def failing(cmd):
        raise subprocess.CalledProcessError(1, cmd)

    import subprocess

    (run / "methods_results.csv").write_text("x\n3\n")
    monkeypatch.setattr(pipeline, "_jupyter_book", failing)
    with pytest.raises(subprocess.CalledProcessError):
        pipeline.build_book(run, book, echo=_quiet())
    monkeypatch.setattr(pipeline, "_jupyter_book", jupyter_book)
    pipeline.build_book(run, book, echo=_quiet())  # a failed build is never taken for a built site
    assert len(builds) == 5


def test_a_site_up_to_date_is_found_so_without_importing_torch(tmp_path, monkeypatch):
    """What makes a no-change `make book` quick: the check imports neither torch nor papermill."""
    import subprocess
    import sys

    def jupyter_book(cmd):
        (Path(cmd[2]) / "_build" / "html").mkdir(parents=True)
        (Path(cmd[2]) / "_build" / "html" / "index.html").write_text("site")

    monkeypatch.setattr(pipeline, "_jupyter_book", jupyter_book)
    book, run = _book_and_run(tmp_path)
    pipeline.build_book(run, book, echo=_quiet())
    code = (f"import sys; from ashlib.book import pipeline; pipeline.build_book({str(run)!r}, {str(book)!r}); "
            "print(sorted(m for m in ('torch', 'papermill', 'ashlib.book.params') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=pipeline.ROOT).stdout.splitlines()
    assert out[0].startswith("the site is up to date") and out[-1] == "[]"


# ----------------------------------------------------------------------------- notebooks side by side


def test_jobs_run_notebooks_side_by_side_each_kernel_with_its_share_of_the_cores(tmp_path, monkeypatch):
    """Two notebooks meet at a barrier inside their (stand-in) execution, which only works when they
    run at once; each kernel gets its own results folder and the cores divided between the two."""
    import threading

    import papermill

    from ashlib import _threads

    for name in _threads.THREAD_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    barrier, envs = threading.Barrier(2, timeout=30), {}

    def execute(src, dst, parameters=None, kernel_manager_class=None, **kwargs):
        envs[Path(src).stem] = kernel_manager_class.extra_env
        barrier.wait()
        Path(dst).write_text(json.dumps({"cells": []}))
        (Path(dst).parent / f"{Path(src).stem}.csv").write_text("x\n1\n")

    monkeypatch.setattr(papermill, "execute_notebook", execute)
    lines = []
    out = pipeline.run("embedded", ["01_methods", "03_global_vs_local"], out=tmp_path / "run", jobs=2,
                       echo=_quiet(lines))
    assert "2 notebooks to run, 2 at a time, " in lines[0]
    assert {n: e["files"] for n, e in _entries(out).items()} == {
        "01_methods": ["01_methods.csv", "01_methods.ipynb"],
        "03_global_vs_local": ["03_global_vs_local.csv", "03_global_vs_local.ipynb"]}
    assert {e["OMP_NUM_THREADS"] for e in envs.values()} == {str(_threads.share(2))}
    assert len({e["ASHLIB_RESULTS_DIR"] for e in envs.values()}) == 2
    barrier.reset()  # one at a time, the first waits for a second that never comes
    with pytest.raises(pipeline.RunFailed, match="BrokenBarrierError"):
        pipeline.run("embedded", ["01_methods", "03_global_vs_local"], out=tmp_path / "run", jobs=1,
                     force=True, echo=_quiet())
    with pytest.raises(ParameterError, match="jobs=0 is not allowed: expected an integer >= 1"):
        pipeline.run("embedded", ["01_methods"], out=tmp_path / "run", jobs=0, echo=_quiet())


def _tiny_notebook(folder: Path, name: str, code: str) -> None:
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(code)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, folder / f"{name}.ipynb")


def test_execute_gives_each_kernel_its_folder_and_stops_the_others_when_one_fails(tmp_path, monkeypatch):
    """Real kernels: each writes into its own $ASHLIB_RESULTS_DIR with the variables given; when one
    fails, the other (which would sleep for minutes) is interrupted, and the first error is raised."""
    import time

    import papermill

    monkeypatch.setattr(pipeline, "NOTEBOOKS", tmp_path)
    write = ("import os, pathlib\n"
             "pathlib.Path(os.environ['ASHLIB_RESULTS_DIR'], NAME + '.txt').write_text(os.environ['TINY'])\n")
    _tiny_notebook(tmp_path, "a", "NAME = 'a'\n" + write)
    _tiny_notebook(tmp_path, "b", "NAME = 'b'\n" + write)
    staging = tmp_path / "staging"
    staging.mkdir()
    done = {}
    pipeline.execute([("a", {}), ("b", {})], staging, jobs=2, env={"TINY": "given"},
                     finished=lambda name, seconds, files: done.setdefault(name, files))
    assert done == {"a": ["a.ipynb", "a.txt"], "b": ["b.ipynb", "b.txt"]}
    assert (staging / "a.txt").read_text() == "given" and sorted(p.name for p in staging.iterdir()) == [
        "a.ipynb", "a.txt", "b.ipynb", "b.txt"]

    _tiny_notebook(tmp_path, "slow", "import time\nfor _ in range(600):\n    time.sleep(0.5)")
    _tiny_notebook(tmp_path, "bad", "import time\ntime.sleep(3)\nraise ValueError('bad on purpose')")
    staging = tmp_path / "staging2"
    staging.mkdir()
    failed, t0 = [], time.perf_counter()
    with pytest.raises(papermill.PapermillExecutionError, match="bad on purpose"):
        pipeline.execute([("slow", {}), ("bad", {})], staging, jobs=2, failed=failed.append)
    assert time.perf_counter() - t0 < 120 and failed == ["bad"]  # not the 300 s the slow one would take
    assert sorted(p.name for p in staging.iterdir()) == ["bad.ipynb", "slow.ipynb"]  # partial output, no folder
    assert "KeyboardInterrupt" in (staging / "slow.ipynb").read_text()


def test_ctrl_c_stops_every_kernel_of_the_run(tmp_path, monkeypatch):
    """SIGINT (Ctrl-C) reaches the main thread, which waits for the notebooks: both kernels, each of
    which would sleep for minutes, are interrupted and their partial notebooks kept."""
    import os
    import signal
    import threading
    import time

    monkeypatch.setattr(pipeline, "NOTEBOOKS", tmp_path)
    for name in ("slow1", "slow2"):
        _tiny_notebook(tmp_path, name, "import time\nfor _ in range(600):\n    time.sleep(0.5)")
    staging = tmp_path / "staging"
    staging.mkdir()
    # Ctrl-C as a terminal delivers it: a process started in the background by a shell without job
    # control (`(make test &)`, a CI script) inherits SIGINT ignored, and the test's would never arrive
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    timer = threading.Timer(8, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    t0 = time.perf_counter()
    try:
        with pytest.raises(KeyboardInterrupt):
            pipeline.execute([("slow1", {}), ("slow2", {})], staging, jobs=2)
    finally:
        timer.cancel()
        signal.signal(signal.SIGINT, previous)
    assert time.perf_counter() - t0 < 120
    assert sorted(p.name for p in staging.iterdir()) == ["slow1.ipynb", "slow2.ipynb"]


# ------------------------------------------------------------------------------------ fail fast

def test_notebook_parameters_agree_with_papermills_inspection():
    """:func:`pipeline.notebook_parameters` reads the parameters cell with ast; papermill's own
    inspection must find the same names, types, defaults and help, in the same order."""
    import papermill

    for name in pipeline.notebook_names():
        ours = pipeline.notebook_parameters(name)
        theirs = papermill.inspect_notebook(str(pipeline.NOTEBOOKS / f"{name}.ipynb"))
        assert list(ours) == list(theirs), name
        for key, spec in theirs.items():
            assert ours[key]["default"] == spec["default"], (name, key)
            assert ours[key]["inferred_type_name"] == spec["inferred_type_name"], (name, key)
            assert ours[key]["help"] == spec["help"], (name, key)


CASES = [(nb.stem, overrides, named) for nb in bad_parameters.NOTEBOOKS
         for overrides, named in bad_parameters.bad_cases(nb.stem)]


def test_every_bad_value_of_every_parameter_is_refused_by_run_before_a_kernel_starts(tmp_path, monkeypatch, capsys):
    """The generated list (tests/book/bad_parameters.py: a bad value per parameter, one past int64 for every
    integer, the cross-parameter cases), each through ``python -m ashlib run``: rc 2, one line that
    names the notebook and the parameter, no kernel, no run folder."""
    def no_kernel(*args, **kwargs):
        raise AssertionError("a kernel was started")

    monkeypatch.setattr(pipeline, "execute", no_kernel)
    assert len(CASES) > 200
    for notebook, overrides, named in CASES:
        argv = ["run", "--profile", "embedded", notebook, "--out", str(tmp_path / "run")]
        for key, value in overrides.items():
            argv += ["-p", key, json.dumps(value)]
        assert main(argv) == 2, (notebook, overrides)
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith(f"error: {notebook}: {named}"), (notebook, overrides, err)
        assert err.startswith((f"error: {notebook}: {named}=", f"error: {notebook}: {named}[")), (notebook, err)
        assert not (tmp_path / "run").exists() and not list(tmp_path.glob(".run*"))


@pytest.mark.parametrize("variable, value, message", [
    ("ASHLIB_CACHE_MAX", "abc", "error: ASHLIB_CACHE_MAX='abc' is not allowed: expected a size in bytes"),
    ("ASHLIB_CACHE", "FILE", "is a file, not a folder; expected a folder (created if missing)."),
])
def test_a_bad_cache_setting_is_refused_before_anything_runs(variable, value, message, tmp_path, monkeypatch, capsys):
    (tmp_path / "FILE").write_text("not a folder")
    monkeypatch.setenv(variable, str(tmp_path / "FILE") if value == "FILE" else value)
    monkeypatch.setattr(pipeline, "execute", lambda *a, **k: pytest.fail("a kernel was started"))
    assert main(["run", "--profile", "embedded", "03_global_vs_local", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err
    assert not (tmp_path / "run").exists() and not list(tmp_path.glob(".run*"))
    if variable == "ASHLIB_CACHE":
        assert main(["cache", "list"]) == 2  # the cache command says the same, without a traceback
        assert message in capsys.readouterr().err


def test_notebook_parameters_read_help_after_non_ascii_text_as_papermill_does(tmp_path, monkeypatch):
    """ast gives column offsets in bytes: a default with a non-ASCII character must not shift the help."""
    import papermill

    source = 'label: str = "café"  # the café\nn: int = 3  # how many\nplain = [1, 2]\n'
    nb = {"cells": [{"cell_type": "code", "id": "p", "metadata": {"tags": ["parameters"]}, "source": source,
                     "outputs": [], "execution_count": None}],
          "metadata": {"kernelspec": {"name": "python3", "language": "python", "display_name": "Python 3"}},
          "nbformat": 4, "nbformat_minor": 5}
    (tmp_path / "x.ipynb").write_text(json.dumps(nb), encoding="utf-8")
    monkeypatch.setattr(pipeline, "NOTEBOOKS", tmp_path)
    theirs = papermill.inspect_notebook(str(tmp_path / "x.ipynb"))
    assert pipeline.notebook_parameters("x") == {k: dict(v) for k, v in theirs.items()}
    assert pipeline.notebook_parameters("x")["label"]["help"] == "the café"
