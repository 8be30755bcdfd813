"""Comparing runs: which way a metric is better, the comparison table, the config keys that differ.

:func:`metric_direction` decides from a metric's name whether lower or higher is better:

* not ranked (None): spreads and counts that describe a number rather than score the model (``*_std``,
  ``*_se``, ``*_stderr``, ``*images``, ``*samples``, ``seconds``, ``time/...``), and reference values that
  are the same for every model on that data: the ``*_input`` baselines of translation metrics (the
  untranslated input) and the ceiling and floor of R-precision (``*_real``, ``*_shuffled``);
* lower is better: distances, errors and losses — ``fid``, ``kid``, ``nll``, ``neg_elbo``, ``recon``,
  ``l1``, ``l2``, ``mse``, ``mae``, ``lpips``, ``loss``, ``error``;
* higher is better: ``ssim``, ``psnr``, ``accuracy``, ``precision``, ``recall``, ``is`` (Inception
  Score), ``r_precision``, ``kept`` (share of reconstructions that keep their label), ``elbo``;
* anything else (``kl``, ``d_real`` ...) is not ranked.

Names are split into lower-case words at every character that is not a letter or digit
(``fid_AtoB`` → ``fid``, ``atob``); the last word decides if it is in a list (``recon_label_kept``:
higher), else the first word that is.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from genlab.report.collect import RunData

LOWER_IS_BETTER = frozenset({"fid", "kid", "nll", "recon", "l1", "l2", "mse", "mae", "lpips", "loss", "error"})
HIGHER_IS_BETTER = frozenset({"ssim", "psnr", "accuracy", "acc", "precision", "recall", "is", "kept", "elbo"})
NOT_RANKED_SUFFIXES = ("std", "se", "stderr", "images", "samples", "input", "real", "shuffled", "seconds", "s")


def metric_direction(name: str) -> str | None:
    """``"lower"``, ``"higher"`` or None (not ranked) for a metric name; see the module docstring."""
    words = [w for w in re.split(r"[^a-z0-9]+", name.lower()) if w]
    if not words or words[-1] in NOT_RANKED_SUFFIXES or words[0] == "time" or "iw" in words:
        return None
    if "neg" in words and "elbo" in words:
        return "lower"
    for word in (words[-1], *words):  # the last word qualifies the others: recon_label_kept is a share kept
        if word in LOWER_IS_BETTER:
            return "lower"
        if word in HIGHER_IS_BETTER:
            return "higher"
    return None


def is_number(value: Any) -> bool:
    """A finite int or float (not a bool)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def format_value(value: Any) -> str:
    """A table cell: ints with thousands separators, floats to 4 significant digits, text as is."""
    if isinstance(value, bool) or value is None:
        return "—" if value is None else str(value).lower()
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.4g}" if math.isfinite(value) else str(value)
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


def flatten(config: dict[str, Any] | None, prefix: str = "") -> dict[str, Any]:
    """``{"train": {"lr": 1e-3}}`` → ``{"train.lr": 1e-3}`` (lists stay values)."""
    out: dict[str, Any] = {}
    for key, value in (config or {}).items():
        if isinstance(value, dict):
            out |= flatten(value, f"{prefix}{key}.")
        else:
            out[f"{prefix}{key}"] = value
    return out


def differing_keys(configs: Sequence[dict[str, Any] | None]) -> list[str]:
    """Dotted config keys whose value is not the same in every config (absent counts as a value)."""
    flat = [flatten(c) for c in configs]
    keys = list(dict.fromkeys(k for f in flat for k in f))
    return [k for k in keys
            if len({json.dumps(f[k], sort_keys=True, default=str) if k in f else "<absent>" for f in flat}) > 1]


def unique_labels(paths: Sequence[Path]) -> list[str]:
    """Short names for runs: each directory's name, with as many parent folders as it takes to tell
    them apart (``ablation/lsgan/seed0`` and ``ablation/hinge/seed0``)."""
    parts = [Path(p).resolve().parts for p in paths]
    depth = 1
    while True:
        labels = ["/".join(p[-depth:]) for p in parts]
        if len(set(labels)) == len(labels) or depth >= max(len(p) for p in parts):
            return labels
        depth += 1


@dataclass
class Comparison:
    """The comparison table: a row per run, the metrics then the differing config keys as columns.

    Attributes:
        config_keys: dotted config keys whose values differ between the runs.
        metric_keys: numeric metrics of any run's ``eval.json``, in first-seen order.
        directions: metric -> ``"lower"``, ``"higher"`` or None (see :func:`metric_direction`).
        rows: one per run: ``{"label", "anchor", "config": [cell], "metrics": [(cell, is_best)]}``.
        shared_losses: loss names that at least two runs logged (overlaid curves).
    """

    config_keys: list[str]
    metric_keys: list[str]
    directions: dict[str, str | None]
    rows: list[dict[str, Any]] = field(default_factory=list)
    shared_losses: list[str] = field(default_factory=list)


def best_values(runs: Sequence[RunData], key: str, direction: str | None) -> float | None:
    """The best value of metric ``key`` among the runs that have it, if at least two do and it is ranked."""
    values = [r.metrics[key] for r in runs if is_number(r.metrics.get(key))]
    if direction is None or len(values) < 2:
        return None
    return min(values) if direction == "lower" else max(values)


def compare(runs: Sequence[RunData], labels: Sequence[str]) -> Comparison:
    """The :class:`Comparison` of ``runs`` (labelled ``labels``)."""
    config_keys = differing_keys([r.config for r in runs])
    metric_keys = list(dict.fromkeys(k for r in runs for k, v in r.metrics.items() if is_number(v)))
    directions = {k: metric_direction(k) for k in metric_keys}
    best = {k: best_values(runs, k, directions[k]) for k in metric_keys}
    table = Comparison(config_keys, metric_keys, directions)
    for index, (run, label) in enumerate(zip(runs, labels), start=1):
        flat = flatten(run.config)
        cells = []
        for key in metric_keys:
            value = run.metrics.get(key)
            cells.append((format_value(value) if is_number(value) else "—", is_number(value) and value == best[key]))
        table.rows.append({"label": label, "anchor": f"run-{index}", "evaluated": run.evaluation is not None,
                           "config": [("null" if flat[k] is None else format_value(flat[k])) if k in flat else "—"
                                      for k in config_keys], "metrics": cells})
    logged = [{k for k in run.loss_names if any(f"train/{k}" in r or f"test/{k}" in r for r in run.history)}
              for run in runs]
    names = list(dict.fromkeys(k for run in runs for k in run.loss_names))
    table.shared_losses = [k for k in names if sum(k in found for found in logged) >= 2]
    return table
