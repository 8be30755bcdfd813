"""Image grids by hand (no torchvision): tile a batch, convert to uint8, write a PNG.

All functions take images as float tensors of shape ``(N, C, H, W)`` with ``C`` 1 (grey)
or 3 (RGB) and values in ``[0, 1]``; values outside are clamped.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from genlab.core.atomic import atomic_write


def _check_images(images: torch.Tensor, name: str = "images") -> torch.Tensor:
    if not isinstance(images, torch.Tensor):
        images = torch.as_tensor(np.asarray(images))
    if images.dim() != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"{name} must have shape (N, C, H, W) with C 1 or 3, got {tuple(images.shape)}")
    if images.shape[0] == 0:
        raise ValueError(f"{name} is empty")
    return images.detach().to("cpu", torch.float32)


def make_grid(images: torch.Tensor, nrow: int, padding: int = 2, pad_value: float = 1.0) -> torch.Tensor:
    """Tile ``images`` into one image, ``nrow`` images per row (like ``torchvision.utils.make_grid``).

    Args:
        images: ``(N, C, H, W)`` float, ``C`` 1 or 3, values in ``[0, 1]`` (clamped; NaN becomes 0).
        nrow: images per row; the grid has ``ceil(N / nrow)`` rows (fewer columns if ``N < nrow``).
        padding: pixels of ``pad_value`` between images and around the border.
        pad_value: fill of the padding and of unused cells in the last row, in ``[0, 1]``.

    Returns:
        ``(C, rows * (H + padding) + padding, cols * (W + padding) + padding)`` float32 in ``[0, 1]``,
        where ``cols = min(nrow, N)``. Image ``k`` has its top-left pixel at
        ``(padding + (k // cols) * (H + padding), padding + (k % cols) * (W + padding))``.
        Unlike torchvision, grey stays one channel and a single image is padded too.
    """
    images = _check_images(images)
    if nrow < 1 or padding < 0:
        raise ValueError(f"need nrow >= 1 and padding >= 0, got nrow={nrow}, padding={padding}")
    n, c, h, w = images.shape
    cols = min(nrow, n)
    rows = math.ceil(n / cols)
    grid = torch.full(
        (c, rows * (h + padding) + padding, cols * (w + padding) + padding),
        float(min(max(pad_value, 0.0), 1.0)),
    )
    images = torch.nan_to_num(images, nan=0.0).clamp(0.0, 1.0)
    for k in range(n):
        y = padding + (k // cols) * (h + padding)
        x = padding + (k % cols) * (w + padding)
        grid[:, y : y + h, x : x + w] = images[k]
    return grid


def grid_to_uint8(grid: torch.Tensor) -> np.ndarray:
    """Convert a ``(C, H, W)`` float image in ``[0, 1]`` to uint8 ``round(x * 255)``.

    Returns ``(H, W)`` for ``C == 1`` and ``(H, W, 3)`` for ``C == 3``.
    """
    grid = torch.as_tensor(grid).detach().to("cpu", torch.float32)
    if grid.dim() != 3 or grid.shape[0] not in (1, 3):
        raise ValueError(f"grid must have shape (C, H, W) with C 1 or 3, got {tuple(grid.shape)}")
    grid = torch.nan_to_num(grid, nan=0.0).clamp(0.0, 1.0)
    array = torch.round(grid * 255.0).to(torch.uint8).numpy()
    return array[0] if array.shape[0] == 1 else np.ascontiguousarray(array.transpose(1, 2, 0))


def save_image_grid(
    images: torch.Tensor,
    path: str | os.PathLike,
    nrow: int,
    padding: int = 2,
    upscale: int = 1,
    pad_value: float = 1.0,
) -> Path:
    """Write ``make_grid(images, nrow, padding, pad_value)`` as a PNG and return its path.

    Args:
        images: ``(N, C, H, W)`` float in ``[0, 1]``, ``C`` 1 (saved as 8-bit grey) or 3 (RGB).
        path: target file; parent directories are created. The PNG is written to
            a temporary file and renamed onto ``path`` (:func:`~genlab.core.atomic.atomic_write`), so readers never see half a file.
        upscale: integer nearest-neighbour enlargement (e.g. 4 for 28x28 digits).

    The bytes depend only on the pixels: no timestamp or other metadata, ``optimize=False``.
    """
    if int(upscale) != upscale or upscale < 1:
        raise ValueError(f"upscale must be a positive integer, got {upscale}")
    array = grid_to_uint8(make_grid(images, nrow, padding, pad_value))
    if upscale > 1:
        array = array.repeat(upscale, axis=0).repeat(upscale, axis=1)
    image = Image.fromarray(array)
    return atomic_write(path, lambda tmp: image.save(tmp, format="PNG", optimize=False))


def side_by_side(
    originals: torch.Tensor, reconstructions: torch.Tensor, ncols: int = 10, fill: float = 1.0
) -> torch.Tensor:
    """Interleave originals and reconstructions by rows for ``make_grid(..., nrow=ncols)``.

    Args:
        originals, reconstructions: ``(N, C, H, W)`` of the same shape; ``reconstructions[i]``
            belongs to ``originals[i]``.
        ncols: images per grid row.
        fill: value of the blank images that complete a short last chunk.

    Returns:
        ``(2 * ceil(N / ncols) * ncols, C, H, W)`` (that is ``(2N, C, H, W)`` when ``ncols``
        divides ``N``): in a grid with ``nrow=ncols``, row ``2k`` shows originals
        ``k*ncols .. (k+1)*ncols - 1`` and row ``2k + 1`` their reconstructions directly below.
        If ``N`` is not a multiple of ``ncols`` the last two rows are completed with blank images
        so every reconstruction stays under its original.
    """
    originals = _check_images(originals, "originals")
    reconstructions = _check_images(reconstructions, "reconstructions")
    if originals.shape != reconstructions.shape:
        raise ValueError(
            f"originals {tuple(originals.shape)} and reconstructions {tuple(reconstructions.shape)} differ in shape"
        )
    if ncols < 1:
        raise ValueError(f"ncols must be >= 1, got {ncols}")
    n = originals.shape[0]
    missing = -n % ncols
    if missing:
        blank = torch.full((missing, *originals.shape[1:]), float(fill))
        originals = torch.cat([originals, blank])
        reconstructions = torch.cat([reconstructions, blank])
    shape = (originals.shape[0] // ncols, ncols, *originals.shape[1:])
    pairs = torch.stack([originals.reshape(shape), reconstructions.reshape(shape)], dim=1)
    return pairs.reshape(-1, *originals.shape[1:])
