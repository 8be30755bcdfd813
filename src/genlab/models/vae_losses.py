"""Losses of the VAE family as pure functions (Kingma & Welling 2014; Burda et al. 2016).

All values are in nats. ``x`` is a batch of images ``(N, C, H, W)`` in [0, 1] (binary after
dynamic binarisation), ``logits`` the decoder's Bernoulli logits of the same shape, ``mu`` and
``logvar`` the encoder's diagonal Gaussian ``(N, D)``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def bernoulli_nll(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """-log p(x|z) per image ``(N,)``: BCE summed over pixels (numerically stable, from logits)."""
    return F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(1)


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)) per image ``(N,)``, analytic (Kingma & Welling 2014, App. B)."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(1)


def reparameterize(mu: torch.Tensor, logvar: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """z = mu + sigma * eps with ``eps ~ N(0, I)`` drawn by the caller (so DDP can share it)."""
    return mu + torch.exp(0.5 * logvar) * eps


def gaussian_log_prob(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """log N(z; mu, exp(logvar)) summed over the last dimension."""
    return -0.5 * (math.log(2 * math.pi) + logvar + (z - mu).pow(2) / logvar.exp()).sum(-1)


def iwae_bound(log_weights: torch.Tensor) -> torch.Tensor:
    """Importance-weighted bound per image from ``(K, N)`` log weights: logmeanexp over K.

    ``log_weights[k, n] = log p(x_n|z_k) + log p(z_k) - log q(z_k|x_n)``; with K samples this is
    the IWAE bound L_K (Burda et al. 2016, eq. 8), which approaches log p(x) as K grows.
    """
    return torch.logsumexp(log_weights, dim=0) - math.log(log_weights.shape[0])
