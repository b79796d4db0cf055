"""The run pipeline: execute notebooks with a profile's papermill parameters into a run folder, and
build the book from any run folder without executing anything again.

A *profile* (``profiles/<name>.yaml``) names a device, parameters for every notebook (``defaults``)
and per notebook (``notebooks.<name>``). A *run folder* (``runs/<profile>/``) holds the executed
notebooks, the CSV tables they saved and ``run.json``, which says for each notebook with which
parameters it ran and which files beside it are its own.

A run folder is all or nothing. Every parameter of every selected notebook is checked before any
starts (:func:`ashlib.book.params.check_parameters`). The notebooks run in a staging folder next to the
target; only when all of them succeed does it replace the target, carrying over the notebooks of the
previous run that were not run again (with their own files and parameters). A failed or interrupted
run leaves the previous folder as it was and its own output in ``<name>.failed-<time>/``, with a
``run.json`` that says what failed. The kernel imports the ``ashlib`` of this checkout.

Notebooks run side by side (``jobs``, :func:`execute`): as many at a time as there are cores when all
of them run on the CPU, each kernel with its share of the cores (``OMP_NUM_THREADS`` and its kin unless
the user set them) and its own results folder, from which its files move into the staging folder when
it succeeds. Which notebook starts first: those that never ran in ``out``, in the book's order, then the
others, longest first by their last recorded seconds, so that they end about together.

A notebook is executed again only when one of its *inputs* changed since the run in the target folder
(or with ``force``); otherwise its executed copy and its own files are reused from there. Its inputs
(:func:`notebook_inputs`, each a sha256 recorded in ``run.json`` with their combined ``digest``):

- ``notebook``: the file ``notebooks/<name>.ipynb``; ``parameters``: the resolved plan (device included);
- ``ashlib``: every file of the package (sources and package data); ``assignments``: the assignments
  (``assignments/``, read by :mod:`ashlib.book.classroom`); ``profiles``: every profile file (a notebook
  compares with other profiles);
- ``data``: the data manifest in effect (``$ASHLIB_MANIFEST`` or the shipped one) and the data present
  (the names at the top of the data root and of the weights folder under the run's ``$ASHLIB_CACHE``,
  and the manifest's system paths that exist). The loaders check every file they read against the
  manifest, so contents need no hashing; cached models and activations are derived from these inputs
  and verify themselves (:mod:`ashlib.assets.cache`);
- ``packages``: Python's version and the installed version of every distribution ``pyproject.toml``
  names (its extras included); ``rehearsal``: whether the run is one.

A reused notebook is also executed again when its files in the run folder are missing or changed since
they were written (``outputs``, a digest of their names and contents). ``run.json`` says per notebook
whether it ``ran`` or was ``reused`` and why (``reason``), and the run prints it.

The site (:func:`build_book`) is built from scratch, but only when what it is built from changed: a
digest of the book's sources, the run's notebooks and files (not its ``run.json``, whose timestamps
change with every run; the page drawn from it is hashed), the table of contents, the configuration and
the installed packages, kept in ``<book>/_build/site.digest`` after a successful build.
"""
from __future__ import annotations

import ast
import contextlib
import copy
import hashlib
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

from ashlib import _threads
from ashlib._checks import ParameterError, check_choice, check_positive_int

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"
BOOK = ROOT / "book"
TOC = BOOK / "_toc.yml"


def __getattr__(name: str):
    """``check_parameters``, ``load_profile`` and ``profiles`` of :mod:`ashlib.book.params` (profiles live with
    their checks), imported on first use: it imports torch, which building a site never needs."""
    if name in ("check_parameters", "load_profile", "profiles"):
        from ashlib.book import params

        return getattr(params, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def notebook_names() -> list[str]:
    """Every notebook of the book, in chapter order."""
    return sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb"))


def notebook_parameters(name: str) -> dict:
    """The parameters a notebook declares: the assignments of its cell tagged ``parameters``, as
    ``papermill.inspect_notebook`` gives them (name -> ``name``, ``inferred_type_name``, ``default``,
    ``help``; tests/book/test_pipeline.py compares the two), read with :mod:`ast` (papermill takes a second
    to import, and a refusal should take less)."""
    nb = json.loads((NOTEBOOKS / f"{name}.ipynb").read_text(encoding="utf-8"))
    cell = next((c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])), None)
    if cell is None:
        return {}
    source = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
    lines = source.splitlines()
    found = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            target, kind = node.target.id, ast.get_source_segment(source, node.annotation)
        elif isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            target, kind = node.targets[0].id, "None"
        else:
            continue
        after = lines[node.end_lineno - 1].encode()[node.end_col_offset:].decode()  # ast's offsets are in bytes
        found[target] = {"name": target, "inferred_type_name": kind,
                         "default": ast.get_source_segment(source, node.value),
                         "help": after.partition("#")[2].strip()}
    return found


