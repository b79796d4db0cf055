"""ashlib.claims: each claim's check on hand-made evidence, on the paper's own numbers, and the table."""
from __future__ import annotations

import pandas as pd
import pytest

from ashlib import ParameterError, claims


def _check(chapter: str, i: int, evidence: dict) -> tuple[bool, str]:
    return claims.CLAIMS[chapter][i].check(evidence)


def test_methods_claims_by_hand():
    avg = pd.DataFrame({"AUROC": [90.0, 95.0, 93.0, 99.0], "FPR95": [30.0, 20.0, 25.0, 5.0]},
                       index=["Energy", "ASH-S", "ASH-P", "Mahalanobis"])
    ev = {"avg": avg, "plug": pd.DataFrame({"AUROC": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 6.5]},
                                           index=["Softmax", "Softmax + ASH", "ODIN", "ODIN + ASH", "Energy",
                                                  "Energy + ASH", "ReAct", "ReAct + ASH"]),
          "accuracy_gap": 0.0}
    assert _check("01_methods", 0, ev) == (True, "AUROC 90.0 → 95.0, FPR95 30.0 → 20.0")
    assert _check("01_methods", 1, ev) == (False, "best Mahalanobis (99.0)")
    assert _check("01_methods", 2, ev)[0] is True
    assert _check("01_methods", 3, ev) == (False, "Softmax +1.0, ODIN +1.0, Energy +1.0, ReAct -0.5")
    assert _check("01_methods", 4, ev) == (True, "largest gap 0.00 points over p")
    assert _check("01_methods", 4, {**ev, "accuracy_gap": 0.4})[0] is False
    worse_fpr = {**ev, "avg": avg.assign(FPR95=[30.0, 35.0, 25.0, 5.0])}
    assert _check("01_methods", 0, worse_fpr)[0] is False  # AUROC up is not enough


def test_placement_and_threshold_claims_by_hand():
    a1 = pd.DataFrame({"AUROC": [50.0, 60.0, 70.0, 90.0, 80.0], "ID acc": [30.0, 60.0, 61.0, 75.0, 76.0]},
                      index=["ASH-P@90 block1", "ASH-P@90 block2", "ASH-P@90 block3", "ASH-S@90 penultimate",
                             "Energy"])
    assert _check("02_placements", 0, {"a1": a1}) == (True, "blocks 1→3: 30.0 → 60.0 → 61.0")
    assert _check("02_placements", 2, {"a1": a1})[0] is True  # Energy (unmodified) is not a placement
    assert _check("02_placements", 3, {"a1": a1})[0] is True
    flat = a1.assign(**{"ID acc": [30.0, 60.0, 60.0, 75.0, 76.0]})
    assert _check("02_placements", 0, {"a1": flat})[0] is False  # strictly rising
    grid = pd.DataFrame({"local": [90.0, 91.0, 80.0], "global": [85.0, 92.0, 70.0]}, index=[80, 90, 99])
    ev = {"local_vs_global_S": grid, "local_vs_global_B": grid.assign(local=[99.0, 99.0, 99.0])}
    assert _check("03_global_vs_local", 0, ev) == (False, "local wins at 2 of 3 p (not at p = 90)")
    assert _check("03_global_vs_local", 1, ev) == (True, "local wins at 3 of 3 p")
    assert _check("03_global_vs_local", 2, ev) == (True, "best ASH-B@80 local (99.0)")


def test_rand_claims_by_hand():
    rand = pd.DataFrame({"AUROC": [88.0, 89.0]}, index=[65, 90])
    refs = pd.DataFrame({"AUROC": [87.0, 80.0, 50.0, 95.0, 94.0]},
                        index=["Energy", "Softmax", "ODIN", "ASH-S", "ASH-B"])
    ev = {"rand": rand, "references": refs}
    assert _check("04_ash_rand", 0, ev) == (True, "ASH-RAND at most 89.0; ASH-S 95.0, ASH-B 94.0")
    assert _check("04_ash_rand", 1, ev) == (True, "ASH-RAND at least 88.0; best of Energy/Softmax/ODIN 87.0")
    assert _check("04_ash_rand", 1, {**ev, "rand": rand.assign(AUROC=[86.0, 99.0])})[0] is False


def test_the_papers_own_numbers():
    """Verdicts on the quoted tables: the paper's claims mostly hold on its own numbers, and where they
    do not (Appendix A's accuracy, Section 5's "always"), the table says so."""
    def verdicts(chapter, benchmark="cifar10"):
        return claims.verdicts(chapter, claims.paper_evidence(chapter, benchmark))

    assert verdicts("01_methods") == [
        "holds: AUROC 94.6 → 96.6, FPR95 26.6 → 15.1", "holds: best ASH-S (96.6)", "holds: ASH-P 95.2, ASH-S 96.6",
        "holds: Softmax +0.1, ODIN +1.7, Energy +2.0, ReAct +2.0", "holds: stated (exact same curves)"]
    assert verdicts("01_methods", "imagenet")[0] == "holds: AUROC 86.2 → 95.1, FPR95 58.4 → 22.8"
    placements = verdicts("02_placements")
    assert placements[2] == "fails: best ASH-S@90 block4 (75.8), penultimate 75.0"  # Table A1 vs Appendix A
    assert placements[3].startswith("holds: best ASH-S@90 penultimate (95.1)")
    assert verdicts("03_global_vs_local")[:2] == ["fails: local wins at 13 of 14 p (not at p = 99)"] * 2
    assert [v.split(":")[0] for v in verdicts("04_ash_rand")] == ["holds", "holds"]


def test_table_shows_every_run_and_why_one_did_not_run():
    table = claims.table("03_global_vs_local", {"missing": FileNotFoundError("no data\nsecond line")})
    assert list(table.columns) == ["claim", "source", "Paper (ImageNet)", "missing"]
    assert table["missing"].tolist() == ["not run: FileNotFoundError: no data"] * 3
    assert len(table) == len(claims.CLAIMS["03_global_vs_local"])
    styled = claims.styled(table).to_html()
    assert "#f8e0e0" in styled and "#eeeeee" in styled  # fails red, not run grey
    with pytest.raises(ParameterError, match="chapter='05_nac'"):
        claims.table("05_nac", {})


def test_paper_key():
    assert claims.paper_key("mnist5k") == claims.paper_key("fmnist") == "cifar10"
    assert claims.paper_key("cifar100") == "cifar100" and claims.paper_key("imagenet") == "imagenet"


@pytest.mark.project_cache
def test_a_run_and_its_variant_give_evidence_of_the_same_shape():
    """On the embedded benchmark (cached checkpoint): run evidence has what the checks read, and a
    variant prepared from a profile shares the run's settings."""
    from ashlib import runs

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
    ev = claims.run_evidence("01_methods", quick)
    assert {"Energy", "ASH-S", "ASH-P", "Mahalanobis"} <= set(ev["avg"].index)
    assert ev["accuracy_gap"] >= 0
    table = claims.table("04_ash_rand", {"default": quick}, rand_percentiles=[80], seeds=[0])
    assert all(v.startswith(("holds: ", "fails: ")) for v in table["default"])
