"""The classroom: student versions without solutions or hidden tests, and a grader that gives a class of
synthetic submissions exactly the points they deserve, whatever they do (nbgrader underneath)."""
from __future__ import annotations

import html
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import nbformat
import pandas as pd
import pytest
from nbclient import NotebookClient

from ashlib import ParameterError
from ashlib.book import classroom

ASSIGNMENTS = classroom.assignment_names()
#: Seconds a cell may run in the graded classes: long enough for the embedded benchmark's cells,
#: short enough that the endless loop costs little.
TIMEOUT = {"ash": 5}
GRAFFITI = Path("/tmp") / f"ashbook-graffiti-{os.getpid()}.txt"
#: A variable of the grading process, set while a class is graded.
SECRET = "ASHBOOK_TEST_GRADER_SECRET"


def test_every_assignment_named_in_the_issue_exists():
    assert {"ash", "metrics", "nac", "experiment"} <= set(ASSIGNMENTS)
    for name in ASSIGNMENTS:
        assert classroom.questions(name), f"{name} has no graded cell"
        assert classroom.samples(name), f"{name} has no synthetic submissions (samples.yaml)"


def _blocks(source: str, begin: str, end: str) -> list[str]:
    """The lines between the markers (``### BEGIN SOLUTION``...), markers left out."""
    return [line for block in re.findall(rf"{begin}\n(.*?)\n[ \t]*{end}", source, re.S) for line in block.splitlines()]


@pytest.fixture(scope="module")
def released(tmp_path_factory):
    """Every assignment's student version, released side by side: name -> notebook."""
    out = tmp_path_factory.mktemp("student")
    paths = classroom.release_many(ASSIGNMENTS, out, workers=2)
    assert list(paths) == list(ASSIGNMENTS)
    assert all(path == out / name / f"{name}.ipynb" and path.is_file() for name, path in paths.items())
    return paths


def test_release_many_and_grade_refuse_bad_workers_alike_and_release_many_bad_names(tmp_path):
    for workers in (0, -1, 1.5, True):
        message = re.escape(f"workers={workers!r} is not allowed: expected an integer >= 1.")
        with pytest.raises(ParameterError, match=message):
            classroom.release_many(["ash"], tmp_path, workers=workers)
        with pytest.raises(ParameterError, match=message):  # 0 used to mean every core here
            classroom.grade("ash", tmp_path, tmp_path / "out", workers=workers)
    assert not (tmp_path / "out").exists()
    with pytest.raises(ParameterError, match="assignment='homework'"):
        classroom.release_many(["homework"], tmp_path)


@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_the_student_version_has_no_solution_line_and_no_hidden_test(name, released):
    source = classroom.source_notebook(name).read_text()
    student = nbformat.read(released[name], as_version=4)
    student_code = "\n".join(c.source for c in student.cells)
    shown = {line.strip() for c in student.cells for line in c.source.splitlines()}
    secret = set()
    for cell in nbformat.read(classroom.source_notebook(name), as_version=4).cells:
        secret |= {line.strip() for line in _blocks(cell.source, "### BEGIN SOLUTION", "### END SOLUTION")}
        secret |= {line.strip() for line in _blocks(cell.source, "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS")}
    # lines also written outside the blocks (a bare `return out`) say nothing; everything else must go
    outside = {line.strip() for cell in nbformat.read(classroom.source_notebook(name), as_version=4).cells
               for line in re.sub(r"### BEGIN (SOLUTION|HIDDEN TESTS).*?### END \1", "", cell.source,
                                  flags=re.S).splitlines()}
    secret = {line for line in secret if len(line) > 3} - outside
    assert secret, "the source has no solution or hidden test to strip"
    assert not secret & shown, f"solution or hidden-test lines left in the student version: {sorted(secret & shown)[:5]}"
    for marker in ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS"):
        assert marker not in student_code
    assert "### BEGIN SOLUTION" in source  # the instructor's version has them


@pytest.mark.project_cache
@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_the_untouched_student_version_runs_and_only_its_stubs_raise(name, released, tmp_path):
    nb = nbformat.read(released[name], as_version=4)
    NotebookClient(nb, timeout=300, allow_errors=True, resources={"metadata": {"path": str(tmp_path)}}).execute()
    errors = [o.ename for c in nb.cells for o in c.get("outputs", []) if o.output_type == "error"]
    assert errors, "the stubs should raise"
    assert set(errors) == {"NotImplementedError"}, errors


