"""Activations with a compile-time form whose backward reads the saved output instead of a bool mask.

Under ``torch.compile`` AOTAutograd's partitioner saves, for ``leaky_relu``'s backward, the smallest
tensor it can: the mask ``x > 0`` as ``torch.bool``. Inductor's CPU code stores such a mask
through ``VecMask::store(bool*)`` at about 10 ns per element (torch 2.13, one thread, EPYC, with and
without the AVX2 caps): ``torch.compile(lambda x: x > 0)`` on a (128, 64, 32, 32) map takes 82 ms,
eager 4 ms. In DCGAN's compiled step (batch 128) those stores were the largest fused kernel, 4 % of
the step (``benchmarks/profile_step.py configs/dcgan-emoji.yaml --compile --kernel-names``).

:class:`LeakyReLU` saves its output ``y`` instead: for a slope ≥ 0, ``y > 0`` exactly where
``x > 0``, so the backward ``where(y > 0, g, slope·g)`` equals PyTorch's (which takes ``slope·g`` at
``x = 0`` too). ``y`` is usually saved anyway, as the input of the next convolution, so the form
also saves the mask's memory. Eager runs keep ``nn.LeakyReLU``'s own kernels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class _LeakyReLUSavingOutput(torch.autograd.Function):
    """``F.leaky_relu(x, slope)`` for ``slope ≥ 0``, its backward computed from the output."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, slope: float) -> torch.Tensor:  # type: ignore[override]
        y = F.leaky_relu(x, slope)
        ctx.save_for_backward(y)
        ctx.slope = slope
        return y

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:  # type: ignore[override]
        (y,) = ctx.saved_tensors
        return torch.where(y > 0, grad, grad * ctx.slope), None


def leaky_relu_saving_output(x: torch.Tensor, slope: float) -> torch.Tensor:
    """``F.leaky_relu(x, slope)`` (any shape, ``slope ≥ 0``) whose backward reads the output, not a mask."""
    if slope < 0:
        raise ValueError(f"leaky_relu_saving_output: slope must be >= 0 (y > 0 must mean x > 0), got {slope}")
    return _LeakyReLUSavingOutput.apply(x, slope)


class LeakyReLU(nn.LeakyReLU):
    """``nn.LeakyReLU`` (same arguments; no parameters, so checkpoints are unchanged) that runs as
    :func:`leaky_relu_saving_output` under ``torch.compile`` when its slope is ≥ 0 (see the module
    docstring for why). ``inplace`` applies to eager runs; compiled graphs are functional anyway."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.compiler.is_compiling() and self.negative_slope >= 0:
            return leaky_relu_saving_output(x, self.negative_slope)
        return super().forward(x)
