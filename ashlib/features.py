"""Feature caching: run the network once per (weights, data, layer), keep the activations on disk.

Sweeps over (method, p, placement) then cost only the shaping and the layers after the
placement: :func:`run_after` replays the tail of a sequential model from a cached activation.
"""
from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from ashlib import cache_dir
from ashlib._checks import check_choice, check_positive_int
from ashlib.models import tensor_digest
from ashlib.placement import get_layer, shaping_at


def model_digest(model: nn.Module) -> str:
    """sha256 over parameter and buffer names and values: changes whenever the weights change."""
    state = model.state_dict()
    h = hashlib.sha256("|".join(state).encode())
    h.update(tensor_digest(*state.values()).encode())
    return h.hexdigest()


def _cache_path(model_key: str, data_key: str, layer: str):
    key = hashlib.sha256(f"{model_key}|{data_key}|{layer}".encode()).hexdigest()[:24]
    return cache_dir("features") / f"{layer}-{key}.pt"


@torch.no_grad()
def activations(model: nn.Module, x: Tensor, layers: Sequence[str], batch_size: int = 256,
                device: str = "cpu", cache: bool = True, desc: str = "features") -> dict[str, Tensor]:
    """Outputs of the named ``layers`` for every image in ``x`` (float32, on the CPU).

    Cached under ``$ASHLIB_CACHE/features`` with a key made of the weights, the data and the layer
    name, so a changed checkpoint or data set is never served stale activations. One forward pass
    computes every layer that is not cached yet.
    """
    check_positive_int("batch_size", batch_size)
    layers = list(dict.fromkeys(layers))
    for layer in layers:
        get_layer(model, layer)
    keys = (model_digest(model), tensor_digest(x)) if cache else None
    out = {}
    if cache:
        for layer in layers:
            path = _cache_path(*keys, layer)
            if path.exists():
                out[layer] = torch.load(path, weights_only=True)
    missing = [layer for layer in layers if layer not in out]
    if missing:
        out.update(_forward_collect(model, x, missing, batch_size, device, desc))
        if cache:
            for layer in missing:
                path = _cache_path(*keys, layer)
                tmp = path.with_suffix(".tmp")
                torch.save(out[layer], tmp)
                tmp.replace(path)
    return {layer: out[layer] for layer in layers}


def _forward_collect(model, x, layers, batch_size, device, desc) -> dict[str, Tensor]:
    chunks: dict[str, list[Tensor]] = {layer: [] for layer in layers}
    hooks = [get_layer(model, layer).register_forward_hook(
        lambda _m, _i, o, layer=layer: chunks[layer].append(o.detach().float().cpu())) for layer in layers]
    was_training = model.training
    model.eval().to(device)
    try:
        for i in tqdm(range(0, len(x), batch_size), desc=desc, unit="batch", leave=False):
            model(x[i:i + batch_size].to(device))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return {layer: torch.cat(parts) for layer, parts in chunks.items()}


def top_level(model: nn.Sequential) -> list[str]:
    """Names of the top-level children of a sequential model, in execution order."""
    return [name for name, _ in model.named_children()]


def stage_input(model: nn.Sequential, placement: str) -> str | None:
    """The top-level child whose output feeds the stage that holds ``placement`` (None: the input)."""
    names = top_level(model)
    stage = placement.split(".")[0]
    check_choice("placement", stage, names)
    i = names.index(stage)
    return names[i - 1] if i > 0 else None


@torch.no_grad()
def run_after(model: nn.Sequential, layer: str | None, h: Tensor, shape: Callable[[Tensor], Tensor] | None = None,
              placement: str | None = None, batch_size: int = 1024, device: str = "cpu") -> Tensor:
    """Network outputs given ``h``, the output of top-level child ``layer`` (None: ``h`` is the input).

    With ``shape`` and ``placement``, the output of the module ``placement`` is shaped on the way,
    exactly as a forward hook on the full network would do: ``h`` itself when ``placement == layer``,
    else the module inside the replayed tail.
    """
    if (shape is None) != (placement is None):
        raise ValueError("run_after needs both `shape` and `placement`, or neither.")
    if placement is not None and placement == layer:
        h, shape, placement = shape(h), None, None
    names = top_level(model)
    start = 0 if layer is None else names.index(check_choice("layer", layer, names)) + 1
    tail = nn.Sequential(*[model.get_submodule(n) for n in names[start:]]).eval().to(device)
    outs = []
    for i in range(0, len(h), batch_size):
        hb = h[i:i + batch_size].to(device)
        if shape is not None:
            with shaping_at(model, placement, shape):
                outs.append(tail(hb).cpu())
        else:
            outs.append(tail(hb).cpu())
    return torch.cat(outs) if outs else h.new_zeros((0,))
