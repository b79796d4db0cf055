"""The package's architecture: the science (``ashlib.stats``, ``.assets``, ``.methods``, ``.evaluation``)
in layers below the book machine (``ashlib.book``), checked by import-linter's contracts in
``pyproject.toml`` (module-level and function-level imports alike). The contracts are shown to break
on a copy of the package with one bad import each, so they cannot pass by checking nothing; importing
the science is checked for what it must not do (load the book, set a variable, read a file outside)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import ashlib

PACKAGE = Path(ashlib.__file__).parent
ROOT = PACKAGE.parent
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
SCIENCE = ("stats", "assets", "methods", "evaluation")


def _lint(package_root: Path) -> subprocess.CompletedProcess:
    """``lint-imports`` with this repository's contracts on the package found in ``package_root``."""
    env = {**os.environ, "PYTHONPATH": str(package_root)}
    return subprocess.run([str(LINT_IMPORTS), "--config", str(ROOT / "pyproject.toml"), "--no-cache"],
                          cwd=package_root, env=env, capture_output=True, text=True)


def _contracts() -> list[dict]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]


def test_the_import_contracts_hold():
    result = _lint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"Contracts: {len(_contracts())} kept, 0 broken." in result.stdout


def test_every_subpackage_is_in_the_layers_and_the_science_in_the_forbidden_contract():
    subpackages = sorted(p.parent.name for p in PACKAGE.glob("*/__init__.py"))
    assert subpackages == sorted([*SCIENCE, "book"])
    contracts = {c["id"]: c for c in _contracts()}
    layered = {name for layer in contracts["layers"]["layers"] for name in layer.split(" | ")}
    modules = {f"ashlib.{p.stem}" for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    assert layered == {f"ashlib.{s}" for s in subpackages} | modules
    science = {f"ashlib.{s}" for s in SCIENCE} | modules - {"ashlib.__main__"}
    assert set(contracts["science-without-book"]["source_modules"]) == science


def _broken_copy(tmp_path: Path, module: str, line: str) -> Path:
    copy = tmp_path / "copy"
    shutil.copytree(PACKAGE, copy / "ashlib", ignore=shutil.ignore_patterns("__pycache__", "*.csv", "*.json", "*.yaml"))
    target = copy / "ashlib" / module
    target.write_text(target.read_text() + f"\n\ndef _late():\n    {line}\n")
    return copy


def test_a_science_module_importing_the_book_machine_breaks_both_contracts(tmp_path):
    result = _lint(_broken_copy(tmp_path, "stats/metrics.py", "from ashlib.book import plots"))
    assert result.returncode == 1
    assert "Contracts: 0 kept, 2 broken." in result.stdout
    assert "ashlib.stats.metrics -> ashlib.book.plots" in result.stdout


def test_an_upward_import_inside_the_science_breaks_the_layers(tmp_path):
    result = _lint(_broken_copy(tmp_path, "assets/features.py", "from ashlib.methods import shaping"))
    assert result.returncode == 1 and "Contracts: 1 kept, 1 broken." in result.stdout
    assert "ashlib.assets.features -> ashlib.methods.shaping" in result.stdout


def test_the_science_importing_a_book_dependency_breaks_the_forbidden_contract(tmp_path):
    result = _lint(_broken_copy(tmp_path, "methods/nac.py", "import papermill"))
    assert result.returncode == 1 and "Contracts: 1 kept, 1 broken." in result.stdout
    assert "ashlib.methods.nac -> papermill" in result.stdout


_IMPORT_THE_SCIENCE = """
import os, sys
opened = []
sys.addaudithook(lambda event, args: opened.append(str(args[0])) if event == "open" and isinstance(args[0], (str, bytes, os.PathLike)) else None)
before = dict(os.environ)
import ashlib
alone = sorted(m for m in sys.modules if m.startswith("ashlib."))
alone_changed = sorted(k for k in set(before) | set(os.environ) if before.get(k) != os.environ.get(k))
import ashlib.stats.metrics, ashlib.stats.uncertainty, ashlib.assets.data, ashlib.assets.fetch, ashlib.assets.models
import ashlib.assets.features, ashlib.methods.registry, ashlib.evaluation.experiments
ashlib.methods.registry.scores()  # imports every method module
changed = sorted(k for k in set(before) | set(os.environ) if before.get(k) != os.environ.get(k))
print(alone, alone_changed)
print(changed)
print(sorted(m for m in sys.modules if m.split(".")[0] in {"ashlib", "papermill", "nbformat", "myst_nb", "IPython", "plotly", "jupyter_client", "nbgrader", "submitit"} and not m.startswith(("ashlib.stats", "ashlib.assets", "ashlib.methods", "ashlib.evaluation", "ashlib._"))))
print("\\n".join(sorted(set(opened))))
"""


def test_importing_the_science_loads_no_book_sets_no_variable_and_reads_nothing_outside_the_installed_packages(tmp_path):
    """``import ashlib`` loads only the argument checks and changes nothing; the whole science (every method module included)
    loads neither the book machine nor the book's dependencies, leaves the environment as it was (OpenMP's
    wait policy is the book machine's business), and opens files only in the package, the interpreter's
    installation (the standard library, site-packages), the kernel's ``/proc``, ``/sys`` and ``/dev``, and the
    system's time zones."""
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    env["HOME"] = str(tmp_path)  # nothing under a home folder may be read either
    out = subprocess.run([sys.executable, "-c", _IMPORT_THE_SCIENCE], capture_output=True, text=True, check=True,
                         env=env, cwd=tmp_path).stdout.splitlines()
    assert out[0] == "['ashlib._checks'] []"
    # scikit-learn and threadpoolctl set KMP_* variables when imported (their code, shown here): nothing else
    by_them = "import os; before = dict(os.environ); import sklearn, threadpoolctl; print(sorted(set(os.environ) - set(before)))"
    theirs = eval(subprocess.run([sys.executable, "-c", by_them], capture_output=True, text=True, check=True,
                                 env=env).stdout)
    assert set(eval(out[1])) <= set(theirs) <= {"KMP_DUPLICATE_LIB_OK", "KMP_INIT_AT_FORK"}, \
        f"importing the science changed the environment: {out[1]}"
    assert out[2] == "['ashlib']", f"the science loaded {out[2]}"
    allowed = {str(PACKAGE), sys.prefix, sys.base_prefix, os.path.realpath(sys.base_prefix), "/proc", "/sys", "/dev",
               "/usr/share/zoneinfo", "/etc/localtime", *sys.path[1:]}  # time zones: pandas reads them
    allowed = {a for a in allowed if a and a != str(ROOT)}
    outside = [path for path in out[3:] if path and not any(
        os.path.realpath(path).startswith(os.path.realpath(a) + os.sep) or os.path.realpath(path) == os.path.realpath(a)
        for a in allowed)]
    assert outside == [], f"importing the science read files outside the installation: {outside[:5]}"


def _third_party_imports(path: Path) -> set[str]:
    import ast

    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split(".")[0])
    return {n for n in names if n != "ashlib" and n not in sys.stdlib_module_names}


def _distributions(requirements) -> set[str]:
    import re

    return {re.split(r"[<>=\[; ]", req, maxsplit=1)[0].lower().replace("_", "-") for req in requirements}


def test_every_third_party_module_is_declared_the_science_s_in_the_dependencies_alone():
    """Each module's imports (at any depth) are the standard library, ashlib itself, or a distribution
    pinned in pyproject.toml: for the science, in ``dependencies`` (so that ``pip install ashlib`` without
    extras imports it); for the book machine, there or in an extra. filelock and threadpoolctl were once
    used without being declared."""
    import importlib.metadata as md

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    core = _distributions(project["dependencies"])
    everything = core | _distributions(sum(project["optional-dependencies"].values(), []))
    providers = md.packages_distributions()  # top-level module -> distributions
    missing = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        book = path.relative_to(PACKAGE).parts[0] in ("book", "__main__.py")
        for top in _third_party_imports(path):
            dists = {d.lower().replace("_", "-") for d in providers.get(top, [])}
            if not dists & (everything if book else core):
                missing.setdefault(top, []).append(str(path.relative_to(PACKAGE)))
    assert not missing, f"imported but not declared in pyproject.toml (science: in dependencies): {missing}"
