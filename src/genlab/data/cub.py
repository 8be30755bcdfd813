"""CUB-200-2011 birds with the char-CNN-RNN caption embeddings, in the layout StackGAN uses.

StackGAN (Zhang et al., ICCV 2017) trains on CUB birds conditioned on the authors' precomputed
char-CNN-RNN embeddings of the ten captions of each image. Their StackGAN-Pytorch code reads one
data folder, ``DATA_DIR = data/birds``, laid out as::

    birds/
        train/filenames.pickle                 list of N 'class_dir/image_name' (no extension)
        train/char-CNN-RNN-embeddings.pickle   N x 10 x 1024 float32 (one row per caption)
        train/class_info.pickle                list of N class ids (1..200)
        test/...                               the same three files for the test split
        CUB_200_2011/images/<filename>.jpg     the CUB images
        CUB_200_2011/images.txt                '<image id> <class_dir/image_name>.jpg' per line
        CUB_200_2011/bounding_boxes.txt        '<image id> <x> <y> <width> <height>' per line

:func:`load_cub` accepts that folder, or its parent (``DATA_DIR/birds/...``), and finds
``CUB_200_2011`` inside ``birds/`` or beside it. The pickles were written by Python 2; they are
read with :func:`restricted_load`, which builds only numpy arrays and plain containers, so a
tampered pickle cannot run code.

Each image is cropped as the authors' ``get_img`` does: a box ``(x, y, w, h)`` from
``bounding_boxes.txt`` (coordinates truncated to integers) gives ``r = int(0.75 * max(w, h))`` and
centre ``cx = int(x + w / 2)``, ``cy = int(y + h / 2)``; the crop is ``[cx - r, cx + r) x
[cy - r, cy + r)``, a square of side ``2r = 1.5 * max(w, h)`` clipped to the image (so not square
near an edge), resized to ``S x S`` with Pillow's bilinear filter. (The authors resize to
``S * 76 / 64`` and random-crop ``S`` during training; that augmentation belongs to the training
code, the loader returns the whole crop at ``S``.)
"""

from __future__ import annotations

import _compat_pickle
import io
import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from genlab.data.images import decode_image
from genlab.errors import ConfigError, DataError

SPLITS = ("train", "test")

FILENAMES_FILE = "filenames.pickle"
EMBEDDINGS_FILE = "char-CNN-RNN-embeddings.pickle"
CLASS_INFO_FILE = "class_info.pickle"
CUB_DIR = "CUB_200_2011"

#: StackGAN's crop: half the side of the square is this fraction of the box's longer side.
CROP_RADIUS_FACTOR = 0.75

_LAYOUT = (
    "expected layout (StackGAN-Pytorch): DATA_DIR/birds/{train,test}/{filenames.pickle, "
    "char-CNN-RNN-embeddings.pickle, class_info.pickle} and CUB_200_2011/{images/<class_dir>/<name>.jpg, "
    "images.txt, bounding_boxes.txt} inside DATA_DIR/birds/ or beside it in DATA_DIR/"
)

_ALLOWED_DESCRIPTION = "numpy arrays, lists, tuples, dicts, numbers, strings and bytes"


def _numpy_globals() -> dict[tuple[str, str], Any]:
    """The globals a numpy-array pickle names, under numpy 1 (``numpy.core``) and 2 (``numpy._core``) names."""
    try:
        from numpy._core import multiarray, numeric  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core import multiarray, numeric
    table: dict[tuple[str, str], Any] = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype}
    for core in ("numpy.core", "numpy._core"):
        table[(f"{core}.multiarray", "_reconstruct")] = multiarray._reconstruct
        # numpy scalars (np.float32(1.0), np.int64(3)) are numbers; scalar() only builds one
        # from a dtype and its raw bytes.
        table[(f"{core}.multiarray", "scalar")] = multiarray.scalar
        # protocol 5 writes arrays as _frombuffer(bytes, dtype, shape, order)
        table[(f"{core}.numeric", "_frombuffer")] = numeric._frombuffer
    return table


