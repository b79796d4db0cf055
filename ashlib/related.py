"""Numbers reported by two related works, transcribed from their slides: NAC and the MiSP thesis.

These are other people's results, never ours: every table a notebook shows labels them as such
(e.g. "NAC slides, detection table"), beside the numbers this run produced.

Sources (the book's seeds, plain text extracted from slides, so there are no page or table numbers;
each table is cited by its slide title):

* **NAC** -- Y. Liu, C. X. Tian, H. Li, L. Ma, S. Wang. *Neuron Activation Coverage: Rethinking
  Out-of-distribution Detection and Generalization.* ICLR 2024 (slides; ``shared/seeds/004_*``).
  Three tables: OOD detection on the CIFAR-10 and CIFAR-100 benchmarks (13 methods x MNIST, SVHN,
  Textures, Places365, Average; FPR95 and AUROC with a ± spread), NAC-UE with different layer
  combinations (CIFAR-10, CIFAR-100, ImageNet), and NAC-ME for model selection in OOD
  generalisation (4 backbones x VLCS, PACS, OfficeHome, TerraIncognita, Average; rank
  correlation RC and OOD test accuracy ACC).
* **Thesis** -- P. Annamalai Nathan. *Generalization of MSP based out-of-distribution detection to
  intermediate convolutional layers.* Master thesis slides (MPII / DFKI; ``shared/seeds/003_*``).
  ResNet-34 with log-softmax activations and an entropy loss (factor lambda); AUROC only.
  Tables: the literature comparison, classification accuracy (CIFAR-10 and CIFAR-100, plus the
  three activations quoted in the text), MSP vs MiSP, Mahalanobis-ensemble vs MiSP, the best
  baseline vs the best intermediate-layer aggregation (CIFAR-10), and the CIFAR-100 OOD table.
  The per-layer comparisons with Mahalanobis, the "min of MiSP trends" and the CIFAR-100/SVHN
  mixtures are figures on the slides: the text has no numbers for them, so nothing is transcribed.

As in :mod:`ashlib.paper`, the numbers are kept below as CSV text blocks laid out like the
slides' tables (same rows, same column order, the slides' row labels), so a reviewer can compare
them line by line. Typos of the extraction are corrected in the headers only (see
:data:`TRANSCRIPTION_NOTES`); cells keep the slides' text: ``23.33 ± 4.67`` keeps the spread,
``<u>52.81</u>`` the slides' underline, ``97.62 [1]*`` the thesis's citation, ``86.72 (avg of
ASP layer4.3)`` the thesis's note of which score won. Everything is parsed once, at import, into
one long table per slide table:

* :func:`related_results` -- the tidy long form of one table (see :data:`TABLES`);
* wide views with ``attrs["source"]``: :func:`nac_detection`, :func:`nac_layer_combinations`,
  :func:`nac_model_evaluation`, :func:`thesis_literature`, :func:`thesis_accuracy`,
  :func:`thesis_msp_misp`, :func:`thesis_mahalanobis_misp`, :func:`thesis_best`.

FPR95 of the NAC tables. The slides write "FPR95↓" and never say which of the conventions
of :data:`ashlib.metrics.FPR_CONVENTIONS` they use. *Assumption:* the ``"openood"`` one
(OOD is the positive class; FPR95 = the fraction of ID samples rejected as OOD when 95% of the OOD
samples are detected). Reasons: the detection table is OpenOOD v1.5's (its CIFAR far-OOD sets,
its baselines, mean ± std over three trainings) and NAC's official code is a fork of OpenOOD whose
``openood/evaluators/metrics.py`` (``auc_and_fpr_recall``) "treat[s] OOD as positive". It is *not*
the ``"paper"`` convention of the ASH paper's tables (:mod:`ashlib.paper`), so the two FPR95
columns must not be compared as if they measured the same thing. AUROC is the same in both.
:data:`NAC_FPR95_CONVENTION` holds the name.

Where a source contradicts itself, the numbers are kept as printed; the known cases are listed
in :data:`KNOWN_INCONSISTENCIES` (and checked in ``tests/test_related.py``).
"""
from __future__ import annotations

import re
from io import StringIO

import numpy as np
import pandas as pd

from ashlib import _tables
from ashlib._checks import check_choice

NAC_CITATION = ("Y. Liu, C. X. Tian, H. Li, L. Ma, S. Wang. Neuron Activation Coverage: Rethinking "
                "Out-of-distribution Detection and Generalization. ICLR 2024.")
THESIS_CITATION = ("P. Annamalai Nathan. Generalization of MSP based out-of-distribution detection to "
                   "intermediate convolutional layers. Master thesis (slides), supervised by M. M. "
                   "Losch (MPII), reviewed by D. Stricker (DFKI) and B. Schiele (MPII).")

#: The FPR95 convention (a key of :data:`ashlib.metrics.FPR_CONVENTIONS`) the NAC numbers most
#: likely use. An assumption: the slides do not say (see the module docstring).
NAC_FPR95_CONVENTION = "openood"

# ---------------------------------------------------------------------------------------------
# NAC slides. All values are percentages.
# ---------------------------------------------------------------------------------------------

