"""The run pipeline: execute notebooks with a profile's papermill parameters into a run folder, and
build the book from any run folder without executing anything again.

A *profile* (``profiles/<name>.yaml``) names a device, parameters for every notebook (``defaults``)
and per notebook (``notebooks.<name>``). A *run folder* (``runs/<profile>/``) holds the executed
notebooks, the CSV tables they saved and ``run.json`` (what ran, where, with which parameters).
"""
from __future__ import annotations

import copy
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

from ashlib._checks import ParameterError, check_choice

ROOT = Path(__file__).resolve().parents[1]
PROFILES = ROOT / "profiles"
NOTEBOOKS = ROOT / "notebooks"
BOOK = ROOT / "book"
TOC = BOOK / "_toc.yml"


def profiles() -> list[str]:
    """Names of the profiles in ``profiles/``."""
    return sorted(p.stem for p in PROFILES.glob("*.yaml"))


def load_profile(name: str) -> dict:
    """A profile as a dict with ``device``, ``defaults`` and ``notebooks``."""
    check_choice("profile", name, profiles())
    profile = yaml.safe_load((PROFILES / f"{name}.yaml").read_text()) or {}
    profile.setdefault("defaults", {})
    profile.setdefault("notebooks", {})
    return profile


def notebook_names() -> list[str]:
    """Every notebook of the book, in chapter order."""
    return sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb"))


def notebook_parameters(name: str) -> dict:
    """The parameters a notebook declares (papermill's inspection of its ``parameters`` cell)."""
    import papermill

    return papermill.inspect_notebook(str(NOTEBOOKS / f"{name}.ipynb"))


def parse_value(text: str):
    """A command-line parameter value, read as YAML like ``papermill -y``: '85' -> 85, 'cuda' -> 'cuda'."""
    return yaml.safe_load(text)


def plan(profile: str, notebooks: list[str] | None = None, device: str | None = None,
         overrides: dict | None = None) -> dict[str, dict]:
    """The parameters each notebook will get: profile defaults < profile notebook entry < overrides.

    An override that no selected notebook declares is an error rather than silently ignored.
    """
    spec = load_profile(profile)
    names = notebooks or list(spec["notebooks"]) or notebook_names()
    for name in names:
        check_choice("notebook", name, notebook_names())
    overrides = dict(overrides or {})
    declared = {name: notebook_parameters(name) for name in names}
    unknown = [k for k in overrides if not any(k in d for d in declared.values())]
    if unknown:
        raise ParameterError(f"parameter {unknown[0]!r} is not allowed: none of the notebooks "
                             f"{', '.join(names)} declares it. Their parameters: "
                             f"{', '.join(sorted(set().union(*declared.values())))}.")
    out = {}
    for name in names:
        params = {**spec["defaults"], **(spec["notebooks"].get(name) or {}), **overrides}
        params["device"] = device or params.get("device") or spec.get("device", "cpu")
        out[name] = {k: v for k, v in params.items() if k in declared[name]}
    return out


def _as_seen_from_notebooks(path: Path) -> str:
    """``path`` relative to the notebooks' folder (their working directory) when it lies in this
    repository, so the published parameters cell names no machine's absolute path; else absolute."""
    return os.path.relpath(path, NOTEBOOKS) if path.is_relative_to(ROOT) else str(path)


def run(profile: str, notebooks: list[str] | None = None, out: str | Path | None = None,
        device: str | None = None, overrides: dict | None = None, echo=print) -> Path:
    """Execute notebooks with papermill into ``out`` (default ``runs/<profile>``); one line per notebook.

    Each notebook also receives ``results_dir=out``, where it saves its tables as CSV.
    """
    import papermill

    plans = plan(profile, notebooks, device, overrides)
    out = Path(out or ROOT / "runs" / profile).resolve()
    out.mkdir(parents=True, exist_ok=True)
    record = dict(profile=profile, overrides=overrides or {}, python=platform.python_version(),
                  machine=platform.machine(), started=time.strftime("%Y-%m-%dT%H:%M:%S"), notebooks={})
    for i, (name, params) in enumerate(plans.items(), 1):
        if "results_dir" in notebook_parameters(name):
            params = {**params, "results_dir": _as_seen_from_notebooks(out)}
        echo(f"[{i}/{len(plans)}] {name}: running on {params.get('device', 'cpu')} ...", flush=True)
        t0 = time.perf_counter()
        papermill.execute_notebook(str(NOTEBOOKS / f"{name}.ipynb"), str(out / f"{name}.ipynb"),
                                   parameters=params, cwd=str(NOTEBOOKS), progress_bar=False,
                                   kernel_name="python3")
        seconds = time.perf_counter() - t0
        record["notebooks"][name] = dict(parameters=params, seconds=round(seconds, 1))
        echo(f"[{i}/{len(plans)}] {name}: done in {seconds:.1f} s -> {out / (name + '.ipynb')}", flush=True)
    (out / "run.json").write_text(json.dumps(record, indent=2, default=str))
    return out


def build_book(run_dir: str | Path, book_dir: str | Path = BOOK, echo=print) -> Path:
    """Build the site from the executed notebooks of ``run_dir``; nothing is executed again.

    The notebooks are copied to ``<book>/run/`` and the table of contents keeps only the chapters
    present in the run, so a run of one notebook (say on a GPU) is published as it is.
    """
    run_dir, book_dir = Path(run_dir).resolve(), Path(book_dir).resolve()
    executed = sorted(run_dir.glob("*.ipynb"))
    if not executed:
        raise ParameterError(f"run_dir={str(run_dir)!r} is not allowed: it holds no executed notebooks; "
                             "expected a folder written by `python -m ashlib run`.")
    target = book_dir / "run"
    if target.resolve() != run_dir:
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        for path in [*executed, *run_dir.glob("*.csv"), *run_dir.glob("run.json")]:
            shutil.copy2(path, target / path.name)
    toc = _toc_for(yaml.safe_load((book_dir / "_toc.yml").read_text()), {p.stem for p in executed})
    build = book_dir / "_build"
    shutil.rmtree(build, ignore_errors=True)  # a clean build: no page of an earlier run survives
    build.mkdir()
    (build / "_toc.yml").write_text(yaml.safe_dump(toc, sort_keys=False))
    cmd = [str(Path(sys.executable).with_name("jupyter-book")), "build", str(book_dir),
           "--toc", str(build / "_toc.yml"), "--warningiserror", "--keep-going"]
    echo("building the site: jupyter-book " + " ".join(cmd[1:]), flush=True)
    subprocess.run(cmd, check=True)
    index = build / "html" / "index.html"
    echo(f"Site: {index}", flush=True)
    return index


def _toc_for(toc: dict, present: set[str]) -> dict:
    """The book's table of contents without the chapters of notebooks absent from the run; the
    gathered results page (which pastes from every chapter) only when all chapters are present."""
    chapters = [c.get("file", "") for part in toc.get("parts", [{"chapters": toc.get("chapters", [])}])
                for c in part.get("chapters", [])]
    complete = all(f.split("/", 1)[1] in present for f in chapters if f.startswith("run/"))

    def keep(entry) -> bool:
        file = entry.get("file", "")
        if file == "results":
            return complete
        return not file.startswith("run/") or file.split("/", 1)[1] in present

    toc = copy.deepcopy(toc)
    for part in toc.get("parts", []):
        part["chapters"] = [c for c in part.get("chapters", []) if keep(c)]
    toc["parts"] = [p for p in toc.get("parts", []) if p["chapters"]]
    if "chapters" in toc:
        toc["chapters"] = [c for c in toc["chapters"] if keep(c)]
    return toc
