"""Numbers reported by related works: NAC and the MiSP thesis (transcribed from their slides), SCALE's
results files, and ASH in OpenOOD v1.5 (:func:`openood_ash`, quoted for chapter *ASH beyond CNNs*).

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

As in :mod:`ashlib.book.paper`, the numbers are kept as CSV files, ``ashlib/book/reference/nac_*.csv`` and
``ashlib/book/reference/thesis_*.csv`` (one per slide table; ``_FILES`` below names the file of each),
laid out like the slides' tables (same rows, same column order, the slides' row labels), so a
reviewer can compare them line by line. Typos of the extraction are corrected in the headers only
(see :data:`TRANSCRIPTION_NOTES`); cells keep the slides' text: ``23.33 ± 4.67`` keeps the spread,
``<u>52.81</u>`` the slides' underline, ``97.62 [1]*`` the thesis's citation, ``86.72 (avg of
ASP layer4.3)`` the thesis's note of which score won. Everything is read
(:func:`ashlib.book._tables.read_reference`) and parsed once, at import, into one long table per slide
table:

* :func:`related_results` -- the tidy long form of one table (see :data:`TABLES`);
* wide views with ``attrs["source"]``: :func:`nac_detection`, :func:`nac_layer_combinations`,
  :func:`nac_model_evaluation`, :func:`thesis_literature`, :func:`thesis_accuracy`,
  :func:`thesis_msp_misp`, :func:`thesis_mahalanobis_misp`, :func:`thesis_best`.

FPR95 of the NAC tables. The slides write "FPR95↓" and never say which of the conventions
of :data:`ashlib.stats.metrics.FPR_CONVENTIONS` they use. *Assumption:* the ``"openood"`` one
(OOD is the positive class; FPR95 = the fraction of ID samples rejected as OOD when 95% of the OOD
samples are detected). Reasons: the detection table is OpenOOD v1.5's (its CIFAR far-OOD sets,
its baselines, mean ± std over three trainings) and NAC's official code is a fork of OpenOOD whose
``openood/evaluators/metrics.py`` (``auc_and_fpr_recall``) "treat[s] OOD as positive". It is *not*
the ``"paper"`` convention of the ASH paper's tables (:mod:`ashlib.book.paper`), so the two FPR95
columns must not be compared as if they measured the same thing. AUROC is the same in both.
:data:`NAC_FPR95_CONVENTION` holds the name.

Where a source contradicts itself, the numbers are kept as printed; the known cases are listed
in :data:`KNOWN_INCONSISTENCIES` (and checked in ``tests/book/test_related.py``).
"""
from __future__ import annotations

import re

import numpy as np
import pandas as pd

from ashlib.book import _tables
from ashlib._checks import check_choice

NAC_CITATION = ("Y. Liu, C. X. Tian, H. Li, L. Ma, S. Wang. Neuron Activation Coverage: Rethinking "
                "Out-of-distribution Detection and Generalization. ICLR 2024.")
THESIS_CITATION = ("P. Annamalai Nathan. Generalization of MSP based out-of-distribution detection to "
                   "intermediate convolutional layers. Master thesis (slides), supervised by M. M. "
                   "Losch (MPII), reviewed by D. Stricker (DFKI) and B. Schiele (MPII).")

#: The FPR95 convention (a key of :data:`ashlib.stats.metrics.FPR_CONVENTIONS`) the NAC numbers most
#: likely use. An assumption: the slides do not say (see the module docstring).
NAC_FPR95_CONVENTION = "openood"

# ---------------------------------------------------------------------------------------------
# NAC slides. All values are percentages.
# ---------------------------------------------------------------------------------------------