# "Experiments: OOD Detection": the CIFAR-10 and CIFAR-100 benchmarks (the slides' "MINIST" is
# MNIST). Mean ± spread as printed. <u>..</u> is the slides' underline (second best); <b>..</b>
# marks the cells whose best-in-column bold was lost in the extraction: it survives only as a
# space before the "±" ("1.30 ±0.51" beside "23.33±4.67"), and exactly those cells are the best
# of their column (checked in the tests).
_NAC_DETECTION = """benchmark,method,MNIST FPR95,MNIST AUROC,SVHN FPR95,SVHN AUROC,Textures FPR95,Textures AUROC,Places365 FPR95,Places365 AUROC,Average FPR95,Average AUROC
CIFAR-10,OpenMax,23.33 ± 4.67,90.50 ± 0.44,25.40 ± 1.47,89.77 ± 0.45,31.50 ± 4.05,89.58 ± 0.60,38.52 ± 2.27,88.63 ± 0.28,29.69 ± 1.21,89.62 ± 0.19
CIFAR-10,ODIN,23.83 ± 12.34,95.24 ± 1.96,68.61 ± 0.52,84.58 ± 0.77,67.70 ± 11.06,86.94 ± 2.26,70.36 ± 6.96,85.07 ± 1.24,57.62 ± 4.24,87.96 ± 0.61
CIFAR-10,MDS,27.30 ± 3.55,90.10 ± 2.41,25.96 ± 2.52,91.18 ± 0.47,27.94 ± 4.20,92.69 ± 1.06,47.67 ± 4.54,84.90 ± 2.54,32.22 ± 3.40,89.72 ± 1.36
CIFAR-10,MDSEns,<b>1.30</b> ± 0.51,<b>99.17</b> ± 0.41,74.34 ± 1.04,66.56 ± 0.58,76.07 ± 0.17,77.40 ± 0.28,94.16 ± 0.33,52.47 ± 0.15,61.47 ± 0.48,73.90 ± 0.27
CIFAR-10,RMDS,21.49 ± 2.32,93.22 ± 0.80,23.46 ± 1.48,91.84 ± 0.26,25.25 ± 0.53,92.23 ± 0.23,31.20 ± 0.28,91.51 ± 0.11,25.35 ± 0.73,92.20 ± 0.21
CIFAR-10,Gram,70.30 ± 8.96,72.64 ± 2.34,33.91 ± 17.35,91.52 ± 4.45,94.64 ± 2.71,62.34 ± 8.27,90.49 ± 1.93,60.44 ± 3.41,72.34 ± 6.73,71.73 ± 3.20
CIFAR-10,ReAct,33.77 ± 18.00,92.81 ± 3.03,50.23 ± 15.98,89.12 ± 3.19,51.42 ± 11.42,89.38 ± 1.49,44.20 ± 3.35,90.35 ± 0.78,44.90 ± 8.37,90.42 ± 1.41
CIFAR-10,VIM,18.36 ± 1.42,94.76 ± 0.38,19.29 ± 0.41,94.50 ± 0.48,21.14 ± 1.83,95.15 ± 0.34,41.43 ± 2.17,89.49 ± 0.39,25.05 ± 0.52,93.48 ± 0.24
CIFAR-10,KNN,20.05 ± 1.36,94.26 ± 0.38,22.60 ± 1.26,92.67 ± 0.30,24.06 ± 0.55,93.16 ± 0.24,30.38 ± 0.63,91.77 ± 0.23,24.27 ± 0.40,92.96 ± 0.14
CIFAR-10,ASH,70.00 ± 10.56,83.16 ± 4.66,83.64 ± 6.48,73.46 ± 6.41,84.59 ± 1.74,77.45 ± 2.39,77.89 ± 7.28,79.89 ± 3.69,79.03 ± 4.22,78.99 ± 2.58
CIFAR-10,SHE,42.22 ± 20.59,90.43 ± 4.76,62.74 ± 4.01,86.38 ± 1.32,84.60 ± 5.30,81.57 ± 1.21,76.36 ± 5.32,82.89 ± 1.22,66.48 ± 5.98,85.32 ± 1.43
CIFAR-10,GEN,23.00 ± 7.75,93.83 ± 2.14,28.14 ± 2.59,91.97 ± 0.66,40.74 ± 6.61,90.14 ± 0.76,47.03 ± 3.22,89.46 ± 0.65,34.73 ± 1.58,91.35 ± 0.69
CIFAR-10,NAC-UE,15.14 ± 2.60,94.86 ± 1.36,<b>14.33</b> ± 1.24,<b>96.05</b> ± 0.47,<b>17.03</b> ± 0.59,<b>95.64</b> ± 0.44,<b>26.73</b> ± 0.80,<b>91.85</b> ± 0.28,<b>18.31</b> ± 0.92,<b>94.60</b> ± 0.50
CIFAR-100,OpenMax,53.82 ± 4.74,76.01 ± 1.39,53.20 ± 1.78,82.07 ± 1.53,56.12 ± 1.91,80.56 ± 0.09,54.85 ± 1.42,79.29 ± 0.40,54.50 ± 0.68,79.48 ± 0.41
CIFAR-100,ODIN,45.94 ± 3.29,83.79 ± 1.31,67.41 ± 3.88,74.54 ± 0.76,62.37 ± 2.96,79.33 ± 1.08,59.71 ± 0.92,79.45 ± 0.26,58.86 ± 0.79,79.28 ± 0.21
CIFAR-100,MDS,71.72 ± 2.94,67.47 ± 0.81,67.21 ± 6.09,70.68 ± 6.40,70.49 ± 2.48,76.26 ± 0.69,79.61 ± 0.34,63.15 ± 0.49,72.26 ± 1.56,69.39 ± 1.39
CIFAR-100,MDSEns,<b>2.83</b> ± 0.86,<b>98.21</b> ± 0.78,82.57 ± 2.58,53.76 ± 1.63,84.94 ± 0.83,69.75 ± 1.14,96.61 ± 0.17,42.27 ± 0.73,66.74 ± 1.04,66.00 ± 0.69
CIFAR-100,RMDS,52.05 ± 6.28,79.74 ± 2.49,51.65 ± 3.68,84.89 ± 1.10,53.99 ± 1.06,83.65 ± 0.51,<b>53.57</b> ± 0.43,<b>83.40</b> ± 0.46,<u>52.81</u> ± 0.63,<u>82.92</u> ± 0.42
CIFAR-100,Gram,53.53 ± 7.45,80.71 ± 4.15,<b>20.06</b> ± 1.96,<b>95.55</b> ± 0.60,89.51 ± 2.54,70.79 ± 1.32,94.67 ± 0.60,46.38 ± 1.21,64.44 ± 2.37,73.36 ± 1.08
CIFAR-100,ReAct,56.04 ± 5.66,78.37 ± 1.59,50.41 ± 2.02,83.01 ± 0.97,55.04 ± 0.82,80.15 ± 0.46,55.30 ± 0.41,80.03 ± 0.11,54.20 ± 1.56,80.39 ± 0.49
CIFAR-100,VIM,48.32 ± 1.07,81.89 ± 1.02,46.22 ± 5.46,83.14 ± 3.71,46.86 ± 2.29,85.91 ± 0.78,61.57 ± 0.77,75.85 ± 0.37,50.74 ± 1.00,81.70 ± 0.62
CIFAR-100,KNN,48.58 ± 4.67,82.36 ± 1.52,51.75 ± 3.12,84.15 ± 1.09,53.56 ± 2.32,83.66 ± 0.83,60.70 ± 0.13,79.43 ± 0.47,53.65 ± 0.28,82.40 ± 0.17
CIFAR-100,ASH,66.58 ± 3.88,77.23 ± 0.46,46.00 ± 2.67,85.60 ± 1.40,61.27 ± 2.74,80.72 ± 0.70,62.95 ± 0.99,78.76 ± 0.16,59.20 ± 2.46,80.58 ± 0.66
CIFAR-100,SHE,58.78 ± 2.70,76.76 ± 1.07,59.15 ± 7.61,80.97 ± 3.98,73.29 ± 3.22,73.64 ± 1.28,65.24 ± 0.98,76.30 ± 0.51,64.12 ± 2.70,76.92 ± 1.16
CIFAR-100,GEN,53.92 ± 5.71,78.29 ± 2.05,55.45 ± 2.76,81.41 ± 1.50,61.23 ± 1.40,78.74 ± 0.81,56.25 ± 1.01,80.28 ± 0.27,56.71 ± 1.59,79.68 ± 0.75
CIFAR-100,NAC-UE,21.97 ± 6.62,93.15 ± 1.63,<u>24.39</u> ± 4.66,<u>92.40</u> ± 1.26,<b>40.65</b> ± 1.94,<b>89.32</b> ± 0.55,73.57 ± 1.16,73.05 ± 0.68,<b>40.14</b> ± 1.86,<b>86.98</b> ± 0.37
"""

