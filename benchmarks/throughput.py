"""Is the accelerator fed? Images per second for JPEG decoding alone and for decoding plus the forward
pass, on a synthetic folder shaped like ImageNet's validation set, with ``num_workers`` 0 and the default.

    python benchmarks/throughput.py                      # CPU, 200 images, ResNet-50
    python benchmarks/throughput.py --device cuda --n 2000 --batch-size 256

Each image is a 500x375 JPEG (quality 90; ImageNet's typical size) of smooth random colour, read through
:class:`ashlib.assets.data.ImageFiles` with the paper's Resize(256)+CenterCrop(224), exactly as a run reads it,
and through :func:`ashlib.assets.features.batches` (worker processes, pinned memory on CUDA). The ratio
``decode+forward / decode`` is near 1 when the network keeps up with decoding (data-bound: add workers)
and well below 1 when the network is the bottleneck (the goal on a GPU is near 1 with enough workers).
Pass ``--throughput`` the decode+forward rate of the default to ``python -m ashlib run --dry-run``.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ashlib.assets.data import IMAGENET_SIZE, ImageFiles  # noqa: E402
from ashlib.assets.features import batches, default_num_workers  # noqa: E402
from ashlib.assets.models import build_model  # noqa: E402


def jpeg_folder(folder: Path, n: int, seed: int = 0) -> list[str]:
    """``n`` 500x375 JPEGs of smooth random colour (compress like photographs, unlike white noise)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    files = []
    for i in range(n):
        small = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
        image = Image.fromarray(small).resize((500, 375), Image.BICUBIC)
        rel = f"n{i % 1000:08d}/ILSVRC2012_val_{i + 1:08d}.JPEG"
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        image.save(folder / rel, format="JPEG", quality=90)
        files.append(rel)
    return files


def rate(data, batch_size: int, workers: int, device: str, model=None) -> float:
    """Images per second over one pass (after one warm-up batch)."""
    seen, start = 0, None
    with torch.no_grad():
        for xb in batches(data, batch_size, workers, device):
            if model is not None:
                out = model(xb.to(device, non_blocking=True))
                if device.startswith("cuda"):
                    torch.cuda.synchronize()
                del out
            if start is None:  # the first batch pays for starting workers and warming up
                start = time.perf_counter()
                continue
            seen += len(xb)
    return seen / (time.perf_counter() - start) if seen else float("nan")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="images in the synthetic folder (default 200)")
    parser.add_argument("--batch-size", type=int, default=25)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--model", default="resnet50", choices=["resnet50", "mobilenet_v2"])
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="ashlib-throughput-") as tmp:
        files = jpeg_folder(Path(tmp), args.n)
        data = ImageFiles(tmp, files, IMAGENET_SIZE, "throughput")
        model = build_model(args.model, 1000).eval().to(args.device)
        if args.device.startswith("cuda"):
            model = model.to(memory_format=torch.channels_last)
        print(f"{args.n} JPEGs 500x375 -> {IMAGENET_SIZE[1]}x{IMAGENET_SIZE[1]}, {args.model} on {args.device}, "
              f"batch {args.batch_size}, {torch.get_num_threads()} torch threads")
        print(f"{'num_workers':>12} {'decode img/s':>14} {'decode+forward img/s':>22} {'ratio':>7}")
        for workers in dict.fromkeys([0, default_num_workers()]):
            decode = rate(data, args.batch_size, workers, args.device)
            both = rate(data, args.batch_size, workers, args.device, model)
            print(f"{workers:>12} {decode:>14.1f} {both:>22.1f} {both / decode:>7.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
