"""The profiles and checks for the papermill parameters of every notebook: fail at once, with one
clear message.

A *profile* (``profiles/<name>.yaml``, :func:`load_profile`) holds parameters for every notebook;
:mod:`ashlib.book.pipeline` runs the notebooks with them. Each notebook's parameters are declared once, in
its chapter's ``Parameters`` (:mod:`ashlib.book.chapters`), with the checks of :data:`accepts`;
:func:`check_parameters` checks them all: each notebook's second cell does, and ``python -m ashlib run``
does for every notebook before any starts. :func:`check_run_parameters`
checks the settings :func:`ashlib.book.runs.prepare` receives. Which networks a benchmark takes is
:func:`ashlib.assets.models.model_for`.
"""
from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import yaml

from ashlib._checks import (MAX_INT64, MAX_SEED, ParameterError, check_choice, check_percentile,  # noqa: F401
                            check_positive_int, check_seed)

# torch and the modules that import it are imported by the checks that need them, so that a bad value
# of most parameters is refused before they load (well under a second)


def _data():
    from ashlib.assets import data

    return data


def model_for(benchmark: str, model: str | None) -> str:
    """:func:`ashlib.assets.models.model_for` (imported when first needed)."""
    from ashlib.assets.models import model_for as _model_for

    return _model_for(benchmark, model)


def _fpr_conventions():
    from ashlib.stats.metrics import FPR_CONVENTIONS

    return FPR_CONVENTIONS

PROFILES = Path(__file__).resolve().parents[2] / "profiles"


def profiles() -> list[str]:
    """Names of the profiles in ``profiles/``."""
    return sorted(p.stem for p in PROFILES.glob("*.yaml"))


def load_profile(name: str) -> dict:
    """A profile as a dict with ``device``, ``defaults`` and ``notebooks``."""
    check_choice("profile", name, profiles())
    profile = yaml.safe_load((PROFILES / f"{name}.yaml").read_text()) or {}
    profile.setdefault("defaults", {})
    profile.setdefault("notebooks", {})
    return profile


def check_device(device: str) -> str:
    """'cpu', 'cuda' or 'cuda:N' (when CUDA is present), or 'mps'; never falls back silently."""
    if not isinstance(device, str) or not re.fullmatch(r"cpu|mps|cuda(:\d+)?", device):
        raise ParameterError(f"device={device!r} is not allowed: expected 'cpu', 'cuda', 'cuda:N' or 'mps'.")
    if not (device.startswith("cuda") or device == "mps"):
        return device
    import torch

    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ParameterError(f"device={device!r} is not available: torch.cuda.is_available() is False here; "
                             "use --device cpu (-p device cpu for one notebook; device='cpu' in Python).")
    if device == "mps" and not torch.backends.mps.is_available():
        raise ParameterError("device='mps' is not available on this machine; use --device cpu (-p device cpu "
                             "for one notebook; device='cpu' in Python).")
    return device


def check_preprocessing(benchmark: str, preprocessing: str | None) -> str | None:
    """None (the benchmark's default) or one of :data:`ashlib.assets.data.PREPROCESSINGS`; paper scale: 'raw'."""
    if preprocessing is None:
        return None
    check_choice("preprocessing", preprocessing, _data().PREPROCESSINGS)
    if benchmark in _data().PAPER_BENCHMARKS and preprocessing != "raw":
        raise ParameterError(f"preprocessing={preprocessing!r} is not allowed for benchmark={benchmark!r}: "
                             "expected 'raw' or None (paper-scale sets get the ID preprocessing only).")
    return preprocessing


def check_compare(compare) -> list[str]:
    """Profiles whose benchmark a chapter's claims are also checked on: a list of profile names of
    embedded benchmarks (``profiles/*.yaml``), e.g. ``["embedded-raw", "fmnist"]``."""
    from ashlib.assets.data import EMBEDDED_BENCHMARKS

    if not isinstance(compare, (list, tuple)):
        raise ParameterError(f"compare={compare!r} is not allowed: expected a list of profile names.")
    for i, name in enumerate(compare):
        check_choice(f"compare[{i}]", name, profiles())
        bench = (load_profile(name)["defaults"] or {}).get("benchmark", "mnist5k")
        if bench not in EMBEDDED_BENCHMARKS:
            raise ParameterError(f"compare[{i}]={name!r} is not allowed: its benchmark {bench!r} is not an "
                                 f"embedded one; expected a profile of {', '.join(EMBEDDED_BENCHMARKS)}.")
    return list(compare)


