r"""C-arm geometry and view from the values of an X-ray DICOM file's standard tags.

`CArmTags` holds the geometric tags of one X-ray frame as numbers and strings
(`xrender.io.read_dicom_xray` reads them from a file). `carm_geometry` turns them into a
`ConeBeam`, `carm_view` into an initial camera-to-world pose and the flip that brings the stored
image to xrender's view from the source (`CArmView`); `xrender.io.read_carm` reads a file and
does both. Keyword arguments fill in or override missing tags; each missing value raises a
`ValueError` that names the DICOM attribute, its tag and the keyword (and the
``xrender register`` option) that supplies it.

**Geometry.** Distance Source to Detector (0018,1110) is ``sdd``, Distance Source to Patient
(0018,1111) — the source-to-isocentre distance — is ``sid``, and Imager Pixel Spacing
(0018,1164), measured at the detector, is the ``(row, column)`` pixel spacing. Pixel Spacing
(0028,0030) is recorded but not used: it may be calibrated at another plane. No standard legacy
tag states where the perpendicular from the source meets the detector, so the principal point is
the image centre. A detector tilted against the beam (Detector Primary or Secondary Angle
(0018,1530)/(0018,1531) non-zero) is refused.

**Angles** (DICOM PS3.3 C.8.7.5.1.2). The Positioner Primary and Secondary Angles
(0018,1510)/(0018,1511) place the image intensifier or detector about the patient: at 0° and 0°
the patient faces the detector (detector anterior, source posterior); primary +90° is LAO
(detector at the patient's left), −90° RAO; secondary +90° is cranial, −90° caudal. With
$\alpha$ the primary and $\beta$ the secondary angle, the unit vector from the isocentre to the
detector in world LPS is

$$
d = (\sin\alpha\cos\beta,\; -\cos\alpha\cos\beta,\; \sin\beta),
$$

the beam (camera $+z$) is $d$, and the source sits at $\text{isocentre} - \text{sid}\cdot d$. The
camera axes are $R(\alpha, \beta) = R_z(\alpha)\,R_x(-\beta)\,R_{pa}$, where the columns of
$R_{pa}$ are ``VIEW_AXES["pa"]``: 0°/0° is `standard_pose` ``"pa"``, LAO 90° is ``"ll"`` and RAO
90° is ``"rl"``. The angles are those of the frame read (`xrender.io.dicom` applies the
increments of a rotational run).

The angles are used when Positioner Type (0018,1508) is absent or ``CARM``: the DX Positioning
Module gives them this meaning only for a C-arm (for ``MAMMOGRAPHIC`` they mean something else).
Without positioner angles, a standard view (``"ap"``, ``"pa"``, ``"ll"``, ``"rl"``) stands in for
$R$: given by hand, or from View Position (0018,5101) (`VIEW_POSITIONS`).

**Mirror and orientation.** xrender's images are seen from the source; DICOM describes C-arm
images as seen looking from the detector towards the source (PS3.3 C.8.19.6.13.1: the detector's
X axis runs from left to right and its Z axis from bottom to top "looking towards the source"),
the mirror image. When Patient Orientation (0020,0020) is present it decides: its two values
(letters L, R, A, P, H, F, possibly combined such as ``"LP"``) give the world directions $a$ of
increasing columns and $b$ of increasing rows (PS3.3 C.7.6.1.1.1). The stored image is already a
view from the source if $(a \times b)\cdot d > 0$ (flip ``"none"``); otherwise it is mirrored
(flip ``"horizontal"``, after which $a$ becomes $-a$). Of the four in-plane rotations of the
camera axes about $d$ by 0°, 90°, 180° or 270°, the pose takes the one whose $x$ and $y$ axes
agree best with $a$ and $b$, so a rotated or upside-down detector goes into the pose and only a
mirror becomes a flip. Without Patient Orientation:

* with positioner angles, the stored image is taken to be the mirror image of the view from the
  source with axes $R(\alpha, \beta)$ — flip ``"horizontal"``;
* with a standard view, the stored image is taken to be shown as radiographs usually are, head at
  the top (`DISPLAY_ORIENTATIONS`): AP and PA with the patient's left on the viewer's right (flip
  ``"none"`` for AP, ``"horizontal"`` for PA), laterals as seen from the detector side (a left
  lateral faces the viewer's left; flip ``"horizontal"``).

The angles and the mirror rule are pinned by ``test_convention_dicom_*`` in ``tests/io/test_dicom.py``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

import torch
from jaxtyping import Float
from torch import Tensor

from xrender._checks import check_finite, check_positive, check_shape
from xrender.geometry.camera import ConeBeam
from xrender.geometry.rotations import euler_to_matrix
from xrender.geometry.se3 import make_pose
from xrender.geometry.views import VIEW_AXES

__all__ = [
    "DISPLAY_ORIENTATIONS",
    "VIEW_POSITIONS",
    "CArmTags",
    "CArmView",
    "carm_geometry",
    "carm_view",
    "patient_orientation",
]

#: View Position (0018,5101) → standard view. ``AP``/``PA``: the beam enters the patient's
#: anterior/posterior side; ``LL``/``RL`` (left/right lateral): the patient's left/right side
#: is against the detector, so the beam runs from right to left / left to right. Decubitus
#: (``RLD``, ``LLD``) and oblique (``RLO``, ``LLO``) views, and a bare ``LATERAL`` (which side?),
#: have no fixed direction and are refused.
VIEW_POSITIONS: Mapping[str, str] = MappingProxyType({"AP": "ap", "PA": "pa", "LL": "ll", "RL": "rl"})

#: Standard view → the Patient Orientation (0020,0020) assumed when the file has none: how such
#: a radiograph is usually shown, head at the top; AP and PA with the patient's left on the
#: viewer's right, laterals as seen from the detector side.
DISPLAY_ORIENTATIONS: Mapping[str, tuple[str, str]] = MappingProxyType(
    {"ap": ("L", "F"), "pa": ("L", "F"), "ll": ("P", "F"), "rl": ("A", "F")}
)

#: Patient Orientation letter → (world LPS axis, sign) of the direction it names.
_LETTERS: Mapping[str, tuple[int, float]] = MappingProxyType(
    {"L": (0, 1.0), "R": (0, -1.0), "P": (1, 1.0), "A": (1, -1.0), "H": (2, 1.0), "F": (2, -1.0)}
)

#: A Patient Orientation whose image plane is this close to containing the beam (|n̂·d| below
#: sin 15°) contradicts the beam direction and is refused.
_MIN_ALIGNMENT = math.sin(math.radians(15.0))

#: DICOM keyword → the attribute's name and tag, as messages name it (pydicom's data dictionary).
_ATTRIBUTES: Mapping[str, str] = MappingProxyType(
    {
        "DistanceSourceToDetector": "Distance Source to Detector (0018,1110)",
        "DistanceSourceToPatient": "Distance Source to Patient (0018,1111)",
        "ImagerPixelSpacing": "Imager Pixel Spacing (0018,1164)",
        "PositionerPrimaryAngle": "Positioner Primary Angle (0018,1510)",
        "PositionerSecondaryAngle": "Positioner Secondary Angle (0018,1511)",
        "DetectorPrimaryAngle": "Detector Primary Angle (0018,1530)",
        "DetectorSecondaryAngle": "Detector Secondary Angle (0018,1531)",
        "ViewPosition": "View Position (0018,5101)",
    }
)


# --------------------------------------------------------------------------------------- records
@dataclass(frozen=True)
class CArmTags:
    """The geometric tags of an X-ray DICOM file; each is ``None`` when absent, empty or unreadable.

    Attributes:
        rows: Rows (0028,0010).
        columns: Columns (0028,0011).
        sdd: Distance Source to Detector (0018,1110), mm.
        sid: Distance Source to Patient (0018,1111): source to isocentre, mm.
        imager_pixel_spacing: Imager Pixel Spacing (0018,1164), ``(row, column)`` mm at the
            detector.
        pixel_spacing: Pixel Spacing (0028,0030), ``(row, column)`` mm; informational only (it
            may be calibrated at another plane than the detector).
        primary_angle_deg: Positioner Primary Angle (0018,1510) of the frame read, degrees
            (LAO > 0, RAO < 0), increments applied (`xrender.io.dicom`).
        secondary_angle_deg: Positioner Secondary Angle (0018,1511) of the frame read, degrees
            (cranial > 0, caudal < 0), increments applied.
        positioner_type: Positioner Type (0018,1508), e.g. ``"CARM"``, ``"COLUMN"``.
        patient_orientation: Patient Orientation (0020,0020) as stored, e.g. ``("L", "F")``.
        view_position: View Position (0018,5101), e.g. ``"AP"``.
        detector_primary_angle_deg: Detector Primary Angle (0018,1530), degrees.
        detector_secondary_angle_deg: Detector Secondary Angle (0018,1531), degrees.

    Examples:
        >>> from xrender.geometry import CArmTags, carm_geometry
        >>> tags = CArmTags(sdd=1000.0, sid=600.0, imager_pixel_spacing=(0.5, 0.5), view_position="AP")
        >>> tags.sdd, tags.primary_angle_deg  # absent tags are None
        (1000.0, None)
        >>> carm_geometry(tags, (8, 6)).principal_point
        (2.5, 3.5)
    """

    rows: int | None = None
    columns: int | None = None
    sdd: float | None = None
    sid: float | None = None
    imager_pixel_spacing: tuple[float, float] | None = None
    pixel_spacing: tuple[float, float] | None = None
    primary_angle_deg: float | None = None
    secondary_angle_deg: float | None = None
    positioner_type: str | None = None
    patient_orientation: tuple[str, ...] | None = None
    view_position: str | None = None
    detector_primary_angle_deg: float | None = None
    detector_secondary_angle_deg: float | None = None


@dataclass(frozen=True)
class CArmView:
    """Where the C-arm looked from, and how to bring the stored image to xrender's view.

    Attributes:
        pose: ``(4, 4)`` float64 camera-to-world pose (world LPS mm) of the image **after**
            ``flip`` is applied.
        flip: a key of `xrender.image.FLIPS` (``"none"`` or ``"horizontal"``) to pass to
            `xrender.image.XRayPreprocessing`: it turns the stored image into a view from the
            source.
        direction: where the beam direction came from, e.g. ``"LAO 30°, CRA 10° (Positioner
            Primary/Secondary Angle)"``.
        orientation: where the handedness came from, e.g. ``"Patient Orientation L\\F"``.

    Examples:
        >>> import torch
        >>> from xrender.geometry import CArmTags, carm_view
        >>> view = carm_view(CArmTags(sid=600.0, view_position="AP"), torch.zeros(3, dtype=torch.float64))
        >>> view.flip, view.pose.dtype
        ('none', torch.float64)
        >>> print(view.describe())
        view ap (View Position AP); no Patient Orientation: ...; source at (0.0, -600.0, 0.0) mm (LPS)
    """

    pose: Float[Tensor, "4 4"]
    flip: str
    direction: str
    orientation: str

    def describe(self) -> str:
        """One line: the direction, the orientation, the flip and the source position."""
        x, y, z = (float(c) for c in self.pose[:3, 3])
        return (
            f"{self.direction}; {self.orientation}; flip {self.flip!r}; source at ({x:.1f}, {y:.1f}, {z:.1f}) mm (LPS)"
        )


# -------------------------------------------------------------------------------------- geometry
#: Missing value → (DICOM keyword, keyword argument, command-line option).
_SOURCES: Mapping[str, tuple[str, str, str]] = MappingProxyType(
    {
        "sdd": ("DistanceSourceToDetector", "sdd=<mm>", "--sdd MM"),
        "sid": ("DistanceSourceToPatient", "sid=<mm> (source to isocentre)", "--sid MM"),
        "pixel_spacing": ("ImagerPixelSpacing", "pixel_spacing=(row, column) in mm", "--spacing ROW,COL"),
    }
)


def _required(value: object, tag_value: object, origin: str, name: str) -> object:
    """``value`` if given, else the tag's value, else a `ValueError` saying how to supply it."""
    if value is not None:
        return value
    if tag_value is not None:
        return tag_value
    keyword, argument, option = _SOURCES[name]
    raise ValueError(
        f"{origin}: {_ATTRIBUTES[keyword]} is missing or unreadable; pass {argument} (command line: {option})"
    )


