"""Subjects: CTs prepared for ProST training and registration, as μ volumes on a cube.

A `Subject` holds one CT twice, as μ (mm⁻¹) on a ``size³`` cube covering the CT's largest extent
(`xrender.preprocess.prepare_prost`, world frame kept): the **full** volume, which renders the
target X-rays, and the **moving** volume (masked to bone by a segmentation or an HU threshold),
which a learned similarity turns into features; and the points a TRE is measured on. The training
recipe (`xrender.recipes.training`) draws pose pairs on subjects; the registration recipes
(`xrender.recipes.registration`) register simulated or real X-rays to them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from jaxtyping import Float
from torch import Tensor

from xrender.attenuation import hu_to_mu
from xrender.io import read_volume
from xrender.phantom import pelvis_phantom
from xrender.preprocess import apply_mask, prepare_prost
from xrender.volume import Volume

__all__ = ["NoBoneError", "Subject", "ct_subject", "phantom_subject", "volume_subject"]


@dataclass(frozen=True)
class Subject:
    """One CT prepared for ProST: rendered by training and registered to by the registration recipes.

    Attributes:
        name: for messages.
        full: μ volume that renders targets.
        moving: μ volume the network sees (bone only, or ``full``).
        landmarks: world points ``(N, 3)`` (mm) for TRE, or ``None``.
        hu: the CT in HU at its own resolution (the file as read; the voxelized phantom), in the
            same world frame as ``full``, or ``None``; realistic X-rays (`xrender.physics`) are
            simulated from it, so they do not share the registration's resampled grid.
    """

    name: str
    full: Volume
    moving: Volume
    landmarks: Float[Tensor, "N 3"] | None = None
    hu: Volume | None = None

    @property
    def points(self) -> Float[Tensor, "N 3"]:
        """Points for TRE: the landmarks, else the corners of the cube's central half."""
        if self.landmarks is not None:
            return self.landmarks
        low, high = self.full.bounding_box()
        signs = torch.cartesian_prod(*[torch.tensor([-0.25, 0.25], dtype=low.dtype)] * 3)
        return self.full.isocenter + signs * (high - low)


class NoBoneError(ValueError):
    """A CT with no voxel above the bone threshold, so no bone to mask (a `ValueError`).

    Attributes:
        name: the CT's name.
        threshold_hu: the bone threshold (HU).
        value_range: the CT's lowest and highest value (HU).
    """

    def __init__(self, name: str, threshold_hu: float, value_range: tuple[float, float]) -> None:
        low, high = value_range
        super().__init__(
            f"{name}: no voxel is above the bone threshold of {threshold_hu:g} HU (the values span {low:g} to "
            f"{high:g}), so there is no bone to register to; give a bone segmentation as the mask, or a CT in HU"
        )
        self.name = name
        self.threshold_hu = threshold_hu
        self.value_range = value_range


def _subject(
    name: str,
    hu: Volume,
    mask: Volume | None,
    threshold: float | None,
    landmarks: Tensor | None,
    source: Volume | None = None,
) -> Subject:
    """The subject of a prepared HU cube; ``source`` is the CT it came from (default: the cube itself)."""
    if mask is None and threshold is not None:
        bone = hu.data[:1] > threshold
        if not bool(bone.any()):  # once per subject, before anything renders it
            raise NoBoneError(name, threshold, (float(hu.data.min()), float(hu.data.max())))
        mask = hu.with_data(bone.to(hu.data.dtype))
    moving = hu if mask is None else apply_mask(hu, mask)
    return Subject(name, hu_to_mu(hu), hu_to_mu(moving), landmarks, hu if source is None else source)


def phantom_subject(size: int, bone_threshold_hu: float | None) -> Subject:
    """The analytic pelvis phantom at ``size³`` voxels, with its 14 landmarks."""
    phantom = pelvis_phantom()
    return _subject("phantom", phantom.to_volume(size), None, bone_threshold_hu, phantom.landmarks.points)


def ct_subject(
    path: str | Path, size: int, bone_threshold_hu: float | None, mask_path: str | Path | None = None
) -> Subject:
    """A CT file or DICOM folder in HU, resampled to a ``size³`` cube covering its largest extent.

    Args:
        path: the CT.
        size: voxels per side.
        bone_threshold_hu: masking threshold when there is no segmentation.
        mask_path: a label map on the CT's grid; non-zero labels are the moving volume.

    Raises:
        NoBoneError: no ``mask_path`` and no voxel above ``bone_threshold_hu``.
        xrender.preprocess.EmptyMaskError: a mask that selects no voxel.
        FileNotFoundError, ValueError: as `xrender.io.read_volume`.
    """
    mask = None if mask_path is None else read_volume(mask_path)
    return volume_subject(Path(path).name, read_volume(path), size, bone_threshold_hu, mask)


def volume_subject(
    name: str,
    hu: Volume,
    size: int,
    bone_threshold_hu: float | None,
    mask: Volume | None = None,
    landmarks: Float[Tensor, "N 3"] | None = None,
) -> Subject:
    """A CT volume in HU, resampled to a ``size³`` cube covering its largest extent (world frame kept).

    Args:
        name: for messages.
        hu: the CT.
        size: voxels per side.
        bone_threshold_hu: masking threshold when there is no ``mask``.
        mask: a label map on the CT's grid; non-zero labels are the moving volume.
        landmarks: world points (mm) for the TRE.

    Raises:
        NoBoneError: no ``mask`` and no voxel above ``bone_threshold_hu``.
        xrender.preprocess.EmptyMaskError: a ``mask`` that selects no voxel of the cube.
    """
    extent = float((torch.tensor(hu.shape[::-1], dtype=torch.float64) * hu.spacing.double().cpu()).max())
    prepared = prepare_prost(hu, size=size, spacing_mm=extent / size)
    if mask is not None:
        prepared_mask = prepare_prost(mask, size=size, spacing_mm=extent / size, background=0.0)
        return _subject(name, prepared, prepared_mask.with_data(prepared_mask.data.round()), None, landmarks, hu)
    return _subject(name, prepared, None, bone_threshold_hu, landmarks, hu)
