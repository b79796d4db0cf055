"""ashlib.stats.uncertainty: bootstrap intervals checked against closed forms, and the three verdicts."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from ashlib.stats import metrics, uncertainty
from ashlib._checks import ParameterError


def delong_auroc_se(s_id, s_ood):
    """DeLong et al. (1988): the closed-form standard error of the Mann-Whitney AUROC, from each
    sample's placement value (its share of the other class it beats, ties half)."""
    s_id, s_ood = np.asarray(s_id, float), np.asarray(s_ood, float)
    wins = (s_id[:, None] > s_ood[None, :]) + 0.5 * (s_id[:, None] == s_ood[None, :])
    v_id, v_ood = wins.mean(axis=1), wins.mean(axis=0)
    return float(np.sqrt(v_id.var(ddof=1) / len(s_id) + v_ood.var(ddof=1) / len(s_ood)))


def test_the_auroc_interval_matches_delongs_closed_form():
    rng = np.random.default_rng(0)
    s_id, s_ood = rng.normal(1.0, 1.0, 600), rng.normal(0.0, 1.0, 400)
    auc = 100 * metrics.auroc(s_id, s_ood)
    se = 100 * delong_auroc_se(s_id, s_ood)
    reps = uncertainty.metric_replicates(s_id, s_ood, n_resamples=2000, seed=1)
    assert reps["AUROC"].std(ddof=1) == pytest.approx(se, rel=0.1)
    value, lo, hi = uncertainty.metric_intervals(s_id, s_ood, n_resamples=2000, seed=1)["AUROC"]
    assert value == auc
    normal = stats.norm.ppf(0.975) * se
    assert lo == pytest.approx(auc - normal, abs=0.25 * normal) and hi == pytest.approx(auc + normal, abs=0.25 * normal)


def test_the_accuracy_interval_matches_the_binomial_closed_form():
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 10, 1000)
    predictions = np.where(rng.random(1000) < 0.9, labels, (labels + 1) % 10)
    acc = 100 * np.mean(predictions == labels)
    reps = uncertainty.accuracy_replicates(predictions, labels, n_resamples=4000, seed=3)
    assert reps.std(ddof=1) == pytest.approx(np.sqrt(acc * (100 - acc) / 1000), rel=0.08)
    lo, hi = uncertainty.interval(reps)
    wald = stats.norm.ppf(0.975) * np.sqrt(acc * (100 - acc) / 1000)
    assert lo == pytest.approx(acc - wald, abs=0.5) and hi == pytest.approx(acc + wald, abs=0.5)


def test_replicates_are_the_metrics_of_resampled_images_and_are_reproducible():
    rng = np.random.default_rng(4)
    s_id, s_ood = rng.normal(1, 1, 50), rng.normal(0, 1, 30)
    a = uncertainty.metric_replicates(s_id, s_ood, n_resamples=7, seed=5)
    b = uncertainty.metric_replicates(s_id, s_ood, n_resamples=7, seed=5)
    assert all(np.array_equal(a[m], b[m]) for m in uncertainty.METRICS)
    rng_id, rng_ood = np.random.default_rng(5).spawn(2)  # the same draws, by hand: a stream per set
    at_id, at_ood = rng_id.integers(0, 50, (7, 50)), rng_ood.integers(0, 30, (7, 30))
    for b in range(7):
        one = metrics.ood_metrics(s_id[at_id[b]], s_ood[at_ood[b]])
        assert {m: float(a[m][b]) for m in uncertainty.METRICS} == pytest.approx(one, abs=1e-10)
    assert not np.array_equal(a["AUROC"], uncertainty.metric_replicates(s_id, s_ood, 7, seed=6)["AUROC"])


@pytest.mark.parametrize("case", ["untied", "ties", "saturated", "small"])
def test_counting_copies_gives_the_metrics_of_the_resampled_scores(case):
    """The fast path (counts of each image per resample, one sort) against ashlib.stats.metrics on the
    resampled scores themselves (a sort per resample): ties within and across the sets, saturation,
    and sets of a few images, where a resample often repeats one image many times."""
    rng = np.random.default_rng(["untied", "ties", "saturated", "small"].index(case))
    n_id, n_ood = (3, 4) if case == "small" else (300, 200)
    s_id, s_ood = {"untied": lambda: (rng.normal(1, 1, n_id), rng.normal(0, 1, n_ood)),
                   "ties": lambda: (rng.integers(0, 6, n_id) * 1.0, rng.integers(-2, 4, n_ood) * 1.0),
                   "saturated": lambda: (np.minimum(rng.normal(1.5, 1, n_id), 1.0), np.minimum(rng.normal(0, 1, n_ood), 1.0)),
                   "small": lambda: (np.array([1.0, 2.0, 2.0]), np.array([0.0, 2.0, 3.0, -1.0]))}[case]()
    at_id, at_ood = rng.integers(0, n_id, (50, n_id)), rng.integers(0, n_ood, (50, n_ood))
    fast = uncertainty._counted_metrics(s_id, s_ood, uncertainty._counts(at_id, n_id), uncertainty._counts(at_ood, n_ood))
    slow = metrics.ood_metrics_many(s_id[at_id], s_ood[at_ood])
    for m in uncertainty.METRICS:
        np.testing.assert_allclose(fast[m], slow[m], rtol=0, atol=1e-10, err_msg=m)