def _check_untilted(tags: CArmTags, origin: str) -> None:
    tilts = {
        "DetectorPrimaryAngle": tags.detector_primary_angle_deg,
        "DetectorSecondaryAngle": tags.detector_secondary_angle_deg,
    }
    tilted = [f"{_ATTRIBUTES[keyword]} = {angle:g}°" for keyword, angle in tilts.items() if angle]
    if tilted:
        raise ValueError(
            f"{origin}: {' and '.join(tilted)}: the beam is tilted against the detector's normal; "
            "xrender's ConeBeam needs a detector perpendicular to the principal ray, so a tilted detector "
            "is not supported"
        )


def carm_geometry(
    tags: CArmTags,
    shape: tuple[int, int],
    *,
    sdd: float | None = None,
    sid: float | None = None,
    pixel_spacing: tuple[float, float] | None = None,
    origin: str = "CArmTags",
) -> ConeBeam:
    """The `ConeBeam` of the stored image, from its tags; keywords fill in or override them.

    Args:
        tags: the image's tags, e.g. `xrender.io.DicomXRay.tags`.
        shape: ``(H, W)``, the size of the image as stored (e.g. `xrender.io.DicomXRay.shape`).
        sdd: source-to-detector distance, mm; default Distance Source to Detector (0018,1110).
        sid: source-to-isocentre distance, mm; default Distance Source to Patient (0018,1111),
            or ``None`` when absent (the geometry does not need it; a pose does).
        pixel_spacing: ``(row, column)`` mm at the detector; default Imager Pixel Spacing
            (0018,1164). Pixel Spacing (0028,0030) is not used.
        origin: where the tags came from (e.g. the file's path), the start of every error message.

    Returns:
        The geometry of the whole ``H × W`` image as stored, principal point at its centre (no
        standard legacy tag records it). Flipping it with `xrender.image.XRayPreprocessing`
        keeps it valid.

    Raises:
        ValueError: ``sdd`` or the pixel spacing neither given nor in the file (the message names
            the tag, the keyword and the command-line option), a tilted detector, or invalid
            values.

    Examples:
        >>> from xrender.geometry import CArmTags, carm_geometry
        >>> tags = CArmTags(sdd=1020.0, imager_pixel_spacing=(0.3, 0.3))
        >>> geometry = carm_geometry(tags, (512, 512), sid=600.0)  # a keyword fills in a missing tag
        >>> geometry.sdd, geometry.sid, geometry.focal_length
        (1020.0, 600.0, (3400.0, 3400.0))
    """
    _check_untilted(tags, origin)
    distance = _required(sdd, tags.sdd, origin, "sdd")
    spacing = _required(pixel_spacing, tags.imager_pixel_spacing, origin, "pixel_spacing")
    height, width = shape
    return ConeBeam(
        sdd=distance,
        height=height,
        width=width,
        pixel_spacing=tuple(spacing),
        sid=tags.sid if sid is None else sid,
    )


