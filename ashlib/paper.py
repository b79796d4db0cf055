"""Numbers reported in the ASH paper (Djurisic et al., ICLR 2023), transcribed from its text.

These are the paper's results, never ours: every table a notebook shows labels them as such
("Paper, Table X"), beside the numbers this run produced. Source: ../shared/seeds/001 (the paper
with its appendix, as plain text; it has no page numbers, so each table is cited by its number and
section, e.g. "Table 2, Section 4.2").

The numbers are kept below as CSV text blocks laid out like the paper's tables (same rows, same
column order, the paper's row labels without citation marks or bold), so a reviewer can compare
them line by line with the paper. A DICE cell written ``25.99 ± 5.10`` keeps the paper's spread.
Everything is parsed once, at import, into one long table per paper table:

* :func:`paper_results` -- the tidy long form of one table (see :data:`TABLES`);
* :func:`table2`, :func:`table3`, :func:`table4`, :func:`table5`, :func:`local_vs_global`,
  :func:`table_a1`, :func:`table_a2_a3` -- wide views laid out like the paper, each with
  ``attrs["source"]`` naming the table and section.

Where the paper contradicts itself the numbers are kept as printed; the known cases are listed
in :data:`KNOWN_INCONSISTENCIES` (and checked in ``tests/test_paper.py``).
"""
from __future__ import annotations

import re
from io import StringIO

import numpy as np
import pandas as pd

from ashlib import _tables
from ashlib._checks import check_choice

CITATION = ("A. Djurisic, N. Bozanic, A. Ashok, R. Liu. Extremely Simple Activation Shaping for "
            "Out-of-Distribution Detection. ICLR 2023.")

# ---------------------------------------------------------------------------------------------
# The paper's tables, as printed. All values are percentages.
# ---------------------------------------------------------------------------------------------

# Table 2, Section 4.2: ImageNet, ResNet-50 and MobileNetV2, per OOD set and average.
_TABLE2 = """model,method,iNaturalist FPR95,iNaturalist AUROC,SUN FPR95,SUN AUROC,Places FPR95,Places AUROC,Textures FPR95,Textures AUROC,Average FPR95,Average AUROC
ResNet,Softmax score,54.99,87.74,70.83,80.86,73.99,79.76,68.00,79.61,66.95,81.99
ResNet,ODIN,47.66,89.66,60.15,84.59,67.89,81.78,50.23,85.62,56.48,85.41
ResNet,Mahalanobis,97.00,52.65,98.50,42.41,98.40,41.79,55.80,85.01,87.43,55.47
ResNet,Energy score,55.72,89.95,59.26,85.89,64.92,82.86,53.72,85.99,58.41,86.17
ResNet,ReAct,20.38,96.22,24.20,94.20,33.85,91.58,47.30,89.80,31.43,92.95
ResNet,DICE,25.63,94.49,35.15,90.83,46.49,87.48,31.72,90.30,34.75,90.77
ResNet,DICE + ReAct,18.64,96.24,25.45,93.94,36.86,90.67,28.07,92.74,27.25,93.40
ResNet,ASH-P (Ours),44.57,92.51,52.88,88.35,61.79,85.58,42.06,89.70,50.32,89.04
ResNet,ASH-B (Ours),14.21,97.32,22.08,95.10,33.45,92.31,21.17,95.50,22.73,95.06
ResNet,ASH-S (Ours),11.49,97.87,27.98,94.02,39.78,90.98,11.93,97.60,22.80,95.12
MobileNet,Softmax score,64.29,85.32,77.02,77.10,79.23,76.27,73.51,77.30,73.51,79.00
MobileNet,ODIN,55.39,87.62,54.07,85.88,57.36,84.71,49.96,85.03,54.20,85.81
MobileNet,Mahalanobis,62.11,81.00,47.82,86.33,52.09,83.63,92.38,33.06,63.60,71.01
MobileNet,Energy score,59.50,88.91,62.65,84.50,69.37,81.19,58.05,85.03,62.39,84.91
MobileNet,ReAct,42.40,91.53,47.69,88.16,51.56,86.64,38.42,91.53,45.02,89.47
MobileNet,DICE,43.09,90.83,38.69,90.46,53.11,85.81,32.80,91.30,41.92,89.60
MobileNet,DICE + ReAct,32.30,93.57,31.22,92.86,46.78,88.02,16.28,96.25,31.64,92.68
MobileNet,ASH-P (Ours),54.92,90.46,58.61,86.72,66.59,83.47,48.48,88.72,57.15,87.34
MobileNet,ASH-B (Ours),31.46,94.28,38.45,91.61,51.80,87.56,20.92,95.07,35.66,92.13
MobileNet,ASH-S (Ours),39.10,91.94,43.62,90.02,58.84,84.73,13.12,97.10,38.67,90.95
"""