def check_run_parameters(*, benchmark: str, model: str | None, device: str, batch_size: int, seed: int,
                         fpr_convention: str = "paper", seeds=(), preprocessing: str | None = None,
                         compare=(), **percentiles) -> None:
    """Validate a notebook's parameters cell; raises :class:`ParameterError` naming the first bad one.

    Every extra keyword is a percentile in [0, 100], ``None`` (use the paper's choice), or a list
    of percentiles (a sweep); ``seeds`` is a list of seeds (ASH-RAND repetitions); ``preprocessing``
    see :func:`check_preprocessing`; ``compare`` see :func:`check_compare`.
    """
    model_for(benchmark, model)
    check_preprocessing(benchmark, preprocessing)
    check_compare(compare)
    check_device(device)
    check_positive_int("batch_size", batch_size)
    check_seed("seed", seed)
    for i, s in enumerate(seeds):
        check_seed(f"seeds[{i}]", s)
    for name, value in percentiles.items():
        if isinstance(value, (list, tuple)):
            for i, p in enumerate(value):
                check_percentile(f"{name}[{i}]", p)
        elif value is not None:
            check_percentile(name, value)
    check_choice("fpr_convention", fpr_convention, _fpr_conventions())




# ------------------------------------------------------------------ the checks of chapter parameters
#
# Each is check(name, value, params); a chapter declares its parameters with them (``accepts`` below,
# :mod:`ashlib.book.chapters`), and they run in the notebook's second cell and in ``python -m ashlib run``
# before any notebook starts, so a bad value fails at once, in well under a second, under its own name.


def ood_set_names(benchmark: str) -> tuple[str, ...]:
    """The OOD sets a benchmark has, by name (the keys of ``load_benchmark(benchmark).ood``)."""
    from ashlib.assets.data import CIFAR_OOD_SETS, FMNIST_OOD_SETS, IMAGENET_OOD_SETS, OOD_SETS

    return {"mnist5k": OOD_SETS, "fmnist": FMNIST_OOD_SETS, "cifar10": tuple(CIFAR_OOD_SETS),
            "cifar100": tuple(CIFAR_OOD_SETS), "imagenet": tuple(IMAGENET_OOD_SETS)}[benchmark]


def _fail(name, value, allowed: str) -> ParameterError:
    return ParameterError(f"{name}={value!r} is not allowed: expected {allowed}.")


def _is_int(value) -> bool:
    """An integer (not a bool) that fits in 64 bits: larger ones overflow torch and numpy."""
    return isinstance(value, int) and not isinstance(value, bool) and abs(value) <= MAX_INT64


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _list(name, value, what: str, item, empty: bool = False) -> None:
    """A list (or tuple) whose items pass ``item(f"{name}[i]", v)``; non-empty unless ``empty``."""
    if not isinstance(value, (list, tuple)) or (not value and not empty):
        raise _fail(name, value, f"a {'' if empty else 'non-empty '}list of {what}")
    for i, v in enumerate(value):
        item(f"{name}[{i}]", v)


def _items(ok, allowed: str):
    """An item check for :func:`_list`: ``ok(value)`` or a ParameterError saying ``allowed``."""
    def check(name, value) -> None:
        if not ok(value):
            raise _fail(name, value, allowed)
    return check


def _percentile(name, value, _params=None) -> None:
    check_percentile(name, value)


def _percentiles(name, value, _params=None) -> None:
    _list(name, value, "percentiles in [0, 100]", check_percentile)


def _optional_percentile(name, value, _params=None) -> None:
    if value is not None:
        check_percentile(name, value)


def _positive_int(name, value, _params=None) -> None:
    check_positive_int(name, value)


def _n_val(name, value, _params=None) -> None:
    check_positive_int(name, value)
    if value < 10:
        raise ParameterError(f"{name}={value!r} is not allowed: expected an integer >= 10 (half of them fit "
                             "the regression, half pick the magnitude).")


