"""genlab.nn.activations: the leaky ReLU whose compiled backward reads its output instead of a bool mask."""

import pytest
import torch
from torch import nn

from genlab.nn.activations import LeakyReLU, leaky_relu_saving_output


@pytest.mark.parametrize("slope", [0.2, 0.0])
def test_leaky_relu_saving_output_equals_pytorchs_with_its_gradient_at_zero(slope):
    x = torch.tensor([-2.0, -0.5, 0.0, 0.0, 0.5, 3.0], dtype=torch.float64, requires_grad=True)
    grad_out = torch.arange(1.0, 7.0, dtype=torch.float64)
    y = leaky_relu_saving_output(x, slope)
    expected = nn.functional.leaky_relu(x, slope)
    assert torch.equal(y, expected)
    (grad,) = torch.autograd.grad(y, x, grad_out)
    (grad_expected,) = torch.autograd.grad(expected, x, grad_out)
    assert torch.equal(grad, grad_expected)  # slope · g at x = 0, as PyTorch's
    assert grad[2] == slope * grad_out[2]


def test_leaky_relu_saving_output_refuses_a_negative_slope():
    with pytest.raises(ValueError, match="slope must be >= 0.*-0.1"):
        leaky_relu_saving_output(torch.zeros(3), -0.1)


def _saved_dtypes(net: nn.Module, x: torch.Tensor) -> list[torch.dtype]:
    """The dtypes of the tensors autograd saves for ``net(x)``'s backward."""
    dtypes = []

    def pack(tensor):
        dtypes.append(tensor.dtype)
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        net(x)
    return dtypes


@pytest.mark.parametrize("slope", [0.2, -0.1])  # a negative slope keeps nn.LeakyReLU's own backward
def test_compiled_leaky_relu_equals_eager_and_saves_no_mask(slope):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), LeakyReLU(slope), nn.Conv2d(4, 2, 3)).double()
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64).to(memory_format=torch.channels_last)
    expected = net(x)
    weights = torch.randn_like(expected)
    grads_expected = torch.autograd.grad((expected * weights).sum(), list(net.parameters()))
    compiled = torch.compile(net, fullgraph=True, dynamic=False)
    y = compiled(x)
    assert torch.allclose(y, expected, rtol=0, atol=1e-12)
    grads = torch.autograd.grad((y * weights).sum(), list(net.parameters()))
    assert all(torch.allclose(g, e, rtol=0, atol=1e-10) for g, e in zip(grads, grads_expected))
    # what the form is for: compiled nn.LeakyReLU saves the bool mask x > 0, the form its float output
    assert (torch.bool in _saved_dtypes(compiled, x)) == (slope < 0)
    net[1].__class__ = nn.LeakyReLU
    assert torch.bool in _saved_dtypes(torch.compile(net, fullgraph=True, dynamic=False), x)


def test_networks_use_the_form_and_keep_eager_semantics():
    from genlab.models.gan_nets import RadfordDiscriminator
    from genlab.nn.patchgan import PatchDiscriminator
    from genlab.nn.unet import UNetGenerator

    for net in (RadfordDiscriminator(8, 3, 64, 0.2), PatchDiscriminator(ndf=8), UNetGenerator(ngf=4, image_size=32)):
        activations = [m for m in net.modules() if isinstance(m, nn.LeakyReLU)]
        assert activations and all(type(m) is LeakyReLU for m in activations)
    inplace = LeakyReLU(0.2, inplace=True)
    x = torch.tensor([-1.0, 2.0])
    assert inplace(x) is x and torch.equal(x, torch.tensor([-0.2, 2.0]))
