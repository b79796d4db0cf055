"""Assignments for a class, on nbgrader: student versions, grading a folder of submissions, JupyterLab.

An assignment is ``assignments/<name>/<name>.ipynb``, an nbgrader *source* notebook: solutions
between ``### BEGIN SOLUTION`` and ``### END SOLUTION``, hidden tests between ``### BEGIN HIDDEN
TESTS`` and ``### END HIDDEN TESTS``, graded cells marked in the cells' ``nbgrader`` metadata. Its
notebook metadata ``ashbook.forbidden`` names the ashlib functions the student is asked to write.

* :func:`release`: the student version (``nbgrader generate_assignment``: no solution, no hidden test).
* :func:`grade`: a folder of submissions into ``gradebook.csv`` (student, question, points,
  max_points, reason, flagged) and ``feedback/<student>.html`` (``nbgrader autograde``, then a page of
  our own). Each submission is graded in a course folder of its own, in a child process with a time
  limit and a minimal environment (nothing of the grader's), so that no submission stops the run or
  touches another's grade. Its kernel starts in an empty folder (the notebook holding the hidden
  tests is elsewhere, and off limits), inside :mod:`ashlib.book._sandbox`, and runs every cell of the
  student's before any test cell: no code of the student's runs after a hidden test has. A notebook
  that is not valid JSON gets 0 points and says why; a cell that raises or loops (``timeout`` seconds
  a cell) fails alone; a test cell deleted or edited is put back from the source and noted; reading
  the hidden tests or the course folder, writing outside its folder or starting a program is refused,
  and what the student's code looked at (a notebook, a folder, the environment) is noted, on an
  ``integrity`` row; a test cell during which a forbidden ashlib function ran gets 0 points and is
  flagged. The feedback states the gradebook's points (after any flag), every reason, flag and note;
  it shows the tests the student was given and their results, the hidden ones by name and result only.
* :func:`lab_command`: JupyterLab on a student version, without the instructor's extensions.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pandas as pd
import yaml

from ashlib import _threads
from ashlib._checks import ParameterError, check_choice, check_positive_int

ROOT = Path(__file__).resolve().parents[2]
ASSIGNMENTS = ROOT / "assignments"
SANDBOX = Path(__file__).with_name("_sandbox.py")

#: The gradebook's columns; ``points`` is empty where a person grades (and on ``integrity`` rows).
COLUMNS = ["student", "question", "points", "max_points", "reason", "flagged"]
#: The question of the row that reports refused file or program access.
INTEGRITY = "integrity"
#: Seconds a cell may run while grading, unless told otherwise.
DEFAULT_TIMEOUT = 60


@dataclass(frozen=True)
class Question:
    """One graded cell of an assignment (nbgrader's ``grade_id``) and what it is worth."""
    name: str
    points: float
    manual: bool


def assignment_names() -> list[str]:
    """The assignments: folders of ``assignments/`` that hold a notebook of their own name."""
    return sorted(p.name for p in ASSIGNMENTS.iterdir() if (p / f"{p.name}.ipynb").is_file())


def source_notebook(name: str) -> Path:
    """The instructor's notebook of assignment ``name`` (solutions and hidden tests)."""
    check_choice("assignment", name, assignment_names())
    return ASSIGNMENTS / name / f"{name}.ipynb"


def questions(name: str) -> list[Question]:
    """The graded cells of assignment ``name``, in notebook order."""
    nb = nbformat.read(source_notebook(name), as_version=4)
    found = []
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("grade"):
            manual = cell.cell_type == "markdown" or bool(meta.get("solution"))
            found.append(Question(meta["grade_id"], float(meta["points"]), manual))
    return found


def forbidden(name: str) -> list[str]:
    """The ashlib functions assignment ``name`` asks the student to write (never to call), each checked to
    exist: a name that does not (a module moved) would leave its tripwire unset, so it is refused here,
    before any grading."""
    import importlib

    nb = nbformat.read(source_notebook(name), as_version=4)
    names = list(nb.metadata.get("ashbook", {}).get("forbidden", []))
    for full in names:
        module, _, attribute = full.rpartition(".")
        try:
            found = callable(getattr(importlib.import_module(module), attribute))
        except (ImportError, AttributeError, ValueError):
            found = False
        if not found:
            raise ParameterError(f"assignment {name!r}: forbidden name {full!r} in its metadata (ashbook.forbidden) "
                                 "is not allowed: it names no function of ashlib; expected a dotted name such as "
                                 "'ashlib.methods.shaping.ash_b'.")
    return names


# ------------------------------------------------------------------------------------------ nbgrader

def _environment(extra: dict | None = None) -> dict:
    """The child's environment: this Python's scripts first on PATH (nbgrader runs ``alembic``)."""
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.update(extra or {})
    return env


def _nbgrader(*args: str, course: Path, env: dict | None = None, timeout: float | None = None):
    """Run ``nbgrader ARGS`` on ``course``; the CompletedProcess (output captured)."""
    cmd = [sys.executable, "-m", "nbgrader", *args, f"--CourseDirectory.root={course}"]
    return subprocess.run(cmd, cwd=course, env=env or _environment(), capture_output=True, text=True,
                          timeout=timeout, start_new_session=True)


def _generate(name: str, course: Path) -> Path:
    """``nbgrader generate_assignment`` of ``name`` in a new ``course`` folder; the release folder."""
    shutil.copytree(ASSIGNMENTS / name, course / "source" / name, ignore=shutil.ignore_patterns(
        "samples.yaml", ".ipynb_checkpoints", "__pycache__"))
    done = _nbgrader("generate_assignment", name, "--create", "--force", course=course)
    release_dir = course / "release" / name
    if done.returncode or not (release_dir / f"{name}.ipynb").is_file():
        raise RuntimeError(f"nbgrader could not generate assignment {name!r}:\n{done.stderr[-3000:]}")
    return release_dir


def release(name: str, out: str | Path) -> Path:
    """Write the student version of assignment ``name`` to ``out/<name>/``; its notebook's path.

    ``out/<name>`` is replaced whole, and only once the new version is complete."""
    check_choice("assignment", name, assignment_names())
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="ashbook-release-") as tmp:
        release_dir = _generate(name, Path(tmp) / "course")
        staging = out / f".{name}.partial"
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(release_dir, staging)
    target = out / name
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    return target / f"{name}.ipynb"


