"""Grading a class: how long ``python -m ashlib classroom grade`` takes per submission.

    .venv/bin/python benchmarks/grading.py --students 30 --assignment ash

Writes a class of ``--students`` submissions of the assignment (cycling through the instructor's
solution, the untouched student version and every synthetic submission of its ``samples.yaml``),
grades it with the default settings (one submission per CPU at once, 60 s a cell), and prints the
wall time, the time per submission and the ratio to the budget (10 minutes for 30 submissions on two
cores: ``ratio < 1`` meets it). It also checks that every student got the points their synthetic
submission expects, so a fast but wrong grader does not pass. Exits 1 if a grade is wrong.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import nbformat

from ashlib.book import classroom

BUDGET_S = 600.0
BUDGET_STUDENTS = 30


def write_class(name: str, students: int, folder: Path) -> dict[str, dict[str, float]]:
    """``students`` submissions in ``folder``; student -> expected points per autograded question."""
    full = {q.name: q.points for q in classroom.questions(name) if not q.manual}
    released = classroom.release(name, folder.parent / "student")
    kinds = [("instructor", classroom.source_notebook(name), full),
             ("untouched", released, {q: 0.0 for q in full})]
    for sample, spec in classroom.samples(name).items():
        path = folder.parent / f"{sample}.ipynb"
        nbformat.write(classroom.submission_from(name, spec["cells"]), path)
        kinds.append((sample, path, classroom.expected_points(name, spec)))
    expected = {}
    for i in range(students):
        kind, path, points = kinds[i % len(kinds)]
        student = f"s{i:02d}_{kind}"
        shutil.copy(path, folder / f"{student}.ipynb")
        expected[student] = points
    return expected


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=BUDGET_STUDENTS)
    parser.add_argument("--assignment", default="ash", choices=classroom.assignment_names())
    parser.add_argument("--workers", type=int, default=None, help="default: the CPUs")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="ashbook-grading-bench-") as tmp:
        folder = Path(tmp) / "submissions"
        folder.mkdir()
        expected = write_class(args.assignment, args.students, folder)
        start = time.perf_counter()
        table = classroom.grade(args.assignment, folder, Path(tmp) / "grades", workers=args.workers)
        seconds = time.perf_counter() - start
    wrong = []
    for student, points in expected.items():
        rows = table[(table.student == student) & table.points.notna() & (table.question != classroom.INTEGRITY)]
        if dict(zip(rows.question, rows.points)) != points:
            wrong.append(student)
    per = seconds / args.students
    budget = BUDGET_S / BUDGET_STUDENTS * args.students
    print(f"assignment {args.assignment}: {args.students} submissions graded in {seconds:.1f} s "
          f"on {os.cpu_count()} CPUs ({args.workers or os.cpu_count()} at once)")
    print(f"per submission: {per:.2f} s; budget {BUDGET_S / BUDGET_STUDENTS:.1f} s")
    print(f"ratio to the budget ({budget:.0f} s for {args.students}): {seconds / budget:.2f}")
    if wrong:
        print(f"WRONG GRADES for {len(wrong)} students: {wrong}", file=sys.stderr)
        return 1
    print("every grade as expected")
    return 0


if __name__ == "__main__":
    sys.exit(main())