# Table 3, Section 4.2: CIFAR-10/100, DenseNet-101, averages over 6 OOD sets.
_TABLE3 = """method,CIFAR-10 FPR95,CIFAR-10 AUROC,CIFAR-100 FPR95,CIFAR-100 AUROC
Softmax score,48.73,92.46,80.13,74.36
ODIN,24.57,93.71,58.14,84.49
Mahalanobis,31.42,89.15,55.37,82.73
Energy score,26.55,94.57,68.45,81.19
ReAct,26.45,94.95,62.27,84.47
DICE,20.83 ± 1.58,95.24 ± 0.24,49.72 ± 1.69,87.23 ± 0.73
ASH-P (Ours),23.45,95.22,64.53,82.71
ASH-B (Ours),20.23,96.02,48.73,88.04
ASH-S (Ours),15.05,96.61,41.40,90.02
"""

# Table 4, Section 4.4: ASH-RAND, ImageNet, ResNet-50, averages over 4 OOD sets.
_TABLE4 = """method,FPR95,AUROC,AUPR,ID acc
ASH-RAND@65,45.37,90.80,98.09,72.16
ASH-RAND@70,46.93,90.67,98.05,72.87
ASH-RAND@75,46.93,90.67,98.05,73.19
ASH-RAND@80,51.24,89.94,97.89,73.57
ASH-RAND@90,59.35,87.88,97.44,73.51
Softmax score,64.76,82.82,95.94,76.13
Energy score,57.47,87.05,97.15,76.13
ODIN,56.48,44.10,96.61,76.13
ASH-B@65,22.73,95.06,98.94,74.12
ASH-S@90,22.80,95.12,98.90,74.98
"""

# Table 5, Section 5: ASH plugged into other methods; averages over 6 (CIFAR) or 4 (ImageNet) sets.
_TABLE5 = """method,CIFAR-10 FPR95,CIFAR-10 AUROC,CIFAR-10 AUPR,CIFAR-100 FPR95,CIFAR-100 AUROC,CIFAR-100 AUPR,ImageNet FPR95,ImageNet AUROC,ImageNet AUPR
Softmax score,48.69,92.52,80.75,80.06,74.45,76.99,64.76,82.82,95.94
Softmax score + ASH,48.86,92.61,77.03,76.04,75.00,78.61,37.86,90.90,97.97
ODIN,25.71,94.72,95.60,64.87,82.43,84.85,50.80,87.57,97.19
ODIN + ASH,15.38,96.41,96.62,38.54,90.49,91.51,28.59,93.34,98.40
Energy score,26.59,94.63,95.61,68.29,81.23,83.64,57.47,87.05,97.15
Energy score + ASH,15.05,96.61,96.88,41.40,90.02,91.23,22.80,95.12,98.90
ReAct,29.00,94.92,96.14,69.94,82.07,85.43,31.43,92.95,98.50
ReAct + ASH,16.35,96.91,97.41,41.64,88.93,90.14,24.88,94.27,98.66
"""

# Figure 4 (a), Section 5: ASH-S, local vs global threshold, ImageNet, ResNet-50, averages.
_FIGURE4 = """method,Local FPR95,Local AUROC,Local AUPR,Global FPR95,Global AUROC,Global AUPR
ASH-S@99,40.49,88.23,97.01,44.24,88.94,97.37
ASH-S@98,34.72,90.30,97.54,45.03,89.53,97.64
ASH-S@97,30.88,91.77,97.93,46.99,89.41,97.63
ASH-S@96,28.34,92.94,98.26,48.53,89.17,97.57
ASH-S@95,25.97,93.75,98.49,49.94,88.87,97.51
ASH-S@94,24.56,94.33,98.66,51.11,88.60,97.44
ASH-S@93,23.45,94.70,98.76,52.11,88.38,97.39
ASH-S@92,22.82,94.94,98.83,53.00,88.17,97.34
ASH-S@91,22.88,95.06,98.87,53.85,87.95,97.29
ASH-S@90,22.80,95.12,98.90,54.74,87.75,97.25
ASH-S@85,24.28,94.85,98.86,58.28,86.97,97.07
ASH-S@80,26.59,94.33,98.75,60.84,86.42,96.96
ASH-S@75,29.32,93.82,98.64,63.16,85.98,96.88
ASH-S@70,31.64,93.33,98.53,64.68,85.66,96.83
"""

