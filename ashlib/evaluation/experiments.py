"""Experiments: grids of OOD methods evaluated from cached activations, as tidy DataFrames.

A :class:`Method` is one row of the paper's tables: a score (Softmax, Energy, ODIN, Mahalanobis,
NAC-UE, MiSP, ...) with an optional activation shaping (ASH-P/B/S/RAND, SCALE; local or global
threshold, at any placement), optional ReAct clipping and optional DICE weight sparsification of the
penultimate layer. Scores and shapings are the entries of :mod:`ashlib.methods.registry`; the engine
names none of them, so a new method needs no change in this module. A method is named once, by its
score's registry name (``Method("msp")``, labelled "Softmax" as the registry says), or by a score's or
shaping's name or label (``method("ASH-S", p=95)``, "ASH-S@95"). The network runs once per data set;
each method then costs only its shaping and the layers after its placement, and a :class:`Context`
keeps what it computed in explicit caches (:data:`CACHES`).
:func:`evaluate` returns one row per (method, OOD set) plus an "Average" row per method, with
FPR95, AUROC, AUPR-In, AUPR-Out (percent) and ID accuracy. The average is over the paper-like OOD
sets; sanity-check sets (uniform noise, :attr:`ashlib.assets.data.Benchmark.sanity`) come after it and are
left out of it.
"""
from __future__ import annotations

import functools
import zlib
from contextlib import contextmanager
from dataclasses import KW_ONLY, dataclass, field
from fractions import Fraction

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from ashlib.stats import metrics, uncertainty
from ashlib.methods import registry, scores, shaping
from ashlib._checks import ParameterError, check_choice, check_percentile, check_positive_int
from ashlib.assets.features import activations, batches, output_numels, replay_start, run_after, top_level
from ashlib.assets.placement import get_layer, shaping_at_each

SCORES = tuple(registry.scores())
SHAPINGS = ("none", *registry.shapings())
THRESHOLDS = ("local", "global")
TRAIN_SET, ID_SET = "ID train", "ID test"
SCORE_NAMES = {name: entry.label for name, entry in registry.scores().items()}
#: The chapters' default sweeps (their declarations, ashlib.book.chapters, repeat these; tests/book/test_notebooks.py checks).
ACCURACY_SWEEP = (0, 10, 20, 30, 40, 50, 60, 70, 80, 85, 90, 95, 97, 99, 100)  # Figure 3
THRESHOLD_PERCENTILES = (70, 75, 80, 85, 90, 91, 92, 93, 94, 95, 96, 97, 98, 99)  # Figure 4, Table A4
RAND_PERCENTILES = (65, 70, 75, 80, 85, 90)  # Table 4 (plus 85)
RAND_SEEDS = (0, 1, 2, 3, 4)
#: Bootstrap resamples behind the 95% intervals of the chapters' results tables (``evaluate(intervals=...)``).
INTERVAL_RESAMPLES = uncertainty.N_RESAMPLES
#: Table A1's rows: (variant, p, where: 0-3 the paper's blocks 1-4, 4 the penultimate layer), as the paper
#: places them in a ResNet-50; :func:`table_a1_methods` places them in other networks.
TABLE_A1_ROWS = (("P", 90, 0), ("P", 90, 1), ("P", 90, 2), ("S", 90, 2), ("S", 70, 2), ("S", 90, 3), ("S", 90, 4))
#: The blocks of Table A1's rows: ResNet-50's four stages.
PAPER_BLOCKS = 4


#: Where a baseline setting comes from, as captions say it: the ASH paper itself, an official code
#: base (ReAct's, DICE's, ODIN's), or our choice.
SETTING_SOURCES = ("paper", "official code", "ours")
#: The settings a caption names, in its order (:meth:`BaselineSettings.describe`).
SETTINGS = ("react", "react_ash", "dice", "dice_react", "odin_temperature", "odin_epsilon")


@dataclass(frozen=True)
class BaselineSettings:
    """The baselines' hyperparameters on one benchmark and network (paper Appendix D), each with its source.

    ``react_clip``: ReAct's clipping threshold ``c`` for every ReAct row ("ReAct", "ReAct + ASH");
    None means ReAct's own recipe, the 90th percentile of the penultimate activations over ID images
    (here the *training* images: our benchmarks have no validation split). ``dice_percentile``: DICE's
    sparsity ``p`` alone; ``dice_react``: ``(p, c)`` of "DICE + ReAct" (``c`` None: as ``react_clip``).
    ``odin_epsilon``: ODIN's perturbation magnitude in the network's *normalised* input space, as the
    official ODIN code of ReAct and DICE applies it (:func:`ashlib.methods.scores.odin`, ``input_scale``).
    ``sources``: for each of :data:`SETTINGS`, where its value comes from: ``"<source>: <why>"`` with a
    source of :data:`SETTING_SOURCES` ("paper" only where the ASH paper states the value for this
    benchmark and network). ``mahalanobis_layers``: the layers of the paper's Mahalanobis (None:
    :func:`ashlib.methods.mahalanobis.stage_layers`, every stage's output).
    """

    react_clip: float | None
    dice_percentile: float
    dice_react: tuple[float, float | None]
    odin_epsilon: float
    sources: tuple[tuple[str, str], ...]
    odin_temperature: float = 1000.0
    mahalanobis_layers: tuple[str, ...] | None = None

    def __post_init__(self):
        given = dict(self.sources)
        if sorted(given) != sorted(SETTINGS):
            raise ParameterError(f"sources naming {sorted(given)} is not allowed: expected one source for each "
                                 f"of {list(SETTINGS)}.")
        for name, text in given.items():
            if text.split(":")[0] not in SETTING_SOURCES:
                raise ParameterError(f"sources[{name!r}]={text!r} is not allowed: expected '<source>: <why>' "
                                     f"with a source of {list(SETTING_SOURCES)}.")

    def source(self, setting: str) -> str:
        """Where ``setting`` (one of :data:`SETTINGS`) comes from: ``"<source>: <why>"``."""
        check_choice("setting", setting, SETTINGS)
        return dict(self.sources)[setting]

    def describe(self, react_threshold: float) -> str:
        """One paragraph for a table caption: every setting with the value actually used and its source."""
        c = (f"c = {self.react_clip:g}" if self.react_clip is not None
             else f"c = {react_threshold:.3g}, the 90th percentile of ID training features")
        p, c2 = self.dice_react
        c2 = f"c = {c2:g}" if c2 is not None else f"the same c = {react_threshold:.3g}"
        return (f"Baselines: ReAct {c} ({self.source('react')}); ReAct + ASH the same c "
                f"({self.source('react_ash')}); DICE p = {self.dice_percentile:g} ({self.source('dice')}); "
                f"DICE + ReAct p = {p:g}, {c2} ({self.source('dice_react')}); {self.odin_note}.")

    @property
    def odin_note(self) -> str:
        """ODIN's two settings with their sources, for captions."""
        return (f"ODIN T = {self.odin_temperature:g} ({self.source('odin_temperature')}), epsilon = "
                f"{self.odin_epsilon:g} in the normalised input ({self.source('odin_epsilon')})")


def _sources(**sources: str) -> tuple[tuple[str, str], ...]:
    return tuple(sources.items())


