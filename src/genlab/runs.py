"""Run directories: what a training run leaves behind and how to load it back.

``runs/<name>/`` holds ``config.yaml``, ``checkpoints/step_*.safetensors``, ``metrics.jsonl``,
``tensorboard/``, ``samples/epoch_XXXX[_name].png``, ``figures/*.png``, ``eval.json``, ``train.log``
and, for a run started from another run's weights, ``sources.json``. A run is self-contained:
the model is built from the config stored in its newest checkpoint, then that checkpoint's weights
are loaded (a source run's weights were copied into it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import yaml

from genlab.config import Config, config_from_dict
from genlab.core.checkpoint import list_checkpoints, load_checkpoint
from genlab.errors import CheckpointError, GenlabError
from genlab.registry import build_model


def latest_checkpoint(run_dir: Path) -> Path:
    """Newest complete checkpoint of a run; a clear error if there is none."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise GenlabError(f"run directory not found: {run_dir}")
    found = list_checkpoints(run_dir)
    if not found:
        raise CheckpointError(f"{run_dir} has no checkpoints (expected {run_dir}/checkpoints/step_*.safetensors); "
                              "train it first with `genlab train`")
    return found[-1]


def load_state_into(model: torch.nn.Module, state: dict[str, Any], path: Path, family: str) -> None:
    """Load a checkpoint's weights into ``model``; another family or shape is a :class:`CheckpointError`."""
    if state.get("family") != family:
        raise CheckpointError(f"{path} holds a '{state.get('family')}' model; this config trains '{family}'")
    saved, own = state["model"], model.state_dict()
    missing, unexpected = sorted(set(own) - set(saved)), sorted(set(saved) - set(own))
    if missing or unexpected:
        raise CheckpointError(f"{path} does not fit this architecture: missing {missing[:5]}, unexpected {unexpected[:5]}")
    for key, tensor in own.items():
        if saved[key].shape != tensor.shape:
            raise CheckpointError(f"{path}: '{key}' has shape {tuple(saved[key].shape)} in the checkpoint "
                                  f"but {tuple(tensor.shape)} in this model (different config?)")
    model.load_state_dict(saved)


def copy_weights(model: torch.nn.Module, state: dict[str, Any], path: Path, source_prefix: str,
                 target_prefix: str) -> int:
    """Copy ``state``'s model tensors ``source_prefix + k`` into ``model``'s ``target_prefix + k``;
    returns how many. Nothing to copy, or a shape that differs, is a :class:`CheckpointError`."""
    own = model.state_dict()
    picked = {target_prefix + k[len(source_prefix):]: v for k, v in state["model"].items() if k.startswith(source_prefix)}
    missing = sorted(k for k in own if k.startswith(target_prefix) and k not in picked)
    unexpected = sorted(k for k in picked if k not in own)
    if not picked or missing or unexpected:
        raise CheckpointError(f"{path}: its '{source_prefix}*' weights do not fit this model's '{target_prefix}*' "
                              f"(missing {missing[:5]}, unexpected {unexpected[:5]}, {len(picked)} found)")
    for key, tensor in picked.items():
        if own[key].shape != tensor.shape:
            raise CheckpointError(f"{path}: '{source_prefix}{key[len(target_prefix):]}' has shape {tuple(tensor.shape)} "
                                  f"but this model's '{key}' has {tuple(own[key].shape)} (different config?)")
    model.load_state_dict(picked, strict=False)
    return len(picked)


def load_run(run_dir: Path, device: str | torch.device = "cpu", checkpoint: Path | None = None):
    """``(config, model in eval mode, checkpoint state)`` of a run's newest checkpoint, or of the
    ``checkpoint`` file given (an earlier one of this run, or a copy kept elsewhere)."""
    if checkpoint is None:
        path = latest_checkpoint(run_dir)
    elif not Path(checkpoint).is_file():
        raise GenlabError(f"checkpoint file not found: {checkpoint}")
    else:
        path = Path(checkpoint)
    state = load_checkpoint(path)
    try:
        config: Config = config_from_dict(state["config"])
    except GenlabError as exc:
        raise CheckpointError(f"{path}: its stored config is not valid for this genlab version: {exc}") from None
    if checkpoint is not None:
        _check_same_model(Path(run_dir), path, state["config"])
    config.train.device = "cpu"
    model = build_model(config)
    load_state_into(model, state, path, config.model.family)
    return config, model.to(device).eval(), state


def _check_same_model(run_dir: Path, path: Path, stored: dict[str, Any]) -> None:
    """A :class:`CheckpointError` unless checkpoint ``path`` (config ``stored``) has the model of the run
    in ``run_dir`` (same ``model.*`` keys as its ``config.yaml``): results are written into that run."""
    saved = run_dir / "config.yaml"
    if not saved.is_file():
        raise GenlabError(f"{run_dir} is not a run directory (no config.yaml)")
    ours, theirs = yaml.safe_load(saved.read_text()).get("model", {}), stored.get("model", {})
    differ = sorted(k for k in ours.keys() | theirs.keys() if ours.get(k) != theirs.get(k))
    if differ:
        key = "family" if "family" in differ else differ[0]  # another family says the most
        raise CheckpointError(f"{path} is not a checkpoint of run {run_dir}: model.{key} is {theirs.get(key)!r} "
                              f"there and {ours.get(key)!r} in the run's config.yaml")
