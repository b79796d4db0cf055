"""Acceptance tests for ashlib.stats.metrics (scores: higher = more in-distribution)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.metrics import auc, average_precision_score, precision_recall_curve, roc_auc_score

from ashlib.stats import metrics
from ashlib._checks import ParameterError
from ashlib.stats.metrics import (
    AUPR_METHODS,
    DEFAULT_AUPR,
    histogram_iou,
    DEFAULT_CONVENTION,
    FPR_CONVENTIONS,
    accuracy,
    aupr_in,
    aupr_out,
    auroc,
    fpr95,
    fpr_at_tpr,
    ood_metrics,
)


def random_scores(n_id=1000, n_ood=800, seed=0, shift=1.0):
    rng = np.random.default_rng(seed)
    return rng.normal(shift, 1.0, n_id), rng.normal(0.0, 1.0, n_ood)


def labels_scores(s_id, s_ood):
    return np.r_[np.ones(len(s_id)), np.zeros(len(s_ood))], np.r_[s_id, s_ood]


def official_fpr95(known, novel):
    """The official ASH/ReAct get_curve's FPR, transcribed line by line (tpr 0.95 only)."""
    known, novel = np.sort(np.asarray(known, dtype=float)), np.asarray(novel, dtype=float)
    threshold = known[round(0.05 * known.shape[0])]
    return np.sum(novel > threshold) / float(novel.shape[0])


def ref_fpr(s_id, s_ood, tpr, convention):
    """Independent FPR by sorting (no roc_curve): the m-th best score of the positive class is
    the threshold, m = ceil(tpr * n_pos); count the other class on the accepting side, ties included.
    "paper": the official code's index and strict comparison (at 0.95 exactly its transcription)."""
    if convention == "paper":
        if tpr == 0.95:
            return float(official_fpr95(s_id, s_ood))
        known = np.sort(s_id)
        return float(np.mean(np.asarray(s_ood) > known[min(round(round(1 - tpr, 12) * len(known)), len(known) - 1)]))
    pos, neg = (s_id, s_ood) if convention == "roc" else (-s_ood, -s_id)
    m = max(1, math.ceil(round(tpr * len(pos), 9)))
    t = np.sort(pos)[::-1][m - 1]
    return float(np.mean(neg >= t))


# ----------------------------------------------------------------------------- vs scikit-learn

@pytest.mark.parametrize("seed", [0, 1, 2])
def test_agrees_with_sklearn_on_random_data(seed):
    s_id, s_ood = random_scores(seed=seed, n_id=1000 + 37 * seed, n_ood=700 + 11 * seed)
    y, s = labels_scores(s_id, s_ood)
    assert auroc(s_id, s_ood) == pytest.approx(roc_auc_score(y, s), abs=1e-15)
    assert aupr_in(s_id, s_ood, "average_precision") == pytest.approx(average_precision_score(y, s), abs=1e-15)
    # AUPR-Out: average precision with OOD as the positive class and negated scores
    assert aupr_out(s_id, s_ood, "average_precision") == pytest.approx(
        average_precision_score(1 - y, -s), abs=1e-15)
    for convention in FPR_CONVENTIONS:
        for tpr in (0.5, 0.9, 0.95, 0.99):
            assert fpr_at_tpr(s_id, s_ood, tpr, convention) == ref_fpr(s_id, s_ood, tpr, convention)


def test_fpr_with_many_ties_matches_sorting_reference():
    rng = np.random.default_rng(7)
    s_id = rng.integers(0, 12, 333).astype(float)  # heavy ties within and across classes
    s_ood = rng.integers(-3, 8, 271).astype(float)
    for convention in FPR_CONVENTIONS:
        for tpr in (0.3, 0.8, 0.95):
            assert fpr_at_tpr(s_id, s_ood, tpr, convention) == ref_fpr(s_id, s_ood, tpr, convention)


def test_torch_inputs_equal_numpy_inputs():
    s_id, s_ood = random_scores(seed=3)
    t_id, t_ood = torch.tensor(s_id, dtype=torch.float32), torch.tensor(s_ood, dtype=torch.float32)
    f_id, f_ood = t_id.double().numpy(), t_ood.double().numpy()
    assert ood_metrics(t_id, t_ood) == ood_metrics(f_id, f_ood)
    assert ood_metrics(t_id, t_ood, "openood") == ood_metrics(f_id, f_ood, "openood")


