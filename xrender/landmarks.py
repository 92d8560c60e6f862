"""Named 3-D landmarks in world millimetres (LPS).

RAS and LPS differ by the sign of x and y (`ras_to_lps`); every `Landmarks` holds LPS points, the
frame of `Volume`'s affine. `xrender.io.read_landmarks` and `xrender.io.write_landmarks` read
and write them in the files 3D Slicer and spreadsheets keep them in (`xrender.io.landmarks`).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor

from xrender._checks import check_finite, check_shape
from xrender.volume import LPS_FROM_RAS

__all__ = ["Landmarks", "lps_to_ras", "ras_to_lps"]


@dataclass(frozen=True, eq=False)
class Landmarks:
    """Named points in the world frame.

    Attributes:
        names: one unique, non-empty name per point.
        points: positions ``(N, 3)`` in mm, LPS (floating; integers become the default dtype).

    Raises:
        ValueError: shape ``(N, 3)`` violated, names and points of different lengths, empty or
            repeated names, or non-finite points.
    """

    names: tuple[str, ...]
    points: Float[Tensor, "N 3"]

    def __post_init__(self) -> None:
        names = tuple(self.names)
        points = check_shape(torch.as_tensor(self.points), "N 3", "Landmarks.points")
        if not points.is_floating_point():
            points = points.to(torch.get_default_dtype())
        check_finite(points, "Landmarks.points")
        if len(names) != len(points):
            raise ValueError(f"Landmarks: expected one name per point ({len(points)}), got {len(names)} names")
        if not all(isinstance(n, str) and n.strip() for n in names):
            raise ValueError(f"Landmarks: expected non-empty string names, got {list(names)}")
        repeated = sorted(n for n, count in Counter(names).items() if count > 1)
        if repeated:
            raise ValueError(f"Landmarks: expected unique names, got repeated {repeated}")
        object.__setattr__(self, "names", names)
        object.__setattr__(self, "points", points)

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, name: str) -> Float[Tensor, "3"]:
        """The point (mm, LPS) called ``name``; `KeyError` listing the names if absent."""
        if name not in self.names:
            raise KeyError(f"no landmark {name!r}; expected one of {list(self.names)}")
        return self.points[self.names.index(name)]

    def to_dict(self) -> dict[str, tuple[float, float, float]]:
        """``{name: (x, y, z)}`` in mm, LPS, as plain floats (JSON-ready), in file order."""
        return {name: tuple(p) for name, p in zip(self.names, self.points.tolist())}  # type: ignore[misc]


def ras_to_lps(points: Float[Tensor, "*N 3"]) -> Float[Tensor, "*N 3"]:
    """Points in RAS (NIfTI, Slicer) → the same points in LPS (ITK, DICOM): negate x and y."""
    check_shape(points, "* 3", "points")
    return points * LPS_FROM_RAS.diagonal()[:3].to(points)


def lps_to_ras(points: Float[Tensor, "*N 3"]) -> Float[Tensor, "*N 3"]:
    """Points in LPS → the same points in RAS; the flip is its own inverse."""
    return ras_to_lps(points)
