"""Experiment configs: YAML files plus dotted ``key=value`` overrides, checked against the family registry.

:func:`load_config` reads a YAML file, applies overrides such as ``train.epochs=1
model.latent_dim=16 seed=3`` and builds the typed tree of :mod:`genlab.schema`; the ``model``
section's dataclass is the one the family named by ``model.family`` registered
(:mod:`genlab.registry`). Any mistake is a :class:`~genlab.errors.ConfigError` naming the key.
The dataclasses are re-exported here for convenience.
"""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path
from typing import Any

import yaml

from genlab import registry
from genlab.errors import ConfigError
from genlab.schema import (  # noqa: F401  (re-exported)
    Config,
    DataConfig,
    EvalConfig,
    ModelConfig,
    TrainConfig,
    _coerce,
    check,
    from_dict,
)


def config_from_dict(data: dict[str, Any]) -> Config:
    """Build a :class:`Config`, choosing the model dataclass from ``model.family``."""
    if not isinstance(data, dict):
        raise ConfigError(f"a config must be a mapping of sections, got {data!r}")
    model = data.get("model")
    if not isinstance(model, dict) or "family" not in model:
        raise ConfigError(f"config key 'model.family' is required; allowed: {', '.join(registry.names())}")
    family = registry.get(model["family"])
    rest = {k: v for k, v in data.items() if k != "model"}
    unknown = sorted(set(rest) - {f.name for f in dataclasses.fields(Config)})
    if unknown:
        allowed = ", ".join(f.name for f in dataclasses.fields(Config))
        raise ConfigError(f"unknown config key '{unknown[0]}'; allowed top-level keys: {allowed}")
    model_cfg = from_dict(family.config_class, model, prefix="model")
    return _build(rest, model_cfg)


def _build(rest: dict[str, Any], model_cfg: ModelConfig) -> Config:
    hints = typing.get_type_hints(Config)
    kwargs: dict[str, Any] = {"model": model_cfg}
    for name, value in rest.items():
        kwargs[name] = _coerce(value, hints[name], name)
    return Config(**kwargs)


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Return a copy of ``data`` with ``a.b.c=value`` overrides applied (values parsed as YAML)."""
    import copy

    out = copy.deepcopy(data)
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key or any(not part for part in key.split(".")):
            raise ConfigError(f"override {item!r} is not of the form key=value (e.g. train.epochs=3)")
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError as exc:
            reason = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise ConfigError(f"override {item!r}: value is not valid YAML ({reason})") from None
        node = out
        parts = key.split(".")
        for part in parts[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"override {item!r}: '{part}' is a value, not a section")
            node = child
        node[parts[-1]] = value
    return out


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping; a missing file or a syntax error is a :class:`ConfigError`."""
    path = Path(path)
    if path.is_dir():
        hint = f"; {path / 'config.yaml'} is a run's config" if (path / "config.yaml").is_file() else ""
        raise ConfigError(f"config file {path} is a folder; give a YAML file{hint}")
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = str(exc).replace('"<unicode string>"', f'"{path}"')  # safe_load of a string names no file
        raise ConfigError(f"config file {path} is not valid YAML: {where}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of sections, not {type(data).__name__}")
    return data


def load_config(path: str | Path, overrides: list[str] = ()) -> Config:
    """Load a YAML config, apply dotted overrides and validate everything."""
    data = apply_overrides(read_yaml(path), list(overrides))
    data.setdefault("name", Path(path).stem)
    return config_from_dict(data)
