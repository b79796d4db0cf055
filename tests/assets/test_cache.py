"""Self-verifying cache entries (ashlib.assets.cache) and their use for activations and checkpoints.

Each finding of the reliability probe is reproduced here: a damaged entry (rows cut, bytes flipped,
file truncated or replaced by junk, another entry copied over it) is named, discarded and recomputed,
so the numbers are those of a fresh computation; two processes on one fresh cache both succeed with
identical results.
"""
from __future__ import annotations

import contextlib
import io
import multiprocessing as mp
import os
import warnings
from pathlib import Path

import pytest
import torch

from ashlib.assets import cache
from ashlib.assets.cache import DamagedEntryWarning
from ashlib.assets.features import activations
from ashlib.assets.models import TrainRecipe, build_model, checkpoint_path, load_or_train, load_snapshots


def _entries(folder: str) -> list[Path]:
    return sorted((Path(os.environ["ASHLIB_CACHE"]) / folder).glob("*.pt"))


def _net():
    return build_model("smallresnet", 3, width=2, seed=0).eval()


def _data():
    return torch.rand(40, 1, 28, 28, generator=torch.Generator().manual_seed(0))


# ------------------------------------------------------------------------------------ entries


def test_an_entry_round_trips_and_refuses_other_keys_edits_and_junk(tmp_path):
    path = tmp_path / "e.pt"
    value = {"w": torch.arange(6.0).reshape(2, 3), "n": torch.tensor(3)}
    cache.save(path, value, "key-a")
    loaded = cache.load(path, "key-a")
    assert loaded.keys() == value.keys() and all(torch.equal(loaded[k], value[k]) for k in value)
    assert not list(tmp_path.glob(".*.tmp"))  # the temporary file is gone

    def damaged(key="key-a", check=None):
        with pytest.warns(DamagedEntryWarning, match=str(path)) as record:
            assert cache.load(path, key, check=check) is None
        assert not path.exists()  # deleted, so the next run recomputes
        return next(str(w.message) for w in record if issubclass(w.category, DamagedEntryWarning))

    assert "computed from something else" in damaged("key-b")
    cache.save(path, value, "key-a")
    entry = torch.load(path, weights_only=True)
    entry["value"]["w"][0, 0] = 99.0  # edited in place, digest kept
    torch.save(entry, path)
    assert "content changed" in damaged()
    torch.save(value, path)  # a plain state dict: the old format, or a foreign file
    assert "not an ashlib cache entry" in damaged()
    path.write_bytes(os.urandom(300))
    assert "unreadable" in damaged()
    cache.save(path, value, "key-a")
    path.write_bytes(path.read_bytes()[:200])  # truncated
    assert "unreadable" in damaged()
    cache.save(path, value, "key-a")
    assert "too short" in damaged(check=lambda v: "too short")
    assert cache.load(tmp_path / "missing.pt", "key-a") is None


def test_digest_covers_names_shapes_dtypes_and_bytes():
    t = torch.arange(6.0)
    assert cache.digest(t) == cache.digest(t.clone())
    assert cache.digest(t) != cache.digest(t.reshape(2, 3))
    assert cache.digest(t) != cache.digest(t.double())
    assert cache.digest({"a": t}) != cache.digest({"b": t})
    assert cache.digest(torch.tensor(3)) != cache.digest(torch.tensor(4))  # 0-d tensors too
    with pytest.raises(TypeError):
        cache.digest({"a": 3})


# -------------------------------------------------------------------------------- activations


def test_damaged_activations_are_named_and_recomputed():
    """Probe finding 1: an avgpool entry cut to its first rows used to be served silently."""
    model, x = _net(), _data()
    fresh = activations(model, x, ["avgpool"], batch_size=16)["avgpool"]
    (path,) = _entries("features")
    entry = torch.load(path, weights_only=True)
    torch.save(entry["value"][:25].clone(), path)  # the probe's edit
    with pytest.warns(DamagedEntryWarning, match=path.name):
        again = activations(model, x, ["avgpool"], batch_size=16)["avgpool"]
    assert torch.equal(again, fresh)
    entry["value"], entry["digest"] = entry["value"][:25].clone(), cache.digest(entry["value"][:25])
    torch.save(entry, path)  # cut rows with a matching digest: caught by the row count
    with pytest.warns(DamagedEntryWarning, match="25 rows, expected 40"):
        assert torch.equal(activations(model, x, ["avgpool"], batch_size=16)["avgpool"], fresh)
    path.write_bytes(b"\0" * 64)  # probe finding 2: junk used to fail every later run, unnamed
    with pytest.warns(DamagedEntryWarning, match="unreadable"):
        assert torch.equal(activations(model, x, ["avgpool"], batch_size=16)["avgpool"], fresh)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # now intact: no warning
        assert torch.equal(activations(model, x, ["avgpool"], batch_size=16)["avgpool"], fresh)


