"""`TrainConfig`: every setting of the ProST training recipe, with files and ``key=value`` overrides.

Named scales (`SCALES`, `get_scale`):

* ``"cpu"`` (the default): 64³ volume, 64×64 detector (the ProST C-arm binned by 2), batch 16,
  600 iterations, Adam with a warm-up and a cosine schedule, offset pairs from near to twice the
  journal's initial offsets (``"wide"``), no target augmentation — chosen from measured learning
  curves and registrations to learn in about 15 minutes on a 2-core CPU (``benchmarks/README.md``).
* ``"paper"``: the paper's 128³ volume and 128×128 detector, the journal's cross-attention head,
  geodesic loss and initial-pose distribution, SGD with the cyclic learning rate, batch 2,
  100 k iterations — for a GPU.

A config file (TOML or JSON, a flat table of field names) and ``key=value`` strings override any
field: ``xrender train --phantom --config cfg.toml --set lr_max=1e-3 --set head=cross-attention``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomllib

from xrender._registry import Registry
from xrender.recipes._config import ConfigRecord
from xrender.recipes.training.optim import OPTIMIZERS, SCHEDULES
from xrender.recipes.training.pairs import PAIRINGS
from xrender.render import BACKENDS

__all__ = ["SCALES", "TrainConfig", "get_scale", "load_config_file"]


@dataclass(frozen=True)
class TrainConfig(ConfigRecord):
    """Settings of `xrender.recipes.training.train` (the CPU scale's defaults; the ``"paper"`` scale sets the paper's).

    Attributes:
        volume_size: voxels per side of the cube the CT is resampled to.
        detector_size: detector pixels per side; the ``preset``'s detector binned to this size.
        preset: C-arm preset (`xrender.geometry.get_preset`).
        step_voxels: distance between samples when projecting the feature volume, in voxels.
        render_backend: the renderer of the feature projection (`xrender.render.choose_backend`):
            ``"auto"`` (the fused CPU kernel's pose-Jacobian render on the CPU, first-order only)
            or ``"grid_sample"`` (autograd's double backward; any device, the reference).
        bone_threshold_hu: without a segmentation, the moving volume keeps voxels above this HU
            (ProST's bone masking); ``None`` keeps the whole CT.
        head: ProST head (``"embedding"`` MICCAI, ``"cross-attention"`` journal).
        head_options: keyword options of the head (e.g. ``{"siamese": false}``).
        loss: gradient loss (``"direction"`` MICCAI, ``"geodesic"`` journal).
        feature_widths: hidden channels of the 3-D branch.
        true_poses: pose distribution of the true poses (`xrender.geometry.get_pose_distribution`).
        initial_poses: pose distribution of the initial (moving) poses, about the AP view or
            about the true pose, by ``pairing``.
        pairing: how initial poses are drawn (`xrender.recipes.training.pairs.PAIRINGS`):
            ``"independent"`` (the paper's) or ``"offset"``.
        offset_scale: ``(low, high)``: the ``"offset"`` pairing scales each offset by a factor
            log-uniform in this range.
        batch_size: pose pairs per iteration (per process under torchrun); the 3-D branch runs
            once per iteration, whatever the batch.
        iterations: iterations to reach (counting those of a resumed checkpoint); ``None``: run
            until ``minutes``.
        minutes: stop when this many minutes have passed in this run (or at ``iterations``,
            whichever comes first); ``None``: no time limit.
        optimizer: ``"adam"`` or ``"sgd"`` (`xrender.recipes.training.optim.OPTIMIZERS`).
        lr_schedule: ``"cosine"``, ``"cyclic"`` or ``"constant"`` (`xrender.recipes.training.optim.SCHEDULES`).
        lr_min: lowest learning rate of the schedule.
        lr_max: highest learning rate of the schedule.
        lr_half_cycle: ``"cyclic"``: iterations from ``lr_min`` to ``lr_max``.
        warmup_iterations: ``"cosine"``: iterations of the linear warm-up.
        schedule_iterations: ``"cosine"``: the iteration at which the rate reaches ``lr_min`` (and
            stays); ``None``: ``iterations`` of the run that starts training. A resumed run keeps
            its checkpoint's, so continuing to a further goal goes on at ``lr_min`` instead of
            jumping back up.
        momentum: SGD momentum.
        clip_norm: gradient-norm clipping threshold.
        augment_p: probability of each target augmentation (`xrender.augment.TargetAugmentation`);
            0 in the CPU scale (in a CPU budget, augmented targets slowed learning: a loss of 2.5
            instead of 1.9 after 150 iterations), 0.5 in the paper's.
        seed: seed of the weights, the pose draws and the augmentations.
        checkpoint_every: write a checkpoint every this many iterations (and at the end).
        validation_poses: held-out pose pairs in the validation pass.
        validation_steps: learned-gradient descent steps per validation pose.
        curve_every: score the held-out curve sets every this many iterations
            (`xrender.recipes.training.curve`); 0: no learning curve.
        curve_poses: pose pairs per curve set.
    """

    volume_size: int = 64
    detector_size: int = 64
    preset: str = "prost"
    step_voxels: float = 1.0
    render_backend: str = "auto"
    bone_threshold_hu: float | None = 200.0
    head: str = "embedding"
    head_options: dict[str, Any] = field(default_factory=dict)
    loss: str = "direction"
    feature_widths: tuple[int, ...] = (4, 8, 16, 8)
    true_poses: str = "prost-train"
    initial_poses: str = "wide"
    pairing: str = "offset"
    offset_scale: tuple[float, float] = (0.05, 1.0)
    batch_size: int = 16
    iterations: int | None = 600
    minutes: float | None = None
    optimizer: str = "adam"
    lr_schedule: str = "cosine"
    lr_min: float = 1e-5
    lr_max: float = 1e-3
    lr_half_cycle: int = 2000
    warmup_iterations: int = 20
    schedule_iterations: int | None = None
    momentum: float = 0.9
    clip_norm: float = 10.0
    augment_p: float = 0.0
    seed: int = 0
    checkpoint_every: int = 100
    validation_poses: int = 8
    validation_steps: int = 30
    curve_every: int = 25
    curve_poses: int = 24

    def __post_init__(self) -> None:
        object.__setattr__(self, "feature_widths", tuple(self.feature_widths))  # a list from JSON/TOML/checkpoints
        object.__setattr__(self, "offset_scale", tuple(self.offset_scale))
        object.__setattr__(self, "head_options", dict(self.head_options))
        positive = ("volume_size", "detector_size", "step_voxels", "batch_size", "lr_min", "lr_max", "lr_half_cycle")
        for name in (*positive, "clip_norm", "checkpoint_every", "validation_steps"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                raise ValueError(f"TrainConfig.{name}: expected a number > 0, got {value!r}")
        if self.iterations is None and self.minutes is None:
            raise ValueError("TrainConfig: expected iterations or minutes (or both), got neither")
        for name in (
            "validation_poses",
            "seed",
            "warmup_iterations",
            "curve_every",
            "curve_poses",
            *(("iterations",) if self.iterations is not None else ()),
            *(("schedule_iterations",) if self.schedule_iterations is not None else ()),
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"TrainConfig.{name}: expected an int >= 0, got {value!r}")
        if self.minutes is not None and not self.minutes > 0:
            raise ValueError(f"TrainConfig.minutes: expected a number > 0 or None, got {self.minutes!r}")
        if not (0 <= self.momentum < 1 and 0 <= self.augment_p <= 1 and self.lr_min <= self.lr_max):
            raise ValueError("TrainConfig: expected 0 <= momentum < 1, 0 <= augment_p <= 1 and lr_min <= lr_max")
        low, high = self.offset_scale if len(self.offset_scale) == 2 else (0, 0)
        if not 0 < low <= high:
            raise ValueError(
                f"TrainConfig.offset_scale: expected (low, high) with 0 < low <= high, got {self.offset_scale!r}"
            )
        named = (("optimizer", OPTIMIZERS), ("lr_schedule", SCHEDULES), ("pairing", PAIRINGS))
        for name, registry in named:
            if getattr(self, name) not in registry:
                raise ValueError(
                    f"TrainConfig.{name}: expected one of {', '.join(registry.names())}, got {getattr(self, name)!r}"
                )
        if self.render_backend != "auto" and self.render_backend not in BACKENDS:
            raise ValueError(
                f"TrainConfig.render_backend: expected auto or one of {', '.join(BACKENDS.names())}, "
                f"got {self.render_backend!r}"
            )
        if self.lr_schedule == "cosine" and self.iterations is None and self.schedule_iterations is None:
            raise ValueError(
                "TrainConfig.lr_schedule 'cosine' needs iterations (the schedule's length); got only minutes"
            )


#: Named starting configs: ``"cpu"`` and ``"paper"`` (see the module docstring).
SCALES: Registry[TrainConfig] = Registry("training scale", TrainConfig)
SCALES.register("cpu", TrainConfig)
SCALES.register(
    "paper",
    lambda: TrainConfig(
        volume_size=128,
        detector_size=128,
        head="cross-attention",
        loss="geodesic",
        initial_poses="prost-initial",
        pairing="independent",
        batch_size=2,
        iterations=100_000,
        optimizer="sgd",
        lr_schedule="cyclic",
        lr_min=1e-6,
        lr_max=1e-4,
        augment_p=0.5,
        checkpoint_every=1000,
        validation_poses=32,
        curve_every=1000,
        curve_poses=32,
    ),
)


def get_scale(name: str) -> TrainConfig:
    """The named starting config.

    Raises:
        ValueError: unknown name (the message lists the scales).
    """
    return SCALES.get(name)


_READERS: Mapping[str, Callable[[bytes], Any]] = {
    ".toml": lambda raw: tomllib.loads(raw.decode("utf-8")),
    ".json": lambda raw: json.loads(raw.decode("utf-8")),
}


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read a flat table of `TrainConfig` fields from a ``.toml`` or ``.json`` file.

    Raises:
        ValueError: unreadable file, unsupported suffix, malformed content or not a table; the
            message names the path.
    """
    path = Path(path)
    reader = _READERS.get(path.suffix.lower())
    if reader is None:
        raise ValueError(f"{path}: expected a config file ending in {' or '.join(_READERS)}")
    try:
        table = reader(path.read_bytes())
    except OSError as error:
        raise ValueError(f"{path}: cannot read ({error.strerror})") from None
    except (tomllib.TOMLDecodeError, json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: malformed config ({error})") from None
    if not isinstance(table, dict):
        raise ValueError(f"{path}: expected a table of TrainConfig fields, got {type(table).__name__}")
    return table
