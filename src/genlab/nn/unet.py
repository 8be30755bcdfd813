"""U-Net generator (Ronneberger et al. 2015; Isola et al. 2017) and the blocks the CycleGAN networks share.

:class:`UNetGenerator` maps an image ``(N, C_in, H, W)`` to an image ``(N, C_out, H, W)`` in [-1, 1]
(tanh). The encoder halves H and W ``num_downs`` times with stride-2 convolutions of width
``ngf · min(2^i, 8)`` (64 → 128 → 256 → 512 → 512 … at ``ngf = 64``); the decoder doubles them back,
concatenating after every up-sampling block the mirrored encoder feature map (the skip connection).
It is fully convolutional: any H and W that are multiples of :attr:`UNetGenerator.stride_multiple`
``= 2^num_downs`` work.

Defaults follow pix2pix (Isola et al. 2017, appendix 6.1.1: encoder C64-C128-C256-C512-C512-C512-
C512-C512, decoder CD512-CD512-CD512-C512-C256-C128-C64, 4×4 convolutions with stride 2, no norm on
the first encoder layer, LeakyReLU 0.2 in the encoder and ReLU in the decoder, tanh output) as used by
CycleGAN's ``--netG unet_256`` (junyanz/pytorch-CycleGAN-and-pix2pix ``UnetGenerator``: no norm on the
innermost layer either; CycleGAN default ``--norm instance``, i.e. affine-free InstanceNorm2d with
conv biases, and ``--no_dropout``). At 256×256 with 3 channels that is **54,409,603** parameters
(``norm="batch"``, no conv bias but the output's: 54,413,955 trainable, the "54.414 M" junyanz's code
prints; + 9,856 BatchNorm running mean/var in a Keras-style count).

Preset :meth:`UNetGenerator.seed` is the U-Net of seed report 000, question 2 (§2.3.1, CycleGAN on
monet2photo, Keras). See its docstring for what the seed states and what is built.

The layer helpers (:class:`~genlab.nn.layers.InstanceNorm`, :func:`~genlab.nn.layers.make_norm`, ...) live in
:mod:`genlab.nn.layers`, shared with :mod:`genlab.nn.resnet_gen` and :mod:`genlab.nn.patchgan`.
"""

from __future__ import annotations

import torch
from torch import nn

from genlab.nn.activations import LeakyReLU
from genlab.nn.dropout import Dropout
from genlab.nn.layers import (
    _NORMS,
    _PADDINGS,
    _UPSAMPLES,
    NormKind,
    PaddingKind,
    UpsampleKind,
    check_choice,
    check_multiple,
    conv2d,
    make_norm,
    up2d,
)


def _two_adic(n: int) -> int:
    """How many times ``n`` halves to an integer."""
    return (n & -n).bit_length() - 1


