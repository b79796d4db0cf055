"""Checks for the papermill parameters shared by every notebook: fail at once, with one clear message."""
from __future__ import annotations

import re

import torch

from ashlib._checks import ParameterError, check_choice, check_percentile, check_positive_int
from ashlib.data import BENCHMARKS, PAPER_BENCHMARKS, PREPROCESSINGS
from ashlib.metrics import FPR_CONVENTIONS
from ashlib.models import MODELS

#: The networks each benchmark is evaluated with (the first is the default); paper Table 1.
BENCHMARK_MODELS = {"mnist5k": ("smallresnet", "smallresnet_logsoftmax"),
                    "fmnist": ("smallresnet", "smallresnet_logsoftmax"),
                    "cifar10": ("densenet100",), "cifar100": ("densenet100",),
                    "imagenet": ("resnet50", "mobilenet_v2")}


def model_for(benchmark: str, model: str | None) -> str:
    """``model``, checked against the benchmark's networks; None picks the benchmark's default."""
    check_choice("benchmark", benchmark, BENCHMARKS)
    allowed = BENCHMARK_MODELS[benchmark]
    if model is None:
        return allowed[0]
    check_choice("model", model, MODELS)
    if model not in allowed:
        raise ParameterError(f"model={model!r} is not allowed for benchmark={benchmark!r}: expected one of "
                             + ", ".join(repr(m) for m in allowed) + " (or None for the default).")
    return model


def check_device(device: str) -> str:
    """'cpu', 'cuda' or 'cuda:N' (when CUDA is present), or 'mps'; never falls back silently."""
    if not isinstance(device, str) or not re.fullmatch(r"cpu|mps|cuda(:\d+)?", device):
        raise ParameterError(f"device={device!r} is not allowed: expected 'cpu', 'cuda', 'cuda:N' or 'mps'.")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ParameterError(f"device={device!r} is not available: torch.cuda.is_available() is False here; "
                             "use device='cpu'.")
    if device == "mps" and not torch.backends.mps.is_available():
        raise ParameterError("device='mps' is not available on this machine; use device='cpu'.")
    return device


def check_preprocessing(benchmark: str, preprocessing: str | None) -> str | None:
    """None (the benchmark's default) or one of :data:`ashlib.data.PREPROCESSINGS`; paper scale: 'raw'."""
    if preprocessing is None:
        return None
    check_choice("preprocessing", preprocessing, PREPROCESSINGS)
    if benchmark in PAPER_BENCHMARKS and preprocessing != "raw":
        raise ParameterError(f"preprocessing={preprocessing!r} is not allowed for benchmark={benchmark!r}: "
                             "expected 'raw' or None (paper-scale sets get the ID preprocessing only).")
    return preprocessing


def check_compare(compare) -> list[str]:
    """Profiles whose benchmark a chapter's claims are also checked on: a list of profile names of
    embedded benchmarks (``profiles/*.yaml``), e.g. ``["embedded-raw", "fmnist"]``."""
    from ashlib.data import EMBEDDED_BENCHMARKS
    from ashlib.pipeline import load_profile, profiles

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
    check_choice("fpr_convention", fpr_convention, FPR_CONVENTIONS)


def check_seed(name: str, value) -> int:
    """A seed: an integer >= 0."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ParameterError(f"{name}={value!r} is not allowed: expected an integer >= 0.")
    return value


def check_benchmark_chapter(*, benchmark: str, candidates, second_benchmark, scale_factors, n_scaled) -> None:
    """The extra parameters of the benchmark chapter (``notebooks/00_benchmark.ipynb``)."""
    from ashlib.data import EMBEDDED_BENCHMARKS

    if benchmark not in EMBEDDED_BENCHMARKS:
        raise ParameterError(f"benchmark={benchmark!r} is not allowed in this chapter: expected one of "
                             + ", ".join(repr(b) for b in EMBEDDED_BENCHMARKS) + " (it compares embedded variants).")
    if not isinstance(candidates, (list, tuple)) or not candidates:
        raise ParameterError(f"candidates={candidates!r} is not allowed: expected a non-empty list of "
                             + ", ".join(repr(c) for c in PREPROCESSINGS) + ".")
    for i, c in enumerate(candidates):
        check_choice(f"candidates[{i}]", c, PREPROCESSINGS)
    if second_benchmark is not None:
        check_choice("second_benchmark", second_benchmark, [b for b in EMBEDDED_BENCHMARKS if b != benchmark])
    if not isinstance(scale_factors, (list, tuple)) or not scale_factors:
        raise ParameterError(f"scale_factors={scale_factors!r} is not allowed: expected a list of positive numbers.")
    for i, f in enumerate(scale_factors):
        if isinstance(f, bool) or not isinstance(f, (int, float)) or not f > 0:
            raise ParameterError(f"scale_factors[{i}]={f!r} is not allowed: expected a positive number.")
    check_positive_int("n_scaled", n_scaled)