def _optional_positive_int(name, value, _params=None) -> None:
    if value is not None:
        check_positive_int(name, value)


def _subset(name, value, params) -> None:
    """n_train / n_test: None (the benchmark's own sizes) or a positive integer where the benchmark
    takes one (fmnist, paper scale; mnist5k's split is fixed by test_fraction)."""
    _optional_positive_int(name, value)
    if value is not None and params.get("benchmark") == "mnist5k":
        raise _fail(name, value, "None for benchmark='mnist5k' (its split is fixed); a positive integer for "
                    "fmnist or a paper-scale benchmark")


def _num_workers(name, value, _params=None) -> None:
    if value is not None and (not _is_int(value) or value < 0):
        raise _fail(name, value, "None (the machine's cores, at most 8) or an integer >= 0")


def _seed(name, value, _params=None) -> None:
    check_seed(name, value)


def _optional_str(name, value, _params=None) -> None:
    if value is not None and (not isinstance(value, str) or not value):
        raise _fail(name, value, "None or a non-empty string")


def _checkpoint(name, value, params) -> None:
    _optional_str(name, value)
    if value is None:
        return
    from ashlib.assets.models import PRETRAINED

    if model_for(params["benchmark"], params.get("model")) not in PRETRAINED:
        raise _fail(name, value, "None: checkpoint= is a weights file for the paper's pretrained networks ("
                    + ", ".join(PRETRAINED) + "); the small ResNets are trained and cached here")
    if not Path(value).expanduser().is_file():
        raise _fail(name, value, "the path of an existing weights file")


def _benchmark(name, value, _params=None) -> None:
    check_choice(name, value, _data().BENCHMARKS)


def _embedded_benchmark(name, value, _params=None) -> None:
    from ashlib.assets.data import EMBEDDED_BENCHMARKS

    if value not in EMBEDDED_BENCHMARKS:
        raise _fail(name, value, "one of " + ", ".join(repr(b) for b in EMBEDDED_BENCHMARKS)
                    + " (this chapter trains its own networks, which only the embedded benchmarks do)")


def _model(name, value, params) -> None:
    if value is not None and not isinstance(value, str):
        raise _fail(name, value, "None or a model name")
    model_for(params["benchmark"], value)


def _device(name, value, _params=None) -> None:
    check_device(value)


def _convention(name, value, _params=None) -> None:
    check_choice(name, value, _fpr_conventions())


def _preprocessing(name, value, params) -> None:
    check_preprocessing(params["benchmark"], value)


def _compare(name, value, _params=None) -> None:
    check_compare(value)


def _ood_set(name, value, params) -> None:
    check_choice(name, value, ood_set_names(params["benchmark"]))


def _placements(name, value, params) -> None:
    if value is None:
        return
    _list(name, value, "module names", _items(lambda v: isinstance(v, str) and v, "a module name"))
    from ashlib.assets.models import build_model, default_expansion

    network = model_for(params["benchmark"], params.get("model"))
    model = build_model(network, 10, width=params.get("width", 16),
                        expansion=default_expansion(network, params.get("expansion")))
    modules = dict(model.named_modules())
    for i, p in enumerate(value):
        if p not in modules:
            raise _fail(f"{name}[{i}]", p, "a module of the network, e.g. "
                        + ", ".join(m for m in modules if m.endswith("merge"))[:200] + ", avgpool")


def _nac_model(name, value, params) -> None:
    """A network of the benchmark (:func:`_model`) for which NAC has per-layer values."""
    _model(name, value, params)
    from ashlib.methods.nac import default_configs

    default_configs(params["benchmark"], value)


def _nac_layers(name, value, params) -> None:
    if value is None:
        return
    from ashlib.methods.nac import default_configs

    allowed = [c.layer for c in default_configs(params["benchmark"], params.get("model"))]
    _list(name, value, "NAC layers", lambda n, v: check_choice(n, v, allowed))


def _optional_ood_set(name, value, params) -> None:
    if value is not None:
        _ood_set(name, value, params)


def _n_fit(name, value, params) -> None:
    """NAC-UE's fitting images: at least one per class (:func:`ashlib.methods.nac.class_balanced_subset`)."""
    check_positive_int(name, value)
    classes = _data().NUM_CLASSES[params["benchmark"]]
    if value < classes:
        raise _fail(name, value, f"an integer >= {classes} (at least one image per class of "
                    f"benchmark={params['benchmark']!r})")


