"""Activation shaping (ASH, Djurisic et al., ICLR 2023) and ReAct clipping: pure tensor functions.

Every function takes a batch ``x`` of shape ``(N, ...)`` -- ``(N, D)`` features or ``(N, C, H, W)``
feature maps -- and treats each sample as one vector of its ``n = x[0].numel()`` values, as the
paper's Algorithms 1-3 do over ``C*H*W``. The result is a new tensor of the same shape, dtype and
device; the caller's tensor is never modified (the official code works in place).

Which values are kept (the rest are set to zero) is chosen in one of two ways:

* ``percentile=p`` (local threshold, the paper's default): per sample, exactly
  ``k = n - round(n * p / 100)`` values are kept, the ``k`` largest (the official code takes them
  with ``torch.topk``). ``round`` is round-half-to-even, like the official ``np.round``: ``n=10,
  p=65`` prunes 6 values, ``n=10, p=75`` prunes 8. Ties: of the values equal to the ``k``-th
  largest, the first ones by position are kept (``torch.topk`` leaves the choice to the
  implementation, and CPU and CUDA differ). Kept zeros count as kept (ASH-B fills them too).
* ``threshold=t`` (global threshold, paper Section 5, Figure 4, Table A4): a number fitted once
  on ID training activations with :func:`fit_global_threshold`; values ``>= t`` are kept, so the
  kept count ``k_i`` varies per sample (and is ``n`` wherever ``t <= min``).

How: each row's ``k``-th largest value is found by selection, never a full sort. On the CPU one
numba-compiled pass per row (:func:`_apply_kernel`) selects it by radix on the float's bits, takes the
sums and writes the result, the row read from memory once and written once; elsewhere (CUDA)
``torch.topk`` selects it. Tensors that need gradients (ODIN + ASH), half precision, small tensors and
other devices take the same steps in torch operations, with the same results.

Degenerate samples give zeros, never NaN: ``k = 0`` (``p = 100``) for every variant, and a zero
sum after pruning (``s2 = 0``) for ASH-S. ASH-S computes ``exp(s1 / s2)`` as the paper does; for
non-negative (post-ReLU) activations ``s1 / s2 >= 1`` stays moderate, while mixed-sign inputs
with ``s2`` near zero can overflow to ``inf``, as in the official code.
"""
from __future__ import annotations

import functools
import math
from collections.abc import Callable
from numbers import Real

import numpy as np
import torch
from torch import Tensor

from ashlib.methods import _kernels
from ashlib._checks import ParameterError, check_choice, check_percentile
from ashlib.methods._kernels import _GOLDEN, _MIX1, _MIX2

__all__ = [
    "ENTRIES",
    "ash_p",
    "ash_b",
    "ash_s",
    "ash_rand",
    "react_clip",
    "fit_global_threshold",
    "fit_react_threshold",
    "kept_count",
    "ash_s_exponent",
    "SHAPERS",
    "METHODS",
    "make_shaper",
    "sweep",
    "sweeps",
]


# ----------------------------------------------------------------------------- argument checks

def _check_batch(x) -> Tensor:
    if not isinstance(x, Tensor):
        raise ParameterError(f"x of type {type(x).__name__} is not allowed: expected a torch.Tensor.")
    if x.dim() < 2:
        raise ParameterError(
            f"x with shape {tuple(x.shape)} is not allowed: expected a batch (N, ...) with at least "
            "2 dimensions, e.g. (N, D) or (N, C, H, W)."
        )
    return x


def _check_number(name: str, value) -> float:
    """A finite real number (a 0-d tensor is accepted too)."""
    if isinstance(value, Tensor) and value.numel() == 1:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value):
        raise ParameterError(f"{name}={value!r} is not allowed: expected a finite real number.")
    return float(value)


def _check_one_of(percentile, threshold) -> tuple[float | None, float | None]:
    """Exactly one of ``percentile`` (local) or ``threshold`` (global) must be given."""
    if (percentile is None) == (threshold is None):
        given = "both" if percentile is not None else "neither"
        raise ParameterError(
            f"percentile={percentile!r}, threshold={threshold!r} is not allowed ({given} given): "
            "expected exactly one, percentile in [0, 100] for a per-sample (local) threshold or "
            "threshold (a number from fit_global_threshold) for a global one."
        )
    if percentile is not None:
        return check_percentile("percentile", percentile), None
    return None, _check_number("threshold", threshold)


