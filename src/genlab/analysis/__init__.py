"""Analyses written into ``RUN_DIR/figures`` after training: the figures of the seed reports.

:data:`FIGURES` maps a family to its figure writer; every family also gets loss curves.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from genlab.analysis.gan_figures import write_gan_figures
from genlab.analysis.vae_figures import write_vae_figures
from genlab.runs import load_run
from genlab.train.logging import read_metrics
from genlab.viz.plots import plot_loss_curves

#: model.family → function(model, config, run_dir) -> list of written figures
FIGURES: dict[str, Callable] = {"vae": write_vae_figures, "cvae": write_vae_figures, "gan": write_gan_figures}

#: model.family → loss keys whose train/test curves are plotted
LOSS_KEYS: dict[str, list[str]] = {"vae": ["recon", "kl", "loss"], "cvae": ["recon", "kl", "loss"],
                                    "gan": ["d_loss", "g_loss", "d_real", "d_fake"]}
#: model.family → y-axis label of the loss curves
LOSS_UNITS: dict[str, str] = {"vae": "nats / image", "cvae": "nats / image"}


def write_figures(run_dir: str | Path) -> list[Path]:
    """Write every analysis figure of a trained run; returns the paths written."""
    run_dir = Path(run_dir)
    config, model, _ = load_run(run_dir)
    family = config.model.family
    out = run_dir / "figures"
    written = [plot_loss_curves(read_metrics(run_dir), LOSS_KEYS.get(family, ["loss"]), out / "loss_curves.png",
                                title=f"{family}: train vs test", ylabel=LOSS_UNITS.get(family))]
    if family in FIGURES:
        written += FIGURES[family](model, config, out)
    return written
