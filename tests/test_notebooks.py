"""Notebooks: a papermill parameters cell, no committed outputs, and bad parameters fail at once."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ashlib import ParameterError
from ashlib.params import check_device, check_run_parameters

NOTEBOOKS = sorted((Path(__file__).parents[1] / "notebooks").glob("*.ipynb"))
PAPERMILL = Path(sys.executable).with_name("papermill")
GOOD = dict(benchmark="mnist5k", model="smallresnet", device="cpu", batch_size=64, seed=0)


def test_there_are_notebooks():
    assert [p.name for p in NOTEBOOKS][:2] == ["00_benchmark.ipynb", "01_methods.ipynb"]


def _parameters(path) -> dict:
    import papermill

    return papermill.inspect_notebook(str(path))


@pytest.mark.parametrize("path", NOTEBOOKS[1:], ids=lambda p: p.name)
def test_every_chapter_takes_the_preprocessing_and_the_ash_chapters_compare(path):
    params = _parameters(path)
    assert params["preprocessing"]["default"] == "None"
    assert ("compare" in params) == (path.stem in ("01_methods", "02_placements", "03_global_vs_local",
                                                   "04_ash_rand"))


def test_the_chapters_default_sweeps_are_the_librarys():
    """The claims of a variant are computed with the library's defaults when a chapter passes none:
    they must be the parameters cells' defaults."""
    import ast

    from ashlib import experiments

    def default(name, param):
        return tuple(ast.literal_eval(_parameters(NOTEBOOKS[0].with_name(f"{name}.ipynb"))[param]["default"]))

    assert default("01_methods", "accuracy_sweep") == experiments.ACCURACY_SWEEP
    assert default("03_global_vs_local", "percentiles") == experiments.THRESHOLD_PERCENTILES
    assert default("04_ash_rand", "rand_percentiles") == experiments.RAND_PERCENTILES
    assert default("04_ash_rand", "seeds") == experiments.RAND_SEEDS


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_parameters_cell_then_checks_and_no_outputs(path):
    cells = json.loads(path.read_text())["cells"]
    code = [c for c in cells if c["cell_type"] == "code"]
    assert "parameters" in code[0]["metadata"].get("tags", []), "first code cell must be tagged 'parameters'"
    assert "check_run_parameters(" in "".join(code[1]["source"]), "second code cell must check the parameters"
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in code), "strip outputs"


@pytest.mark.parametrize("name, value, message", [
    ("benchmark", "nope", "benchmark='nope' is not allowed: expected one of 'mnist5k'"),
    ("percentile", "150", "percentile=150 is not allowed: expected a number in [0, 100]"),
])
def test_papermill_fails_at_once_with_one_clear_message(tmp_path, name, value, message):
    """The issue's acceptance check, run exactly as a user would type it."""
    methods = NOTEBOOKS[0].with_name("01_methods.ipynb")
    out = subprocess.run([str(PAPERMILL), str(methods), str(tmp_path / "out.ipynb"), "-p", name, value],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode != 0
    assert f"ParameterError: {message}" in out.stdout + out.stderr


@pytest.mark.parametrize("override, message", [
    (dict(benchmark="cifar"), "benchmark='cifar'"),
    (dict(model="vgg"), "model='vgg'"),
    (dict(device="gpu"), "device='gpu'"),
    (dict(batch_size=0), "batch_size=0"),
    (dict(seed=-1), "seed=-1"),
    (dict(percentile=-5), "percentile=-5"),
    (dict(sweep=[10, 101]), r"sweep\[1\]=101"),
    (dict(fpr_convention="tnr"), "fpr_convention='tnr'"),
    (dict(preprocessing="whiten"), "preprocessing='whiten'"),
    (dict(benchmark="cifar10", model=None, preprocessing="match"),
     "preprocessing='match' is not allowed for benchmark='cifar10'"),
    (dict(compare="fmnist"), "compare='fmnist' is not allowed: expected a list of profile names"),
    (dict(compare=["embedded", "gpu"]), r"compare\[1\]='gpu'"),
    (dict(compare=["cifar10"]), r"compare\[0\]='cifar10' is not allowed: its benchmark 'cifar10' is not an embedded"),
])
def test_each_parameter_is_checked(override, message):
    with pytest.raises(ParameterError, match=message):
        check_run_parameters(**{**GOOD, **override})


def test_good_parameters_pass_and_cuda_is_never_a_silent_fallback():
    check_run_parameters(**GOOD, percentile=None, sweep=[0, 100])
    import torch
    if not torch.cuda.is_available():
        with pytest.raises(ParameterError, match="device='cuda' is not available"):
            check_device("cuda")


def test_percentile_lists_and_seeds_are_checked_by_name():
    with pytest.raises(ParameterError, match=r"rand_percentiles\[2\]=300"):
        check_run_parameters(**GOOD, rand_percentiles=[65, 70, 300])
    with pytest.raises(ParameterError, match=r"seeds\[1\]=-2"):
        check_run_parameters(**GOOD, seeds=[0, -2])


@pytest.mark.parametrize("override, message", [
    (dict(benchmark="cifar10"), "benchmark='cifar10' is not allowed in this chapter"),
    (dict(candidates=[]), "candidates=\\[\\] is not allowed"),
    (dict(candidates=["raw", "tanh"]), r"candidates\[1\]='tanh'"),
    (dict(second_benchmark="mnist5k"), "second_benchmark='mnist5k'"),
    (dict(scale_factors=[1, -2]), r"scale_factors\[1\]=-2"),
    (dict(n_scaled=0), "n_scaled=0"),
])
def test_the_benchmark_chapters_parameters_are_checked(override, message):
    from ashlib.params import check_benchmark_chapter

    good = dict(benchmark="mnist5k", candidates=["raw", "match"], second_benchmark="fmnist", scale_factors=[1, 2],
                n_scaled=10)
    check_benchmark_chapter(**good)
    with pytest.raises(ParameterError, match=message):
        check_benchmark_chapter(**{**good, **override})