def parse_value(text: str, name: str = "value"):
    """A command-line parameter value, read as YAML like ``papermill -y``: '85' -> 85, 'cuda' -> 'cuda'."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        first = str(err).strip().splitlines()[0]
        raise ParameterError(f"{name}={text!r} is not allowed: it is not valid YAML ({first}); write lists as "
                             "[1, 2] and quote them in the shell.") from None


def notebook_defaults(name: str) -> dict:
    """The defaults of a notebook's parameters, from their one declaration (its chapter's ``Parameters``,
    :mod:`ashlib.book.chapters`; the parameters cell is rendered from it and tested equal)."""
    from ashlib.book import chapters

    return chapters.parameters(name).defaults()


def declared_parameters(name: str) -> list[str]:
    """The names of a notebook's parameters, in their declared order (its chapter's ``Parameters``)."""
    from ashlib.book import chapters

    return list(chapters.parameters(name).declared())


def plan(profile: str, notebooks: list[str] | None = None, device: str | None = None,
         overrides: dict | None = None, check: bool = True) -> dict[str, dict]:
    """The parameters each notebook will get: profile defaults < profile notebook entry < overrides.

    An override that no selected notebook declares is an error rather than silently ignored. With
    ``check`` (the default), every parameter of every notebook is checked here, with the notebook's own
    defaults for the rest (:func:`ashlib.book.params.check_parameters`; a CUDA device must be present).
    """
    from ashlib.book.params import check_parameter, check_parameters, load_profile

    spec = load_profile(profile)
    names = notebooks or list(spec["notebooks"]) or notebook_names()
    for name in names:
        check_choice("notebook", name, notebook_names())
    overrides = dict(overrides or {})
    declared = {name: declared_parameters(name) for name in names}
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
    if check:
        check_environment()
        values = {name: {**notebook_defaults(name), **out[name]} for name in names}
        changed = [*overrides, *(["device"] if device else [])]
        try:  # the values the user set first, in every notebook, so that a bad one of theirs is
            # refused before the checks that need torch load it; then every parameter
            for name in names:
                for key in changed:
                    if key in declared[name]:
                        check_parameter(name, key, values[name])
            for name in names:
                check_parameters(name, values[name])
        except ParameterError as err:
            raise ParameterError(f"{name}: {err}") from None
    return out


def check_environment() -> None:
    """The environment a run reads, checked before any notebook starts: ``$ASHLIB_CACHE`` must be a
    folder (or one that can be created), ``$ASHLIB_CACHE_MAX`` a size (:func:`ashlib.assets.cache.parse_size`)."""
    from ashlib.assets import cache
    from ashlib import cache_dir

    cache_dir()
    cache.max_bytes()


class RunFailed(RuntimeError):
    """A notebook of a run failed; the message names it, the error, and where its partial output is."""


@contextlib.contextmanager
def kernel_environment(results_dir: Path, extra: dict | None = None):
    """The environment the notebooks' kernels inherit: this checkout's ``ashlib`` first on PYTHONPATH
    (whatever ``ashlib`` is installed), and ``ASHLIB_RESULTS_DIR``, where :meth:`ashlib.book.runs.Run.publish`
    saves the tables, so the published parameters cell names no folder at all; plus ``extra`` (a
    rehearsal's ``ASHLIB_CACHE`` and ``ASHLIB_MANIFEST``)."""
    extra = dict(extra or {})
    saved = {k: os.environ.get(k) for k in ("PYTHONPATH", "ASHLIB_RESULTS_DIR", *extra)}
    os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [saved["PYTHONPATH"]])])
    os.environ["ASHLIB_RESULTS_DIR"] = str(results_dir)
    os.environ.update({k: str(v) for k, v in extra.items()})
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


# ------------------------------------------------------------------------- inputs and their digests


SOURCES = {"ashlib": ROOT / "ashlib", "assignments": ROOT / "assignments", "profiles": ROOT / "profiles"}
REASONS = {"notebook": "the notebook changed", "parameters": "its parameters changed",
           "ashlib": "ashlib source changed", "assignments": "assignments changed", "profiles": "a profile changed",
           "data": "the data manifest or the data present changed", "packages": "installed packages changed",
           "rehearsal": "the run is now a rehearsal, or no longer one"}


def _sha256(*parts: bytes | str) -> str:
    h = hashlib.sha256()
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        h.update(len(data).to_bytes(8, "little") + data)  # lengths first: no two lists collide
    return h.hexdigest()


def _json_digest(value) -> str:
    return _sha256(json.dumps(value, sort_keys=True, default=str))


def files_digest(folder: Path, names: list[str] | None = None) -> str:
    """sha256 of the names and contents of ``names`` in ``folder`` (default: every file below it but
    hidden ones and Python caches)."""
    if names is None:
        paths = (p.relative_to(folder) for p in folder.rglob("*") if p.is_file() and p.suffix != ".pyc")
        names = sorted(p.as_posix() for p in paths if not any(x.startswith(".") or x == "__pycache__" for x in p.parts))
    return _sha256(*(x for n in names for x in (n, (folder / n).read_bytes())))