def _python3_name(module: str, name: str) -> str:
    """``module.name`` as Python 3 spells it (protocols 0-2 write ``__builtin__.eval`` for ``builtins.eval``)."""
    module, name = _compat_pickle.NAME_MAPPING.get((module, name), (module, name))
    return f"{_compat_pickle.IMPORT_MAPPING.get(module, module)}.{name}"


def _latin1_encode(text, encoding="latin1", errors="strict"):
    """``_codecs.encode`` restricted to what Python 3 writes for ``bytes`` in protocol 2: ``(str, 'latin1')``."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1") or errors != "strict":
        raise pickle.UnpicklingError(f"_codecs.encode called with {type(text).__name__}, {encoding!r}, {errors!r}")
    return text.encode("latin1")


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that builds only numpy arrays and plain data; every other global is refused.

    Allowed: numpy arrays and dtypes (``numpy.ndarray``, ``numpy.dtype``,
    ``numpy.core.multiarray._reconstruct`` and its numpy 2 name ``numpy._core.multiarray._reconstruct``;
    ``numpy[._]core.numeric._frombuffer`` for protocol 5), numpy scalars (``...multiarray.scalar``),
    and ``_codecs.encode(str, 'latin1')``, which is how Python 3 writes ``bytes`` in protocols 0-2.
    Lists, tuples, dicts, numbers, strings, bytes, ``None`` and booleans need no global. Any other
    global (``os.system``, ``builtins.eval``, any class) raises :class:`~genlab.errors.DataError`
    naming ``label`` and the refused global (Python 2 spellings such as ``__builtin__.eval`` are
    shown with their Python 3 name); it is never imported, let alone called. Read Python 2
    pickles with ``encoding="latin1"``.
    """

    _GLOBALS = {**_numpy_globals(), ("_codecs", "encode"): _latin1_encode}

    def __init__(self, file, *, label: str = "<pickle>", encoding: str = "latin1"):
        """``file``: a binary file object; ``label``: how to name it in errors (usually its path)."""
        super().__init__(file, encoding=encoding)
        self.label = label

    def find_class(self, module: str, name: str):
        """Return an allowed global, or raise :class:`DataError` naming ``module.name``."""
        try:
            return self._GLOBALS[(module, name)]
        except KeyError:
            written, python3 = f"{module}.{name}", _python3_name(module, name)
            shown = written if written == python3 else f"{written} ({python3} in Python 3)"
            raise DataError(
                f"{self.label}: refusing to unpickle the global {shown}; "
                f"this file may only hold {_ALLOWED_DESCRIPTION}"
            ) from None

    def persistent_load(self, pid):
        """Persistent ids point outside the pickle: refused."""
        raise DataError(f"{self.label}: refusing a persistent id in the pickle; this file may only hold {_ALLOWED_DESCRIPTION}")


