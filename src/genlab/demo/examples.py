"""Example inputs of the translation section: images of the run's own test split (no Gradio here).

:func:`translation_examples` writes the first few test images of each domain of a two-domain run
(CycleGAN) as PNG files at the run's ``data.image_size`` and returns them with the direction that
translates them (``testA`` images go A→B, ``testB`` images B→A). A run whose data has no test split
(a folder without ``testA/``/``testB/``) offers training images instead, and says so in the labels.
If the run's data cannot be read on this computer, there are no examples (logged) and the demo still
works with uploads. Example files go through the same upload checks as any uploaded file.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image

from genlab.demo.runs import DemoRun
from genlab.errors import GenlabError

log = logging.getLogger("genlab.demo")

#: example images per domain
EXAMPLES_PER_DOMAIN = 3


class Example(NamedTuple):
    """One example of the translation section: a PNG file, its direction, and a label for the UI."""

    path: Path
    direction: str
    label: str


def translation_examples(run: DemoRun, folder: Path, per_domain: int = EXAMPLES_PER_DOMAIN) -> list[Example]:
    """Up to ``per_domain`` images of each domain of ``run``'s test split (else training split), written
    as PNGs into ``folder``; ``[]`` if the data cannot be loaded."""
    from genlab.data.datasets import load_unpaired_split

    data = run.config.data
    try:
        split, domains = "test", load_unpaired_split(data, "test")
        if domains is None:
            split, domains = "train", load_unpaired_split(data, "train")
    except (GenlabError, OSError, ValueError) as exc:
        log.warning("no example images for %s: %s", run.title, exc)
        return []
    if domains is None:
        return []
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for tensors, domain, direction in ((domains[0], "A", "AtoB"), (domains[1], "B", "BtoA")):
        for i in range(min(per_domain, len(tensors))):
            pixels = tensors.images[i].numpy().transpose(1, 2, 0)  # uint8 (S, S, C)
            image = Image.fromarray(np.ascontiguousarray(pixels[..., 0] if pixels.shape[2] == 1 else pixels))
            path = folder / f"{split}{domain}_{i:02d}.png"
            image.save(path, format="PNG")
            out.append(Example(path, direction, f"{split} {domain} #{i + 1} ({direction})"))
    return out
