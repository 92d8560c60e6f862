"""The default data shipped with xrender: a procedural, analytic pelvis phantom.

`pelvis_phantom` builds a deterministic pelvis-like phantom from ellipsoids and capped
elliptic cylinders (painted in order, see `xrender.phantom.model`): a soft-tissue trunk with a
subcutaneous fat layer, bowel gas, two hip bones (iliac wing, acetabulum, superior pubic ramus,
pubic body, obturator ring with its foramen, ischium, ischial tuberosity), the sacrum and coccyx,
the L5 vertebra and both proximal femurs (head, neck, trochanters, shaft). Bones are a cortical
shell around cancellous bone. It is anatomically plausible, not anatomically exact.

Frame: LPS millimetres (x → patient left, y → posterior, z → superior), the trunk centred on
``center``. The femoral heads lie 30 mm below and 30 mm anterior of the centre, 80 mm either
side; the sacrum is posterior, the iliac crests superior, the pubic symphysis anterior-inferior.

Landmarks follow the 14 pelvic landmarks of the DeepFluoro dataset (see `LANDMARK_NAMES`);
each sits on the primitive it names: ``FH`` at a femoral-head centre (inside bone), the others on
a bone surface.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import torch

from xrender.phantom.model import HU_AIR, Phantom
from xrender.phantom.primitives import Ellipsoid, EllipticCylinder, Primitive, _frame, _vec3

__all__ = ["LANDMARK_NAMES", "PELVIS_FOV_MM", "PELVIS_HU", "pelvis_phantom"]

#: Edge (mm) of the cubic default field of view of `pelvis_phantom`; it encloses the whole
#: trunk (320 × 220 × 250 mm) with a margin.
PELVIS_FOV_MM = 340.0

#: Hounsfield values of the tissues of `pelvis_phantom`.
PELVIS_HU: dict[str, float] = {
    "air": HU_AIR,
    "gas": -950.0,
    "fat": -90.0,
    "soft_tissue": 40.0,
    "cancellous_bone": 250.0,
    "cortical_bone": 1400.0,
}

#: The 14 landmark names, DeepFluoro order: femoral head centre, greater sciatic notch, inferior
#: and medial obturator foramen, superior and inferior pubic symphysis, anterior superior iliac
#: spine; ``-l`` patient left (+x), ``-r`` patient right (−x).
LANDMARK_NAMES: tuple[str, ...] = tuple(
    f"{name}-{side}" for name in ("FH", "GSN", "IOF", "MOF", "SPS", "IPS", "ASIS") for side in ("l", "r")
)

_CORTEX = PELVIS_HU["cortical_bone"]
_MARROW = PELVIS_HU["cancellous_bone"]
_SOFT = PELVIS_HU["soft_tissue"]

# The left femoral head (centre, radius) anchors the hip; the right side is its mirror image.
_FH = np.array([80.0, -30.0, -30.0])
_FH_RADIUS = 23.0


def _unit(*v: float) -> np.ndarray:
    a = np.asarray(v, dtype=np.float64)
    return a / np.linalg.norm(a)


def _axis_frame(axis: np.ndarray, hint: np.ndarray) -> np.ndarray:
    """Rotation whose local z is ``axis`` and local x leans towards ``hint``."""
    r = _frame(tuple(axis), tuple(hint))  # columns: axis, hint⊥, axis × hint⊥
    return np.stack([r[:, 1], r[:, 2], r[:, 0]], axis=1)


def _rod(a: np.ndarray, b: np.ndarray, radii: tuple[float, float], overlap: float, name: str) -> Ellipsoid:
    """An elongated ellipsoid from ``a`` to ``b`` (extended by ``overlap`` mm at both ends)."""
    axis = b - a
    length = float(np.linalg.norm(axis))
    rot = _frame(tuple(axis), (0.0, 0.0, 1.0) if abs(axis[2]) < 0.9 * length else (0.0, 1.0, 0.0))
    return Ellipsoid((a + b) / 2, (length / 2 + overlap, *radii), rot, _CORTEX, name=name)


def _ellipse_extreme(center: Any, e1: Any, a: float, e2: Any, b: float, u: Any) -> np.ndarray:
    """Point of the planar ellipse ``c + a cosθ e1 + b sinθ e2`` furthest along ``u``."""
    e1, e2, u = (np.asarray(x, dtype=np.float64) for x in (e1, e2, u))
    p1, p2 = a * (u @ e1), b * (u @ e2)
    return np.asarray(center) + (a * p1 * e1 + b * p2 * e2) / np.hypot(p1, p2)


def _ellipsoid_extreme(e: Primitive, u: Any) -> np.ndarray:
    """Surface point of an (unclipped) ellipsoid furthest along the world direction ``u``."""
    r = np.asarray(e.rotation)
    m = r @ np.diag(np.square(e.semi_axes)) @ r.T
    u = np.asarray(u, dtype=np.float64)
    return np.asarray(e.center) + m @ u / np.sqrt(u @ m @ u)


def _left_hip() -> tuple[list[Primitive], list[Primitive], dict[str, np.ndarray]]:
    """Left hip bone: cortical primitives, the cuts made into it, and its landmarks but GSN."""
    acetabulum_center = _FH + np.array([-6.0, 4.0, 10.0])
    rim = _unit(0.65, -0.3, -0.7)  # the acetabulum opens laterally, anteriorly and inferiorly
    acetabulum = Ellipsoid(
        acetabulum_center,
        (27.0, 30.0, 30.0),
        None,
        _CORTEX,
        name="acetabulum",
        clip=((*rim, float(rim @ (_FH - acetabulum_center))),),
    )
    crest = _unit(0.45, -0.89, 0.0)  # posterior → anterior along the iliac crest
    outward = np.array([-crest[1], crest[0], 0.0])  # horizontal, lateral (+x)
    flare = np.radians(30.0)
    up = np.cos(flare) * np.array([0.0, 0.0, 1.0]) + np.sin(flare) * outward
    wing = Ellipsoid((82.0, 5.0, 28.0), (74.0, 55.0, 8.0), _frame(tuple(crest), tuple(up)), _CORTEX, name="iliac wing")
    sup_ramus = _rod(np.array([20.0, -52.0, -45.0]), np.array([64.0, -30.0, -26.0]), (10.0, 9.0), 6.0, "superior ramus")
    pubis_axes = (9.0, 20.0, 12.0)
    tilt = np.radians(20.0)
    pubis_rot = np.stack(
        [[0.0, np.cos(tilt), np.sin(tilt)], [0.0, -np.sin(tilt), np.cos(tilt)], [1.0, 0.0, 0.0]], axis=1
    )
    pubis = EllipticCylinder((2.5 + pubis_axes[2], -50.0, -58.0), pubis_axes, pubis_rot, _CORTEX, name="pubic body")
    ring_center = np.array([45.0, -28.0, -65.0])
    ring_rot = _frame((0.69, 0.72, 0.0), (0.0, 0.0, 1.0))
    ring = Ellipsoid(ring_center, (42.0, 34.0, 6.0), ring_rot, _CORTEX, name="obturator ring")
    ischium = _rod(np.array([72.0, -14.0, -35.0]), np.array([66.0, 2.0, -95.0]), (13.0, 11.0), 5.0, "ischium")
    tuberosity = Ellipsoid((63.0, 4.0, -96.0), (13.0, 17.0, 11.0), None, _CORTEX, name="ischial tuberosity")
    cortices = [acetabulum, wing, sup_ramus, pubis, ring, ischium, tuberosity]

    # The foramen: a cortical rim (inside the ring's marrow, so inside the ring) then the hole.
    foramen_axes = (24.0, 20.0, 14.0)
    rim = Ellipsoid(ring_center, (26.5, 22.5, 4.0), ring_rot, _CORTEX, name="obturator rim")
    foramen = Ellipsoid(ring_center, foramen_axes, ring_rot, _SOFT, name="obturator foramen")
    joint = Ellipsoid(_FH, (_FH_RADIUS + 2.5,) * 3, None, _SOFT, name="hip joint space")
    cuts = [rim, foramen, joint]

    cap = np.asarray(pubis.center) - pubis_axes[2] * pubis_rot[:, 2]  # centre of the symphyseal face
    marks = {
        "FH": _FH.copy(),
        "IOF": _ellipse_extreme(
            ring_center, ring_rot[:, 0], foramen_axes[0], ring_rot[:, 1], foramen_axes[1], (0, 0, -1)
        ),
        "MOF": _ellipse_extreme(
            ring_center, ring_rot[:, 0], foramen_axes[0], ring_rot[:, 1], foramen_axes[1], (-1, 0, 0)
        ),
        "SPS": _ellipse_extreme(cap, pubis_rot[:, 0], pubis_axes[0], pubis_rot[:, 1], pubis_axes[1], (0, 0, 1)),
        "IPS": _ellipse_extreme(cap, pubis_rot[:, 0], pubis_axes[0], pubis_rot[:, 1], pubis_axes[1], (0, 0, -1)),
        "ASIS": _ellipsoid_extreme(wing, _unit(*(crest + 0.3 * up))),
    }
    return cortices, cuts, marks


# The greater sciatic notch is the concave corner where the inferior border of the iliac wing
# meets the posterior acetabulum; GSN is where a ray from inside the notch, heading anteriorly
# and superiorly, first meets bone.
_GSN_SEARCH = (np.array([65.0, 40.0, -40.0]), _unit(0.0, -0.55, 0.835))


def _first_bone(phantom: Phantom, start: np.ndarray, direction: np.ndarray, threshold: float = 200.0) -> np.ndarray:
    """First point at or above ``threshold`` HU on the ray ``start + t · direction`` (t >= 0)."""
    o = torch.as_tensor(start, dtype=torch.float64)
    d = torch.as_tensor(direction, dtype=torch.float64)
    t0, _, hu = phantom.segments(o, d, near=0.0, far=200.0)
    t = float(t0[int(torch.nonzero(hu >= threshold)[0, 0])])
    return start + t * direction


def _left_femur() -> list[Primitive]:
    neck_axis = _unit(0.72, 0.12, -0.68)
    shaft_axis = _unit(0.12, 0.0, 1.0)
    return [
        Ellipsoid(_FH, (_FH_RADIUS,) * 3, None, _CORTEX, name="femoral head"),
        EllipticCylinder(
            _FH + 30.0 * neck_axis,
            (14.0, 12.0, 22.0),
            _axis_frame(neck_axis, np.array([0.0, 0.0, 1.0])),
            _CORTEX,
            name="femoral neck",
        ),
        Ellipsoid(
            (126.0, -22.0, -50.0),
            (13.0, 20.0, 24.0),
            _frame((0.97, 0.0, 0.25), (0.0, 1.0, 0.0)),
            _CORTEX,
            name="greater trochanter",
        ),
        Ellipsoid((103.0, -14.0, -76.0), (8.0, 9.0, 9.0), None, _CORTEX, name="lesser trochanter"),
        EllipticCylinder(
            (115.0, -22.0, -92.0),
            (14.0, 14.0, 31.0),
            _axis_frame(shaft_axis, np.array([1.0, 0.0, 0.0])),
            _CORTEX,
            name="femoral shaft",
        ),
    ]


def _marrow(p: Primitive) -> Primitive:
    """Cancellous interior of a cortical primitive (thicker walls along a long-bone shaft)."""
    thickness: Any = (5.0, 5.0, 2.0) if p.name.startswith("femoral shaft") else 2.5 if min(p.semi_axes) > 6 else 2.0
    return p.inset(thickness, _MARROW, name=f"{p.name} marrow")


def _both_sides(parts: list[Primitive]) -> list[Primitive]:
    left = [replace(p, name=f"{p.name} l") for p in parts]
    right = [replace(p.mirrored_x(), name=f"{p.name} r") for p in parts]
    return left + right


def _spine() -> tuple[list[Primitive], list[Primitive]]:
    """Sacrum, coccyx and L5: cortical primitives and those that get a marrow."""
    sacrum = Ellipsoid(
        (0.0, 38.0, 47.0),
        (54.0, 22.0, 95.0),
        _frame((1.0, 0.0, 0.0), (0.0, 0.866, 0.5)),
        _CORTEX,
        name="sacrum",
        clip=((0.0, 0.0, 1.0, 5.0),),
    )  # flat S1 endplate, tapering to the apex
    coccyx = Ellipsoid(
        (0.0, 80.0, -52.0),
        (7.0, 6.0, 14.0),
        _axis_frame(_unit(0.0, 0.5, 0.866), np.array([1.0, 0, 0])),
        _CORTEX,
        name="coccyx",
    )
    lordosis = _axis_frame(_unit(0.0, -0.17, 0.985), np.array([1.0, 0.0, 0.0]))
    l5 = EllipticCylinder((0.0, 28.0, 76.0), (26.0, 19.0, 13.0), lordosis, _CORTEX, name="L5 body")
    arch = [
        Ellipsoid((14.0, 55.0, 77.0), (5.0, 10.0, 7.0), None, _CORTEX, name="L5 pedicle l"),
        Ellipsoid((-14.0, 55.0, 77.0), (5.0, 10.0, 7.0), None, _CORTEX, name="L5 pedicle r"),
        Ellipsoid((0.0, 69.0, 75.0), (20.0, 7.0, 11.0), None, _CORTEX, name="L5 lamina"),
        Ellipsoid(
            (0.0, 86.0, 70.0),
            (5.0, 13.0, 9.0),
            _frame((1.0, 0.0, 0.0), (0.0, 1.0, -0.3)),
            _CORTEX,
            name="L5 spinous process",
        ),
        Ellipsoid(
            (30.0, 55.0, 78.0),
            (20.0, 6.0, 6.0),
            _frame((1.0, 0.0, 0.25), (0.0, 1.0, 0.0)),
            _CORTEX,
            name="L5 transverse process l",
        ),
        Ellipsoid(
            (-30.0, 55.0, 78.0),
            (20.0, 6.0, 6.0),
            _frame((1.0, 0.0, -0.25), (0.0, 1.0, 0.0)),
            _CORTEX,
            name="L5 transverse process r",
        ),
    ]
    return [sacrum, coccyx, l5, *arch], [sacrum, l5]


def pelvis_phantom(center: Any = (0.0, 0.0, 0.0)) -> Phantom:
    """The default xrender phantom: an analytic, pelvis-like trunk in HU.

    Deterministic (no randomness): every call returns the same geometry. Voxelise it with
    `Phantom.to_volume` (default field of view `PELVIS_FOV_MM`), integrate along rays
    exactly with `Phantom.line_integral`.

    Args:
        center: world position ``(3,)`` (mm, LPS) of the trunk's centre, which is also the
            phantom's `center` and the volume isocentre.

    Returns:
        The phantom, with the 14 landmarks of `LANDMARK_NAMES` and tissue values from
        `PELVIS_HU`.

    Raises:
        ValueError: ``center`` is not 3 finite numbers.
    """
    offset = _vec3(center, "center")
    hu = PELVIS_HU
    body = [
        EllipticCylinder((0.0, 0.0, 0.0), (160.0, 110.0, 125.0), None, hu["fat"], name="subcutaneous fat"),
        EllipticCylinder((0.0, 0.0, 0.0), (146.0, 96.0, 125.0), None, hu["soft_tissue"], name="soft tissue"),
    ]
    gas = [
        Ellipsoid((0.0, 45.0, -30.0), (14.0, 11.0, 20.0), None, hu["gas"], name="rectal gas"),
        Ellipsoid(
            (35.0, -20.0, 40.0),
            (22.0, 13.0, 11.0),
            _frame((0.87, 0.5, 0.0), (0.0, 0.0, 1.0)),
            hu["gas"],
            name="sigmoid gas",
        ),
        Ellipsoid((-50.0, -40.0, 62.0), (20.0, 15.0, 12.0), None, hu["gas"], name="caecal gas"),
    ]
    hip, cuts, marks = _left_hip()
    hip_cortex = _both_sides(hip)
    spine_cortex, spine_marrow = _spine()
    femur = _both_sides(_left_femur())
    primitives = [
        *body,
        *gas,
        *hip_cortex,
        *(_marrow(p) for p in hip_cortex),
        *_both_sides(cuts),
        *spine_cortex,
        *(_marrow(p) for p in spine_marrow),
        *femur,
        *(_marrow(p) for p in femur),
    ]
    marks["GSN"] = _first_bone(Phantom(tuple(primitives)), _GSN_SEARCH[0], _GSN_SEARCH[1])
    landmarks = {}
    for name in ("FH", "GSN", "IOF", "MOF", "SPS", "IPS", "ASIS"):
        left = marks[name]
        landmarks[f"{name}-l"] = tuple(left.tolist())
        landmarks[f"{name}-r"] = (-float(left[0]), float(left[1]), float(left[2]))
    phantom = Phantom(tuple(primitives), landmarks, center=(0.0, 0.0, 0.0), fov_mm=PELVIS_FOV_MM)
    return phantom.translated(offset) if any(offset) else phantom
