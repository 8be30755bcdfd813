"""Batch transforms in torch whose randomness comes from the shared noise (no torchvision).

:func:`random_jitter` is CycleGAN's training augmentation (Zhu et al. 2017, §7.1; the reference
code's ``--preprocess resize_and_crop`` with ``load_size`` 286, ``crop_size`` 256, plus ``--no_flip``
off): enlarge, crop a random window of the original size, flip half of the images horizontally.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

#: the reference's load_size / crop_size: 286 / 256
JITTER_RATIO = 286 / 256

#: ITU-R BT.601 luma weights (R, G, B), Pillow's RGB → L
LUMA_WEIGHTS = (0.299, 0.587, 0.114)


def luma(images: torch.Tensor) -> torch.Tensor:
    """BT.601 luma ``(N, 1, H, W)`` float32 of RGB ``images`` ``(N, 3, H, W)``, in their value range."""
    weights = torch.tensor(LUMA_WEIGHTS, device=images.device).view(1, 3, 1, 1)
    return (images.float() * weights).sum(1, keepdim=True)


def random_jitter(x: torch.Tensor, noise, ratio: float = JITTER_RATIO, flip: bool = True) -> torch.Tensor:
    """Resize ``x`` ``(N, C, S, S)`` up by ``ratio`` (bilinear; the reference uses PIL bicubic), crop
    each image back to ``S × S`` at a random offset and mirror it with probability ½.

    Randomness: per image, two offsets (``noise.randint``) and a flip coin (``noise.rand``), drawn for
    the global batch, so N processes jitter their rows as one process would. ``ratio`` = 1 skips the
    resize and crop. Returns a new tensor, same shape and dtype.
    """
    n, _, h, w = x.shape
    big_h, big_w = round(h * ratio), round(w * ratio)
    if (big_h, big_w) != (h, w):
        big = F.interpolate(x, size=(big_h, big_w), mode="bilinear", align_corners=False)
        top, left = noise.randint(n, big_h - h + 1), noise.randint(n, big_w - w + 1)
        x = torch.stack([big[i, :, y:y + h, x0:x0 + w] for i, (y, x0) in enumerate(zip(top.tolist(), left.tolist()))])
    if flip:
        mirror = (noise.rand(n) < 0.5).to(x.device)
        x = torch.where(mirror.view(-1, 1, 1, 1), x.flip(-1), x)
    return x.contiguous()
