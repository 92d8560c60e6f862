r"""Training a `PoseRegressor` on synthetic DRRs of one volume — the pose-regression baseline.

One iteration:

1. draw ``batch_size`` volume motions $\delta$ from the true-pose distribution (a seeded CPU
   generator), the poses ``perturb(reference, δ, isocenter)`` about the reference view;
2. render their DRRs (no gradient) and augment them (`xrender.augment.TargetAugmentation`, drawing
   from the same generator);
3. regress $\hat\delta$ and step Adam on the mean loss.

The loss (``config.loss``) measures $\hat\delta$ against $\delta$ in units of
``translation_scale_mm``, so a typical initial loss is of order 1:

* ``"geodesic"`` (default): the double geodesic distance
  $\sqrt{(r\,\theta)^2 + \|\hat t - t\|^2} / s$ (`xrender.geometry.double_geodesic_distance`), with
  $\theta$ the angle of $\hat R^\top R$, $r$ = ``rotation_radius_mm`` (a rotation counts as the
  arc a point $r$ mm from the isocentre travels) and $s$ = ``translation_scale_mm``;
* ``"split"``: $\theta + \|\hat t - t\|/s$ — one radian weighs as much as $s$ mm.

$t$ is where $\delta$ moves the isocentre, so the two parts measure rotation about the isocentre
and translation of it, independently.

Validation, before and after training, predicts ``validation_poses`` held-out motions (a seed no
training draw uses, clean DRRs) and reports the median rotation error (degrees, angle of
$\hat R^\top R$) and the median translation error (mm, $\|\hat t - t\|$). Before training the
network predicts $\delta = I$, so the "before" errors are those of the reference pose itself.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor
from tqdm.auto import tqdm

from xrender.augment import TargetAugmentation
from xrender.geometry import (
    ConeBeam,
    available_views,
    double_geodesic_distance,
    get_pose_distribution,
    get_preset,
    perturb,
    so3_angle,
    standard_pose,
)
from xrender.recipes._config import ConfigRecord
from xrender.registration.regression import PoseRegressor
from xrender.render import DRR
from xrender.volume import Volume

__all__ = [
    "LOSSES",
    "RegressionConfig",
    "RegressionErrors",
    "TrainingSummary",
    "evaluate_regressor",
    "regression_geometry",
    "regression_loss",
    "train_regressor",
    "validation_motions",
]

#: Seed offset of the held-out validation motions, far from any training seed.
VALIDATION_SEED_OFFSET = 1_000_003


def _geodesic(predicted: Tensor, true: Tensor, radius_mm: float, scale_mm: float) -> Tensor:
    return double_geodesic_distance(predicted, true, radius_mm) / scale_mm


def _split(predicted: Tensor, true: Tensor, radius_mm: float, scale_mm: float) -> Tensor:
    angle = so3_angle(predicted[..., :3, :3], true[..., :3, :3])
    return angle + torch.linalg.vector_norm(predicted[..., :3, 3] - true[..., :3, 3], dim=-1) / scale_mm


#: Per-sample losses ``(predicted δ, true δ, rotation_radius_mm, translation_scale_mm) -> (B,)`` by name.
LOSSES: dict[str, Callable[[Tensor, Tensor, float, float], Tensor]] = {"geodesic": _geodesic, "split": _split}


@dataclass(frozen=True)
class RegressionConfig(ConfigRecord):
    """Settings of `train_regressor`.

    Attributes:
        image_size: detector pixels per side; the ``preset``'s square detector binned to this size.
        preset: C-arm preset (`xrender.geometry.get_preset`); must know its ``sid``.
        volume_size: voxels per side of the (cubic) volume trained on — build it with
            ``phantom_subject(volume_size, …)`` or ``ct_subject(path, volume_size, …)``
            (`xrender.subject`); `train_regressor` checks it.
        pose_distribution: distribution of the true volume motions δ
            (`xrender.geometry.get_pose_distribution`), the one evaluations draw true poses from.
        view: reference view (`xrender.geometry.standard_pose`); ``δ = I`` is this view.
        batch_size: DRRs per iteration.
        lr: Adam learning rate (constant).
        iterations: iterations to run (fewer when ``minutes`` runs out first).
        seed: seed of the initial weights, the pose draws and the augmentations.
        augment: augment the training DRRs (`xrender.augment.TargetAugmentation`, ``p = 0.5``).
        widths: channels of the regressor's convolution stages.
        loss: a name of `LOSSES` (see the module docstring).
        translation_scale_mm: the regressor's translation unit and the loss's length scale (mm).
        rotation_radius_mm: radius turning a rotation angle into an arc length (``"geodesic"``).
        validation_poses: held-out motions in the validation before and after training.
    """

    image_size: int = 64
    preset: str = "prost"
    volume_size: int = 64
    pose_distribution: str = "prost-train"
    view: str = "ap"
    batch_size: int = 16
    lr: float = 1e-3
    iterations: int = 2000
    seed: int = 0
    augment: bool = True
    widths: tuple[int, ...] = (16, 32, 64, 128)
    loss: str = "geodesic"
    translation_scale_mm: float = 50.0
    rotation_radius_mm: float = 100.0
    validation_poses: int = 32

    def __post_init__(self) -> None:
        object.__setattr__(self, "widths", tuple(self.widths))  # a list from JSON or a checkpoint
        for name in ("image_size", "volume_size", "batch_size", "iterations"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"RegressionConfig.{name}: expected an int >= 1, got {value!r}")
        for name in ("seed", "validation_poses"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"RegressionConfig.{name}: expected an int >= 0, got {value!r}")
        for name in ("lr", "translation_scale_mm", "rotation_radius_mm"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not (0 < value < math.inf):
                raise ValueError(f"RegressionConfig.{name}: expected a finite number > 0, got {value!r}")
        if not self.widths or any(isinstance(w, bool) or not isinstance(w, int) or w < 1 for w in self.widths):
            raise ValueError(f"RegressionConfig.widths: expected positive ints, got {self.widths!r}")
        if not isinstance(self.augment, bool):
            raise ValueError(f"RegressionConfig.augment: expected True or False, got {self.augment!r}")
        if self.loss not in LOSSES:
            raise ValueError(f"RegressionConfig.loss: unknown loss {self.loss!r}; available: {', '.join(LOSSES)}")
        if self.view not in available_views():
            raise ValueError(f"RegressionConfig.view: unknown view {self.view!r}; available: {available_views()}")
        get_pose_distribution(self.pose_distribution)  # unknown names raise, listing the available ones


@dataclass(frozen=True)
class RegressionErrors:
    """Errors of predicted volume motions against the true ones.

    Attributes:
        median_rotation_deg: median angle of ``R̂ᵀ R`` (degrees).
        median_translation_mm: median ``‖t̂ − t‖`` (mm), the isocentre's displacement error.
        mean_rotation_deg: mean of the angles.
        mean_translation_mm: mean of the displacements.
        poses: number of motions.
    """

    median_rotation_deg: float
    median_translation_mm: float
    mean_rotation_deg: float
    mean_translation_mm: float
    poses: int

    def to_dict(self) -> dict[str, float | int]:
        """Plain data."""
        return asdict(self)

    def __str__(self) -> str:
        return (
            f"median error {self.median_rotation_deg:.2f}° / {self.median_translation_mm:.1f} mm "
            f"(mean {self.mean_rotation_deg:.2f}° / {self.mean_translation_mm:.1f} mm, {self.poses} poses)"
        )


@dataclass(frozen=True)
class TrainingSummary:
    """What a `train_regressor` run did.

    Attributes:
        iterations: iterations done.
        seconds: wall time of the training loop (without the validations).
        final_loss: mean loss of the last 50 iterations.
        losses: the mean loss of every iteration.
        validation_before: held-out errors of the untrained network (the reference pose).
        validation: held-out errors after training.
    """

    iterations: int
    seconds: float
    final_loss: float
    losses: list[float]
    validation_before: RegressionErrors | None
    validation: RegressionErrors | None

    def to_dict(self) -> dict[str, Any]:
        """Plain data (saved with the regressor)."""
        return {
            "iterations": self.iterations,
            "seconds": self.seconds,
            "final_loss": self.final_loss,
            "losses": list(self.losses),
            "validation_before": None if self.validation_before is None else self.validation_before.to_dict(),
            "validation": None if self.validation is None else self.validation.to_dict(),
        }

    def __str__(self) -> str:
        lines = [f"{self.iterations} iterations in {self.seconds:.1f} s, final loss {self.final_loss:.4f}"]
        if self.validation_before is not None and self.validation is not None:
            lines.append(f"before training: {self.validation_before}")
            lines.append(f"after training:  {self.validation}")
        return "\n".join(lines)


def regression_geometry(config: RegressionConfig) -> ConeBeam:
    """The preset C-arm binned to ``image_size`` pixels per side.

    Raises:
        ValueError: the preset's detector is not square, not a multiple of ``image_size``, or has
            no source-to-isocentre distance.
    """
    carm = get_preset(config.preset)
    if carm.sid is None:
        raise ValueError(f"preset {config.preset!r}: expected a known source-to-isocentre distance (sid)")
    try:
        return carm.binned_to(config.image_size)
    except ValueError as error:
        raise ValueError(f"image_size {config.image_size} of preset {config.preset!r}: {error}") from None


def regression_loss(
    predicted: Float[Tensor, "B 4 4"], true: Float[Tensor, "B 4 4"], config: RegressionConfig
) -> Float[Tensor, " B"]:
    """The per-sample loss ``config.loss`` of predicted against true volume motions (see the module docstring)."""
    return LOSSES[config.loss](predicted, true.to(predicted), config.rotation_radius_mm, config.translation_scale_mm)


def validation_motions(config: RegressionConfig) -> Float[Tensor, "N 4 4"]:
    """The held-out volume motions ``(validation_poses, 4, 4)``, float64: a seed no training run uses."""
    distribution = get_pose_distribution(config.pose_distribution)
    return distribution.sample(config.validation_poses, seed=config.seed + VALIDATION_SEED_OFFSET, dtype=torch.float64)


def _render(drr: DRR, reference: Tensor, isocenter: Tensor, motions: Tensor) -> Tensor:
    """DRRs ``(B, 1, H, W)`` of the volume moved by ``motions`` (float64, any device) from ``reference``."""
    device = drr.data.device
    motions = motions.to(device=device, dtype=torch.float64)
    poses = perturb(reference.expand_as(motions), motions, isocenter)
    with torch.no_grad():
        return drr(poses.to(drr.data.dtype))


def _errors(predicted: Tensor, true: Tensor) -> RegressionErrors:
    predicted, true = predicted.detach().double().cpu(), true.detach().double().cpu()
    angle = torch.rad2deg(so3_angle(predicted[:, :3, :3], true[:, :3, :3]))
    shift = torch.linalg.vector_norm(predicted[:, :3, 3] - true[:, :3, 3], dim=-1)
    return RegressionErrors(
        median_rotation_deg=float(angle.median()),
        median_translation_mm=float(shift.median()),
        mean_rotation_deg=float(angle.mean()),
        mean_translation_mm=float(shift.mean()),
        poses=int(true.shape[0]),
    )


def evaluate_regressor(
    model: PoseRegressor,
    volume: Volume,
    geometry: ConeBeam,
    motions: Float[Tensor, "N 4 4"],
    *,
    batch_size: int = 32,
) -> RegressionErrors:
    """Render clean DRRs of ``volume`` moved by ``motions`` from the model's reference pose and score its predictions.

    Args:
        model: the regressor (put in eval mode here, and left so).
        volume: μ volume (mm⁻¹) whose isocentre is the model's.
        geometry: the C-arm; its detector must be ``model.image_size`` square.
        motions: true volume motions δ ``(N, 4, 4)`` in the model's isocentre frame.
        batch_size: DRRs rendered and predicted at a time.

    Returns:
        Median and mean rotation (degrees) and translation (mm) errors of the predicted δ.

    Raises:
        ValueError: a detector that is not the model's image size, or malformed motions.
    """
    if (geometry.height, geometry.width) != (model.image_size, model.image_size):
        raise ValueError(
            f"geometry: expected a {model.image_size}×{model.image_size} detector (the model's image size), "
            f"got {geometry.height}×{geometry.width}"
        )
    if motions.ndim != 3 or motions.shape[-2:] != (4, 4) or motions.shape[0] < 1:
        raise ValueError(f"motions: expected shape (N, 4, 4) with N >= 1, got {tuple(motions.shape)}")
    drr = DRR(volume, geometry)
    device = volume.data.device
    reference = model.reference.to(device=device, dtype=torch.float64)
    isocenter = model.isocenter.to(device=device, dtype=torch.float64)
    model.eval()
    predictions = []
    with torch.no_grad():
        for chunk in motions.split(batch_size):
            predictions.append(model(_render(drr, reference, isocenter, chunk)).cpu())
    return _errors(torch.cat(predictions), motions)


def train_regressor(
    volume: Volume,
    config: RegressionConfig | None = None,
    *,
    minutes: float | None = None,
    progress: bool = True,
    out: str | os.PathLike | None = None,
) -> tuple[PoseRegressor, TrainingSummary]:
    """Train a `PoseRegressor` on DRRs of ``volume`` (see the module docstring).

    The model and the rendering live on ``volume``'s device (move the volume to train on a GPU).
    The same ``config.seed`` on the same device gives the same weights.

    Args:
        volume: one channel of μ (mm⁻¹, e.g. `xrender.attenuation.hu_to_mu` of a CT in HU), a
            ``volume_size³`` cube; its isocentre is the centre of the motions.
        config: the settings (default `RegressionConfig()`).
        minutes: stop after this many minutes even before ``config.iterations``; ``None``: no limit.
        progress: show a tqdm bar with the running loss.
        out: write the trained regressor here (`PoseRegressor.save`, with ``summary`` and ``training_config``).

    Returns:
        The trained regressor (eval mode) and the `TrainingSummary`.

    Raises:
        TypeError: ``volume`` is not a `Volume`.
        ValueError: a volume that is not one channel of ``volume_size³`` voxels, an image size
            that does not divide the preset's detector, or ``minutes`` <= 0.
    """
    config = RegressionConfig() if config is None else config
    if not isinstance(volume, Volume):
        raise TypeError(f"volume: expected a Volume, got {type(volume).__name__}")
    expected = (config.volume_size,) * 3
    if volume.channels != 1 or volume.shape != expected:
        raise ValueError(
            f"volume: expected one channel of {config.volume_size}³ voxels (config.volume_size), "
            f"got {volume.channels} channel(s) of {'×'.join(map(str, volume.shape))}"
        )
    if minutes is not None and not (0 < minutes < math.inf):
        raise ValueError(f"minutes: expected a number > 0 or None, got {minutes!r}")
    geometry = regression_geometry(config)
    device = volume.data.device
    isocenter = volume.isocenter.to(torch.float64)
    reference = standard_pose(config.view, geometry.sid, isocenter)
    with torch.random.fork_rng(devices=[]):  # the initial weights, without touching the caller's RNG
        torch.manual_seed(config.seed)
        model = PoseRegressor(
            config.image_size,
            reference,
            isocenter,
            widths=config.widths,
            translation_scale_mm=config.translation_scale_mm,
        )
    model = model.to(device)
    drr = DRR(volume, geometry)
    distribution = get_pose_distribution(config.pose_distribution)
    augmentation = TargetAugmentation() if config.augment else None
    generator = torch.Generator().manual_seed(config.seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)

    held_out = validation_motions(config) if config.validation_poses else None
    before = None if held_out is None else evaluate_regressor(model, volume, geometry, held_out)

    model.train()
    losses: list[float] = []
    bar = tqdm(total=config.iterations, desc="regress", unit="it", disable=not progress)
    start = time.perf_counter()
    while len(losses) < config.iterations:
        if minutes is not None and time.perf_counter() - start > 60 * minutes:
            break
        motions = distribution.sample(config.batch_size, generator=generator, dtype=torch.float64)
        images = _render(drr, model.reference, model.isocenter, motions)
        if augmentation is not None:
            images = augmentation(images, generator)
        loss = regression_loss(model(images), motions.to(device), config).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
        recent = losses[-50:]
        bar.set_postfix(loss=f"{sum(recent) / len(recent):.4f}")
        bar.update()
    bar.close()
    seconds = time.perf_counter() - start

    after = None if held_out is None else evaluate_regressor(model, volume, geometry, held_out)
    model.eval()
    recent = losses[-50:]
    summary = TrainingSummary(
        iterations=len(losses),
        seconds=seconds,
        final_loss=sum(recent) / len(recent) if recent else math.nan,
        losses=losses,
        validation_before=before,
        validation=after,
    )
    if out is not None:
        model.save(Path(out), summary=summary.to_dict(), training_config=config.to_dict())
    return model, summary