def _workers(workers: int | None) -> int:
    """Processes at once: ``workers``, an integer >= 1, or None for the cores this process may use
    (:func:`ashlib._threads.cpus`, e.g. a SLURM allocation's)."""
    return _threads.cpus() if workers is None else check_positive_int("workers", workers)


def release_many(names, out: str | Path, workers: int | None = None) -> dict[str, Path]:
    """:func:`release` of each assignment of ``names`` into ``out``, ``workers`` at once (default: the
    cores; each is an ``nbgrader`` process, mostly starting up); name -> its notebook's path."""
    from concurrent.futures import ThreadPoolExecutor

    names = [check_choice("assignment", name, assignment_names()) for name in names]
    workers = _workers(workers)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        paths = list(pool.map(lambda name: release(name, out), names))
    return dict(zip(names, paths))


# ------------------------------------------------------------------------------------------ submissions

def _student_id(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", text).strip("._") or "student"


def find_submissions(folder: str | Path, name: str) -> dict[str, Path]:
    """Student -> notebook in ``folder``: ``<student>.ipynb``, or ``<student>/`` holding
    ``<name>.ipynb`` (also as ``<student>/<name>/<name>.ipynb``, nbgrader's layout) or one notebook."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ParameterError(f"submissions must be a folder of notebooks, got {str(folder)!r}, which is not a folder.")
    found: dict[str, Path] = {}
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_file() and entry.suffix == ".ipynb":
            path = entry
        elif entry.is_dir():
            candidates = [entry / f"{name}.ipynb", entry / name / f"{name}.ipynb"]
            candidates += sorted(p for p in entry.glob("*.ipynb"))
            path = next((p for p in candidates if p.is_file()), None)
            if path is None:
                continue
        else:
            continue
        student = _student_id(entry.stem if entry.is_file() else entry.name)
        while student in found:
            student += "_"
        found[student] = path
    return found


def submission_from(name: str, cells: dict[str, str]) -> nbformat.NotebookNode:
    """The instructor's notebook of ``name`` with the sources of the cells named (``grade_id``)
    replaced: a synthetic submission. Unknown names raise."""
    nb = nbformat.read(source_notebook(name), as_version=4)
    ids = {c.metadata.get("nbgrader", {}).get("grade_id"): c for c in nb.cells}
    unknown = sorted(set(cells) - set(ids))
    if unknown:
        raise ParameterError(f"cells {unknown} are not cells of assignment {name!r}; known: {sorted(k for k in ids if k)}.")
    for grade_id, text in cells.items():
        ids[grade_id].source = text.rstrip("\n")
    return nb


def samples(name: str) -> dict[str, dict]:
    """The synthetic submissions of ``assignments/<name>/samples.yaml``: name -> ``about``, ``cells``,
    ``points`` (the autograded cells that lose points and what they get)."""
    path = ASSIGNMENTS / name / "samples.yaml"
    return yaml.safe_load(path.read_text(encoding="utf-8")) if path.is_file() else {}


def expected_points(name: str, sample: dict) -> dict[str, float]:
    """Every autograded question's points for ``sample`` (one entry of :func:`samples`)."""
    return {q.name: float(sample.get("points", {}).get(q.name, q.points)) for q in questions(name) if not q.manual}


# ------------------------------------------------------------------------------------------ grading

def _is_test(cell) -> bool:
    """An autograded test cell (nbgrader: graded, not a solution, code)."""
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return cell.get("cell_type") == "code" and bool(meta.get("grade")) and not meta.get("solution")


def _clean(text: str) -> str:
    """``text`` without terminal colours, its lines joined: one line for a gradebook cell."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(text))
    return " ".join(line.strip() for line in text.splitlines() if line.strip())


#: How many characters of an exception's message a reason keeps.
REASON_CHARACTERS = 600


def _error_of(cell) -> tuple[str, str] | None:
    """The first error a cell raised, as (name, message), or None."""
    for out in cell.get("outputs", []):
        if out.get("output_type") == "error":
            return out.get("ename", "Error"), _clean(out.get("evalue", ""))
    return None


def _first_error(cell, timeout: float, student_errors: list[str] = ()) -> str | None:
    """Why a test cell failed, in words a student can act on: the exception and its whole message
    (a test's assertion says what it expected and what it got); for a name the test could not find,
    the error of the student's cell that should have defined it."""
    error = _error_of(cell)
    if error is None:
        return None
    ename, value = error
    if ename in ("KeyboardInterrupt", "CellTimeoutError"):
        return f"stopped after {timeout:g} s (the cell's time limit): an endless loop, or far too slow"
    reason = f"{ename}: {value}"[:REASON_CHARACTERS] if value else ename
    if ename == "NameError" and student_errors:
        reason += f" (your code raised first: {student_errors[0]})"
    return reason


def _stderr_of(cell) -> str | None:
    """The first line a cell wrote to stderr (nbgrader counts a test that writes there as failed)."""
    for out in cell.get("outputs", []):
        if out.get("output_type") == "stream" and out.get("name") == "stderr" and _clean(out.get("text", "")):
            return _clean(out["text"])[:300]
    return None


def _test_changes(submitted: Path, release_nb: Path, source_nb: Path) -> dict[str, str]:
    """Autograded cells the student deleted or edited (neither the student's nor the instructor's
    version): grade_id -> note."""
    try:
        sub = nbformat.read(submitted, as_version=4)
    except Exception:  # unreadable: reported elsewhere
        return {}
    given = {c.metadata.get("nbgrader", {}).get("grade_id"): c.source for c in sub.cells}
    source = {c.metadata.get("nbgrader", {}).get("grade_id"): c.source
              for c in nbformat.read(source_nb, as_version=4).cells}
    notes = {}
    for cell in nbformat.read(release_nb, as_version=4).cells:
        if _is_test(cell):
            gid = cell.metadata["nbgrader"]["grade_id"]
            if gid not in given:
                notes[gid] = "this test cell was deleted; the original was put back and run"
            elif given[gid].strip() not in (cell.source.strip(), source.get(gid, "").strip()):
                notes[gid] = "this test cell was edited; the original was run"
    return notes


def _unreadable(path: Path) -> str | None:
    """Why ``path`` is not a notebook nbgrader can grade, or None."""
    try:
        nb = nbformat.read(path, as_version=4)
    except Exception as err:  # invalid JSON, not a notebook, unreadable bytes
        return f"the file is not a readable notebook ({type(err).__name__}: {str(err).splitlines()[0][:200]})"
    if not isinstance(nb.get("cells"), list):
        return "the file is not a notebook (no cells)"
    return None


def _rows_for(student: str, qs: list[Question], points, reason: str) -> list[dict]:
    return [dict(student=student, question=q.name, points=None if q.manual else points,
                 max_points=q.points, reason="to grade by hand with the rubric" if q.manual else reason,
                 flagged=False) for q in qs]


def _minimal_environment(extra: dict) -> dict:
    """The environment of the grading child and of the student's kernel: how to find this Python and
    its libraries, the text encoding, and ``extra``; nothing else of the grader's."""
    env = {key: os.environ[key] for key in ("LANG", "LC_ALL", "PYTHONPATH", "SYSTEMROOT") if key in os.environ}
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), "/usr/local/bin", "/usr/bin", "/bin"])
    env.update(extra)
    return env