# ----------------------------------------------------------------------------- by hand, with ties

# ID  scores: 0.9, 0.8, 0.7, 0.5, 0.5      OOD scores: 0.8, 0.5, 0.4, 0.3, 0.2
# Ties: 0.8 (one ID, one OOD), 0.5 (two ID, one OOD).
HAND_ID = [0.9, 0.8, 0.7, 0.5, 0.5]
HAND_OOD = [0.5, 0.4, 0.3, 0.2, 0.8]


def test_hand_worked_example_with_ties():
    # "roc": accept score >= t. Unique thresholds, descending, with (ID accepted, OOD accepted):
    #   0.9 (1, 0)  0.8 (2, 1)  0.7 (3, 1)  0.5 (5, 2)  ...
    # TPR 0.8 needs 4 of 5 ID: first reached at t=0.5, where the tie group jumps to 5/5 (TPR 1.0).
    # FPR = OOD >= 0.5 = {0.5, 0.8} = 2/5 = 0.4 (the tied OOD 0.5 counts; ">" would give 1/5).
    # TPR 0.95 needs 5/5: also t=0.5 -> 0.4.
    assert fpr_at_tpr(HAND_ID, HAND_OOD, 0.8, "roc") == 0.4
    assert fpr95(HAND_ID, HAND_OOD, convention="roc") == 0.4
    # "paper" (official): sorted ID 0.5, 0.5, 0.7, 0.8, 0.9; index round(0.05 * 5) = round(0.25) = 0,
    # threshold 0.5; OOD strictly above: {0.8} = 1/5. TPR 0.8: index round(1.0) = 1, threshold 0.5 again.
    assert fpr95(HAND_ID, HAND_OOD) == fpr95(HAND_ID, HAND_OOD, convention="paper") == 0.2
    assert fpr_at_tpr(HAND_ID, HAND_OOD, 0.8, "paper") == 0.2
    # "openood": OOD positive, flag score <= t. Thresholds ascending, (OOD flagged, ID flagged):
    #   0.2 (1, 0)  0.3 (2, 0)  0.4 (3, 0)  0.5 (4, 2)  0.7 (4, 3)  0.8 (5, 4)  0.9 (5, 5)
    # TPR 0.8 (4/5 OOD): t=0.5, ID flagged {0.5, 0.5} = 2/5 = 0.4.
    # TPR 0.95 (5/5 OOD): t=0.8, ID flagged {0.8, 0.7, 0.5, 0.5} = 4/5 = 0.8.
    assert fpr_at_tpr(HAND_ID, HAND_OOD, 0.8, "openood") == 0.4
    assert fpr95(HAND_ID, HAND_OOD, convention="openood") == 0.8
    # AUROC: pairs (ID > OOD) + 0.5 * ties over 25 pairs.
    #   0.9: 5   0.8: 4 + 0.5   0.7: 4   0.5: 3 + 0.5   0.5: 3 + 0.5   -> 20.5 / 25 = 0.82
    assert auroc(HAND_ID, HAND_OOD) == pytest.approx(0.82, abs=1e-12)
    # AUPR-In = sum (R_n - R_{n-1}) P_n over the "paper" thresholds:
    #   0.9: P 1, R .2   0.8: P 2/3, R .4   0.7: P 3/4, R .6   0.5: P 5/7, R 1
    #   = .2 + .2*2/3 + .2*3/4 + .4*5/7
    assert aupr_in(HAND_ID, HAND_OOD, "average_precision") == pytest.approx(0.2 + 0.4 / 3 + 0.15 + 2 / 7, abs=1e-12)
    # AUPR-Out over the "openood" thresholds (TP = OOD, FP = ID flagged):
    #   0.2/0.3/0.4: P 1, R .2/.4/.6   0.5: P 4/6, R .8   0.7: R stays .8   0.8: P 5/9, R 1
    #   = .6 + .2*2/3 + .2*5/9
    assert aupr_out(HAND_ID, HAND_OOD, "average_precision") == pytest.approx(0.6 + 0.4 / 3 + 1 / 9, abs=1e-12)
    assert ood_metrics(HAND_ID, HAND_OOD)["FPR95"] == 20.0  # "paper", the default
    assert ood_metrics(HAND_ID, HAND_OOD, "roc", aupr="average_precision") == pytest.approx(
        {"FPR95": 40.0, "AUROC": 82.0, "AUPR-In": 100 * (0.2 + 0.4 / 3 + 0.15 + 2 / 7),
         "AUPR-Out": 100 * (0.6 + 0.4 / 3 + 1 / 9)}, abs=1e-10)
    assert ood_metrics(HAND_ID, HAND_OOD, "openood")["FPR95"] == pytest.approx(80.0)


