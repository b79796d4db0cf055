"""How long do `make book` and `make test` take from a fresh clone, against the budgets (book <= 20
minutes with the chapter *When does ASH help?*, the other chapters within their 15; tests <= 10 minutes on
2 cores)? And how fast was the machine meanwhile?

    python benchmarks/cold_build.py                  # make book from a clone of HEAD
    python benchmarks/cold_build.py --target test    # make test
    python benchmarks/cold_build.py --rev bc5633c --keep

Clones the repository (``--rev``, default HEAD) into a temporary folder, runs ``make install`` (not
timed), then the target with an empty ``.cache``: every network trains, every feature is computed
(Fashion-MNIST counts only if Debian's package is installed, as on CI; a copy that ``python -m ashlib
fetch`` put in this checkout's ``.cache`` is not seen, and its columns say so; the source texts in
``../shared``, which some tests read, are linked beside the clone). Prints the wall time and its ratio to
the budget, the CPU seconds of every process the target ran and their ratio to the wall time (2.0: both
cores always busy), and a calibration: the seconds of a fixed pure-Python loop, before and after. The
same machine has run that loop in 0.87 s and in 1.78 s within one day, and the build's CPU seconds
follow it, so two builds compare by CPU seconds per loop second, not by wall time. ``--keep`` leaves
the clone (with its run folder and site) and prints its path.
"""
from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUDGET_MINUTES = {"book": 20, "test": 10}


def loop_seconds() -> float:
    """Seconds of 10^7 additions in a fresh Python process (the calibration)."""
    code = "import time\nt = time.perf_counter()\ns = 0\nfor i in range(10**7):\n    s += i\nprint(time.perf_counter() - t)"
    return float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", choices=sorted(BUDGET_MINUTES), default="book")
    parser.add_argument("--rev", default="HEAD", help="the commit to clone (default HEAD)")
    parser.add_argument("--keep", action="store_true", help="leave the clone in place")
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="ashbook-cold-"))
    clone = folder / "ashbook"
    try:
        subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
        subprocess.run(["git", "-C", str(clone), "checkout", "-q", args.rev], check=True)
        if (ROOT.parent / "shared").is_dir():  # the source texts some tests read, beside the checkout
            (folder / "shared").symlink_to(ROOT.parent / "shared")
        env = {k: v for k, v in os.environ.items() if k != "ASHLIB_CACHE"}  # the Makefile's: the clone's .cache
        with open(folder / "install.log", "w") as log:
            subprocess.run(["make", "install"], cwd=clone, env=env, stdout=log, stderr=subprocess.STDOUT, check=True)
        before = loop_seconds()
        cpu, start = children_cpu(), time.perf_counter()
        with open(folder / f"{args.target}.log", "w") as log:
            done = subprocess.run(["make", args.target], cwd=clone, env=env, stdout=log, stderr=subprocess.STDOUT)
        wall, cpu = time.perf_counter() - start, children_cpu() - cpu
        after = loop_seconds()
    except BaseException:
        print(f"stopped; the clone and its logs: {folder}", file=sys.stderr)
        raise
    budget = 60 * BUDGET_MINUTES[args.target]
    rev = subprocess.run(["git", "-C", str(clone), "rev-parse", "--short", "HEAD"], capture_output=True,
                         text=True).stdout.strip()
    print(f"make {args.target} at {rev}, fresh clone, {os.cpu_count()} cores: exit status {done.returncode}")
    print(f"  wall {wall / 60:.1f} min ({wall:.0f} s), budget {budget // 60} min: ratio {wall / budget:.2f}")
    print(f"  CPU {cpu:.0f} s (all processes), CPU / wall {cpu / wall:.2f}")
    print(f"  calibration loop {before:.2f} s before, {after:.2f} s after: "
          f"CPU seconds per loop second {cpu / ((before + after) / 2):.0f}")
    if args.keep or done.returncode:
        print(f"  clone and logs: {folder}")
    else:
        shutil.rmtree(folder, ignore_errors=True)
    sys.exit(done.returncode)


if __name__ == "__main__":
    main()
