"""Decode one image file into a ``uint8`` array, whatever the file holds, and resize it to a square.

:func:`decode_image` is the only place in genlab that hands untrusted image bytes to Pillow. It
returns a ``uint8`` array of shape ``(H, W, C)`` (``C`` = 1 for ``"L"``, 3 for ``"RGB"``) or raises
:class:`~genlab.errors.ImageDecodeError` naming the file and saying what is wrong with it; no
Pillow, ``OSError`` or ``ValueError`` traceback escapes it.

What it does with the files that real image folders contain:

* empty, unreadable, a directory, not an image, truncated or corrupt: refused;
* a header claiming more than ``max_pixels`` pixels (a decompression bomb): refused before any
  pixel is decoded; smaller than ``min_size`` on either side: refused;
* CMYK, YCbCr, 1-bit and palette images: converted;
* 16-bit greyscale (``I;16*``) shifted right by 8 bits; 32-bit integer (``I``) and float (``F``)
  images mapped to 0..255 from the range their values actually use (see :func:`_to_uint8_grey`);
* alpha (``RGBA``, ``LA``, palette transparency): composited on a white background;
* animated GIF, APNG and WebP: the first frame;
* EXIF orientation: applied, so a photo taken upright comes out upright.
"""

from __future__ import annotations

import io
import os
import stat
import warnings
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from genlab.errors import ImageDecodeError

#: File suffixes (lower case) that folder loaders treat as images.
IMAGE_SUFFIXES: tuple[str, ...] = (
    ".png",
    ".jpg",
    ".jpeg",
    ".bmp",
    ".gif",
    ".webp",
    ".tif",
    ".tiff",
)

#: Pillow format names that :func:`decode_image` opens. Anything else (EPS, which would run
#: Ghostscript; TGA, whose missing magic number lets random bytes pass as an image; ...) is
#: refused. ``JPEG`` also opens camera JPEGs that Pillow calls ``MPO``; ``DIB`` is a headerless BMP.
ACCEPTED_FORMATS: tuple[str, ...] = ("PNG", "JPEG", "BMP", "DIB", "GIF", "WEBP", "TIFF")

_ACCEPTED_NAMES = "PNG, JPEG, BMP, GIF, WebP, TIFF"

Mode = Literal["L", "RGB"]
_CHANNELS = {"L": 1, "RGB": 3}


def decode_image(
    source: str | os.PathLike | bytes,
    *,
    mode: Mode = "RGB",
    name: str | None = None,
    max_pixels: int = 50_000_000,
    min_size: int = 8,
) -> np.ndarray:
    """Decode an image file (or its bytes) into a ``uint8`` array of shape ``(H, W, C)``.

    Args:
        source: a path to an image file, or the file's bytes.
        mode: ``"L"`` for greyscale (``C = 1``) or ``"RGB"`` (``C = 3``).
        name: how to name ``source`` in error messages when it is bytes (default ``"<bytes>"``).
        max_pixels: the largest ``width * height`` accepted; checked on the header, before any
            pixel is decoded, so a small file claiming a huge image costs nothing. Pillow's own
            decompression-bomb limit (``2 * Image.MAX_IMAGE_PIXELS``) applies as well.
        min_size: the smallest width and height accepted, in pixels.

    Returns:
        A new, writable, C-contiguous ``np.ndarray`` of dtype ``uint8`` and shape ``(H, W, C)``,
        values 0..255, after EXIF orientation (so ``H, W`` may be the header's swapped).

    Raises:
        ImageDecodeError: the file cannot be read or decoded, or is too large or too small; the
            message starts with the path (or ``name``) and says why.
        ValueError: ``mode``, ``max_pixels`` or ``min_size`` is not allowed (a caller's bug).
    """
    if mode not in _CHANNELS:
        raise ValueError(f"mode must be 'L' or 'RGB', got {mode!r}")
    if max_pixels < 1 or min_size < 1:
        raise ValueError(f"max_pixels and min_size must be >= 1, got {max_pixels} and {min_size}")

    if isinstance(source, (bytes, bytearray, memoryview)):
        label = name if name is not None else "<bytes>"
        data = bytes(source)
        if not data:
            raise ImageDecodeError(label, "empty file (0 bytes)")
        return _decode_stream(io.BytesIO(data), label, mode, max_pixels, min_size)

    path = Path(source)
    label = str(path) if name is None else name
    fp = _open_file(path, label)
    with fp:
        return _decode_stream(fp, label, mode, max_pixels, min_size)


