"""What a run will read, compute and write, before it starts: ``python -m ashlib run --dry-run``.

For each chapter of a profile: the images of every set (the paper's sizes, or the run's ``n_train``,
``n_test``, ``n_ood``), the network and the layers whose outputs are cached or streamed, the bytes the
feature cache will hold, the memory a chapter holds at most, and an estimated time:
image passes through the network divided by a throughput (images per second, decoding included), the
figure ``benchmarks/throughput.py`` prints on the target machine (``--throughput``).

The model of the work mirrors the code: every ASH chapter reads the penultimate features of every set
(computed once, then cached); each chapter's own work is its module's ``cost`` (:mod:`ashlib.book.chapters`): ``01_methods`` adds ODIN (a forward, a backward and a second forward per
image); ``02_placements`` shapes inner layers: a method whose replay layer output over a set fits
:attr:`ashlib.evaluation.experiments.Context.replay_limit` is replayed from that output, computed once per set
and held in memory (never written to the disk cache), otherwise it streams the images through the whole network, one pass per method; ``03`` and ``04``
work on the cached features only. Times are estimates, not promises: decoding, disk and other jobs
on the machine move them.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ashlib._checks import ParameterError
from ashlib.assets.data import IMAGENET_N_TRAIN, PAPER_BENCHMARKS
from ashlib.evaluation.experiments import Context

#: The sets of each paper-scale benchmark at the paper's sizes (paper Table 1; DICE's and MOS's subsets).
PAPER_SIZES = {
    "cifar10": {"train": 50_000, "test": 10_000, "SVHN": 10_000, "LSUN-C": 10_000, "LSUN-R": 10_000,
                "iSUN": 8_925, "Textures": 5_640, "Places365": 10_000},
    "imagenet": {"train": IMAGENET_N_TRAIN, "test": 50_000, "iNaturalist": 10_000, "SUN": 10_000,
                 "Places": 10_000, "Textures": 5_640},
}
PAPER_SIZES["cifar100"] = PAPER_SIZES["cifar10"]
INPUT = {"cifar10": (3, 32, 32), "cifar100": (3, 32, 32), "imagenet": (3, 224, 224)}
CLASSES = {"cifar10": 10, "cifar100": 100, "imagenet": 1000}
#: Assumed images per second (decoding + forward) on one current GPU when --throughput is not given.
ASSUMED_THROUGHPUT = {"cifar10": 8000.0, "cifar100": 8000.0, "imagenet": 1500.0}
ODIN_PASSES = 3  # forward, backward (about one more), forward again on the perturbed input
DISK_GIB, MEMORY_GIB = 64, 128  # the lent GPU machine: its disk and host memory
DATA_ROOM = {"imagenet": "ImageNet's validation set is 6.3 GiB, the 10-per-class train subset about 1.1 GiB "
                         "(fetch imagenet_train --subset-from), the OOD sets a few GiB",
             "cifar10": "the CIFAR and OOD archives of data_manifest.yaml, Places365's test set the largest",
             "cifar100": "the CIFAR and OOD archives of data_manifest.yaml, Places365's test set the largest"}


@dataclass
class Chapter:
    name: str
    passes: float  # image passes through the whole network (upper bound for replays)
    cache_bytes: int  # bytes this chapter adds to the feature cache
    peak_bytes: int  # what it holds in memory at most: every set's features and every replayed output
    notes: list[str]


@dataclass
class Work:
    """What a chapter's ``cost(params, work)`` reads (:mod:`ashlib.book.chapters`): the benchmark, the images
    of each set, the network (built, random weights) with its stages and the layers a replay starts from,
    the values per image at those layers, and the replay limit; it returns (image passes, bytes held in
    memory besides the features, notes)."""

    benchmark: str
    n: dict
    test_and_ood: int
    every: int
    model: torch.nn.Module
    stages: list
    starts: dict
    numel: dict
    limit: int
    first: dict  # the first chapter's parameters (its model)


def sizes(benchmark: str, params: dict) -> dict[str, int]:
    """Images per set for a run with these parameters (``n_train``, ``n_test``, ``n_ood``)."""
    base = dict(PAPER_SIZES[benchmark])
    if params.get("n_train"):
        base["train"] = params["n_train"]
    if params.get("n_test"):
        base["test"] = min(base["test"], params["n_test"])
    if params.get("n_ood"):
        base = {k: (min(v, params["n_ood"]) if k not in ("train", "test") else v) for k, v in base.items()}
    return base


def gib(n: float) -> str:
    """Bytes as GiB, one decimal."""
    return f"{n / 2**30:,.1f} GiB"


def chapters(profile: str, notebooks=None, overrides=None) -> tuple[str, dict, list[Chapter]]:
    """(benchmark, set sizes, the estimated work of each chapter) for a paper-scale ``profile``."""
    from ashlib.assets.features import output_numels, replay_start
    from ashlib.assets.models import block_merge_layers, build_model, model_for
    from ashlib.book.chapters import chapter as chapter_module
    from ashlib.book.pipeline import notebook_defaults, plan

    plans = plan(profile, notebooks, "cpu", overrides, check=False)
    first = next(iter(plans.values()))
    bench = first.get("benchmark", "mnist5k")
    if bench not in PAPER_BENCHMARKS:
        raise ParameterError(f"profile={profile!r} is not allowed with --dry-run: its benchmark {bench!r} "
                             "builds on a CPU in minutes; expected a paper-scale profile.")
    n = sizes(bench, first)
    test_and_ood = sum(v for k, v in n.items() if k != "train")
    every = sum(n.values())
    model = build_model(model_for(bench, first.get("model")), CLASSES[bench])
    stages = [*block_merge_layers(model), "avgpool"]
    placements = {p for params in plans.values() for p in params.get("placements") or stages}
    starts = {p: replay_start(model, [p]) for p in placements if p != "avgpool"}
    numel = output_numels(model, torch.zeros(INPUT[bench]), ["avgpool", *starts.values()])
    limit = Context.__dataclass_fields__["replay_limit"].default
    features = 4 * numel["avgpool"] * every
    work = Work(bench, n, test_and_ood, every, model, stages, starts, numel, limit, first)
    out = []
    for i, (name, params) in enumerate(plans.items()):
        params = {**notebook_defaults(name), **params}
        notes, passes, cache, peak = [], 0.0, 0, features  # the features of every set stay in memory
        if i == 0:  # the first chapter computes them; the others read the cache
            passes += every
            cache += features
            notes.append(f"penultimate features of {every:,} images ({numel['avgpool']:,} values each), cached")
        own = getattr(chapter_module(name), "cost", None)  # the chapter's own work, where it has any
        if own is not None:
            more_passes, more_peak, more_notes = own(params, work)
            passes, peak, notes = passes + more_passes, peak + more_peak, notes + more_notes
        out.append(Chapter(name, passes, cache, peak, notes))
    return bench, n, out


def report(profile: str, notebooks=None, overrides=None, throughput: float | None = None) -> str:
    """The dry run's text: per chapter, what it reads, caches and costs; then the peaks and the total."""
    bench, n, work = chapters(profile, notebooks, overrides)
    rate = throughput or ASSUMED_THROUGHPUT[bench]
    source = "measured (--throughput)" if throughput else "assumed; measure it with benchmarks/throughput.py"
    lines = [f"Dry run of profile {profile!r} ({bench}); nothing is executed.",
             "Images per set: " + ", ".join(f"{k} {v:,}" for k, v in n.items()),
             f"Throughput: {rate:,.0f} images/s ({source})", ""]
    total_cache = peak = seconds = 0
    for ch in work:
        t = ch.passes / rate
        seconds += t
        total_cache += ch.cache_bytes
        peak = max(peak, ch.peak_bytes)
        lines.append(f"{ch.name}: {ch.passes:,.0f} image passes, about {t / 60:,.1f} min; cache +{gib(ch.cache_bytes)}; "
                     f"memory held up to {gib(ch.peak_bytes)}")
        lines += [f"    {note}" for note in ch.notes]
    lines += ["", f"Feature cache written: {gib(total_cache)} (peak disk besides the data sets); "
                  f"peak memory held by one chapter: {gib(peak)}; estimated time: "
                  + (f"{seconds / 3600:,.1f} h." if seconds >= 3600 else f"{seconds / 60:,.1f} min."),
              f"Fits a machine with {DISK_GIB} GiB of disk and {MEMORY_GIB} GiB of memory: "
              + ("yes" if total_cache < 0.5 * DISK_GIB * 2**30 and 2 * peak < MEMORY_GIB * 2**30 else "NO")
              + " (the data sets need their own room besides: " + DATA_ROOM[bench] + ")."]
    return "\n".join(lines)
