"""Feature caching: run the network once per (weights, data, layer), keep the activations on disk.

Sweeps over (method, p, placement) then cost only the shaping and the layers after the
placement: :func:`run_after` replays the tail of a sequential model from a cached activation.

Data are either a tensor of images ``(N, C, H, W)`` or a :class:`torch.utils.data.Dataset` that
returns one image tensor per item and carries a ``cache_key`` string naming its content (the
paper-scale benchmarks); both go through :func:`batches`.
"""
from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator, Sequence

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from ashlib import cache as ashcache
from ashlib import cache_dir
from ashlib._checks import ParameterError, check_choice, check_positive_int
from ashlib.cache import tensor_digest
from ashlib.placement import get_layer, shaping_at_each

Hook = tuple[str, Callable[[Tensor], Tensor]]


def model_digest(model: nn.Module) -> str:
    """sha256 over parameter and buffer names and values: changes whenever the weights change."""
    state = model.state_dict()
    h = hashlib.sha256("|".join(state).encode())
    h.update(tensor_digest(*state.values()).encode())
    return h.hexdigest()


def data_digest(data: Tensor | Dataset) -> str:
    """Content key of a data set: the tensor's bytes, or a Dataset's ``cache_key`` attribute."""
    if isinstance(data, Tensor):
        return tensor_digest(data)
    key = getattr(data, "cache_key", None)
    if not isinstance(key, str) or not key:
        raise ParameterError(f"data of type {type(data).__name__} has no `cache_key`: expected a tensor "
                             "or a Dataset with a string `cache_key` naming its content.")
    return hashlib.sha256(key.encode()).hexdigest()


