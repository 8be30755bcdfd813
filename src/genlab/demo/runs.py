"""The runs a demo shows and the checks every demo input goes through (no Gradio here).

:class:`DemoRun` is one loaded run (its newest checkpoint on the CPU); :func:`whole_number` and
:func:`class_label` turn a widget's value into a checked number or a :class:`~genlab.errors.GenlabError`
whose message the UI shows; :func:`to_display` and :func:`enlarge` make ``uint8`` pictures of images in
``[0, 1]``. :mod:`genlab.demo.app` and the sections it builds (:mod:`genlab.demo.latent`,
:mod:`genlab.demo.text`, :mod:`genlab.demo.examples`) all use them.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from genlab import registry
from genlab.errors import GenlabError
from genlab.models.base import GenerativeModel
from genlab.runs import latest_checkpoint, load_run
from genlab.schema import Config
from genlab.viz.grids import grid_to_uint8

#: Seeds accepted by the demo's inputs (``torch.Generator.manual_seed``'s range).
MAX_SEED = 2**63 - 1
#: Displayed images are enlarged (nearest neighbour) until their longer side is at least this.
DISPLAY_MIN_SIDE = 256


@dataclass
class DemoRun:
    """One run loaded for the demo.

    Attributes:
        run_dir: the run directory.
        title: the tab's title (the directory's name, made unique among the demo's runs).
        config: the run's config, as stored in its newest checkpoint.
        model: the model of the newest checkpoint, on the CPU in eval mode.
        step: optimisation steps of that checkpoint.
        epoch: epochs completed at that checkpoint.
        cache: what the demo computes once per run (the decoded latent plane of each class, the
            folder of example images), keyed by what it is.
    """

    run_dir: Path
    title: str
    config: Config
    model: GenerativeModel
    step: int = 0
    epoch: int = 0
    cache: dict[Any, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def num_classes(self) -> int:
        """Classes the model is conditioned on (0: unconditional)."""
        return int(self.model.num_classes or 0)

    def can(self, ability: str) -> bool:
        """Whether the run's family declares ``ability`` (:data:`genlab.family.ABILITIES`)."""
        return registry.get(self.config.model.family).can(ability)

    @property
    def can_reconstruct(self) -> bool:
        """True for families that reconstruct uploaded images (VAE, CVAE)."""
        return self.can("reconstruct")

    def describe(self) -> str:
        """One line about the run for the tab's header (Markdown)."""
        d, m = self.config.data, self.config.model
        cond = f", conditioned on {self.num_classes} classes" if self.num_classes else ""
        return (f"**{m.family}** (preset {m.preset}{cond}) trained on {d.name}, images "
                f"{d.channels}×{d.image_size}×{d.image_size}; checkpoint at epoch {self.epoch}, "
                f"step {self.step}.")


def check_run_dirs(run_dirs: Sequence[str | Path]) -> list[Path]:
    """The run directories as paths, each checked to hold a checkpoint (cheap: loads no model).

    Raises:
        GenlabError: no directory was given, one is missing, or one has no checkpoint.
    """
    if not run_dirs:
        raise GenlabError("the demo needs at least one run directory written by `genlab train`")
    paths = [Path(p) for p in run_dirs]
    for path in paths:
        latest_checkpoint(path)  # GenlabError: "run directory not found: ..." / "... has no checkpoints"
    return paths


def load_demo_runs(run_dirs: Sequence[str | Path]) -> list[DemoRun]:
    """Load each run's newest checkpoint on the CPU; tabs are titled by directory name.

    Two runs with the same directory name are titled by their full paths instead.
    """
    paths = check_run_dirs(run_dirs)
    names = [p.name or str(p) for p in paths]
    runs = []
    for path, name in zip(paths, names):
        config, model, state = load_run(path, device="cpu")
        loop = state.get("loop") or {}
        title = name if names.count(name) == 1 else str(path)
        runs.append(DemoRun(path, title, config, model, step=int(loop.get("step", 0)),
                            epoch=int(loop.get("epoch", 0))))
    return runs



def whole_number(value: Any, what: str, low: int, high: int) -> int:
    """``value`` (a Gradio number: int, float or None) as an int in ``[low, high]``, or a GenlabError."""
    if value is None or isinstance(value, bool):
        raise GenlabError(f"{what}: enter a whole number from {low} to {high}")
    refusal = GenlabError(f"{what}: got {value!r}; allowed: a whole number from {low} to {high}")
    if isinstance(value, numbers.Integral):
        number = int(value)
    elif isinstance(value, float):  # never through float for large ints: 2**53 + 1 would change
        if not (math.isfinite(value) and value.is_integer()):
            raise refusal
        number = int(value)
    else:
        try:
            number = int(str(value).strip())
        except ValueError:
            raise refusal from None
    if not low <= number <= high:
        raise refusal
    return number


def class_label(run: DemoRun, label: Any, required: bool) -> int | None:
    """A checked class label (``None`` or a negative value: none chosen)."""
    if label is None or (isinstance(label, numbers.Real) and not isinstance(label, bool) and label < 0):
        if required:
            raise GenlabError(f"the {run.model.family} model of {run.title} needs a class label "
                              f"(0..{run.num_classes - 1})")
        return None
    if not run.num_classes:
        raise GenlabError(f"the {run.model.family} model of {run.title} is unconditional: it takes no class label")
    return whole_number(label, "class label", 0, run.num_classes - 1)


def to_display(images: torch.Tensor) -> np.ndarray:
    """One image ``(1, C, H, W)`` (or ``(C, H, W)``) in ``[0, 1]`` → ``uint8`` ``(H, W)`` or ``(H, W, 3)``."""
    image = images[0] if images.dim() == 4 else images
    return grid_to_uint8(image.detach().float().cpu())



def enlarge(image: np.ndarray, min_side: int = DISPLAY_MIN_SIDE) -> np.ndarray:
    """Nearest-neighbour enlargement of ``uint8`` ``(H, W[, 3])`` by an integer factor, so small digits stay sharp."""
    factor = max(1, math.ceil(min_side / max(image.shape[0], image.shape[1])))
    return image.repeat(factor, axis=0).repeat(factor, axis=1) if factor > 1 else image