def kept_count(n: int, percentile: float) -> int:
    """Values kept per sample at a local ``percentile``: ``n - round(n * p / 100)`` (half to even)."""
    check_percentile("percentile", percentile)
    return n - int(np.round(n * percentile / 100.0))


# ----------------------------------------------------------------------------- pruning

def _local_thresholds(flat: Tensor, k: int) -> Tensor:
    """Each row's ``k``-th largest value (1 <= k <= n) on the torch path: the smallest of
    ``torch.topk``'s values, a selection rather than a sort (the fused CPU pass selects by itself)."""
    return torch.topk(flat.detach(), k, dim=1, sorted=False).values.amin(dim=1)


def _thresholds(flat: Tensor, percentile: float | None, threshold: float | None) -> tuple[Tensor, int]:
    """(per-row threshold t, values to keep per row k; -1: every value >= t) for a local
    ``percentile`` or a global ``threshold``. ``k = 0`` comes with t = +inf (nothing kept)."""
    if threshold is not None:
        return torch.full((flat.shape[0],), threshold, dtype=flat.dtype, device=flat.device), -1
    k = kept_count(flat.shape[1], percentile)
    if k == 0 or flat.shape[0] == 0:
        return torch.full((flat.shape[0],), math.inf, dtype=flat.dtype, device=flat.device), 0
    return _local_thresholds(flat, k), k


def _keep_mask(flat: Tensor, t: Tensor, k: int) -> Tensor:
    """Boolean (N, n) mask of the kept values: every value above its row's ``t``, and of the values
    equal to ``t`` the first ones by position, until ``k`` are kept (all of them when ``k = -1``)."""
    t = t[:, None]
    above, tied = flat > t, flat == t
    if k < 0:
        return above | tied
    room = k - above.sum(dim=1, keepdim=True)
    return above | (tied & (tied.cumsum(dim=1) <= room))


def _prepare(x: Tensor, percentile, threshold) -> tuple[Tensor, Tensor]:
    x = _check_batch(x)
    percentile, threshold = _check_one_of(percentile, threshold)
    flat = x.reshape(x.shape[0], -1)
    return flat, _keep_mask(flat, *_thresholds(flat, percentile, threshold))


# Variants of the fused CPU kernel (_apply_kernel): what a kept value becomes.
_KEEP, _FILL, _SCALE, _REPLACE = 0, 1, 2, 3


#: Tensors with fewer values take the torch path: the fused kernel pays off on batches, and a small call
#: (an exercise, a test) never waits for numba to compile it.
FUSED_MIN_NUMEL = 4096


def _fast(x: Tensor) -> bool:
    """Whether the fused CPU kernel applies: a float32/float64 CPU tensor of at least
    :data:`FUSED_MIN_NUMEL` values outside autograd (ODIN + ASH differentiates through the shaping:
    the torch path does that)."""
    return (x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64) and x.numel() >= FUSED_MIN_NUMEL
            and not (x.requires_grad and torch.is_grad_enabled()))


def _shape_fast(x: Tensor, percentile, threshold, variant: int, rand=None) -> Tensor:
    """The fused CPU pass (:func:`_apply_kernel`): per row, a selection, the sums and the output,
    the row read from memory once and written once. ``rand``: ASH-RAND's ``(low, high, generator)``."""
    flat = x.detach().reshape(x.shape[0], -1).contiguous()
    k = -1 if threshold is not None else kept_count(flat.shape[1], percentile)
    return _fused(flat, k, threshold, variant, rand)[0].reshape(x.shape)


def _fused(flat: Tensor, k: int, threshold: float | None, variant: int, rand=None) -> tuple[Tensor, Tensor, Tensor]:
    """(output, each row's threshold ``t``, each row's kept count) of the fused pass on a contiguous
    (N, n) float32/float64 CPU tensor; ``k = -1``: the global ``threshold``."""
    n_rows, n = flat.shape
    out = torch.empty_like(flat)
    low, high, key = (0.0, 0.0, 0) if rand is None else (rand[0], rand[1], _draw_key(rand[2]))
    t_out = torch.empty(n_rows, dtype=torch.float64)
    kept_out = torch.empty(n_rows, dtype=torch.int64)
    nbits = 8 * flat.element_size()
    chunks = max(1, min(n_rows, 4 * torch.get_num_threads()))
    _apply_kernel()(flat.numpy(), flat.numpy().view(np.int32 if nbits == 32 else np.int64), (1 << (nbits - 1)) - 1,
                    nbits - 11, k, math.inf if threshold is None else threshold, variant, MAX_S_EXPONENT,
                    np.uint64(key), low, high - low, chunks, out.numpy(), t_out.numpy(), kept_out.numpy())
    return out, t_out, kept_out


