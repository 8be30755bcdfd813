"""GAN stabilising tricks as small pure functions (and one EMA class), each unit-testable.

Randomness is never taken from hidden global state: every function that draws takes a *draw
function* ``draw(rows, *shape) -> float32 CPU tensor`` — uniform [0, 1) for ``rand``-style draws,
standard normal for ``randn``-style ones. :class:`~genlab.core.noise.SharedNoise` has exactly this
signature (``noise.rand`` / ``noise.randn``), so multi-process training draws the same numbers as
one process with the global batch; :func:`uniform_draw` / :func:`normal_draw` wrap a
:class:`torch.Generator` for tests and evaluation. Results are moved to the input's device.

* one-sided label smoothing — :func:`real_targets` (Salimans et al. 2016, §3.4: real targets 0.9,
  fake targets stay 0; or random soft targets in [low, high] as in the seed report, §5.3),
* noisy labels — :func:`flip_targets` (seed report §5.4: swap real/fake targets with probability p),
* instance noise — :func:`instance_noise_sigma`, :func:`add_instance_noise` (Sønderby et al. 2017;
  Arjovsky & Bottou 2017: Gaussian noise on D's inputs, σ annealed linearly to 0),
* DiffAugment — :func:`diff_augment` (Zhao et al. 2020: the same differentiable color /
  translation / cutout on real and fake images before D),
* EMA of generator weights — :class:`EMA` (Karras et al. 2018; Yazıcı et al. 2019).
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from genlab.schema import check

#: ``draw(rows, *shape)`` → float32 tensor ``(rows, *shape)`` on the CPU
Draw = Callable[..., torch.Tensor]


def uniform_draw(generator: torch.Generator) -> Draw:
    """A uniform [0, 1) draw function backed by ``generator`` (same signature as ``SharedNoise.rand``)."""
    return lambda rows, *shape: torch.rand((rows, *shape), generator=generator)


def normal_draw(generator: torch.Generator) -> Draw:
    """A standard-normal draw function backed by ``generator`` (same signature as ``SharedNoise.randn``)."""
    return lambda rows, *shape: torch.randn((rows, *shape), generator=generator)


# --- labels ---------------------------------------------------------------------------------------

def real_targets(n: int, smoothing: float | list[float] | tuple[float, float] | None = None,
                 rand: Draw | None = None) -> torch.Tensor:
    """Targets ``(n,)`` float32 for real images: one-sided label smoothing.

    ``smoothing`` None → 1 (hard labels); a number v → v for every image (Salimans et al. 2016
    use 0.9); a pair ``[low, high]`` → independent uniform targets in [low, high) drawn with
    ``rand`` (one value per image, as the seed report suggests). Fake targets stay 0
    (:func:`fake_targets`): smoothing them too rewards D for fakes it already rejects.
    """
    if smoothing is None:
        return torch.ones(n)
    if isinstance(smoothing, (int, float)):
        return torch.full((n,), float(smoothing))
    low, high = smoothing
    if rand is None:
        raise ValueError("random label smoothing needs a draw function `rand`")
    return low + (high - low) * rand(n)


def fake_targets(n: int) -> torch.Tensor:
    """Targets ``(n,)`` float32 zeros for generated images."""
    return torch.zeros(n)


def flip_targets(targets: torch.Tensor, p: float, rand: Draw) -> torch.Tensor:
    """Noisy labels: each target t becomes 1 − t with probability ``p`` (drawn with ``rand``); ``(n,)``.

    A flipped real image is trained as fake and a flipped fake as real — the seed report's
    "noisy labels" (§5.4). With ``p`` = 0 nothing is drawn.
    """
    if p <= 0.0:
        return targets
    flip = rand(targets.shape[0]).to(targets.device) < p
    return torch.where(flip, 1.0 - targets, targets)


# --- instance noise -------------------------------------------------------------------------------

def instance_noise_sigma(step: int, sigma0: float, anneal_steps: int) -> float:
    """σ at optimisation step ``step``: ``sigma0`` annealed linearly to 0 at ``anneal_steps``.

    ``anneal_steps`` = 0 keeps σ = ``sigma0`` for the whole run.
    """
    if sigma0 <= 0.0:
        return 0.0
    if anneal_steps <= 0:
        return float(sigma0)
    return float(sigma0) * max(0.0, 1.0 - step / anneal_steps)


def add_instance_noise(x: torch.Tensor, sigma: float, randn: Draw) -> torch.Tensor:
    """``x + σ·ε``, ε ~ N(0, I) drawn with ``randn`` (shape of ``x``); σ = 0 returns ``x`` and draws nothing."""
    if sigma <= 0.0:
        return x
    eps = randn(x.shape[0], *x.shape[1:]).to(device=x.device, dtype=x.dtype)
    return x + sigma * eps


# --- DiffAugment (Zhao et al. 2020) ---------------------------------------------------------------

def _randint(rand: Draw, rows: int, low: int, high: int, device) -> torch.Tensor:
    """Integers ``(rows,)`` uniform in [low, high] (inclusive), from a uniform draw."""
    u = rand(rows).to(device)
    return (u * (high - low + 1)).floor().long().clamp_(max=high - low) + low


def _brightness(x, rand):
    return x + (rand(x.shape[0], 1, 1, 1).to(x) - 0.5)


def _saturation(x, rand):
    mean = x.mean(dim=1, keepdim=True)
    return (x - mean) * (rand(x.shape[0], 1, 1, 1).to(x) * 2.0) + mean


def _contrast(x, rand):
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (rand(x.shape[0], 1, 1, 1).to(x) + 0.5) + mean


def _translation(x, rand, ratio: float = 0.125):
    """Shift each image by up to ``ratio`` of its size (integer pixels), filling with zeros."""
    n, _, h, w = x.shape
    sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    ty = _randint(rand, n, -sh, sh, x.device)
    tx = _randint(rand, n, -sw, sw, x.device)
    rows = (torch.arange(h, device=x.device)[None] + ty[:, None] + 1).clamp(0, h + 1)  # (N, H) into padded
    cols = (torch.arange(w, device=x.device)[None] + tx[:, None] + 1).clamp(0, w + 1)  # (N, W)
    padded = F.pad(x, [1, 1, 1, 1])  # zero border: out-of-image reads hit it
    batch = torch.arange(n, device=x.device)[:, None, None]
    out = padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]]  # (N, H, W, C)
    return out.permute(0, 3, 1, 2)


def _cutout(x, rand, ratio: float = 0.5):
    """Zero one square of side ``ratio``·size per image at a random centre (clipped at the border)."""
    n, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    oy = _randint(rand, n, 0, h - (ch % 2), x.device)
    ox = _randint(rand, n, 0, w - (cw % 2), x.device)
    top, left = oy - ch // 2, ox - cw // 2
    i = torch.arange(h, device=x.device)[None, :]
    j = torch.arange(w, device=x.device)[None, :]
    in_rows = (i >= top[:, None]) & (i < top[:, None] + ch)  # (N, H)
    in_cols = (j >= left[:, None]) & (j < left[:, None] + cw)  # (N, W)
    keep = ~(in_rows[:, :, None] & in_cols[:, None, :])  # (N, H, W)
    return x * keep[:, None].to(x.dtype)


_AUGMENTS = {
    "color": (_brightness, _saturation, _contrast),
    "translation": (_translation,),
    "cutout": (_cutout,),
}
#: the policies :func:`diff_augment` knows
DIFFAUG_POLICIES = tuple(_AUGMENTS)


def parse_policy(policy: str | None) -> list[str]:
    """``"color,translation"`` → ``["color", "translation"]``; raises ValueError on unknown names."""
    names = [p.strip() for p in (policy or "").split(",") if p.strip()]
    unknown = [p for p in names if p not in _AUGMENTS]
    if unknown:
        raise ValueError(f"unknown DiffAugment policy {unknown[0]!r}; allowed: {', '.join(DIFFAUG_POLICIES)}")
    return names


def check_diffaug(policy: str | None, key: str = "model.diffaug") -> None:
    """A config's DiffAugment policy is null or known names; else a ConfigError naming ``key``."""
    try:
        parse_policy(policy)
    except ValueError:
        check(False, key, policy, f"null or a comma-separated list of {', '.join(DIFFAUG_POLICIES)}")


