"""Captioned datasets for text-to-image families: images, their captions and caption embeddings.

Three sources give one :class:`CaptionedSplit` per split (``"train"`` / ``"test"``):

* **emoji sets** (``data.name``: ``twemoji`` | ``noto-emoji`` | ``openmoji``): each emoji's captions
  are made from its CLDR short name and keywords (:func:`emoji_captions`); the split is
  :func:`genlab.data.emoji.split_indices`'s, by emoji, so no test emoji (name, keyword, picture)
  is seen in training.
* **captioned folders** (``data.name: folder``, ``data.root``): any tree of images with a
  HuggingFace-``imagefolder`` ``metadata.jsonl`` (``{"file_name": "a/b.png", "text": "..."}`` or
  ``"text": ["...", "..."]``; read by :func:`genlab.data.folders.load_captions`). With ``train/``
  (and optionally ``test/``) sub-folders, each split folder holds its own ``metadata.jsonl``, or
  one file at the root names ``train/...`` and ``test/...`` paths. A caption line naming a file
  that does not exist, an image without a caption and an image that cannot be decoded are
  :class:`~genlab.errors.DataError`\\ s that name the file (``data.skip_bad_files=true`` skips
  undecodable images and their captions).
* **CUB birds** (``data.name: cub``, ``data.root``): StackGAN's layout through
  :func:`genlab.data.cub.load_cub`, with the authors' char-CNN-RNN embeddings (10 × 1024 per
  image; ``data.cub_embedding_dim``) instead of a text encoder; captions are read from
  ``birds/text/<file>.txt`` when present.

:func:`load_captioned_source` embeds the captions with the configured encoder
(``data.text_encoder``: ``hashing`` | ``minilm``), cached per encoder and caption list under
genlab's cache folder (``<cache>/text``, :func:`genlab.data.text_encoder.cached_embeddings`), and
wraps the split in a :class:`~genlab.data.sources.CaptionedSource`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from genlab.core.atomic import cache_dir
from genlab.data import emoji
from genlab.data.folders import list_image_files, load_captions, load_image_folder
from genlab.data.images import IMAGE_SUFFIXES
from genlab.data.sources import CaptionedSource, ImageTensors
from genlab.data.text_encoder import MiniLMTextEncoder, TextEncoder, build_text_encoder, cached_embeddings
from genlab.data.transforms import luma
from genlab.errors import DataError, GenlabError
from genlab.schema import EMOJI_DATASETS, DataConfig

#: the data.name values that :func:`load_captioned_split` reads
CAPTIONED_DATASETS = (*EMOJI_DATASETS, "folder", "cub")


@dataclass
class CaptionedSplit:
    """One split in memory: ``images`` uint8 ``(N, C, S, S)``, ``captions[i]`` the texts of image i
    (at most ``data.captions_per_image``), ``names[i]`` what image i is (emoji key, file path),
    ``embeddings`` float32 ``(N, K, D)`` when the dataset ships its own (CUB), else None."""

    images: torch.Tensor
    captions: list[list[str]]
    names: list[str]
    embeddings: torch.Tensor | None = None

    def __len__(self) -> int:
        return self.images.shape[0]


# --- text --------------------------------------------------------------------------------------------

def text_dim(data: DataConfig) -> int:
    """Size D of the caption embeddings of ``data``: ``data.cub_embedding_dim`` for CUB (the authors'
    char-CNN-RNN: 1024), MiniLM's 384, or ``data.text_hashing_dim``."""
    if data.name == "cub":
        return data.cub_embedding_dim
    return MiniLMTextEncoder.dim if data.text_encoder == "minilm" else data.text_hashing_dim


def text_encoder_for(data: DataConfig) -> TextEncoder:
    """The text encoder ``data`` asks for (``data.text_encoder``); CUB has none genlab can run."""
    if data.name == "cub":
        raise GenlabError("data.name=cub conditions on the authors' precomputed char-CNN-RNN embeddings; genlab "
                          "has no char-CNN-RNN encoder, so it cannot embed new text for this run (train on an "
                          "emoji set or a captioned folder to generate from free text)")
    options = {"dim": data.text_hashing_dim} if data.text_encoder == "hashing" else {}
    return build_text_encoder(data.text_encoder, **options)