def _nac_search_set(name, value, params) -> None:
    """None, or an OOD set whose search needs ID validation images: training images left out of the
    ``n_fit`` fitting ones, so ``n_fit`` must be below the benchmark's training images."""
    _optional_ood_set(name, value, params)
    train = params.get("n_train") or _data().TRAIN_IMAGES.get(params["benchmark"])
    if value is not None and train is not None and params["n_fit"] >= train:
        raise ParameterError(f"{name}={value!r} is not allowed with n_fit={params['n_fit']!r}: the search needs "
                             f"training images left out of the fitting subset, and benchmark={params['benchmark']!r} "
                             f"has {train}; expected n_fit < {train}, or nac_search_set=None.")


def _snapshot_epochs(name, value, params) -> None:
    from ashlib.assets.models import TrainRecipe

    epochs = params.get("epochs", TrainRecipe.epochs)
    _list(name, value, f"epochs in [1, {epochs}]", _items(lambda v: _is_int(v) and 1 <= v <= epochs,
                                                           f"an integer in [1, {epochs}] (the training run's epochs)"))
    if len(set(value)) < 3:
        raise _fail(name, value, "at least 3 different epochs (NAC-ME is compared by rank correlation)")


def _shift_kind(name, value, _params=None) -> None:
    from ashlib.assets.data import SHIFTS

    check_choice(name, value, SHIFTS)


def _shift_amount(name, value, params) -> None:
    low, high = (-180, 180) if params.get("shift_kind") == "rotate" else (0.1, 10)
    if not _is_number(value) or not low <= value <= high:
        raise _fail(name, value, f"a number in [{low}, {high}] for shift_kind={params.get('shift_kind')!r}")


def _entropy_weights(name, value, _params=None) -> None:
    _list(name, value, "entropy weights >= 0", _items(lambda v: _is_number(v) and v >= 0, "a number >= 0"))


def _fractions(name, value, _params=None) -> None:
    _list(name, value, "fractions in [0, 1]", _items(lambda v: _is_number(v) and 0 <= v <= 1, "a number in [0, 1]"))


def _far_set(name, value, params) -> None:
    _ood_set(name, value, params)
    if value == params.get("near_set"):
        raise _fail(name, value, f"an OOD set other than near_set={params.get('near_set')!r}")


def _seeds(name, value, _params=None) -> None:
    _list(name, value, f"seeds (integers in [0, {MAX_SEED}])", check_seed)


def check_train_seeds(name: str, value) -> list[int]:
    """Seeds of a network's training: a non-empty list of different integers >= 0."""
    _list(name, value, f"different seeds (integers in [0, {MAX_SEED}])", check_seed)
    if len(set(value)) != len(value):
        raise _fail(name, value, "different seeds")
    return list(value)


def _train_seeds(name, value, params) -> None:
    """None (:func:`ashlib.book.runs.default_train_seeds`) or :func:`check_train_seeds`; a pretrained network
    has one, its own: ``[seed]``."""
    if value is None:
        return
    check_train_seeds(name, value)
    from ashlib.assets.models import TRAINABLE

    if model_for(params["benchmark"], params.get("model")) not in TRAINABLE and list(value) != [params["seed"]]:
        raise _fail(name, value, f"None or [{params['seed']}] (the seed): a pretrained network has one training seed")


def _candidates(name, value, _params=None) -> None:
    allowed = _data().PREPROCESSINGS
    _list(name, value, "preprocessings (" + ", ".join(allowed) + ")", lambda n, v: check_choice(n, v, allowed))


def _second_benchmark(name, value, params) -> None:
    from ashlib.assets.data import EMBEDDED_BENCHMARKS

    if value is not None:
        check_choice(name, value, [b for b in EMBEDDED_BENCHMARKS if b != params["benchmark"]])


def _scale_factors(name, value, _params=None) -> None:
    _list(name, value, "positive numbers", _items(lambda v: _is_number(v) and v > 0, "a positive number"))