def test_resampling_in_blocks_gives_the_same_replicates(monkeypatch):
    rng = np.random.default_rng(7)
    s_id, s_ood = rng.normal(1, 1, 40), rng.normal(0, 1, 60)
    whole = uncertainty.metric_replicates(s_id, s_ood, n_resamples=9, seed=8)
    monkeypatch.setattr(uncertainty, "_BLOCK", 300)  # 3 resamples of 100 scores a block
    blocks = uncertainty.metric_replicates(s_id, s_ood, n_resamples=9, seed=8)
    assert uncertainty._blocks(9, 100) == [3, 3, 3]
    assert all(np.array_equal(whole[m], blocks[m]) for m in uncertainty.METRICS)


def test_a_difference_within_the_noise_is_inconclusive_and_a_clear_one_is_not():
    rng = np.random.default_rng(9)
    s_id, s_ood = rng.normal(1.0, 1.0, 400), rng.normal(0.0, 1.0, 400)
    # B: A with a little noise of its own, an AUROC a fraction of a point away
    b_id, b_ood = s_id + rng.normal(0, 0.05, 400), s_ood + rng.normal(0, 0.05, 400)
    # C: clearly better (the OOD scores pushed down)
    c_id, c_ood = s_id, s_ood - 1.0
    a, b, c = uncertainty.paired_replicates([s_id, b_id, c_id], [s_ood, b_ood, c_ood], n_resamples=1000, seed=10)
    small = uncertainty.interval(b["AUROC"] - a["AUROC"])
    clear = uncertainty.interval(c["AUROC"] - a["AUROC"])
    assert uncertainty.verdict(*small) == "inconclusive" and uncertainty.verdict(*small, claim="<") == "inconclusive"
    assert uncertainty.verdict(*clear) == "holds" and uncertainty.verdict(*clear, claim="<") == "fails"
    # pairing removes what the two share: the unpaired interval of the same small difference is wider
    unpaired = uncertainty.metric_replicates(b_id, b_ood, 1000, seed=11)["AUROC"] - a["AUROC"]
    assert np.subtract(*uncertainty.interval(unpaired)[::-1]) > 3 * np.subtract(*small[::-1])


def test_sets_share_the_id_resamples_and_each_has_its_own_ood_stream():
    """set_replicates: replicate b resamples the ID images alike on every OOD set (a table's Average is
    then a mean of replicates), each OOD set from a stream of its own, reproduced here by hand."""
    rng = np.random.default_rng(15)
    s_id = rng.normal(1, 1, 40)
    sets = {"near": rng.normal(0.5, 1, 30), "far": rng.normal(-1, 1, 25)}
    reps = uncertainty.set_replicates([s_id], {name: [s] for name, s in sets.items()}, n_resamples=5, seed=16)
    streams = np.random.SeedSequence(16).spawn(3)
    for k, (name, s_ood) in enumerate(sets.items()):
        at_id = np.random.default_rng(streams[0]).integers(0, 40, (5, 40))  # the same for both sets
        at_ood = np.random.default_rng(streams[1 + k]).integers(0, len(s_ood), (5, len(s_ood)))
        for b in range(5):
            one = metrics.ood_metrics(s_id[at_id[b]], s_ood[at_ood[b]])
            assert {m: float(reps[name][0][m][b]) for m in uncertainty.METRICS} == pytest.approx(one, abs=1e-10)
    assert uncertainty.paired_replicates([s_id], [sets["near"]], 5, seed=16)[0]["AUROC"].tolist() == \
        reps["near"][0]["AUROC"].tolist()


def test_the_three_verdicts_by_hand():
    assert uncertainty.verdict(0.5, 2.0) == "holds"
    assert uncertainty.verdict(-2.0, -0.5) == "fails"
    assert uncertainty.verdict(-0.5, 2.0) == "inconclusive"
    assert uncertainty.verdict(-2.0, -0.5, claim="<") == "holds"
    assert uncertainty.verdict(1.0, 3.0, threshold=1.5) == "inconclusive"  # above 1.5 not yet shown
    assert uncertainty.verdict(-0.3, 0.4, claim="within", threshold=0.5) == "holds"
    assert uncertainty.verdict(0.6, 0.9, claim="within", threshold=0.5) == "fails"
    assert uncertainty.verdict(0.2, 0.9, claim="within", threshold=0.5) == "inconclusive"
    assert set(uncertainty.VERDICTS) == {"holds", "fails", "inconclusive"}


