"""Matplotlib figures saved as PNG: loss curves, latent scatter plots, image grids, line plots.

Figures are built as :class:`matplotlib.figure.Figure` objects drawn by the Agg canvas, so no
pyplot state or display is involved and nothing stays open after a function returns. Every
function writes its PNG through :func:`genlab.core.atomic.atomic_write`, creating parent
directories, and returns the path.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.cm import ScalarMappable
from matplotlib.colors import BoundaryNorm, ListedColormap
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from genlab.core.atomic import atomic_write
from genlab.viz.grids import make_grid

DPI = 120


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: str | os.PathLike, dpi: int, tight: bool = False) -> Path:
    """Write ``fig`` as PNG; ``tight``: cropped to what is drawn (long tick labels beside a fixed-aspect
    image grid, which the constrained layout would otherwise clip or pad with empty bands)."""
    extra = {"bbox_inches": "tight", "pad_inches": 0.05} if tight else {}
    try:
        return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=dpi, **extra))
    finally:
        fig.clear()


def _number(value) -> float | None:
    """``value`` as a finite float, or ``None`` when it is missing, non-numeric or not finite."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _float_or_nan(value) -> float:
    number = _number(value)
    return np.nan if number is None else number


def _to_numpy(array) -> np.ndarray:
    if isinstance(array, torch.Tensor):
        array = array.detach().cpu().numpy()
    return np.asarray(array)


def plot_loss_curves(
    history: Sequence[Mapping[str, object]],
    keys: Sequence[str],
    path: str | os.PathLike,
    title: str | None = None,
    ylabel: str | None = None,
    dpi: int = DPI,
) -> Path:
    """Plot per-epoch train and test curves, one subplot per key.

    Args:
        history: one record per epoch, e.g. ``{"epoch": 1, "train/recon": 150.2, "test/recon": 148.1}``.
            ``"epoch"`` defaults to the 1-based record index. Missing, ``None`` and non-finite
            values are skipped.
        keys: metric names without prefix, e.g. ``["recon", "kl", "loss"]``; for each key the
            series ``train/<key>``, ``test/<key>`` and a bare ``<key>`` are drawn when present.
            A key with no value in any record gets no subplot.
        title: figure title. ylabel: y-axis label of every subplot, e.g. ``"nats / image"``.
    """
    panels = []
    for key in keys:
        lines = []
        for name in (f"train/{key}", f"test/{key}", key):
            points = [
                (_number(record.get("epoch", i + 1)), _number(record.get(name)))
                for i, record in enumerate(history)
            ]
            points = [(x, y) for x, y in points if x is not None and y is not None]
            if points:
                lines.append((name.split("/")[0] if "/" in name else name, points))
        if lines:
            panels.append((key, lines))

    ncols = min(max(len(panels), 1), 3)
    nrows = max(math.ceil(len(panels) / ncols), 1)
    fig = _figure(4.2 * ncols, 3.3 * nrows + (0.3 if title else 0.0))
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    markers = {"train": "o", "test": "s"}
    for ax, (key, lines) in zip(axes, panels):
        for label, points in lines:
            xs, ys = zip(*points)
            ax.plot(xs, ys, marker=markers.get(label, "^"), markersize=4, label=label)
        ax.set_title(key)
        ax.set_xlabel("epoch")
        if ylabel:
            ax.set_ylabel(ylabel)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(True, alpha=0.3)
        ax.legend()
    for ax in axes[len(panels) :]:
        ax.axis("off")
    if not panels:
        axes[0].text(0.5, 0.5, "no data for " + ", ".join(keys), ha="center", va="center")
    if title:
        fig.suptitle(title)
    return _save(fig, path, dpi)