def _grade_one(name: str, student: str, path: Path, template: Path, work: Path, deny: list[Path],
               timeout: float, feedback_dir: Path, threads: int) -> list[dict]:
    rows, graded = _graded_rows(name, student, path, template, work, deny, timeout, threads)
    feedback = _feedback_notebook(name, student, rows, graded, template / "release" / name / f"{name}.ipynb")
    _write_html(feedback, feedback_dir / f"{student}.html")
    return rows


def _graded_rows(name: str, student: str, path: Path, template: Path, work: Path, deny: list[Path],
                 timeout: float, threads: int) -> tuple[list[dict], nbformat.NotebookNode | None]:
    """One submission's gradebook rows and its graded notebook (None where it could not be graded).

    nbgrader autogrades it in a child process whose kernel starts in a folder of its own (``kernel``,
    empty: the notebook with the hidden tests is elsewhere), runs every cell of the student's before
    any test cell, inside :mod:`ashlib.book._sandbox`, with a minimal environment, and ``threads`` threads
    (its share of the cores, with the other submissions graded at the same time)."""
    qs = questions(name)
    why = _unreadable(path)
    if why:
        return _rows_for(student, qs, 0.0, why), None
    course = work / student
    shutil.copytree(template, course)
    submitted = course / "submitted" / student / name / f"{name}.ipynb"
    submitted.parent.mkdir(parents=True)
    shutil.copy2(path, submitted)
    own = course / "autograded" / student / name
    kernel, scratch, ipython = course / "kernel", course / "scratch", course / "ipython"
    (ipython / "profile_default" / "startup").mkdir(parents=True)
    shutil.copy2(SANDBOX, ipython / "profile_default" / "startup" / "00-ashbook-sandbox.py")
    kernel.mkdir()
    scratch.mkdir()
    log = work / f"{student}.sandbox.jsonl"
    from ashlib import cache_dir  # the cache's folder, where the kernel's ashlib reads and writes
    settings = dict(deny=[str(p) for p in [*deny, course]], write=[str(kernel), str(scratch), str(ipython), str(cache_dir())],
                    log=str(log), forbidden=forbidden(name))
    env = _minimal_environment({
        "ASHBOOK_SANDBOX": json.dumps(settings), "ASHLIB_CACHE": str(cache_dir()), "HOME": str(scratch),
        "IPYTHONDIR": str(ipython), "TMPDIR": str(scratch), "MPLCONFIGDIR": str(scratch),
        "JUPYTER_RUNTIME_DIR": str(scratch / "runtime"), "PYTHONDONTWRITEBYTECODE": "1",
        **_threads.environment(threads)})
    code_cells = sum(c.cell_type == "code" for c in nbformat.read(source_notebook(name), as_version=4).cells)
    limit = timeout * (code_cells + 2) + 120
    try:  # autograde in a child process (this module's __main__)
        done = subprocess.run([sys.executable, "-m", "ashlib.book.classroom", str(course), name, student, str(timeout),
                               str(kernel)], cwd=course, env=env, capture_output=True, text=True, timeout=limit,
                              start_new_session=True)
    except subprocess.TimeoutExpired:
        return _rows_for(student, qs, 0.0, f"grading stopped after {limit:.0f} s: the kernel did not "
                         "answer interrupts (an endless loop that catches KeyboardInterrupt?)"), None
    graded = own / f"{name}.ipynb"
    if done.returncode or not graded.is_file():
        tail = (done.stderr or "").strip().splitlines()[-1:] or ["no output"]
        return _rows_for(student, qs, 0.0, f"nbgrader could not grade this notebook ({tail[0][:200]})"), None
    scores = _scores(course, name, student)
    nb = nbformat.read(graded, as_version=4)
    cells = {c.metadata.get("nbgrader", {}).get("grade_id"): c for c in nb.cells}
    student_errors = []
    for index, cell in enumerate(nb.cells):
        error = None if _is_test(cell) or cell.cell_type != "code" else _error_of(cell)
        if error:
            label = cell.metadata.get("nbgrader", {}).get("grade_id") or f"number {index + 1}"
            student_errors.append(f"cell {label!r} raised {error[0]}: {error[1][:200]}")
    by_source = {hashlib.sha1(c.source.encode()).hexdigest(): c.metadata.get("nbgrader", {}).get("grade_id")
                 for c in nb.cells if c.cell_type == "code"}
    events = [json.loads(line) for line in log.read_text().splitlines()] if log.is_file() else []
    called = {}
    for e in events:
        if e["kind"] == "forbidden" and by_source.get(e["cell"]):
            called.setdefault(by_source[e["cell"]], set()).add(e["detail"])
    changes = _test_changes(submitted, course / "release" / name / f"{name}.ipynb", source_notebook(name))
    rows = []
    for q in qs:
        score, max_score = scores.get(q.name, (None, q.points))
        cell = cells.get(q.name, {})
        if q.manual:
            row = dict(points=None, reason="to grade by hand with the rubric", flagged=False)
        elif q.name in called:
            names = "; ".join(sorted(called[q.name]))
            row = dict(points=0.0, flagged=True, reason=f"flagged: called {names}, which the assignment asks "
                       "you to write; 0 points until the teacher reviews it")
        else:
            error = _first_error(cell, timeout, student_errors)
            stderr = None if error or score == max_score else _stderr_of(cell)
            reason = error or ("passed" if score == max_score else
                               f"no points: the test wrote to stderr, which counts as failing ({stderr})" if stderr
                               else "no points")
            row = dict(points=float(score or 0.0), flagged=False, reason=reason)
        if q.name in changes:
            row["reason"] += f" ({changes[q.name]})"
        rows.append(dict(student=student, question=q.name, max_points=float(max_score), **row))
    refused = sorted({f"{e['kind']} {e['detail']}" for e in events if e["kind"] not in ("forbidden", "looked")})
    looked = sorted({e["detail"] for e in events if e["kind"] == "looked"})
    if refused or looked:
        what = "; ".join([*(["refused while grading: " + "; ".join(refused)] if refused else []),
                          *(["noted while grading: " + "; ".join(looked)] if looked else [])])
        rows.append(dict(student=student, question=INTEGRITY, points=None, max_points=None,
                         flagged=bool(refused), reason=what[:1000]))
    return rows, nb


