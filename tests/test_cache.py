"""Self-verifying cache entries (ashlib.cache) and their use for activations and checkpoints.

Each finding of the reliability probe is reproduced here: a damaged entry (rows cut, bytes flipped,
file truncated or replaced by junk, another entry copied over it) is named, discarded and recomputed,
so the numbers are those of a fresh computation; two processes on one fresh cache both succeed with
identical results.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import warnings
from pathlib import Path

import pytest
import torch

from ashlib import cache
from ashlib.cache import DamagedEntryWarning
from ashlib.features import activations
from ashlib.models import TrainRecipe, build_model, checkpoint_path, load_or_train, load_snapshots


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
    import ashlib.models as M

    x, y, recipe = _train_setup()
    model, _ = load_or_train("smallresnet", x, y, 3, width=2, recipe=recipe, progress=False)
    monkeypatch.setattr(M, "train", lambda *a, **k: pytest.fail("trained the same run again"))
    snaps = load_snapshots("smallresnet", x, y, 3, [1, 2], width=2, recipe=recipe, progress=False)
    assert all(torch.equal(a, b) for a, b in zip(snaps[2].state_dict().values(), model.state_dict().values()))
