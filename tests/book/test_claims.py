"""ashlib.book.claims: each claim's check on hand-made evidence, on the paper's own numbers, and the table."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ashlib import ParameterError
from ashlib.book import claims
from ashlib.book.chapters import ch01_methods


def _check(chapter: str, i: int, evidence: dict) -> tuple[float, str]:
    effect, text, *_ = claims.of(chapter)[i].check(evidence)
    return round(float(effect.iloc[0]), 6), text


def _rows(**columns) -> pd.DataFrame:
    """Evidence of one draw (row 0 only), as the paper's numbers are."""
    return pd.DataFrame({k: [v] for k, v in columns.items()})


def _methods_evidence(**overrides) -> dict:
    ev = {"AUROC": _rows(Energy=90.0, **{"ASH-S": 95.0, "ASH-P": 93.0}, Mahalanobis=99.0),
          "FPR95": _rows(Energy=30.0, **{"ASH-S": 20.0, "ASH-P": 25.0}, Mahalanobis=5.0),
          "plug": _rows(Softmax=1.0, **{"Softmax + ASH": 2.0, "ODIN": 3.0, "ODIN + ASH": 4.0, "Energy": 5.0,
                                         "Energy + ASH": 6.0, "ReAct": 7.0, "ReAct + ASH": 6.5}),
          "accuracy": _rows(**{"ASH-P@10": 90.0, "ASH-P@90": 80.0, "ASH-S@10": 90.0, "ASH-S@90": 80.0})}
    return {**ev, **overrides}


def test_methods_claims_by_hand():
    ev = _methods_evidence()
    assert _check("01_methods", 0, ev) == (5.0, "AUROC 90.0 → 95.0, FPR95 30.0 → 20.0")  # min(+5, +10)
    assert _check("01_methods", 1, ev) == (-4.0, "best Mahalanobis (99.0)")  # 95 - 99
    assert _check("01_methods", 2, ev)[0] == 2.0
    assert _check("01_methods", 3, ev) == (-0.5, "Softmax +1.0, ODIN +1.0, Energy +1.0, ReAct -0.5")
    assert _check("01_methods", 4, ev) == (0.0, "largest gap 0.00 points over p")
    gap = _methods_evidence(accuracy=_rows(**{"ASH-P@10": 90.0, "ASH-P@90": 80.0, "ASH-S@10": 90.4,
                                              "ASH-S@90": 79.0}))
    assert _check("01_methods", 4, gap) == (1.0, "largest gap 1.00 points over p")
    worse_fpr = _methods_evidence(FPR95=_rows(Energy=30.0, **{"ASH-S": 35.0, "ASH-P": 25.0}, Mahalanobis=5.0))
    assert _check("01_methods", 0, worse_fpr)[0] == -5.0  # AUROC up is not enough


def test_placement_and_threshold_claims_by_hand():
    labels = ["ASH-P@90 block1", "ASH-P@90 block2", "ASH-P@90 block3", "ASH-S@90 penultimate", "Energy"]
    ev = {"a1 AUROC": _rows(**dict(zip(labels, [50.0, 60.0, 70.0, 90.0, 80.0]))),
          "a1 ID acc": _rows(**dict(zip(labels, [30.0, 60.0, 61.0, 75.0, 76.0])))}
    assert _check("02_placements", 0, ev) == (1.0, "blocks 1→3: 30.0 → 60.0 → 61.0")  # the smaller step
    assert _check("02_placements", 2, ev)[0] == 14.0  # Energy (unmodified) is not a placement
    assert _check("02_placements", 3, ev)[0] == 20.0
    flat = {**ev, "a1 ID acc": _rows(**dict(zip(labels, [30.0, 60.0, 60.0, 75.0, 76.0])))}
    assert _check("02_placements", 0, flat)[0] == 0.0  # not rising: fails (the claim needs > 0)
    assert claims.of("02_placements")[0].verdict(pd.Series([0.0]))[0] == "fails"
    one_block = {"a1 ID acc": _rows(**{"ASH-P@90 block1": 30.0})}  # nothing to compare: said, not decided
    assert claims.cells(claims.of("02_placements")[:1], one_block) == ["not computable: +nan; blocks 1→3: 30.0"]
    no_penultimate = {"a1 AUROC": _rows(**dict(zip(labels[:3], [50.0, 60.0, 70.0])))}  # e.g. DenseNet's 3 blocks
    assert claims.cells(claims.of("02_placements")[3:], no_penultimate) == [
        "not computable: +nan; best ASH-P@90 block3 (70.0), no penultimate row"]
    grid = {"local S": pd.DataFrame({80: [90.0], 90: [91.0], 99: [80.0]}),
            "global S": pd.DataFrame({80: [85.0], 90: [92.0], 99: [70.0]}),
            "local B": pd.DataFrame({80: [99.0], 90: [99.0], 99: [99.0]}),
            "global B": pd.DataFrame({80: [85.0], 90: [92.0], 99: [70.0]})}
    assert _check("03_global_vs_local", 0, grid) == (-1.0, "local wins at 2 of 3 p (not at p = 90)")
    assert _check("03_global_vs_local", 1, grid) == (7.0, "local wins at 3 of 3 p")
    assert _check("03_global_vs_local", 2, grid) == (7.0, "best ASH-B@80 local (99.0)")


