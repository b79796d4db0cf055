"""Paper-scale code paths (CIFAR + DenseNet-BC-100, ImageNet + ResNet-50 / MobileNetV2), offline.

Nothing here downloads: data sets are tiny synthetic files written to tmp_path, torchvision's md5
lists are monkeypatched to the fakes' md5s, downloads are monkeypatched to fail or pointed at
``file://`` URLs of local files.
"""
from __future__ import annotations

import hashlib
import os
import pickle
import re
import urllib.error

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image
from torch.nn import functional as F

import ashlib.assets.data as data
import ashlib.assets.fetch as fetch
from ashlib import ParameterError
from ashlib.assets.data import (CIFAR_OOD_SETS, IMAGENET_OOD_SETS, ArrayImages, ChecksumError, DataNotFoundError,
                         ImageFiles, list_images, load_benchmark, manifest)
from ashlib.assets.features import top_level
from ashlib.assets.fetch import WeightsNotFoundError
from ashlib.assets.models import (block_merge_layers, build_model, densenet_from_official, densenet_to_official,
                           feature_dim, pretrained_model, torchvision_to_sequential)

IMAGENET_NORM = (torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1),
                 torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))
CIFAR_NORM = (torch.tensor([0.4914, 0.4822, 0.4465]).view(1, 3, 1, 1),
              torch.tensor([0.2023, 0.1994, 0.2010]).view(1, 3, 1, 1))


