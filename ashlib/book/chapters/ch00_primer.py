"""The primer (notebooks/00_primer.ipynb): a score, the three metrics and ASH, worked by hand on numbers
small enough to follow with a pencil. :data:`WORKED` holds the page's hand-worked results as exact
fractions (or the closed form); the notebook and tests/book/test_primer.py check them against ashlib."""
from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

from ashlib.book.chapters import ChapterParameters

#: The toy detector's scores (higher: more in-distribution), with one tie across the classes at 0.3.
ID_SCORES = (0.9, 0.8, 0.7, 0.3)
OOD_SCORES = (0.6, 0.3, 0.2, 0.1)
#: One image's logits, for the energy score.
LOGITS = (2.0, 0.0, 0.0)
#: One image's penultimate activations (after a ReLU), and the pruning percentile of the ASH example.
ACTIVATIONS = (0.0, 0.5, 1.0, 2.0, 0.1, 3.0, 0.2, 0.2)
PERCENTILE = 75

#: The results the page works out by hand (fractions of 1; activations as they come out).
WORKED = {
    # 3 ID scores beat all 4 OOD scores (12 pairs), the ID 0.3 beats 0.2 and 0.1 and ties 0.3 (2.5 pairs)
    "AUROC": Fraction(29, 32),  # 14.5 / 16
    # paper: the threshold is the lowest ID score (index round(0.05 * 4) = 0); OOD strictly above 0.3: 0.6
    "FPR95 (paper)": Fraction(1, 4),
    # roc: every ID score must pass (3 of 4 is 75% < 95%), so t = 0.3; OOD at or above it: 0.6 and 0.3
    "FPR95 (roc)": Fraction(1, 2),
    # average precision: recall steps of 1/4 at precisions 1/1, 2/2, 3/3, then 4/6 (0.3's tie group)
    "AUPR-In (average precision)": Fraction(1, 4) * (1 + 1 + 1 + Fraction(4, 6)),
    # -E(x) = logsumexp(z) = 2 + log(1 + 2 e^-2)
    "energy": 2 + math.log(1 + 2 * math.exp(-2)),
    # p = 75 of 8 units: keep 8 - round(6) = 2, the values 2 and 3; s1 = 7, s2 = 5
    "ASH-P": (0, 0, 0, 2, 0, 3, 0, 0),
    "ASH-B": (0, 0, 0, 3.5, 0, 3.5, 0, 0),  # each kept unit gets s1 / k = 7 / 2
    "ASH-S": tuple(v * math.exp(7 / 5) for v in (0, 0, 0, 2, 0, 3, 0, 0)),  # kept units times exp(s1 / s2)
}


@dataclass(frozen=True)
class Parameters(ChapterParameters):
    """The primer has no parameters: its numbers are the example's."""