def package_versions(pyproject: Path = ROOT / "pyproject.toml") -> dict[str, str]:
    """Python's version and the installed version of every distribution ``pyproject.toml`` names."""
    import importlib.metadata
    import re
    import tomllib

    project = tomllib.loads(pyproject.read_text())["project"]
    names = [*project.get("dependencies", []), *(r for extra in project.get("optional-dependencies", {}).values()
                                                  for r in extra)]
    versions = {"python": platform.python_version()}
    for requirement in names:
        name = re.match(r"[A-Za-z0-9._-]+", requirement).group(0)
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def data_present() -> dict:
    """The data manifest in effect and the data present (module docstring), under the current
    environment (the run's ``$ASHLIB_CACHE`` and ``$ASHLIB_MANIFEST``)."""
    from ashlib.assets import data, fetch

    path = data.manifest_path()
    manifest = data.manifest(path)
    listing = {folder: sorted(p.name for p in root.iterdir() if not p.name.startswith("."))
               for folder, root in (("data", data.data_root()), ("weights", fetch.weights_dir()))}
    system = sorted(p for entries in manifest.values() if isinstance(entries, list) for e in entries
                    if isinstance(e, dict) for p in e.get("system_paths") or [] if Path(p).exists())
    return {"manifest": _sha256(path.read_bytes()), **listing, "system": system}


def shared_inputs(rehearsal: bool) -> dict[str, str]:
    """The inputs every notebook of a run shares (module docstring), each as a sha256; call it inside
    :func:`kernel_environment`."""
    return {**{name: files_digest(folder) for name, folder in SOURCES.items()},
            "data": _json_digest(data_present()), "packages": _json_digest(package_versions()),
            "rehearsal": "yes" if rehearsal else "no"}


def notebook_inputs(name: str, params: dict, shared: dict[str, str]) -> dict[str, str]:
    """A notebook's inputs: its file, its parameters and the ``shared`` ones, each as a sha256."""
    return {"notebook": files_digest(NOTEBOOKS, [f"{name}.ipynb"]), "parameters": _json_digest(params), **shared}


def why_run(inputs: dict[str, str], previous: dict | None, folder: Path, force: bool = False) -> str | None:
    """Why a notebook must be executed again, or None when its entry ``previous`` in the ``run.json`` of
    ``folder`` (the run in place) can be reused: same inputs, and its files there as they were written."""
    if force:
        return "forced (--force)"
    if not previous:
        return "not in the previous run"
    if not previous.get("inputs"):
        return "the previous run recorded no digest of its inputs"
    changed = [REASONS.get(k, f"{k} changed") for k in sorted(set(inputs) | set(previous["inputs"]))
               if inputs.get(k) != previous["inputs"].get(k)]
    if changed:
        return ", ".join(changed)
    files = previous.get("files") or []
    if not files or not all((folder / f).is_file() for f in files) or files_digest(folder, files) != previous.get(
            "outputs"):  # a notebook or table edited or deleted since it was written
        return "its files in the previous run are missing or changed"
    return None


def _scrub_paths(path: Path, name: str) -> None:
    """Papermill records where it read and wrote a notebook; keep those paths relative (the repository's
    ``notebooks/`` and the run folder), so no machine's or staging folder's path is published."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    meta = nb.get("metadata", {}).get("papermill")
    if meta:
        meta.update(input_path=f"notebooks/{name}.ipynb", output_path=f"{name}.ipynb")
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        os.replace(tmp, path)


def _cache_reports(path: Path) -> list[str]:
    """The damaged cache entries a notebook reported (:class:`ashlib.assets.cache.DamagedEntryWarning`, in its
    stderr), so the run's log names them too."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    lines = [line for cell in nb.get("cells", []) for out in cell.get("outputs", []) if out.get("name") == "stderr"
             for line in "".join(out.get("text", "")).splitlines() if "damaged cache entry" in line]
    return list(dict.fromkeys(line.split("DamagedEntryWarning: ")[-1].strip() for line in lines))


def _without_stderr(src: Path, dst: Path) -> None:
    """Copy an executed notebook without its stderr outputs (progress bars, warnings, which name the
    machine's paths): the book hides them (``nb_output_stderr: remove``) and publishes the notebooks'
    sources too. The run folder keeps them."""
    nb = json.loads(src.read_text(encoding="utf-8"))
    for cell in nb.get("cells", []):
        if "outputs" in cell:
            cell["outputs"] = [o for o in cell["outputs"] if not (o.get("output_type") == "stream"
                                                                   and o.get("name") == "stderr")]
    dst.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def _files(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir() if p.is_file()}


def _write_record(folder: Path, record: dict) -> None:
    tmp = folder / ".run.json.tmp"
    tmp.write_text(json.dumps(record, indent=2, default=str))
    os.replace(tmp, folder / "run.json")


def _read_record(folder: Path) -> dict:
    """The ``run.json`` of a complete run in ``folder``; {} when there is none."""
    try:
        record = json.loads((folder / "run.json").read_text())
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) and record.get("status") in (None, "complete") else {}


def _reuse(entry: dict, previous: Path, staging: Path, overrides: dict, digest: str, inputs: dict) -> dict:
    """Copy a notebook's files (``entry`` in the ``run.json`` of ``previous``) into ``staging``; its new entry."""
    for f in entry["files"]:
        shutil.copy2(previous / f, staging / f)
    kept = {k: v for k, v in entry.items() if k != "carried_over_from"}
    return {**kept, "overrides": overrides, "executed": "reused", "reason": f"inputs unchanged (digest {digest[:12]})",
            "digest": digest, "inputs": inputs}