# "Experiments: OOD Detection" (layer combinations; the slide appears twice with the same numbers):
# NAC-UE using the layers ticked. The CIFAR rows with all four layers equal NAC-UE's Average in
# the detection table, so these are averages over the same OOD sets; for ImageNet the slides do
# not say which OOD sets are averaged.
_NAC_LAYERS = """Layer4,Layer3,Layer2,Layer1,CIFAR-10 FPR95,CIFAR-10 AUROC,CIFAR-100 FPR95,CIFAR-100 AUROC,ImageNet FPR95,ImageNet AUROC
✓,,,,23.50,93.21,85.84,58.37,26.89,94.57
✓,✓,,,21.32,94.35,44.92,85.25,23.51,95.05
✓,✓,✓,,18.50,94.46,39.96,86.94,22.69,95.23
✓,✓,✓,✓,18.31,94.60,40.14,86.98,22.49,95.29
"""

# "Experiments: OOD Generalization": model selection by the validation accuracy vs by NAC-ME.
# RC = rank correlation (with the OOD test accuracy) of the selection criterion, ACC = OOD test
# accuracy of the selected model; Oracle selects by the test accuracy (no RC, printed "-");
# Δ = NAC-ME - Validation, as printed in parentheses. The slides' "Bakbone" is the backbone
# (written on every row here; the slides write it on the first row of each group).
_NAC_ME = """backbone,method,VLCS RC,VLCS ACC,PACS RC,PACS ACC,OfficeHome RC,OfficeHome ACC,TerraInc RC,TerraInc ACC,Average RC,Average ACC
ResNet-18,Oracle,-,77.67,-,80.51,-,56.18,-,44.51,-,64.72
ResNet-18,Validation,34.27,75.12,68.71,79.01,83.50,55.60,39.58,37.36,56.52,61.77
ResNet-18,NAC-ME,50.29,75.83,74.16,78.85,84.91,55.76,40.42,39.45,62.45,62.47
ResNet-18,Δ,(+16.02),(+0.71),(+5.45),(-0.16),(+1.41),(+0.16),(+0.84),(+2.09),(+5.93),(+0.70)
ResNet-50,Oracle,-,79.79,-,86.10,-,65.95,-,50.76,-,70.65
ResNet-50,Validation,31.43,77.70,58.54,84.57,67.93,65.04,37.07,46.07,48.74,68.34
ResNet-50,NAC-ME,28.68,76.41,62.07,85.28,69.16,65.23,40.16,47.10,50.02,68.51
ResNet-50,Δ,(-2.75),(-1.29),(+3.53),(+0.71),(+1.23),(+0.19),(+3.09),(+1.03),(+1.28),(+0.17)
Vit-t16,Oracle,-,79.11,-,71.99,-,61.44,-,41.29,-,63.46
Vit-t16,Validation,37.95,77.43,89.34,69.83,98.71,61.22,22.71,36.28,62.18,61.19
Vit-t16,NAC-ME,49.59,77.97,90.67,70.99,99.14,61.26,23.26,36.69,65.67,61.73
Vit-t16,Δ,(+11.64),(+0.54),(+1.33),(+1.16),(+0.43),(+0.04),(+0.55),(+0.41),(+3.49),(+0.54)
Vit-b16,Oracle,-,80.96,-,90.23,-,81.23,-,52.23,-,76.16
Vit-b16,Validation,18.81,78.70,41.38,87.80,58.29,80.11,0.92,45.49,29.85,73.03
Vit-b16,NAC-ME,37.42,79.20,45.04,88.83,63.17,80.52,20.22,47.86,41.46,74.10
Vit-b16,Δ,(+18.61),(+0.50),(+3.66),(+1.03),(+4.88),(+0.41),(+19.30),(+2.37),(+11.61),(+1.07)
"""

# ---------------------------------------------------------------------------------------------
# Thesis slides. All values are percentages; every OOD number is an AUROC.
# ---------------------------------------------------------------------------------------------

# "Performance comparison of methods from literature": AUROC, in-distribution CIFAR-10, numbers
# quoted from [1]-[3] (THESIS_REFERENCES). -NA- = not reported in the literature. <b> as on the
# slides. The extraction's stray cells ("-", "5", "8", "- 1.1") are left out.
_THESIS_LITERATURE = """architecture,OOD dataset,MSP,ODIN,Mahalanobis,Energy Based,MSP+ Outlier Exposure (Fine tuning),Energy Based (Fine tuning)
WideResNet,SVHN,91.89 [1],91.96 [1],97.62 [1]*,90.96 [1],98.6 [1],99.41 [1]
WideResNet,LSUN-crop,95.65 [1],97.04 [1],94.15 [1]*,98.35 [1],99.49 [1],99.32 [1]
WideResNet,LSUN-resize,91.37 [1],94.57 [1],93.23 [1]*,94.24 [1],98.94 [1],<b>99.39</b> [1]
ResNet-34,SVHN,89.9 [2],96.7 [2],<b>99.1</b> [2],-NA-,-NA-,-NA-
ResNet-34,LSUN-crop,-NA-,99.2 [3],99.3 [3],-NA-,-NA-,-NA-
ResNet-34,LSUN-resize,91.0 [2],94.1 [2],<b>99.7</b> [2],-NA-,-NA-,-NA-
"""

