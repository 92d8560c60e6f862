r"""Cone-beam C-arm geometry: intrinsics, projection of world points, and rays through pixels.

Conventions (pinned by ``tests/geometry/test_camera.py::test_convention_*``):

* **Camera frame** (mm): the X-ray source at the origin, $+z$ along the principal ray
  toward the detector, $+x$ along increasing detector columns, $+y$ along increasing
  detector rows. The detector plane is $z = \mathrm{sdd}$.
* **Pixels**: $(u, v)$ = (column, row), continuous, with the *centre* of the top-left pixel
  at $(0, 0)$; the detector covers $[-\tfrac12, W - \tfrac12] \times [-\tfrac12, H - \tfrac12]$.
* **Intrinsics** (Hartley–Zisserman):

    $$
    K = \begin{pmatrix} f_u & 0 & c_u \\ 0 & f_v & c_v \\ 0 & 0 & 1 \end{pmatrix},\quad
    f_u = \frac{\mathrm{sdd}}{\Delta_u},\; f_v = \frac{\mathrm{sdd}}{\Delta_v},
    $$

    where $\Delta_u$ is the column spacing and $\Delta_v$ the row spacing (mm), and
    $(c_u, c_v)$ the principal point in pixels. $(u, v, 1)^\top \sim K\,x_{\mathrm{cam}}$.

* **Pose**: a 4×4 matrix mapping camera-frame points to world points (mm, LPS),
  $x_{\mathrm{world}} = R\,x_{\mathrm{cam}} + t$; $t$ is the source position in the world.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import torch
from jaxtyping import Float
from torch import Tensor

from xrender._checks import check_finite, check_positive, check_shape
from xrender._registry import Registry

__all__ = [
    "ConeBeam",
    "get_preset",
    "available_presets",
    "register_preset",
    "intrinsic_matrix",
    "inverse_intrinsic_matrix",
    "pixel_grid",
    "world_to_camera",
    "camera_to_pixels",
    "project",
    "pixels_to_camera",
    "pixel_rays",
]

#: Points closer to the source plane than this (mm) cannot be projected.
MIN_DEPTH_MM = 1e-6


@dataclass(frozen=True)
class ConeBeam:
    """A cone-beam C-arm's imaging geometry (the intrinsics) and its nominal source-isocentre distance.

    Attributes:
        sdd: source-to-detector distance, mm (> 0).
        height: detector rows ``H`` (> 0).
        width: detector columns ``W`` (> 0).
        pixel_spacing: ``(row, column)`` spacing in mm, DICOM's *Imager Pixel Spacing* order.
        principal_offset: ``(u, v)`` offset in mm of the principal point (the foot of the
            perpendicular from the source on the detector) from the detector's centre,
            along increasing columns and rows. ``(0, 0)``: the principal ray hits the centre.
        sid: nominal source-to-isocentre distance in mm, used to place standard views
            (`xrender.geometry.views.standard_pose`); ``None`` if unknown.

    Raises:
        ValueError: non-positive or non-finite sizes, spacings or distances.

    Examples:
        >>> from xrender.geometry import ConeBeam
        >>> geometry = ConeBeam(sdd=1000.0, height=4, width=6, pixel_spacing=(2.0, 1.0), sid=600.0)
        >>> geometry.focal_length  # (f_u, f_v) = sdd / (column, row) spacing, in pixels
        (1000.0, 500.0)
        >>> geometry.principal_point  # (u, v) of the detector centre
        (2.5, 1.5)
        >>> geometry.detector_size_mm  # (height, width)
        (8.0, 6.0)
        >>> binned = geometry.downsample(2)
        >>> binned.height, binned.width, binned.principal_point
        (2, 3, (1.0, 0.5))
    """

    sdd: float
    height: int
    width: int
    pixel_spacing: tuple[float, float]
    principal_offset: tuple[float, float] = (0.0, 0.0)
    sid: float | None = None

    def __post_init__(self) -> None:
        check_positive(self.sdd, "ConeBeam.sdd")
        for name in ("height", "width"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"ConeBeam.{name}: expected a positive int, got {value!r}")
        if len(self.pixel_spacing) != 2:
            raise ValueError(f"ConeBeam.pixel_spacing: expected (row, column), got {self.pixel_spacing!r}")
        check_positive(self.pixel_spacing, "ConeBeam.pixel_spacing")
        offset = torch.as_tensor(self.principal_offset, dtype=torch.float64)
        if offset.shape != (2,) or not bool(torch.isfinite(offset).all()):
            raise ValueError(f"ConeBeam.principal_offset: expected two finite mm values, got {self.principal_offset!r}")
        if self.sid is not None:
            check_positive(self.sid, "ConeBeam.sid")
        object.__setattr__(self, "pixel_spacing", tuple(float(s) for s in self.pixel_spacing))
        object.__setattr__(self, "principal_offset", tuple(float(s) for s in self.principal_offset))

    # --------------------------------------------------------------------------- derived values
    @property
    def principal_point(self) -> tuple[float, float]:
        """Principal point ``(c_u, c_v)`` in pixels."""
        dv, du = self.pixel_spacing
        return (
            (self.width - 1) / 2 + self.principal_offset[0] / du,
            (self.height - 1) / 2 + self.principal_offset[1] / dv,
        )

    @property
    def focal_length(self) -> tuple[float, float]:
        """Focal lengths ``(f_u, f_v)`` in pixels: ``sdd / column spacing``, ``sdd / row spacing``."""
        dv, du = self.pixel_spacing
        return (self.sdd / du, self.sdd / dv)

    @property
    def detector_size_mm(self) -> tuple[float, float]:
        """Physical ``(height, width)`` of the detector in mm."""
        return (self.height * self.pixel_spacing[0], self.width * self.pixel_spacing[1])

    def intrinsics(
        self, *, dtype: torch.dtype | None = None, device: torch.device | str | None = None
    ) -> Float[Tensor, "3 3"]:
        """The 3×3 intrinsic matrix ``K`` (pixels) as a tensor."""
        return intrinsic_matrix(
            torch.tensor(self.sdd, dtype=dtype or torch.get_default_dtype(), device=device),
            torch.tensor(self.pixel_spacing, dtype=dtype or torch.get_default_dtype(), device=device),
            torch.tensor(self.principal_point, dtype=dtype or torch.get_default_dtype(), device=device),
        )

    def inverse_intrinsics(
        self, *, dtype: torch.dtype | None = None, device: torch.device | str | None = None
    ) -> Float[Tensor, "3 3"]:
        """The inverse ``K⁻¹``, mapping homogeneous pixels to camera-frame ray directions at ``z = 1``."""
        return inverse_intrinsic_matrix(self.intrinsics(dtype=dtype, device=device))

    def pixel_grid(
        self, *, dtype: torch.dtype | None = None, device: torch.device | str | None = None
    ) -> Float[Tensor, "H W 2"]:
        """Pixel-centre coordinates ``(u, v)`` of the whole detector, shape ``(H, W, 2)``."""
        return pixel_grid(self.height, self.width, dtype=dtype, device=device)

    # --------------------------------------------------------------------------- new geometries
    def _with_principal_point(
        self, height: int, width: int, spacing: tuple[float, float], cu: float, cv: float
    ) -> ConeBeam:
        dv, du = spacing
        offset = ((cu - (width - 1) / 2) * du, (cv - (height - 1) / 2) * dv)
        return replace(self, height=height, width=width, pixel_spacing=spacing, principal_offset=offset)

    def downsample(self, factor: int) -> ConeBeam:
        """The geometry of the image binned by ``factor`` (``factor × factor`` pixels averaged).

        The new size is ``floor(H / factor) × floor(W / factor)``: a remainder of rows or columns
        at the bottom or right is dropped, as when an image is binned. Pixel ``(u', v')`` of the
        binned image is centred on ``(factor·u' + (factor−1)/2, …)`` of the original, so the
        principal point maps as $c' = (c - (f - 1)/2) / f$ and the geometry stays exact.

        Raises:
            ValueError: ``factor`` is not a positive int or leaves an empty detector.
        """
        if isinstance(factor, bool) or not isinstance(factor, int) or factor < 1:
            raise ValueError(f"downsample: expected a positive int factor, got {factor!r}")
        if factor > min(self.height, self.width):
            raise ValueError(f"downsample: factor {factor} exceeds the detector size {self.height}×{self.width}")
        cu, cv = self.principal_point
        spacing = (self.pixel_spacing[0] * factor, self.pixel_spacing[1] * factor)
        shift = (factor - 1) / 2
        return self._with_principal_point(
            self.height // factor, self.width // factor, spacing, (cu - shift) / factor, (cv - shift) / factor
        )

    def binned_to(self, size: int) -> ConeBeam:
        """The square detector binned to exactly ``size × size`` pixels (`downsample` by ``height // size``).

        Raises:
            ValueError: the detector is not square or ``size`` does not divide its side.
        """
        factor, remainder = divmod(self.height, size) if isinstance(size, int) and size > 0 else (0, 1)
        if remainder or factor < 1 or self.width != self.height:
            raise ValueError(
                f"binned_to: expected a divisor of the square detector's side, got {size!r} for a "
                f"{self.height}×{self.width} detector"
            )
        return self.downsample(factor)

    def crop(self, top: int, left: int, bottom: int, right: int) -> ConeBeam:
        """The geometry of the image with ``top``/``left``/``bottom``/``right`` pixels removed.

        Raises:
            ValueError: negative margins, or margins that leave no pixel.
        """
        margins = (top, left, bottom, right)
        if any(isinstance(m, bool) or not isinstance(m, int) or m < 0 for m in margins):
            raise ValueError(f"crop: expected non-negative int margins (top, left, bottom, right), got {margins}")
        height, width = self.height - top - bottom, self.width - left - right
        if height < 1 or width < 1:
            raise ValueError(f"crop: margins {margins} leave no pixel of the {self.height}×{self.width} detector")
        cu, cv = self.principal_point
        return self._with_principal_point(height, width, self.pixel_spacing, cu - left, cv - top)

    @classmethod
    def from_intrinsics(
        cls,
        K: Float[Tensor, "3 3"],
        height: int,
        width: int,
        pixel_spacing: tuple[float, float],
        *,
        sid: float | None = None,
    ) -> ConeBeam:
        """Build the geometry from a calibrated ``K`` (pixels) and the detector's pixel spacing.

        ``sdd`` is recovered as ``f_u · column spacing``; ``K`` must have zero skew and
        ``f_u · Δ_u = f_v · Δ_v`` (one source-to-detector distance) within 0.1 %.

        Raises:
            ValueError: wrong shape, skew, inconsistent focal lengths.
        """
        K = check_finite(check_shape(torch.as_tensor(K, dtype=torch.float64), "3 3", "K"), "K")
        if abs(float(K[0, 1])) > 1e-9 or K[2].tolist() != [0.0, 0.0, 1.0] or float(K[1, 0]) != 0.0:
            raise ValueError(f"from_intrinsics: expected zero skew and last row (0, 0, 1), got K = {K.tolist()}")
        dv, du = pixel_spacing
        sdd_u, sdd_v = float(K[0, 0]) * du, float(K[1, 1]) * dv
        if abs(sdd_u - sdd_v) > 1e-3 * max(abs(sdd_u), abs(sdd_v)):
            raise ValueError(f"from_intrinsics: f_u·Δu = {sdd_u:.4f} mm and f_v·Δv = {sdd_v:.4f} mm disagree")
        base = cls(sdd=sdd_u, height=height, width=width, pixel_spacing=pixel_spacing, sid=sid)
        return base._with_principal_point(height, width, base.pixel_spacing, float(K[0, 2]), float(K[1, 2]))

    def describe(self) -> str:
        """One line per quantity, for command-line output."""
        cu, cv = self.principal_point
        sid = "unknown" if self.sid is None else f"{self.sid:g} mm"
        return "\n".join(
            [
                f"source-to-detector  {self.sdd:g} mm",
                f"source-to-isocentre {sid}",
                f"detector            {self.height} rows × {self.width} columns",
                f"pixel spacing       {self.pixel_spacing[0]:g} × {self.pixel_spacing[1]:g} mm (row × column)",
                f"principal point     ({cu:.3f}, {cv:.3f}) px (u, v)",
            ]
        )


# ------------------------------------------------------------------------------- presets
_PRESETS: Registry[ConeBeam] = Registry("C-arm preset", ConeBeam)


def register_preset(name: str, factory: Callable[[], ConeBeam], *, overwrite: bool = False) -> None:
    """Add a named geometry to the preset registry (``factory()`` builds it).

    Examples:
        >>> from xrender.geometry import ConeBeam, get_preset, register_preset
        >>> def bench_top() -> ConeBeam:
        ...     return ConeBeam(sdd=1200.0, height=64, width=64, pixel_spacing=(0.5, 0.5), sid=800.0)
        >>> register_preset("bench-top", bench_top, overwrite=True)
        >>> get_preset("bench-top").detector_size_mm
        (32.0, 32.0)
    """
    _PRESETS.register(name, factory, overwrite=overwrite)


def available_presets() -> list[str]:
    """Names accepted by `get_preset`.

    Examples:
        >>> from xrender.geometry import available_presets
        >>> {"deepfluoro", "prost"} <= set(available_presets())
        True
    """
    return _PRESETS.names()


def get_preset(name: str) -> ConeBeam:
    """A named C-arm geometry.

    * ``"deepfluoro"``: the Siemens CIOS Fusion C-arm of the DeepFluoro data — sdd 1020 mm,
      1536 × 1536 pixels of 0.194 mm; nominal source-to-isocentre distance 620 mm (ProST's).
    * ``"prost"``: the ProST paper's 128 × 128 training geometry — sdd 1020 mm, source 620 mm
      from the isocentre (400 mm in front of the detector), 2.92 mm pixels (128 pixels span
      374 mm; the value the original code runs with).

    Raises:
        ValueError: unknown name; the message lists the available presets.

    Examples:
        >>> from xrender.geometry import get_preset
        >>> prost = get_preset("prost")
        >>> prost.height, prost.width, prost.pixel_spacing, prost.sdd, prost.sid
        (128, 128, (2.92, 2.92), 1020.0, 620.0)
    """
    return _PRESETS.get(name)


register_preset(
    "deepfluoro", lambda: ConeBeam(sdd=1020.0, height=1536, width=1536, pixel_spacing=(0.194, 0.194), sid=620.0)
)
register_preset("prost", lambda: ConeBeam(sdd=1020.0, height=128, width=128, pixel_spacing=(2.92, 2.92), sid=620.0))


# ------------------------------------------------------------------------------- pure functions
def intrinsic_matrix(
    sdd: Float[Tensor, "*B"],
    pixel_spacing: Float[Tensor, "*B 2"],
    principal_point: Float[Tensor, "*B 2"],
) -> Float[Tensor, "*B 3 3"]:
    """Build ``K`` from tensors (differentiable in all three).

    Args:
        sdd: source-to-detector distance (mm).
        pixel_spacing: ``(row, column)`` spacing (mm).
        principal_point: ``(c_u, c_v)`` in pixels.

    Returns:
        ``K`` with ``f_u = sdd / column spacing`` and ``f_v = sdd / row spacing``.

    Examples:
        >>> import torch
        >>> from xrender.geometry import intrinsic_matrix
        >>> sdd, spacing, principal_point = torch.tensor(1000.0), torch.tensor([2.0, 1.0]), torch.tensor([2.5, 1.5])
        >>> intrinsic_matrix(sdd, spacing, principal_point).tolist()
        [[1000.0, 0.0, 2.5], [0.0, 500.0, 1.5], [0.0, 0.0, 1.0]]
    """
    check_shape(pixel_spacing, "* 2", "pixel_spacing")
    check_shape(principal_point, "* 2", "principal_point")
    zero, one = torch.zeros_like(sdd), torch.ones_like(sdd)
    fu, fv = sdd / pixel_spacing[..., 1], sdd / pixel_spacing[..., 0]
    cu, cv = principal_point[..., 0], principal_point[..., 1]
    rows = [torch.stack([fu, zero, cu], -1), torch.stack([zero, fv, cv], -1), torch.stack([zero, zero, one], -1)]
    return torch.stack(rows, -2)


def inverse_intrinsic_matrix(K: Float[Tensor, "*B 3 3"]) -> Float[Tensor, "*B 3 3"]:
    r"""Closed-form inverse of a zero-skew intrinsic matrix (differentiable, batched).

    $$
    K^{-1} = \begin{pmatrix} 1/f_u & 0 & -c_u/f_u \\ 0 & 1/f_v & -c_v/f_v \\ 0 & 0 & 1 \end{pmatrix}
    $$

    Examples:
        >>> import torch
        >>> from xrender.geometry import ConeBeam, inverse_intrinsic_matrix
        >>> K = ConeBeam(sdd=1000.0, height=4, width=6, pixel_spacing=(2.0, 1.0)).intrinsics(dtype=torch.float64)
        >>> torch.allclose(inverse_intrinsic_matrix(K) @ K, torch.eye(3, dtype=torch.float64))
        True
        >>> inverse_intrinsic_matrix(K)[0].tolist()  # (1/f_u, 0, -c_u/f_u)
        [0.001, 0.0, -0.0025]
    """
    check_shape(K, "* 3 3", "K")
    fu, fv, cu, cv = K[..., 0, 0], K[..., 1, 1], K[..., 0, 2], K[..., 1, 2]
    zero, one = torch.zeros_like(fu), torch.ones_like(fu)
    rows = [
        torch.stack([1 / fu, zero, -cu / fu], -1),
        torch.stack([zero, 1 / fv, -cv / fv], -1),
        torch.stack([zero, zero, one], -1),
    ]
    return torch.stack(rows, -2)


def pixel_grid(
    height: int, width: int, *, dtype: torch.dtype | None = None, device: torch.device | str | None = None
) -> Float[Tensor, "H W 2"]:
    """Pixel centres ``(u, v)`` = (column, row) of an ``H × W`` detector, shape ``(H, W, 2)``.

    Floating point (default dtype unless ``dtype`` is given): pixel coordinates are continuous.

    Examples:
        >>> from xrender.geometry import pixel_grid
        >>> grid = pixel_grid(2, 3)
        >>> grid.shape
        torch.Size([2, 3, 2])
        >>> grid[1, 2].tolist()  # row 1, column 2: (u, v) = (2, 1)
        [2.0, 1.0]
    """
    dtype = dtype or torch.get_default_dtype()
    v, u = torch.meshgrid(
        torch.arange(height, dtype=dtype, device=device), torch.arange(width, dtype=dtype, device=device), indexing="ij"
    )
    return torch.stack([u, v], dim=-1)


def world_to_camera(points: Float[Tensor, "*B N 3"], pose: Float[Tensor, "*B 4 4"]) -> Float[Tensor, "*B N 3"]:
    """Express world points (mm) in the camera frame of ``pose`` (camera-to-world).

    Examples:
        >>> import torch
        >>> from xrender.geometry import world_to_camera
        >>> pose = torch.eye(4, dtype=torch.float64)
        >>> pose[:3, 3] = torch.tensor([0.0, 0.0, -100.0])  # source 100 mm inferior, looking superior
        >>> world_to_camera(torch.tensor([[0.0, 0.0, 0.0], [1.0, 2.0, 50.0]], dtype=torch.float64), pose).tolist()
        [[0.0, 0.0, 100.0], [1.0, 2.0, 150.0]]
    """
    check_shape(points, "* N 3", "points")
    check_finite(check_shape(pose, "* 4 4", "pose"), "pose")  # evaluation, not a hot path: project() reads z too
    R, t = pose[..., :3, :3], pose[..., :3, 3]
    return (points - t.unsqueeze(-2)) @ R


def camera_to_pixels(points: Float[Tensor, "*B N 3"], K: Float[Tensor, "*B 3 3"]) -> Float[Tensor, "*B N 2"]:
    """Perspective projection of camera-frame points (mm) to pixels ``(u, v)``.

    Raises:
        ValueError: a point lies on or behind the source plane (``z ≤ 0``), where it has no image.

    Examples:
        >>> import torch
        >>> from xrender.geometry import ConeBeam, camera_to_pixels
        >>> K = ConeBeam(sdd=1000.0, height=4, width=6, pixel_spacing=(2.0, 1.0)).intrinsics(dtype=torch.float64)
        >>> points = torch.tensor([[0.0, 0.0, 500.0], [1.0, 2.0, 1000.0]], dtype=torch.float64)  # camera frame, mm
        >>> camera_to_pixels(points, K).tolist()  # the principal ray hits the principal point
        [[2.5, 1.5], [3.5, 2.5]]
    """
    check_shape(points, "* N 3", "points")
    check_shape(K, "* 3 3", "K")
    z = points[..., 2:3]
    if not bool((z.detach() > MIN_DEPTH_MM).all()):
        raise ValueError(
            "camera_to_pixels: expected points in front of the source (z > 0 in the camera frame), got z <= 0"
        )
    homogeneous = points @ K.transpose(-1, -2)
    return homogeneous[..., :2] / z


def project(
    points: Float[Tensor, "*B N 3"], pose: Float[Tensor, "*B 4 4"], K: Float[Tensor, "*B 3 3"]
) -> Float[Tensor, "*B N 2"]:
    """Project world points (mm, LPS) to detector pixels ``(u, v)`` for a camera-to-world ``pose``.

    Examples:
        >>> import torch
        >>> from xrender.geometry import ConeBeam, project, standard_pose
        >>> geometry = ConeBeam(sdd=1000.0, height=5, width=5, pixel_spacing=(1.0, 1.0), sid=600.0)
        >>> pose = standard_pose("ap", 600.0, torch.zeros(3, dtype=torch.float64))
        >>> K = geometry.intrinsics(dtype=torch.float64)
        >>> points = torch.tensor([[0.0, 0.0, 0.0], [1.2, 0.0, 0.0], [0.0, 0.0, 1.2]], dtype=torch.float64)
        >>> project(points, pose, K).round().int().tolist()  # isocentre; 1.2 mm left; 1.2 mm superior
        [[2, 2], [4, 2], [2, 0]]
    """
    return camera_to_pixels(world_to_camera(points, pose), K)


def pixels_to_camera(
    pixels: Float[Tensor, "*B N 2"], K: Float[Tensor, "*B 3 3"], depth: Float[Tensor, "*B"]
) -> Float[Tensor, "*B N 3"]:
    """Back-project pixels to the camera-frame points at ``z = depth`` (mm) on their rays.

    With ``depth = sdd`` these are the pixel centres on the detector plane.

    Examples:
        >>> import torch
        >>> from xrender.geometry import ConeBeam, pixels_to_camera
        >>> geometry = ConeBeam(sdd=1000.0, height=4, width=6, pixel_spacing=(2.0, 1.0))
        >>> K = geometry.intrinsics(dtype=torch.float64)
        >>> pixels = torch.tensor([[2.5, 1.5], [5.0, 3.0]], dtype=torch.float64)
        >>> pixels_to_camera(pixels, K, torch.tensor(1000.0, dtype=torch.float64)).tolist()  # on the detector, mm
        [[0.0, 0.0, 1000.0], [2.5, 3.0, 1000.0]]
    """
    check_shape(pixels, "* N 2", "pixels")
    homogeneous = torch.cat([pixels, torch.ones_like(pixels[..., :1])], dim=-1)
    rays = homogeneous @ inverse_intrinsic_matrix(K).transpose(-1, -2)  # (x/z, y/z, 1)
    z = torch.as_tensor(depth, dtype=pixels.dtype, device=pixels.device)[..., None, None]
    return rays * z


def pixel_rays(
    pixels: Float[Tensor, "*B N 2"], pose: Float[Tensor, "*B 4 4"], K: Float[Tensor, "*B 3 3"]
) -> tuple[Float[Tensor, "*B 3"], Float[Tensor, "*B N 3"]]:
    """World rays from the source through pixel centres.

    Returns:
        ``(source, directions)``: the source position in world mm (the pose's translation) and
        unit direction vectors in the world frame, one per pixel.

    Examples:
        >>> import torch
        >>> from xrender.geometry import ConeBeam, pixel_rays, standard_pose
        >>> geometry = ConeBeam(sdd=1000.0, height=5, width=5, pixel_spacing=(1.0, 1.0), sid=600.0)
        >>> pose = standard_pose("ap", 600.0, torch.zeros(3, dtype=torch.float64))
        >>> pixels = geometry.pixel_grid(dtype=torch.float64).reshape(-1, 2)
        >>> source, directions = pixel_rays(pixels, pose, geometry.intrinsics(dtype=torch.float64))
        >>> source.tolist()  # anterior of the isocentre (-y in LPS)
        [0.0, -600.0, 0.0]
        >>> directions.shape, directions[12].round().int().tolist()  # the centre pixel's ray points posterior
        (torch.Size([25, 3]), [0, 1, 0])
    """
    check_shape(pose, "* 4 4", "pose")
    ones = torch.ones(pixels.shape[:-2], dtype=pixels.dtype, device=pixels.device)
    d_cam = pixels_to_camera(pixels, K, ones)
    d_world = d_cam @ pose[..., :3, :3].transpose(-1, -2)
    return pose[..., :3, 3], d_world / d_world.norm(dim=-1, keepdim=True)
