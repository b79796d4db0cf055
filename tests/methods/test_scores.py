"""Acceptance tests of ashlib.methods.scores: every score against a hand-worked example, a numpy/scipy
re-computation and, where it has one, the peer library pytorch-ood 0.4.0.

pytorch-ood's detectors return outlier scores ("higher = more OOD"); ashlib's scores are
"higher = more ID", so pytorch-ood's values are negated (or rescaled, for Mahalanobis) below.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.special import logsumexp, softmax
from sklearn.covariance import EmpiricalCovariance

from ashlib._checks import ParameterError
from ashlib.methods.scores import (
    LOGIT_SCORES,
    MahalanobisFit,
    dice,
    energy,
    fit_dice_mask,
    fit_mahalanobis,
    logit_score,
    mahalanobis,
    max_logit,
    misp,
    msp,
    odin,
    react,
)

import pytorch_ood.detector as pood  # noqa: E402  (pinned test dependency: its absence must fail, not skip)

LN2, LN5 = math.log(2), math.log(5)


def close(actual: torch.Tensor, expected, rtol: float = 1e-6, atol: float = 1e-6) -> None:
    np.testing.assert_allclose(actual.detach().cpu().double().numpy(), np.asarray(expected, dtype=float),
                               rtol=rtol, atol=atol)


@pytest.fixture
def logits() -> torch.Tensor:
    return torch.randn(50, 7, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 3


@pytest.fixture
def linear() -> torch.nn.Linear:
    torch.manual_seed(1)
    return torch.nn.Linear(12, 5).double()


@pytest.fixture
def feats() -> torch.Tensor:  # ReLU-like penultimate features (N, D)
    return torch.randn(40, 12, generator=torch.Generator().manual_seed(2), dtype=torch.float64).relu() * 2


# ------------------------------------------------------------------------------- logit scores
def test_logit_scores_hand_worked():
    # logits (0, ln2, ln5): exp = (1, 2, 5), sum 8 -> softmax (1/8, 2/8, 5/8)
    # logits (0, ln3):      exp = (1, 3),    sum 4 -> softmax (1/4, 3/4)
    three = torch.tensor([[0.0, LN2, LN5]])
    two = torch.tensor([[0.0, math.log(3)]])
    close(msp(three), [5 / 8]), close(msp(two), [3 / 4])
    close(misp(three), [-1 / 8]), close(misp(two), [-1 / 4])
    close(energy(three), [math.log(8)]), close(energy(two), [math.log(4)])
    close(max_logit(three), [LN5])
    # T = 2 on (0, 2 ln2, 2 ln5): logits/T = (0, ln2, ln5) -> msp 5/8, energy = 2 * ln 8
    doubled = 2 * three
    close(msp(doubled, temperature=2.0), [5 / 8])
    close(energy(doubled, temperature=2.0), [2 * math.log(8)])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_energy_is_torch_logsumexp_to_the_last_bit_even_where_exp_underflows(dtype):
    """energy skips exp on the terms that underflow (a CPU's exp is slow there): no value may move."""
    g = torch.Generator().manual_seed(0)
    for scale in (1e-3, 1.0, 10.0, 80.0, 88.0, 100.0, 700.0, 710.0, 1e4, 1e23):  # ASH-S's logits reach 1e23
        for n, c in ((1000, 10), (57, 3), (200, 100)):
            x = torch.randn(n, c, generator=g, dtype=dtype) * scale
            assert torch.equal(energy(x), torch.logsumexp(x, dim=1)), (scale, n, c)
            assert torch.equal(energy(x, 2.0), 2.0 * torch.logsumexp(x / 2.0, dim=1)), (scale, n, c)
    edge = torch.tensor([[math.inf, 1.0], [-math.inf, 0.0], [-math.inf, -math.inf], [math.nan, 1.0], [3e38, 3e38],
                         [0.0, -87.0], [0.0, -88.0], [0.0, -103.5], [0.0, -745.0]], dtype=dtype)
    assert torch.equal(energy(edge).nan_to_num(7.0), torch.logsumexp(edge, dim=1).nan_to_num(7.0))


def test_logit_scores_match_scipy(logits):
    z = logits.numpy()
    for t in (1.0, 0.5, 1000.0):
        close(msp(logits, t), softmax(z / t, axis=1).max(axis=1))
        close(energy(logits, t), t * logsumexp(z / t, axis=1))
    close(misp(logits), -softmax(z, axis=1).min(axis=1))
    close(max_logit(logits), z.max(axis=1))


def test_logit_scores_match_pytorch_ood(logits):
    # pytorch-ood: MaxSoftmax.score = -MSP, EnergyBased.score = energy = -T*lse, MaxLogit.score = -max logit
    for t in (1.0, 3.0):
        close(msp(logits, t), -pood.MaxSoftmax.score(logits, t))
        close(energy(logits, t), -pood.EnergyBased.score(logits, t))
    close(max_logit(logits), -pood.MaxLogit.score(logits))


def test_misp_orientation():
    confident = torch.tensor([[10.0, 0.0, 0.0, 0.0]])
    uniform = torch.zeros(1, 4)
    assert misp(confident).item() > misp(uniform).item()
    close(misp(uniform), [-0.25])
    # with two classes min p = 1 - max p, so MiSP = MSP - 1 (same ranking as MSP)
    two = torch.randn(20, 2, generator=torch.Generator().manual_seed(3))
    close(misp(two), msp(two) - 1)


def test_logit_score_registry(logits):
    assert set(LOGIT_SCORES) == {"msp", "misp", "energy", "max_logit"}
    for name, fn in LOGIT_SCORES.items():
        assert torch.equal(logit_score(name, logits), fn(logits))
    with pytest.raises(ParameterError, match=r"name='softmax'.*'msp'"):
        logit_score("softmax", logits)


def test_outputs_are_detached_1d_float(linear, feats):
    lg = torch.randn(4, 3, requires_grad=True)
    w = linear.weight  # requires grad
    f = feats.clone().requires_grad_()
    outs = [fn(lg) for fn in LOGIT_SCORES.values()]
    outs += [react(f, w, linear.bias, 1.0), dice(f, w, linear.bias, fit_dice_mask(w, f.mean(0), 50))]
    outs.append(mahalanobis(f, fit_mahalanobis(f, torch.arange(40) % 3, 3)))
    for out in outs:
        assert out.ndim == 1 and out.is_floating_point() and not out.requires_grad
    assert msp(torch.tensor([[1, 2], [3, 0]])).dtype == torch.float32  # integer logits are accepted


@pytest.mark.parametrize("shape", [(5,), (2, 3, 4), (4, 1)])
def test_bad_logits_shape(shape):
    for fn in LOGIT_SCORES.values():
        with pytest.raises(ParameterError, match=r"logits has shape \(" + ", ".join(map(str, shape))):
            fn(torch.zeros(shape))


def test_bad_arguments():
    with pytest.raises(ParameterError, match="logits must be a torch.Tensor"):
        msp(np.zeros((2, 3)))
    for t in (0, -1.0, "1", float("nan"), math.inf, True):
        with pytest.raises(ParameterError, match="temperature="):
            energy(torch.zeros(2, 3), temperature=t)
        with pytest.raises(ParameterError, match="temperature="):
            odin(torch.nn.Linear(2, 2), torch.zeros(1, 2), temperature=t)
    with pytest.raises(ParameterError, match="epsilon=-0.1"):
        odin(torch.nn.Linear(2, 2), torch.zeros(1, 2), epsilon=-0.1)
    with pytest.raises(ParameterError, match=r"model\(x\) has shape \(1, 1\)"):
        odin(torch.nn.Linear(2, 1), torch.zeros(1, 2))
    for p in (-1, 100.5, "90"):
        with pytest.raises(ParameterError, match="percentile="):
            fit_dice_mask(torch.ones(3, 4), torch.ones(4), p)
    w, b = torch.ones(3, 4), torch.zeros(3)
    with pytest.raises(ParameterError, match=r"features has shape \(2, 5\)"):
        react(torch.ones(2, 5), w, b, 1.0)
    with pytest.raises(ParameterError, match=r"features has shape \(2, 4, 1, 1\)"):
        react(torch.ones(2, 4, 1, 1), w, b, 1.0)
    with pytest.raises(ParameterError, match=r"bias has shape \(4,\)"):
        react(torch.ones(2, 4), w, torch.zeros(4), 1.0)
    with pytest.raises(ParameterError, match="threshold="):
        react(torch.ones(2, 4), w, b, float("nan"))
    with pytest.raises(ParameterError, match=r"mask has shape \(4, 3\)"):
        dice(torch.ones(2, 4), w, b, torch.ones(4, 3, dtype=torch.bool))
    with pytest.raises(ParameterError, match=r"mean_feature has shape \(3,\)"):
        fit_dice_mask(w, torch.ones(3), 90)


# ------------------------------------------------------------------------------------- ReAct
def test_react_hand_worked():
    # W = I, b = (0, 1), f = (3, 0.2), threshold 1 -> clipped (1, 0.2) -> logits (1, 1.2)
    # score = lse(1, 1.2) = 1.2 + ln(1 + e^-0.2)
    w, b = torch.eye(2), torch.tensor([0.0, 1.0])
    close(react(torch.tensor([[3.0, 0.2]]), w, b, 1.0), [1.2 + math.log1p(math.exp(-0.2))])


def test_react_matches_numpy_and_pytorch_ood(linear, feats):
    w, b = linear.weight, linear.bias
    thr = float(np.percentile(feats.numpy(), 90))
    expected = logsumexp(np.minimum(feats.numpy(), thr) @ w.detach().numpy().T + b.detach().numpy(), axis=1)
    close(react(feats, w, b, thr), expected)
    # pytorch-ood ReAct with an identity backbone: clips, applies the head, returns energy = -score
    det = pood.ReAct(backbone=lambda z: z, head=linear, threshold=thr)
    close(react(feats, w, b, thr), -det.predict_feature_maps(feats))
    # no clipping when the threshold is above every activation: plain energy of the logits
    close(react(feats, w, b, math.inf), energy(linear(feats)))


# -------------------------------------------------------------------------------------- DICE
def test_dice_hand_worked():
    # contributions W * m with W = [[1, 2, 3], [4, -1, .5]], m = (1, .5, 2): [[1, 1, 6], [4, -.5, 1]]
    # sorted (-.5, 1, 1, 1, 4, 6); 50th percentile at position .5 * 5 = 2.5 -> (1 + 1) / 2 = 1
    # keep contributions > 1 (the three ties at 1 are dropped): only 6 and 4
    w = torch.tensor([[1.0, 2.0, 3.0], [4.0, -1.0, 0.5]])
    mask = fit_dice_mask(w, torch.tensor([1.0, 0.5, 2.0]), 50)
    assert mask.dtype == torch.bool
    assert mask.tolist() == [[False, False, True], [True, False, False]]
    # 80th percentile: position 4 -> 4; keep > 4: only 6
    assert fit_dice_mask(w, torch.tensor([1.0, 0.5, 2.0]), 80).sum().item() == 1
    # f = (1, 1, 1), b = 0: masked logits (3, 4) -> lse = 4 + ln(1 + e^-1)
    b = torch.zeros(2)
    close(dice(torch.ones(1, 3), w, b, mask), [4 + math.log1p(math.exp(-1))])
    # DICE + ReAct at 0.5: f = (.5, .5, .5) -> logits (1.5, 2) -> 2 + ln(1 + e^-.5)
    close(dice(torch.ones(1, 3), w, b, mask, threshold=0.5), [2 + math.log1p(math.exp(-0.5))])


def test_dice_matches_numpy(linear, feats):
    w, b = linear.weight.detach().numpy(), linear.bias.detach().numpy()
    m = feats.mean(0).numpy()
    for p in (0, 10, 70, 90, 100):
        contrib = w * m
        mask_np = contrib > np.percentile(contrib, p)
        mask = fit_dice_mask(linear.weight, feats.mean(0), p)
        assert np.array_equal(mask.numpy(), mask_np)
        close(dice(feats, linear.weight, linear.bias, mask), logsumexp(feats.numpy() @ (w * mask_np).T + b, axis=1))
        clipped = np.minimum(feats.numpy(), 1.0)
        close(dice(feats, linear.weight, linear.bias, mask, threshold=1.0),
              logsumexp(clipped @ (w * mask_np).T + b, axis=1))
    # an all-true mask is plain energy
    full = torch.ones(5, 12, dtype=torch.bool)
    close(dice(feats, linear.weight, linear.bias, full), energy(linear(feats)))


def test_dice_matches_pytorch_ood(linear, feats):
    # pytorch-ood's p is a fraction (0.9 = drop the lowest 90%) and it returns energy = -score
    labels = torch.zeros(len(feats), dtype=torch.long)
    for p in (10, 70, 90):
        det = pood.DICE(None, linear.weight, linear.bias, p=p / 100).fit_features(feats, labels)
        mask = fit_dice_mask(linear.weight, feats.mean(0), p)
        assert torch.equal(det.masked_w != 0, mask)
        close(dice(feats, linear.weight, linear.bias, mask), -det.predict_features(feats))


# ------------------------------------------------------------------------------- Mahalanobis
def test_mahalanobis_hand_worked():
    # class 0: (1,0), (-1,0) -> mu0 = (0,0); class 1: (10,1), (10,-1) -> mu1 = (10,0)
    # centred: (1,0), (-1,0), (0,1), (0,-1) -> Sigma = [[2,0],[0,2]] / 4 = .5 I -> P = 2 I
    # f = (1,1): d0 = 2*(1+1) = 4, d1 = 2*(81+1) = 164 -> -4
    # f = (7,0): d0 = 2*49 = 98, d1 = 2*9 = 18 -> -18
    x = torch.tensor([[1.0, 0], [-1, 0], [10, 1], [10, -1]])
    fit = fit_mahalanobis(x, torch.tensor([0, 0, 1, 1]), 2)
    assert isinstance(fit, MahalanobisFit) and fit.num_classes == 2
    close(fit.means, [[0, 0], [10, 0]])
    close(fit.precision, 2 * np.eye(2))
    out = mahalanobis(torch.tensor([[1.0, 1.0], [7.0, 0.0]]), fit)
    assert out.dtype == torch.float32
    close(out, [-4, -18])


def _numpy_mahalanobis(train, labels, test, num_classes):
    means = np.stack([train[labels == c].mean(0) for c in range(num_classes)])
    centred = train - means[labels]
    prec = EmpiricalCovariance(assume_centered=False).fit(centred).precision_  # OpenOOD's MDS recipe
    d = np.stack([np.einsum("nd,de,ne->n", test - mu, prec, test - mu) for mu in means], axis=1)
    return means, prec, -d.min(axis=1)


def test_mahalanobis_matches_numpy_sklearn():
    g = torch.Generator().manual_seed(4)
    labels = torch.arange(90) % 3
    train = torch.randn(90, 6, generator=g, dtype=torch.float64) + 2 * torch.nn.functional.one_hot(labels, 6)
    test = torch.randn(25, 6, generator=g, dtype=torch.float64)
    means, prec, expected = _numpy_mahalanobis(train.numpy(), labels.numpy(), test.numpy(), 3)
    fit = fit_mahalanobis(train, labels, 3)
    close(fit.means, means)
    close(fit.precision, prec)
    close(mahalanobis(test, fit), expected)
    # singular covariance (a dead unit, as after a ReLU): pseudo-inverse, like sklearn's pinvh
    train[:, 2], test[:, 2] = 0, 0
    _, prec, expected = _numpy_mahalanobis(train.numpy(), labels.numpy(), test.numpy(), 3)
    fit = fit_mahalanobis(train, labels, 3)
    close(fit.precision, prec, atol=1e-8)
    close(mahalanobis(test, fit), expected)


def test_mahalanobis_matches_pytorch_ood():
    # pytorch-ood fits cov = sum of centred outer products (not divided by N) + 1e-6 I and returns
    # 0.5 * min_c d^T cov^-1 d, so its outlier score is -ours / (2 N) (up to the 1e-6 ridge).
    g = torch.Generator().manual_seed(5)
    labels = torch.arange(60) % 4
    train = torch.randn(60, 5, generator=g) + torch.nn.functional.one_hot(labels, 5) * 3
    test = torch.randn(20, 5, generator=g) * 2
    det = pood.Mahalanobis(None).fit_features(train, labels)
    theirs = det.predict_features(test)
    close(mahalanobis(test, fit_mahalanobis(train, labels, 4)), -2 * len(train) * theirs, rtol=1e-4)


def test_fit_mahalanobis_bad_labels():
    x = torch.randn(6, 3)
    with pytest.raises(ParameterError, match=r"no samples of classes \[2\]"):
        fit_mahalanobis(x, torch.tensor([0, 0, 1, 1, 3, 3]), 4)
    with pytest.raises(ParameterError, match=r"labels must lie in \[0, 1\]"):
        fit_mahalanobis(x, torch.tensor([0, 0, 1, 1, 2, 2]), 2)
    with pytest.raises(ParameterError, match="labels has shape"):
        fit_mahalanobis(x, torch.zeros(6), 2)
    with pytest.raises(ParameterError, match="num_classes=0"):
        fit_mahalanobis(x, torch.zeros(6, dtype=torch.long), 0)
    with pytest.raises(ParameterError, match=r"features has shape \(2, 4\)"):
        mahalanobis(torch.zeros(2, 4), fit_mahalanobis(x, torch.zeros(6, dtype=torch.long), 1))


# -------------------------------------------------------------------------------------- ODIN
def test_odin_hand_worked():
    # identity model, x = (1, 0), yhat = 0, T = 2. log S_0 = x0/T - lse(x/T):
    # d/dx0 = (1 - S_0)/T > 0, d/dx1 = -S_1/T < 0 -> sign(-grad) = (-1, +1)
    # x' = x - eps * (-1, +1) = (1 + eps, -eps) = (1.1, -0.1) for eps = 0.1
    # score = softmax((1.1, -0.1) / 2)_0 = 1 / (1 + e^-0.6)
    model = torch.nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.eye(2))
    close(odin(model, torch.tensor([[1.0, 0.0]]), temperature=2.0, epsilon=0.1), [1 / (1 + math.exp(-0.6))])