# "Classification Accuracy": ResNet34, in-distribution CIFAR-10, top-1 accuracy.
_THESIS_ACCURACY_CIFAR10 = """log-softmax,Entropy Loss Factor,Top-1 accuracy(%)
-NA-,-NA-,94.31
yes,0,93.5
yes,1e-3,93.37
yes,5e-3,93.09
yes,1e-2,92.64
yes,5e-2,92.48
yes,1e-1,91.92
"""

# "Results generalization to CIFAR-100" (Classification Performance): ResNet34, CIFAR-100.
_THESIS_ACCURACY_CIFAR100 = """log-softmax,Entropy Loss Factor,Top-1 accuracy(%)
-NA-,-NA-,75.93
yes,0,74.25
yes,1e-2,73.39
"""

# "Motivation- softmax as intermediate activation" (a sentence, not a table): "Classification
# performance (Model:ResNet-34 Dataset: CIFAR-10) Softmax activation: 89.75% Log-softmax
# activation: 93.5% ReLU activation: 94.31%". No entropy loss is mentioned.
_THESIS_ACTIVATIONS = """activation,Top-1 accuracy(%)
Softmax,89.75
Log-softmax,93.5
ReLU,94.31
"""

# "OOD evaluation benchmark for log-softmax models" (first slide): ResNet34, ID CIFAR-10, AUROC.
# The slides write the variant on the first row of each group only ("-NA-(Baseline)", "yes 0").
_THESIS_MSP_MISP = """log-softmax,Entropy Loss factor,Out-distribution dataset,MSP,MiSP
-NA-(Baseline),,CIFAR100,84.89,88.19
,,LSUN,93.48,95.66
,,SVHN,92.08,96.54
yes,0,CIFAR100,85.20,88.39
,,LSUN,88.48,93.53
,,SVHN,90.27,94.70
yes,1e-2,CIFAR100,83.26,86.23
,,LSUN,89.89,95.32
,,SVHN,92.43,97.41
"""

# "OOD evaluation benchmark for log-softmax models" (second slide). The header of the first score
# column is empty in the extraction; the "Results" slides call this comparison "Mahalanobis-
# ensemble vs MiSP" and the "aggregation vs baseline" slide prints the same numbers as
# "(Mahalanobis)", hence the name.
_THESIS_MAHALANOBIS_MISP = """log-softmax,Entropy Loss factor,Out-distribution dataset,Mahalanobis-ensemble,MiSP
-NA-(Baseline),,CIFAR100,66.06,88.19
,,LSUN,99.75,95.66
,,SVHN,98.62,96.54
yes,0,CIFAR100,73.51,88.39
,,LSUN,99.46,93.53
,,SVHN,98.85,94.70
yes,1e-2,CIFAR100,74.07,86.23
,,LSUN,99.45,95.32
,,SVHN,98.19,97.41
"""

# "Comparison of aggregation methods vs baseline methods": ResNet34, ID CIFAR-10, AUROC. Each cell
# names the winning method (and, for the intermediate layers, the score and layer).
_THESIS_BEST = """log-softmax,Entropy Loss factor,Out-distribution dataset,MSP/ Mahalanobis-ensemble (best),Intermediate layer aggregation (best)
-NA-(Baseline),,CIFAR100,84.89(MSP),-NA-
,,LSUN,99.75(Mahalanobis),-NA-
,,SVHN,98.62(Mahalanobis),-NA-
yes,0,CIFAR100,85.20(MSP),86.72(avg of ASP layer4.3)
,,LSUN,99.46(Mahalanobis),99.76(min of MiSP layer1.2)
,,SVHN,98.85(Mahalanobis),98.66(min of MiSP layer1.2)
yes,1e-2,CIFAR100,83.26(MSP),87.44(min of MiSP layer4.3)
,,LSUN,99.45(Mahalanobis),99.66(min of MiSP layer1.2)
,,SVHN,98.19(Mahalanobis),97.89(min of MiSP layer1.1)
"""

# "Cifar100 OOD evalaution": ResNet34, ID CIFAR-100 (the slide's header says CIFAR-10: see
# KNOWN_INCONSISTENCIES), AUROC. The "Entropy Loss factor" header is lost in the extraction.
_THESIS_CIFAR100_OOD = """log-softmax,Entropy Loss factor,Out-distribution dataset,MSP,Mahalanobis-ensemble,MiSP,Intermediate layer aggregation (best)
-NA-(Baseline),,CIFAR10,73.31,57.71,72.43,-NA-
,,LSUN,75.15,99.21,78.3,-NA-
,,SVHN,8.50,96.73,94.28,-NA-
yes,0,CIFAR10,70.56,61.29,70.49,62.5(avg of MiSP layer4.3)
,,LSUN,71.4,99.05,73.69,99.84(min of MiSP layer1.1)
,,SVHN,73.95,97.32,86.59,98.41(min of MiSP layer1.1)
yes,1e-2,CIFAR10,71.25,57.49,71.44,63.77(min of MiSP layer4.3)
,,LSUN,69.27,98.88,69.36,99.65(min of MiSP layer1.2)
,,SVHN,75.15,96.63,85.53,96.82(min of MiSP layer1.2)
"""

#: The thesis's literature references ([1]-[3] on the "Performance comparison" slide). The slide
#: does not explain the ``*`` after [1] on the Mahalanobis column.
THESIS_REFERENCES = {
    "[1]": "W. Liu et al. Energy-based Out-of-distribution Detection. NeurIPS 2020.",
    "[2]": "K. Lee et al. A Simple Unified Framework for Detecting Out-of-Distribution Samples and "
           "Adversarial Attacks. NeurIPS 2018.",
    "[3]": "Y.-C. Hsu et al. Generalized ODIN: Detecting Out-of-distribution Image without Learning "
           "from Out-of-distribution Data. CVPR 2020.",
}

# ---------------------------------------------------------------------------------------------
# Names.
# ---------------------------------------------------------------------------------------------

