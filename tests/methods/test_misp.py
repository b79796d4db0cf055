"""MiSP thesis methods: log-softmax ResNet, entropy loss, nine intermediate scores, Mahalanobis per
layer and its ensemble, OOD mixtures (ashlib.methods.misp; model and training parts in ashlib.assets.models)."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import ashlib.assets.models as models
from ashlib import ParameterError
from ashlib.methods.misp import (LOG_ASP_NAMES, SCORE_NAMES, fit_layer_mahalanobis, intermediate_scores, layer_mahalanobis,
                         layer_scores, mahalanobis_ensemble, mahalanobis_layers, mix_sets, position_probabilities,
                         score_table)
from ashlib.assets.models import (MODELS, TRAINABLE, TrainRecipe, build_model, entropy_loss, load_or_train,
                           logsoftmax_layers, pixel_entropy, random_shift, train, training_loss)
from ashlib.methods.scores import fit_mahalanobis, mahalanobis, misp, msp

LS_LAYERS = ["layer1.relu", "layer2.relu", "layer3.relu", "layer4.relu"]


# ------------------------------------------------------------------------------ the nine scores

# probs[n][h][w] = the channel distribution (C = 3) at position (h, w) of sample n
PROBS = [
    [[[0.7, 0.2, 0.1], [0.5, 0.3, 0.2]],
     [[0.4, 0.4, 0.2], [0.8, 0.15, 0.05]]],
    [[[1 / 3, 1 / 3, 1 / 3], [0.6, 0.3, 0.1]],
     [[0.2, 0.2, 0.6], [0.9, 0.05, 0.05]]],
]


def _hand_map() -> torch.Tensor:
    """(N=2, C=3, H=2, W=2) log-probabilities of PROBS."""
    return torch.tensor(PROBS, dtype=torch.float64).permute(0, 3, 1, 2).log()


def test_nine_scores_match_hand_computed_values():
    # sample 0: per-position max (MSP) .7 .5 .4 .8; per-position min (MiSP) .1 .2 .2 .05
    #   max of MSP .8, min of MSP .4, avg of MSP 2.4/4 = .6
    #   MiSP aggregated on the probabilities, then negated: max -> -.2, min -> -.05, avg -> -.55/4 = -.1375
    # sample 1: per-position max 1/3 .6 .6 .9; per-position min 1/3 .1 .2 .05
    #   max of MSP .9, min of MSP 1/3, avg of MSP (1/3 + 2.1)/4 = .6083333
    #   max of MiSP -1/3, min of MiSP -.05, avg of MiSP -(1/3 + .35)/4 = -.1708333
    # ASP: every position's mean probability is 1/3 (C = 3), so all three are 1/3 for both samples
    expected = {
        "max of MSP": [0.8, 0.9], "min of MSP": [0.4, 1 / 3], "avg of MSP": [0.6, (1 / 3 + 2.1) / 4],
        "max of MiSP": [-0.2, -1 / 3], "min of MiSP": [-0.05, -0.05],
        "avg of MiSP": [-0.1375, -(1 / 3 + 0.35) / 4],
        "max of ASP": [1 / 3, 1 / 3], "min of ASP": [1 / 3, 1 / 3], "avg of ASP": [1 / 3, 1 / 3],
    }
    x = _hand_map()
    for log_probs in (x, x + torch.randn(2, 1, 2, 2, dtype=torch.float64)):  # a per-position shift: same softmax
        got = intermediate_scores(log_probs)
        assert list(got) == list(SCORE_NAMES)
        for name, values in expected.items():
            torch.testing.assert_close(got[name], torch.tensor(values, dtype=torch.float64), msg=name)
    torch.testing.assert_close(position_probabilities(x), x.exp())


def test_log_asp_is_the_negated_mean_log_probability():
    # per position mean_c log p_c; e.g. sample 0 at (0, 0): (ln .7 + ln .2 + ln .1) / 3
    per_pos = [[sum(math.log(v) for v in PROBS[n][h][w]) / 3 for h in range(2) for w in range(2)] for n in range(2)]
    got = intermediate_scores(_hand_map(), log_asp=True)
    assert list(got) == list(SCORE_NAMES + LOG_ASP_NAMES)
    for agg, fn in (("max", max), ("min", min), ("avg", lambda v: sum(v) / len(v))):
        torch.testing.assert_close(got[f"{agg} of log-ASP"],
                                   torch.tensor([-fn(v) for v in per_pos], dtype=torch.float64))


def test_asp_is_constant_one_over_c_and_scores_auroc_50():
    torch.manual_seed(0)
    id_map, ood_map = torch.randn(30, 5, 3, 3) * 4, torch.randn(20, 5, 3, 3)
    # the claim: the mean over channels of a softmax is 1/C at every position, up to rounding
    torch.testing.assert_close(position_probabilities(id_map).mean(dim=1), torch.full((30, 3, 3), 0.2))
    s_id, s_ood = intermediate_scores(id_map), intermediate_scores(ood_map)
    for agg in ("max", "min", "avg"):
        assert torch.equal(s_id[f"{agg} of ASP"], torch.full((30,), 0.2))  # exactly constant
    table = score_table({"l": s_id}, {"l": s_ood})
    assert list(table.columns) == list(SCORE_NAMES)
    assert (table.loc["l", ["max of ASP", "min of ASP", "avg of ASP"]] == 50.0).all()
    assert table.loc["l", "min of MiSP"] > 50  # peaked (x4) maps are the ID ones: MiSP orientation


def test_final_layer_scores_reduce_to_msp_and_misp():
    logits = torch.randn(7, 10) * 3
    got = intermediate_scores(logits)  # (N, C): one position
    for agg in ("max", "min", "avg"):
        torch.testing.assert_close(got[f"{agg} of MSP"], msp(logits))
        torch.testing.assert_close(got[f"{agg} of MiSP"], misp(logits))


def test_bad_maps_are_refused():
    with pytest.raises(ParameterError, match="expected a \\(N, C, H, W\\)"):
        intermediate_scores(torch.zeros(2, 3, 4))
    with pytest.raises(ParameterError, match="C >= 2"):
        intermediate_scores(torch.zeros(2, 1, 4, 4))


# ------------------------------------------------------------------------------ the models


def _outputs(model, x, layers):
    seen = {}
    handles = [model.get_submodule(n).register_forward_hook(lambda _m, _i, o, n=n: seen.setdefault(n, o))
               for n in layers]
    logits = model(x)
    for h in handles:
        h.remove()
    return logits, seen


def test_logsoftmax_model_shapes_and_log_probabilities():
    assert "smallresnet_logsoftmax" in MODELS and "smallresnet_logsoftmax" in TRAINABLE
    model = build_model("smallresnet_logsoftmax", 10, width=4, seed=0).eval()
    assert logsoftmax_layers(model) == LS_LAYERS
    with torch.no_grad():
        logits, seen = _outputs(model, torch.rand(3, 1, 28, 28), LS_LAYERS)
    assert logits.shape == (3, 10)
    shapes = {n: tuple(o.shape) for n, o in seen.items()}
    assert shapes == {"layer1.relu": (3, 4, 28, 28), "layer2.relu": (3, 8, 14, 14),
                      "layer3.relu": (3, 16, 7, 7), "layer4.relu": (3, 32, 4, 4)}
    for name, out in seen.items():  # log-probabilities over the channels at every position
        assert (out <= 0).all(), name
        torch.testing.assert_close(out.exp().sum(dim=1), torch.ones(out.shape[0], *out.shape[2:]))
    # the block output is the log-softmax of the residual sum
    with torch.no_grad():
        _, both = _outputs(model, torch.rand(2, 1, 28, 28), ["layer2.merge", "layer2"])
    torch.testing.assert_close(both["layer2"], torch.log_softmax(both["layer2.merge"], dim=1))


def test_relu_model_is_untouched_and_shares_initial_weights():
    relu = build_model("smallresnet", 10, width=4, seed=3)
    logsm = build_model("smallresnet_logsoftmax", 10, width=4, seed=3)
    assert logsoftmax_layers(relu) == []
    assert not any(isinstance(m, nn.LogSoftmax) for m in relu.modules())
    for name in ("layer1", "layer2", "layer3", "layer4"):
        assert type(relu.get_submodule(name).relu) is nn.ReLU
    assert models.block_merge_layers(logsm) == models.block_merge_layers(relu)
    a, b = relu.state_dict(), logsm.state_dict()
    assert list(a) == list(b)
    for k in a:
        assert torch.equal(a[k], b[k]), k
    x = torch.rand(2, 1, 28, 28)
    assert not torch.allclose(relu.eval()(x), logsm.eval()(x))


# ------------------------------------------------------------------------------ entropy loss


def test_pixel_entropy_and_entropy_loss_by_hand():
    # map A (N=1, C=2, H=1, W=2): p = (.5, .5) -> ln 2 = 0.693147; p = (.9, .1) -> -(.9 ln .9 + .1 ln .1) = 0.325083
    a = torch.tensor([[[[0.5, 0.9]], [[0.5, 0.1]]]], dtype=torch.float64).log()
    # map B (N=1, C=4, H=W=1): uniform -> ln 4 = 1.386294
    b = torch.full((1, 4, 1, 1), 0.25, dtype=torch.float64).log()
    torch.testing.assert_close(pixel_entropy(a), torch.tensor([[[0.693147, 0.325083]]], dtype=torch.float64),
                               atol=1e-6, rtol=0)
    # the thesis's sum over layers and positions: 0.693147 + 0.325083 + 1.386294 = 2.404524
    torch.testing.assert_close(entropy_loss([a, b]), torch.tensor(2.404524, dtype=torch.float64), atol=1e-6, rtol=0)
    # per sample, averaged over the batch: a second sample, uniform everywhere, has 2 ln 2 + ln 4
    a2 = torch.cat([a, torch.full((1, 2, 1, 2), 0.5, dtype=torch.float64).log()])
    b2 = torch.cat([b, b])
    torch.testing.assert_close(entropy_loss([a2, b2]), torch.tensor((2.404524 + 2.772589) / 2, dtype=torch.float64),
                               atol=1e-6, rtol=0)


def test_training_loss_adds_the_entropy_of_every_logsoftmax_layer():
    from ashlib.assets.features import activations

    model = build_model("smallresnet_logsoftmax", 4, width=2, seed=1).eval()
    x, y = torch.rand(6, 1, 28, 28), torch.tensor([0, 1, 2, 3, 0, 1])
    acts = activations(model, x, LS_LAYERS, cache=False)
    # the thesis: summed over every position of every layer, per sample; averaged over the batch
    entropies = [(-(a.exp() * a).sum(dim=1)).sum(dim=(1, 2)).mean() for a in acts.values()]
    ce = nn.functional.cross_entropy(model(x), y)
    with torch.no_grad():
        torch.testing.assert_close(training_loss(model, x, y, 0.0), ce)
        torch.testing.assert_close(training_loss(model, x, y, 0.3), ce + 0.3 * sum(entropies))
    assert not model.get_submodule("layer1.relu")._forward_hooks  # hooks removed
    with pytest.raises(ParameterError, match="entropy_weight=0.3"):
        training_loss(build_model("smallresnet", 4, width=2), x, y, 0.3)
    with pytest.raises(ParameterError, match="entropy_weight=-1"):
        TrainRecipe(entropy_weight=-1)


def _reference_train(model, x, y, recipe, entropy_weight):
    """The training loop as it was before the entropy loss, plus an independent entropy term, on the
    recipe's threads (a sum split among other threads rounds differently)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(recipe.threads)
    try:
        return _reference_loop(model, x, y, recipe, entropy_weight)
    finally:
        torch.set_num_threads(threads)


