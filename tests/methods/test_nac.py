"""Acceptance tests of ashlib.methods.nac (Neuron Activation Coverage, Liu et al., ICLR 2024): a network worked
by hand, the conv path against a manual autograd computation, batching, the official bin edges, the
peer library pytorch-ood 0.4.0 (where it agrees and where it documentedly differs), the model left
untouched, NAC-ME, and parameter errors.
"""
from __future__ import annotations

import math
from collections import OrderedDict

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from ashlib._checks import ParameterError
from ashlib.assets.models import build_model
from ashlib.stats import metrics
from ashlib.methods.nac import (
    CIFAR10_DEFAULTS,
    CIFAR100_DEFAULTS,
    IMAGENET_DEFAULTS,
    LAYER_NAMES,
    NAC_ME_ALPHA,
    NAC_ME_LAYER,
    NAC_ME_M,
    NAC_ME_O,
    OFFICIAL_N_FIT,
    SEARCH_GRIDS,
    LayerConfig,
    NACFit,
    bin_edges,
    bin_index,
    class_balanced_subset,
    coverage,
    default_configs,
    fit_layer,
    fit_nac,
    fit_nac_me,
    fit_states,
    kl_gradients,
    layer_nac_me,
    nac_me,
    nac_me_configs,
    nac_score,
    nac_ue,
    neuron_states,
    official_table,
    search_configs,
    search_grid,
    states_from,
    take,
)

LN2, LN4 = math.log(2), math.log(4)


def close(actual, expected, rtol=1e-6, atol=1e-6):
    np.testing.assert_allclose(torch.as_tensor(actual).detach().double().numpy(),
                               np.asarray(expected, dtype=float), rtol=rtol, atol=atol)


def small_net(seed: int = 1) -> nn.Module:
    """Untrained width-4 small ResNet (fast); eval mode."""
    return build_model("smallresnet", 10, width=4, seed=seed).eval()


def images(n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, 28, 28, generator=g) ** 2


def manual_output_and_grad(model: nn.Module, x: torch.Tensor, layer: str):
    """Reference: the unpooled output of ``layer`` and the gradient of sum_n sum_c -(1/C) log p_nc."""
    model.eval()
    box = {}
    handle = model.get_submodule(layer).register_forward_hook(lambda _m, _i, out: box.setdefault("o", out))
    try:
        logits = model(x)
    finally:
        handle.remove()
    loss = (-(1.0 / logits.shape[1]) * torch.log_softmax(logits, dim=1)).sum()
    (g,) = torch.autograd.grad(loss, box["o"])
    return box["o"].detach(), g


# ------------------------------------------------------------------------------- hand-worked network
def tiny_net() -> nn.Module:
    """hidden: o = W1 x + b1 with W1 = diag(2, 1), b1 = (0, ln 2); head: z = W2 o, 3 classes,
    W2 = [[1, 0], [0, 1], [0, 0]], no bias. float64 so the hand values hold to ~1e-15."""
    net = nn.Sequential(OrderedDict(hidden=nn.Linear(2, 2), head=nn.Linear(2, 3, bias=False))).double()
    with torch.no_grad():
        net.hidden.weight.copy_(torch.tensor([[2.0, 0.0], [0.0, 1.0]], dtype=torch.float64))
        net.hidden.bias.copy_(torch.tensor([0.0, LN2], dtype=torch.float64))
        net.head.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]], dtype=torch.float64))
    return net


def inputs_for(outputs) -> torch.Tensor:
    """x with hidden(x) = o: x = ((o1 - 0) / 2, o2 - ln 2)."""
    o = torch.tensor(outputs, dtype=torch.float64)
    return torch.stack([o[:, 0] / 2, o[:, 1] - LN2], dim=1)


