"""``genlab eval RUN_DIR``: the family's metrics for a run's newest checkpoint (into ``eval.json``) or a chosen one."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from genlab import registry
from genlab.config import Config, EvalConfig, apply_overrides, from_dict, load_config
from genlab.core.allocator import keep_freed_memory_if
from genlab.core.atomic import atomic_write_text
from genlab.core.checkpoint import checkpoint_path
from genlab.errors import ConfigError, GenlabError
from genlab.eval.gan_metrics import evaluate_folder
from genlab.runs import load_run


def apply_eval_overrides(config: Config, overrides: list[str]) -> None:
    """Set ``eval.*`` overrides on ``config`` in place; any other key is a :class:`ConfigError`."""
    bad = [o for o in overrides if not o.startswith("eval.")]
    if bad:
        raise ConfigError(f"override {bad[0]!r}: genlab eval accepts eval.* keys only "
                          f"({', '.join('eval.' + k for k in EvalConfig.__dataclass_fields__)}); "
                          "its threads are set with --threads")
    if overrides:
        merged = apply_overrides({"eval": config.to_dict()["eval"]}, list(overrides))
        config.eval = from_dict(EvalConfig, merged["eval"], prefix="eval")


def evaluate_samples_folder(folder: str | Path, config_path: str | Path, overrides: list[str] = ()) -> dict[str, Any]:
    """Score a folder of images against the data of the config at ``config_path``
    (:func:`~genlab.eval.gan_metrics.evaluate_folder`); ``overrides``: ``eval.*`` keys. Returns the
    result record (nothing is written)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise GenlabError(f"{folder}: not a directory (--against scores a folder of images)")
    if (folder / "config.yaml").is_file() and (folder / "checkpoints").is_dir():
        raise GenlabError(f"{folder} is a run directory (config.yaml, checkpoints/), not a folder of samples: "
                          f"evaluate the run with `genlab eval {folder}` (without --against), which draws its own samples")
    config = load_config(config_path)
    apply_eval_overrides(config, list(overrides))
    config.data.test_limit = None  # the whole reference split, as for runs
    keep_freed_memory_if(config.train.reuse_freed_memory)
    started = time.perf_counter()
    metrics = evaluate_folder(folder, config)
    return {"samples": str(folder), "against": str(config_path), "data": config.to_dict()["data"],
            "eval_config": config.to_dict()["eval"], "seconds": time.perf_counter() - started, "metrics": metrics}


def eval_output_path(run_dir: str | Path, checkpoint: str | Path | None = None) -> Path:
    """Where :func:`evaluate_run` writes: ``RUN_DIR/eval.json`` for the newest checkpoint,
    ``RUN_DIR/eval_<checkpoint name>.json`` for one chosen with ``checkpoint``."""
    return Path(run_dir) / ("eval.json" if checkpoint is None else f"eval_{Path(checkpoint).stem}.json")


def evaluate_run(run_dir: str | Path, overrides: list[str] = (), checkpoint: str | Path | None = None) -> dict[str, Any]:
    """Evaluate a run's newest checkpoint, or ``checkpoint`` (a file of this run's family, e.g. an
    earlier step kept aside); ``overrides`` may change ``eval.*`` keys only. Writes the result to
    :func:`eval_output_path` and returns it."""
    run_dir = Path(run_dir)
    config, model, state = load_run(run_dir, checkpoint=None if checkpoint is None else Path(checkpoint))
    # named from what was loaded: a training that writes a newer checkpoint meanwhile must not rename the result
    name = Path(checkpoint).name if checkpoint is not None else checkpoint_path(run_dir, state["loop"]["step"]).name
    apply_eval_overrides(config, list(overrides))
    config.data.test_limit = None  # metrics use the whole test split, whatever training used
    family = config.model.family
    metrics_of = registry.get(family).metrics
    if metrics_of is None:
        raise GenlabError(f"family {family!r} defines no metrics (its registry record has metrics=None)")
    keep_freed_memory_if(config.train.reuse_freed_memory)  # as in training: activations not page-faulted in again
    started = time.perf_counter()
    metrics = metrics_of(model, config)
    result = {
        "run": str(run_dir),
        "checkpoint": name,
        **({} if checkpoint is None else {"checkpoint_file": str(Path(checkpoint).resolve())}),
        "epoch": state["loop"]["epoch"],
        "step": state["loop"]["step"],
        "family": family,
        "eval_config": config.to_dict()["eval"],
        "seconds": time.perf_counter() - started,
        "metrics": metrics,
    }
    atomic_write_text(eval_output_path(run_dir, checkpoint), json.dumps(result, indent=2) + "\n")
    return result
