r"""A small file with the DeepFluoro release's layout, simulated from the analytic pelvis phantom.

`write_simulated_deepfluoro` writes what the real ``ipcai_2020_full_res_data.h5`` holds — CT in
HU, segmentation, 14 3-D landmarks, projections with raw intensity images, ground-truth
``cam-to-pelvis-vol`` poses, 2-D landmarks and ``rot-180-for-up`` flags, and the shared
``proj-params`` — in the *file's* conventions: negative focal lengths, an extrinsic matrix, images
stored as seen from the detector side, flagged projections stored upside down, xreg's half-voxel
offset of the ground truth, and a dark collimator border. The 2-D landmarks are computed with the
file's own formula $K_f\,[E\,G^{-1} X]_{1:3}$, independently of xrender's camera code.

It lets the DeepFluoro reader, ``xrender info`` and ``xrender evaluate --deepfluoro`` run, and be
tested, without the 2.5 GB download.
"""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np
import torch

from xrender.attenuation import hu_to_mu
from xrender.datasets.deepfluoro import BORDER_PX, LANDMARK_NAMES, XREG_OFFSET_MM
from xrender.geometry import ConeBeam, get_pose_distribution, perturb, standard_pose
from xrender.io import atomic_output
from xrender.phantom import pelvis_phantom
from xrender.render import RenderOptions, render
from xrender.volume import Volume

__all__ = ["SIMULATED_EXTRINSIC", "write_simulated_deepfluoro"]

#: The simulated C-arm's extrinsic ``E`` (camera-world frame → projective frame): an arbitrary
#: rigid transform, so that readers cannot get away with ignoring it.
SIMULATED_EXTRINSIC = np.array(
    [
        [0.0, 0.0, -1.0, 12.0],
        [0.0, 1.0, 0.0, -30.0],
        [1.0, 0.0, 0.0, 500.0],
        [0.0, 0.0, 0.0, 1.0],
    ]
)

# The file's projective frame → xrender's camera frame for negative focal lengths (see
# `xrender.datasets.deepfluoro`): a half-turn about y (columns mirrored) or, for projections
# flagged rot-180-for-up, about x (rows mirrored). Each is its own inverse.
_FILE_TO_CAMERA = {False: np.diag([-1.0, 1.0, -1.0, 1.0]), True: np.diag([1.0, -1.0, -1.0, 1.0])}


def _image_group(group: h5py.Group, pixels: np.ndarray, spacing: np.ndarray, origin: np.ndarray) -> None:
    group["pixels"] = pixels
    group["spacing"] = spacing.reshape(-1, 1)
    group["origin"] = origin.reshape(-1, 1)
    group["dir-mat"] = np.eye(pixels.ndim)