def test_hand_worked_tiny_network():
    # Loss L = sum_c -(1/3) log p_c, so dL/dz = p - u (u = 1/3 each) and g = dL/do = W2^T (p - u)
    # = (p1 - 1/3, p2 - 1/3). alpha = 6, so state = sigmoid(6 o g).
    #  o = (ln4, 0): z = (ln4, 0, 0), p = (4, 1, 1)/6 = (2/3, 1/6, 1/6), p - u = (1/3, -1/6, -1/6),
    #                g = (1/3, -1/6), o*g = (2 ln2 / 3, 0), states = (sigmoid(4 ln2), 1/2) = (16/17, 1/2)
    #  o = (ln2, 0): z = (ln2, 0, 0), p = (1/2, 1/4, 1/4), g = (1/6, -1/12), o*g = (ln2 / 6, 0),
    #                states = (sigmoid(ln2), 1/2) = (2/3, 1/2)
    #  o = (0, ln2): by symmetry g = (-1/12, 1/6), states = (1/2, 2/3)
    #  o = (0, 0):   p = u, g = (0, 0), states = (1/2, 1/2)
    # (A gradient taken w.r.t. the input instead would give x * W1^T g, e.g. (1/2, 1/2) for o = (0, ln2).)
    net = tiny_net()
    train_o = [(LN4, 0), (LN2, 0), (0, LN2), (0, 0), (LN4, 0)]
    x_train = inputs_for(train_o)
    o, g = kl_gradients(net, x_train, ["hidden"], batch_size=2)["hidden"]
    close(o, train_o, atol=1e-12)
    third, sixth, twelfth = 1 / 3, 1 / 6, 1 / 12
    close(g, [(third, -sixth), (sixth, -twelfth), (-twelfth, sixth), (0, 0), (third, -sixth)], atol=1e-12)

    cfg = LayerConfig("hidden", threshold=2, bins=5, alpha=6, binning="linear")
    states = neuron_states(net, x_train, [cfg])["hidden"]
    close(states, [(16 / 17, 0.5), (2 / 3, 0.5), (0.5, 2 / 3), (0.5, 0.5), (16 / 17, 0.5)], atol=1e-12)

    # 5 linear bins [0,.2) [.2,.4) [.4,.6) [.6,.8) [.8,1]: 1/2 -> bin 2, 2/3 -> bin 3, 16/17 -> bin 4.
    # neuron 1: samples in bins 4, 3, 2, 2, 4 -> counts (0, 0, 2, 1, 2)
    # neuron 2: samples in bins 2, 2, 3, 2, 2 -> counts (0, 0, 4, 1, 0)
    fit = fit_nac(net, x_train, torch.arange(5), [cfg], n_fit=None)
    assert torch.equal(fit["hidden"].counts, torch.tensor([[0, 0, 2, 1, 2], [0, 0, 4, 1, 0]]))

    # coverage table min(count / O, 1), O = 2: neuron 1 (0, 0, 1, .5, 1), neuron 2 (0, 0, 1, .5, 0)
    #  test o = (0, ln4): states (1/2, 16/17) -> bins (2, 4) -> (1, 0)   -> mean 0.5
    #  test o = (ln2, 0): states (2/3, 1/2)   -> bins (3, 2) -> (.5, 1)  -> mean 0.75
    #  test o = (ln4, 0): states (16/17, 1/2) -> bins (4, 2) -> (1, 1)   -> mean 1.0
    x_test = inputs_for([(0, LN4), (LN2, 0), (LN4, 0)])
    close(nac_ue(fit, net, x_test, batch_size=2), [0.5, 0.75, 1.0], atol=1e-12)

    # NAC-ME: integral of the coverage over [0, 1], bins 0.2 wide:
    # neuron 1: 0.2 * (1 + .5 + 1) = 0.5, neuron 2: 0.2 * (1 + .5) = 0.3, mean 0.4
    assert nac_me(fit) == pytest.approx(0.4, abs=1e-12)


