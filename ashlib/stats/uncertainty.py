"""How sure a number is: bootstrap intervals over test images and training seeds, and three verdicts.

Every metric the book compares comes from a finite draw of test images and from one trained network.
Both are random, and Bouthillier et al. (*Accounting for variance in machine learning benchmarks*,
MLSys 2021) show that the second source, ignored by most papers, is often the larger one. This module
turns per-sample scores into intervals and an effect into a verdict:

* :func:`metric_replicates` / :func:`metric_intervals`: the percentile bootstrap over images. ID and
  OOD images are resampled independently (each with replacement, at its own size) and every metric of
  :func:`ashlib.stats.metrics.ood_metrics_many` is recomputed on each resample, all resamples at once.
* :func:`paired_replicates`: the *paired* bootstrap of a difference between two detectors scored on
  the same images: both are recomputed on the same resamples, so what the images share cancels.
  :func:`set_replicates` does the same on several OOD sets that share the ID images, so that the mean
  over the sets has replicates too (a table's "Average" row).
* :func:`over_seeds` and :func:`seed_replicates`: the hierarchical bootstrap over seeds, then images:
  each replicate draws seeds with replacement and, for each drawn seed, a resample of its images; the
  statistic is the mean over the drawn seeds. Its interval contains both sources of variance.
* :func:`accuracy_replicates`: the same over ID images for the accuracy of a prediction.
* :func:`interval` and :func:`verdict`: the percentile interval of replicates, and "holds", "fails"
  or "inconclusive" for a claimed effect: holds or fails only when the interval excludes the claim's
  threshold (zero, or its stated tolerance).

Every function is pure, seeded by ``seed`` (a :class:`numpy.random.Generator` is made from it), and
takes scores as 1-D arrays (higher = more in-distribution), one per set or one per seed.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from ashlib.stats import metrics
from ashlib._checks import ParameterError, check_choice, check_positive_int, check_range

__all__ = ["LEVEL", "N_RESAMPLES", "METRICS", "VERDICTS", "metric_replicates", "metric_intervals",
           "paired_replicates", "set_replicates", "over_seeds", "seed_replicates", "accuracy_replicates", "interval", "verdict"]

#: The intervals' coverage unless told otherwise.
LEVEL = 0.95
#: Bootstrap resamples unless told otherwise: enough for the 2.5th and 97.5th percentiles to move by
#: less than a tenth of the interval's width between seeds of the resampling.
N_RESAMPLES = 1000
#: The metrics of :func:`ashlib.stats.metrics.ood_metrics_many`, in percent.
METRICS = ("FPR95", "AUROC", "AUPR-In", "AUPR-Out")
#: What a claim can be, given its interval.
VERDICTS = ("holds", "fails", "inconclusive")
#: Resampled scores held at once (rows x samples), so that a paper-scale set (ImageNet's 50,000 ID
#: images) is resampled in blocks instead of in one array of several gigabytes.
_BLOCK = 20_000_000


def _scores(name: str, values) -> np.ndarray:
    return metrics._as_array(name, values)


def _check_seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ParameterError(f"seed={seed!r} is not allowed: expected an integer.")
    return seed


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(_check_seed(seed))


def _resamples(rng: np.random.Generator, n: int, count: int) -> np.ndarray:
    """(count, n) indices into a set of ``n`` images, drawn with replacement."""
    return rng.integers(0, n, size=(count, n))


def _blocks(n_resamples: int, n: int):
    """Sizes of the blocks of resamples of ``n`` samples each, at most :data:`_BLOCK` values a block."""
    size = max(1, _BLOCK // max(n, 1))
    return [min(size, n_resamples - start) for start in range(0, n_resamples, size)]


def metric_replicates(score_id, score_ood, n_resamples: int = N_RESAMPLES, seed: int = 0,
                      convention: str = metrics.DEFAULT_CONVENTION) -> dict[str, np.ndarray]:
    """Every metric of :data:`METRICS` (percent) on ``n_resamples`` bootstrap resamples of the images:
    ID and OOD resampled independently, each at its own size. ``{metric: (n_resamples,) array}``."""
    s_id, s_ood = _scores("score_id", score_id), _scores("score_ood", score_ood)
    return paired_replicates([s_id], [s_ood], n_resamples, seed, convention)[0]


def paired_replicates(scores_id: Sequence, scores_ood: Sequence, n_resamples: int = N_RESAMPLES,
                      seed: int = 0, convention: str = metrics.DEFAULT_CONVENTION) -> list[dict[str, np.ndarray]]:
    """:func:`metric_replicates` of several detectors on the SAME resamples of the same images:
    ``scores_id[k]`` and ``scores_ood[k]`` are detector ``k``'s scores, aligned image by image across
    detectors. Replicate ``b`` of every detector uses the same images, so the difference of two
    detectors' replicates is the paired bootstrap of their difference."""
    if len(_aligned("scores_id", scores_id)) != len(_aligned("scores_ood", scores_ood)):
        raise ParameterError(f"scores_id with {len(scores_id)} detectors and scores_ood with {len(scores_ood)} are "
                             "not allowed: expected the same number.")
    return set_replicates(scores_id, {"OOD": scores_ood}, n_resamples, seed, convention)["OOD"]


