"""Checks of the paths a command will write, made before any work, so that a long benchmark or
training never ends in a bare ``FileExistsError`` / ``NotADirectoryError`` with its results lost."""

from __future__ import annotations

import os
from pathlib import Path

from genlab.errors import GenlabError


def check_writable(path: str | os.PathLike, option: str, *, folder: bool = False) -> Path:
    """Raise :class:`GenlabError` naming ``option`` unless ``path`` can be written; returns it as a ``Path``.

    ``path`` is a file to write (``folder=False``) or a folder to write into (``folder=True``); it
    and missing parents are created later by the writer. Refused: a file where a parent folder
    must be (``results.json/x.png``), a folder where the file must be and a file where the folder
    must be, and a nearest existing parent that this process may not write in.
    """
    path = Path(path)
    kind = "folder" if folder else "file"
    if path.exists() and path.is_dir() != folder:
        what = "a folder" if path.is_dir() else "a file"
        raise GenlabError(f"{option}: {path} is {what}; give a {kind} to write")
    for parent in path.parents:  # nearest first
        if parent.exists():
            if not parent.is_dir():
                raise GenlabError(f"{option}: {path} cannot be written: {parent} is a file, not a folder")
            if not os.access(parent, os.W_OK | os.X_OK):
                raise GenlabError(f"{option}: {path} cannot be written: no permission to write in {parent}")
            break
    return path