def test_exact_tpr_boundary_is_reached_not_overshot():
    # 20 distinct ID scores: 95% = 19 of 20, so t is the 19th best ID score (2.0), not the 20th.
    s_id = np.arange(1.0, 21.0)  # 1..20
    s_ood = np.array([1.5, 2.0, 2.5, 30.0])
    assert fpr95(s_id, s_ood, convention="roc") == 0.75  # OOD >= 2.0: 2.0, 2.5, 30.0 (the tie at 2.0 counts)
    assert fpr95(s_id, s_ood) == 0.5  # official: index round(1.0) = 1, t = 2.0, OOD > 2.0: 2.5, 30.0


def test_every_tie_group_is_a_candidate_threshold():
    # Each score is shared by one ID and one OOD sample, so the ROC points (0,0), (1/3,1/3),
    # (2/3,2/3), (1,1) are collinear; roc_curve(drop_intermediate=True) would drop the middle
    # ones and jump to FPR 1. TPR 0.5 is first reached at t=2: FPR = OOD >= 2 = 2/3.
    s = [3.0, 2.0, 1.0]
    assert fpr_at_tpr(s, s, 0.5, "roc") == pytest.approx(2 / 3)
    assert fpr_at_tpr(s, s, 0.5) == 0.0  # official: index round(1.5) = 2, t = 3.0, no OOD score above
    assert fpr_at_tpr(s, s, 0.5, "openood") == pytest.approx(2 / 3)
    assert auroc(s, s) == 0.5


# ----------------------------------------------------------------------------- extremes

def test_perfect_and_reversed_separation():
    s_id, s_ood = np.linspace(1, 2, 50), np.linspace(-2, -1, 30)
    for convention in FPR_CONVENTIONS:
        assert fpr95(s_id, s_ood, convention=convention) == 0.0
        assert fpr95(s_ood, s_id, convention=convention) == 1.0
    assert auroc(s_id, s_ood) == 1.0
    assert aupr_in(s_id, s_ood, "average_precision") == pytest.approx(1.0, abs=1e-12)  # float rounding
    assert aupr_out(s_id, s_ood, "average_precision") == pytest.approx(1.0, abs=1e-12)
    # the official trapezoid closes the curve at (recall 0, precision 0), so a perfect detector loses
    # half of the last recall step: 1 - 1 / (2 n_positive)
    assert aupr_in(s_id, s_ood) == pytest.approx(1 - 1 / 100, abs=1e-12)
    assert aupr_out(s_id, s_ood) == pytest.approx(1 - 1 / 60, abs=1e-12)
    assert auroc(s_ood, s_id) == 0.0
    m = ood_metrics(s_id, s_ood, aupr="average_precision")
    assert m == pytest.approx({"FPR95": 0.0, "AUROC": 100.0, "AUPR-In": 100.0, "AUPR-Out": 100.0})


def test_ood_metrics_are_percent_of_the_fractions():
    s_id, s_ood = random_scores(seed=11, shift=0.7)
    for convention in FPR_CONVENTIONS:
        m = ood_metrics(s_id, s_ood, convention)
        assert list(m) == ["FPR95", "AUROC", "AUPR-In", "AUPR-Out"]
        assert m["FPR95"] == pytest.approx(100 * fpr95(s_id, s_ood, convention=convention))
        assert m["AUROC"] == pytest.approx(100 * auroc(s_id, s_ood))
        assert m["AUPR-In"] == pytest.approx(100 * aupr_in(s_id, s_ood))
        assert m["AUPR-Out"] == pytest.approx(100 * aupr_out(s_id, s_ood))
    assert DEFAULT_CONVENTION == "paper"
    assert ood_metrics(s_id, s_ood) == ood_metrics(s_id, s_ood, "paper")
    assert ood_metrics(s_id, s_ood)["FPR95"] != ood_metrics(s_id, s_ood, "openood")["FPR95"]