# ASH-RAND's draws: a counter-based generator (splitmix64's mixing function, Steele et al., OOPSLA 2014)
# of a key drawn once per call from the caller's torch generator and a counter per kept value, so that
# both paths, every thread count and every device draw the same numbers, with no state between values.


def _draw_key(generator: torch.Generator | None) -> int:
    """The key of one call's draws: a 62-bit integer from ``generator`` (torch's default CPU generator
    if None), so a seeded generator gives reproducible draws and consecutive calls different ones."""
    device = generator.device if generator is not None else "cpu"
    return int(torch.randint(0, 2**62, (), generator=generator, device=device))


def _as_int64(c: int) -> int:
    return c - 2**64 if c >= 2**63 else c


def _shift_right(z: Tensor, s: int) -> Tensor:
    """``z >> s`` of int64 ``z`` read as unsigned 64-bit integers (torch shifts int64 arithmetically)."""
    return (z >> s) & ((1 << (64 - s)) - 1)


def _uniform_at(key: int, counters: Tensor, low: float, high: float) -> Tensor:
    """The draws from U[low, high] at ``counters`` (int64) in float64: splitmix64's mixing function of
    ``key + (counter + 1) * golden`` (int64 arithmetic wraps modulo 2**64, as the unsigned one does),
    its top 53 bits as a fraction in [0, 1). The torch twin of the fused pass's ``uniform``."""
    z = (counters + 1) * _as_int64(_GOLDEN) + key
    z = (z ^ _shift_right(z, 30)) * _as_int64(_MIX1)
    z = (z ^ _shift_right(z, 27)) * _as_int64(_MIX2)
    z = z ^ _shift_right(z, 31)
    return low + (high - low) * (_shift_right(z, 11).to(torch.float64) * 2.0**-53)


def _apply_kernel():
    """The fused per-row pass (:func:`ashlib.methods._kernels.compiled`), compiled by numba on first use and
    cached on disk by it, so the next process loads it instead of compiling it again."""
    return _kernels.compiled()


def ash_p(x: Tensor, percentile: float | None = None, *, threshold: float | None = None) -> Tensor:
    """ASH-P (Algorithm 1): zero all but the kept values, leave those unchanged."""
    if _fast(_check_batch(x)):
        return _shape_fast(x, *_check_one_of(percentile, threshold), _KEEP)
    flat, mask = _prepare(x, percentile, threshold)
    return torch.where(mask, flat, torch.zeros_like(flat)).reshape(x.shape)


def ash_b(x: Tensor, percentile: float | None = None, *, threshold: float | None = None) -> Tensor:
    """ASH-B (Algorithm 2): set every kept value to ``s1 / k``, ``s1`` the sum before pruning.

    The per-sample sum is preserved (``k * s1 / k = s1``); ``k = 0`` gives zeros.
    """
    if _fast(_check_batch(x)):
        return _shape_fast(x, *_check_one_of(percentile, threshold), _FILL)
    flat, mask = _prepare(x, percentile, threshold)
    s1 = flat.sum(dim=1)
    k = mask.sum(dim=1)
    fill = torch.where(k > 0, s1 / k.clamp(min=1).to(s1.dtype), torch.zeros_like(s1))
    return torch.where(mask, fill[:, None].expand_as(flat), torch.zeros_like(flat)).reshape(x.shape)


#: ASH-S exponents above this are capped: exp(60) ~ 1e26 keeps the network's float32 outputs finite.
MAX_S_EXPONENT = 60.0