def pca_2d(z_fit: np.ndarray, *zs: np.ndarray) -> tuple[np.ndarray, ...]:
    """Project onto the first two principal components of ``z_fit``.

    Args:
        z_fit: ``(N, D)`` with ``D >= 2``; its mean and components define the projection.
        zs: arrays ``(M_i, D)`` to project; when none is given, ``z_fit`` itself is projected.

    Returns:
        one ``(M_i, 2)`` float64 array per input, columns PC1 and PC2. Component signs are fixed
        (largest-magnitude loading positive), so the result is deterministic.
    """
    z_fit = np.asarray(z_fit, dtype=np.float64)
    if z_fit.ndim != 2 or z_fit.shape[1] < 2:
        raise ValueError(f"z_fit must have shape (N, D) with D >= 2, got {z_fit.shape}")
    mean = z_fit.mean(axis=0)
    _, _, vt = np.linalg.svd(z_fit - mean, full_matrices=False)
    components = vt[:2]
    signs = np.sign(components[np.arange(2), np.abs(components).argmax(axis=1)])
    components = components * signs[:, None]
    return tuple((np.asarray(z, dtype=np.float64) - mean) @ components.T for z in (zs or (z_fit,)))


def _class_colours(num_classes: int) -> tuple[ListedColormap, BoundaryNorm]:
    if num_classes <= 10:
        colours = colormaps["tab10"].colors[:num_classes]
    elif num_classes <= 20:
        colours = colormaps["tab20"].colors[:num_classes]
    else:
        colours = colormaps["viridis"](np.linspace(0, 1, num_classes))
    return ListedColormap(colours), BoundaryNorm(np.arange(num_classes + 1) - 0.5, num_classes)


def plot_latent_scatter(
    z_train: np.ndarray,
    y_train: np.ndarray,
    z_test: np.ndarray,
    y_test: np.ndarray,
    path: str | os.PathLike,
    max_points: int = 10000,
    title: str | None = None,
    seed: int = 0,
    dpi: int = DPI,
) -> Path:
    """Scatter latent codes in two panels (train, test), coloured by class label.

    Args:
        z_train, z_test: ``(N, D)`` and ``(M, D)`` latent codes (numpy or torch; ``(N,)`` means D=1).
        y_train, y_test: ``(N,)`` and ``(M,)`` integer labels ``0..K-1`` (tab10 colours, a
            colourbar with ticks ``0..max(9, K-1)``).
        max_points: at most this many points per panel: the first ``max_points`` of a
            permutation drawn with ``seed``, so the subsample is deterministic.

    ``D == 2`` plots ``z1`` against ``z2``. ``D > 2`` plots both splits projected by
    :func:`pca_2d` fitted on all of ``z_train`` (axes ``PC1``, ``PC2``). ``D == 1`` plots ``z1``
    against the label with a fixed vertical jitter.
    """
    splits = []
    for name, z, y in (("train", z_train, y_train), ("test", z_test, y_test)):
        z, y = _to_numpy(z).astype(np.float64), _to_numpy(y).astype(np.int64).ravel()
        z = z.reshape(len(z), -1) if z.ndim != 2 else z
        if len(z) != len(y):
            raise ValueError(f"{name}: {len(z)} codes but {len(y)} labels")
        splits.append((name, z, y))
    dim = splits[0][1].shape[1]
    if splits[1][1].shape[1] != dim:
        raise ValueError(f"train codes have D={dim}, test codes D={splits[1][1].shape[1]}")
    if dim > 2:
        projected = pca_2d(splits[0][1], splits[0][1], splits[1][1])
        splits = [(name, p, y) for (name, _, y), p in zip(splits, projected)]
        axis_labels = ("PC1", "PC2")
    else:
        axis_labels = ("z1", "z2") if dim == 2 else ("z1", "label (jittered)")

    num_classes = max(10, max((int(y.max()) + 1 for _, _, y in splits if len(y)), default=0))
    cmap, norm = _class_colours(num_classes)
    rng = np.random.default_rng(seed)
    fig = _figure(10.5, 4.6 + (0.3 if title else 0.0))
    axes = fig.subplots(1, 2, sharex=True, sharey=True)
    for ax, (name, z, y) in zip(axes, splits):
        keep = rng.permutation(len(z))[:max_points]
        z, shown_y = z[keep], y[keep]
        if dim == 1:
            z = np.column_stack([z[:, 0], shown_y + rng.uniform(-0.35, 0.35, len(z))])
        ax.scatter(z[:, 0], z[:, 1], c=shown_y, cmap=cmap, norm=norm,
                   s=3 if len(z) > 2000 else 10, alpha=0.7, linewidths=0, rasterized=True)
        ax.set_title(f"{name} ({len(z)} of {len(y)} points)")
        ax.set_xlabel(axis_labels[0])
        ax.set_ylabel(axis_labels[1])
        ax.grid(True, alpha=0.3)
    if dim == 1 and num_classes <= 20:
        axes[0].set_yticks(range(num_classes))
    fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=list(axes), label="label",
                 ticks=range(num_classes) if num_classes <= 20 else None)
    if title:
        fig.suptitle(title)
    return _save(fig, path, dpi)