def test_official_bin_edges():
    # official Estimator.thresh = logspace(1e3, M) without the unreachable [1.01, 1.2) interval.
    # M = 6: k = 3, t = log_1000(linspace(1, sqrt(1000), 3)) = (0, log_1000(16.3114), 0.5)
    #        = (0, 0.40416364, 0.5); mirrored 1 - t; top raised to 1.01.
    close(bin_edges(6), [0.0, 0.40416364, 0.5, 0.59583636, 1.01], atol=1e-8)
    e50 = bin_edges(50)
    assert len(e50) == 49 and e50[24] == 0.5 and e50[0] == 0.0 and e50[-1] == 1.01
    close(e50[1], 0.11905418, atol=1e-8)
    widths = e50.diff()
    assert widths.argmin() in (23, 24) and widths.min() == pytest.approx(0.005962234, abs=1e-9)
    assert len(bin_edges(500)) == 499
    # intervals are [t_j, t_{j+1}): 0.5 opens bin 2; 1.0 lies in the last bin
    assert bin_index(torch.tensor([0.0, 0.4, 0.5, 0.6, 1.0]), bin_edges(6)).tolist() == [0, 0, 2, 3, 3]
    # linear bins: the last is closed so a saturated state 1.0 counts
    assert bin_index(torch.tensor([0.0, 0.19, 0.2, 0.99, 1.0]), bin_edges(5, "linear")).tolist() == [0, 0, 1, 4, 4]
    # NAC-ME integrates over [0, 1] only: the 1.01 top edge is clipped
    cfg = LayerConfig("x", threshold=1, bins=6, alpha=1)
    full = fit_layer(torch.tensor([[0.1], [0.45], [0.55], [0.9]]), cfg)
    assert full.counts.tolist() == [[1, 1, 1, 1]]
    assert layer_nac_me(full) == pytest.approx(1.0, abs=1e-12)
    # the integral weights each bin by its width: only the two narrow middle bins covered
    middle = fit_layer(torch.tensor([[0.45], [0.55]]), cfg)
    assert layer_nac_me(middle) == pytest.approx(0.59583636 - 0.40416364, abs=1e-8)


# ------------------------------------------------------------------------------- conv path, batching
def test_conv_path_sums_output_and_gradient_over_hw():
    net = small_net()
    x = images(6)
    o_ref, g_ref = manual_output_and_grad(net, x, "layer2")
    assert o_ref.ndim == 4 and o_ref.shape[2:] == (14, 14)
    o, g = kl_gradients(net, x, ["layer2"], batch_size=4)["layer2"]
    close(o, o_ref.sum(dim=(2, 3)), rtol=1e-5, atol=1e-6)
    close(g, g_ref.sum(dim=(2, 3)), rtol=1e-5, atol=1e-9)
    cfg = LayerConfig("layer2", threshold=5, bins=50, alpha=30.0)
    expected = torch.sigmoid(30.0 * o_ref.sum(dim=(2, 3)) * g_ref.sum(dim=(2, 3)))
    close(neuron_states(net, x, [cfg])["layer2"], expected, rtol=1e-5, atol=1e-6)
    # not the mean of the product (pytorch-ood) and not the product of means
    prod_mean = torch.sigmoid(30.0 * (o_ref * g_ref).mean(dim=(2, 3)))
    assert not torch.allclose(neuron_states(net, x, [cfg])["layer2"], prod_mean, atol=1e-4)


def test_batch_size_does_not_change_states():
    net = small_net().train()  # BatchNorm in train mode would mix samples: NAC must switch to eval
    x = images(10, seed=3)
    layers = ["avgpool", "layer3", "layer1", "fc"]
    one = kl_gradients(net, x, layers, batch_size=1)
    seven = kl_gradients(net, x, layers, batch_size=7)
    for layer in layers:
        for a, b in zip(one[layer], seven[layer]):
            close(a, b, rtol=1e-5, atol=1e-8)
    assert net.training


# ---------------------------------------------------------------------------------------- pytorch-ood
import pytorch_ood.detector.nac as pood_nac  # noqa: E402  (pinned test dependency: its absence must fail, not skip)


def _use_our_bins(monkeypatch, edges):
    """Make pytorch-ood's NACUE bin with our edges (its `m` must then be our number of bins)."""
    monkeypatch.setattr(pood_nac, "_bin_indices_geometric", lambda z, m: bin_index(z, edges))