def test_another_entry_copied_over_is_caught():
    model, x = _net(), _data()
    out = activations(model, x, ["avgpool", "layer4"], batch_size=16)
    pool, = [p for p in _entries("features") if p.name.startswith("avgpool")]
    deep, = [p for p in _entries("features") if p.name.startswith("layer4")]
    deep.write_bytes(pool.read_bytes())
    with pytest.warns(DamagedEntryWarning, match="computed from something else"):
        again = activations(model, x, ["avgpool", "layer4"], batch_size=16)
    assert torch.equal(again["layer4"], out["layer4"])


# -------------------------------------------------------------------------------- checkpoints


def _train_setup():
    g = torch.Generator().manual_seed(1)
    x, y = torch.rand(60, 1, 28, 28, generator=g), torch.arange(60) % 3
    return x, y, TrainRecipe(epochs=2, batch_size=20)


def test_an_earlier_epoch_copied_over_the_final_checkpoint_is_caught():
    """Probe finding 1: an epoch-1 checkpoint over the final one gave 51.8% accuracy, no warning."""
    x, y, recipe = _train_setup()
    snaps = load_snapshots("smallresnet", x, y, 3, [1, 2], width=2, recipe=recipe, progress=False)
    final = checkpoint_path("smallresnet", x, y, 3, 2, recipe)
    early = checkpoint_path("smallresnet", x, y, 3, 2, recipe, epoch=1)
    final.write_bytes(early.read_bytes())
    with pytest.warns(DamagedEntryWarning, match="computed from something else"):
        model, path = load_or_train("smallresnet", x, y, 3, width=2, recipe=recipe, progress=False)
    assert path == final
    for (k, a), b in zip(model.state_dict().items(), snaps[2].state_dict().values()):
        assert torch.equal(a, b), k  # retrained, deterministically: the true final weights


def test_a_truncated_checkpoint_is_named_and_trained_again():
    x, y, recipe = _train_setup()
    model, path = load_or_train("smallresnet", x, y, 3, width=2, recipe=recipe, progress=False)
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.warns(DamagedEntryWarning, match=path.name):
        again, _ = load_or_train("smallresnet", x, y, 3, width=2, recipe=recipe, progress=False)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))


# -------------------------------------------------------------------------------- concurrency


def _compute_in_another_process(cache_dir: str, queue) -> None:
    os.environ["ASHLIB_CACHE"] = cache_dir
    torch.set_num_threads(1)
    out = activations(_net(), _data(), ["avgpool", "layer3"], batch_size=8)
    model, _ = load_or_train("smallresnet", *_train_setup()[:2], 3, width=2, recipe=_train_setup()[2],
                             progress=False)
    queue.put((cache.digest(out), cache.digest(model.state_dict())))