_ODIN_T = "official code: ODIN's, which ReAct's and DICE's ODIN runs keep; the paper states none"
_ASH_C = "paper: Appendix D, 'ReAct + ASH' at c = 1.0 on CIFAR-10, CIFAR-100 and ImageNet"
_CIFAR = _sources(
    react="ours: ReAct + ASH's c; the paper's CIFAR 'ReAct' rows are its own runs and give no c",
    react_ash=_ASH_C,
    dice="official code: DICE's demo-cifar.sh runs p = 90; the paper copies DICE's CIFAR rows",
    dice_react="ours: DICE's p with ReAct + ASH's c; the paper copies CIFAR's DICE + ReAct from DICE, which "
               "states no pair",
    odin_temperature=_ODIN_T,
    odin_epsilon="paper: Appendix D, 0.0028 for the DenseNet-101",
)
#: Baseline settings per (benchmark, network), each with its source (the paper's Appendix D, an official
#: code base, or ours). Our own networks (mnist5k, fmnist) take :data:`_OURS`.
BASELINES: dict[tuple[str, str], BaselineSettings] = {
    ("cifar10", "densenet100"): BaselineSettings(1.0, 90, (90, 1.0), 0.0028, _CIFAR),
    ("cifar100", "densenet100"): BaselineSettings(1.0, 90, (90, 1.0), 0.0028, _CIFAR),
    # ReAct's Mahalanobis on ResNet-50 reads layer4 only (its feature_list; eval.py num_output = 1)
    ("imagenet", "resnet50"): BaselineSettings(1.0, 70, (10, 1.0), 0.005, _sources(
        react="official code: ReAct's eval.py default threshold 1.0; the paper copies ReAct's ResNet-50 rows",
        react_ash=_ASH_C,
        dice="paper: Appendix D, 70% is DICE's recommended threshold alone",
        dice_react="ours: Appendix D's MobileNetV2 pair, the best of its grid; the paper copies ResNet-50's "
                   "DICE + ReAct from DICE",
        odin_temperature=_ODIN_T,
        odin_epsilon="paper: Appendix D, 0.005 for the ResNet-50",
    ), mahalanobis_layers=("layer4",)),
    ("imagenet", "mobilenet_v2"): BaselineSettings(1.33, 70, (10, 1.0), 0.005, _sources(
        react="paper: Appendix D, 1.33 is MobileNetV2's 90th percentile of training features, ReAct's recipe",
        react_ash="ours: MobileNetV2's ReAct c; the paper's ReAct + ASH on ImageNet, in Table 5, is ResNet-50's",
        dice="paper: Appendix D, DICE at 70% on MobileNetV2",
        dice_react="paper: Appendix D, p = 10, c = 1.0, the best of its grid on MobileNetV2",
        odin_temperature=_ODIN_T,
        odin_epsilon="ours: ResNet-50's; the paper states none for MobileNetV2; ReAct's eval.py uses 0.03",
    )),
}
_OURS = BaselineSettings(None, 90, (90, None), 0.0028, _sources(
    react="ours: ReAct's percentile recipe on our network, where an absolute c = 1.0 means nothing",
    react_ash="ours: as ReAct",
    dice="ours: DICE's CIFAR p",
    dice_react="ours: DICE's CIFAR p with ReAct's percentile",
    odin_temperature=_ODIN_T,
    odin_epsilon="ours: the DenseNet-101's, another small-image CNN, not tuned for ours",
))


def baseline_settings(benchmark: str, model: str | None = None) -> BaselineSettings:
    """The baselines' settings for ``benchmark`` with ``model`` (None: the benchmark's default
    network): :data:`BASELINES` on the paper's benchmarks, ours on the embedded ones."""
    from ashlib.assets.models import model_for

    return BASELINES.get((benchmark, model_for(benchmark, model)), _OURS)


def _label(method: "Method") -> str:
    """The paper's name for ``method``'s row: its score's registry label alone ("Softmax", "Energy"); else
    DICE and ReAct ("DICE", "ReAct", "DICE+ReAct") and the shaping at its percentile ("ASH-S@90", then
    " (global)" and " at <placement>" where chosen), joined by " + " after the score's label unless the
    score is energy, the paper's default ("ReAct + ASH-S@90", "Softmax + ASH-P@95")."""
    parts = []
    if method.dice:
        parts.append("DICE+ReAct" if method.react else "DICE")
    elif method.react:
        parts.append("ReAct")
    if method.shaping != "none":
        part = f"{registry.shaping(method.shaping).label}@{method.percentile:g}"
        if method.threshold == "global":
            part += " (global)"
        if method.placement is not None:
            part += f" at {method.placement}"
        parts.append(part)
    if method.score != "energy" or not parts:
        parts.insert(0, registry.score(method.score).label)
    return " + ".join(parts)


def _check_score(score) -> None:
    """Refuse a ``score`` that is not a registered score's name, saying which name was meant where
    ``score`` is a score's label ("Softmax") or a shaping."""
    if score in SCORES:
        return
    named = registry.find(score) if isinstance(score, str) else None
    hint = ""
    if named is not None and named[0] == "score":
        hint = f" ({score!r} is the label of the score {named[1]!r}: write Method({named[1]!r}))"
    elif named is not None:
        hint = (f" ({score!r} is a shaping: write method({score!r}, p) for it with the energy score, or "
                f"Method(<score>, shaping={named[1]!r}, percentile=p))")
    raise ParameterError(f"score={score!r} is not allowed: expected a registered score's name, one of "
                         + ", ".join(map(repr, SCORES)) + hint + ".")


@dataclass(frozen=True)
class Method:
    """One OOD detector, named once by its score: ``Method("msp")``, a score of
    :mod:`ashlib.methods.registry` by its registry name, optionally with a registered shaping at
    ``percentile`` and ``placement`` (None: the context's feature, i.e. penultimate, layer), ReAct and
    DICE; every argument after the score is a keyword. ``label``: the method's name in tables, by
    default the paper's (:func:`_label`: "Softmax", "ReAct", "ASH-S@90", "Softmax + ASH-P@95"); give
    one to display another ("MSP", "ReAct + ASH"), or to tell apart methods of one score that differ
    in ``options`` only, but never one that names another registered score or shaping.
    ``options``: the score's own settings (e.g. NAC-UE's layer configurations), given as a dict
    and kept as sorted ``(name, value)`` pairs; values must be hashable. :func:`method` names a
    method by a score or a shaping (``method("ASH-S", p=95)``)."""

    score: str
    _: KW_ONLY
    label: str | None = None
    shaping: str = "none"
    percentile: float | None = None
    threshold: str = "local"
    placement: str | None = None
    react: bool = False
    dice: bool = False
    seed: int = 0
    options: tuple = ()

    def __post_init__(self):
        _check_score(self.score)
        check_choice("shaping", self.shaping, SHAPINGS)
        check_choice("threshold", self.threshold, THRESHOLDS)
        if self.shaping != "none":
            check_percentile("percentile", self.percentile)
        if self.label is None:
            object.__setattr__(self, "label", _label(self))
        elif not isinstance(self.label, str) or not self.label.strip():
            raise ParameterError(f"label={self.label!r} is not allowed: expected a non-empty string, or None "
                                 f"for the paper's ({_label(self)!r}).")
        named = registry.find(self.label)
        if named is not None and named != ("score", self.score) and named != ("shaping", self.shaping):
            kind, name = named
            instead = f"Method({name!r})" if kind == "score" else f"method({name!r}, p)"
            raise ParameterError(
                f"label={self.label!r} is not allowed with score={self.score!r}, shaping={self.shaping!r}: it names "
                f"the {kind} {name!r}, which this Method would not compute; expected a label that names no other "
                f"registered score or shaping (or none: this Method's own is {_label(self)!r}), or {instead} "
                f"for the {kind} {name!r}.")
        entry = registry.score(self.score)
        if not entry.shapeable and (self.shaping != "none" or self.react or self.dice):
            raise ParameterError(f"score={self.score!r} with shaping={self.shaping!r}, react={self.react}, "
                                 f"dice={self.dice} is not allowed: {entry.label} reads unshaped features.")
        options = dict(self.options)
        try:
            hash(tuple(options.values()))
        except TypeError:
            raise ParameterError(f"options={self.options!r} is not allowed: expected hashable values "
                                 "(tuples, not lists).") from None
        object.__setattr__(self, "options", tuple(sorted(options.items())))

    @property
    def family(self) -> str:
        """The shaping's label (e.g. "ASH-S"), else the score's family (e.g. "baseline")."""
        if self.shaping != "none":
            return registry.shaping(self.shaping).label
        return registry.score(self.score).family

    def option(self, name: str, default=None):
        """The value of option ``name`` (``default`` when not given)."""
        return dict(self.options).get(name, default)


def method(name: str, p: float | None = None, **kw) -> Method:
    """The method that ``name`` names, a registered score or shaping by its registry name or label (any
    case, :func:`ashlib.methods.registry.find`): a score, ``Method(score, **kw)`` (``method("Softmax") ==
    Method("msp")``); a shaping, at percentile ``p`` by :func:`shaped` with ``kw`` (``method("ASH-S", p=95)
    == ash("S", 95)``: "ASH-S@95" with the energy score)."""
    named = registry.find(name) if isinstance(name, str) else None
    if named is None:
        raise ParameterError(f"name={name!r} is not allowed: expected a registered score's or shaping's name or "
                             "label, one of " + ", ".join(map(repr, [*registry.scores(), *registry.shapings()])) + ".")
    kind, key = named
    if kind == "shaping":
        if p is None:
            raise ParameterError(f"p=None is not allowed with the shaping {key!r}: expected its percentile, a "
                                 f"number in [0, 100] (e.g. method({name!r}, p=90)).")
        return shaped(key, p, **kw)
    if p is not None:
        raise ParameterError(f"p={p!r} is not allowed with the score {key!r}: expected None, a score takes no "
                             f"percentile (a shaping does: method('ash_s', p={p!r}, score={key!r})).")
    return Method(key, **kw)


