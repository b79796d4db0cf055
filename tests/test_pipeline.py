"""The run pipeline: profiles, parameter plans, executing notebooks into a run folder, the book's toc."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from ashlib import ParameterError, pipeline
from ashlib.__main__ import main
from ashlib.params import check_run_parameters


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
def test_an_override_reaches_the_executed_notebook_and_its_csv(tmp_path):
    """Issue acceptance: one notebook, a profile and an override -> an executed notebook and CSVs
    whose numbers follow the override (here: only the requested percentiles are evaluated)."""
    lines = []
    out = pipeline.run("embedded", ["03_global_vs_local"], out=tmp_path / "run",
                       overrides={"percentiles": [80, 90], "compare": []}, echo=lambda *a, **k: lines.append(a[0]))
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


# ----------------------------------------------------------------------------- all or nothing


def _fake_papermill(monkeypatch, fail_at=None, interrupt=False):
    """papermill.execute_notebook replaced by a stand-in that writes the output notebook and one CSV
    per notebook into $ASHLIB_RESULTS_DIR (as the real notebooks do), and can fail half-way."""
    import os

    import papermill

    calls = []

    def execute(src, dst, parameters=None, **kwargs):
        name = Path(src).stem
        calls.append((name, dict(parameters or {})))
        results = Path(os.environ["ASHLIB_RESULTS_DIR"])
        assert Path(dst).parent == results
        (results / f"{name}_table.csv").write_text(f"x\n{parameters.get('seed', 0)}\n")
        Path(dst).write_text(json.dumps({"cells": [], "parameters": parameters}))
        if name == fail_at:
            if interrupt:
                raise KeyboardInterrupt
            raise RuntimeError("boom")

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
    assert record["status"] == "failed" and record["failed_notebook"] == "03_global_vs_local"
    assert list(record["notebooks"]) == ["01_methods"]  # what completed, and nothing else


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
