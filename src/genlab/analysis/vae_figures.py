"""The seed report's VAE/CVAE analyses (report 000, question 1).

* latent scatter of train and test means coloured by label (PCA when the latent has > 2 dims);
* a 10×10 grid decoded over ``[-r, r]^2`` (``model.latent_range``; the seed uses r = 1);
* 100 test digits above their reconstructions;
* CVAE: one row per class from the same 10 latent draws, and latent interpolations per class.
"""

from __future__ import annotations

from pathlib import Path

import torch

from genlab.data.datasets import load_split
from genlab.data.sources import ImageTensors, iterate_eval_batches, make_batch
from genlab.errors import GenlabError
from genlab.schema import Config
from genlab.viz.grids import side_by_side
from genlab.viz.plots import plot_image_grid_figure, plot_latent_scatter

FIGURE_SEED = 1234


@torch.no_grad()
def encode_means(model, data: ImageTensors, config: Config, limit: int = 10000) -> tuple[torch.Tensor, torch.Tensor]:
    """Posterior means ``(N, D)`` and labels ``(N,)`` of the first ``limit`` images."""
    generator = torch.Generator().manual_seed(FIGURE_SEED)
    subset = ImageTensors(data.images[:limit], data.labels[:limit], data.num_classes)
    means = []
    for index in iterate_eval_batches(subset, 1000):
        batch = make_batch(subset, index, config.data, model.device, generator)
        means.append(model.encode(batch["image"], batch.get("label"))[0].float().cpu())
    return torch.cat(means), subset.labels


@torch.no_grad()
def decode_probs(model, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
    """Bernoulli means ``(N, C, S, S)`` in [0, 1] for latents ``z`` (and labels for a CVAE)."""
    return torch.sigmoid(model.decode(z.to(model.device), None if labels is None else labels.to(model.device))).float().cpu()


def latent_grid(latent_dim: int, r: float, n: int = 10) -> torch.Tensor:
    """``(n*n, D)`` latents: z1 from -r to r left to right, z2 from r to -r top to bottom, other dims 0."""
    values = torch.linspace(-r, r, n)
    z = torch.zeros(n * n, latent_dim)
    z[:, 0] = values.repeat(n)
    if latent_dim > 1:
        z[:, 1] = values.flip(0).repeat_interleave(n)
    return z


def write_vae_figures(model, config: Config, out: Path) -> list[Path]:
    """Write the VAE (and CVAE) figures into ``out``; returns the paths."""
    train, test = load_split(config.data, "train"), load_split(config.data, "test")
    if train is None:
        raise GenlabError(f"data.name={config.data.name}: no training images"
                          f"{f' in data.root={config.data.root} (moved?)' if config.data.root else ''}; "
                          "the figures encode them")
    m, written = config.model, []
    conditional = model.num_classes > 0
    if train.labels is not None and test is not None and test.labels is not None:
        z_train, y_train = encode_means(model, train, config)
        z_test, y_test = encode_means(model, test, config)
        written.append(plot_latent_scatter(z_train.numpy(), y_train.numpy(), z_test.numpy(), y_test.numpy(),
                                           out / "latent_scatter.png",
                                           title=f"{m.family} posterior means (latent {m.latent_dim}-D)"))
    r = m.latent_range
    if not conditional:
        z = latent_grid(m.latent_dim, r)
        note = "" if m.latent_dim == 2 else f" (other {m.latent_dim - 2} dims 0)" if m.latent_dim > 2 else ""
        written.append(plot_image_grid_figure(decode_probs(model, z), 10, out / "latent_grid.png",
                                              title=f"decoded latent grid over [-{r:g}, {r:g}]²{note}",
                                              xlabel="z1", ylabel="z2", extent=(-r, r, -r, r)))
    if test is not None:
        generator = torch.Generator().manual_seed(FIGURE_SEED)
        subset = ImageTensors(test.images[:100], None if test.labels is None else test.labels[:100])
        batch = make_batch(subset, torch.arange(len(subset)), config.data, model.device, generator)
        with torch.no_grad():
            mu, _ = model.encode(batch["image"], batch.get("label"))
        recon = decode_probs(model, mu, batch.get("label"))
        written.append(plot_image_grid_figure(side_by_side(batch["image"].float().cpu(), recon), 10,
                                              out / "reconstructions.png",
                                              title="test images (odd rows) and their reconstructions (even rows)"))
    if conditional:
        written += _class_figures(model, config, out)
    return written


def _class_figures(model, config: Config, out: Path) -> list[Path]:
    """CVAE: 10 latent draws decoded for every class; straight-line latent interpolations per class."""
    k, d, r = model.num_classes, config.model.latent_dim, config.model.latent_range
    generator = torch.Generator().manual_seed(FIGURE_SEED)
    z = torch.randn(10, d, generator=generator).repeat(k, 1)
    labels = torch.arange(k).repeat_interleave(10)
    class_grid = plot_image_grid_figure(decode_probs(model, z, labels), 10, out / "class_grid.png",
                                        title="one row per class; column j uses the same z_j",
                                        ylabel="class", row_labels=list(range(k)))
    # Straight line from (-r, r, 0, ...) to (r, -r, 0, ...): across the latent square's diagonal.
    t = torch.linspace(0, 1, 10).view(1, 10, 1)
    start, end = torch.zeros(k, 1, d), torch.zeros(k, 1, d)
    start[..., 0], end[..., 0] = -r, r
    if d > 1:
        start[..., 1], end[..., 1] = r, -r
    z_line = (start + t * (end - start)).reshape(-1, d)
    interp = plot_image_grid_figure(decode_probs(model, z_line, labels), 10, out / "interpolations.png",
                                    title=f"interpolation from z=({-r:g}, {r:g}) to z=({r:g}, {-r:g}) per class",
                                    ylabel="class", row_labels=list(range(k)))
    return [class_grid, interp]
