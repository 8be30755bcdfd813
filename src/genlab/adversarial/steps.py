"""D-step and G-step helpers that apply the tricks to any discriminator.

A family keeps its own update order (how many D steps, which fakes, which extra terms) and calls
:func:`discriminator_loss` / :func:`generator_loss` for the adversarial part. Both take ``disc``,
any callable from images (plus ``extra`` inputs, e.g. StackGAN's condition) to logits of any shape
(per image or per patch), and a :class:`Tricks` record read from the family's model config. All
randomness comes from ``noise`` (``noise.rand`` / ``noise.randn``, a
:class:`~genlab.core.noise.SharedNoise`), in a fixed order: real targets, fake targets, their
flips, then DiffAugment and instance noise of the real batch, then of the fake batch.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from genlab.adversarial.losses import GAN_LOSSES
from genlab.adversarial.tricks import (
    add_instance_noise,
    diff_augment,
    fake_targets,
    flip_targets,
    instance_noise_sigma,
    real_targets,
)


@dataclass(frozen=True)
class Tricks:
    """The adversarial loss and the tricks that act on D's targets and inputs.

    ``loss``: ``bce`` | ``lsgan`` | ``hinge`` (:data:`~genlab.adversarial.losses.GAN_LOSSES`);
    ``label_smoothing``: real target v or [low, high]; ``label_flip_prob``: noisy labels;
    ``instance_noise`` σ₀ and ``instance_noise_anneal_steps``; ``diffaug`` policy. See
    :mod:`genlab.adversarial.tricks` for the references.
    """

    loss: str = "bce"
    label_smoothing: float | tuple[float, float] | None = None
    label_flip_prob: float = 0.0
    instance_noise: float = 0.0
    instance_noise_anneal_steps: int = 0
    diffaug: str | None = None

    @classmethod
    def from_config(cls, model_config: Any) -> Tricks:
        """The fields of this record that ``model_config`` has (others keep their defaults)."""
        fields = {name: getattr(model_config, name) for name in cls.__dataclass_fields__ if hasattr(model_config, name)}
        if isinstance(fields.get("label_smoothing"), list):
            fields["label_smoothing"] = tuple(fields["label_smoothing"])
        return cls(**fields)

    def sigma(self, step: int) -> float:
        """Instance-noise σ at optimisation step ``step``."""
        return instance_noise_sigma(step, self.instance_noise, self.instance_noise_anneal_steps)


def d_input(x: torch.Tensor, tricks: Tricks, step: int, noise) -> torch.Tensor:
    """What D sees of images ``x``: DiffAugment, then instance noise (drawn from ``noise``, per row)."""
    if tricks.diffaug:
        x = diff_augment(x, tricks.diffaug, noise.rand)
    return add_instance_noise(x, tricks.sigma(step), noise.randn)


@contextlib.contextmanager
def frozen(net: nn.Module):
    """``net``'s parameters need no gradient inside the block (G's step through D), restored after."""
    flags = [p.requires_grad for p in net.parameters()]
    net.requires_grad_(False)
    try:
        yield net
    finally:
        for p, flag in zip(net.parameters(), flags):
            p.requires_grad_(flag)


@contextlib.contextmanager
def batch_statistics(net: nn.Module):
    """Inside the block ``net``'s BatchNorm layers normalise each batch by its own statistics, as D
    does in training, and leave their running statistics as they were; other layers keep their mode.

    For held-out D scores: a GAN's D trains on separate real and fake batches (and G's step shows
    it fake-only batches), so its running statistics average batches of both kinds and match
    neither; in eval mode such a D scored held-out real digits ~1e-9 while training saw ~0.6.
    ``SyncBatchNorm`` is left in eval mode (in train mode it would all-reduce across processes).
    """
    norms = [m for m in net.modules()
             if isinstance(m, nn.modules.batchnorm._BatchNorm) and not isinstance(m, nn.SyncBatchNorm)]
    saved = [(m.training, [b.clone() for b in m.buffers()]) for m in norms]
    for m in norms:
        m.train()
    try:
        yield net
    finally:
        with torch.no_grad():
            for m, (training, buffers) in zip(norms, saved):
                m.train(training)
                for b, old in zip(m.buffers(), buffers):
                    b.copy_(old)


def discriminator_loss(disc, real: torch.Tensor, fake: torch.Tensor, tricks: Tricks, step: int, noise, *,
                       extra: tuple = (), autocast=contextlib.nullcontext, separate: bool = True):
    """D's loss on a real batch ``(N, ...)`` and a fake batch ``(N, ...)`` (detached here).

    Targets (smoothed, flipped) are per image and broadcast to D's logits; both batches pass
    :func:`d_input`. ``separate``: D sees real and fake in two forward passes (each with its own
    BatchNorm statistics) or one concatenated batch. ``extra``: further inputs of ``disc`` (the same
    for both batches). Returns ``(loss, real_logits, fake_logits)``; the loss is a float32 scalar.
    """
    n, device = real.shape[0], real.device
    t_real = real_targets(n, tricks.label_smoothing, noise.rand).to(device)
    t_fake = fake_targets(fake.shape[0]).to(device)
    t_real = flip_targets(t_real, tricks.label_flip_prob, noise.rand)
    t_fake = flip_targets(t_fake, tricks.label_flip_prob, noise.rand)
    x_real, x_fake = d_input(real, tricks, step, noise), d_input(fake.detach(), tricks, step, noise)
    with autocast():
        if separate:
            real_logits, fake_logits = disc(x_real, *extra), disc(x_fake, *extra)
        else:
            both = disc(torch.cat([x_real, x_fake.to(x_real.dtype)]), *(torch.cat([e, e]) for e in extra))
            real_logits, fake_logits = both[:n], both[n:]
    d_loss_fn, _ = GAN_LOSSES[tricks.loss]
    return d_loss_fn(real_logits.float(), fake_logits.float(), t_real, t_fake), real_logits, fake_logits


def generator_loss(disc: nn.Module, fake: torch.Tensor, tricks: Tricks, step: int, noise, *,
                   extra: tuple = (), autocast=contextlib.nullcontext):
    """G's adversarial loss for ``fake`` (with gradients to G), through ``disc`` with its weights frozen.

    ``disc`` must be the bare network (not its DDP wrapper): D is not updated here, so no D
    gradient needs reducing. Returns ``(loss, logits)``.
    """
    x_fake = d_input(fake, tricks, step, noise)
    with frozen(disc), autocast():
        logits = disc(x_fake, *extra)
    _, g_loss_fn = GAN_LOSSES[tricks.loss]
    return g_loss_fn(logits.float()), logits