def test_pytorch_ood_agrees_where_states_are_defined_alike(monkeypatch):
    # avgpool (1x1 maps) and fc (N, C): sum_hw(o) * sum_hw(g) = mean_hw(o * g), so with the same
    # bins pytorch-ood's NACUE must give our coverage, summed over layers instead of averaged, negated.
    net = small_net()
    x_fit, x_test = images(64, seed=4), torch.cat([images(24, seed=5), images(8, seed=4)])
    configs = [LayerConfig("avgpool", threshold=3, bins=50, alpha=5e4),
               LayerConfig("fc", threshold=2, bins=50, alpha=1e3)]
    edges = bin_edges(50)
    _use_our_bins(monkeypatch, edges)
    theirs = pood_nac.NACUE(net, layers=[net.avgpool, net.fc], m_bins=len(edges) - 1, alpha=[5e4, 1e3],
                            o_star=[3, 2])
    theirs.fit(DataLoader(TensorDataset(x_fit), batch_size=16))
    ours = fit_nac(net, x_fit, torch.zeros(64, dtype=torch.long), configs, n_fit=None, batch_size=16)
    for stats, fit in zip(theirs._stats, ours.layers):
        assert torch.equal(stats.counts, fit.counts)
    assert (ours["avgpool"].counts > 0).sum(dim=1).median() >= 5  # states spread over several bins
    ours_scores = nac_ue(ours, net, x_test, batch_size=16)
    close(-theirs.predict(x_test) / 2, ours_scores, atol=1e-6)
    assert ours_scores.std() > 0.01


def test_pytorch_ood_differs_in_conv_reduction_and_bins(monkeypatch):
    # (a) conv layer: pytorch-ood's state is sigmoid(alpha * mean_hw(o * g)); check it is exactly that
    # formula (through our histogram and coverage) and that ours, sigmoid(alpha * sum(o) * sum(g)), is not.
    net = small_net()
    x_fit, x_test = images(48, seed=6), images(16, seed=7)
    alpha = 300.0
    cfg = LayerConfig("layer3", threshold=2, bins=50, alpha=alpha)
    _use_our_bins(monkeypatch, cfg.edges)
    theirs = pood_nac.NACUE(net, layers=[net.layer3], m_bins=len(cfg.edges) - 1, alpha=alpha, o_star=2)
    theirs.fit(DataLoader(TensorDataset(x_fit), batch_size=16))

    def mean_of_product_states(x):
        o, g = manual_output_and_grad(net, x, "layer3")
        return torch.sigmoid(alpha * (o * g).mean(dim=(2, 3)))

    ref_fit = fit_layer(mean_of_product_states(x_fit), cfg)
    assert torch.equal(theirs._stats[0].counts, ref_fit.counts)
    close(-theirs.predict(x_test), coverage(ref_fit, mean_of_product_states(x_test)), atol=1e-6)
    ours = fit_nac(net, x_fit, torch.zeros(48, dtype=torch.long), [cfg], n_fit=None)
    assert not torch.equal(ours["layer3"].counts, ref_fit.counts)
    assert not torch.allclose(neuron_states(net, x_test, [cfg])["layer3"], mean_of_product_states(x_test), atol=1e-3)

    # (b) bins: pytorch-ood's geometric bins are narrowest at 0 and 1, the official ones at 0.5
    monkeypatch.undo()
    grid = torch.linspace(0, 1, 200_001, dtype=torch.float64)[1:-1]
    pood_widths = torch.bincount(pood_nac._bin_indices_geometric(grid, 50), minlength=50).double()
    assert pood_widths[0] < pood_widths[24] / 10 and pood_widths[-1] < pood_widths[25] / 10
    ours_widths = bin_edges(50).diff()
    assert ours_widths[24] < ours_widths[0] / 10 and ours_widths[23] < ours_widths[-1] / 10


# --------------------------------------------------------------------------------- model untouched
def test_model_untouched():
    net = build_model("smallresnet", 10, width=4, seed=2)
    net.train()
    net.layer2.eval()  # a mixed mode must come back as it was, module by module
    modes = {name: m.training for name, m in net.named_modules()}
    before = {k: v.clone() for k, v in net.state_dict().items()}
    x, y = images(20, seed=8), torch.arange(20) % 10
    configs = default_configs("mnist5k", network=net)
    with torch.no_grad():
        fit = fit_nac(net, x, y, configs, n_fit=10, batch_size=8)
        scores = nac_ue(fit, net, x[:5], batch_size=8)
    with torch.inference_mode():
        again = nac_ue(fit, net, x[:5], batch_size=8)
    assert scores.shape == (5,) and torch.equal(scores, again)
    assert all(p.grad is None for p in net.parameters())
    assert {name: m.training for name, m in net.named_modules()} == modes
    after = net.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # BatchNorm statistics too
    # frozen parameters: the states are the same
    for p in net.parameters():
        p.requires_grad_(False)
    frozen = neuron_states(net, x[:5], configs)
    for p in net.parameters():
        p.requires_grad_(True)
    free = neuron_states(net, x[:5], configs)
    for layer in free:
        assert torch.equal(frozen[layer], free[layer])


