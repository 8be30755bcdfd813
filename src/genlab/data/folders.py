"""Image folders: any directory tree of images, CycleGAN's unpaired layout, and captions.

* :func:`load_image_folder` decodes every image under a directory once into one ``uint8``
  tensor of shape ``(N, C, S, S)`` (see :mod:`genlab.data.images` for what "decode" copes with).
* :func:`load_unpaired_folders` reads junyanz/pytorch-CycleGAN-and-pix2pix's layout
  ``ROOT/trainA ROOT/trainB ROOT/testA ROOT/testB``.
* :func:`load_captions` reads HuggingFace ``imagefolder``'s ``metadata.jsonl``
  (one ``{"file_name": "...", "text": "..."}`` object per line).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from genlab.data.images import IMAGE_SUFFIXES, decode_image, resize_square
from genlab.errors import DataError, ImageDecodeError

logger = logging.getLogger("genlab.data")

#: Folders with at least this many files show a progress bar while decoding.
PROGRESS_MIN_FILES = 200

#: The config key that makes :func:`load_image_folder` skip files it cannot decode.
SKIP_BAD_KEY = "data.skip_bad_files"
#: skipped files named one by one in the warning (the rest are counted)
MAX_NAMED_SKIPS = 20

SPLITS = ("train", "test")

_SUFFIX_LIST = " ".join(IMAGE_SUFFIXES)


@dataclass
class FolderImages:
    """The decoded images of one folder.

    Attributes:
        images: ``uint8`` tensor of shape ``(N, C, S, S)``, values 0..255, ``C`` = 1 (L) or 3
            (RGB), ``S`` the requested ``image_size``.
        paths: the ``N`` source files, in the order of ``images``.
        skipped: ``(path, reason)`` of each file that could not be decoded and was skipped.
    """

    images: torch.Tensor
    paths: list[str]
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.paths)


def list_image_files(root: str | os.PathLike) -> list[Path]:
    """All image files under ``root``, recursively, sorted by their path relative to ``root``.

    A file counts as an image by its suffix (any case), one of :data:`IMAGE_SUFFIXES`. Hidden
    files and folders (name starting with ``.``, such as macOS's ``._photo.jpg`` resource forks
    or ``.ipynb_checkpoints``) are left out. Symlinked folders are not followed.

    Raises:
        DataError: ``root`` is missing, is not a directory, or holds no image file.
    """
    root = Path(root)
    if not root.exists():
        raise DataError(
            f"image folder {root} does not exist; expected a directory of image files "
            f"({_SUFFIX_LIST})"
        )
    if not root.is_dir():
        raise DataError(
            f"{root} is not a directory; expected a directory of image files ({_SUFFIX_LIST})"
        )
    found: list[tuple[str, Path]] = []
    for dirpath, dirnames, filenames in os.walk(root, onerror=None, followlinks=False):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        base = Path(dirpath)
        for filename in filenames:
            if filename.startswith("."):
                continue
            if os.path.splitext(filename)[1].lower() in IMAGE_SUFFIXES:
                path = base / filename
                found.append((path.relative_to(root).as_posix(), path))
    if not found:
        raise DataError(
            f"no image files in {root} (searched recursively); accepted suffixes: {_SUFFIX_LIST}"
        )
    found.sort(key=lambda item: item[0])
    return [path for _, path in found]


def load_image_folder(
    root: str | os.PathLike,
    *,
    image_size: int,
    mode: str = "RGB",
    skip_bad: bool = False,
    limit: int | None = None,
    progress: bool = True,
) -> FolderImages:
    """Decode every image under ``root`` into one ``uint8`` tensor of shape ``(N, C, S, S)``.

    Files are taken in :func:`list_image_files` order (sorted, so the same folder gives the same
    tensor on every machine); each is decoded with :func:`~genlab.data.images.decode_image` and
    center-cropped and resized to ``image_size`` by :func:`~genlab.data.images.resize_square`.

    Args:
        root: the folder; searched recursively.
        image_size: side ``S`` of the output images in pixels.
        mode: ``"L"`` (``C = 1``) or ``"RGB"`` (``C = 3``).
        skip_bad: if false (the default) the first file that cannot be decoded raises; if true
            it is skipped, listed in ``skipped``, and one warning with the count is logged on the
            ``genlab.data`` logger.
        limit: keep only the first ``limit`` images (with ``skip_bad``, the first ``limit`` that
            decode); ``None`` keeps all.
        progress: show a tqdm progress bar when the folder holds many files.

    Raises:
        DataError: ``root`` is missing, not a directory, holds no image file, or (with
            ``skip_bad``) none of its files decodes.
        ImageDecodeError: a file cannot be decoded and ``skip_bad`` is false; the message names
            the file and the config key ``data.skip_bad_files=true`` that skips such files.
    """
    if mode not in ("L", "RGB"):
        raise ValueError(f"mode must be 'L' or 'RGB', got {mode!r}")
    if int(image_size) < 1:
        raise ValueError(f"image_size must be >= 1, got {image_size}")
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be >= 1 or None, got {limit}")
    root = Path(root)
    files = list_image_files(root)
    wanted = len(files) if limit is None else min(limit, len(files))
    channels = 1 if mode == "L" else 3
    images = torch.empty((wanted, channels, image_size, image_size), dtype=torch.uint8)
    paths: list[str] = []
    skipped: list[tuple[str, str]] = []

    bar = tqdm(
        total=wanted,
        desc=f"decoding {root.name or root}",
        unit="img",
        disable=not progress or len(files) < PROGRESS_MIN_FILES,
        leave=False,
    )
    try:
        for path in files:
            if len(paths) == wanted:
                break
            try:
                array = decode_image(path, mode=mode)
            except ImageDecodeError as exc:
                if not skip_bad:
                    raise ImageDecodeError(
                        exc.path,
                        f"{exc.reason} (set {SKIP_BAD_KEY}=true to skip files that cannot be "
                        "decoded)",
                    ) from None
                skipped.append((str(path), exc.reason))
                continue
            square = resize_square(array, image_size)
            images[len(paths)] = torch.from_numpy(np.ascontiguousarray(square.transpose(2, 0, 1)))
            paths.append(str(path))
            bar.update(1)
    finally:
        bar.close()

    if skipped:
        named = "; ".join(f"{path}: {reason}" for path, reason in skipped[:MAX_NAMED_SKIPS])
        more = f"; and {len(skipped) - MAX_NAMED_SKIPS} more" if len(skipped) > MAX_NAMED_SKIPS else ""
        logger.warning("skipped %d of %d image files in %s that could not be decoded: %s%s",
                       len(skipped), len(paths) + len(skipped), root, named, more)
    if not paths:
        raise DataError(
            f"none of the {len(skipped)} image files in {root} could be decoded "
            f"(first: {skipped[0][0]}: {skipped[0][1]})"
        )
    if len(paths) < wanted:  # files were skipped and the folder ran out: drop the unused rows
        images = images[: len(paths)].clone()
    return FolderImages(images=images, paths=paths, skipped=skipped)


def load_unpaired_folders(
    root: str | os.PathLike,
    *,
    image_size: int,
    mode: str = "RGB",
    split: str = "train",
    **kwargs,
) -> tuple[FolderImages, FolderImages]:
    """Load the two unpaired domains of a CycleGAN dataset: ``ROOT/{split}A`` and ``ROOT/{split}B``.

    The layout is junyanz/pytorch-CycleGAN-and-pix2pix's (``trainA/ trainB/ testA/ testB/``).
    Both folders are checked before either is decoded. ``kwargs`` (``skip_bad``, ``limit``,
    ``progress``) go to :func:`load_image_folder` for each domain; the domains may differ in size.

    Returns:
        ``(domain_a, domain_b)``, each a :class:`FolderImages` of ``uint8`` ``(N, C, S, S)``.

    Raises:
        DataError: ``split`` is not ``train`` or ``test``, ``root`` or one of the two folders
            is missing, or a folder holds no images.
    """
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; the unpaired layout has {', '.join(SPLITS)}")
    root = Path(root)
    layout = "trainA/ trainB/ testA/ testB/"
    if not root.is_dir():
        raise DataError(
            f"unpaired dataset folder {root} does not exist or is not a directory; "
            f"expected the CycleGAN layout {layout}"
        )
    folders = [root / f"{split}A", root / f"{split}B"]
    for folder in folders:
        if not folder.is_dir():
            raise DataError(
                f"missing folder {folder}: an unpaired dataset needs the CycleGAN layout "
                f"{layout} under {root}"
            )
    domain_a, domain_b = (
        load_image_folder(folder, image_size=image_size, mode=mode, **kwargs) for folder in folders
    )
    return domain_a, domain_b


def load_captions(root: str | os.PathLike) -> dict[str, list[str]]:
    """Read the captions of an image folder from its ``metadata.jsonl``.

    The file follows HuggingFace ``imagefolder``: one JSON object per line with ``"file_name"``
    (a path relative to the folder) and ``"text"`` (a string, or a list of strings). A file
    name on several lines collects all their captions, in file order. Blank lines are ignored.

    Args:
        root: the image folder holding ``metadata.jsonl``, or the path of the ``.jsonl`` file.

    Returns:
        ``{file_name: [caption, ...]}``, file names as written (a leading ``./`` removed).

    Raises:
        DataError: the file is missing or unreadable, or a line is not JSON, not an object, or
            lacks a string ``file_name`` or a string / list-of-strings ``text``; the message
            names the file and the line number.
    """
    root = Path(root)
    path = root if root.is_file() or root.suffix == ".jsonl" else root / "metadata.jsonl"
    if not path.is_file():
        raise DataError(
            f"{path} not found: captions need a metadata.jsonl in the image folder with one "
            '{"file_name": "...", "text": "..."} object per line'
        )
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read file ({exc.strerror or exc})") from None

    captions: dict[str, list[str]] = {}
    for number, line_bytes in enumerate(raw.splitlines(), start=1):
        where = f"{path}, line {number}"
        try:
            line = line_bytes.decode("utf-8")
        except UnicodeDecodeError:
            raise DataError(f"{where}: not valid UTF-8") from None
        if number == 1:
            line = line.lstrip("\ufeff")
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{where}: not valid JSON ({exc.msg} at column {exc.colno})") from None
        if not isinstance(record, dict):
            raise DataError(f"{where}: expected a JSON object, got {type(record).__name__}")
        file_name = record.get("file_name")
        if not isinstance(file_name, str) or not file_name.strip():
            raise DataError(f'{where}: "file_name" must be a non-empty string')
        text = record.get("text")
        if isinstance(text, str):
            texts = [text]
        elif isinstance(text, list) and text and all(isinstance(t, str) for t in text):
            texts = list(text)
        else:
            raise DataError(f'{where}: "text" must be a string or a non-empty list of strings')
        key = file_name[2:] if file_name.startswith("./") else file_name
        captions.setdefault(key, []).extend(texts)
    if not captions:
        raise DataError(f"{path} holds no captions")
    return captions