def _randomise_bn(model: torch.nn.Module, seed: int = 0) -> None:
    """Random BN statistics and affine parameters, so a swapped BN key changes the output."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(n, generator=g) * 0.1)


def _with_normalize(model, state):
    return {**state, **{k: v for k, v in model.state_dict().items() if k.startswith("normalize.")}}


# ------------------------------------------------------------------------------ torchvision parity


@pytest.mark.parametrize("name, children", [
    ("resnet50", ["normalize", "stem", "layer1", "layer2", "layer3", "layer4", "avgpool", "flatten", "fc"]),
    ("mobilenet_v2", ["normalize", "stem", *(f"layer{i}" for i in range(1, 8)), "head", "avgpool", "flatten",
                      "dropout", "fc"]),
])
def test_sequential_imagenet_models_give_torchvision_logits_exactly(name, children):
    torch.manual_seed(123)
    tv = getattr(torchvision.models, name)(weights=None).eval()
    _randomise_bn(tv)
    ours = build_model(name, 1000, seed=7).eval()  # other initial weights: all must come from the copy
    assert top_level(ours) == children
    ours.load_state_dict(_with_normalize(ours, torchvision_to_sequential(name, tv.state_dict())), strict=True)
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        expected = tv((x - IMAGENET_NORM[0]) / IMAGENET_NORM[1])
        got = ours(x)
    assert got.shape == (2, 1000)
    assert torch.equal(got, expected), (got - expected).abs().max()
    assert feature_dim(ours) == {"resnet50": 2048, "mobilenet_v2": 1280}[name]
    assert isinstance(ours.fc, torch.nn.Linear) and ours.fc is list(ours.children())[-1]


@pytest.mark.parametrize("name", ["resnet50", "mobilenet_v2"])
def test_seeded_init_equals_torchvision_init(name):
    torch.manual_seed(3)
    tv = getattr(torchvision.models, name)(weights=None)
    torch.manual_seed(99)  # the global RNG state must not matter
    ours = build_model(name, 1000, seed=3).state_dict()
    for key, value in torchvision_to_sequential(name, tv.state_dict()).items():
        assert torch.equal(ours[key], value), key
    assert not torch.equal(build_model(name, 1000, seed=4).state_dict()["fc.weight"], ours["fc.weight"])


# ------------------------------------------------------------------------------------ DenseNet-BC-100


def _official_densenet_state(num_classes=10, seed=0) -> dict[str, torch.Tensor]:
    """A synthetic state dict in the official DenseNet3 layout (DICE/ASH models/densenet.py), shapes
    from the architecture's formulas, independent of ashlib's code."""
    g = torch.Generator().manual_seed(seed)
    state = {}

    def bn(prefix, c):
        state[f"{prefix}.weight"] = torch.rand(c, generator=g) + 0.5
        state[f"{prefix}.bias"] = torch.randn(c, generator=g) * 0.1
        state[f"{prefix}.running_mean"] = torch.randn(c, generator=g) * 0.1
        state[f"{prefix}.running_var"] = torch.rand(c, generator=g) + 0.5
        state[f"{prefix}.num_batches_tracked"] = torch.tensor(100)

    def conv(key, c_out, c_in, k):
        state[key] = torch.randn(c_out, c_in, k, k, generator=g) * (2 / (c_in * k * k)) ** 0.5

    conv("conv1.weight", 24, 3, 3)
    c = 24
    for b in (1, 2, 3):
        for i in range(16):
            bn(f"block{b}.layer.{i}.bn1", c + 12 * i)
            conv(f"block{b}.layer.{i}.conv1.weight", 48, c + 12 * i, 1)
            bn(f"block{b}.layer.{i}.bn2", 48)
            conv(f"block{b}.layer.{i}.conv2.weight", 12, 48, 3)
        c += 16 * 12
        if b < 3:
            bn(f"trans{b}.bn1", c)
            conv(f"trans{b}.conv1.weight", c // 2, c, 1)
            c //= 2
    bn("bn1", c)
    state["fc.weight"] = torch.randn(num_classes, c, generator=g) * 0.05
    state["fc.bias"] = torch.randn(num_classes, generator=g) * 0.05
    assert c == 342
    return state


def _official_densenet_forward(s, x):
    """The official DenseNet3 forward pass written functionally on an official-layout state dict."""
    def bn(h, p):
        return F.batch_norm(h, s[f"{p}.running_mean"], s[f"{p}.running_var"], s[f"{p}.weight"], s[f"{p}.bias"])

    h = F.conv2d(x, s["conv1.weight"], padding=1)
    for b in (1, 2, 3):
        for i in range(16):
            p = f"block{b}.layer.{i}"
            out = F.conv2d(F.relu(bn(h, f"{p}.bn1")), s[f"{p}.conv1.weight"])
            out = F.conv2d(F.relu(bn(out, f"{p}.bn2")), s[f"{p}.conv2.weight"], padding=1)
            h = torch.cat([h, out], 1)
        if b < 3:
            h = F.avg_pool2d(F.conv2d(F.relu(bn(h, f"trans{b}.bn1")), s[f"trans{b}.conv1.weight"]), 2)
    h = F.avg_pool2d(F.relu(bn(h, "bn1")), 8).view(len(x), -1)
    return F.linear(h, s["fc.weight"], s["fc.bias"])


def test_densenet100_shapes_and_children():
    model = build_model("densenet100", 100).eval()
    assert top_level(model) == ["normalize", "stem", "block1", "trans1", "block2", "trans2", "block3", "head",
                                "avgpool", "flatten", "fc"]
    assert feature_dim(model) == 342
    seen = {}
    model.avgpool.register_forward_hook(lambda m, i, o: seen.setdefault("pool", o))
    with torch.no_grad():
        out = model(torch.rand(3, 3, 32, 32))
    assert out.shape == (3, 100) and seen["pool"].shape == (3, 342, 1, 1)


def test_densenet_official_mapping_round_trips_and_computes_the_official_function():
    official = _official_densenet_state()
    checkpoint = {"epoch": 100, "state_dict": {f"module.{k}": v for k, v in official.items()}}  # DICE-style
    mapped = densenet_from_official(checkpoint)
    assert "stem.weight" in mapped and "block2.15.conv2.weight" in mapped and "trans1.bn.running_var" in mapped
    assert "head.bn.weight" in mapped and "fc.weight" in mapped
    model = build_model("densenet100", 10).eval()
    model.load_state_dict(_with_normalize(model, mapped), strict=True)
    back = densenet_to_official(model.state_dict())
    assert list(back) == list(official)
    assert all(torch.equal(back[k], official[k]) for k in official)
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(x), _official_densenet_forward(official, (x - CIFAR_NORM[0]) / CIFAR_NORM[1]),
                                   rtol=1e-5, atol=1e-5)
    with pytest.raises(KeyError, match="no mapping"):
        densenet_from_official({**official, "classifier.weight": torch.zeros(1)})


def test_pretrained_densenet_from_local_checkpoints(tmp_path, monkeypatch):
    official = _official_densenet_state(num_classes=100, seed=1)
    path = tmp_path / "checkpoint_100.pth.tar"
    torch.save({"state_dict": official}, path)
    monkeypatch.setattr(fetch, "_default_downloader", lambda *a, **k: pytest.fail("downloaded"))
    model = pretrained_model("densenet100", 100, checkpoint=path)
    assert not model.training and torch.equal(model.fc.weight, official["fc.weight"])
    # ASH's plain state dict under its own file name in $ASHLIB_CACHE/weights is found too; it is another
    # file than DICE's, so DICE's published sha256 does not apply: it loads once its own is recorded
    ash_file = fetch.weights_dir() / "densenet100_cifar10.pth"
    torch.save(_official_densenet_state(num_classes=10, seed=2), ash_file)
    with pytest.raises(ChecksumError, match="cannot be checked") as err:
        pretrained_model("densenet100", dataset="cifar10")
    assert "python -m ashlib fetch densenet100_cifar10_dice --allow-unverified" in str(err.value)
    assert fetch.main(["densenet100_cifar10_dice", "--allow-unverified", "--no-progress"]) == 0  # not downloaded
    model10 = pretrained_model("densenet100", dataset="cifar10")
    assert model10.fc.out_features == 10
    torch.save({"state_dict": {k: v for k, v in official.items() if not k.startswith("trans2")}}, path)
    with pytest.raises(KeyError, match="missing"):
        pretrained_model("densenet100", 100, checkpoint=path)
    with pytest.raises(ParameterError, match="num_classes=1000"):
        pretrained_model("densenet100", 1000)


# ---------------------------------------------------------------------------------- block placements


@pytest.fixture(scope="module")
def all_models():
    torch.manual_seed(0)
    out = {}
    for name in ("smallresnet", "resnet50", "mobilenet_v2", "densenet100"):
        m = build_model(name, 10, width=4).eval()
        _randomise_bn(m)
        out[name] = m
    return out


#: placement -> (module whose output must equal relu(merge), or merge itself for MobileNetV2)
EXPECTED_MERGES = {
    "smallresnet": {f"layer{i}.merge": f"layer{i}" for i in range(1, 5)},
    "resnet50": {"layer1.2.merge": "layer1.2", "layer2.3.merge": "layer2.3", "layer3.5.merge": "layer3.5",
                 "layer4.2.merge": "layer4.2"},
    "densenet100": {"trans1.merge": "trans1.relu", "trans2.merge": "trans2.relu", "head.merge": "head"},
    "mobilenet_v2": {"layer1.0.merge": "layer1.0", "layer2.1.merge": "layer2.1", "layer3.2.merge": "layer3.2",
                     "layer4.3.merge": "layer4.3", "layer5.2.merge": "layer5.2", "layer6.2.merge": "layer6.2",
                     "layer7.0.merge": "layer7.0"},
}


@pytest.mark.parametrize("name", list(EXPECTED_MERGES))
def test_block_merge_layers_see_the_pre_relu_sum(name, all_models):
    model = all_models[name]
    expected = EXPECTED_MERGES[name]
    assert block_merge_layers(model) == list(expected)
    seen, hooks = {}, []
    for merge, block in expected.items():
        for layer in (merge, block):
            hooks.append(model.get_submodule(layer).register_forward_hook(
                lambda m, i, o, layer=layer: seen.setdefault(layer, []).append(o.detach())))
    size = {"smallresnet": (1, 28, 28), "densenet100": (3, 32, 32)}.get(name, (3, 64, 64))
    with torch.no_grad():
        model(torch.rand(2, *size))
    for h in hooks:
        h.remove()
    for merge, block in expected.items():
        assert len(seen[merge]) == 1 and len(seen[block]) == 1, (merge, block)  # each fires once
        pre, out = seen[merge][0], seen[block][0]
        assert (pre < 0).any(), merge  # before any ReLU: negative values exist
        if name == "mobilenet_v2":  # linear bottleneck: no activation follows the sum
            assert torch.equal(out, pre), merge
        else:
            assert torch.equal(out, pre.clamp(min=0)), merge


# ------------------------------------------------------------------------------- fake local data


def _png(path, size=(40, 30), seed=0, fmt=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    a = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(a).save(path, format=fmt)
    return a


def _md5(path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def _fake_cifar10(root, monkeypatch, n_train_per_batch=6, n_test=10):
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    train_list, test_list, arrays = [], [], {}
    for i in range(1, 6):
        x = rng.integers(0, 256, (n_train_per_batch, 3072), dtype=np.uint8)
        y = [(i * n_train_per_batch + j) % 10 for j in range(n_train_per_batch)]
        (folder / f"data_batch_{i}").write_bytes(pickle.dumps({"data": x, "labels": y}))
        train_list.append([f"data_batch_{i}", _md5(folder / f"data_batch_{i}")])
        arrays.setdefault("train", []).append((x, y))
    x = rng.integers(0, 256, (n_test, 3072), dtype=np.uint8)
    (folder / "test_batch").write_bytes(pickle.dumps({"data": x, "labels": list(range(n_test))}))
    test_list.append(["test_batch", _md5(folder / "test_batch")])
    arrays["test"] = [(x, list(range(n_test)))]
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": [f"c{i}" for i in range(10)]}))
    return arrays


def _fake_svhn(root, monkeypatch, per_class=3):
    import scipy.io

    labels = np.tile(np.arange(1, 11), per_class)  # file labels 1..10 (10 = digit 0), interleaved
    x = np.random.default_rng(1).integers(0, 256, (32, 32, 3, len(labels)), dtype=np.uint8)
    path = root / "svhn" / "test_32x32.mat"
    path.parent.mkdir(parents=True)
    scipy.io.savemat(path, {"X": x, "y": labels[:, None]})
    return x, labels


FOLDERS = {  # CIFAR OOD folder -> files, as their archives unpack
    "LSUN": [f"test/{i}.jpg" for i in range(5)],
    "LSUN_resize": [f"LSUN_resize/{i}.jpg" for i in range(5)],
    "iSUN": [f"iSUN_patches/{i}.jpeg" for i in range(5)],
    "dtd/images": [f"{c}/{c}_{i}.jpg" for c in ("banded", "zigzagged") for i in range(3)],
    "places365": [f"test_256/Places365_test_{i:08d}.jpg" for i in range(1, 7)],
}


def _fake_folders(root, folders=FOLDERS):
    for k, (folder, files) in enumerate(folders.items()):
        for j, rel in enumerate(files):
            _png(root / folder / rel, size=(36 + j, 33), seed=100 * k + j, fmt="PNG")


def _checksummed(root, tmp_path, monkeypatch):
    """Use a manifest that records the fakes' checksums (as a rehearsal does)."""
    from ashlib.book.rehearsal import record_checksums

    monkeypatch.setenv("ASHLIB_MANIFEST", str(record_checksums(root, tmp_path / "manifest.yaml")))


