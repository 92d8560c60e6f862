"""SimpleITK reads with errors that name the file, for the volume and the X-ray readers."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import SimpleITK as sitk

_ITK_PREFIX = re.compile(r"^.*ITK ERROR: \w+\(0x[0-9a-fA-F]+\):\s*", re.DOTALL)


def sitk_reason(error: RuntimeError) -> str:
    """SimpleITK's error text without the C++ source location, on one line."""
    return " ".join(_ITK_PREFIX.sub("", str(error)).split())


def sitk_execute(action: Callable[[], sitk.Image], path: Path, what: str) -> sitk.Image:
    """Run a SimpleITK read, turning its RuntimeError into a ValueError that names ``path``."""
    try:
        return action()
    except RuntimeError as error:
        raise ValueError(f"{path}: could not read as {what} (SimpleITK said: {sitk_reason(error)})") from error