# Table A1, Appendix A: ASH placements in a ResNet-50 on ImageNet, averages over 4 OOD sets.
_TABLE_A1 = """method,FPR95,AUROC,AUPR,ID acc
ASH-P@90 before last ReLU of 1st Block,93.55,59.46,89.89,28.57
ASH-P@90 before last ReLU of 2nd Block,70.45,81.45,95.93,62.78
ASH-P@90 before last ReLU of 3rd Block,63.38,85.83,96.91,75.36
ASH-S@90 before last ReLU of 3rd Block,98.51,41.39,83.59,5.21
ASH-S@70 before last ReLU of 3rd Block,97.72,49.50,87.27,19.32
ASH-S@90 before last ReLU of 4th Block,34.69,92.11,98.38,75.83
ASH-S@90 after penultimate Layer*,22.80,95.12,98.90,74.98
No ASH (Energy score alone),58.41,86.17,96.88,76.13
"""

# Table A2, Appendix B: CIFAR-10, DenseNet-101, per OOD set (DICE with its spread).
_TABLE_A2 = """method,SVHN FPR95,SVHN AUROC,LSUN-C FPR95,LSUN-C AUROC,LSUN-R FPR95,LSUN-R AUROC,iSUN FPR95,iSUN AUROC,Textures FPR95,Textures AUROC,Places365 FPR95,Places365 AUROC,Average FPR95,Average AUROC
Softmax score,47.24,93.48,33.57,95.54,42.10,94.51,42.31,94.52,64.15,88.15,63.02,88.57,48.73,92.46
ODIN,25.29,94.57,4.70,98.86,3.09,99.02,3.98,98.90,57.50,82.38,52.85,88.55,24.57,93.71
GODIN,6.68,98.32,17.58,95.09,36.56,92.09,36.44,91.75,35.18,89.24,73.06,77.18,34.25,90.61
Mahalanobis,6.42,98.31,56.55,86.96,9.14,97.09,9.78,97.25,21.51,92.15,85.14,63.15,31.42,89.15
Energy score,40.61,93.99,3.81,99.15,9.28,98.12,10.07,98.07,56.12,86.43,39.40,91.64,26.55,94.57
ReAct,41.64,93.87,5.96,98.84,11.46,97.87,12.72,97.72,43.58,92.47,43.31,91.03,26.45,94.67
DICE,25.99 ± 5.10,95.90 ± 1.08,0.26 ± 0.11,99.92 ± 0.02,3.91 ± 0.56,99.20 ± 0.15,4.36 ± 0.71,99.14 ± 0.15,41.90 ± 4.41,88.18 ± 1.80,48.59 ± 1.53,89.13 ± 0.31,20.83 ± 1.58,95.24 ± 0.24
ASH-P (Ours),30.14,95.29,2.82,99.34,7.97,98.33,8.46,98.29,50.85,88.29,40.46,91.76,23.45,95.22
ASH-B (Ours),17.92,96.86,2.52,99.48,8.13,98.54,8.59,98.45,35.73,92.88,48.47,89.93,20.23,96.02
ASH-S (Ours),6.51,98.65,0.90,99.73,4.96,98.92,5.17,98.90,24.34,95.09,48.45,88.34,15.05,96.61
"""

