"""What does a 95% interval cost? Seconds per (method, set) for the bootstrap of every OOD metric, by
sorting each resample (``ashlib.stats.metrics.ood_metrics_many`` on the resampled scores) and by counting the
copies of each image (``ashlib.stats.uncertainty``, the path the book takes in the paper's convention).

    python benchmarks/bootstrap.py                       # 1,000 resamples of 1,000 ID + 1,000 OOD
    python benchmarks/bootstrap.py --n-id 50000 --n-ood 10000 --resamples 200

Both paths score the same resamples; the script checks that they agree (within 1e-10 points) and
prints the ratio sort / count (above 1: counting is faster), the cost of AUROC alone (what most
claims read), and what the book's results tables cost at that rate (``--pairs``, the number of
(method, OOD set) pairs they hold).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ashlib.stats import metrics, uncertainty  # noqa: E402


def best_of(repeats: int, fn) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-id", type=int, default=1000)
    parser.add_argument("--n-ood", type=int, default=1000)
    parser.add_argument("--resamples", type=int, default=uncertainty.N_RESAMPLES)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--pairs", type=int, default=800, help="(method, set) pairs in the book's results tables")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    s_id = rng.normal(1.0, 1.0, args.n_id).astype(np.float32).astype(float)  # float32 scores tie, as the book's
    s_ood = rng.normal(0.0, 1.0, args.n_ood).astype(np.float32).astype(float)
    at_id = rng.integers(0, args.n_id, (args.resamples, args.n_id))
    at_ood = rng.integers(0, args.n_ood, (args.resamples, args.n_ood))
    sort = lambda: metrics.ood_metrics_many(s_id[at_id], s_ood[at_ood])  # noqa: E731
    count = lambda: uncertainty._counted_metrics(s_id, s_ood, uncertainty._counts(at_id, args.n_id),  # noqa: E731
                                                 uncertainty._counts(at_ood, args.n_ood))
    a, b = sort(), count()
    worst = max(float(np.max(np.abs(a[m] - b[m]))) for m in uncertainty.METRICS)
    if worst > 1e-10:
        print(f"the two paths disagree by {worst:.3g} points")
        return 1
    auroc = lambda: uncertainty._counted_metrics(s_id, s_ood, uncertainty._counts(at_id, args.n_id),  # noqa: E731
                                                 uncertainty._counts(at_ood, args.n_ood), ("AUROC",))
    if not np.array_equal(auroc()["AUROC"], b["AUROC"]):
        print("AUROC alone differs from AUROC among every metric")
        return 1
    t_sort, t_count, t_auroc = best_of(args.repeats, sort), best_of(args.repeats, count), best_of(args.repeats, auroc)
    print(f"{args.resamples} resamples of {args.n_id:,} ID + {args.n_ood:,} OOD scores, every metric "
          f"(agree within {worst:.1g} points):")
    print(f"  sorting each resample  {t_sort:.3f} s")
    print(f"  counting copies        {t_count:.3f} s")
    print(f"  ratio sort / count     {t_sort / t_count:.2f}")
    print(f"  counting, AUROC alone  {t_auroc:.3f} s (ratio every metric / AUROC alone {t_count / t_auroc:.2f}; "
          "a claim's evidence on another seed or benchmark resamples only the metric it reads)")
    print(f"  {args.pairs} (method, set) pairs at the counting rate: {args.pairs * t_count:.0f} s of one core")
    return 0


if __name__ == "__main__":
    sys.exit(main())
