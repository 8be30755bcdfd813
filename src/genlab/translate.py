"""``genlab translate RUN_DIR --direction AtoB|BtoA INPUT... -o OUT_DIR``: translate image files.

Inputs are files or folders (searched recursively); any size and aspect ratio. Each output keeps
its input's file name (and, for folder inputs, its path below the folder) and, by default, its
size: the model resizes in and back (``native=False``) or runs at the input's own resolution,
padded to the generator's stride and cropped back (``native=True``). Existing outputs are refused
before any work unless ``overwrite``; unreadable inputs are named and skipped, and reported at the end.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from PIL import Image
from tqdm import tqdm

from genlab import registry
from genlab.core.atomic import atomic_write
from genlab.core.paths import check_writable
from genlab.data.folders import list_image_files
from genlab.data.images import IMAGE_SUFFIXES, decode_image
from genlab.errors import DataError, GenlabError, ImageDecodeError
from genlab.runs import load_run
from genlab.viz.grids import grid_to_uint8

#: Pillow format by output suffix (GIF: Pillow reduces the colours to a 256-colour palette)
_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".bmp": "BMP", ".gif": "GIF",
            ".tif": "TIFF", ".tiff": "TIFF"}


@dataclass
class TranslateReport:
    """What :func:`translate_files` did: outputs written, inputs skipped with the reason."""

    written: list[Path] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)


def plan_outputs(inputs: list[Path], out_dir: Path) -> list[tuple[Path, Path]]:
    """``(input file, output file)`` pairs: a file keeps its name, a folder's files their relative paths.

    Raises:
        GenlabError: an input does not exist or is not an image file, two inputs map to one output,
            ``out_dir`` is an input folder or inside one (its translations would be read as inputs
            by the next run over that folder), or an output would replace its own input.
    """
    pairs: list[tuple[Path, Path]] = []
    for item in inputs:
        if item.is_dir():
            if out_dir.resolve().is_relative_to(item.resolve()):
                where = "the input folder" if out_dir.resolve() == item.resolve() else "inside the input folder"
                raise GenlabError(f"-o/--output: {out_dir} is {where} {item}: translations there would replace the "
                                  "originals or be read as inputs by the next run over it; give a folder outside it")
            pairs += [(f, out_dir / f.relative_to(item)) for f in list_image_files(item)]
        elif item.is_file():
            if item.suffix.lower() not in IMAGE_SUFFIXES:
                raise GenlabError(f"{item}: not an image file; accepted suffixes: {', '.join(sorted(IMAGE_SUFFIXES))}")
            pairs.append((item, out_dir / item.name))
        else:
            raise GenlabError(f"input not found: {item}")
    sources = {source.resolve() for source, _ in pairs}
    for _, target in pairs:
        if target.resolve() in sources:
            raise GenlabError(f"-o/--output: {target} is an input; its translation would replace it, so give an "
                              "output folder apart from the inputs")
    seen: dict[Path, Path] = {}
    for source, target in pairs:
        if target in seen:
            raise GenlabError(f"{source} and {seen[target]} would both be written to {target}; "
                              "translate them into different output folders")
        seen[target] = source
    return pairs


def _save(image: torch.Tensor, path: Path) -> None:
    """``(C, H, W)`` in [0, 1] → an 8-bit file in the format of ``path``'s suffix, atomically."""
    pil = Image.fromarray(grid_to_uint8(image))
    fmt = _FORMATS.get(path.suffix.lower(), "PNG")
    atomic_write(path, lambda tmp: pil.save(tmp, format=fmt))


def translate_files(run_dir: str | Path, direction: str, inputs: list[Path], out_dir: Path, *,
                    native: bool = False, overwrite: bool = False, progress: bool = True,
                    checkpoint: Path | None = None) -> TranslateReport:
    """Translate every image of ``inputs`` with the run's model into ``out_dir`` (see the module docstring).

    ``checkpoint`` picks a checkpoint file of the run (default: its newest); one of another model is
    refused by :func:`genlab.runs.load_run` with the config key that differs.

    Raises:
        GenlabError: the run's family cannot translate, ``direction`` is unknown, an input is
            missing, ``out_dir`` is a file or a new path named like an image file, or outputs exist
            and ``overwrite`` is false (nothing is written then).
    """
    if direction not in ("AtoB", "BtoA"):
        raise GenlabError(f"--direction: got {direction!r}; allowed: AtoB, BtoA")
    check_writable(out_dir, "-o/--output", folder=True)
    config, model, _ = load_run(Path(run_dir), checkpoint=checkpoint)
    if not registry.get(config.model.family).can("translate"):
        raise GenlabError(f"the {config.model.family} model of {run_dir} cannot translate images "
                          "(only families with the translate ability, e.g. cyclegan)")
    if not Path(out_dir).exists() and Path(out_dir).suffix.lower() in IMAGE_SUFFIXES:
        raise GenlabError(f"-o/--output: {out_dir} looks like an image file name, but -o is the folder the translations "
                          "go to (each keeps its input's name); give a folder, e.g. -o translated/")
    pairs = plan_outputs([Path(p) for p in inputs], Path(out_dir))
    existing = [t for _, t in pairs if t.exists()]
    if existing and not overwrite:
        more = f" and {len(existing) - 1} more" if len(existing) > 1 else ""
        raise GenlabError(f"{existing[0]}{more} already {'exist' if more else 'exists'}; pass --overwrite to replace "
                          f"{'them' if more else 'it'}")
    channels = config.data.source_channels(direction)
    report = TranslateReport()
    for source, target in tqdm(pairs, desc=f"translate {direction}", disable=not progress, dynamic_ncols=True):
        try:
            array = decode_image(source, mode="L" if channels == 1 else "RGB")
        except DataError as exc:
            report.skipped.append((source, exc.reason if isinstance(exc, ImageDecodeError) else str(exc)))
            continue
        x = torch.from_numpy(array).permute(2, 0, 1)[None].float() / 255.0
        _save(model.translate(x, direction, native=native)[0], target)
        report.written.append(target)
    return report