# Table A3, Appendix B: CIFAR-100, DenseNet-101, per OOD set (DICE with its spread).
_TABLE_A3 = """method,SVHN FPR95,SVHN AUROC,LSUN-C FPR95,LSUN-C AUROC,LSUN-R FPR95,LSUN-R AUROC,iSUN FPR95,iSUN AUROC,Textures FPR95,Textures AUROC,Places365 FPR95,Places365 AUROC,Average FPR95,Average AUROC
Softmax score,81.70,75.40,60.49,85.60,85.24,69.18,85.99,70.17,84.79,71.48,82.55,74.31,80.13,74.36
ODIN,41.35,92.65,10.54,97.93,65.22,84.22,67.05,83.84,82.34,71.48,82.32,76.84,58.14,84.49
GODIN,36.74,93.51,43.15,89.55,40.31,92.61,37.41,93.05,64.26,76.72,95.33,65.97,52.87,85.24
Mahalanobis,22.44,95.67,68.90,86.30,23.07,94.20,31.38,93.21,62.39,79.39,92.66,61.39,55.37,82.73
Energy score,87.46,81.85,14.72,97.43,70.65,80.14,74.54,78.95,84.15,71.03,79.20,77.72,68.45,81.19
ReAct,83.81,81.41,25.55,94.92,60.08,87.88,65.27,86.55,77.78,78.95,82.65,74.04,62.27,84.47
DICE,54.65 ± 4.94,88.84 ± 0.39,0.93 ± 0.07,99.74 ± 0.01,49.40 ± 1.99,91.04 ± 1.49,48.72 ± 1.55,90.08 ± 1.36,65.04 ± 0.66,76.42 ± 0.35,79.58 ± 2.34,77.26 ± 1.08,49.72 ± 1.69,87.23 ± 0.73
ASH-P (Ours),81.86,83.86,11.60,97.89,67.56,81.67,70.90,80.81,78.24,74.09,77.03,77.94,64.53,82.71
ASH-B (Ours),53.52,90.27,4.46,99.17,48.38,91.03,47.82,91.09,53.71,84.25,84.52,72.46,48.73,88.04
ASH-S (Ours),25.02,95.76,5.52,98.94,51.33,90.12,46.67,91.30,34.02,92.35,85.86,71.62,41.40,90.02
"""

# Table A4, Appendix C: ASH-B, local vs global threshold, ImageNet, ResNet-50, averages.
_TABLE_A4 = """method,Local FPR95,Local AUROC,Local AUPR,Global FPR95,Global AUROC,Global AUPR
ASH-B@99,45.43,89.09,97.55,41.70,89.75,97.55
ASH-B@98,39.59,91.22,98.08,41.64,90.57,97.87
ASH-B@97,36.54,92.17,98.30,42.73,90.57,97.88
ASH-B@96,34.26,92.79,98.44,43.55,90.43,97.85
ASH-B@95,32.64,93.20,98.52,44.38,90.20,97.79
ASH-B@94,31.09,93.51,98.59,45.39,89.99,97.75
ASH-B@93,30.03,93.76,98.64,45.77,89.86,97.72
ASH-B@92,29.01,93.95,98.68,46.29,89.71,97.68
ASH-B@91,28.43,94.10,98.71,46.97,89.55,97.64
ASH-B@90,27.58,94.24,98.74,48.25,89.39,97.61
ASH-B@85,25.26,94.65,98.83,51.04,88.77,97.48
ASH-B@80,24.04,94.88,98.88,53.63,88.24,97.37
ASH-B@75,22.95,95.02,98.91,56.66,87.63,97.25
ASH-B@70,22.39,95.08,98.93,60.19,86.93,97.12
"""

# ---------------------------------------------------------------------------------------------
# Appendix D: which p (and, for Table 5, which ASH variant) each ASH row uses.
# ---------------------------------------------------------------------------------------------

# Appendix D: the p used for each ASH row of Tables 2 (ImageNet; both models), 3, A2 and A3.
PAPER_PERCENTILES = {
    "imagenet": {"P": 60, "B": 65, "S": 90},
    "cifar10": {"P": 90, "B": 95, "S": 95},
    "cifar100": {"P": 80, "B": 85, "S": 90},
}

# Appendix D, notes on Table 5: the ASH variant and p behind each "+ ASH" row.
# ("ReAct + ASH" also uses a ReAct clipping threshold of 1.0 everywhere.)
TABLE5_ASH = {
    "cifar10": {"Softmax + ASH": ("ASH-P", 95), "ODIN + ASH": ("ASH-S", 95),
                "Energy + ASH": ("ASH-S", 95), "ReAct + ASH": ("ASH-S", 90)},
    "cifar100": {"Softmax + ASH": ("ASH-B", 70), "ODIN + ASH": ("ASH-S", 90),
                 "Energy + ASH": ("ASH-S", 90), "ReAct + ASH": ("ASH-S", 90)},
    "imagenet": {"Softmax + ASH": ("ASH-B", 65), "ODIN + ASH": ("ASH-S", 90),
                 "Energy + ASH": ("ASH-S", 90), "ReAct + ASH": ("ASH-S", 90)},
}