def ash_s(x: Tensor, percentile: float | None = None, *, threshold: float | None = None) -> Tensor:
    """ASH-S (Algorithm 3): multiply the kept values by ``exp(s1 / s2)``.

    ``s1``, ``s2``: per-sample sums before and after pruning; ``s2 = 0`` gives zeros. Where we differ
    from the official code: the exponent ``s1 / s2`` is capped at :data:`MAX_S_EXPONENT`. The official
    ``torch.exp(s1 / s2)`` overflows to inf there (float32 ends near exp(88)), and the next layer turns
    inf into NaN scores. Per-sample percentiles give exponents near 6 to 8. A global threshold can
    keep one small unit of a sample and reach the hundreds. The cap keeps that sample scaled up the
    most, with finite scores, and changes no exponent below 60.
    """
    if _fast(_check_batch(x)):
        return _shape_fast(x, *_check_one_of(percentile, threshold), _SCALE)
    flat, mask = _prepare(x, percentile, threshold)
    zeros = torch.zeros_like(flat)
    pruned = torch.where(mask, flat, zeros)
    s1 = flat.sum(dim=1)
    s2 = pruned.sum(dim=1)
    ok = s2 != 0
    exponent = (s1 / torch.where(ok, s2, torch.ones_like(s2))).clamp(max=MAX_S_EXPONENT)
    scale = torch.where(ok, torch.exp(exponent), torch.zeros_like(s2))
    return torch.where(mask, pruned * scale[:, None], zeros).reshape(x.shape)


def ash_s_exponent(x: Tensor, percentile: float | None = None, *, threshold: float | None = None) -> Tensor:
    """The exponent ``s1 / s2`` by which ASH-S scales each sample (it multiplies the kept values by
    ``exp(s1 / s2)``): one value per sample, NaN where nothing is left (``s2 = 0``).

    A sample whose activation mass sits in its top values has ``s1 / s2`` near 1; one whose mass is
    spread over many units has a large ratio and is scaled up more, which raises its energy score.
    """
    flat, mask = _prepare(x, percentile, threshold)
    s1 = flat.sum(dim=1)
    s2 = torch.where(mask, flat, torch.zeros_like(flat)).sum(dim=1)
    return torch.where(s2 != 0, s1 / torch.where(s2 != 0, s2, torch.ones_like(s2)), torch.full_like(s1, float("nan")))


def ash_rand(
    x: Tensor,
    percentile: float | None = None,
    *,
    threshold: float | None = None,
    low: float = 0.0,
    high: float = 10.0,
    generator: torch.Generator | None = None,
) -> Tensor:
    """ASH-RAND (Section 4.4, Table 4): replace the kept values by draws from U[low, high].

    One value is drawn per kept value, as the official code does. Where we differ: the official code
    fills ``topk``'s order with torch's ``uniform_``; here the value at row ``i``'s ``r``-th kept position
    (in position order) is a counter-based draw (:func:`_uniform_at`) at counter ``i * n + r``, keyed by
    one integer drawn from ``generator`` (torch's default CPU generator if None). So a seeded
    ``generator`` gives the same values on every device, thread count and code path, and the fused CPU
    pass draws them in parallel, but the stream differs from the official code's.
    """
    x = _check_batch(x)
    percentile, threshold = _check_one_of(percentile, threshold)
    low, high = _check_low_high(low, high)
    if _fast(x):
        return _shape_fast(x, percentile, threshold, _REPLACE, rand=(low, high, generator))
    flat, mask = _prepare(x, percentile, threshold)
    rank = mask.cumsum(dim=1) - 1  # each kept value's rank among its row's kept values, in position order
    counters = (torch.arange(flat.shape[0], device=flat.device)[:, None] * flat.shape[1] + rank)[mask]
    out = torch.zeros_like(flat)
    out[mask] = _uniform_at(_draw_key(generator), counters, low, high).to(flat.dtype)
    return out.reshape(x.shape)


def sweep(method: str, x: Tensor, percentiles) -> list[Tensor]:
    """``[SHAPERS[method](x, p) for p in percentiles]`` for ASH-P, -B or -S with local thresholds, from
    one sort per sample instead of one selection per ``p`` (the p-sweeps of Figures 2-4).

    A stable descending sort ranks each sample's values with ties in position order, so its first ``k``
    are exactly the values the functions keep; the prefix sums of the sorted values give every ``s2``.
    Sums are in float64, as the fused CPU pass takes them: outputs equal the single calls' up to the
    order of float64 additions. :func:`sweeps` shares the sort between several methods.
    """
    return sweeps(x, {method: percentiles})[method]


