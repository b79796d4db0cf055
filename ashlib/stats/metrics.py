"""OOD detection metrics on scores where HIGHER means more in-distribution, built on scikit-learn.

``score_id`` and ``score_ood`` are 1-D numpy arrays, torch tensors or sequences of numbers.
The functions return fractions in [0, 1]; :func:`ood_metrics` returns percentages, as the
paper's tables do.

FPR at a TPR comes in three conventions (see :data:`FPR_CONVENTIONS`); the paper's is the default:

* ``"paper"`` (the official ASH code, which takes ReAct's ``get_curve``): ID is positive. Sort
  the ID scores ascending; the threshold is the one at index ``round(0.05 * n)`` (Python's
  ``round``, half to even; ``0.05`` is ``1 - tpr``); FPR is the fraction of OOD scores
  *strictly above* it. An OOD score equal to the threshold is not counted, so scores that
  saturate (97% of ID and 30% of OOD softmax scores exactly 1.0) give FPR 0.
* ``"roc"`` (tie-aware): the threshold is the first point of ``roc_curve`` (thresholds in
  decreasing order) with TPR >= ``tpr``: the largest score ``t`` such that at least ``tpr`` of the
  ID samples have a score >= ``t``. FPR is the fraction of OOD samples with a score >= ``t``. A
  group of tied scores is accepted together, so the example above gives 30%, which we think is the
  better reading of "FPR at 95% TPR". It equals ``"paper"`` when no OOD score ties with the threshold
  and ``0.05 * n`` is an integer.
* ``"openood"`` (OpenOOD v1.5, pytorch-ood): OOD is positive, scores are negated. The threshold
  is the smallest ``t`` such that at least ``tpr`` of the OOD samples have a score <= ``t``.
  FPR is the fraction of ID samples with a score <= ``t`` (rejected as OOD).

AUPR-In/Out come in two definitions (see :data:`AUPR_METHODS`); the paper's is the default:

* ``"trapezoid"`` (the official ASH code, which takes ReAct's ``get_curve`` + ``cal_metric``
  AUIN/AUOUT): remove the samples one at a time from the lowest score up, which gives ``n + 1``
  points of (TP, FP) counts; a point that would split a group of tied scores takes the counts of
  the point after the whole group (``get_curve``'s backward loop over the sorted scores), so tied
  scores are removed in one step. AUPR-In is the trapezoidal area under precision ``TP / (TP + FP)``
  over recall ``TP / n_ID`` (points where nothing is left are skipped, and the curve is closed at
  recall 0 with precision 0, so even a perfect detector scores ``1 - 1 / (2 n_ID)``); AUPR-Out the
  same with OOD as the positive class, its curve opened at recall 0 with precision 0. Because of
  those two points a large group of tied scores at the end they join is crossed by one straight line
  from precision 0: a detector that gives all its OOD samples one tied lowest score, below every ID
  score, has AUPR-Out 50%, not 100% (saturated scores, or images that keep nothing after a high
  global ASH threshold).
* ``"average_precision"``: scikit-learn's ``average_precision_score``, the step sum
  ``sum_n (R_n - R_{n-1}) P_n`` over distinct thresholds (tied scores together, as above). It is the
  better estimate of the area (no linear interpolation of precision, which is optimistic);
  pytorch-ood's and OpenOOD's AUPR are a third variant, ``auc(recall, precision)``, which is the
  trapezoid without its closing point.
The two differ by a fraction of a point on untied scores and by several points when many scores tie
(saturated softmax scores).
"""
from __future__ import annotations

import numpy as np
import torch

from ashlib._checks import ParameterError, check_choice, check_range

__all__ = [
    "change",
    "FPR_CONVENTIONS",
    "DEFAULT_CONVENTION",
    "auroc",
    "aupr_in",
    "aupr_out",
    "fpr_at_tpr",
    "fpr95",
    "accuracy",
    "AUPR_METHODS",
    "DEFAULT_AUPR",
    "ood_metrics",
    "ood_metrics_many",
    "histogram_iou",
]

#: The meanings of "FPR at 95% TPR"; label every table with the one used.
FPR_CONVENTIONS: dict[str, str] = {
    "paper": "fraction of OOD scores strictly above the ID score at index round(0.05 n) of the sorted "
    "ID scores (the official ASH/ReAct code)",
    "roc": "fraction of OOD samples accepted as ID when (at least) 95% of ID samples are accepted, "
    "tied scores accepted together (scikit-learn's roc_curve)",
    "openood": "fraction of ID samples rejected as OOD when (at least) 95% of OOD samples are "
    "detected (OpenOOD v1.5, pytorch-ood)",
}

