from __future__ import annotations

import pytest
import torch

from ashlib import ParameterError
from ashlib.assets.features import activations, data_digest, model_digest, replay_start, run_after, stage_input
from ashlib.assets.models import build_model
from ashlib.assets.placement import placeable_layers, shaping_at
from ashlib.methods.shaping import make_shaper


@pytest.fixture
def model():
    return build_model("smallresnet", 10, width=2).eval()


@pytest.fixture
def x():
    return torch.rand(20, 1, 28, 28, generator=torch.Generator().manual_seed(0))


def full_forward_with_hook(model, x, layer, shape):
    with torch.no_grad(), shaping_at(model, layer, shape):
        return model(x)


def test_activations_match_a_hooked_forward_pass(model, x):
    acts = activations(model, x, ["layer2", "avgpool", "fc"], batch_size=7)
    seen = {}
    hooks = [model.get_submodule(n).register_forward_hook(lambda m, i, o, n=n: seen.setdefault(n, o))
             for n in ("layer2", "avgpool")]
    with torch.no_grad():
        logits = model(x)
    for h in hooks:
        h.remove()
    torch.testing.assert_close(acts["layer2"], seen["layer2"])
    torch.testing.assert_close(acts["avgpool"], seen["avgpool"])
    torch.testing.assert_close(acts["fc"], logits)


def test_cache_is_reused_and_keyed_by_weights_and_data(model, x, monkeypatch):
    first = activations(model, x, ["avgpool"])["avgpool"]
    monkeypatch.setattr("ashlib.assets.features._forward_collect",
                        lambda *a, **k: pytest.fail("recomputed a cached activation"))
    torch.testing.assert_close(activations(model, x, ["avgpool"])["avgpool"], first)
    monkeypatch.undo()
    with torch.no_grad():
        model.fc.weight.add_(1.0)  # other weights: the fc change does not alter avgpool, but the key does
    digest_changed = activations(model, x, ["fc"])["fc"]
    torch.testing.assert_close(digest_changed, model(x).detach())
    other_data = activations(model, x.flip(0), ["avgpool"])["avgpool"]
    torch.testing.assert_close(other_data, first.flip(0))


def test_model_digest_tracks_weights(model):
    before = model_digest(model)
    with torch.no_grad():
        model.layer1.conv1.weight[0, 0, 0, 0] += 1e-3
    assert model_digest(model) != before


@pytest.mark.parametrize("placement", ["avgpool", "layer4.merge", "layer3", "layer2.merge", "stem"])
def test_replaying_from_cache_equals_the_hooked_network(model, x, placement):
    shape = make_shaper("ash_s", 80)
    expected = full_forward_with_hook(model, x, placement, shape)
    cached_layer = replay_start(model, [placement])
    assert cached_layer == (placement if "." not in placement else stage_input(model, placement))
    h = activations(model, x, [cached_layer])[cached_layer]
    got = run_after(model, cached_layer, h, hooks=[(placement, shape)], batch_size=6)
    torch.testing.assert_close(got, expected)


def test_several_hooks_compose_like_hooks_on_the_full_network(model, x):
    clip, shape = make_shaper("react", threshold=0.5), make_shaper("ash_p", 70)
    with torch.no_grad(), shaping_at(model, "layer3.merge", shape), shaping_at(model, "avgpool", clip):
        expected = model(x)
    start = replay_start(model, ["avgpool", "layer3.merge"])
    assert start == "layer2"
    h = activations(model, x, [start])[start]
    got = run_after(model, start, h, hooks=[("layer3.merge", shape), ("avgpool", clip)])
    torch.testing.assert_close(got, expected)


def test_a_hook_before_the_cached_layer_is_refused(model, x):
    h = activations(model, x, ["layer3"])["layer3"]
    with pytest.raises(ParameterError, match="placement='layer2.merge' is not allowed"):
        run_after(model, "layer3", h, hooks=[("layer2.merge", lambda t: t)])


def test_datasets_with_a_cache_key_are_batched_and_cached(model, x):
    class Images(torch.utils.data.Dataset):
        cache_key = "test-images-v1"

        def __len__(self):
            return len(x)

        def __getitem__(self, i):
            return x[i]

    from_tensor = activations(model, x, ["avgpool"], batch_size=8)["avgpool"]
    from_dataset = activations(model, Images(), ["avgpool"], batch_size=8)["avgpool"]
    torch.testing.assert_close(from_dataset, from_tensor)
    assert data_digest(Images()) != data_digest(x)
    with pytest.raises(ParameterError, match="no `cache_key`"):
        activations(model, torch.utils.data.TensorDataset(x), ["avgpool"])


def test_run_after_without_shaping_is_the_plain_network(model, x):
    h = activations(model, x, ["layer3"])["layer3"]
    torch.testing.assert_close(run_after(model, "layer3", h), model(x).detach())
    torch.testing.assert_close(run_after(model, None, x), model(x).detach())


