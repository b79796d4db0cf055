"""ashlib.methods.mahalanobis: the paper's Mahalanobis baseline (Lee et al. 2018, as ReAct/DICE ran it).

Tiny models built here (nothing downloads or trains); every expected value is computed independently:
numpy/scikit-learn for the Gaussians, a hand-derived gradient step for the input pre-processing.
"""
from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest
import torch
from sklearn.covariance import EmpiricalCovariance
from sklearn.linear_model import LogisticRegressionCV
from torch import nn

from ashlib.methods import mahalanobis as M
from ashlib.stats import metrics
from ashlib.methods import scores
from ashlib._checks import ParameterError
from ashlib.assets.models import Normalize, densenet100, mobilenet_v2, small_resnet
from ashlib.methods.scores import MahalanobisFit

NUM_CLASSES = 3


def conv_net(seed: int = 0) -> nn.Sequential:
    """Two conv stages with batch norm (so train mode would differ), 2-channel 8x8 inputs."""
    torch.manual_seed(seed)
    model = nn.Sequential(OrderedDict(
        normalize=Normalize([0.5, 0.4], [0.5, 0.25]),
        layer1=nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU()),
        layer2=nn.Sequential(nn.Conv2d(4, 6, 3, stride=2, padding=1), nn.ReLU()),
        avgpool=nn.AdaptiveAvgPool2d(1), flatten=nn.Flatten(), fc=nn.Linear(6, NUM_CLASSES),
    ))
    bn = model.layer1[1]
    bn.running_mean.copy_(torch.tensor([0.1, -0.2, 0.3, 0.0]))
    bn.running_var.copy_(torch.tensor([0.5, 2.0, 1.5, 1.0]))
    return model.eval()