# ------------------------------------------------------------------------------------ a graded class

def _write_class(name: str, folder: Path, released_nb: Path) -> dict[str, dict[str, float] | None]:
    """Write the synthetic class of ``name`` into ``folder``; student -> expected points per autograded
    question (None: checked by a test of its own)."""
    full = {q.name: q.points for q in classroom.questions(name) if not q.manual}
    expected = {"instructor": full, "untouched": {q: 0.0 for q in full}}
    shutil.copy(classroom.source_notebook(name), folder / "instructor.ipynb")
    shutil.copy(released_nb, folder / "untouched.ipynb")
    for sample, spec in classroom.samples(name).items():
        nbformat.write(classroom.submission_from(name, spec["cells"]), folder / f"{sample}.ipynb")
        expected[sample] = classroom.expected_points(name, spec)
    if name != "ash":
        return expected
    # the misbehaving ones, on the ASH assignment
    nbformat.write(classroom.submission_from(name, {"ash_p": "def ash_p(x, p):\n    while True:\n        pass"}),
                   folder / "loops.ipynb")
    # every way of looking for the hidden tests the issue names, then an echo of every later cell
    snoop = ("import os, pathlib\n\ndef ash_b(x, p):\n    raise NotImplementedError\n\nfound = []\n\n"
             "def _try(what, action):\n    try:\n        found.append((what, str(action())[:3000]))\n"
             "    except Exception as err:\n        found.append((what, repr(err)))\n\n"
             "_try('the notebook here', lambda: open('ash.ipynb').read())\n"
             "_try('this folder', lambda: os.listdir('.'))\n"
             "for parent in pathlib.Path.cwd().parents:\n"
             "    _try(f'list {parent}', lambda: os.listdir(parent))\n"
             "    _try(f'source under {parent}', lambda: (parent / 'source' / 'ash' / 'ash.ipynb').read_text())\n"
             "_try('environment', lambda: dict(os.environ))\n"
             "print(found)\n"
             "get_ipython().events.register('pre_run_cell', lambda info: print(info.raw_cell))\n")
    nbformat.write(classroom.submission_from(name, {"ash_b": snoop}), folder / "snoops.ipynb")
    scribble = f"def ash_s(x, p):\n    raise NotImplementedError\n\nopen({str(GRAFFITI)!r}, 'w').write('was here')\n"
    nbformat.write(classroom.submission_from(name, {"ash_s": scribble}), folder / "scribbles.ipynb")
    tampered = classroom.submission_from(name, {"ash_p_example": "# I trust my code\nassert True"})
    tampered.cells = [c for c in tampered.cells if c.metadata.get("nbgrader", {}).get("grade_id") != "ash_b_edges"]
    nbformat.write(tampered, folder / "tampers.ipynb")
    (folder / "broken.ipynb").write_text('{"cells": [ {"cell_type": "code", ')
    expected.update(loops=None, snoops=None, scribbles=None, tampers=full, broken={q: 0.0 for q in full})
    return expected


class _Classes(dict):
    """Each assignment's class, graded on first use: name -> (gradebook, expected points, output folder)."""

    def __init__(self, factory, released):
        super().__init__()
        self.factory, self.released = factory, released

    def __missing__(self, name):
        folder = self.factory.mktemp(f"submissions-{name}")
        expected = _write_class(name, folder, self.released[name])
        out = self.factory.mktemp(f"grades-{name}")
        os.environ[SECRET] = "grader-only-" + name  # must not reach a student's kernel
        try:
            table = classroom.grade(name, folder, out, timeout=TIMEOUT.get(name, 120), progress=False)
        finally:
            del os.environ[SECRET]
        self[name] = (table, expected, out)
        return self[name]


@pytest.fixture(scope="module")
def graded(tmp_path_factory, released):
    return _Classes(tmp_path_factory, released)


def _points(table: pd.DataFrame, student: str) -> dict[str, float]:
    rows = table[(table.student == student) & (table.question != classroom.INTEGRITY) & table.points.notna()]
    return dict(zip(rows.question, rows.points))


