"""PatchGAN discriminator (Isola et al. 2017 §3.2.2; Zhu et al. 2017 appendix 7.2).

A fully convolutional discriminator that outputs one logit per overlapping input patch,
``(N, C, H, W)`` → ``(N, 1, h, w)``; the adversarial loss averages over the map. Presets:

* :meth:`PatchDiscriminator.paper` — the 70×70 PatchGAN of pix2pix/CycleGAN (Zhu et al. 2017
  appendix 7.2: C64-C128-C256-C512, Ck = 4×4 Convolution-InstanceNorm-LeakyReLU(0.2) with stride 2,
  no InstanceNorm on C64, then a convolution to a 1-channel output). The reference code
  (junyanz ``NLayerDiscriminator``, ``n_layers=3``) gives C512 stride **1**, padding 1 on every conv
  and affine-free instance norm with conv biases: **2,764,737** parameters at 3 channels, a 30×30
  map at 256×256, receptive field 70×70.
* :meth:`PatchDiscriminator.seed` — seed report 000, question 2, table "Dx" (Keras): C64 (no norm),
  C128, C256, C512 all stride 2, "same" padding, bias, affine instance norm (2 parameters per
  channel); then Conv 1, 4×4, stride 1, "same": **2,766,529** parameters at 256×256×3, a 16×16 map,
  receptive field 94×94. The table is self-consistent (every row and the total check out); the
  difference to the paper's count is the 2·(128 + 256 + 512) = 1,792 instance-norm γ/β. The seed's
  text calls it a 70×70 PatchGAN, but with C512 at stride 2 its receptive field is 94×94.

The receptive field r of a stack of (kernel k_i, stride s_i) convolutions is r = 1 + Σ (k_i − 1)·Π_{j<i} s_j.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from genlab.nn.activations import LeakyReLU
from genlab.nn.layers import NormKind, PaddingKind, check_choice, conv2d, make_norm

__all__ = ["PatchDiscriminator"]


class PatchDiscriminator(nn.Module):
    """PatchGAN: ``(N, in_channels, H, W)`` → per-patch logits ``(N, 1, h, w)`` (no sigmoid).

    Layers (width w_i = ``ndf · min(2^i, 8)``): conv 4×4 stride 2 to ndf → LeakyReLU; ``n_layers − 1``
    × [conv 4×4 stride 2 → norm → LeakyReLU]; conv 4×4 stride ``last_stride`` to w_{n_layers} → norm →
    LeakyReLU; conv 4×4 stride 1 to 1 channel (bias, no activation — the losses take logits).

    Args:
        in_channels: image channels (3 RGB, 1 grayscale).
        ndf: width of the first conv (pix2pix/CycleGAN ``--ndf 64``).
        n_layers: number of stride-2 convs before the ``last_stride`` conv (reference ``n_layers``: 3
            gives the 70×70 PatchGAN; Isola et al. 2017 §4.4 also evaluate 1×1, 16×16 and 286×286).
        norm: ``"instance"`` (CycleGAN), ``"batch"`` (pix2pix) or ``"none"``; never on the first conv
            (Isola et al. 2017 appendix 6.1.2, Zhu et al. 2017 appendix 7.2).
        slope: LeakyReLU negative slope (0.2 in both papers' appendices).
        last_stride: stride of the widest conv (1 in the papers' reference code; 2 in the seed).
        max_mult: cap on the width multiplier (8: 512 channels at ndf 64).
        norm_affine, norm_eps: instance-norm γ/β and ε (see :func:`genlab.nn.unet.make_norm`).
        bias: biases of the normalised convs; ``None`` = unless ``norm="batch"`` (reference
            ``use_bias``). The first and last convs always have one.
        padding: ``"symmetric"`` (PyTorch padding 1 on every 4×4 conv, as the reference code: each
            stride-1 conv shrinks the map by 1) or ``"keras"`` (Keras "same": the map is ⌈H/2^k⌉ for
            k stride-2 convs).
    """

    def __init__(self, in_channels: int = 3, ndf: int = 64, n_layers: int = 3, norm: NormKind = "instance", *,
                 slope: float = 0.2, last_stride: int = 1, max_mult: int = 8, norm_affine: bool = False,
                 norm_eps: float = 1e-5, bias: bool | None = None, padding: PaddingKind = "symmetric"):
        super().__init__()
        check_choice("norm", norm, ("instance", "batch", "none"))
        check_choice("padding", padding, ("symmetric", "keras"))
        if n_layers < 1:
            raise ValueError(f"n_layers: got {n_layers}; need >= 1")
        if last_stride not in (1, 2):
            raise ValueError(f"last_stride: got {last_stride}; allowed: 1, 2")
        self.padding = padding
        use_bias = bias if bias is not None else norm != "batch"
        widths = [ndf * min(2 ** i, max_mult) for i in range(n_layers + 1)]
        strides = [2] * n_layers + [last_stride]
        layers: list[nn.Module] = [conv2d(in_channels, widths[0], 4, 2, bias=True, padding=padding), LeakyReLU(slope)]
        for i in range(1, n_layers + 1):
            layers += [conv2d(widths[i - 1], widths[i], 4, strides[i], bias=use_bias, padding=padding),
                       make_norm(norm, widths[i], affine=norm_affine, eps=norm_eps), LeakyReLU(slope)]
        layers.append(conv2d(widths[-1], 1, 4, 1, bias=True, padding=padding))
        self.net = nn.Sequential(*layers)
        self.kernels_strides = [(4, s) for s in strides] + [(4, 1)]

    @classmethod
    def paper(cls, in_channels: int = 3, ndf: int = 64) -> PatchDiscriminator:
        """70×70 PatchGAN of pix2pix/CycleGAN as in the reference code (``--netD basic``, ``--norm
        instance``): 2,764,737 parameters at 3 channels, ``(N, 1, 30, 30)`` at 256×256."""
        return cls(in_channels, ndf, n_layers=3, norm="instance")

    @classmethod
    def seed(cls, in_channels: int = 3) -> PatchDiscriminator:
        """Seed report 000, question 2, table "Dx": Total params **2,766,529** at 256×256×3 (see module
        docstring); ``(N, 1, 16, 16)`` at 256×256, receptive field 94×94. Instance norm as TF-Addons:
        affine, ε = 1e-3."""
        return cls(in_channels, 64, n_layers=3, norm="instance", last_stride=2, norm_affine=True, norm_eps=1e-3,
                   bias=True, padding="keras")

    @property
    def receptive_field(self) -> int:
        """Side, in input pixels, of the square patch each output logit sees (70 for :meth:`paper`,
        94 for :meth:`seed`)."""
        r, jump = 1, 1
        for k, s in self.kernels_strides:
            r += (k - 1) * jump
            jump *= s
        return r

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        """``(h, w)`` of the logit map for an ``height × width`` input, without running the net."""
        def side(n: int) -> int:
            for k, s in self.kernels_strides:
                n = math.ceil(n / s) if self.padding == "keras" else (n + 2 * ((k - 1) // 2) - k) // s + 1
            return n
        return side(height), side(width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, in_channels, H, W)`` → logits ``(N, 1, h, w)``, see :meth:`output_size`."""
        return self.net(x)
