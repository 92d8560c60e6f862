"""Trials on the real X-rays of one DeepFluoro specimen, for ``xrender evaluate --deepfluoro FILE --specimen K``.

Each trial is one projection of the specimen: its preprocessed image (`xrender.datasets.deepfluoro.
preprocess_projection`: border crop, −log(I/I0), binning), its ground-truth pose, and an initial
pose drawn about the truth exactly as in simulation (`xrender.recipes.registration.evaluation.initial_poses`).
The CT is resampled to the evaluation's cube with the world frame kept; the moving volume is the CT
masked to the pelvis labels (`xrender.datasets.deepfluoro.PELVIS_LABELS`) — the structure whose pose
the ground truth is — and the TRE targets are the specimen's 14 3-D landmarks.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from tqdm.auto import tqdm

from xrender.datasets.deepfluoro import PELVIS_LABELS, DeepFluoro, preprocess_projection
from xrender.geometry import ConeBeam
from xrender.recipes.registration.evaluation import EvaluationConfig, TrialSet, initial_poses
from xrender.subject import Subject, volume_subject
from xrender.volume import Volume

__all__ = ["DeepFluoroSpecimen", "load_specimen", "specimen_config"]


@dataclass(frozen=True)
class DeepFluoroSpecimen:
    """One specimen's CT, pelvis mask, landmarks and preprocessed projections.

    Attributes:
        name: ``"DeepFluoro <ID>"``.
        hu: the CT (HU), xreg-aligned.
        pelvis: a 0/1 mask of the pelvis labels on the CT's grid.
        landmarks: the 3-D landmarks ``(L, 3)`` (mm, LPS).
        geometry: the C-arm of every preprocessed image.
        indices: the projection numbers used.
        images: ``(N, 1, H, W)`` line-integral images.
        truth: ``(N, 4, 4)`` ground-truth camera-to-world poses.
    """

    name: str
    hu: Volume
    pelvis: Volume
    landmarks: torch.Tensor
    geometry: ConeBeam
    indices: list[int]
    images: torch.Tensor
    truth: torch.Tensor

    def subject(self, size: int) -> Subject:
        """The specimen as an evaluation subject at ``size³`` voxels (world frame kept)."""
        return volume_subject(self.name, self.hu, size, None, self.pelvis, self.landmarks)

    def trials(self, subject: Subject, config: EvaluationConfig) -> TrialSet:
        """Ground truth, seeded initial poses about it (``config``), and the real images."""
        iso = subject.full.isocenter.to(torch.float64)
        return TrialSet(self.truth, initial_poses(self.truth, iso, config), self.images)


def load_specimen(
    path: str | os.PathLike, specimen: str, *, binning: int = 8, limit: int | None = None, progress: bool = True
) -> DeepFluoroSpecimen:
    """Read and preprocess one specimen of a DeepFluoro file.

    Args:
        path: the HDF5 file.
        specimen: a specimen ID or the paper's number 1–6.
        binning: the preprocessing's binning factor (8: the IPCAI paper's).
        limit: use only the first ``limit`` projections (``None``: all).
        progress: show a bar over projections.

    Raises:
        FileNotFoundError, ValueError: as `xrender.datasets.deepfluoro.DeepFluoro`; projections
            whose preprocessed geometries differ (the evaluation needs one C-arm).
    """
    with DeepFluoro(path) as data:
        key = data.resolve(specimen)
        indices = data.projection_indices(key)[:limit]
        if not indices:
            raise ValueError(f"{path}: specimen {key} has no projections")
        hu = data.volume(key)
        labels = data.segmentation(key)
        pelvis = labels.with_data(torch.isin(labels.data, torch.tensor(PELVIS_LABELS, dtype=labels.data.dtype)).float())
        landmarks = data.landmarks(key).points
        projections = [
            preprocess_projection(data.projection(key, index), binning=binning)
            for index in tqdm(indices, desc=f"reading {key}", disable=not progress)
        ]
    geometry = projections[0].geometry
    for projection in projections[1:]:
        if projection.geometry != geometry:
            raise ValueError(
                f"{Path(path)}: projections {indices[0]} and {projection.index} of {key} have different "
                f"geometries after orientation ({geometry} vs {projection.geometry}); evaluate needs one C-arm"
            )
    images = torch.stack([p.image[None].float() for p in projections])
    truth = torch.stack([p.pose for p in projections])
    return DeepFluoroSpecimen(f"DeepFluoro {key}", hu, pelvis, landmarks, geometry, indices, images, truth)


def specimen_config(config: EvaluationConfig, specimen: DeepFluoroSpecimen) -> EvaluationConfig:
    """``config`` with its trial count set to the number of projections read."""
    return replace(config, trials=len(specimen.indices))
