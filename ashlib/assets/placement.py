"""Placements: apply a shaping function at the output of any named module with a forward hook.

The hook is registered inside a context manager and always removed, even when the forward
pass raises, so a model never keeps a stale hook (paper Section 5, "Where to ASH").
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager

from torch import Tensor, nn

from ashlib._checks import check_choice


def placeable_layers(model: nn.Module) -> list[str]:
    """Names of every submodule whose output can be shaped, in definition order."""
    return [name for name, _ in model.named_modules() if name]


def get_layer(model: nn.Module, layer: str) -> nn.Module:
    """The submodule called ``layer``; a clear error lists the allowed names otherwise."""
    modules = dict(model.named_modules())
    check_choice("layer", layer, placeable_layers(model))
    return modules[layer]


@contextmanager
def shaping_at(model: nn.Module, layer: str, shape: Callable[[Tensor], Tensor]) -> Iterator[nn.Module]:
    """Within the block, the output of ``layer`` is replaced by ``shape(output)``."""
    handle = get_layer(model, layer).register_forward_hook(lambda _m, _i, out: shape(out))
    try:
        yield model
    finally:
        handle.remove()


@contextmanager
def shaping_at_each(model: nn.Module, hooks: Sequence[tuple[str, Callable[[Tensor], Tensor]]]) -> Iterator[nn.Module]:
    """:func:`shaping_at` for several ``(layer, shape)`` pairs at once; every hook is removed on exit."""
    with ExitStack() as stack:
        for layer, shape in hooks:
            stack.enter_context(shaping_at(model, layer, shape))
        yield model