# ------------------------------------------------------------------------------------------ view
def _carm_axes(primary_deg: float, secondary_deg: float) -> Tensor:
    """Camera axes ``R(α, β) = Rz(α) Rx(−β) R_pa`` (columns x, y, z in world LPS), float64."""
    angles = torch.tensor([primary_deg, -secondary_deg, 0.0], dtype=torch.float64)
    return euler_to_matrix(angles, "ZXY", degrees=True) @ _view_axes("pa")


def _view_axes(view: str) -> Tensor:
    return torch.tensor(VIEW_AXES[view], dtype=torch.float64).T


def _angle_names(primary_deg: float, secondary_deg: float) -> str:
    side = "LAO" if primary_deg >= 0 else "RAO"
    tilt = "CRA" if secondary_deg >= 0 else "CAU"
    return f"{side} {abs(primary_deg):g}°, {tilt} {abs(secondary_deg):g}°"


def _joined(orientation: tuple[str, ...]) -> str:
    """Patient Orientation values as DICOM writes them, e.g. ``L\\F``."""
    return "\\".join(orientation)


def _orientation_vectors(orientation: tuple[str, ...], origin: str) -> tuple[Tensor, Tensor]:
    """Unit world vectors ``(a, b)`` of increasing columns and rows named by a Patient Orientation.

    Each value is one to three letters of `_LETTERS` on different axes (``"L"``, ``"LP"``, ...);
    the two directions must be at least 30° apart.
    """
    vectors = []
    for value in orientation:
        known = [_LETTERS[letter] for letter in value if letter in _LETTERS]
        vector = torch.zeros(3, dtype=torch.float64)
        for axis, sign in known:
            vector[axis] = sign
        if known and len(known) == len(value) == len({axis for axis, _ in known}):
            vectors.append(vector / vector.norm())
    if len(orientation) != 2 or len(vectors) != 2 or float(torch.linalg.cross(*vectors).norm()) < 0.5:
        raise ValueError(
            f"{origin}: Patient Orientation (0020,0020) is {_joined(orientation)!r}; expected two values such as L\\F, "
            "each made of the letters L, R, A, P, H, F (no axis twice), naming two different directions"
        )
    return vectors[0], vectors[1]


