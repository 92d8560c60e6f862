"""File paths: the one `PathLike` type of xrender's readers and writers, and suffix matching."""

from __future__ import annotations

import os
from collections.abc import Collection
from pathlib import Path

__all__ = ["PathLike", "match_suffix"]

#: A file path as readers and writers accept it: a string or any `os.PathLike` (e.g. `pathlib.Path`).
PathLike = str | os.PathLike


def match_suffix(path: PathLike, suffixes: Collection[str]) -> str | None:
    """The longest of ``suffixes`` that ends ``path``'s file name (case-insensitive), or ``None``.

    Longest first, so ``scan.nii.gz`` matches ``.nii.gz`` rather than ``.gz`` and
    ``points.mrk.json`` matches ``.mrk.json`` rather than ``.json``.
    """
    name = Path(path).name.lower()
    found = [s for s in suffixes if name.endswith(s) and len(name) > len(s)]
    return max(found, key=len, default=None)
