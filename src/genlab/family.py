"""The record a model family declares: everything genlab needs to know about it, in one place.

A family is one module (``genlab/models/vae.py``, or a module of your own) that ends with::

    FAMILY = Family(name="vae", config_class=VAEConfig, model_class=VAE, ...)

:mod:`genlab.registry` collects the built-in records and :func:`genlab.registry.register` adds
others. Config parsing and every command (``info``, ``train``, ``sample``, ``eval``, ``figures``,
``demo``) look a family up there; nothing else names a family. This module imports nothing from
genlab, so any layer may use the record type.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: what a model can do, as the demo, the figures and ``genlab sample`` ask it
#: sample: ``model.sample(n, cond, generator)``; classes: ``cond`` takes class labels;
#: reconstruct: ``model.reconstruct(images)``; translate: ``model.translate(images, direction)`` and
#: ``model.cycle(images, direction)``; text: ``model.sample(n, text=[...])`` and ``model.text_grid(n, texts,
#: generator) -> PreviewGrid`` (what ``genlab sample --text`` writes); latent: ``model.decode_latent(z, cond)`` for latents ``z``
#: ``(N, config.model.latent_dim)`` of the prior N(0, I) (the demo's latent explorer and interpolation)
ABILITIES = frozenset({"sample", "classes", "reconstruct", "translate", "text", "latent"})
#: the data sources the loop can build for a family (see :mod:`genlab.data.sources`)
DATA_KINDS = ("images", "unpaired", "captioned")


@dataclass(frozen=True)
class Family:
    """One model family's declaration.

    Attributes:
        name: the value of ``model.family`` in configs.
        config_class: its ``model`` section, a subclass of :class:`genlab.schema.ModelConfig`.
        model_class: a subclass of :class:`genlab.models.base.GenerativeModel`, built as ``model_class(config)``.
        data_kind: the batches it trains on: ``images`` (``image``, ``label``), ``unpaired``
            (``image``, ``image_b``) or ``captioned`` (``image``, ``caption``, ``text_embedding``, ``wrong_*``).
        loss_names: the keys of ``train_step``'s output plotted as loss curves, in order.
        loss_units: the y-axis label of those curves (e.g. ``"nats / image"``), or None.
        metrics: ``metrics(model, config) -> {name: value}`` for ``genlab eval``, or None.
        figures: ``figures(model, config, out_dir) -> [paths]``, the family's analysis figures, or None.
        abilities: a subset of :data:`ABILITIES`.
        summary: one line for ``genlab families`` and the docs.
    """

    name: str
    config_class: type
    model_class: type
    data_kind: str = "images"
    loss_names: tuple[str, ...] = ("loss",)
    loss_units: str | None = None
    metrics: Callable[[Any, Any], dict[str, Any]] | None = None
    figures: Callable[[Any, Any, Path], list[Path]] | None = None
    abilities: frozenset[str] = field(default_factory=lambda: frozenset({"sample"}))
    summary: str = ""

    def __post_init__(self) -> None:
        if self.data_kind not in DATA_KINDS:
            raise ValueError(f"family {self.name!r}: data_kind {self.data_kind!r}; allowed: {', '.join(DATA_KINDS)}")
        unknown = set(self.abilities) - ABILITIES
        if unknown:
            raise ValueError(f"family {self.name!r}: unknown abilities {sorted(unknown)}; allowed: {sorted(ABILITIES)}")

    def can(self, ability: str) -> bool:
        """Whether models of this family have ``ability`` (one of :data:`ABILITIES`)."""
        return ability in self.abilities