def shaped(shaping_name: str, percentile: float, score: str = "energy", threshold: str = "local",
           placement: str | None = None, react: bool = False, seed: int = 0) -> Method:
    """A registered shaping at ``percentile`` with a score, labelled as the paper does (:func:`_label`):
    ``shaped("scale", 85)`` -> "SCALE@85" with the energy score; "(global)", " at <placement>", "ReAct + "
    and "<score> + " mark the other choices."""
    return Method(score, shaping=shaping_name, percentile=percentile, threshold=threshold, placement=placement,
                  react=react, seed=seed)


def ash(variant: str, percentile: float, score: str = "energy", threshold: str = "local",
        placement: str | None = None, react: bool = False, seed: int = 0) -> Method:
    """ASH-<variant>@p, e.g. ``ash("S", 90)`` -> "ASH-S@90" with the energy score (paper default)."""
    return shaped(f"ash_{variant.lower()}", percentile, score=score, threshold=threshold, placement=placement,
                  react=react, seed=seed)


def paper_methods(percentiles: dict[str, float]) -> list[Method]:
    """The rows of the paper's Tables 2/3: baselines, then ASH-P/B/S at ``percentiles`` ({"P": 90, ...}).
    "Mahalanobis" is the paper's (:mod:`ashlib.methods.mahalanobis`); "Mahalanobis (penultimate)", the
    feature-only score, is ours, not a row of the paper's."""
    return [
        Method("msp"),
        Method("odin"),
        Method("mahalanobis"),
        Method("mahalanobis_penultimate"),
        Method("energy"),
        Method("energy", react=True),
        Method("energy", dice=True),
        Method("energy", react=True, dice=True),
        *(ash(v, p) for v, p in percentiles.items()),
    ]


def plug_and_play_methods(choices: dict[str, tuple[str, float]]) -> list[Method]:
    """Table 5: Softmax, ODIN, Energy and ReAct, each alone and "+ ASH" with the variant and p the
    paper used for that row (``paper.TABLE5_ASH[benchmark]``, e.g. ``{"Softmax + ASH": ("ASH-P", 95)}``)."""
    rows = []
    for score, react in [("msp", False), ("odin", False), ("energy", False), ("energy", True)]:
        alone = Method(score, react=react)
        variant, p = choices[f"{alone.label} + ASH"]
        rows.append(alone)
        rows.append(Method(score, label=f"{alone.label} + ASH", shaping=variant.lower().replace("-", "_"),
                           percentile=p, react=react))
    return rows


def stage_placements(model: nn.Module, ctx: "Context") -> list[str]:
    """Figure 5's placements: before the last ReLU of each stage (``block_merge_layers``), then the
    feature layer (after the average pool)."""
    from ashlib.assets.models import block_merge_layers

    return [*block_merge_layers(model), ctx.feature_layer]


def _depth_gap(stage: int, stages: int, block: int) -> Fraction:
    """How far inner stage ``stage`` of ``stages`` sits from the paper's block ``block`` (1-based), in
    relative depth."""
    return abs(Fraction(stage, stages) - Fraction(block, PAPER_BLOCKS))


def paper_blocks(stages: int) -> dict[int, int]:
    """The inner stage (1-based, early to late) at each of the paper's blocks 1-4, by relative position.

    Stage ``s`` of ``stages`` sits at depth ``s / stages``, block ``b`` at ``b / 4``. A block takes the
    stage nearest its depth (the shallower on a tie) and a stage stands for the nearest of the blocks
    that take it: with fewer than four stages some blocks have none (DenseNet-100's three: blocks 1, 3
    and 4), with more some stages stand for none (MobileNetV2's seven: stages 2, 3, 5 and 7).
    """
    if stages < 0:
        raise ParameterError(f"stages={stages} is not allowed: expected a count of inner stages, 0 or more")
    if stages == 0:
        return {}
    taken = {b: min(range(1, stages + 1), key=lambda s: _depth_gap(s, stages, b)) for b in range(1, PAPER_BLOCKS + 1)}
    return {b: s for b, s in taken.items()
            if b == min((c for c in taken if taken[c] == s), key=lambda c: _depth_gap(s, stages, c))}


def table_a1_methods(stages: list[str], feature_layer: str = "avgpool") -> list[tuple[str, Method]]:
    """Table A1's rows at our placements: (the paper's row label, e.g. "ASH-P@90 block1", method).

    ``stages``: placements early to late (:func:`stage_placements`). The row "ASH-S@90 penultimate"
    sits at ``feature_layer``, which must come last (no such row when ``stages`` lacks it); the rows of
    the paper's blocks 1-4 sit at the other placements by relative position (:func:`paper_blocks`),
    and a block with no placement has no rows.
    """
    if feature_layer in stages[:-1]:
        raise ParameterError(f"placements={list(stages)} is not allowed: the feature layer {feature_layer!r} "
                             "must come last (placements run early to late)")
    inner = [s for s in stages if s != feature_layer]
    at_block = paper_blocks(len(inner))
    rows = []
    for v, p, i in TABLE_A1_ROWS:
        if i == PAPER_BLOCKS and feature_layer in stages:
            rows.append((f"ASH-{v}@{p} penultimate", ash(v, p, placement=feature_layer)))
        elif i + 1 in at_block:
            rows.append((f"ASH-{v}@{p} block{i + 1}", ash(v, p, placement=inner[at_block[i + 1] - 1])))
    return rows


def threshold_grid(percentiles) -> list[Method]:
    """Figure 4 / Table A4: ASH-S and ASH-B with local and global thresholds at each p."""
    return [ash(v, p, threshold=t) for v in "SB" for t in ("local", "global") for p in percentiles]


def table4_methods(percentiles, seeds) -> tuple[list[Method], list[Method]]:
    """Table 4: ASH-RAND at each p and seed, and the reference rows (Softmax, Energy, ODIN, the best
    ASH-B and ASH-S of Table 2: ASH-B@65, ASH-S@90)."""
    rand = [ash("RAND", p, seed=s) for p in percentiles for s in seeds]
    references = [Method("msp"), Method("energy"), Method("odin"),
                  ash("B", 65), ash("S", 90)]
    return rand, references


#: The caches of a :class:`Context`, each a dict by explicit keys (see the fields).
CACHES = ("layer_outputs", "layer_numels", "global_thresholds", "fits", "intermediates", "logits", "scores",
          "predictions", "id_accuracies", "rows", "replicates", "id_accuracy_replicates")


def _kept(cache: dict, key, compute):
    """``cache[key]``, first set to ``compute()`` if ``cache`` lacks it."""
    if key not in cache:
        cache[key] = compute()
    return cache[key]


