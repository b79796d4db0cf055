"""A dress rehearsal of a paper-scale profile, on a CPU, before renting a GPU.

:func:`fake_tree` writes, under a temporary cache folder, a small fake copy of every data set a
paper-scale benchmark reads, in the *real* on-disk layout (CIFAR's pickled batches with
``batches.meta``/``meta``, SVHN's ``test_32x32.mat``, the LSUN/iSUN/DTD/Places365 folders as their
archives unpack, the MOS iNaturalist/SUN/Places folders, ImageNet's 1,000 class folders), random
weights in the official key layout (DICE's DenseNet checkpoint, torchvision's ResNet-50 state dict)
under the file names ``data_manifest.yaml`` gives, and a copy of the manifest whose checksums are
those of the fake files (plus the per-file records ``fetch`` writes when it unpacks an archive).

The fake files are in the official *formats* too, written here byte by byte from what those files
hold, never by the loaders and converters they test: CIFAR's batches as Python 2's cPickle wrote them
(protocol 2, byte-string keys, old numpy's ``numpy.core.multiarray._reconstruct``:
:func:`py2_pickle`); SVHN's ``.mat`` with label 10 for digit 0; DICE's DenseNet checkpoint as
``{'epoch': 100, 'state_dict': ...}`` in torch's zip format with every storage tagged ``cuda:0``
(:func:`write_cuda_checkpoint`), its keys from a hand-written list of DICE's ``DenseNet3``
(:func:`dice_densenet_layout`); images of assorted sizes, aspects and modes (:data:`IMAGE_SIZES`,
:data:`ODD_IMAGES`).

:func:`rehearse` then runs the profile's chapters with ``$ASHLIB_CACHE`` and ``$ASHLIB_MANIFEST``
pointing there: the same loaders, checksum checks, weight loading and notebooks as a real run, with
small subsets (:data:`SUBSETS`) so that it finishes in minutes on a CPU. Its ``run.json`` says it was a
rehearsal and the book built from it carries a banner saying so: its numbers mean nothing.
"""
from __future__ import annotations

import io
import pickle
import struct
import zipfile
from collections import OrderedDict
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

#: Files per fake image folder.
N_IMAGES = 16
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
#: (width, height) of a folder's fake images, cycled over its files, as the official sets vary: ODIN's
#: LSUN/iSUN releases small squares, DTD 300 to 640 pixels a side and mostly not square, Places365's
#: test_256 256x256, the MOS sets and ImageNet photos of any shape (ImageNet's kept tiny: 2,000 files).
IMAGE_SIZES = {"lsun_crop": [(36, 36), (32, 32)], "lsun_resize": [(36, 36), (32, 32)], "isun": [(36, 36), (32, 32)],
               "dtd": [(640, 480), (300, 417), (500, 500), (480, 640), (531, 300)],
               "places365_test": [(256, 256)],
               "inaturalist_mos": [(500, 375), (375, 500), (500, 333)],
               "sun_mos": [(400, 300), (300, 400), (512, 384)],
               "places_mos": [(320, 240), (240, 320), (256, 256)],
               "imagenet_val": [(10, 8), (8, 11), (9, 9)], "imagenet_train": [(12, 9), (9, 12), (8, 8)]}
#: Fake files that are not RGB JPEGs, as some official ones are not: (entry, file index) -> (PIL mode,
#: format). Places365 and ImageNet hold greyscale JPEGs; ImageNet's training set 22 CMYK JPEGs and
#: one PNG named ``.JPEG`` (n02105855_2933.JPEG).
ODD_IMAGES = {("places365_test", 2): ("L", "JPEG"), ("places_mos", 5): ("L", "JPEG"),
              ("imagenet_val", 7): ("L", "JPEG"), ("imagenet_train", 3): ("CMYK", "JPEG"),
              ("imagenet_train", 5): ("RGB", "PNG")}
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


