"""Command line: ``python -m ashlib {run,book,fetch,classroom} ...``.

    python -m ashlib run --profile embedded                      # every notebook, runs/embedded/
    python -m ashlib run --profile cifar10 --device cuda 01_methods -p percentile 85
    python -m ashlib run --profile imagenet --rehearse           # fake data, random weights, CPU
    python -m ashlib run --profile imagenet --dry-run            # what a run reads, writes and costs
    python -m ashlib book --run runs/embedded                    # the site from a run folder
    python -m ashlib fetch --list                                # data sets and weights
    python -m ashlib fetch --verify cifar10                      # every file a benchmark reads, weights too
    python -m ashlib classroom release ash --out student/        # the student version of an assignment
    python -m ashlib classroom grade ash submissions/ --out grades/  # gradebook.csv and feedback/
    python -m ashlib classroom lab ash                           # open the student version in JupyterLab
    python -m ashlib cache list                                  # cached entries, their sizes, the limit
    python -m ashlib matrix matrices/example.yaml --out runs/matrix  # profiles x notebooks x seeds x grid, as jobs
"""
from __future__ import annotations

import argparse
import sys

from ashlib.book import pipeline
from ashlib._checks import ParameterError


def _parameter(text: str):
    if "=" in text:
        raise argparse.ArgumentTypeError("write -p NAME VALUE (two words), as papermill does")
    return text


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m ashlib", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="execute notebooks with a profile's parameters into a run folder")
    run.add_argument("notebooks", nargs="*", help="notebook names (default: all of the profile's)")
    run.add_argument("--profile", default="embedded", help="a profile of profiles/ (default: embedded)")
    run.add_argument("--device", help="override the profile's device (cpu, cuda, cuda:N, mps)")
    run.add_argument("--out", help="run folder (default: runs/<profile>)")
    run.add_argument("--force", action="store_true", help="execute every notebook, even those whose inputs "
                     "did not change since the run in the folder")
    run.add_argument("--jobs", type=int, default=None, metavar="N",
                     help="notebooks executed at once, each kernel with its share of the cores (default: the "
                          "cores this process may use when every notebook runs on the CPU, else 1)")
    run.add_argument("--rehearse", action="store_true",
                     help="paper-scale profiles: run every chapter on CPU on a small fake data tree in the real "
                          "layout with random weights (runs/<profile>-rehearsal), before renting a GPU")
    run.add_argument("--workdir", default=None,
                     help="--rehearse: where the fake tree lives (default $ASHLIB_CACHE/rehearsals/<profile>)")
    run.add_argument("--dry-run", action="store_true",
                     help="print, per chapter, the images, network and layers, the cache it writes, peak memory "
                          "and an estimated time; run nothing")
    run.add_argument("--throughput", type=float, default=None, metavar="IMAGES_PER_S",
                     help="--dry-run: images per second of decoding + forward pass on the target machine "
                          "(benchmarks/throughput.py prints it; default: a rough figure for one GPU)")
    run.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                     type=_parameter, help="override a notebook parameter (value read as YAML)")
    run.add_argument("--help-notebook", metavar="NOTEBOOK", default=None,
                     help="list a notebook's parameters (type, default, what it is) and exit")

    book = sub.add_parser("book", help="build the site from a run folder, without executing anything")
    book.add_argument("--run", default="runs/embedded", help="run folder (default: runs/embedded)")
    book.add_argument("--sync-parameters", action="store_true",
                      help="rewrite each notebook's parameters cell from its chapter's declaration "
                           "(ashlib/book/chapters/) and exit")

    fetch = sub.add_parser("fetch", help="download and verify paper-scale data sets and weights")
    from ashlib.assets import fetch as fetch_module

    fetch_module.add_arguments(fetch)

    classroom = sub.add_parser("classroom", help="assignments: student versions, grading, JupyterLab")
    steps = classroom.add_subparsers(dest="step", required=True)
    release = steps.add_parser("release", help="write the student version of an assignment (no solutions, "
                               "no hidden tests)")
    release.add_argument("assignment", help="an assignment (a folder of assignments/)")
    release.add_argument("--out", default="student", help="folder for <assignment>/ (default: student)")
    grade = steps.add_parser("grade", help="grade a folder of submissions into gradebook.csv and feedback/")
    grade.add_argument("assignment", help="an assignment (a folder of assignments/)")
    grade.add_argument("submissions", help="folder of <student>.ipynb files or <student>/ folders")
    grade.add_argument("--out", default="grades", help="folder for gradebook.csv and feedback/ (default: grades)")
    grade.add_argument("--timeout", type=float, default=60, help="seconds a cell may run (default: 60)")
    grade.add_argument("--workers", type=int, default=None, help="submissions graded at once (default: the CPUs)")
    lab = steps.add_parser("lab", help="open the student version of an assignment in JupyterLab")
    lab.add_argument("assignment", help="an assignment (a folder of assignments/)")
    lab.add_argument("--dir", default="student", help="where the student version is written if missing "
                     "(default: student)")
    lab.add_argument("--port", type=int, default=None, help="JupyterLab's port (default: its own choice)")

    cache = sub.add_parser("cache", help="list or clear cached activations and checkpoints ($ASHLIB_CACHE)")
    actions = cache.add_subparsers(dest="action", required=True)
    actions.add_parser("list", help="every entry (kind, size, last used), the totals and the limit")
    clear = actions.add_parser("clear", help="delete entries (default all; downloads are never touched)")
    clear.add_argument("--kind", action="append", default=None, help="only this kind (features, models, "
                       "verified); repeatable")
    clear.add_argument("--older-than", type=float, default=None, metavar="DAYS", help="only entries last used "
                       "more than DAYS days ago")

    matrix = sub.add_parser("matrix", help="run a matrix (profiles x notebooks x seeds x parameters) as submitit "
                            "jobs, locally or on SLURM; resumable; tables aggregated over seeds")
    matrix.add_argument("file", help="the matrix, a YAML file (see matrices/example.yaml)")
    matrix.add_argument("--out", required=True, help="the matrix folder: a run folder per cell, matrix.json, "
                        "jobs/ (logs), aggregate/ (mean and sd over seeds)")
    matrix.add_argument("--dry-run", action="store_true", help="check every cell and list them; run nothing")
    return parser