@dataclass
class Context:
    """Everything the methods need, computed once: cached features and statistics fitted on ID
    *training* data only (ReAct's threshold, DICE's masks, global ASH thresholds, and what each
    registered score fits, :meth:`fitted`), with the baselines' settings (:class:`BaselineSettings`).

    What is computed later is kept in the caches of :data:`CACHES`, dicts by explicit keys, filled on
    first use and never emptied: asking again returns the kept value, computed once and by one path.
    The one bounded cache is :attr:`logits` (:func:`method_logits`): only its latest
    :attr:`logits_limit` bytes are kept, and logits it gave up are computed again, by the same path,
    when asked for again. The caches hold what the context's settings gave: change a setting after
    use (e.g. :attr:`replay_limit`) and what it changes is computed again only once its cache is
    cleared (``ctx.logits.clear()``)."""

    model: nn.Sequential
    sets: dict
    y_train: Tensor
    y_test: Tensor
    features: dict[str, Tensor]
    weight: Tensor
    bias: Tensor
    react_threshold: float
    dice_mask: Tensor
    dice_react_mask: Tensor  # DICE's mask in "DICE + ReAct" (its own p, BaselineSettings.dice_react)
    dice_react_threshold: float  # ReAct's clip in "DICE + ReAct"
    baselines: BaselineSettings = _OURS
    feature_layer: str = "avgpool"
    batch_size: int = 256
    device: str = "cpu"
    sanity_sets: tuple[str, ...] = ()
    num_workers: int = 0
    replay_limit: int = 4 << 30  # bytes: a layer output larger than this over a set is streamed, not cached
    mahalanobis_n_val: int = 1000  # ID training images (and their FGSM examples) of the Mahalanobis regression
    logits_limit: int = 1 << 28  # bytes: the most logits kept in :attr:`logits`
    # the caches (CACHES): key -> value
    layer_outputs: dict = field(default_factory=dict, repr=False)  # (layer, set) -> its output over the set
    layer_numels: dict = field(default_factory=dict, repr=False)  # layer (None: the images) -> numel per image
    global_thresholds: dict = field(default_factory=dict, repr=False)  # (placement, p) -> global ASH threshold
    fits: dict = field(default_factory=dict, repr=False)  # (score, options) -> what the score fitted
    intermediates: dict = field(default_factory=dict, repr=False)  # a score's own key -> what it shares
    logits: dict = field(default_factory=dict, repr=False)  # (method, set) -> logits, the latest logits_limit bytes
    scores: dict = field(default_factory=dict, repr=False)  # (method, set) -> per-image scores, float64
    predictions: dict = field(default_factory=dict, repr=False)  # method -> ID test predictions
    id_accuracies: dict = field(default_factory=dict, repr=False)  # method -> ID test accuracy, percent
    rows: dict = field(default_factory=dict, repr=False)  # (method, convention, aupr[, intervals]) -> evaluate's
    replicates: dict = field(default_factory=dict, repr=False)  # (method, convention, n[, metric]) -> {set: draws}
    id_accuracy_replicates: dict = field(default_factory=dict, repr=False)  # (method, n) -> accuracy draws

    @property
    def odin_temperature(self) -> float:
        return self.baselines.odin_temperature

    @property
    def odin_epsilon(self) -> float:
        return self.baselines.odin_epsilon

    @property
    def odin_input_scale(self) -> Tensor | float:
        """ODIN's step per input unit: the network's normalisation std (epsilon is in its space)."""
        normalize = getattr(self.model, "normalize", None)
        return normalize.std if normalize is not None else 1.0

    train_set = TRAIN_SET

    def cache_sizes(self) -> dict[str, int]:
        """The number of values each cache of :data:`CACHES` holds."""
        return {name: len(getattr(self, name)) for name in CACHES}

    def memoised(self, key: tuple, compute):
        """``compute()`` the first time ``key`` is asked for, then the kept value: entries of
        :mod:`ashlib.methods.registry` keep what they share across methods in :attr:`intermediates`
        by keys of their own (e.g. NAC's neuron states)."""
        return _kept(self.intermediates, key, compute)

    def fitted(self, method: Method):
        """What ``method``'s score fits on ID training data (its registry entry's ``fit``), computed on
        first use and kept in :attr:`fits` per score and options (those in the entry's ``score_only``
        aside); None for scores that fit nothing."""
        entry = registry.score(method.score)
        if entry.fit is None:
            return None
        options = tuple(item for item in method.options if item[0] not in entry.score_only)
        return _kept(self.fits, (method.score, options), lambda: entry.fit(self, method))

    def mahalanobis_detector(self):
        """The paper's Mahalanobis (:mod:`ashlib.methods.mahalanobis`), fitted once on first use: Gaussians
        on the ID training images, then the magnitude and the regression by the official validation
        recipe on :attr:`mahalanobis_n_val` (official: 1,000) ID *training* images and their FGSM
        examples, half to fit the regression, half to pick the magnitude (no test or OOD image is seen;
        ReAct used ID validation images, which on ImageNet are its test set). Returns (fit, picked)."""
        return self.fitted(Method("mahalanobis"))

    def batches(self, set_name: str):
        """The images of one set, batch by batch, on the context's device."""
        for xb in batches(self.sets[set_name], self.batch_size, self.num_workers, self.device):
            yield xb.to(self.device, non_blocking=True)

    @contextmanager
    def shaped_model(self, method: Method, set_name: str):
        """The network on the context's device with ``method``'s shaping and ReAct attached (for
        scores that run the whole network, e.g. ODIN); the hooks go when the block ends."""
        model = self.model.to(self.device)
        with shaping_at_each(model, method_hooks(method, self, set_name)):
            yield model

    def baseline_note(self) -> str:
        """The baselines' settings as one caption sentence (:meth:`BaselineSettings.describe`)."""
        return self.baselines.describe(self.react_threshold)

    @property
    def ood_sets(self) -> list[str]:
        return [name for name in self.sets if name not in (TRAIN_SET, ID_SET)]

    @property
    def averaged_sets(self) -> list[str]:
        """The OOD sets the "Average" row is taken over: all but the sanity-check sets."""
        return [name for name in self.ood_sets if name not in self.sanity_sets]

    def layer_output(self, layer: str | None, set_name: str) -> Tensor:
        """Output of ``layer`` (None: the images) on one set, kept in memory once computed and never
        written to the disk cache (a ResNet-50's ``layer1`` over ImageNet's 50,000 images is 160 GB):
        sweeps at inner placements stream instead (:func:`share_placements`)."""
        if layer is None:
            return torch.cat(list(batches(self.sets[set_name], self.batch_size, self.num_workers, self.device)))
        return _kept(self.layer_outputs, (layer, set_name), lambda: activations(
            self.model, self.sets[set_name], [layer], self.batch_size, self.device, cache=False,
            desc=f"{set_name} @ {layer}", num_workers=self.num_workers)[layer])

    def layer_bytes(self, layer: str | None, set_name: str) -> int:
        """Bytes the output of ``layer`` (None: the images) takes over one whole set, as float32."""
        numel = _kept(self.layer_numels, layer,
                      lambda: output_numels(self.model, self.sets[ID_SET][0], [layer])[layer])
        return 4 * numel * len(self.sets[set_name])

    def replays(self, layer: str | None, set_name: str) -> bool:
        """Whether a method placed after ``layer`` replays the network's tail from its cached output
        (it fits :attr:`replay_limit`) or streams the images through the whole network instead."""
        return self.layer_bytes(layer, set_name) <= self.replay_limit

    def global_threshold(self, placement: str, percentile: float) -> float:
        """The p-th percentile of the placement's activations over ID *training* data (Fig. 4)."""
        def fit():
            acts = (self.features[TRAIN_SET] if placement == self.feature_layer
                    else self.layer_output(placement, TRAIN_SET))
            return shaping.fit_global_threshold(acts, percentile)
        return _kept(self.global_thresholds, (placement, percentile), fit)

    def keep_logits(self, key: tuple, logits: Tensor) -> None:
        """Keep ``logits`` in :attr:`logits` under ``key``, giving up the oldest kept first so that all
        fit :attr:`logits_limit` bytes (logits larger than that alone are not kept)."""
        size = logits.numel() * logits.element_size()
        if size > self.logits_limit:
            return
        total = size + sum(t.numel() * t.element_size() for t in self.logits.values())
        for old in list(self.logits):
            if total <= self.logits_limit:
                break
            total -= self.logits[old].numel() * self.logits[old].element_size()
            del self.logits[old]
        self.logits[key] = logits


