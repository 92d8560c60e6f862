"""``xrender train``: turn command-line choices into a `TrainConfig` and subjects, train, save the network."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from xrender.recipes._config import parse_overrides
from xrender.recipes.distributed import Distributed
from xrender.recipes.training.config import get_scale, load_config_file
from xrender.recipes.training.train import Trainer, load_checkpoint, saved_config
from xrender.subject import Subject, ct_subject, phantom_subject

__all__ = ["TrainingRequest", "run_training"]


@dataclass(frozen=True)
class TrainingRequest:
    """Everything ``xrender train`` was asked to do: its options of the same names (see its ``--help``).

    ``ct`` lists the CT files (one network for all of them) and ``mask`` their bone
    segmentations, one per CT in the same order (or none); ``phantom`` trains on the embedded
    phantom instead. ``config_file`` and ``overrides`` (``--config``, ``--set``) change the
    `TrainConfig` of ``scale``.

    Raises:
        ValueError: both or neither of ``ct`` and ``phantom``, or masks that do not pair with the CTs.
    """

    ct: list[Path] = field(default_factory=list)
    out: Path = Path("prost.pt")
    phantom: bool = False
    mask: list[Path] = field(default_factory=list)
    iterations: int | None = None
    minutes: float | None = None
    resume: Path | None = None
    checkpoint: Path | None = None
    config_file: Path | None = None
    scale: str = "cpu"
    overrides: list[str] = field(default_factory=list)
    progress: bool = True

    def __post_init__(self) -> None:
        if bool(self.ct) == self.phantom:
            raise ValueError("expected CT paths or --phantom, not both or neither")
        if self.mask and len(self.mask) != len(self.ct):
            raise ValueError(f"expected one --mask per CT, got {len(self.mask)} for {len(self.ct)} CT(s)")


def _subjects(request: TrainingRequest, size: int, threshold: float | None) -> list[Subject]:
    if request.phantom:
        return [phantom_subject(size, threshold)]
    masks = request.mask or [None] * len(request.ct)
    return [ct_subject(path, size, threshold, mask) for path, mask in zip(request.ct, masks)]


def run_training(request: TrainingRequest, echo: Callable[[str], None] = print) -> Path:
    """Build the config (scale → file → ``--set`` → ``--iterations``/``--minutes``), train, write ``out``.

    Beside ``out`` go the checkpoint (``.ckpt``) and the learning curve (``.curve.json``, ``.curve.png``).

    With ``resume``, the checkpoint's config is used; ``--iterations``/``--minutes`` (else the
    checkpoint's own goal) say how far to continue.

    Returns:
        The written network file.

    Raises:
        ValueError: bad choices or config; `xrender.io.CheckpointError` for a bad ``resume``.
        FileNotFoundError: a missing CT.
    """
    config = get_scale(request.scale)
    changes = {} if request.config_file is None else load_config_file(request.config_file)
    changes.update(parse_overrides(request.overrides))
    if request.iterations is not None or request.minutes is not None:
        changes.update(iterations=request.iterations, minutes=request.minutes)
    config = config.replace(**changes)
    state = None if request.resume is None else load_checkpoint(request.resume)
    data = config if state is None else saved_config(state)
    if state is not None and request.iterations is None and request.minutes is None:
        config = config.replace(iterations=data.iterations, minutes=data.minutes)  # resume to the saved goal
    subjects = _subjects(request, data.volume_size, data.bone_threshold_hu)
    checkpoint = request.checkpoint or request.out.with_suffix(".ckpt")
    curve = request.out.with_suffix(".curve")
    distributed = Distributed.from_environment()
    try:
        trainer = Trainer(
            config, subjects, distributed=distributed, checkpoint=checkpoint, resume=state, curve_path=curve
        )
        if distributed.is_main:
            echo(f"ProST network ({trainer.config.head} head), trainable parameters:\n{trainer.describe()}")
            echo(f"training on {', '.join(s.name for s in subjects)} ({distributed.world_size} process(es))")
        result = trainer.run(progress=request.progress)
        if distributed.is_main:
            summary = {**result.summary, "config": trainer.config.to_dict()}
            written = result.network.save(request.out, summary=summary)
            echo(
                f"{result.iteration} iterations, {result.summary['iterations_per_second']:.2f} it/s, "
                f"final loss {result.summary['final_loss']:.3f}"
            )
            if result.validation is not None:
                echo(f"validation: {result.validation}")
            if trainer.curve.points:
                last = trainer.curve.points[-1]
                cosines = ", ".join(f"{name} {r:+.2f}/{t:+.2f}" for name, (r, t) in last.cosines.items())
                echo(f"gradient cosines (rotation/translation): {cosines}")
                echo(f"learning curve: {curve}.json, {curve}.png")
            echo(f"wrote {written} and checkpoint {checkpoint}")
        return request.out
    finally:
        distributed.close()