class UNetGenerator(nn.Module):
    """U-Net image-to-image generator: ``(N, in_channels, H, W)`` → ``(N, out_channels, H, W)`` in [-1, 1].

    Structure (i = 1 … ``num_downs``; width w_i = ``ngf · min(2^(i−1), max_mult)``):

    * encoder block i: ``kernel_size`` conv, stride 2 → norm (none on block 1 and, unless
      ``norm_innermost``, on the innermost block) → LeakyReLU(``encoder_slope``); its output e_i is
      kept for the skip connection;
    * decoder block i (i = num_downs − 1 … 1): up-sampling layer (:func:`up2d`) to w_i channels → norm
      → dropout (``dropout`` > 0, on the first ``dropout_blocks`` decoder blocks) → ReLU, then
      concatenation [block output, e_i] along channels (2·w_i channels);
    * output: up-sampling layer to ``out_channels`` (with bias) → tanh.

    Args:
        in_channels, out_channels: image channels (3 for RGB, 1 for grayscale).
        image_size: a training image side in pixels; sets ``num_downs`` to the number of times it halves
            to an integer, at most 8 (256 → 8 = pix2pix ``unet_256``, 128 → 7, 96 → 5). Ignored when
            ``num_downs`` is given (then it must be a multiple of 2^num_downs).
        num_downs: number of stride-2 encoder blocks (default 8, pix2pix ``unet_256``: a 256×256 input
            reaches 1×1). Inputs must have H and W divisible by 2^num_downs.
        ngf: width of the first encoder block (pix2pix / CycleGAN ``--ngf 64``).
        norm: ``"instance"`` (CycleGAN default, Zhu et al. 2017 §4), ``"batch"`` (pix2pix, Isola et al.
            2017 §3.2) or ``"none"``; see :func:`make_norm`.
        dropout: dropout probability in the decoder (pix2pix: 0.5, its only noise source, Isola et al.
            2017 §3.1 and appendix 6.1.1 "CD"; CycleGAN trains without dropout, so 0.0 by default).
        upsample: ``"deconv"`` (transposed convolutions, the papers') or ``"resize"`` (×2 resize then
            3×3 conv, against checkerboard artifacts; Odena et al. 2016); see :func:`up2d`.
        max_mult: cap on the width multiplier (8: widths stop at 512 for ngf 64).
        kernel_size: encoder/decoder kernel (4 in pix2pix; 3 in the seed).
        encoder_slope: LeakyReLU negative slope of the encoder (0.2 in pix2pix appendix 6.1.1; 0.0 =
            ReLU, the seed).
        dropout_blocks: how many decoder blocks, from the innermost, get dropout (3, the paper's
            "CD512-CD512-CD512"; the reference code skips the innermost and uses the next three).
        norm_affine, norm_eps: instance-norm γ/β and ε (see :func:`make_norm`; junyanz: no affine, 1e-5).
        norm_innermost: normalise the innermost encoder block too (the seed does; pix2pix code does not).
            With instance norm on a 1×1 innermost map the output is β for every input.
        bias: biases of the encoder and decoder convs; ``None`` = unless ``norm="batch"`` (junyanz's
            ``use_bias``, which also drops them on the un-normalised first and innermost convs). The
            output layer always has a bias.
        padding: ``"symmetric"`` (PyTorch) or ``"keras"`` (Keras ``padding="same"``, see
            :class:`KerasSamePad2d`; matters for odd kernels only).
        resize_mode: ``nn.Upsample`` mode for ``upsample="resize"`` ("nearest" or "bilinear").

    Attributes:
        num_downs, stride_multiple (= 2^num_downs): the translate command pads inputs to a multiple
        of ``stride_multiple``.
    """

    def __init__(self, in_channels: int = 3, out_channels: int = 3, image_size: int | None = None,
                 num_downs: int | None = None, ngf: int = 64, norm: NormKind = "instance", dropout: float = 0.0,
                 upsample: UpsampleKind = "deconv", *, max_mult: int = 8, kernel_size: int = 4,
                 encoder_slope: float = 0.2, dropout_blocks: int = 3, norm_affine: bool = False,
                 norm_eps: float = 1e-5, norm_innermost: bool = False, bias: bool | None = None,
                 padding: PaddingKind = "symmetric", resize_mode: str = "nearest"):
        super().__init__()
        check_choice("norm", norm, _NORMS)
        check_choice("upsample", upsample, _UPSAMPLES)
        check_choice("padding", padding, _PADDINGS)
        if num_downs is None:
            if image_size is None:
                num_downs = 8
            else:
                if image_size < 2:
                    raise ValueError(f"image_size: got {image_size}; need an even size >= 2")
                num_downs = min(8, _two_adic(image_size))
                if num_downs < 1:
                    raise ValueError(f"image_size: got {image_size}; a U-Net needs an even image size")
        if num_downs < 1:
            raise ValueError(f"num_downs: got {num_downs}; need >= 1")
        if image_size is not None and image_size % (2 ** num_downs):
            raise ValueError(f"image_size {image_size} is not a multiple of 2**num_downs = {2 ** num_downs}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout: got {dropout}; need 0 <= dropout < 1")
        self.num_downs = num_downs
        self.in_channels, self.out_channels = in_channels, out_channels

        def norm_of(channels: int) -> nn.Module:
            return make_norm(norm, channels, affine=norm_affine, eps=norm_eps)

        def has_bias() -> bool:  # junyanz's use_bias: every conv but the output one has a bias iff norm != batch
            return bias if bias is not None else norm != "batch"

        widths = [ngf * min(2 ** i, max_mult) for i in range(num_downs)]
        self.encoder = nn.ModuleList()
        fan_in = in_channels
        for i, width in enumerate(widths):
            normed = norm != "none" and i > 0 and (i < num_downs - 1 or norm_innermost)
            self.encoder.append(nn.Sequential(
                conv2d(fan_in, width, kernel_size, 2, bias=has_bias(), padding=padding),
                norm_of(width) if normed else nn.Identity(),
                LeakyReLU(encoder_slope) if encoder_slope else nn.ReLU(),
            ))
            fan_in = width
        self.decoder = nn.ModuleList()
        for j, i in enumerate(range(num_downs - 2, -1, -1)):  # j = 0 is the innermost decoder block
            fan_in = widths[-1] if j == 0 else 2 * widths[i + 1]
            self.decoder.append(nn.Sequential(
                up2d(fan_in, widths[i], kernel_size, mode=upsample, bias=has_bias(), padding=padding,
                     resize_mode=resize_mode),
                norm_of(widths[i]),
                Dropout(dropout) if dropout and j < dropout_blocks else nn.Identity(),
                nn.ReLU(),
            ))
        self.output = nn.Sequential(
            up2d(2 * widths[0] if num_downs > 1 else widths[0], out_channels, kernel_size, mode=upsample, bias=True,
                 padding=padding, resize_mode=resize_mode),
            nn.Tanh(),
        )

    @property
    def stride_multiple(self) -> int:
        """H and W of an input must be multiples of this (2^num_downs)."""
        return 2 ** self.num_downs

    @classmethod
    def seed(cls, in_channels: int = 3, out_channels: int = 3, upsample: UpsampleKind = "deconv") -> UNetGenerator:
        """The U-Net generator of seed report 000, question 2 (§2.3.1): **30,618,691** parameters at 3 → 3.

        What the seed states: §2.3.1 describes the generator only in prose — contracting path of 3×3,
        stride-2 convolutions whose filter count doubles from 64 to 512 while the size halves; expanding
        path of transposed convolutions that double the size and halve the channels, each receiving the
        mirrored contracting-path map (skip connection); a final transposed convolution with 3 filters
        for the RGB output; ReLU in all layers. **The report has no layer table and no parameter total
        for the generator** (its only CycleGAN table is the discriminator "Dx", 2,766,529 parameters,
        see :meth:`genlab.nn.patchgan.PatchDiscriminator.seed`), so there is no seed total to match.

        What is built: the generator of a public Keras CycleGAN script (monet2photo 256×256×3, TF-Addons
        ``InstanceNormalization``) whose training step the seed's code excerpts reproduce line for line
        and whose discriminator is the seed's "Dx" table to the parameter; it fills in what the prose
        leaves open:
        encoder d64 (no norm), d128, d256, d512, d512 ×4 — each 3×3 conv, stride 2, "same", bias, then
        affine instance norm (ε = 1e-3) and ReLU, *including the innermost* (1×1 at 256²); decoder
        u512 ×4, u256, u128, u64 — each 3×3 transposed conv, stride 2, "same", bias, affine instance
        norm, ReLU, then concat [output, skip]; output 3×3 transposed conv, stride 2, to
        ``out_channels``, tanh (the prose's "ReLU in all layers" excludes this tanh). Keras-style count
        (instance norm has no moving statistics): encoder 10,996,096 + decoder 19,622,595 =
        **30,618,691** (1 → 1 channels: 30,615,233).

        Consequence kept on purpose: at 256×256 the innermost map is 1×1, where instance norm outputs
        its shift β whatever the input, so the bottleneck is a learned constant and all information
        passes through the seven skip connections. Inputs must be multiples of 256 (8 stride-2 blocks).
        """
        return cls(in_channels, out_channels, num_downs=8, ngf=64, norm="instance", dropout=0.0, upsample=upsample,
                   kernel_size=3, encoder_slope=0.0, norm_affine=True, norm_eps=1e-3, norm_innermost=True, bias=True,
                   padding="keras")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, in_channels, H, W)`` → ``(N, out_channels, H, W)`` in [-1, 1]; H, W multiples of
        :attr:`stride_multiple`, else ``ValueError``."""
        check_multiple(type(self).__name__, x, self.stride_multiple)
        skips = []
        h = x
        for block in self.encoder:
            h = block(h)
            skips.append(h)
        h = skips.pop()
        for block in self.decoder:
            h = torch.cat([block(h), skips.pop()], dim=1)
        return self.output(h)
