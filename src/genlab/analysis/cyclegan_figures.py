"""The CycleGAN figures of seed report 000, question 2: cycles x → G(x) → F(G(x)) on test images.

:func:`write_cyclegan_figures` writes ``cycle_AtoB.png`` (a → G_A(a) → G_B(G_A(a))) and
``cycle_BtoA.png`` (b → G_B(b) → G_A(G_B(b))) for the first :data:`CYCLE_IMAGES` test images of each
domain; the eight loss curves are drawn for every family from its ``loss_names``.
"""

from __future__ import annotations

from pathlib import Path

import torch

from genlab.data.datasets import load_source
from genlab.schema import Config
from genlab.viz.plots import plot_image_grid_figure

CYCLE_IMAGES = 6
COLUMNS = {"AtoB": ("a", "G_A(a)", "G_B(G_A(a))"), "BtoA": ("b", "G_B(b)", "G_A(G_B(b))")}


def cycle_rows(model, data, n: int) -> dict[str, torch.Tensor]:
    """For the first ``n`` items of an unpaired source, per direction: images ``(3n, 3, S, S)`` in
    [0, 1], rows of input | translation | reconstruction (grey domains shown as RGB)."""
    fixed = data.paired(torch.arange(min(n, len(data))), model.device)
    rows = {}
    for direction, key in (("AtoB", "image"), ("BtoA", "image_b")):
        real = (fixed[key] + 1.0) / 2.0
        there, back = model.cycle(real, direction)
        triple = [x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x for x in (real, there, back)]
        rows[direction] = torch.stack(triple, dim=1).flatten(0, 1).cpu()
    return rows


def write_cyclegan_figures(model, config: Config, out_dir: str | Path) -> list[Path]:
    """Cycle figures of a translation model (``model.cycle(images, direction)``) on fixed test images
    (training images if there is no test split); returns the paths written."""
    out_dir = Path(out_dir)
    data = load_source(config.data, "test", "unpaired") or load_source(config.data, "train", "unpaired")
    return [plot_image_grid_figure(images, 3, out_dir / f"cycle_{direction}.png", title=f"cycle {direction}",
                                   col_labels=list(COLUMNS[direction]))
            for direction, images in cycle_rows(model, data, CYCLE_IMAGES).items()]