def test_rand_claims_by_hand():
    ev = {"rand": pd.DataFrame({65: [88.0], 90: [89.0]}),
          "references": _rows(Energy=87.0, Softmax=80.0, ODIN=50.0, **{"ASH-S": 95.0, "ASH-B": 94.0})}
    assert _check("04_ash_rand", 0, ev) == (5.0, "ASH-RAND at most 89.0; ASH-S 95.0, ASH-B 94.0")
    assert _check("04_ash_rand", 1, ev) == (1.0, "ASH-RAND at least 88.0; best of Energy/Softmax/ODIN 87.0")
    assert _check("04_ash_rand", 1, {**ev, "rand": pd.DataFrame({65: [86.0], 90: [99.0]})})[0] == -1.0


def test_a_claim_between_detectors_below_chance_says_so():
    """A detection claim that holds while every detector it compares ranks OOD above ID (AUROC < 50) is
    "holds between failures", and a cell names the detectors below chance when only some are."""
    both_low = _methods_evidence(AUROC=_rows(Energy=26.2, **{"ASH-S": 44.3, "ASH-P": 26.1}, Mahalanobis=99.0))
    cells = claims.verdicts("01_methods", both_low)
    assert cells[2] == ("holds between failures: +18.2; ASH-P 26.1, ASH-S 44.3; both below chance (AUROC < 50): "
                        "none of them detects OOD")
    assert cells[1].endswith("; below chance (AUROC < 50): ASH-S")  # best ASH 44.3 against Mahalanobis 99.0
    assert claims.verdicts("01_methods", _methods_evidence())[2] == "holds: +2.0; ASH-P 93.0, ASH-S 95.0"
    rand = {"rand": pd.DataFrame({65: [63.5], 90: [70.0]}),
            "references": _rows(Energy=27.5, Softmax=20.0, ODIN=10.0, **{"ASH-S": 21.2, "ASH-B": 25.4})}
    assert claims.verdicts("04_ash_rand", rand)[1] == (
        "holds: +36.0; ASH-RAND at least 63.5; best of Energy/Softmax/ODIN 27.5; below chance (AUROC < 50): "
        "best of Energy/Softmax/ODIN")
    many = {f"d{i}": 10.0 + i for i in range(5)} | {"good": 90.0}
    assert claims.chance_note(many) == "; below chance (AUROC < 50): 5 of the 6 compared, e.g. d0"
    assert claims.chance_note({"a": 50.0, "b": 70.0}) == ""  # exactly chance is not below it
    table = claims.styled(pd.DataFrame({"claim": ["x"], "source": ["s"], "effect (points)": ["e"],
                                        "run": [cells[2]]})).to_html()
    assert "#eef1e3" in table  # shaded apart from a plain "holds" (#e3f1e3)