def write_simulated_deepfluoro(
    path: str | os.PathLike,
    *,
    projections: int = 4,
    detector: int = 384,
    pixel_spacing: float = 0.776,
    volume_size: int = 96,
    border: int = BORDER_PX,
    i0: float = 4000.0,
    specimen: str = "phantom",
    center: tuple[float, float, float] = (10.0, 160.0, -900.0),
    seed: int = 0,
) -> Path:
    """Write a DeepFluoro-layout HDF5 file simulated from the pelvis phantom (see the module docstring).

    Args:
        path: the ``.h5`` file to write (atomically).
        projections: number of projections; odd-numbered ones are flagged ``rot-180-for-up``.
        detector: detector rows and columns (the real C-arm has 1536).
        pixel_spacing: mm per pixel (the real one 0.194; the default is 4× coarser).
        volume_size: CT voxels per side.
        border: width of the dark collimator border, pixels.
        i0: unattenuated intensity of the images.
        specimen: the specimen's group name.
        center: the phantom's centre in the CT frame (mm, LPS): real CTs are far from the origin.
        seed: seeds the true poses (PA views moved by the ``prost-train`` distribution).

    Returns:
        ``path``.
    """
    phantom = pelvis_phantom(center=center)
    hu = phantom.to_volume(volume_size)
    sdd = 1020.0
    focal = sdd / pixel_spacing
    principal = (detector - 1) / 2
    intrinsic = np.array([[-focal, 0.0, principal], [0.0, -focal, principal], [0.0, 0.0, 1.0]])
    geometry = ConeBeam(sdd, detector, detector, (pixel_spacing, pixel_spacing), sid=620.0)
    iso = hu.isocenter.double()
    draws = get_pose_distribution("prost-train").sample(projections, seed=seed, dtype=torch.float64)
    truth = perturb(standard_pose("pa", geometry.sid, iso).expand(projections, 4, 4), draws, iso)
    # The ground truth expects the CT XREG_OFFSET_MM further along each axis than stored (xreg's correction).
    affine = hu.affine.clone()
    affine[:3, 3] += XREG_OFFSET_MM
    shifted = hu_to_mu(Volume(hu.data, affine))
    with torch.no_grad():
        images = (
            render(shifted, geometry, truth, options=RenderOptions(beer_lambert=True, i0=i0))[:, 0].double().numpy()
        )
    points = np.concatenate([phantom.landmarks.points.double().numpy(), np.ones((len(LANDMARK_NAMES), 1))], axis=1)
    right = torch.arange(volume_size) < volume_size // 2  # voxel columns run toward the patient's left
    labels = ((hu.data[0] > 200) * (1 + right)).to(torch.uint8)  # 1: left bone, 2: right bone

    with atomic_output(path) as staging, h5py.File(staging, "w") as file:
        params = file.create_group("proj-params")
        params["intrinsic"] = intrinsic
        params["extrinsic"] = SIMULATED_EXTRINSIC
        params["num-rows"], params["num-cols"] = detector, detector
        params["pixel-row-spacing"], params["pixel-col-spacing"] = pixel_spacing, pixel_spacing
        group = file.create_group(specimen)
        spacing, origin = hu.spacing.double().numpy(), hu.origin.double().numpy()
        _image_group(group.create_group("vol"), hu.data[0].numpy().astype(np.float32), spacing, origin)
        _image_group(group.create_group("vol-seg/image"), labels.numpy(), spacing, origin)
        for label, name in {1: "left-hemipelvis", 2: "right-hemipelvis"}.items():
            group[f"vol-seg/labels-def/{label}"] = name
        for name, point in zip(phantom.landmarks.names, points):
            group[f"vol-landmarks/{name}"] = point[:3].reshape(3, 1)
        for k in range(projections):
            flagged = k % 2 == 1
            file_to_camera = _FILE_TO_CAMERA[flagged]
            cam_to_volume = truth[k].numpy() @ file_to_camera @ SIMULATED_EXTRINSIC
            stored = images[k][:, ::-1] if not flagged else images[k][::-1, :]
            stored = stored.copy()
            stored[:border], stored[-border:], stored[:, :border], stored[:, -border:] = (0.02 * i0,) * 4
            projection = group.create_group(f"projections/{k:03d}")
            _image_group(
                projection.create_group("image"),
                stored.astype(np.float32),
                np.array([pixel_spacing, pixel_spacing]),
                np.zeros(2),
            )
            projection["rot-180-for-up"] = int(flagged)
            for pose in ("cam-to-pelvis-vol", "cam-to-left-femur-vol", "cam-to-right-femur-vol"):
                projection[f"gt-poses/{pose}"] = cam_to_volume
            projection["gt-poses/left-femur-good-fov"] = 0
            projection["gt-poses/right-femur-good-fov"] = 0
            in_file_frame = (SIMULATED_EXTRINSIC @ np.linalg.inv(cam_to_volume) @ points.T)[:3]
            pixels = intrinsic @ in_file_frame
            for name, (u, v) in zip(phantom.landmarks.names, (pixels[:2] / pixels[2]).T):
                projection[f"gt-landmarks/{name}"] = np.array([[u], [v]])
    return Path(path)
