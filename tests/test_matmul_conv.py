"""Convolutions as matrix products (genlab.nn.matmul_conv) and the layer forms that use them."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from genlab.nn.forms import as_pytorch_layers
from genlab.nn.layers import PaddedConv2d
from genlab.nn.matmul_conv import MatmulConvTranspose2d, conv2d_matmul_weight_grad, uses_matmul_weight_grad, windows

CL = torch.channels_last


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).detach().abs().max() / b.detach().abs().max())


def test_windows_are_the_padded_maps_blocks_channel_fastest():
    x = torch.arange(2 * 3 * 4 * 5, dtype=torch.float32).view(2, 3, 4, 5).to(memory_format=CL)
    rows = windows(x, (2, 3), (2, 1), (1, 0), 3, 3)
    padded = F.pad(x, (0, 0, 1, 1))
    assert rows.shape == (2 * 3 * 3, 2 * 3 * 3)
    for n, r, c in [(0, 0, 0), (1, 2, 1), (0, 1, 2)]:
        block = padded[n, :, 2 * r:2 * r + 2, c:c + 3]  # (C, k_y, k_x)
        assert torch.equal(rows[(n * 3 + r) * 3 + c], block.permute(1, 2, 0).reshape(-1))


@pytest.mark.parametrize("setup", [
    # (N, I, O, H, W, kernel, stride, padding, output_padding, transposed)
    (2, 5, 7, 9, 8, (4, 4), (2, 2), (1, 1), (0, 0), False),
    (1, 4, 6, 5, 7, (3, 2), (1, 2), (1, 0), (0, 0), False),
    (2, 6, 3, 3, 4, (5, 5), (2, 2), (2, 2), (1, 1), True),
    (3, 4, 5, 4, 4, (4, 4), (2, 2), (1, 1), (0, 0), True),
    (1, 3, 2, 2, 3, (3, 3), (3, 2), (0, 1), (2, 1), True),
])
def test_gradients_match_pytorchs_in_float64(setup):
    """Against autograd's numerical derivative, with and without bias, convolution and transposed."""
    n, i, o, h, w, kernel, stride, padding, output_padding, transposed = setup
    torch.manual_seed(0)
    x = torch.randn(n, i, h, w, dtype=torch.float64).to(memory_format=CL).requires_grad_()
    weight = torch.randn(*((i, o) if transposed else (o, i)), *kernel, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(o, dtype=torch.float64, requires_grad=True)

    def conv(x, weight, bias=None):
        return conv2d_matmul_weight_grad(x, weight, bias, stride, padding, output_padding, transposed)

    assert torch.autograd.gradcheck(conv, (x, weight, bias))
    assert torch.autograd.gradcheck(conv, (x, weight))


def test_weight_gradient_keeps_the_weights_channels_last_layout():
    x = torch.randn(2, 8, 6, 6).to(memory_format=CL)
    weight = torch.randn(16, 8, 4, 4).to(memory_format=CL).requires_grad_()
    (grad,) = torch.autograd.grad(conv2d_matmul_weight_grad(x, weight, None, (2, 2), (1, 1)).sum(), weight)
    assert grad.is_contiguous(memory_format=CL)


def _pair(form: type[nn.Module], args: tuple, bias: bool) -> tuple[nn.Module, nn.Module]:
    """A form with the weight-gradient product and the PyTorch layer it stands for, same parameters."""
    torch.manual_seed(0)
    ours = form(*args, bias=bias).to(memory_format=CL)
    theirs = form(*args, bias=bias).to(memory_format=CL)
    theirs.load_state_dict(ours.state_dict())
    as_pytorch_layers(theirs)
    return ours, theirs


@pytest.mark.parametrize("form, args, shape", [
    (PaddedConv2d, (256, 512, 4, 2, 1), (4, 256, 8, 8)),  # the Radford DCGAN discriminator's last k4 s2 layer
    (MatmulConvTranspose2d, (512, 256, 5, 2, 2, 1), (2, 512, 6, 6)),  # the seed DCGAN generator's first s2 layer
    (MatmulConvTranspose2d, (512, 64, 4, 2, 1), (2, 512, 4, 4)),
])
@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("autocast", [False, True])
def test_forms_train_as_pytorchs_layers(form, args, shape, bias, autocast):
    """The forms' outputs and all three gradients equal PyTorch's layers', in fp32 and under bf16 autocast
    (the weight gradient to bf16's rounding), and the weight gradient arrives in fp32, channels-last."""
    ours, theirs = _pair(form, args, bias)
    x = torch.randn(shape).to(memory_format=CL)
    assert uses_matmul_weight_grad(ours, x) and not isinstance(theirs, form)
    x_ours, x_theirs = x.clone().requires_grad_(), x.clone().requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        y_ours, y_theirs = ours(x_ours), theirs(x_theirs)
    assert y_ours.dtype == y_theirs.dtype and torch.equal(y_ours, y_theirs)
    grad = torch.randn(y_ours.shape)
    (y_ours.float() * grad).sum().backward()
    (y_theirs.float() * grad).sum().backward()
    tolerance = 1e-2 if autocast else 1e-5
    assert relative_error(x_ours.grad, x_theirs.grad) < tolerance
    assert relative_error(ours.weight.grad, theirs.weight.grad) < tolerance
    assert ours.weight.grad.dtype == torch.float32 and ours.weight.grad.is_contiguous(memory_format=CL)
    if bias:
        assert relative_error(ours.bias.grad, theirs.bias.grad) < tolerance


def test_used_only_where_it_pays():
    wide = PaddedConv2d(64, 512, 4, 2, 1).to(memory_format=CL)
    x = torch.randn(2, 64, 8, 8).to(memory_format=CL)
    assert uses_matmul_weight_grad(wide, x)
    assert not uses_matmul_weight_grad(PaddedConv2d(64, 256, 4, 2, 1), x)  # too few weight rows
    assert not uses_matmul_weight_grad(wide, x.contiguous())  # not channels-last
    assert not uses_matmul_weight_grad(PaddedConv2d(64, 512, 4, 2, 1, padding_mode="reflect"), x)
    with torch.no_grad():
        assert not uses_matmul_weight_grad(wide, x)  # no gradient to compute
    wide.weight.requires_grad_(False)
    assert not uses_matmul_weight_grad(wide, x)  # a frozen layer (G's step through D)
    wide.weight.requires_grad_(True)
    assert not uses_matmul_weight_grad(wide, torch.randn(2, 64, 512, 512).to(memory_format=CL))  # windows > 128 MiB
    wide.matmul_weight_grad = False
    assert not uses_matmul_weight_grad(wide, x)


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("autocast", [False, True])
def test_one_pixel_transposed_convolution_is_a_linear_layer(bias, autocast):
    """A DCGAN generator's first layer (z as a 1×1 map → 4×4): the form's values and gradients are
    PyTorch's, in the same dtype, and it runs as one ``linear`` (no convolution in the autograd graph)."""
    ours, theirs = _pair(MatmulConvTranspose2d, (100, 64, 4, 1, 0), bias)
    z = torch.randn(5, 100, 1, 1)
    assert ours._one_pixel_input(z)
    z_ours, z_theirs = z.clone().requires_grad_(), z.clone().requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        y_ours, y_theirs = ours(z_ours), theirs(z_theirs)
    assert y_ours.shape == y_theirs.shape == (5, 64, 4, 4) and y_ours.dtype == y_theirs.dtype
    assert y_ours.is_contiguous(memory_format=CL) and "Convolution" not in type(y_ours.grad_fn).__name__
    tolerance = 1e-2 if autocast else 1e-5
    assert relative_error(y_ours.float(), y_theirs.float()) < tolerance
    grad = torch.randn(y_ours.shape)
    (y_ours.float() * grad).sum().backward()
    (y_theirs.float() * grad).sum().backward()
    assert relative_error(z_ours.grad, z_theirs.grad) < tolerance
    assert relative_error(ours.weight.grad, theirs.weight.grad) < tolerance
    if bias:
        assert relative_error(ours.bias.grad, theirs.bias.grad) < tolerance


def test_one_pixel_form_only_without_padding():
    layer = MatmulConvTranspose2d(8, 4, 4, 2, 1)
    assert not layer._one_pixel_input(torch.randn(2, 8, 1, 1))  # padding 1 crops the 4×4 window
    assert not MatmulConvTranspose2d(8, 4, 4, 1, 0)._one_pixel_input(torch.randn(2, 8, 2, 2))


def test_eager_convolution_to_a_few_pixels_is_one_product():
    """A DCGAN discriminator's last layer (4×4 → 1×1) runs as matmul_conv2d in eager steps too."""
    ours, theirs = _pair(PaddedConv2d, (512, 1, 4, 1, 0), True)
    x = torch.randn(6, 512, 4, 4).to(memory_format=CL)
    x_ours, x_theirs = x.clone().requires_grad_(), x.clone().requires_grad_()
    y_ours, y_theirs = ours(x_ours), theirs(x_theirs)
    assert "Convolution" not in type(y_ours.grad_fn).__name__ and "Convolution" in type(y_theirs.grad_fn).__name__
    assert relative_error(y_ours, y_theirs) < 1e-5
    y_ours.sum().backward()
    y_theirs.sum().backward()
    for got, want in [(x_ours.grad, x_theirs.grad), (ours.weight.grad, theirs.weight.grad), (ours.bias.grad, theirs.bias.grad)]:
        assert relative_error(got, want) < 1e-5


@pytest.mark.parametrize("form, args, shape", [
    (PaddedConv2d, (256, 512, 4, 2, 1), (2, 256, 8, 8)),  # the weight-gradient form
    (PaddedConv2d, (64, 1, 4, 1, 0), (2, 64, 4, 4)),  # the few-output-pixels form
    (PaddedConv2d, (64, 64, 3, 1, 1), (2, 64, 16, 16)),  # the Winograd form
])
def test_spectral_norm_iterates_once_per_call_as_in_pytorchs_layer(form, args, shape):
    """A spectral-normed weight is recomputed (one power iteration, in training) at every read of
    ``layer.weight``: the forms read it once per call, so training goes as with PyTorch's layer."""
    from torch.nn.utils.parametrizations import spectral_norm

    ours, theirs = _pair(form, args, True)
    ours, theirs = spectral_norm(ours), spectral_norm(theirs)
    theirs.parametrizations.weight[0]._u.copy_(ours.parametrizations.weight[0]._u)
    theirs.parametrizations.weight[0]._v.copy_(ours.parametrizations.weight[0]._v)
    x = torch.randn(shape).to(memory_format=CL)
    for _ in range(3):
        y_ours, y_theirs = ours(x.clone().requires_grad_()), theirs(x.clone().requires_grad_())
        y_ours.sum().backward()
        y_theirs.sum().backward()
    assert torch.equal(ours.parametrizations.weight[0]._u, theirs.parametrizations.weight[0]._u)
    assert relative_error(y_ours, y_theirs) < 1e-4
    assert relative_error(ours.parametrizations.weight.original.grad, theirs.parametrizations.weight.original.grad) < 1e-4


def test_spectral_normed_forms_turn_back_into_pytorchs_layers():
    """``genlab bench``'s plain loop (and ``compile_forms_ab.py``) run PyTorch's own layers also when D
    has spectral norm: the parametrized form becomes a parametrized ``nn.Conv2d``, its norm kept."""
    from torch.nn.utils import parametrize
    from torch.nn.utils.parametrizations import spectral_norm

    net = nn.Sequential(spectral_norm(PaddedConv2d(256, 512, 4, 2, 1)), MatmulConvTranspose2d(512, 8, 4, 2, 1))
    assert as_pytorch_layers(net) == 2
    conv, deconv = net
    assert isinstance(conv, nn.Conv2d) and not isinstance(conv, PaddedConv2d) and parametrize.is_parametrized(conv)
    assert type(deconv) is nn.ConvTranspose2d
    x = torch.randn(2, 256, 8, 8).to(memory_format=CL).requires_grad_()
    out = conv(x)
    assert "Convolution" in type(out.grad_fn).__name__  # PyTorch's kernel, weight gradient included
    sigma = torch.linalg.matrix_norm(conv.weight.detach().flatten(1), ord=2)
    assert abs(float(sigma) - 1) < 0.1  # still spectral-normed
