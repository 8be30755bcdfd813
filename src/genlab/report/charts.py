"""The report's pictures as ``data:`` URIs: PNG files of the run, and loss curves drawn for the report.

Every picture is embedded (base64), so the report is one file that loads nothing. Curves are drawn
from ``metrics.jsonl`` by :func:`genlab.viz.plots.plot_loss_curves` (one run: train and test of each of
its family's ``loss_names``) and :func:`genlab.viz.plots.plot_runs_overlaid` (several runs: a line per
run for each loss name they share), into a temporary folder.
"""

from __future__ import annotations

import base64
import tempfile
from collections.abc import Sequence
from pathlib import Path

from genlab.report.collect import RunData
from genlab.viz.plots import plot_loss_curves, plot_runs_overlaid


def png_data_uri(path: str | Path) -> str:
    """``data:image/png;base64,...`` of a PNG file."""
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def loss_curves_uri(run: RunData, label: str) -> str | None:
    """The run's loss curves (train and test per loss name of its family), or None without history."""
    if not run.history or not run.loss_names:
        return None
    with tempfile.TemporaryDirectory(prefix="genlab-report-") as tmp:
        path = plot_loss_curves(run.history, list(run.loss_names), Path(tmp) / "loss_curves.png",
                                title=f"{label}: train vs test", ylabel=run.loss_units)
        return png_data_uri(path)


def overlaid_uris(runs: Sequence[RunData], labels: Sequence[str], names: Sequence[str]) -> list[tuple[str, str]]:
    """``[(loss name, data URI)]``: for each name, one figure with a line per run that logged it."""
    out = []
    with tempfile.TemporaryDirectory(prefix="genlab-report-") as tmp:
        for i, name in enumerate(names):
            histories = {label: run.history for run, label in zip(runs, labels) if name in run.loss_names}
            units = {run.loss_units for run in runs if name in run.loss_names}
            path = plot_runs_overlaid(histories, name, Path(tmp) / f"overlay_{i}.png",
                                      ylabel=units.pop() if len(units) == 1 else None)
            out.append((name, png_data_uri(path)))
    return out