def blobs(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Class c: a bright square at position c plus noise, 2x8x8 images in [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % NUM_CLASSES
    x = 0.1 * torch.rand(n, 2, 8, 8, generator=g)
    for i, c in enumerate(y.tolist()):
        x[i, :, 2 * c:2 * c + 3, 2 * c:2 * c + 3] += 0.8
    return x.clamp(0, 1), y


def pooled(model: nn.Sequential, x: torch.Tensor, upto: str) -> torch.Tensor:
    """Mean-pooled output of top-level child ``upto``, run child by child (independent of hooks)."""
    h = x
    with torch.no_grad():
        for name, child in model.named_children():
            h = child(h)
            if name == upto:
                return h.mean(dim=(2, 3))
    raise AssertionError(upto)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny tensors: one torch thread is faster than two, much faster on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def setup(one_thread):
    model = conv_net()
    x_train, y_train = blobs(60, seed=1)
    x_test, _ = blobs(15, seed=2)
    fit = M.fit(model, x_train, y_train, NUM_CLASSES, ["layer1", "layer2"], batch_size=16)
    return model, x_train, y_train, x_test, fit


# ------------------------------------------------------------------------------ (1) magnitude 0
def test_gaussians_match_sklearn_empirical_covariance(setup):
    model, x_train, y_train, _, fit = setup
    assert fit.layers == ("layer1", "layer2") and fit.num_classes == NUM_CLASSES
    for layer, g in zip(fit.layers, fit.fits):
        f = pooled(model, x_train, layer).double().numpy()
        y = y_train.numpy()
        means = np.stack([f[y == c].mean(0) for c in range(NUM_CLASSES)])
        ec = EmpiricalCovariance(assume_centered=False).fit(f - means[y])
        np.testing.assert_allclose(g.means.numpy(), means, rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(g.precision.numpy(), ec.precision_, rtol=1e-5, atol=1e-6)


def test_magnitude_zero_is_half_the_feature_only_score_and_sklearn(setup):
    model, x_train, y_train, x_test, fit = setup
    got = M.layer_scores(model, fit, x_test, 0.0, batch_size=4)
    assert got.shape == (len(x_test), 2) and got.dtype == torch.float64
    for i, layer in enumerate(fit.layers):
        f_train = pooled(model, x_train, layer).double().numpy()
        f_test = pooled(model, x_test, layer).double().numpy()
        y = y_train.numpy()
        means = np.stack([f_train[y == c].mean(0) for c in range(NUM_CLASSES)])
        ec = EmpiricalCovariance(assume_centered=False).fit(f_train - means[y])
        # EmpiricalCovariance.mahalanobis measures from location_ (~0 for class-centred features)
        d = np.stack([ec.mahalanobis(f_test - means[c] + ec.location_) for c in range(NUM_CLASSES)], axis=1)
        np.testing.assert_allclose(got[:, i].numpy(), -0.5 * d.min(axis=1), rtol=1e-5, atol=1e-7)
        own = scores.mahalanobis(torch.from_numpy(f_test), fit.fits[i])
        np.testing.assert_allclose(got[:, i].numpy(), 0.5 * own.numpy(), rtol=1e-9, atol=1e-12)


def test_penultimate_layer_of_smallresnet_equals_scores_mahalanobis():
    torch.manual_seed(0)
    model = small_resnet(num_classes=NUM_CLASSES, width=2).eval()
    g = torch.Generator().manual_seed(3)
    x, y = torch.rand(30, 1, 28, 28, generator=g), torch.arange(30) % NUM_CLASSES
    assert M.stage_layers(model) == ["layer1", "layer2", "layer3", "layer4"]
    fit = M.fit(model, x, y, NUM_CLASSES, ["layer4"])
    with torch.no_grad():
        penultimate = model[:-1](x)  # normalize .. flatten: the input of fc
    ref = scores.mahalanobis(penultimate[:7], scores.fit_mahalanobis(penultimate, y, NUM_CLASSES))
    got = M.layer_scores(model, fit, x[:7], 0.0)[:, 0]
    torch.testing.assert_close(got, 0.5 * ref.double(), rtol=1e-6, atol=1e-6)


# --------------------------------------------------------------------- (2) the pre-processing step
def one_by_one_net() -> nn.Sequential:
    """f(x) = mean_hw(x0 / 0.5 - x1 / 0.25 + 0 * x2 / 0.2): d f / d x_c = w_c / (std_c * H * W)."""
    conv = nn.Conv2d(3, 1, 1, bias=False)
    fc = nn.Linear(1, 2, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([1.0, -1.0, 0.0]).reshape(1, 3, 1, 1))
        fc.weight.copy_(torch.tensor([[1.0], [-1.0]]))
    return nn.Sequential(OrderedDict(normalize=Normalize([0.0, 0.0, 0.0], [0.5, 0.25, 0.2]), layer1=conv,
                                     avgpool=nn.AdaptiveAvgPool2d(1), flatten=nn.Flatten(), fc=fc)).eval()


def hand_fit() -> M.MahalanobisLayersFit:
    """Two 1-d Gaussians at 0 and 1.5 with precision 2: d_c = 2 (f - mu_c)^2, score -(f - mu_c*)^2."""
    g = MahalanobisFit(means=torch.tensor([[0.0], [1.5]], dtype=torch.float64),
                       precision=torch.tensor([[2.0]], dtype=torch.float64))
    return M.MahalanobisLayersFit(layers=("layer1",), fits=(g,))


def two_images() -> torch.Tensor:
    x = torch.zeros(2, 3, 4, 4)
    x[0, 0], x[1, 0] = 0.25, 0.6  # f = 2 * x0 - 4 * x1 = 0.5 (closest mean 0) and 1.2 (closest 1.5)
    x[:, 2] = 0.3
    return x


def test_preprocessing_step_in_normalized_units_by_hand():
    model, fit, x = one_by_one_net(), hand_fit(), two_images()
    # image 0: grad sign (+, -, 0->+) -> x0 - 0.1*0.5, x1 + 0.1*0.25: f' = 0.5 - 2*0.1 = 0.3, score -0.09
    # image 1: closest 1.5, grad sign (-, +, +) -> x0 + 0.05, x1 - 0.025 (below 0: no clamp):
    #          f' = 1.2 + 0.2 = 1.4, score -(1.4 - 1.5)^2 = -0.01
    got = M.layer_scores(model, fit, x, 0.1)[:, 0]
    torch.testing.assert_close(got, torch.tensor([-0.09, -0.01], dtype=torch.float64), rtol=0, atol=1e-6)
    got0 = M.layer_scores(model, fit, x, 0.0)[:, 0]
    torch.testing.assert_close(got0, torch.tensor([-0.25, -0.09], dtype=torch.float64), rtol=0, atol=1e-6)


def test_preprocessing_step_in_input_units_by_hand():
    model, fit, x = one_by_one_net(), hand_fit(), two_images()
    # a step of m in pixel units moves f by m/0.5 + m/0.25 = 6m: f' = 0.5 - 0.3 = 0.2, 1.2 + 0.3 = 1.5
    got = M.layer_scores(model, fit, x, 0.05, step_units="input")[:, 0]
    torch.testing.assert_close(got, torch.tensor([-0.04, 0.0], dtype=torch.float64), rtol=0, atol=1e-6)


def test_fgsm_by_hand_including_zero_gradient_and_clamp():
    model = one_by_one_net()
    x = torch.full((1, 3, 2, 2), 0.5)
    x[0, 1, 0, 0] = 0.99
    # logits (f, -f); CE at label 0 falls as f grows: grad signs (-, +, 0 -> +)
    got = M.fgsm(model, x, torch.tensor([0]), epsilon=0.1)
    want = torch.empty_like(x)
    want[0, 0], want[0, 1], want[0, 2] = 0.5 - 0.1 * 0.5, 0.5 + 0.1 * 0.25, 0.5 + 0.1 * 0.2
    want[0, 1, 0, 0] = 1.0  # 0.99 + 0.025 clamped to [0, 1]
    torch.testing.assert_close(got, want)
    got_input = M.fgsm(model, x, torch.tensor([0]), epsilon=0.1, step_units="input")
    torch.testing.assert_close(got_input[0, :, 1, 1], torch.tensor([0.4, 0.6, 0.6]))


# ---------------------------------------------------------------------------- (3) the regressor
def test_regressor_separates_id_from_shifted_data_and_picks_a_listed_magnitude(setup):
    model, x_train, y_train, x_test, fit = setup
    x_val, y_val = blobs(40, seed=4)
    magnitudes = (0.0, 0.02, 0.005)
    tuned = M.fit_regressor(model, fit, x_val, y_val, magnitudes=magnitudes, n_val=40, batch_size=16)
    magnitude, regressor = tuned
    assert magnitude in magnitudes and set(tuned.validation_fpr) == set(magnitudes)
    assert tuned.validation_fpr[magnitude] == min(tuned.validation_fpr.values())
    assert isinstance(regressor, LogisticRegressionCV) and regressor.coef_.shape == (1, 2)
    ood = torch.rand(15, 2, 8, 8, generator=torch.Generator().manual_seed(5))  # uniform noise
    s_id = M.score(model, fit, regressor, magnitude, x_test)
    s_ood = M.score(model, fit, regressor, magnitude, ood)
    assert s_id.shape == (15,) and s_id.dtype == torch.float64 and (s_id <= 0).all() and (s_id >= -1).all()
    assert metrics.auroc(s_id, s_ood) > 0.95
    # the official score: minus the probability of "adversarial" (class 1) of the per-layer scores
    want = -regressor.predict_proba(M.layer_scores(model, fit, x_test, magnitude).numpy())[:, 1]
    np.testing.assert_allclose(s_id.numpy(), want, rtol=0, atol=1e-12)
    # deterministic for a seed
    again = M.fit_regressor(model, fit, x_val, y_val, magnitudes=magnitudes, n_val=40, batch_size=7)
    assert again.magnitude == magnitude and again.validation_fpr == tuned.validation_fpr
    np.testing.assert_allclose(again.regressor.coef_, regressor.coef_, rtol=1e-9)


def test_datasets_give_what_tensors_give(setup, image_set):
    model, x_train, y_train, x_test, fit = setup
    fit_ds = M.fit(model, image_set(x_train), y_train, NUM_CLASSES, list(fit.layers), batch_size=16)
    for a, b in zip(fit.fits, fit_ds.fits):
        torch.testing.assert_close(a.precision, b.precision)
    torch.testing.assert_close(M.layer_scores(model, fit, image_set(x_test), 0.01, batch_size=4),
                               M.layer_scores(model, fit, x_test, 0.01, batch_size=6))


# ------------------------------------------------------------------------------------ stage layers
def test_stage_layers_of_the_architectures():
    assert M.stage_layers(densenet100(num_classes=10, depth=10)) == ["stem", "trans1", "trans2", "head"]
    assert M.stage_layers(mobilenet_v2(num_classes=10)) == [f"layer{i}" for i in range(1, 8)] + ["head"]
    assert M.stage_layers(conv_net()) == ["layer1", "layer2"]
    with pytest.raises(ParameterError, match="model with children"):
        M.stage_layers(nn.Sequential(nn.Linear(2, 2)))


# ------------------------------------------------------------------------------ (4) validation
def test_parameter_errors_name_the_parameter(setup):
    model, x_train, y_train, x_test, fit = setup
    x_val, y_val = blobs(12, seed=6)
    cases = [
        (lambda: M.layer_scores(model, fit, x_test, -0.1), "magnitude=-0.1"),
        (lambda: M.layer_scores(model, fit, x_test, 0.0, step_units="pixels"), "step_units='pixels'"),
        (lambda: M.layer_scores(model, fit, x_test, 0.0, batch_size=0), "batch_size=0"),
        (lambda: M.layer_scores(model, fit, x_test[0], 0.0), "x has shape"),
        (lambda: M.layer_scores(model, "fit", x_test, 0.0), "fit of type str"),
        (lambda: M.layer_scores(nn.Sequential(nn.Identity()), fit, x_test, 0.0), "layer='layer1'"),
        (lambda: M.fit(model, x_train, y_train, NUM_CLASSES, "layer1"), "layers='layer1'"),
        (lambda: M.fit(model, x_train, y_train, NUM_CLASSES, []), "layers=[]"),
        (lambda: M.fit(model, x_train, y_train, NUM_CLASSES, ["nope"]), "layer='nope'"),
        (lambda: M.fit(model, x_train, y_train, NUM_CLASSES, ["layer1", "layer1"]), "distinct"),
        (lambda: M.fit(model, x_train, y_train, 0, ["layer1"]), "num_classes=0"),
        (lambda: M.fit(model, x_train, y_train[:5], NUM_CLASSES, ["layer1"]), "y_train="),
        (lambda: M.fit(model, x_train, y_train.float(), NUM_CLASSES, ["layer1"]), "y_train="),
        (lambda: M.fit(model, [1, 2], y_train, NUM_CLASSES, ["layer1"]), "x_train of type list"),
        (lambda: M.fit_regressor(model, fit, x_val, y_val, magnitudes=[]), "magnitudes=[]"),
        (lambda: M.fit_regressor(model, fit, x_val, y_val, magnitudes=[0.0, -1.0]), "magnitudes=-1.0"),
        (lambda: M.fit_regressor(model, fit, x_val, y_val, magnitudes=[0.0, 0.0]), "distinct"),
        (lambda: M.fit_regressor(model, fit, x_val, y_val, n_val=5), "n_val=5"),
        (lambda: M.fit_regressor(model, fit, x_val, y_val, adv_noise=-0.05), "adv_noise=-0.05"),
        (lambda: M.fit_regressor(model, fit, x_val, y_val, seed="0"), "seed='0'"),
        (lambda: M.score(model, fit, object(), 0.0, x_test), "regressor="),
        (lambda: M.fgsm(model, x_test, y_val[:3]), "y="),
        (lambda: M.fgsm(model, x_test, torch.zeros(15, dtype=torch.long), epsilon=-1), "epsilon=-1"),
    ]
    for call, message in cases:
        with pytest.raises(ParameterError, match=message.replace("[", r"\[").replace("]", r"\]")):
            call()
    no_normalize = conv_net()[1:]  # keeps the names layer1, layer2, ..
    plain_fit = M.fit(no_normalize, x_train, y_train, NUM_CLASSES, ["layer1"])
    with pytest.raises(ParameterError, match="step_units='normalized'"):
        M.layer_scores(no_normalize, plain_fit, x_test, 0.1)
    assert M.layer_scores(no_normalize, plain_fit, x_test, 0.1, step_units="input").shape == (15, 1)


# ------------------------------------------------------------- (5) inputs, mode, gradients intact
def test_inputs_unmodified_mode_restored_no_parameter_grad(setup):
    _, x_train, y_train, x_test, _ = setup
    model = conv_net()
    fit_eval = M.fit(model, x_train, y_train, NUM_CLASSES, ["layer1", "layer2"])
    want = M.layer_scores(model, fit_eval, x_test, 0.01)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    x_train0, y_train0, x_test0 = x_train.clone(), y_train.clone(), x_test.clone()
    model.train()
    fit = M.fit(model, x_train, y_train, NUM_CLASSES, ["layer1", "layer2"])
    got = M.layer_scores(model, fit, x_test, 0.01)
    tuned = M.fit_regressor(model, fit, x_train, y_train, magnitudes=(0.0, 0.01), n_val=30)
    M.score(model, fit, tuned.regressor, tuned.magnitude, x_test)
    M.fgsm(model, x_test, y_train[:15])
    torch.testing.assert_close(got, want)  # computed in eval mode: train-mode BN would differ
    assert all(m.training for m in model.modules())
    assert all(p.grad is None for p in model.parameters())
    for k, v in model.state_dict().items():  # BN running statistics untouched
        torch.testing.assert_close(v, state[k], rtol=0, atol=0)
    assert torch.equal(x_train, x_train0) and torch.equal(y_train, y_train0) and torch.equal(x_test, x_test0)
    with torch.no_grad(), torch.inference_mode():  # works inside no-grad / inference mode too
        torch.testing.assert_close(M.layer_scores(model, fit, x_test, 0.01), want)
