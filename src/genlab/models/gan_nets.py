"""The networks of the GAN family: fully-connected and DCGAN generators and discriminators.

Layer tables and parameter counts: see :mod:`genlab.models.gan` (the family module), which builds
these from its config. Initialisation (:func:`init_weights`), spectral normalisation
(:func:`apply_spectral_norm`) and Keras-style parameter counting (:func:`counted_size`) live here too.
"""

from __future__ import annotations

import math
from itertools import pairwise

import torch
from torch import nn

from genlab.nn.activations import LeakyReLU
from genlab.nn.dropout import Dropout
from genlab.nn.layers import PaddedConv2d
from genlab.nn.matmul_conv import MatmulConvTranspose2d


class FCGenerator(nn.Module):
    """Fully-connected G: z ``(N, latent_dim)`` → images ``(N, C, S, S)`` in [-1, 1] (seed FCGAN)."""

    def __init__(self, latent_dim: int, hidden: list[int], channels: int, image_size: int, slope: float):
        super().__init__()
        layers: list[nn.Module] = []
        for fan_in, fan_out in pairwise([latent_dim, *hidden]):
            layers += [nn.Linear(fan_in, fan_out), LeakyReLU(slope)]
        layers += [nn.Linear(hidden[-1], channels * image_size * image_size), nn.Tanh(),
                   nn.Unflatten(1, (channels, image_size, image_size))]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


