"""Analytic phantoms with exact line integrals, and xrender's embedded default data.

* `pelvis_phantom`: the deterministic pelvis-like phantom (HU, LPS mm, 14 DeepFluoro
  landmarks) that ships with the code — no downloads.
* `Phantom`: ordered primitives → HU at points (`Phantom.hu`), exact ray integrals of
  any transfer function (`Phantom.line_integral`), voxelisation (`Phantom.to_volume`).
* `Ellipsoid`, `EllipticCylinder`: the convex primitives, with exact ray
  intersections (`Primitive.intersect`).
"""

from xrender.phantom.model import Phantom
from xrender.phantom.pelvis import LANDMARK_NAMES, PELVIS_FOV_MM, PELVIS_HU, pelvis_phantom
from xrender.phantom.primitives import Ellipsoid, EllipticCylinder, Primitive, rotation_from_axes

__all__ = [
    "LANDMARK_NAMES",
    "PELVIS_FOV_MM",
    "PELVIS_HU",
    "Ellipsoid",
    "EllipticCylinder",
    "Phantom",
    "Primitive",
    "pelvis_phantom",
    "rotation_from_axes",
]
