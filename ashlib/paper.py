"""Numbers reported in the ASH paper (Djurisic et al., ICLR 2023), transcribed from its text.

These are the paper's results, never ours: every table a notebook shows labels them as such,
beside the numbers this run produced. Source: ../shared/seeds/001 (the paper with its appendix).
"""
from __future__ import annotations

from io import StringIO

import pandas as pd

CITATION = ("A. Djurisic, N. Bozanic, A. Ashok, R. Liu. Extremely Simple Activation Shaping for "
            "Out-of-Distribution Detection. ICLR 2023.")

# Table 3 (page 6): DenseNet-101, averages over 6 OOD sets; percentages. DICE's +- omitted here.
_TABLE3 = """method,cifar10_FPR95,cifar10_AUROC,cifar100_FPR95,cifar100_AUROC
Softmax,48.73,92.46,80.13,74.36
ODIN,24.57,93.71,58.14,84.49
Mahalanobis,31.42,89.15,55.37,82.73
Energy,26.55,94.57,68.45,81.19
ReAct,26.45,94.95,62.27,84.47
DICE,20.83,95.24,49.72,87.23
ASH-P,23.45,95.22,64.53,82.71
ASH-B,20.23,96.02,48.73,88.04
ASH-S,15.05,96.61,41.40,90.02
"""

# Appendix D: the p used for each ASH row of Tables 2 and 3.
PAPER_PERCENTILES = {
    "imagenet": {"P": 60, "B": 65, "S": 90},
    "cifar10": {"P": 90, "B": 95, "S": 95},
    "cifar100": {"P": 80, "B": 85, "S": 90},
}


def table3(benchmark: str = "cifar10") -> pd.DataFrame:
    """Paper Table 3 for ``benchmark`` ('cifar10' or 'cifar100'): FPR95 and AUROC averaged over 6 OOD sets."""
    df = pd.read_csv(StringIO(_TABLE3)).set_index("method")
    cols = [c for c in df.columns if c.startswith(benchmark + "_")]
    return df[cols].rename(columns=lambda c: c.split("_", 1)[1])
