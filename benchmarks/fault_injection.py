"""Fault injection: damage the cache at random, rerun a chapter, and check that no run publishes a
different number and that every damaged entry is reported by name.

    .venv/bin/python benchmarks/fault_injection.py --trials 8 --seed 0

It runs ``python -m ashlib run --profile embedded 03_global_vs_local`` (two percentiles, no variant
comparison, so a run takes seconds) on a scratch cache to get the reference CSVs, then once more to
learn which entries the chapter reads (their last use moves: :func:`ashlib.assets.cache.load` touches what it
reads); only those are damaged, since damaging an entry nobody reads tests nothing. Per trial it picks
such an entry and a fault at random, applies it, reruns the chapter and compares every CSV it
published with the reference, value by value. Faults: truncate the file, overwrite it with random
bytes, flip one byte, copy another entry over it, replace it by its value cut to half the rows in the
old bare format, write a well-formed entry (right format, key and digest) whose value has half the rows
(activations only: only the row-count check can catch it), delete it. A trial fails when the run fails,
publishes a different number, or does not name the damaged entry (a deleted one is simply
recomputed: it must exist again). The summary says how many faults were exercised (the chapter read
the damaged entry); exits 1 if any trial failed.
"""
from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch

ROOT = Path(__file__).resolve().parents[1]
FAULTS = ("truncate", "random bytes", "flip a byte", "copy another entry over it", "cut rows (old format)",
          "wrong rows (well-formed)", "delete")
#: Faults that apply to activations only (a checkpoint has no rows to count).
FEATURES_ONLY = ("wrong rows (well-formed)",)


def run_chapter(cache: Path, out: Path) -> tuple[int, str]:
    env = {**os.environ, "ASHLIB_CACHE": str(cache), "PYTHONWARNINGS": "always"}
    cmd = [sys.executable, "-m", "ashlib", "run", "--profile", "embedded", "03_global_vs_local", "--out", str(out),
           "-p", "percentiles", "[80, 90]", "-p", "compare", "[]"]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    return proc.returncode, proc.stdout + proc.stderr


def published(folder: Path) -> dict[str, pd.DataFrame]:
    return {p.name: pd.read_csv(p) for p in sorted(folder.glob("*.csv"))}


def same(a: dict[str, pd.DataFrame], b: dict[str, pd.DataFrame]) -> bool:
    if a.keys() != b.keys():
        return False
    for name in a:
        try:
            pd.testing.assert_frame_equal(a[name], b[name], check_exact=True)
        except AssertionError:
            return False
    return True


def damage(path: Path, fault: str, others: list[Path], rng: random.Random) -> None:
    data = path.read_bytes()
    if fault == "truncate":
        path.write_bytes(data[: rng.randrange(1, max(2, len(data) - 1))])
    elif fault == "random bytes":
        path.write_bytes(os.urandom(max(1, len(data) // 10)))
    elif fault == "flip a byte":
        i = rng.randrange(len(data) // 4, len(data))
        path.write_bytes(data[:i] + bytes([data[i] ^ 0xFF]) + data[i + 1:])
    elif fault == "copy another entry over it":
        path.write_bytes(rng.choice(others).read_bytes())
    elif fault == "cut rows (old format)":
        value = torch.load(path, weights_only=True)
        value = value.get("value", value) if isinstance(value, dict) else value
        if isinstance(value, torch.Tensor):
            torch.save(value[: max(1, len(value) // 2)].clone(), path)
        else:  # a state dict: the old format, with one tensor halved
            key = rng.choice(sorted(value))
            value = dict(value)
            value[key] = value[key].flatten()[: max(1, value[key].numel() // 2)].clone()
            torch.save(value, path)
    elif fault == "wrong rows (well-formed)":
        from ashlib.assets import cache

        entry = torch.load(path, weights_only=True)
        value = entry["value"]
        value = value[: max(1, len(value) // 2)].clone()
        torch.save({**entry, "value": value, "digest": cache.digest(value)}, path)
    else:
        path.unlink()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="ashlib-faults-") as tmp:
        tmp = Path(tmp)
        cache = tmp / "cache"
        t0 = time.perf_counter()
        rc, log = run_chapter(cache, tmp / "reference")
        if rc != 0:
            print(log[-3000:])
            print("the reference run failed")
            return 1
        reference = published(tmp / "reference")
        print(f"reference run: {len(reference)} CSV files in {time.perf_counter() - t0:.0f} s")
        read = entries_read(cache, tmp)
        print(f"the chapter reads {len(read)} cache entries: " + ", ".join(f"{p.parent.name}/{p.name[:24]}" for p in read))
        bad = exercised = 0
        for trial in range(1, args.trials + 1):
            fault = rng.choice(FAULTS)
            candidates = [p for p in read if p.parent.name == "features"] if fault in FEATURES_ONLY else read
            target = rng.choice(candidates)
            damage(target, fault, [e for e in read if e != target and e.parent == target.parent], rng)
            t0 = time.perf_counter()
            rc, log = run_chapter(cache, tmp / f"trial-{trial}")
            named = target.name in log  # the pipeline repeats the notebook's DamagedEntryWarning
            recomputed = fault == "delete" and target.is_file()
            same_numbers = rc == 0 and same(published(tmp / f"trial-{trial}"), reference)
            ok = same_numbers and (named or recomputed)
            exercised += named or recomputed
            bad += not ok
            print(f"trial {trial}: {fault:<28} {target.parent.name}/{target.name[:40]:<40} "
                  f"{'same numbers' if same_numbers else 'DIFFERENT OR FAILED'}; "
                  f"{'recomputed' if recomputed else 'reported by name' if named else 'NOT REPORTED'}; "
                  f"{time.perf_counter() - t0:.0f} s", flush=True)
        print(f"{args.trials} trials, {exercised} exercised (the chapter read the damaged entry): "
              f"{args.trials - bad} published exactly the reference numbers and reported or recomputed the entry, "
              f"{bad} did not")
        return 1 if bad or not exercised else 0


def entries_read(cache: Path, tmp: Path) -> list[Path]:
    """The cache entries the chapter reads: those whose last use moves when it runs again."""
    before = {p: p.stat().st_mtime for folder in ("features", "models") for p in (cache / folder).glob("*.pt")}
    time.sleep(1.1)
    rc, log = run_chapter(cache, tmp / "warm")
    if rc != 0:
        raise SystemExit(f"the warm run failed:\n{log[-3000:]}")
    return sorted(p for p, mtime in before.items() if p.is_file() and p.stat().st_mtime > mtime)


if __name__ == "__main__":
    sys.exit(main())