def set_replicates(scores_id: Sequence, scores_ood: Mapping[str, Sequence], n_resamples: int = N_RESAMPLES,
                   seed: int = 0, convention: str = metrics.DEFAULT_CONVENTION, metrics_wanted=METRICS
                   ) -> dict[str, list[dict[str, np.ndarray]]]:
    """:func:`paired_replicates` on several OOD sets that share one ID test set: ``scores_id[k]`` is
    detector ``k``'s ID scores, ``scores_ood[name][k]`` its scores on OOD set ``name``. Resample ``b``
    of the ID images is the same on every set (so a replicate's mean over sets is a replicate of the
    mean); each OOD set is resampled on a stream of its own. ``metrics_wanted``: the metrics of
    :data:`METRICS` to compute (fewer cost less; the resamples are the same). ``{name: [detector k:
    {metric: (n,)}]}``."""
    check_positive_int("n_resamples", n_resamples)
    wanted = tuple(dict.fromkeys(check_choice("metrics_wanted[]", m, METRICS) for m in metrics_wanted))
    if not wanted:
        raise ParameterError("metrics_wanted is empty: expected at least one of " + ", ".join(METRICS) + ".")
    check_choice("convention", convention, metrics.FPR_CONVENTIONS)
    _check_seed(seed)
    s_id = _aligned("scores_id", scores_id)
    s_ood = {name: _aligned(f"scores_ood[{name!r}]", group) for name, group in scores_ood.items()}
    for name, group in s_ood.items():
        if len(group) != len(s_id):
            raise ParameterError(f"scores_ood[{name!r}] with {len(group)} detectors is not allowed: expected "
                                 f"{len(s_id)}, as scores_id.")
    streams = np.random.SeedSequence(seed).spawn(1 + len(s_ood))
    return {name: _replicates(s_id, group, np.random.default_rng(streams[0]), np.random.default_rng(stream),
                              n_resamples, convention, wanted)
            for (name, group), stream in zip(s_ood.items(), streams[1:])}


def _aligned(name: str, group: Sequence) -> list[np.ndarray]:
    """Detectors' scores on one set: at least one, every one of the same length."""
    scores = [_scores(f"{name}[{k}]", s) for k, s in enumerate(group)]
    if not scores:
        raise ParameterError(f"{name} is empty: expected the scores of at least one detector.")
    sizes = sorted({len(s) for s in scores})
    if len(sizes) > 1:
        raise ParameterError(f"{name} with sizes {sizes} is not allowed: expected every detector scored on "
                             "the same images.")
    return scores


