"""Datasets by name (``data.name``), decoded once into uint8 tensors in memory, and the data
source (:mod:`genlab.data.sources`) a family's data kind asks for.

:func:`load_split` decodes one split of a dataset into :class:`~genlab.data.sources.ImageTensors`;
:func:`load_source` wraps splits into the :class:`~genlab.data.sources.DataSource` of a data kind.
Names: MNIST-like IDX sets, image folders and the emoji art sets.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
import torch.nn.functional as F

from genlab.data import emoji, folders, mnist
from genlab.data.sources import DataSource, ImageSource, ImageTensors, UnpairedSource
from genlab.data.transforms import luma
from genlab.errors import DataError
from genlab.schema import EMOJI_DATASETS, DataConfig


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
        grey = luma(images)
        images = grey.round().clamp(0, 255).to(torch.uint8)
    return images


def _mnist_like(loader):
    def load(data: DataConfig, split: str) -> ImageTensors:
        images, labels = loader(data, split)
        return ImageTensors(images, labels, num_classes=int(labels.max()) + 1)
    return load


def _emoji(data: DataConfig, split: str) -> ImageTensors:
    art = emoji.load_framed(data.name.removesuffix("-emoji"), data.image_size, data.emoji_framing)
    return emoji.as_image_tensors(art, split)


#: data.name → function(data config, split) -> ImageTensors or None (no such split)
LOADERS = {
    "mnist": _mnist_like(lambda data, split: mnist.load_mnist(split)),
    "fashion-mnist": _mnist_like(lambda data, split: mnist.load_fashion_mnist(split)),
    "idx": _mnist_like(lambda data, split: mnist.load_idx_dir(data.root, split)),
    "folder": lambda data, split: _load_folder(data, split),
    "twemoji": _emoji,
    "noto-emoji": _emoji,
    "openmoji": _emoji,
    "cub": lambda data, split: _load_cub_images(data, split),
}


def _limited(out: ImageTensors, data: DataConfig, split: str, channels: int) -> ImageTensors:
    """``data.limit`` / ``data.test_limit`` first items, resized to ``data.image_size`` and ``channels``."""
    limit = data.limit if split == "train" else data.test_limit
    if limit is not None:
        out.images, out.labels = out.images[:limit], None if out.labels is None else out.labels[:limit]
    out.images = _fit(out.images, data.image_size, channels)
    return out


def load_split(data: DataConfig, split: str) -> ImageTensors | None:
    """Load ``split`` ("train" or "test") of ``data`` into memory; None if the source has no such split.

    ``data.limit`` keeps the first N images of the training split, ``data.test_limit`` of the test split.
    """
    out = LOADERS[data.name](data, split)
    return None if out is None else _limited(out, data, split, data.channels)


def _emoji_styles(data: DataConfig, split: str) -> tuple[ImageTensors, ImageTensors]:
    """The emoji that both ``data.name`` and ``data.name_b`` draw, in the same order in both (item i
    of A and item i of B are the same emoji in two art styles: the true translation is known).
    Split by emoji, so no test emoji is seen in training, in either style."""
    a = emoji.load_framed(data.name.removesuffix("-emoji"), data.image_size, data.emoji_framing)
    b = emoji.load_framed(data.name_b.removesuffix("-emoji"), data.image_size, data.emoji_framing)
    index_a, index_b = emoji.paired_sets(a, b)
    return (emoji.as_image_tensors(a.subset(index_a), split), emoji.as_image_tensors(b.subset(index_b), split))


def load_unpaired_split(data: DataConfig, split: str) -> tuple[ImageTensors, ImageTensors, bool] | None:
    """Domains A and B of ``split`` and whether they are aligned (item i of A ↔ item i of B).

    ``folder`` reads the CycleGAN layout (``root/{split}A``, ``root/{split}B``; not aligned); an
    emoji set with ``data.name_b`` another one gives the emoji both draw, aligned (:func:`_emoji_styles`).
    None if ``split`` does not exist (a folder without ``testA``/``testB``)."""
    aligned = False
    if data.name == "folder":
        root = _existing_root(data)
        if split == "test" and not ((root / "testA").is_dir() and (root / "testB").is_dir()):
            return None
        a, b = folders.load_unpaired_folders(root, image_size=data.image_size, split=split, mode="RGB",
                                             skip_bad=data.skip_bad_files)
        domains = (ImageTensors(a.images, None), ImageTensors(b.images, None))
    elif data.name in EMOJI_DATASETS and data.name_b in EMOJI_DATASETS:
        domains, aligned = _emoji_styles(data, split), True
    else:
        raise DataError(f"data.name={data.name!r} with data.name_b={data.name_b!r} is not an unpaired dataset; "
                        f"allowed: data.name=folder (trainA/ trainB/ testA/ testB/ under data.root) or two emoji "
                        f"sets ({', '.join(EMOJI_DATASETS)}) as data.name and data.name_b")
    return (_limited(domains[0], data, split, data.channels),
            _limited(domains[1], data, split, data.domain_b_channels), aligned)


def load_source(data: DataConfig, split: str, kind: str) -> DataSource | None:
    """The :class:`~genlab.data.sources.DataSource` of data kind ``kind`` for ``split`` (None: no such split)."""
    if kind == "images":
        out = load_split(data, split)
        return None if out is None else ImageSource(out, data)
    if kind == "unpaired":
        domains = load_unpaired_split(data, split)
        if domains is None:
            return None
        a, b, aligned = domains
        return UnpairedSource(a, b, data, dataclasses.replace(data, channels=data.domain_b_channels),
                              aligned=aligned)
    if kind == "captioned":
        from genlab.data.captioned import load_captioned_source  # text encoders load only for text families

        return load_captioned_source(data, split)
    raise DataError(f"data kind {kind!r} has no loader yet; allowed: images, unpaired, captioned")


def _existing_root(data: DataConfig) -> Path:
    """``data.root`` as a ``Path``; a :class:`DataError` if it is not a folder (for every split, so a
    missing root is never mistaken for a missing test split)."""
    root = Path(data.root)
    if not root.is_dir():
        raise DataError(f"data.root={root}: no such folder; the data has moved, or was never there "
                        f"(data.name={data.name} reads its images from it)")
    return root


def _load_folder(data: DataConfig, split: str) -> ImageTensors | None:
    """A folder of images; ``root/train`` and ``root/test`` if present, else the whole folder is train."""
    root = _existing_root(data)
    has_splits = (root / "train").is_dir()
    if not has_splits and (root / "test").is_dir():  # else test/ would be trained on as part of the whole folder
        raise DataError(f"data.root={root} has test/ but no train/: put the training images in {root / 'train'}, "
                        "or move test/ out to train on the whole folder")
    if not has_splits and split == "test":
        return None
    folder = root / split if has_splits else root
    if not folder.is_dir():
        return None
    mode = "L" if data.channels == 1 else "RGB"
    limit = data.limit if split == "train" else data.test_limit  # decode no more than are used
    loaded = folders.load_image_folder(folder, image_size=data.image_size, mode=mode, skip_bad=data.skip_bad_files,
                                       limit=limit)
    return ImageTensors(loaded.images, None)


def _load_cub_images(data: DataConfig, split: str) -> ImageTensors:
    """CUB's bounding-box crops (StackGAN's layout under ``data.root``), without captions; class ids 1..200 as labels 0..199."""
    from genlab.data.cub import load_cub

    cub = load_cub(data.root, split, data.image_size)
    return ImageTensors(cub.images, cub.class_ids - 1, num_classes=200)
