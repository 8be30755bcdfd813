"""genlab's Adam (genlab.models.base.adam / DenseAdam): torch's fused Adam on each tensor's memory order."""

from __future__ import annotations

import pytest
import torch

from genlab.models.base import DenseAdam, adam, memory_order

CL = torch.channels_last


def _params(grad_layout: torch.memory_format | None = None) -> list[torch.Tensor]:
    torch.manual_seed(0)
    shapes = [(8, 4, 3, 3), (16, 8, 4, 4), (16,), (5, 7), (3, 1, 1, 1)]
    params = [torch.randn(s).to(memory_format=CL if len(s) == 4 else torch.contiguous_format).requires_grad_()
              for s in shapes]
    for p in params:
        p.grad = torch.randn(p.shape)
        if p.dim() == 4:
            p.grad = p.grad.to(memory_format=grad_layout or CL)
    return params


@pytest.mark.parametrize("grad_layout", [CL, torch.contiguous_format])
@pytest.mark.parametrize("amsgrad", [False, True])
def test_updates_bit_for_bit_as_torch_fused_adam(grad_layout, amsgrad):
    """Channels-last weights (and gradients in either layout), biases and matrices: the same values as
    ``torch.optim.Adam(fused=True)`` after several steps, bit for bit, and the state keeps each
    parameter's shape and layout."""
    ours, theirs = _params(grad_layout), _params(grad_layout)
    optimizers = [DenseAdam(ours, lr=0.01, betas=(0.5, 0.999), fused=True, amsgrad=amsgrad),
                  torch.optim.Adam(theirs, lr=0.01, betas=(0.5, 0.999), fused=True, amsgrad=amsgrad)]
    for step in range(4):
        for params in (ours, theirs):
            for p in params:
                p.grad = torch.randn(p.shape, generator=torch.Generator().manual_seed(step * 100 + p.numel()))
                if p.dim() == 4:
                    p.grad = p.grad.to(memory_format=grad_layout)
        for optimizer in optimizers:
            optimizer.step()
    for a, b in zip(ours, theirs):
        assert torch.equal(a, b) and a.stride() == b.stride()
    for p in ours:
        for value in optimizers[0].state[p].values():
            if value.dim():
                assert value.shape == p.shape and value.stride() == p.stride()


def test_memory_order():
    weight = torch.empty(8, 4, 3, 3).to(memory_format=CL)
    assert memory_order(weight) == (0, 2, 3, 1) and weight.permute(0, 2, 3, 1).is_contiguous()
    assert memory_order(torch.empty(8, 4, 3, 3)) is None  # already contiguous
    assert memory_order(torch.empty(8, 6)[:, ::2]) is None  # gaps: no dense order
    assert memory_order(torch.empty(6, 8).t()) == (1, 0)


def test_every_family_builds_the_dense_form():
    assert isinstance(adam([torch.zeros(2, requires_grad=True)], lr=1e-3), DenseAdam)