def _image(path: Path, rng: np.random.Generator, size: tuple[int, int], mode: str = "RGB",
           fmt: str = "JPEG") -> None:
    """A random image of ``size`` (width, height) in PIL ``mode``, saved as ``fmt`` whatever the name."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    coarse = Image.fromarray(rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)).resize(size, Image.BILINEAR)
    noise = rng.integers(-24, 25, (size[1], size[0], 3))  # texture over a smooth field: small files
    rgb = Image.fromarray(np.clip(np.asarray(coarse, dtype=np.int64) + noise, 0, 255).astype(np.uint8))
    rgb.convert(mode).save(path, format=fmt)


def _fake_images(dest: Path, entry: str, files: list[str], rng: np.random.Generator) -> None:
    """``files`` under ``dest``, of the sizes, modes and formats of :data:`IMAGE_SIZES`, :data:`ODD_IMAGES`."""
    sizes = IMAGE_SIZES[entry]
    for i, rel in enumerate(files):
        mode, fmt = ODD_IMAGES.get((entry, i), ("RGB", "JPEG"))
        _image(dest / rel, rng, sizes[i % len(sizes)], mode, fmt)


# ---------------------------------------------------------------- Python 2 pickles (CIFAR's batches)


def _py2(x) -> bytes:
    """The protocol-2 opcodes Python 2's cPickle writes for ``x``: ``bytes`` is Python 2's ``str``
    (SHORT_BINSTRING/BINSTRING), a 2-d uint8 array is pickled as old numpy pickled it."""
    if isinstance(x, bytes):
        return (b"U" + bytes([len(x)]) if len(x) < 256 else b"T" + struct.pack("<I", len(x))) + x
    if x is None:
        return b"N"
    if isinstance(x, bool):
        return b"\x88" if x else b"\x89"
    if isinstance(x, (int, np.integer)):
        x = int(x)
        return b"K" + bytes([x]) if 0 <= x < 256 else b"M" + struct.pack("<H", x) if 0 <= x < 65536 \
            else b"J" + struct.pack("<i", x)
    if isinstance(x, list):
        return b"](" + b"".join(map(_py2, x)) + b"e"
    if isinstance(x, tuple):
        return b"(" + b"".join(map(_py2, x)) + b"t"
    if isinstance(x, dict):
        return b"}(" + b"".join(_py2(k) + _py2(v) for k, v in x.items()) + b"u"
    if isinstance(x, np.ndarray) and x.dtype == np.uint8:
        return _py2_array(x)
    raise TypeError(f"a Python 2 pickle of {type(x).__name__} is not written here (text must be bytes: "
                    "Python 2's str).")


def _py2_array(a: np.ndarray) -> bytes:
    """A uint8 array as numpy 1.x under Python 2 pickled it: ``_reconstruct(ndarray, (0,), 'b')``, then
    the state (1, shape, dtype('u1'), False, raw bytes)."""
    dtype = b"cnumpy\ndtype\n" + _py2((b"u1", 0, 1)) + b"R" + _py2((3, b"|", None, None, None, -1, -1, 0)) + b"b"
    return (b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\n" + _py2((0,)) + _py2(b"b") + b"\x87R"
            + b"(" + _py2(1) + _py2(tuple(a.shape)) + dtype + _py2(False)
            + _py2(np.ascontiguousarray(a).tobytes()) + b"tb")


def py2_pickle(obj) -> bytes:
    """``obj`` (dicts, lists, tuples of bytes, ints, None, bools and uint8 arrays) as the bytes of a
    Python 2 cPickle file, protocol 2, like CIFAR's official batches: loaded in Python 3 only with
    ``encoding="latin1"`` (byte strings -> str) or ``encoding="bytes"``."""
    return b"\x80\x02" + _py2(obj) + b"."


def _pickle(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(py2_pickle(obj))


def _fake_cifar(folder: Path, benchmark: str, rng: np.random.Generator) -> None:
    classes = 10 if benchmark == "cifar10" else 100

    def batch(n: int, start: int, label: str):
        labels = [int(c) for c in rng.permutation(np.arange(start, start + n) % classes)]  # balanced, shuffled
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        names = [f"fake_s_{start + j:06d}.png".encode() for j in range(n)]
        if benchmark == "cifar10":
            return {b"batch_label": label.encode(), b"labels": labels, b"data": data, b"filenames": names}
        return {b"filenames": names, b"batch_label": label.encode(), b"fine_labels": labels,
                b"coarse_labels": [c // 5 for c in labels], b"data": data}

    if benchmark == "cifar10":
        per = CIFAR_TRAIN // 5
        for i in range(1, 6):
            _pickle(folder / f"data_batch_{i}", batch(per, (i - 1) * per, f"training batch {i} of 5"))
        _pickle(folder / "test_batch", batch(CIFAR_TEST, 0, "testing batch 1 of 1"))
        _pickle(folder / "batches.meta", {b"num_cases_per_batch": per, b"num_vis": 3072,
                                          b"label_names": [f"class{c}".encode() for c in range(10)]})
    else:
        _pickle(folder / "train", batch(CIFAR_TRAIN, 0, "training batch 1 of 1"))
        _pickle(folder / "test", batch(CIFAR_TEST, 0, "testing batch 1 of 1"))
        _pickle(folder / "meta", {b"fine_label_names": [f"class{c}".encode() for c in range(100)],
                                  b"coarse_label_names": [f"super{c}".encode() for c in range(20)]})
    (folder / "readme.html").write_text("<p>fake CIFAR for an ashlib rehearsal</p>\n")


def _fake_svhn(path: Path, rng: np.random.Generator) -> None:
    import scipy.io

    labels = np.tile(np.arange(1, 11), SVHN_PER_DIGIT)  # the file's labels: 1..10, 10 meaning digit 0
    path.parent.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(path, {"X": rng.integers(0, 256, (32, 32, 3, len(labels)), dtype=np.uint8),
                            "y": labels[:, None].astype(np.uint8)}, format="5", do_compression=True)


def _fake_imagenet(folder: Path, split: str, rng: np.random.Generator) -> None:
    from ashlib.assets.data import IMAGENET_NUM_CLASSES

    files = [f"n{c:08d}/" + (f"ILSVRC2012_val_{c + 1:08d}.JPEG" if split == "val" else f"n{c:08d}_{c}.JPEG")
             for c in range(IMAGENET_NUM_CLASSES)]
    _fake_images(folder, f"imagenet_{split}", files, rng)


def _md5(path: Path) -> str:
    return pooch.file_hash(str(path), alg="md5")


def _sha256(path: Path) -> str:
    return pooch.file_hash(str(path), alg="sha256")


# ------------------------------------------------------------------- DICE's DenseNet checkpoint


def _bn(prefix: str, channels: int) -> list[tuple[str, tuple[int, ...]]]:
    return [(f"{prefix}.{k}", (channels,)) for k in ("weight", "bias", "running_mean", "running_var")] \
        + [(f"{prefix}.num_batches_tracked", ())]


def dice_densenet_layout(num_classes: int) -> list[tuple[str, tuple[int, ...]]]:
    """(key, shape) of every tensor of DICE's checkpoints, in their order: the state dict of
    ``DenseNet3(100, num_classes)`` of DICE's ``models/densenet.py`` (growth 12; three ``DenseBlock``s
    of 16 ``BottleneckBlock``s, each ``bn1, conv1`` (1x1 to 48) ``, bn2, conv2`` (3x3 to 12); the
    ``TransitionBlock``s ``bn1, conv1`` halve the channels; then ``bn1`` and ``fc``). Written out from
    that file, not from ashlib's converter (:func:`ashlib.assets.models.densenet_from_official`)."""
    growth, layers, channels = 12, 16, 24
    out = [("conv1.weight", (channels, 3, 3, 3))]
    for b in (1, 2, 3):
        for i in range(layers):
            p, c = f"block{b}.layer.{i}", channels + i * growth
            out += [*_bn(f"{p}.bn1", c), (f"{p}.conv1.weight", (4 * growth, c, 1, 1)),
                    *_bn(f"{p}.bn2", 4 * growth), (f"{p}.conv2.weight", (growth, 4 * growth, 3, 3))]
        channels += layers * growth
        if b < 3:
            out += [*_bn(f"trans{b}.bn1", channels), (f"trans{b}.conv1.weight", (channels // 2, channels, 1, 1))]
            channels //= 2
    return out + [*_bn("bn1", channels), ("fc.weight", (num_classes, channels)), ("fc.bias", (num_classes,))]


def _random_value(key: str, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """A trained-looking random value: He-normal convolutions, BatchNorm at its initial statistics."""
    if key.endswith("num_batches_tracked"):
        return np.array(78_200, dtype=np.int64)  # 100 epochs of 782 batches of 64, as DICE's files say
    if len(shape) == 4:
        return rng.normal(0, np.sqrt(2 / (shape[0] * shape[2] * shape[3])), shape).astype(np.float32)
    if key == "fc.weight":
        return rng.uniform(-1, 1, shape).astype(np.float32) / np.float32(np.sqrt(shape[1]))
    ones = key.endswith(("running_var", "weight"))
    return np.full(shape, 1.0 if ones else 0.0, dtype=np.float32)


class _Storage:
    """A tensor's storage as torch's zip format references it: ``archive/data/<key>``."""

    kinds = {np.dtype(np.float32): "FloatStorage", np.dtype(np.int64): "LongStorage"}

    def __init__(self, key: str, array: np.ndarray):
        self.key, self.array = key, np.array(array, order="C")  # a 0-d array stays 0-d


class _Tensor:
    """Pickled as torch pickles a contiguous tensor: ``torch._utils._rebuild_tensor_v2``."""

    def __init__(self, storage: _Storage):
        self.storage = storage

    def __reduce__(self):
        a = self.storage.array
        stride = tuple(s // a.itemsize for s in a.strides)
        return torch._utils._rebuild_tensor_v2, (self.storage, 0, a.shape, stride, False, OrderedDict())


def write_cuda_checkpoint(path: Path, obj, location: str = "cuda:0") -> None:
    """``obj`` (dicts and ints, with :class:`_Tensor` values) in torch's zip checkpoint format, every
    storage tagged ``location``, as ``torch.save`` writes tensors living there: ``torch.load`` on a
    machine without that device then needs ``map_location``, as with DICE's real files."""
    storages: list[_Storage] = []

    class Pickler(pickle.Pickler):
        def persistent_id(self, x):
            if not isinstance(x, _Storage):
                return None
            storages.append(x)
            return "storage", getattr(torch, _Storage.kinds[x.array.dtype]), x.key, location, x.array.size

    buf = io.BytesIO()
    Pickler(buf, protocol=2).dump(obj)
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        z.writestr("archive/data.pkl", buf.getvalue())
        for st in storages:
            z.writestr(f"archive/data/{st.key}", st.array.astype(st.array.dtype.newbyteorder("<")).tobytes())
        z.writestr("archive/version", "3\n")


def _dice_checkpoint(path: Path, num_classes: int, rng: np.random.Generator) -> None:
    """Random weights as DICE's ``checkpoint_100.pth.tar``: ``{'epoch': 100, 'state_dict': ...}``, on ``cuda:0``."""
    state = OrderedDict((key, _Tensor(_Storage(str(i), _random_value(key, shape, rng))))
                        for i, (key, shape) in enumerate(dice_densenet_layout(num_classes)))
    write_cuda_checkpoint(path, {"epoch": 100, "state_dict": state})


def fake_weights(benchmark: str, folder: Path, seed: int = 0) -> tuple[str, Path]:
    """Random weights of the benchmark's network in the official format, saved in ``folder`` under the
    manifest's file name; returns (weights entry name, path). The DenseNet: DICE's checkpoint
    (:func:`_dice_checkpoint`); the ResNet-50: torchvision's own state dict."""
    model, entry_name = WEIGHTS[benchmark]
    entry = {e["name"]: e for e in manifest()["weights"]}[entry_name]
    path = Path(folder) / entry["file"]
    path.parent.mkdir(parents=True, exist_ok=True)
    if model == "densenet100":
        _dice_checkpoint(path, 10 if benchmark == "cifar10" else 100, np.random.default_rng(seed))
    else:
        import torchvision

        torch.manual_seed(seed)
        torch.save(torchvision.models.resnet50().state_dict(), path)  # torchvision's own keys and init
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
            _fake_images(dest, name, FOLDER_FILES[name], rng)
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
