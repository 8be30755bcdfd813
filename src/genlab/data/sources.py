"""Data sources: what the loop draws batches from, behind one small protocol.

A source has a length, the keys it yields and ``batch(index, noise, device)`` → a dict of tensors
for the items ``index`` (int64 ``(B,)``). The loop treats that dict as opaque; the model reads the
keys its family declared (:data:`genlab.family.DATA_KINDS`):

* :class:`ImageSource` (``images``): ``{"image": float (B, C, S, S), "label": int64 (B,)}`` (label
  only when the dataset has classes);
* :class:`UnpairedSource` (``unpaired``): ``{"image": domain A (B, C_a, S, S), "image_b": domain B
  (B, C_b, S, S)}``; the B partner of each A item is drawn from ``noise``;
* :class:`CaptionedSource` (``captioned``): ``{"image", "text_embedding": (B, D), "caption_id": (B,),
  "wrong_text_embedding": (B, D), "wrong_caption_id": (B,)}``: one of each image's captions, and a
  caption of another image (for matching-aware discriminators), both drawn from ``noise``.

Every random choice of a source comes from ``noise`` (a :class:`~genlab.core.noise.SharedNoise`),
which draws for the whole global batch and hands each process its rows, so N processes with batch
B make the same pairs as one process with batch N·B. Datasets live in memory as one uint8 tensor
(:class:`ImageTensors`); a batch is an index into it, with no per-sample PIL work.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch
from torch.utils.data import DistributedSampler

from genlab.core.noise import SharedNoise
from genlab.schema import DataConfig


@dataclass
class ImageTensors:
    """A dataset split held in memory: ``images`` uint8 ``(N, C, S, S)``, ``labels`` int64 ``(N,)`` or None."""

    images: torch.Tensor
    labels: torch.Tensor | None
    num_classes: int = 0

    def __len__(self) -> int:
        return self.images.shape[0]


@runtime_checkable
class DataSource(Protocol):
    """The protocol the loop relies on (see the module docstring)."""

    keys: tuple[str, ...]

    def __len__(self) -> int: ...

    def batch(self, index: torch.Tensor, noise: SharedNoise, device: torch.device) -> dict[str, torch.Tensor]: ...


def describe_source(source: DataSource) -> str:
    """What a split holds, for the log: the source's own ``describe()`` (two domains name both sizes), else
    ``"N images"``."""
    describe = getattr(source, "describe", None)
    return describe() if describe is not None else f"{len(source):,} images"


def to_float(images: torch.Tensor, config: DataConfig, device: torch.device,
             noise: SharedNoise | torch.Generator | None = None) -> torch.Tensor:
    """uint8 ``(B, C, S, S)`` → float32 on ``device`` in [0, 1] or [-1, 1] (``data.value_range``),
    binarised first if ``data.binarize`` is ``dynamic``."""
    x = images.to(device=device, dtype=torch.float32).div_(255.0)
    if config.binarize == "dynamic":
        x = binarize(x, noise)
    if config.value_range == "symmetric":
        x = x.mul_(2.0).sub_(1.0)
    return x


def make_batch(data: ImageTensors, index: torch.Tensor, config: DataConfig, device: torch.device,
               noise: SharedNoise | torch.Generator | None = None) -> dict[str, torch.Tensor]:
    """Model input for items ``index`` of ``data``: ``image`` as floats (:func:`to_float`), ``label`` if any."""
    batch = {"image": to_float(data.images[index], config, device, noise)}
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


class ImageSource:
    """Images (and class labels) of one split: the ``images`` data kind."""

    def __init__(self, data: ImageTensors, config: DataConfig):
        self.data, self.config = data, config
        self.keys = ("image", "label") if data.labels is not None else ("image",)

    def __len__(self) -> int:
        return len(self.data)

    @property
    def num_classes(self) -> int:
        return self.data.num_classes

    def batch(self, index, noise, device):
        return make_batch(self.data, index, self.config, device, noise)


class UnpairedSource:
    """Two unpaired domains (CycleGAN): length of domain A; each A item gets a random B partner.

    ``image_b`` of item ``i`` is ``b[j]`` with ``j`` uniform over all of B, drawn from ``noise``
    (the reference implementation's ``serial_batches=False`` draw), so domains of different sizes
    pair reproducibly and every B image is reachable. ``domain_b_config`` is ``config`` with
    ``channels`` set to the B domain's. ``aligned``: item i of A and item i of B are known to be
    the same subject (the emoji styles), so paired metrics apply; training still draws random partners.
    """

    keys = ("image", "image_b")

    def __init__(self, a: ImageTensors, b: ImageTensors, config: DataConfig, domain_b_config: DataConfig,
                 aligned: bool = False):
        if len(a) == 0 or len(b) == 0:
            raise ValueError(f"both domains need images (A has {len(a)}, B has {len(b)})")
        if aligned and len(a) != len(b):
            raise ValueError(f"aligned domains must have the same size (A {len(a)}, B {len(b)})")
        self.a, self.b, self.config, self.config_b, self.aligned = a, b, config, domain_b_config, aligned

    def __len__(self) -> int:
        return len(self.a)

    def describe(self) -> str:
        """``"3,592 A / 3,592 B images"``: both domains' sizes (an epoch is one pass over A)."""
        return f"{len(self.a):,} A / {len(self.b):,} B images"

    def batch(self, index, noise, device):
        partner = noise.randint(len(index), len(self.b))
        return {"image": to_float(self.a.images[index], self.config, device, noise),
                "image_b": to_float(self.b.images[partner], self.config_b, device, noise)}

    def paired(self, index: torch.Tensor, device: torch.device) -> dict[str, torch.Tensor]:
        """A items ``index`` with B items of the same positions (for fixed previews of both
        directions; the true pair where the domains are aligned, as in the emoji styles)."""
        return {"image": to_float(self.a.images[index], self.config, device),
                "image_b": to_float(self.b.images[index % len(self.b)], self.config_b, device)}


class CaptionedSource:
    """Images with one or more captions each: the ``captioned`` data kind (text-to-image).

    ``embeddings`` float32 ``(N, K, D)`` holds up to K caption embeddings per image, ``counts``
    int64 ``(N,)`` how many of them are real (1..K); ``captions[i]`` the texts of image i.
    """

    keys = ("image", "text_embedding", "caption_id", "wrong_text_embedding", "wrong_caption_id")

    def __init__(self, data: ImageTensors, embeddings: torch.Tensor, counts: torch.Tensor,
                 captions: list[list[str]], config: DataConfig):
        if len(data) < 2:
            raise ValueError("a captioned source needs at least two images (mismatched captions come from another image)")
        if embeddings.shape[0] != len(data) or counts.shape[0] != len(data) or len(captions) != len(data):
            raise ValueError(f"{len(data)} images but {embeddings.shape[0]} embedding rows, {counts.shape[0]} counts "
                             f"and {len(captions)} caption lists")
        self.data, self.embeddings, self.counts, self.captions, self.config = data, embeddings, counts, captions, config

    def __len__(self) -> int:
        return len(self.data)

    def caption(self, caption_id: int) -> str:
        """The text of a ``caption_id`` (``image index · K + caption number``)."""
        image, number = divmod(int(caption_id), self.embeddings.shape[1])
        return self.captions[image][number]

    def _draw_caption(self, index: torch.Tensor, noise) -> tuple[torch.Tensor, torch.Tensor]:
        number = (noise.rand(len(index)) * self.counts[index]).long().clamp_(max=self.counts[index] - 1)
        return self.embeddings[index, number], index * self.embeddings.shape[1] + number

    def batch(self, index, noise, device):
        offset = 1 + (noise.rand(len(index)) * (len(self) - 1)).long().clamp_(max=len(self) - 2)
        wrong = (index + offset) % len(self)  # any other image, never the same one
        text, caption_id = self._draw_caption(index, noise)
        wrong_text, wrong_id = self._draw_caption(wrong, noise)
        return {"image": to_float(self.data.images[index], self.config, device, noise),
                "text_embedding": text.to(device), "caption_id": caption_id,
                "wrong_text_embedding": wrong_text.to(device), "wrong_caption_id": wrong_id}


def in_memory_format(batch: dict[str, torch.Tensor], memory_format: torch.memory_format) -> dict[str, torch.Tensor]:
    """``batch`` with its images (every 4-D floating tensor) in ``memory_format`` (e.g. channels-last)."""
    return {k: v.contiguous(memory_format=memory_format) if v.dim() == 4 and v.is_floating_point() else v
            for k, v in batch.items()}


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


def iterate_eval_batches(data, batch_size: int, rank: int = 0, world_size: int = 1) -> Iterator[torch.Tensor]:
    """Unshuffled index batches of this process's shard of ``data`` (anything with a length; no
    padding: every item exactly once overall)."""
    index = torch.arange(rank, len(data), world_size)
    yield from index.split(batch_size)