# ----------------------------------------------------------------------------- AUPR: the official trapezoid

def official_get_curve(known, novel, merge_ties=True):
    """The official ASH/ReAct ``get_curve`` (utils/metrics.py), transcribed statement by statement:
    merge the sorted ID (``known``) and OOD (``novel``) scores, removing the lower one (ID on a tie),
    then walk the sorted scores backwards and give every point that splits a group of tied scores
    the counts of the point after it. Returns (tp, fp). ``merge_ties=False`` leaves the backward walk
    out: the one-at-a-time removal that ashlib used before issue 30."""
    known, novel = np.sort(np.asarray(known, float)), np.sort(np.asarray(novel, float))
    every = np.sort(np.concatenate((known, novel)))
    num_k, num_n = known.shape[0], novel.shape[0]
    tp = -np.ones([num_k + num_n + 1], dtype=int)
    fp = -np.ones([num_k + num_n + 1], dtype=int)
    tp[0], fp[0] = num_k, num_n
    k, n = 0, 0
    for step in range(num_k + num_n):
        if k == num_k:
            tp[step + 1:] = tp[step]
            fp[step + 1:] = np.arange(fp[step] - 1, -1, -1)
            break
        elif n == num_n:
            tp[step + 1:] = np.arange(tp[step] - 1, -1, -1)
            fp[step + 1:] = fp[step]
            break
        elif novel[n] < known[k]:
            n += 1
            tp[step + 1], fp[step + 1] = tp[step], fp[step] - 1
        else:
            k += 1
            tp[step + 1], fp[step + 1] = tp[step] - 1, fp[step]
    j = num_k + num_n - 1
    for _ in range(num_k + num_n - 1 if merge_ties else 0):
        if every[j] == every[j - 1]:
            tp[j], fp[j] = tp[j + 1], fp[j + 1]
        j -= 1
    return tp, fp


def official_auin_auout(known, novel, merge_ties=True):
    """The official ``cal_metric``'s AUIN and AUOUT (fractions) on :func:`official_get_curve`,
    transcribed statement by statement."""
    tp, fp = official_get_curve(known, novel, merge_ties)
    tpr = np.concatenate([[1.0], tp / tp[0], [0.0]])
    fpr = np.concatenate([[1.0], fp / fp[0], [0.0]])
    denom = tp + fp
    denom[denom == 0.0] = -1.0
    pin_ind = np.concatenate([[True], denom > 0.0, [True]])
    pin = np.concatenate([[0.5], tp / denom, [0.0]])
    auin = -np.trapezoid(pin[pin_ind], tpr[pin_ind])
    denom = tp[0] - tp + fp[0] - fp
    denom[denom == 0.0] = -1.0
    pout_ind = np.concatenate([[True], denom > 0.0, [True]])
    pout = np.concatenate([[0.0], (fp[0] - fp) / denom, [0.5]])
    auout = np.trapezoid(pout[pout_ind], 1.0 - fpr[pout_ind])
    return float(auin), float(auout)


def saturated_scores(seed=0):
    """Issue 30's saturated case: 97% of ID and 30% of OOD scores exactly 1.0 (softmax in float32)."""
    rng = np.random.default_rng(seed)
    return np.r_[np.ones(970), rng.uniform(0.5, 0.99, 30)], np.r_[np.ones(300), rng.uniform(0.1, 0.99, 700)]