def test_seeds_widen_the_interval_when_networks_differ():
    """Three 'seeds' whose detectors differ by several AUROC points: the hierarchical interval of the
    mean covers that spread, the images-only interval of one seed does not."""
    rng = np.random.default_rng(12)
    seeds_id = [rng.normal(shift, 1.0, 300) for shift in (0.6, 1.0, 1.4)]
    seeds_ood = [rng.normal(0.0, 1.0, 300) for _ in range(3)]
    one = uncertainty.interval(uncertainty.metric_replicates(seeds_id[1], seeds_ood[1], 1000, seed=13)["AUROC"])
    both = uncertainty.interval(uncertainty.seed_replicates(seeds_id, seeds_ood, 1000, seed=13)["AUROC"])
    assert both[1] - both[0] > 2 * (one[1] - one[0])
    mean = np.mean([100 * metrics.auroc(a, b) for a, b in zip(seeds_id, seeds_ood)])
    assert both[0] < mean < both[1]
    # one seed: the hierarchy reduces to the images
    single = uncertainty.seed_replicates(seeds_id[:1], seeds_ood[:1], 500, seed=14)["AUROC"]
    assert np.subtract(*uncertainty.interval(single)[::-1]) == pytest.approx(one[1] - one[0], rel=0.25)


def test_bad_input_names_the_parameter_and_what_is_allowed():
    s = np.arange(10.0)
    with pytest.raises(ParameterError, match=r"n_resamples=0 is not allowed: expected an integer >= 1"):
        uncertainty.metric_replicates(s, s, n_resamples=0)
    with pytest.raises(ParameterError, match=r"level=1.0 is not allowed: expected a number strictly between 0 and 1"):
        uncertainty.interval([1.0, 2.0], level=1.0)
    with pytest.raises(ParameterError, match=r"scores_ood with sizes \[9, 10\]"):
        uncertainty.paired_replicates([s, s], [s, s[:9]])
    with pytest.raises(ParameterError, match=r"claim='>=' is not allowed"):
        uncertainty.verdict(0.0, 1.0, claim=">=")
    with pytest.raises(ParameterError, match=r"lo=2.0, hi=1.0 is not allowed"):
        uncertainty.verdict(2.0, 1.0)
    with pytest.raises(ParameterError, match=r"seed='a' is not allowed"):
        uncertainty.metric_replicates(s, s, seed="a")
    with pytest.raises(ParameterError, match=r"score_id contains 1 NaN"):
        uncertainty.metric_replicates(np.r_[s, np.nan], s)


def test_over_seeds_is_the_two_stage_bootstrap_of_the_mean():
    """Seeds whose image replicates are constants: the hierarchy reduces to the bootstrap of the mean
    of the seeds' values, whose variance is known (population variance / n); replicates of one seed
    that are already spread add their own variance on top (the law of total variance)."""
    values = np.array([1.0, 4.0, 7.0])
    constant = [np.full((50, 1), v) for v in values]
    reps = uncertainty.over_seeds(constant, n_resamples=20_000, seed=3)[:, 0]
    assert reps.mean() == pytest.approx(values.mean(), abs=0.05)
    assert reps.var() == pytest.approx(values.var() / 3, rel=0.05)
    assert set(np.round(reps * 3).astype(int)) <= {int(a + b + c) for a in values for b in values for c in values}
    rng = np.random.default_rng(4)
    spread = [v + rng.normal(0, 2.0, size=(4000, 1)) for v in values]
    both = uncertainty.over_seeds(spread, n_resamples=20_000, seed=3)[:, 0]
    assert both.var() == pytest.approx(values.var() / 3 + 4.0 / 3, rel=0.08)


def test_over_seeds_pairs_its_columns_and_names_bad_input():
    """One draw serves every column: a column that is another plus a constant differs from it by
    exactly that constant in every replicate."""
    rng = np.random.default_rng(5)
    pools = [np.column_stack([a, a + 2.5]) for a in (rng.normal(s, 1, 30) for s in range(3))]
    reps = uncertainty.over_seeds(pools, 200, seed=1)
    assert np.allclose(reps[:, 1] - reps[:, 0], 2.5)
    assert np.array_equal(reps, uncertainty.over_seeds(pools, 200, seed=1))
    with pytest.raises(ParameterError, match=r"replicates is empty"):
        uncertainty.over_seeds([])
    with pytest.raises(ParameterError, match=r"replicates with shapes \[\(30, 2\), \(30, 3\)\] is not allowed"):
        uncertainty.over_seeds([np.zeros((30, 2)), np.zeros((30, 3))])


def test_fewer_metrics_are_the_same_numbers_on_the_same_resamples():
    rng = np.random.default_rng(21)
    s_id, sets = rng.normal(1, 1, 150), {"a": rng.normal(0, 1, 90), "b": rng.normal(0.5, 1, 120)}
    full = uncertainty.set_replicates([s_id], {k: [v] for k, v in sets.items()}, 50, seed=2)
    for wanted in (("AUROC",), ("FPR95",), ("AUPR-Out", "AUROC")):
        some = uncertainty.set_replicates([s_id], {k: [v] for k, v in sets.items()}, 50, seed=2, metrics_wanted=wanted)
        for name in sets:
            assert set(some[name][0]) == set(wanted)
            for m in wanted:
                assert np.array_equal(some[name][0][m], full[name][0][m])
    with pytest.raises(ParameterError, match=r"metrics_wanted\[\]='AUPR' is not allowed"):
        uncertainty.set_replicates([s_id], {"a": [sets["a"]]}, 5, metrics_wanted=("AUPR",))