@pytest.mark.project_cache
@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_every_submission_gets_exactly_its_expected_points(name, graded):
    table, expected, _ = graded[name]
    for student, points in expected.items():
        if points is not None:
            assert _points(table, student) == points, (student, table[table.student == student].to_string())


@pytest.mark.project_cache
@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_the_gradebook_has_its_columns_a_reason_everywhere_and_feedback_per_student(name, graded):
    table, expected, out = graded[name]
    on_disk = pd.read_csv(out / "gradebook.csv")
    assert list(on_disk.columns) == classroom.COLUMNS
    assert len(on_disk) == len(table)
    assert set(table.student) == set(expected)
    assert table.reason.map(lambda r: isinstance(r, str) and len(r) > 0).all()
    for student in expected:
        assert (out / "feedback" / f"{student}.html").is_file(), student
    # only the ASH class's snooping and scribbling students tried anything the sandbox refuses or notes
    refused = set(table[table.question == classroom.INTEGRITY].student)
    assert refused == ({"snoops", "scribbles"} if name == "ash" else set()), table[table.question == classroom.INTEGRITY]
    manual = [q.name for q in classroom.questions(name) if q.manual]
    for q in manual:  # a person grades these: no points, and the reason says so
        rows = table[table.question == q]
        assert rows.points.isna().all() and (rows.reason == "to grade by hand with the rubric").all()


@pytest.mark.project_cache
def test_a_wrong_answer_says_what_failed(graded):
    table, _, _ = graded["ash"]
    row = table[(table.student == "off_by_one_k") & (table.question == "ash_p_random")].iloc[0]
    assert row.points == 0 and row.reason.startswith("AssertionError: wrong values at p = ")
    assert re.search(r"values differ; first at \(sample, unit\) \(\d+, \d+\): got \S+, expected \S+", row.reason), row.reason
    row = table[(table.student == "off_by_one_k") & (table.question == "ash_p_example")].iloc[0]
    assert row.reason.startswith("AssertionError: got [[") and ", expected [[0.0, 4.0, 0.0, 3.0]" in row.reason
    # a cell that raised before defining the function: the test says which, and why
    for question in ("ash_p_example", "ash_p_random", "ash_p_edges"):
        row = table[(table.student == "import_fails") & (table.question == question)].iloc[0]
        assert row.reason == ("NameError: name 'ash_p' is not defined (your code raised first: cell 'ash_p' raised "
                              "ModuleNotFoundError: No module named 'a_module_nobody_installed')"), row.reason
    row = table[(table.student == "untouched") & (table.question == "ash_s_edges")].iloc[0]
    assert row.reason == "NotImplementedError"


@pytest.mark.project_cache
def test_an_endless_loop_costs_only_the_cells_it_stops(graded):
    table, expected, _ = graded["ash"]
    points = _points(table, "loops")
    assert points == {**expected["instructor"], "ash_p_example": 0, "ash_p_random": 0, "ash_p_edges": 0}
    reasons = table[(table.student == "loops") & table.question.str.startswith("ash_p")].reason
    assert reasons.str.startswith(f"stopped after {TIMEOUT['ash']} s").all()


@pytest.mark.project_cache
def test_looking_for_the_hidden_tests_finds_none_and_is_refused_or_noted(graded):
    """Reading ./ash.ipynb, listing the folder, walking up to source/ and the course folder, reading
    os.environ, echoing later cells: nothing hidden is found, every attempt is on the integrity row."""
    table, expected, out = graded["ash"]
    points = _points(table, "snoops")
    assert points == {**expected["instructor"], **{q: 0.0 for q in points if q.startswith("ash_b")}}
    integrity = table[(table.student == "snoops") & (table.question == classroom.INTEGRITY)]
    assert len(integrity) == 1 and integrity.flagged.all()
    reason = integrity.reason.iloc[0]
    assert reason.startswith("refused while grading: ")
    assert re.search(r"read \S+/source/ash/ash\.ipynb", reason), reason  # walking up to the source
    assert re.search(r"list \S+/students/snoops[;]", reason), reason  # listing the course folder
    noted = reason.split("noted while grading: ")[1]
    kernel = re.search(r"listed (\S+/kernel)", noted).group(1)  # its own (empty) working folder
    assert f"opened {kernel}/ash.ipynb" in noted and "read the environment (os.environ)" in noted
    page = html.unescape((out / "feedback" / "snoops.html").read_text())
    assert "the notebook here" in page and "FileNotFoundError" in page  # it ran, and found nothing
    assert "PATH" in page and SECRET not in page and "grader-only" not in page  # a minimal environment


