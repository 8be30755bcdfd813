"""``genlab eval RUN_DIR``: the family's metrics for a run's newest checkpoint, into ``eval.json``."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from genlab.config import Config, EvalConfig, apply_overrides, from_dict, load_config
from genlab.errors import ConfigError, GenlabError
from genlab.eval.gan_metrics import evaluate_folder, evaluate_gan
from genlab.eval.vae_metrics import evaluate_vae
from genlab.runs import latest_checkpoint, load_run

#: model.family → function(model, config) -> flat dict of metrics
METRICS: dict[str, Callable] = {"vae": evaluate_vae, "cvae": evaluate_vae, "gan": evaluate_gan}


def apply_eval_overrides(config: Config, overrides: list[str]) -> None:
    """Set ``eval.*`` overrides on ``config`` in place; any other key is a :class:`ConfigError`."""
    bad = [o for o in overrides if not o.startswith("eval.")]
    if bad:
        raise ConfigError(f"override {bad[0]!r}: genlab eval accepts eval.* keys only "
                          f"({', '.join('eval.' + k for k in EvalConfig.__dataclass_fields__)})")
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
    config = load_config(config_path)
    apply_eval_overrides(config, list(overrides))
    config.data.test_limit = None  # the whole reference split, as for runs
    started = time.perf_counter()
    metrics = evaluate_folder(folder, config)
    return {"samples": str(folder), "against": str(config_path), "data": config.to_dict()["data"],
            "eval_config": config.to_dict()["eval"], "seconds": time.perf_counter() - started, "metrics": metrics}


def evaluate_run(run_dir: str | Path, overrides: list[str] = ()) -> dict[str, Any]:
    """Evaluate a run; ``overrides`` may change ``eval.*`` keys only. Writes and returns ``eval.json``."""
    run_dir = Path(run_dir)
    config, model, state = load_run(run_dir)
    apply_eval_overrides(config, list(overrides))
    config.data.test_limit = None  # metrics use the whole test split, whatever training used
    family = config.model.family
    if family not in METRICS:
        raise GenlabError(f"no metrics are defined for family {family!r} yet")
    started = time.perf_counter()
    metrics = METRICS[family](model, config)
    result = {
        "run": str(run_dir),
        "checkpoint": latest_checkpoint(run_dir).name,
        "epoch": state["loop"]["epoch"],
        "step": state["loop"]["step"],
        "family": family,
        "eval_config": config.to_dict()["eval"],
        "seconds": time.perf_counter() - started,
        "metrics": metrics,
    }
    tmp = run_dir / "eval.json.tmp"
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    os.replace(tmp, run_dir / "eval.json")
    return result