def test_trapezoid_aupr_by_hand_with_ties():
    # Removal from the lowest score up; (TP, FP) left after each removal, ties removed in one step:
    #   (5,5) 0.2O (5,4) 0.3O (5,3) 0.4O (5,2) {0.5I 0.5I 0.5O} (3,1) 0.7I (2,1) {0.8I 0.8O} (1,0)
    #   0.9I (0,0: skipped), closed at (recall 0, precision 0).
    # AUIN over recall 1 -> .6 -> .4 -> .2 -> 0 with precision 5/7, 3/4, 2/3, 1, 0 (the first point,
    # (5,5), shares recall 1 and adds nothing):
    auin = 0.2 * (5 / 7 + 3 / 4) + 0.1 * (3 / 4 + 2 / 3) + 0.1 * (2 / 3 + 1) + 0.1 * (1 + 0)
    # AUOUT: removed (OOD, ID) = (0,0: skipped) (1,0) (2,0) (3,0) (4,2) (4,3) (5,4) (5,5), opened at
    # (recall 0, precision 0) and closed at (1, 0.5), which shares recall 1 with (5,5); the step from
    # (4,2) to (4,3) keeps recall .8 and adds nothing, the next one starts from precision 4/7:
    auout = 0.1 + 0.2 + 0.2 + 0.1 * (1 + 4 / 6) + 0.1 * (4 / 7 + 5 / 9)
    assert aupr_in(HAND_ID, HAND_OOD) == pytest.approx(auin, abs=1e-12)
    assert aupr_out(HAND_ID, HAND_OOD) == pytest.approx(auout, abs=1e-12)
    assert official_auin_auout(HAND_ID, HAND_OOD) == pytest.approx((auin, auout), abs=1e-12)
    assert (round(100 * auin, 1), round(100 * auout, 1)) == (70.1, 77.9)  # issue 30's figures
    assert DEFAULT_AUPR == "trapezoid"
    assert ood_metrics(HAND_ID, HAND_OOD)["AUPR-In"] == pytest.approx(100 * auin)
    # the tied scores make the two definitions differ by more than a point
    assert abs(aupr_in(HAND_ID, HAND_OOD) - aupr_in(HAND_ID, HAND_OOD, "average_precision")) > 0.01


def test_a_tied_group_at_the_curves_open_end_loses_half_its_area_as_in_the_official_code():
    """AUPR-Out's curve opens at (recall 0, precision 0): OOD scores all tied below every ID score
    (a perfect detector) give 0.5 by the official code, 1.0 as average precision. AUPR-In's closes
    at (0, 0), so the same perfect detector has 1 - 1 / (2 n_ID) = 0.9 on 5 ID scores."""
    s_id, s_ood = [1.0, 2.0, 3.0, 4.0, 5.0], [0.0] * 5
    assert official_auin_auout(s_id, s_ood) == (0.9, 0.5)
    assert (aupr_in(s_id, s_ood), aupr_out(s_id, s_ood)) == (0.9, 0.5)
    assert aupr_out(s_id, s_ood, "average_precision") == aupr_in(s_id, s_ood, "average_precision") == 1.0
    assert aupr_out(s_id, [0.0, 0.1, 0.2, 0.3, 0.4]) == pytest.approx(1 - 1 / 10)  # untied: one step each


def tied_and_untied_cases(seed):
    """Random scores with n from 10 to 10,000: untied normals, small integers (many ties across the
    sets), float32-rounded softmax-like scores that saturate at 1.0, and all scores equal."""
    rng = np.random.default_rng(seed)
    for n_id, n_ood in ((10, 13), (37, 10), (300, 200), (2_000, 1_500), (10_000, 10_000)):
        yield rng.normal(1, 1, n_id), rng.normal(0, 1, n_ood)
        yield rng.integers(0, 12, n_id).astype(float), rng.integers(-3, 8, n_ood).astype(float)
        soft = lambda n, shift: np.float32(1 / (1 + np.exp(-rng.normal(shift, 6, n)))).astype(float)
        yield soft(n_id, 12.0), soft(n_ood, 2.0)
    yield np.ones(40), np.r_[np.ones(10), np.zeros(30)]
    yield np.ones(20), np.ones(30)