# ---------------------------------------------------------------------------------------------
# Names: the paper's labels -> the names our code uses.
# ---------------------------------------------------------------------------------------------

TABLES = ("Table 2", "Table 3", "Table 4", "Table 5", "Figure 4",
          "Table A1", "Table A2", "Table A3", "Table A4")

SOURCES = {
    "Table 2": "Table 2, Section 4.2",
    "Table 3": "Table 3, Section 4.2",
    "Table 4": "Table 4, Section 4.4",
    "Table 5": "Table 5, Section 5",
    "Figure 4": "Figure 4 (a), Section 5",
    "Table A1": "Table A1, Appendix A",
    "Table A2": "Table A2, Appendix B",
    "Table A3": "Table A3, Appendix B",
    "Table A4": "Table A4, Appendix C",
}

COLUMNS = ("table", "source", "benchmark", "model", "method", "percentile", "threshold",
           "placement", "ood_set", "metric", "value", "spread")

METRICS = ("FPR95", "AUROC", "AUPR", "ID acc")
BENCHMARKS = ("imagenet", "cifar10", "cifar100")
MODELS = ("ResNet-50", "MobileNetV2")
OOD_SETS = {
    "imagenet": ("iNaturalist", "SUN", "Places", "Textures"),
    "cifar": ("SVHN", "LSUN-C", "LSUN-R", "iSUN", "Textures", "Places365"),
}

# Table A1's placements in our words -> the paper's row wording.
PLACEMENTS = {
    "block1": "before last ReLU of 1st Block",
    "block2": "before last ReLU of 2nd Block",
    "block3": "before last ReLU of 3rd Block",
    "block4": "before last ReLU of 4th Block",
    "penultimate": "after penultimate Layer*",
}

_METHODS = {
    "Softmax score": "Softmax", "ODIN": "ODIN", "GODIN": "GODIN", "Mahalanobis": "Mahalanobis",
    "Energy score": "Energy", "ReAct": "ReAct", "DICE": "DICE", "DICE + ReAct": "DICE+ReAct",
    "ASH-P (Ours)": "ASH-P", "ASH-B (Ours)": "ASH-B", "ASH-S (Ours)": "ASH-S",
    "Softmax score + ASH": "Softmax + ASH", "ODIN + ASH": "ODIN + ASH",
    "Energy score + ASH": "Energy + ASH", "ReAct + ASH": "ReAct + ASH",
    "No ASH (Energy score alone)": "Energy",
}
_BENCHMARKS = {"CIFAR-10": "cifar10", "CIFAR-100": "cifar100", "ImageNet": "imagenet"}
_MODELS = {"ResNet": "ResNet-50", "MobileNet": "MobileNetV2"}
_AT = re.compile(r"^(ASH-[A-Z]+)@(\d+)(?: (.*))?$")

