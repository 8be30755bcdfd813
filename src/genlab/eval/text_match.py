"""An image–text matching model for R-precision, trained by genlab on real training images only.

AttnGAN (Xu et al. 2018, §4) and DM-GAN (Zhu et al. 2019) score text-to-image models by
**R-precision**: for each generated image, rank its true caption among 100 candidates (the true one
and 99 captions of other images) by the cosine similarity of image and text embeddings from a
matching model (their DAMSM), and report how often the true caption ranks first. genlab's
matching model is small and trained per dataset and text encoder:

* :class:`TextImageMatcher` — an image encoder (three blocks of 3×3 conv + BN + ReLU, the second
  conv of each with stride 2, widths 32/64/128, global average pooling, a linear layer to
  ``embed_dim`` = 128) on images resized to ``image_size`` (32 by default), and a projection of
  the caption embedding φ_t (Linear → ReLU → Linear to ``embed_dim``); both L2-normalised, cosine
  similarity scaled by a learned temperature (CLIP, Radford et al. 2021, §2.5: initial 1/0.07,
  capped at 100).
* :func:`train_text_matcher` — the symmetric contrastive (InfoNCE) loss over in-batch pairs, one
  random caption per image per step, random translations of up to 1/8 of the side (padded with
  the border colour; no flips or colour changes, which would contradict captions such as "left
  arrow" or "red heart"). Deterministic: everything is drawn from one seeded generator.
* :func:`matcher_for` — the matcher of a run's data: loaded from genlab's cache
  (``<cache>/text_match/*.safetensors``, weights in safetensors, settings in its metadata) or
  trained on the *training* split and cached. The cache key covers the images, the caption
  embeddings, the settings and :data:`VERSION`.
* :func:`r_precision` — the metric, mean ± std over splits.

Train it ahead of ``genlab eval`` with ``genlab evaluator text-match CONFIG [key=value ...]``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

from genlab.core.atomic import atomic_write
from genlab.core.atomic import cache_dir as genlab_cache_dir

#: bumped whenever the architecture or the training changes, so cached matchers are retrained
VERSION = 1
#: R-precision protocol of AttnGAN / DM-GAN: 1 true + 99 mismatched captions, 10 splits
CANDIDATES, SPLITS = 100, 10


@dataclass(frozen=True)
class MatcherSettings:
    """What a matcher is built and trained with (stored in its file's metadata)."""

    text_dim: int
    channels: int = 3
    image_size: int = 32
    embed_dim: int = 128
    widths: tuple[int, int, int] = (32, 64, 128)
    epochs: int = 30
    batch_size: int = 128
    lr: float = 1e-3
    seed: int = 0


class TextImageMatcher(nn.Module):
    """Images ``(N, C, H, W)`` in [0, 1] and caption embeddings ``(N, text_dim)`` → unit vectors ``(N, embed_dim)``."""

    def __init__(self, settings: MatcherSettings):
        super().__init__()
        self.settings = settings
        layers: list[nn.Module] = []
        fan_in = settings.channels
        for width in settings.widths:
            layers += [nn.Conv2d(fan_in, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
                       nn.Conv2d(width, width, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(width),
                       nn.ReLU(inplace=True)]
            fan_in = width
        self.image_encoder = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                           nn.Linear(fan_in, settings.embed_dim))
        hidden = 2 * settings.embed_dim
        self.text_encoder = nn.Sequential(nn.Linear(settings.text_dim, hidden), nn.ReLU(inplace=True),
                                          nn.Linear(hidden, settings.embed_dim))
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        """Images in [0, 1] (any size) → the encoder's input: ``image_size`` (antialiased bilinear), [-1, 1]."""
        x = images.float()
        size = self.settings.image_size
        if x.shape[-2:] != (size, size):
            x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        return x.clamp(0.0, 1.0) * 2.0 - 1.0

    def encode_images(self, images: torch.Tensor, prepared: bool = False) -> torch.Tensor:
        x = images if prepared else self.prepare(images)
        return F.normalize(self.image_encoder(x), dim=1)

    def encode_texts(self, embeddings: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.text_encoder(embeddings.float()), dim=1)

    def scale(self) -> torch.Tensor:
        return self.logit_scale.exp().clamp(max=100.0)


def _shift(x: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """Translate each image by up to ``max_shift`` pixels (replicate padding, the background colour)."""
    if max_shift <= 0:
        return x
    n, _, h, w = x.shape
    padded = F.pad(x, (max_shift,) * 4, mode="replicate")
    dx = torch.randint(0, 2 * max_shift + 1, (n,), generator=generator)
    dy = torch.randint(0, 2 * max_shift + 1, (n,), generator=generator)
    return torch.stack([padded[i, :, dy[i]:dy[i] + h, dx[i]:dx[i] + w] for i in range(n)])


@torch.enable_grad()  # also when called under no_grad (genlab eval)
def train_text_matcher(images: torch.Tensor, embeddings: torch.Tensor, counts: torch.Tensor,
                       settings: MatcherSettings, progress: bool = False) -> tuple[TextImageMatcher, dict]:
    """Train a :class:`TextImageMatcher` on uint8 images ``(N, C, S, S)`` with caption embeddings
    ``(N, K, D)`` (``counts[i]`` of them real); returns the model (eval mode) and training stats
    (``final_loss``, ``final_batch_top1``: in-batch image→text top-1 accuracy of the last epoch)."""
    from tqdm.auto import tqdm

    n = images.shape[0]
    if n < 2:
        raise ValueError(f"the matching model needs at least 2 training images, got {n}")
    generator = torch.Generator().manual_seed(settings.seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(settings.seed)
        model = TextImageMatcher(settings)
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr)
    batch = min(settings.batch_size, n)
    steps = n // batch
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, settings.epochs * steps))
    prepared = model.prepare(images.float().div(255.0))  # once: the images at the matcher's size
    shift = settings.image_size // 8
    model.train()
    loss_sum = top1_sum = 0.0
    for _ in tqdm(range(settings.epochs), desc="text-image matcher", disable=not progress, leave=False):
        order = torch.randperm(n, generator=generator)
        loss_sum = top1_sum = 0.0
        for index in order[: steps * batch].split(batch):
            pick = (torch.rand(len(index), generator=generator) * counts[index]).long().clamp_(max=counts[index] - 1)
            x = _shift(prepared[index], shift, generator)
            img, txt = model.encode_images(x, prepared=True), model.encode_texts(embeddings[index, pick])
            logits = model.scale() * img @ txt.T
            target = torch.arange(len(index))
            loss = (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            loss_sum += float(loss.detach())
            top1_sum += float((logits.argmax(1) == target).float().mean())
    model.eval()
    return model, {"final_loss": loss_sum / steps, "final_batch_top1": top1_sum / steps, "batch_size": batch}


# --- cache -----------------------------------------------------------------------------------------------

def _digest(*tensors: torch.Tensor) -> str:
    h = hashlib.sha256()
    for t in tensors:
        t = t.detach().cpu().contiguous()
        h.update(f"{t.dtype}{tuple(t.shape)}".encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()


def matcher_path(images: torch.Tensor, embeddings: torch.Tensor, counts: torch.Tensor, settings: MatcherSettings,
                 label: str = "data", cache_dir: str | Path | None = None) -> Path:
    """``<cache>/text_match/<label>-<key>.safetensors``; the key hashes data, settings and :data:`VERSION`."""
    key = hashlib.sha256(f"v{VERSION}{json.dumps(asdict(settings), sort_keys=True)}"
                         f"{_digest(images, embeddings, counts)}".encode()).hexdigest()[:24]
    root = Path(cache_dir) if cache_dir is not None else genlab_cache_dir() / "text_match"
    slug = "".join(c if c.isalnum() or c in "-_." else "_" for c in label)[:60]
    return root / f"{slug}-{key}.safetensors"


def save_matcher(model: TextImageMatcher, path: Path, metadata: dict[str, str]) -> Path:
    """Weights (safetensors) and settings + ``metadata`` (JSON strings) to ``path``, atomically."""
    meta = {"format": f"genlab-text-match-v{VERSION}", "settings": json.dumps(asdict(model.settings)), **metadata}
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    return atomic_write(path, lambda tmp: save_file(state, str(tmp), metadata=meta))


def load_matcher(path: Path) -> tuple[TextImageMatcher, dict[str, str]] | None:
    """The matcher in ``path`` (eval mode) and its metadata; None if the file is missing or unreadable."""
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            if meta.get("format") != f"genlab-text-match-v{VERSION}":
                return None
            state = {k: f.get_tensor(k) for k in f.keys()}
        raw = json.loads(meta["settings"])
        model = TextImageMatcher(MatcherSettings(**{**raw, "widths": tuple(raw["widths"])}))
        model.load_state_dict(state)
    except (SafetensorError, OSError, ValueError, KeyError, TypeError, RuntimeError):
        return None
    return model.eval(), meta


def cached_matcher(images: torch.Tensor, embeddings: torch.Tensor, counts: torch.Tensor, settings: MatcherSettings,
                   label: str = "data", cache_dir: str | Path | None = None,
                   progress: bool = True) -> tuple[TextImageMatcher, dict[str, str]]:
    """The matcher trained on exactly these images and captions with ``settings``: read from the cache, or
    trained (:func:`train_text_matcher`) and written there. Returns ``(model, metadata)``; the metadata
    records the cache file (``path``) and whether it was trained now (``trained_now``)."""
    path = matcher_path(images, embeddings, counts, settings, label, cache_dir)
    loaded = load_matcher(path) if path.is_file() else None
    if loaded is not None:
        model, meta = loaded
        return model, {**meta, "path": str(path), "trained_now": "false"}
    with torch.random.fork_rng(devices=[]):
        model, stats = train_text_matcher(images, embeddings, counts, settings, progress=progress)
    meta = {"training_images": str(images.shape[0]), "label": label,
            **{k: repr(v) if isinstance(v, float) else str(v) for k, v in stats.items()}}
    with contextlib.suppress(OSError):  # a read-only cache: the matcher is used uncached
        save_matcher(model, path, meta)
    return model, {**meta, "path": str(path), "trained_now": "true", "settings": json.dumps(asdict(settings))}


def matcher_for(config, settings: MatcherSettings | None = None, cache_dir: str | Path | None = None,
                progress: bool = True) -> tuple[TextImageMatcher, dict[str, str]]:
    """The matching model of ``config.data`` (a run's :class:`~genlab.schema.Config`), trained on its
    *training* split only (``data.limit`` applies), cached (:func:`cached_matcher`)."""
    from genlab.data.captioned import load_captioned_source

    source = load_captioned_source(config.data, "train")
    if settings is None:
        settings = MatcherSettings(text_dim=source.embeddings.shape[-1], channels=config.data.channels)
    label = f"{config.data.name}-{config.data.image_size}"
    return cached_matcher(source.data.images, source.embeddings, source.counts, settings, label, cache_dir, progress)


@torch.no_grad()
def embed_images(model: TextImageMatcher, images: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """Unit image embeddings ``(N, embed_dim)`` of uint8 or [0, 1] float images, in batches."""
    out = []
    for part in images.split(batch_size):
        x = part.float().div(255.0) if part.dtype == torch.uint8 else part.float()
        out.append(model.encode_images(x))
    return torch.cat(out) if out else torch.zeros(0, model.settings.embed_dim)


@torch.no_grad()
def embed_texts(model: TextImageMatcher, embeddings: torch.Tensor, batch_size: int = 2000) -> torch.Tensor:
    """Unit text embeddings ``(M, embed_dim)`` of caption embeddings ``(M, text_dim)``."""
    return torch.cat([model.encode_texts(part) for part in embeddings.split(batch_size)]) if len(embeddings) \
        else torch.zeros(0, model.settings.embed_dim)


class MatcherImageFeatures:
    """The matcher's image embedding as a feature extractor for FID/KID (:mod:`genlab.eval.features`'s interface).

    A dataset-specific evaluator network, trained on this dataset's training images: its FIDs compare
    runs of the same data and encoder only, never with Inception FIDs.
    """

    key = "matcher"

    def __init__(self, model: TextImageMatcher, path: str = ""):
        self.model = model
        self.dim = model.settings.embed_dim
        self.version = Path(path).stem[-24:] if path else "uncached"
        self.name = f"text-match-v{VERSION}"
        self.description = (f"genlab text-image matcher image embedding ({self.dim}-d, unit norm), "
                            f"input {model.settings.image_size}x{model.settings.image_size}")

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return self.model.encode_images(images.float())


# --- the metric ---------------------------------------------------------------------------------------------

def r_precision(image_emb: torch.Tensor, text_emb: torch.Tensor, true_caption: torch.Tensor,
                caption_owner: torch.Tensor, *, candidates: int = CANDIDATES, splits: int = SPLITS,
                generator: torch.Generator | None = None) -> dict[str, float]:
    """R-precision (R = 1) as AttnGAN / DM-GAN: top-1 rate of the true caption among ``candidates``.

    Args:
        image_emb: ``(N, E)`` unit image embeddings.
        text_emb: ``(M, E)`` unit embeddings of the caption pool.
        true_caption: ``(N,)`` index into the pool of each image's true caption.
        caption_owner: ``(M,)`` which image (emoji, file) each pool caption describes; the
            ``candidates - 1`` mismatched captions of image i are drawn uniformly (with
            replacement) from captions whose owner differs from its true caption's owner.
        splits: the N images are cut in order into this many chunks (at most N); the result is the
            mean and population std of the chunks' top-1 rates.

    A hit needs the true caption's cosine similarity to be strictly above every candidate's, so
    ties (identical captions of two images) count as misses. Returns ``{"mean", "std",
    "candidates", "n", "splits"}``; chance is 1 / candidates.
    """
    n = image_emb.shape[0]
    if n == 0:
        raise ValueError("r_precision needs at least one image")
    generator = generator or torch.Generator().manual_seed(0)
    u = torch.rand(n, candidates - 1, generator=generator)
    hits = []
    for rows in torch.arange(n).split(1024):  # bounded memory: (rows, M) masks
        owner = caption_owner[true_caption[rows]]
        others = caption_owner[None, :] != owner[:, None]
        if not bool(others.any(dim=1).all()):
            raise ValueError("every image needs captions of at least one other owner in the pool")
        # uniform over each row's allowed captions, with replacement: inverse CDF of the row's mask
        cumulative = others.long().cumsum(dim=1)
        rank = (u[rows] * cumulative[:, -1:]).long() + 1  # 1..count
        mismatched = torch.searchsorted(cumulative, rank)
        sims_true = (image_emb[rows] * text_emb[true_caption[rows]]).sum(dim=1)
        sims_other = torch.einsum("ne,nke->nk", image_emb[rows], text_emb[mismatched])
        hits.append((sims_true > sims_other.max(dim=1).values).float())
    hits = torch.cat(hits)
    chunks = [c.mean() for c in hits.tensor_split(min(splits, n))]
    rates = torch.stack(chunks)
    return {"mean": float(rates.mean()), "std": float(rates.std(unbiased=False)), "candidates": candidates,
            "n": n, "splits": len(chunks)}