def _replicates(s_id: list[np.ndarray], s_ood: list[np.ndarray], rng_id: np.random.Generator,
                rng_ood: np.random.Generator, n_resamples: int, convention: str,
                wanted: tuple[str, ...] = METRICS) -> list[dict[str, np.ndarray]]:
    """Each detector's metrics ``wanted`` on ``n_resamples`` resamples drawn from ``rng_id`` and ``rng_ood``."""
    n_id, n_ood = len(s_id[0]), len(s_ood[0])
    out = [{m: [] for m in wanted} for _ in s_id]
    for count in _blocks(n_resamples, n_id + n_ood):  # one stream per set: the blocks do not change the draws
        at_id, at_ood = _resamples(rng_id, n_id, count), _resamples(rng_ood, n_ood, count)
        if convention == "paper":  # without a sort per resample: the counts of each image in it
            times_id, times_ood = _counts(at_id, n_id), _counts(at_ood, n_ood)
        for k, (a, b) in enumerate(zip(s_id, s_ood)):
            got = (_counted_metrics(a, b, times_id, times_ood, wanted) if convention == "paper"
                   else metrics.ood_metrics_many(a[at_id], b[at_ood], convention))
            for m in wanted:
                out[k][m].append(got[m])
    return [{m: np.concatenate(parts) for m, parts in detector.items()} for detector in out]


def _counts(at: np.ndarray, n: int) -> np.ndarray:
    """(rows, n) times each of ``n`` images occurs in each row of resampled indices ``at``."""
    rows = len(at)
    return np.bincount((at + n * np.arange(rows)[:, None]).ravel(), minlength=rows * n).reshape(rows, n)