def restricted_load(path: str | os.PathLike) -> Any:
    """Unpickle the file at ``path`` with :class:`RestrictedUnpickler` (``encoding="latin1"``).

    Python 2 ``str`` comes back as ``str`` (bytes mapped 1:1 through latin-1), numpy arrays
    pickled by Python 2 and numpy 1 or 2 come back as arrays.

    Raises:
        DataError: the file is missing or unreadable, is not a valid pickle, or names a global
            other than the numpy ones listed in :class:`RestrictedUnpickler`; the message names
            the file (and the refused global).
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a directory, not a pickle file") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read file ({exc.strerror or exc})") from None
    try:
        return RestrictedUnpickler(io.BytesIO(data), label=str(path)).load()
    except DataError:
        raise
    except Exception as exc:  # UnpicklingError, EOFError, ValueError, TypeError, MemoryError ...
        raise DataError(f"{path}: not a valid pickle ({type(exc).__name__}: {exc})") from None


@dataclass
class CubSplit:
    """One split of CUB for StackGAN, fully decoded in memory.

    Attributes:
        images: ``uint8`` tensor ``(N, 3, S, S)``, RGB 0..255, each the bounding-box crop of one image.
        embeddings: ``float32`` tensor ``(N, K, D)``: the ``K`` caption embeddings of each image
            (``K = 10``, ``D = 1024`` for the authors' char-CNN-RNN embeddings).
        class_ids: ``int64`` tensor ``(N,)``, as stored in ``class_info.pickle`` (CUB: 1..200).
        filenames: the ``N`` names ``'class_dir/image_name'`` (no extension), in file order.
    """

    images: torch.Tensor
    embeddings: torch.Tensor
    class_ids: torch.Tensor
    filenames: list[str]

    def __len__(self) -> int:
        """Number of images ``N``."""
        return len(self.filenames)


def _find_layout(data_dir: Path, split: str) -> tuple[Path, Path]:
    """``(split_dir, cub_dir)`` for ``data_dir`` = the ``birds`` folder or its parent."""
    if not data_dir.is_dir():
        raise DataError(f"CUB data folder {data_dir} does not exist; {_LAYOUT}")
    birds = data_dir / "birds" if (data_dir / "birds" / split).is_dir() else data_dir
    split_dir = birds / split
    if not split_dir.is_dir():
        raise DataError(f"no CUB split folder {data_dir / 'birds' / split} (nor {data_dir / split}); {_LAYOUT}")
    for cub in (birds / CUB_DIR, birds.parent / CUB_DIR, data_dir / CUB_DIR):
        if cub.is_dir():
            return split_dir, cub
    raise DataError(f"no {CUB_DIR} folder in {birds} or {birds.parent}; {_LAYOUT}")


def _require_file(path: Path) -> Path:
    if not path.is_file():
        raise DataError(f"{path} not found; {_LAYOUT}")
    return path


def _load_filenames(path: Path) -> list[str]:
    names = restricted_load(_require_file(path))
    if isinstance(names, np.ndarray):
        names = names.tolist()
    if not isinstance(names, (list, tuple)) or not names:
        raise DataError(f"{path}: expected a non-empty list of 'class_dir/image_name' strings, got {type(names).__name__}")
    out = []
    for i, name in enumerate(names):
        if isinstance(name, bytes):
            name = name.decode("latin1")
        if not isinstance(name, str) or not name.strip():
            raise DataError(f"{path}: entry {i} is {name!r}, not a non-empty 'class_dir/image_name' string")
        parts = name.replace("\\", "/").split("/")
        if name.startswith("/") or ".." in parts:
            raise DataError(f"{path}: entry {i} ({name!r}) must be a relative path inside CUB_200_2011/images")
        out.append(name)
    return out


def _load_embeddings(path: Path, count: int, filenames_path: Path) -> np.ndarray:
    raw = restricted_load(_require_file(path))
    try:
        emb = np.asarray(raw, dtype=np.float32)  # a list of (10, D) arrays or one (N, 10, D) array
    except (TypeError, ValueError) as exc:
        raise DataError(f"{path}: expected an array of shape (N, 10, D) (or a list of N (10, D) arrays): {exc}") from None
    if emb.ndim == 2:
        emb = emb[:, None, :]  # one embedding per image
    if emb.ndim != 3 or emb.shape[1] < 1 or emb.shape[2] < 1:
        raise DataError(f"{path}: expected an array of shape (N, 10, D), got shape {emb.shape}")
    if emb.shape[0] != count:
        raise DataError(
            f"{path} holds {emb.shape[0]} embeddings but {filenames_path} lists {count} images; "
            "the two files must come from the same split"
        )
    if not np.isfinite(emb).all():
        raise DataError(f"{path}: embeddings contain NaN or infinite values")
    return np.ascontiguousarray(emb)


def _load_class_ids(path: Path, count: int, filenames_path: Path) -> np.ndarray:
    raw = restricted_load(_require_file(path))
    try:
        ids = np.asarray(raw)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{path}: expected a list of {count} integer class ids: {exc}") from None
    if ids.ndim != 1 or ids.shape[0] != count:
        raise DataError(f"{path} holds class ids of shape {ids.shape} but {filenames_path} lists {count} images")
    if ids.dtype.kind not in "iu" and not (ids.dtype.kind == "f" and np.all(ids == np.round(ids))):
        raise DataError(f"{path}: class ids must be integers, got dtype {ids.dtype}")
    return ids.astype(np.int64)


def _read_table(path: Path, columns: int) -> list[tuple[int, list[str]]]:
    """Lines ``'<id> <col> ...'`` of a CUB text file as ``(id, [cols])``; blank lines skipped."""
    try:
        text = _require_file(path).read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise DataError(f"{path}: not valid UTF-8") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read file ({exc.strerror or exc})") from None
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != columns + 1:
            raise DataError(f"{path}, line {number}: expected {columns + 1} fields separated by spaces, found {len(fields)}")
        try:
            image_id = int(fields[0])
        except ValueError:
            raise DataError(f"{path}, line {number}: image id {fields[0]!r} is not an integer") from None
        rows.append((image_id, fields[1:]))
    return rows


def load_bounding_boxes(cub_dir: str | os.PathLike) -> dict[str, tuple[int, int, int, int]]:
    """Bounding boxes of CUB, keyed by ``'class_dir/image_name'`` (no extension).

    Reads ``images.txt`` (``<id> <class_dir/image_name.jpg>``) and ``bounding_boxes.txt``
    (``<id> <x> <y> <width> <height>``, floats in pixels) from ``cub_dir`` and joins them on
    the image id. Values are truncated to ``int`` as in StackGAN.

    Returns:
        ``{name: (x, y, width, height)}``, ``x, y`` the top-left corner, in pixels.

    Raises:
        DataError: a file is missing or malformed, an id has no box, or a box has a width or
            height < 1; the message names the file and line.
    """
    cub_dir = Path(cub_dir)
    images_path, boxes_path = cub_dir / "images.txt", cub_dir / "bounding_boxes.txt"
    names = {}
    for image_id, (name,) in _read_table(images_path, 1):
        names[image_id] = os.path.splitext(name)[0]
    boxes: dict[str, tuple[int, int, int, int]] = {}
    for image_id, values in _read_table(boxes_path, 4):
        try:
            x, y, w, h = (int(float(v)) for v in values)
        except ValueError:
            raise DataError(f"{boxes_path}: box of image id {image_id} is {' '.join(values)!r}, not 4 numbers") from None
        if w < 1 or h < 1:
            raise DataError(f"{boxes_path}: box of image id {image_id} has width {w} and height {h}; both must be >= 1")
        if image_id not in names:
            raise DataError(f"{boxes_path}: image id {image_id} is not listed in {images_path}")
        boxes[names[image_id]] = (x, y, w, h)
    return boxes


def crop_box(bbox: tuple[int, int, int, int], width: int, height: int) -> tuple[int, int, int, int]:
    """StackGAN's crop of an image of ``width x height`` pixels around ``bbox = (x, y, w, h)``.

    Returns ``(left, top, right, bottom)`` in pixels (right/bottom exclusive, Pillow's convention):
    the square of side ``2 * int(0.75 * max(w, h))`` centred on ``(int(x + w/2), int(y + h/2))``,
    clipped to the image.
    """
    x, y, w, h = bbox
    r = int(max(w, h) * CROP_RADIUS_FACTOR)
    cx, cy = int((2 * x + w) / 2), int((2 * y + h) / 2)
    return max(0, cx - r), max(0, cy - r), min(width, cx + r), min(height, cy + r)


def _crop_resize(pixels: np.ndarray, bbox, size: int, label: str) -> np.ndarray:
    """``(H, W, 3)`` uint8 -> ``(3, size, size)`` uint8: StackGAN's box crop (if ``bbox``), bilinear resize."""
    height, width = pixels.shape[:2]
    img = Image.fromarray(pixels)
    if bbox is not None:
        box = crop_box(bbox, width, height)
        if box[2] <= box[0] or box[3] <= box[1]:
            raise DataError(f"{label}: bounding box {bbox} lies outside the {width}x{height} image")
        img = img.crop(box)
    if img.size != (size, size):
        img = img.resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(img, dtype=np.uint8).transpose(2, 0, 1)


def load_cub(
    data_dir: str | os.PathLike,
    split: str = "train",
    image_size: int = 64,
    *,
    crop: bool = True,
    limit: int | None = None,
    progress: bool | None = None,
) -> CubSplit:
    """Load one split of CUB birds with its char-CNN-RNN embeddings, decoded and cropped in memory.

    Args:
        data_dir: StackGAN's ``data/birds`` folder, or the folder holding ``birds/`` (see the
            module docstring for the layout).
        split: ``"train"`` (8,855 images in the authors' files) or ``"test"`` (2,933).
        image_size: side ``S`` of the returned square images, in pixels (StackGAN: 64 for
            Stage-I, 256 for Stage-II).
        crop: crop each image around its bounding box as StackGAN does (default); ``False``
            resizes the whole image to ``S x S`` and needs no ``bounding_boxes.txt``.
        limit: load only the first ``limit`` images of the split (``None``: all).
        progress: show a tqdm bar while decoding; ``None`` (default) shows it only on a terminal.

    Returns:
        A :class:`CubSplit` with ``images`` uint8 ``(N, 3, S, S)``, ``embeddings`` float32
        ``(N, 10, D)``, ``class_ids`` int64 ``(N,)`` and ``filenames``.

    Raises:
        ConfigError: ``split``, ``image_size`` or ``limit`` is not allowed.
        DataError: a file is missing (the message names it and the expected layout), a pickle is
            unsafe or malformed, the embedding, class-id and file-name counts differ, an image has
            no bounding box, or an image cannot be decoded (the message names the image).
    """
    if split not in SPLITS:
        raise ConfigError(f"CUB split {split!r} does not exist; allowed: {', '.join(SPLITS)}")
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1:
        raise ConfigError(f"CUB image_size must be a positive integer number of pixels, got {image_size!r}")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ConfigError(f"CUB limit must be a positive integer or None, got {limit!r}")

    split_dir, cub_dir = _find_layout(Path(data_dir), split)
    filenames_path = split_dir / FILENAMES_FILE
    filenames = _load_filenames(filenames_path)
    embeddings = _load_embeddings(split_dir / EMBEDDINGS_FILE, len(filenames), filenames_path)
    class_ids = _load_class_ids(split_dir / CLASS_INFO_FILE, len(filenames), filenames_path)
    if limit is not None:
        filenames, embeddings, class_ids = filenames[:limit], embeddings[:limit], class_ids[:limit]

    images_dir = cub_dir / "images"
    if not images_dir.is_dir():
        raise DataError(f"{images_dir} not found; {_LAYOUT}")
    boxes = load_bounding_boxes(cub_dir) if crop else None
    if boxes is not None:
        missing = [name for name in filenames if name not in boxes]
        if missing:
            raise DataError(
                f"{cub_dir / 'bounding_boxes.txt'} (joined with images.txt) has no box for {len(missing)} image(s) "
                f"of {filenames_path}, e.g. {missing[0]!r}"
            )

    images = np.empty((len(filenames), 3, image_size, image_size), dtype=np.uint8)
    bar = tqdm(filenames, desc=f"CUB {split}", unit="img", disable=None if progress is None else not progress)
    for i, name in enumerate(bar):
        path = images_dir / f"{name}.jpg"
        if not path.is_file():
            raise DataError(f"{path} not found (entry {i} of {filenames_path}); {_LAYOUT}")
        pixels = decode_image(path, mode="RGB")  # raises ImageDecodeError (a DataError) naming the file
        images[i] = _crop_resize(pixels, boxes[name] if boxes is not None else None, image_size, str(path))
    bar.close()

    return CubSplit(
        images=torch.from_numpy(images),
        embeddings=torch.from_numpy(np.array(embeddings, dtype=np.float32)),
        class_ids=torch.from_numpy(np.array(class_ids, dtype=np.int64)),
        filenames=list(filenames),
    )
