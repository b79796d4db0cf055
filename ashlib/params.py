"""Checks for the papermill parameters shared by every notebook: fail at once, with one clear message."""
from __future__ import annotations

import re

import torch

from ashlib._checks import ParameterError, check_choice, check_percentile, check_positive_int
from ashlib.data import BENCHMARKS
from ashlib.metrics import FPR_CONVENTIONS
from ashlib.models import MODELS

#: The networks each benchmark is evaluated with (the first is the default); paper Table 1.
BENCHMARK_MODELS = {"mnist5k": ("smallresnet", "smallresnet_logsoftmax"), "cifar10": ("densenet100",), "cifar100": ("densenet100",),
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


def check_run_parameters(*, benchmark: str, model: str | None, device: str, batch_size: int, seed: int,
                         fpr_convention: str = "paper", seeds=(), **percentiles) -> None:
    """Validate a notebook's parameters cell; raises :class:`ParameterError` naming the first bad one.

    Every extra keyword is a percentile in [0, 100], ``None`` (use the paper's choice), or a list
    of percentiles (a sweep); ``seeds`` is a list of seeds (ASH-RAND repetitions).
    """
    model_for(benchmark, model)
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