def test_table5_names_metrics_that_get_worse():
    ev = _methods_evidence(**{"plug FPR95": _rows(**{n: 20.0 for n in ("Softmax", "ODIN", "Energy", "ReAct")},
                                                  **{"Softmax + ASH": 25.0, "ODIN + ASH": 15.0, "Energy + ASH": 20.0,
                                                     "ReAct + ASH": 20.04}),
                                "plug AUPR": _rows(**{n: 80.0 for n in ("Softmax", "ODIN", "Energy", "ReAct")},
                                                   **{"Softmax + ASH": 81.0, "ODIN + ASH": 79.0, "Energy + ASH": 80.0,
                                                      "ReAct + ASH": 80.0})})
    assert _check("01_methods", 3, ev)[1] == ("Softmax +1.0 (but FPR95 20.0 → 25.0 worse), ODIN +1.0 (but AUPR "
                                              "80.0 → 79.0 worse), Energy +1.0, ReAct -0.5")  # 20.04: unchanged at 0.1


def test_a_verdict_is_inconclusive_when_the_interval_of_the_effect_straddles_the_line():
    """Row 0 is the effect on all images, rows 1.. its replicates: the interval decides, not the sign."""
    rng = np.random.default_rng(0)
    claim = claims.of("01_methods")[2]  # ASH-S minus ASH-P, "> 0"
    noisy = pd.Series(np.r_[0.3, rng.normal(0.3, 1.0, 1000)])
    clear = pd.Series(np.r_[3.0, rng.normal(3.0, 1.0, 1000)])
    assert claim.verdict(noisy)[0] == "inconclusive"
    verdict, point, (lo, hi) = claim.verdict(clear)
    assert (verdict, point) == ("holds", 3.0) and 0 < lo < 3 < hi
    assert claim.verdict(-clear)[0] == "fails"
    assert claim.verdict(pd.Series([0.3]))[:2] == ("holds", 0.3)  # the paper's numbers: the sign alone
    same = claims.of("01_methods")[4]  # "at most" the tolerance
    tol = ch01_methods.SAME_ACCURACY_TOLERANCE
    assert same.verdict(pd.Series(np.r_[0.4, rng.uniform(0.1, 0.6 * tol, 500)]))[0] == "holds"
    assert same.verdict(pd.Series(np.r_[0.4, rng.uniform(0.1, 1.5 * tol, 500)]))[0] == "inconclusive"
    assert same.verdict(pd.Series(np.r_[2.0, rng.uniform(1.2 * tol, 3 * tol, 500)]))[0] == "fails"
    ev = _methods_evidence(AUROC=pd.DataFrame({"Energy": np.r_[90.0, rng.normal(90, 1, 200)],
                                               "ASH-S": np.r_[95.0, rng.normal(95, 1, 200)],
                                               "ASH-P": np.r_[94.8, rng.normal(94.8, 1, 200)],
                                               "Mahalanobis": np.r_[80.0, rng.normal(80, 1, 200)]}))
    cell = claims.verdicts("01_methods", ev)[2]
    assert cell.startswith("inconclusive: +0.2 [") and cell.endswith("]; ASH-P 94.8, ASH-S 95.0")


def test_the_papers_own_numbers():
    """Verdicts on the quoted tables: the paper's claims mostly hold on its own numbers, and where they
    do not (Appendix A's accuracy, Section 5's "always"), the table says so."""
    def verdicts(chapter, benchmark="cifar10"):
        return claims.verdicts(chapter, claims.paper_evidence(chapter, benchmark))

    assert verdicts("01_methods") == [
        "holds: +2.0; AUROC 94.6 → 96.6, FPR95 26.6 → 15.1", "holds: +1.4; best ASH-S (96.6)",
        "holds: +1.4; ASH-P 95.2, ASH-S 96.6",
        "holds: +0.1; Softmax +0.1 (but FPR95 48.7 → 48.9 and AUPR 80.8 → 77.0 worse), ODIN +1.7, Energy +2.0, ReAct +2.0",
        "holds: +0.0; stated (exact same curves)"]  # Table 5: Softmax + ASH gains AUROC, loses FPR95 and AUPR
    assert verdicts("01_methods", "imagenet")[0] == "holds: +9.0; AUROC 86.2 → 95.1, FPR95 58.4 → 22.8"
    placements = verdicts("02_placements")
    assert placements[2] == "fails: -0.8; best ASH-S@90 block4 (75.8), penultimate 75.0"  # Table A1 vs Appendix A
    assert placements[3].startswith("holds: +3.0; best ASH-S@90 penultimate (95.1)")
    assert verdicts("03_global_vs_local")[:2] == ["fails: -0.7; local wins at 13 of 14 p (not at p = 99)"] * 2
    assert [v.split(":")[0] for v in verdicts("04_ash_rand")] == ["holds", "holds"]