def _carry_over(previous: Path, staging: Path, record: dict, echo) -> None:
    """Copy into ``staging`` the notebooks of the run in ``previous`` that this run did not select,
    with exactly the files its ``run.json`` lists for them, and their records."""
    old = _read_record(previous)
    if bool(old.get("rehearsal")) != bool(record.get("rehearsal")):
        if old.get("notebooks"):
            echo(f"  the previous run in {previous.name} is {'a' if old.get('rehearsal') else 'not a'} rehearsal; "
                 "none of its notebooks is carried over", flush=True)
        return
    for name, entry in (old.get("notebooks") or {}).items():
        if name in record["notebooks"]:
            continue
        files = entry.get("files")
        if not files or any(not (previous / f).is_file() for f in files) or set(files) & _files(staging):
            echo(f"  {name} of the previous run is not carried over: its files are incomplete or unrecorded",
                 flush=True)
            continue
        for f in files:
            shutil.copy2(previous / f, staging / f)
        record["notebooks"][name] = {**entry, "carried_over_from": entry.get("carried_over_from")
                                     or old.get("started")}


def _replace(target: Path, staging: Path) -> None:
    """Put ``staging`` in ``target``'s place (two renames; the old folder is removed afterwards)."""
    if target.exists():
        old = target.with_name(f".{target.name}.replaced-{os.getpid()}")
        shutil.rmtree(old, ignore_errors=True)
        os.rename(target, old)
        os.rename(staging, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(staging, target)


def run(profile: str, notebooks: list[str] | None = None, out: str | Path | None = None,
        device: str | None = None, overrides: dict | None = None, echo=print, environment: dict | None = None,
        rehearsal: dict | None = None, force: bool = False, jobs: int | None = None) -> Path:
    """Execute notebooks with papermill into the run folder ``out`` (default ``runs/<profile>``), all
    or nothing (module docstring); one line per notebook. A notebook whose inputs did not change since the
    run in ``out`` is reused from there, unless ``force``. Raises :class:`RunFailed` when a notebook
    fails (``out`` is then unchanged) and :class:`ParameterError`, before anything runs, for a bad
    parameter of any notebook. ``environment``: variables for the kernels (:func:`kernel_environment`);
    ``rehearsal``: what :func:`ashlib.book.rehearsal.rehearse` records in ``run.json`` (the book shows it).

    ``jobs``: notebooks executed at once (:func:`execute`), each kernel with its share of the cores;
    None: the cores this process may use when every notebook runs on the CPU, else 1 (one GPU's memory
    is not shared). Networks train on one thread whatever ``jobs`` is (:class:`ashlib.assets.models.TrainRecipe`),
    and two kernels that need the same network or features compute them once (:func:`ashlib.assets.cache.locked`).
    """
    with kernel_environment(Path("."), environment):  # the checks see what the kernels will see
        plans = plan(profile, notebooks, device, overrides)
    if jobs is not None:
        check_positive_int("jobs", jobs)
    out = Path(out or ROOT / "runs" / profile).resolve()
    if out.exists() and not out.is_dir():
        raise ParameterError(f"out={str(out)!r} is not allowed: it is a file; expected a run folder.")
    stamp = time.strftime("%Y%m%dT%H%M%S")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.with_name(f".{out.name}.running-{stamp}-{os.getpid()}")
    staging.mkdir()
    record = dict(profile=profile, overrides=overrides or {}, python=platform.python_version(),
                  machine=platform.machine(), started=time.strftime("%Y-%m-%dT%H:%M:%S"), status="running",
                  notebooks={}, **({"rehearsal": rehearsal} if rehearsal else {}))
    _write_record(staging, record)  # a run that is killed still says what it was
    previous = _read_record(out)
    _recover_killed(out, echo)
    failed_notebook, running_now, left_behind = [], set(), {}
    try:
        with kernel_environment(staging, environment):
            shared = shared_inputs(bool(rehearsal))
        todo, number = {}, {name: f"[{i}/{len(plans)}] {name}" for i, name in enumerate(plans, 1)}
        for name, params in plans.items():
            inputs = notebook_inputs(name, params, shared)
            digest = _json_digest(inputs)
            old = (previous.get("notebooks") or {}).get(name)
            reason = why_run(inputs, old, out, force)
            if reason is None:
                record["notebooks"][name] = _reuse(old, out, staging, overrides or {}, digest, inputs)
                echo(f"{number[name]}: reused, {record['notebooks'][name]['reason']}", flush=True)
            else:
                todo[name] = dict(parameters=params, overrides=overrides or {}, reason=reason, digest=digest,
                                  inputs=inputs)
        if jobs is None:
            on_cpu = all(str(t["parameters"].get("device", "cpu")) == "cpu" for t in todo.values())
            jobs = _threads.cpus() if on_cpu else 1
        jobs = max(1, min(jobs, len(todo)))
        kernel_env = dict(environment or {})
        if jobs > 1:
            threads = _threads.share(jobs)
            kernel_env.update(_threads.environment(threads))
            echo(f"{len(todo)} notebooks to run, {jobs} at a time, {threads} compute thread(s) each", flush=True)
        seconds = {name: (previous.get("notebooks") or {}).get(name, {}).get("seconds") for name in todo}
        order = sorted(todo, key=lambda name: -(seconds[name] or math.inf))  # stable: new ones first, in order

        def started(name):
            running_now.add(name)
            echo(f"{number[name]}: running on {todo[name]['parameters'].get('device', 'cpu')} "
                 f"({todo[name]['reason']}) ...", flush=True)

        def finished(name, took, files):
            running_now.discard(name)
            for report in _cache_reports(staging / f"{name}.ipynb"):
                echo(f"  cache: {report}", flush=True)
            _scrub_paths(staging / f"{name}.ipynb", name)
            task = todo[name]
            record["notebooks"][name] = dict(parameters=task["parameters"], overrides=task["overrides"],
                                             seconds=round(took, 1), files=files, executed="ran",
                                             reason=task["reason"], ran_at=record["started"], digest=task["digest"],
                                             inputs=task["inputs"], outputs=files_digest(staging, files))
            echo(f"{number[name]}: done in {took:.1f} s", flush=True)

        with kernel_environment(staging, environment):
            execute([(name, todo[name]["parameters"]) for name in order], staging, jobs, kernel_env,
                    started, finished, failed_notebook.append,
                    lambda name, files: left_behind.setdefault(name, []).extend(files))
        record["notebooks"] = {name: record["notebooks"][name] for name in plans}  # the plan's order
        _carry_over(out, staging, record, echo)
        record.update(status="complete", finished=time.strftime("%Y-%m-%dT%H:%M:%S"))
        _write_record(staging, record)
        _replace(out, staging)
    except BaseException as err:
        stopped = [name for name in plans if name in running_now or name in left_behind]
        current = failed_notebook[0] if failed_notebook else (stopped[0] if len(stopped) == 1 else None)
        failed = out.with_name(f"{out.name}.failed-{stamp}")
        error = getattr(err, "ename", None) or type(err).__name__  # papermill: the notebook's exception
        full = f"{error}: {getattr(err, 'evalue', None) or err}".strip()
        what = full.splitlines()[0]
        for name in stopped:  # the folder's every file is listed: a notebook's partial output under its name
            record["notebooks"][name] = dict(parameters=plans[name],
                                             status="failed" if name == current else "stopped",
                                             files=sorted(left_behind.get(name, [])), executed="partly")
        record["notebooks"] = {name: record["notebooks"][name] for name in plans if name in record["notebooks"]}
        record.update(status="interrupted" if isinstance(err, KeyboardInterrupt) else "failed",
                      failed_notebook=current, error=full)
        with contextlib.suppress(OSError):
            _write_record(staging, record)
            os.rename(staging, failed)
        echo(f"run failed{f' in {current}' if current else ''}: {full}", flush=True)
        echo(f"  {out} is unchanged; this run's partial output: {failed}", flush=True)
        if isinstance(err, Exception) and current:
            detail = "".join("\n" + line for line in full.splitlines()[1:])
            raise RunFailed(f"{current}: {what} (partial output: {failed}; {out} unchanged){detail}") from err
        raise
    echo(f"run folder: {out}", flush=True)
    return out


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        pass
    return True


def _recover_killed(out: Path, echo=print) -> list[Path]:
    """The staging folders of earlier runs into ``out`` whose process is gone (killed: SIGKILL, a lost
    machine), renamed ``<out>.failed-<stamp>`` beside the failed runs, with a ``run.json`` that says so
    and lists their files; one line each. A run still going is left alone. The new names."""
    recovered = []
    for staging in sorted(out.parent.glob(f".{out.name}.running-*")):
        stamp, _, pid = staging.name.rpartition(".running-")[2].rpartition("-")
        if not pid.isdigit() or _alive(int(pid)) or not staging.is_dir():
            continue
        try:  # what the run wrote when it started (profile, overrides, start time)
            record = json.loads((staging / "run.json").read_text())
        except (OSError, ValueError):
            record = {}
        files = sorted(str(p.relative_to(staging)) for p in staging.rglob("*") if p.is_file() and p.name != "run.json")
        record.update(status="killed", failed_notebook=None, files=files,
                      error=f"the run (process {pid}) stopped without finishing: killed, or its machine went down")
        target = out.with_name(f"{out.name}.failed-{stamp}")
        while target.exists():
            target = target.with_name(target.name + "x")
        _write_record(staging, record)
        os.rename(staging, target)
        echo(f"an earlier run into {out} (process {pid}, {stamp}) was killed before it finished; "
             f"its partial output: {target}", flush=True)
        recovered.append(target)
    return recovered


def execute(tasks: list[tuple[str, dict]], staging: Path, jobs: int = 1, env: dict | None = None,
            started=lambda name: None, finished=lambda name, seconds, files: None,
            failed=lambda name: None, partial=lambda name, files: None) -> None:
    """Execute each ``(name, parameters)`` of ``tasks`` (``notebooks/<name>.ipynb``) with papermill,
    ``jobs`` at a time, in the order given, into ``staging``: each in its own folder ``staging/.<name>/``
    (its kernel's ``ASHLIB_RESULTS_DIR``), whose files move into ``staging`` when it succeeds, so each
    notebook's files are known even while others write theirs. ``env``: variables added to this
    process's environment for the kernels. ``started(name)`` is called when one starts, ``finished(name,
    seconds, files)`` when one succeeded (from this thread, one at a time), ``partial(name, files)`` for
    what a failed or stopped one left (in ``staging`` too), ``failed(name)`` for the
    first that failed.

    When one fails or the run is interrupted (Ctrl-C), nothing else starts and the kernels still running
    are interrupted (then killed, if they do not stop within ``STOP_SECONDS``); the first failure's
    exception is raised once every thread has ended, so no kernel outlives the run.
    """
    from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

    check_positive_int("jobs", jobs)
    waiting, running, managers, failure, deadline = list(tasks), {}, {}, None, None
    pool = ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="notebook")
    try:
        while waiting or running:
            while waiting and len(running) < jobs and failure is None:
                name, params = waiting.pop(0)
                managers[name] = []
                started(name)
                running[pool.submit(_execute_one, name, params, staging / f".{name}", dict(env or {}),
                                    managers[name])] = name
            if not running:
                break
            if failure is not None:  # a notebook that still ends well is recorded as such
                deadline = deadline or time.monotonic() + STOP_SECONDS
                _interrupt(running, managers, kill=time.monotonic() > deadline)
            done, _ = wait(running, timeout=None if failure is None else 1, return_when=FIRST_COMPLETED)
            for future in done:
                name = running.pop(future)
                try:
                    took = future.result()
                except BaseException as err:  # noqa: BLE001 (KeyboardInterrupt in the stand-in of a test too)
                    partial(name, _collect(staging / f".{name}", staging, partial=True))
                    if failure is None:
                        failure = err
                        failed(name)
                    continue
                finished(name, took, _collect(staging / f".{name}", staging))
    except BaseException:
        _stop(running, managers)
        raise
    finally:
        pool.shutdown(wait=True)
        for name in managers:  # what the stopped notebooks wrote: beside the failed one's, for a look
            files = _collect(staging / f".{name}", staging, partial=True)
            if files:
                partial(name, files)
    if failure is not None:
        raise failure


