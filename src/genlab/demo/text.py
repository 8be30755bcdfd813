"""Text to image in the web demo (families with the ``text`` ability, e.g. StackGAN); no Gradio here.

:func:`text_images` draws ``n`` images for one caption with a seed. A model that exposes its stages
(StackGAN's ``generate(embeddings, generator, stages=True)`` on ``encode_text(captions)``) shows the
Stage-I images beside the final (Stage-II) ones; any other text model is called through the ability's
contract, ``model.sample(n, text=[...], generator=...)`` (images in [0, 1]), and shows the final images
only. Both draw the same noise as ``genlab sample RUN --text CAPTION --n N --seed S``.

:func:`example_captions` offers captions of the run's own data (its test split, or its training split
when there is none), one per image spread over the split.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np
import torch

from genlab.demo.runs import MAX_SEED, DemoRun, enlarge, whole_number
from genlab.errors import GenlabError
from genlab.viz.grids import grid_to_uint8, make_grid

log = logging.getLogger("genlab.demo")

#: most images drawn for one caption
MAX_TEXT_IMAGES = 16
#: longest caption accepted, in characters
MAX_CAPTION_CHARS = 500
#: example captions offered per run
EXAMPLE_CAPTIONS = 6


def check_caption(caption: Any) -> str:
    """The caption stripped; an empty or overlong one is a :class:`GenlabError`."""
    text = "" if caption is None else str(caption).strip()
    if not text:
        raise GenlabError("caption: type a caption first (e.g. one of the examples)")
    if len(text) > MAX_CAPTION_CHARS:
        raise GenlabError(f"caption: {len(text)} characters; allowed: at most {MAX_CAPTION_CHARS}")
    return text


def _grid(images: torch.Tensor) -> np.ndarray:
    return grid_to_uint8(make_grid(images.float().cpu(), nrow=math.ceil(math.sqrt(images.shape[0]))))


def text_images(run: DemoRun, caption: Any, n: Any = 4, seed: Any = 0) -> tuple[np.ndarray | None, np.ndarray]:
    """``(Stage-I grid or None, final grid)`` of ``n`` images for ``caption``, each ``uint8``; the
    Stage-I images are enlarged (nearest neighbour) to the final images' size, so the grids align.

    Raises:
        GenlabError: the run cannot generate from text, or the caption, ``n`` (1..:data:`MAX_TEXT_IMAGES`)
            or ``seed`` is refused.
    """
    if not run.can("text"):
        raise GenlabError(f"the {run.model.family} model of {run.title} does not generate images from text")
    text = check_caption(caption)
    n = whole_number(n, "number of images", 1, MAX_TEXT_IMAGES)
    seed = whole_number(seed, "seed", 0, MAX_SEED)
    generator = torch.Generator().manual_seed(seed)
    model = run.model
    with torch.no_grad():
        if hasattr(model, "encode_text") and hasattr(model, "generate"):  # StackGAN: both stages
            low, final = model.generate(model.encode_text([text] * n), generator, stages=True)
        else:
            low, final = None, model.sample(n, text=[text] * n, generator=generator)
    if low is not None:
        low = torch.nn.functional.interpolate(low.float(), size=final.shape[-2:], mode="nearest")
    return (None if low is None else _grid(low)), _grid(final)


def text_callback(run: DemoRun, caption: Any, n: Any, seed: Any) -> tuple[np.ndarray | None, np.ndarray | None, str]:
    """``(enlarged Stage-I grid or None, enlarged final grid or None, status)`` for the Generate button."""
    try:
        low, final = text_images(run, caption, n, seed)
    except GenlabError as exc:
        return None, None, f"error: {exc}"
    stages = "Stage-I and Stage-II" if low is not None else "final images only (a Stage-I model)"
    return (None if low is None else enlarge(low)), enlarge(final), f"{int(n)} image(s), seed {int(seed)}; {stages}"


def example_captions(run: DemoRun, k: int = EXAMPLE_CAPTIONS) -> list[str]:
    """Up to ``k`` distinct captions of the run's data (test split, else training split), spread over
    its images; empty (with a log line) when the data cannot be read here."""
    from genlab.data.captioned import load_captioned_split  # the text data loads only for text runs

    try:
        split = load_captioned_split(run.config.data, "test") or load_captioned_split(run.config.data, "train")
    except (GenlabError, OSError) as exc:
        log.warning("no example captions for %s: %s", run.title, exc)
        return []
    if split is None or not len(split):
        return []
    picks = torch.linspace(0, len(split) - 1, min(k * 2, len(split))).round().long().tolist()
    out: list[str] = []
    for i in dict.fromkeys(picks):
        for caption in split.captions[i][:1]:
            if caption not in out:
                out.append(caption)
    return out[:k]