def _scores(course: Path, name: str, student: str) -> dict[str, tuple[float | None, float]]:
    from nbgrader.api import Gradebook  # the classroom extra

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        nb = gb.find_submission_notebook(name, name, student)
        return {g.name: (None if g.needs_manual_grade and g.auto_score is None else g.score, g.max_score)
                for g in nb.grades}


# ------------------------------------------------------------------------------------------ feedback

def hidden_lines(name: str) -> set[str]:
    """The lines of assignment ``name``'s hidden tests that appear nowhere in the student version (the
    lines a student must never see), stripped; short ones (``else:``) say nothing and are left out."""
    source = nbformat.read(source_notebook(name), as_version=4)
    shown = set()
    hidden = set()
    for cell in source.cells:
        for block in re.findall(r"### BEGIN HIDDEN TESTS\n(.*?)\n[ \t]*### END HIDDEN TESTS", cell.source, re.S):
            hidden |= {line.strip() for line in block.splitlines()}
        outside = re.sub(r"### BEGIN HIDDEN TESTS.*?### END HIDDEN TESTS", "", cell.source, flags=re.S)
        shown |= {line.strip() for line in outside.splitlines()}
    return {line for line in hidden - shown if len(line) >= 12}


def _scrub(text: str, secret: set[str]) -> str:
    """``text`` with every line of ``secret`` in it replaced by ``[hidden test]``."""
    for line in secret:
        if line in text:
            text = text.replace(line, "[hidden test]")
    return text


