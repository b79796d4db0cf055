"""Time ASH-P/B/S/RAND on one large batch of ReLU activations, beside a memory copy of the same
tensor and pytorch-ood's implementation, and print the ratios (the goal: at most 3x a copy, and
faster than pytorch-ood).

Three implementations of each variant:

* ours: ``ashlib.methods.shaping`` as the book calls it (on the CPU: one fused numba pass per row, which
  selects the threshold by a radix histogram and a quickselect, sums and writes; on CUDA:
  ``torch.topk`` and torch operations);
* ours, torch path: the same functions on a tensor that needs gradients (what ODIN + ASH runs);
* pytorch-ood 0.4.0 (``pytorch_ood.detector.ash``; it has no ASH-RAND), on the (N, C, 1, 1) view
  it expects.

Run: ``.venv/bin/python benchmarks/shaping.py [--device cuda] [--rows 4096] [--units 2048] [--p 90]``.
Each time is the best of ``--repeat`` calls after one warm-up call (which also compiles the numba pass);
beside it, the median of the ratios to a copy timed just before each call, steadier on a shared machine.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from ashlib.methods import shaping

try:
    import pytorch_ood.detector.ash as pood
except ImportError:  # the test extra
    pood = None


def best_ms(fn, repeat: int, device: str) -> float:
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    fn()
    sync()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return 1e3 * min(times)


def ratio_to_copy(fn, copy, repeat: int, device: str) -> tuple[float, float]:
    """(best time in ms, median of the ratios to a copy timed just before each call): on a shared
    machine whose speed drifts, each ratio compares two calls made under the same conditions."""
    ratios, best = [], float("inf")
    for _ in range(repeat):
        c = best_ms(copy, 1, device)
        t = best_ms(fn, 1, device)
        ratios.append(t / c)
        best = min(best, t)
    return best, float(statistics.median(ratios))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--rows", type=int, default=4096)
    parser.add_argument("--units", type=int, default=2048)
    parser.add_argument("--p", type=float, default=90)
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()

    g = torch.Generator().manual_seed(0)
    x = torch.randn(args.rows, args.units, generator=g).relu_().to(args.device)
    grad_x = x.clone().requires_grad_(True)
    p = args.p
    copy = best_ms(lambda: x.clone(), args.repeat, args.device)
    print(f"ASH on a ({args.rows}, {args.units}) ReLU tensor, float32, p = {p:g}, device {args.device}, "
          f"{torch.get_num_threads()} threads")
    print(f"  memory copy (x.clone()): {copy:8.2f} ms")
    print(f"  {'variant':9} {'ours':>9} {'x copy':>7} {'median':>7} {'torch path':>11} {'x copy':>7} "
          f"{'pytorch-ood':>12} {'x copy':>7} {'median':>7} {'ours vs pytorch-ood':>20}")
    for name, fn in shaping.SHAPERS.items():
        ours, ours_ratio = ratio_to_copy(lambda: fn(x, p), lambda: x.clone(), args.repeat, args.device)
        with torch.enable_grad():
            slow = best_ms(lambda: fn(grad_x, p), max(3, args.repeat // 3), args.device)
        peer = getattr(pood, name, None) if pood is not None else None
        theirs, theirs_ratio = (ratio_to_copy(lambda: peer(x[:, :, None, None], p / 100), lambda: x.clone(),
                                              max(3, args.repeat // 3), args.device)
                                if peer is not None else (float("nan"), float("nan")))
        versus = f"{theirs / ours:19.1f}x" if peer is not None else f"{'(none)':>20}"
        print(f"  {name:9} {ours:8.2f}  {ours / copy:6.1f}x {ours_ratio:6.1f}x {slow:10.2f}  {slow / copy:6.1f}x "
              f"{theirs:11.2f}  {theirs / copy:6.1f}x {theirs_ratio:6.1f}x {versus}")
    print("  x copy: best time over the best copy time; median: the median ratio to a copy timed just before "
          "each call")


if __name__ == "__main__":
    main()