def patient_orientation(pose: Float[Tensor, "4 4"]) -> tuple[str, str]:
    """Patient Orientation (0020,0020) of an image seen from the source at camera-to-world ``pose``.

    The world directions of increasing columns and rows are the camera's ``x`` and ``y`` axes;
    each is named by the letters of its components larger than a quarter of its largest one, in
    order of magnitude (PS3.3 C.7.6.1.1.1: ``"L"``, ``"LP"``, ...). Read back
    (`carm_view`), ``(a × b) · d > 0``: the image is a view from the source, and no flip is made.

    Examples:
        >>> import torch
        >>> from xrender.geometry import standard_pose
        >>> from xrender.geometry.carm import patient_orientation
        >>> patient_orientation(standard_pose("ap", 600.0, torch.zeros(3)))  # columns to the left, rows down
        ('L', 'F')
        >>> patient_orientation(standard_pose("ll", 600.0, torch.zeros(3)))
        ('A', 'F')
    """
    names = []
    for axis in (pose[:3, 0], pose[:3, 1]):
        values = axis.detach().double().cpu().tolist()
        largest = max(abs(v) for v in values)
        order = sorted(range(3), key=lambda k: -abs(values[k]))
        letters = [k for k in order if abs(values[k]) > 0.25 * largest]
        codes = {(a, sign): letter for letter, (a, sign) in _LETTERS.items()}
        names.append("".join(codes[(k, 1.0 if values[k] > 0 else -1.0)] for k in letters))
    return names[0], names[1]