def build_context(model: nn.Sequential, benchmark, feature_layer: str = "avgpool", head: str = "fc",
                  baselines: BaselineSettings | None = None, batch_size: int = 256, device: str = "cpu",
                  num_workers: int = 0, replay_limit: int = 4 << 30, mahalanobis_n_val: int = 1000) -> Context:
    """Compute (or load from cache) the penultimate features of every set and fit ReAct's
    threshold (unless ``baselines`` fixes it) and DICE's masks on ID *training* data only (each
    score fits what it needs when first used, :meth:`Context.fitted`). ``baselines``: None for :func:`baseline_settings` of the benchmark's name
    and default network. The benchmark's sanity-check sets (``benchmark.sanity``) are evaluated but
    kept out of averages. ``num_workers``: data-loading processes for Dataset sets;
    ``replay_limit``: see :meth:`Context.replays`; ``mahalanobis_n_val``: see
    :meth:`Context.mahalanobis_detector`."""
    check_positive_int("mahalanobis_n_val", mahalanobis_n_val)
    if baselines is None:
        baselines = baseline_settings(getattr(benchmark, "name", "mnist5k"))
    elif not isinstance(baselines, BaselineSettings):
        raise ParameterError(f"baselines={baselines!r} is not allowed: expected a BaselineSettings "
                             "(e.g. experiments.baseline_settings('cifar10')) or None.")
    names = top_level(model)
    tail = names[names.index(check_choice("feature_layer", feature_layer, names)) + 1:]
    if tail[-1:] != [head] or not set(tail[:-1]) <= {"flatten", "dropout"}:
        raise ParameterError(f"feature_layer={feature_layer!r} is not allowed: expected the layer whose "
                             f"output feeds the head {head!r} (through flatten/dropout only).")
    sets = {TRAIN_SET: benchmark.x_train, ID_SET: benchmark.x_test, **benchmark.ood}
    feats = {name: activations(model, data, [feature_layer], batch_size=batch_size, device=device,
                               desc=name, num_workers=num_workers)[feature_layer].flatten(1)
             for name, data in sets.items()}
    fc = get_layer(model, head)
    weight, bias = fc.weight.detach().cpu(), fc.bias.detach().cpu()
    train = feats[TRAIN_SET]
    react_threshold = (shaping.fit_react_threshold(train, 90) if baselines.react_clip is None
                       else baselines.react_clip)
    dice_mask = scores.fit_dice_mask(weight, train.mean(0), baselines.dice_percentile)
    p, c = baselines.dice_react
    return Context(
        model=model, sets=sets, y_train=benchmark.y_train, y_test=benchmark.y_test, features=feats,
        weight=weight, bias=bias, react_threshold=react_threshold, dice_mask=dice_mask, baselines=baselines,
        dice_react_mask=(dice_mask if p == baselines.dice_percentile
                         else scores.fit_dice_mask(weight, train.mean(0), p)),
        dice_react_threshold=react_threshold if c is None else c,
        feature_layer=feature_layer, batch_size=batch_size, device=device, sanity_sets=tuple(getattr(benchmark, "sanity", ())),
        num_workers=num_workers, replay_limit=replay_limit, mahalanobis_n_val=mahalanobis_n_val)


def method_hooks(method: Method, ctx: Context, set_name: str) -> list[tuple[str, object]]:
    """(placement, function) pairs in the order the network applies them: ReAct clipping of the
    penultimate features, ASH at its placement (after the clip when both act on the same layer)."""
    hooks = []
    if method.react:
        clip = ctx.dice_react_threshold if method.dice else ctx.react_threshold
        hooks.append((ctx.feature_layer, shaping.make_shaper("react", threshold=clip)))
    if method.shaping != "none":
        placement = method.placement or ctx.feature_layer
        entry = registry.shaping(method.shaping)
        kwargs = {}
        if entry.seeded:
            kwargs["generator"] = rand_generator(method.seed, set_name)
        if method.threshold == "global":
            shape = functools.partial(entry.shape, threshold=ctx.global_threshold(placement, method.percentile),
                                      **kwargs)
        else:
            shape = functools.partial(entry.shape, percentile=method.percentile, **kwargs)
        hooks.append((placement, shape))
    return hooks


def _compose(hooks):
    def apply(x):
        for _, fn in hooks:
            x = fn(x)
        return x
    return apply


def rand_generator(seed: int, set_name: str) -> torch.Generator:
    """The generator a seeded shaping (ASH-RAND) of seed ``seed`` draws from on the set ``set_name``: one
    stream per seed and set, so that a set's draws do not depend on which sets were scored before it. To
    reproduce a table's ASH-RAND row by hand, draw from this."""
    return torch.Generator().manual_seed(seed * 7919 + zlib.crc32(set_name.encode()))


def method_logits(method: Method, ctx: Context, set_name: str) -> Tensor:
    """The logits the deployed network (with the method's shaping, ReAct and DICE) outputs on one set,
    computed by :func:`_logits` and kept in ``ctx.logits`` (:meth:`Context.keep_logits`): asking again
    returns the same tensor, which callers must not change in place. :func:`evaluate` computes the
    logits of a p-sweep together instead (:func:`share_sweeps`), equal up to the order of float64
    additions; those are used by the call that computed them only."""
    key = (method, set_name)
    logits = ctx.logits.get(key)
    if logits is None:
        logits = _logits(method, ctx, set_name)
        ctx.keep_logits(key, logits)
    return logits


def _logits(method: Method, ctx: Context, set_name: str) -> Tensor:
    """:func:`method_logits` computed, every time: from the cached features where every hook acts on
    the feature layer, else the network's tail replayed from a cached layer output, or the whole
    network streamed where that output would not fit :attr:`Context.replay_limit`."""
    hooks = method_hooks(method, ctx, set_name)
    weight = ctx.weight
    if method.dice:
        weight = weight * (ctx.dice_react_mask if method.react else ctx.dice_mask)
    if all(p == ctx.feature_layer for p, _ in hooks):
        return _compose(hooks)(ctx.features[set_name]) @ weight.T + ctx.bias
    if method.dice:
        raise ParameterError(f"dice=True with placement={method.placement!r} is not allowed: DICE is "
                             f"evaluated on the feature layer {ctx.feature_layer!r} only.")
    start = replay_start(ctx.model, [p for p, _ in hooks])
    if not ctx.replays(start, set_name):  # e.g. ResNet-50's stem on 50,000 images: 40 GB; stream instead
        return _streamed_logits(hooks, ctx, set_name)
    return run_after(ctx.model, start, ctx.layer_output(start, set_name), hooks, batch_size=ctx.batch_size,
                     device=ctx.device)


@torch.no_grad()
def _streamed_logits(hooks, ctx: Context, set_name: str) -> Tensor:
    """The logits of the whole network with ``hooks`` attached, batch by batch from the images."""
    model, was_training = ctx.model.to(ctx.device), ctx.model.training
    model.eval()
    out = []
    try:
        with shaping_at_each(model, hooks):
            for xb in batches(ctx.sets[set_name], ctx.batch_size, ctx.num_workers, ctx.device):
                out.append(model(xb.to(ctx.device, non_blocking=True)).float().cpu())
    finally:
        model.train(was_training)
    return torch.cat(out)


def method_outputs(method: Method, ctx: Context, set_name: str) -> tuple[Tensor, Tensor]:
    """(scores, logits) of ``method`` on one set; higher scores = more in-distribution. The score is
    its registry entry's, given the shaped logits and what the entry fitted (:meth:`Context.fitted`)."""
    logits = method_logits(method, ctx, set_name)
    return registry.score(method.score).score(ctx, method, set_name, logits, ctx.fitted(method)), logits


def _sweepable(method: Method, ctx: Context) -> bool:
    """ASH-P/B/S with a local threshold on the feature layer, nothing else: :func:`shaping.sweep`'s case."""
    return (method.shaping in ("ash_p", "ash_b", "ash_s") and method.threshold == "local"
            and method.placement in (None, ctx.feature_layer) and not method.react and not method.dice)


def share_sweeps(methods: list[Method], ctx: Context, sets: list[str]) -> dict[tuple[Method, str], Tensor]:
    """The logits of every sweepable method (:func:`_sweepable`) on ``sets``, ``{(method, set): logits}``,
    from one sort per set (:func:`ashlib.methods.shaping.sweeps`) instead of one selection per method.
    Methods alone of their shaping are left out. Nothing is kept in ``ctx``: the caller uses them."""
    groups: dict[str, list[Method]] = {}
    for m in dict.fromkeys(methods):
        if _sweepable(m, ctx):
            groups.setdefault(m.shaping, []).append(m)
    groups = {name: ms for name, ms in groups.items() if len(ms) >= 2}
    shared = {}
    for set_name in sets if groups else ():
        logits = shaping.sweeps(ctx.features[set_name], {name: [m.percentile for m in ms]
                                                         for name, ms in groups.items()},
                                then=lambda h: h @ ctx.weight.T + ctx.bias)
        for name, ms in groups.items():
            for m, z in zip(ms, logits[name]):
                shared[(m, set_name)] = z
    return shared


