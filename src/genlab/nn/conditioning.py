"""Conditioning Augmentation (CA) of StackGAN (Zhang et al., ICCV 2017, §3.1).

A text embedding φ_t (one vector per caption, e.g. the 1024-d char-CNN-RNN embedding the
authors use, or a 384-d MiniLM sentence embedding) is mapped by one fully-connected layer to the
mean μ(φ_t) and the log-variance log σ²(φ_t) of a diagonal Gaussian, and the conditioning code is
the re-parameterised sample ĉ = μ + σ ⊙ ε, ε ~ N(0, I). The paper adds the regulariser
D_KL(N(μ, diag σ²) ‖ N(0, I)) to the generator loss (§3.1, eq. 3 and 5) to keep the conditioning
manifold smooth; :func:`kl_to_standard_normal` computes it.

Variants of the CA layer in the authors' released code (checked against the repositories):

* StackGAN (TensorFlow, ``stageI/model.py`` ``generate_condition``): FC → LeakyReLU(0.2), and the
  second half is read as log σ (not log σ²).
* StackGAN-Pytorch (``code/model.py`` ``CA_NET``): ``Linear(text_dim, 2·c_dim, bias=True)`` →
  **ReLU** → split into (μ, log σ²).
* StackGAN-v2 / StackGAN++ (``code/model.py`` ``CA_NET``): ``Linear(text_dim, 4·c_dim)`` → GLU →
  split into (μ, log σ²).

This module follows the paper: μ and log σ² are *linear* functions of φ_t (no activation). A ReLU
before the split, as in StackGAN-Pytorch, makes μ ≥ 0 and log σ² ≥ 0 (σ ≥ 1), so the KL term can
never reach 0 and the code can never have unit-or-smaller variance below the prior's; the paper
states no such constraint.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["ConditioningAugmentation", "kl_to_standard_normal"]


class ConditioningAugmentation(nn.Module):
    """Text embedding → (ĉ, μ, log σ²): StackGAN's Conditioning Augmentation (paper §3.1).

    Args:
        text_dim: size of the text embedding φ_t (1024 for the authors' char-CNN-RNN embeddings,
            ``cfg.TEXT.DIMENSION``; 384 for MiniLM).
        c_dim: size N_g of the conditioning code ĉ (paper §4: N_g = 128;
            ``cfg.GAN.CONDITION_DIM = 128``).

    Layers: ``fc = Linear(text_dim, 2·c_dim)`` with bias; the first ``c_dim`` outputs are μ, the
    last ``c_dim`` are log σ² (natural log of the variance). Parameters: ``2·c_dim·(text_dim + 1)``
    (262,400 for 1024 → 128). Weights are initialised as in the authors' ``weights_init``
    (N(0, 0.02), bias 0).
    """

    def __init__(self, text_dim: int, c_dim: int = 128):
        super().__init__()
        if text_dim < 1 or c_dim < 1:
            raise ValueError(f"ConditioningAugmentation: text_dim and c_dim must be ≥ 1; got text_dim={text_dim}, c_dim={c_dim}")
        self.text_dim = text_dim
        self.c_dim = c_dim
        self.fc = nn.Linear(text_dim, 2 * c_dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Authors' ``weights_init`` for Linear layers: weight ~ N(0, 0.02), bias = 0."""
        nn.init.normal_(self.fc.weight, 0.0, 0.02)
        nn.init.zeros_(self.fc.bias)

    def encode(self, embedding: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, text_dim) → (μ, log σ²), each (N, c_dim)."""
        if embedding.dim() != 2 or embedding.shape[1] != self.text_dim:
            raise ValueError(f"ConditioningAugmentation: embedding must have shape (N, {self.text_dim}); got {tuple(embedding.shape)}")
        mu, logvar = self.fc(embedding).chunk(2, dim=1)
        return mu, logvar

    def forward(self, embedding: torch.Tensor, eps: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return ``(c, mu, logvar)``, each (N, c_dim).

        Args:
            embedding: text embeddings φ_t, (N, text_dim).
            eps: standard-normal noise ε of shape (N, c_dim), drawn by the caller (so that the
                caller owns the random stream). ``None`` gives the deterministic code c = μ (use at
                evaluation; the authors' code samples ε at test time too).

        ``c = mu + exp(logvar / 2) * eps`` (re-parameterisation, gradients flow to ``fc``).
        """
        mu, logvar = self.encode(embedding)
        if eps is None:
            return mu, mu, logvar
        if eps.shape != mu.shape:
            raise ValueError(f"ConditioningAugmentation: eps must have shape {tuple(mu.shape)} (N, c_dim); got {tuple(eps.shape)}")
        c = mu + torch.exp(0.5 * logvar) * eps
        return c, mu, logvar


def kl_to_standard_normal(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(μ, diag σ²) ‖ N(0, I)) per sample, in nats: ½ Σ_j (μ_j² + σ_j² − 1 − log σ_j²).

    Args:
        mu, logvar: (N, c_dim) mean and natural-log variance, as returned by
            :class:`ConditioningAugmentation`.

    Returns:
        (N,) tensor, ≥ 0, equal to 0 exactly when μ = 0 and log σ² = 0.

    Weighting: the paper's generator loss adds λ·D_KL with λ = 1 (§3.2). The authors' code
    (StackGAN-Pytorch ``miscc/utils.py`` ``KL_loss``, and the TensorFlow ``kl_loss``) takes the
    **mean over the batch and over the c_dim dimensions** and multiplies it by
    ``cfg.TRAIN.COEFF.KL = 2.0``; that equals ``2.0 / c_dim`` times the batch mean of this
    function (2/128 = 0.015625 per nat for c_dim = 128).
    """
    if mu.shape != logvar.shape or mu.dim() != 2:
        raise ValueError(f"kl_to_standard_normal: mu and logvar must both be (N, c_dim); got {tuple(mu.shape)} and {tuple(logvar.shape)}")
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(dim=1)