def _reference_loop(model, x, y, recipe, entropy_weight):
    torch.manual_seed(recipe.seed)
    gen = torch.Generator().manual_seed(recipe.seed)
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=recipe.lr, momentum=0.9, nesterov=True,
                          weight_decay=recipe.weight_decay)
    steps = recipe.epochs * -(-len(x) // recipe.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=recipe.lr, total_steps=steps)
    seen = []
    handles = [model.get_submodule(n).register_forward_hook(lambda _m, _i, o: seen.append(o)) for n in LS_LAYERS]
    for _ in range(recipe.epochs):
        order = torch.randperm(len(x), generator=gen)
        for i in range(0, len(x), recipe.batch_size):
            idx = order[i:i + recipe.batch_size]
            seen.clear()
            loss = nn.functional.cross_entropy(model(random_shift(x[idx], recipe.shift, gen)), y[idx])
            if entropy_weight:
                loss = loss + entropy_weight * sum(-(o.exp() * o).sum(1).sum((1, 2)).mean() for o in seen)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    for h in handles:
        h.remove()
    return model.eval()


def test_lambda_zero_is_plain_training_and_lambda_changes_it():
    x, y = torch.rand(24, 1, 28, 28), torch.arange(24) % 4
    states = {}
    for lam in (0.0, 0.5):
        recipe = TrainRecipe(epochs=1, batch_size=8, entropy_weight=lam)
        got = train(build_model("smallresnet_logsoftmax", 4, width=2, seed=0), x, y, recipe, progress=False)
        ref = _reference_train(build_model("smallresnet_logsoftmax", 4, width=2, seed=0), x, y, recipe, lam)
        for k, v in got.state_dict().items():
            if lam == 0:
                assert torch.equal(v, ref.state_dict()[k]), k  # bit-identical to plain training
            else:
                torch.testing.assert_close(v, ref.state_dict()[k], rtol=1e-4, atol=1e-6, msg=k)
        states[lam] = got.state_dict()
    assert not torch.equal(states[0.0]["layer1.conv1.weight"], states[0.5]["layer1.conv1.weight"])
    with pytest.raises(ParameterError, match="without nn.LogSoftmax"):
        train(build_model("smallresnet", 4, width=2), x, y, TrainRecipe(epochs=1, entropy_weight=0.1),
              progress=False)


def test_cache_key_unchanged_for_smallresnet_and_changes_with_architecture_and_lambda(monkeypatch):
    # names computed with ashlib/assets/models.py when the thread count entered the key (3baca2e; before it,
    # and before the log-softmax model and entropy_weight existed, the first was ...-79109acbfa653849.pt)
    monkeypatch.setattr(torch, "__version__", "2.14.1")  # the key includes torch's version
    monkeypatch.setattr(models, "train", lambda model, *a, **k: model.eval())
    x = torch.linspace(0, 1, 2 * 28 * 28).reshape(2, 1, 28, 28)
    y = torch.tensor([3, 7])

    def name(model="smallresnet", **recipe):
        return load_or_train(model, x, y, 10, width=2, recipe=TrainRecipe(**recipe), progress=False)[1].name

    assert name() == "smallresnet-w2-5d294f0e9adc0856.pt"
    assert name(epochs=1, batch_size=2, seed=5) == "smallresnet-w2-eaca36fd84e65cf4.pt"
    assert name(entropy_weight=0.0) == "smallresnet-w2-5d294f0e9adc0856.pt"
    names = {name("smallresnet_logsoftmax", entropy_weight=w) for w in (0.0, 0.01, 0.1)}
    assert len(names) == 3 and all(n.startswith("smallresnet_logsoftmax-w2-") for n in names)
    assert {n.split("-")[-1] for n in names}.isdisjoint({"5d294f0e9adc0856.pt"})


# ------------------------------------------------------------------------------ scores of a model


def test_layer_scores_are_intermediate_scores_of_each_logsoftmax_layer():
    model = build_model("smallresnet_logsoftmax", 10, width=2, seed=0).eval()
    x = torch.rand(5, 1, 28, 28)
    got = layer_scores(model, x)
    assert list(got) == LS_LAYERS
    with torch.no_grad():
        _, seen = _outputs(model, x, LS_LAYERS)
    for layer in LS_LAYERS:
        want = intermediate_scores(seen[layer])
        for name in SCORE_NAMES:
            torch.testing.assert_close(got[layer][name], want[name])
    with pytest.raises(ParameterError, match="no nn.LogSoftmax"):
        layer_scores(build_model("smallresnet", 10, width=2), x)


def _old_layer_scores(model, x, layers, batch_size, log_asp):
    """layer_scores before it reduced batch by batch: each layer's whole output, then the scores."""
    from ashlib.assets.features import activations

    return {layer: intermediate_scores(activations(model, x, [layer], batch_size=batch_size, cache=False)[layer],
                                       log_asp=log_asp) for layer in layers}


@pytest.mark.parametrize("log_asp", [False, True])
def test_scores_reduced_batch_by_batch_equal_the_old_whole_output_path_bit_for_bit(log_asp):
    from ashlib import cache_dir

    model = build_model("smallresnet_logsoftmax", 10, width=4, seed=0).eval()
    x = torch.rand(70, 1, 28, 28, generator=torch.Generator().manual_seed(3))
    old = _old_layer_scores(model, x, LS_LAYERS, 16, log_asp)
    for cache in (True, True, False):  # computed and cached, read from the cache, computed uncached
        got = layer_scores(model, x, batch_size=16, cache=cache, log_asp=log_asp)
        assert list(got) == LS_LAYERS
        for layer in LS_LAYERS:
            assert list(got[layer]) == list(old[layer])
            for name, want in old[layer].items():
                assert torch.equal(got[layer][name], want), (layer, name)
    # only the scores are cached (9 or 12 values per image and layer), never a layer's whole output
    entries = sorted(cache_dir("features").glob("*.pt"))
    assert len(entries) == len(LS_LAYERS) and all("misp_scores" in p.name for p in entries)
    whole = 4 * 70 * (4 * 28 * 28 + 8 * 14 * 14 + 16 * 7 * 7 + 32 * 4 * 4)  # float32 outputs of the 4 layers
    assert sum(p.stat().st_size for p in entries) < whole / 20


def test_pooled_features_equal_the_mean_of_the_whole_output_bit_for_bit():
    from ashlib.assets.features import activations
    from ashlib.methods.misp import pooled_features

    model = build_model("smallresnet_logsoftmax", 4, width=4, seed=1).eval()
    x = torch.rand(50, 1, 28, 28, generator=torch.Generator().manual_seed(4))
    layers = ["stem", "layer1", "layer2", "layer3", "layer4", "avgpool"]
    for cache in (True, True, False):
        got = pooled_features(model, x, layers, batch_size=16, cache=cache)
        assert list(got) == layers
        for layer in layers:
            whole = activations(model, x, [layer], batch_size=16, cache=False)[layer]
            assert torch.equal(got[layer], whole.mean(dim=(2, 3)) if whole.ndim == 4 else whole.flatten(1)), layer


def _pooled_by_hand(model, x, layers):
    with torch.no_grad():
        _, seen = _outputs(model, x, layers)
    return {n: seen[n].mean(dim=(2, 3)) for n in layers}


def test_mahalanobis_per_layer_and_ensemble_use_id_train_statistics():
    torch.manual_seed(0)
    model = build_model("smallresnet_logsoftmax", 4, width=2, seed=0).eval()
    x_train, y_train = torch.rand(40, 1, 28, 28), torch.arange(40) % 4
    x_test = torch.rand(12, 1, 28, 28) * 0.5
    layers = ["stem", "layer1", "layer2", "layer3", "layer4"]
    assert mahalanobis_layers(model) == layers
    fit = fit_layer_mahalanobis(model, x_train, y_train)
    assert fit.layers == tuple(layers)
    got = layer_mahalanobis(model, x_test, fit)

    f_train, f_test = _pooled_by_hand(model, x_train, layers), _pooled_by_hand(model, x_test, layers)
    z = []
    for layer in layers:
        hand_fit = fit_mahalanobis(f_train[layer], y_train, 4)
        torch.testing.assert_close(got[layer], mahalanobis(f_test[layer], hand_fit))
        s_train = mahalanobis(f_train[layer], hand_fit).double()
        assert fit.train_mean[layer] == pytest.approx(float(s_train.mean()))
        assert fit.train_std[layer] == pytest.approx(float(s_train.std()))
        z.append((got[layer].double() - s_train.mean()) / s_train.std())
    ensemble = mahalanobis_ensemble(got, fit)
    torch.testing.assert_close(ensemble, torch.stack(z).mean(0).float())
    # no statistics of the scored data: a subset scores the same
    part = mahalanobis_ensemble(layer_mahalanobis(model, x_test[:3], fit), fit)
    torch.testing.assert_close(part, ensemble[:3])
    assert ensemble.mean().abs() > 1e-3  # not standardised by its own (test) mean
    with pytest.raises(ParameterError, match="layers \\['layer4'\\]"):
        mahalanobis_ensemble({k: v for k, v in got.items() if k != "layer4"}, fit)


# ------------------------------------------------------------------------------ mixtures


def _sets():
    return {"a": torch.arange(10.0)[:, None], "b": 100 + torch.arange(20.0)[:, None],
            "c": 200 + torch.arange(5.0)[:, None]}


def test_mix_sets_proportions_and_determinism():
    sets = _sets()
    mixed, source = mix_sets(sets, {"a": 0.3, "b": 0.7}, 10, seed=1, return_sources=True)
    v = mixed[:, 0]
    assert mixed.shape == (10, 1)
    assert int((v < 100).sum()) == 3 and int(((v >= 100) & (v < 200)).sum()) == 7
    assert torch.equal(source, (v >= 100).long())
    assert len(set(v.tolist())) == 10  # drawn without replacement
    assert torch.equal(mixed, mix_sets(sets, {"a": 0.3, "b": 0.7}, 10, seed=1))
    other = mix_sets(sets, {"a": 0.3, "b": 0.7}, 10, seed=2)
    assert set(mixed[:, 0].tolist()) != set(other[:, 0].tolist())  # other samples, not only another order
    # largest remainder: 10/3 each -> 4, 3, 3 (the tie goes to the set named first)
    v = mix_sets(sets, {"a": 1 / 3, "b": 1 / 3, "c": 1 / 3}, 10, seed=0)[:, 0]
    assert [int((v // 100 == k).sum()) for k in (0, 1, 2)] == [4, 3, 3]
    # a growing share of one set is nested
    b50 = set(mix_sets(sets, {"a": 0.5, "b": 0.5}, 10)[:, 0].tolist()) - set(range(10))
    b70 = set(mix_sets(sets, {"a": 0.3, "b": 0.7}, 10)[:, 0].tolist()) - set(range(10))
    assert len(b50) == 5 and b50 < b70
    assert torch.equal(mix_sets(sets, {"c": 1.0}, 5).sort(0).values, sets["c"])


def test_mix_sets_refuses_bad_proportions():
    sets = _sets()
    with pytest.raises(ParameterError, match="sum to 0.9"):
        mix_sets(sets, {"a": 0.4, "b": 0.5}, 10)
    with pytest.raises(ParameterError, match="has 5 samples"):
        mix_sets(sets, {"c": 1.0}, 6)
    with pytest.raises(ParameterError, match="'d'"):
        mix_sets(sets, {"d": 1.0}, 6)
