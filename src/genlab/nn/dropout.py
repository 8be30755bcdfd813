"""Dropout whose mask is drawn from 16-bit slices of 64-bit random words instead of ``bernoulli_``.

PyTorch's CPU dropout (``native_dropout``) draws its keep-mask with ``bernoulli_(1 − p)``, about
9 ns per element here (torch 2.13, one thread, EPYC, with and without the AVX2 caps): 3.6 ms for a
(32, 64, 14, 14) map. ``torch.rand_like(x) >= p`` draws the same distribution in 1.4 ms: one call of
the Mersenne Twister per element. :func:`dropout_uniform_mask` asks it for full-range 64-bit words
instead, one per four elements, and compares each 16-bit slice with a threshold: 0.5 ms for that
map (the mask's draw alone; ``python benchmarks/dropout_ab.py``). The price is resolution: ``p`` is
rounded to a multiple of 2⁻¹⁶ (0.2 → 0.199997; 0.5, 0.25 exact), where ``rand_like`` had 2⁻²⁴.
PyTorch's CPU kernels also multiply by a bool mask by casting it to ``x``'s dtype on every product,
so the mask is cast once. Forward and backward of that map, channels-last, fp32, AVX2 caps:
``nn.Dropout`` 3.8 ms, :class:`Dropout` with ``rand_like`` 2.3 ms.

:func:`dropout_uniform_mask` keeps ``native_dropout``'s values: the output is ``x · mask · 1/(1 − p)``
computed as PyTorch does (fp32 products; in bf16 the scale is applied as a second product, so that
it is not rounded to bf16 first), and the backward multiplies by the same mask. The saved mask is
in ``x``'s dtype, not bool (4 bytes per element in fp32 instead of 1). It comes from a different
random stream than ``nn.Dropout``'s, so a run is reproducible with itself but not bit-identical to
one with ``nn.Dropout`` (nor to genlab runs before 2026-12-05, whose mask was ``rand_like(x) >= p``).
Compiled graphs keep ``nn.Dropout`` (inductor draws its own random numbers), and so do ``inplace``
and a ``p`` within 2⁻¹⁶ of 0 or 1 (which would round to 0 or 1).
"""

from __future__ import annotations

import torch
from torch import nn

_SCALE_EXACT_DTYPES = (torch.float32, torch.float64)
_SLICES = 4  # 16-bit slices per 64-bit random word
_RESOLUTION = 2**-16  # p's step; a p closer than this to 0 or 1 keeps nn.Dropout's exact draw


def _keep_mask(x: torch.Tensor, p: float) -> torch.Tensor:
    """Bool tensor of ``x``'s shape, laid out as ``x`` (a channels-last ``x`` with a contiguous mask
    makes every product a strided one), True with probability 1 − round(p·2¹⁶)/2¹⁶, independently per
    element. Full-range 64-bit words from the default generator, each read as four int16 values that
    are uniform on [−2¹⁵, 2¹⁵) and compared with a threshold."""
    n = x.numel()
    words = torch.empty(-(-n // _SLICES), dtype=torch.int64, device=x.device).random_(-2**63, None)
    values = words.view(torch.int16)[:n]
    layout = torch.empty_like(x, device="meta")  # x's strides if x is dense, else contiguous ones
    return values.as_strided(x.shape, layout.stride()) >= round(p * 2**16) - 2**15


def _resolvable(p: float) -> bool:
    """``p`` is at least :data:`_RESOLUTION` from 0 and 1, so it does not round to either at 16 bits."""
    return _RESOLUTION <= p <= 1 - _RESOLUTION


def dropout_uniform_mask(x: torch.Tensor, p: float) -> torch.Tensor:
    """Training-mode dropout of ``x`` (any shape, floating point), ``2⁻¹⁶ ≤ p ≤ 1 − 2⁻¹⁶``: each element zeroed
    with probability ``p`` (rounded to a multiple of 2⁻¹⁶), the rest scaled by ``1/(1 − p)``; the mask
    comes from :func:`_keep_mask`."""
    if not _resolvable(p):
        raise ValueError(f"dropout_uniform_mask: p must be in [2**-16, 1 - 2**-16] (its resolution), got {p}")
    mask = _keep_mask(x, p).to(x.dtype)
    if x.dtype in _SCALE_EXACT_DTYPES:
        return x * mask.mul_(1 / (1 - p))
    return (x * mask).mul_(1 / (1 - p))


class Dropout(nn.Dropout):
    """``nn.Dropout`` (same arguments, no parameters: checkpoints are unchanged) that draws its mask
    with :func:`dropout_uniform_mask` in eager training (see the module docstring for why)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.inplace or not _resolvable(self.p) or torch.compiler.is_compiling():
            return super().forward(x)
        return dropout_uniform_mask(x, self.p)
