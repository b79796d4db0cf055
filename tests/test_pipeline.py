"""The run pipeline: profiles, parameter plans, executing notebooks into a run folder, the book's toc."""
from __future__ import annotations

import json

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
                          overrides={"percentile": 85})
    assert plans["01_methods"] == {"benchmark": "cifar10", "batch_size": 512, "percentile": 85, "device": "cuda:1"}
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
    assert files == ["run/01_methods", "references"]  # the results page needs every chapter
    full = pipeline._toc_for(toc, set(pipeline.notebook_names()))
    assert "results" in [c["file"] for part in full["parts"] for c in part["chapters"]]


@pytest.mark.project_cache
def test_an_override_reaches_the_executed_notebook_and_its_csv(tmp_path):
    """Issue acceptance: one notebook, a profile and an override -> an executed notebook and CSVs
    whose numbers follow the override (here: only the requested percentiles are evaluated)."""
    lines = []
    out = pipeline.run("embedded", ["03_global_vs_local"], out=tmp_path / "run",
                       overrides={"percentiles": [80, 90]}, echo=lambda *a, **k: lines.append(a[0]))
    assert (out / "03_global_vs_local.ipynb").exists()
    results = pd.read_csv(out / "thresholds_results.csv")
    assert sorted(results["percentile"].unique()) == [80, 90]
    record = json.loads((out / "run.json").read_text())
    assert record["notebooks"]["03_global_vs_local"]["parameters"]["percentiles"] == [80, 90]
    assert lines[0].startswith("[1/1] 03_global_vs_local: running on cpu") and "done in" in lines[1]


def test_results_dir_in_the_repository_is_given_relative_to_the_notebooks(tmp_path):
    """The published parameters cell must not name the build machine's absolute path."""
    inside = pipeline.ROOT / "runs" / "embedded"
    assert pipeline._as_seen_from_notebooks(inside) == "../runs/embedded"
    assert (pipeline.NOTEBOOKS / pipeline._as_seen_from_notebooks(inside)).resolve() == inside.resolve()
    assert pipeline._as_seen_from_notebooks(tmp_path / "run") == str(tmp_path / "run")