def _cache(args) -> int:
    from ashlib.assets import cache

    if args.action == "list":
        print(cache.report())
    else:
        removed = cache.clear(args.kind, args.older_than)
        print(f"removed {len(removed)} entries ({cache.human(sum(e.size for e in removed))})")
    return 0


def _classroom(args) -> int:
    from pathlib import Path

    from ashlib.book import classroom

    if args.step == "release":
        print(classroom.release(args.assignment, args.out))
    elif args.step == "grade":
        table = classroom.grade(args.assignment, args.submissions, args.out, args.timeout, args.workers)
        print(classroom.totals(table).to_string())
        print(f"gradebook: {Path(args.out) / 'gradebook.csv'}; feedback: {Path(args.out) / 'feedback'}/")
    else:
        notebook = Path(args.dir) / args.assignment / f"{args.assignment}.ipynb"
        if not notebook.is_file():
            notebook = classroom.release(args.assignment, args.dir)
        import subprocess

        return subprocess.call(classroom.lab_command(notebook, args.port))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "run" and args.help_notebook:
            from ashlib.book import chapters

            print(chapters.describe(args.help_notebook))
        elif args.command == "run":
            overrides = {name: pipeline.parse_value(value, name) for name, value in args.parameter}
            if args.dry_run:
                from ashlib.book import estimate

                print(estimate.report(args.profile, args.notebooks or None, overrides, args.throughput))
            elif args.rehearse:
                from ashlib.book import rehearsal

                if args.device not in (None, "cpu"):
                    raise ParameterError(f"--device {args.device} is not allowed with --rehearse: a rehearsal "
                                         "runs on the CPU.")
                rehearsal.rehearse(args.profile, args.notebooks or None, args.out, overrides, args.workdir)
            else:
                pipeline.run(args.profile, args.notebooks or None, args.out, args.device, overrides,
                             force=args.force, jobs=args.jobs)
        elif args.command == "book" and args.sync_parameters:
            from ashlib.book import chapters

            changed = chapters.sync_parameters_cells(pipeline.NOTEBOOKS)
            print(f"rewrote the parameters cell of {', '.join(changed)}" if changed else "every parameters cell "
                  "matches its declaration")
        elif args.command == "book":
            pipeline.build_book(args.run)
        elif args.command == "classroom":
            return _classroom(args)
        elif args.command == "cache":
            return _cache(args)
        elif args.command == "matrix":
            from ashlib.book import matrix

            record = matrix.run(args.file, args.out, args.dry_run)
            return 1 if record.get("failed") else 0
        else:
            from ashlib.assets import fetch as fetch_module

            return fetch_module.main(args)
    except ParameterError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except pipeline.RunFailed as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # what was stopped, and where its output is, has been said
        print("interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