@pytest.mark.parametrize("seed", [0, 1])
def test_trapezoid_aupr_equals_the_official_code_bit_for_bit(seed):
    for s_id, s_ood in tied_and_untied_cases(seed):
        auin, auout = official_auin_auout(s_id, s_ood)
        assert (aupr_in(s_id, s_ood), aupr_out(s_id, s_ood)) == (auin, auout), (len(s_id), len(s_ood))
        many = metrics.ood_metrics_many(s_id[None], s_ood[None])
        assert (many["AUPR-In"][0], many["AUPR-Out"][0]) == (100 * auin, 100 * auout)


def test_trapezoid_aupr_on_saturated_scores_is_the_official_one():
    """Issue 30: with 97% of ID and 30% of OOD scores at 1.0, removing tied samples one at a time (ID
    first, ashlib before issue 30) moves AUPR-In by more than 15 points (here 55.7 against the official
    39.1) and AUPR-Out by more than 5 (82.7 against 90.8)."""
    s_id, s_ood = saturated_scores()
    ours = (aupr_in(s_id, s_ood), aupr_out(s_id, s_ood))
    assert ours == official_auin_auout(s_id, s_ood)
    one_at_a_time = official_auin_auout(s_id, s_ood, merge_ties=False)
    assert one_at_a_time[0] - ours[0] > 0.15 and ours[1] - one_at_a_time[1] > 0.05
    untied = (s_id + np.arange(1000) * 1e-9, s_ood - (np.arange(1000) + 0.5) * 1e-9)  # no ties left
    assert official_auin_auout(*untied) == official_auin_auout(*untied, merge_ties=False)


@pytest.mark.parametrize("seed", [0, 1])
def test_trapezoid_aupr_is_the_area_under_scikit_learns_curve_closed_at_zero(seed):
    """Independently of the official code: the trapezoid AUPR is scikit-learn's precision-recall curve
    (one point per distinct threshold, so tied scores together) integrated with ``auc``, after its
    last point (recall 0, precision 1 by convention) is lowered to precision 0, as ``cal_metric``
    closes the curve."""
    for s_id, s_ood in tied_and_untied_cases(seed):
        y, s = labels_scores(s_id, s_ood)
        for score, positive, ours in ((s, y, aupr_in), (-s, 1 - y, aupr_out)):
            precision, recall, _ = precision_recall_curve(positive, score)
            assert ours(s_id, s_ood) == pytest.approx(auc(recall, np.r_[precision[:-1], 0.0]), abs=1e-12)


def test_bad_aupr_method_names_parameter_and_value():
    with pytest.raises(ParameterError, match=r"method='ap'.*'trapezoid'"):
        aupr_in(HAND_ID, HAND_OOD, "ap")
    with pytest.raises(ParameterError, match=r"aupr='ap'"):
        ood_metrics(HAND_ID, HAND_OOD, aupr="ap")


# ----------------------------------------------------------------------------- vs pytorch-ood

def test_pytorch_ood_oodmetrics_matches_openood_convention():
    import pytorch_ood.metrics as metrics_mod  # a pinned test dependency: its absence fails, never skips
    s_id, s_ood = random_scores(n_id=1000, n_ood=800, seed=5)
    m = metrics_mod.OODMetrics()
    # pytorch-ood: larger = more OOD, labels < 0 are OOD (the positive class)
    m.update(torch.tensor(-np.r_[s_id, s_ood]), torch.tensor([0] * len(s_id) + [-1] * len(s_ood)))
    theirs = m.compute()
    assert theirs["AUROC"] == pytest.approx(auroc(s_id, s_ood), abs=1e-12)
    # their FPR95TPR = ID rejected at 95% OOD detected: our "openood", not our "paper"
    assert theirs["FPR95TPR"] == pytest.approx(fpr95(s_id, s_ood, convention="openood"), abs=1e-12)
    assert abs(theirs["FPR95TPR"] - fpr95(s_id, s_ood)) > 0.02
    # their AUPR is the trapezoidal area auc(recall, precision), ours average precision
    # (step sum); they differ slightly.
    y, s = labels_scores(s_id, s_ood)
    p_in, r_in, _ = precision_recall_curve(y, s)
    p_out, r_out, _ = precision_recall_curve(1 - y, -s)
    assert theirs["AUPR-IN"] == pytest.approx(auc(r_in, p_in), abs=1e-12)
    assert theirs["AUPR-OUT"] == pytest.approx(auc(r_out, p_out), abs=1e-12)
    for method in AUPR_METHODS:
        assert theirs["AUPR-IN"] == pytest.approx(aupr_in(s_id, s_ood, method), abs=5e-3)
        assert theirs["AUPR-OUT"] == pytest.approx(aupr_out(s_id, s_ood, method), abs=5e-3)
    # the hand-worked tie example: their FPR95TPR is our "openood" 0.8
    m = metrics_mod.OODMetrics()
    m.update(-torch.tensor(HAND_ID + HAND_OOD), torch.tensor([0] * 5 + [-1] * 5))
    assert m.compute()["FPR95TPR"] == pytest.approx(0.8)