@torch.no_grad()
def share_placements(methods: list[Method], ctx: Context, sets: list[str]) -> dict[tuple[Method, str], Tensor]:
    """The logits of every method placed inside the network (before the feature layer) on ``sets``,
    ``{(method, set): logits}``, in one pass over each set per replay start
    (:func:`ashlib.assets.features.replay_start`): each batch runs the network up to that layer once, then
    every method's shaping and the rest of the network, batch by batch. Methods alone of their replay
    start are left out. Nothing is kept in ``ctx``, no layer output either, whatever its size."""
    inner = [m for m in dict.fromkeys(methods)
             if m.placement not in (None, ctx.feature_layer) and not m.dice]
    names = top_level(ctx.model)
    model, was_training = ctx.model.to(ctx.device), ctx.model.training
    model.eval()
    shared = {}
    try:
        for set_name in sets:
            groups: dict[str | None, list[tuple[Method, list]]] = {}
            for m in inner:
                hooks = method_hooks(m, ctx, set_name)
                groups.setdefault(replay_start(model, [p for p, _ in hooks]), []).append((m, hooks))
            for start, group in groups.items():
                if len(group) < 2:
                    continue
                head = nn.Sequential(*[model.get_submodule(n) for n in names[:names.index(start) + 1]]) \
                    if start is not None else nn.Identity()
                parts: list[list[Tensor]] = [[] for _ in group]
                for xb in ctx.batches(set_name):
                    h = head(xb)
                    for part, (_, hooks) in zip(parts, group):
                        part.append(run_after(model, start, h, hooks, batch_size=len(h), device=ctx.device))
                for (m, _), part in zip(group, parts):
                    shared[(m, set_name)] = torch.cat(part)
    finally:
        model.train(was_training)
    return shared


def _shared(methods: list[Method], ctx: Context, sets: list[str], share: bool) -> dict[tuple[Method, str], Tensor]:
    """The logits :func:`share_sweeps` and :func:`share_placements` compute together (none without
    ``share``), for one call of the engine to take, each once (:func:`_take_logits`)."""
    return {**share_sweeps(methods, ctx, sets), **share_placements(methods, ctx, sets)} if share else {}


def _take_logits(shared: dict, method: Method, ctx: Context, set_name: str) -> Tensor:
    """The logits of ``method`` on ``set_name`` that ``shared`` holds for this call, dropped from it as
    they are handed over (so that a grid's shared logits are freed one by one, not held to the end),
    else :func:`method_logits`."""
    logits = shared.pop((method, set_name), None)
    return method_logits(method, ctx, set_name) if logits is None else logits


def evaluate(methods: list[Method], ctx: Context, convention: str = "paper",
             progress: bool = True, aupr: str = metrics.DEFAULT_AUPR, share: bool = True,
             intervals: int | None = None) -> pd.DataFrame:
    """Tidy results: one row per (method, OOD set) and an "Average" row per method (paper Tables 2/3).

    Rows per method: the paper-like OOD sets, their "Average", then the sanity-check sets (reported
    apart, not averaged). FPR95 in ``convention`` (:data:`ashlib.stats.metrics.FPR_CONVENTIONS`), AUPR-In/Out
    by ``aupr`` (:data:`ashlib.stats.metrics.AUPR_METHODS`); both default to the official code's. Each
    method's rows are kept in ``ctx.rows``, so asking again (e.g. for a chapter's claims) costs nothing.
    ``share``: the methods of a p-sweep share one sort per set (:func:`share_sweeps`) and those placed
    inside the network one pass per set (:func:`share_placements`); the numbers are the same.
    ``intervals``: a number of bootstrap resamples of the test images: every metric, ID accuracy
    included, then gets its 95% interval (columns ``<metric>_lo`` and ``<metric>_hi``;
    :func:`ashlib.stats.uncertainty.set_replicates`: the ID resamples shared by every set, so the "Average"
    row's interval is the interval of the mean). The resamples are seeded alike for every method, so
    a method's interval does not depend on the others evaluated with it.
    """
    if intervals is not None:
        check_positive_int("intervals", intervals)
        if aupr != "trapezoid":
            raise ParameterError(f"aupr={aupr!r} with intervals={intervals} is not allowed: expected the official "
                                 "'trapezoid' (the bootstrap recomputes ashlib.stats.metrics.ood_metrics_many's metrics).")
    key = (convention, aupr) + ((intervals,) if intervals is not None else ())
    todo = list(dict.fromkeys(m for m in methods if (m, *key) not in ctx.rows))
    shared = _shared(todo, ctx, [ID_SET, *ctx.ood_sets], share)
    for method, rows in zip(todo, _evaluate_many(todo, ctx, convention, aupr, progress, intervals, shared)):
        ctx.rows[(method, *key)] = rows
        if intervals is not None:  # the same rows without bounds: a later call without intervals reuses them
            ctx.rows[(method, convention, aupr)] = [
                {k: v for k, v in r.items() if not k.endswith(("_lo", "_hi"))} for r in rows]
    return pd.DataFrame([row for m in methods for row in ctx.rows[(m, *key)]])


#: Logits held back to be scored together (:func:`_evaluate_many`), at most this many bytes at once.
BATCHED_LOGITS_BYTES = 2**26


def _evaluate_many(methods: list[Method], ctx: Context, convention: str, aupr: str, progress: bool,
                   intervals: int | None = None, shared: dict | None = None) -> list[list[dict]]:
    """Each method's rows (:func:`_method_rows`), the metrics of all methods on a set taken at once
    (:func:`ashlib.stats.metrics.ood_metrics_many`, equal to one method at a time). Scores of the logits
    alone (:attr:`ashlib.methods.detector.Score.of_logits`) are computed for many methods in one call.
    ``shared``: logits computed together for this call (:func:`_shared`), taken as each method needs them;
    the scores and ID predictions are kept in ``ctx.scores`` and ``ctx.predictions``."""
    shared = {} if shared is None else shared
    if not methods:
        return []
    sets = [ID_SET, *ctx.ood_sets]
    scores: dict[str, list] = {name: [None] * len(methods) for name in sets}
    held: dict[tuple, list[tuple[int, Tensor]]] = {}  # (score, set, dtype, device) -> [(method, logits)]
    held_bytes = 0
    id_acc, id_pred = [], []
    for i, method in enumerate(tqdm(methods, desc="methods", disable=not progress)):
        entry = registry.score(method.score)
        for name in sets:
            logits = _take_logits(shared, method, ctx, name)
            if entry.of_logits is None:
                scores[name][i] = _as_numpy(entry.score(ctx, method, name, logits, ctx.fitted(method)))
            else:
                held.setdefault((method.score, name, logits.dtype, logits.device), []).append((i, logits))
                held_bytes += logits.numel() * logits.element_size()
            if name == ID_SET:
                id_acc.append(100 * metrics.accuracy(logits, ctx.y_test))
                id_pred.append(_as_numpy(logits).argmax(axis=1))
        if held_bytes > BATCHED_LOGITS_BYTES or i == len(methods) - 1:
            _score_held(held, scores)
            held, held_bytes = {}, 0
    s_id = np.stack(scores[ID_SET])
    per_set = {name: metrics.ood_metrics_many(s_id, np.stack(scores[name]), convention=convention, aupr=aupr)
               for name in ctx.ood_sets}
    for i, method in enumerate(methods):  # kept, so that intervals and differences need no network again
        for name in sets:
            ctx.scores[(method, name)] = scores[name][i]
        ctx.predictions[method] = id_pred[i]
    bounds = _bounds(methods, scores, ctx, convention, intervals) if intervals is not None else None
    out = []
    for i, method in enumerate(methods):
        rows = {name: dict(ood_set=name, **{k: float(v[i]) for k, v in values.items()})
                for name, values in per_set.items()}
        out.append(_method_rows(method, ctx, rows, id_acc[i], bounds[i] if bounds else None))
    return out


