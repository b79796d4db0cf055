"""Time the paper's Figure-4 grid (ASH-S and ASH-B, local and global thresholds, p = 70..99) on
mnist5k three ways and print the ratios:

* shared (the book's path): the network runs once per data set; the local-threshold configurations
  share one sort per set (ashlib.evaluation.experiments.share_sweeps: ASH-S and ASH-B together, each output only
  written where it keeps values, straight into the last linear layer), the global ones cost one fused
  pass each; the energies of all configurations on a set in one call, and their metrics at once
  (ashlib.stats.metrics.ood_metrics_many);
* cached, one configuration at a time (the previous path, ``evaluate(..., share=False)``): the same
  features, one selection per configuration and set;
* naive: one forward pass of the whole network per configuration and data set, with the shaping
  in a forward hook, as the reference code does.

Both compute the same numbers (checked at the end). Global thresholds are fitted once, from ID
training features, for both. Run: `.venv/bin/python benchmarks/sweep.py [--device cpu]`.
"""
from __future__ import annotations

import argparse
import time

import torch

from ashlib.evaluation import experiments
from ashlib.stats import metrics
from ashlib.methods import scores
from ashlib.assets.data import load_benchmark
from ashlib.assets.models import TrainRecipe, load_or_train
from ashlib.assets.placement import shaping_at
from ashlib.methods.shaping import make_shaper

PERCENTILES = [70, 75, 80, 85, 90, 91, 92, 93, 94, 95, 96, 97, 98, 99]


def grid() -> list[experiments.Method]:
    return [experiments.ash(v, p, threshold=t) for v in "SB" for t in ("local", "global") for p in PERCENTILES]


def naive(model, ctx, methods, batch_size, device):
    """One full forward pass per (configuration, data set)."""
    rows = []
    for m in methods:
        threshold = ctx.global_threshold("avgpool", m.percentile) if m.threshold == "global" else None
        shape = make_shaper(m.shaping, None if threshold is not None else m.percentile, threshold=threshold)
        energy = {}
        with torch.no_grad(), shaping_at(model, "avgpool", shape):
            for name in [experiments.ID_SET, *ctx.ood_sets]:
                x = ctx.sets[name]
                energy[name] = torch.cat([scores.energy(model(x[i:i + batch_size].to(device)).cpu())
                                          for i in range(0, len(x), batch_size)])
        for name in ctx.ood_sets:
            rows.append((m.label, name, metrics.auroc(energy[experiments.ID_SET], energy[name])))
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--skip-naive", action="store_true", help="time the two cached paths only")
    args = parser.parse_args()

    bench = load_benchmark("mnist5k")
    model, _ = load_or_train("smallresnet", bench.x_train, bench.y_train, bench.num_classes,
                             recipe=TrainRecipe(), device=args.device)
    methods = grid()

    t0 = time.perf_counter()
    ctx = experiments.build_context(model, bench, batch_size=args.batch_size, device=args.device)
    for m in methods:  # fit the global thresholds once, outside both timings
        if m.threshold == "global":
            ctx.global_threshold("avgpool", m.percentile)
    t_features = time.perf_counter() - t0

    def timed(share: bool):
        best = None
        for _ in range(3):  # best of three, each without the rows and logits kept before
            ctx.rows.clear()
            ctx.logits.clear()
            t0 = time.perf_counter()
            table = experiments.evaluate(methods, ctx, progress=False, share=share)
            seconds = time.perf_counter() - t0
            best = seconds if best is None else min(best, seconds)
        return table, best

    cached, t_cached = timed(share=True)
    unshared, t_unshared = timed(share=False)

    import pandas as pd

    pd.testing.assert_frame_equal(cached, unshared, rtol=1e-12, atol=1e-12)
    n_sets = 1 + len(ctx.ood_sets)
    print(f"Figure-4 grid on mnist5k: {len(methods)} configurations x {n_sets} data sets, device {args.device}")
    print(f"  shared grid (one sort per variant/set):   {t_cached:8.2f} s")
    print(f"  cached grid, one config at a time:        {t_unshared:8.2f} s")
    print(f"  ratio one-at-a-time / shared:             {t_unshared / t_cached:8.1f}x")
    if args.skip_naive:
        return
    t0 = time.perf_counter()
    reference = naive(model, ctx, methods, args.batch_size, args.device)
    t_naive = time.perf_counter() - t0
    by_key = cached.set_index(["method", "ood_set"])["AUROC"]
    worst = max(abs(by_key[(label, name)] - 100 * auroc) for label, name, auroc in reference)
    print(f"  feature extraction (once, cache {'hit' if t_features < 1 else 'miss'}): {t_features:8.2f} s")
    print(f"  naive grid (one forward per config/set):  {t_naive:8.2f} s")
    print(f"  ratio naive / shared:                     {t_naive / t_cached:8.1f}x")
    print(f"  ratio naive / one-at-a-time (old path):   {t_naive / t_unshared:8.1f}x")
    print(f"  ratio naive / (cached + extraction):      {t_naive / (t_cached + t_features):8.1f}x")
    print(f"  largest AUROC difference between the two: {worst:.2e} percentage points")


if __name__ == "__main__":
    main()