# ----------------------------------------------------------------------------- accuracy

def test_accuracy_from_logits_and_predictions():
    logits = np.array([[2.0, 1.0, 0.0], [0.0, 3.0, 1.0], [1.0, 0.0, 5.0], [9.0, 0.0, 1.0]])
    labels = np.array([0, 1, 1, 0])
    assert accuracy(logits, labels) == 0.75
    assert accuracy(torch.tensor(logits), torch.tensor(labels)) == 0.75
    assert accuracy(np.array([0, 1, 2, 0]), labels) == 0.75
    assert accuracy(torch.tensor([0, 1, 1, 0]), labels) == 1.0
    with pytest.raises(ParameterError, match="labels"):
        accuracy(logits, labels[:3])
    with pytest.raises(ParameterError, match="empty"):
        accuracy(np.zeros((0, 3)), np.zeros(0, dtype=int))


# ----------------------------------------------------------------------------- errors

def test_bad_convention_names_parameter_and_value():
    with pytest.raises(ParameterError, match=r"convention='ours'.*'paper'.*'openood'"):
        fpr95(HAND_ID, HAND_OOD, convention="ours")
    with pytest.raises(ParameterError, match=r"convention='ours'"):
        ood_metrics(HAND_ID, HAND_OOD, "ours")


def test_bad_tpr():
    with pytest.raises(ParameterError, match=r"tpr=1.5"):
        fpr_at_tpr(HAND_ID, HAND_OOD, 1.5)


@pytest.mark.parametrize("fn", [auroc, aupr_in, aupr_out, fpr95, ood_metrics])
def test_empty_and_nan_scores_rejected(fn):
    with pytest.raises(ParameterError, match=r"score_id is empty"):
        fn([], HAND_OOD)
    with pytest.raises(ParameterError, match=r"score_ood is empty"):
        fn(HAND_ID, np.array([]))
    with pytest.raises(ParameterError, match=r"score_ood contains 2 NaN"):
        fn(HAND_ID, [0.1, float("nan"), float("nan")])
    with pytest.raises(ParameterError, match=r"score_id contains 1 NaN"):
        fn(torch.tensor([0.1, float("nan")]), HAND_OOD)
    with pytest.raises(ParameterError, match=r"score_id contains 1 infinite"):
        fn([0.1, float("inf")], HAND_OOD)
    with pytest.raises(ParameterError, match=r"score_id with shape \(2, 2\)"):
        fn(np.ones((2, 2)), HAND_OOD)


def test_histogram_iou_hand_worked():
    # joint range [0, 4] in 2 bins: [0, 2) and [2, 4].
    # ID scores 0, 1, 3, 4 -> h_id = (2/4, 2/4); OOD scores 1, 1, 1, 3 -> h_ood = (3/4, 1/4)
    # IoU = (min: 2/4 + 1/4) / (max: 3/4 + 2/4) = 0.75 / 1.25 = 0.6
    assert histogram_iou([0, 1, 3, 4], [1, 1, 1, 3], bins=2) == pytest.approx(0.6)


def test_histogram_iou_extremes():
    rng = np.random.default_rng(0)
    a = rng.normal(size=500)
    assert histogram_iou(a, a.copy()) == pytest.approx(1.0)
    assert histogram_iou(a, a + 100, bins=20) == 0.0
    with pytest.raises(ParameterError, match="bins=0"):
        histogram_iou(a, a, bins=0)