def sweeps(x: Tensor, percentiles: dict[str, list], then: Callable[[Tensor], Tensor] | None = None) \
        -> dict[str, list[Tensor]]:
    """:func:`sweep` of several methods on one batch, ``{method: percentiles}``, from one sort; each
    output is zeros with the kept values written in (outside autograd). ``then``: a function applied to
    each output as soon as it is made, whose result is kept instead (e.g. the logits of shaped features:
    the outputs themselves are never all held at once)."""
    for method in percentiles:
        check_choice("method", method, ("ash_p", "ash_b", "ash_s"))
    flat = _check_batch(x).detach().reshape(x.shape[0], -1)
    n = flat.shape[1]
    ks = {method: [kept_count(n, p) for p in ps] for method, ps in percentiles.items()}
    values, order = torch.sort(flat, dim=1, descending=True, stable=True)
    s1 = flat.double().sum(dim=1)
    prefix = values.double().cumsum(dim=1) if "ash_s" in ks else None
    outs: dict[str, list[Tensor]] = {}
    for method, method_ks in ks.items():
        outs[method] = []
        for k in method_ks:  # the first k of the sorted order are the kept values: write only those
            top = values[:, :k]
            if method == "ash_p":
                kept = top
            elif method == "ash_b":
                fill = s1 / k if k else torch.zeros_like(s1)
                kept = fill.to(flat.dtype)[:, None].expand_as(top)
            else:
                s2 = prefix[:, k - 1] if k else torch.zeros_like(s1)
                ok = s2 != 0
                scale = torch.where(ok, torch.exp((s1 / torch.where(ok, s2, 1.0)).clamp(max=MAX_S_EXPONENT)), 0.0)
                kept = (top.double() * scale[:, None]).to(flat.dtype)
            out = torch.zeros_like(flat).scatter_(1, order[:, :k], kept).reshape(x.shape)
            outs[method].append(out if then is None else then(out))
    return outs


def _check_low_high(low, high) -> tuple[float, float]:
    low, high = _check_number("low", low), _check_number("high", high)
    if low > high:
        raise ParameterError(f"low={low!r}, high={high!r} is not allowed: expected low <= high.")
    return low, high


# ----------------------------------------------------------------------------- ReAct

def react_clip(x: Tensor, threshold: float) -> Tensor:
    """ReAct (Sun et al., 2021, Eq. 1): ``min(x, c)`` elementwise, as a new tensor."""
    if not isinstance(x, Tensor):
        raise ParameterError(f"x of type {type(x).__name__} is not allowed: expected a torch.Tensor.")
    return x.clamp(max=_check_number("threshold", threshold))


# ----------------------------------------------------------------------------- fitted thresholds

def fit_global_threshold(activations: Tensor | np.ndarray, percentile: float) -> float:
    """The ``percentile``-th percentile of all values of one layer's ID *training* activations.

    This is the global threshold of the paper's Section 5 (Figure 4, Table A4): pass it as
    ``threshold=`` to the ASH functions. Interpolation is linear between order statistics, the
    default of ``numpy.percentile``: with ``m`` values sorted ascending, position
    ``q = (p / 100) * (m - 1)``. Uses ``torch.kthvalue`` (no size limit, unlike
    ``torch.quantile``); only the values given are used.
    """
    check_percentile("percentile", percentile)
    flat = _flat_values("activations", activations)
    m = flat.numel()
    pos = (percentile / 100.0) * (m - 1)
    lo = min(int(math.floor(pos)), m - 1)
    frac = pos - lo
    a = float(torch.kthvalue(flat, lo + 1).values)
    if frac == 0.0 or lo + 1 > m - 1:
        return a
    b = float(torch.kthvalue(flat, lo + 2).values)
    return a + (b - a) * frac


def fit_react_threshold(activations: Tensor | np.ndarray, percentile: float = 90) -> float:
    """ReAct's clipping threshold ``c``: the ``percentile``-th (default 90th) percentile of ID
    training activations (ReAct's recipe, ``np.percentile``; same interpolation as
    :func:`fit_global_threshold`)."""
    return fit_global_threshold(activations, percentile)