def test_two_processes_on_one_fresh_cache_both_succeed_with_identical_results():
    """Probe finding 4: fixed temporary names made one of two concurrent runs die."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_compute_in_another_process, args=(os.environ["ASHLIB_CACHE"], queue))
             for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=300)
    assert [p.exitcode for p in procs] == [0, 0]
    results = [queue.get(timeout=5) for _ in procs]
    assert results[0] == results[1]
    assert not list(Path(os.environ["ASHLIB_CACHE"]).rglob("*.tmp"))


def test_a_training_run_caches_every_epoch_so_snapshots_need_no_second_run(monkeypatch):
    import ashlib.assets.models as M

    x, y, recipe = _train_setup()
    model, _ = load_or_train("smallresnet", x, y, 3, width=2, recipe=recipe, progress=False)
    monkeypatch.setattr(M, "train", lambda *a, **k: pytest.fail("trained the same run again"))
    snaps = load_snapshots("smallresnet", x, y, 3, [1, 2], width=2, recipe=recipe, progress=False)
    assert all(torch.equal(a, b) for a, b in zip(snaps[2].state_dict().values(), model.state_dict().values()))


# ---------------------------------------------------------------------------- the size limit


def _feature_entry(name: str, n: int, used: float) -> Path:
    """A features entry of ``n`` float32 values (about 4n bytes plus a header), last used at ``used``."""
    path = cache.cache_dir("features") / f"{name}.pt"
    cache.save(path, torch.zeros(n), f"key-{name}")
    os.utime(path, (used, used))
    return path


def test_size_limits_parse_with_suffixes_and_bad_values_are_named(monkeypatch):
    assert cache.parse_size("300M") == 300 << 20 and cache.parse_size("2G") == 2 << 30
    assert cache.parse_size(" 1.5 GiB ") == 3 << 29 and cache.parse_size("4kb") == 4096
    assert cache.parse_size("1000") == 1000 and cache.parse_size("0") == 0
    assert cache.parse_size("none") is None and cache.parse_size("Unlimited") is None
    for bad in ("abc", "-1", "2X", "1e9", "nan", "300iB"):
        with pytest.raises(cache.ParameterError, match=f"ASHLIB_CACHE_MAX='{bad}' is not allowed: expected a size"):
            cache.parse_size(bad)
    monkeypatch.delenv("ASHLIB_CACHE_MAX", raising=False)
    assert cache.max_bytes() == 2 << 30  # the default
    monkeypatch.setenv("ASHLIB_CACHE_MAX", "300M")
    assert cache.max_bytes() == 300 << 20
    monkeypatch.setenv("ASHLIB_CACHE_MAX", "lots")
    with pytest.raises(cache.ParameterError, match="ASHLIB_CACHE_MAX='lots'"):
        cache.save(cache.cache_dir("features") / "x.pt", torch.zeros(3), "k")
    assert not _entries("features")  # nothing written
    with pytest.raises(cache.ParameterError, match="ASHLIB_CACHE_MAX='lots'"):
        activations(_net(), _data(), ["avgpool"])  # before the forward pass


def test_lru_victims_are_the_least_recently_used_until_the_rest_fits():
    e = [cache.Entry(Path(f"/c/features/{name}.pt"), "features", size, used)
         for name, size, used in (("a", 100, 3.0), ("b", 100, 1.0), ("c", 100, 2.0), ("d", 100, 4.0))]
    assert cache.lru_victims(e, 400) == []
    assert [v.path.stem for v in cache.lru_victims(e, 250)] == ["b", "c"]
    assert [v.path.stem for v in cache.lru_victims(e, 0)] == ["b", "c", "a", "d"]
    spared = cache.lru_victims(e, 250, spare=lambda v: v.path.stem == "b")
    assert [v.path.stem for v in spared] == ["c", "a"]


def test_saves_evict_least_recently_used_features_and_loads_count_as_use(monkeypatch):
    monkeypatch.setenv("ASHLIB_CACHE_MAX", "none")
    paths = {name: _feature_entry(name, 1000, 1_000_000 + i) for i, name in enumerate("abcd")}
    size = paths["a"].stat().st_size
    assert cache.load(paths["a"], "key-a") is not None  # now the most recently used
    monkeypatch.setenv("ASHLIB_CACHE_MAX", str(3 * size + size // 2))  # room for three entries
    _feature_entry("e", 1000, 2_000_000_000)
    assert {p.stem for p in _entries("features")} == {"a", "d", "e"}  # b and c were least recently used
    assert sum(p.stat().st_size for p in _entries("features")) <= cache.max_bytes()
    assert cache.load(paths["b"], "key-b") is None  # evicted: missing, no warning (warnings are not errors here)


def test_the_entry_just_written_and_one_in_use_are_never_evicted(monkeypatch):
    monkeypatch.setenv("ASHLIB_CACHE_MAX", "none")
    old = _feature_entry("old", 10, 1_000_000)
    busy = _feature_entry("busy", 10, 1_000_001)
    checkpoint = cache.cache_dir("models") / "net.pt"
    cache.save(checkpoint, torch.zeros(10), "net")
    os.utime(checkpoint, (1.0, 1.0))
    monkeypatch.setenv("ASHLIB_CACHE_MAX", "0")
    with cache.locked(busy):  # another computation holds its lock
        big = _feature_entry("big", 5000, 2_000_000_000)  # larger than the limit, kept all the same
    assert big.exists() and busy.exists() and not old.exists()
    assert checkpoint.exists()  # checkpoints are never evicted
    cache.save(cache.cache_dir("features") / "next.pt", torch.zeros(1), "next")
    assert [p.stem for p in _entries("features")] == ["next"]


def test_a_file_evicted_between_the_check_and_the_read_is_missing_not_damaged(monkeypatch, tmp_path):
    path = cache.save(tmp_path / "e.pt", torch.ones(2), "k")

    def gone(*_a, **_k):
        raise FileNotFoundError(path)

    monkeypatch.setattr(torch, "load", gone)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert cache.load(path, "k") is None


def _save_and_load_many(cache_dir: str, tag: str, queue) -> None:
    os.environ["ASHLIB_CACHE"], os.environ["ASHLIB_CACHE_MAX"] = cache_dir, "20K"
    warnings.simplefilter("error")  # a lost race must never look like a damaged entry
    folder = Path(cache_dir) / "features"
    for i in range(40):
        cache.save(folder / f"{tag}{i}.pt", torch.full((1000,), float(i)), f"{tag}{i}")  # about 4.5 KB each
        for j in range(max(0, i - 6), i + 1):
            value = cache.load(folder / f"{tag}{j}.pt", f"{tag}{j}")
            assert value is None or torch.equal(value, torch.full((1000,), float(j)))
    queue.put(tag)


def test_processes_evicting_concurrently_only_ever_miss_entries():
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_save_and_load_many, args=(os.environ["ASHLIB_CACHE"], tag, queue)) for tag in "xy"]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=300)
    assert [p.exitcode for p in procs] == [0, 0]
    assert sorted(queue.get(timeout=5) for _ in procs) == ["x", "y"]
    sizes = [p.stat().st_size for p in _entries("features")]
    assert sum(sizes) <= 20 * 1024 + max(sizes)  # the limit, give or take the last entry of the other process


# ------------------------------------------------------------------------------ list and clear


def test_list_and_clear_by_kind_and_age(monkeypatch):
    from ashlib.book.cli import main

    day = 86400.0
    now = 2_000_000_000.0
    _feature_entry("fresh", 10, now - 0.5 * day)
    _feature_entry("stale", 10, now - 10 * day)
    checkpoint = cache.save(cache.cache_dir("models") / "net.pt", torch.zeros(10), "net")
    os.utime(checkpoint, (now - 30 * day, now - 30 * day))
    (cache.cache_dir("data") / "download.tar").write_bytes(b"0" * 100)  # not an entry
    listed = cache.entries()
    assert [(e.kind, e.path.stem) for e in listed] == [("models", "net"), ("features", "stale"), ("features", "fresh")]
    text = cache.report()
    assert "features: 2 entries" in text and "models: 1 entries" in text and "(never evicted)" in text
    assert "limit (ASHLIB_CACHE_MAX): 2.0 GiB on features" in text and "data 100 B" in text

    assert [e.path.stem for e in cache.clear(older_than_days=5, now=now)] == ["net", "stale"]
    assert [e.path.stem for e in cache.entries()] == ["fresh"]
    _feature_entry("stale", 10, now - 10 * day)
    assert [e.path.stem for e in cache.clear(["models"])] == []
    with pytest.raises(cache.ParameterError, match="kind='data' is not allowed: expected one of 'features'"):
        cache.clear(["data"])
    with pytest.raises(cache.ParameterError, match="older_than_days=-1"):
        cache.clear(older_than_days=-1)

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["cache", "list"]) == 0
    assert "fresh.pt" in out.getvalue() and "stale.pt" in out.getvalue()
    with contextlib.redirect_stdout(out):
        assert main(["cache", "clear", "--kind", "features"]) == 0
    assert "removed 2 entries" in out.getvalue() and cache.entries() == []
    assert (cache.cache_dir("data") / "download.tar").exists()  # downloads are never cleared
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert main(["cache", "clear", "--kind", "weights"]) == 2
    assert "kind='weights' is not allowed" in err.getvalue()


# ------------------------------------------------------------------------------------ messages

def test_a_junk_entry_is_called_damaged_without_torchs_advice(tmp_path):
    """torch's message for a file it cannot unpickle says to retry with weights_only=False: wrong here
    (the entry is damaged, not unsafe), so the warning says what happened in our words."""
    path = tmp_path / "e.pt"
    path.write_bytes(os.urandom(300))
    with pytest.warns(DamagedEntryWarning) as record:
        assert cache.load(path, "key") is None
    message = str(record[0].message)
    assert "weights_only" not in message and "Re-running" not in message
    assert message.startswith(f"{path}: damaged cache entry (unreadable (") and "not a file ashlib wrote" in message


def test_a_key_mismatch_shows_where_two_long_keys_differ(tmp_path):
    path = tmp_path / "e.pt"
    stem = "model=smallresnet|width=16|expansion=512|data=" + "a" * 120 + "|recipe=adam,lr=0.001|epoch="
    cache.save(path, torch.ones(2), stem + "1")
    with pytest.warns(DamagedEntryWarning) as record:
        assert cache.load(path, stem + "12") is None
    message = str(record[0].message)
    assert "epoch=1'" in message and "epoch=12'" in message, message  # the difference is shown, not cut off
    assert f"(they differ from character {len(stem) + 1})" in message


def test_a_full_disk_says_no_space_and_names_the_entry(tmp_path, monkeypatch):
    """torch.save on a full disk raises 'RuntimeError: [enforce fail at inline_container.cc:672] .
    unexpected pos ...'; the cache says there is no space left, for which file, and what to do."""
    import errno
    import shutil as shutil_module
    from collections import namedtuple

    def full(obj, f, *args, **kwargs):
        Path(f).write_bytes(b"PK\x03\x04")
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 1152 vs 1046")

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(torch, "save", full)
    monkeypatch.setattr(shutil_module, "disk_usage", lambda path: usage(3 * 2**20, 3 * 2**20 - 1000, 1000))
    path = tmp_path / "features" / "e.pt"
    with pytest.raises(OSError) as err:
        cache.save(path, torch.zeros(1000, 512), "key")
    assert err.value.errno == errno.ENOSPC
    assert str(err.value).startswith(f"[Errno {errno.ENOSPC}] no space left to write the cache entry {path} (2.0 MiB")
    assert not path.exists() and not list(path.parent.glob(".*.tmp"))  # nothing half-written left
    # another error, with room on the disk, is not called a full disk
    monkeypatch.setattr(shutil_module, "disk_usage", lambda path: usage(2**40, 0, 2**40))
    with pytest.raises(RuntimeError, match="enforce fail"):
        cache.save(path, torch.zeros(10), "key")


def test_fault_injection_writes_a_well_formed_entry_that_only_the_row_check_refuses(tmp_path):
    """benchmarks/fault_injection.py's 'wrong rows (well-formed)' fault: format, key and digest right,
    so only ``check`` (the row count the features module passes) can catch it."""
    import importlib.util
    import random

    spec = importlib.util.spec_from_file_location("fault_injection", Path(__file__).parents[2] / "benchmarks" /
                                                  "fault_injection.py")
    faults = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(faults)
    path = tmp_path / "e.pt"
    cache.save(path, torch.arange(20.0).reshape(10, 2), "key")
    faults.damage(path, "wrong rows (well-formed)", [], random.Random(0))
    value = cache.load(path, "key")
    assert value is not None and value.shape == (5, 2)  # well-formed: the format checks let it through
    with pytest.warns(DamagedEntryWarning, match="rows"):
        assert cache.load(path, "key", check=lambda v: None if len(v) == 10 else f"{len(v)} rows, expected 10") is None
    assert "wrong rows (well-formed)" in faults.FAULTS and faults.FEATURES_ONLY == ("wrong rows (well-formed)",)