def test_inplace_modification_is_refused():
    net = nn.Sequential(OrderedDict(lin=nn.Linear(3, 4), act=nn.ReLU(inplace=True), head=nn.Linear(4, 2)))
    with pytest.raises(ParameterError, match="in place"):
        kl_gradients(net, torch.randn(5, 3), ["lin"])
    assert kl_gradients(net, torch.randn(5, 3), ["act"])["act"][0].shape == (5, 4)


# ------------------------------------------------------------------------------- subset, data, fit
def test_class_balanced_subset():
    labels = torch.tensor([0] * 50 + [1] * 30 + [2] * 8)
    idx = class_balanced_subset(labels, 21, seed=0)
    assert torch.bincount(labels[idx]).tolist() == [7, 7, 7]
    assert torch.equal(idx, idx.sort().values) and len(set(idx.tolist())) == 21
    assert torch.equal(idx, class_balanced_subset(labels, 21, seed=0))
    assert not torch.equal(idx, class_balanced_subset(labels, 21, seed=1))
    capped = class_balanced_subset(labels, 90, seed=0)  # the smallest class (8) caps every class
    assert torch.bincount(labels[capped]).tolist() == [8, 8, 8]
    assert torch.bincount(labels[class_balanced_subset(labels, 23, seed=0)]).tolist() == [7, 7, 7]


def test_dataset_input_matches_tensor_input(image_set):
    net = small_net()
    x, y = images(30, seed=9), torch.arange(30) % 3
    configs = [LayerConfig("layer3", threshold=2, bins=50, alpha=300.0),
               LayerConfig("avgpool", threshold=2, bins=20, alpha=5e4, binning="linear")]
    a = fit_nac(net, x, y, configs, n_fit=12, seed=1, batch_size=5)
    b = fit_nac(net, image_set(x), y, configs, n_fit=12, seed=1, batch_size=5)
    assert torch.equal(a.indices, b.indices) and len(a.indices) == 12
    for fa, fb in zip(a.layers, b.layers):
        assert torch.equal(fa.counts, fb.counts) and fa.counts.sum() == 12 * fa.counts.shape[0]
    states = neuron_states(net, x, configs)
    per_layer = [coverage(a[layer], states[layer]) for layer in ("layer3", "avgpool")]
    close(nac_score(a, states), (per_layer[0] + per_layer[1]) / 2)
    assert 0 <= nac_me(a) <= 1


def _values(table):
    return {k: (c.threshold, c.bins, c.alpha) for k, c in table.items()}


def test_official_per_layer_values():
    """(O, M, sig_alpha) of layer_kwargs in BierOne/ood_coverage configs/postprocessors/nac/resnet/nac_*.yml."""
    assert _values(CIFAR10_DEFAULTS) == {
        "avgpool": (50, 50, 100), "layer3": (100, 500, 1000), "layer2": (5, 50, 0.001), "layer1": (100, 500, 0.001)}
    assert _values(CIFAR100_DEFAULTS) == {
        "avgpool": (50, 50, 50), "layer3": (500, 1000, 10), "layer2": (500, 50, 1), "layer1": (5, 50, 0.005)}
    assert _values(IMAGENET_DEFAULTS) == {
        "avgpool": (10, 50, 3000), "layer3": (500, 50, 300), "layer2": (50, 500, 0.01), "layer1": (5000, 1000, 1)}
    assert OFFICIAL_N_FIT == 1000  # README: --valid-num 1000 for ResNet-18 (CIFAR) and ResNet-50 (ImageNet)
    for table in (CIFAR10_DEFAULTS, CIFAR100_DEFAULTS, IMAGENET_DEFAULTS):
        assert list(table) == ["avgpool", "layer3", "layer2", "layer1"]
        assert all(c.binning == "official" and c.layer == k for k, c in table.items())