#: Seconds :func:`execute` interrupts the kernels of a failed or interrupted run before it kills them.
STOP_SECONDS = 20


def _interrupt(running: dict, managers: dict, kill: bool = False) -> None:
    """Interrupt (or ``kill``) the kernels of the notebooks still ``running``."""
    from jupyter_core.utils import run_sync

    for name in running.values():
        for manager in managers.get(name, []):
            with contextlib.suppress(Exception):
                if kill:
                    manager.provisioner.process.kill()
                else:
                    run_sync(manager.interrupt_kernel)()


def _stop(running: dict, managers: dict) -> None:
    """Interrupt the kernels of the notebooks still ``running`` (again each second: an interrupt that
    falls between two cells is lost), kill them after :data:`STOP_SECONDS`, until their threads end."""
    from concurrent.futures import wait

    deadline = time.monotonic() + STOP_SECONDS
    while running:
        _interrupt(running, managers, kill=time.monotonic() > deadline)
        done, _ = wait(running, timeout=1)
        for future in done:
            running.pop(future)


def _execute_one(name: str, params: dict, folder: Path, env: dict, managers: list) -> float:
    """Execute ``notebooks/<name>.ipynb`` into ``folder`` (made here), its kernel started with ``env`` and
    ``ASHLIB_RESULTS_DIR=folder`` added to this process's environment; the seconds it took. The kernel's
    manager is appended to ``managers``, so that :func:`execute` can interrupt it."""
    import papermill

    folder.mkdir()
    t0 = time.perf_counter()
    papermill.execute_notebook(str(NOTEBOOKS / f"{name}.ipynb"), str(folder / f"{name}.ipynb"),
                               parameters=params, cwd=str(NOTEBOOKS), progress_bar=False, kernel_name="python3",
                               kernel_manager_class=_kernel_manager({**env, "ASHLIB_RESULTS_DIR": str(folder)},
                                                                    managers))
    return time.perf_counter() - t0