def _tick_indices(n: int) -> np.ndarray:
    return np.arange(n) if n <= 11 else np.unique(np.linspace(0, n - 1, 6).round().astype(int))


def plot_image_grid_figure(
    grid_images: torch.Tensor,
    nrow: int,
    path: str | os.PathLike,
    title: str | None = None,
    xlabel: str | None = None,
    ylabel: str | None = None,
    extent: tuple[float, float, float, float] | None = None,
    row_labels: Sequence[object] | None = None,
    col_labels: Sequence[object] | None = None,
    padding: int = 2,
    dpi: int = DPI,
) -> Path:
    """Show ``make_grid(grid_images, nrow)`` in a figure with title, axis labels and ticks.

    Args:
        grid_images: ``(N, C, H, W)`` float in ``[0, 1]``, ``C`` 1 (grey colormap) or 3.
        nrow: images per grid row.
        extent: ``(x_first, x_last, y_bottom, y_top)`` latent coordinates of the cell centres,
            for a decoded latent grid: columns are labelled ``linspace(x_first, x_last, cols)``
            left to right and rows ``linspace(y_top, y_bottom, rows)`` top to bottom, so image
            row 0 must be the decoding at ``z2 = y_top``.
        row_labels: one tick label per grid row (e.g. ``range(10)`` with ``ylabel="class"``);
            overrides the y ticks of ``extent``.
        col_labels: one tick label per grid column; overrides the x ticks of ``extent``.
        Without ticks of either kind the axes show none.
    """
    grid = make_grid(grid_images, nrow, padding=padding)
    n, _, h, w = grid_images.shape
    cols = min(nrow, n)
    rows = math.ceil(n / cols)
    height_px, width_px = grid.shape[1:]
    image_width = min(max(2.0 * width_px / dpi, 3.0), 9.0)
    image_height = image_width * height_px / width_px
    y_margin = 1.1 if ylabel or row_labels is not None or extent is not None else 0.3
    x_margin = 0.6 if xlabel or col_labels is not None or extent is not None else 0.2
    fig = _figure(image_width + y_margin, image_height + x_margin + (0.4 if title else 0.2))
    ax = fig.subplots()
    if grid.shape[0] == 1:
        ax.imshow(grid[0].numpy(), cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    else:
        ax.imshow(grid.permute(1, 2, 0).numpy(), interpolation="nearest")

    x_centres = padding + np.arange(cols) * (w + padding) + (w - 1) / 2
    y_centres = padding + np.arange(rows) * (h + padding) + (h - 1) / 2
    x_ticks, x_labels, y_ticks, y_labels = [], [], [], []
    if extent is not None:
        x_values = np.linspace(extent[0], extent[1], cols)
        y_values = np.linspace(extent[3], extent[2], rows)
        idx = _tick_indices(cols)
        x_ticks, x_labels = x_centres[idx], [f"{v:.3g}" for v in x_values[idx]]
        idx = _tick_indices(rows)
        y_ticks, y_labels = y_centres[idx], [f"{v:.3g}" for v in y_values[idx]]
    for labels, centres, axis in ((col_labels, x_centres, "x"), (row_labels, y_centres, "y")):
        if labels is not None:
            labels = [str(label) for label in labels]
            if len(labels) != len(centres):
                raise ValueError(f"{axis} labels: {len(labels)} given for {len(centres)} grid {axis}-cells")
            if axis == "x":
                x_ticks, x_labels = centres, labels
            else:
                y_ticks, y_labels = centres, labels
    ax.set_xticks(x_ticks, x_labels, fontsize=8)
    ax.set_yticks(y_ticks, y_labels, fontsize=8)
    if xlabel:
        ax.set_xlabel(xlabel)
    if ylabel:
        ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    return _save(fig, path, dpi, tight=row_labels is not None)


def plot_lines(
    xs: Sequence[float],
    series: Mapping[str, Sequence[float | None]],
    path: str | os.PathLike,
    xlabel: str,
    ylabel: str,
    title: str | None = None,
    logx: bool = False,
    dpi: int = DPI,
) -> Path:
    """Plot several named series against shared ``xs`` (e.g. mean D(real) and D(fake) per epoch).

    Args:
        xs: ``K`` x positions. series: name -> ``K`` values; ``None``/NaN leave a gap.
        logx: logarithmic x axis (for sweeps over learning rates, beta, ...).
    """
    xs = np.asarray([_float_or_nan(x) for x in xs])
    fig = _figure(6.4, 4.2)
    ax = fig.subplots()
    for name, values in series.items():
        if len(values) != len(xs):
            raise ValueError(f"series {name!r} has {len(values)} values for {len(xs)} x positions")
        ys = np.asarray([_float_or_nan(v) for v in values])
        ax.plot(xs, ys, marker="o" if len(xs) <= 40 else None, markersize=4, label=name)
    if logx:
        ax.set_xscale("log")
    elif len(xs) and np.all(np.isfinite(xs)) and np.all(xs == np.round(xs)):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs, latent sizes: no 2.5 ticks
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.grid(True, alpha=0.3)
    if series:
        ax.legend()
    return _save(fig, path, dpi)


def plot_runs_overlaid(
    histories: Mapping[str, Sequence[Mapping[str, object]]],
    key: str,
    path: str | os.PathLike,
    ylabel: str | None = None,
    dpi: int = DPI,
) -> Path:
    """One loss of several runs overlaid: a line per run against the epoch, ``train/<key>`` on the left and
    ``test/<key>`` on the right (when any run has it); a run keeps its colour in both panels.

    Args:
        histories: run label -> its ``metrics.jsonl`` records (``{"epoch": 1, "train/loss": ...}``);
            missing and non-finite values are skipped, a run without the key gets no line.
        key: the loss name without prefix, e.g. ``"loss"`` or ``"d_loss"``.
        ylabel: y-axis label, e.g. ``"nats / image"``.
    """
    splits = [s for s in ("train", "test") if any(_number(r.get(f"{s}/{key}")) is not None
                                                    for h in histories.values() for r in h)] or ["train"]
    fig = _figure(4.8 * len(splits), 3.6)
    axes = fig.subplots(1, len(splits), squeeze=False).ravel()
    colours = colormaps["tab10"] if len(histories) <= 10 else colormaps["tab20"]
    for ax, split in zip(axes, splits):
        epochs: set[float] = set()
        for i, (label, history) in enumerate(histories.items()):
            points = [(_number(r.get("epoch", j + 1)), _number(r.get(f"{split}/{key}"))) for j, r in enumerate(history)]
            points = [(x, y) for x, y in points if x is not None and y is not None]
            if points:
                xs, ys = zip(*points)
                epochs.update(xs)
                ax.plot(xs, ys, marker="o" if len(xs) <= 40 else None, markersize=3, label=label,
                        color=colours(i % colours.N))
        ax.set_title(f"{split}/{key}")
        ax.set_xlabel("epoch")
        if ylabel:
            ax.set_ylabel(ylabel)
        if 0 < len(epochs) <= 12:  # a tick per epoch (one epoch alone would get ticks at 0.95, 0.96, ...)
            ax.set_xticks(sorted(epochs))
        else:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(True, alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize="small")
    return _save(fig, path, dpi)
