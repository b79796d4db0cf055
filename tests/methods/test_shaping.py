"""Acceptance tests for ashlib.methods.shaping: ASH-P/B/S/RAND (local and global threshold), ReAct."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ashlib._checks import ParameterError
from ashlib.methods.shaping import (
    METHODS,
    SHAPERS,
    ash_b,
    ash_p,
    ash_rand,
    ash_s,
    fit_global_threshold,
    fit_react_threshold,
    kept_count,
    make_shaper,
    react_clip,
)

ASH_PBS = {"ash_p": ash_p, "ash_b": ash_b, "ash_s": ash_s}
SHAPES = [(6, 50), (4, 8, 3, 3)]


# ----------------------------------------------------------------------------- numpy reference

def ref_mask(x: np.ndarray, percentile=None, threshold=None) -> np.ndarray:
    """Kept positions, per sample, by sorting (not topk). Inputs must have no ties."""
    flat = x.reshape(x.shape[0], -1)
    n = flat.shape[1]
    if threshold is not None:
        return flat >= threshold
    n_pruned = int(np.round(n * percentile / 100.0))  # round half to even, as the official code
    k = n - n_pruned
    mask = np.zeros_like(flat, dtype=bool)
    for row, m in zip(flat, mask):
        order = np.argsort(-row, kind="stable")
        m[order[:k]] = True
    return mask


def ref_shape(method: str, x: np.ndarray, percentile=None, threshold=None) -> np.ndarray:
    """Algorithms 1-3 of the paper, one sample at a time, in float64 numpy."""
    flat = x.reshape(x.shape[0], -1).astype(np.float64)
    mask = ref_mask(x, percentile, threshold)
    out = np.zeros_like(flat)
    for i, (row, m) in enumerate(zip(flat, mask)):
        s1 = row.sum()
        pruned = np.where(m, row, 0.0)
        if method == "ash_p":
            out[i] = pruned
        elif method == "ash_b":
            k = m.sum()
            out[i] = np.where(m, s1 / k, 0.0) if k else 0.0
        elif method == "ash_s":
            s2 = pruned.sum()
            out[i] = pruned * math.exp(s1 / s2) if s2 != 0 else 0.0
    return out.reshape(x.shape)


def relu_like(shape, seed=0, dtype=torch.float64) -> torch.Tensor:
    """Continuous non-negative activations (no ties), like post-ReLU features."""
    g = torch.Generator().manual_seed(seed)
    return torch.rand(shape, generator=g, dtype=dtype) * 3 + 0.01


# ----------------------------------------------------------------------------- vs numpy reference

@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("percentile", [0, 10, 33.3, 65, 90, 99, 100])
@pytest.mark.parametrize("method", list(ASH_PBS))
def test_local_threshold_matches_numpy(method, percentile, shape):
    x = relu_like(shape, seed=int(percentile * 10))
    got = ASH_PBS[method](x, percentile)
    want = ref_shape(method, x.numpy(), percentile=percentile)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-12, atol=0)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("q", [0, 50, 80, 97])
@pytest.mark.parametrize("method", list(ASH_PBS))
def test_global_threshold_matches_numpy(method, q, shape):
    x = relu_like(shape, seed=q)
    t = float(np.percentile(relu_like((100, 40), seed=99).numpy(), q))  # "training" data
    got = ASH_PBS[method](x, threshold=t)
    want = ref_shape(method, x.numpy(), threshold=t)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-12, atol=0)


def test_global_threshold_kept_count_varies_per_sample():
    x = torch.tensor([[5.0, 4.0, 3.0, 2.0], [5.0, 1.0, 1.0, 0.5], [0.1, 0.2, 0.3, 0.4]])
    out = ash_b(x, threshold=2.0)  # keeps >= 2: 4, 1, 0 values per sample
    assert (out != 0).sum(dim=1).tolist() == [4, 1, 0]
    np.testing.assert_allclose(out[0].numpy(), [3.5] * 4)  # s1=14 over k=4
    np.testing.assert_allclose(out[1].numpy(), [7.5, 0, 0, 0])  # s1=7.5 over k=1
    assert torch.equal(out[2], torch.zeros(4))  # k=0: zeros, no NaN


def test_mixed_sign_inputs_match_numpy():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(5, 40, generator=g, dtype=torch.float64) + 0.5  # s2 != 0 almost surely
    for method, fn in ASH_PBS.items():
        np.testing.assert_allclose(fn(x, 70).numpy(), ref_shape(method, x.numpy(), 70), rtol=1e-10)


# ----------------------------------------------------------------------------- by hand

def test_hand_worked_example():
    # one sample, n=5, p=60: prune round(5*0.6)=3 values, keep k=2: the values 3.0 and 2.0.
    # s1 = 0.5+3+1+2+0 = 6.5, s2 = 3+2 = 5, exp(s1/s2) = exp(1.3) = 3.669296667619244
    x = torch.tensor([[0.5, 3.0, 1.0, 2.0, 0.0]], dtype=torch.float64)
    np.testing.assert_allclose(ash_p(x, 60).numpy(), [[0, 3.0, 0, 2.0, 0]])
    np.testing.assert_allclose(ash_b(x, 60).numpy(), [[0, 3.25, 0, 3.25, 0]])  # 6.5 / 2
    np.testing.assert_allclose(ash_s(x, 60).numpy(), [[0, 11.007890002857732, 0, 7.338593335238488, 0]])
    # global threshold 1.0 keeps 3, 1, 2 (>= 1): B fills 6.5/3, S scales by exp(6.5/6)
    np.testing.assert_allclose(ash_p(x, threshold=1.0).numpy(), [[0, 3.0, 1.0, 2.0, 0]])
    np.testing.assert_allclose(ash_b(x, threshold=1.0).numpy(), [[0, 6.5 / 3, 6.5 / 3, 6.5 / 3, 0]])
    e = math.exp(6.5 / 6)  # 2.9545...
    np.testing.assert_allclose(ash_s(x, threshold=1.0).numpy(), [[0, 3 * e, e, 2 * e, 0]], rtol=1e-12)


@pytest.mark.parametrize(
    "n, p, k",
    [(10, 65, 4), (10, 75, 2), (10, 5, 10), (10, 15, 8), (2048, 90, 205), (342, 95, 17), (1280, 65, 448)],
)
def test_kept_count_rounds_half_to_even(n, p, k):
    # 10*65/100 = 6.5 -> 6 pruned; 7.5 -> 8; 0.5 -> 0; 1.5 -> 2 (round half to even)
    assert kept_count(n, p) == k
    x = relu_like((3, n))
    assert ((ash_p(x, p) != 0).sum(dim=1) == k).all()


# ----------------------------------------------------------------------------- invariants

@pytest.mark.parametrize("fn", [ash_p, ash_b, ash_s, ash_rand])
def test_input_never_modified(fn):
    x = relu_like((4, 6, 2, 2))
    x_nc = x.permute(0, 2, 3, 1)  # non-contiguous view
    for inp in (x, x_nc):
        before = inp.clone()
        fn(inp, 80)
        fn(inp, threshold=1.0)
        assert torch.equal(inp, before)
    before = x.clone()
    react_clip(x, 1.0)
    assert torch.equal(x, before)


@pytest.mark.parametrize("fn", [ash_p, ash_b, ash_s])
def test_2d_equals_4d_with_unit_spatial(fn):
    x = relu_like((7, 30))
    for kw in ({"percentile": 65}, {"threshold": 1.5}):
        flat = fn(x, **kw)
        four = fn(x.reshape(7, 30, 1, 1), **kw)
        assert four.shape == (7, 30, 1, 1)
        assert torch.equal(four.reshape(7, 30), flat)


def test_4d_shapes_work_over_all_of_chw():
    x = relu_like((3, 4, 5, 5))  # n = 100
    out = ash_p(x, 90)
    assert out.shape == x.shape
    assert ((out != 0).reshape(3, -1).sum(dim=1) == 10).all()
    # per sample over C*H*W, not per channel: the kept values are the 10 largest of the sample
    for i in range(3):
        top = torch.sort(x[i].flatten(), descending=True).values[:10]
        assert torch.equal(torch.sort(out[i][out[i] != 0], descending=True).values, top)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16])
@pytest.mark.parametrize("fn", [ash_p, ash_b, ash_s, ash_rand])
def test_dtype_and_device_kept(fn, dtype):
    x = relu_like((2, 16, 2, 2)).to(dtype)
    out = fn(x, 75)
    assert out.dtype == dtype and out.device == x.device and out.shape == x.shape
    assert torch.isfinite(out).all()


def test_p0_keeps_everything():
    x = relu_like((3, 4, 2, 2))
    s1 = x.reshape(3, -1).sum(dim=1)
    assert torch.equal(ash_p(x, 0), x)
    torch.testing.assert_close(ash_b(x, 0), (s1 / 16)[:, None, None, None].expand_as(x))
    torch.testing.assert_close(ash_s(x, 0), x * math.e)  # s1 = s2: scale exp(1)
    assert (ash_rand(x, 0) != 0).all()


@pytest.mark.parametrize("fn", [ash_p, ash_b, ash_s, ash_rand])
def test_p100_gives_zeros_not_nan(fn):
    x = relu_like((3, 4, 2, 2))
    out = fn(x, 100)
    assert torch.equal(out, torch.zeros_like(x))
    assert torch.equal(fn(x, threshold=1e9), torch.zeros_like(x))  # global: nothing kept


def test_zero_sum_after_pruning_gives_zeros():
    x = torch.zeros(2, 8)
    x[1, :4] = torch.tensor([1.0, -1.0, 2.0, -2.0])  # kept values that sum to zero
    out = ash_s(x, 0)  # p=0 keeps all: s2 = 0 in both rows -> zeros, not NaN/inf
    assert torch.equal(out, torch.zeros_like(x))
    assert torch.equal(ash_b(torch.zeros(2, 8), 50), torch.zeros(2, 8))


def test_ash_b_preserves_sum_and_fills_kept_zeros():
    # ReLU-like input with many exact zeros: ties at zero among the top-k.
    g = torch.Generator().manual_seed(5)
    x = torch.relu(torch.randn(6, 64, generator=g, dtype=torch.float64))
    for p in (10, 65, 90):
        out = ash_b(x, p)
        k = kept_count(64, p)
        assert ((out != 0).sum(dim=1) == k).all()  # exactly k filled, zeros included
        torch.testing.assert_close(out.sum(dim=1), x.sum(dim=1))


# ----------------------------------------------------------------------------- ASH-RAND

def test_ash_rand_values_positions_and_reproducibility():
    x = relu_like((5, 8, 3, 3))
    g = torch.Generator().manual_seed(123)
    out = ash_rand(x, 80, low=2.0, high=4.0, generator=g)
    kept = ash_p(x, 80) != 0
    assert torch.equal(out != 0, kept)  # same positions as ASH-P, pruned are zero
    assert ((out[kept] >= 2.0) & (out[kept] <= 4.0)).all()
    assert out[kept].std() > 0.3  # really random, not a constant
    again = ash_rand(x, 80, low=2.0, high=4.0, generator=torch.Generator().manual_seed(123))
    assert torch.equal(out, again)
    other = ash_rand(x, 80, low=2.0, high=4.0, generator=torch.Generator().manual_seed(124))
    assert not torch.equal(out, other)


def test_ash_rand_defaults_and_global_threshold():
    x = relu_like((50, 40))
    out = ash_rand(x, threshold=2.0, generator=torch.Generator().manual_seed(42))  # not x's seed
    kept = x >= 2.0
    assert torch.equal(out != 0, kept)
    vals = out[kept]
    assert vals.min() >= 0.0 and vals.max() <= 10.0 and 4.0 < vals.mean() < 6.0  # U[0, 10]


# ----------------------------------------------------------------------------- vs pytorch-ood

try:  # a test extra; without it only these tests are skipped
    import pytorch_ood.detector.ash as pood_ash
except ImportError:  # pragma: no cover
    pood_ash = None
needs_pood = pytest.mark.skipif(pood_ash is None, reason="pytorch-ood not installed")


@needs_pood
@pytest.mark.parametrize("shape", [(4, 16, 4, 4), (3, 342, 1, 1), (2, 8, 7, 7)])
@pytest.mark.parametrize("p", [10, 50, 65, 80, 90, 95])
def test_matches_pytorch_ood(shape, p):
    # pytorch_ood 0.4.0 takes the percentile as a fraction; it computes round(n * (p / 100)) where
    # the official code and we compute round(n * p / 100.0). For these n and p both agree.
    n = math.prod(shape[1:])
    assert int(np.round(n * (p / 100))) == int(np.round(n * p / 100.0))
    x = relu_like(shape, seed=p)
    assert torch.equal(ash_p(x, p), pood_ash.ash_p(x, p / 100))
    torch.testing.assert_close(ash_b(x, p), pood_ash.ash_b(x, p / 100), rtol=1e-12, atol=0)
    torch.testing.assert_close(ash_s(x, p), pood_ash.ash_s(x, p / 100), rtol=1e-12, atol=0)


@needs_pood
def test_pytorch_ood_fraction_rounding_differs_at_half_way():
    # n = 45, p = 70: 45 * 70 / 100.0 = 31.5 -> 32 pruned (half to even; official ASH and us),
    # but pytorch_ood computes 45 * 0.7 = 31.499999999999996 -> 31 pruned: one more value kept.
    x = relu_like((2, 5, 3, 3))
    assert ((ash_p(x, 70) != 0).reshape(2, -1).sum(dim=1) == 13).all()
    assert ((pood_ash.ash_p(x, 0.7) != 0).reshape(2, -1).sum(dim=1) == 14).all()


@needs_pood
def test_pytorch_ood_gives_nan_where_we_give_zeros():
    # pytorch_ood's ash_s divides by s2 = 0 for an all-zero sample (NaN); ours returns zeros.
    x = relu_like((2, 4, 2, 2))
    x[0] = 0
    assert torch.isnan(pood_ash.ash_s(x, 0.5)[0]).all()
    ours = ash_s(x, 50)
    assert torch.equal(ours[0], torch.zeros_like(x[0]))
    torch.testing.assert_close(ours[1], pood_ash.ash_s(x, 0.5)[1], rtol=1e-12, atol=0)


# ----------------------------------------------------------------------------- fitted thresholds

@pytest.mark.parametrize("p", [0, 1, 37.5, 50, 65, 90, 99.9, 100])
def test_fit_global_threshold_matches_numpy_percentile(p):
    g = torch.Generator().manual_seed(int(p * 10))
    acts = torch.relu(torch.randn(101, 7, 3, generator=g, dtype=torch.float64))  # ties at 0
    want = np.percentile(acts.numpy(), p)  # default "linear" interpolation
    assert fit_global_threshold(acts, p) == pytest.approx(want, rel=1e-12, abs=1e-15)
    assert fit_global_threshold(acts.numpy(), p) == pytest.approx(want, rel=1e-12, abs=1e-15)


def test_fit_global_threshold_is_interpolated_and_pure():
    acts = torch.tensor([4.0, 1.0, 3.0, 2.0])  # sorted 1,2,3,4; q = 0.5 * 3 = 1.5 -> 2.5
    assert fit_global_threshold(acts, 50) == 2.5
    assert fit_global_threshold(acts, 90) == pytest.approx(3.7)  # q = 2.7 -> 3 + 0.7
    a, b = relu_like((30, 10), seed=1), relu_like((30, 10), seed=2) * 10
    ta = fit_global_threshold(a, 80)
    assert fit_global_threshold(b, 80) != ta
    assert fit_global_threshold(a, 80) == ta  # depends only on what it is given
    # the fitted threshold keeps about 20% of the training values as ASH's global threshold
    assert (ash_p(a, threshold=ta) != 0).float().mean().item() == pytest.approx(0.2, abs=0.01)


def test_fit_global_threshold_beyond_torch_quantile_limit():
    acts = torch.rand(2**24 + 5, generator=torch.Generator().manual_seed(0))  # quantile max 2**24
    want = np.percentile(acts.numpy().astype(np.float64), 90)
    assert fit_global_threshold(acts, 90) == pytest.approx(want, rel=1e-12)


def test_fit_threshold_rejects_bad_inputs():
    with pytest.raises(ParameterError, match="empty"):
        fit_global_threshold(torch.empty(0), 90)
    with pytest.raises(ParameterError, match="NaN"):
        fit_global_threshold(torch.tensor([1.0, float("nan")]), 90)
    with pytest.raises(ParameterError, match="percentile"):
        fit_global_threshold(torch.rand(10), 101)


def test_react_clip_and_threshold():
    acts = relu_like((200, 16), seed=4)
    c = fit_react_threshold(acts)
    assert c == pytest.approx(np.percentile(acts.numpy(), 90), rel=1e-12)
    out = react_clip(acts, c)
    np.testing.assert_array_equal(out.numpy(), np.minimum(acts.numpy(), c))
    assert out.dtype == acts.dtype


# ----------------------------------------------------------------------------- make_shaper

def test_make_shaper_equals_direct_calls():
    x = relu_like((3, 10, 2, 2))
    for name, fn in ASH_PBS.items():
        assert torch.equal(make_shaper(name, 85)(x), fn(x, 85))
        assert torch.equal(make_shaper(name, threshold=1.0)(x), fn(x, threshold=1.0))
    shaper = make_shaper("ash_rand", 70, low=1.0, high=2.0, generator=torch.Generator().manual_seed(9))
    want = ash_rand(x, 70, low=1.0, high=2.0, generator=torch.Generator().manual_seed(9))
    assert torch.equal(shaper(x), want)
    assert make_shaper("none")(x) is x
    assert torch.equal(make_shaper("react", threshold=1.0)(x), x.clamp(max=1.0))
    assert set(SHAPERS) == {"ash_p", "ash_b", "ash_s", "ash_rand"}
    assert set(METHODS) == set(SHAPERS) | {"none", "react"}


# ----------------------------------------------------------------------------- errors

def test_bad_percentile_names_parameter_and_value():
    x = relu_like((2, 10))
    with pytest.raises(ParameterError, match=r"percentile.*150"):
        ash_s(x, 150)
    with pytest.raises(ParameterError, match=r"percentile.*150"):
        make_shaper("ash_b", 150)
    with pytest.raises(ParameterError, match=r"percentile.*-1"):
        ash_p(x, -1)


@pytest.mark.parametrize("fn", [ash_p, ash_b, ash_s, ash_rand])
def test_exactly_one_of_percentile_and_threshold(fn):
    x = relu_like((2, 10))
    with pytest.raises(ParameterError, match="neither"):
        fn(x)
    with pytest.raises(ParameterError, match="both"):
        fn(x, 90, threshold=1.0)
    with pytest.raises(ParameterError, match="threshold=nan"):
        fn(x, threshold=float("nan"))


def test_make_shaper_validates_up_front():
    with pytest.raises(ParameterError, match=r"method='ash_x'.*'ash_p'"):
        make_shaper("ash_x", 90)
    with pytest.raises(ParameterError, match="neither"):
        make_shaper("ash_s")
    with pytest.raises(ParameterError, match="both"):
        make_shaper("ash_s", 90, threshold=1.0)
    with pytest.raises(ParameterError, match="threshold"):
        make_shaper("react")
    with pytest.raises(ParameterError, match="percentile"):
        make_shaper("react", 90)
    with pytest.raises(ParameterError, match="percentile"):
        make_shaper("none", 90)
    with pytest.raises(ParameterError, match="low"):
        make_shaper("ash_p", 90, low=1.0)  # only ash_rand takes low/high/generator
    with pytest.raises(ParameterError, match=r"low=5.0, high=1.0"):
        make_shaper("ash_rand", 90, low=5.0, high=1.0)
    with pytest.raises(ParameterError, match="generator"):
        make_shaper("ash_rand", 90, generator=0)


def test_rejects_non_batch_inputs():
    with pytest.raises(ParameterError, match="at least 2 dimensions"):
        ash_p(torch.rand(10), 50)
    with pytest.raises(ParameterError, match="torch.Tensor"):
        ash_p(np.random.rand(2, 10), 50)


def test_ash_s_exponent_by_hand_and_as_ash_s_uses_it():
    from ashlib.methods.shaping import ash_s_exponent

    x = torch.tensor([[0.5, 3.0, 1.0, 2.0, 0.0], [0.0, 0.0, 0.0, 0.0, 0.0]], dtype=torch.float64)
    before = x.clone()
    r = ash_s_exponent(x, 60)
    assert r[0].item() == pytest.approx(1.3) and math.isnan(r[1].item())  # s1/s2 = 6.5/5; nothing left
    assert ash_s_exponent(x, threshold=1.0)[0].item() == pytest.approx(6.5 / 6)
    torch.testing.assert_close(x, before)
    y = torch.rand(6, 4, 3, 3, dtype=torch.float64)
    torch.testing.assert_close(ash_s(y, 80), ash_p(y, 80) * torch.exp(ash_s_exponent(y, 80))[:, None, None, None])


def test_ash_s_caps_an_overflowing_exponent_and_changes_nothing_below_it():
    """A global threshold can keep one small unit of a sample: s1/s2 in the hundreds, where the official
    torch.exp(s1 / s2) is inf and the next layer's scores NaN (found by the ImageNet rehearsal)."""
    import math

    from ashlib.methods.shaping import MAX_S_EXPONENT, ash_s

    x = torch.tensor([[5.0, 5.0, 5.0, 0.01], [3.0, 1.0, 0.5, 0.5]])
    out = ash_s(x, threshold=0.009)  # keeps everything: s1 / s2 = 1, untouched by the cap
    assert torch.allclose(out, x * math.e)
    lonely = torch.tensor([[0.0] * 99 + [1.0], [10.0] * 99 + [10.5]])  # second row: s1/s2 = 990.5/10.5 = 94.3
    out = ash_s(lonely, threshold=10.2)
    assert torch.isfinite(out).all()
    assert out[1, -1].item() == pytest.approx(10.5 * math.exp(MAX_S_EXPONENT), rel=1e-5)
    assert out[0, -1].item() == 0.0  # nothing kept: zeros, as before
    assert MAX_S_EXPONENT < math.log(torch.finfo(torch.float32).max) - 20


