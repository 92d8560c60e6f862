"""Volume preparation for ProST-style rendering: isotropic resampling, cubic crop/pad, bone mask.

ProST (Gao et al., "Generalizing Spatial Transformers to Projective Geometry with Applications to
2D/3D Registration", MICCAI 2020) renders a CT that has been

1. resampled to isotropic voxels (`resample_isotropic`),
2. cropped or padded to a cube of ``size³`` voxels around the region of interest
   (`crop_or_pad`), and
3. masked to the bone segmentation, everything else set to the background (`apply_mask`).

`prepare_prost` chains the three. Every step keeps the world frame (mm, LPS): voxels that
survive a step keep their world positions (up to interpolation in step 1), and the isocentre is
carried over unchanged.

Background values default to `HU_AIR` (−1000 HU), right for CT numbers; pass ``0`` when
the volume already holds attenuation coefficients μ.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType

import SimpleITK as sitk
import torch
from torch import Tensor
from torch.nn.functional import pad

from xrender._checks import check_finite, check_positive, check_shape
from xrender.attenuation import HU_AIR
from xrender.volume import Volume

__all__ = [
    "GRID_TOLERANCE",
    "INTERPOLATORS",
    "EmptyMaskError",
    "apply_mask",
    "crop_or_pad",
    "prepare_prost",
    "resample_isotropic",
]

#: Largest difference between two affines' entries (mm; mm per voxel for the 3×3 part) for
#: which a mask and a volume count as sharing a voxel grid; covers NIfTI's float32 header.
GRID_TOLERANCE = 1e-3

#: Interpolator names accepted by `resample_isotropic`.
INTERPOLATORS: Mapping[str, int] = MappingProxyType(
    {"nearest": sitk.sitkNearestNeighbor, "linear": sitk.sitkLinear, "bspline": sitk.sitkBSpline}
)


def _ijk_shape(volume: Volume) -> Tensor:
    """Spatial size along ``(i, j, k)`` = ``(W, H, D)``, float64."""
    return torch.tensor(volume.shape[::-1], dtype=torch.float64)


def _like(image: sitk.Image, template: Volume) -> Volume:
    """``image`` as a volume with ``template``'s dtype, device and isocentre."""
    out = Volume.from_sitk(image, dtype=template.data.dtype)
    device = template.data.device
    return Volume(out.data.to(device), out.affine.to(device), isocenter=template.isocenter)


def resample_isotropic(
    volume: Volume,
    spacing_mm: float | None = None,
    *,
    interpolator: str = "linear",
    default_value: float = HU_AIR,
) -> Volume:
    """Resample to cubic voxels of side ``spacing_mm``, keeping the physical centre and extent.

    The output keeps the direction matrix and the centre of the volume; along each voxel axis
    it has ``round(n · s / spacing_mm)`` voxels (at least 1), so its extent differs from the
    input's ``n · s`` by at most half an output voxel. The origin (centre of voxel 0) moves by
    the corresponding amount. Done by ``sitk.ResampleImageFilter`` on ``volume.to_sitk()``:
    not differentiable.

    Args:
        volume: the input, any number of channels.
        spacing_mm: output voxel size (mm); ``None`` takes the finest input spacing.
        interpolator: ``"linear"`` (default), ``"nearest"`` (label maps) or ``"bspline"``.
        default_value: value of output points that fall outside the input.

    Returns:
        The resampled volume, same dtype, device and isocentre.

    Raises:
        ValueError: non-positive spacing or unknown interpolator.
    """
    spacing = float(volume.spacing.min()) if spacing_mm is None else spacing_mm
    check_positive(spacing, "resample_isotropic: spacing_mm")
    if interpolator not in INTERPOLATORS:
        raise ValueError(f"resample_isotropic: expected interpolator in {sorted(INTERPOLATORS)}, got {interpolator!r}")
    size = torch.clamp(torch.round(_ijk_shape(volume) * volume.spacing.double().cpu() / spacing), min=1)
    direction = volume.direction.double().cpu()
    origin = volume.center.double().cpu() - direction @ ((size - 1) / 2 * spacing)
    resampler = sitk.ResampleImageFilter()
    resampler.SetOutputSpacing([spacing] * 3)
    resampler.SetSize([int(n) for n in size])
    resampler.SetOutputOrigin(origin.tolist())
    resampler.SetOutputDirection(direction.flatten().tolist())
    resampler.SetInterpolator(INTERPOLATORS[interpolator])
    resampler.SetDefaultPixelValue(default_value)
    return _like(resampler.Execute(volume.to_sitk()), volume)


