"""How big is the feature cache, and how big would it be at ImageNet scale? Whole layer outputs against
the per-sample reductions that are cached instead (``reduce=`` of :func:`ashlib.assets.features.activations`).

    python benchmarks/cache.py                          # $ASHLIB_CACHE (default ./.cache), sizes, timing
    python benchmarks/cache.py --cache /tmp/c --n 2000  # another cache folder; images for the timing

Prints four things:

1. the cache folder: entries and bytes per kind, the largest entries, the limit ($ASHLIB_CACHE_MAX);
   after ``ASHLIB_CACHE=<empty folder> make book`` it is what one full embedded build caches;
2. per image and per stage, the bytes of the whole output and of its spatial mean (what the MiSP
   chapter's Mahalanobis per layer caches now) for the embedded network (a 28x28 digit) and for
   ResNet-50 (``torchvision.models.resnet50(weights=None)``, one 224x224 image, by forward hooks);
3. the projected footprint of caching every stage for all the images of the imagenet profile
   (train subset, 50,000 validation images, the four OOD sets: :data:`ashlib.book.estimate.PAPER_SIZES`),
   whole outputs before and spatial means after;
4. the time of the Mahalanobis-per-layer features on ``--n`` random images, cold cache: one cached
   whole output per stage, then pooled (before), against one pass pooled batch by batch (after).
"""
from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ashlib.assets import cache  # noqa: E402
from ashlib.book.estimate import PAPER_SIZES  # noqa: E402
from ashlib.assets.features import activations  # noqa: E402
from ashlib.methods.misp import pooled_features  # noqa: E402
from ashlib.assets.models import build_model  # noqa: E402

EMBEDDED_STAGES = ["stem", "layer1", "layer2", "layer3", "layer4", "avgpool"]
RESNET50_STAGES = ["maxpool", "layer1", "layer2", "layer3", "layer4", "avgpool"]  # maxpool: the stem's output
#: Images of one embedded build's benchmark: 4,000 train, 1,000 test, five OOD sets of 1,000.
EMBEDDED_IMAGES = 4000 + 1000 + 5 * 1000


def folder_report(root: Path) -> str:
    """Entries and bytes per kind under ``root``, the five largest entries, the limit."""
    os.environ["ASHLIB_CACHE"] = str(root)
    found = cache.entries()
    lines = [f"cache folder {root}"]
    for kind in dict.fromkeys(e.kind for e in found):
        mine = [e for e in found if e.kind == kind]
        lines.append(f"  {kind:<9} {len(mine):>5} entries  {cache.human(sum(e.size for e in mine)):>10}")
    limit = cache.max_bytes()
    lines.append(f"  {'total':<9} {len(found):>5} entries  {cache.human(sum(e.size for e in found)):>10}   "
                 f"(limit on features: {'none' if limit is None else cache.human(limit)})")
    for e in sorted(found, key=lambda e: -e.size)[:5]:
        lines.append(f"    largest: {cache.human(e.size):>10}  {e.kind}/{e.path.name}")
    return "\n".join(lines)


def per_image_bytes(model, image: torch.Tensor, stages: list[str]) -> dict[str, tuple[int, int]]:
    """``{stage: (whole output bytes, spatial-mean bytes)}`` per image, float32, by forward hooks."""
    shapes = {}
    hooks = [model.get_submodule(s).register_forward_hook(lambda _m, _i, o, s=s: shapes.__setitem__(s, o.shape))
             for s in stages]
    with torch.no_grad():
        model.eval()(image.unsqueeze(0))
    for h in hooks:
        h.remove()
    return {s: (4 * shapes[s][1:].numel(), 4 * shapes[s][1]) for s in stages}


def table(name: str, sizes: dict[str, tuple[int, int]], images: int) -> list[str]:
    lines = [f"{name}: bytes per image (float32) and for {images:,} images",
             f"  {'stage':<9}{'whole':>12}{'mean':>10}{'ratio':>8}{'whole, all':>14}{'mean, all':>12}"]
    for stage, (whole, mean) in sizes.items():
        lines.append(f"  {stage:<9}{cache.human(whole):>12}{cache.human(mean):>10}{whole / mean:>7.0f}x"
                     f"{cache.human(whole * images):>14}{cache.human(mean * images):>12}")
    whole, mean = (sum(v[i] for v in sizes.values()) for i in (0, 1))
    lines.append(f"  {'all':<9}{cache.human(whole):>12}{cache.human(mean):>10}{whole / mean:>7.0f}x"
                 f"{cache.human(whole * images):>14}{cache.human(mean * images):>12}")
    return lines


def timing(n: int, batch_size: int = 256) -> str:
    """Seconds for the Mahalanobis-per-layer features of ``n`` images on a cold cache, before and after."""
    model = build_model("smallresnet_logsoftmax", 10, width=16, seed=0).eval()
    x = torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    stages = EMBEDDED_STAGES[:-1]
    times, sizes = {}, {}
    for how in ("before", "after"):
        with tempfile.TemporaryDirectory() as tmp:
            os.environ["ASHLIB_CACHE"] = tmp
            start = time.perf_counter()
            with contextlib.redirect_stderr(io.StringIO()):  # no progress bars
                if how == "before":  # one pass per stage, its whole output cached, then pooled
                    for s in stages:
                        activations(model, x, [s], batch_size=batch_size, desc=s)[s].mean(dim=(2, 3))
                else:
                    pooled_features(model, x, stages, batch_size=batch_size)
            times[how] = time.perf_counter() - start
            sizes[how] = sum(e.size for e in cache.entries(["features"]))
    return (f"Mahalanobis-per-layer features of {n:,} images (5 stages, width 16), cold cache, CPU threads "
            f"{torch.get_num_threads()}:\n  before {times['before']:.2f} s, cache {cache.human(sizes['before'])}; "
            f"after {times['after']:.2f} s, cache {cache.human(sizes['after'])}; "
            f"time {times['before'] / times['after']:.1f}x faster, "
            f"cache {sizes['before'] / sizes['after']:.0f}x smaller")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", default=os.environ.get("ASHLIB_CACHE", ".cache"), help="cache folder to measure")
    parser.add_argument("--n", type=int, default=2000, help="images for the timing (0: no timing)")
    args = parser.parse_args()
    print(folder_report(Path(args.cache).expanduser()))
    print()

    embedded = per_image_bytes(build_model("smallresnet", 10, width=16), torch.rand(1, 28, 28), EMBEDDED_STAGES)
    print("\n".join(table("embedded smallresnet (width 16), one embedded build", embedded, EMBEDDED_IMAGES)))
    print()
    import torchvision

    resnet = torchvision.models.resnet50(weights=None)
    big = per_image_bytes(resnet, torch.rand(3, 224, 224), RESNET50_STAGES)
    images = sum(PAPER_SIZES["imagenet"].values())
    sets = ", ".join(f"{k} {v:,}" for k, v in PAPER_SIZES["imagenet"].items())
    print("\n".join(table(f"ResNet-50 (224x224), imagenet profile ({sets})", big, images)))
    per_layer1 = big["layer1"][0]
    print(f"  e.g. layer1 alone: {cache.human(per_layer1)} per image, {cache.human(per_layer1 * 50_000)} for the "
          f"50,000 validation images")
    whole, mean = (sum(v[i] for v in big.values()) * images for i in (0, 1))
    print(f"projected ImageNet footprint of every stage: before {cache.human(whole)}, after {cache.human(mean)} "
          f"({whole / mean:.0f}x smaller)")
    if args.n:
        print()
        print(timing(args.n))


if __name__ == "__main__":
    main()