def score_line(rows: list[dict]) -> str:
    """``Score: <points> / <out of>``: the autograded points of a student's gradebook rows (after any
    flag) and their maximum, as the feedback's first line states it."""
    graded = [r for r in rows if r["question"] != INTEGRITY and r["points"] is not None]
    return f"Score: {sum(r['points'] for r in graded):g} / {sum(r['max_points'] for r in graded):g}"


def _summary(name: str, student: str, rows: list[dict]) -> str:
    """The feedback's first cell (Markdown): the score, every question's points and reason, the flags
    and the integrity notes, exactly as in the gradebook."""
    def cell_text(text) -> str:
        return str(text).replace("|", "\\|").replace("\n", " ")

    by_hand = sum(r["max_points"] for r in rows if r["question"] != INTEGRITY and r["points"] is None)
    lines = [f"# {name}: {student}", "", f"**{score_line(rows)}** (autograded)"
             + (f"; {by_hand:g} more points are graded by hand." if by_hand else "."), ""]
    flagged = [r for r in rows if r["flagged"]]
    if flagged:
        lines += ["**Flagged for the teacher's review:**", ""]
        lines += [f"- `{r['question']}`: {cell_text(r['reason'])}" for r in flagged] + [""]
    lines += ["| question | points | out of | result |", "| --- | --- | --- | --- |"]
    for r in rows:
        if r["question"] == INTEGRITY:
            continue
        points = "by hand" if r["points"] is None else f"{r['points']:g}"
        lines.append(f"| `{r['question']}` | {points} | {r['max_points']:g} | {cell_text(r['reason'])} |")
    notes = [r for r in rows if r["question"] == INTEGRITY and not r["flagged"]]
    if notes:
        lines += ["", "**Integrity notes:** " + cell_text(notes[0]["reason"])]
    lines += ["", "Tests run after all of your cells. A hidden test shows its name and result, not its code."]
    return "\n".join(lines)