#: The convention of :func:`fpr_at_tpr` and :func:`ood_metrics` unless told otherwise.
DEFAULT_CONVENTION = "paper"

#: The meanings of "AUPR"; label every table with the one used.
AUPR_METHODS: dict[str, str] = {
    "trapezoid": "trapezoidal area under the precision-recall curve, tied scores in one step (the official "
    "ASH/ReAct code's AUIN/AUOUT)",
    "average_precision": "average precision, the step sum over distinct thresholds (scikit-learn)",
}

#: The AUPR of :func:`aupr_in`, :func:`aupr_out` and :func:`ood_metrics` unless told otherwise.
DEFAULT_AUPR = "trapezoid"


def _as_array(name: str, values) -> np.ndarray:
    """1-D float64 array of finite values, or :class:`ParameterError` naming ``name``."""
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().to(torch.float64).numpy()
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ParameterError(f"{name} is not allowed: expected numbers ({err}).") from None
    if arr.ndim != 1:
        raise ParameterError(
            f"{name} with shape {arr.shape} is not allowed: expected a 1-D array of scores."
        )
    if arr.size == 0:
        raise ParameterError(f"{name} is empty: expected at least one score.")
    n_nan = int(np.isnan(arr).sum())
    if n_nan:
        raise ParameterError(f"{name} contains {n_nan} NaN values: expected finite scores.")
    n_inf = int(np.isinf(arr).sum())
    if n_inf:
        raise ParameterError(f"{name} contains {n_inf} infinite values: expected finite scores.")
    return arr


def _labelled(score_id, score_ood) -> tuple[np.ndarray, np.ndarray]:
    """Labels (1 = ID) and scores of ID followed by OOD samples."""
    s_id = _as_array("score_id", score_id)
    s_ood = _as_array("score_ood", score_ood)
    y = np.concatenate([np.ones(s_id.size, dtype=np.int64), np.zeros(s_ood.size, dtype=np.int64)])
    return y, np.concatenate([s_id, s_ood])


def auroc(score_id, score_ood) -> float:
    """Area under the ROC curve, ID positive: P(ID score > OOD score), ties count half.

    Computed as the Mann-Whitney statistic from average ranks (``scipy.stats.rankdata``): the same
    number as ``sklearn.metrics.roc_auc_score`` (tests/stats/test_metrics.py), without its input checks,
    which cost more than the area itself in the book's grids of hundreds of configurations.
    """
    from scipy.stats import rankdata

    s_id = _as_array("score_id", score_id)
    s_ood = _as_array("score_ood", score_ood)
    ranks = rankdata(np.concatenate([s_id, s_ood]))
    n_id, n_ood = s_id.size, s_ood.size
    return float((ranks[:n_id].sum() - n_id * (n_id + 1) / 2) / (n_id * n_ood))


