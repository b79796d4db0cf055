"""How much does OpenMP's wait policy cost? One training run of the embedded ResNet in a fresh process
with OpenMP's idle threads spinning (``OMP_WAIT_POLICY=ACTIVE``, OpenMP's default) and one with them
sleeping (``PASSIVE``, what ``import ashlib.book`` sets unless the user set a policy; see ashlib/_threads.py).

    python benchmarks/openmp_wait.py                 # 1 epoch on 2,000 images, all cores, 2 repeats
    python benchmarks/openmp_wait.py --epochs 2 --n 4000 --repeats 3 --threads 2
    python benchmarks/openmp_wait.py --busy 1        # beside one busy process (a shared machine)

Prints each run's seconds and a hash of the trained weights, then the ratio ACTIVE/PASSIVE of the
median times (above 1: passive waiting is faster) and whether the weights are bitwise identical (the
policy decides how threads wait, not how work is split, so they must be). Spinning costs most when
another process wants the same cores: ``--busy N`` keeps N pure-Python busy loops running meanwhile.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys

TRAIN = """
import hashlib, sys, time
import torch
from ashlib.assets.data import load_benchmark
from ashlib.assets.models import TrainRecipe, build_model, train
n, epochs = int(sys.argv[1]), int(sys.argv[2])
bench = load_benchmark("mnist5k", seed=0, preprocessing="match")
model = build_model("smallresnet", bench.num_classes, width=16, seed=0)
start = time.perf_counter()
train(model, bench.x_train[:n], bench.y_train[:n], TrainRecipe(epochs=epochs, threads=torch.get_num_threads()),
      progress=False)  # the threads OMP_NUM_THREADS gives (the recipe's default is one: no waiting to measure)
seconds = time.perf_counter() - start
digest = hashlib.sha256(b"".join(t.numpy().tobytes() for t in model.state_dict().values())).hexdigest()
print(f"{seconds:.3f} {digest[:16]}")
"""


def run(policy: str, n: int, epochs: int, threads: int | None) -> tuple[float, str]:
    env = {**os.environ, "OMP_WAIT_POLICY": policy}
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    out = subprocess.run([sys.executable, "-c", TRAIN, str(n), str(epochs)], env=env, check=True,
                         capture_output=True, text=True).stdout.split()
    return float(out[0]), out[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="training images (of the embedded 4,000)")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=2, help="runs per policy, alternating")
    parser.add_argument("--threads", type=int, default=None, help="OMP_NUM_THREADS (default: all cores)")
    parser.add_argument("--busy", type=int, default=0, help="busy processes running meanwhile (default 0)")
    args = parser.parse_args()
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.busy)]
    try:
        measure(args)
    finally:
        for process in busy:
            process.kill()


def measure(args: argparse.Namespace) -> None:
    times: dict[str, list[float]] = {"ACTIVE": [], "PASSIVE": []}
    digests: dict[str, set[str]] = {"ACTIVE": set(), "PASSIVE": set()}
    for i in range(args.repeats):
        for policy in times:
            seconds, digest = run(policy, args.n, args.epochs, args.threads)
            times[policy].append(seconds)
            digests[policy].add(digest)
            print(f"run {i + 1} {policy:7s} {seconds:7.2f} s  weights {digest}", flush=True)
    active, passive = (statistics.median(times[p]) for p in ("ACTIVE", "PASSIVE"))
    print(f"median ACTIVE {active:.2f} s, PASSIVE {passive:.2f} s: ratio ACTIVE/PASSIVE {active / passive:.2f}")
    same = len(digests["ACTIVE"] | digests["PASSIVE"]) == 1
    print("weights bitwise identical across policies and repeats:", "yes" if same else "NO")
    if not same:
        sys.exit(1)


if __name__ == "__main__":
    main()
