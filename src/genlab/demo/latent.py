"""The latent explorer and the seed interpolation of the web demo (families with the ``latent`` ability).

A model with the ``latent`` ability decodes any latent ``z`` ``(N, config.model.latent_dim)`` of its
prior N(0, I) with ``model.decode_latent(z, cond)`` (VAE, CVAE, GAN). Here, on tensors and ``uint8``
arrays (no Gradio):

* **2-D latents**: :func:`latent_plane` decodes a grid of :data:`PLANE_CELLS`² points over
  ``[-LATENT_RANGE, LATENT_RANGE]²`` (the prior's ±3σ) into one picture; a click on it is turned into
  ``(z1, z2)`` by :func:`point_from_click`, and :func:`explore` decodes that point and marks it on the plane.
  The plane's pixel columns map linearly to z1 (left to right) and its rows to z2 (bottom to top), so
  a cell shows the image of the point at its centre.
* **larger latents**: one value per slider for the first :data:`MAX_SLIDERS` dimensions; the others stay at
  the prior's mean, 0.
* **interpolation** (:func:`interpolation_strip`): frames from the latent of one seed to another's along the
  great circle between them (spherical interpolation, White 2016, "Sampling Generative Networks", §2.1:
  linear paths through a high-dimensional Gaussian pass where the prior has little mass). A seed's
  latent is ``torch.randn(1, latent_dim)`` of that seed, so the first and last frames are the images
  ``genlab sample RUN --n 1 --seed A`` and ``--seed B`` draw.

Conditional models (CVAE) need a class for every decode. Inputs are checked by
:mod:`genlab.demo.runs`; the ``*_callback`` functions turn a :class:`~genlab.errors.GenlabError` into a
status message for the UI.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from genlab.demo.runs import MAX_SEED, DemoRun, class_label, enlarge, to_display, whole_number
from genlab.errors import GenlabError
from genlab.viz.grids import grid_to_uint8, make_grid

#: sliders and the plane span [-r, r] in every dimension: the prior N(0, 1)'s ±3σ (99.7 % of its mass)
LATENT_RANGE = 3.0
#: the 2-D plane decodes this many points per axis
PLANE_CELLS = 15
#: sliders shown for larger latents (the first dimensions; the others stay at 0)
MAX_SLIDERS = 8
#: most frames of one interpolation strip
MAX_FRAMES = 16
#: the marker drawn on the plane at the current point (RGB)
MARKER_COLOUR = (230, 30, 30)


def latent_dim(run: DemoRun) -> int:
    """The run's latent size (``config.model.latent_dim``)."""
    return int(run.config.model.latent_dim)


def slider_count(run: DemoRun) -> int:
    """How many latent sliders the explorer shows: every dimension up to :data:`MAX_SLIDERS`."""
    return min(latent_dim(run), MAX_SLIDERS)


def _label_tensor(run: DemoRun, label: Any, n: int) -> torch.Tensor | None:
    checked = class_label(run, label, required=bool(run.num_classes))
    return None if checked is None else torch.full((n,), checked, dtype=torch.int64)


def latent_point(run: DemoRun, values: Sequence[Any]) -> torch.Tensor:
    """``(1, latent_dim)`` with ``values`` in the first dimensions and 0 in the others.

    Raises:
        GenlabError: more values than dimensions, or a value that is not a finite number in
            ``[-LATENT_RANGE, LATENT_RANGE]``.
    """
    dim = latent_dim(run)
    if len(values) > dim:
        raise GenlabError(f"the latent of {run.title} has {dim} dimension(s); got {len(values)} values")
    z = torch.zeros(1, dim)
    for i, value in enumerate(values):
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = math.nan
        if not (math.isfinite(number) and abs(number) <= LATENT_RANGE):
            raise GenlabError(f"z{i + 1}: got {value!r}; allowed: a number from {-LATENT_RANGE:g} to {LATENT_RANGE:g}")
        z[0, i] = number
    return z


def decode_point(run: DemoRun, values: Sequence[Any], label: Any = None) -> np.ndarray:
    """The image of the latent point ``values`` (first dimensions; the rest 0): ``uint8`` ``(S, S[, 3])``."""
    z = latent_point(run, values)
    return to_display(run.model.decode_latent(z, _label_tensor(run, label, 1)).cpu())


def latent_plane(run: DemoRun, label: Any = None, cells: int = PLANE_CELLS) -> np.ndarray:
    """The decoded 2-D latent plane: ``cells × cells`` images without padding, RGB ``uint8``
    ``(cells·S, cells·S, 3)``; cell ``(row, col)`` shows the point ``z1 = -r + 2r (col + ½)/cells``,
    ``z2 = r - 2r (row + ½)/cells`` (``r`` = :data:`LATENT_RANGE`). Computed once per class (cached on the run).

    Raises:
        GenlabError: the latent is not 2-D, or a conditional model gets no valid class.
    """
    if latent_dim(run) != 2:
        raise GenlabError(f"the latent plane needs a 2-D latent; {run.title} has {latent_dim(run)} dimensions")
    labels = _label_tensor(run, label, cells * cells)
    key = ("plane", cells, None if labels is None else int(labels[0]))
    if key not in run.cache:
        centres = (torch.arange(cells, dtype=torch.float32) + 0.5) / cells * 2 * LATENT_RANGE - LATENT_RANGE
        z2, z1 = torch.meshgrid(centres.flip(0), centres, indexing="ij")  # rows: z2 from top (+r) to bottom
        z = torch.stack([z1.reshape(-1), z2.reshape(-1)], dim=1)
        images = run.model.decode_latent(z, labels).float().cpu()
        if images.shape[1] == 1:
            images = images.expand(-1, 3, -1, -1)
        run.cache[key] = grid_to_uint8(make_grid(images, nrow=cells, padding=0))
    return run.cache[key]


