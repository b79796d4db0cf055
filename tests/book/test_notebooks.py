"""Notebooks: a papermill parameters cell, no committed outputs, and bad parameters fail at once."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ashlib import ParameterError
from bad_parameters import BAD  # a bad value for every parameter any notebook declares
from ashlib.book.params import check_device, check_run_parameters

NOTEBOOKS = sorted((Path(__file__).parents[2] / "notebooks").glob("*.ipynb"))
PAPERMILL = Path(sys.executable).with_name("papermill")
GOOD = dict(benchmark="mnist5k", model="smallresnet", device="cpu", batch_size=64, seed=0)


def test_there_are_notebooks():
    assert [p.name for p in NOTEBOOKS][:3] == ["00_benchmark.ipynb", "00_primer.ipynb", "01_methods.ipynb"]


def _parameters(path) -> dict:
    import papermill

    return papermill.inspect_notebook(str(path))


#: Chapters on the benchmark (the teachers' page grades assignments and the primer works toy numbers;
#: neither has a benchmark).
CHAPTERS = [p for p in NOTEBOOKS if p.stem not in ("07_classroom", "00_primer")]


@pytest.mark.parametrize("path", CHAPTERS[1:], ids=lambda p: p.name)
def test_every_chapter_takes_the_preprocessing_and_the_ash_chapters_compare(path):
    params = _parameters(path)
    assert params["preprocessing"]["default"] == "None"
    assert ("compare" in params) == (path.stem in ("01_methods", "02_placements", "03_global_vs_local",
                                                   "04_ash_rand"))


def test_the_chapters_default_sweeps_are_the_librarys():
    """The claims of a variant are computed with the library's defaults when a chapter passes none:
    they must be the parameters cells' defaults."""
    import ast

    from ashlib.evaluation import experiments

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
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in code), "strip outputs"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_the_chapters_own_check_cell_stops_every_bad_parameter(path):
    """Run the parameters cell and the cell after it, as papermill would (with a bad value injected
    after the parameters, as papermill injects them): the chapter itself must stop each bad value by
    name before any work, and let the defaults through."""
    code = ["".join(c["source"]) for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]
    defaults: dict = {}
    exec(code[0], defaults)
    exec(code[1], dict(defaults))  # the defaults pass
    declared = [name for name in _parameters(path)]
    for name in declared:
        with pytest.raises(ParameterError) as err:
            exec(code[1], {**defaults, name: BAD[name]})
        assert str(err.value).startswith((f"{name}=", f"{name}[")), (path.name, name, str(err.value))


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




def _defaults(path) -> dict:
    import ast

    return {k: ast.literal_eval(v["default"]) for k, v in _parameters(path).items()}


def test_every_notebook_has_a_chapter_module_and_every_module_a_notebook():
    from ashlib.book import chapters

    assert chapters.names() == [p.stem for p in NOTEBOOKS]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_the_parameters_cell_is_its_chapters_declaration_rendered(path):
    """Each parameter is declared once, in the chapter's ``Parameters``: the notebook's parameters cell
    is exactly its rendering (``python -m ashlib book --sync-parameters`` rewrites it), and papermill
    reads from it the names, defaults and help of the declaration."""
    from ashlib.book import chapters
    from ashlib.book.chapters import _literal

    cell = next(c for c in json.loads(path.read_text())["cells"] if "parameters" in c["metadata"].get("tags", []))
    assert "".join(cell["source"]) == chapters.parameters_cell(path.stem)
    declared = chapters.parameters(path.stem).declared()
    inspected = _parameters(path)
    assert list(inspected) == list(declared)
    for name, field in declared.items():
        assert inspected[name]["help"] == field.metadata["help"] and inspected[name]["inferred_type_name"] == field.type
        assert inspected[name]["default"] == _literal(chapters.parameters(path.stem).defaults()[name])


def test_a_cell_that_drifts_from_its_declaration_is_found_and_rewritten(tmp_path):
    from ashlib.book import chapters

    original = NOTEBOOKS[0].with_name("03_global_vs_local.ipynb")
    nb = json.loads(original.read_text())
    cell = next(c for c in nb["cells"] if "parameters" in c["metadata"].get("tags", []))
    cell["source"] = "".join(cell["source"]).replace("[70, 75,", "[60, 75,")
    drifted = tmp_path / original.name
    drifted.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
    assert chapters.sync_parameters_cells(tmp_path) == [drifted.stem]
    assert drifted.read_text() == original.read_text()
    assert chapters.sync_parameters_cells(tmp_path) == []


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_parameter_of_every_notebook_is_checked_under_its_own_name(path):
    from ashlib.book.params import check_parameters

    defaults = _defaults(path)
    checked = check_parameters(path.stem, defaults)
    assert checked.as_dict() == defaults
    for name in defaults:
        with pytest.raises(ParameterError) as err:
            check_parameters(path.stem, {**defaults, name: BAD[name]})
        assert str(err.value).startswith((f"{name}=", f"{name}[")), (name, str(err.value))