# Where the paper disagrees with itself; the numbers above are kept as printed (tests/test_paper.py
# checks that each of these is still there, so a "fix" of the paper's number would be noticed).
KNOWN_INCONSISTENCIES = {
    "Table A2, ReAct, Average AUROC":
        "prints 94.67, but the mean of its six per-set AUROCs is 95.30.",
    "Table 3, ReAct, CIFAR-10 AUROC":
        "prints 94.95, Table A2's Average column prints 94.67 for the same number (and the "
        "six sets of Table A2 average to 95.30); all other Table 3 values equal Table A2/A3.",
    "Table A3, Mahalanobis, Average":
        "prints FPR95 55.37 / AUROC 82.73, but its six sets average to 50.14 / 85.03.",
    "Table A3, ReAct, Average":
        "prints FPR95 62.27 / AUROC 84.47, but its six sets average to 65.86 / 83.96.",
    "Table 4, ODIN, AUROC":
        "44.10 is implausible (below chance) beside FPR95 56.48; Table 2 gives ODIN (ResNet-50) "
        "the same FPR95 56.48 with AUROC 85.41, Table 5 gives ODIN on ImageNet 50.80 / 87.57.",
    "Table 4, ASH-RAND@70 and ASH-RAND@75":
        "identical OOD metrics (46.93, 90.67, 98.05) with different ID accuracies "
        "(72.87, 73.19): probably a copied row.",
    "Table 4 caption, 'consistently beats Energy, Softmax and ODIN'":
        "ASH-RAND@90's FPR95 (59.35) is worse than Energy's (57.47) and ODIN's (56.48).",
    "Figure 4 / Table A4 text, 'a local threshold always works better'":
        "not at p=99 (ASH-S: global AUROC 88.94 > 88.23, AUPR 97.37 > 97.01; ASH-B: global "
        "FPR95 41.70 < 45.43, AUROC 89.75 > 89.09, AUPR tied at 97.55) nor ASH-S p=98 AUPR "
        "(global 97.64 > 97.54).",
    "Energy / Softmax on ImageNet (ResNet-50)":
        "two versions: Tables 2 and A1 ('No ASH') give Energy 58.41 / 86.17 (A1: AUPR 96.88) and "
        "Softmax 66.95 / 81.99 (taken from Sun et al.); Tables 4 and 5 give Energy "
        "57.47 / 87.05 / 97.15 and Softmax 64.76 / 82.82 / 95.94 (re-implemented).",
    "Table 5 caption, 'All results are implemented by us'":
        "its ImageNet ReAct row (31.43 / 92.95) is exactly Table 2's ReAct (ResNet-50) average, "
        "which Table 2 says is taken from Sun et al.",
    "Appendix B":
        "says Tables A2 and A3 supplement 'Table 2'; they are the per-set version of Table 3.",
}


# ---------------------------------------------------------------------------------------------
# Parsing: each text block -> one long DataFrame with COLUMNS.
# ---------------------------------------------------------------------------------------------

def _cell(text: str) -> tuple[float, float]:
    """``'25.99 ± 5.10'`` -> (25.99, 5.10); ``'48.73'`` -> (48.73, nan)."""
    value, _, spread = str(text).partition("±")
    return float(value), (float(spread) if spread.strip() else np.nan)


def _split_header(header: str) -> tuple[str | None, str]:
    """``'SUN FPR95'`` -> ('SUN', 'FPR95'); ``'ID acc'`` -> (None, 'ID acc')."""
    for metric in METRICS:
        if header == metric:
            return None, metric
        if header.endswith(" " + metric):
            return header[: -len(metric) - 1], metric
    raise ValueError(f"unknown column {header!r} in a paper table")


def _melt(block: str, keys: tuple[str, ...]) -> pd.DataFrame:
    """One row per (row of the block, value column): ``keys`` + group, metric, value, spread."""
    wide = pd.read_csv(StringIO(block), dtype=str, keep_default_na=False)
    rows = []
    for _, row in wide.iterrows():
        for header in wide.columns.drop(list(keys)):
            group, metric = _split_header(header)
            value, spread = _cell(row[header])
            rows.append({**{k: row[k] for k in keys}, "group": group, "metric": metric,
                         "value": value, "spread": spread})
    return pd.DataFrame(rows)


def _label(label: str) -> tuple[str, float, str | None]:
    """A paper row label -> (method, percentile from the label or nan, placement from the label)."""
    match = _AT.match(label)
    if match:
        method, p, where = match.groups()
        placement = "penultimate"
        if where is not None:
            placement = {v: k for k, v in PLACEMENTS.items()}[where]
        return method, float(p), placement
    return _METHODS[label], np.nan, None


def _is_ash(method: str) -> bool:
    return method.startswith("ASH") or method.endswith("+ ASH")


def _finish(df: pd.DataFrame, table: str, *, benchmark=None, model=None, ood_set=None,
            threshold=None) -> pd.DataFrame:
    """Fill the shared columns. ``benchmark``/``model``/``ood_set``/``threshold``, when given (a
    value for every row, or a Series), override; otherwise they must already be columns of ``df``
    (threshold: 'local' for ASH rows, None for baselines; ood_set: the column group)."""
    df = df.copy()
    df["table"], df["source"] = table, SOURCES[table]
    labels = df.pop("method").map(_label)
    df["method"] = [m for m, _, _ in labels]
    if "percentile" not in df:
        df["percentile"] = [p for _, p, _ in labels]
    df["placement"] = [pl if pl is not None or not _is_ash(m) else "penultimate"
                       for m, _, pl in labels]
    for name, given in (("benchmark", benchmark), ("model", model), ("ood_set", ood_set),
                        ("threshold", threshold)):
        if given is not None:
            df[name] = given
    if threshold is None:
        df["threshold"] = ["local" if _is_ash(m) else None for m in df["method"]]
    if ood_set is None and "ood_set" not in df:
        df["ood_set"] = df["group"]
    df.loc[df["metric"] == "ID acc", "ood_set"] = None
    df["percentile"] = df["percentile"].astype(float)
    out = df[list(COLUMNS)].reset_index(drop=True)
    for col in ("threshold", "placement", "ood_set"):
        out[col] = out[col].astype(object).where(out[col].notna(), None)
    return out


