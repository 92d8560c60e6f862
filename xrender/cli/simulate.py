"""``xrender simulate``'s work: realistic X-rays of a CT, one or a dataset with its poses.

With ``--count N`` the images are ``<stem>_0000<suffix>`` … beside ``--out``, and ``<stem>.json``
records, per image, the file, the camera-to-world pose and the motion about the isocentre from
the ``--view`` pose (`xrender.geometry.motion`, the six numbers ``--pose`` takes), with the
tube voltage, the dose, the seed and the C-arm geometry (the `ConeBeam` fields ``--geometry``
reads): a training set with ground truth for other models.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from xrender.geometry import ConeBeam, get_pose_distribution, motion_from_pose, perturb, standard_pose
from xrender.io import atomic_output, match_suffix
from xrender.physics import (
    SHIPPED_KVP,
    Detector,
    ScatterModel,
    Scintillator,
    decompose_hu,
    load_spectrum,
    simulate_xray,
)
from xrender.render import VolumePyramid
from xrender.render.output import IMAGE_WRITERS, write_image
from xrender.volume import Volume

__all__ = ["SimulationOptions", "check_simulation", "write_simulations"]


@dataclass(frozen=True)
class SimulationOptions:
    """``xrender simulate``'s options besides the CT, the C-arm and the pose (see its ``--help``)."""

    kvp: int
    dose: float
    scatter: bool
    csi_mm: float
    psf: float
    electronic_noise: float
    count: int
    poses: str
    seed: int


def check_simulation(options: SimulationOptions) -> None:
    """Check the options before any file is read.

    Raises:
        ValueError: an unshipped ``--kvp``, a ``--dose`` not > 0, or an unknown ``--poses``.
    """
    if options.kvp not in SHIPPED_KVP:
        raise ValueError(
            f"--kvp: no shipped spectrum at {options.kvp} kVp; expected one of {', '.join(map(str, SHIPPED_KVP))}"
        )
    if not 0 < options.dose < math.inf:
        raise ValueError(f"--dose: expected a finite number of photons per pixel > 0, got {options.dose:g}")
    try:
        get_pose_distribution(options.poses)
    except ValueError as error:
        raise ValueError(f"--poses: {error}") from None


def _split(out: Path) -> tuple[str, str]:
    """``xray.nii.gz`` → ``("xray", ".nii.gz")``: the name and its image suffix (two-part suffixes kept)."""
    suffix = len(match_suffix(out, IMAGE_WRITERS) or out.suffix)
    return out.name[:-suffix], out.name[-suffix:]


def _numbered(out: Path, k: int) -> Path:
    """``dataset/xray.png`` → ``dataset/xray_0007.png``."""
    stem, suffix = _split(out)
    return out.with_name(f"{stem}_{k:04d}{suffix}")


def write_simulations(
    hu: Volume, carm: ConeBeam, camera: torch.Tensor, view: str, options: SimulationOptions, out: Path
) -> list[Path]:
    """Simulate and write the X-ray at ``camera`` (``count`` 1), or ``count`` X-rays about it and their JSON.

    Args:
        hu: the CT in HU.
        carm: the C-arm.
        camera: the camera-to-world pose of ``--view`` moved by ``--pose`` (float64).
        view: the ``--view`` name (the reference of the recorded motions).
        options: the checked options.
        out: the image path (with ``count`` > 1: the stem of the numbered images and the JSON).

    Returns:
        The paths written (the images, then the JSON).
    """
    densities = VolumePyramid(decompose_hu(hu))  # its layout and content box made once for all images
    detector = Detector(options.dose, options.electronic_noise, options.psf)
    scintillator = Scintillator(thickness_mm=options.csi_mm) if options.csi_mm > 0 else None
    scatter = ScatterModel() if options.scatter else None
    generator = torch.Generator().manual_seed(options.seed)
    iso = densities.volume.isocenter.double()
    if options.count == 1:
        poses = camera[None]
    else:
        motions = get_pose_distribution(options.poses).sample(options.count, generator=generator, dtype=torch.float64)
        poses = perturb(camera.expand(options.count, 4, 4), motions, iso)
    spectrum = load_spectrum(options.kvp)
    written = []
    for k, pose in enumerate(poses):
        with torch.no_grad():
            image = simulate_xray(
                densities,
                carm,
                pose[None],
                spectrum,
                detector,
                scatter=scatter,
                scintillator=scintillator,
                generator=generator,
            )
        written.append(write_image(image[0], carm, out if options.count == 1 else _numbered(out, k), pose))
    if options.count > 1:
        reference = standard_pose(view, carm.sid, iso)
        document: dict[str, Any] = {
            "options": asdict(options),
            "view": view,
            "reference_pose_camera_to_world": reference.tolist(),
            "isocenter_mm": iso.tolist(),
            "geometry": asdict(carm),
            "images": [
                {
                    "file": path.name,
                    "pose_camera_to_world": pose.tolist(),
                    "motion": motion_from_pose(pose, reference, iso).tolist(),
                }
                for path, pose in zip(written, poses, strict=True)
            ],
        }
        json_path = out.with_name(f"{_split(out)[0]}.json")
        with atomic_output(json_path) as staging:
            staging.write_text(json.dumps(document, indent=1), encoding="utf-8")
        written.append(json_path)
    return written
