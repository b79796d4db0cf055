"""The chapter *When does ASH help?*: its statistics against hand-worked examples and numpy/scikit-learn,
and the small ResNet's expansion head."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.stats import entropy
from sklearn.metrics import roc_auc_score

from ashlib import ParameterError
from ashlib.evaluation import experiments
from ashlib.book import when_ash_helps as w
from ashlib.assets.models import (TrainRecipe, build_model, checkpoint_path, feature_dim, load_or_train,
                           penultimate_units, train)


def test_mass_ratio_by_hand():
    # [4, 3, 2, 1] at p = 50 keeps 4 and 3: s1 = 10, s2 = 7; a sample with nothing kept is NaN
    x = torch.tensor([[4.0, 3, 2, 1], [1, 0, 0, 0], [0, 0, 0, 0]])
    got = w.mass_ratio(x, 50)
    assert got[0] == pytest.approx(10 / 7) and got[1] == 1 and np.isnan(got[2])
    with pytest.raises(ParameterError, match="features with shape"):
        w.mass_ratio(torch.zeros(3), 50)
    with pytest.raises(ParameterError, match="percentile"):
        w.mass_ratio(x, 101)


def test_premise_auroc_is_sklearns_on_the_ratio_and_medians_by_hand():
    gen = torch.Generator().manual_seed(0)
    spread = torch.rand(200, 20, generator=gen)  # mass spread over the units: large s1/s2
    peaked = torch.rand(150, 20, generator=gen) ** 8  # mass in a few units: s1/s2 near 1
    table = w.premise({"ID": spread, "peaked": peaked}, "ID", 90).set_index("ood_set")
    r_id, r_ood = w.mass_ratio(spread, 90), w.mass_ratio(peaked, 90)
    y = np.r_[np.ones(len(r_id)), np.zeros(len(r_ood))]
    assert table.loc["peaked", "premise AUROC"] == pytest.approx(100 * roc_auc_score(y, np.r_[r_id, r_ood]))
    assert table.loc["peaked", "premise AUROC"] > 90  # the premise holds: ID spread out, OOD peaked
    assert table.loc["peaked", "s1/s2 ID"] == pytest.approx(np.median(r_id))
    assert table.loc["peaked", "kept share OOD"] == pytest.approx(100 / np.median(r_ood))
    with pytest.raises(ParameterError, match="id_set='digits'"):
        w.premise({"ID": spread}, "digits", 90)


def test_logit_share_kept_by_hand():
    # one sample a = [3, 1, 2] at p = 34 keeps 2 of 3 units (3 and 2); W's class 0 row [1, 1, 1] wins
    a = torch.tensor([[3.0, 1, 2]])
    weight = torch.tensor([[1.0, 1, 1], [0, 1, 0]])
    got = w.logit_share_kept(a, weight, 34)
    assert got["logit kept"] == pytest.approx(100 * 5 / 6) and got["same prediction"] == 100
    # pruning can change the class: the dropped unit is all that class 1 reads
    flip = w.logit_share_kept(torch.tensor([[3.0, 2.9, 0]]), torch.tensor([[1.0, 0, 0], [0, 1.1, 0]]), 50)
    assert flip["same prediction"] == 0 and flip["logit kept"] == 0
    with pytest.raises(ParameterError, match=r"expected \(classes, 3\)"):
        w.logit_share_kept(a, torch.ones(2, 4), 50)


def test_participation_ratio_and_effective_rank_against_numpy():
    rng = np.random.default_rng(0)
    x = rng.gamma(2.0, size=(500, 8)) * np.linspace(0.2, 3, 8)
    lam = np.clip(np.linalg.eigvalsh(np.cov(x.T)), 0, None)
    assert w.participation_ratio(x) == pytest.approx(lam.sum() ** 2 / (lam ** 2).sum())
    assert w.effective_rank(x) == pytest.approx(np.exp(entropy(lam / lam.sum())))
    # the limits: one direction carries everything -> 1; isotropic -> about d
    line = np.outer(rng.normal(size=300), rng.normal(size=6))
    assert w.participation_ratio(line) == pytest.approx(1, abs=1e-6)
    assert w.effective_rank(line) == pytest.approx(1, abs=1e-4)
    assert w.participation_ratio(rng.normal(size=(20000, 5))) == pytest.approx(5, rel=0.01)
    assert np.isnan(w.participation_ratio(np.ones((4, 3))))
    with pytest.raises(ParameterError, match="at least 2"):
        w.participation_ratio(np.ones((1, 3)))


def test_redundancy_counts_dead_units():
    x = torch.tensor([[0.0, 1, 0, 2], [0, 3, 0, 1], [0, 0, 5, 4]])
    r = w.redundancy(x)
    assert r["dead units (%)"] == 25 and r["units"] == 4
    assert r["participation ratio (% of units)"] == pytest.approx(100 * w.participation_ratio(x) / 4)


def test_expansion_head_sets_the_penultimate_units():
    plain, wide = build_model("smallresnet", 10, 4), build_model("smallresnet", 10, 4, expansion=48)
    assert feature_dim(plain) == 32 == penultimate_units(4) and feature_dim(wide) == 48 == penultimate_units(4, 48)
    names = [n for n, _ in wide.named_children()]
    assert names[names.index("layer4") + 1:] == ["head", "avgpool", "flatten", "fc"]
    assert isinstance(wide.head[-1], torch.nn.ReLU)  # the penultimate feature is non-negative
    # the same seed draws the same trunk with or without a head
    same = [k for k in plain.state_dict() if not k.startswith("fc")]
    assert all(torch.equal(plain.state_dict()[k], wide.state_dict()[k]) for k in same)
    assert wide.eval()(torch.rand(2, 1, 28, 28)).shape == (2, 10)
    for bad in (-1, 2.5, True):
        with pytest.raises(ParameterError, match="expansion="):
            build_model("smallresnet", 10, 4, expansion=bad)
    with pytest.raises(ParameterError, match="model='densenet100'"):
        build_model("densenet100", 10, expansion=64)


def test_an_expansion_head_is_its_own_checkpoint_and_none_keeps_the_old_name(band_benchmark):
    bench = band_benchmark(0)
    recipe = TrainRecipe(epochs=1, batch_size=30)
    plain = checkpoint_path("smallresnet", bench.x_train, bench.y_train, 3, 2, recipe)
    assert checkpoint_path("smallresnet", bench.x_train, bench.y_train, 3, 2, recipe, expansion=0) == plain
    assert "-x" not in plain.name
    model, path = load_or_train("smallresnet", bench.x_train, bench.y_train, 3, width=2, recipe=recipe,
                                progress=False, expansion=24)
    assert path.name.startswith("smallresnet-w2-x24-") and path != plain and feature_dim(model) == 24
    again, _ = load_or_train("smallresnet", bench.x_train, bench.y_train, 3, width=2, recipe=recipe,
                             progress=False, expansion=24)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))


def test_gains_are_experiments_differences_per_network(band_benchmark):
    bench = band_benchmark(0)
    contexts = {}
    for e in (0, 24):
        model = train(build_model("smallresnet", 3, width=2, expansion=e), bench.x_train, bench.y_train,
                      TrainRecipe(epochs=2, batch_size=30), progress=False)
        contexts[e] = experiments.build_context(model, bench, batch_size=64)
    energy, methods = experiments.Method("energy"), [experiments.ash("P", 60), experiments.ash("S", 60)]
    got = w.gains(methods, energy, {k: [c] for k, c in contexts.items()}, n_resamples=100)
    assert list(got.columns) == ["network", "method", "family", "percentile", "seeds", "difference", "lo", "hi", "verdict"]
    for e, ctx in contexts.items():
        expected = experiments.differences(methods, energy, ctx, "AUROC", n_resamples=100)
        mine = got[got.network == e].reset_index(drop=True)
        pd.testing.assert_frame_equal(mine[["method", "difference", "lo", "hi", "verdict"]], expected, check_exact=True)
        assert list(mine.family) == ["ASH-P", "ASH-S"] and list(mine.percentile) == [60, 60]
    with pytest.raises(ParameterError, match="networks"):
        w.gains(methods, energy, {})


def test_kept_scores_of_other_runs_join_as_seeds(band_benchmark, tmp_path):
    """A run's kept scores (Run.keep_scores' layout) read back by kept_networks give the same gains as the
    contexts themselves; a file with keys of another chapter is refused by name."""
    from ashlib.book.runs import Run

    bench = band_benchmark(0)
    energy, methods = experiments.Method("energy"), [experiments.ash("S", 60)]
    contexts = {}
    for t in (0, 1):
        model = train(build_model("smallresnet", 3, width=2, expansion=24, seed=t), bench.x_train, bench.y_train,
                      TrainRecipe(epochs=1, batch_size=30, seed=t), progress=False)
        contexts[t] = experiments.build_context(model, bench, batch_size=64)
        w.network_scores([energy, *methods], contexts[t])  # scored, so kept in the context's memo
    for t, ctx in contexts.items():  # two runs, one seed each, as the matrix's cells
        Run(bench, None, "", ctx, {}, str(tmp_path / f"cell{t}")).keep_scores(
            "when_ash_helps_scores", {f"units=24/train_seed={t}": ctx})
    kept, labels = w.kept_networks([tmp_path])
    assert sorted(kept) == [(24, 0), (24, 1)] and np.array_equal(labels[(24, 1)], bench.y_test.numpy())
    assert np.array_equal(kept[(24, 1)]["ASH-S@60"]["noise"], w.network_scores(methods, contexts[1])["ASH-S@60"]["noise"])
    ctx = contexts[0]
    from_files = w.gains_from_scores(methods, energy, {24: [kept[(24, 0)], kept[(24, 1)]]}, ctx.averaged_sets,
                                     ctx.ood_sets, n_resamples=100)
    direct = w.gains(methods, energy, {24: [contexts[0], contexts[1]]}, n_resamples=100)
    pd.testing.assert_frame_equal(from_files, direct, check_exact=True)
    np.savez(tmp_path / "cell0" / "when_ash_helps_scores.npz", **{"Energy/ID test": np.zeros(3)})
    with pytest.raises(ParameterError, match="a run of this chapter"):
        w.kept_networks([tmp_path / "cell0"])


def test_the_default_head_applies_to_the_small_resnets_only():
    from ashlib.assets.models import DEFAULT_EXPANSION, default_expansion
    from ashlib.book.params import _expansion

    assert default_expansion("smallresnet") == default_expansion("smallresnet_logsoftmax") == DEFAULT_EXPANSION
    assert default_expansion("densenet100") == default_expansion("smallvit") == 0
    assert default_expansion("smallresnet", 0) == 0 and default_expansion("smallresnet", 1024) == 1024
    assert 342 <= DEFAULT_EXPANSION <= 2048  # inside the paper's range
    for bad in (-1, 2.5, "512", True):
        with pytest.raises(ParameterError, match="expansion="):
            _expansion("expansion", bad)


def test_the_intro_and_results_pages_carry_the_chapters_answer():
    from ashlib.book import pipeline

    fragments = pipeline.BOOK / "_fragments"
    verdict = pipeline.verdict_page({"01_methods", "09_when_ash_helps"})
    assert "{glue:text}`run/09_when_ash_helps.ipynb::when_ash_helps_answer_text:s`" in verdict
    assert "{glue} when_ash_helps_gain_figure\n:doc: run/09_when_ash_helps.ipynb" in verdict
    assert "when_ash_helps" not in pipeline.verdict_page({"01_methods"})
    intro = (pipeline.BOOK / "intro.md").read_text()
    assert intro.index("{include} run/verdict.md") < intro.index("**The question.**")  # the first screen
    assert "when_ash_helps_grid" in pipeline.results_page({"09_when_ash_helps"}, fragments)
    assert "when_ash_helps" not in pipeline.results_page({"01_methods"}, fragments)