def _appendix_d(df: pd.DataFrame) -> pd.Series:
    """The p of Table 2/3/A2/A3's ASH rows (ASH-P/B/S), from Appendix D; nan for baselines."""
    return pd.Series([PAPER_PERCENTILES[b][m[-1]] if m.startswith("ASH-") else np.nan
                      for b, m in zip(df["benchmark"], df["method"].map(lambda lab: _label(lab)[0]))],
                     index=df.index, dtype=float)


def _build() -> dict[str, pd.DataFrame]:
    out = {}

    t2 = _melt(_TABLE2, ("model", "method"))
    t2["model"] = t2["model"].map(_MODELS)
    t2["benchmark"] = "imagenet"
    t2["percentile"] = _appendix_d(t2)
    out["Table 2"] = _finish(t2, "Table 2")

    t3 = _melt(_TABLE3, ("method",))
    t3["benchmark"] = t3["group"].map(_BENCHMARKS)
    t3["percentile"] = _appendix_d(t3)
    out["Table 3"] = _finish(t3, "Table 3", model="DenseNet-101", ood_set="Average")

    t4 = _melt(_TABLE4, ("method",))
    out["Table 4"] = _finish(t4, "Table 4", benchmark="imagenet", model="ResNet-50",
                             ood_set="Average")

    t5 = _melt(_TABLE5, ("method",))
    t5["benchmark"] = t5["group"].map(_BENCHMARKS)
    t5["model"] = t5["benchmark"].map(
        {"cifar10": "DenseNet-101", "cifar100": "DenseNet-101", "imagenet": "ResNet-50"})
    t5["percentile"] = [float(TABLE5_ASH[b][_METHODS[m]][1]) if _METHODS[m] in TABLE5_ASH[b]
                        else np.nan for b, m in zip(t5["benchmark"], t5["method"])]
    out["Table 5"] = _finish(t5, "Table 5", ood_set="Average")

    for table, block in (("Figure 4", _FIGURE4), ("Table A4", _TABLE_A4)):
        lg = _melt(block, ("method",))
        lg["threshold"] = lg["group"].str.lower()
        out[table] = _finish(lg, table, benchmark="imagenet", model="ResNet-50",
                             ood_set="Average", threshold=lg["threshold"])

    a1 = _melt(_TABLE_A1, ("method",))
    out["Table A1"] = _finish(a1, "Table A1", benchmark="imagenet", model="ResNet-50",
                              ood_set="Average")

    for table, block, benchmark in (("Table A2", _TABLE_A2, "cifar10"),
                                    ("Table A3", _TABLE_A3, "cifar100")):
        a = _melt(block, ("method",))
        a["benchmark"] = benchmark
        a["percentile"] = _appendix_d(a)
        out[table] = _finish(a, table, model="DenseNet-101")
    return out


_LONG = _build()


# ---------------------------------------------------------------------------------------------
# Public accessors.
# ---------------------------------------------------------------------------------------------

def paper_results(table: str) -> pd.DataFrame:
    """The paper's ``table`` (one of :data:`TABLES`) in long form, one row per reported number.

    Columns: ``table``, ``source`` (table and section), ``benchmark``, ``model``, ``method``,
    ``percentile`` (p of ASH rows; nan for baselines), ``threshold`` ('local'/'global' for ASH
    rows, None otherwise), ``placement`` ('penultimate' unless Table A1 says otherwise; None for
    baselines), ``ood_set`` ('Average' for averaged tables; None for ID accuracy), ``metric``,
    ``value`` (percent) and ``spread`` (the paper's ± where given, else nan).
    """
    check_choice("table", table, TABLES)
    df = _LONG[table].copy()
    df.attrs["source"] = SOURCES[table]
    return df


