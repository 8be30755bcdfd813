"""``genlab figures RUN_DIR``: loss curves plus the family's analysis figures, into ``RUN_DIR/figures``."""

from __future__ import annotations

from pathlib import Path

from genlab import registry
from genlab.core.runlog import read_metrics
from genlab.runs import load_run
from genlab.viz.plots import plot_loss_curves


def write_figures(run_dir: str | Path) -> list[Path]:
    """Write every analysis figure of a trained run; returns the paths written.

    Which figures: the loss curves of the family's ``loss_names`` (train and test), then whatever
    its record's ``figures`` function draws.
    """
    run_dir = Path(run_dir)
    config, model, _ = load_run(run_dir)
    family = registry.get(config.model.family)
    out = run_dir / "figures"
    written = [plot_loss_curves(read_metrics(run_dir), list(family.loss_names), out / "loss_curves.png",
                                title=f"{family.name}: train vs test", ylabel=family.loss_units)]
    if family.figures is not None:
        written += family.figures(model, config, out)
    return written
