"""ASH-S on magnitudes: ASH-S (Algorithm 3) for signed features, ranking and summing ``|x|``.

Our own variant, tried in chapter *ASH beyond CNNs* as a fix for features that are not ReLU outputs,
such as a vision transformer's final LayerNorm output. ASH-S keeps a sample's ``k`` largest values
and multiplies them by ``exp(s1 / s2)``, sums before and after pruning. On non-negative features
"largest" means "strongest" and the sums measure how much activation there is. On signed features
neither holds: the ``k`` largest values are the most positive ones, the strong negative ones are
pruned, and positive and negative values cancel in the sums (``s2`` can be near zero, ``s1 / s2``
of either sign). This variant applies ASH-S to ``|x|`` and gives each kept value back its sign:

    ash_s_magnitude(x) = sign(x) * ash_s(|x|)

so the ``k`` values of largest magnitude are kept, with their signs, and scaled by
``exp(sum|x| / sum of the kept |x|)``. On non-negative input it is exactly :func:`ashlib.methods.shaping.ash_s`.
Only the local (per-sample percentile) cut is defined: a global threshold would have to be fitted on
``|x|``, which :meth:`ashlib.evaluation.experiments.Context.global_threshold` does not do.
"""
from __future__ import annotations

import torch
from torch import Tensor

from ashlib._checks import ParameterError
from ashlib.methods.detector import Shaping
from ashlib.methods.shaping import ash_s


def ash_s_magnitude(x: Tensor, percentile: float | None = None, *, threshold: float | None = None) -> Tensor:
    """``sign(x) * ash_s(|x|, percentile)``: keep each sample's values of largest magnitude, with their
    signs, scaled by ``exp(s1 / s2)`` of the magnitudes. A new tensor shaped like ``x``."""
    if threshold is not None:
        raise ParameterError(f"threshold={threshold!r} is not allowed for ASH-S on magnitudes: expected None "
                             "(only the per-sample percentile cut is defined; pass percentile).")
    if not isinstance(x, Tensor):
        raise ParameterError(f"x must be a torch.Tensor of shape (N, ...), got {type(x).__name__}.")
    return torch.sign(x) * ash_s(x.abs(), percentile)


ENTRIES = (Shaping("ash_s_magnitude", "ASH-S |x|", ash_s_magnitude, "tab:olive",
                   "ours: ASH-S (Djurisic et al., ICLR 2023, Algorithm 3) on magnitudes, for signed features"),)
