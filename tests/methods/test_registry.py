"""The registry: one entry per method, and evaluate serving every chapter's detectors through it."""
from __future__ import annotations

import sys
import types

import pytest
import torch

from ashlib import ParameterError
from ashlib.evaluation import experiments
from ashlib.stats import metrics
from ashlib.methods import misp, nac, registry, scores
from ashlib.book import plots
from ashlib.assets.models import TrainRecipe, build_model, train


@pytest.fixture(scope="module")
def bench(band_benchmark):
    return band_benchmark(1)


@pytest.fixture(scope="module")
def ctx(bench):
    model = train(build_model("smallresnet", 3, width=2), bench.x_train, bench.y_train,
                  TrainRecipe(epochs=2, batch_size=30), progress=False)
    return experiments.build_context(model, bench, batch_size=32)


def test_every_entry_is_named_once_labelled_and_cited():
    shapings, scores = registry.shapings(), registry.scores()
    assert not set(shapings) & set(scores)
    assert {"ash_p", "ash_b", "ash_s", "ash_rand"} <= set(shapings)
    assert {"msp", "energy", "odin", "mahalanobis", "mahalanobis_penultimate", "nac_ue", "misp",
            "misp_layer", "mahalanobis_ensemble"} <= set(scores)
    for entry in [*shapings.values(), *scores.values()]:
        assert entry.label and entry.cite and callable(entry.shape if hasattr(entry, "shape") else entry.score)
    assert experiments.SCORES == tuple(scores) and experiments.SHAPINGS == ("none", *shapings)
    assert {row["name"] for row in registry.describe()} == set(shapings) | set(scores)
    with pytest.raises(ParameterError, match="shaping='ash_x'"):
        registry.shaping("ash_x")
    with pytest.raises(ParameterError, match="score='knn'"):
        registry.score("knn")


@pytest.mark.parametrize("name", [n for n, e in registry.scores().items() if e.of_logits is not None])
def test_a_score_of_the_logits_alone_gives_each_row_the_same_value_in_any_batch(name):
    """What experiments._evaluate_many relies on to score many methods' logits in one call."""
    entry = registry.score(name)
    g = torch.Generator().manual_seed(0)
    parts = [torch.randn(n, c, generator=g) * scale for n, c, scale in
             [(1000, 10, 1.0), (7, 10, 40.0), (333, 10, 1e4), (1, 10, 0.0)]]  # huge logits: exp underflows
    together = entry.of_logits(torch.cat(parts))
    alone = [entry.score(None, None, "set", p, None) for p in parts]
    assert all(torch.equal(a, b) for a, b in zip(together.split([len(p) for p in parts]), alone))
    assert {"msp", "misp", "energy", "max_logit"} <= {n for n, e in registry.scores().items() if e.of_logits}


@pytest.mark.parametrize("name", list(registry.shapings()))
def test_each_registered_shaping_is_what_the_methods_apply(ctx, name):
    """A shaped method's logits equal the entry's function applied to the features by hand."""
    entry = registry.shaping(name)
    method = experiments.shaped(name, 70, seed=3)
    kwargs = {}
    if entry.seeded:
        kwargs["generator"] = torch.Generator().manual_seed(3 * 7919 + __import__("zlib").crc32(b"ID test"))
    expected = entry.shape(ctx.features[experiments.ID_SET], 70, **kwargs) @ ctx.weight.T + ctx.bias
    torch.testing.assert_close(experiments.method_logits(method, ctx, experiments.ID_SET), expected)
    assert method.label == f"{entry.label}@70" and method.family == entry.label
    assert plots.family_colour(entry.label) == entry.colour


def test_a_new_method_is_one_module_and_one_registry_line(ctx, monkeypatch):
    """A toy shaping and a toy fitted score, registered from a module of their own, go through
    evaluate with their labels, families, colours and a fit computed once."""
    toy = types.ModuleType("toy_detectors")
    calls = []

    def halve(x, percentile=None, *, threshold=None):
        return x / 2

    def fit(ctx, method):
        calls.append(method.label)
        return ctx.features[ctx.train_set].mean(0)

    def dot(ctx, method, set_name, logits, fitted):
        return ctx.features[set_name] @ fitted

    toy.ENTRIES = (registry.Shaping("halve", "Halve", halve, "tab:olive", "a test"),
                   registry.Score("mean_dot", "MeanDot", dot, "a test", fit=fit, shapeable=False, family="toy"))
    monkeypatch.setitem(sys.modules, "toy_detectors", toy)
    monkeypatch.setattr(registry, "MODULES", (*registry.MODULES, "toy_detectors"))
    registry._entries.cache_clear()
    try:
        monkeypatch.setattr(experiments, "SCORES", tuple(registry.scores()))
        monkeypatch.setattr(experiments, "SHAPINGS", ("none", *registry.shapings()))
        methods = [experiments.shaped("halve", 50), experiments.Method("mean_dot")]
        res = experiments.evaluate(methods, ctx, progress=False)
        halved = res[res.method == "Halve@50"].set_index("ood_set")
        half_energy = {name: scores.energy((ctx.features[name] / 2) @ ctx.weight.T + ctx.bias)
                       for name in ctx.sets}
        mean = ctx.features[experiments.TRAIN_SET].mean(0)
        for name in ctx.ood_sets:
            s_id = ctx.features[experiments.ID_SET] @ mean
            expected = metrics.ood_metrics(s_id, ctx.features[name] @ mean)
            row = res[(res.method == "MeanDot") & (res.ood_set == name)].iloc[0]
            assert row["AUROC"] == pytest.approx(expected["AUROC"])
            assert row["family"] == "toy"
            assert halved.loc[name, "family"] == "Halve"
            assert halved.loc[name, "AUROC"] == pytest.approx(
                100 * metrics.auroc(half_energy[experiments.ID_SET], half_energy[name]))
        assert calls == ["MeanDot"]  # fitted once for every set
        assert plots.family_colour("Halve") == "tab:olive"
        with pytest.raises(ParameterError, match="MeanDot reads unshaped"):
            experiments.Method("mean_dot", react=True)
    finally:
        registry._entries.cache_clear()


