"""StackGAN figures (``genlab figures RUN_DIR``; loss curves come from the family's ``loss_names``).

* ``caption_samples.png`` — 8 test captions (row labels): the real image of the caption, then 7
  samples with fixed noise (:data:`FIGURE_SEED`);
* ``caption_interpolation.png`` — the caption embedding moved linearly from one test caption to
  another (φ = (1 − t)·φ_a + t·φ_b) with the noise z and the CA's ε fixed per row, as the
  paper's sentence-interpolation figure (§4.3, Fig. 8);
* ``stages.png`` (Stage-II runs) — for the same captions and noise, Stage-I images (enlarged)
  beside their Stage-II refinements.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from genlab.data.captioned import load_captioned_source
from genlab.schema import Config
from genlab.viz.plots import plot_image_grid_figure

FIGURE_SEED = 1234
CAPTIONS, SAMPLES, STEPS, INTERPOLATION_ROWS = 8, 7, 10, 4


def _short(text: str, width: int = 36) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _fit(images: torch.Tensor, size, mode: str = "nearest") -> torch.Tensor:
    if images.shape[-2:] == size:
        return images
    if mode == "nearest":
        return F.interpolate(images, size=size, mode="nearest")
    return F.interpolate(images, size=size, mode="bilinear", antialias=True).clamp(0, 1)


@torch.no_grad()
def write_stackgan_figures(model, config: Config, out: Path) -> list[Path]:
    """Write the StackGAN figures into ``out`` (= ``RUN_DIR/figures``); returns the paths."""
    out = Path(out)
    source = load_captioned_source(config.data, "test") or load_captioned_source(config.data, "train")
    k = min(CAPTIONS, len(source))
    index = torch.linspace(0, len(source) - 1, k).round().long()
    captions = [source.captions[int(i)][0] for i in index]
    embedding = source.embeddings[index, 0]
    generator = torch.Generator().manual_seed(FIGURE_SEED)
    low, final = model.generate(embedding.repeat_interleave(SAMPLES, dim=0), generator, stages=True)
    size = final.shape[-2:]
    real = _fit(source.data.images[index].float().div(255.0), size, "bilinear")
    grid = torch.cat([real[:, None], final.cpu().view(k, SAMPLES, *final.shape[1:])], dim=1).flatten(0, 1)
    written = [plot_image_grid_figure(grid, SAMPLES + 1, out / "caption_samples.png",
                                      title="test captions: real image, then samples", row_labels=map(_short, captions),
                                      col_labels=["real", *range(1, SAMPLES + 1)])]

    a, b = embedding[0], embedding[k // 2] if k > 1 else embedding[0]
    t = torch.linspace(0.0, 1.0, STEPS)
    path = (1 - t)[:, None] * a[None] + t[:, None] * b[None]  # (STEPS, D)
    m = config.model
    z = torch.randn(INTERPOLATION_ROWS, m.z_dim, generator=generator).repeat_interleave(STEPS, dim=0)
    eps = torch.randn(INTERPOLATION_ROWS, m.c_dim, generator=generator).repeat_interleave(STEPS, dim=0)
    images = model.generate(path.repeat(INTERPOLATION_ROWS, 1), torch.Generator().manual_seed(FIGURE_SEED),
                            z=z, eps=eps, eps1=eps)  # Stage-II: the same ε for both CAs, fixed per row
    written.append(plot_image_grid_figure(images.cpu(), STEPS, out / "caption_interpolation.png",
                                          title=f"“{_short(captions[0], 30)}” → “{_short(captions[k // 2], 30)}”",
                                          xlabel="t (caption embedding)", ylabel="fixed noise",
                                          col_labels=[f"{v:.2g}" for v in t.tolist()],
                                          row_labels=range(1, INTERPOLATION_ROWS + 1)))
    if low is not None:
        pairs = 3
        low_up = _fit(low.cpu(), size).view(k, SAMPLES, *final.shape[1:])[:, :pairs]
        high = final.cpu().view(k, SAMPLES, *final.shape[1:])[:, :pairs]
        grid = torch.cat([real[:, None], torch.stack([low_up, high], dim=2).flatten(1, 2)], dim=1).flatten(0, 1)
        written.append(plot_image_grid_figure(grid, 1 + 2 * pairs, out / "stages.png",
                                              title="Stage-I (enlarged) → Stage-II, same noise",
                                              row_labels=map(_short, captions),
                                              col_labels=["real", *(["I", "II"] * pairs)]))
    return written