def _assignment(name, value, _params=None) -> None:
    from ashlib.book.classroom import assignment_names  # the folders of assignments/

    if value not in assignment_names():
        raise _fail(name, value, f"one of {', '.join(map(repr, assignment_names()))}")


def _vit_width(name, value, _params=None) -> None:
    check_positive_int(name, value)
    if value % 4:
        raise _fail(name, value, "a positive multiple of 4 (the ViT's 4 attention heads share the width)")


def _expansion(name, value, _params=None) -> None:
    """None (the default network, chapter 00) or the units of the small ResNet's 1x1 expansion head (0: none)."""
    if value is not None and (not _is_int(value) or value < 0):
        raise _fail(name, value, "None (the book's default), 0 (no head) or a positive number of penultimate units")


def _units(name, value, params) -> None:
    """Penultimate units of the small ResNets compared (chapter *When does ASH help?*): different positive
    integers, each 8 * width (the network without a head) or at least 8 (a 1x1 expansion head)."""
    _list(name, value, "different positive numbers of units", _items(lambda v: _is_int(v) and v >= 8,
                                                                     "an integer >= 8 (penultimate units)"))
    if len(set(value)) != len(value):
        raise _fail(name, value, "different numbers of units")


def _train_seed_list(name, value, _params=None) -> None:
    check_train_seeds(name, value)


def _timeout(name, value, _params=None) -> None:
    if not (_is_number(value) and 0 < value <= 86400):
        raise _fail(name, value, "a positive number of seconds, at most 86400 (a day)")


#: The checks chapters declare their parameters with (:func:`ashlib.book.chapters.parameter`), by what
#: each accepts; each is ``check(name, value, values)`` and raises :class:`ParameterError`.
accepts = SimpleNamespace(
    percentile=_percentile, percentiles=_percentiles, optional_percentile=_optional_percentile,
    positive_int=_positive_int, n_val=_n_val, optional_positive_int=_optional_positive_int, subset=_subset,
    num_workers=_num_workers, seed=_seed, optional_str=_optional_str, checkpoint=_checkpoint,
    benchmark=_benchmark, embedded_benchmark=_embedded_benchmark, model=_model, device=_device,
    convention=_convention, preprocessing=_preprocessing, compare=_compare, ood_set=_ood_set,
    placements=_placements, nac_model=_nac_model, nac_layers=_nac_layers, n_fit=_n_fit,
    nac_search_set=_nac_search_set, snapshot_epochs=_snapshot_epochs, shift_kind=_shift_kind,
    shift_amount=_shift_amount, entropy_weights=_entropy_weights, fractions=_fractions, far_set=_far_set,
    seeds=_seeds, train_seeds=_train_seeds, candidates=_candidates, second_benchmark=_second_benchmark,
    scale_factors=_scale_factors, assignment=_assignment, vit_width=_vit_width, expansion=_expansion,
    units=_units, train_seed_list=_train_seed_list, timeout=_timeout)


def check_parameter(notebook: str, name: str, values) -> None:
    """Check parameter ``name`` of ``notebook`` alone, the other values of the mapping ``values`` as its
    context (a cross-parameter check reads them)."""
    from ashlib.book import chapters

    chapters.parameters(notebook).check_one(name, values)


def papermill_hint(name: str, value) -> str:
    """For a value that is text but reads as YAML of another type (``-p percentiles "[80, 90]"``, which
    papermill passes as the string), how to pass it; else ''."""
    if not isinstance(value, str):
        return ""
    try:
        meant = yaml.safe_load(value)
    except yaml.YAMLError:
        return ""
    if isinstance(meant, str):
        return ""
    return (f" It arrived as text, as papermill's -p passes it: write -y \"{name}: {value}\" with papermill, or "
            f"python -m ashlib run -p {name} '{value}' (read as YAML).")


def check_parameters(notebook: str, values, first=()):
    """Check every parameter of ``notebook`` (its chapter's ``Parameters``, :mod:`ashlib.book.chapters`),
    those named in ``first`` (what a user changed) first, then the others in their declared order,
    taking each value from the mapping ``values``; raise :class:`ParameterError` naming the first bad
    one by the notebook's own name. Returns the checked ``Parameters``."""
    from ashlib.book import chapters

    return chapters.parameters(notebook).check(values, first)