_NAC_FILES = {  # table -> its file in ashlib/book/reference/
    # "Experiments: OOD Detection": the CIFAR-10 and CIFAR-100 benchmarks (the slides' "MINIST" is
    # MNIST). Mean ± spread as printed. <u>..</u> is the slides' underline (second best); <b>..</b>
    # marks the cells whose best-in-column bold was lost in the extraction: it survives only as a
    # space before the "±" ("1.30 ±0.51" beside "23.33±4.67"), and exactly those cells are the best
    # of their column (checked in the tests).
    "NAC detection": "nac_detection",
    # "Experiments: OOD Detection" (layer combinations; the slide appears twice with the same numbers):
    # NAC-UE using the layers ticked. The CIFAR rows with all four layers equal NAC-UE's Average in
    # the detection table, so these are averages over the same OOD sets; for ImageNet the slides do
    # not say which OOD sets are averaged.
    "NAC layers": "nac_layers",
    # "Experiments: OOD Generalization": model selection by the validation accuracy vs by NAC-ME.
    # RC = rank correlation (with the OOD test accuracy) of the selection criterion, ACC = OOD test
    # accuracy of the selected model; Oracle selects by the test accuracy (no RC, printed "-");
    # Δ = NAC-ME - Validation, as printed in parentheses. The slides' "Bakbone" is the backbone
    # (written on every row here; the slides write it on the first row of each group).
    "NAC-ME": "nac_me",
}

# ---------------------------------------------------------------------------------------------
# Thesis slides. All values are percentages; every OOD number is an AUROC.
# ---------------------------------------------------------------------------------------------

_THESIS_FILES = {  # table -> its file in ashlib/book/reference/
    # "Performance comparison of methods from literature": AUROC, in-distribution CIFAR-10, numbers
    # quoted from [1]-[3] (THESIS_REFERENCES). -NA- = not reported in the literature. <b> as on the
    # slides. The extraction's stray cells ("-", "5", "8", "- 1.1") are left out.
    "Thesis literature": "thesis_literature",
    # "Classification Accuracy": ResNet34, in-distribution CIFAR-10, top-1 accuracy.
    "Thesis accuracy CIFAR-10": "thesis_accuracy_cifar10",
    # "Results generalization to CIFAR-100" (Classification Performance): ResNet34, CIFAR-100.
    "Thesis accuracy CIFAR-100": "thesis_accuracy_cifar100",
    # "Motivation- softmax as intermediate activation" (a sentence, not a table): "Classification
    # performance (Model:ResNet-34 Dataset: CIFAR-10) Softmax activation: 89.75% Log-softmax
    # activation: 93.5% ReLU activation: 94.31%". No entropy loss is mentioned.
    "Thesis activations": "thesis_activations",
    # "OOD evaluation benchmark for log-softmax models" (first slide): ResNet34, ID CIFAR-10, AUROC.
    # The slides write the variant on the first row of each group only ("-NA-(Baseline)", "yes 0").
    "Thesis MSP vs MiSP": "thesis_msp_misp",
    # "OOD evaluation benchmark for log-softmax models" (second slide). The header of the first score
    # column is empty in the extraction; the "Results" slides call this comparison "Mahalanobis-
    # ensemble vs MiSP" and the "aggregation vs baseline" slide prints the same numbers as
    # "(Mahalanobis)", hence the name.
    "Thesis Mahalanobis vs MiSP": "thesis_mahalanobis_misp",
    # "Comparison of aggregation methods vs baseline methods": ResNet34, ID CIFAR-10, AUROC. Each cell
    # names the winning method (and, for the intermediate layers, the score and layer).
    "Thesis best": "thesis_best",
    # "Cifar100 OOD evalaution": ResNet34, ID CIFAR-100 (the slide's header says CIFAR-10: see
    # KNOWN_INCONSISTENCIES), AUROC. The "Entropy Loss factor" header is lost in the extraction.
    "Thesis CIFAR-100 OOD": "thesis_cifar100_ood",
}

# ---------------------------------------------------------------------------------------------
# SCALE (Xu et al., ICLR 2024), ashlib.methods.scale. All values are percentages.
# ---------------------------------------------------------------------------------------------

SCALE_CITATION = ("K. Xu, R. Chen, G. Franchi, A. Yao. Scaling for Training Time and Post-hoc "
                  "Out-of-distribution Detection Enhancement. ICLR 2024.")