def embed_captions(data: DataConfig, captions: list[list[str]]) -> tuple[torch.Tensor, torch.Tensor]:
    """``(embeddings (N, K, D) float32, counts (N,) int64)`` of up to K = ``data.captions_per_image``
    captions per image, by ``data.text_encoder``, cached under ``<genlab cache>/text``. Unused rows are 0."""
    encoder = text_encoder_for(data)
    k = data.captions_per_image
    kept = [texts[:k] for texts in captions]
    counts = torch.tensor([len(texts) for texts in kept], dtype=torch.int64)
    if len(kept) and int(counts.min()) < 1:
        raise DataError("every image needs at least one caption")
    flat = [text for texts in kept for text in texts]
    vectors = cached_embeddings(encoder, flat, cache_dir() / "text") if flat else torch.zeros(0, encoder.dim)
    out = torch.zeros(len(kept), k, encoder.dim)
    rows = torch.repeat_interleave(torch.arange(len(kept)), counts)
    cols = torch.cat([torch.arange(int(c)) for c in counts]) if len(kept) else torch.zeros(0, dtype=torch.int64)
    out[rows, cols] = vectors
    return out, counts


def emoji_captions(name: str, keywords: list[str], limit: int = 10) -> list[str]:
    """Captions of one emoji from its CLDR short name and keywords, every one containing the name.

    ``name``; ``"<name>, <keyword>"`` for each keyword the name does not already contain; and
    ``"<name>, <kw1>, <kw2>, ..."`` with all of those keywords when there are two or more.
    "ghost" with keywords creature, face, fairy tale, … gives "ghost", "ghost, creature", …,
    "ghost, creature, face, fairy tale, fantasy, monster". Keyword-only captions are not made:
    258 flags share the single keyword "flag". Duplicates are dropped; at most ``limit``.
    """
    extra = [kw for kw in keywords if kw.lower() not in name.lower()]
    out = [name] + [f"{name}, {kw}" for kw in extra]
    if len(extra) >= 2:
        out.insert(1, ", ".join([name, *extra]))
    seen: set[str] = set()
    unique = [c for c in out if not (c in seen or seen.add(c))]
    return unique[:limit]


# --- loading --------------------------------------------------------------------------------------------

def _to_channels(images: torch.Tensor, channels: int) -> torch.Tensor:
    """uint8 ``(N, C, S, S)`` to 1 (BT.601 luma, as :mod:`genlab.data.datasets`) or 3 channels."""
    if images.shape[1] == channels:
        return images
    if channels == 3:
        return images.expand(-1, 3, -1, -1).contiguous()
    grey = luma(images)
    return grey.round().clamp(0, 255).to(torch.uint8)


def _limit(data: DataConfig, split: str) -> int | None:
    return data.limit if split == "train" else data.test_limit


def _load_emoji(data: DataConfig, split: str) -> CaptionedSplit:
    art = emoji.load_framed(data.name.removesuffix("-emoji"), data.image_size, data.emoji_framing)
    index = emoji.split_indices(art.codepoints, split)[: _limit(data, split)]
    items = index.tolist()
    return CaptionedSplit(art.images[index], [emoji_captions(art.names[i], art.keywords[i], data.captions_per_image)
                                              for i in items], [art.codepoints[i] for i in items])


def _folder_captions(root: Path, folder: Path, split: str, has_splits: bool) -> tuple[dict[str, list[str]], Path]:
    """``{path relative to folder: captions}`` and the metadata file they came from."""
    own = folder / "metadata.jsonl"
    if own.is_file() or not has_splits:
        return load_captions(own), own
    shared = root / "metadata.jsonl"
    if not shared.is_file():
        raise DataError(f"{own} not found: each of train/ and test/ needs its captions, in its own metadata.jsonl "
                        f'or as "{split}/<file>" lines of {shared}')
    prefix = f"{split}/"
    captions = {name.removeprefix(prefix): texts for name, texts in load_captions(shared).items()
                if name.startswith(prefix)}
    if not captions:
        raise DataError(f"{shared} names no file under {split}/ (and {own} does not exist): give {split}/ its own "
                        f'metadata.jsonl, or name its images as "{split}/<file>" in {shared}')
    return captions, shared