# ----------------------------------------------------------------------------- the two code paths

def torch_path(fn, x, *args, **kwargs):
    """The same call on the torch path, the one CUDA, autograd and half precision take."""
    with torch.enable_grad():
        return fn(x.clone().requires_grad_(True), *args, **kwargs).detach()


def with_ties(shape, seed=0, dtype=torch.float32, signed=True) -> torch.Tensor:
    """Small integers: many ties at every threshold, zeros among them."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(-3 if signed else 0, 4, shape, generator=g).to(dtype)
    return x


def _call(method, x, *args, **kwargs):
    if method == "ash_rand":
        kwargs["generator"] = torch.Generator().manual_seed(7)
    return SHAPERS[method](x, *args, **kwargs)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("signed", [True, False])
@pytest.mark.parametrize("percentile", [0, 10, 50, 65, 90, 99, 100])
@pytest.mark.parametrize("method", list(SHAPERS))
def test_fused_cpu_pass_equals_torch_path_with_ties(method, percentile, signed, dtype):
    x = with_ties((300, 3, 4, 4), seed=percentile, dtype=dtype, signed=signed)  # 300 rows: threaded selection
    rtol = 1e-5 if dtype == torch.float32 else 1e-12  # the fused pass sums in float64
    on_torch = torch_path(lambda v: _call(method, v, percentile), x)
    torch.testing.assert_close(_call(method, x, percentile), on_torch, rtol=rtol, atol=0)
    kept = (_call("ash_rand", x, percentile, low=1.0) != 0).reshape(300, -1).sum(dim=1)
    assert (kept == kept_count(48, percentile)).all()  # exactly k, ties or not
    for t in (-1.0, 0.0, 2.0):
        torch.testing.assert_close(_call(method, x, threshold=t),
                                   torch_path(lambda v, t=t: _call(method, v, threshold=t), x), rtol=rtol, atol=0)


def test_ties_keep_the_first_values_by_position():
    x = torch.tensor([[3.0, 1.0, 2.0, 2.0, 2.0, 0.0]])  # n = 6, p = 50: k = 3, so two of the three 2s
    expected_p = torch.tensor([[3.0, 0.0, 2.0, 2.0, 0.0, 0.0]])
    for run in (lambda f, *a: f(*a), lambda f, *a: torch_path(f, *a)):
        assert torch.equal(run(ash_p, x, 50), expected_p)
        assert torch.equal(run(ash_b, x, 50), torch.where(expected_p != 0, 10.0 / 3, 0.0))
        torch.testing.assert_close(run(ash_s, x, 50), expected_p * math.exp(10.0 / 7))


def test_ash_b_keeps_exactly_k_with_ties_at_zero_on_both_paths():
    x = with_ties((200, 64), seed=3, signed=False)
    for p in (10, 50, 65, 90):
        k = kept_count(64, p)
        for out in (ash_b(x, p), torch_path(ash_b, x, p)):
            filled = (out != 0).sum(dim=1)
            assert (filled[x.sum(dim=1) != 0] == k).all()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_radix_selection_finds_the_kth_largest(dtype):
    """The fused pass's selection (radix on the float bits) against a sort, on values that stress it:
    ties, negative values, signed zeros, tiny and huge magnitudes, infinities, rows in one bucket."""
    from ashlib.methods.shaping import _KEEP, _fused

    g = torch.Generator().manual_seed(0)
    cases = [with_ties((257, 50), seed=1, dtype=dtype), relu_like((300, 77), seed=2, dtype=dtype),
             torch.randn(64, 300, generator=g, dtype=dtype) * 1e-30, torch.randn(64, 300, generator=g, dtype=dtype) * 1e30,
             1 + torch.rand(64, 300, generator=g, dtype=dtype) * 1e-6,  # every value in one top-level bucket
             torch.tensor([[-0.0, 0.0, -0.0, 1.0, -1.0, float("inf"), -float("inf"), 0.0]] * 4, dtype=dtype)]
    for x in cases:
        n = x.shape[1]
        for k in sorted({1, 2, n // 3, n // 2, n - 1, n}):
            _, t, kept = _fused(x.contiguous(), k, None, _KEEP)
            assert torch.equal(t.to(dtype), torch.sort(x, dim=1, descending=True).values[:, k - 1]), (x.shape, k)
            assert (kept == k).all()


def splitmix64_uniform(key: int, counter: int, low: float, high: float) -> float:
    """Independent reference in Python integers: the (counter + 1)-th output of splitmix64 (Steele,
    Lea and Flood, OOPSLA 2014) started from ``key``, its top 53 bits as a fraction, scaled to [low, high]."""
    mask = 2**64 - 1
    z = (key + (counter + 1) * 0x9E3779B97F4A7C15) & mask
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
    z ^= z >> 31
    return low + (high - low) * ((z >> 11) * 2.0**-53)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_ash_rand_draws_one_value_per_kept_value_in_position_order(dtype):
    x = relu_like((40, 30), seed=3, dtype=dtype).repeat(1, 200)  # 6,000 values a row: the fused pass
    n = x.shape[1]
    key = int(torch.randint(0, 2**62, (), generator=torch.Generator().manual_seed(5)))
    for kwargs in (dict(percentile=85), dict(threshold=2.5)):
        kept = ash_p(x, **kwargs) != 0
        want = torch.tensor([splitmix64_uniform(key, i * n + r, 1.0, 2.0)
                             for i, row in enumerate(kept) for r in range(int(row.sum()))], dtype=torch.float64)
        for path in (ash_rand, lambda *a, **kw: torch_path(ash_rand, *a, **kw)):
            out = path(x, **kwargs, low=1.0, high=2.0, generator=torch.Generator().manual_seed(5))
            assert torch.equal(out[kept], want.to(dtype)) and (out[~kept] == 0).all()


def test_ash_rand_draws_are_uniform_and_independent():
    from scipy import stats

    x = relu_like((200, 2000), seed=4)
    out = ash_rand(x, 90, low=-1.0, high=3.0, generator=torch.Generator().manual_seed(0))
    draws = out[ash_p(x, 90) != 0].double().numpy()  # 40,000 draws
    assert stats.kstest(draws, stats.uniform(loc=-1.0, scale=4.0).cdf).pvalue > 0.01
    assert abs(np.corrcoef(draws[:-1], draws[1:])[0, 1]) < 0.02  # neighbours uncorrelated
    again = ash_rand(x, 90, low=-1.0, high=3.0, generator=torch.Generator().manual_seed(0))
    assert torch.equal(out, again)
    assert not torch.equal(out, ash_rand(x, 90, low=-1.0, high=3.0))  # the default generator: another key


def test_gradients_flow_through_shaping():
    # ODIN + ASH differentiates the network's output through the shaping (the torch path).
    x = relu_like((3, 10), dtype=torch.float64).requires_grad_(True)
    ash_s(x, 50).sum().backward()
    kept = ash_p(x.detach(), 50) != 0
    assert torch.isfinite(x.grad).all() and (x.grad[kept] != 0).all()
    ash_s_fast = ash_s(x.detach(), 50)
    torch.testing.assert_close(ash_s_fast, torch_path(ash_s, x.detach(), 50), rtol=1e-12, atol=0)


@pytest.mark.parametrize("method", ["ash_p", "ash_b", "ash_s"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_sweep_equals_one_call_per_percentile(method, dtype):
    from ashlib.methods.shaping import sweep

    ps = [0, 10, 33.3, 65, 70, 90, 99, 100]
    for x in (with_ties((130, 2, 3, 3), seed=4, dtype=dtype), relu_like((70, 40), seed=5, dtype=dtype),
              with_ties((90, 30), seed=6, dtype=dtype, signed=False)):
        for p, out in zip(ps, sweep(method, x, ps)):
            torch.testing.assert_close(out, SHAPERS[method](x, p), rtol=1e-5 if dtype == torch.float32 else 1e-13,
                                       atol=0)
    from ashlib.methods.shaping import sweeps

    both = sweeps(x, {"ash_b": ps[:3], method: ps})
    for p, a, b in zip(ps, both[method], sweep(method, x, ps)):
        assert torch.equal(a, b)
    with pytest.raises(ParameterError, match="method='ash_rand'"):
        sweep("ash_rand", x, ps)
    with pytest.raises(ParameterError, match="percentile=101"):
        sweep(method, x, [50, 101])


def test_the_compiled_pass_is_cached_on_disk_and_found_again_by_the_next_process(tmp_path):
    """A second process loads the fused pass from numba's disk cache: it adds no entry (a pass that
    missed its cache compiled for seconds in every process and added one entry each time). The folder
    is set in numba's config, not in the environment the process's children inherit: a grader's kernel
    started after a test with its own temporary cache wrote there, outside its sandbox."""
    import os
    import subprocess
    import sys

    shape = "import os, torch; from ashlib.methods.shaping import ash_s; ash_s(torch.rand(64, 128), 90)"
    code = shape + "; assert 'NUMBA_CACHE_DIR' not in os.environ, os.environ['NUMBA_CACHE_DIR']"
    env = {**os.environ, "ASHLIB_CACHE": str(tmp_path)}
    env.pop("NUMBA_CACHE_DIR", None)
    entries = []
    for _ in range(2):
        subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=300)
        entries.append(sorted(p.name for p in (tmp_path / "numba").rglob("*.nbc")))
    assert entries[0] and entries[1] == entries[0]
    own = {**env, "NUMBA_CACHE_DIR": str(tmp_path / "own")}  # numba's own setting wins
    subprocess.run([sys.executable, "-c", shape], env=own, check=True, timeout=300)
    assert list((tmp_path / "own").rglob("*.nbc"))
    assert sorted(p.name for p in (tmp_path / "numba").rglob("*.nbc")) == entries[0]