def _flat_values(name: str, values) -> Tensor:
    if isinstance(values, np.ndarray):
        values = torch.from_numpy(values)
    if not isinstance(values, Tensor):
        raise ParameterError(
            f"{name} of type {type(values).__name__} is not allowed: expected a torch.Tensor or numpy array."
        )
    flat = values.detach().reshape(-1)
    if flat.numel() == 0:
        raise ParameterError(f"{name} is empty: expected at least one value.")
    if flat.is_floating_point():
        n_nan = int(torch.isnan(flat).sum())
        if n_nan:
            raise ParameterError(f"{name} contains {n_nan} NaN values: expected numbers only.")
    else:
        flat = flat.double()
    return flat


# ----------------------------------------------------------------------------- one code path

SHAPERS: dict[str, Callable[..., Tensor]] = {
    "ash_p": ash_p,
    "ash_b": ash_b,
    "ash_s": ash_s,
    "ash_rand": ash_rand,
}

#: Everything :func:`make_shaper` accepts: the ASH variants plus the baselines.
METHODS: tuple[str, ...] = ("none", "react", *SHAPERS)

_RAND_KWARGS = ("low", "high", "generator")


def _identity(x: Tensor) -> Tensor:
    return x


def make_shaper(
    method: str, percentile: float | None = None, *, threshold: float | None = None, **kwargs
) -> Callable[[Tensor], Tensor]:
    """A one-argument function ``x -> shaped x`` (e.g. for a forward hook), validated up front.

    ``method``: ``"ash_p"``, ``"ash_b"``, ``"ash_s"``, ``"ash_rand"`` (exactly one of
    ``percentile``/``threshold``; ``ash_rand`` also takes ``low``, ``high``, ``generator``),
    ``"react"`` (clip at ``threshold``, required) or ``"none"`` (identity, no arguments).
    """
    check_choice("method", method, METHODS)
    allowed_kwargs = _RAND_KWARGS if method == "ash_rand" else ()
    for key in kwargs:
        if key not in allowed_kwargs:
            allowed = ", ".join(allowed_kwargs) if allowed_kwargs else "none"
            raise ParameterError(
                f"{key}={kwargs[key]!r} is not allowed for method={method!r}: expected keyword "
                f"arguments among: {allowed}."
            )
    if method == "none":
        if percentile is not None or threshold is not None:
            raise ParameterError(
                f"percentile={percentile!r}, threshold={threshold!r} is not allowed for "
                "method='none': expected neither."
            )
        return _identity
    if method == "react":
        if percentile is not None:
            raise ParameterError(
                f"percentile={percentile!r} is not allowed for method='react': expected "
                "threshold= (fit it with fit_react_threshold)."
            )
        if threshold is None:
            raise ParameterError(
                "threshold=None is not allowed for method='react': expected a finite real number "
                "(fit it with fit_react_threshold)."
            )
        return functools.partial(react_clip, threshold=_check_number("threshold", threshold))
    percentile, threshold = _check_one_of(percentile, threshold)
    if method == "ash_rand":
        low, high = _check_low_high(kwargs.get("low", 0.0), kwargs.get("high", 10.0))
        kwargs.update(low=low, high=high)
        gen = kwargs.get("generator")
        if gen is not None and not isinstance(gen, torch.Generator):
            raise ParameterError(f"generator={gen!r} is not allowed: expected a torch.Generator or None.")
    return functools.partial(SHAPERS[method], percentile=percentile, threshold=threshold, **kwargs)


# ----------------------------------------------------------------------------- registry entries

from ashlib.methods.detector import Shaping  # noqa: E402  (the entries sit beside the functions they register)

_ASH = "Djurisic et al., Extremely Simple Activation Shaping for OOD Detection, ICLR 2023"
#: The ASH variants as :mod:`ashlib.methods.registry` entries (label, plot colour, citation).
ENTRIES = (
    Shaping("ash_p", "ASH-P", ash_p, "tab:blue", f"{_ASH}, Algorithm 1"),
    Shaping("ash_b", "ASH-B", ash_b, "tab:orange", f"{_ASH}, Algorithm 2"),
    Shaping("ash_s", "ASH-S", ash_s, "tab:green", f"{_ASH}, Algorithm 3"),
    Shaping("ash_rand", "ASH-RAND", ash_rand, "tab:purple", f"{_ASH}, Section 4.4", seeded=True),
)
