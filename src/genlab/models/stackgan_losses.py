"""StackGAN's objectives as pure functions of logits (Zhang et al., ICCV 2017, §3; StackGAN-Pytorch).

* :func:`matching_aware_d_loss` — the matching-aware discriminator (Reed et al. 2016, GAN-CLS;
  StackGAN §3.2 and the authors' ``compute_discriminator_loss``): D sees three pairs, real image
  + matching text (target real), real image + mismatched text (target fake, "wrong") and
  generated image + text (target fake). Without an unconditional head (Stage-I)::

      d_loss = real + (fake + wrong) / 2

  With the Stage-II discriminator's unconditional head (``uncond_*`` given), the authors' code::

      d_loss = (real + uncond_real) / 2 + (fake + wrong + uncond_fake) / 3

  and the logged ``d_loss_real`` / ``d_loss_fake`` are the head averages ``(real + uncond_real) / 2``,
  ``(fake + uncond_fake) / 2`` (their ``errD_real`` / ``errD_fake``).

  Every term is the batch mean of a per-logit loss of :mod:`genlab.adversarial.losses`
  (``bce``: BCE on sigmoid(D), the authors' ``BCELoss`` after their ``Sigmoid``; or ``lsgan`` /
  ``hinge``); only the real pair takes the (possibly smoothed) real targets.

* :func:`kl_term` — the Conditioning-Augmentation regulariser, KL(N(μ, σ²) ‖ N(0, I)), reduced as
  the authors' ``KL_loss`` (``"mean"``: the mean over batch *and* the c_dim code dimensions, in
  nats per dimension) or as the paper writes it (``"sum"``: summed over the code, batch mean, nats
  per code). The generator's loss adds ``model.kl_coeff`` × this (authors: 2.0 with ``"mean"``,
  ``cfg.TRAIN.COEFF.KL``; paper §3.2: λ = 1 with the sum).

The seed report's Keras log (``d_loss:0.1697`` with real 0.3375, fake 1.3e-06, wrong 0.0036) fits
``½·(real + ½·(fake + wrong))``, half of the authors' D loss: the Keras StackGAN it ran averages
once more. genlab logs the authors' value; the three terms are the same.
"""

from __future__ import annotations

import torch

from genlab.adversarial.losses import bce_term, hinge_term, lsgan_term
from genlab.nn.conditioning import kl_to_standard_normal

Tensor = torch.Tensor

#: ``model.loss`` → per-logit term ℓ(logit, target)
TERMS = {"bce": bce_term, "lsgan": lsgan_term, "hinge": hinge_term}


def _mean_term(term, logits: Tensor, target: float | Tensor) -> Tensor:
    logits = logits.float()
    if isinstance(target, Tensor):
        target = target.to(device=logits.device, dtype=logits.dtype).expand_as(logits)
    else:
        target = torch.full_like(logits, float(target))
    return term(logits, target).mean()


def matching_aware_d_loss(real: Tensor, wrong: Tensor, fake: Tensor, uncond_real: Tensor | None = None,
                          uncond_fake: Tensor | None = None, *, loss: str = "bce",
                          real_targets: Tensor | None = None) -> dict[str, Tensor]:
    """The matching-aware D loss of logits ``(N,)`` for the real, wrong and fake pairs (see the module docstring).

    ``real_targets``: ``(N,)`` targets of the real pair (label smoothing), default 1; wrong and fake
    pairs have target 0. Returns scalar float32 tensors ``d_loss`` (to minimise), ``d_loss_real``,
    ``d_loss_fake``, ``d_loss_wrong``.
    """
    term = TERMS[loss]
    t_real = 1.0 if real_targets is None else real_targets
    r, w, f = _mean_term(term, real, t_real), _mean_term(term, wrong, 0.0), _mean_term(term, fake, 0.0)
    if uncond_real is None and uncond_fake is None:
        return {"d_loss": r + 0.5 * (f + w), "d_loss_real": r, "d_loss_fake": f, "d_loss_wrong": w}
    if uncond_real is None or uncond_fake is None:
        raise ValueError("pass both uncond_real and uncond_fake, or neither")
    ur, uf = _mean_term(term, uncond_real, t_real), _mean_term(term, uncond_fake, 0.0)
    return {"d_loss": (r + ur) / 2 + (f + w + uf) / 3, "d_loss_real": (r + ur) / 2, "d_loss_fake": (f + uf) / 2,
            "d_loss_wrong": w}


def kl_term(mu: Tensor, logvar: Tensor, reduction: str = "mean") -> Tensor:
    """KL(N(μ, diag σ²) ‖ N(0, I)) of ``(N, c_dim)`` codes as a scalar: ``"mean"`` over batch and
    dimensions (authors' ``KL_loss``, nats per dimension) or ``"sum"`` over dimensions, batch mean
    (nats per code, the paper's D_KL)."""
    per_code = kl_to_standard_normal(mu.float(), logvar.float())
    if reduction == "mean":
        return per_code.mean() / mu.shape[1]
    if reduction == "sum":
        return per_code.mean()
    raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
