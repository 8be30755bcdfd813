"""Weight initialisation shared by the adversarial networks."""

from __future__ import annotations

from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.conv import _ConvNd
from torch.nn.modules.instancenorm import _InstanceNorm

__all__ = ["init_normal_"]

_NORMS = (_BatchNorm, _InstanceNorm, nn.GroupNorm, nn.LayerNorm)


def init_normal_(net: nn.Module, std: float = 0.02) -> nn.Module:
    """Initialise ``net`` in place from zero-centred normals and return it (uses the global RNG).

    * every convolution, transposed convolution and linear layer: weight ~ N(0, std²), bias = 0;
    * every normalisation layer with a learnable scale (BatchNorm, InstanceNorm(affine=True),
      GroupNorm, hence :class:`genlab.nn.unet.InstanceNorm`, and LayerNorm):
      weight ~ N(1, std²), bias = 0. Affine-free norms have nothing to initialise.

    ``std`` is a standard deviation in weight units (dimensionless). The default 0.02 is Radford et al.
    2016 (DCGAN), §4: "All weights were initialized from a zero-centered Normal distribution with
    standard deviation 0.02", and the CycleGAN/pix2pix reference code's ``init_weights(net,
    init_type='normal', init_gain=0.02)`` (junyanz/pytorch-CycleGAN-and-pix2pix, ``models/networks.py``),
    matching Zhu et al. 2017 (CycleGAN), appendix 7.1: weights drawn from N(0, 0.02). That code gives
    the N(1, 0.02) scale only to BatchNorm; here every affine norm layer gets it.
    """
    if std < 0:
        raise ValueError(f"init_normal_: std must be >= 0, got {std}")
    for module in net.modules():
        if isinstance(module, (_ConvNd, nn.Linear)):
            nn.init.normal_(module.weight, 0.0, std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, _NORMS) and getattr(module, "weight", None) is not None:
            nn.init.normal_(module.weight, 1.0, std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
    return net
