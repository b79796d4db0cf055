"""The vision-transformer chapter's library: its setup, feature statistics and claims, each against an
independent computation (scikit-learn's AUROC, NumPy, hand-made evidence)."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import roc_auc_score

from ashlib.evaluation import experiments
from ashlib.book import transformer
from ashlib.methods.shaping import kept_count


def test_feature_statistics_against_numpy_and_scikit_learn():
    g = torch.Generator().manual_seed(0)
    feats = {"ID test": torch.randn(200, 16, generator=g).abs() + 0.5,
             "far": torch.randn(150, 16, generator=g),
             "dark": 0.1 * torch.rand(100, 16, generator=g)}
    stats = transformer.feature_statistics(feats, 75)
    assert list(stats.index) == ["ID test", "far", "dark"]
    k = kept_count(16, 75)
    for name, x in feats.items():
        a = x.numpy().astype(np.float64)
        assert stats.loc[name, "negative (%)"] == pytest.approx(100 * (a < 0).mean())
        assert stats.loc[name, "L2 norm"] == pytest.approx(np.linalg.norm(a, axis=1).mean(), rel=1e-5)
        top = -np.sort(-a, axis=1)[:, :k]
        assert stats.loc[name, "s1/s2"] == pytest.approx(np.nanmedian(a.sum(1) / top.sum(1)), rel=1e-4)
        if name == "ID test":
            assert np.isnan(stats.loc[name, "L2 norm AUROC"]) and np.isnan(stats.loc[name, "s1/s2 AUROC"])
            continue
        ref = feats["ID test"].numpy().astype(np.float64)
        labels = np.r_[np.ones(len(ref)), np.zeros(len(a))]
        want = 100 * roc_auc_score(labels, np.r_[np.linalg.norm(ref, axis=1), np.linalg.norm(a, axis=1)])
        assert stats.loc[name, "L2 norm AUROC"] == pytest.approx(want, abs=1e-6)
    assert stats.loc["dark", "L2 norm AUROC"] == 100  # every ID norm is larger
    with_bounds = transformer.feature_statistics(feats, 75, intervals=300)
    pd.testing.assert_frame_equal(with_bounds[stats.columns], stats)  # the same numbers, bounds beside them
    far = with_bounds.loc["far"]
    assert far["L2 norm AUROC_lo"] < far["L2 norm AUROC"] < far["L2 norm AUROC_hi"]
    assert (with_bounds.loc["dark", ["L2 norm AUROC_lo", "L2 norm AUROC_hi"]] == 100).all()  # separated in every resample
    assert with_bounds.loc["ID test", ["s1/s2 AUROC_lo", "s1/s2 AUROC_hi"]].isna().all()


def _evidence(lnorm, magnitude, gelu, cnn, energy=(87.0, 92.0), norm=(90.0, 55.0), draws=None, fixed_p=90.0):
    """Evidence of one draw (the numbers on all images): each method's mean AUROC at p = 50, 90 (in
    that order), the energy score's on ViT and ResNet, the norm's on the CNN and the ViT."""
    import pandas as pd

    sweep = {m: pd.DataFrame([values], columns=[50.0, 90.0])
             for m, values in zip(transformer.SWEEP_METHODS, (lnorm, magnitude, gelu, cnn))}
    return transformer.evidence(sweep, pd.DataFrame([energy], columns=["ViT", "ResNet"]),
                                pd.DataFrame([norm], columns=["cnn", "vit"]), fixed_p)


def test_claims_are_computed_from_each_methods_best_p_and_can_fail():
    ev = _evidence((70, 60), (75, 86), (85, 80), (93, 50))
    assert ev["best"]["ASH-S |x| at LayerNorm output"].iloc[0] == 86.0 and ev["best_p"]["ASH-S at avgpool"] == 50.0
    table = transformer.claims_table(ev, "ours")
    assert list(table.columns) == ["claim", "source", "effect (points)", "ours"] and len(table) == len(transformer.CLAIMS)
    assert table["ours"].tolist() == [
        "holds: +17.0; ViT: Energy 87.0, ASH-S at best 70.0 (p = 50)",
        "holds: +18.0; ASH-S at best p minus Energy: CNN +1.0, ViT -17.0",
        "fails: -15.0; ASH-S at p = 90 minus Energy: CNN -42.0, ViT -27.0",  # the best p flatters the CNN here
        "holds: +35.0; feature norm as a score: CNN 90.0, ViT 55.0",
        "holds: +15.0; GELU units 85.0 (p = 50), LayerNorm output 70.0 (p = 50)",
        "holds: +16.0; on magnitudes 86.0 (p = 90), ASH-S 70.0 (p = 50)",
        "fails: -1.0; best fix: ASH-S |x| at LayerNorm output 86.0 (p = 90); Energy 87.0"]
    flipped = transformer.claims_table(_evidence((90, 60), (75, 80), (85, 80), (80, 50), norm=(50.0, 55.0)), "ours")
    assert flipped["ours"].str.startswith("fails: ").all()
    unknown = transformer.claims_table(_evidence((70, 60), (75, 86), (85, 80), (93, 50), fixed_p=95.0), "ours")
    assert unknown["ours"][2] == "not computable: +nan; ASH-S at p = 95 minus Energy: CNN +nan, ViT +nan"
    with pytest.raises(ValueError, match="sweep has no tables for"):
        transformer.evidence({}, None, None)


def test_a_claim_on_replicates_is_inconclusive_inside_the_noise():
    """With replicates (rows 1..), a best-p effect inside the noise is inconclusive, a clear one is not;
    the best p is taken in every draw."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)

    def table(values, sd):
        return pd.DataFrame(np.vstack([values, rng.normal(values, sd, size=(500, len(values)))]), columns=[50.0, 90.0])

    sweep = {m: table(v, 1.0) for m, v in zip(transformer.SWEEP_METHODS, ((70, 60), (70.5, 60), (90, 80), (93, 50)))}
    energy = pd.DataFrame(np.vstack([[87.0, 92.0], rng.normal([87.0, 92.0], 1.0, size=(500, 2))]), columns=["ViT", "ResNet"])
    norm = pd.DataFrame(np.vstack([[90.0, 55.0], rng.normal([90.0, 55.0], 1.0, size=(500, 2))]), columns=["cnn", "vit"])
    cells = transformer.claims_table(transformer.evidence(sweep, energy, norm), "ours")["ours"]
    assert cells[5].startswith("inconclusive: +0.5 [")  # magnitudes vs ASH-S: half a point inside the noise
    assert cells[4].startswith("holds: +20.0 [")  # GELU vs LayerNorm: twenty points
    assert cells[2].startswith("not computable")  # no fixed p given: said, not decided


