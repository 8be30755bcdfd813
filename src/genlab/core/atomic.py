"""One durable atomic write for every file genlab produces (checkpoints, caches, PNGs, JSON).

:func:`atomic_write` lets a writer fill ``path + ".tmp"``, fsyncs it, renames it onto ``path`` and
fsyncs the folder, so a crash (even SIGKILL or a power cut after the call returns) leaves either
the old file or the new one, never half a file. A leftover ``*.tmp`` from a killed writer is
harmless and overwritten by the next write.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path


def _fsync_path(path: Path, directory: bool = False) -> None:
    fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if directory else 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` to fill ``path + ".<pid>.tmp"`` (parent folders created), then make it ``path`` durably.

    ``write`` receives the temporary path (for writers that take a file name: Pillow, NumPy,
    matplotlib, safetensors). If it raises, the temporary file is removed and ``path`` is untouched.
    Returns ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")  # per process: concurrent writers never share one
    try:
        write(tmp)
        _fsync_path(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_path(path.parent, directory=True)  # make the rename itself durable
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically and durably (see :func:`atomic_write`)."""
    return atomic_write(path, lambda tmp: tmp.write_bytes(data))


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically and durably (see :func:`atomic_write`)."""
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def save_npz(path: str | os.PathLike, arrays: dict) -> Path:
    """Write NumPy ``arrays`` (name → array) as an uncompressed ``.npz`` atomically and durably."""
    import numpy as np

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:  # a file object: np.savez would append ".npz" to a path
            np.savez(f, **arrays)

    return atomic_write(path, write)


def cache_dir() -> Path:
    """genlab's cache folder (decoded datasets, features, text embeddings): ``$GENLAB_CACHE``, else
    ``$XDG_CACHE_HOME/genlab``, else ``~/.cache/genlab``. Not created here."""
    root = os.environ.get("GENLAB_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "genlab")
    return Path(root)


def file_digest(path: str | os.PathLike, algorithm: str = "sha256") -> str:
    """Hex digest of a file's bytes (read in 4 MiB blocks)."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()
