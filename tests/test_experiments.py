"""The experiment grid against direct computations on the full network."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from ashlib import ParameterError, experiments, metrics, scores
from ashlib.models import build_model, train, TrainRecipe
from ashlib.placement import shaping_at
from ashlib.shaping import make_shaper


@pytest.fixture(scope="module")
def setup():
    gen = torch.Generator().manual_seed(0)
    y = torch.arange(120) % 3
    x = torch.rand(120, 1, 28, 28, generator=gen) * 0.3
    for c in range(3):  # class c: a bright horizontal band at height 4 + 7c
        x[y == c, :, 4 + 7 * c:11 + 7 * c, 6:22] += 0.7
    model = train(build_model("smallresnet", 3, width=2), x[:90], y[:90],
                  TrainRecipe(epochs=2, batch_size=30), progress=False)
    bench = SimpleNamespace(x_train=x[:90], y_train=y[:90], x_test=x[90:], y_test=y[90:], num_classes=3,
                            ood={"noise": torch.rand(25, 1, 28, 28, generator=gen),
                                 "dark": torch.rand(20, 1, 28, 28, generator=gen) * 0.2})
    ctx = experiments.build_context(model, bench, batch_size=32)
    return model, bench, ctx


def direct(model, x, shape=None):
    with torch.no_grad():
        if shape is None:
            return model(x)
        with shaping_at(model, "avgpool", shape):
            return model(x)


@pytest.mark.parametrize("method", [
    experiments.Method("Energy"),
    experiments.Method("Softmax", score="msp"),
    experiments.ash("S", 80), experiments.ash("B", 65), experiments.ash("P", 60, score="msp"),
])
def test_rows_equal_direct_computation_on_the_full_network(setup, method):
    model, bench, ctx = setup
    res = experiments.evaluate([method], ctx, progress=False).set_index("ood_set")
    shape = None if method.shaping == "none" else make_shaper(method.shaping, method.percentile)
    score = scores.LOGIT_SCORES[method.score]
    logits_id = direct(model, bench.x_test, shape)
    s_id = score(logits_id)
    for name, x in bench.ood.items():
        expected = metrics.ood_metrics(s_id, score(direct(model, x, shape)))
        for key, value in expected.items():
            assert res.loc[name, key] == pytest.approx(value, abs=1e-9)
    assert res.loc["Average", "AUROC"] == pytest.approx(res.loc[["noise", "dark"], "AUROC"].mean())
    assert res["ID acc"].iloc[0] == pytest.approx(100 * metrics.accuracy(logits_id, bench.y_test))


def test_react_dice_and_mahalanobis_rows_use_training_statistics_only(setup):
    model, bench, ctx = setup
    feats = ctx.features
    fc = model.fc
    c = torch.quantile(feats["ID train"].flatten(), 0.9).item()
    assert ctx.react_threshold == pytest.approx(c, rel=1e-5)
    res = experiments.evaluate([experiments.Method("ReAct", shaping="react"),
                                experiments.Method("DICE", dice=True),
                                experiments.Method("Mahalanobis", score="mahalanobis")], ctx,
                               progress=False).set_index(["method", "ood_set"])
    mask = scores.fit_dice_mask(fc.weight.detach(), feats["ID train"].mean(0), 90)
    fit = scores.fit_mahalanobis(feats["ID train"], bench.y_train, 3)
    for name in bench.ood:
        react = metrics.ood_metrics(scores.react(feats["ID test"], fc.weight.detach(), fc.bias.detach(), c),
                                    scores.react(feats[name], fc.weight.detach(), fc.bias.detach(), c))
        dice = metrics.ood_metrics(scores.dice(feats["ID test"], fc.weight.detach(), fc.bias.detach(), mask),
                                   scores.dice(feats[name], fc.weight.detach(), fc.bias.detach(), mask))
        maha = metrics.ood_metrics(scores.mahalanobis(feats["ID test"], fit), scores.mahalanobis(feats[name], fit))
        assert res.loc[("ReAct", name), "AUROC"] == pytest.approx(react["AUROC"], abs=1e-4)
        assert res.loc[("DICE", name), "AUROC"] == pytest.approx(dice["AUROC"], abs=1e-9)
        assert res.loc[("Mahalanobis", name), "AUROC"] == pytest.approx(maha["AUROC"], abs=1e-9)


def test_odin_with_ash_hooks_the_feature_layer(setup):
    model, bench, ctx = setup
    res = experiments.evaluate([experiments.ash("S", 90, score="odin")], ctx, progress=False)
    shape = make_shaper("ash_s", 90)
    with shaping_at(model, "avgpool", shape):
        s_id = scores.odin(model, bench.x_test, 1000.0, 0.0014)
        s_noise = scores.odin(model, bench.ood["noise"], 1000.0, 0.0014)
    row = res.set_index("ood_set").loc["noise"]
    assert row["AUROC"] == pytest.approx(metrics.ood_metrics(s_id, s_noise)["AUROC"], abs=1e-9)
    assert not model.avgpool._forward_hooks


def test_ash_p_and_ash_s_give_identical_id_predictions(setup):
    """Paper Section 4.3: scaling the last-layer input scales the logits and keeps the argmax."""
    _, _, ctx = setup
    for p in (0, 50, 90, 99):
        _, lp = experiments.method_outputs(experiments.ash("P", p), ctx, experiments.ID_SET)
        _, ls = experiments.method_outputs(experiments.ash("S", p), ctx, experiments.ID_SET)
        # exp(s1/s2) > 0 scales W f but not the bias b: the bias-free predictions must agree exactly
        assert torch.equal((lp - ctx.bias).argmax(1), (ls - ctx.bias).argmax(1))


def test_wide_table_has_the_paper_layout(setup):
    _, _, ctx = setup
    res = experiments.evaluate(experiments.paper_methods({"P": 90, "S": 95}), ctx, progress=False)
    table = experiments.wide_table(res)
    assert list(table.index) == ["Softmax", "ODIN", "Mahalanobis", "Energy", "ReAct", "DICE",
                                 "DICE+ReAct", "ASH-P@90", "ASH-S@95"]
    assert table.columns[-1] == ("Average", "AUPR-In")


def test_bad_method_arguments_are_named():
    with pytest.raises(ParameterError, match="score='entropy'"):
        experiments.Method("x", score="entropy")
    with pytest.raises(ParameterError, match="percentile=150"):
        experiments.ash("S", 150)
