"""StackGAN networks: shapes, ranges, Conditioning Augmentation, KL, size checks, parameter counts."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from genlab.models.stackgan_nets import Stage1Discriminator, Stage1Generator, Stage2Discriminator, Stage2Generator
from genlab.nn.conditioning import ConditioningAugmentation, kl_to_standard_normal
from genlab.nn.layers import NearestResizeConv

TEXT = 24  # small text embedding for the shape tests
N = 3


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _inputs(n: int = N, text_dim: int = TEXT, z_dim: int = 10, c_dim: int = 8):
    g = torch.Generator().manual_seed(0)
    return (torch.randn(n, text_dim, generator=g), torch.randn(n, z_dim, generator=g), torch.randn(n, c_dim, generator=g))


# ------------------------------------------------------------------------------------ conditioning


def test_ca_shapes_and_eps_zero_gives_mu():
    torch.manual_seed(0)
    ca = ConditioningAugmentation(TEXT, c_dim=8)
    phi = torch.randn(N, TEXT)
    c, mu, logvar = ca(phi, torch.zeros(N, 8))
    assert c.shape == mu.shape == logvar.shape == (N, 8)
    assert torch.equal(c, mu)
    c_none, mu_none, _ = ca(phi, None)
    assert torch.equal(c_none, mu_none) and torch.equal(mu_none, mu)
    # c = mu + sigma * eps, sigma = exp(logvar / 2)
    eps = torch.randn(N, 8)
    c, mu, logvar = ca(phi, eps)
    torch.testing.assert_close(c, mu + torch.exp(0.5 * logvar) * eps)
    # the paper's CA: mu and logvar are linear in phi (no ReLU): negative values occur
    assert (mu < 0).any() and (logvar < 0).any()


def test_ca_rejects_bad_shapes():
    ca = ConditioningAugmentation(TEXT, c_dim=8)
    with pytest.raises(ValueError, match=r"\(N, 24\)"):
        ca(torch.randn(N, TEXT + 1))
    with pytest.raises(ValueError, match="eps"):
        ca(torch.randn(N, TEXT), torch.randn(N, 7))


def test_kl_closed_form():
    zero = torch.zeros(2, 5)
    assert torch.equal(kl_to_standard_normal(zero, zero), torch.zeros(2))
    torch.manual_seed(1)
    mu, logvar = torch.randn(4, 5), torch.randn(4, 5)
    kl = kl_to_standard_normal(mu, logvar)
    assert kl.shape == (4,) and (kl > 0).all()
    std = torch.exp(0.5 * logvar)
    reference = torch.distributions.kl_divergence(torch.distributions.Normal(mu, std), torch.distributions.Normal(0.0, 1.0)).sum(1)
    torch.testing.assert_close(kl, reference)
    # one dimension, mu = 1, sigma = 1: KL = mu^2 / 2 = 0.5 nats
    torch.testing.assert_close(kl_to_standard_normal(torch.ones(1, 1), torch.zeros(1, 1)), torch.tensor([0.5]))


# ------------------------------------------------------------------------------------ Stage-I


@pytest.mark.parametrize("size", [32, 64])
def test_stage1_generator_shapes_and_range(size):
    torch.manual_seed(0)
    g = Stage1Generator(TEXT, z_dim=10, c_dim=8, ngf=16, image_size=size)
    phi, z, eps = _inputs()
    image, mu, logvar = g(phi, z, eps)
    assert image.shape == (N, 3, size, size)
    assert mu.shape == logvar.shape == (N, 8)
    assert image.abs().max() <= 1.0
    # up-blocks: 4x4 -> size, channels 8*ngf halved each time
    assert len(g.upsample) == {32: 3, 64: 4}[size]
    g.eval()
    image_eval, _, _ = g(phi, z)  # eps=None: deterministic
    image_eval2, _, _ = g(phi, z)
    assert torch.equal(image_eval, image_eval2)


def test_stage1_generator_compiled_equals_eager_with_the_up_blocks_state_dict_keys():
    # up-blocks are NearestResizeConv: compiled they convolve the small map (resize_conv2d), keys unchanged
    torch.manual_seed(0)
    g = Stage1Generator(TEXT, z_dim=10, c_dim=8, ngf=16, image_size=64).double().eval()
    assert isinstance(g.upsample[0], NearestResizeConv)
    assert [k for k in g.state_dict() if k.startswith("upsample.0.")] == [
        "upsample.0.1.weight", "upsample.0.2.weight", "upsample.0.2.bias", "upsample.0.2.running_mean",
        "upsample.0.2.running_var", "upsample.0.2.num_batches_tracked"]
    phi, z, _ = (t.double() for t in _inputs())
    expected, _, _ = g(phi, z)
    image, _, _ = torch.compile(g, dynamic=False)(phi, z)
    assert torch.allclose(image, expected, rtol=0, atol=1e-10)


def test_gradients_reach_ca():
    torch.manual_seed(0)
    g = Stage1Generator(TEXT, z_dim=10, c_dim=8, ngf=16, image_size=32)
    phi, z, eps = _inputs()
    image, mu, logvar = g(phi, z, eps)
    (image.square().mean() + kl_to_standard_normal(mu, logvar).mean()).backward()
    assert g.ca.fc.weight.grad is not None and g.ca.fc.weight.grad.abs().sum() > 0
    # the image term alone also reaches the CA (through c = mu + sigma * eps)
    g.zero_grad()
    image, _, _ = g(phi, z, eps)
    image.square().mean().backward()
    assert g.ca.fc.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("size", [32, 64])
def test_stage1_discriminator_logits(size):
    torch.manual_seed(0)
    d = Stage1Discriminator(c_dim=8, ndf=8, image_size=size)
    images = torch.rand(N, 3, size, size) * 2 - 1
    cond = torch.randn(N, 8)
    logits = d(images, cond)
    assert logits.shape == (N,)
    features = d.encode(images)
    assert features.shape == (N, 64, 4, 4)
    torch.testing.assert_close(d.conditional_logits(features, cond), logits)
    assert not d.has_unconditional_head
    with pytest.raises(RuntimeError, match="unconditional"):
        d.unconditional_logits(features)
    d3 = Stage1Discriminator(c_dim=8, ndf=8, image_size=size, joint_kernel=3, unconditional_head=True, condition_dim=TEXT)
    assert d3(images, torch.randn(N, TEXT)).shape == (N,)
    assert d3.unconditional_logits(d3.encode(images)).shape == (N,)


def test_bad_sizes_raise_value_error():
    with pytest.raises(ValueError, match=r"image_size.*4·2\^k.*got 48"):
        Stage1Generator(TEXT, image_size=48)
    with pytest.raises(ValueError, match=r"image_size.*got 4\b"):
        Stage1Generator(TEXT, image_size=4)
    with pytest.raises(ValueError, match=r"image_size.*got 40"):
        Stage1Discriminator(image_size=40)
    with pytest.raises(ValueError, match=r"image_size.*k ≥ 4.*got 32"):
        Stage2Discriminator(image_size=32)
    with pytest.raises(ValueError, match=r"upscale.*\(2, 4\).*got 3"):
        Stage2Generator(TEXT, upscale=3)
    with pytest.raises(ValueError, match=r"stage1_size.*got 60"):
        Stage2Generator(TEXT, stage1_size=60)
    with pytest.raises(ValueError, match=r"joint_kernel.*got 2"):
        Stage1Discriminator(joint_kernel=2)
    g = Stage1Generator(TEXT, z_dim=10, c_dim=8, ngf=16, image_size=32)
    phi, z, eps = _inputs()
    with pytest.raises(ValueError, match="z must have shape"):
        g(phi, z[:, :5], eps)
    d = Stage1Discriminator(c_dim=8, ndf=8, image_size=32)
    with pytest.raises(ValueError, match=r"image must have shape \(N, 3, 32, 32\)"):
        d(torch.zeros(N, 3, 64, 64), torch.zeros(N, 8))


# ------------------------------------------------------------------------------------ Stage-II


@pytest.mark.parametrize(("stage1", "upscale"), [(32, 2), (32, 4), (64, 2)])
def test_stage2_generator_shapes(stage1, upscale):
    torch.manual_seed(0)
    g = Stage2Generator(TEXT, c_dim=8, ngf=8, stage1_size=stage1, upscale=upscale, res_blocks=1)
    phi, _, eps = _inputs()
    low = torch.rand(N, 3, stage1, stage1) * 2 - 1
    image, mu, logvar = g(low, phi, eps)
    assert image.shape == (N, 3, stage1 * upscale, stage1 * upscale)
    assert mu.shape == logvar.shape == (N, 8)
    assert image.abs().max() <= 1.0
    assert g.encoder(low).shape == (N, 32, stage1 // 4, stage1 // 4)


@pytest.mark.parametrize("size", [64, 128])
def test_stage2_discriminator_logits(size):
    torch.manual_seed(0)
    d = Stage2Discriminator(c_dim=8, ndf=4, image_size=size)
    images = torch.rand(N, 3, size, size) * 2 - 1
    features = d.encode(images)
    assert features.shape == (N, 32, 4, 4)
    assert d(images, torch.randn(N, 8)).shape == (N,)
    assert d.has_unconditional_head and d.unconditional_logits(features).shape == (N,)


def test_stage2_discriminator_256_layers():
    # the authors' 256 encoder: six stride-2 convs to 32*ndf, then 3x3 convs to 16*ndf and 8*ndf
    d = Stage2Discriminator(c_dim=8, ndf=2, image_size=256)
    convs = [m for m in d.encode_image.modules() if isinstance(m, nn.Conv2d)]
    assert [(c.out_channels, c.kernel_size[0], c.stride[0]) for c in convs] == \
        [(2, 4, 2), (4, 4, 2), (8, 4, 2), (16, 4, 2), (32, 4, 2), (64, 4, 2), (32, 3, 1), (16, 3, 1)]


# ------------------------------------------------------------------------------------ parameter counts


def test_default_stage1_parameter_counts():
    text_dim, z_dim, c_dim, ngf, ndf = 1024, 100, 128, 128, 64
    g = Stage1Generator(text_dim)
    ca = 2 * c_dim * (text_dim + 1)  # Linear(1024, 256) with bias
    fc = (c_dim + z_dim) * 8 * ngf * 16  # Linear(228, 16384), no bias
    bn1d = 2 * 8 * ngf * 16
    assert ca == 262_400 and fc == 3_735_552
    assert n_params(g.ca) == ca
    assert n_params(g.fc) == fc + bn1d
    widths = [1024, 512, 256, 128, 64]
    ups = sum(9 * a * b + 2 * b for a, b in zip(widths[:-1], widths[1:]))
    to_image = 9 * 64 * 3
    print(f"Stage1Generator(1024) @64: {n_params(g):,} parameters")
    assert n_params(g) == ca + fc + bn1d + ups + to_image == 10_301_248

    d = Stage1Discriminator()
    enc = 16 * 3 * ndf + sum(16 * a * b + 2 * b for a, b in [(64, 128), (128, 256), (256, 512)])
    joint = (8 * ndf + c_dim) * 8 * ndf + 2 * 8 * ndf  # 1x1 conv (paper) + BN
    logit = 8 * ndf * 16 + 1
    print(f"Stage1Discriminator() @64: {n_params(d):,} parameters")
    assert n_params(d) == enc + joint + logit == 3_094_273
    d3 = Stage1Discriminator(joint_kernel=3)  # StackGAN-Pytorch's D_GET_LOGITS
    assert n_params(d3) - n_params(d) == 8 * (8 * ndf + c_dim) * 8 * ndf