@pytest.mark.project_cache
def test_writing_outside_its_folder_is_refused_and_reported(graded):
    table, expected, _ = graded["ash"]
    points = _points(table, "scribbles")
    assert points == {**expected["instructor"], **{q: 0.0 for q in points if q.startswith("ash_s")}}
    scribbles = table[(table.student == "scribbles") & (table.question == classroom.INTEGRITY)]
    assert len(scribbles) == 1 and scribbles.flagged.all()
    assert scribbles.reason.iloc[0] == f"refused while grading: write {GRAFFITI}"
    assert not GRAFFITI.exists()
    honest = table[~table.student.isin(["snoops", "scribbles"])]
    assert not (honest.question == classroom.INTEGRITY).any()


def _secret_lines(name: str) -> set[str]:
    """The hidden tests' lines that the student version never shows (computed here, not by classroom)."""
    cells = nbformat.read(classroom.source_notebook(name), as_version=4).cells
    hidden = {line.strip() for c in cells for line in _blocks(c.source, "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS")}
    shown = {line.strip() for c in cells for line in re.sub(r"### BEGIN HIDDEN TESTS.*?### END HIDDEN TESTS", "",
                                                            c.source, flags=re.S).splitlines()}
    return {line for line in hidden - shown if len(line) > 12}


@pytest.mark.project_cache
@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_feedback_states_the_gradebooks_points_and_never_a_hidden_test(name, graded):
    table, expected, out = graded[name]
    secret = _secret_lines(name)
    assert secret, "the assignment has no hidden test to keep hidden"
    for student in expected:
        page = html.unescape((out / "feedback" / f"{student}.html").read_text())
        rows = table[(table.student == student) & (table.question != classroom.INTEGRITY) & table.points.notna()]
        score = re.findall(r"Score: ([0-9.]+) / ([0-9.]+)", page)
        assert score == [(f"{rows.points.sum():g}", f"{rows.max_points.sum():g}")], (student, score)
        leaked = [line for line in secret if line in page]
        assert not leaked, (student, leaked[:3])
        assert "BEGIN HIDDEN TESTS" not in page
        for reason in table[(table.student == student) & table.flagged].reason:
            assert reason in page, (student, reason)  # every flag and refusal, with its reason
    if name == "ash":
        assert "this test cell was edited; the original was run" in html.unescape(
            (out / "feedback" / "tampers.html").read_text())


@pytest.mark.project_cache
@pytest.mark.parametrize("name", [n for n in ASSIGNMENTS if "bends_its_input" in classroom.samples(n)])
def test_a_function_that_modifies_its_input_cannot_bend_the_reference(name, graded):
    """The references are computed on copies made before the student's function runs, so scaling the
    caller's tensor and shaping the scaled one loses the points of every test that compares values."""
    table, expected, _ = graded[name]
    lost = {q for q, p in _points(table, "bends_its_input").items() if p == 0}
    assert lost == set(classroom.samples(name)["bends_its_input"]["points"])
    assert lost >= {"ash_b_random", "ash_s_random"} if name == "ash" else lost


@pytest.mark.project_cache
def test_calling_ashlibs_own_function_is_flagged_where_it_happens(graded):
    table, _, _ = graded["ash"]
    rows = table[(table.student == "uses_ashlib")]
    flagged = rows[rows.flagged]
    assert list(flagged.question) == ["ash_b_example", "ash_b_random", "ash_b_edges"]
    assert (flagged.points == 0).all()
    assert flagged.reason.str.startswith("flagged: called ashlib.methods.shaping.ash_b,").all()
    assert "kept_count" not in flagged.reason.iloc[0]  # ash_b's own calls are not the student's
    others = table[(table.student != "uses_ashlib") & (table.question != classroom.INTEGRITY)]
    assert not others.flagged.any()