def _cube(size: int | Sequence[int]) -> tuple[int, int, int]:
    """``size`` as ``(D, H, W)``: an int means a cube."""
    dhw = (size,) * 3 if isinstance(size, int) else tuple(size)
    if len(dhw) != 3 or not all(isinstance(n, int) and n >= 1 for n in dhw):
        raise ValueError(f"crop_or_pad: expected size as an int >= 1 or three ints (D, H, W), got {size!r}")
    return dhw  # type: ignore[return-value]


def crop_or_pad(
    volume: Volume,
    size: int | Sequence[int],
    *,
    center_world: Tensor | None = None,
    fill: float = HU_AIR,
) -> Volume:
    """Crop and/or pad to ``size`` voxels around a centre, keeping every kept voxel's world position.

    The output grid is the input grid shifted by a whole number of voxels: output voxel
    ``m`` is input voxel ``m + start``, and the affine's origin moves to the world position of
    input index ``start``. Hence no interpolation, and the operation is differentiable with
    respect to the voxel values (it is ``torch.nn.functional.pad``, with negative amounts for
    cropping, so it runs on the volume's device). When the centre falls between voxels the
    output centre lies within half a voxel of it (ties round up).

    Args:
        volume: the input.
        size: output spatial size ``(D, H, W)``, or an int ``n`` for ``n³``.
        center_world: world point (mm, LPS), shape ``(3,)``, to centre on; must lie inside the
            volume. ``None``: the volume's centre.
        fill: value of padded voxels.

    Returns:
        The cropped/padded volume, same dtype, device and isocentre.

    Raises:
        ValueError: bad ``size``, or ``center_world`` of the wrong shape, not finite or outside
            the volume.
    """
    target = torch.tensor(_cube(size)[::-1], dtype=torch.float64)  # (i, j, k)
    extent = _ijk_shape(volume)
    if center_world is None:
        centre = (extent - 1) / 2
    else:
        point = check_shape(torch.as_tensor(center_world), "3", "crop_or_pad: center_world")
        point = check_finite(point, "crop_or_pad: center_world")
        centre = volume.world_to_voxel(point.double().to(volume.affine.device)).cpu()
        if bool(((centre < -0.5) | (centre > extent - 0.5)).any()):
            raise ValueError(
                f"crop_or_pad: expected center_world inside the volume, got {point.tolist()} mm "
                f"(voxel index {[round(c, 2) for c in centre.tolist()]}, volume size (i, j, k) {extent.int().tolist()})"
            )
    start = torch.floor(centre - (target - 1) / 2 + 0.5)
    before, after = -start, start + target - extent
    pads = [int(p) for axis in range(3) for p in (before[axis], after[axis])]  # (W, H, D) order, as torch pad wants
    data = pad(volume.data, pads, value=fill)
    affine = volume.affine.double().clone()
    affine[:3, 3] = volume.voxel_to_world(start.to(volume.affine.device)).double()
    return Volume(data, affine, isocenter=volume.isocenter)


def _check_same_grid(volume: Volume, mask: Volume) -> None:
    """Raise unless ``mask`` is a one-channel volume on ``volume``'s voxel grid."""
    if mask.channels != 1:
        raise ValueError(f"apply_mask: expected a one-channel mask, got {mask.channels} channels")
    if mask.shape != volume.shape:
        raise ValueError(
            f"apply_mask: expected mask shape (D, H, W) = {volume.shape} like the volume, got {mask.shape}"
        )
    gap = float((mask.affine.double().cpu() - volume.affine.double().cpu()).abs().max())
    if gap > GRID_TOLERANCE:
        raise ValueError(
            f"apply_mask: expected the mask's affine to match the volume's within {GRID_TOLERANCE} mm, "
            f"got a difference of {gap:.4g}; resample the mask onto the volume grid first"
        )


