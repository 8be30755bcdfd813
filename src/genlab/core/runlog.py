"""Per-run logs: ``metrics.jsonl`` (one JSON record per epoch) and TensorBoard events (scalars per epoch;
at the end of training the config with the final losses, for TensorBoard's HParams view)."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

log = logging.getLogger("genlab")

#: TensorBoard run (sub-folder of ``tensorboard/``) that holds the hyperparameters and final metrics
HPARAMS_RUN = "hparams"


def flatten_hparams(config: dict[str, Any], prefix: str = "") -> dict[str, int | float | str | bool]:
    """A nested config as TensorBoard hyperparameters: dotted keys (``train.lr``) with scalar values;
    ``None`` becomes ``"null"`` and lists their JSON text (HParams takes only numbers, strings and bools)."""
    out: dict[str, int | float | str | bool] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out |= flatten_hparams(value, f"{name}.")
        elif isinstance(value, (bool, int, float, str)):
            out[name] = value
        else:
            out[name] = "null" if value is None else json.dumps(value, default=str)
    return out


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    """All records of ``metrics.jsonl`` (empty if none)."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


class RunLogger:
    """Writes epoch records to ``metrics.jsonl`` and scalars to TensorBoard (rank 0 only).

    On resume from ``step``, records past that step are dropped from ``metrics.jsonl`` and
    TensorBoard purges its events past it, so a resumed run's logs equal an uninterrupted run's.
    """

    def __init__(self, run_dir: Path, enabled: bool, resume_step: int = 0):
        self.enabled = enabled
        self.path = Path(run_dir) / "metrics.jsonl"
        self.writer = None
        if not enabled:
            return
        kept = [r for r in read_metrics(run_dir) if r.get("step", 0) <= resume_step]
        self.path.write_text("".join(json.dumps(r) + "\n" for r in kept))
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(Path(run_dir) / "tensorboard"), purge_step=resume_step or None)

    def scalars(self, values: dict[str, float], step: int) -> None:
        if self.writer is not None:
            for key, value in values.items():
                if isinstance(value, (int, float)) and math.isfinite(value):
                    self.writer.add_scalar(key, value, step)

    def record(self, record: dict[str, Any]) -> None:
        """Append one epoch record and mirror its numbers to TensorBoard."""
        if not self.enabled:
            return
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()
        self.scalars({k: v for k, v in record.items() if k not in ("epoch", "step")}, record["step"])
        self.writer.flush()

    def hparams(self, config: dict[str, Any]) -> None:
        """Log ``config`` (flattened by :func:`flatten_hparams`) with the last epoch's train and test losses
        to TensorBoard's HParams view, so runs compare there (``tensorboard --logdir runs``).

        Written to ``tensorboard/hparams`` at the last step; a resumed run that ends again replaces it.
        """
        if self.writer is None:
            return
        records = read_metrics(self.path.parent)
        last = records[-1] if records else {}
        final = {k: float(v) for k, v in last.items() if k.startswith(("train/", "test/"))
                 and isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}
        folder = Path(self.writer.get_logdir()) / HPARAMS_RUN
        for old in folder.glob("events.out.tfevents.*"):
            old.unlink()
        self.writer.add_hparams(flatten_hparams(config), final, run_name=HPARAMS_RUN, global_step=last.get("step"))
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
