"""Atomic file output: a file appears complete or not at all."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from xrender.io._paths import PathLike

__all__ = ["atomic_output"]


@contextmanager
def atomic_output(path: PathLike) -> Iterator[Path]:
    """Stage a write so that ``path`` appears complete or not at all.

    Yields a path with ``path``'s file name inside a fresh hidden folder next to it (parent
    folders are created). When the ``with`` block succeeds, every file written in that folder
    is moved with `os.replace` into ``path``'s folder, ``path`` itself last, so a header
    (``.mhd``, ``.nhdr``) never appears before its detached data file and keeps naming it
    correctly. The staging folder is removed in every case.

    Args:
        path: the final file path.

    Yields:
        The staging path to write to.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        yield staging / path.name
        for written in sorted(staging.iterdir(), key=lambda p: p.name == path.name):
            os.replace(written, path.parent / written.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