TABLES = ("NAC detection", "NAC layers", "NAC-ME",
          "Thesis literature", "Thesis accuracy CIFAR-10", "Thesis accuracy CIFAR-100",
          "Thesis activations", "Thesis MSP vs MiSP", "Thesis Mahalanobis vs MiSP",
          "Thesis best", "Thesis CIFAR-100 OOD")

_NAC = "NAC slides (Liu et al., ICLR 2024)"
_THESIS = "MiSP thesis slides (Annamalai Nathan)"
SOURCES = {
    "NAC detection": f"{_NAC}, 'Experiments: OOD Detection', detection table (CIFAR-10/100 benchmarks)",
    "NAC layers": f"{_NAC}, 'Experiments: OOD Detection', layer combinations table",
    "NAC-ME": f"{_NAC}, 'Experiments: OOD Generalization', NAC-ME table",
    "Thesis literature": f"{_THESIS}, 'Performance comparison of methods from literature'",
    "Thesis accuracy CIFAR-10": f"{_THESIS}, 'Classification Accuracy'",
    "Thesis accuracy CIFAR-100": f"{_THESIS}, 'Results generalization to CIFAR-100'",
    "Thesis activations": f"{_THESIS}, 'Motivation- softmax as intermediate activation' (text)",
    "Thesis MSP vs MiSP": f"{_THESIS}, 'OOD evaluation benchmark for log-softmax models' (MSP vs MiSP)",
    "Thesis Mahalanobis vs MiSP": (f"{_THESIS}, 'OOD evaluation benchmark for log-softmax models' "
                                   "(Mahalanobis-ensemble vs MiSP)"),
    "Thesis best": f"{_THESIS}, 'Comparison of aggregation methods vs baseline methods'",
    "Thesis CIFAR-100 OOD": f"{_THESIS}, 'Cifar100 OOD evalaution'",
}

COLUMNS = ("table", "source", "document", "benchmark", "model", "method", "variant", "ood_set",
           "metric", "value", "spread", "mark", "detail")

NAC_BENCHMARKS = ("cifar10", "cifar100")
NAC_OOD_SETS = ("MNIST", "SVHN", "Textures", "Places365")
NAC_LAYER_COMBINATIONS = ("layer4", "layer4+layer3", "layer4+layer3+layer2",
                          "layer4+layer3+layer2+layer1")
NAC_ME_DATASETS = ("VLCS", "PACS", "OfficeHome", "TerraIncognita")
NAC_ME_BACKBONES = ("ResNet-18", "ResNet-50", "ViT-T/16", "ViT-B/16")
THESIS_BENCHMARKS = ("cifar10", "cifar100")
#: Model variants of the thesis -> (activation after each residual addition, entropy loss factor).
THESIS_VARIANTS = {
    "ReLU (baseline)": ("ReLU", None),
    "softmax": ("softmax", None),
    "log-softmax, lambda=0": ("log-softmax", 0.0),
    "log-softmax, lambda=0.001": ("log-softmax", 0.001),
    "log-softmax, lambda=0.005": ("log-softmax", 0.005),
    "log-softmax, lambda=0.01": ("log-softmax", 0.01),
    "log-softmax, lambda=0.05": ("log-softmax", 0.05),
    "log-softmax, lambda=0.1": ("log-softmax", 0.1),
}

_BENCHMARKS = {"CIFAR-10": "cifar10", "CIFAR-100": "cifar100", "ImageNet": "imagenet"}
_BACKBONES = dict(zip(("ResNet-18", "ResNet-50", "Vit-t16", "Vit-b16"), NAC_ME_BACKBONES))
_NAC_ME_DATASETS = {"TerraInc": "TerraIncognita"}
_OOD_SETS = {"CIFAR100": "CIFAR-100", "CIFAR10": "CIFAR-10", "LSUN-crop": "LSUN-C",
             "LSUN-resize": "LSUN-R"}
_THESIS_METHODS = {
    "Energy Based": "Energy", "MSP+ Outlier Exposure (Fine tuning)": "MSP + OE (fine-tuned)",
    "Energy Based (Fine tuning)": "Energy (fine-tuned)",
    "MSP/ Mahalanobis-ensemble (best)": "best of MSP, Mahalanobis-ensemble",
    "Intermediate layer aggregation (best)": "best intermediate aggregation",
}
_ACTIVATIONS = {"Softmax": "softmax", "Log-softmax": "log-softmax, lambda=0",
                "ReLU": "ReLU (baseline)"}

#: Decisions taken while transcribing (typos of the extraction, lost headers, markup).
TRANSCRIPTION_NOTES = {
    "NAC detection, 'MINIST'": "is MNIST (OpenOOD v1.5's CIFAR far-OOD sets: MNIST, SVHN, Textures, "
                               "Places365).",
    "NAC detection, bold": "lost in the extraction except as a space before '±'; those cells are "
                           "written <b> here (mark 'bold') and are exactly the best of their column.",
    "NAC detection, model": "not stated on the slides (left None).",
    "NAC-ME, names": "'Bakbone' is backbone; 'Vit-t16'/'Vit-b16' are ViT-T/16 and ViT-B/16; "
                     "'TerraInc' is TerraIncognita.",
    "NAC layers": "the slide is printed twice with identical numbers; transcribed once.",
    "Thesis, 'Solullax' / 'Sounax' / 'Soluliax'": "extraction of 'Softmax' (the header 'Log- "
                                                  "softmax' split over two lines).",
    "Thesis literature, 'AUROC(†)'": "the arrow ↑ of the other slides.",
    "Thesis Mahalanobis vs MiSP, first score header": "empty in the extraction; named "
                                                      "Mahalanobis-ensemble (see the block's comment).",
    "Thesis MSP vs MiSP / Mahalanobis vs MiSP, 'yes 0'": "one cell in the extraction: log-softmax "
                                                         "'yes', entropy loss factor 0.",
    "Thesis CIFAR-100 OOD, header 's distribution'": "is 'Out-distribution dataset'.",
    "Thesis literature, bold": "on three of the six row maxima only (WideResNet LSUN-resize, "
                               "ResNet-34 SVHN and LSUN-resize), kept as printed.",
}

