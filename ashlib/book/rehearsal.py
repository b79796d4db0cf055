"""A dress rehearsal of a paper-scale profile, on a CPU, before renting a GPU.

:func:`fake_tree` writes, under a temporary cache folder, a small fake copy of every data set a
paper-scale benchmark reads, in the *real* on-disk layout (CIFAR's pickled batches with
``batches.meta``/``meta``, SVHN's ``test_32x32.mat``, the LSUN/iSUN/DTD/Places365 folders as their
archives unpack, the MOS iNaturalist/SUN/Places folders, ImageNet's 1,000 class folders), random
weights in the official key layout (DICE's DenseNet checkpoint, torchvision's ResNet-50 state dict)
under the file names ``data_manifest.yaml`` gives, and a copy of the manifest whose checksums are
those of the fake files (plus the per-file records ``fetch`` writes when it unpacks an archive).

:func:`rehearse` then runs the profile's chapters with ``$ASHLIB_CACHE`` and ``$ASHLIB_MANIFEST``
pointing there: the same loaders, checksum checks, weight loading and notebooks as a real run, with
small subsets (:data:`SUBSETS`) so that it finishes in minutes on a CPU. Its ``run.json`` says it was a
rehearsal and the book built from it carries a banner saying so: its numbers mean nothing.
"""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pooch
import torch
import yaml

from ashlib._checks import ParameterError, check_choice
from ashlib.assets.data import CIFAR_OOD_SETS, IMAGENET_OOD_SETS, PAPER_BENCHMARKS, manifest

#: Notebook parameters of a rehearsal, per benchmark: small class-balanced subsets (the train subset
#: covers every class, as the per-class statistics need), a small batch; ImageNet's ResNet-50 runs at
#: about 5 images/s on two CPU cores, so its rehearsal also sweeps one percentile only. Mahalanobis'
#: validation set (official: 1,000 images and their FGSM examples) shrinks with them.
SUBSETS = {"cifar10": {"n_train": 200, "n_test": 100, "n_ood": 12, "batch_size": 50, "mahalanobis_n_val": 100},
           "cifar100": {"n_train": 200, "n_test": 100, "n_ood": 12, "batch_size": 50, "mahalanobis_n_val": 100},
           "imagenet": {"n_train": 1000, "n_test": 10, "n_ood": 4, "batch_size": 25, "accuracy_sweep": [90],
                        "mahalanobis_n_val": 20}}
BANNER = ("Rehearsal: random weights and fake data in the real layout. This book shows that every "
          "chapter runs on this benchmark; its numbers mean nothing.")

#: Files per fake image folder, and their side in pixels (small: the loaders resize them anyway).
N_IMAGES, SIDE = 16, 40
FOLDER_FILES = {  # manifest entry -> relative paths under its target, as the real archives unpack
    "lsun_crop": [f"test/{i}.jpg" for i in range(N_IMAGES)],
    "lsun_resize": [f"LSUN_resize/{i}.jpg" for i in range(N_IMAGES)],
    "isun": [f"iSUN_patches/COCO_train2014_{i:012d}.jpeg" for i in range(N_IMAGES)],
    "dtd": [f"{c}/{c}_{i:04d}.jpg" for c in ("banded", "zigzagged") for i in range(N_IMAGES // 2)],
    "places365_test": [f"test_256/Places365_test_{i:08d}.jpg" for i in range(1, N_IMAGES + 1)],
    "inaturalist_mos": [f"images/{i:032x}.jpg" for i in range(N_IMAGES)],
    "sun_mos": [f"images/sun_{i:08d}.jpg" for i in range(N_IMAGES)],
    "places_mos": [f"images/b_{i:08d}.jpg" for i in range(N_IMAGES)],
}
CIFAR_TRAIN, CIFAR_TEST, SVHN_PER_DIGIT = 500, 200, 3  # fake images per file set
WEIGHTS = {"cifar10": ("densenet100", "densenet100_cifar10_dice"),
           "cifar100": ("densenet100", "densenet100_cifar100_dice"),
           "imagenet": ("resnet50", "resnet50_imagenet1k_v1")}


def entries_for(benchmark: str) -> list[str]:
    """The data-set entries of ``data_manifest.yaml`` a paper-scale benchmark reads."""
    check_choice("benchmark", benchmark, PAPER_BENCHMARKS)
    if benchmark == "imagenet":
        return ["imagenet_val", "imagenet_train", *IMAGENET_OOD_SETS.values()]
    return [benchmark, *CIFAR_OOD_SETS.values()]


def _jpeg(path: Path, rng: np.random.Generator, side: int = SIDE) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, (side, side + 4, 3), dtype=np.uint8)).save(path, format="JPEG")