class EmptyMaskError(ValueError):
    """A mask that selects no voxel (a `ValueError`).

    Attributes:
        labels: the labels asked for (``None``: every non-zero value).
        present: the values the mask holds (the first 20).
    """

    def __init__(self, message: str, labels: Sequence[int] | None, present: list[float]) -> None:
        super().__init__(message)
        self.labels = labels
        self.present = present


def apply_mask(
    volume: Volume,
    mask: Volume,
    *,
    labels: Sequence[int] | None = None,
    background: float = HU_AIR,
) -> Volume:
    """Set every voxel outside a segmentation to ``background``.

    Args:
        volume: the volume to mask, any number of channels.
        mask: a one-channel label map on the same grid (shape and affine).
        labels: label values that count as inside; ``None``: every non-zero value.
        background: value given to voxels outside.

    Returns:
        The masked volume, same geometry and isocentre; differentiable with respect to the
        kept voxel values.

    Raises:
        ValueError: the mask has several channels, another shape or another affine; ``labels``
            is empty.
        EmptyMaskError: the mask selects no voxel (the message lists the labels present).
    """
    _check_same_grid(volume, mask)
    values = mask.data.to(volume.data.device)
    if labels is None:
        inside = values != 0
    elif len(labels) == 0:
        raise ValueError("apply_mask: expected at least one label, got labels=[]")
    else:
        inside = torch.isin(values, torch.as_tensor(list(labels), dtype=values.dtype, device=values.device))
    if not bool(inside.any()):
        present = torch.unique(values).tolist()[:20]
        raise EmptyMaskError(
            f"apply_mask: the mask selects no voxel with labels={labels}; it holds values {present}", labels, present
        )
    fill = torch.as_tensor(background, dtype=volume.data.dtype, device=volume.data.device)
    return volume.with_data(torch.where(inside, volume.data, fill))


def prepare_prost(
    volume: Volume,
    *,
    mask: Volume | None = None,
    labels: Sequence[int] | None = None,
    size: int | Sequence[int] = 128,
    spacing_mm: float | None = None,
    center_world: Tensor | None = None,
    background: float = HU_AIR,
) -> Volume:
    """ProST's volume preparation: isotropic resampling, cubic crop/pad, then masking.

    Steps:
        1. `resample_isotropic` to ``spacing_mm`` (linear interpolation; the mask, if
           any, with nearest-neighbour so labels stay labels). Centre and extent are kept.
        2. `crop_or_pad` to ``size`` voxels around ``center_world`` (default: the
           volume's centre), padding with ``background`` (the mask with 0).
        3. `apply_mask` with ``labels``: voxels outside the segmentation become
           ``background``.

    Args:
        volume: the CT, usually in HU.
        mask: optional label map on the volume's grid (e.g. the bone segmentation).
        labels: mask labels to keep; ``None``: every non-zero label.
        size: output size ``(D, H, W)`` or ``n`` for ``n³`` (ProST uses 128³).
        spacing_mm: isotropic voxel size (mm); ``None``: the finest input spacing.
        center_world: world point (mm, LPS) to centre the cube on; ``None``: the volume centre.
        background: value outside the volume and outside the mask (−1000 HU; 0 for μ volumes).

    Returns:
        The prepared volume, same dtype, device and isocentre as ``volume``.

    Raises:
        ValueError: as the three steps do, and before any work when ``mask`` is not on the
            volume's grid.
    """
    if mask is not None:
        _check_same_grid(volume, mask)
    spacing = float(volume.spacing.min()) if spacing_mm is None else spacing_mm
    prepared = resample_isotropic(volume, spacing, default_value=background)
    prepared = crop_or_pad(prepared, size, center_world=center_world, fill=background)
    if mask is None:
        return prepared
    mask = resample_isotropic(mask, spacing, interpolator="nearest", default_value=0.0)
    mask = crop_or_pad(mask, size, center_world=center_world, fill=0.0)
    return apply_mask(prepared, mask, labels=labels, background=background)