def test_hook_is_removed_even_when_the_forward_pass_fails(model, x):
    def boom(_):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"), shaping_at(model, "avgpool", boom):
        model(x)
    assert not model.avgpool._forward_hooks
    model(x)  # works again


def test_unknown_layer_lists_what_is_allowed(model, x):
    assert "layer4.merge" in placeable_layers(model)
    with pytest.raises(ParameterError, match="layer='layer9'.*'avgpool'"):
        activations(model, x, ["layer9"])
    with pytest.raises(ParameterError, match="layer='nope'"):
        with shaping_at(model, "nope", lambda t: t):
            pass


class _Images(torch.utils.data.Dataset):
    """A Dataset of image tensors with a cache key (module level: worker processes pickle it)."""

    def __init__(self, x, key):
        self.x, self.cache_key = x, key

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i]


def test_worker_processes_give_the_same_batches_in_the_same_order(model, x):
    from ashlib.assets.features import batches, default_num_workers

    data = _Images(x, "workers-v1")
    alone = torch.cat(list(batches(data, 6, num_workers=0)))
    pooled = torch.cat(list(batches(data, 6, num_workers=2)))
    assert torch.equal(alone, x) and torch.equal(pooled, x)
    assert 1 <= default_num_workers() <= 8
    acts = activations(model, data, ["avgpool"], batch_size=6, cache=False, num_workers=2)["avgpool"]
    torch.testing.assert_close(acts, activations(model, x, ["avgpool"], batch_size=6, cache=False)["avgpool"])


def test_run_after_replays_in_batches_of_the_given_size(model, x):
    """Issue 10: run_after replayed at a fixed batch of 1024 whatever the run's batch_size."""
    h = activations(model, x, ["layer2"], cache=False)["layer2"]
    sizes = []
    hook = model.fc.register_forward_hook(lambda _m, i, _o: sizes.append(len(i[0])))
    try:
        out = run_after(model, "layer2", h, batch_size=8)
    finally:
        hook.remove()
    assert sizes == [8, 8, 4]
    torch.testing.assert_close(out, model(x).detach())


# ------------------------------------------------------------------------------ reduce before caching


def _scores(out):
    """A per-sample reduction returning a mapping (like misp's nine scores)."""
    return {"max": out.flatten(1).amax(dim=1), "sum": out.flatten(1).sum(dim=1)}


@pytest.mark.parametrize("batch_size", [7, 20])
def test_reduced_activations_equal_the_reduced_whole_output_bit_for_bit(model, x, batch_size):
    layers = ["stem", "layer2", "layer3", "avgpool", "fc"]
    whole = activations(model, x, layers, batch_size=batch_size)
    pooled = activations(model, x, layers, batch_size=batch_size, reduce="spatial_mean")
    for layer in layers:
        a = whole[layer]
        assert torch.equal(pooled[layer], a.mean(dim=(2, 3)) if a.ndim == 4 else a.flatten(1)), layer
    mapped = activations(model, x, ["layer3"], batch_size=batch_size, reduce=("test_scores", _scores))["layer3"]
    want = _scores(whole["layer3"])
    assert list(mapped) == ["max", "sum"] and all(torch.equal(mapped[k], want[k]) for k in want)


def test_reduced_entries_are_cached_apart_small_and_reused(model, x, monkeypatch):
    from ashlib import cache_dir

    whole = activations(model, x, ["layer1"])["layer1"]
    pooled = activations(model, x, ["layer1"], reduce="spatial_mean")["layer1"]
    mapped = activations(model, x, ["layer1"], reduce=("test_scores", _scores))["layer1"]
    files = {p.name.rsplit("-", 1)[0]: p.stat().st_size for p in cache_dir("features").glob("*.pt")}
    assert set(files) == {"layer1", "layer1-spatial_mean", "layer1-test_scores"}
    assert files["layer1-spatial_mean"] * 20 < files["layer1"]  # 2 values per image instead of 2 x 28 x 28
    monkeypatch.setattr("ashlib.assets.features._forward_collect",
                        lambda *a, **k: pytest.fail("recomputed a cached reduction"))
    assert torch.equal(activations(model, x, ["layer1"], reduce="spatial_mean")["layer1"], pooled)
    again = activations(model, x, ["layer1"], reduce=("test_scores", _scores))["layer1"]
    assert all(torch.equal(again[k], mapped[k]) for k in mapped)
    assert torch.equal(activations(model, x, ["layer1"])["layer1"], whole)


def test_a_bad_reduction_is_refused(model, x):
    with pytest.raises(ParameterError, match="reduce='median' is not allowed: expected one of 'spatial_mean'"):
        activations(model, x, ["layer1"], reduce="median")
    for bad in (("has space", _scores), ("ok", "not callable"), _scores):
        with pytest.raises(ParameterError, match="reduce=.* is not allowed"):
            activations(model, x, ["layer1"], reduce=bad)
