"""The primer's hand-worked numbers (ashlib/book/chapters/ch00_primer.py, WORKED) against ashlib and
scikit-learn, and the page states each of them as worked."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from sklearn.metrics import average_precision_score, roc_auc_score

from ashlib.book.chapters import ch00_primer as primer
from ashlib.methods import scores, shaping
from ashlib.stats import metrics

NOTEBOOK = Path(__file__).parents[2] / "notebooks" / "00_primer.ipynb"
S_ID, S_OOD = primer.ID_SCORES, primer.OOD_SCORES
LABELS, SCORES = [1] * len(S_ID) + [0] * len(S_OOD), [*S_ID, *S_OOD]


def test_the_hand_worked_metrics_are_ashlibs_and_scikit_learns():
    w = primer.WORKED
    assert metrics.auroc(S_ID, S_OOD) == float(w["AUROC"]) == roc_auc_score(LABELS, SCORES)
    assert metrics.fpr95(S_ID, S_OOD, convention="paper") == float(w["FPR95 (paper)"])
    assert metrics.fpr95(S_ID, S_OOD, convention="roc") == float(w["FPR95 (roc)"])
    ap = metrics.aupr_in(S_ID, S_OOD, method="average_precision")
    assert ap == pytest.approx(float(w["AUPR-In (average precision)"]), rel=1e-12)
    assert ap == pytest.approx(average_precision_score(LABELS, SCORES), rel=1e-12)
    # the paper's trapezoid on four ID images: even a perfect detector loses 1 / (2 * 4)
    assert metrics.aupr_in([0.9, 0.8, 0.7, 0.6], [0.3, 0.2, 0.1, 0.0]) == pytest.approx(1 - 1 / 8)
    assert metrics.aupr_in(S_ID, S_OOD) < ap


def test_the_hand_worked_energy_and_ash_are_ashlibs():
    assert scores.energy(torch.tensor([primer.LOGITS])).item() == pytest.approx(primer.WORKED["energy"], rel=1e-6)
    a = torch.tensor([primer.ACTIVATIONS])
    assert shaping.kept_count(a.shape[1], primer.PERCENTILE) == 2
    for name, fn in [("ASH-P", shaping.ash_p), ("ASH-B", shaping.ash_b), ("ASH-S", shaping.ash_s)]:
        assert torch.allclose(fn(a, primer.PERCENTILE)[0], torch.tensor(primer.WORKED[name], dtype=torch.float32)), name
    assert sum(primer.WORKED["ASH-B"]) == pytest.approx(sum(primer.ACTIVATIONS))  # ASH-B keeps the sum


def test_the_page_states_each_hand_worked_number_as_worked():
    text = "\n".join("".join(c["source"]) for c in json.loads(NOTEBOOK.read_text())["cells"] if c["cell_type"] == "markdown")
    w = primer.WORKED
    stated = [f"{100 * float(w['AUROC']):.3f}%", f"{100 * float(w['FPR95 (paper)']):.0f}%",
              f"{100 * float(w['FPR95 (roc)']):.0f}%", f"{100 * float(w['AUPR-In (average precision)']):.2f}%",
              f"{w['energy']:.4f}", f"{w['ASH-B'][3]:g}", f"{w['ASH-S'][3]:.2f}", f"{w['ASH-S'][5]:.2f}",
              f"{math.exp(7 / 5):.3f}", "87.5%"]
    missing = [s for s in stated if s not in text]
    assert not missing, f"the page does not state {missing}"
