"""How long ``python -m ashlib run`` takes to refuse a bad parameter: the median over the generated list
of bad values (tests/book/bad_parameters.py: a bad value for every parameter of every notebook, one past
int64 for every integer, the cross-parameter cases), each in a fresh process, as a user meets it.

    .venv/bin/python benchmarks/refusal_time.py            # every case (about a minute on 2 cores)
    .venv/bin/python benchmarks/refusal_time.py --every 5  # every fifth

Prints the median, the slowest case and the ratio of the median to the goal (1 s on 2 cores); exits 1
if a case is not refused with exit status 2.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "book"))
import bad_parameters  # noqa: E402

GOAL_SECONDS = 1.0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--every", type=int, default=1, help="time every N-th case (default: all)")
    args = parser.parse_args(argv)
    cases = [(nb.stem, overrides) for nb in bad_parameters.NOTEBOOKS
             for overrides, _ in bad_parameters.bad_cases(nb.stem)][::args.every]
    times, wrong = [], []
    with tempfile.TemporaryDirectory(prefix="ashbook-refusal-") as tmp:
        for notebook, overrides in cases:
            cmd = [sys.executable, "-m", "ashlib", "run", "--profile", "embedded", notebook, "--out", f"{tmp}/run"]
            for key, value in overrides.items():
                cmd += ["-p", key, json.dumps(value)]
            t0 = time.perf_counter()
            done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
            times.append((time.perf_counter() - t0, notebook, overrides))
            if done.returncode != 2:
                wrong.append((notebook, overrides, done.returncode, done.stderr[-300:]))
    median = statistics.median(t for t, _, _ in times)
    slowest = max(times, key=lambda t: t[0])
    print(f"{len(times)} refusals: median {median:.2f} s, slowest {slowest[0]:.2f} s ({slowest[1]} {slowest[2]})")
    print(f"median / goal ({GOAL_SECONDS:g} s): {median / GOAL_SECONDS:.2f}")
    for notebook, overrides, rc, err in wrong:
        print(f"NOT REFUSED: {notebook} {overrides}: exit status {rc}: {err}")
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