def diff_augment(x: torch.Tensor, policy: str | None, rand: Draw) -> torch.Tensor:
    """DiffAugment T(x) of images ``(N, C, H, W)`` in [-1, 1] (Zhao et al. 2020, §3; official code).

    ``policy`` is a comma list of ``color`` (random brightness ±0.5, saturation ×[0, 2), contrast
    ×[0.5, 1.5) per image), ``translation`` (shift by up to 1/8 of the size, zero fill) and ``cutout``
    (a zeroed square of half the size). Every op is differentiable in ``x``, so D's gradient reaches G.
    Apply the same policy to real and fake images, in both the D and the G step. As in the
    reference implementation nothing is clamped: ``color`` may leave [-1, 1], translation and
    cutout keep the input range whenever it contains 0. Randomness: ``rand`` only.
    """
    for name in parse_policy(policy):
        for op in _AUGMENTS[name]:
            x = op(x, rand)
    return x


# --- EMA of weights -------------------------------------------------------------------------------

class EMA:
    """Exponential moving average of a network's weights: ``θ_ema ← decay·θ_ema + (1 − decay)·θ``.

    ``shadow`` (default: a deep copy of ``model``) holds the averaged weights, has
    ``requires_grad=False`` and can be sampled from directly; buffers (BatchNorm running statistics)
    are copied, not averaged. A model registers ``shadow`` as a submodule so that it is
    checkpointed with the rest of its ``state_dict``. Used for G with decay ≈ 0.999 (Karras et al. 2018, §A.1; Yazıcı et al. 2019).

    With ``num_updates`` given, :meth:`update` warms up: the decay used is
    ``min(decay, (1 + n) / (10 + n))`` after ``n`` earlier updates (the rule of TensorFlow's
    ``tf.train.ExponentialMovingAverage(num_updates=...)``), so early averages are not dominated by
    the random initial weights — which, for a G with BatchNorm whose running statistics are copied
    from the live network, decode to grey noise for the first few thousand steps at 0.999.
    """

    def __init__(self, model: nn.Module, decay: float, shadow: nn.Module | None = None):
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
        self.decay = float(decay)
        self.shadow = copy.deepcopy(model) if shadow is None else shadow
        self.shadow.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module, num_updates: int | None = None) -> None:
        """One averaging step toward ``model``'s current weights (same architecture as the shadow);
        ``num_updates`` = updates before this one, to warm the decay up (``None``: the fixed decay)."""
        decay = self.decay if num_updates is None else min(self.decay, (1 + num_updates) / (10 + num_updates))
        own = dict(self.shadow.named_parameters())
        for name, p in model.named_parameters():
            own[name].lerp_(p.detach(), 1.0 - decay)
        own_buffers = dict(self.shadow.named_buffers())
        for name, b in model.named_buffers():
            own_buffers[name].copy_(b)
