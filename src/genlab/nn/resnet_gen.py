"""ResNet generator of CycleGAN (Johnson et al. 2016; Zhu et al. 2017, appendix 7.2).

Zhu et al. 2017, appendix 7.2, in their notation: c7s1-64, d128, d256, R256 × n_blocks, u128, u64,
c7s1-3 — c7s1-k a 7×7 Convolution-InstanceNorm-ReLU with k filters and stride 1, dk a 3×3
Convolution-InstanceNorm-ReLU with stride 2, Rk a residual block of two 3×3 convolutions, uk a 3×3
fractional-strided Convolution-InstanceNorm-ReLU with stride ½; reflection padding "to reduce
artifacts"; 6 blocks for 128×128 training images and 9 for 256×256 and larger. The last c7s1-3 has
no norm and ends in tanh (as in the reference code).

Reference code facts (junyanz/pytorch-CycleGAN-and-pix2pix ``ResnetGenerator``, ``--netG
resnet_9blocks``): ``InstanceNorm2d(affine=False)`` and therefore conv biases; reflection padding for
the 7×7 convs and inside the residual blocks, zero padding 1 for the two stride-2 convs; up-sampling
``ConvTranspose2d(k=3, stride=2, padding=1, output_padding=1)``; residual block = pad-conv-norm-ReLU-
pad-conv-norm added to its input, no ReLU after the sum. With ngf = 64, 3 → 3 channels:
9 blocks **11,378,179** parameters, 6 blocks 7,837,699 (each block 2·(256·256·9 + 256) = 1,180,160).
"""

from __future__ import annotations

import torch
from torch import nn

from genlab.nn.dropout import Dropout
from genlab.nn.layers import NormKind, PaddedConv2d, UpsampleKind, check_choice, check_multiple, make_norm, up2d

__all__ = ["ResidualBlock", "ResnetGenerator"]


class ResidualBlock(nn.Module):
    """``x + F(x)`` with F = pad-conv3×3-norm-ReLU-[dropout]-pad-conv3×3-norm; shape ``(N, C, H, W)`` kept.

    Johnson et al. 2016 (supplementary, "Residual blocks") / Zhu et al. 2017 appendix 7.2 "Rk";
    ``padding_mode`` "reflect" as in CycleGAN. ``dropout`` between the convs is the reference code's
    ``--use_dropout`` (0.5 there; off for CycleGAN).
    """

    def __init__(self, channels: int, norm: NormKind = "instance", dropout: float = 0.0, *, norm_affine: bool = False,
                 norm_eps: float = 1e-5, bias: bool = True, padding_mode: str = "reflect"):
        super().__init__()
        self.body = nn.Sequential(
            PaddedConv2d(channels, channels, 3, 1, 1, bias=bias, padding_mode=padding_mode),
            make_norm(norm, channels, affine=norm_affine, eps=norm_eps),
            nn.ReLU(),
            Dropout(dropout) if dropout else nn.Identity(),
            PaddedConv2d(channels, channels, 3, 1, 1, bias=bias, padding_mode=padding_mode),
            make_norm(norm, channels, affine=norm_affine, eps=norm_eps),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResnetGenerator(nn.Module):
    """CycleGAN ResNet generator: ``(N, in_channels, H, W)`` → ``(N, out_channels, H, W)`` in [-1, 1].

    Layers (ngf = 64 shown): c7s1-64, d128, d256, R256 × ``n_blocks``, u128, u64, c7s1-``out_channels``
    + tanh (Zhu et al. 2017, appendix 7.2). Two stride-2 down-samplings, so H and W must be multiples
    of :attr:`stride_multiple` = 4 (``ValueError`` otherwise); fully convolutional otherwise. The
    reflection padding of the 7×7 convs needs H, W ≥ 4 and of the blocks H/4, W/4 ≥ 2.

    Args:
        in_channels, out_channels: image channels (3 RGB, 1 grayscale).
        ngf: width of the first layer (CycleGAN ``--ngf 64``); widths ngf, 2·ngf, 4·ngf.
        n_blocks: residual blocks at 4·ngf channels (Zhu et al. 2017 appendix 7.2: 6 for 128×128
            training images, 9 for 256×256 and higher; default 9 = ``resnet_9blocks``).
        norm: ``"instance"`` (paper; affine-free as in the reference code), ``"batch"`` or ``"none"``.
        dropout: dropout inside the residual blocks (0 for CycleGAN).
        upsample: ``"deconv"`` — 3×3 transposed conv, stride 2 (the paper's uk, reference padding 1,
            output padding 1) — or ``"resize"`` — nearest ×2 then 3×3 conv (Odena et al. 2016), same
            parameter count. See :func:`genlab.nn.unet.up2d`.
        norm_affine, norm_eps: instance-norm γ/β and ε (reference: no affine, 1e-5).
        bias: conv biases; ``None`` = unless ``norm="batch"`` (reference ``use_bias``); the output conv
            always has one.
        padding_mode: padding of the 7×7 convs, the residual blocks and the resize convs ("reflect",
            the paper's; or "zeros"). The stride-2 convs always zero-pad by 1, as in the reference code.
        resize_mode: ``nn.Upsample`` mode for ``upsample="resize"``.
    """

    stride_multiple: int = 4
    """H and W of an input must be multiples of this (two stride-2 down-samplings)."""

    def __init__(self, in_channels: int = 3, out_channels: int = 3, ngf: int = 64, n_blocks: int = 9,
                 norm: NormKind = "instance", dropout: float = 0.0, upsample: UpsampleKind = "deconv", *,
                 norm_affine: bool = False, norm_eps: float = 1e-5, bias: bool | None = None,
                 padding_mode: str = "reflect", resize_mode: str = "nearest"):
        super().__init__()
        check_choice("norm", norm, ("instance", "batch", "none"))
        check_choice("upsample", upsample, ("deconv", "resize"))
        check_choice("padding_mode", padding_mode, ("reflect", "zeros"))
        if n_blocks < 0:
            raise ValueError(f"n_blocks: got {n_blocks}; need >= 0")
        self.in_channels, self.out_channels, self.n_blocks = in_channels, out_channels, n_blocks
        use_bias = bias if bias is not None else norm != "batch"

        def norm_of(channels: int) -> nn.Module:
            return make_norm(norm, channels, affine=norm_affine, eps=norm_eps)

        layers: list[nn.Module] = [PaddedConv2d(in_channels, ngf, 7, 1, 3, bias=use_bias, padding_mode=padding_mode),
                                   norm_of(ngf), nn.ReLU()]
        for mult in (1, 2):  # d128, d256
            layers += [nn.Conv2d(ngf * mult, ngf * mult * 2, 3, 2, 1, bias=use_bias), norm_of(ngf * mult * 2), nn.ReLU()]
        layers += [ResidualBlock(4 * ngf, norm, dropout, norm_affine=norm_affine, norm_eps=norm_eps, bias=use_bias,
                                 padding_mode=padding_mode) for _ in range(n_blocks)]
        for mult in (4, 2):  # u128, u64
            layers += [up2d(ngf * mult, ngf * mult // 2, 3, mode=upsample, bias=use_bias, padding_mode=padding_mode,
                            resize_mode=resize_mode),
                       norm_of(ngf * mult // 2), nn.ReLU()]
        layers += [PaddedConv2d(ngf, out_channels, 7, 1, 3, bias=True, padding_mode=padding_mode), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, in_channels, H, W)`` → ``(N, out_channels, H, W)`` in [-1, 1]; H, W multiples of 4."""
        check_multiple(type(self).__name__, x, self.stride_multiple)
        return self.net(x)
