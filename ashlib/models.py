"""Models: a small ResNet-like CNN for the embedded benchmark, its seeded training recipe and checkpoint cache.

Every model is an :class:`torch.nn.Sequential` whose top-level children run in order
(``normalize, stem, layer1 .. layer4, avgpool, flatten, fc``). That one convention lets
:mod:`ashlib.features` cache the input of any stage and replay only the rest of the network,
and lets :mod:`ashlib.placement` hook any named module (``layer4.merge`` is the sum of a block
just before its last ReLU, the placement of the paper's Appendix A).
"""
from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from ashlib import cache_dir
from ashlib._checks import check_choice, check_positive_int, check_range

MODELS = ("smallresnet",)
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081


class Normalize(nn.Module):
    """Standardise inputs inside the network, so data stay in [0, 1] everywhere else."""

    def __init__(self, mean: float, std: float):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean))
        self.register_buffer("std", torch.tensor(std))

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.mean) / self.std


class BasicBlock(nn.Module):
    """ResNet basic block; ``merge`` (an identity) marks the sum before the block's last ReLU."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))
        self.merge = nn.Identity()
        self.relu = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        out = self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x)))))
        return self.relu(self.merge(out + self.shortcut(x)))


def small_resnet(num_classes: int = 10, width: int = 16, in_channels: int = 1) -> nn.Sequential:
    """ResNet-like CNN for 28x28 images: four stages of widths w, 2w, 4w, 8w; feature size 8w."""
    check_positive_int("width", width)
    w = width
    return nn.Sequential(OrderedDict(
        normalize=Normalize(MNIST_MEAN, MNIST_STD),
        stem=nn.Sequential(nn.Conv2d(in_channels, w, 3, 1, 1, bias=False), nn.BatchNorm2d(w), nn.ReLU()),
        layer1=BasicBlock(w, w, 1),
        layer2=BasicBlock(w, 2 * w, 2),
        layer3=BasicBlock(2 * w, 4 * w, 2),
        layer4=BasicBlock(4 * w, 8 * w, 2),
        avgpool=nn.AdaptiveAvgPool2d(1),
        flatten=nn.Flatten(),
        fc=nn.Linear(8 * w, num_classes),
    ))


@dataclass(frozen=True)
class TrainRecipe:
    """Seeded SGD recipe: Nesterov momentum, one-cycle learning rate, random shifts of +-``shift`` pixels."""

    epochs: int = 12
    batch_size: int = 64
    lr: float = 0.1
    weight_decay: float = 5e-4
    shift: int = 2
    seed: int = 0

    def __post_init__(self):
        check_positive_int("epochs", self.epochs)
        check_positive_int("batch_size", self.batch_size)
        check_range("lr", self.lr, 1e-6, 10)


def random_shift(x: Tensor, shift: int, generator: torch.Generator) -> Tensor:
    """Translate each image by a random integer offset in [-shift, shift] (zero padding)."""
    if shift == 0:
        return x
    n, _, h, w = x.shape
    padded = nn.functional.pad(x, (shift,) * 4)
    dy, dx = torch.randint(0, 2 * shift + 1, (2, n), generator=generator)
    rows = (torch.arange(h)[None, :] + dy[:, None])[:, None, :, None]
    cols = (torch.arange(w)[None, :] + dx[:, None])[:, None, None, :]
    idx_n = torch.arange(n)[:, None, None, None]
    idx_c = torch.arange(x.shape[1])[None, :, None, None]
    return padded[idx_n, idx_c, rows, cols]


def train(model: nn.Module, x: Tensor, y: Tensor, recipe: TrainRecipe = TrainRecipe(),
          device: str = "cpu", progress: bool = True) -> nn.Module:
    """Train ``model`` on (x, y) with ``recipe``; deterministic for a given seed and device."""
    torch.manual_seed(recipe.seed)
    gen = torch.Generator().manual_seed(recipe.seed)
    model.to(device).train()
    opt = torch.optim.SGD(model.parameters(), lr=recipe.lr, momentum=0.9, nesterov=True,
                          weight_decay=recipe.weight_decay)
    steps = recipe.epochs * -(-len(x) // recipe.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=recipe.lr, total_steps=steps)
    bar = tqdm(total=steps, desc="training", disable=not progress, unit="batch")
    for epoch in range(recipe.epochs):
        order = torch.randperm(len(x), generator=gen)
        for i in range(0, len(x), recipe.batch_size):
            idx = order[i:i + recipe.batch_size]
            xb = random_shift(x[idx], recipe.shift, gen).to(device)
            loss = nn.functional.cross_entropy(model(xb), y[idx].to(device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            bar.update()
        bar.set_postfix(epoch=epoch + 1, loss=f"{loss.item():.3f}")
    bar.close()
    return model.eval()


def tensor_digest(*tensors: Tensor) -> str:
    """sha256 of the tensors' shapes, dtypes and bytes: changes whenever the data change."""
    h = hashlib.sha256()
    for t in tensors:
        t = t.detach().cpu().contiguous()
        h.update(f"{tuple(t.shape)}{t.dtype}".encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()


def build_model(name: str, num_classes: int, width: int = 16, seed: int = 0) -> nn.Sequential:
    """An untrained model by name (see ``MODELS``), its initial weights drawn from ``seed``."""
    check_choice("model", name, MODELS)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return small_resnet(num_classes=num_classes, width=width)


def load_or_train(name: str, x_train: Tensor, y_train: Tensor, num_classes: int, width: int = 16,
                  recipe: TrainRecipe = TrainRecipe(), device: str = "cpu", progress: bool = True):
    """Return ``(model, checkpoint_path)``: the cached checkpoint for this architecture, recipe and
    training data, or a freshly trained one that is then cached (``$ASHLIB_CACHE/models``)."""
    config = dict(name=name, num_classes=num_classes, width=width, recipe=asdict(recipe),
                  data=tensor_digest(x_train, y_train), torch=torch.__version__.split("+")[0])
    key = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]
    path = cache_dir("models") / f"{name}-w{width}-{key}.pt"
    model = build_model(name, num_classes, width, seed=recipe.seed)
    if path.exists():
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    else:
        train(model, x_train, y_train, recipe, device=device, progress=progress)
        tmp = path.with_suffix(".tmp")
        torch.save(model.cpu().state_dict(), tmp)
        tmp.replace(path)
    return model.to(device).eval(), path
