"""SCALE (Xu et al., ICLR 2024): ASH-S's scaling factor without its pruning.

K. Xu, R. Chen, G. Franchi, A. Yao. *Scaling for Training Time and Post-hoc Out-of-distribution
Detection Enhancement*, ICLR 2024. The successor of ASH reads ASH-S (Algorithm 3) as two parts:
pruning, which costs ID accuracy, and the scale ``exp(s1 / s2)``, which does the OOD detection.
SCALE keeps only the scale: every activation of a sample is multiplied by
``exp(s1 / s2)``. ``s1`` is the sample's sum of activations; ``s2`` is the sum of the values ASH
would keep at ``percentile`` p (or at or above a global ``threshold``), exactly as in
:func:`ashlib.methods.shaping.ash_s`. On the kept values SCALE equals ASH-S; elsewhere it keeps what ASH
zeroes. A per-sample positive factor leaves ``argmax(W h)`` unchanged, so with a bias-free head
the predictions are the unmodified network's.

Where we differ from the official code (``scale`` in the SCALE repository,
``openood/networks/scale_net.py``; OpenOOD v1.5 ships the same): the official function zeroes the
caller's tensor in place while computing ``s2`` and returns a scaled clone; ours never modifies
its input. As for ASH-S, the exponent is capped at :data:`ashlib.methods.shaping.MAX_S_EXPONENT` (finite
outputs), and a sample with ``s2 = 0`` (nothing left, e.g. ``p = 100``) gives zeros, not inf or NaN.
p = 85 is the default of the SCALE authors' configuration (kai422/SCALE,
``configs/postprocessors/scale.yml``), which the book uses; the reported numbers
(:func:`ashlib.book.related.scale_reported`) come from that configuration. OpenOOD v1.5's copy of that file
keeps 85 as the default but sets ``APS_mode: True``: it sweeps p over 65, 70, ..., 95 on its
validation split and reports the best (automatic parameter search).
"""
from __future__ import annotations

import torch
from torch import Tensor

from ashlib.methods.detector import Shaping
from ashlib.methods.shaping import MAX_S_EXPONENT, ash_s_exponent

#: SCALE's own percentile (kai422/SCALE's ``configs/postprocessors/scale.yml``; OpenOOD sweeps 65-95 instead).
DEFAULT_PERCENTILE = 85


def scale(x: Tensor, percentile: float | None = None, *, threshold: float | None = None) -> Tensor:
    """SCALE: ``x * exp(s1 / s2)`` per sample, nothing pruned (exactly one of ``percentile`` and
    ``threshold``, as for :func:`ashlib.methods.shaping.ash_s`). A new tensor of ``x``'s shape and dtype."""
    exponent = ash_s_exponent(x, percentile, threshold=threshold)  # NaN where s2 = 0; checks x and p
    factor = torch.where(torch.isnan(exponent), torch.zeros_like(exponent),
                         torch.exp(exponent.clamp(max=MAX_S_EXPONENT)))
    return x * factor.reshape(-1, *[1] * (x.dim() - 1))


ENTRIES = (Shaping("scale", "SCALE", scale, "tab:red",
                   "Xu et al., Scaling for Training Time and Post-hoc OOD Detection Enhancement, ICLR 2024"),)
