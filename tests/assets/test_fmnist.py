"""The fmnist benchmark on a small local copy of Fashion-MNIST: IDX files made here, a manifest whose
checksums are computed here (the real manifest's entries otherwise, so the layout is the real one)."""
from __future__ import annotations

import gzip
import hashlib
import struct

import numpy as np
import pytest
import torch
import yaml

import ashlib.assets.data as data
from ashlib import ParameterError
from ashlib.assets.data import FMNIST_FILES, ChecksumError, DataNotFoundError, load_benchmark, read_idx


def _idx(array: np.ndarray) -> bytes:
    """IDX bytes (LeCun's format) of a uint8 array, written independently of ashlib.assets.data."""
    return struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def _small_copy(folder, n_train=60, n_test=30, seed=0):
    """Four gzipped IDX files shaped like Fashion-MNIST's, 10 balanced classes; returns their content."""
    rng = np.random.default_rng(seed)
    contents = {}
    for split, n in (("train", n_train), ("test", n_test)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = (np.arange(n) % 10).astype(np.uint8)
        contents[f"fmnist_{split}_images"], contents[f"fmnist_{split}_labels"] = _idx(images), _idx(labels)
    folder.mkdir(parents=True, exist_ok=True)
    real = {e["name"]: e for e in data.manifest()["datasets"]}
    for key, raw in contents.items():
        (folder / real[key]["file"]).write_bytes(gzip.compress(raw))
    return contents


@pytest.fixture
def local_fmnist(tmp_path, monkeypatch):
    """A data root holding a small Fashion-MNIST, and the real manifest with its checksums replaced by
    this copy's (content_sha256: the decompressed bytes), system copies pointing into ``tmp_path``."""
    root = tmp_path / "root"
    contents = _small_copy(root / "fashion-mnist")
    m = data.manifest()
    for e in m["datasets"]:
        if e["name"] in FMNIST_FILES:
            e["content_sha256"] = hashlib.sha256(contents[e["name"]]).hexdigest()
            e["system_paths"] = [str(tmp_path / "system" / e["file"])]
    path = tmp_path / "manifest.yaml"
    path.write_text(yaml.safe_dump(m), encoding="utf-8")
    monkeypatch.setattr(data, "manifest_path", lambda: path)
    return root, contents


def test_read_idx_reads_what_an_independent_writer_wrote(tmp_path):
    a = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    (tmp_path / "a.idx").write_bytes(_idx(a))
    (tmp_path / "a.idx.gz").write_bytes(gzip.compress(_idx(a)))
    np.testing.assert_array_equal(read_idx(tmp_path / "a.idx"), a)
    np.testing.assert_array_equal(read_idx(tmp_path / "a.idx.gz"), a)
    (tmp_path / "bad").write_bytes(_idx(a)[:-3])
    with pytest.raises(ValueError, match="IDX header says"):
        read_idx(tmp_path / "bad")


def test_loads_a_small_copy_checked_by_content(local_fmnist):
    root, contents = local_fmnist
    b = load_benchmark("fmnist", root=root, n_train=20, n_test=10, n_ood=7)
    assert b.name == "fmnist" and b.preprocessing == "raw" and b.num_classes == 10
    assert list(b.ood) == ["digits", "letters", "faces", "photos", "textures", "noise"]
    assert b.sanity == ["noise"] and b.kinds["digits"] == "digits"
    assert b.x_train.shape == (20, 1, 28, 28) and b.x_test.shape == (10, 1, 28, 28)
    assert torch.bincount(b.y_train, minlength=10).tolist() == [2] * 10
    assert torch.bincount(b.y_test, minlength=10).tolist() == [1] * 10
    train = np.frombuffer(contents["fmnist_train_images"], np.uint8, offset=16).reshape(-1, 28, 28)
    rows = {r.tobytes() for r in (train / np.float32(255)).astype(np.float32).reshape(len(train), -1)}
    assert all(r.tobytes() in rows for r in b.x_train.reshape(20, -1).numpy())  # images / 255, unchanged
    assert all(len(x) == 7 for x in b.ood.values())
    again = load_benchmark("fmnist", root=root, n_train=20, n_test=10, n_ood=7)
    assert torch.equal(again.x_train, b.x_train) and torch.equal(again.ood["digits"], b.ood["digits"])
    matched = load_benchmark("fmnist", root=root, n_train=20, n_test=10, n_ood=7, preprocessing="match")
    assert torch.equal(matched.x_train, b.x_train) and not torch.equal(matched.ood["faces"], b.ood["faces"])


def test_the_system_copy_is_read_when_the_data_root_has_none(local_fmnist, tmp_path):
    root, _ = local_fmnist
    (root / "fashion-mnist").rename(tmp_path / "system")
    b = load_benchmark("fmnist", root=root, n_train=10, n_test=10, n_ood=2)
    assert "Debian package dataset-fashion-mnist" in b.sources["train"]


def test_a_changed_file_is_refused_with_its_path(local_fmnist):
    root, contents = local_fmnist
    target = root / "fashion-mnist" / "t10k-labels-idx1-ubyte.gz"
    target.write_bytes(gzip.compress(contents["fmnist_test_labels"][:-1] + b"\x03"))  # last label 9 -> 3
    with pytest.raises(ChecksumError, match="t10k-labels-idx1-ubyte.gz: its decompressed content has sha256"):
        load_benchmark("fmnist", root=root, n_train=10, n_test=10, n_ood=2)


def test_missing_files_give_one_message_naming_both_ways_to_get_them(local_fmnist, tmp_path):
    root, _ = local_fmnist
    (root / "fashion-mnist" / "train-images-idx3-ubyte.gz").unlink()
    with pytest.raises(DataNotFoundError) as err:
        load_benchmark("fmnist", root=root)
    message = str(err.value)
    assert "1 of its 4 files are missing (train-images-idx3-ubyte.gz)" in message
    assert "sudo apt-get install dataset-fashion-mnist" in message
    assert "python -m ashlib fetch fmnist" in message
    assert str(root / "fashion-mnist") in message and str(tmp_path / "system") in message


def test_sizes_are_checked(local_fmnist):
    root, _ = local_fmnist
    with pytest.raises(ParameterError, match=r"n_train=61 is not allowed: expected an integer in \[1, 60\]"):
        load_benchmark("fmnist", root=root, n_train=61)
    with pytest.raises(ParameterError, match="n_test=0"):
        load_benchmark("fmnist", root=root, n_test=0)


def test_the_real_manifest_records_the_published_checksums():
    """md5 of each official .gz file as torchvision records it; the content checksums of the same four
    files; the Debian package's path, where the loader also looks."""
    from torchvision.datasets import FashionMNIST

    entries = {e["name"]: e for e in data.manifest()["datasets"]}
    published = dict(FashionMNIST.resources)
    for key in FMNIST_FILES:
        e = entries[key]
        assert e["md5"] == published[e["file"]], key
        assert len(e["content_sha256"]) == 64 and len(e["content_md5"]) == 32
        assert e["target"] == f"fashion-mnist/{e['file']}"
        assert e["system_paths"] == [f"/usr/share/datasets/fashion-mnist/{e['file']}"]
        assert e["debian_package"] == "dataset-fashion-mnist" and e["licence"].startswith("MIT")
    sizes = {k: entries[k]["content_size"] for k in FMNIST_FILES}
    assert sizes == {"fmnist_train_images": 16 + 60000 * 784, "fmnist_train_labels": 8 + 60000,
                     "fmnist_test_images": 16 + 10000 * 784, "fmnist_test_labels": 8 + 10000}