class FCDiscriminator(nn.Module):
    """Fully-connected D: images ``(N, C, S, S)`` → logits ``(N,)`` (seed FCGAN: LeakyReLU + Dropout)."""

    def __init__(self, hidden: list[int], channels: int, image_size: int, slope: float, dropout: float):
        super().__init__()
        widths = [channels * image_size * image_size, *reversed(hidden)]
        layers: list[nn.Module] = [nn.Flatten()]
        for fan_in, fan_out in pairwise(widths):
            layers += [nn.Linear(fan_in, fan_out), LeakyReLU(slope), Dropout(dropout)]
        layers.append(nn.Linear(widths[-1], 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(1)


class SeedDCGANGenerator(nn.Module):
    """Seed DCGAN G: z ``(N, latent_dim)`` → images ``(N, C, S, S)`` in [-1, 1]; S a multiple of 16.

    Dense → (2w, S/16, S/16) → ConvT k5 (s1, then four s2) with widths 16w, 8w, 4w, 2w, w, no bias,
    BatchNorm + ReLU (+ Dropout after the first two) → 1×1 conv (bias) → tanh. Keras "same" padding
    is ``padding=2, output_padding=1`` for the k5 s2 layers (same shapes, same parameters).
    """

    def __init__(self, latent_dim: int, width: int, channels: int, image_size: int, dropout: float):
        super().__init__()
        m, w = image_size // 16, width
        layers: list[nn.Module] = [nn.Linear(latent_dim, 2 * w * m * m), nn.Unflatten(1, (2 * w, m, m))]
        widths = [2 * w, 16 * w, 8 * w, 4 * w, 2 * w, w]
        for i, (fan_in, fan_out) in enumerate(pairwise(widths)):
            stride = 1 if i == 0 else 2
            layers += [MatmulConvTranspose2d(fan_in, fan_out, 5, stride=stride, padding=2, output_padding=stride - 1,
                                          bias=False),
                       nn.BatchNorm2d(fan_out), nn.ReLU()]
            if i < 2:
                layers.append(Dropout(dropout))
        layers += [PaddedConv2d(w, channels, 1), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


def _d_conv_block(fan_in: int, fan_out: int, slope: float, batchnorm: bool) -> list[nn.Module]:
    """A k4 s2 D convolution, then BatchNorm (the conv without bias: BN's β replaces it) or, without
    BatchNorm, a biased conv; then LeakyReLU."""
    if batchnorm:
        return [PaddedConv2d(fan_in, fan_out, 4, 2, 1, bias=False), nn.BatchNorm2d(fan_out), LeakyReLU(slope)]
    return [PaddedConv2d(fan_in, fan_out, 4, 2, 1), LeakyReLU(slope)]


class SeedDCGANDiscriminator(nn.Module):
    """Seed DCGAN D: images ``(N, C, S, S)`` → logits ``(N,)``; four k4 s2 convs (2w, 2w, 4w, 8w), dense 1.

    ``batchnorm=False`` (used with spectral norm) drops the BatchNorms and gives those convs a bias.
    """

    def __init__(self, width: int, channels: int, image_size: int, slope: float, batchnorm: bool = True):
        super().__init__()
        w, m = width, image_size // 16
        layers: list[nn.Module] = [PaddedConv2d(channels, 2 * w, 4, stride=2, padding=1, bias=False), LeakyReLU(slope)]
        for fan_in, fan_out in [(2 * w, 2 * w), (2 * w, 4 * w), (4 * w, 8 * w)]:
            layers += _d_conv_block(fan_in, fan_out, slope, batchnorm)
        layers += [nn.Flatten(), nn.Linear(8 * w * m * m, 1)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(1)


def _radford_widths(width: int, image_size: int) -> list[int]:
    """Channels from the 4×4 map up: S=64 → [8f, 4f, 2f, f]; S=32 → [4f, 2f, f]."""
    levels = int(math.log2(image_size)) - 2
    return [width * 2 ** (levels - 1 - i) for i in range(levels)]


class RadfordGenerator(nn.Module):
    """DCGAN G (Radford et al. 2016, Fig. 1): z ``(N, latent_dim)`` → images ``(N, C, S, S)`` in [-1, 1].

    ConvT k4 s1 p0 to a 4×4 map, then ConvT k4 s2 p1 doubling the size, BatchNorm + ReLU on all
    hidden layers, tanh output; hidden layers have no bias (BatchNorm's β replaces it).
    """

    def __init__(self, latent_dim: int, width: int, channels: int, image_size: int):
        super().__init__()
        widths = _radford_widths(width, image_size)
        layers: list[nn.Module] = [nn.Unflatten(1, (latent_dim, 1, 1)),
                                   MatmulConvTranspose2d(latent_dim, widths[0], 4, 1, 0, bias=False),
                                   nn.BatchNorm2d(widths[0]), nn.ReLU()]
        for fan_in, fan_out in pairwise(widths):
            layers += [MatmulConvTranspose2d(fan_in, fan_out, 4, 2, 1, bias=False), nn.BatchNorm2d(fan_out), nn.ReLU()]
        layers += [MatmulConvTranspose2d(widths[-1], channels, 4, 2, 1), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


class RadfordDiscriminator(nn.Module):
    """DCGAN D (Radford et al. 2016): images ``(N, C, S, S)`` → logits ``(N,)``.

    Conv k4 s2 p1 halving the size (f, 2f, … up to the 4×4 map), LeakyReLU 0.2, BatchNorm on all
    but the first layer (§3), then a 4×4 conv to one logit (no sigmoid). ``dropout`` > 0 adds
    Dropout after each LeakyReLU (not in the paper). ``batchnorm=False`` (used with spectral norm)
    drops the BatchNorms and gives those convs a bias.
    """

    def __init__(self, width: int, channels: int, image_size: int, slope: float, dropout: float = 0.0,
                 batchnorm: bool = True):
        super().__init__()
        widths = list(reversed(_radford_widths(width, image_size)))  # [f, 2f, ...]
        layers: list[nn.Module] = [PaddedConv2d(channels, widths[0], 4, 2, 1, bias=False), LeakyReLU(slope)]
        if dropout:
            layers.append(Dropout(dropout))
        for fan_in, fan_out in pairwise(widths):
            layers += _d_conv_block(fan_in, fan_out, slope, batchnorm)
            if dropout:
                layers.append(Dropout(dropout))
        layers.append(PaddedConv2d(widths[-1], 1, 4, 1, 0))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).flatten(1).squeeze(1)


def init_weights(net: nn.Module, scheme: str) -> None:
    """Initialise ``net`` in place (global RNG): ``glorot`` (Keras defaults: Glorot-uniform weights, zero
    biases) or ``dcgan`` (Radford et al. 2016, §4: weights N(0, 0.02); BatchNorm γ ~ N(1, 0.02), β = 0)."""
    for module in net.modules():
        if isinstance(module, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
            if scheme == "dcgan":
                nn.init.normal_(module.weight, 0.0, 0.02)
            else:
                nn.init.xavier_uniform_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm2d):
            if scheme == "dcgan":
                nn.init.normal_(module.weight, 1.0, 0.02)
            else:
                nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)


def apply_spectral_norm(net: nn.Module) -> nn.Module:
    """Spectral normalisation (Miyato et al. 2018) of every conv/linear weight of ``net``, in place."""
    from torch.nn.utils.parametrizations import spectral_norm

    for module in list(net.modules()):
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            spectral_norm(module)
    return net


def counted_size(net: nn.Module) -> int:
    """Parameters of ``net`` plus BatchNorm running mean/var — the Keras ``Total params`` convention."""
    total = sum(p.numel() for p in net.parameters())
    for module in net.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.track_running_stats:
            total += module.running_mean.numel() + module.running_var.numel()
    return total
