"""The GAN analyses (issue 3; seed report 001): discriminator outputs, fixed-noise samples, interpolations.

* ``d_outputs.png`` — mean D(real) and D(fake) per epoch from ``metrics.jsonl`` (train), with
  D(real) on held-out test images; probabilities sigmoid(D) for the ``bce`` loss, raw scores for
  ``lsgan``/``hinge`` (as :meth:`genlab.models.gan.GAN.train_step` logs them);
* ``samples_fixed_noise.png`` — an 8×8 grid from a fixed latent batch (:data:`FIGURE_SEED`), so
  the same run always gives the same grid and runs of one config can be compared image by image;
* ``latent_interpolation.png`` — for random latent pairs ``z0 → z1``, one row of linear
  interpolation and, below it, one of spherical interpolation (slerp; White 2016, "Sampling
  generative networks", §2.1: under a Gaussian prior the straight line's midpoints have norms far
  below the typical ``sqrt(D)``, where the generator was rarely trained; slerp keeps them there).

Samples come from the EMA generator when ``model.ema_decay`` is set, like :meth:`GAN.sample`.
"""

from __future__ import annotations

from pathlib import Path

import torch

from genlab.core.runlog import read_metrics
from genlab.schema import Config
from genlab.viz.plots import plot_image_grid_figure, plot_lines

FIGURE_SEED = 1234
#: latent pairs in the interpolation figure (two rows each) and images per row
INTERPOLATION_PAIRS, INTERPOLATION_STEPS = 4, 10


def lerp(z0: torch.Tensor, z1: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Straight line: ``(P, D)`` endpoints and ``(T,)`` fractions in [0, 1] → ``(P, T, D)``."""
    t = t.view(1, -1, 1)
    return z0[:, None] + t * (z1 - z0)[:, None]


def slerp(z0: torch.Tensor, z1: torch.Tensor, t: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Spherical interpolation (Shoemake 1985): ``(P, D)`` endpoints, ``(T,)`` fractions → ``(P, T, D)``.

    ``sin((1-t)Ω)/sin Ω · z0 + sin(tΩ)/sin Ω · z1`` with Ω the angle between ``z0`` and ``z1``;
    the norm moves smoothly between ``|z0|`` and ``|z1|`` instead of dipping towards 0 midway.
    Nearly parallel pairs (``sin Ω < eps``) fall back to :func:`lerp`.
    """
    cos = torch.nn.functional.cosine_similarity(z0, z1, dim=1).clamp(-1.0, 1.0)
    omega = torch.arccos(cos).view(-1, 1, 1)
    sin = torch.sin(omega)
    t = t.view(1, -1, 1)
    safe = sin.abs() > eps
    w0 = torch.where(safe, torch.sin((1 - t) * omega) / sin.where(safe, 1.0), 1 - t)
    w1 = torch.where(safe, torch.sin(t * omega) / sin.where(safe, 1.0), t)
    return w0 * z0[:, None] + w1 * z1[:, None]


def _score_label(config: Config) -> str:
    if config.model.loss == "bce":
        return "mean D output, sigmoid(D) (probability 'real')"
    return f"mean D score (raw, {config.model.loss} loss)"


def plot_d_outputs(run_dir: Path, config: Config, path: Path) -> Path:
    """Mean D(real) and D(fake) per epoch (train), and D(real) on test images, from ``metrics.jsonl``."""
    history = read_metrics(run_dir)
    epochs = [record.get("epoch", i + 1) for i, record in enumerate(history)]
    names = {"train/d_real": "D(real), train", "train/d_fake": "D(fake), train", "test/d_real": "D(real), test"}
    series = {label: [record.get(key) for record in history] for key, label in names.items()
              if any(record.get(key) is not None for record in history)}
    title = "discriminator outputs per epoch"
    if config.model.loss == "bce":
        title += " (0.5 = D cannot tell)"
    return plot_lines(epochs, series, path, xlabel="epoch", ylabel=_score_label(config), title=title)


def interpolation_latents(latent_dim: int, pairs: int = INTERPOLATION_PAIRS, steps: int = INTERPOLATION_STEPS,
                          seed: int = FIGURE_SEED) -> torch.Tensor:
    """``(2 * pairs * steps, latent_dim)``: per pair of N(0, I) draws, a lerp row then a slerp row."""
    generator = torch.Generator().manual_seed(seed)
    z0 = torch.randn(pairs, latent_dim, generator=generator)
    z1 = torch.randn(pairs, latent_dim, generator=generator)
    t = torch.linspace(0.0, 1.0, steps)
    rows = torch.stack([lerp(z0, z1, t), slerp(z0, z1, t)], dim=1)  # (P, 2, T, D)
    return rows.reshape(-1, latent_dim)


def write_gan_figures(model, config: Config, out: Path) -> list[Path]:
    """Write the GAN figures into ``out`` (= ``RUN_DIR/figures``); returns the paths.

    ``out.parent`` is the run directory whose ``metrics.jsonl`` gives the D outputs.
    """
    out = Path(out)
    written = [plot_d_outputs(out.parent, config, out / "d_outputs.png")]
    side = 8
    generator = torch.Generator().manual_seed(FIGURE_SEED)
    z = torch.randn(side * side, config.model.latent_dim, generator=generator)
    ema = " (EMA generator)" if config.model.ema_decay is not None else ""
    written.append(plot_image_grid_figure(model.generate(z).cpu(), side, out / "samples_fixed_noise.png",
                                          title=f"{side}×{side} samples from fixed noise (seed {FIGURE_SEED}){ema}"))
    z_rows = interpolation_latents(config.model.latent_dim)
    row_labels = [kind for _ in range(INTERPOLATION_PAIRS) for kind in ("lerp", "slerp")]
    steps = INTERPOLATION_STEPS
    col_labels = [f"{t:.2g}" for t in torch.linspace(0.0, 1.0, steps).tolist()]
    written.append(plot_image_grid_figure(model.generate(z_rows).cpu(), steps, out / "latent_interpolation.png",
                                          title=f"z0 → z1 for {INTERPOLATION_PAIRS} random pairs: linear, then spherical",
                                          xlabel="t", ylabel="interpolation", row_labels=row_labels,
                                          col_labels=col_labels))
    return written