def _open_file(path: Path, label: str):
    """Open ``path`` for reading, or raise :class:`ImageDecodeError` saying why it cannot be."""
    try:
        st = path.stat()
    except FileNotFoundError:
        raise ImageDecodeError(label, "no such file") from None
    except PermissionError:
        raise ImageDecodeError(label, "permission denied") from None
    except OSError as exc:
        raise ImageDecodeError(label, f"cannot read file ({exc.strerror or exc})") from None
    if stat.S_ISDIR(st.st_mode):
        raise ImageDecodeError(label, "is a directory, not an image file")
    if not stat.S_ISREG(st.st_mode):
        # A FIFO or a device would block or never end; it is no image file.
        raise ImageDecodeError(label, "not a regular file")
    if st.st_size == 0:
        raise ImageDecodeError(label, "empty file (0 bytes)")
    try:
        return open(path, "rb")
    except PermissionError:
        raise ImageDecodeError(label, "permission denied") from None
    except OSError as exc:
        raise ImageDecodeError(label, f"cannot read file ({exc.strerror or exc})") from None


def _decode_stream(fp, label: str, mode: str, max_pixels: int, min_size: int) -> np.ndarray:
    """Open, check, fully decode and convert the image in the binary file object ``fp``."""
    with warnings.catch_warnings():
        # Pillow's UserWarnings report metadata it skipped ("Corrupt EXIF data", ...): the pixels
        # either decode or raise below, so in a folder of thousands they would only be noise.
        warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL\.")
        # Pillow only warns between MAX_IMAGE_PIXELS and twice that; here that is a refusal too.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            img = Image.open(fp, formats=ACCEPTED_FORMATS)
        except UnidentifiedImageError:
            raise ImageDecodeError(
                label, f"not a recognised image format (accepted: {_ACCEPTED_NAMES})"
            ) from None
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise ImageDecodeError(label, _bomb_reason(exc, max_pixels)) from None
        except Exception as exc:
            raise ImageDecodeError(
                label, f"truncated or corrupt header ({_describe(exc)})"
            ) from None

        with img:
            width, height = img.size
            if width * height > max_pixels:
                raise ImageDecodeError(
                    label,
                    f"image is {width}x{height} = {width * height:,} pixels, more than the limit "
                    f"of {max_pixels:,} pixels (a possible decompression bomb; shrink the image, or set "
                    "data.skip_bad_files=true to leave it out)",
                )
            if width < min_size or height < min_size:
                raise ImageDecodeError(
                    label,
                    f"image is {width}x{height} pixels, smaller than the minimum of "
                    f"{min_size}x{min_size}",
                )
            try:
                # Image.open only read the header; load() decodes every pixel of the first
                # frame, so truncation shows here (ImageFile.LOAD_TRUNCATED_IMAGES stays False).
                img.load()
            except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
                raise ImageDecodeError(label, _bomb_reason(exc, max_pixels)) from None
            except Exception as exc:
                raise ImageDecodeError(label, f"truncated or corrupt ({_describe(exc)})") from None

            try:
                oriented = ImageOps.exif_transpose(img)
            except Exception:
                oriented = img
            try:
                array = _to_array(oriented, mode)
            except ImageDecodeError:
                raise
            except Exception as exc:
                raise ImageDecodeError(
                    label, f"cannot convert colour mode {img.mode} to {mode} ({_describe(exc)})"
                ) from None
    if array.shape[0] < 1 or array.shape[1] < 1:
        raise ImageDecodeError(label, f"image decoded to an empty array of shape {array.shape}")
    return array


def _bomb_reason(exc: BaseException, max_pixels: int) -> str:
    # Pillow's message carries the claimed pixel count and Pillow's own limit.
    return (
        f"image too large, refused as a possible decompression bomb ({exc}); genlab's limit "
        f"is {max_pixels:,} pixels"
    )


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _to_array(img: Image.Image, mode: str) -> np.ndarray:
    """Convert a fully loaded Pillow image to ``uint8`` ``(H, W, C)`` in ``mode``."""
    src = img.mode
    if src in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        grey = _to_uint8_grey(np.asarray(img), src)
        return _grey_to_mode(grey, mode)
    if src == "1":
        return _grey_to_mode(np.asarray(img.convert("L"), dtype=np.uint8), mode)
    if src == "L":
        return _grey_to_mode(np.asarray(img, dtype=np.uint8), mode)
    if src in ("P", "PA", "LA", "La", "RGBA", "RGBa"):
        # Palette transparency (tRNS, GIF transparent index) becomes alpha in RGBA.
        rgb = _composite_on_white(np.asarray(img.convert("RGBA"), dtype=np.uint8))
        return _rgb_to_mode(rgb, mode)
    # RGB, RGBX, CMYK, YCbCr, HSV, ...: Pillow's own conversions.
    return _rgb_to_mode(np.asarray(img.convert("RGB"), dtype=np.uint8), mode)


