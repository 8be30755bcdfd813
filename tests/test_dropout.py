"""genlab.nn.dropout (the dropout that draws its mask from 16-bit slices of random words) and genlab.nn.forms."""

import pytest
import torch
from torch import nn

from genlab.nn.activations import LeakyReLU
from genlab.nn.dropout import Dropout, dropout_uniform_mask
from genlab.nn.forms import as_pytorch_layers


def test_dropout_zeroes_a_fraction_p_and_scales_the_rest_by_one_over_one_minus_p():
    torch.manual_seed(0)
    x = torch.rand(200_000) + 0.5  # no zeros of its own
    y = dropout_uniform_mask(x, 0.3)
    dropped = (y == 0).double().mean().item()
    assert abs(dropped - 0.3) < 4 * (0.3 * 0.7 / x.numel()) ** 0.5  # within 4 binomial standard errors
    kept = y != 0
    assert torch.equal(y[kept], x[kept] * torch.tensor(1 / 0.7))  # what native_dropout computes in fp32


def test_dropout_in_bf16_scales_as_pytorch_does_not_by_a_rounded_scale():
    torch.manual_seed(0)
    x = (torch.rand(50_000) + 0.5).bfloat16()
    y = dropout_uniform_mask(x, 0.3)
    assert y.dtype == torch.bfloat16
    kept = y != 0
    assert torch.equal(y[kept], x[kept].mul(1 / 0.7))  # x · scale in fp32 arithmetic, rounded once
    assert not torch.equal(y[kept], x[kept] * torch.tensor(1 / 0.7, dtype=torch.bfloat16))  # the rounded scale differs


def test_dropout_gradient_is_the_same_mask_and_scale():
    torch.manual_seed(1)
    x = (torch.rand(4, 8, 6, 6, dtype=torch.float64) + 0.5).requires_grad_()
    y = dropout_uniform_mask(x, 0.25)
    grad_out = torch.randn_like(y)
    (grad,) = torch.autograd.grad(y, x, grad_out)
    assert torch.allclose(grad, grad_out * (y / x.detach()), rtol=1e-12)
    assert torch.equal(grad == 0, y == 0)


def test_dropout_mask_follows_the_inputs_memory_format_and_the_seed():
    x = torch.rand(2, 16, 5, 5).contiguous(memory_format=torch.channels_last)
    torch.manual_seed(3)
    first = dropout_uniform_mask(x, 0.5)
    torch.manual_seed(3)
    second = dropout_uniform_mask(x, 0.5)
    assert first.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(first, second)


def test_dropout_module_is_nn_dropout_outside_eager_training():
    torch.manual_seed(0)
    x = torch.rand(1000) + 0.5
    layer = Dropout(0.4)
    layer.eval()
    assert torch.equal(layer(x), x)
    layer.train()
    assert 300 < int((layer(x) == 0).sum()) < 500
    assert torch.equal(Dropout(0.0)(x), x)
    assert torch.equal(Dropout(1.0)(x), torch.zeros_like(x))
    with pytest.raises(ValueError, match=r"p must be in \[2\*\*-16, 1 - 2\*\*-16\] \(its resolution\), got 1.0"):
        dropout_uniform_mask(x, 1.0)
    layer = Dropout(1e-6)  # rounds to 0 at 16 bits: PyTorch's exact draw instead
    assert int((layer(torch.rand(2_000_000) + 0.5) == 0).sum()) < 20


def test_dropout_mask_elements_are_independent_and_p_is_rounded_to_sixteen_bits():
    torch.manual_seed(0)
    x = torch.ones(4_000_000)
    kept = dropout_uniform_mask(x, 0.5) != 0
    pairs = kept.view(-1, 4)  # the four slices of one 64-bit word
    for i, j in ((0, 1), (1, 2), (2, 3), (0, 3)):
        both = (pairs[:, i] & pairs[:, j]).double().mean().item()
        assert abs(both - 0.25) < 4 * (0.25 * 0.75 / pairs.shape[0]) ** 0.5
    word_neighbours = (pairs[:-1, 3] & pairs[1:, 0]).double().mean().item()
    assert abs(word_neighbours - 0.25) < 4 * (0.25 * 0.75 / pairs.shape[0]) ** 0.5
    rate = (dropout_uniform_mask(x, 0.9999) == 0).double().mean().item()  # 0.9999 · 2**16 = 65529.4 → 65529
    assert abs(rate - 65529 / 65536) < 4 * (1e-4 / x.numel()) ** 0.5


def test_dropout_module_compiles_to_pytorchs_own_dropout():
    graphs = []

    def capture(graph_module, example_inputs):
        graphs.append(graph_module.code)
        return graph_module.forward

    torch.manual_seed(0)
    x = torch.rand(4000) + 0.5
    y = torch.compile(Dropout(0.5), backend=capture)(x)
    assert "dropout" in graphs[0] and "rand_like" not in graphs[0]
    assert 1700 < int((y == 0).sum()) < 2300
    assert torch.allclose(y[y != 0], 2 * x[y != 0])


def test_as_pytorch_layers_turns_forms_back_and_keeps_parameters():
    net = nn.Sequential(nn.Linear(3, 4), LeakyReLU(0.2), Dropout(0.5), nn.Linear(4, 2))
    weight = net[0].weight.clone()
    assert as_pytorch_layers(net, only=Dropout) == 1
    assert type(net[2]) is nn.Dropout and type(net[1]) is LeakyReLU
    assert as_pytorch_layers(net) == 1
    assert type(net[1]) is nn.LeakyReLU and net[1].negative_slope == 0.2
    assert torch.equal(net[0].weight, weight)
    with pytest.raises(ValueError, match="Linear is not a layer form"):
        as_pytorch_layers(net, only=nn.Linear)