# Where a source disagrees with itself (numbers kept as printed; tests/test_related.py checks that
# each is still there, so a "fix" of a source's number would be noticed).
KNOWN_INCONSISTENCIES = {
    "NAC detection, CIFAR-10, ASH, Average AUROC":
        "prints 78.99 ± 2.58, but the mean of its four per-set AUROCs (83.16, 73.46, 77.45, "
        "79.89) is 78.49; every other Average of the table is the mean of its four sets within "
        "rounding.",
    "NAC detection, CIFAR-100, RMDS, Average FPR95 underlined":
        "the underline marks the second best, but VIM's 50.74 is below RMDS's 52.81 (RMDS's "
        "underlined AUROC 82.92 is the second best).",
    "NAC layers, 'positively correlates with the number of employed layers'":
        "not CIFAR-100's FPR95: 39.96 with layers 4-2, 40.14 with layers 4-1 (all other columns "
        "improve with every added layer).",
    "Thesis CIFAR-100 OOD, header 'In-distribution: CIFAR-10'":
        "the slide is the CIFAR-100 evaluation (title 'Cifar100 OOD evalaution', CIFAR10 among "
        "the OOD sets): the in-distribution set is CIFAR-100.",
    "Thesis CIFAR-100 OOD, ReLU (baseline), SVHN, MSP 8.50":
        "implausible: far below chance, beside MiSP 94.28 and Mahalanobis-ensemble 96.73 for the "
        "same model and MSP 73.95 / 75.15 for the log-softmax models; probably a lost digit.",
    "Thesis, 'min of MiSP observed to be the best in aggregation methods'":
        "the 'best intermediate aggregation' cells name another score for the near OOD set "
        "twice: avg of ASP (layer4.3, CIFAR-10 ID, lambda=0, vs CIFAR-100) and avg of MiSP "
        "(layer4.3, CIFAR-100 ID, lambda=0, vs CIFAR-10).",
}


# ---------------------------------------------------------------------------------------------
# Parsing: each text block -> one long DataFrame with COLUMNS.
# ---------------------------------------------------------------------------------------------

_CELL = re.compile(r"^(?:<(?P<tag>[bu])>)?(?P<value>[+-]?\d+(?:\.\d+)?)(?:</(?P=tag)>)?"
                   r"\s*(?:±\s*(?P<spread>\d+(?:\.\d+)?))?\s*(?P<detail>.*)$")
_MARKS = {"b": "bold", "u": "underline"}


def _cell(text: str) -> tuple[float, float, str | None, str | None] | None:
    """One cell -> (value, spread, mark, detail); None for a missing number ('-', '-NA-', '').

    ``'<u>52.81</u> ± 0.63'`` -> (52.81, 0.63, 'underline', None); ``'97.62 [1]*'`` ->
    (97.62, nan, None, '[1]*'); ``'84.89(MSP)'`` -> (84.89, nan, None, 'MSP');
    ``'(+16.02)'`` -> (16.02, nan, None, None).
    """
    text = str(text).strip()
    if text in ("", "-", "-NA-"):
        return None
    if text.startswith("(") and text.endswith(")"):
        text = text[1:-1]
    match = _CELL.match(text)
    if match is None:
        raise ValueError(f"cannot parse the cell {text!r}")
    detail = match["detail"].strip()
    if detail.startswith("(") and detail.endswith(")"):
        detail = detail[1:-1]
    return (float(match["value"]), float(match["spread"]) if match["spread"] else np.nan,
            _MARKS.get(match["tag"]), detail or None)


def _read(block: str) -> pd.DataFrame:
    return pd.read_csv(StringIO(block), dtype=str, keep_default_na=False)


def _long(wide: pd.DataFrame, keys: dict[str, pd.Series | str], columns, split) -> list[dict]:
    """One dict per printed number of ``wide``'s ``columns``; ``split(header)`` -> dict of fields."""
    rows = []
    for i in range(len(wide)):
        for header in columns:
            parsed = _cell(wide[header].iloc[i])
            if parsed is None:
                continue
            value, spread, mark, detail = parsed
            fields = {k: (v.iloc[i] if isinstance(v, pd.Series) else v) for k, v in keys.items()}
            rows.append({**fields, **split(header), "value": value, "spread": spread,
                         "mark": mark, "detail": detail})
    return rows


def _group_metric(header: str) -> dict[str, str]:
    """``'SVHN FPR95'`` -> {'group': 'SVHN', 'metric': 'FPR95'}."""
    group, _, metric = header.rpartition(" ")
    return {"group": group, "metric": metric}


def _frame(rows: list[dict], table: str, **fixed) -> pd.DataFrame:
    df = pd.DataFrame(rows)
    for name, value in fixed.items():
        df[name] = value
    df["table"], df["source"] = table, SOURCES[table]
    df["document"] = "NAC" if table.startswith("NAC") else "Thesis"
    for col in COLUMNS:
        if col not in df:
            df[col] = None
    out = df[list(COLUMNS)].reset_index(drop=True)
    for col in ("benchmark", "model", "method", "variant", "ood_set", "mark", "detail"):
        out[col] = out[col].astype(object).where(out[col].notna(), None)
    out["value"] = out["value"].astype(float)
    out["spread"] = out["spread"].astype(float)
    return out


def _variants(wide: pd.DataFrame) -> pd.Series:
    """The thesis's (log-softmax, entropy loss factor) columns -> variant names, filled down."""
    names, current = [], None
    for flag, factor in zip(wide.iloc[:, 0], wide.iloc[:, 1]):
        flag, factor = flag.strip(), factor.strip()
        if flag:
            if flag.startswith("-NA-"):
                current = "ReLU (baseline)"
            elif flag == "yes":
                current = f"log-softmax, lambda={float(factor):g}"
            else:
                raise ValueError(f"unknown log-softmax cell {flag!r}")
        names.append(current)
    return pd.Series(names, index=wide.index)


def _thesis_ood(block: str, table: str, benchmark: str) -> pd.DataFrame:
    wide = _read(block)
    keys = {"variant": _variants(wide),
            "ood_set": wide.iloc[:, 2].map(lambda s: _OOD_SETS.get(s, s))}
    rows = _long(wide, keys, wide.columns[3:],
                 lambda h: {"method": _THESIS_METHODS.get(h, h), "metric": "AUROC"})
    return _frame(rows, table, benchmark=benchmark, model="ResNet-34")