def test_the_findings_of_the_reliability_probe_fail_at_once_and_clearly():
    from ashlib.book.params import check_parameters

    def message(notebook, **override):
        with pytest.raises(ParameterError) as err:
            check_parameters(notebook, {**_defaults(NOTEBOOKS[0].with_name(f"{notebook}.ipynb")), **override})
        return str(err.value)

    assert message("05_nac", nac_layers=["avgpool", "layer_3"]).startswith("nac_layers[1]='layer_3'")
    assert "at least 3 different epochs" in message("05_nac", snapshot_epochs=[12])
    assert message("05_nac", snapshot_epochs=[13]).startswith("snapshot_epochs[0]=13")
    assert message("05_nac", snapshot_epochs=[]).startswith("snapshot_epochs=[]")
    assert message("05_nac", nac_layers=[]).startswith("nac_layers=[]")
    assert message("05_nac", benchmark="cifar").startswith("benchmark='cifar'")
    assert message("05_nac", benchmark="imagenet", model="mobilenet_v2").startswith("model='mobilenet_v2'")
    assert message("05_nac", benchmark="cifar10", nac_layers=["layer3"]).startswith("nac_layers[0]='layer3'")
    assert message("05_nac", benchmark="cifar10", nac_search_set="letters").startswith("nac_search_set='letters'")
    assert message("06_misp", near_set="bogus").startswith("near_set='bogus'")
    assert message("06_misp", entropy_weights=[]).startswith("entropy_weights=[]")
    assert message("06_misp", mixture_fractions=[1.5]).startswith("mixture_fractions[0]=1.5")
    assert message("03_global_vs_local", percentiles=90).startswith("percentiles=90 is not allowed: expected a non-empty list")
    assert message("02_placements", placements=["layer3.mergee"]).startswith("placements[0]='layer3.mergee'")
    assert message("01_methods", distribution_set="texture").startswith("distribution_set='texture'")
    assert message("05_nac", shift_kind="rescale", shift_amount=35.0).startswith("shift_amount=35.0")
    assert message("01_methods", train_seeds=[]).startswith("train_seeds=[] is not allowed: expected a non-empty list")
    assert message("03_global_vs_local", benchmark="cifar10", train_seeds=[0, 1]) == (
        "train_seeds=[0, 1] is not allowed: expected None or [0] (the seed): a pretrained network has one training seed.")


def test_checking_every_parameter_takes_well_under_a_second():
    import time

    from ashlib.book.params import check_parameters

    for path in NOTEBOOKS:
        defaults = _defaults(path)
        t0 = time.perf_counter()
        check_parameters(path.stem, defaults)
        assert time.perf_counter() - t0 < 0.5, path.name


def test_a_list_passed_as_text_by_papermill_says_to_use_yaml():
    """``papermill -p percentiles "[80, 90]"`` passes the string; the chapter's refusal says how to pass
    the list."""
    from ashlib.book.params import check_parameters

    path = NOTEBOOKS[0].with_name("03_global_vs_local.ipynb")
    with pytest.raises(ParameterError) as err:
        check_parameters("03_global_vs_local", {**_defaults(path), "percentiles": "[80, 90]"})
    assert str(err.value) == (
        "percentiles='[80, 90]' is not allowed: expected a non-empty list of percentiles in [0, 100]. It arrived "
        "as text, as papermill's -p passes it: write -y \"percentiles: [80, 90]\" with papermill, or python -m "
        "ashlib run -p percentiles '[80, 90]' (read as YAML).")
    with pytest.raises(ParameterError) as err:  # text that is text gets no hint
        check_parameters("03_global_vs_local", {**_defaults(path), "benchmark": "cifar"})
    assert "papermill" not in str(err.value)


def test_the_chapter_modules_load_without_numpy_pandas_or_torch():
    """A bad parameter is refused before any heavy library loads (well under a second): importing every
    chapter's module, its parameters, claims and cost included, loads none of them."""
    code = ("import sys; from ashlib.book import chapters; [chapters.chapter(n) for n in chapters.names()]; "
            "print(sorted(m for m in ('numpy', 'pandas', 'torch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"


@pytest.mark.parametrize("notebook", ["01_methods", "05_nac", "06_misp", "08_transformer"])
def test_setup_gives_prepare_every_parameter_it_takes_and_nothing_else(notebook, monkeypatch):
    """``runs.setup(params)`` is the chapters' one setup call: the keywords the copied ``runs.prepare(...)``
    calls passed, taken from the chapter's parameters."""
    import functools
    import inspect

    from ashlib.book import chapters, runs

    takes = {n for n, p in inspect.signature(runs.prepare).parameters.items() if p.kind is p.POSITIONAL_OR_KEYWORD}
    seen = {}
    monkeypatch.setattr(runs, "prepare", functools.wraps(runs.prepare)(lambda **kw: seen.update(kw)))
    params = chapters.parameters(notebook)()
    runs.setup(params)
    assert seen == {name: value for name, value in params.as_dict().items() if name in takes}
    assert "benchmark" in seen and "percentile" not in seen and "fpr_convention" not in seen
    assert ("mahalanobis_n_val" in seen) == (notebook == "01_methods")