def test_change_is_judged_at_the_shown_precision():
    """Issue 10: a tie used to read "FPR95 16.7% -> 16.7% (worse)"."""
    from ashlib.stats.metrics import change

    assert change(16.71, 16.74, lower_is_better=True) == "unchanged"
    assert change(16.7, 16.5, lower_is_better=True) == "better"
    assert change(90.0, 89.0, lower_is_better=False) == "worse"
    assert change(90.0, 90.04, lower_is_better=False, decimals=2) == "better"


def test_paper_fpr95_is_the_official_code_when_scores_saturate():
    """Issue 11: with 97% of ID and 30% of OOD softmax scores exactly 1.0 the official code reports
    0% (no OOD score is strictly above the threshold 1.0); the tie-aware reading reports 30%."""
    rng = np.random.default_rng(0)
    s_id = np.r_[np.ones(970), rng.uniform(0.5, 0.99, 30)]
    s_ood = np.r_[np.ones(300), rng.uniform(0.1, 0.99, 700)]
    assert official_fpr95(s_id, s_ood) == 0.0
    assert fpr95(s_id, s_ood) == 0.0
    assert fpr95(s_id, s_ood, convention="roc") == 0.3
    for n in (10, 99, 1000, 1001, 10_000):  # the index as Python's round(0.05 * n), half to even
        a, b = rng.normal(size=n), rng.normal(size=257)
        assert fpr95(a, b) == official_fpr95(a, b), n


@pytest.mark.parametrize("seed", [0, 1])
def test_auroc_from_ranks_equals_sklearn_with_many_ties(seed):
    rng = np.random.default_rng(seed)
    s_id, s_ood = rng.integers(0, 5, 300).astype(float), rng.integers(0, 4, 200).astype(float)
    y, s = labels_scores(s_id, s_ood)
    assert auroc(s_id, s_ood) == pytest.approx(roc_auc_score(y, s), abs=1e-15)
    assert auroc([1.0, 1.0], [1.0]) == 0.5 and auroc([2.0], [1.0, 0.0]) == 1.0 and auroc([0.0], [1.0]) == 0.0


def test_many_detectors_at_once_give_exactly_the_one_at_a_time_numbers():
    """ood_metrics_many (the grids' path) row by row against ood_metrics: equal, not close, with
    ties within and across the sets, every convention and AUPR method (which loop)."""
    rng = np.random.default_rng(0)
    for trial in range(12):
        m, n_id, n_ood = int(rng.integers(1, 6)), int(rng.integers(1, 300)), int(rng.integers(1, 300))
        if trial % 2:
            s_id, s_ood = rng.integers(0, 5, (m, n_id)).astype(float), rng.integers(0, 5, (m, n_ood)).astype(float)
        else:
            s_id, s_ood = rng.normal(1, 1, (m, n_id)), rng.normal(0, 1, (m, n_ood)).astype(np.float32)
        for convention, aupr in (("paper", "trapezoid"), ("roc", "trapezoid"), ("openood", "average_precision")):
            many = metrics.ood_metrics_many(s_id, s_ood, convention, aupr)
            for i in range(m):
                one = metrics.ood_metrics(s_id[i], s_ood[i], convention, aupr)
                assert {k: float(v[i]) for k, v in many.items()} == one, (trial, convention, i)


def test_average_ranks_are_scipys():
    from scipy.stats import rankdata

    from ashlib.stats.metrics import _average_ranks

    rng = np.random.default_rng(1)
    x = np.sort(rng.integers(0, 7, (20, 50)).astype(float), axis=1)
    assert np.array_equal(_average_ranks(x), rankdata(x, axis=1))


def test_many_detectors_name_the_bad_input():
    with pytest.raises(ParameterError, match="scores_ood contains 1 NaN"):
        metrics.ood_metrics_many([[1.0, 2.0]], [[0.5, float("nan")]])
    with pytest.raises(ParameterError, match="one row per detector"):
        metrics.ood_metrics_many([[1.0, 2.0]], [[0.5], [0.2]])
    with pytest.raises(ParameterError, match=r"scores_id with shape \(3,\)"):
        metrics.ood_metrics_many([1.0, 2.0, 3.0], [[0.5]])