def _kernel_manager(env: dict, managers: list):
    """A kernel manager class whose kernels start with ``env`` added to this process's environment
    (``os.environ`` is shared by the threads of :func:`execute`, so it cannot say where each notebook
    writes) and whose instances are appended to ``managers``."""
    from jupyter_client.manager import AsyncKernelManager

    class KernelManager(AsyncKernelManager):
        extra_env = dict(env)

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            managers.append(self)

        async def start_kernel(self, **kw):
            return await super().start_kernel(**{**kw, "env": {**os.environ, **kw.get("env", {}), **self.extra_env}})

    return KernelManager


def _collect(folder: Path, staging: Path, partial: bool = False) -> list[str]:
    """Move what a notebook wrote in its own ``folder`` into ``staging``; the names of its files. A name
    another notebook wrote already is an error (or, for the ``partial`` output of a failed one, left)."""
    if not folder.is_dir():
        return []
    moved = []
    for path in sorted(folder.iterdir()):
        if (staging / path.name).exists():
            if partial:
                continue
            raise RuntimeError(f"{path.name} was written by two notebooks of the run (the second: "
                               f"{folder.name[1:]}); each notebook's files must have their own names.")
        if path.is_file():
            moved.append(path.name)
        os.rename(path, staging / path.name)
    shutil.rmtree(folder, ignore_errors=True)
    return moved


