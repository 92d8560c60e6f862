r"""The DeepFluoro pelvis data (Grupp et al., IPCAI 2020): its HDF5 release, in xrender's conventions.

The public file ``ipcai_2020_full_res_data.h5`` (layout documented in the repository
rg2/DeepFluoroLabeling-IPCAI2020, ``hdf5_layouts/Readme.md``) holds, per cadaver specimen, a CT
in HU (1 mm, LPS), its segmentation, 14 3-D landmarks and the fluoroscopy projections, each with
its image (raw intensities: bone dark), ground-truth pose and 2-D landmarks; and, once for all
projections, the C-arm's intrinsic and extrinsic matrices.

**The file's camera model.** A volume point $X$ (mm, LPS) lands on the stored pixel
$(c, r) \sim K_f\,[E\,G^{-1} X]_{1:3}$, where $G$ is the projection's ``cam-to-pelvis-vol`` pose
(camera-world frame → CT), $E$ the ``extrinsic`` (camera-world frame → projective frame) and $K_f$
the ``intrinsic``. In the projective frame the source is the origin and the detector lies at
$z = -f$ ("Z points towards the source"), and $K_f$ has **negative** focal lengths. That frame has
$+x$ along increasing columns, $+y$ along increasing rows and $+z$ toward the source: the stored
images are seen *from the detector side*, the mirror image of xrender's view from the source.

**The conversion** (`convert_projection`) keeps the pixels exact and changes only their order:

* xrender's camera frame is $C = S\,P$ with $S = \mathrm{diag}(\sigma_x, \sigma_y, -1)$ a proper
  rotation (180° about an image axis), so depth is $-z_P$; $\sigma_y = \operatorname{sign}(-K_{f,11})$
  keeps the rows, and the columns are mirrored when $-K_{f,00}\,\sigma_x < 0$ — for the real file,
  ``flip="horizontal"``: the stored image with its columns reversed is the view from the source.
* The projection's ``rot-180-for-up`` flag (the patient's head would be at the bottom) turns the
  image by 180° too, and the camera by 180° about its $z$ axis: flagged projections come out
  ``flip="vertical"`` (mirror ∘ half-turn), head up like the others.
* The pose, camera → world, is $T = G\,E^{-1}\,S$; the principal point is $K_f$'s, mirrored with
  the pixels; the focal lengths are $|K_{f,00}|, |K_{f,11}|$ and ``sdd`` $= |K_{f,00}| \cdot$ column
  spacing (1020 mm for the real file).

Pinned by ``tests/datasets/test_deepfluoro.py``: projecting the 3-D landmarks with the converted geometry
lands on the file's 2-D landmarks (moved by the same flips), and a DRR rendered at the converted
pose matches the image.

**xreg's half-voxel offset.** xreg, whose registrations produced the ground truth, moves every
``cam-to-pelvis-vol`` pose by −0.5 mm along each volume axis before rendering ("an inconsistency
with linear interpolation texture indexing between when the ground truth was constructed and
now"). `DeepFluoro.volume` applies the same correction to the CT instead (its origin moves by
+0.5 mm, ``xreg_alignment=True``), so that poses, 3-D landmarks and 2-D landmarks stay exactly
as stored and DRRs line up with the images as in xreg.

**Preprocessing as the dataset's authors do it** (`preprocess_projection`): crop a 50-pixel
border (collimator edges), take $-\log(I / I_0)$ with $I_0$ the largest intensity of the cropped
image (any other $I_0$ only adds a constant, to which NCC-type similarities are blind), then bin
by 2, 4, 8 (the IPCAI paper's) or 16, the geometry following every step.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import h5py
import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor

from xrender.geometry.camera import ConeBeam, world_to_camera
from xrender.image import FLIPS, XRayPreprocessing, preprocess_xray
from xrender.landmarks import Landmarks
from xrender.volume import Volume

__all__ = [
    "BORDER_PX",
    "DEEPFLUORO_FILE_NAME",
    "LANDMARK_NAMES",
    "PAPER_SPECIMENS",
    "PELVIS_LABELS",
    "XREG_OFFSET_MM",
    "DeepFluoro",
    "DeepFluoroProjection",
    "ProjectionParameters",
    "convert_projection",
    "describe_deepfluoro",
    "preprocess_projection",
]

#: The file name of the public full-resolution release.
DEEPFLUORO_FILE_NAME = "ipcai_2020_full_res_data.h5"

#: The paper's specimen numbers 1–6 → the specimen IDs (groups) of the file.
PAPER_SPECIMENS: Mapping[int, str] = MappingProxyType(
    {1: "17-1882", 2: "18-1109", 3: "18-0725", 4: "18-2799", 5: "18-2800", 6: "17-1905"}
)

#: The 14 bilateral landmarks: femoral head centre, greater sciatic notch, inferior and medial
#: obturator foramen, superior and inferior pubic symphysis, anterior superior iliac spine.
LANDMARK_NAMES: tuple[str, ...] = tuple(
    f"{name}-{side}" for name in ("FH", "GSN", "IOF", "MOF", "SPS", "IPS", "ASIS") for side in ("l", "r")
)

#: Segmentation labels of the pelvis (left and right hemipelvis, vertebrae, upper sacrum), the
#: structure whose pose ``cam-to-pelvis-vol`` is. Femurs are 5 and 6.
PELVIS_LABELS: tuple[int, ...] = (1, 2, 3, 4)

#: Pixels cropped from each side of a full-resolution image (collimator edges), as the authors do.
BORDER_PX = 50

#: xreg moves every ground-truth pose by −0.5 mm along each volume axis before rendering; the
#: reader moves the CT by +0.5 mm instead (module docstring).
XREG_OFFSET_MM = 0.5

#: Largest deviation from orthonormality accepted in a stored rigid transform (float32 storage).
_RIGID_TOLERANCE = 1e-4

# (mirror columns, mirror rows) → the `xrender.image.FLIPS` name doing it.
_FLIP_NAMES: Mapping[tuple[bool, bool], str] = MappingProxyType(
    {(False, False): "none", (True, False): "horizontal", (False, True): "vertical", (True, True): "rot180"}
)


@dataclass(frozen=True)
class ProjectionParameters:
    """The ``proj-params`` group: one C-arm for every projection of the file.

    Attributes:
        intrinsic: ``K_f`` (3×3, pixels; negative focal lengths in the real file).
        extrinsic: ``E`` (4×4), camera-world frame → projective frame.
        rows: image rows ``H``.
        columns: image columns ``W``.
        pixel_spacing: ``(row, column)`` spacing in mm.
    """

    intrinsic: np.ndarray
    extrinsic: np.ndarray
    rows: int
    columns: int
    pixel_spacing: tuple[float, float]


@dataclass(frozen=True)
class DeepFluoroProjection:
    """One projection in xrender's conventions: image, geometry and pose agree.

    Attributes:
        specimen: the specimen ID (e.g. ``"17-1882"``).
        index: the projection number within the specimen.
        image: ``(H, W)`` float64 pixels as seen from the source (the stored image after
            ``flip``): raw intensities, or line integrals after `preprocess_projection`.
        geometry: the C-arm of ``image`` (principal point mirrored with the pixels).
        pose: ``(4, 4)`` float64 ground-truth camera-to-world pose, world = the specimen's CT
            frame (mm, LPS).
        landmark_names: names of the 2-D landmarks.
        landmarks_2d: ``(L, 2)`` pixel positions ``(u, v)`` of the annotated landmarks in
            ``image``; some may lie outside it (not visible in this view).
        flip: the `xrender.image.FLIPS` entry that turned the stored image into ``image``.
        rot180_for_up: the file's ``rot-180-for-up`` flag.
        line_integrals: ``True`` once −log(I/I0) was taken.
    """

    specimen: str
    index: int
    image: Float[Tensor, "H W"]
    geometry: ConeBeam
    pose: Float[Tensor, "4 4"]
    landmark_names: tuple[str, ...]
    landmarks_2d: Float[Tensor, "L 2"]
    flip: str
    rot180_for_up: bool
    line_integrals: bool = False

    def visible(self) -> Tensor:
        """``(L,)`` booleans: the landmarks that fall on the image."""
        u, v = self.landmarks_2d.unbind(-1)
        return (u >= -0.5) & (v >= -0.5) & (u <= self.geometry.width - 0.5) & (v <= self.geometry.height - 0.5)


def _rigid(matrix: np.ndarray, what: str) -> np.ndarray:
    """Check a stored 4×4 rigid transform (proper rotation, last row 0 0 0 1)."""
    matrix = np.asarray(matrix, dtype=np.float64)
    if matrix.shape != (4, 4) or not np.isfinite(matrix).all():
        raise ValueError(f"{what}: expected a finite 4×4 rigid transform, got shape {matrix.shape}")
    rotation = matrix[:3, :3]
    if (
        not np.allclose(matrix[3], (0.0, 0.0, 0.0, 1.0), atol=_RIGID_TOLERANCE)
        or np.abs(rotation.T @ rotation - np.eye(3)).max() > _RIGID_TOLERANCE
        or np.linalg.det(rotation) <= 0
    ):
        raise ValueError(f"{what}: expected a rigid transform (a rotation with det +1), got {matrix.tolist()}")
    return matrix


def _inverse_rigid(matrix: np.ndarray) -> np.ndarray:
    inverse = np.eye(4)
    inverse[:3, :3] = matrix[:3, :3].T
    inverse[:3, 3] = -matrix[:3, :3].T @ matrix[:3, 3]
    return inverse


def convert_projection(
    params: ProjectionParameters, cam_to_volume: np.ndarray, rot180_for_up: bool
) -> tuple[ConeBeam, Float[Tensor, "4 4"], str]:
    """The file's camera of one projection, in xrender's conventions (module docstring).

    Args:
        params: the file's shared projection parameters.
        cam_to_volume: the projection's ``gt-poses/cam-to-pelvis-vol`` (4×4).
        rot180_for_up: the projection's ``rot-180-for-up`` flag.

    Returns:
        ``(geometry, pose, flip)``: the geometry of the stored image after ``flip`` (a
        `xrender.image.FLIPS` name), and the camera-to-world pose (float64) of that image.

    Raises:
        ValueError: a matrix that is not rigid, an intrinsic matrix with skew, a last row other
            than ``(0, 0, 1)``, or focal lengths that disagree on the source-to-detector distance.
    """
    K = np.asarray(params.intrinsic, dtype=np.float64)
    if K.shape != (3, 3) or not np.isfinite(K).all():
        raise ValueError(f"proj-params/intrinsic: expected a finite 3×3 matrix, got shape {K.shape}")
    if K[0, 1] != 0 or K[1, 0] != 0 or not np.allclose(K[2], (0.0, 0.0, 1.0)):
        raise ValueError(f"proj-params/intrinsic: expected no skew and last row (0, 0, 1), got {K.tolist()}")
    extrinsic = _rigid(params.extrinsic, "proj-params/extrinsic")
    gt = _rigid(cam_to_volume, "gt-poses/cam-to-pelvis-vol")
    # Depth is −z in the projective frame, so u = a·x/depth + c_u with a = −K00 (likewise rows).
    a, b = -K[0, 0], -K[1, 1]
    sigma_y = 1.0 if b > 0 else -1.0
    sigma_x = -sigma_y  # det diag(σx, σy, −1) = +1
    mirror_columns, mirror_rows = a * sigma_x < 0, False
    S = np.diag([sigma_x, sigma_y, -1.0, 1.0])
    if rot180_for_up:
        S = np.diag([-1.0, -1.0, 1.0, 1.0]) @ S
        mirror_columns, mirror_rows = not mirror_columns, True
    height, width = params.rows, params.columns
    cu = width - 1 - K[0, 2] if mirror_columns else K[0, 2]
    cv = height - 1 - K[1, 2] if mirror_rows else K[1, 2]
    oriented = torch.tensor([[abs(a), 0.0, cu], [0.0, abs(b), cv], [0.0, 0.0, 1.0]], dtype=torch.float64)
    geometry = ConeBeam.from_intrinsics(oriented, height, width, params.pixel_spacing)
    pose = torch.from_numpy(gt @ _inverse_rigid(extrinsic) @ S)
    return geometry, pose, _FLIP_NAMES[(mirror_columns, mirror_rows)]


def _flip_points(points: Tensor, flip: str, height: int, width: int) -> Tensor:
    """Pixel positions ``(L, 2)`` moved as `xrender.image.FLIPS` ``flip`` moves the pixels."""
    columns, rows = next(key for key, name in _FLIP_NAMES.items() if name == flip)
    u, v = points.unbind(-1)
    return torch.stack([width - 1 - u if columns else u, height - 1 - v if rows else v], dim=-1)


def preprocess_projection(
    projection: DeepFluoroProjection, *, binning: int = 8, border: int = BORDER_PX, i0: float | None = None
) -> DeepFluoroProjection:
    """The authors' preprocessing: crop the border, −log(I/I0), bin; geometry and landmarks follow.

    Args:
        projection: a projection as read (raw intensities).
        binning: 1, 2, 4, 8 (the IPCAI paper's) or 16, or any positive int.
        border: pixels cropped from each side (`BORDER_PX` for full-resolution images).
        i0: the unattenuated intensity; ``None``: the cropped image's maximum.

    Returns:
        The projection with line integrals (bone bright) and the matching geometry; its 2-D
        landmarks are moved by the crop and binned (block centres) with the pixels.

    Raises:
        ValueError: already preprocessed, or a crop/binning that leaves no pixel
            (`xrender.image.preprocess_xray`).
    """
    if projection.line_integrals:
        raise ValueError(f"{projection.specimen}/{projection.index:03d}: already preprocessed")
    options = XRayPreprocessing(crop=(border,) * 4, negative_log=True, i0=i0, binning=binning)
    image, geometry = preprocess_xray(projection.image, projection.geometry, options)
    shift = (binning - 1) / 2
    landmarks = (projection.landmarks_2d - border - shift) / binning
    return DeepFluoroProjection(
        projection.specimen,
        projection.index,
        image[0, 0],
        geometry,  # type: ignore[arg-type]
        projection.pose,
        projection.landmark_names,
        landmarks,
        projection.flip,
        projection.rot180_for_up,
        line_integrals=True,
    )


def _aligned(volume: Volume, xreg_alignment: bool) -> Volume:
    """``volume`` moved by `XREG_OFFSET_MM` along each world axis (or as it is)."""
    if not xreg_alignment:
        return volume
    affine = volume.affine.clone()
    affine[:3, 3] += XREG_OFFSET_MM
    return Volume(volume.data, affine)


def _vector(dataset: Any) -> np.ndarray:
    return np.asarray(dataset[()], dtype=np.float64).reshape(-1)


def _ordered(group: Any) -> tuple[str, ...]:
    """A landmark group's names: `LANDMARK_NAMES` order first, then any others sorted."""
    return tuple([n for n in LANDMARK_NAMES if n in group] + sorted(n for n in group if n not in LANDMARK_NAMES))


def _scalar(dataset: Any) -> float:
    return float(np.asarray(dataset[()]).reshape(-1)[0])


class DeepFluoro:
    """Read access to a DeepFluoro HDF5 file (the public release, or a file with its layout).

    Use as a context manager (``with DeepFluoro(path) as data: ...``) or call `close`.

    Args:
        path: the ``.h5`` file.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not an HDF5 file, or no ``proj-params`` group; messages name the path.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"{self.path}: no such file")
        try:
            self._file = h5py.File(self.path, "r")
        except OSError as error:
            raise ValueError(f"{self.path}: not a readable HDF5 file ({error})") from None
        if "proj-params" not in self._file:
            self._file.close()
            raise ValueError(f"{self.path}: no 'proj-params' group; not a DeepFluoro file (see DeepFluoro's layout)")
        self._params: ProjectionParameters | None = None
        self._landmarks: dict[str, Landmarks] = {}

    def __enter__(self) -> DeepFluoro:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the file."""
        self._file.close()

    def _get(self, key: str) -> Any:
        try:
            return self._file[key]
        except KeyError:
            raise ValueError(f"{self.path}: missing '{key}' (expected DeepFluoro's layout)") from None

    # ---------------------------------------------------------------------------- contents
    def specimens(self) -> list[str]:
        """Specimen IDs (the top-level groups other than ``proj-params``), in file order."""
        return [key for key in self._file if key != "proj-params"]

    def resolve(self, specimen: str | int) -> str:
        """A specimen ID from an ID or the paper's number 1–6 (`PAPER_SPECIMENS`).

        Raises:
            ValueError: no such specimen; the message lists the file's IDs.
        """
        key = str(specimen)
        if key not in self._file and key.isdigit() and int(key) in PAPER_SPECIMENS:
            key = PAPER_SPECIMENS[int(key)]
        if key == "proj-params" or key not in self._file:
            raise ValueError(
                f"{self.path}: no specimen {specimen!r}; available: {', '.join(self.specimens())} "
                "(or the paper's numbers 1-6 for the public file)"
            )
        return key

    def projection_indices(self, specimen: str | int) -> list[int]:
        """The projection numbers of a specimen, ascending."""
        return sorted(int(k) for k in self._get(f"{self.resolve(specimen)}/projections"))

    def projection_parameters(self) -> ProjectionParameters:
        """The shared C-arm parameters (``proj-params``), read once per file."""
        if self._params is None:
            self._params = self._read_projection_parameters()
        return self._params

    def _read_projection_parameters(self) -> ProjectionParameters:
        group = self._get("proj-params")
        try:
            return ProjectionParameters(
                intrinsic=np.asarray(group["intrinsic"][()], dtype=np.float64),
                extrinsic=np.asarray(group["extrinsic"][()], dtype=np.float64),
                rows=int(_scalar(group["num-rows"])),
                columns=int(_scalar(group["num-cols"])),
                pixel_spacing=(_scalar(group["pixel-row-spacing"]), _scalar(group["pixel-col-spacing"])),
            )
        except KeyError as error:
            raise ValueError(f"{self.path}: proj-params lacks {error} (expected DeepFluoro's layout)") from None

    def _image_volume(self, key: str, dtype: torch.dtype) -> Volume:
        group = self._get(key)
        pixels = np.asarray(group["pixels"][()])
        if pixels.ndim != 3:
            raise ValueError(f"{self.path}: {key}/pixels: expected a 3-D (D, H, W) array, got shape {pixels.shape}")
        affine = np.eye(4)
        affine[:3, :3] = np.asarray(group["dir-mat"][()], dtype=np.float64).reshape(3, 3) @ np.diag(
            _vector(group["spacing"])
        )
        affine[:3, 3] = _vector(group["origin"])
        data = torch.from_numpy(pixels.astype(np.float32 if dtype.is_floating_point else pixels.dtype))
        return Volume(data[None].to(dtype), torch.from_numpy(affine))

    def volume(self, specimen: str | int, *, xreg_alignment: bool = True, dtype: torch.dtype = torch.float32) -> Volume:
        """The specimen's CT in HU, placed in its LPS frame.

        Args:
            specimen: an ID or the paper's number.
            xreg_alignment: move the CT by `XREG_OFFSET_MM` along x, y and z, xreg's correction
                of the ground truth (module docstring); ``False``: the stored origin.
            dtype: floating dtype of the data.
        """
        return _aligned(self._image_volume(f"{self.resolve(specimen)}/vol", dtype), xreg_alignment)

    def segmentation(self, specimen: str | int, *, xreg_alignment: bool = True) -> Volume:
        """The CT's label map (on the CT's grid; `PELVIS_LABELS` are the pelvis), placed like `volume`."""
        return _aligned(self._image_volume(f"{self.resolve(specimen)}/vol-seg/image", torch.float32), xreg_alignment)

    def ct_shape(self, specimen: str | int) -> tuple[int, int, int]:
        """The CT's ``(D, H, W)``, without reading its voxels."""
        return tuple(self._get(f"{self.resolve(specimen)}/vol/pixels").shape)

    def landmarks(self, specimen: str | int) -> Landmarks:
        """The specimen's 3-D landmarks (mm, LPS), in `LANDMARK_NAMES` order where present; read once."""
        key = self.resolve(specimen)
        if key not in self._landmarks:
            group = self._get(f"{key}/vol-landmarks")
            names = _ordered(group)
            points = torch.tensor(np.array([_vector(group[n]) for n in names]).reshape(-1, 3), dtype=torch.float64)
            self._landmarks[key] = Landmarks(names, points)
        return self._landmarks[key]

    def projection(self, specimen: str | int, index: int) -> DeepFluoroProjection:
        """One projection, oriented as seen from the source, with its converted geometry and pose.

        Raises:
            ValueError: no such projection, or data that break the layout (messages name the
                file and the group).
        """
        key = self.resolve(specimen)
        where = f"{key}/projections/{index:03d}"
        group = self._get(where)
        params = self.projection_parameters()
        try:
            stored = np.asarray(group["image/pixels"][()], dtype=np.float64)
            gt = np.asarray(group["gt-poses/cam-to-pelvis-vol"][()], dtype=np.float64)
            rot180 = bool(_scalar(group["rot-180-for-up"]))
            marks = group.get("gt-landmarks", {})
            names = _ordered(marks)
            points = np.array([_vector(marks[n]) for n in names]).reshape(-1, 2)
        except KeyError as error:
            raise ValueError(f"{self.path}: {where} lacks {error} (expected DeepFluoro's layout)") from None
        if stored.shape != (params.rows, params.columns):
            raise ValueError(
                f"{self.path}: {where}/image/pixels: expected {params.rows}×{params.columns} pixels "
                f"(proj-params), got shape {stored.shape}"
            )
        try:
            geometry, pose, flip = convert_projection(params, gt, rot180)
        except ValueError as error:
            raise ValueError(f"{self.path}: {where}: {error}") from None
        depth = world_to_camera(self.landmarks(key).points, pose)[:, 2]
        if not bool((depth > 0).all()):
            raise ValueError(
                f"{self.path}: {where}: 3-D landmarks lie behind the converted camera; the file does not follow "
                "DeepFluoro's layout (detector on the projective frame's −z)"
            )
        image, _ = FLIPS[flip](torch.from_numpy(stored), None)
        landmarks = _flip_points(torch.from_numpy(points), flip, params.rows, params.columns)
        return DeepFluoroProjection(key, index, image.contiguous(), geometry, pose, names, landmarks, flip, rot180)

    def projections(self, specimen: str | int) -> Iterator[DeepFluoroProjection]:
        """Every projection of a specimen, in index order."""
        for index in self.projection_indices(specimen):
            yield self.projection(specimen, index)


def describe_deepfluoro(path: Path) -> str:
    """``xrender info FILE.h5``: the C-arm, then each specimen's ID, projections, 3-D landmarks and CT size."""
    with DeepFluoro(path) as data:
        params = data.projection_parameters()
        number = {v: k for k, v in PAPER_SPECIMENS.items()}
        focal = abs(params.intrinsic[0, 0]) * params.pixel_spacing[1]
        lines = [
            f"file         {path}",
            "format       DeepFluoro HDF5 (IPCAI 2020 layout)",
            f"detector     {params.rows} × {params.columns} pixels of "
            f"{params.pixel_spacing[0]:g} × {params.pixel_spacing[1]:g} mm, sdd {focal:.1f} mm",
            "",
            f"{'specimen':<10} {'paper #':>7} {'projections':>11} {'3-D landmarks':>13}  CT (D, H, W)",
        ]
        for key in data.specimens():
            shape = data.ct_shape(key)
            lines.append(
                f"{key:<10} {number.get(key, '-')!s:>7} {len(data.projection_indices(key)):>11} "
                f"{len(data.landmarks(key)):>13}  {shape}"
            )
    return "\n".join(lines)