def _to_uint8_grey(values: np.ndarray, src_mode: str) -> np.ndarray:
    """Map a greyscale array of a wide mode to ``uint8`` ``(H, W)``.

    * ``I;16*`` (16-bit): ``value >> 8``, so 0..65535 maps onto 0..255 with no contrast change.
    * ``I`` (32-bit signed): values already in 0..255 are kept; values in 0..65535 (a 16-bit PNG
      opened as ``I``) are shifted right by 8; any other range is stretched linearly from its
      actual minimum..maximum to 0..255.
    * ``F`` (32-bit float): values in 0..1 are multiplied by 255; values in 0..255 are kept;
      any other range is stretched from its actual minimum..maximum. NaN becomes 0, +-inf are
      clipped to the finite range.
    """
    if src_mode.startswith("I;16"):
        return (values.astype(np.uint16) >> 8).astype(np.uint8)
    if src_mode == "I":
        v = values.astype(np.int64)
        lo, hi = int(v.min()), int(v.max())
        if lo >= 0 and hi <= 255:
            return v.astype(np.uint8)
        if lo >= 0 and hi <= 65535:
            return (v >> 8).astype(np.uint8)
        return _stretch(v.astype(np.float64), lo, hi)
    v = values.astype(np.float64)
    finite = np.isfinite(v)
    if not finite.any():
        return np.zeros(v.shape, dtype=np.uint8)
    lo, hi = float(v[finite].min()), float(v[finite].max())
    v = np.nan_to_num(v, nan=lo, posinf=hi, neginf=lo)
    if lo >= 0.0 and hi <= 1.0:
        return np.clip(np.rint(v * 255.0), 0, 255).astype(np.uint8)
    if lo >= 0.0 and hi <= 255.0:
        return np.clip(np.rint(v), 0, 255).astype(np.uint8)
    return _stretch(v, lo, hi)


def _stretch(v: np.ndarray, lo: float, hi: float) -> np.ndarray:
    if hi <= lo:
        return np.full(v.shape, int(np.clip(lo, 0, 255)), dtype=np.uint8)
    return np.clip(np.rint((v - lo) * (255.0 / (hi - lo))), 0, 255).astype(np.uint8)


def _composite_on_white(rgba: np.ndarray) -> np.ndarray:
    """``uint8`` ``(H, W, 4)`` RGBA -> ``uint8`` ``(H, W, 3)`` RGB over a white background."""
    rgb = rgba[..., :3].astype(np.uint32)
    alpha = rgba[..., 3:4].astype(np.uint32)
    out = (rgb * alpha + 255 * (255 - alpha) + 127) // 255
    return out.astype(np.uint8)


def _grey_to_mode(grey: np.ndarray, mode: str) -> np.ndarray:
    grey = np.ascontiguousarray(grey, dtype=np.uint8)
    if mode == "L":
        return grey[:, :, None].copy()
    return np.repeat(grey[:, :, None], 3, axis=2)


def _rgb_to_mode(rgb: np.ndarray, mode: str) -> np.ndarray:
    if mode == "RGB":
        return np.array(rgb, dtype=np.uint8, order="C", copy=True)
    # ITU-R 601-2 luma, as Pillow computes it, so L matches opening the same file as L.
    grey = np.asarray(Image.fromarray(np.ascontiguousarray(rgb)).convert("L"))
    return grey[:, :, None].copy()


def resize_square(image: np.ndarray, size: int) -> np.ndarray:
    """Center-crop ``image`` to a square and resize it to ``size x size`` with Lanczos filtering.

    Args:
        image: ``uint8`` array of shape ``(H, W, C)`` with ``C`` in 1, 3 or 4.
        size: side of the output in pixels, >= 1.

    Returns:
        A new ``uint8`` array of shape ``(size, size, C)``. The crop keeps the central
        ``min(H, W)`` square (for odd differences the extra pixel is dropped at the bottom/right);
        Pillow's Lanczos filter is antialiased when shrinking.
    """
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] not in (1, 3, 4):
        shape = getattr(image, "shape", None)
        raise ValueError(f"image must be a (H, W, C) array with C in 1, 3, 4; got shape {shape}")
    if image.dtype != np.uint8:
        raise ValueError(f"image must be uint8, got {image.dtype}")
    if int(size) < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    size = int(size)
    height, width, channels = image.shape
    if height < 1 or width < 1:
        raise ValueError(f"image is empty: shape {image.shape}")
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    crop = np.ascontiguousarray(image[top : top + side, left : left + side])
    if side == size:
        return crop.copy()
    # uint8 (S, S) is read as L, (S, S, 3) as RGB, (S, S, 4) as RGBA.
    pil = Image.fromarray(crop[:, :, 0] if channels == 1 else crop)
    out = np.asarray(pil.resize((size, size), Image.Resampling.LANCZOS), dtype=np.uint8)
    if channels == 1:
        out = out[:, :, None]
    return np.array(out, dtype=np.uint8, order="C", copy=True)