def _feedback_notebook(name: str, student: str, rows: list[dict], graded, release_nb: Path):
    """The feedback a student gets, as a notebook: the summary, then (where nbgrader graded it) every
    cell in the order submitted: the student's with their outputs, each test with the code the
    student was given (never a hidden test's) and its result. Every output is scrubbed of hidden
    test lines (:func:`hidden_lines`)."""
    from nbformat.v4 import new_markdown_cell, new_notebook, new_output

    nb = new_notebook(cells=[new_markdown_cell(_summary(name, student, rows))])
    if graded is None:
        reason = rows[0]["reason"] if rows else "unknown"
        nb.cells.append(new_markdown_cell(f"Your submission could not be graded: {reason}."))
        return nb
    secret = hidden_lines(name)
    given = {c.metadata.get("nbgrader", {}).get("grade_id"): c.source
             for c in nbformat.read(release_nb, as_version=4).cells}
    by_question = {r["question"]: r for r in rows}
    for cell in graded.cells:
        cell = nbformat.from_dict(json.loads(json.dumps(cell)))
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        if _is_test(cell):
            row = by_question.get(gid, {})
            hidden = "### BEGIN HIDDEN TESTS" in (cell.source or "") or gid not in given
            cell.source = given.get(gid, f"# {gid}: a hidden test")
            if hidden:
                cell.source += "\n# ... and hidden tests: their code is not shown"
            mark = "passed" if row.get("reason", "").startswith("passed") else "failed"
            verdict = f"{gid}: {mark}, {row.get('points', 0) or 0:g} / {row.get('max_points', 0):g} points"
            verdict += "" if mark == "passed" else f": {row.get('reason', '')}"
            errors = [o for o in cell.outputs if o.output_type == "error"] if not hidden else []
            cell.outputs = errors + [new_output("stream", name="stdout", text=verdict + "\n")]
        for out in cell.get("outputs", []):
            for key in ("text", "evalue"):
                if key in out:
                    out[key] = _scrub(out[key], secret)
            if "traceback" in out:
                out["traceback"] = [_scrub(line, secret) for line in out["traceback"]]
            for kind, value in out.get("data", {}).items():
                if isinstance(value, str) and not kind.startswith("image/"):
                    out["data"][kind] = _scrub(value, secret)
        nb.cells.append(cell)
    return nb