@pytest.fixture
def cifar_root(tmp_path, monkeypatch):
    root = tmp_path / "data"
    arrays = _fake_cifar10(root, monkeypatch)
    svhn = _fake_svhn(root, monkeypatch)
    _fake_folders(root)
    _checksummed(root, tmp_path, monkeypatch)
    return root, arrays, svhn


def test_cifar10_benchmark_from_local_files(cifar_root, monkeypatch):
    root, arrays, (svhn_x, svhn_labels) = cifar_root
    monkeypatch.setattr(data, "SVHN_PER_CLASS", 2)
    bench = load_benchmark("cifar10", root=root, n_ood=None)
    assert bench.num_classes == 10 and list(bench.ood) == list(CIFAR_OOD_SETS)
    assert list(CIFAR_OOD_SETS) == ["SVHN", "LSUN-C", "LSUN-R", "iSUN", "Textures", "Places365"]
    sizes = {"SVHN": 20, "LSUN-C": 5, "LSUN-R": 5, "iSUN": 5, "Textures": 6, "Places365": 6}
    sets = {"train": bench.x_train, "test": bench.x_test, **bench.ood}
    keys = set()
    for name, ds in sets.items():
        assert isinstance(ds, torch.utils.data.Dataset) and isinstance(ds.cache_key, str), name
        assert len(ds) == {"train": 30, "test": 10, **sizes}[name], name
        x = ds[len(ds) - 1]
        assert isinstance(x, torch.Tensor) and x.dtype == torch.float32 and x.shape == (3, 32, 32), name
        assert 0 <= float(x.min()) and float(x.max()) <= 1, name
        keys.add(ds.cache_key)
    assert len(keys) == len(sets)  # every set has its own key
    # ID pixels are CIFAR's bytes / 255 in CHW order, labels int64 and aligned
    x0, y0 = arrays["train"][0]
    assert torch.equal(bench.x_train[1], torch.from_numpy(x0[1].reshape(3, 32, 32)).float() / 255)
    assert bench.y_train.dtype == torch.int64 and bench.y_train[:6].tolist() == y0
    assert bench.y_test.tolist() == list(range(10))
    # SVHN: DICE's selection (first SVHN_PER_CLASS of each digit, file order), 32x32 as is
    kept = np.sort(np.concatenate([np.flatnonzero(svhn_labels == c)[:2] for c in range(1, 11)]))
    assert torch.equal(bench.ood["SVHN"][3], torch.from_numpy(svhn_x[..., kept[3]].transpose(2, 0, 1)).float() / 255)
    # folder sets: all files sorted; Places365 keeps the first files in sorted order
    assert bench.ood["Textures"].files == sorted(FOLDERS["dtd/images"])
    monkeypatch.setattr(data, "PLACES365_FIRST", 4)
    assert load_benchmark("cifar10", root=root, n_ood=None).ood["Places365"].files == FOLDERS["places365"][:4]
    table = bench.summary()
    assert table["shape"].tolist() == ["3x32x32"] * 8 and table["n"].tolist()[:2] == [30, 10]