def _load_folder(data: DataConfig, split: str) -> CaptionedSplit | None:
    root = Path(data.root)
    if not root.is_dir():
        raise DataError(f"captioned image folder {root} does not exist; expected images and a metadata.jsonl "
                        '({"file_name": ..., "text": ...} per line), optionally in train/ and test/ sub-folders')
    has_splits = (root / "train").is_dir()
    if split == "test" and not has_splits:
        return None
    folder = root / split if has_splits else root
    if not folder.is_dir():
        return None
    if split == "test" and not any(p.is_file() for p in folder.rglob("*")):  # an empty test/: no test split
        return None
    captions, meta = _folder_captions(root, folder, split, has_splits)
    files = {p.relative_to(folder).as_posix() for p in list_image_files(folder)}
    missing = sorted(name for name in captions if name not in files)
    if missing:
        path = folder / missing[0]
        why = ("is not an image file (accepted suffixes: " + " ".join(IMAGE_SUFFIXES) + ")") if path.exists() \
            else "does not exist"
        more = f" ({len(missing) - 1} more such lines)" if len(missing) > 1 else ""
        raise DataError(f"{meta} names {missing[0]!r}, but {path} {why}{more}")
    uncaptioned = sorted(files - set(captions))
    if uncaptioned:
        raise DataError(f"{folder / uncaptioned[0]} has no caption in {meta} ({len(uncaptioned)} image(s) without "
                        f'one); add a line {{"file_name": "{uncaptioned[0]}", "text": "..."}} or remove the image')
    mode = "L" if data.channels == 1 else "RGB"
    loaded = load_image_folder(folder, image_size=data.image_size, mode=mode, skip_bad=data.skip_bad_files,
                               limit=_limit(data, split))
    names = [Path(p).relative_to(folder).as_posix() for p in loaded.paths]
    return CaptionedSplit(loaded.images, [captions[n][: data.captions_per_image] for n in names], names)


def _cub_captions(root: Path, filenames: list[str], count: int) -> list[list[str]]:
    """The authors' ``text/<file>.txt`` captions (one per line) where present, else placeholders."""
    text_dirs = [d for d in (root / "birds" / "text", root / "text") if d.is_dir()]
    out = []
    for name in filenames:
        path = next((d / f"{name}.txt" for d in text_dirs if (d / f"{name}.txt").is_file()), None)
        lines = [ln.strip() for ln in path.read_text(encoding="utf-8", errors="replace").splitlines()
                 if ln.strip()] if path else []
        out.append((lines + [f"{name} (caption {k + 1})" for k in range(len(lines), count)])[:count])
    return out


def _load_cub(data: DataConfig, split: str) -> CaptionedSplit:
    from genlab.data.cub import load_cub

    cub = load_cub(data.root, split, data.image_size, limit=_limit(data, split))
    if cub.embeddings.shape[-1] != data.cub_embedding_dim:
        raise DataError(f"the CUB caption embeddings under {data.root} have {cub.embeddings.shape[-1]} dimensions; "
                        f"set data.cub_embedding_dim={cub.embeddings.shape[-1]} (the authors' char-CNN-RNN: 1024)")
    k = min(data.captions_per_image, cub.embeddings.shape[1])
    embeddings = cub.embeddings[:, :k].contiguous()
    return CaptionedSplit(cub.images, _cub_captions(Path(data.root), cub.filenames, k), list(cub.filenames),
                          embeddings)


def load_captioned_split(data: DataConfig, split: str) -> CaptionedSplit | None:
    """Images, captions and names of ``split`` of ``data`` (None: the dataset has no such split).

    ``data.limit`` / ``data.test_limit`` keep the first N images of the split; images come at
    ``data.image_size`` and ``data.channels``.

    Raises:
        DataError: ``data.name`` is not captioned, or a file is missing, uncaptioned or undecodable
            (the message names it).
    """
    if data.name in EMOJI_DATASETS:
        out = _load_emoji(data, split)
    elif data.name == "folder":
        out = _load_folder(data, split)
    elif data.name == "cub":
        out = _load_cub(data, split)
    else:
        raise DataError(f"data.name={data.name!r} has no captions; allowed for text-to-image families: "
                        f"{', '.join(CAPTIONED_DATASETS)}")
    if out is not None:
        out.images = _to_channels(out.images, data.channels)
    return out


def load_captioned_source(data: DataConfig, split: str) -> CaptionedSource | None:
    """The :class:`~genlab.data.sources.CaptionedSource` of ``split`` (None: no such split), with
    embeddings from the dataset (CUB) or from ``data.text_encoder`` (cached)."""
    loaded = load_captioned_split(data, split)
    if loaded is None:
        return None
    if loaded.embeddings is not None:
        embeddings = loaded.embeddings
        counts = torch.full((len(loaded),), embeddings.shape[1], dtype=torch.int64)
    else:
        embeddings, counts = embed_captions(data, loaded.captions)
    if len(loaded) < 2:
        raise DataError(f"the {split} split of data.name={data.name} has {len(loaded)} image(s); a captioned "
                        "split needs at least two (mismatched captions come from another image)")
    return CaptionedSource(ImageTensors(loaded.images, None), embeddings, counts, loaded.captions, data)