def _write_html(nb, path: Path) -> None:
    """``nb`` as an HTML page (nbconvert's lab template)."""
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter(template_name="lab").from_notebook_node(nb)
    path.write_text(body, encoding="utf-8")


def grade(name: str, submissions: str | Path, out: str | Path, timeout: float = DEFAULT_TIMEOUT,
          workers: int | None = None, progress: bool = True) -> pd.DataFrame:
    """Grade every submission of assignment ``name`` in the folder ``submissions`` (see
    :func:`find_submissions`) into ``out/gradebook.csv`` and ``out/feedback/<student>.html``; the
    gradebook (:data:`COLUMNS`, one row per student and graded cell, plus ``integrity`` rows).

    ``timeout``: seconds a cell may run. ``workers``: submissions graded at once (default: the cores),
    whose kernels share the cores (:func:`ashlib._threads.share`) rather than each start a thread per core.
    The gradebook and the feedback folder appear only when every submission has been graded."""
    check_choice("assignment", name, assignment_names())
    if not (isinstance(timeout, (int, float)) and timeout > 0):
        raise ParameterError(f"timeout must be a positive number of seconds, got {timeout!r}.")
    workers = _workers(workers)
    found = find_submissions(submissions, name)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="ashbook-grade-") as tmp:
        work = Path(tmp)
        template = work / "template"
        _generate(name, template)
        feedback = work / "feedback"
        feedback.mkdir()
        deny = [work, ASSIGNMENTS, Path(submissions).resolve(), out.resolve()]
        from tqdm.auto import tqdm

        bar = tqdm(total=len(found), desc=f"grading {name}", unit="submission", disable=not progress)

        def one(item):
            student, path = item
            try:
                rows = _grade_one(name, student, path, template, work / "students", deny, timeout, feedback,
                                  threads)
            except Exception as err:  # never lose the other students' grades
                rows = _rows_for(student, questions(name), 0.0, f"the grader failed on this submission "
                                 f"({type(err).__name__}: {err})")
                _write_html(_feedback_notebook(name, student, rows, None, None), feedback / f"{student}.html")
            bar.update()
            return rows

        (work / "students").mkdir()
        threads = _threads.share(min(workers, len(found)))  # submissions side by side share the cores
        with ThreadPoolExecutor(max_workers=workers) as pool:
            rows = [r for chunk in pool.map(one, found.items()) for r in chunk]
        bar.close()
        table = pd.DataFrame(rows, columns=COLUMNS)
        partial = out / ".gradebook.csv.partial"
        table.to_csv(partial, index=False)
        shutil.rmtree(out / "feedback", ignore_errors=True)
        shutil.copytree(feedback, out / "feedback")
        partial.replace(out / "gradebook.csv")
    return table