def table2(model: str = "ResNet-50") -> pd.DataFrame:
    """Paper Table 2 for ``model`` ('ResNet-50' or 'MobileNetV2'): ImageNet, per OOD set.

    Index: method; columns: MultiIndex (ood_set, metric) with metric FPR95 and AUROC.
    """
    check_choice("model", model, MODELS)
    df = _LONG["Table 2"]
    return _tables.wide(df[df["model"] == model], "method", ["ood_set", "metric"], SOURCES["Table 2"])


def table3(benchmark: str = "cifar10") -> pd.DataFrame:
    """Paper Table 3 for ``benchmark`` ('cifar10' or 'cifar100'): FPR95 and AUROC averaged over 6 OOD sets.

    Index: method; columns: FPR95, AUROC. DICE's ± is in :func:`paper_results`.
    """
    check_choice("benchmark", benchmark, ("cifar10", "cifar100"))
    df = _LONG["Table 3"]
    return _tables.wide(df[df["benchmark"] == benchmark], "method", ["metric"], SOURCES["Table 3"])


def _at_label(df: pd.DataFrame) -> pd.Series:
    """'ASH-S' with p 90 -> 'ASH-S@90'; baselines keep their method name."""
    return pd.Series([m if np.isnan(p) else f"{m}@{p:g}" for m, p in
                      zip(df["method"], df["percentile"])], index=df.index)


def table4() -> pd.DataFrame:
    """Paper Table 4 (ASH-RAND; ImageNet, ResNet-50): index label (e.g. 'ASH-RAND@65', 'Energy'),
    columns FPR95, AUROC, AUPR, ID acc."""
    df = _LONG["Table 4"].assign(label=lambda d: _at_label(d))
    return _tables.wide(df, "label", ["metric"], SOURCES["Table 4"])


def table5(benchmark: str = "imagenet") -> pd.DataFrame:
    """Paper Table 5 for ``benchmark``: index method (e.g. 'Softmax', 'Softmax + ASH'),
    columns FPR95, AUROC, AUPR. The ASH variant and p of each '+ ASH' row: :data:`TABLE5_ASH`."""
    check_choice("benchmark", benchmark, BENCHMARKS)
    df = _LONG["Table 5"]
    return _tables.wide(df[df["benchmark"] == benchmark], "method", ["metric"], SOURCES["Table 5"])


def local_vs_global(variant: str = "S") -> pd.DataFrame:
    """Local vs global threshold on ImageNet (ResNet-50): 'S' -> Figure 4 (a), 'B' -> Table A4.

    Index: p (int); columns: MultiIndex (threshold, metric).
    """
    check_choice("variant", variant, ("S", "B"))
    table = "Figure 4" if variant == "S" else "Table A4"
    df = _LONG[table].assign(p=lambda d: d["percentile"].astype(int))
    return _tables.wide(df, "p", ["threshold", "metric"], SOURCES[table])


def table_a1() -> pd.DataFrame:
    """Paper Table A1 (ASH placements in a ResNet-50 on ImageNet).

    Index: label such as 'ASH-P@90 block1' ('Energy' for the no-ASH row); columns: method,
    percentile, placement, FPR95, AUROC, AUPR, ID acc. :data:`PLACEMENTS` gives the paper's wording.
    """
    df = _LONG["Table A1"].assign(
        label=lambda d: [lab if pl is None else f"{lab} {pl}"
                         for lab, pl in zip(_at_label(d), d["placement"])])
    values = _tables.wide(df, "label", ["metric"], SOURCES["Table A1"])
    meta = df.drop_duplicates("label").set_index("label")[["method", "percentile", "placement"]]
    out = meta.join(values)
    out.index.name = "label"
    out.attrs["source"] = SOURCES["Table A1"]
    return out


def table_a2_a3(benchmark: str = "cifar10") -> pd.DataFrame:
    """Paper Table A2 ('cifar10') or A3 ('cifar100'): DenseNet-101, per OOD set.

    Index: method; columns: MultiIndex (ood_set, metric). DICE's ± is in :func:`paper_results`.
    """
    check_choice("benchmark", benchmark, ("cifar10", "cifar100"))
    table = "Table A2" if benchmark == "cifar10" else "Table A3"
    return _tables.wide(_LONG[table], "method", ["ood_set", "metric"], SOURCES[table])