def _removal_counts(s_id: np.ndarray, s_ood: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(TP, FP): the ID and OOD samples left after removing 0, 1, ..., n samples from the lowest score up,
    as the official ReAct/ASH ``get_curve``: both have ``n + 1`` entries, from ``(n_ID, n_OOD)`` to
    ``(0, 0)``, and a point inside a group of tied scores is the point after the whole group
    (:func:`_past_ties`), so the order among tied samples does not matter."""
    scores = np.concatenate([s_id, s_ood])
    is_ood = np.r_[np.zeros(s_id.size, dtype=bool), np.ones(s_ood.size, dtype=bool)]
    order = np.argsort(scores, kind="stable")
    removed_ood = is_ood[order]
    tp = s_id.size - np.r_[0, np.cumsum(~removed_ood)]
    fp = s_ood.size - np.r_[0, np.cumsum(removed_ood)]
    after = _past_ties(scores[order])
    return tp[after], fp[after]


def _past_ties(ordered: np.ndarray) -> np.ndarray:
    """For each of the ``n + 1`` removal points of ``n`` scores sorted ascending along the last axis,
    the first point at or after it that does not split a group of tied scores: point ``j`` (``j``
    samples removed) splits one when ``ordered[j - 1] == ordered[j]``. ``get_curve``'s backward loop
    (``if all[j] == all[j-1]: tp[j], fp[j] = tp[j+1], fp[j+1]``) as one index per point."""
    n = ordered.shape[-1]
    point = np.broadcast_to(np.arange(n + 1), (*ordered.shape[:-1], n + 1))
    splits = np.zeros(point.shape, dtype=bool)
    splits[..., 1:n] = ordered[..., 1:] == ordered[..., :-1]
    return np.minimum.accumulate(np.where(splits, n, point)[..., ::-1], axis=-1)[..., ::-1]


def _trapezoid_aupr(tp: np.ndarray, fp: np.ndarray, positive_ood: bool) -> float:
    """The official ``cal_metric``'s AUIN (``positive_ood=False``) or AUOUT, as a fraction, from the
    removal counts of :func:`_removal_counts`: the same arithmetic in the same order, so the same bits."""
    return float(_trapezoid_aupr_rows(tp[None], fp[None], positive_ood)[0])


def aupr_in(score_id, score_ood, method: str = DEFAULT_AUPR) -> float:
    """Area under the precision-recall curve with ID as the positive class (the paper's "AUPR"),
    in one of :data:`AUPR_METHODS` (module docs)."""
    check_choice("method", method, AUPR_METHODS)
    y, s = _labelled(score_id, score_ood)
    if method == "trapezoid":
        return _trapezoid_aupr(*_removal_counts(s[y == 1], s[y == 0]), positive_ood=False)
    from sklearn.metrics import average_precision_score  # here: importing scikit-learn takes seconds

    return float(average_precision_score(y, s))


def aupr_out(score_id, score_ood, method: str = DEFAULT_AUPR) -> float:
    """Area under the precision-recall curve with OOD as the positive class (low scores flagged),
    in one of :data:`AUPR_METHODS` (module docs)."""
    check_choice("method", method, AUPR_METHODS)
    y, s = _labelled(score_id, score_ood)
    if method == "trapezoid":
        return _trapezoid_aupr(*_removal_counts(s[y == 1], s[y == 0]), positive_ood=True)
    from sklearn.metrics import average_precision_score

    return float(average_precision_score(1 - y, -s))


def fpr_at_tpr(score_id, score_ood, tpr: float = 0.95, convention: str = DEFAULT_CONVENTION) -> float:
    """False positive rate at true positive rate ``tpr``, in one of :data:`FPR_CONVENTIONS` (module docs).

    ``"paper"``: OOD scores strictly above the sorted ID scores' entry at ``round((1 - tpr) * n)``;
    ``"roc"``: OOD accepted at the first ROC point with TPR >= ``tpr``, tied scores together;
    ``"openood"``: ID rejected at ``tpr`` of OOD detected.
    """
    check_range("tpr", tpr, 0, 1)
    check_choice("convention", convention, FPR_CONVENTIONS)
    if convention == "paper":
        known, novel = np.sort(_as_array("score_id", score_id)), _as_array("score_ood", score_ood)
        index = min(round(round(1 - tpr, 12) * len(known)), len(known) - 1)  # as round(0.05 * num_k)
        return float(np.sum(novel > known[index]) / len(novel))
    y, s = _labelled(score_id, score_ood)
    if convention == "openood":
        y, s = 1 - y, -s
    from sklearn.metrics import roc_curve

    # drop_intermediate=False: keep every threshold, so the first point reaching tpr is present
    fpr, tpr_curve, _ = roc_curve(y, s, drop_intermediate=False)
    idx = int(np.searchsorted(tpr_curve, tpr, side="left"))  # tpr_curve ends at 1.0
    return float(fpr[idx])


def fpr95(score_id, score_ood, convention: str = DEFAULT_CONVENTION) -> float:
    """FPR at 95% TPR: :func:`fpr_at_tpr` with ``tpr=0.95``."""
    return fpr_at_tpr(score_id, score_ood, 0.95, convention)


def accuracy(logits_or_predictions, labels) -> float:
    """Fraction of correct predictions: (N, C) logits (argmax over C) or (N,) class indices."""
    if isinstance(logits_or_predictions, torch.Tensor):
        logits_or_predictions = logits_or_predictions.detach().cpu().numpy()
    if isinstance(labels, torch.Tensor):
        labels = labels.detach().cpu().numpy()
    pred = np.asarray(logits_or_predictions)
    lab = np.asarray(labels)
    if pred.ndim == 2:
        pred = pred.argmax(axis=1)
    if pred.ndim != 1 or lab.ndim != 1 or pred.shape != lab.shape:
        raise ParameterError(
            f"logits_or_predictions with shape {np.shape(logits_or_predictions)} and labels with "
            f"shape {lab.shape} are not allowed: expected (N, C) or (N,) with labels (N,)."
        )
    if lab.size == 0:
        raise ParameterError("labels is empty: expected at least one sample.")
    return float(np.mean(pred == lab))


def ood_metrics(score_id, score_ood, convention: str = DEFAULT_CONVENTION,
                aupr: str = DEFAULT_AUPR) -> dict[str, float]:
    """``{"FPR95", "AUROC", "AUPR-In", "AUPR-Out"}`` in PERCENT, FPR95 in ``convention``, the AUPRs
    by ``aupr`` (:data:`AUPR_METHODS`)."""
    check_choice("convention", convention, FPR_CONVENTIONS)
    check_choice("aupr", aupr, AUPR_METHODS)
    s_id = _as_array("score_id", score_id)
    s_ood = _as_array("score_ood", score_ood)
    return {
        "FPR95": 100.0 * fpr_at_tpr(s_id, s_ood, 0.95, convention),
        "AUROC": 100.0 * auroc(s_id, s_ood),
        "AUPR-In": 100.0 * aupr_in(s_id, s_ood, aupr),
        "AUPR-Out": 100.0 * aupr_out(s_id, s_ood, aupr),
    }


def ood_metrics_many(scores_id, scores_ood, convention: str = DEFAULT_CONVENTION,
                     aupr: str = DEFAULT_AUPR) -> dict[str, np.ndarray]:
    """:func:`ood_metrics` of ``M`` detectors at once: ``scores_id`` (M, n_ID) and ``scores_ood``
    (M, n_OOD), row ``i`` one detector's scores; each metric an array of ``M`` percentages.

    Row for row the same numbers as :func:`ood_metrics` (tests/stats/test_metrics.py checks equality, not
    closeness): the paper's FPR95 and the trapezoid AUPRs are taken along the rows, from one sort of
    each row shared by both AUPRs; other conventions and methods call :func:`ood_metrics` per row.
    A grid of configurations (the paper's Figure 4) spends its time here otherwise.
    """
    check_choice("convention", convention, FPR_CONVENTIONS)
    check_choice("aupr", aupr, AUPR_METHODS)
    s_id, s_ood = _as_rows("scores_id", scores_id), _as_rows("scores_ood", scores_ood)
    if len(s_id) != len(s_ood):
        raise ParameterError(f"scores_id with {len(s_id)} rows and scores_ood with {len(s_ood)} rows are not "
                             "allowed: expected one row per detector in both.")
    if convention != "paper" or aupr != "trapezoid":
        rows = [ood_metrics(a, b, convention, aupr) for a, b in zip(s_id, s_ood)]
        return {name: np.array([r[name] for r in rows]) for name in ("FPR95", "AUROC", "AUPR-In", "AUPR-Out")}
    m, n_id, n_ood = len(s_id), s_id.shape[1], s_ood.shape[1]
    known = np.sort(s_id, axis=1)
    index = min(round(round(1 - 0.95, 12) * n_id), n_id - 1)
    fpr = np.sum(s_ood > known[:, index:index + 1], axis=1) / n_ood
    # the sorted ID and OOD rows merged, ID before OOD among ties (each value's place: its rank in its own row plus the other row's values before it)
    unknown = np.sort(s_ood, axis=1)
    at_id = np.arange(n_id) + np.array([np.searchsorted(u, k, side="left") for k, u in zip(known, unknown)])
    at_ood = np.arange(n_ood) + np.array([np.searchsorted(k, u, side="right") for k, u in zip(known, unknown)])
    rows = np.arange(m)[:, None]
    ordered = np.empty((m, n_id + n_ood))
    ordered[rows, at_id], ordered[rows, at_ood] = known, unknown
    removed_ood = np.zeros((m, n_id + n_ood), dtype=bool)
    removed_ood[rows, at_ood] = True
    auc = (_average_ranks(ordered)[~removed_ood].reshape(m, n_id).sum(axis=1)
           - n_id * (n_id + 1) / 2) / (n_id * n_ood)
    zeros = np.zeros((m, 1), dtype=np.int64)
    after = _past_ties(ordered)  # tied scores removed in one step, as _removal_counts
    tp = np.take_along_axis(n_id - np.concatenate([zeros, np.cumsum(~removed_ood, axis=1)], axis=1), after, axis=1)
    fp = np.take_along_axis(n_ood - np.concatenate([zeros, np.cumsum(removed_ood, axis=1)], axis=1), after, axis=1)
    return {"FPR95": 100.0 * fpr, "AUROC": 100.0 * auc,
            "AUPR-In": 100.0 * _trapezoid_aupr_rows(tp, fp, positive_ood=False),
            "AUPR-Out": 100.0 * _trapezoid_aupr_rows(tp, fp, positive_ood=True)}


def _average_ranks(ordered: np.ndarray) -> np.ndarray:
    """1-based ranks of each row's values, already sorted ascending, ties given their average rank
    (``scipy.stats.rankdata``'s default), without sorting again."""
    m, n = ordered.shape
    position = np.broadcast_to(np.arange(n), (m, n))
    starts = np.ones((m, n), dtype=bool)
    starts[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    ends = np.ones((m, n), dtype=bool)
    ends[:, :-1] = starts[:, 1:]
    first = np.maximum.accumulate(np.where(starts, position, 0), axis=1)
    last = np.minimum.accumulate(np.where(ends, position, n - 1)[:, ::-1], axis=1)[:, ::-1]
    return (first + last) / 2 + 1


def _as_rows(name: str, values) -> np.ndarray:
    """2-D float64 array (detectors x samples) of finite values, or :class:`ParameterError` naming ``name``."""
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().to(torch.float64).numpy()
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] == 0:
        raise ParameterError(f"{name} with shape {arr.shape} is not allowed: expected (detectors, samples) "
                             "with at least one sample.")
    if not np.isfinite(arr).all():
        for row in arr:
            _as_array(name, row)  # the same messages as one detector's
    return arr


def _trapezoid_aupr_rows(tp: np.ndarray, fp: np.ndarray, positive_ood: bool) -> np.ndarray:
    """:func:`_trapezoid_aupr` of each row of (M, n + 1) removal counts: the official ``cal_metric``'s
    precision and recall (AUIN: ``tpr = [1, tp / tp[0], 0]``, precision ``[.5, tp / (tp + fp), 0]``;
    AUOUT: ``1 - fpr`` and ``[0, (fp[0] - fp) / removed, .5]``), points without predictions skipped,
    and ``np.trapezoid`` row by row. Which points have no predictions differs between rows when
    scores tie (the last group of tied scores with ID positive)."""
    n_id, n_ood = tp[:, :1], fp[:, :1]
    ends = np.ones((len(tp), 1))
    if positive_ood:  # OOD positive: the samples already removed (flagged as OOD) are the predictions
        predicted = (n_id - tp) + (n_ood - fp)
        recall = np.hstack([0.0 * ends, 1.0 - fp / n_ood, ends])
        precision = np.hstack([0.0 * ends, (n_ood - fp) / np.where(predicted > 0, predicted, 1), 0.5 * ends])
    else:
        predicted = tp + fp
        recall = np.hstack([ends, tp / n_id, 0.0 * ends])
        precision = np.hstack([0.5 * ends, tp / np.where(predicted > 0, predicted, 1), 0.0 * ends])
    valid = np.hstack([ends > 0, predicted > 0, ends > 0])
    return np.array([abs(np.trapezoid(p[v], r[v])) for p, r, v in zip(precision, recall, valid)])


def histogram_iou(score_id, score_ood, bins: int = 50) -> float:
    """Intersection over union of the ID and OOD score histograms (paper Figure 6).

    Both histograms share ``bins`` equal-width bins over the joint range and are normalised to sum
    to one; IoU = sum(min(h_id, h_ood)) / sum(max(h_id, h_ood)): 1 for identical distributions,
    0 for disjoint ones. Lower means better separated.
    """
    s_id = _as_array("score_id", score_id)
    s_ood = _as_array("score_ood", score_ood)
    if isinstance(bins, bool) or not isinstance(bins, int) or bins < 1:
        raise ParameterError(f"bins={bins!r} is not allowed: expected an integer >= 1.")
    edges = np.histogram_bin_edges(np.concatenate([s_id, s_ood]), bins=bins)
    h_id = np.histogram(s_id, edges)[0] / s_id.size
    h_ood = np.histogram(s_ood, edges)[0] / s_ood.size
    return float(np.minimum(h_id, h_ood).sum() / np.maximum(h_id, h_ood).sum())


def change(before: float, after: float, lower_is_better: bool, decimals: int = 1) -> str:
    """"better", "worse" or "unchanged": how a metric moved, judged at the ``decimals`` it is shown
    with, so that 16.7% -> 16.7% is never called worse."""
    b, a = round(float(before), decimals), round(float(after), decimals)
    if a == b:
        return "unchanged"
    return "better" if (a < b) == lower_is_better else "worse"