def totals(gradebook: pd.DataFrame) -> pd.DataFrame:
    """Per student: autograded points, their maximum, points left to grade by hand, and flags."""
    graded = gradebook[gradebook.question != INTEGRITY]
    auto = graded[graded.points.notna()]
    manual = graded[graded.points.isna()]
    return pd.DataFrame({
        "points": auto.groupby("student").points.sum(),
        "out of": auto.groupby("student").max_points.sum(),
        "by hand": manual.groupby("student").max_points.sum(),
        "flags": gradebook.groupby("student").flagged.sum().astype(int),
    }).fillna({"by hand": 0.0})


# ------------------------------------------------------------------------------------------ JupyterLab

#: The student's JupyterLab settings: nbgrader's instructor and exchange extensions (formgrader,
#: assignment and course lists, create assignment) off, its "Validate" button kept.
STUDENT_LAB = Path(__file__).with_name("student_lab")


def lab_command(notebook: str | Path, port: int | None = None) -> list[str]:
    """The command that opens ``notebook`` in JupyterLab (the ``classroom`` extra) as a student sees
    it, without nbgrader's instructor extensions (:data:`STUDENT_LAB`); as root (a container), with
    ``--allow-root``, which JupyterLab otherwise asks for."""
    cmd = [sys.executable, "-m", "jupyterlab", str(notebook),
           f"--config={STUDENT_LAB / 'jupyter_server_config.json'}", f"--LabApp.app_settings_dir={STUDENT_LAB}"]
    cmd += [f"--ServerApp.port={port}"] if port else []
    return cmd + (["--allow-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else [])


def _autograde(course: str, name: str, student: str, timeout: str, kernel_dir: str) -> int:
    """The child process of :func:`grade`: nbgrader's autograde of one student, its kernel in
    ``kernel_dir``, every cell of the student's run before any test cell."""
    from nbgrader.apps import NbGraderAPI
    from nbgrader.converters import Autograde
    from nbgrader.preprocessors import Execute
    from traitlets.config import Config

    class StudentCellsFirst(Execute):
        """nbgrader's Execute, with the kernel in a folder without the graded notebook, running the
        student's cells first and the tests after: no code of the student's runs after a hidden test
        has run, so none can show one in its own output."""

        def preprocess(self, nb, resources=None, km=None):
            resources = resources if resources is not None else {}
            resources.setdefault("metadata", {})["path"] = kernel_dir
            cells = list(nb.cells)
            nb.cells = [c for c in cells if not _is_test(c)] + [c for c in cells if _is_test(c)]
            try:
                return super().preprocess(nb, resources, km)
            finally:
                nb.cells = cells  # the same cells, executed, in the student's order

    config = Config()
    config.CourseDirectory.root = course
    config.Execute.timeout = int(float(timeout))
    config.OverwriteCells.add_missing_cells = True
    config.Autograde.autograde_preprocessors = [
        StudentCellsFirst if pp is Execute else pp for pp in Autograde.class_traits()["autograde_preprocessors"].default()]
    api = NbGraderAPI(config=config)
    result = api.autograde(name, student, force=True, create=True)
    if not result["success"]:
        print(result.get("error") or result.get("log"), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(_autograde(*sys.argv[1:6]))