def default_num_workers() -> int:
    """Data-loading processes by default: the CPU cores this process may use, at most 8."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        cores = os.cpu_count() or 1
    return max(0, min(8, cores))


def batches(data: Tensor | Dataset, batch_size: int, num_workers: int = 0, device: str = "cpu") -> Iterator[Tensor]:
    """Consecutive batches of images, in order, from a tensor or a Dataset of image tensors.

    A Dataset is read by ``num_workers`` processes (0: in this one), each a few batches ahead; on CUDA
    the batches are pinned, so that ``.to(device, non_blocking=True)`` overlaps the copy with compute.
    """
    if isinstance(data, Tensor):
        for i in range(0, len(data), batch_size):
            yield data[i:i + batch_size]
    else:
        yield from DataLoader(data, batch_size=batch_size, shuffle=False, num_workers=num_workers,
                              pin_memory=str(device).startswith("cuda"),
                              prefetch_factor=4 if num_workers else None)


@torch.no_grad()
def output_numels(model: nn.Module, image: Tensor, layers: Sequence[str | None]) -> dict[str | None, int]:
    """Values per image of each layer's output (None: the input), from one forward pass of ``image``
    (C, H, W) on the model's device, in eval mode (the model's mode is restored)."""
    seen: dict[str | None, int] = {None: image.numel()}
    hooks = [get_layer(model, layer).register_forward_hook(
        lambda _m, _i, o, layer=layer: seen.__setitem__(layer, o[0].numel())) for layer in layers if layer is not None]
    was_training = model.training
    try:
        model.eval()(image.unsqueeze(0).to(next(model.parameters()).device))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return {layer: seen[layer] for layer in [None, *layers]}


def _entry_key(model_key: str, data_key: str, layer: str) -> str:
    return f"activations|model={model_key}|data={data_key}|layer={layer}"


def _cache_path(model_key: str, data_key: str, layer: str):
    key = hashlib.sha256(f"{model_key}|{data_key}|{layer}".encode()).hexdigest()[:24]
    return cache_dir("features") / f"{layer}-{key}.pt"


@torch.no_grad()
def activations(model: nn.Module, data: Tensor | Dataset, layers: Sequence[str], batch_size: int = 256,
                device: str = "cpu", cache: bool = True, desc: str = "features",
                num_workers: int = 0) -> dict[str, Tensor]:
    """Outputs of the named ``layers`` for every image in ``data`` (float32, on the CPU).

    Cached under ``$ASHLIB_CACHE/features`` as self-verifying entries (:mod:`ashlib.cache`) whose key
    is the weights, the data and the layer name, so a changed checkpoint or data set is never served
    stale activations, and a damaged file is reported, discarded and recomputed. One forward pass
    computes every layer that is not cached yet; processes that would compute the same activations
    take turns (a lock per model and data), the second one reading the first one's result.
    """
    check_positive_int("batch_size", batch_size)
    layers = list(dict.fromkeys(layers))
    for layer in layers:
        get_layer(model, layer)
    if not cache:
        return _forward_collect(model, data, layers, batch_size, device, desc, num_workers)
    keys = (model_digest(model), data_digest(data))

    def complete(value) -> str | None:
        return None if value.shape[:1] == (len(data),) else f"{value.shape[0] if value.ndim else 0} rows, " \
                                                           f"expected {len(data)}"

    def cached() -> dict[str, Tensor]:
        found = {}
        for layer in layers:
            value = ashcache.load(_cache_path(*keys, layer), _entry_key(*keys, layer), check=complete)
            if value is not None:
                found[layer] = value
        return found

    out = cached()
    if len(out) < len(layers):
        lock = cache_dir("features") / hashlib.sha256("|".join(keys).encode()).hexdigest()[:24]
        with ashcache.locked(lock):
            out = cached()  # another process may have computed them meanwhile
            missing = [layer for layer in layers if layer not in out]
            if missing:
                computed = _forward_collect(model, data, missing, batch_size, device, desc, num_workers)
                for layer in missing:
                    ashcache.save(_cache_path(*keys, layer), computed[layer], _entry_key(*keys, layer))
                out.update(computed)
    return {layer: out[layer] for layer in layers}


def _forward_collect(model, data, layers, batch_size, device, desc, num_workers) -> dict[str, Tensor]:
    chunks: dict[str, list[Tensor]] = {layer: [] for layer in layers}
    hooks = [get_layer(model, layer).register_forward_hook(
        lambda _m, _i, o, layer=layer: chunks[layer].append(o.detach().float().cpu())) for layer in layers]
    was_training = model.training
    model.eval().to(device)
    total = -(-len(data) // batch_size)
    try:
        for xb in tqdm(batches(data, batch_size, num_workers, device), total=total, desc=desc, unit="batch",
                       leave=False):
            model(xb.to(device, non_blocking=True))
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


def replay_start(model: nn.Sequential, placements: Sequence[str]) -> str | None:
    """The layer to cache so that every placement lies in the replayed tail (or is that layer)."""
    names = top_level(model)
    earliest = min(placements, key=lambda p: names.index(check_choice("placement", p.split(".")[0], names)))
    return earliest if earliest in names else stage_input(model, earliest)


@torch.no_grad()
def run_after(model: nn.Sequential, layer: str | None, h: Tensor, hooks: Sequence[Hook] = (),
              batch_size: int = 1024, device: str = "cpu") -> Tensor:
    """Network outputs given ``h``, the output of top-level child ``layer`` (None: ``h`` is the input).

    Each ``(placement, fn)`` in ``hooks`` replaces the output of module ``placement`` by ``fn(output)``,
    exactly as a forward hook on the full network would: ``h`` itself when ``placement == layer``,
    else the module inside the replayed tail.
    """
    names = top_level(model)
    start = 0 if layer is None else names.index(check_choice("layer", layer, names)) + 1
    for placement, fn in hooks:
        if placement == layer:
            h = fn(h)
    inner = [(p, fn) for p, fn in hooks if p != layer]
    for placement, _ in inner:
        if check_choice("placement", placement.split(".")[0], names) not in names[start:]:
            raise ParameterError(f"placement={placement!r} is not allowed: it runs before the cached layer "
                                 f"{layer!r}; expected a module in {names[start:]}.")
    tail = nn.Sequential(*[model.get_submodule(n) for n in names[start:]]).eval().to(device)
    outs = []
    with shaping_at_each(model, inner):
        for i in range(0, len(h), batch_size):
            outs.append(tail(h[i:i + batch_size].to(device)).cpu())
    return torch.cat(outs) if outs else h.new_zeros((0,))
