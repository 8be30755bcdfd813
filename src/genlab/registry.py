"""The family registry: ``model.family`` → its :class:`~genlab.family.Family` record.

The built-in families are listed once, below; another family (a plug-in, or a test's toy family)
calls :func:`register` when its module is imported. Config parsing and every command look families
up here, so a new family is one module plus its configs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from genlab.errors import ConfigError
from genlab.family import Family
from genlab.models import cvae, cyclegan, gan, stackgan, vae

if TYPE_CHECKING:
    from genlab.models.base import GenerativeModel
    from genlab.schema import Config

_FAMILIES: dict[str, Family] = {f.name: f for f in (vae.FAMILY, cvae.FAMILY, gan.FAMILY, cyclegan.FAMILY,
                                                    stackgan.FAMILY)}


def register(family: Family, *, replace: bool = False) -> Family:
    """Add ``family`` to the registry (``replace=True`` to redefine a name); returns it."""
    if not isinstance(family, Family):
        raise TypeError(f"register() takes a genlab.family.Family, got {type(family).__name__}")
    if family.name in _FAMILIES and not replace and _FAMILIES[family.name] != family:
        raise ValueError(f"a family named {family.name!r} is already registered; pass replace=True to redefine it")
    _FAMILIES[family.name] = family
    return family


def names() -> list[str]:
    """Registered family names, sorted."""
    return sorted(_FAMILIES)


def get(name: str) -> Family:
    """The record of family ``name``; an unknown name is a :class:`ConfigError` listing the known ones."""
    try:
        return _FAMILIES[name]
    except (KeyError, TypeError):
        raise ConfigError(f"config key 'model.family': got {name!r}; allowed: {', '.join(names())}") from None


def build_model(config: Config) -> GenerativeModel:
    """Instantiate the model of ``config.model.family`` from its config (weights are loaded separately)."""
    return get(config.model.family).model_class(config)