def test_prepare_vit_trains_once_and_builds_its_context_on_the_layernorm_output(band_benchmark, monkeypatch):
    bench = band_benchmark(0)
    run = SimpleNamespace(benchmark=bench, settings=dict(benchmark="mnist5k", seed=0, device="cpu", batch_size=64,
                                                          num_workers=0))
    model, path, ctx = transformer.prepare_vit(run, width=8, epochs=1, progress=False)
    assert path.exists() and ctx.feature_layer == "norm" and ctx.features[experiments.ID_SET].shape == (30, 8)
    logits = model(bench.x_test)
    torch.testing.assert_close(ctx.features[experiments.ID_SET] @ ctx.weight.T + ctx.bias, logits.detach(),
                               rtol=1e-4, atol=1e-5)
    res = experiments.evaluate([experiments.ash("S", 50, placement="block4.mlp.act"),
                                experiments.shaped("ash_s_magnitude", 50)], ctx, progress=False)
    assert set(res.method) == {"ASH-S@50 at block4.mlp.act", "ASH-S |x|@50"} and res.AUROC.notna().all()
    monkeypatch.setattr("ashlib.assets.models.train", lambda *a, **k: pytest.fail("trained again"))
    transformer.prepare_vit(run, width=8, epochs=1, progress=False)
