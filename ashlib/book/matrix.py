"""The run matrix: profiles x notebook sets x seeds x a grid of parameters. Each *cell* is one
:func:`ashlib.book.pipeline.run` into ``<out>/<cell id>/``, run as a submitit job (SLURM on a cluster,
processes on this machine); the tables of cells that differ only by seed are aggregated into means and
standard deviations. A matrix file (YAML; ``matrices/example.yaml``)::

    profile: embedded                       # or profiles: [embedded, fmnist]
    notebooks: [03_global_vs_local]         # run together in each cell; [[a], [b]]: two notebook sets
    seeds: [0, 1, 2]                        # values of the notebooks' parameter `seed_parameter` (seed)
    grid: {fpr_convention: [paper, roc]}    # every combination of these values
    parameters: {compare: []}               # the same in every cell
    executor: {cluster: local, max_parallel: 2}   # or slurm, with submitit's parameters

- **Checked first.** Every cell's parameters are checked (:func:`ashlib.book.pipeline.plan`), and the
  executor's by submitit, before any job is submitted; a bad one raises :class:`ParameterError`.
- **Resumable.** A cell whose folder holds a complete run with the same overrides is skipped.
- **Failures isolated.** A cell that fails or whose job is killed is reported (error, log, partial
  output) and the others go on; :func:`run` returns the record, whose ``failed`` lists them.
- **Recorded.** ``<out>/matrix.json``: each cell's parameters, status (complete, skipped, failed,
  running), job id, seconds, error; ``<out>/jobs/<job id>/``: the jobs' logs;
  ``<out>/aggregate/<table>.csv``: the tables over seeds (:func:`aggregate`).
"""
from __future__ import annotations

import importlib.util
import itertools
import json
import os
import re
import shutil
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import yaml

from ashlib import _threads
from ashlib.book import pipeline
from ashlib._checks import ParameterError, check_choice
from ashlib.book.params import load_profile

KEYS = ("profile", "profiles", "notebooks", "seeds", "seed_parameter", "grid", "parameters", "executor")
CLUSTERS = ("local", "slurm")
#: submitit parameters every matrix gets unless its ``executor`` says otherwise (submitit's own default
#: time limits are 2 min locally and 5 min on SLURM)
EXECUTOR_DEFAULTS = {"timeout_min": 60, "name": "ashlib-matrix"}
POLL_S = {"local": 1.0, "slurm": 30.0}


@dataclass
class Cell:
    """One run of the matrix: ``pipeline.run(profile, notebooks, <out>/<id>, overrides=overrides)``."""

    profile: str
    notebooks: list[str]
    label: str  # the notebook set in the id: the names joined by '+', or 'all' (the profile's)
    seed: int | None
    point: dict  # the grid's values
    overrides: dict = field(repr=False)
    id: str = ""


def _bad(key: str, value, allowed: str) -> ParameterError:
    return ParameterError(f"{key}={value!r} is not allowed: expected {allowed}.")


def _names(value) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, str) for v in value)