@pytest.mark.project_cache
def test_edited_and_deleted_tests_are_put_back_and_noted(graded):
    table, _, _ = graded["ash"]
    rows = table[table.student == "tampers"].set_index("question")
    assert rows.loc["ash_p_example", "reason"] == "passed (this test cell was edited; the original was run)"
    assert rows.loc["ash_b_edges", "reason"] == "passed (this test cell was deleted; the original was put back and run)"
    assert rows.loc["ash_p_random", "reason"] == "passed"


@pytest.mark.project_cache
def test_a_notebook_that_is_not_json_gets_zero_and_the_reason(graded):
    table, _, out = graded["ash"]
    rows = table[table.student == "broken"]
    assert rows.reason.str.startswith("the file is not a readable notebook (NotJSONError").all()
    assert "could not be graded" in (out / "feedback" / "broken.html").read_text()


# ------------------------------------------------------------------------------------ the sandbox alone

def test_the_sandbox_refuses_and_records_in_a_plain_python(tmp_path):
    """The guard, outside nbgrader: reads under a denied folder, writes outside the allowed ones and
    programs are refused; a forbidden function still works and is recorded."""
    secret = tmp_path / "course" / "source"
    secret.mkdir(parents=True)
    (secret / "hidden.txt").write_text("the answer")
    own = tmp_path / "course" / "own"
    own.mkdir()
    log = tmp_path / "log.jsonl"
    script = f"""
import runpy, json
runpy.run_path({str(classroom.SANDBOX)!r})
import ashlib.methods.shaping, torch
results = {{}}
for what, action in [("read", lambda: open({str(secret / 'hidden.txt')!r}).read()),
                     ("write", lambda: open({str(tmp_path / 'outside.txt')!r}, "w")),
                     ("own", lambda: open({str(own / 'mine.txt')!r}, "w").write("ok")),
                     ("program", lambda: __import__("subprocess").run(["true"]))]:
    try:
        action()
        results[what] = "allowed"
    except PermissionError as err:
        results[what] = str(err)
results["ash_b"] = ashlib.methods.shaping.ash_b(torch.ones(1, 4), 50).tolist()
results["ash_rand"] = ashlib.methods.shaping.ash_rand(torch.ones(1, 4), 50).shape[1]  # runs kept_count inside
import os
results["listed"] = os.listdir({str(own)!r})
results["environment"] = "PATH" in dict(os.environ)
try:
    open("/proc/1/environ").read()
    results["proc"] = "allowed"
except PermissionError as err:
    results["proc"] = str(err)
print(json.dumps(results))
"""
    settings = {"deny": [str(tmp_path / "course")], "write": [str(own)], "log": str(log),
                "forbidden": ["ashlib.methods.shaping.ash_b", "ashlib.methods.shaping.kept_count"]}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "ASHBOOK_SANDBOX": json.dumps(settings)})
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout.strip().splitlines()[-1])
    assert results["read"].startswith("ashbook grader: ") and "off limits" in results["read"]
    assert results["write"].startswith("ashbook grader: writing ")
    assert results["own"] == "allowed"
    assert results["program"] == "ashbook grader: starting programs is not allowed while grading"
    assert results["ash_b"] == [[2.0, 2.0, 0.0, 0.0]] or sorted(results["ash_b"][0]) == [0.0, 0.0, 2.0, 2.0]
    assert results["listed"] == ["mine.txt"] and results["environment"] is True
    assert results["proc"].startswith("ashbook grader: /proc/1/environ is off limits")
    events = [json.loads(line) for line in log.read_text().splitlines()]
    assert [e["kind"] for e in events] == ["read", "write", "program", "forbidden", "forbidden", "looked",
                                           "looked", "read"]
    # the student called ash_b and ash_rand; ash_b's own kept_count is not theirs, ash_rand's is named
    assert [e["detail"] for e in events if e["kind"] == "forbidden"] == [
        "ashlib.methods.shaping.ash_b", "ashlib.methods.shaping.ash_rand, which runs ashlib.methods.shaping.kept_count"]
    assert [e["detail"] for e in events if e["kind"] == "looked"] == [f"listed {own}", "read the environment (os.environ)"]
    assert not (tmp_path / "outside.txt").exists()