def test_default_configs_per_benchmark_and_network():
    assert default_configs("mnist5k") == list(CIFAR10_DEFAULTS.values()) == default_configs("fmnist", "smallresnet")
    assert default_configs("imagenet") == list(IMAGENET_DEFAULTS.values())
    assert default_configs("imagenet", "resnet50", build_model("resnet50", 1000)) == list(IMAGENET_DEFAULTS.values())
    # DenseNet-100 (no official values): ResNet-18's, at the dense block of the same resolution
    assert LAYER_NAMES["densenet100"] == {"avgpool": "avgpool", "layer3": "block3", "layer2": "block2",
                                          "layer1": "block1"}
    for bench, table in (("cifar10", CIFAR10_DEFAULTS), ("cifar100", CIFAR100_DEFAULTS)):
        configs = default_configs(bench, None, build_model("densenet100", 10))
        assert [c.layer for c in configs] == ["avgpool", "block3", "block2", "block1"]
        assert [(c.threshold, c.bins, c.alpha) for c in configs] == list(_values(table).values())
    assert [official_table(b) for b in ("mnist5k", "fmnist", "cifar10", "cifar100", "imagenet")] == [
        "cifar10", "cifar10", "cifar10", "cifar100", "imagenet"]
    with pytest.raises(ParameterError, match="model='mobilenet_v2' is not allowed for NAC"):
        default_configs("imagenet", "mobilenet_v2")
    with pytest.raises(ParameterError, match="model='resnet50' is not allowed for benchmark='cifar10'"):
        default_configs("cifar10", "resnet50")
    with pytest.raises(ParameterError, match="layer="):  # the network must have every layer
        default_configs("cifar10", "densenet100", small_net())
    with pytest.raises(ParameterError, match="model=Sequential"):
        default_configs("cifar10", build_model("densenet100", 10))
    with pytest.raises(ParameterError, match="benchmark"):
        default_configs("svhn")


def test_official_search_grids():
    """postprocessor_sweep of the same files: the grids the published numbers were searched over."""
    assert SEARCH_GRIDS["imagenet"] == {
        "avgpool": {"O": (10, 50, 500), "M": (50, 500), "alpha": (3000,)},
        "layer3": {"O": (100, 500), "M": (50, 500), "alpha": (50, 100, 300)},
        "layer2": {"O": (50, 500), "M": (500,), "alpha": (0.01,)},
        "layer1": {"O": (5000,), "M": (500, 1000), "alpha": (0.1, 1)}}
    assert SEARCH_GRIDS["cifar10"]["layer1"] == {"O": (5, 10, 50, 100), "M": (50, 500), "alpha": (0.001, 0.005)}
    assert SEARCH_GRIDS["cifar100"]["layer3"] == {"O": (500,), "M": (50, 500, 1000), "alpha": (10, 50, 100)}
    sizes = {b: math.prod(len(v) for g in grid.values() for v in g.values()) for b, grid in SEARCH_GRIDS.items()}
    assert sizes == {"cifar10": 256, "cifar100": 288, "imagenet": 576}
    tables = (("cifar10", CIFAR10_DEFAULTS), ("cifar100", CIFAR100_DEFAULTS), ("imagenet", IMAGENET_DEFAULTS))
    for bench, table in tables:
        for layer, c in table.items():  # the shipped values are a point of the grid
            g = SEARCH_GRIDS[bench][layer]
            assert c.threshold in g["O"] and c.bins in g["M"] and c.alpha in g["alpha"], (bench, layer)
    assert list(search_grid("cifar100", "densenet100")) == ["avgpool", "block3", "block2", "block1"]
    assert search_grid("fmnist") == SEARCH_GRIDS["cifar10"]


# ------------------------------------------------------------------------------------------- NAC-ME
def test_nac_me_official_setup():
    """domainbed/config.yaml: O 500, M 50, sig_alpha 1e-1, method sigmoid(o*g_kl[f]); layer avgpool
    (get_intr_name); Estimator thresholds linspace(0, 1, M)."""
    assert (NAC_ME_LAYER, NAC_ME_O, NAC_ME_M, NAC_ME_ALPHA) == ("avgpool", 500, 50, 0.1)
    (cfg,) = nac_me_configs()
    assert (cfg.layer, cfg.threshold, cfg.alpha, cfg.binning, cfg.bins) == ("avgpool", 500, 0.1, "linear", 49)
    assert torch.equal(cfg.edges, torch.linspace(0, 1, 50, dtype=torch.float64))  # the official thresholds