def _in_plane_rotations(R: Tensor) -> list[Tensor]:
    """``R`` turned about its z axis by 0°, 90°, 180° and 270° (the same beam, the image rotated)."""
    x, y, z = R.unbind(dim=-1)
    return [torch.stack([u, v, z], dim=-1) for u, v in ((x, y), (y, -x), (-x, -y), (-y, x))]


def _orient(R: Tensor, orientation: tuple[str, ...], origin: str, direction: str) -> tuple[Tensor, str]:
    """The camera axes and the flip that match a Patient Orientation (module docstring)."""
    a, b = _orientation_vectors(orientation, origin)
    normal = torch.linalg.cross(a, b)
    alignment = float(normal @ R[:, 2]) / float(normal.norm())
    if abs(alignment) < _MIN_ALIGNMENT:
        raise ValueError(
            f"{origin}: Patient Orientation (0020,0020) {_joined(orientation)} describes an image plane nearly "
            f"parallel to the beam of {direction}; the two disagree"
        )
    flip = "none" if alignment > 0 else "horizontal"
    if flip == "horizontal":
        a = -a
    rotated = max(_in_plane_rotations(R), key=lambda Q: float(a @ Q[:, 0] + b @ Q[:, 1]))
    return rotated, flip


_DIRECTION_HINT = (
    "pass angles=(primary, secondary) in degrees (command line: --angles PRIMARY,SECONDARY) "
    "or view='ap'|'pa'|'ll'|'rl' (command line: --view)"
)


def _given_angles(angles: tuple[float, float]) -> tuple[float, float]:
    values = tuple(angles) if isinstance(angles, (tuple, list)) else ()
    if len(values) != 2 or not all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values
    ):
        raise ValueError(f"carm_view: expected angles=(primary, secondary) in degrees, got {angles!r}")
    return (float(values[0]), float(values[1]))


