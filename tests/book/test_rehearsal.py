"""The rehearsal's fake trees go through the real loaders, checks and weight loading; a damaged tree
fails at once with the message a real user would get; the dry run fits the lent GPU machine; a book
built from a paper-scale or rehearsal run says what it shows. (CI runs whole rehearsals: make rehearse.)"""
from __future__ import annotations

import json
import time

import pytest
import torch

from ashlib.assets import data, fetch
from ashlib.book import estimate, pipeline, rehearsal
from ashlib.evaluation import experiments
from ashlib._checks import ParameterError
from ashlib.assets.data import ChecksumError, DataNotFoundError, load_benchmark
from ashlib.assets.models import build_model, pretrained_model


@pytest.fixture
def fake(tmp_path, monkeypatch):
    """fake(benchmark) -> data root of a fake tree, with $ASHLIB_CACHE and $ASHLIB_MANIFEST set as a
    rehearsal sets them."""
    def make(benchmark):
        cache = tmp_path / benchmark / "cache"
        manifest_file = rehearsal.fake_tree(benchmark, cache)
        monkeypatch.setenv("ASHLIB_CACHE", str(cache))
        monkeypatch.setenv("ASHLIB_MANIFEST", str(manifest_file))
        return cache / "data"
    return make


@pytest.mark.parametrize("benchmark", ["cifar10", "cifar100", "imagenet"])
def test_fake_trees_load_through_the_real_loaders_and_weights(fake, benchmark):
    root = fake(benchmark)
    sizes = rehearsal.SUBSETS[benchmark]
    bench = load_benchmark(benchmark, n_train=sizes["n_train"], n_test=sizes["n_test"], n_ood=sizes["n_ood"])
    assert len(bench.x_train) == sizes["n_train"] and len(bench.x_test) == sizes["n_test"]
    assert all(0 < len(v) <= sizes["n_ood"] for v in bench.ood.values())
    assert bench.num_classes == {"cifar10": 10, "cifar100": 100, "imagenet": 1000}[benchmark]
    assert set(torch.bincount(bench.y_train, minlength=bench.num_classes).tolist()) <= {
        sizes["n_train"] // bench.num_classes, -(-sizes["n_train"] // bench.num_classes)}  # class-balanced
    side = 224 if benchmark == "imagenet" else 32
    for ds in (bench.x_train, bench.x_test, *bench.ood.values()):
        assert ds[0].shape == (3, side, side)
    for name in rehearsal.entries_for(benchmark):  # fetch --verify agrees with the loaders
        assert fetch.verify(name, root).state == "verified", name
    model = "resnet50" if benchmark == "imagenet" else "densenet100"
    net, path = pretrained_model(model, bench.num_classes, with_path=True, download=False)
    assert path.parent == root.parent / "weights" and not net.training


@pytest.mark.parametrize("benchmark, files, label_key", [
    ("cifar10", ["cifar-10-batches-py/data_batch_1", "cifar-10-batches-py/test_batch"], b"labels"),
    ("cifar100", ["cifar-100-python/train", "cifar-100-python/test"], b"fine_labels"),
])
def test_the_fake_cifar_batches_are_python_2_pickles_as_the_official_files(tmp_path, benchmark, files, label_key):
    """Issue 37, item 6: byte-string keys (Python 2 str), protocol 2, old numpy's module paths."""
    import pickle
    import pickletools

    import numpy as np

    root = tmp_path / "data"
    rehearsal.fake_tree(benchmark, tmp_path)
    for name in files:
        raw = (root / name).read_bytes()
        assert raw[:2] == b"\x80\x02" and b"numpy.core.multiarray\n_reconstruct" in raw and b"numpy._core" not in raw
        ops = {op.name for op, _, _ in pickletools.genops(raw)}
        assert "SHORT_BINSTRING" in ops and not ops & {"BINUNICODE", "SHORT_BINUNICODE", "BINBYTES", "SHORT_BINBYTES"}
        as_bytes = pickle.loads(raw, encoding="bytes")
        assert {b"data", label_key, b"filenames", b"batch_label"} <= set(as_bytes)
        assert all(isinstance(k, bytes) for k in as_bytes) and isinstance(as_bytes[b"filenames"][0], bytes)
        as_text = pickle.loads(raw, encoding="latin1")  # as ashlib.assets.data.read_cifar reads them
        assert as_text["data"].dtype == np.uint8 and as_text["data"].shape[1] == 3072
        assert np.array_equal(as_text["data"], as_bytes[b"data"]) and as_text[label_key.decode()] == as_bytes[label_key]
        with pytest.raises(UnicodeDecodeError):  # Python 3's default (ASCII) fails on them, as on the official files
            pickle.loads(raw)


def test_the_fake_svhn_file_labels_digit_zero_10(tmp_path):
    import numpy as np
    import scipy.io

    rehearsal.fake_tree("cifar10", tmp_path)
    mat = scipy.io.loadmat(str(tmp_path / "data" / "svhn" / "test_32x32.mat"))
    assert mat["X"].shape[:3] == (32, 32, 3) and mat["X"].dtype == np.uint8 and mat["y"].shape[1] == 1
    assert set(np.unique(mat["y"])) == set(range(1, 11))  # 10 is digit 0; no 0 in the file


@pytest.mark.parametrize("benchmark, classes", [("cifar10", 10), ("cifar100", 100)])
def test_the_fake_densenet_checkpoint_is_dices_on_cuda(tmp_path, benchmark, classes):
    """Issue 37, item 6: {'epoch': 100, 'state_dict': ...} in DICE's key layout, every storage tagged
    cuda:0, so that loading it needs map_location, as the real file does."""
    import zipfile

    _, path = rehearsal.fake_weights(benchmark, tmp_path)
    locations = []
    ckpt = torch.load(path, map_location=lambda storage, loc: locations.append(loc) or storage, weights_only=True)
    assert set(locations) == {"cuda:0"} and len(locations) == len(ckpt["state_dict"])
    assert list(ckpt) == ["epoch", "state_dict"] and ckpt["epoch"] == 100
    assert zipfile.ZipFile(path).namelist()[0] == "archive/data.pkl"  # the real files' record names
    state = ckpt["state_dict"]
    assert list(state)[:3] == ["conv1.weight", "block1.layer.0.bn1.weight", "block1.layer.0.bn1.bias"]
    assert state["block1.layer.0.conv1.weight"].shape == (48, 24, 1, 1)
    assert state["trans2.conv1.weight"].shape == (150, 300, 1, 1)
    assert state["fc.weight"].shape == (classes, 342) and state["bn1.num_batches_tracked"].shape == ()
    assert len(state) == 596 and not any(k.startswith("module.") for k in state)
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA"):
            torch.load(path, weights_only=True)


def test_the_fake_images_vary_in_size_aspect_mode_and_format(tmp_path):
    """Issue 37, item 6: DTD-like images not square and of several sizes, a greyscale Places image,
    ImageNet's greyscale, CMYK and PNG-named-JPEG files."""
    from PIL import Image

    def looks(folder, pattern="*"):
        out = []
        for f in sorted(folder.rglob(pattern)):
            if f.is_file() and not f.name.startswith("."):
                with Image.open(f) as im:
                    out.append((im.size, im.mode, im.format))
        return out

    rehearsal.fake_tree("cifar10", tmp_path / "c")
    dtd = looks(tmp_path / "c" / "data" / "dtd" / "images")
    assert len({size for size, _, _ in dtd}) >= 3 and any(w != h for (w, h), _, _ in dtd)
    assert {mode for _, mode, _ in looks(tmp_path / "c" / "data" / "places365")} == {"RGB", "L"}
    assert len({size for size, _, _ in looks(tmp_path / "c" / "data" / "LSUN")}) > 1
    rehearsal.fake_tree("imagenet", tmp_path / "i")
    train = looks(tmp_path / "i" / "data" / "imagenet" / "train", "*.JPEG")
    assert {mode for _, mode, _ in train} == {"RGB", "CMYK"} and {fmt for _, _, fmt in train} == {"JPEG", "PNG"}
    assert "L" in {mode for _, mode, _ in looks(tmp_path / "i" / "data" / "imagenet" / "val")}
    assert len({size for size, _, _ in train}) > 1


def test_a_removed_or_corrupted_fake_file_fails_at_once_with_what_a_user_would_read(fake):
    root = fake("cifar10")
    (root / "cifar-10-batches-py" / "data_batch_3").unlink()
    dtd = sorted((root / "dtd" / "images").rglob("*.jpg"))[0]
    dtd.write_bytes(dtd.read_bytes()[:-10])
    with pytest.raises(ChecksumError) as err:
        load_benchmark("cifar10")
    msg = str(err.value)
    assert "2 data set(s)" in msg and "1 missing (data_batch_3)" in msg and "1 changed (" in msg
    assert f"python -m ashlib fetch cifar10/train --force --root {root}" in msg  # the archive alone, not all 8 entries
    assert f"python -m ashlib fetch dtd --force --root {root}" in msg
    assert fetch.verify("cifar10", root).state == "corrupt" and fetch.verify("dtd", root).state == "corrupt"
    import shutil

    shutil.rmtree(root / "LSUN")
    with pytest.raises(DataNotFoundError) as err:  # a folder not there is missing data, with its URL
        load_benchmark("cifar10")
    assert "LSUN.tar.gz" in str(err.value) and str(root / "LSUN") in str(err.value)


def test_a_rehearsal_on_a_damaged_tree_stops_at_once_naming_the_chapter_and_the_file(tmp_path):
    rehearsal.fake_tree("cifar10", tmp_path / "work" / "cache")
    (tmp_path / "work" / "cache" / "data" / "svhn" / "test_32x32.mat").write_bytes(b"truncated")
    out = tmp_path / "run"
    t0 = time.perf_counter()
    with pytest.raises(pipeline.RunFailed) as err:
        rehearsal.rehearse("cifar10", ["01_methods", "02_placements"], out, workdir=tmp_path / "work",
                           echo=lambda *a, **k: None)
    assert time.perf_counter() - t0 < 120  # at once: in the setup cell, before any network runs
    msg = str(err.value)  # the chapters run side by side: the first to read the file reports it
    assert msg.split(": ")[:2] in (["01_methods", "ChecksumError"], ["02_placements", "ChecksumError"])
    assert "test_32x32.mat" in msg
    assert "python -m ashlib fetch svhn_test --force" in msg
    assert not out.exists()
    failed = next(tmp_path.glob("run.failed-*"))
    record = json.loads((failed / "run.json").read_text())
    assert record["status"] == "failed" and record["rehearsal"]["benchmark"] == "cifar10"


def test_only_paper_scale_profiles_rehearse():
    with pytest.raises(ParameterError, match="profile='embedded' is not allowed with --rehearse"):
        rehearsal.rehearsal_profile("embedded")
    assert rehearsal.rehearsal_profile("imagenet") == "imagenet"


@pytest.mark.parametrize("profile", ["cifar10", "cifar100", "imagenet"])
def test_the_dry_run_fits_the_lent_gpu_machine(profile):
    bench, sizes, chapters = estimate.chapters(profile)
    assert [c.name for c in chapters] == ["01_methods", "02_placements", "03_global_vs_local", "04_ash_rand", "05_nac"]
    assert all(c.peak_bytes < 64 * 2**30 for c in chapters)  # half the lent machine's memory
    assert sum(c.cache_bytes for c in chapters) < 32 * 2**30  # half its disk
    text = estimate.report(profile, throughput=1000.0)
    assert "Fits a machine with 64 GiB of disk and 128 GiB of memory: yes" in text
    assert "1,000 images/s (measured (--throughput))" in text
    if profile == "imagenet":  # ResNet-50's early outputs over 50,000 images are streamed, never cached
        assert sizes["test"] == 50_000 and "`layer1.2.merge`: streamed" in text


def test_the_dry_run_counts_the_run_s_subsets_and_refuses_embedded_profiles():
    _, sizes, _ = estimate.chapters("imagenet", overrides={"n_test": 100, "n_ood": 10})
    assert sizes["test"] == 100 and sizes["SUN"] == 10 and sizes["train"] == 10_000
    with pytest.raises(ParameterError, match="profile='embedded' is not allowed with --dry-run"):
        estimate.chapters("embedded")


def test_streaming_gives_the_replayed_logits():
    """Placements whose replay layer would not fit in memory stream the images instead: same logits."""
    torch.manual_seed(0)
    model = build_model("smallresnet", 10, width=4).eval()
    images = torch.rand(40, 1, 28, 28)
    bench = type("B", (), dict(x_train=images, y_train=torch.arange(40) % 10, x_test=images[:20],
                               y_test=torch.arange(20) % 10, ood={"o": images[20:]}, sanity=[]))
    ctx = experiments.build_context(model, bench, batch_size=16)
    method = experiments.ash("P", 80, placement="layer2.merge")
    replayed = experiments.method_logits(method, ctx, "o")
    assert ctx.replays("layer1", "o")
    ctx.replay_limit = 0
    assert not ctx.replays("layer1", "o")
    ctx.logits.clear()  # the replayed logits were kept: computed again, now streamed
    assert torch.allclose(experiments.method_logits(method, ctx, "o"), replayed, atol=1e-5)


def test_a_paper_scale_or_rehearsal_book_says_what_it_shows(tmp_path):
    fragments = pipeline.BOOK / "_fragments"
    record = {"profile": "imagenet", "rehearsal": {"banner": rehearsal.BANNER, "benchmark": "imagenet"},
              "notebooks": {"01_methods": {"parameters": {"benchmark": "imagenet", "device": "cpu", "n_test": 10}}}}
    page = pipeline.this_run_page(record, {"01_methods"}, fragments)
    assert page.startswith(":::{warning}\n" + rehearsal.BANNER)
    assert "paper's `imagenet` benchmark" in page and "mnist5k" not in page
    assert "n_test=10 (not the paper's sizes)" in page and "methods_id_accuracy" in page
    embedded = pipeline.this_run_page({"profile": "embedded", "notebooks": {
        "00_benchmark": {"parameters": {"benchmark": "mnist5k"}}}}, {"00_benchmark"}, fragments)
    assert "`mnist5k` benchmark" in embedded and "warning" not in embedded and "methods_id_accuracy" not in embedded
    results = pipeline.results_page({"01_methods", "03_global_vs_local"}, fragments)
    assert "run/01_methods.ipynb" in results and "run/03_global_vs_local.ipynb" in results
    assert "run/05_nac.ipynb" not in results and "run/00_benchmark.ipynb" not in results


def test_your_own_checkpoint_is_not_held_to_the_published_checksum(tmp_path):
    """Issue 10: the torchvision sha256-prefix check also refused a user's own -p checkpoint."""
    import torchvision

    path = tmp_path / "my_resnet50.pth"
    torch.save(torchvision.models.resnet50().state_dict(), path)
    model, used = pretrained_model("resnet50", 1000, checkpoint=path, with_path=True, download=False)
    assert used == path and not model.training