# ------------------------------------------------------------------------------------ inputs and commands

def test_bad_inputs_name_the_parameter(tmp_path):
    with pytest.raises(ParameterError, match="assignment"):
        classroom.grade("nope", tmp_path, tmp_path / "out")
    with pytest.raises(ParameterError, match="submissions must be a folder"):
        classroom.grade("ash", tmp_path / "missing", tmp_path / "out")
    with pytest.raises(ParameterError, match="timeout must be a positive number"):
        classroom.grade("ash", tmp_path, tmp_path / "out", timeout=0)
    with pytest.raises(ParameterError, match=r"cells \['nope'\] are not cells of assignment 'ash'"):
        classroom.submission_from("ash", {"nope": ""})


def test_the_command_line_releases_and_refuses_an_unknown_assignment(tmp_path):
    cmd = [sys.executable, "-m", "ashlib", "classroom"]
    done = subprocess.run([*cmd, "release", "ash", "--out", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert Path(done.stdout.strip()) == tmp_path / "ash" / "ash.ipynb"
    done = subprocess.run([*cmd, "grade", "nope", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and "assignment" in done.stderr and "'nope'" in done.stderr


def test_submissions_are_found_as_files_or_folders(tmp_path):
    (tmp_path / "ann.ipynb").write_text("{}")
    (tmp_path / "bo b").mkdir()
    (tmp_path / "bo b" / "ash.ipynb").write_text("{}")
    (tmp_path / "cy" / "ash").mkdir(parents=True)
    (tmp_path / "cy" / "ash" / "ash.ipynb").write_text("{}")
    (tmp_path / "notes.txt").write_text("")
    found = classroom.find_submissions(tmp_path, "ash")
    assert found == {"ann": tmp_path / "ann.ipynb", "bo_b": tmp_path / "bo b" / "ash.ipynb",
                     "cy": tmp_path / "cy" / "ash" / "ash.ipynb"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_jupyterlab_opens_the_student_version(released, tmp_path):
    port = _free_port()
    cmd = classroom.lab_command(released["ash"], port) + ["--no-browser", "--ServerApp.token=",
                                                          "--ServerApp.ip=127.0.0.1"]
    server = subprocess.Popen(cmd, cwd=released["ash"].parent, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              env={**os.environ, "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
                                   "HOME": str(tmp_path)})
    try:
        deadline, answer = time.time() + 120, None
        while time.time() < deadline and answer is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/contents/ash.ipynb", timeout=5) as r:
                    answer = json.load(r)
            except OSError:
                time.sleep(1)
        assert answer is not None, server.stderr.read1().decode() if server.poll() is not None else "no answer"
        assert answer["type"] == "notebook" and answer["name"] == "ash.ipynb"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/lab", timeout=10) as r:
            page = r.read().decode()
            assert r.status == 200 and "JupyterLab" in page
        # the student's server runs no instructor extension: no formgrader, nor its menu
        assert '"@jupyter/nbgrader:formgrader"' in page.split('"disabledExtensions"')[1].split("]")[0]
        with pytest.raises(urllib.error.HTTPError, match="404"):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/formgrader", timeout=10)
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert "course directory root" not in server.stderr.read().decode()


def test_every_forbidden_name_is_a_function_of_ashlib_and_a_stale_one_is_refused(tmp_path, monkeypatch):
    """A forbidden name that names nothing (a module moved) would leave its tripwire unset: refused before
    any grading."""
    for name in ASSIGNMENTS:
        assert all(n.startswith("ashlib.") for n in classroom.forbidden(name))
    assert "ashlib.methods.shaping.ash_b" in classroom.forbidden("ash")
    stale = nbformat.read(classroom.source_notebook("ash"), as_version=4)
    stale.metadata["ashbook"]["forbidden"] = ["ashlib.shaping.ash_b"]
    nbformat.write(stale, tmp_path / "ash.ipynb")
    monkeypatch.setattr(classroom, "source_notebook", lambda name: tmp_path / "ash.ipynb")
    with pytest.raises(ParameterError, match=r"forbidden name 'ashlib.shaping.ash_b' .* is not allowed"):
        classroom.forbidden("ash")
