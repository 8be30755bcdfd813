"""Visualisation: image grids written as PNG (:mod:`.grids`) and matplotlib figures (:mod:`.plots`)."""

from genlab.viz.grids import grid_to_uint8, make_grid, save_image_grid, side_by_side
from genlab.viz.plots import (
    pca_2d,
    plot_image_grid_figure,
    plot_latent_scatter,
    plot_lines,
    plot_loss_curves,
)

__all__ = [
    "grid_to_uint8",
    "make_grid",
    "pca_2d",
    "plot_image_grid_figure",
    "plot_latent_scatter",
    "plot_lines",
    "plot_loss_curves",
    "save_image_grid",
    "side_by_side",
]
