"""Human-readable summaries of data files, printed by ``xrender info PATH``.

`describe` dispatches on the file suffix through `DESCRIBERS` (suffix → function
``Path -> str``); folders are DICOM series. Another file kind registers its own describer, e.g.
``DESCRIBERS[".h5"] = describe_h5``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from xrender.io import FILE_FORMATS, match_suffix, read_volume

__all__ = ["DESCRIBERS", "describe", "describe_hdf5", "describe_volume"]

_LABEL_WIDTH = 13


def _line(label: str, value: str) -> str:
    """``label`` padded to a common width, then ``value``; continuation lines indented to match."""
    first, *rest = value.splitlines()
    return "\n".join([f"{label:<{_LABEL_WIDTH}}{first}", *(" " * _LABEL_WIDTH + line for line in rest)])


def _mm(values: Sequence[float]) -> str:
    return "(" + ", ".join(f"{v:.2f}" for v in values) + ") mm"


def describe_volume(path: Path) -> str:
    """Shape, spacing, orientation, direction, origin, extent, value range and isocentre of a volume.

    Args:
        path: a volume file (see `xrender.io.FILE_FORMATS`) or a DICOM series folder.

    Returns:
        Aligned ``label  value`` lines; positions in world mm (LPS), spacing and extent along
        the voxel axes ``(i, j, k)`` = ``(W, H, D)``.

    Raises:
        FileNotFoundError, ValueError: as `xrender.io.read_volume`.
    """
    volume = read_volume(path)
    suffix = match_suffix(path, FILE_FORMATS)
    kind = "DICOM series" if suffix is None else FILE_FORMATS[suffix].name
    d, h, w = volume.shape
    spacing = volume.spacing.double()
    lower, upper = volume.bounding_box()
    data = volume.data.double()
    direction = "\n".join("[" + "  ".join(f"{v:+.4f}" for v in row) + "]" for row in volume.direction.tolist())
    channels = f"{volume.channels} channel" + ("s" if volume.channels > 1 else "")
    extent = torch.tensor([w, h, d], dtype=torch.float64) * spacing
    return "\n".join(
        [
            _line("file", str(path)),
            _line("format", kind),
            _line("shape", f"(D, H, W) = ({d}, {h}, {w}), {channels}"),
            _line("spacing", ", ".join(f"{s:.4g}" for s in spacing.tolist()) + " mm (along i, j, k)"),
            _line("orientation", volume.orientation),
            _line("direction", direction),
            _line("origin", _mm(volume.origin.tolist()) + " (centre of voxel 0, LPS)"),
            _line("extent", " x ".join(f"{e:.2f}" for e in extent.tolist()) + " mm (along i, j, k)"),
            _line("bounds", f"{_mm(lower.tolist())} to {_mm(upper.tolist())} (LPS)"),
            _line("values", f"min {data.min():.6g}, max {data.max():.6g}, mean {data.mean():.6g}"),
            _line("isocentre", _mm(volume.isocenter.tolist()) + " (LPS)"),  # type: ignore[union-attr]
        ]
    )


def describe_hdf5(path: Path) -> str:
    """A DeepFluoro HDF5 file: its C-arm and, per specimen, projections and 3-D landmarks."""
    from xrender.datasets.deepfluoro import describe_deepfluoro  # h5py only when needed

    return describe_deepfluoro(path)


#: Suffix → describer; `describe` sends folders to `describe_volume`.
DESCRIBERS: dict[str, Callable[[Path], str]] = {
    **dict.fromkeys(FILE_FORMATS, describe_volume),
    ".h5": describe_hdf5,
    ".hdf5": describe_hdf5,
}


def describe(path: str | os.PathLike) -> str:
    """A multi-line, human-readable summary of a data file or DICOM folder.

    Args:
        path: a file whose suffix is in `DESCRIBERS`, or a DICOM series folder.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: no describer for the suffix (the message lists them), or the file cannot be
            read. Messages name ``path``.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or folder")
    if path.is_dir():
        return describe_volume(path)
    suffix = match_suffix(path, DESCRIBERS)
    if suffix is None:
        supported = ", ".join(DESCRIBERS)
        raise ValueError(f"{path}: cannot describe this file; expected one of {supported} or a DICOM folder")
    return DESCRIBERS[suffix](path)