def test_nac_me_fits_every_correctly_classified_training_image():
    net = small_net(seed=3)
    x = images(40, seed=11)
    with torch.no_grad():
        predicted = net(x).argmax(1)
    y = predicted.clone()
    wrong = torch.arange(40) % 3 == 0
    y[wrong] = (predicted[wrong] + 1) % 10
    fit = fit_nac_me(net, x, y, batch_size=16)
    assert torch.equal(fit.indices, (~wrong).nonzero().flatten())  # all images, only the correct ones
    (cfg,) = fit.configs
    assert cfg == nac_me_configs()[0]
    states = neuron_states(net, x, [cfg])["avgpool"]
    assert torch.equal(fit["avgpool"].counts, fit_layer(states[~wrong], cfg).counts)
    # the official Estimator: thresholds linspace(0, 1, M), [t_j, t_{j+1}), score sum_b min(count / O, 1) / M
    t = np.linspace(0, 1, NAC_ME_M)
    s = states[~wrong].double().numpy()
    counts = ((s[:, None, :] >= t[:-1, None]) & (s[:, None, :] < t[1:, None])).sum(0)
    official = (np.minimum(counts / NAC_ME_O, 1).sum(0) / NAC_ME_M).mean()
    assert official > 0
    assert nac_me(fit) * (NAC_ME_M - 1) / NAC_ME_M == pytest.approx(official, rel=1e-9)
    # no correct image: nothing is counted
    none = fit_nac_me(net, x, (predicted + 1) % 10)
    assert len(none.indices) == 0 and nac_me(none) == 0.0
    # correct_only with a subset: the class-balanced subset, then its correct images
    sub = fit_nac(net, x, y, nac_me_configs(), n_fit=20, correct_only=True)
    chosen = class_balanced_subset(y, 20)
    assert torch.equal(sub.indices, chosen[(predicted == y)[chosen]])


def test_fit_states_is_fit_nac(image_set):
    net = small_net()
    x, y = images(30, seed=12), torch.arange(30) % 10
    configs = default_configs("mnist5k")
    a = fit_nac(net, x, y, configs, n_fit=20, seed=2, batch_size=8)
    idx = class_balanced_subset(y, 20, seed=2)
    b = fit_states(neuron_states(net, take(x, idx), configs, batch_size=8), configs, idx)
    assert torch.equal(a.indices, b.indices)
    assert all(torch.equal(fa.counts, fb.counts) for fa, fb in zip(a.layers, b.layers))
    assert isinstance(take(image_set(x), idx), torch.utils.data.Subset)
    with pytest.raises(ParameterError, match="lacks layers"):
        fit_states({}, configs)


# ------------------------------------------------------------------------------------------- search
def test_search_configs_is_the_official_joint_search():
    """Every combination, jointly over layers, in the official order (first layer's O fastest); each
    scored as fit_nac + nac_ue + AUROC would score it; the first highest AUROC wins."""
    net = small_net(seed=4)
    x_train, y_train = images(60, seed=13), torch.arange(60) % 10
    x_id = images(30, seed=14)
    x_ood = torch.rand(30, 1, 28, 28)  # uniform noise: brighter and rougher than the squared images
    grid = {"avgpool": {"O": [1, 3], "M": [6, 50], "alpha": [1e-9, 5e4]},
            "layer3": {"O": [2], "M": [50], "alpha": [1e-9, 300.0]}}
    result = search_configs(net, x_train, y_train, x_id, x_ood, grid, n_fit=30, batch_size=16)
    assert len(result.results) == 16
    first = result.results.iloc[:3]
    assert first["avgpool O"].tolist() == [1, 3, 1] and first["avgpool M"].tolist() == [6, 6, 50]
    assert result.results["layer3 alpha"].tolist() == [1e-9] * 8 + [300.0] * 8
    for _, row in result.results.iterrows():
        configs = [LayerConfig(layer, row[f"{layer} O"], int(row[f"{layer} M"]), row[f"{layer} alpha"])
                   for layer in grid]
        fit = fit_nac(net, x_train, y_train, configs, n_fit=30, batch_size=16)
        expected = 100 * metrics.auroc(nac_ue(fit, net, x_id), nac_ue(fit, net, x_ood))
        assert row["AUROC"] == pytest.approx(expected, abs=1e-9)
    best = result.results.AUROC.idxmax()  # idxmax: the first maximum
    assert result.auroc == result.results.AUROC[best] > 60
    assert [(c.layer, c.threshold, c.bins, c.alpha) for c in result.configs] == [
        (layer, result.results[f"{layer} O"][best], result.results[f"{layer} M"][best],
         result.results[f"{layer} alpha"][best]) for layer in grid]
    # alpha 1e-9 puts every state at 0.5: one bin, the same coverage for all, AUROC 50
    assert result.results.AUROC[0] == pytest.approx(50.0)
    assert result.auroc_of(result.configs) == result.auroc
    assert math.isnan(result.auroc_of([LayerConfig("avgpool", 7, 6, 1e-9), LayerConfig("layer3", 2, 50, 1e-9)]))
    # every combination tied: the first one
    flat = search_configs(net, x_train, y_train, x_id, x_ood, {"avgpool": {"O": [1, 2], "M": [6], "alpha": [1e-9]}},
                          n_fit=30)
    assert [c.threshold for c in flat.configs] == [1] and flat.auroc == pytest.approx(50.0)