def _build() -> dict[str, pd.DataFrame]:
    out = {}

    wide = _read(_NAC_DETECTION)
    rows = _long(wide, {"benchmark": wide["benchmark"].map(_BENCHMARKS), "method": wide["method"]},
                 wide.columns[2:], _group_metric)
    for r in rows:
        r["ood_set"] = r.pop("group")
    out["NAC detection"] = _frame(rows, "NAC detection")

    wide = _read(_NAC_LAYERS)
    layers = wide.iloc[:, :4].apply(
        lambda r: "+".join(c.lower() for c, v in r.items() if v.strip() == "✓"), axis=1)
    rows = _long(wide, {"variant": layers}, wide.columns[4:], _group_metric)
    for r in rows:
        r["benchmark"] = _BENCHMARKS[r.pop("group")]
    out["NAC layers"] = _frame(rows, "NAC layers", method="NAC-UE", ood_set="Average")

    wide = _read(_NAC_ME)
    rows = _long(wide, {"model": wide["backbone"].map(_BACKBONES), "method": wide["method"]},
                 wide.columns[2:], _group_metric)
    for r in rows:
        group = r.pop("group")
        r["benchmark"] = _NAC_ME_DATASETS.get(group, group)
    out["NAC-ME"] = _frame(rows, "NAC-ME")

    wide = _read(_THESIS_LITERATURE)
    rows = _long(wide, {"model": wide["architecture"],
                        "ood_set": wide["OOD dataset"].map(lambda s: _OOD_SETS.get(s, s))},
                 wide.columns[2:], lambda h: {"method": _THESIS_METHODS.get(h, h), "metric": "AUROC"})
    out["Thesis literature"] = _frame(rows, "Thesis literature", benchmark="cifar10")

    for table, block, benchmark in (("Thesis accuracy CIFAR-10", _THESIS_ACCURACY_CIFAR10, "cifar10"),
                                    ("Thesis accuracy CIFAR-100", _THESIS_ACCURACY_CIFAR100, "cifar100")):
        wide = _read(block)
        rows = _long(wide, {"variant": _variants(wide)}, wide.columns[2:], lambda h: {"metric": "ID acc"})
        out[table] = _frame(rows, table, benchmark=benchmark, model="ResNet-34")

    wide = _read(_THESIS_ACTIVATIONS)
    rows = _long(wide, {"variant": wide["activation"].map(_ACTIVATIONS)}, wide.columns[1:],
                 lambda h: {"metric": "ID acc"})
    out["Thesis activations"] = _frame(rows, "Thesis activations", benchmark="cifar10",
                                       model="ResNet-34")

    out["Thesis MSP vs MiSP"] = _thesis_ood(_THESIS_MSP_MISP, "Thesis MSP vs MiSP", "cifar10")
    out["Thesis Mahalanobis vs MiSP"] = _thesis_ood(_THESIS_MAHALANOBIS_MISP,
                                                    "Thesis Mahalanobis vs MiSP", "cifar10")
    out["Thesis best"] = _thesis_ood(_THESIS_BEST, "Thesis best", "cifar10")
    out["Thesis CIFAR-100 OOD"] = _thesis_ood(_THESIS_CIFAR100_OOD, "Thesis CIFAR-100 OOD", "cifar100")
    return out


_LONG = _build()


# ---------------------------------------------------------------------------------------------
# Public accessors.
# ---------------------------------------------------------------------------------------------

def related_results(table: str) -> pd.DataFrame:
    """The source's ``table`` (one of :data:`TABLES`) in long form, one row per printed number.

    Columns: ``table``, ``source`` (document and slide), ``document`` ('NAC' or 'Thesis'),
    ``benchmark`` (in-distribution set: 'cifar10', 'cifar100', 'imagenet'; for NAC-ME the domain
    generalisation data set, e.g. 'PACS', or 'Average'), ``model`` (None where the slides do not
    say), ``method`` (detection method or score, e.g. 'NAC-UE', 'MiSP'), ``variant`` (NAC: the
    layers used; thesis: the model variant, see :data:`THESIS_VARIANTS`), ``ood_set`` ('Average'
    for averages, None for accuracies and NAC-ME), ``metric`` ('FPR95', 'AUROC', 'ID acc'; NAC-ME
    'RC', 'ACC'), ``value`` (percent), ``spread`` (the ± where printed, else nan), ``mark``
    ('bold', 'underline' or None) and ``detail`` (thesis: the literature reference, e.g. '[1]*',
    or the winner named in a 'best' cell, e.g. 'min of MiSP layer1.2'). Cells printed as '-' or
    '-NA-' have no row. The NAC FPR95 convention: :data:`NAC_FPR95_CONVENTION` (an assumption).
    """
    check_choice("table", table, TABLES)
    df = _LONG[table].copy()
    df.attrs["source"] = SOURCES[table]
    return df


def nac_detection(benchmark: str = "cifar10", spread: bool = False) -> pd.DataFrame:
    """NAC slides' detection table for ``benchmark`` ('cifar10' or 'cifar100').

    Index: method (13, NAC-UE last); columns: MultiIndex (ood_set, metric), ood_set MNIST, SVHN,
    Textures, Places365, Average and metric FPR95, AUROC. ``spread=True`` gives the ± instead of the
    means, same layout. FPR95 most likely in the ``"openood"`` convention (module docstring).
    """
    check_choice("benchmark", benchmark, NAC_BENCHMARKS)
    df = _LONG["NAC detection"]
    return _tables.wide(df[df["benchmark"] == benchmark], "method", ["ood_set", "metric"],
                 SOURCES["NAC detection"], values="spread" if spread else "value")


def nac_layer_combinations() -> pd.DataFrame:
    """NAC-UE with layer combinations: index ``layers`` (:data:`NAC_LAYER_COMBINATIONS`, e.g.
    'layer4+layer3'), columns MultiIndex (benchmark, metric) for cifar10, cifar100, imagenet."""
    df = _LONG["NAC layers"].rename(columns={"variant": "layers"})
    return _tables.wide(df, "layers", ["benchmark", "metric"], SOURCES["NAC layers"])


