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
    assert [p.name for p in NOTEBOOKS][:1] == ["01_methods.ipynb"]


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
    out = subprocess.run([str(PAPERMILL), str(NOTEBOOKS[0]), str(tmp_path / "out.ipynb"), "-p", name, value],
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