def build_book(run_dir: str | Path, book_dir: str | Path = BOOK, echo=print) -> Path:
    """Build the site from the executed notebooks of ``run_dir``; nothing is executed again.

    The notebooks are copied to ``<book>/run/`` and the table of contents keeps only the chapters
    present in the run, so a run of one notebook (say on a GPU) is published as it is.
    """
    run_dir, book_dir = Path(run_dir).resolve(), Path(book_dir).resolve()
    record = run_dir / "run.json"
    status = json.loads(record.read_text()).get("status") if record.is_file() else None
    if status not in (None, "complete"):
        raise ParameterError(f"run_dir={str(run_dir)!r} is not allowed: its run.json says the run is {status!r}; "
                             "expected a complete run folder written by `python -m ashlib run`.")
    executed = sorted(run_dir.glob("*.ipynb"))
    if not executed:
        raise ParameterError(f"run_dir={str(run_dir)!r} is not allowed: it holds no executed notebooks; "
                             "expected a folder written by `python -m ashlib run`.")
    target = book_dir / "run"
    if target.resolve() != run_dir:
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        for path in [*run_dir.glob("*.csv"), *run_dir.glob("*.zip"), *run_dir.glob("run.json")]:
            shutil.copy2(path, target / path.name)
        for path in executed:  # the site publishes its notebooks as they render: without stderr
            _without_stderr(path, target / path.name)
    present = {p.stem for p in executed}
    run_record = json.loads(record.read_text()) if record.is_file() else {}
    fragments = book_dir / "_fragments"
    (target / "this_run.md").write_text(this_run_page(run_record, present, fragments), encoding="utf-8")
    (target / "verdict.md").write_text(verdict_page(present), encoding="utf-8")
    (target / "results.md").write_text(results_page(present, fragments), encoding="utf-8")
    toc = yaml.safe_dump(_toc_for(yaml.safe_load((book_dir / "_toc.yml").read_text()), present), sort_keys=False)
    config = yaml.safe_load((book_dir / "_config.yml").read_text())
    if run_record.get("rehearsal"):  # every page says so, above its title
        config.setdefault("html", {})["announcement"] = run_record["rehearsal"]["banner"]
    sphinx = config.setdefault("sphinx", {}).setdefault("config", {})  # plotly.js, served by the site itself
    sphinx["html_static_path"] = [*sphinx.get("html_static_path", []), SITE_STATIC]
    sphinx["html_js_files"] = [*sphinx.get("html_js_files", []), PLOTLY_JS]
    config = yaml.safe_dump(config, sort_keys=False)
    build, digest = book_dir / "_build", site_digest(book_dir, toc, config)
    index, stamp = build / "html" / "index.html", build / "site.digest"
    if index.is_file() and stamp.is_file() and stamp.read_text().strip() == digest:
        echo(f"the site is up to date (its sources and run unchanged, digest {digest[:12]}): not rebuilt", flush=True)
        echo(f"Site: {index}", flush=True)
        return index
    shutil.rmtree(build, ignore_errors=True)  # a clean build: no page of an earlier run survives
    build.mkdir()
    (build / "_toc.yml").write_text(toc)
    (build / "_config.yml").write_text(config)
    _write_plotly_js(book_dir / SITE_STATIC)
    cmd = [str(Path(sys.executable).with_name("jupyter-book")), "build", str(book_dir),
           "--toc", str(build / "_toc.yml"), "--config", str(build / "_config.yml"),
           "--warningiserror", "--keep-going"]
    echo("building the site: jupyter-book " + " ".join(cmd[1:]), flush=True)
    _jupyter_book(cmd)
    stamp.write_text(digest + "\n")  # only after a successful build
    echo(f"Site: {index}", flush=True)
    return index


def _jupyter_book(cmd: list[str]) -> None:
    subprocess.run(cmd, check=True)


#: Where :func:`build_book` puts the files the site serves besides the book's own (relative to the book:
#: inside ``_build``, which the build starts afresh and Sphinx never reads as a source), and plotly.js.
SITE_STATIC, PLOTLY_JS = "_build/static", "plotly.min.js"


def _write_plotly_js(folder: Path) -> Path:
    """Copy the installed plotly's bundled plotly.js into ``folder``: the site loads it from its own
    ``_static`` (``html_js_files``), so the interactive figures (:mod:`ashlib.book.interactive`, embedded
    without JavaScript) work offline and from ``file://``; nothing is fetched from a CDN. Its version is
    the installed plotly's, which :func:`site_digest` covers."""
    from importlib import resources

    try:
        source = resources.files("plotly").joinpath("package_data", PLOTLY_JS)
    except ModuleNotFoundError as err:
        raise RuntimeError("the site needs plotly (the interactive figures): pip install -e '.[book]'") from err
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / PLOTLY_JS
    with resources.as_file(source) as path:
        shutil.copyfile(path, target)
    return target