def _by_value(scores: np.ndarray, times: np.ndarray, values: np.ndarray) -> np.ndarray:
    """(rows, len(values)): how many resampled images of each row have each of the sorted ``values``."""
    order = np.argsort(scores, kind="stable")
    ordered = scores[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    out = np.zeros((len(times), len(values)), dtype=np.int64)
    out[:, np.searchsorted(values, ordered[starts])] = np.add.reduceat(times[:, order], starts, axis=1)
    return out


def _counted_metrics(s_id: np.ndarray, s_ood: np.ndarray, times_id: np.ndarray, times_ood: np.ndarray,
                     wanted: tuple[str, ...] = METRICS) -> dict[str, np.ndarray]:
    """:func:`ashlib.stats.metrics.ood_metrics_many` (the paper's FPR95, the official trapezoid AUPRs) of the
    resamples that hold image ``i`` ``times[r, i]`` times, from one sort of the scores instead of one
    per resample. A resample is a multiset of the scores: per distinct value, how many ID and OOD images
    have it. Copies of one image tie, and the official curve removes a tied group in one step, so the
    curve's points are the ones after each distinct value (plus duplicates, which add no area): the
    same numbers up to the order of a sum (tests/stats/test_uncertainty.py). The trapezoids of ``cal_metric``
    then reduce to ``sum_u w_u (P_before + P_after) / (2 n)``: the recall moves by the ID (AUPR-In) or
    OOD (AUPR-Out) count ``w_u`` of value ``u``, and the points without predictions, at the curve's
    (0, 0) end, have precision 0. Only the metrics ``wanted`` are computed."""
    n_id, n_ood = s_id.size, s_ood.size
    values = np.unique(np.concatenate([s_id, s_ood]))
    w_id, w_ood = _by_value(s_id, times_id, values), _by_value(s_ood, times_ood, values)
    c_id, c_ood = np.cumsum(w_id, axis=1), np.cumsum(w_ood, axis=1)  # images at or below each value
    out = {}
    if "AUROC" in wanted:  # Mann-Whitney, ties half
        out["AUROC"] = 100.0 * ((w_id * c_ood).sum(axis=1) - 0.5 * (w_id * w_ood).sum(axis=1)) / (n_id * n_ood)
    if "FPR95" in wanted:  # "paper": the ID score at index round(0.05 n) of the sorted resample; OOD strictly above it
        index = min(round(round(1 - 0.95, 12) * n_id), n_id - 1)
        at = (c_id > index).argmax(axis=1)
        out["FPR95"] = 100.0 * (n_ood - c_ood[np.arange(len(at)), at]) / n_ood
    if "AUPR-In" not in wanted and "AUPR-Out" not in wanted:
        return out
    # the official trapezoids: the curve moves only where a distinct value is removed, by that value's
    # ID count (AUPR-In's recall) or OOD count (AUPR-Out's); precision after removing values 0..u
    removed = c_id + c_ood
    left = (n_id + n_ood) - removed
    p_in = np.divide(n_id - c_id, left, out=np.zeros(left.shape), where=left > 0)  # nothing left: precision 0
    p_out = np.divide(c_ood, removed, out=np.zeros(removed.shape), where=removed > 0)  # the curve's start
    # sum_u w_u (P_before_u + P_u): P_before_u is P of the value before u (value 0: the curve's start,
    # precision n_id / n for AUPR-In, 0 for AUPR-Out)
    aupr_in = ((w_id * p_in).sum(axis=1) + (w_id[:, 1:] * p_in[:, :-1]).sum(axis=1)
               + w_id[:, 0] * (n_id / (n_id + n_ood)))
    aupr_out = (w_ood * p_out).sum(axis=1) + (w_ood[:, 1:] * p_out[:, :-1]).sum(axis=1)
    return {**out, "AUPR-In": 100.0 * aupr_in / (2 * n_id), "AUPR-Out": 100.0 * aupr_out / (2 * n_ood)}


def over_seeds(replicates: Sequence, n_resamples: int = N_RESAMPLES, seed: int = 0) -> np.ndarray:
    """The hierarchical bootstrap over training seeds, then images, from each seed's image replicates.

    ``replicates[s]``: an array ``(B_s, ...)`` of the bootstrap replicates over the test images of the
    network trained with seed ``s`` (any number ``B_s`` of them; any trailing shape, e.g. one column per
    quantity). Each of the ``n_resamples`` replicates returned draws ``len(replicates)`` seeds with
    replacement and, for each draw, one of that seed's image replicates at random, and is their mean
    (Bouthillier et al., MLSys 2021: the seed's variance and the images' together). The same draws serve
    every column, so differences of columns are paired. ``(n_resamples, ...)``.

    With few seeds the interval is rough: three seeds give ten distinct seed draws, and the bootstrap
    over them understates the seeds' spread by a factor ``(n - 1) / n`` of the variance."""
    check_positive_int("n_resamples", n_resamples)
    pools = [np.asarray(r, dtype=np.float64) for r in replicates]
    if not pools:
        raise ParameterError("replicates is empty: expected the image replicates of at least one seed.")
    shapes = sorted({p.shape[1:] for p in pools})
    if len(shapes) > 1 or any(p.ndim < 1 or len(p) == 0 for p in pools):
        raise ParameterError(f"replicates with shapes {[p.shape for p in pools]} is not allowed: expected one "
                             "non-empty array per seed, all with the same shape after the first axis.")
    rng = _rng(seed)
    n_seeds = len(pools)
    drawn = rng.integers(0, n_seeds, size=(n_resamples, n_seeds))
    out = np.zeros((n_resamples, *shapes[0]))
    for j in range(n_seeds):  # draw j of every replicate: a seed, then one of its image replicates
        picks = rng.integers(0, np.array([len(p) for p in pools])[drawn[:, j]])
        for s, pool in enumerate(pools):
            where = drawn[:, j] == s
            out[where] += pool[picks[where]]
    return out / n_seeds


def seed_replicates(scores_id: Sequence, scores_ood: Sequence, n_resamples: int = N_RESAMPLES, seed: int = 0,
                    convention: str = metrics.DEFAULT_CONVENTION) -> dict[str, np.ndarray]:
    """Hierarchical bootstrap of the mean over seeds of every metric: ``scores_id[s]``, ``scores_ood[s]``
    are the scores of the network trained with seed ``s`` (any sizes): each seed's images are resampled
    ``n_resamples`` times (:func:`metric_replicates`, a stream per seed), then :func:`over_seeds`."""
    check_positive_int("n_resamples", n_resamples)
    if len(scores_id) != len(scores_ood) or len(scores_id) < 1:
        raise ParameterError(f"scores_id with {len(scores_id)} seeds and scores_ood with {len(scores_ood)} are not "
                             "allowed: expected the same number, at least one.")
    streams = np.random.SeedSequence(_check_seed(seed)).spawn(1 + len(scores_id))
    pools = []
    for s, (a, b) in enumerate(zip(scores_id, scores_ood)):
        reps = metric_replicates(a, b, n_resamples, int(streams[1 + s].generate_state(1)[0]), convention)
        pools.append(np.column_stack([reps[m] for m in METRICS]))
    both = over_seeds(pools, n_resamples, int(streams[0].generate_state(1)[0]))
    return {m: both[:, k] for k, m in enumerate(METRICS)}


def accuracy_replicates(predictions, labels, n_resamples: int = N_RESAMPLES, seed: int = 0) -> np.ndarray:
    """ID accuracy (percent) of ``predictions`` (class indices) on ``n_resamples`` bootstrap resamples
    of the ID images."""
    check_positive_int("n_resamples", n_resamples)
    pred, lab = np.asarray(predictions), np.asarray(labels)
    if pred.ndim != 1 or pred.shape != lab.shape or pred.size == 0:
        raise ParameterError(f"predictions with shape {pred.shape} and labels with shape {lab.shape} are not "
                             "allowed: expected two 1-D arrays of the same, non-zero length.")
    correct = (pred == lab).astype(np.float64)
    rng = _rng(seed)
    return np.concatenate([100.0 * correct[_resamples(rng, correct.size, count)].mean(axis=1)
                           for count in _blocks(n_resamples, correct.size)])


def interval(replicates, level: float = LEVEL) -> tuple[float, float]:
    """The percentile interval of bootstrap ``replicates`` at ``level`` (0.95: their 2.5th and 97.5th
    percentiles)."""
    if isinstance(level, bool) or not isinstance(level, (int, float)) or not 0 < level < 1:
        raise ParameterError(f"level={level!r} is not allowed: expected a number strictly between 0 and 1.")
    values = np.asarray(replicates, dtype=np.float64)
    if values.ndim != 1 or values.size < 2 or not np.isfinite(values).all():
        raise ParameterError(f"replicates with shape {values.shape} is not allowed: expected at least two finite "
                             "values.")
    lo, hi = np.quantile(values, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def metric_intervals(score_id, score_ood, n_resamples: int = N_RESAMPLES, seed: int = 0, level: float = LEVEL,
                     convention: str = metrics.DEFAULT_CONVENTION) -> dict[str, tuple[float, float, float]]:
    """``{metric: (value, lo, hi)}``: each metric of :data:`METRICS` on all images and its percentile
    interval over :func:`metric_replicates`."""
    value = metrics.ood_metrics(score_id, score_ood, convention)
    reps = metric_replicates(score_id, score_ood, n_resamples, seed, convention)
    return {m: (value[m], *interval(reps[m], level)) for m in METRICS}


def verdict(lo: float, hi: float, claim: str = ">", threshold: float = 0.0) -> str:
    """"holds", "fails" or "inconclusive": a claimed effect, given its interval ``[lo, hi]``.

    ``claim`` ``">"``: the effect is above ``threshold``: holds if ``lo > threshold``, fails if
    ``hi < threshold``. ``"<"``: the mirror. ``"within"``: the effect lies within ``±threshold`` (a
    tolerance, e.g. "the same accuracy"): holds if ``[lo, hi]`` lies inside ``[-threshold, threshold]``,
    fails if it lies wholly outside. Anything else, an interval that straddles the line, is inconclusive.
    """
    check_choice("claim", claim, (">", "<", "within"))
    lo, hi = float(lo), float(hi)
    if not (np.isfinite(lo) and np.isfinite(hi)) or lo > hi:
        raise ParameterError(f"lo={lo!r}, hi={hi!r} is not allowed: expected finite bounds with lo <= hi.")
    if claim == "within":
        check_range("threshold", threshold, 0, np.inf)
        if -threshold <= lo and hi <= threshold:
            return "holds"
        return "fails" if lo > threshold or hi < -threshold else "inconclusive"
    if claim == "<":
        lo, hi, threshold = -hi, -lo, -threshold
    if lo > threshold:
        return "holds"
    return "fails" if hi < threshold else "inconclusive"