def _bounds(methods: list[Method], scores: dict[str, list], ctx: Context, convention: str,
            n_resamples: int) -> list[dict[str, dict[str, float]]]:
    """Per method, ``{set or "Average" or "ID": {"<metric>_lo": ..., "<metric>_hi": ...}}``: 95% bootstrap
    intervals over the test images (:func:`ashlib.stats.uncertainty.set_replicates`, seed 0; ID accuracy's
    from the predictions ``ctx.predictions`` holds, :func:`accuracy_replicates`). The replicates are kept in
    ``ctx.replicates`` for :func:`differences`."""
    reps = uncertainty.set_replicates(scores[ID_SET], {name: scores[name] for name in ctx.ood_sets},
                                      n_resamples, seed=0, convention=convention)

    def bounds_of(replicates: dict[str, np.ndarray]) -> dict[str, float]:
        return {f"{m}_{end}": value for m in uncertainty.METRICS
                for end, value in zip(("lo", "hi"), uncertainty.interval(replicates[m]))}

    out = []
    for i, method in enumerate(methods):
        ctx.replicates[(method, convention, n_resamples)] = {name: reps[name][i] for name in ctx.ood_sets}
        per_set = {name: bounds_of(reps[name][i]) for name in ctx.ood_sets}
        per_set["Average"] = bounds_of({m: np.mean([reps[name][i][m] for name in ctx.averaged_sets], axis=0)
                                        for m in uncertainty.METRICS})
        acc = uncertainty.interval(accuracy_replicates(method, ctx, n_resamples))
        per_set["ID"] = {"ID acc_lo": acc[0], "ID acc_hi": acc[1]}
        out.append(per_set)
    return out


def method_scores(method: Method, ctx: Context, set_name: str) -> np.ndarray:
    """``method``'s per-image scores on ``set_name`` (higher = more ID), float64: those :func:`evaluate`
    kept in ``ctx.scores``, else computed (and kept there)."""
    def compute():
        check_choice("set_name", set_name, [ID_SET, *ctx.ood_sets])
        entry = registry.score(method.score)
        logits = method_logits(method, ctx, set_name)
        return _as_numpy(entry.of_logits(logits) if entry.of_logits is not None
                         else entry.score(ctx, method, set_name, logits, ctx.fitted(method)))
    return _kept(ctx.scores, (method, set_name), compute)


def _contexts(ctx) -> list[Context]:
    """One context, or one per training seed of the same network: a non-empty list of them."""
    contexts = list(ctx) if isinstance(ctx, (list, tuple)) else [ctx]
    if not contexts or not all(isinstance(c, Context) for c in contexts):
        raise ParameterError(f"ctx={ctx!r} is not allowed: expected a Context or a non-empty list of them (one per "
                             "training seed).")
    return contexts


def replicate_table(methods: list[Method], ctx: Context, quantity: str = "AUROC", convention: str = "paper",
                    n_resamples: int = INTERVAL_RESAMPLES, set_name: str = "Average",
                    labels: list[str] | None = None) -> pd.DataFrame:
    """Each method's ``quantity`` (a metric of :data:`ashlib.stats.uncertainty.METRICS` or ``"ID acc"``) on
    ``set_name`` (an OOD set, or "Average": the mean over the paper-like sets), as a column: row 0 its
    value on all test images, rows 1..``n_resamples`` its bootstrap replicates over them, the same
    resamples for every method (those of :func:`evaluate`'s intervals, kept in ``ctx.replicates``), so that a
    difference of two columns is the paired bootstrap of the difference. Columns: ``labels`` (default
    the methods' labels). "ID acc" needs no OOD metric: only the ID predictions are resampled."""
    check_choice("quantity", quantity, (*uncertainty.METRICS, "ID acc"))
    check_choice("set_name", set_name, ["Average", *ctx.ood_sets])
    labels = [m.label for m in methods] if labels is None else list(labels)
    if len(labels) != len(methods):
        raise ParameterError(f"labels with {len(labels)} names is not allowed: expected one per method "
                             f"({len(methods)}).")
    if quantity == "ID acc":
        point = id_accuracy(methods, ctx, progress=False)["ID acc"].to_numpy()
        columns = [np.r_[value, accuracy_replicates(m, ctx, n_resamples)] for m, value in zip(methods, point)]
    else:
        evaluate(methods, ctx, convention, progress=False)  # the values, and the scores kept in ctx.scores
        kept = _metric_replicates(methods, ctx, quantity, convention, n_resamples)
        columns = []
        for m, reps in zip(methods, kept):
            rows = ctx.rows[(m, convention, metrics.DEFAULT_AUPR)]
            value = next(r[quantity] for r in rows if r["ood_set"] == set_name)
            names = ctx.averaged_sets if set_name == "Average" else [set_name]
            columns.append(np.r_[value, np.mean([reps[name] for name in names], axis=0)])
    return pd.DataFrame(np.column_stack(columns), columns=labels).rename_axis("draw")


def _metric_replicates(methods: list[Method], ctx: Context, metric: str, convention: str,
                       n_resamples: int) -> list[dict[str, np.ndarray]]:
    """Per method, ``{set: replicates of metric}`` on the resamples of :func:`evaluate`'s intervals (seed
    0, a stream per set in ``ctx.ood_sets``' order): those evaluate kept, else ``metric`` alone
    resampled for the methods that lack it (the same resamples: :func:`ashlib.stats.uncertainty.set_replicates`
    draws them whatever the metrics), kept in ``ctx.replicates`` too."""
    def kept(m):
        full = ctx.replicates.get((m, convention, n_resamples))
        if full is not None:
            return {name: by_metric[metric] for name, by_metric in full.items()}
        return ctx.replicates.get((m, convention, n_resamples, metric))

    missing = [m for m in dict.fromkeys(methods) if kept(m) is None]
    if missing:
        reps = uncertainty.set_replicates([method_scores(m, ctx, ID_SET) for m in missing],
                                          {name: [method_scores(m, ctx, name) for m in missing] for name in ctx.ood_sets},
                                          n_resamples, seed=0, convention=convention, metrics_wanted=(metric,))
        for k, m in enumerate(missing):
            ctx.replicates[(m, convention, n_resamples, metric)] = {name: reps[name][k][metric]
                                                                    for name in ctx.ood_sets}
    return [kept(m) for m in methods]


def accuracy_replicates(method: Method, ctx: Context, n_resamples: int = INTERVAL_RESAMPLES) -> np.ndarray:
    """``method``'s ID accuracy (percent) on ``n_resamples`` bootstrap resamples of the ID test images
    (:func:`ashlib.stats.uncertainty.accuracy_replicates`, seed 0: the same resamples for every method), kept
    in ``ctx.id_accuracy_replicates`` (:func:`evaluate`'s intervals keep the same), from the predictions
    ``ctx.predictions`` keeps."""
    def compute():
        pred = _kept(ctx.predictions, method, lambda: _as_numpy(method_logits(method, ctx, ID_SET)).argmax(axis=1))
        return uncertainty.accuracy_replicates(pred, _as_numpy(ctx.y_test), n_resamples, seed=0)
    return _kept(ctx.id_accuracy_replicates, (method, n_resamples), compute)


def across_seeds(tables: list[pd.DataFrame], n_resamples: int = INTERVAL_RESAMPLES, seed: int = 0) -> pd.DataFrame:
    """:func:`replicate_table`'s of the same columns from networks trained with different seeds, as one:
    row 0 the mean of their row 0 (the mean over seeds), rows 1..``n_resamples`` the hierarchical
    bootstrap over seeds, then images (:func:`ashlib.stats.uncertainty.over_seeds`). The draws depend on the
    number of seeds and rows only, so tables combined with the same ``seed`` stay paired."""
    if not tables:
        raise ParameterError("tables is empty: expected one replicate table per training seed.")
    columns = list(tables[0].columns)
    if any(list(t.columns) != columns for t in tables):
        raise ParameterError(f"tables with columns {[list(t.columns) for t in tables]} are not allowed: expected "
                             "the same columns for every seed.")
    if len(tables) == 1:
        return tables[0]
    point = np.mean([t.to_numpy()[0] for t in tables], axis=0)
    reps = uncertainty.over_seeds([t.to_numpy()[1:] for t in tables], n_resamples, seed)
    return pd.DataFrame(np.vstack([point, reps]), columns=columns).rename_axis("draw")


def differences(methods: list[Method], reference: Method, ctx, metric: str = "AUROC",
                convention: str = "paper", n_resamples: int = INTERVAL_RESAMPLES) -> pd.DataFrame:
    """Each method's "Average" ``metric`` minus ``reference``'s, with a 95% interval and a verdict on
    "the method is better" (:func:`ashlib.stats.uncertainty.verdict`; lower is better for FPR95). ``ctx``: one
    context (the paired bootstrap over its test images, :func:`replicate_table`) or one per training
    seed of the network (the difference of the means over seeds, its interval by the hierarchical
    bootstrap, :func:`across_seeds`). One row per method: ``method, difference, lo, hi, verdict``."""
    check_choice("metric", metric, uncertainty.METRICS)
    every = list(dict.fromkeys([reference, *methods]))
    table = across_seeds([replicate_table(every, c, metric, convention, n_resamples)
                          for c in _contexts(ctx)], n_resamples)
    rows = []
    for method in methods:
        effect = (table[method.label] - table[reference.label]).to_numpy()
        lo, hi = uncertainty.interval(effect[1:])
        rows.append(dict(method=method.label, difference=float(effect[0]), lo=lo, hi=hi,
                         verdict=uncertainty.verdict(lo, hi, claim="<" if metric == "FPR95" else ">")))
    return pd.DataFrame(rows)


