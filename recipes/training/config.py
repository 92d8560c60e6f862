"""`TrainConfig`: every setting of the ProST training recipe, with files and ``key=value`` overrides.

Two named scales (`SCALES`, `get_scale`):

* ``"cpu"`` (the default): 64³ volume, 64×64 detector (the ProST C-arm binned by 2), batch 2 —
  runs on a laptop CPU.
* ``"paper"``: the paper's 128³ volume and 128×128 detector, the journal's cross-attention head,
  geodesic loss and initial-pose distribution, 100 k iterations — for a GPU.

A config file (TOML or JSON, a flat table of field names) and ``key=value`` strings override any
field: ``xrender train --phantom --config cfg.toml --set lr_max=1e-3 --set head=cross-attention``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomllib

from recipes._config import ConfigRecord
from xrender._registry import Registry

__all__ = ["SCALES", "TrainConfig", "get_scale", "load_config_file", "parse_overrides"]


@dataclass(frozen=True)
class TrainConfig(ConfigRecord):
    """Settings of `recipes.training.train` (the paper's values unless noted).

    Attributes:
        volume_size: voxels per side of the cube the CT is resampled to.
        detector_size: detector pixels per side; the ``preset``'s detector binned to this size.
        preset: C-arm preset (`xrender.geometry.get_preset`).
        step_voxels: distance between samples when projecting the feature volume, in voxels.
        bone_threshold_hu: without a segmentation, the moving volume keeps voxels above this HU
            (ProST's bone masking); ``None`` keeps the whole CT.
        head: ProST head (``"embedding"`` MICCAI, ``"cross-attention"`` journal).
        loss: gradient loss (``"direction"`` MICCAI, ``"geodesic"`` journal).
        feature_widths: hidden channels of the 3-D branch.
        true_poses: pose distribution of the true poses (`xrender.geometry.get_pose_distribution`).
        initial_poses: pose distribution of the initial (moving) poses, drawn independently.
        batch_size: pose pairs per iteration (per process under torchrun).
        iterations: iterations to reach (counting those of a resumed checkpoint); ``None``: run
            until ``minutes``.
        minutes: stop when this many minutes have passed in this run (or at ``iterations``,
            whichever comes first); ``None``: no time limit.
        lr_min: lower learning rate of the cyclic schedule.
        lr_max: upper learning rate of the cyclic schedule.
        lr_half_cycle: iterations from ``lr_min`` to ``lr_max``.
        momentum: SGD momentum.
        clip_norm: gradient-norm clipping threshold.
        augment_p: probability of each target augmentation (`xrender.augment.TargetAugmentation`).
        seed: seed of the weights, the pose draws and the augmentations.
        checkpoint_every: write a checkpoint every this many iterations (and at the end).
        validation_poses: held-out pose pairs in the validation pass.
        validation_steps: learned-gradient descent steps per validation pose.
    """

    volume_size: int = 64
    detector_size: int = 64
    preset: str = "prost"
    step_voxels: float = 1.0
    bone_threshold_hu: float | None = 200.0
    head: str = "embedding"
    loss: str = "direction"
    feature_widths: tuple[int, ...] = (4, 8, 16, 8)
    true_poses: str = "prost-train"
    initial_poses: str = "prost-train"
    batch_size: int = 2
    iterations: int | None = 1000
    minutes: float | None = None
    lr_min: float = 1e-6
    lr_max: float = 1e-4
    lr_half_cycle: int = 2000
    momentum: float = 0.9
    clip_norm: float = 10.0
    augment_p: float = 0.5
    seed: int = 0
    checkpoint_every: int = 100
    validation_poses: int = 8
    validation_steps: int = 30

    def __post_init__(self) -> None:
        object.__setattr__(self, "feature_widths", tuple(self.feature_widths))  # a list from JSON/TOML/checkpoints
        positive = ("volume_size", "detector_size", "step_voxels", "batch_size", "lr_min", "lr_max", "lr_half_cycle")
        for name in (*positive, "clip_norm", "checkpoint_every", "validation_steps"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                raise ValueError(f"TrainConfig.{name}: expected a number > 0, got {value!r}")
        if self.iterations is None and self.minutes is None:
            raise ValueError("TrainConfig: expected iterations or minutes (or both), got neither")
        for name in ("validation_poses", "seed", *(("iterations",) if self.iterations is not None else ())):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"TrainConfig.{name}: expected an int >= 0, got {value!r}")
        if self.minutes is not None and not self.minutes > 0:
            raise ValueError(f"TrainConfig.minutes: expected a number > 0 or None, got {self.minutes!r}")
        if not (0 <= self.momentum < 1 and 0 <= self.augment_p <= 1 and self.lr_min <= self.lr_max):
            raise ValueError("TrainConfig: expected 0 <= momentum < 1, 0 <= augment_p <= 1 and lr_min <= lr_max")


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
        iterations=100_000,
        checkpoint_every=1000,
        validation_poses=32,
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


def parse_overrides(items: Iterable[str]) -> dict[str, Any]:
    """``["lr_max=1e-3", "head=cross-attention", "minutes=null"]`` → a dict of values.

    Values are read as JSON (numbers, ``true``/``false``, ``null``, lists), else kept as strings.

    Raises:
        ValueError: an item without ``=``.
    """
    parsed: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"override {item!r}: expected key=value")
        try:
            parsed[key.strip()] = json.loads(text)
        except json.JSONDecodeError:
            parsed[key.strip()] = text
    return parsed