def test_table_shows_every_run_and_why_one_did_not_run():
    table = claims.table("03_global_vs_local", {"missing": FileNotFoundError("no data\nsecond line")})
    assert list(table.columns) == ["claim", "source", "effect (points)", "Paper (ImageNet; quoted, no interval)",
                                   "missing"]
    assert table["missing"].tolist() == ["not run"] * 3  # why: once, in the caption, not in every cell
    assert len(table) == len(claims.of("03_global_vs_local"))
    styled = claims.styled(table).to_html()
    assert "#f8e0e0" in styled and "#eeeeee" in styled  # fails red, not run grey
    assert styled.count("FileNotFoundError: no data") == 1 and "second line" not in styled
    assert claims.styled(table, "Mine.").caption == "Mine. Not run, missing: FileNotFoundError: no data"
    with pytest.raises(ParameterError, match="chapter='05_nac'"):
        claims.table("05_nac", {})


def test_paper_key():
    assert claims.paper_key("mnist5k") == claims.paper_key("fmnist") == "cifar10"
    assert claims.paper_key("cifar100") == "cifar100" and claims.paper_key("imagenet") == "imagenet"


@pytest.mark.project_cache
def test_a_run_and_its_variant_give_evidence_of_the_same_shape():
    """On the embedded benchmark (cached checkpoint): run evidence has what the checks read, and a
    variant prepared from a profile shares the run's settings."""
    from ashlib.book import runs

    run = runs.prepare()
    raw = claims.variant_runs(run, ["embedded", "embedded-raw"])
    assert list(raw) == ["mnist5k (raw)"]  # the run's own benchmark is left out
    assert raw["mnist5k (raw)"].settings == {**run.settings, "preprocessing": "raw"}
    assert raw["mnist5k (raw)"].checkpoint == run.checkpoint  # match leaves the training data alone
    # the evidence's shape, on the same network: 200 images per OOD set, not 1,000, and the paper's
    # Mahalanobis validated on 200 training images, not 1,000 (together about 5 minutes less)
    quick = runs.prepare(mahalanobis_n_val=200, n_ood=200)
    assert quick.checkpoint == run.checkpoint and quick.settings == {**run.settings, "n_ood": 200}
    assert {len(x) for x in quick.benchmark.ood.values()} == {200}
    ev = claims.run_evidence("01_methods", quick, n_resamples=50)
    assert {"Energy", "ASH-S", "ASH-P", "Mahalanobis"} <= set(ev["AUROC"].columns)
    assert len(ev["AUROC"]) == len(ev["accuracy"]) == 51  # all images, then 50 replicates
    # the same run twice stands for two seeds: the mean is the run's value, the replicates are its own
    twice = claims.run_evidence("01_methods", [quick, quick], n_resamples=50)
    assert twice["AUROC"].iloc[0].equals(ev["AUROC"].iloc[0])
    one = ev["AUROC"]["Energy"].to_numpy()[1:]
    pair_means = {round((a + b) / 2, 9) for a in one for b in one}  # each replicate: two draws of the run's
    assert {round(v, 9) for v in twice["AUROC"]["Energy"].to_numpy()[1:]} <= pair_means
    table = claims.table("04_ash_rand", {"default": quick}, rand_percentiles=[80], seeds=[0])
    assert all(v.split(":")[0] in ("holds", "fails", "inconclusive") for v in table["default"])
    assert all("[" in v for v in table["default"])  # an interval beside every run verdict