def _pickle(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(obj, protocol=2))


def _fake_cifar(folder: Path, benchmark: str, rng: np.random.Generator) -> None:
    classes = 10 if benchmark == "cifar10" else 100

    def batch(n: int, start: int):
        labels = [(start + j) % classes for j in range(n)]
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        if benchmark == "cifar10":
            return {"batch_label": "fake", "labels": labels, "data": data,
                    "filenames": [f"fake_{start + j}.png" for j in range(n)]}
        return {"filenames": [f"fake_{start + j}.png" for j in range(n)], "batch_label": "fake",
                "fine_labels": labels, "coarse_labels": [c // 5 for c in labels], "data": data}

    if benchmark == "cifar10":
        per = CIFAR_TRAIN // 5
        for i in range(1, 6):
            _pickle(folder / f"data_batch_{i}", batch(per, (i - 1) * per))
        _pickle(folder / "test_batch", batch(CIFAR_TEST, 0))
        _pickle(folder / "batches.meta", {"label_names": [f"class{c}" for c in range(10)],
                                          "num_cases_per_batch": per, "num_vis": 3072})
    else:
        _pickle(folder / "train", batch(CIFAR_TRAIN, 0))
        _pickle(folder / "test", batch(CIFAR_TEST, 0))
        _pickle(folder / "meta", {"fine_label_names": [f"class{c}" for c in range(100)],
                                  "coarse_label_names": [f"super{c}" for c in range(20)]})
    (folder / "readme.html").write_text("<p>fake CIFAR for an ashlib rehearsal</p>\n")


def _fake_svhn(path: Path, rng: np.random.Generator) -> None:
    import scipy.io

    labels = np.tile(np.arange(1, 11), SVHN_PER_DIGIT)  # the file's labels: 1..10, 10 meaning digit 0
    path.parent.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(path, {"X": rng.integers(0, 256, (32, 32, 3, len(labels)), dtype=np.uint8),
                            "y": labels[:, None].astype(np.uint8)})


def _fake_imagenet(folder: Path, split: str, rng: np.random.Generator) -> None:
    from ashlib.assets.data import IMAGENET_NUM_CLASSES

    for c in range(IMAGENET_NUM_CLASSES):
        wnid = f"n{c:08d}"
        name = f"ILSVRC2012_val_{c + 1:08d}.JPEG" if split == "val" else f"{wnid}_{c}.JPEG"
        _jpeg(folder / wnid / name, rng, side=8)


def _md5(path: Path) -> str:
    return pooch.file_hash(str(path), alg="md5")


def _sha256(path: Path) -> str:
    return pooch.file_hash(str(path), alg="sha256")


def fake_weights(benchmark: str, folder: Path, seed: int = 0) -> tuple[str, Path]:
    """Random weights of the benchmark's network in the official key layout, saved in ``folder`` under
    the manifest's file name; returns (weights entry name, path)."""
    from ashlib.assets.models import build_model, densenet_to_official

    model, entry_name = WEIGHTS[benchmark]
    entry = {e["name"]: e for e in manifest()["weights"]}[entry_name]
    torch.manual_seed(seed)
    if model == "densenet100":
        state = {"state_dict": densenet_to_official(build_model(model, 10 if benchmark == "cifar10" else 100)
                                                    .state_dict())}  # DICE's checkpoint layout
    else:
        import torchvision

        state = torchvision.models.resnet50().state_dict()  # torchvision's own keys and init
    path = Path(folder) / entry["file"]
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return entry_name, path


def record_checksums(root: str | Path, out: str | Path, doc: dict | None = None, names=None) -> Path:
    """Write to ``out`` a copy of the manifest (``doc``, default the current one) whose data-set entries
    found under ``root`` (or only ``names``) carry the checksums of the files there: ``contents_md5``
    for CIFAR, the file's md5/sha256 for SVHN, and the record ``fetch`` writes for unpacked folders
    (``.<target>.contents.json``). Point ``$ASHLIB_MANIFEST`` at ``out`` to load those files."""
    from ashlib.assets.fetch import _record_contents

    root, doc = Path(root), doc or manifest()
    for e in doc["datasets"]:
        dest = root / e["target"] if e.get("target") else None
        if (names is not None and e["name"] not in names) or dest is None or not dest.exists() \
                or e.get("kind") not in ("download", "manual") or e["name"].startswith("fmnist"):
            continue
        if e.get("contents_md5"):
            e["contents_md5"] = {f: _md5(dest / f) for f in e["contents_md5"] if (dest / f).is_file()}
        elif e.get("unpack", "none") == "none" and e.get("kind") == "download":
            e.update(md5=_md5(dest), sha256=_sha256(dest), size=dest.stat().st_size)
        else:
            _record_contents(e, dest)
    out = Path(out)
    out.write_text("# A manifest with the checksums of local test files (ashlib.book.rehearsal).\n"
                   + yaml.safe_dump(doc, sort_keys=False))
    return out


def fake_tree(benchmark: str, cache: str | Path, seed: int = 0) -> Path:
    """Write the fake data (``<cache>/data``) and weights (``<cache>/weights``) of a paper-scale benchmark
    and a manifest with their checksums (``<cache>/data_manifest.yaml``, returned); module docstring."""
    cache = Path(cache)
    root = cache / "data"
    rng = np.random.default_rng(seed)
    doc = manifest()
    by_name = {e["name"]: e for e in doc["datasets"]}
    names = entries_for(benchmark)
    for name in names:
        e = by_name[name]
        dest = root / e["target"]
        if name in ("cifar10", "cifar100"):
            _fake_cifar(dest, name, rng)
        elif name == "svhn_test":
            _fake_svhn(dest, rng)
        elif name in ("imagenet_val", "imagenet_train"):
            _fake_imagenet(dest, name.split("_")[1], rng)
        else:
            for rel in FOLDER_FILES[name]:
                _jpeg(dest / rel, rng)
        e["title"] = f"{e['title']} [FAKE: ashlib rehearsal]"
    entry_name, path = fake_weights(benchmark, cache / "weights", seed)
    w = {e["name"]: e for e in doc["weights"]}[entry_name]
    w.update(sha256=_sha256(path), sha256_prefix=None, size=path.stat().st_size,
             title=f"{w['title']} [FAKE: random weights for an ashlib rehearsal]")
    return record_checksums(root, cache / "data_manifest.yaml", doc, names)


def rehearsal_profile(profile: str) -> str:
    """The benchmark of a paper-scale ``profile``; a ParameterError for any other profile."""
    from ashlib.book.params import load_profile, profiles

    check_choice("profile", profile, profiles())
    bench = (load_profile(profile)["defaults"] or {}).get("benchmark", "mnist5k")
    if bench not in PAPER_BENCHMARKS:
        raise ParameterError(f"profile={profile!r} is not allowed with --rehearse: its benchmark {bench!r} "
                             f"is not a paper-scale one; expected a profile of {', '.join(PAPER_BENCHMARKS)}.")
    return bench


def rehearse(profile: str, notebooks: list[str] | None = None, out: str | Path | None = None,
             overrides: dict | None = None, workdir: str | Path | None = None, echo=print) -> Path:
    """Run ``profile`` (a paper-scale one) on fake data and random weights, on the CPU, into ``out``
    (default ``runs/<profile>-rehearsal``). The fake tree, and the kernels' cache, live in
    ``<workdir>/cache`` (default workdir ``$ASHLIB_CACHE/rehearsals/<profile>``; its path is printed); a
    tree written before is used as it is (a rerun is faster; a damaged file is found by the checks)."""
    from ashlib.book.params import load_profile
    from ashlib.book.pipeline import ROOT, declared_parameters, notebook_names, run

    bench = rehearsal_profile(profile)
    from ashlib import cache_dir

    work = Path(workdir) if workdir else cache_dir("rehearsals") / profile
    cache = work / "cache"
    manifest_file = cache / "data_manifest.yaml"
    if manifest_file.is_file():  # a tree written before (rerun, or damaged on purpose): used as it is
        echo(f"rehearsal of {profile!r}: using the fake data and weights under {cache}", flush=True)
    else:
        echo(f"rehearsal of {profile!r}: writing fake {bench} data and random weights under {cache}", flush=True)
        manifest_file = fake_tree(bench, cache)
    env = {"ASHLIB_CACHE": str(cache), "ASHLIB_MANIFEST": str(manifest_file)}
    # only the subsets the run's chapters declare (05_nac alone has no accuracy_sweep); bad names fail in run
    names = [n for n in notebooks or list(load_profile(profile)["notebooks"]) or notebook_names()
             if n in notebook_names()]
    declared = set().union(*(declared_parameters(n) for n in names))
    subsets = {k: v for k, v in SUBSETS[bench].items() if k in declared}
    return run(profile, notebooks, out or ROOT / "runs" / f"{profile}-rehearsal", "cpu",
               {**subsets, **(overrides or {})}, echo=echo, environment=env,
               rehearsal={"banner": BANNER, "benchmark": bench})
