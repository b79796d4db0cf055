"""Feature caching: run the network once per (weights, data, layer), keep the activations on disk.

Sweeps over (method, p, placement) then cost only the shaping and the layers after the
placement: :func:`run_after` replays the tail of a sequential model from a cached activation.

Data are either a tensor of images ``(N, C, H, W)`` or a :class:`torch.utils.data.Dataset` that
returns one image tensor per item and carries a ``cache_key`` string naming its content (the
paper-scale benchmarks); both go through :func:`batches`.

A caller that needs only a per-sample summary of a layer (its spatial mean, softmax statistics)
passes ``reduce=`` to :func:`activations`: each batch's output is reduced as soon as it is computed,
so only the summary is held and cached (a ResNet-50 ``layer1`` output is 3 MiB per image, its
spatial mean 1 KiB).
"""
from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable, Iterator, Mapping, Sequence

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from ashlib.assets import cache as ashcache
from ashlib import cache_dir
from ashlib._checks import ParameterError, check_choice, check_positive_int
from ashlib.assets.cache import tensor_digest
from ashlib.assets.placement import get_layer, shaping_at_each

Hook = tuple[str, Callable[[Tensor], Tensor]]
#: What a per-batch reduction returns: one row per sample, a tensor or a mapping of names to tensors.
Reduced = Tensor | Mapping[str, Tensor]


def spatial_mean(out: Tensor) -> Tensor:
    """``(N, C, H, W) -> (N, C)``: the mean over the positions (global average pooling); any other
    output is flattened to ``(N, D)``."""
    return out.mean(dim=(2, 3)) if out.ndim == 4 else out.flatten(1)


#: Named per-batch reductions for ``activations(..., reduce=name)``.
REDUCTIONS: dict[str, Callable[[Tensor], Reduced]] = {"spatial_mean": spatial_mean}
_REDUCE_NAME = re.compile(r"[A-Za-z0-9_.+-]+")


def reduction(reduce) -> tuple[str, Callable[[Tensor], Reduced]] | None:
    """``reduce`` as ``(name, function)``: None, a name in :data:`REDUCTIONS`, or a ``(name, function)``
    pair whose name (letters, digits, ``_.+-``) goes into the cache key, so it must change whenever
    the function's results do."""
    if reduce is None:
        return None
    if isinstance(reduce, str):
        return reduce, REDUCTIONS[check_choice("reduce", reduce, REDUCTIONS)]
    if (isinstance(reduce, tuple) and len(reduce) == 2 and isinstance(reduce[0], str)
            and _REDUCE_NAME.fullmatch(reduce[0]) and callable(reduce[1])):
        return reduce
    raise ParameterError(f"reduce={reduce!r} is not allowed: expected None, one of {sorted(REDUCTIONS)} or a "
                         "(name, function) pair, the name made of letters, digits and _.+-")


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


def _entry_key(model_key: str, data_key: str, layer: str, reduce: str | None = None) -> str:
    key = f"activations|model={model_key}|data={data_key}|layer={layer}"
    return key if reduce is None else f"{key}|reduce={reduce}"


def _cache_path(model_key: str, data_key: str, layer: str, reduce: str | None = None):
    name = layer if reduce is None else f"{layer}-{reduce}"
    key = hashlib.sha256(f"{model_key}|{data_key}|{layer}{'' if reduce is None else '|' + reduce}".encode())
    return cache_dir("features") / f"{name}-{key.hexdigest()[:24]}.pt"


def _rows(value: Reduced) -> list[int]:
    return [t.shape[0] if t.ndim else 0 for t in (value.values() if isinstance(value, Mapping) else [value])]


@torch.no_grad()
def activations(model: nn.Module, data: Tensor | Dataset, layers: Sequence[str], batch_size: int = 256,
                device: str = "cpu", cache: bool = True, desc: str = "features",
                num_workers: int = 0, reduce=None) -> dict[str, Reduced]:
    """Outputs of the named ``layers`` for every image in ``data`` (float32, on the CPU).

    ``reduce`` (:func:`reduction`): a per-sample function applied to each batch's float32 output on
    ``device`` as soon as it is computed (e.g. ``"spatial_mean"``), so that only its result, a tensor
    or a mapping of names to tensors with one row per sample, is held and cached. Row ``i`` must depend
    on sample ``i`` only, so the result does not depend on ``batch_size``.

    Cached under ``$ASHLIB_CACHE/features`` as self-verifying entries (:mod:`ashlib.assets.cache`) whose key
    is the weights, the data, the layer name and the reduction's name, so a changed checkpoint or data
    set is never served stale activations, and a damaged file is reported, discarded and recomputed.
    One forward pass computes every layer that is not cached yet; processes that would compute the
    same activations take turns (a lock per model and data), the second one reading the first one's result.
    """
    check_positive_int("batch_size", batch_size)
    reducer = reduction(reduce)
    layers = list(dict.fromkeys(layers))
    for layer in layers:
        get_layer(model, layer)
    fn = reducer[1] if reducer else None
    if not cache:
        return _forward_collect(model, data, layers, batch_size, device, desc, num_workers, fn)
    ashcache.max_bytes()  # a bad $ASHLIB_CACHE_MAX fails now, not after the forward pass
    keys = (model_digest(model), data_digest(data))
    name = reducer[0] if reducer else None

    def complete(value) -> str | None:
        wrong = [n for n in _rows(value) if n != len(data)]
        return f"{wrong[0]} rows, expected {len(data)}" if wrong else None

    def cached() -> dict[str, Reduced]:
        found = {}
        for layer in layers:
            value = ashcache.load(_cache_path(*keys, layer, name), _entry_key(*keys, layer, name), check=complete)
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
                computed = _forward_collect(model, data, missing, batch_size, device, desc, num_workers, fn)
                for layer in missing:
                    ashcache.save(_cache_path(*keys, layer, name), computed[layer], _entry_key(*keys, layer, name))
                out.update(computed)
    return {layer: out[layer] for layer in layers}


def _to_cpu(value: Reduced) -> Reduced:
    return {k: t.cpu() for k, t in value.items()} if isinstance(value, Mapping) else value.cpu()


def _concat(parts: list[Reduced]) -> Reduced:
    """The batches' results joined along the samples: a tensor, or a dict in the first batch's order."""
    if parts and isinstance(parts[0], Mapping):
        return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}
    return torch.cat(parts)


def _forward_collect(model, data, layers, batch_size, device, desc, num_workers, fn=None) -> dict[str, Reduced]:
    chunks: dict[str, list[Reduced]] = {layer: [] for layer in layers}

    def keep(layer: str, out: Tensor) -> None:
        out = out.detach().float()
        chunks[layer].append(_to_cpu(out if fn is None else fn(out)))

    hooks = [get_layer(model, layer).register_forward_hook(lambda _m, _i, o, layer=layer: keep(layer, o))
             for layer in layers]
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
    return {layer: _concat(parts) for layer, parts in chunks.items()}


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
