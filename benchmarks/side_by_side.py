"""Networks trained one by one on every core, or side by side on one core each? The embedded ResNets
train on one thread (``TrainRecipe.threads``: the weights must not depend on the machine's core count),
and ``ashlib.assets.models.load_or_train_many`` trains the missing ones in a process each.

    python benchmarks/side_by_side.py                  # 3 networks, 1 epoch on 1,000 images each
    python benchmarks/side_by_side.py --networks 4 --n 2000

Prints the seconds of (a) one by one, each on all cores (torch's default before the recipe fixed the
count), (b) one by one on one thread, (c) ``load_or_train_many`` (a process each, one thread, all at
once; more networks than cores share them), then the ratios a/c and b/c (above 1: side by side is faster), and whether (b)
and (c) trained bitwise the same weights (they must: the same one-thread computation in either place).
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from dataclasses import replace

import ashlib.book  # noqa: F401  (before torch: OpenMP's idle threads sleep)
import torch

from ashlib import _threads
from ashlib.assets.data import load_benchmark
from ashlib.assets.models import TrainRecipe, build_model, load_or_train_many, train


def weights(model) -> torch.Tensor:
    return torch.cat([v.flatten().float() for v in model.state_dict().values()])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--networks", type=int, default=3, help="networks (seeds 0..N-1)")
    parser.add_argument("--n", type=int, default=1000, help="training images (of the embedded 4,000)")
    parser.add_argument("--epochs", type=int, default=1)
    args = parser.parse_args()
    bench = load_benchmark("mnist5k", seed=0, preprocessing="match")
    x, y = bench.x_train[:args.n], bench.y_train[:args.n]
    recipes = [TrainRecipe(epochs=args.epochs, seed=seed) for seed in range(args.networks)]
    cores = _threads.cpus()
    print(f"{args.networks} networks, {args.epochs} epoch(s) on {args.n} images, {cores} cores")

    t0 = time.perf_counter()
    for r in recipes:
        train(build_model("smallresnet", 10, seed=r.seed), x, y, replace(r, threads=cores),
              progress=False)
    all_cores = time.perf_counter() - t0
    t0 = time.perf_counter()
    alone = [weights(train(build_model("smallresnet", 10, seed=r.seed), x, y, r, progress=False)) for r in recipes]
    one_thread = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as cache:
        os.environ["ASHLIB_CACHE"] = cache
        t0 = time.perf_counter()
        many = load_or_train_many([dict(name="smallresnet", x_train=x, y_train=y, num_classes=10, recipe=r)
                                   for r in recipes], progress=False)
        side_by_side = time.perf_counter() - t0
    same = all(torch.equal(a, weights(net)) for a, (net, _) in zip(alone, many))
    print(f"(a) one by one, {cores} threads each: {all_cores:.1f} s")
    print(f"(b) one by one, 1 thread:           {one_thread:.1f} s")
    print(f"(c) side by side, 1 thread each:    {side_by_side:.1f} s")
    print(f"ratio a/c {all_cores / side_by_side:.2f}, b/c {one_thread / side_by_side:.2f}; "
          f"(b) and (c) weights identical: {same}")


if __name__ == "__main__":
    main()
