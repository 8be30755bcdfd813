"""GAN objectives as pure functions of discriminator logits (unit-testable on tiny tensors).

Every discriminator loss takes the raw outputs of D on real and fake images — one logit per image
``(N,)`` / ``(N, 1)``, or one per patch ``(N, 1, h, w)`` for a PatchGAN; no sigmoid applied — and
the per-image *targets* of each (``(N,)``, ``1`` = real, ``0`` = fake), broadcast to every logit of
the image, so that label smoothing (target 0.9 or a random soft target) and noisy labels (a flipped
target) work with every loss and every D. A discriminator loss is ``mean_real ℓ(real, t_real) +
mean_fake ℓ(fake, t_fake)`` (the sum of the two means over all logits, as in the seed report's
``real_loss + fake_loss``). Generator losses take only the fake logits. All losses return a
scalar tensor (float32 math).

* ``bce`` — the seed's loss: binary cross-entropy on sigmoid(D) (Goodfellow et al. 2014, eq. 1)
  with the *non-saturating* generator loss −log D(G(z)) (same paper, §3).
* ``lsgan`` — least squares with the 0-1 coding a=0, b=c=1 (Mao et al. 2017, eq. 2 and 9):
  D: ½(D(x)−t)², G: ½(D(G(z))−1)².
* ``hinge`` — hinge loss (Lim & Ye 2017; Miyato et al. 2018, eq. 16/17): D: max(0, 1−D(x)) on real,
  max(0, 1+D(G(z))) on fake; G: −D(G(z)). A soft target t mixes the two sides:
  t·max(0, 1−y) + (1−t)·max(0, 1+y).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

Tensor = torch.Tensor


def _as_float(logits: Tensor) -> Tensor:
    return logits.float()


def _targets(targets: Tensor | None, like: Tensor, value: float) -> Tensor:
    """Per-image targets ``(N,)`` (or None: all ``value``) broadcast to ``like``'s shape: one
    target for every logit of an image, whether D gives one per image or one per patch."""
    if targets is None:
        return torch.full_like(like, value)
    targets = targets.to(device=like.device, dtype=like.dtype)
    if targets.dim() == 1 and like.dim() > 1 and targets.shape[0] == like.shape[0]:
        targets = targets.view(-1, *([1] * (like.dim() - 1)))
    return targets.expand_as(like)


# --- per-sample terms ℓ(logit, target) ------------------------------------------------------------

def bce_term(logits: Tensor, targets: Tensor) -> Tensor:
    """Per-sample binary cross-entropy of sigmoid(logits) against soft targets in [0, 1]."""
    return F.binary_cross_entropy_with_logits(logits, targets, reduction="none")


def lsgan_term(logits: Tensor, targets: Tensor) -> Tensor:
    """Per-sample least-squares term ½(D − t)² (Mao et al. 2017, eq. 2)."""
    return 0.5 * (logits - targets) ** 2


def hinge_term(logits: Tensor, targets: Tensor) -> Tensor:
    """Per-sample hinge term t·max(0, 1 − D) + (1 − t)·max(0, 1 + D) (Lim & Ye 2017)."""
    return targets * F.relu(1.0 - logits) + (1.0 - targets) * F.relu(1.0 + logits)


def _d_loss(term, real_logits, fake_logits, real_targets, fake_targets) -> Tensor:
    real, fake = _as_float(real_logits), _as_float(fake_logits)
    return (term(real, _targets(real_targets, real, 1.0)).mean()
            + term(fake, _targets(fake_targets, fake, 0.0)).mean())


# --- discriminator losses -------------------------------------------------------------------------

def bce_d_loss(real_logits: Tensor, fake_logits: Tensor, real_targets: Tensor | None = None,
               fake_targets: Tensor | None = None) -> Tensor:
    """Seed/Goodfellow D loss: BCE(sigmoid(D(x)), t_real) + BCE(sigmoid(D(G(z))), t_fake), batch means.

    ``real_logits`` ``(N,)``, ``fake_logits`` ``(M,)``; targets default to 1 (real) and 0 (fake).
    """
    return _d_loss(bce_term, real_logits, fake_logits, real_targets, fake_targets)


def lsgan_d_loss(real_logits: Tensor, fake_logits: Tensor, real_targets: Tensor | None = None,
                 fake_targets: Tensor | None = None) -> Tensor:
    """LSGAN D loss ½E(D(x)−t_real)² + ½E(D(G(z))−t_fake)² (Mao et al. 2017, eq. 2, a=0, b=1)."""
    return _d_loss(lsgan_term, real_logits, fake_logits, real_targets, fake_targets)


def hinge_d_loss(real_logits: Tensor, fake_logits: Tensor, real_targets: Tensor | None = None,
                 fake_targets: Tensor | None = None) -> Tensor:
    """Hinge D loss E max(0, 1−D(x)) + E max(0, 1+D(G(z))) (Miyato et al. 2018, eq. 16), soft targets mix sides."""
    return _d_loss(hinge_term, real_logits, fake_logits, real_targets, fake_targets)


# --- generator losses -----------------------------------------------------------------------------

def bce_g_loss(fake_logits: Tensor) -> Tensor:
    """Non-saturating G loss −E log sigmoid(D(G(z))) = BCE(D(G(z)), 1) (Goodfellow et al. 2014, §3; the seed's)."""
    return F.softplus(-_as_float(fake_logits)).mean()


def lsgan_g_loss(fake_logits: Tensor) -> Tensor:
    """LSGAN G loss ½E(D(G(z))−1)² (Mao et al. 2017, eq. 2, c=1)."""
    return (0.5 * (_as_float(fake_logits) - 1.0) ** 2).mean()


def hinge_g_loss(fake_logits: Tensor) -> Tensor:
    """Hinge-GAN G loss −E D(G(z)) (Lim & Ye 2017; Miyato et al. 2018, eq. 17)."""
    return -_as_float(fake_logits).mean()


DLoss = Callable[[Tensor, Tensor, Tensor | None, Tensor | None], Tensor]
GLoss = Callable[[Tensor], Tensor]

#: ``model.loss`` → (discriminator loss, generator loss)
GAN_LOSSES: dict[str, tuple[DLoss, GLoss]] = {
    "bce": (bce_d_loss, bce_g_loss),
    "lsgan": (lsgan_d_loss, lsgan_g_loss),
    "hinge": (hinge_d_loss, hinge_g_loss),
}