def seed_results(methods: list[Method], ctx, convention: str = "paper",
                 n_resamples: int = INTERVAL_RESAMPLES) -> pd.DataFrame:
    """:func:`evaluate`'s rows (with intervals) over several training seeds of the network: ``ctx`` one
    context per seed. Each metric is the mean over the seeds, ``<metric>_sd`` its standard deviation
    across them (ddof 1; 0 for one seed), ``<metric>_lo``/``_hi`` the 95% interval of the hierarchical
    bootstrap over seeds, then images (:func:`across_seeds`); ``seeds``: their number."""
    contexts = _contexts(ctx)
    per_seed = [evaluate(methods, c, convention, progress=False, intervals=n_resamples) for c in contexts]
    names = [*uncertainty.METRICS, "ID acc"]
    values = np.stack([r[names].to_numpy(dtype=np.float64) for r in per_seed])
    out = per_seed[0].drop(columns=[*names, *interval_columns(names)]).copy()
    for k, name in enumerate(names):
        out[name] = values[:, :, k].mean(axis=0)
        out[f"{name}_sd"] = values[:, :, k].std(axis=0, ddof=1) if len(contexts) > 1 else 0.0
    unique = list(dict.fromkeys(methods))
    for set_name in dict.fromkeys(out["ood_set"]):  # one table per set and metric, a column per method
        at = out["ood_set"] == set_name
        for name in names:
            where = "Average" if name == "ID acc" else set_name
            reps = across_seeds([replicate_table(unique, c, name, convention, n_resamples, where) for c in contexts],
                                n_resamples).to_numpy()[1:]
            bounds = dict(zip((m.label for m in unique), (uncertainty.interval(reps[:, k]) for k in range(len(unique)))))
            out.loc[at, f"{name}_lo"] = [bounds[label][0] for label in out.loc[at, "method"]]
            out.loc[at, f"{name}_hi"] = [bounds[label][1] for label in out.loc[at, "method"]]
    out["seeds"] = len(contexts)
    return out


def _score_held(held: dict[tuple, list[tuple[int, Tensor]]], scores: dict[str, list]) -> None:
    """Score the held logits, one call per (score, set, dtype, device): a score of the logits alone
    treats each row on its own, so the values are the same as one call per method and set."""
    for (score, name, _, _), items in held.items():
        values = _as_numpy(registry.score(score).of_logits(torch.cat([logits for _, logits in items])))
        for (i, _), v in zip(items, np.split(values, np.cumsum([len(logits) for _, logits in items])[:-1])):
            scores[name][i] = v


def _as_numpy(scores) -> np.ndarray:
    return scores.detach().cpu().to(torch.float64).numpy() if isinstance(scores, Tensor) else np.asarray(scores, float)


def _method_rows(method: Method, ctx: Context, per_set: dict[str, dict], id_acc: float,
                 bounds: dict[str, dict[str, float]] | None = None) -> list[dict]:
    """A method's rows: the averaged sets, their "Average", then the sanity-check sets; with ``bounds``
    (:func:`_bounds`) each row's interval columns after its metrics."""
    averaged = [per_set[name] for name in ctx.averaged_sets]
    columns = [c for c in averaged[0] if c != "ood_set"]
    # what DataFrame.mean() computes, to the last bit (numpy's sum along each column's contiguous values,
    # then / their number), without building a DataFrame per method
    means = np.array([[r[c] for r in averaged] for c in columns], dtype=np.float64).sum(axis=1) / len(averaged)
    avg = dict(zip(columns, means.tolist()))
    ordered = [*averaged, dict(ood_set="Average", **avg), *(per_set[n] for n in ctx.sanity_sets)]
    if bounds is not None:
        ordered = [{**r, **bounds[r["ood_set"]]} for r in ordered]
    return [dict(method=method.label, family=method.family, score=method.score, shaping=method.shaping,
                 percentile=method.percentile,
                 threshold=method.threshold if method.shaping != "none" else None,
                 placement=method.placement or ctx.feature_layer, react=method.react, dice=method.dice,
                 seed=method.seed, **r, **{"ID acc": id_acc}, **(bounds["ID"] if bounds else {})) for r in ordered]


def id_accuracy(methods: list[Method], ctx: Context, progress: bool = True,
                intervals: int | None = None) -> pd.DataFrame:
    """ID test accuracy (percent) of each method: the y-axis of the paper's Figures 3 and 5 (kept in
    ``ctx.id_accuracies`` like :func:`evaluate`'s rows, with each method's predictions). ``intervals``: a number
    of bootstrap resamples of the ID test images; each row then gets its 95% interval (``ID acc_lo``,
    ``ID acc_hi``; :func:`accuracy_replicates`, the same resamples as :func:`evaluate`'s)."""
    if intervals is not None:
        check_positive_int("intervals", intervals)
    shared = _shared([m for m in methods if m not in ctx.id_accuracies], ctx, [ID_SET], share=True)
    rows = []
    for m in tqdm(methods, desc="ID accuracy", disable=not progress):
        if m not in ctx.id_accuracies:
            logits = _take_logits(shared, m, ctx, ID_SET)
            ctx.id_accuracies[m] = 100 * metrics.accuracy(logits, ctx.y_test)
            ctx.predictions.setdefault(m, _as_numpy(logits).argmax(axis=1))
        bounds = {}
        if intervals is not None:
            bounds = dict(zip(("ID acc_lo", "ID acc_hi"), uncertainty.interval(accuracy_replicates(m, ctx, intervals))))
        rows.append(dict(method=m.label, family=m.family, shaping=m.shaping, percentile=m.percentile,
                         placement=m.placement or ctx.feature_layer, **{"ID acc": ctx.id_accuracies[m]}, **bounds))
    return pd.DataFrame(rows)


def kept_scores(ctx: Context) -> dict[str, np.ndarray]:
    """Every per-image score and ID prediction ``ctx`` keeps (``ctx.scores``, ``ctx.predictions``), by
    name: ``"<method>/<set>"`` (higher = more ID) and ``"<method>/ID prediction"``, plus ``"ID labels"``:
    what intervals and differences are recomputed from without running a network
    (:func:`ashlib.stats.uncertainty.set_replicates`). A method is named by its label, and by its seed
    too where it has one (ASH-RAND)."""
    def name(method: Method) -> str:
        seeded = method.shaping != "none" and registry.shaping(method.shaping).seeded
        return method.label + (f" (seed {method.seed})" if seeded else "")

    out = {"ID labels": _as_numpy(ctx.y_test).astype(np.int64)}
    for (method, set_name), value in ctx.scores.items():
        out[f"{name(method)}/{set_name}"] = np.asarray(value, dtype=np.float64)
    for method, value in ctx.predictions.items():
        out[f"{name(method)}/ID prediction"] = np.asarray(value, dtype=np.int64)
    return out


def interval_columns(names=(*uncertainty.METRICS, "ID acc")) -> list[str]:
    """The bounds :func:`evaluate` adds with ``intervals=`` for the metrics ``names``, in order:
    ``["<name>_lo", "<name>_hi", ...]``."""
    return [f"{name}_{end}" for name in names for end in ("lo", "hi")]


def wide_table(results: pd.DataFrame, metrics_shown=("FPR95", "AUROC", "AUPR-In")) -> pd.DataFrame:
    """Paper layout: methods as rows, (OOD set, metric) as columns, 'Average' last."""
    sets = list(dict.fromkeys(results["ood_set"]))
    table = results.pivot_table(index="method", columns="ood_set", values=list(metrics_shown), sort=False)
    table = table.swaplevel(0, 1, axis=1).reindex(columns=pd.MultiIndex.from_product([sets, metrics_shown]))
    return table.loc[list(dict.fromkeys(results["method"]))]