def normalize(raw) -> dict:
    """The matrix as a checked dict: ``profiles``, ``notebook_sets`` (None: the profile's notebooks),
    ``seeds`` ([None]: no seed dimension), ``seed_parameter``, ``grid``, ``parameters``, ``executor``."""
    if not isinstance(raw, dict):
        raise _bad("matrix", raw, f"a mapping with the keys {', '.join(KEYS)}")
    for key in raw:
        check_choice("key", key, KEYS)
    if ("profile" in raw) == ("profiles" in raw):
        raise ParameterError("profile/profiles is not allowed as given: expected exactly one of them, e.g. "
                             "`profile: embedded` or `profiles: [embedded, fmnist]`.")
    profiles = [raw["profile"]] if "profile" in raw else raw["profiles"]
    if not _names(profiles):
        key = "profile" if "profile" in raw else "profiles"
        raise _bad(key, raw[key], "a profile name" if key == "profile" else "a non-empty list of profile names")
    for name in profiles:
        check_choice("profile", name, pipeline.profiles())
    sets = raw.get("notebooks")
    if sets is None:
        sets = [None]
    elif _names(sets):
        sets = [sets]
    elif not (isinstance(sets, list) and sets and all(_names(s) for s in sets)):
        raise _bad("notebooks", sets, "a list of notebook names (run together in each cell) or a list of such "
                   "lists (one notebook set per cell)")
    for name in (n for s in sets if s for n in s):
        check_choice("notebooks", name, pipeline.notebook_names())
    seeds = raw.get("seeds")
    if seeds is None:
        seeds = [None]
    elif not (isinstance(seeds, list) and seeds and all(type(s) is int and s >= 0 for s in seeds)
              and len(set(seeds)) == len(seeds)):
        raise _bad("seeds", seeds, "a non-empty list of distinct integers >= 0, e.g. [0, 1, 2]")
    seed_parameter = raw.get("seed_parameter", "seed")
    if not (isinstance(seed_parameter, str) and seed_parameter.isidentifier()):
        raise _bad("seed_parameter", seed_parameter, "the name of a notebook parameter, e.g. seed")
    grid = raw.get("grid") or {}
    if not isinstance(grid, dict):
        raise _bad("grid", grid, "a mapping of parameter names to lists of values, e.g. {percentile: [85, 90]}")
    for key, values in grid.items():
        if not (isinstance(values, list) and values):
            raise _bad(f"grid.{key}", values, "a non-empty list of values, e.g. [85, 90]")
    parameters = raw.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise _bad("parameters", parameters, "a mapping of parameter names to values, the same in every cell")
    places = {"seeds": {seed_parameter} if seeds != [None] else set(), "grid": set(grid),
              "parameters": set(parameters)}
    for a, b in itertools.combinations(places, 2):
        twice = sorted(places[a] & places[b])
        if twice:
            raise ParameterError(f"parameter {twice[0]!r} is not allowed in both {a} and {b}: expected it in one "
                                 "of them.")
    executor = raw.get("executor") or {}
    if not isinstance(executor, dict):
        raise _bad("executor", executor, "a mapping, e.g. {cluster: local}")
    executor = {"cluster": "local", **executor}
    check_choice("executor.cluster", executor["cluster"], CLUSTERS)
    limit = executor.get("max_parallel")
    if limit is not None and (type(limit) is not int or limit < 1):
        raise _bad("executor.max_parallel", limit, "an integer >= 1 (cells running at once), or no key: all")
    return dict(profiles=profiles, notebook_sets=sets, seeds=seeds, seed_parameter=seed_parameter, grid=grid,
                parameters=parameters, executor=executor)


def load(path: str | Path) -> dict:
    """Read and check a matrix file (:func:`normalize`); errors name the file."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise ParameterError(f"matrix file {str(path)!r} is not allowed: {err.strerror}.") from None
    except yaml.YAMLError as err:
        raise ParameterError(f"{path}: not valid YAML ({str(err).splitlines()[0]}).") from None
    try:
        return normalize(raw)
    except ParameterError as err:
        raise ParameterError(f"{path}: {err}") from None


def _text(value) -> str:
    if isinstance(value, (list, tuple)):
        return ",".join(map(_text, value))
    if isinstance(value, dict):
        return ",".join(f"{k}-{_text(v)}" for k, v in value.items())
    return str(value)


def cell_id(profile: str, label: str, seed: int | None, point: dict, seed_parameter: str = "seed") -> str:
    """A cell's folder name, readable and stable: ``embedded__04_ash_rand__seed=0__percentile=90``."""
    parts = [profile, label, *([f"{seed_parameter}={seed}"] if seed is not None else []),
             *(f"{k}={_text(v)}" for k, v in point.items())]
    return re.sub(r"[^\w.,=+-]", "-", "__".join(parts))


def expand(spec: dict) -> list[Cell]:
    """The cells of a checked matrix: profile x notebook set x seed x grid point, in that order."""
    cells = []
    for profile, names, seed, values in itertools.product(spec["profiles"], spec["notebook_sets"], spec["seeds"],
                                                          itertools.product(*spec["grid"].values())):
        point = dict(zip(spec["grid"], values))
        seeded = {} if seed is None else {spec["seed_parameter"]: seed}
        label = "+".join(names) if names else "all"
        notebooks = list(names or load_profile(profile)["notebooks"] or pipeline.notebook_names())
        cells.append(Cell(profile, notebooks, label, seed, point, {**spec["parameters"], **seeded, **point},
                          cell_id(profile, label, seed, point, spec["seed_parameter"])))
    ids = [c.id for c in cells]
    twice = sorted({i for i in ids if ids.count(i) > 1})
    if twice:
        raise ParameterError(f"grid is not allowed as given: two cells would share the folder {twice[0]!r}; "
                             "expected values that differ once written as a folder name.")
    return cells


