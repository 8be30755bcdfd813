"""Read one run directory into a :class:`RunData` for the report (no HTML here).

What a run directory holds (``config.yaml``, ``checkpoints/``, ``metrics.jsonl``, ``samples/``,
``figures/``, ``eval.json``, ``sources.json``) is read if present; whatever is absent or stale goes into
:attr:`RunData.missing` as a sentence that says how to get it, so a run that was never evaluated, was
stopped in the middle of an epoch or has no figures still makes a report. A folder with neither
``config.yaml`` nor ``checkpoints/`` is not a run: :func:`collect_run` raises a
:class:`~genlab.errors.GenlabError`.

The model is built from the run (:func:`genlab.runs.load_run`: the config stored in the newest
checkpoint, then its weights) for its parameter counts; a run without a checkpoint is built from
``config.yaml``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from genlab import registry
from genlab.config import config_from_dict
from genlab.core.checkpoint import list_checkpoints
from genlab.core.runlog import read_metrics
from genlab.errors import GenlabError
from genlab.runs import load_run

#: ``samples/epoch_0003.png`` (the preview named ``samples``) or ``samples/epoch_0003_AtoB.png``
PREVIEW_NAME = re.compile(r"^epoch_(\d+)(?:_(.+))?\.png$")
#: preview epochs shown per preview name: first, middle and last
PREVIEW_EPOCHS = 3


@dataclass
class RunData:
    """Everything the report shows about one run.

    Attributes:
        path: the run directory.
        config: the run's config as a plain dict (from the newest checkpoint, else ``config.yaml``), or None.
        config_text: that config as YAML (empty if none could be read).
        family: ``model.family`` (None if the config could not be read).
        summary: the family record's one-line summary.
        loss_names, loss_units: the family record's loss curves (what to plot from ``metrics.jsonl``).
        parameters: network name -> parameter count (``model.parameter_counts()``), or None.
        loop: the newest checkpoint's loop position (``epoch``, ``batch``, ``step``), or None.
        history: ``metrics.jsonl``, one record per finished epoch.
        evaluation: ``eval.json`` (``metrics``, ``eval_config``, ``epoch``, ...), or None.
        previews: preview name -> ``[(epoch, png), ...]`` (first, middle and last epochs).
        figures: ``figures/*.png``, sorted by name.
        sources: ``sources.json`` (runs whose weights this run copied), or None.
        missing: one sentence per missing or stale piece, saying how to get it.
    """

    path: Path
    config: dict[str, Any] | None = None
    config_text: str = ""
    family: str | None = None
    summary: str = ""
    loss_names: tuple[str, ...] = ()
    loss_units: str | None = None
    parameters: dict[str, int] | None = None
    loop: dict[str, int] | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    evaluation: dict[str, Any] | None = None
    previews: dict[str, list[tuple[int, Path]]] = field(default_factory=dict)
    figures: list[Path] = field(default_factory=list)
    sources: Any = None
    missing: list[str] = field(default_factory=list)

    @property
    def metrics(self) -> dict[str, Any]:
        """``eval.json``'s metrics without the ``protocol`` record (empty if never evaluated)."""
        found = (self.evaluation or {}).get("metrics") or {}
        return {k: v for k, v in found.items() if k != "protocol"}

    @property
    def protocol(self) -> Any:
        """``eval.json``'s ``protocol`` record (sample count, reference split, extractors, ...), or None."""
        return ((self.evaluation or {}).get("metrics") or {}).get("protocol")


def check_run_dir(path: Path) -> Path:
    """``path`` if it is a run directory (it has ``config.yaml`` or ``checkpoints/``); else a GenlabError."""
    path = Path(path)
    if not path.is_dir():
        raise GenlabError(f"run directory not found: {path}")
    if not (path / "config.yaml").is_file() and not (path / "checkpoints").is_dir():
        raise GenlabError(f"{path} is not a run directory: it has neither config.yaml nor checkpoints/ "
                          "(run directories are written by `genlab train`)")
    return path


def _read_json(path: Path, run: RunData) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        run.missing.append(f"{path.name} could not be read ({exc}); it is left out")
        return None


def _load_model(run: RunData):
    """``(config, model)`` from the newest checkpoint, else built from config.yaml; notes what is missing."""
    if list_checkpoints(run.path):
        try:
            config, model, state = load_run(run.path)
            run.loop = {k: int(v) for k, v in (state.get("loop") or {}).items() if k in ("epoch", "batch", "step")}
            return config, model
        except GenlabError as exc:
            run.missing.append(f"the newest checkpoint could not be loaded ({exc}); the config is read from config.yaml")
    else:
        run.missing.append("no checkpoint: training saved no weights yet (checkpoints/ is empty or absent)")
    try:
        config = config_from_dict(yaml.safe_load((run.path / "config.yaml").read_text()))
        return config, registry.build_model(config)
    except (OSError, GenlabError, yaml.YAMLError, TypeError, ValueError) as exc:
        run.missing.append(f"config.yaml could not be read ({exc}): no config, networks or family")
        return None, None


def _training_progress(run: RunData, config) -> None:
    epochs, loop = config.train.epochs, run.loop
    if loop is None:
        return
    if loop.get("batch", 0) > 0:
        run.missing.append(f"training stopped in the middle of epoch {loop['epoch'] + 1} of {epochs} (after batch "
                           f"{loop['batch']}, step {loop['step']}); continue it with `genlab train CONFIG --run-dir "
                           f"{run.path} --resume`")
    elif loop.get("epoch", 0) < epochs:
        run.missing.append(f"training finished {loop['epoch']} of {epochs} epochs; continue it with "
                           f"`genlab train CONFIG --run-dir {run.path} --resume`")


def _previews(folder: Path) -> dict[str, list[tuple[int, Path]]]:
    found: dict[str, list[tuple[int, Path]]] = {}
    for png in sorted(folder.glob("epoch_*.png")) if folder.is_dir() else []:
        match = PREVIEW_NAME.match(png.name)
        if match:
            found.setdefault(match.group(2) or "samples", []).append((int(match.group(1)), png))
    chosen = {}
    for name, items in found.items():
        items.sort()
        picks = sorted({0, (len(items) - 1) // 2, len(items) - 1})[:PREVIEW_EPOCHS]
        chosen[name] = [items[i] for i in picks]
    return chosen


def collect_run(run_dir: str | Path) -> RunData:
    """Read a run directory (see the module docstring); raises a GenlabError if it is not one."""
    run = RunData(check_run_dir(Path(run_dir)))
    config, model = _load_model(run)
    if config is not None:
        run.config = config.to_dict()
        run.config_text = yaml.safe_dump(run.config, sort_keys=False, allow_unicode=True)
        run.family = config.model.family
        family = registry.get(config.model.family)
        run.summary, run.loss_names, run.loss_units = family.summary, tuple(family.loss_names), family.loss_units
        run.parameters = {k: int(v) for k, v in model.parameter_counts().items()}
        _training_progress(run, config)
    try:
        run.history = read_metrics(run.path)
    except (OSError, ValueError) as exc:
        run.missing.append(f"metrics.jsonl could not be read ({exc})")
    if not run.history:
        run.missing.append("no finished epoch in metrics.jsonl, so no loss curves")
    eval_path = run.path / "eval.json"
    if eval_path.is_file():
        run.evaluation = _read_json(eval_path, run)
        done = (run.loop or {}).get("epoch")
        evaluated = (run.evaluation or {}).get("epoch")
        if run.evaluation is not None and done is not None and evaluated is not None and evaluated != done:
            run.missing.append(f"eval.json is of epoch {evaluated}, the newest checkpoint of epoch {done}: "
                               f"run `genlab eval {run.path}` again")
    else:
        run.missing.append(f"never evaluated (no eval.json): run `genlab eval {run.path}`")
    run.previews = _previews(run.path / "samples")
    if not run.previews:
        run.missing.append("no preview grids (samples/epoch_*.png)")
    run.figures = sorted((run.path / "figures").glob("*.png")) if (run.path / "figures").is_dir() else []
    if not run.figures:
        run.missing.append(f"no analysis figures (figures/*.png): run `genlab figures {run.path}`")
    if (run.path / "sources.json").is_file():
        run.sources = _read_json(run.path / "sources.json", run)
    return run