_SCALE_FILES = {  # table -> its file in ashlib/book/reference/
    # The official SCALE repository's result files, results/<setting>/ood/scale.csv, on the OpenOOD v1.5
    # benchmark: ImageNet-1k with torchvision's ResNet-50 (one run; near-OOD SSB-hard and NINCO,
    # far-OOD iNaturalist, Textures, OpenImage-O), CIFAR-10 and CIFAR-100 with OpenOOD's ResNet-18
    # (mean ± sd over three trainings; near-OOD the other CIFAR and TinyImageNet, far-OOD MNIST, SVHN,
    # Textures, Places365). FPR95 in OpenOOD's convention; SCALE at p = 85. "Near/Far-OOD average" are
    # the files' nearood/farood rows. These are not the ASH paper's OOD sets (its iNaturalist, SUN,
    # Places, Textures subsets), so only the protocol, not each number, is comparable to Table 2.
    "SCALE OpenOOD": "scale_openood",
}

# ---------------------------------------------------------------------------------------------
# OpenOOD v1.5 (Zhang et al., 2023): ASH on a vision transformer (chapter *ASH beyond CNNs*). Percent.
# ---------------------------------------------------------------------------------------------

OPENOOD_CITATION = ("J. Zhang, J. Yang, P. Wang, H. Wang, Y. Lin, H. Zhang, Y. Sun, X. Du, K. Zhou, W. Zhang, "
                    "Y. Li, Z. Liu, Y. Chen, H. Li. OpenOOD v1.5: Enhanced Benchmark for Out-of-Distribution "
                    "Detection. DMLR 2024 (arXiv:2306.09301).")
_OPENOOD_FILES = {  # table -> its file in ashlib/book/reference/
    # ASH's near- and far-OOD mean AUROC in OpenOOD v1.5's full results: ImageNet-1k with torchvision's
    # ViT-B/16 (near-OOD SSB-hard, NINCO; far-OOD iNaturalist, Textures, OpenImage-O) and CIFAR-10 with
    # OpenOOD's ResNet-18 (near-OOD CIFAR-100, TinyImageNet; far-OOD MNIST, SVHN, Textures, Places365).
    # The four numbers are quoted as the book's issue 15 quotes them; they could not be re-read from
    # OpenOOD's results sheet here (no network access). One cross-check holds: CIFAR-10's far-OOD 78.49
    # is the mean of the NAC slides' four per-set ASH AUROCs (their detection table is OpenOOD v1.5's).
    "OpenOOD ASH": "openood_ash",
    # OpenOOD's leaderboard files, results/cifar10.csv and results/imagenet1k_ood.csv of the repository
    # Jingkang50/OpenOOD at commit 03db2d83430786497a277a10fe2dc1f54b92cb36, the rows of networks trained
    # with cross-entropy ("CrossEntropy", no outlier data): MSP, EBO (the energy score), ReAct and ASH,
    # near- and far-OOD mean AUROC and ID accuracy as printed (CIFAR-10: ResNet-18, 100 epochs, mean ±
    # sd over three trainings; ImageNet-1k: torchvision's ResNet-50, one checkpoint). ASH's CIFAR-10
    # row equals the "OpenOOD ASH" quote. The leaderboard is updated over time; these are that commit's.
    "OpenOOD leaderboard": "openood_leaderboard",
}

# The file of ashlib/book/reference/ (read by _tables.read_reference) that transcribes each table.
_FILES = {**_NAC_FILES, **_THESIS_FILES, **_SCALE_FILES, **_OPENOOD_FILES}

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
          "Thesis best", "Thesis CIFAR-100 OOD", "SCALE OpenOOD", "OpenOOD ASH", "OpenOOD leaderboard")

