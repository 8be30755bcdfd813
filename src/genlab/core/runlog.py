"""Per-run logs: ``metrics.jsonl`` (one JSON record per epoch) and TensorBoard events."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

log = logging.getLogger("genlab")


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

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
