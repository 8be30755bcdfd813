"""Atomic, code-free checkpoints: one safetensors file per checkpoint.

Tensors (weights, optimizer moments, RNG states) are stored as safetensors; everything else
(optimizer hyper-parameters, loop position, config, family) is JSON in the file's metadata, with
tensors replaced by ``{"__tensor__": name}`` placeholders. Loading therefore never unpickles
anything. A checkpoint is written through :func:`genlab.core.atomic.atomic_write_bytes`, so a crash
(even SIGKILL) leaves either the old set of checkpoints or the new one, never a half-written file.

Layout: ``RUN_DIR/checkpoints/step_000001234.safetensors``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save as safetensors_bytes

from genlab.core import atomic
from genlab.errors import CheckpointError

FORMAT = "genlab-checkpoint-v1"
_NAME = re.compile(r"^step_(\d{9})\.safetensors$")


def flatten(obj: Any, tensors: dict[str, torch.Tensor], prefix: str) -> Any:
    """JSON-able copy of ``obj`` with tensors moved into ``tensors`` under dotted names."""
    if isinstance(obj, torch.Tensor):
        tensors[prefix] = obj.detach().cpu().contiguous().clone()
        return {"__tensor__": prefix}
    if isinstance(obj, dict):
        if all(isinstance(k, str) for k in obj) and "__tensor__" not in obj:
            return {k: flatten(v, tensors, f"{prefix}.{k}") for k, v in obj.items()}
        return {"__items__": [[k, flatten(v, tensors, f"{prefix}.{k}")] for k, v in obj.items()]}
    if isinstance(obj, tuple):
        return {"__tuple__": [flatten(v, tensors, f"{prefix}.{i}") for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [flatten(v, tensors, f"{prefix}.{i}") for i, v in enumerate(obj)]
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"cannot store {type(obj).__name__} at {prefix} in a checkpoint")


def unflatten(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """Inverse of :func:`flatten`."""
    if isinstance(obj, dict):
        if "__tensor__" in obj:
            return tensors[obj["__tensor__"]]
        if "__items__" in obj:
            return {k: unflatten(v, tensors) for k, v in obj["__items__"]}
        if "__tuple__" in obj:
            return tuple(unflatten(v, tensors) for v in obj["__tuple__"])
        return {k: unflatten(v, tensors) for k, v in obj.items()}
    if isinstance(obj, list):
        return [unflatten(v, tensors) for v in obj]
    return obj


def checkpoint_path(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / "checkpoints" / f"step_{step:09d}.safetensors"


def list_checkpoints(run_dir: Path) -> list[Path]:
    """Complete checkpoints of a run, oldest first (``*.tmp`` leftovers are ignored)."""
    folder = Path(run_dir) / "checkpoints"
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if _NAME.match(p.name))


def save_checkpoint(path: Path, state: dict[str, Any]) -> Path:
    """Write ``state`` (nested dicts/lists of tensors and JSON values) atomically and durably to ``path``."""
    tensors: dict[str, torch.Tensor] = {}
    structure = flatten(state, tensors, "s")
    metadata = {"format": FORMAT, "state": json.dumps(structure)}
    return atomic.atomic_write_bytes(path, safetensors_bytes(tensors, metadata=metadata))


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`; anything else is a :class:`CheckpointError`."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
            found = metadata.get("format")
            if found != FORMAT and str(found).startswith("genlab-checkpoint-"):
                raise CheckpointError(f"{path} was written by another genlab version (checkpoint format {found!r}); "
                                      f"this genlab reads {FORMAT!r}: use the genlab version that wrote it")
            if found != FORMAT:
                raise CheckpointError(f"{path} is not a genlab checkpoint (format {found!r}, expected {FORMAT!r})")
            tensors = {key: f.get_tensor(key) for key in f.keys()}
        return unflatten(json.loads(metadata["state"]), tensors)
    except CheckpointError:
        raise
    except (SafetensorError, OSError, ValueError, KeyError) as exc:
        raise CheckpointError(f"{path} is corrupt or not a safetensors checkpoint: {exc}") from None


def prune_checkpoints(run_dir: Path, keep: int) -> None:
    """Delete all but the newest ``keep`` checkpoints."""
    for old in list_checkpoints(run_dir)[:-keep]:
        old.unlink(missing_ok=True)