_NAC = "NAC slides (Liu et al., ICLR 2024)"
_THESIS = "MiSP thesis slides (Annamalai Nathan)"
SOURCES = {
    "OpenOOD ASH": ("OpenOOD v1.5 (Zhang et al., 2023), full results, ASH: mean AUROC over its near- and "
                    "far-OOD sets (quoted; see ashlib.book.related)"),
    "OpenOOD leaderboard": ("OpenOOD v1.5 leaderboard (github.com/Jingkang50/OpenOOD, results/cifar10.csv and "
                            "results/imagenet1k_ood.csv at commit 03db2d8), cross-entropy networks: mean AUROC "
                            "over the near- and far-OOD sets (quoted)"),
    "SCALE OpenOOD": "SCALE's official results files (Xu et al., ICLR 2024), OpenOOD v1.5 benchmark",
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

# Where a source disagrees with itself (numbers kept as printed; tests/book/test_related.py checks that
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
# Parsing: each file -> one long DataFrame with COLUMNS (cells: ashlib.book._tables.parse_cell).
# ---------------------------------------------------------------------------------------------

def _read(table: str) -> pd.DataFrame:
    """``table``'s file, every cell as printed (a string)."""
    return _tables.read_reference(_FILES[table])


def _group_metric(header: str) -> dict[str, str]:
    """``'SVHN FPR95'`` -> {'group': 'SVHN', 'metric': 'FPR95'}."""
    group, _, metric = header.rpartition(" ")
    return {"group": group, "metric": metric}


def _frame(rows: list[dict], table: str, **fixed) -> pd.DataFrame:
    df = pd.DataFrame(rows)
    for name, value in fixed.items():
        df[name] = value
    df["table"], df["source"] = table, SOURCES[table]
    df["document"] = table.split(" ")[0] if table.startswith(("NAC", "SCALE", "OpenOOD")) else "Thesis"
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


def _thesis_ood(table: str, benchmark: str) -> pd.DataFrame:
    wide = _read(table)
    keys = {"variant": _variants(wide),
            "ood_set": wide.iloc[:, 2].map(lambda s: _OOD_SETS.get(s, s))}
    rows = _tables.melt(wide, keys, wide.columns[3:],
                        lambda h: {"method": _THESIS_METHODS.get(h, h), "metric": "AUROC"})
    return _frame(rows, table, benchmark=benchmark, model="ResNet-34")


def _build() -> dict[str, pd.DataFrame]:
    out = {}

    wide = _read("NAC detection")
    rows = _tables.melt(wide, {"benchmark": wide["benchmark"].map(_BENCHMARKS),
                               "method": wide["method"]}, wide.columns[2:], _group_metric)
    for r in rows:
        r["ood_set"] = r.pop("group")
    out["NAC detection"] = _frame(rows, "NAC detection")

    wide = _read("NAC layers")
    layers = wide.iloc[:, :4].apply(
        lambda r: "+".join(c.lower() for c, v in r.items() if v.strip() == "✓"), axis=1)
    rows = _tables.melt(wide, {"variant": layers}, wide.columns[4:], _group_metric)
    for r in rows:
        r["benchmark"] = _BENCHMARKS[r.pop("group")]
    out["NAC layers"] = _frame(rows, "NAC layers", method="NAC-UE", ood_set="Average")

    wide = _read("NAC-ME")
    rows = _tables.melt(wide, {"model": wide["backbone"].map(_BACKBONES), "method": wide["method"]},
                        wide.columns[2:], _group_metric)
    for r in rows:
        group = r.pop("group")
        r["benchmark"] = _NAC_ME_DATASETS.get(group, group)
    out["NAC-ME"] = _frame(rows, "NAC-ME")

    wide = _read("Thesis literature")
    rows = _tables.melt(wide, {"model": wide["architecture"],
                               "ood_set": wide["OOD dataset"].map(lambda s: _OOD_SETS.get(s, s))},
                        wide.columns[2:],
                        lambda h: {"method": _THESIS_METHODS.get(h, h), "metric": "AUROC"})
    out["Thesis literature"] = _frame(rows, "Thesis literature", benchmark="cifar10")

    for table, benchmark in (("Thesis accuracy CIFAR-10", "cifar10"),
                             ("Thesis accuracy CIFAR-100", "cifar100")):
        wide = _read(table)
        rows = _tables.melt(wide, {"variant": _variants(wide)}, wide.columns[2:],
                            lambda h: {"metric": "ID acc"})
        out[table] = _frame(rows, table, benchmark=benchmark, model="ResNet-34")

    wide = _read("Thesis activations")
    rows = _tables.melt(wide, {"variant": wide["activation"].map(_ACTIVATIONS)}, wide.columns[1:],
                        lambda h: {"metric": "ID acc"})
    out["Thesis activations"] = _frame(rows, "Thesis activations", benchmark="cifar10",
                                       model="ResNet-34")

    for table in ("Thesis MSP vs MiSP", "Thesis Mahalanobis vs MiSP", "Thesis best"):
        out[table] = _thesis_ood(table, "cifar10")
    out["Thesis CIFAR-100 OOD"] = _thesis_ood("Thesis CIFAR-100 OOD", "cifar100")

    wide = _read("SCALE OpenOOD")
    rows = _tables.melt(wide, {"benchmark": wide["benchmark"], "model": wide["network"], "ood_set": wide["ood_set"]},
                        wide.columns[3:], lambda h: {"metric": h})
    out["SCALE OpenOOD"] = _frame(rows, "SCALE OpenOOD", method="SCALE")

    wide = _read("OpenOOD ASH")
    rows = _tables.melt(wide, {"benchmark": wide["benchmark"], "model": wide["network"]}, wide.columns[2:],
                        lambda h: {"ood_set": h.rsplit(" ", 1)[0] + " average", "metric": "AUROC"})
    out["OpenOOD ASH"] = _frame(rows, "OpenOOD ASH", method="ASH")

    wide = _read("OpenOOD leaderboard")
    rows = _tables.melt(wide, {"benchmark": wide["benchmark"], "model": wide["network"], "method": wide["method"]},
                        wide.columns[3:], lambda h: ({"ood_set": h.rsplit(" ", 1)[0] + " average", "metric": "AUROC"}
                                                     if h.endswith("AUROC") else {"metric": h}))
    out["OpenOOD leaderboard"] = _frame(rows, "OpenOOD leaderboard")
    return out


_LONG = _build()


# ---------------------------------------------------------------------------------------------
# Public accessors.
# ---------------------------------------------------------------------------------------------

def related_results(table: str) -> pd.DataFrame:
    """The source's ``table`` (one of :data:`TABLES`) in long form, one row per printed number.

    Columns: ``table``, ``source`` (document and slide), ``document`` ('NAC', 'Thesis' or 'SCALE'),
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


def scale_reported(benchmark: str = "imagenet", spread: bool = False) -> pd.DataFrame:
    """SCALE's own numbers on the OpenOOD v1.5 benchmark for ``benchmark`` ('imagenet': ResNet-50,
    'cifar10'/'cifar100': ResNet-18): index OOD set (and the near/far-OOD averages), columns FPR95,
    AUROC, AUPR-In, AUPR-Out, ID acc (percent; FPR95 in OpenOOD's convention). ``spread=True``: the ±
    (sd over three trainings; CIFAR only) instead of the means."""
    check_choice("benchmark", benchmark, ("imagenet", "cifar10", "cifar100"))
    df = _LONG["SCALE OpenOOD"]
    return _tables.wide(df[df["benchmark"] == benchmark], "ood_set", ["metric"], SOURCES["SCALE OpenOOD"],
                        values="spread" if spread else "value")


def openood_ash() -> pd.DataFrame:
    """ASH in OpenOOD v1.5 (quoted): index network ('ViT-B/16' on ImageNet-1k, 'ResNet-18' on
    CIFAR-10), columns 'Near-OOD average', 'Far-OOD average' (mean AUROC, percent)."""
    df = _LONG["OpenOOD ASH"]
    return _tables.wide(df, "model", ["ood_set"], SOURCES["OpenOOD ASH"])


def openood_leaderboard(benchmark: str = "cifar10", spread: bool = False) -> pd.DataFrame:
    """OpenOOD v1.5's leaderboard rows of the networks trained with cross-entropy (quoted): MSP, EBO (the
    energy score), ReAct and ASH on ``benchmark`` ('cifar10': ResNet-18; 'imagenet': ResNet-50). Index
    method; columns 'Near-OOD average', 'Far-OOD average' (mean AUROC) and 'ID acc' (percent).
    ``spread=True``: the ± (sd over three trainings, CIFAR-10 only) instead of the means."""
    check_choice("benchmark", benchmark, ("cifar10", "imagenet"))
    df = _LONG["OpenOOD leaderboard"]
    df = df[df["benchmark"] == benchmark].assign(column=lambda d: d["ood_set"].fillna(d["metric"]))
    return _tables.wide(df, "method", ["column"], SOURCES["OpenOOD leaderboard"],
                        values="spread" if spread else "value").rename_axis(columns=None)


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
    ``intermediate_score`` (one of :data:`ashlib.methods.misp.SCORE_NAMES`, e.g. 'min of MiSP') and
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