def test_method_options_are_hashable_sorted_pairs():
    m = experiments.Method("nac_ue", label="NAC", options=dict(seed=1, n_fit=10))
    assert m.options == (("n_fit", 10), ("seed", 1)) and m.option("seed") == 1 and m.option("x", 5) == 5
    assert m == experiments.Method("nac_ue", label="NAC", options=dict(n_fit=10, seed=1))
    with pytest.raises(ParameterError, match="options=.*hashable"):
        experiments.Method("nac_ue", label="NAC", options=dict(layers=["avgpool"]))


def test_nac_ue_through_evaluate_equals_the_nac_module_called_directly(ctx, bench):
    configs = [nac.LayerConfig("avgpool", 2.0, 8, 10.0), nac.LayerConfig("layer3", 2.0, 8, 10.0)]
    method = experiments.Method("nac_ue", options=nac.options(configs, n_fit=30, seed=0))
    only_last = experiments.Method("nac_ue", label="avgpool", options=nac.options(configs, 30, 0, layers=["avgpool"]))
    res = experiments.evaluate([method, only_last], ctx, progress=False)
    fit = nac.fit_nac(ctx.model, bench.x_train, bench.y_train, configs, n_fit=30, seed=0, batch_size=32)
    s_id = nac.nac_ue(fit, ctx.model, bench.x_test, batch_size=32)
    per_set = {name: nac.nac_ue(fit, ctx.model, x, batch_size=32) for name, x in bench.ood.items()}
    cover = lambda x: nac.coverage(fit["avgpool"], nac.neuron_states(ctx.model, x, configs, 32)["avgpool"])
    for name, s_ood in per_set.items():
        row = res[(res.method == "NAC-UE") & (res.ood_set == name)].iloc[0]
        assert row["AUROC"] == pytest.approx(100 * metrics.auroc(s_id, s_ood))
        assert row["family"] == "NAC"
        row = res[(res.method == "avgpool") & (res.ood_set == name)].iloc[0]
        assert row["AUROC"] == pytest.approx(100 * metrics.auroc(cover(bench.x_test), cover(bench.ood[name])))
    fits = [k for k in ctx.fits if k[0] == "nac_ue"]
    assert len(fits) == 1  # the layer subset reuses the fit
    states, idx = nac.fitting_states(ctx, method)  # kept from the fit: the overfitting check's input
    assert torch.equal(idx, ctx.fitted(method).indices) and torch.equal(idx, fit.indices)
    torch.testing.assert_close(nac.nac_score(ctx.fitted(method), states),
                               nac.nac_ue(fit, ctx.model, nac.take(bench.x_train, idx), batch_size=32))
    with pytest.raises(ParameterError, match="layers='layer9'"):
        nac.options(configs, layers=["layer9"])


def test_misp_scores_through_evaluate_equal_the_misp_module_called_directly(bench):
    lsm = build_model("smallresnet_logsoftmax", 3, width=2, seed=0).eval()
    lctx = experiments.build_context(lsm, bench, batch_size=32)
    methods = [experiments.Method("misp_layer", label="min of MiSP at layer2",
                                  options=dict(layer="layer2.relu", statistic="min of MiSP")),
               experiments.Method("mahalanobis_layer", label="Mahalanobis at layer3", options=dict(layer="layer3")),
               experiments.Method("mahalanobis_ensemble", label="Mahalanobis-ensemble"),
               experiments.Method("misp")]
    res = experiments.evaluate(methods, lctx, progress=False).set_index(["method", "ood_set"])
    inner = {s: misp.layer_scores(lsm, x, batch_size=32, cache=False)
             for s, x in {"ID": bench.x_test, **bench.ood}.items()}
    fit = misp.fit_layer_mahalanobis(lsm, bench.x_train, bench.y_train, batch_size=32)
    maha = {s: misp.layer_mahalanobis(lsm, x, fit, batch_size=32) for s, x in {"ID": bench.x_test, **bench.ood}.items()}
    with torch.no_grad():
        logits = {s: lsm(x) for s, x in {"ID": bench.x_test, **bench.ood}.items()}
    for name in bench.ood:
        auroc = lambda a, b: pytest.approx(100 * metrics.auroc(a, b))
        assert res.loc[("min of MiSP at layer2", name), "AUROC"] == auroc(
            inner["ID"]["layer2.relu"]["min of MiSP"], inner[name]["layer2.relu"]["min of MiSP"])
        assert res.loc[("Mahalanobis at layer3", name), "AUROC"] == auroc(maha["ID"]["layer3"], maha[name]["layer3"])
        assert res.loc[("Mahalanobis-ensemble", name), "AUROC"] == auroc(
            misp.mahalanobis_ensemble(maha["ID"], fit), misp.mahalanobis_ensemble(maha[name], fit))
        assert res.loc[("MiSP", name), "AUROC"] == pytest.approx(
            100 * metrics.auroc(scores.misp(logits["ID"]), scores.misp(logits[name])), abs=1e-6)
    with pytest.raises(ParameterError, match="layer='layer9'"):
        experiments.evaluate([experiments.Method("misp_layer", options=dict(layer="layer9"))], lctx,
                             progress=False)