def site_digest(book_dir: Path, toc: str, config: str) -> str:
    """sha256 of what a site is built from: every file under ``book_dir`` but ``_build`` and the run's
    ``run.json`` (its timestamps change with every run; the page drawn from it is hashed), the table of
    contents and configuration of the build, and the installed packages."""
    names = sorted(p.relative_to(book_dir).as_posix() for p in book_dir.rglob("*") if p.is_file())
    names = [n for n in names if n.split("/")[0] != "_build" and n != "run/run.json"]
    return _sha256(files_digest(book_dir, names), toc, config, _json_digest(package_versions()))


FRAGMENTS = {"mnist5k": "mnist5k.md", "fmnist": "fmnist.md", "cifar10": "cifar.md", "cifar100": "cifar.md",
             "imagenet": "imagenet.md"}


def this_run_page(record: dict, present: set[str], fragments: Path) -> str:
    """The introduction's "Which benchmark" paragraph for the run the site shows (``run.json``): the
    benchmark's text (``book/_fragments``), the run's own settings, the ID accuracy its first ASH
    chapter measured, and for a rehearsal a warning that its numbers mean nothing."""
    runs = record.get("notebooks") or {}
    params = next((runs[n]["parameters"] for n in sorted(runs) if n in present), {})
    bench = params.get("benchmark", "mnist5k")
    parts = []
    if record.get("rehearsal"):
        parts.append(f":::{{warning}}\n{record['rehearsal']['banner']}\n:::\n")
    parts.append((fragments / FRAGMENTS.get(bench, "mnist5k.md")).read_text(encoding="utf-8").strip()
                 .replace("{benchmark}", bench))
    settings = [f"profile `{record['profile']}`"] if record.get("profile") else []
    settings += [f"{k} `{params[k]}`" for k in ("preprocessing", "model", "device") if params.get(k) is not None]
    subsets = [f"{k}={params[k]:,}" for k in ("n_train", "n_test", "n_ood") if params.get(k) is not None]
    if subsets:
        settings.append("subsets " + ", ".join(subsets) + " (not the paper's sizes)")
    line = "**This site's run:** " + ", ".join(settings) + "." if settings else ""
    if "01_methods" in present:
        line += (" Its network classifies {glue:text}`run/01_methods.ipynb::methods_id_accuracy:.2f`% of the "
                 "ID test images correctly.")
    parts.append(line.strip())
    return "\n\n".join(p for p in parts if p) + "\n"


def verdict_page(present: set[str]) -> str:
    """The introduction's first screen: the book's verdict on its central question, *when does ASH help?*,
    as this run answers it (chapter 09's generated answer and its figure, glued), or a line saying that
    this run has no such chapter."""
    if "09_when_ash_helps" not in present:
        return ("**The verdict.** This run has no chapter *When does ASH help?*, so this page states no verdict "
                "of its own; the chapters below report each claim with its interval.\n")
    return ("**The verdict, from this run.** {glue:text}`run/09_when_ash_helps.ipynb::when_ash_helps_answer_text:s` "
            "Why: ASH-S multiplies what it keeps by $e^{s_1/s_2}$, which is larger for an image whose activation "
            "mass is spread over many small values, so it raises the scores of whichever images spread theirs "
            "more; the *premise AUROC* measures whether those are the ID images (above 50) or the OOD images "
            "(below). The chapter *When does ASH help?* has the details; the primer works the factor out by "
            "hand.\n\n"
            "```{glue} when_ash_helps_gain_figure\n"
            ":doc: run/09_when_ash_helps.ipynb\n"
            "```\n\n"
            "*ASH's gain over the energy score (mean AUROC, points) against the network's penultimate units, with "
            "95% intervals over training seeds and test images, from the chapter on when ASH helps.*\n")


def results_page(present: set[str], fragments: Path) -> str:
    """The gathered results: the sections of ``book/_fragments/results.md`` whose every pasted table
    comes from a chapter present in the run."""
    import re

    head, *sections = re.split(r"(?m)^(?=## )", (fragments / "results.md").read_text(encoding="utf-8"))
    kept = [s for s in sections
            if all(doc in present for doc in re.findall(r":doc: run/([\w-]+)\.ipynb", s))]
    return head + "".join(kept)


def _toc_for(toc: dict, present: set[str]) -> dict:
    """The book's table of contents without the chapters of notebooks absent from the run (the
    results page keeps the sections of the chapters present, :func:`results_page`)."""

    def keep(entry) -> bool:
        file = entry.get("file", "")
        return not file.startswith("run/") or file.split("/", 1)[1] in present

    toc = copy.deepcopy(toc)
    for part in toc.get("parts", []):
        part["chapters"] = [c for c in part.get("chapters", []) if keep(c)]
    toc["parts"] = [p for p in toc.get("parts", []) if p["chapters"]]
    if "chapters" in toc:
        toc["chapters"] = [c for c in toc["chapters"] if keep(c)]
    return toc
