"""Datasets as whole uint8 tensors in memory, and the batches the loop feeds to models.

:func:`load_split` decodes a dataset once into :class:`ImageTensors`; :func:`epoch_batches`
shuffles with :class:`torch.utils.data.DistributedSampler` (one shard per process, ``set_epoch``
per epoch) and :func:`make_batch` turns indices into the model's input dict::

    {"image": float (B, C, S, S) in [0, 1] or [-1, 1], "label": int64 (B,)}
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DistributedSampler

from genlab.config import DataConfig
from genlab.errors import DataError
from genlab.train.noise import SharedNoise


@dataclass
class ImageTensors:
    """A dataset split held in memory: ``images`` uint8 ``(N, C, S, S)``, ``labels`` int64 ``(N,)`` or None."""

    images: torch.Tensor
    labels: torch.Tensor | None
    num_classes: int = 0

    def __len__(self) -> int:
        return self.images.shape[0]


def _fit(images: torch.Tensor, size: int, channels: int) -> torch.Tensor:
    """Resize uint8 ``(N, C, H, W)`` to ``size`` (antialiased bilinear) and to ``channels`` (1 or 3)."""
    if images.shape[-1] != size or images.shape[-2] != size:
        # In chunks: a float copy of a whole resized dataset would cost 4 bytes per pixel at once.
        images = torch.cat([
            F.interpolate(chunk.float(), size=(size, size), mode="bilinear", antialias=True, align_corners=False)
            .round_().clamp_(0, 255).to(torch.uint8)
            for chunk in images.split(4096)
        ])
    if images.shape[1] == 1 and channels == 3:
        images = images.expand(-1, 3, -1, -1).contiguous()
    elif images.shape[1] == 3 and channels == 1:
        grey = (images.float() * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
        images = grey.round().clamp(0, 255).to(torch.uint8)
    return images


def load_split(data: DataConfig, split: str) -> ImageTensors | None:
    """Load ``split`` ("train" or "test") of ``data`` into memory; None if the source has no such split.

    ``data.limit`` keeps the first N images of the training split, ``data.test_limit`` of the test split.
    """
    from genlab.data import mnist

    if data.name in ("mnist", "fashion-mnist", "idx"):
        if data.name == "mnist":
            images, labels = mnist.load_mnist(split)
        elif data.name == "fashion-mnist":
            images, labels = mnist.load_fashion_mnist(split)
        else:
            images, labels = mnist.load_idx_dir(data.root, split)
        out = ImageTensors(images, labels, num_classes=int(labels.max()) + 1)
    elif data.name == "folder":
        out = _load_folder(data, split)
        if out is None:
            return None
    elif data.name in ("twemoji", "noto-emoji", "openmoji"):
        from genlab.data import emoji

        art = emoji.load_emoji(data.name.removesuffix("-emoji"), image_size=data.image_size)
        out = emoji.as_image_tensors(art, split)
    else:  # unreachable: the config's Literal type allows only the names above
        raise DataError(f"unknown dataset {data.name!r}")
    limit = data.limit if split == "train" else data.test_limit
    if limit is not None:
        out.images, out.labels = out.images[:limit], None if out.labels is None else out.labels[:limit]
    out.images = _fit(out.images, data.image_size, data.channels)
    return out


def _load_folder(data: DataConfig, split: str) -> ImageTensors | None:
    """A folder of images; ``root/train`` and ``root/test`` if present, else the whole folder is train."""
    from genlab.data.folders import load_image_folder

    root = Path(data.root)
    has_splits = (root / "train").is_dir()
    if not has_splits and split == "test":
        return None
    folder = root / split if has_splits else root
    if not folder.is_dir():
        return None
    mode = "L" if data.channels == 1 else "RGB"
    loaded = load_image_folder(folder, image_size=data.image_size, mode=mode, skip_bad=data.skip_bad_files)
    return ImageTensors(loaded.images, None)


def epoch_batches(num_items: int, batch_size: int, *, seed: int, epoch: int, rank: int = 0, world_size: int = 1,
                  shuffle: bool = True, drop_last: bool = False) -> list[torch.Tensor]:
    """This process's index batches for ``epoch`` (deterministic in seed and epoch).

    The sampler pads the order so every process gets the same number of items; rank ``r`` gets
    items ``r::world_size`` of the shuffled order, so the union of the ranks' i-th batches is the
    i-th global batch of ``batch_size * world_size`` items.
    """
    sampler = DistributedSampler(range(num_items), num_replicas=world_size, rank=rank, shuffle=shuffle, seed=seed)
    sampler.set_epoch(epoch)
    order = torch.tensor(list(sampler), dtype=torch.int64)
    batches = list(order.split(batch_size))
    if drop_last and batches and len(batches[-1]) < batch_size and len(batches) > 1:
        batches.pop()
    return batches


def make_batch(data: ImageTensors, index: torch.Tensor, config: DataConfig, device: torch.device,
               noise: SharedNoise | torch.Generator | None = None) -> dict[str, torch.Tensor]:
    """Model input for items ``index``: images as floats (binarised if the config says so), labels."""
    x = data.images[index].to(device=device, dtype=torch.float32).div_(255.0)
    if config.binarize == "dynamic":
        x = binarize(x, noise)
    if config.value_range == "symmetric":
        x = x.mul_(2.0).sub_(1.0)
    batch = {"image": x}
    if data.labels is not None:
        batch["label"] = data.labels[index].to(device)
    return batch


def binarize(x: torch.Tensor, noise: SharedNoise | torch.Generator | None) -> torch.Tensor:
    """Dynamic binarisation: pixel ~ Bernoulli(grey level) (Salakhutdinov & Murray 2008), ``x`` in [0, 1]."""
    if isinstance(noise, SharedNoise):
        u = noise.rand(x.shape[0], *x.shape[1:])
    else:
        u = torch.rand(x.shape, generator=noise)
    return (u.to(x.device) < x).to(x.dtype)


def iterate_eval_batches(data: ImageTensors, batch_size: int, rank: int = 0, world_size: int = 1) -> Iterator[torch.Tensor]:
    """Unshuffled index batches of this process's shard (no padding: every item exactly once overall)."""
    index = torch.arange(rank, len(data), world_size)
    yield from index.split(batch_size)