def point_from_click(x: float, y: float, width: int, height: int) -> tuple[float, float]:
    """The latent point ``(z1, z2)`` under pixel ``(x, y)`` of a plane picture ``width × height``
    (rounded to 2 decimals, clipped to the plane)."""
    r = LATENT_RANGE
    z1 = -r + 2 * r * (min(max(float(x), 0.0), width - 1) + 0.5) / width
    z2 = r - 2 * r * (min(max(float(y), 0.0), height - 1) + 0.5) / height
    return round(z1, 2), round(z2, 2)


def mark_point(plane: np.ndarray, z1: float, z2: float) -> np.ndarray:
    """A copy of ``plane`` (RGB ``uint8``) with a cross-hair at latent point ``(z1, z2)``."""
    out = plane.copy()
    height, width = out.shape[:2]
    r = LATENT_RANGE
    col = round((float(z1) + r) / (2 * r) * width - 0.5)
    row = round((r - float(z2)) / (2 * r) * height - 0.5)
    arm = max(4, min(width, height) // 40)
    rows = slice(max(row - arm, 0), min(row + arm + 1, height))
    cols = slice(max(col - arm, 0), min(col + arm + 1, width))
    if 0 <= row < height:
        out[max(row - 1, 0):row + 2, cols] = MARKER_COLOUR
    if 0 <= col < width:
        out[rows, max(col - 1, 0):col + 2] = MARKER_COLOUR
    return out


def explore(run: DemoRun, values: Sequence[Any], label: Any = None) -> tuple[np.ndarray, np.ndarray | None]:
    """``(decoded image, plane with the point marked or None)`` for latent values ``values``.

    The plane is drawn for 2-D latents only; ``values`` gives the first dimensions (the rest 0).
    """
    image = decode_point(run, values, label)
    if latent_dim(run) != 2:
        return image, None
    z1, z2 = (float(v) for v in values[:2])
    return image, mark_point(latent_plane(run, label), z1, z2)


def seed_latent(run: DemoRun, seed: Any) -> torch.Tensor:
    """``(1, latent_dim)`` drawn from N(0, I) with ``seed`` (what ``sample(1)`` with that seed decodes)."""
    seed = whole_number(seed, "seed", 0, MAX_SEED)
    return torch.randn(1, latent_dim(run), generator=torch.Generator().manual_seed(seed))


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation of ``a`` and ``b`` ``(1, D)`` at fractions ``t`` ``(K,)``: ``(K, D)``.

    Falls back to linear interpolation when the two are (anti)parallel (the great circle is undefined).
    """
    a64, b64, t64 = a.double(), b.double(), t.double()[:, None]
    cos = (a64 * b64).sum() / (a64.norm() * b64.norm()).clamp_min(1e-12)
    omega = torch.arccos(cos.clamp(-1.0, 1.0))
    if float(torch.sin(omega).abs()) < 1e-6:
        return ((1 - t64) * a64 + t64 * b64).to(a.dtype)
    return ((torch.sin((1 - t64) * omega) * a64 + torch.sin(t64 * omega) * b64) / torch.sin(omega)).to(a.dtype)


def interpolation_strip(run: DemoRun, seed_a: Any, seed_b: Any, frames: Any = 8, label: Any = None) -> np.ndarray:
    """One row of ``frames`` images from seed A's latent to seed B's (slerp), 2 px white between them:
    ``uint8`` ``(S + 4, frames·(S + 2) + 2[, 3])``.

    Raises:
        GenlabError: a seed or the frame count (2..:data:`MAX_FRAMES`) is out of range, or a
            conditional model gets no valid class.
    """
    frames = whole_number(frames, "frames", 2, MAX_FRAMES)
    a, b = seed_latent(run, seed_a), seed_latent(run, seed_b)
    z = slerp(a, b, torch.linspace(0.0, 1.0, frames))
    images = run.model.decode_latent(z, _label_tensor(run, label, frames)).float().cpu()
    return grid_to_uint8(make_grid(images, nrow=frames))


# --- UI callbacks: errors become the status ----------------------------------------------------------


def explore_callback(run: DemoRun, label: Any, *values: Any) -> tuple[np.ndarray | None, np.ndarray | None, str]:
    """``(enlarged image, plane or None, status)`` for the explorer's sliders (``label`` None: unconditional)."""
    try:
        image, plane = explore(run, values, label)
    except GenlabError as exc:
        return None, None, f"error: {exc}"
    point = ", ".join(f"{float(v):.2f}" for v in values)
    rest = " (other dimensions 0)" if latent_dim(run) > len(values) else ""
    return enlarge(image), plane, f"z = ({point}){rest}"


def plane_click_callback(run: DemoRun, label: Any, x: Any, y: Any) -> tuple[float, float]:
    """The latent point ``(z1, z2)`` of a click at pixel ``(x, y)`` of the (unenlarged) plane."""
    plane = latent_plane(run, label)
    return point_from_click(float(x), float(y), plane.shape[1], plane.shape[0])


def interpolate_callback(run: DemoRun, seed_a: Any, seed_b: Any, frames: Any,
                         label: Any = None) -> tuple[np.ndarray | None, str]:
    """``(enlarged strip or None, status)`` for the Interpolate button."""
    try:
        strip = interpolation_strip(run, seed_a, seed_b, frames, label)
    except GenlabError as exc:
        return None, f"error: {exc}"
    return enlarge(strip, min_side=512), f"{int(frames)} frames from seed {int(seed_a)} to seed {int(seed_b)} (slerp)"