def make_executor(settings: dict, folder: str | Path):
    """A submitit ``AutoExecutor`` for ``settings`` (the matrix's ``executor``: ``cluster`` and submitit's
    parameters, :data:`EXECUTOR_DEFAULTS` for those not given), its logs in ``folder``."""
    for module, why in (("submitit", "submitit is not installed: pip install -e '.[cluster]'"),
                        ("pkg_resources", "submitit imports pkg_resources, which setuptools 82 removed: "
                                          "pip install 'setuptools<82'")):
        if importlib.util.find_spec(module) is None:
            raise ParameterError(f"executor={settings!r} is not available: {why}.")
    import submitit

    options = {**EXECUTOR_DEFAULTS, **{k: v for k, v in settings.items() if k not in ("cluster", "max_parallel")}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pkg_resources' deprecation, when submitit loads its plugins
        try:
            executor = submitit.AutoExecutor(folder=folder, cluster=settings["cluster"])
        except RuntimeError as err:  # SLURM's executor needs srun
            raise ParameterError(f"executor.cluster={settings['cluster']!r} is not available here: {err}") from None
        try:
            executor.update_parameters(**options)
        except (AssertionError, NameError, TypeError, ValueError) as err:
            first = str(err).strip().splitlines()[0]
            raise ParameterError(f"executor={settings!r} is not allowed: {first} Expected cluster, max_parallel, "
                                 "submitit's generic parameters (timeout_min, mem_gb, cpus_per_task, gpus_per_node, "
                                 "nodes, tasks_per_node, name) and slurm_<option> (e.g. slurm_partition).") from None
    return executor


def _plan_device(cell: Cell, remote: bool) -> str | None:
    """The device to check a cell's parameters with here: a CUDA device of a job that runs elsewhere is
    checked on its node, so here the rest is checked on the CPU."""
    device = cell.overrides.get("device") or load_profile(cell.profile).get("device", "cpu")
    return "cpu" if remote and re.fullmatch(r"cuda(:\d+)?", str(device)) else None


def check(spec: dict, cells: list[Cell]) -> None:
    """Check everything before any job: the seed parameter is declared by every notebook of a matrix
    with seeds, every cell's parameters (:func:`ashlib.book.pipeline.plan`), the executor's (submitit; that
    SLURM is there is known only when the jobs are submitted)."""
    if spec["seeds"] != [None]:
        name = spec["seed_parameter"]
        for notebook in dict.fromkeys(n for c in cells for n in c.notebooks):
            declared = pipeline.declared_parameters(notebook)
            if name not in declared:
                raise ParameterError(
                    f"seed_parameter={name!r} is not allowed with notebook {notebook}: it declares no parameter "
                    f"{name!r}, so its runs cannot differ by seed. Expected one of its parameters "
                    f"({', '.join(declared)}) or a matrix without {notebook}.")
    remote = spec["executor"]["cluster"] != "local"
    for cell in cells:
        try:
            pipeline.plan(cell.profile, cell.notebooks, _plan_device(cell, remote), cell.overrides)
        except ParameterError as err:
            raise ParameterError(f"cell {cell.id}: {err}") from None
    with tempfile.TemporaryDirectory() as tmp:  # submitit checks every executor's parameters, on any machine
        make_executor({**spec["executor"], "cluster": "local"}, tmp)


def _jsonable(value):
    return json.loads(json.dumps(value, default=str))


def _record_of(folder: Path) -> dict:
    try:
        record = json.loads((folder / "run.json").read_text())
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def is_complete(folder: Path, cell: Cell) -> bool:
    """Whether ``folder`` holds a complete run of ``cell``: its profile, its overrides, its notebooks."""
    record = _record_of(folder)
    return (record.get("status") == "complete" and record.get("profile") == cell.profile
            and record.get("overrides") == _jsonable(cell.overrides)
            and set(cell.notebooks) <= set(record.get("notebooks") or {}))


def run_cell(profile: str, notebooks: list[str], out: str, overrides: dict, threads: int | None = None) -> float:
    """The job of a cell (what submitit runs): the pipeline run; its seconds. ``threads``: compute threads
    of its kernels (cells run side by side on one machine share its cores), None: the defaults. A cell's
    notebooks run one at a time: the matrix runs its cells side by side already."""
    if threads:
        os.environ.update(_threads.environment(threads))
    t0 = time.perf_counter()
    pipeline.run(profile, notebooks, out, overrides=overrides, jobs=1)
    return round(time.perf_counter() - t0, 1)


def _partial(out: Path, cell_id: str, since: float) -> Path | None:
    """The partial output a failed job of the cell left: its failed or still-staging run folder."""
    found = [p for p in [*out.glob(f"{cell_id}.failed-*"), *out.glob(f".{cell_id}.running-*")]
             if p.stat().st_mtime >= since - 1]
    return max(found, key=lambda p: p.stat().st_mtime) if found else None


def _error(job, err: Exception, partial: Path | None) -> str:
    """One line on why a cell's job failed: the failed notebook's error, else the job's exception."""
    record = _record_of(partial) if partial else {}
    if record.get("error"):
        notebook = record.get("failed_notebook")
        return (f"{notebook}: " if notebook else "") + record["error"].splitlines()[0]
    text = str(err)
    if "with trace:" in text:  # submitit's FailedJobError: the traceback's exception line
        trace = text.split("with trace:", 1)[1].split("You can check full logs", 1)[0]
        lines = [line for line in trace.splitlines() if line.strip() and not line[0].isspace()
                 and not set(line) <= {"-"} and not line.startswith("Traceback")]
        return lines[-1] if lines else text.splitlines()[0]
    return f"job {job.job_id} ended without a result ({job.state}): killed, cancelled, or out of time or memory"


def _outcome(job, cell: Cell, out: Path, since: float) -> dict:
    try:
        seconds = job.result()
    except Exception as err:  # noqa: BLE001 - submitit's FailedJobError / UncompletedJobError
        partial = _partial(out, cell.id, since)
        return dict(status="failed", seconds=round(time.time() - since, 1), error=_error(job, err, partial),
                    partial=str(partial) if partial else None)
    if not is_complete(out / cell.id, cell):
        return dict(status="failed", seconds=seconds, error="the job ended but left no complete run folder")
    return dict(status="complete", seconds=seconds, error=None)


def _execute(cells: list[Cell], spec: dict, out: Path, entries: dict, save, echo) -> None:
    """Submit the cells' jobs (at most ``max_parallel`` at once, as job arrays) and wait for them,
    recording each outcome in ``entries`` and saving after each."""
    settings = spec["executor"]
    executor = make_executor(settings, out / "jobs" / "%j")
    limit = settings.get("max_parallel") or len(cells)
    # jobs of the local executor run side by side on this machine: each gets its share of the cores (or
    # the cpus_per_task asked for); a cluster's scheduler gives each job its own cores
    threads = (settings.get("cpus_per_task") or _threads.share(min(limit, len(cells)))
               if settings["cluster"] == "local" else settings.get("cpus_per_task"))
    pending, running, finished = list(cells), {}, 0
    try:
        while pending or running:
            wave, pending = pending[:limit - len(running)], pending[limit - len(running):]
            if wave:
                try:
                    with executor.batch():
                        jobs = [executor.submit(run_cell, c.profile, c.notebooks, str(out / c.id), c.overrides,
                                                threads) for c in wave]
                except Exception as err:  # noqa: BLE001 - e.g. sbatch refused the array: these cells failed
                    for cell in wave:
                        finished += 1
                        entries[cell.id].update(status="failed", error=f"not submitted: {err}".splitlines()[0])
                        echo(f"[{finished}/{len(cells)} FAILED] {cell.id}: {entries[cell.id]['error']}", flush=True)
                    save()
                    continue
                for cell, job in zip(wave, jobs):
                    running[job] = (cell, time.time())
                    entries[cell.id].update(status="running", job_id=job.job_id, log=str(job.paths.stderr))
                    echo(f"[submitted] {cell.id}: job {job.job_id}", flush=True)
                save()
            for job in [j for j in running if j.done()]:
                cell, since = running.pop(job)
                finished += 1
                entry = entries[cell.id]
                entry.update(_outcome(job, cell, out, since))
                if entry["status"] == "complete":
                    echo(f"[{finished}/{len(cells)} complete] {cell.id}: {entry['seconds']:.1f} s", flush=True)
                else:
                    echo(f"[{finished}/{len(cells)} FAILED] {cell.id}: {entry['error']}\n  log: {entry['log']}"
                         + (f"\n  partial output: {entry['partial']}" if entry.get("partial") else ""), flush=True)
                save()
            if running:
                time.sleep(POLL_S[settings["cluster"]])
    except KeyboardInterrupt:
        for job, (cell, since) in running.items():
            job.cancel(check=False)
            entries[cell.id].update(status="failed", seconds=round(time.time() - since, 1),
                                    error="interrupted: its job was cancelled")
        save()
        raise


def describe(spec: dict, cells: list[Cell], done: set[str], out: Path) -> str:
    """The dry run: the executor and one line per cell (its overrides; 'complete' when it would be skipped)."""
    settings = {"cluster": spec["executor"]["cluster"], **EXECUTOR_DEFAULTS, **spec["executor"]}
    lines = [f"{len(cells)} cells into {out} ({len(done)} complete, {len(cells) - len(done)} to run); executor: "
             + ", ".join(f"{k}={v}" for k, v in settings.items())]
    width = max(len(c.id) for c in cells)
    for cell in cells:
        overrides = " ".join(f"{k}={v if isinstance(v, str) else json.dumps(v)}" for k, v in cell.overrides.items())
        lines.append(f"  {cell.id:<{width}}  {'complete' if cell.id in done else 'to run':<8}  "
                     f"{', '.join(cell.notebooks)}  {overrides}")
    return "\n".join(lines)


def run(matrix: str | Path | dict, out: str | Path, dry_run: bool = False, echo=print) -> dict:
    """Run a matrix (a file or its dict) into ``out``: check every cell, skip the complete ones, run the
    others as jobs, write ``matrix.json`` and the aggregated tables (module docstring). Returns the
    record of ``matrix.json`` (``{}`` for a dry run, which prints the cells and runs nothing)."""
    spec = normalize(matrix) if isinstance(matrix, dict) else load(matrix)
    cells = expand(spec)
    check(spec, cells)
    out = Path(out).resolve()
    done = {c.id for c in cells if is_complete(out / c.id, c)}
    if dry_run:
        echo(describe(spec, cells, done, out))
        return {}
    out.mkdir(parents=True, exist_ok=True)
    entries = {c.id: dict(id=c.id, folder=str(out / c.id), profile=c.profile, notebooks=c.notebooks, seed=c.seed,
                          grid=c.point, overrides=c.overrides, status="skipped" if c.id in done else "pending",
                          job_id=None, seconds=None, error=None, log=None, partial=None) for c in cells}
    record = dict(matrix=None if isinstance(matrix, dict) else str(Path(matrix).resolve()), out=str(out),
                  started=time.strftime("%Y-%m-%dT%H:%M:%S"), executor={**EXECUTOR_DEFAULTS, **spec["executor"]},
                  seed_parameter=spec["seed_parameter"], cells=list(entries.values()), aggregate={})

    def save():
        record["updated"] = time.strftime("%Y-%m-%dT%H:%M:%S")
        tmp = out / ".matrix.json.tmp"
        tmp.write_text(json.dumps(record, indent=2, default=str))
        tmp.replace(out / "matrix.json")

    todo = [c for c in cells if c.id not in done]
    echo(f"matrix: {len(cells)} cells, {len(done)} complete already, {len(todo)} to run "
         f"({spec['executor']['cluster']}) into {out}", flush=True)
    for cell in cells:
        if cell.id in done:
            echo(f"[skipped] {cell.id}: complete", flush=True)
    save()
    if todo:
        _execute(todo, spec, out, entries, save, echo)
    complete = [c for c in cells if entries[c.id]["status"] in ("complete", "skipped")]
    record["aggregate"] = {name: str(path) for name, path in write_aggregates(complete, cells, out).items()}
    failed = [e for e in entries.values() if e["status"] == "failed"]
    record.update(finished=time.strftime("%Y-%m-%dT%H:%M:%S"), failed=[e["id"] for e in failed])
    save()
    counts = {s: sum(e["status"] == s for e in entries.values()) for s in ("complete", "skipped", "failed")}
    echo(f"matrix: {counts['complete']} complete, {counts['skipped']} skipped, {counts['failed']} failed; "
         f"{out / 'matrix.json'}; {len(record['aggregate'])} aggregated tables in {out / 'aggregate'}", flush=True)
    for entry in failed:
        echo(f"  failed: {entry['id']}: {entry['error']} (log: {entry['log']}"
             + (f"; partial output: {entry['partial']})" if entry["partial"] else ")"), flush=True)
    return record


# ------------------------------------------------------------------------------------- aggregation


def read_table(path: str | Path) -> pd.DataFrame:
    """A table a notebook published (:func:`ashlib.book.runs.as_columns`: every column named). A file with a
    nameless first column was written by an older ashlib (before issue 30) and is refused: its cell
    must run again."""
    table = pd.read_csv(path)
    if len(table.columns) and str(table.columns[0]).startswith("Unnamed: 0"):
        raise ParameterError(f"{path} with a nameless first column is not allowed: it was written by an older "
                             "ashlib; delete the cell's folder and run the matrix again.")
    return table


def _measure(column: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)


def aggregate(tables: list[tuple[dict, pd.DataFrame]]) -> pd.DataFrame:
    """One table over seeds: ``tables`` holds, per cell, its labels (what besides the seed tells its
    group, e.g. the grid's values) and its table. Rows match across seeds by the labels, the table's
    non-numeric columns and their order of appearance. A numeric column that differs between the seeds
    of some row is a measurement: ``<col>_mean`` and ``<col>_sd`` (sample sd, ddof=1; NaN for a row of
    one seed); one equal across the seeds of every row (a percentile, a quoted reference) is kept as it
    is. ``n_seeds``: the cells that had the row. A label named like a column of the table becomes
    ``<label> (matrix)``."""
    columns = list(dict.fromkeys(c for _, t in tables for c in t.columns))
    labels = {k: f"{k} (matrix)" if k in columns else k for k in dict.fromkeys(k for lab, _ in tables for k in lab)}
    both = pd.concat([t.assign(_cell=i, **{labels[k]: v for k, v in lab.items()})
                      for i, (lab, t) in enumerate(tables)], ignore_index=True)
    numeric = [c for c in columns if _measure(both[c])]
    keys = [c for c in columns if c not in numeric]
    both["_row"] = both.groupby(["_cell", *keys], dropna=False, sort=False).cumcount()
    groups = both.groupby([*labels.values(), *keys, "_row"], dropna=False, sort=False)
    varying = groups[numeric].nunique(dropna=False).gt(1).any() if numeric else pd.Series(dtype=bool)
    measured = [c for c in numeric if varying[c]]
    spec = {}
    for c in columns:
        if c in measured:
            spec[f"{c}_mean"], spec[f"{c}_sd"] = (c, "mean"), (c, "std")
        elif c in numeric:
            spec[c] = (c, "first")
    spec["n_seeds"] = ("_cell", "size")
    table = groups.agg(**spec).reset_index().drop(columns="_row")
    order = [*labels.values(), *(k for c in columns for k in ([c] if c not in measured else [f"{c}_mean", f"{c}_sd"])),
             "n_seeds"]
    return table[order]


def _labels(cell: Cell, cells: list[Cell]) -> dict:
    """What tells a cell's group apart: the profile and notebook set when the matrix has several, and
    the grid's values (lists and mappings as JSON)."""
    labels = {}
    if len({c.profile for c in cells}) > 1:
        labels["profile"] = cell.profile
    if len({c.label for c in cells}) > 1:
        labels["notebooks"] = cell.label
    for k, v in cell.point.items():
        labels[k] = json.dumps(v) if isinstance(v, (list, dict)) else v
    return labels


def write_aggregates(complete: list[Cell], cells: list[Cell], out: Path) -> dict[str, Path]:
    """``<out>/aggregate/<table>.csv`` for every CSV table the ``complete`` cells' notebooks published
    that has a numeric column (:func:`aggregate`); the folder is written anew."""
    found: dict[str, list] = {}
    for cell in complete:
        folder = out / cell.id
        entries = _record_of(folder).get("notebooks") or {}
        for name in (f for n in cell.notebooks for f in (entries.get(n) or {}).get("files", []) if f.endswith(".csv")):
            try:
                table = read_table(folder / name)
            except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError):
                continue  # not a table to aggregate
            if any(_measure(table[c]) for c in table.columns):
                found.setdefault(Path(name).stem, []).append((_labels(cell, cells), table))
    target = out / "aggregate"
    shutil.rmtree(target, ignore_errors=True)
    written = {}
    for name, tables in sorted(found.items()):
        target.mkdir(parents=True, exist_ok=True)
        written[name] = target / f"{name}.csv"
        aggregate(tables).to_csv(written[name], index=False)
    return written