def test_folder_images_are_resized_and_centre_cropped_like_dice(tmp_path):
    a = _png(tmp_path / "f" / "x.png", size=(64, 48))  # w=64, h=48 -> resize shorter side to 32: 43x32
    ds = ImageFiles(tmp_path / "f", ["x.png"], (32, 32), "t:x")
    expected = torchvision.transforms.Compose([torchvision.transforms.Resize(32), torchvision.transforms.CenterCrop(32),
                                               torchvision.transforms.ToTensor()])(Image.fromarray(a))
    assert torch.equal(ds[0], expected) and ds[0].shape == (3, 32, 32)
    big = ImageFiles(tmp_path / "f", ["x.png"], (256, 224), "t:x")
    assert big[0].shape == (3, 224, 224)
    _png(tmp_path / "g" / "gray.png", size=(40, 40))
    Image.open(tmp_path / "g" / "gray.png").convert("L").save(tmp_path / "g" / "gray.png")
    assert ImageFiles(tmp_path / "g", ["gray.png"], (32, 32), "t:g")[0].shape == (3, 32, 32)  # RGB always


def test_n_ood_subsampling_is_deterministic_and_prefix_stable(cifar_root):
    root = cifar_root[0]
    a = load_benchmark("cifar10", seed=0, n_ood=3, root=root)
    b = load_benchmark("cifar10", seed=0, n_ood=3, root=root)
    c = load_benchmark("cifar10", seed=1, n_ood=3, root=root)
    small = load_benchmark("cifar10", seed=0, n_ood=2, root=root)
    for name in CIFAR_OOD_SETS:
        assert len(a.ood[name]) == 3 and a.ood[name].cache_key == b.ood[name].cache_key, name
        assert torch.equal(a.ood[name][2], b.ood[name][2]), name
        assert torch.equal(small.ood[name][1], a.ood[name][1]), name  # n_ood=2 is a prefix of n_ood=3
        assert small.ood[name].cache_key != a.ood[name].cache_key, name
    assert any(a.ood[n].cache_key != c.ood[n].cache_key for n in CIFAR_OOD_SETS)  # seed changes the draw
    assert a.ood["LSUN-C"].files != c.ood["LSUN-C"].files
    assert a.x_test.cache_key == c.x_test.cache_key  # ID test is the whole set whatever the seed
    assert len(load_benchmark("cifar10", n_ood=99, root=root).ood["LSUN-C"]) == 5  # capped at what exists
    sub = load_benchmark("cifar10", n_train=10, root=root)
    assert torch.bincount(sub.y_train, minlength=10).tolist() == [1] * 10
    assert sub.x_train.cache_key != a.x_train.cache_key


