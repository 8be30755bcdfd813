"""Check one uploaded image file and turn it into the input a run's model expects.

Nothing here imports Gradio: the web demo (:mod:`genlab.demo.app`) hands over the path of the file
the browser sent, and :func:`load_upload` either returns a float tensor of shape ``(1, C, S, S)``
prepared exactly as the run's training data was, or raises a :class:`~genlab.errors.GenlabError`
whose message names the file and says what is wrong with it:

1. the size on disk is checked first (:func:`check_upload_size`), before a byte is decoded;
2. the bytes are decoded by :func:`genlab.data.images.decode_image`, genlab's decoder for
   untrusted images (it refuses empty, truncated, non-image and decompression-bomb files and
   converts CMYK, 16-bit, palette, alpha and animated images);
3. the picture is center-cropped and resized to ``data.image_size`` by
   :func:`genlab.data.images.resize_square`, as image folders are (:mod:`genlab.data.folders`);
4. :func:`genlab.data.datasets.make_batch` scales it to the run's ``data.value_range`` and, for
   ``data.binarize: dynamic``, binarises it with a seeded generator, as training batches are.

Sizes are counted in MB of 1,048,576 bytes, the unit of Gradio's own ``max_file_size``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from genlab.data.images import decode_image, resize_square
from genlab.data.sources import ImageTensors, make_batch
from genlab.errors import DataError
from genlab.schema import DataConfig

#: Default largest upload, in MB (1 MB = 1,048,576 bytes).
DEFAULT_MAX_UPLOAD_MB = 10.0

#: Bytes per MB, as Gradio counts them (``gradio.utils.FileSize.MB``).
BYTES_PER_MB = 1024 * 1024


class UploadError(DataError):
    """An uploaded file is refused before decoding (too large, unreadable); the message names it."""


def max_upload_bytes(max_upload_mb: float) -> int:
    """The upload limit in bytes for a limit in MB (``> 0``); a :class:`DataError` otherwise."""
    try:
        mb = float(max_upload_mb)
    except (TypeError, ValueError):
        raise DataError(f"upload limit: got {max_upload_mb!r}; allowed: a number of MB > 0") from None
    if not mb > 0 or mb == float("inf"):
        raise DataError(f"upload limit: got {max_upload_mb!r} MB; allowed: a finite number of MB > 0")
    return max(1, int(mb * BYTES_PER_MB))


def _format_size(num_bytes: int) -> str:
    return f"{num_bytes / BYTES_PER_MB:.1f} MB ({num_bytes:,} bytes)"


def check_upload_size(path: str | os.PathLike, max_bytes: int, name: str | None = None) -> int:
    """Refuse ``path`` if it is larger than ``max_bytes``; return its size in bytes.

    Args:
        path: the uploaded file on the server's disk.
        max_bytes: largest accepted size in bytes (see :func:`max_upload_bytes`).
        name: how to name the file in messages (default: its base name, so the server's
            temporary folder is not shown to the user).

    Raises:
        UploadError: the file cannot be stat'ed, or is larger than ``max_bytes``; the message
            gives the file's name, its size and the limit.
    """
    label = name if name is not None else Path(path).name
    try:
        size = os.stat(path).st_size
    except OSError as exc:
        raise UploadError(f"{label}: cannot read the uploaded file ({exc.strerror or exc})") from None
    if size > max_bytes:
        raise UploadError(
            f"{label}: file is {_format_size(size)}, more than the upload limit of "
            f"{_format_size(max_bytes)}"
        )
    return size


def load_upload(
    path: str | os.PathLike,
    data: DataConfig,
    *,
    max_bytes: int = int(DEFAULT_MAX_UPLOAD_MB * BYTES_PER_MB),
    name: str | None = None,
    invert: bool = False,
    seed: int = 0,
) -> torch.Tensor:
    """Check, decode and prepare one uploaded image as the model of a run with ``data`` sees it.

    Args:
        path: the uploaded file.
        data: the run's data config (``channels``, ``image_size``, ``value_range``, ``binarize``).
        max_bytes: largest accepted file size in bytes.
        name: how to name the file in messages (default: its base name).
        invert: use ``255 - pixel`` before scaling, e.g. for a dark digit drawn on white paper
            when the model was trained on MNIST's light digits on black.
        seed: seed of the dynamic binarisation (only used with ``data.binarize: dynamic``), so
            the same file and seed give the same input.

    Returns:
        float32 tensor ``(1, C, S, S)`` with ``C = data.channels`` and ``S = data.image_size``,
        values in ``[0, 1]`` (``value_range: unit``) or ``[-1, 1]`` (``symmetric``); exactly 0/1
        (or -1/1) when the run binarises its inputs.

    Raises:
        UploadError: the file is too large or cannot be read.
        ImageDecodeError: the file is empty, not an image, truncated, corrupt, too large in
            pixels or too small; the message starts with the file's name.
    """
    label = name if name is not None else Path(path).name
    check_upload_size(path, max_bytes, label)
    array = decode_image(path, mode="L" if data.channels == 1 else "RGB", name=label)  # uint8 (H, W, C)
    square = resize_square(array, data.image_size)  # uint8 (S, S, C), as folders.load_image_folder
    if invert:
        square = 255 - square
    images = torch.from_numpy(np.ascontiguousarray(square.transpose(2, 0, 1)))[None]  # uint8 (1, C, S, S)
    generator = torch.Generator().manual_seed(int(seed))
    batch = make_batch(ImageTensors(images, None), torch.zeros(1, dtype=torch.int64), data,
                       torch.device("cpu"), generator)
    return batch["image"]