@pytest.mark.parametrize("grid, message", [
    ({}, "grid="), ({"avgpool": {"O": [1], "M": [6]}}, "keys"), ({"avgpool": {"O": [], "M": [6], "alpha": [1]}},
                                                                 "grid\\['avgpool'\\]\\['O'\\]"),
    ({"avgpool": {"O": [1], "M": [7], "alpha": [1]}}, "bins=7"), ({"avgpool": {"O": [1], "M": [6], "alpha": [-1]}},
                                                                  "alpha=-1"),
])
def test_search_grid_is_checked(grid, message):
    with pytest.raises(ParameterError, match=message):
        search_configs(small_net(), images(10), torch.arange(10), images(4), images(4), grid)


# ------------------------------------------------------------------------------------- validation
@pytest.mark.parametrize("kwargs, name", [
    (dict(threshold=0), "threshold"), (dict(threshold=-1), "threshold"), (dict(threshold=math.inf), "threshold"),
    (dict(bins=0), "bins"), (dict(bins=7), "bins"), (dict(bins=2), "bins"), (dict(bins=2.5), "bins"),
    (dict(alpha=0), "alpha"), (dict(alpha=-1.0), "alpha"), (dict(alpha=math.nan), "alpha"),
    (dict(alpha=True), "alpha"), (dict(binning="log"), "binning"), (dict(layer=""), "layer"),
])
def test_layer_config_validation(kwargs, name):
    args = dict(layer="avgpool", threshold=50, bins=50, alpha=100.0) | kwargs
    with pytest.raises(ParameterError, match=rf"{name}="):
        LayerConfig(**args)


def test_validation_errors_name_the_parameter():
    assert LayerConfig("fc", threshold=1, bins=7, alpha=1, binning="linear").edges.shape == (8,)
    net = small_net()
    x = images(4)
    with pytest.raises(ParameterError, match="layer='layer9'"):
        neuron_states(net, x, [LayerConfig("layer9", threshold=5, bins=50, alpha=1)])
    with pytest.raises(ParameterError, match="batch_size="):
        neuron_states(net, x, CIFAR10_DEFAULTS, batch_size=0)
    with pytest.raises(ParameterError, match="more than once"):
        neuron_states(net, x, [CIFAR10_DEFAULTS["layer1"], CIFAR10_DEFAULTS["layer1"]])
    with pytest.raises(ParameterError, match="n="):
        class_balanced_subset(torch.arange(10), 5)
    with pytest.raises(ParameterError, match="alpha="):
        states_from(torch.ones(2, 2), torch.ones(2, 2), -1)
    fit = fit_layer(torch.full((3, 4), 0.5), LayerConfig("fc", threshold=1, bins=4, alpha=1))
    with pytest.raises(ParameterError, match="neurons"):
        coverage(fit, torch.full((3, 5), 0.5))
    with pytest.raises(ParameterError, match="lacks layers"):
        nac_score(NACFit(layers=(fit,)), {})
    with pytest.raises(ParameterError, match="y_train"):
        fit_nac(net, x, torch.arange(3), CIFAR10_DEFAULTS)