def test_cache_key_changes_when_a_file_changes(tmp_path):
    folder = tmp_path / "set"
    for i in range(3):
        _png(folder / "sub" / f"{i}.png", seed=i)
    files = list_images(folder)
    assert files == ["sub/0.png", "sub/1.png", "sub/2.png"]

    def key(mode="stat"):
        return ImageFiles(folder, files, (32, 32), "bench:set", mode).cache_key

    stat0, content0 = key(), key("content")
    assert stat0 == key() and content0 == key("content") and stat0 != content0
    assert "bench:set" in stat0 and "resize32-centercrop32" in stat0
    _png(folder / "sub" / "1.png", seed=7, size=(41, 30))  # other pixels and size
    assert key() != stat0 and key("content") != content0
    stat1, content1 = key(), key("content")
    st = (folder / "sub" / "1.png").stat()
    os.utime(folder / "sub" / "1.png", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # touched only
    assert key() != stat1 and key("content") == content1
    assert ImageFiles(folder, files[:2], (32, 32), "bench:set").cache_key != key()  # other file list
    assert ImageFiles(folder, files, (256, 224), "bench:set").cache_key != key()  # other transform
    (folder / ".hidden.png").write_bytes(b"not an image")
    (folder / "notes.txt").write_text("x")
    assert list_images(folder) == files


def test_array_images_key_names_selection():
    arr = np.zeros((5, 3, 2, 2), np.uint8)
    assert ArrayImages(arr, [0, 1], "k").cache_key != ArrayImages(arr, [1, 0], "k").cache_key
    assert ArrayImages(arr, [0, 1], "k").cache_key.startswith("k|")
    with pytest.raises(ValueError):
        ArrayImages(arr.astype(np.float32), [0], "k")


def test_missing_data_is_one_clear_error(tmp_path):
    root = tmp_path / "empty"
    root.mkdir()
    with pytest.raises(DataNotFoundError, match=r"Benchmark 'cifar10': 7 data set\(s\) missing") as err:
        load_benchmark("cifar10", root=root)
    msg = str(err.value)
    assert str(root) in msg and "Nothing is downloaded" in msg
    for url, dest in [("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz", "cifar-10-batches-py"),
                      ("http://ufldl.stanford.edu/housenumbers/test_32x32.mat", "svhn/test_32x32.mat"),
                      ("https://www.dropbox.com/s/fhtsw1m3qxlwj6h/LSUN.tar.gz", "LSUN"),
                      ("http://data.csail.mit.edu/places/places365/test_256.tar", "places365")]:
        assert url in msg and str(root / dest) in msg, url
    assert "md5 c58f30108f718f92721af3b95e74349a" in msg and "no checksum published" in msg
    with pytest.raises(DataNotFoundError, match=r"Benchmark 'imagenet': 6 data set\(s\) missing") as err:
        load_benchmark("imagenet", root=root)
    assert "image-net.org" in str(err.value) and "ILSVRC2012_img_val.tar" in str(err.value)
    assert "iNaturalist.tar.gz" in str(err.value)


def test_only_the_missing_set_is_named(cifar_root):
    root = cifar_root[0]
    for f in (root / "LSUN_resize").rglob("*.jpg"):
        f.unlink()
    with pytest.raises(ChecksumError, match=r"1 data set\(s\) under .* are not what data_manifest.yaml describes") as err:
        load_benchmark("cifar10", root=root)
    msg = str(err.value)
    assert "LSUN_resize: its files differ" in msg and "5 missing (LSUN_resize/0.jpg" in msg
    assert "python -m ashlib fetch lsun_resize --force" in msg and "LSUN:" not in msg


def test_a_changed_or_added_file_is_named_and_a_passed_check_is_remembered(cifar_root, monkeypatch):
    root = cifar_root[0]
    load_benchmark("cifar10", root=root)  # checks every file once
    calls = []
    real = data.pooch.file_hash
    monkeypatch.setattr(data.pooch, "file_hash", lambda *a, **k: calls.append(a) or real(*a, **k))
    load_benchmark("cifar10", root=root)
    assert calls == []  # unchanged files (size, mtime) are not hashed again
    (root / "cifar-10-batches-py" / "data_batch_2").write_bytes(b"junk")
    _png(root / "iSUN" / "iSUN_patches" / "extra.jpeg", fmt="JPEG")
    with pytest.raises(ChecksumError) as err:
        load_benchmark("cifar10", root=root)
    msg = str(err.value)
    assert "2 data set(s)" in msg and "1 changed (data_batch_2)" in msg and "1 added (iSUN_patches/extra.jpeg)" in msg


def test_a_folder_nothing_records_is_refused_with_the_adopt_command(cifar_root, monkeypatch):
    root = cifar_root[0]
    (root / ".iSUN.contents.json").unlink()
    with pytest.raises(ChecksumError, match="no record of its files' checksums") as err:
        load_benchmark("cifar10", root=root)
    assert f"python -m ashlib fetch isun --adopt --root {root}" in str(err.value)
    from ashlib.assets import fetch

    assert fetch.main(["isun", "--adopt", "--root", str(root)]) == 0
    assert len(load_benchmark("cifar10", root=root).ood["iSUN"]) == 5


def test_default_root_is_ashlib_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ASHLIB_CACHE", str(tmp_path / "c"))
    with pytest.raises(DataNotFoundError) as err:
        load_benchmark("cifar100")
    assert str(tmp_path / "c" / "data" / "cifar-100-python") in str(err.value)


def test_corrupted_cifar_is_a_checksum_error(tmp_path, monkeypatch):
    root = tmp_path / "data"
    _fake_cifar10(root, monkeypatch)
    _fake_svhn(root, monkeypatch)
    _fake_folders(root)
    with pytest.raises(ChecksumError, match="md5") as err:  # the manifest's real CIFAR md5s do not match the fakes
        load_benchmark("cifar10", root=root)
    assert "contents_md5" in str(err.value) and "data_batch_1" in str(err.value)


@pytest.fixture
def imagenet_root(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "IMAGENET_NUM_CLASSES", 3)
    root = tmp_path / "data"
    wnids = ["n01440764", "n01443537", "n01484850"]
    for k, w in enumerate(wnids):
        for i in range(2):
            _png(root / "imagenet" / "val" / w / f"ILSVRC2012_val_{k}{i}.JPEG", seed=k * 10 + i, fmt="JPEG")
        for i in range(4):
            _png(root / "imagenet" / "train" / w / f"{w}_{i}.JPEG", seed=50 + k * 10 + i, fmt="JPEG")
    for k, folder in enumerate(["iNaturalist/images", "SUN/images", "Places/images", "dtd/images/banded"]):
        for i in range(4):
            _png(root / folder / f"{i}.jpg", seed=200 + 10 * k + i, fmt="JPEG")
    _checksummed(root, tmp_path, monkeypatch)
    return root, wnids


def test_imagenet_benchmark_from_local_files(imagenet_root):
    root, wnids = imagenet_root
    bench = load_benchmark("imagenet", root=root, n_train=5, n_ood=3)
    assert list(bench.ood) == list(IMAGENET_OOD_SETS) == ["iNaturalist", "SUN", "Places", "Textures"]
    assert bench.num_classes == 3 and len(bench.x_test) == 6 and len(bench.x_train) == 5
    assert bench.y_test.tolist() == [0, 0, 1, 1, 2, 2]
    assert sorted(torch.bincount(bench.y_train, minlength=3).tolist()) == [1, 2, 2]  # class-balanced
    for i, label in enumerate(bench.y_train.tolist()):
        assert bench.x_train.files[i].startswith(wnids[label] + "/")  # labels travel with their files
    for ds in (bench.x_train, bench.x_test, *bench.ood.values()):
        x = ds[0]
        assert x.shape == (3, 224, 224) and x.dtype == torch.float32 and 0 <= float(x.min()) <= float(x.max()) <= 1
        assert "resize256-centercrop224" in ds.cache_key
    assert all(len(v) == 3 for v in bench.ood.values())
    again = load_benchmark("imagenet", root=root, n_train=5, n_ood=3)
    assert again.x_train.files == bench.x_train.files and again.x_train.cache_key == bench.x_train.cache_key


def test_imagenet_needs_class_folders(imagenet_root, monkeypatch):
    monkeypatch.setattr(data, "IMAGENET_NUM_CLASSES", 1000)
    with pytest.raises(DataNotFoundError, match="expected 1000 class folders"):
        load_benchmark("imagenet", root=imagenet_root[0])


def test_argument_checks_and_mnist5k_untouched():
    with pytest.raises(ParameterError, match="root="):
        load_benchmark("mnist5k", root="/tmp")
    with pytest.raises(ParameterError, match="n_train=0"):
        load_benchmark("cifar10", n_train=0)
    with pytest.raises(ParameterError, match="n_ood=0"):
        load_benchmark("cifar10", n_ood=0)
    with pytest.raises(ParameterError, match="fingerprint='md5'"):
        load_benchmark("cifar10", fingerprint="md5")


# ------------------------------------------------------------------------------------ pretrained weights


@pytest.fixture
def offline(tmp_path, monkeypatch):
    """No network and an empty torch hub cache; records the download attempts (ashlib.assets.fetch's
    downloader: the one pretrained_model downloads with)."""
    calls = []

    def refuse(url, output_file, pooch_obj=None):
        calls.append(url)
        raise urllib.error.URLError("network is unreachable (test)")

    monkeypatch.setattr(fetch, "_default_downloader", lambda url, progress, timeout: refuse)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    return calls


DICE = "https://github.com/deeplearning-wisc/dice/raw/{}/checkpoints/CIFAR-10/densenet/checkpoint_100.pth.tar"


@pytest.mark.parametrize("name, urls, file", [
    ("resnet50", ["https://download.pytorch.org/models/resnet50-0676ba61.pth"], "resnet50-0676ba61.pth"),
    ("mobilenet_v2", ["https://download.pytorch.org/models/mobilenet_v2-b0353104.pth"], "mobilenet_v2-b0353104.pth"),
    ("densenet100", [DICE.format("8acfb8d52eee997a7bf6f9d17ff5363fd91ba47b"), DICE.format("master")],
     "densenet100_cifar10_dice.pth.tar"),
])
def test_pretrained_offline_is_a_clear_error(name, urls, file, offline):
    num_classes = 10 if name == "densenet100" else None
    with pytest.raises(WeightsNotFoundError) as err:
        pretrained_model(name, num_classes)
    msg = str(err.value)
    assert offline == urls
    assert urls[0] in msg and str(fetch.weights_dir() / file) in msg and "URLError" in msg
    assert "-p checkpoint PATH (checkpoint=PATH in Python)" in msg and "python -m ashlib fetch " in msg
    if name == "densenet100":
        assert "checkpoints.zip" in msg and "sha256 deaefd082911a1c6c92aacdcfecf03c71b932acc5c08b779c85c44eccdc0c817" in msg
    else:
        assert f"must start with {file.split('-')[-1][:8]}" in msg


def test_pretrained_download_false_never_downloads(offline):
    with pytest.raises(WeightsNotFoundError, match="download=False"):
        pretrained_model("resnet50", download=False)
    assert offline == []
    with pytest.raises(WeightsNotFoundError, match="is not a file"):
        pretrained_model("mobilenet_v2", checkpoint="/nonexistent/weights.pth")


def test_pretrained_torchvision_file_is_hash_checked(offline):
    path = fetch.weights_dir() / "resnet50-0676ba61.pth"
    torch.save(build_model("resnet50", 1000).state_dict(), path)  # right name, wrong content
    with pytest.raises(ChecksumError, match="0676ba61"):
        pretrained_model("resnet50")


def test_pretrained_download_path_on_a_local_file_url(tmp_path, monkeypatch):
    """The real download code (ashlib.assets.fetch's: pooch, the hash prefix checked before the file gets its
    name) run against a file:// URL."""
    torch.manual_seed(5)
    tv = torchvision.models.mobilenet_v2(weights=None)
    src = tmp_path / "served" / "weights.pth"
    src.parent.mkdir()
    torch.save(tv.state_dict(), src)
    digest = hashlib.sha256(src.read_bytes()).hexdigest()
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    entry = dict(fetch.weights_entry("mobilenet_v2_imagenet1k_v1"), urls=[src.as_uri()], file="mnv2-local.pth",
                 sha256_prefix=digest[:8])
    monkeypatch.setattr(fetch, "weights_entry", lambda name: entry)
    model = pretrained_model("mobilenet_v2", progress=False)
    assert (fetch.weights_dir() / "mnv2-local.pth").is_file()
    assert torch.equal(model.fc.weight, tv.classifier[1].weight) and not model.training
    entry.update(file="mnv2-bad.pth", sha256_prefix="00000000")
    with pytest.raises(WeightsNotFoundError, match="does not match the manifest: expected sha256 starting with 00000000"):
        pretrained_model("mobilenet_v2", progress=False)
    assert not [p for p in fetch.weights_dir().iterdir() if "mnv2-bad" in p.name]  # nor a temporary file


def test_pretrained_unpublished_checksum_is_never_downloaded_by_a_load_and_checked_at_every_load(tmp_path,
                                                                                                 monkeypatch):
    """Weights with no published checksum (DICE's DenseNet, before its sha256 was pinned) are not
    downloaded by pretrained_model: fetch them with --allow-unverified, which records their sha256 beside
    the file (``<file>.sha256``); every load checks it and a later change to the file is refused."""
    from ashlib.assets.fetch import recorded_sha256

    src = tmp_path / "served" / "checkpoint_100.pth.tar"
    src.parent.mkdir()
    torch.save({"epoch": 100, "state_dict": _official_densenet_state(num_classes=10, seed=3)}, src)
    entries = fetch._entries()
    entries["densenet100_cifar10_dice"].update(urls=[src.as_uri()], local_names=[], sha256=None, size=None)
    monkeypatch.setattr(fetch, "_entries", lambda: entries)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with pytest.raises(WeightsNotFoundError, match="not downloaded without your --allow-unverified") as err:
        pretrained_model("densenet100", 10, progress=False)
    assert "python -m ashlib fetch densenet100_cifar10_dice --allow-unverified" in str(err.value)
    dest = fetch.weights_dir() / "densenet100_cifar10_dice.pth.tar"
    assert not dest.exists()
    fetch.fetch("densenet100_cifar10_dice", progress=False, allow_unverified=True)
    assert recorded_sha256(dest) == hashlib.sha256(src.read_bytes()).hexdigest()
    pretrained_model("densenet100", 10, progress=False)  # checked against the record
    torch.save({"state_dict": _official_densenet_state(num_classes=10, seed=4)}, dest)  # changed on disk
    with pytest.raises(ChecksumError, match="recorded in .*at its first download"):
        pretrained_model("densenet100", 10, progress=False)


# ------------------------------------------------------------------------------------------ manifest


def test_manifest_paper_entries_match_torchvision_and_are_complete():
    m = manifest()
    datasets = {e["name"]: e for e in m["datasets"]}
    weights = {e["name"]: e for e in m["weights"]}
    tv = torchvision.datasets
    assert datasets["cifar10"]["md5"] == tv.CIFAR10.tgz_md5 and datasets["cifar10"]["urls"] == [tv.CIFAR10.url]
    assert datasets["cifar100"]["md5"] == tv.CIFAR100.tgz_md5 and datasets["cifar100"]["urls"] == [tv.CIFAR100.url]
    assert [datasets["svhn_test"]["urls"][0], datasets["svhn_test"]["file"], datasets["svhn_test"]["md5"]] \
        == tv.SVHN.split_list["test"]
    assert datasets["dtd"]["md5"] == tv.DTD._MD5 and datasets["dtd"]["urls"] == [tv.DTD._URL]
    assert datasets["places365_test"]["md5"] == tv.Places365._IMAGES_META[("test", True)][1]
    from torchvision.datasets.imagenet import ARCHIVE_META
    assert {f["file"]: f["md5"] for f in datasets["imagenet_val"]["files"]} == dict(
        [ARCHIVE_META["val"], ARCHIVE_META["devkit"]])
    assert weights["resnet50_imagenet1k_v1"]["urls"] == [torchvision.models.ResNet50_Weights.IMAGENET1K_V1.url]
    assert weights["mobilenet_v2_imagenet1k_v1"]["urls"] == [torchvision.models.MobileNet_V2_Weights.IMAGENET1K_V1.url]
    for e in weights.values():
        if e["source"] == "torchvision":
            assert re.search(r"-([0-9a-f]{8})\.pth$", e["file"]).group(1) == e["sha256_prefix"]
    paper = {*CIFAR_OOD_SETS.values(), *IMAGENET_OOD_SETS.values(), "cifar10", "cifar100", "imagenet_val",
             "imagenet_train"}
    assert paper <= set(datasets)
    for e in [*(datasets[n] for n in paper), *weights.values()]:
        assert e["kind"] in ("download", "manual"), e["name"]
        for key in ("title", "urls", "licence", "citation", "used_by"):
            assert key in e, (e["name"], key)
        published = [e.get(k) for k in ("md5", "sha256", "sha256_prefix")] + [f.get("md5") for f in e.get("files", [])]
        assert any(published) or "No checksum published" in e.get("note", ""), e["name"]
        if e["kind"] == "download" and e["name"] in paper:
            assert e["unpack"] in ("none", "tar", "tar.gz", "zip") and e["target"], e["name"]