def _tiny_cnn() -> torch.nn.Module:
    torch.manual_seed(6)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
        torch.nn.Linear(4, 5),
    ).eval()


def test_odin_matches_pytorch_ood():
    # norm_std=None: pytorch-ood then does not rescale the signed gradient, exactly as ashlib.
    model, x = _tiny_cnn(), torch.rand(8, 3, 8, 8, generator=torch.Generator().manual_seed(7))
    for t, eps in ((1000.0, 0.0014), (1.0, 0.05)):
        theirs = pood.ODIN(model, eps=eps, temperature=t, norm_std=None).predict(x)
        close(odin(model, x, temperature=t, epsilon=eps), -theirs, rtol=1e-5)
    # epsilon = 0 is plain temperature-scaled MSP
    close(odin(model, x, temperature=10.0, epsilon=0.0), msp(model(x), 10.0), rtol=1e-5)
    assert not torch.allclose(odin(model, x, 1.0, 0.05), msp(model(x)))  # the perturbation matters


def test_odin_epsilon_in_the_normalised_input_space():
    # The official ODIN code of ReAct and DICE (get_odin_score) steps by epsilon in the normalised input (no division by
    # the std). Our networks normalise inside, so input_scale=std must give exactly pytorch-ood's ODIN
    # (norm_std=None: no rescaling) run on the network without its normalisation, on normalised inputs.
    from ashlib.assets.models import Normalize

    mean, std = (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)
    inner = _tiny_cnn()
    outer = torch.nn.Sequential(Normalize(mean, std), inner).eval()
    x = torch.rand(6, 3, 8, 8, generator=torch.Generator().manual_seed(3))
    x_norm = outer[0](x)
    theirs = pood.ODIN(inner, eps=0.0028, temperature=1000.0, norm_std=None).predict(x_norm)
    ours = odin(outer, x, 1000.0, 0.0028, input_scale=outer[0].std)
    close(ours, -theirs, rtol=1e-5)
    # in raw-pixel units the same epsilon is a step about 5x larger here, and the scores differ
    assert not torch.allclose(odin(outer, x, 1000.0, 0.0028), ours, rtol=1e-7, atol=0)
    # hand-worked: identity "network" x / 2 on two channels, x = (1, 0): grad sign as in
    # test_odin_hand_worked, so x' = x - eps * scale * (-1, +1) = (1 + 2 eps, -2 eps) with scale 2,
    # and model(x') = (0.5 + eps, -eps) = (0.6, -0.1) for eps = 0.1, T = 1
    model = torch.nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.eye(2) / 2)
    close(odin(model, torch.tensor([[1.0, 0.0]]), 1.0, 0.1, input_scale=torch.tensor([2.0, 2.0])),
          [1 / (1 + math.exp(-0.7))])
    for bad in (0, -1.0, torch.tensor([[-1.0, 1.0]])):
        with pytest.raises(ParameterError, match="input_scale"):
            odin(model, torch.tensor([[1.0, 0.0]]), 1.0, 0.1, input_scale=bad)


def test_odin_leaves_model_and_input_alone():
    model, x = _tiny_cnn(), torch.rand(4, 3, 8, 8)
    x0 = x.clone()
    with torch.no_grad():
        ref = odin(model, x)
    assert not ref.requires_grad and ref.shape == (4,)
    assert all(p.grad is None for p in model.parameters())
    assert not model.training and x.grad is None and torch.equal(x, x0)
    with torch.inference_mode():
        x_inf = x.clone()
        close(odin(model, x_inf), ref)
    model.train()
    odin(model, x)
    assert model.training and all(p.grad is None for p in model.parameters())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_odin_on_cuda():
    model, x = _tiny_cnn(), torch.rand(4, 3, 8, 8)
    out = odin(model.cuda(), x.cuda())
    assert out.device.type == "cuda"
    close(out, odin(model.cpu(), x), rtol=1e-4)