def _beam(
    tags: CArmTags, angles: tuple[float, float] | None, view: str | None, origin: str
) -> tuple[Tensor, str, str | None]:
    """Camera axes before orientation, where they came from, and the standard view used (if any)."""
    primary, secondary = tags.primary_angle_deg, tags.secondary_angle_deg
    if angles is not None:
        primary, secondary = _given_angles(angles)
        return _carm_axes(primary, secondary), f"{_angle_names(primary, secondary)} (given)", None
    if view is not None:
        if view not in VIEW_AXES:
            raise ValueError(f"carm_view: unknown view {view!r}; expected one of {', '.join(VIEW_AXES)}")
        return _view_axes(view), f"view {view} (given)", view
    if tags.positioner_type in (None, "CARM") and primary is not None and secondary is not None:
        return _carm_axes(primary, secondary), f"{_angle_names(primary, secondary)} (Positioner Angles)", None
    if tags.view_position in VIEW_POSITIONS:
        view = VIEW_POSITIONS[tags.view_position]
        return _view_axes(view), f"view {view} (View Position {tags.view_position})", view
    if tags.view_position is not None:
        raise ValueError(
            f"{origin}: {_ATTRIBUTES['ViewPosition']} is {tags.view_position!r}, which fixes no beam direction "
            f"(expected one of {', '.join(VIEW_POSITIONS)}); {_DIRECTION_HINT}"
        )
    raise ValueError(
        f"{origin}: no beam direction: {_ATTRIBUTES['PositionerPrimaryAngle']} and "
        f"{_ATTRIBUTES['PositionerSecondaryAngle']} of a C-arm and {_ATTRIBUTES['ViewPosition']} are missing; "
        f"{_DIRECTION_HINT}"
    )


def carm_view(
    tags: CArmTags,
    isocenter: Float[Tensor, "3"],
    *,
    sid: float | None = None,
    angles: tuple[float, float] | None = None,
    view: str | None = None,
    origin: str = "CArmTags",
) -> CArmView:
    """The initial pose of the C-arm and the flip to xrender's view from the source (module docstring).

    The beam direction comes from the first of: ``angles``, ``view``, the tags' Positioner
    Primary/Secondary Angles (unless Positioner Type (0018,1508) names a non-C-arm positioner),
    their View Position (`VIEW_POSITIONS`). The handedness and in-plane rotation come from
    Patient Orientation (0020,0020), or else the defaults of the module docstring.

    Args:
        tags: the image's tags, e.g. `xrender.io.DicomXRay.tags`.
        isocenter: ``(3,)`` world point (LPS mm) on the principal ray, e.g. the CT's
            `Volume.isocenter`.
        sid: source-to-isocentre distance, mm; default Distance Source to Patient (0018,1111).
        angles: ``(primary, secondary)`` positioner angles in degrees (LAO/CRA positive).
        view: a standard view, ``"ap"``, ``"pa"``, ``"ll"`` or ``"rl"``.
        origin: where the tags came from (e.g. the file's path), the start of the error messages
            about them.

    Returns:
        The pose (float64, on ``isocenter``'s device) of the image after `CArmView.flip`, and
        that flip.

    Raises:
        ValueError: both ``angles`` and ``view``, an unknown ``view``, no direction at all or an
            unusable View Position, a missing ``sid`` (each naming the tags and options), a
            malformed Patient Orientation or one nearly parallel to the beam, a tilted detector,
            or a malformed ``isocenter``.

    Examples:
        >>> import torch
        >>> from xrender.geometry import CArmTags, carm_view
        >>> tags = CArmTags(sid=600.0, primary_angle_deg=90.0, secondary_angle_deg=0.0)  # LAO 90°
        >>> view = carm_view(tags, torch.zeros(3, dtype=torch.float64))
        >>> view.pose[:3, 3].round().int().tolist()  # the source on the patient's right, the detector on the left
        [-600, 0, 0]
        >>> view.flip  # no Patient Orientation: the stored image is taken as seen from the detector
        'horizontal'
    """
    if angles is not None and view is not None:
        raise ValueError("carm_view: pass angles or view, not both")
    _check_untilted(tags, origin)
    check_finite(check_shape(isocenter, "3", "isocenter"), "isocenter")
    distance = _required(sid, tags.sid, origin, "sid")
    check_positive(distance, "sid")
    R, direction, standard = _beam(tags, angles, view, origin)
    stored = tags.patient_orientation
    if stored is not None:
        orientation, how = stored, f"Patient Orientation {_joined(stored)}"
    elif standard is not None:
        orientation = DISPLAY_ORIENTATIONS[standard]
        how = f"no Patient Orientation: shown as a {standard} radiograph usually is ({_joined(orientation)})"
    else:
        orientation, how = None, "no Patient Orientation: stored as seen from the detector"
    axes, flip = (R, "horizontal") if orientation is None else _orient(R, orientation, origin, direction)
    center = isocenter.to(torch.float64)
    axes = axes.to(center.device)
    pose = make_pose(axes, center - float(distance) * axes[:, 2])
    return CArmView(pose=pose, flip=flip, direction=direction, orientation=how)