def nac_model_evaluation(backbone: str | None = None) -> pd.DataFrame:
    """NAC-ME table (OOD generalisation, model selection).

    Index: (backbone, method) with method Oracle, Validation, NAC-ME and Δ (= NAC-ME - Validation,
    as printed); only ``method`` if ``backbone`` (one of :data:`NAC_ME_BACKBONES`) is given.
    Columns: MultiIndex (dataset, metric), dataset VLCS, PACS, OfficeHome, TerraIncognita, Average;
    metric RC (rank correlation, nan for Oracle) and ACC (OOD test accuracy).
    """
    df = _LONG["NAC-ME"].rename(columns={"model": "backbone", "benchmark": "dataset"})
    cols = [(d, m) for d in (*NAC_ME_DATASETS, "Average") for m in ("RC", "ACC")]  # the slide's order
    if backbone is not None:
        check_choice("backbone", backbone, NAC_ME_BACKBONES)
        return _tables.wide(df[df["backbone"] == backbone], "method", ["dataset", "metric"], SOURCES["NAC-ME"],
                     cols=cols)
    return _tables.wide(df, ["backbone", "method"], ["dataset", "metric"], SOURCES["NAC-ME"], cols=cols)


def thesis_literature() -> pd.DataFrame:
    """The thesis's literature comparison (AUROC, ID CIFAR-10): index (model, ood_set), columns
    methods (MSP, ODIN, Mahalanobis, Energy, MSP + OE (fine-tuned), Energy (fine-tuned)); nan where
    the slide says -NA-. References per cell: ``detail`` of :func:`related_results`."""
    return _tables.wide(_LONG["Thesis literature"], ["model", "ood_set"], ["method"],
                 SOURCES["Thesis literature"])


def thesis_accuracy() -> pd.DataFrame:
    """Top-1 accuracy (%) of the thesis's ResNet-34 variants: index variant (ReLU (baseline),
    softmax, log-softmax with lambda 0 ... 0.1), columns cifar10, cifar100; nan where not reported.

    The 'softmax' row comes from a sentence of the motivation slide (CIFAR-10 only); its
    'log-softmax' and 'ReLU' numbers there equal the table's (checked in the tests).
    """
    tables = ("Thesis accuracy CIFAR-10", "Thesis accuracy CIFAR-100", "Thesis activations")
    table_rows = pd.concat([_LONG[t] for t in tables[:2]])
    softmax = _LONG["Thesis activations"].query("variant == 'softmax'")
    df = pd.concat([table_rows, softmax])
    wide = _tables.wide(df, "variant", ["benchmark"], "; ".join(SOURCES[t] for t in tables))
    order = [v for v in THESIS_VARIANTS if v in wide.index]
    out = wide.reindex(order)
    out.index.name = "variant"
    out.attrs["source"] = wide.attrs["source"]
    return out


def _thesis_scores(benchmark: str, table10: str, scores: tuple[str, ...]) -> pd.DataFrame:
    check_choice("benchmark", benchmark, THESIS_BENCHMARKS)
    table = table10 if benchmark == "cifar10" else "Thesis CIFAR-100 OOD"
    df = _LONG[table]
    return _tables.wide(df[df["method"].isin(scores)], "variant", ["ood_set", "method"], SOURCES[table]) \
        .rename_axis(columns=["ood_set", "score"])


def thesis_msp_misp(benchmark: str = "cifar10") -> pd.DataFrame:
    """MSP vs MiSP at the final layer (AUROC): index variant, columns MultiIndex (ood_set, score).

    'cifar10' (ID): OOD sets CIFAR-100, LSUN, SVHN, from the MSP vs MiSP slide; 'cifar100': OOD
    sets CIFAR-10, LSUN, SVHN, from the CIFAR-100 slide's MSP and MiSP columns.
    """
    return _thesis_scores(benchmark, "Thesis MSP vs MiSP", ("MSP", "MiSP"))


def thesis_mahalanobis_misp(benchmark: str = "cifar10") -> pd.DataFrame:
    """Mahalanobis-ensemble vs MiSP (AUROC): index variant, columns MultiIndex (ood_set, score).

    'cifar10' from the second 'OOD evaluation benchmark' slide; 'cifar100' from the CIFAR-100 slide.
    """
    return _thesis_scores(benchmark, "Thesis Mahalanobis vs MiSP", ("Mahalanobis-ensemble", "MiSP"))


_SCORE_LAYER = re.compile(r"^(?P<score>.+?) (?P<layer>layer\d+\.\d+)$")


def thesis_best(benchmark: str = "cifar10") -> pd.DataFrame:
    """The best intermediate-layer aggregation per model variant and OOD set (AUROC).

    Index: (variant, ood_set); columns ``baseline_best`` (the better of MSP and
    Mahalanobis-ensemble, 'cifar10' only, else nan), ``baseline_method`` ('MSP' or 'Mahalanobis'),
    ``intermediate_best`` (nan for the ReLU baseline, which has no log-softmax layer),
    ``intermediate_score`` (one of :data:`ashlib.misp.SCORE_NAMES`, e.g. 'min of MiSP') and
    ``intermediate_layer`` (ResNet-34 block, e.g. 'layer1.2').
    """
    check_choice("benchmark", benchmark, THESIS_BENCHMARKS)
    table = "Thesis best" if benchmark == "cifar10" else "Thesis CIFAR-100 OOD"
    src = _LONG[table]
    keys = _tables.ordered_unique(zip(src["variant"], src["ood_set"]))
    out = pd.DataFrame(index=pd.MultiIndex.from_tuples(keys, names=["variant", "ood_set"]),
                       columns=["baseline_best", "baseline_method", "intermediate_best",
                                "intermediate_score", "intermediate_layer"], dtype=object)
    out["baseline_best"] = np.nan
    out["intermediate_best"] = np.nan
    for _, row in src.iterrows():
        key = (row["variant"], row["ood_set"])
        if row["method"] == "best of MSP, Mahalanobis-ensemble":
            out.loc[key, "baseline_best"] = row["value"]
            out.loc[key, "baseline_method"] = row["detail"]
        elif row["method"] == "best intermediate aggregation":
            match = _SCORE_LAYER.match(row["detail"])
            out.loc[key, "intermediate_best"] = row["value"]
            out.loc[key, "intermediate_score"] = match["score"]
            out.loc[key, "intermediate_layer"] = match["layer"]
    out["baseline_best"] = out["baseline_best"].astype(float)
    out["intermediate_best"] = out["intermediate_best"].astype(float)
    for col in ("baseline_method", "intermediate_score", "intermediate_layer"):
        out[col] = out[col].astype(object).where(out[col].notna(), None)
    out.attrs["source"] = SOURCES[table]
    return out
