"""The ProST training loop: on-the-fly pose pairs, the gradient-driven loss, checkpoints, curves, validation.

One iteration (per process):

1. draw a batch of (true pose, initial pose, target) for a random subject;
2. $g_\\text{net}$ = gradient of the learned distance w.r.t. the pose at the initial pose, with
   its graph (`xrender.similarity.gradient_loss.similarity_value_and_gradient`: through the
   pose-Jacobian render on the CPU, a double backward through ``grid_sample`` elsewhere);
   $g_\\text{geo}$ = the geodesic gradient toward the true pose;
3. loss = `GRADIENT_LOSSES` [config.loss] (g_net, g_geo), averaged; ``backward()`` reaches the
   weights through the derivative of $g_\\text{net}$;
4. average gradients over processes (torchrun), clip their norm, an optimiser step (skipped, and
   counted, if the gradient is not finite), a learning-rate step (`xrender.recipes.training.optim`).

Every ``curve_every`` iterations the main process scores the learning curve
(`xrender.recipes.training.curve`).

Checkpoints (`save_checkpoint`) hold the weights, the optimizer and scheduler states, every
process's generator states (the pose-pair generator and torch's global one) and the config, so
``resume`` continues bit for bit.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from xrender.augment import TargetAugmentation
from xrender.geometry import ConeBeam, get_preset
from xrender.io import CheckpointError, load_state, save_state
from xrender.recipes.distributed import Distributed
from xrender.recipes.training.config import TrainConfig
from xrender.recipes.training.curve import CurvePoint, LearningCurve, gradient_cosines, held_out_sets
from xrender.recipes.training.optim import build_optimizer, build_schedule
from xrender.recipes.training.pairs import Pair, PairSampler
from xrender.recipes.training.validation import ValidationReport, validate
from xrender.render import RenderOptions
from xrender.similarity.gradient_loss import get_gradient_loss, similarity_value_and_gradient, target_gradient
from xrender.similarity.prost import ProSTNetwork, ProSTSimilarity, describe_parameters
from xrender.subject import Subject

__all__ = [
    "CHECKPOINT_FORMAT",
    "TrainResult",
    "Trainer",
    "load_checkpoint",
    "pair_sampler",
    "saved_config",
    "train",
    "training_geometry",
]

#: Format tag of training checkpoints (`save_state`).
CHECKPOINT_FORMAT = "xrender.prost-training"

#: Version of training checkpoints: 2 since the optimiser, schedule and pairing became settings
#: (a version-1 checkpoint would resume SGD's state into another optimiser).
CHECKPOINT_VERSION = 2

#: Seed offset of the held-out validation pairs, far from any training seed.
VALIDATION_SEED_OFFSET = 1_000_003

#: Seed offset of the held-out learning-curve pairs.
CURVE_SEED_OFFSET = 2_000_003


def training_geometry(config: TrainConfig) -> ConeBeam:
    """The preset C-arm binned to ``detector_size`` pixels per side.

    Raises:
        ValueError: the preset's detector is not a multiple of ``detector_size``.
    """
    try:
        return get_preset(config.preset).binned_to(config.detector_size)
    except ValueError as error:
        raise ValueError(f"detector_size {config.detector_size} of preset {config.preset!r}: {error}") from None


def pair_sampler(
    config: TrainConfig,
    subjects: list[Subject],
    geometry: ConeBeam,
    augmentation: TargetAugmentation | None,
    seed: int,
) -> PairSampler:
    """A `PairSampler` drawing pairs as ``config`` says: its pose distributions, pairing and offset scale.

    Training, its learning curve and the tools that probe a trained network draw pairs this way.
    """
    return PairSampler(
        subjects,
        geometry,
        true_poses=config.true_poses,
        initial_poses=config.initial_poses,
        augmentation=augmentation,
        seed=seed,
        pairing=config.pairing,
        offset_scale=config.offset_scale,
    )


@dataclass
class TrainResult:
    """What a training run produced.

    Attributes:
        network: the trained network (on the training device).
        iteration: iterations done in total (including a resumed checkpoint's).
        losses: mean loss per iteration over the processes, from the first iteration.
        seconds: wall time of this run.
        validation: the final validation pass (main process), or ``None`` when skipped.
    """

    network: ProSTNetwork
    iteration: int
    losses: list[float]
    seconds: float
    validation: ValidationReport | None = None
    summary: dict[str, Any] = field(default_factory=dict)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a training checkpoint safely (``weights_only=True``) and check its format.

    Raises:
        CheckpointError: missing, corrupt, unsafe or foreign file (one line naming the path).
    """
    state = load_state(path, file_format=CHECKPOINT_FORMAT, version=CHECKPOINT_VERSION)
    missing = sorted({"config", "network", "optimizer", "scheduler", "iteration", "generators", "losses"} - set(state))
    if missing:
        raise CheckpointError(f"{path}: training checkpoint without {', '.join(missing)}")
    return state


def saved_config(state: dict[str, Any]) -> TrainConfig:
    """The `TrainConfig` stored in a checkpoint state.

    Raises:
        CheckpointError: the stored config is not a valid one.
    """
    try:
        return TrainConfig.from_dict(state["config"])
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"checkpoint config is not a TrainConfig ({error})") from None


class Trainer:
    """Holds one run's network, optimizer, scheduler and samplers; `run` trains (see the module docstring).

    Args:
        config: the settings.
        subjects: the CTs to train on.
        distributed: this process's place in a torchrun job (default: from the environment; alone,
            on the GPU when there is one).
        checkpoint: where checkpoints go (main process).
        resume: a checkpoint state (`load_checkpoint`) to continue from; its config is used,
            updated with ``config.iterations`` and ``config.minutes``.
        curve_path: where the learning curve goes (``curve_path.json`` and ``.png``, main
            process, rewritten at each point); ``None``: kept in memory (`Trainer.curve`).
    """

    def __init__(
        self,
        config: TrainConfig,
        subjects: list[Subject],
        *,
        distributed: Distributed | None = None,
        checkpoint: Path | None = None,
        resume: dict[str, Any] | None = None,
        curve_path: Path | None = None,
    ) -> None:
        if resume is not None:
            config = saved_config(resume).replace(iterations=config.iterations, minutes=config.minutes)
        elif config.schedule_iterations is None and config.iterations is not None:
            config = config.replace(schedule_iterations=config.iterations)  # fixed for the run's life
        self.config = config
        self.dist = distributed or Distributed.from_environment()
        self.checkpoint = checkpoint
        self.geometry = training_geometry(config)
        torch.manual_seed(config.seed)  # the initial weights
        self.network = ProSTNetwork(
            (self.geometry.height, self.geometry.width),
            head=config.head,
            head_options=config.head_options,
            feature_widths=config.feature_widths,
        ).to(self.dist.device)
        self.similarities = [
            ProSTSimilarity(
                s.moving,
                self.geometry,
                self.network,
                options=RenderOptions(
                    step_mm=config.step_voxels * float(s.moving.spacing.min()), backend=config.render_backend
                ),
            ).to(self.dist.device)
            for s in subjects
        ]
        self.subjects = subjects
        self.loss = get_gradient_loss(config.loss)
        self.optimizer = build_optimizer(self.network.parameters(), config)
        self.scheduler = build_schedule(self.optimizer, config)
        self.sampler = self.pair_sampler(subjects, TargetAugmentation(p=config.augment_p), config.seed + self.dist.rank)
        self.iteration = 0
        self.skipped = 0  # steps whose gradient was not finite (not applied)
        self.losses: list[float] = []
        self.seconds = 0.0  # training time of every run so far (curve evaluations excluded)
        self.curve = LearningCurve()
        self.curve_path = curve_path
        self._curve_sets: dict[str, Pair] | None = None
        if resume is None:
            self.dist.broadcast_parameters(self.network)
        else:
            self._restore(resume)

    # ------------------------------------------------------------------ checkpoints
    def _restore(self, state: dict[str, Any]) -> None:
        generators = state["generators"]
        if len(generators) != self.dist.world_size:
            raise CheckpointError(
                f"checkpoint written by {len(generators)} process(es); resume it with as many, "
                f"got {self.dist.world_size}"
            )
        self.network.load_state_dict(state["network"]["weights"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        mine = generators[self.dist.rank]
        self.sampler.generator.set_state(mine["pairs"])
        torch.set_rng_state(mine["torch"])
        self.iteration = int(state["iteration"])
        self.losses = list(state["losses"])
        self.seconds = float(state.get("seconds", 0.0))
        self.curve = LearningCurve.from_dict(state.get("curve", {}))

    def save_checkpoint(self) -> None:
        """Write the checkpoint (every process takes part; the main one writes)."""
        generators = self.dist.gather({"pairs": self.sampler.generator.get_state(), "torch": torch.get_rng_state()})
        if self.dist.is_main and self.checkpoint is not None:
            state = {
                "config": self.config.to_dict(),
                "network": self.network.to_state(),
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "iteration": self.iteration,
                "generators": generators,
                "losses": self.losses,
                "seconds": self.seconds,
                "curve": self.curve.to_dict(),
            }
            save_state(self.checkpoint, state, file_format=CHECKPOINT_FORMAT, version=CHECKPOINT_VERSION)

    # ------------------------------------------------------------------ training
    def step(self, pair: Pair) -> float:
        """One optimisation step on ``pair``; returns the loss averaged over the processes."""
        similarity = self.similarities[pair.subject]
        similarity.train()
        pair = pair.to(self.dist.device)
        true, initial, fixed = pair.true_pose, pair.initial_pose, pair.fixed
        _, g_net = similarity_value_and_gradient(similarity, initial, fixed, create_graph=True)
        g_geo = target_gradient(initial, true, similarity.isocenter)
        loss = self.loss(g_net, g_geo).mean()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.dist.average_gradients(self.network)
        norm = torch.nn.utils.clip_grad_norm_(self.network.parameters(), self.config.clip_norm)
        if bool(torch.isfinite(norm)):  # same on every process: the gradients were averaged
            self.optimizer.step()
        else:  # a NaN/inf gradient (e.g. a degenerate pose) must not poison the weights
            self.skipped += 1
        self.scheduler.step()
        return self.dist.mean(float(loss.detach()))

    def run(self, progress: bool = True, on_step: Callable[[int, float], None] | None = None) -> TrainResult:
        """Train until ``config.iterations`` (or ``config.minutes`` of wall time), then validate on the main process.

        The learning curve (`xrender.recipes.training.curve`) is scored at the start, every
        ``config.curve_every`` iterations and at the end.
        """
        config = self.config
        start = time.perf_counter()
        bar = tqdm(
            total=config.iterations,
            initial=self.iteration,
            desc="train",
            unit="it",
            disable=not (progress and self.dist.is_main),
        )
        done_here = 0
        limit = math.inf if config.iterations is None else config.iterations
        if not self.curve.points:
            self.record_curve(None)
        window: list[float] = []
        while self.iteration < limit:
            out_of_time = config.minutes is not None and time.perf_counter() - start > 60 * config.minutes
            if self.dist.agree(out_of_time):
                break
            tick = time.perf_counter()
            loss = self.step(self.sampler.draw(config.batch_size))
            self.seconds += time.perf_counter() - tick
            self.iteration += 1
            done_here += 1
            self.losses.append(loss)
            window.append(loss)
            recent = self.losses[-50:]
            bar.set_postfix(loss=f"{sum(recent) / len(recent):.3f}", lr=f"{self.scheduler.get_last_lr()[0]:.1e}")
            bar.update()
            if on_step is not None:
                on_step(self.iteration, loss)
            if config.curve_every and self.iteration % config.curve_every == 0:
                self.record_curve(sum(window) / len(window))
                window = []
            if self.iteration % config.checkpoint_every == 0:
                self.save_checkpoint()
        bar.close()
        if window:
            self.record_curve(sum(window) / len(window))
        seconds = time.perf_counter() - start
        self.save_checkpoint()
        report = self.validate(progress) if self.dist.is_main and config.validation_poses else None
        summary = {
            "iterations": self.iteration,
            "seconds": seconds,
            "training_seconds": self.seconds,
            "iterations_per_second": done_here / seconds if seconds > 0 else 0.0,
            "pairs_per_second": done_here * config.batch_size / seconds if seconds > 0 else 0.0,
            "processes": self.dist.world_size,
            "final_loss": sum(self.losses[-50:]) / max(1, len(self.losses[-50:])),
            "skipped_steps": self.skipped,
            "curve": self.curve.points[-1].cosines if self.curve.points else None,
            "validation": None if report is None else report.to_dict(),
        }
        return TrainResult(self.network, self.iteration, self.losses, seconds, report, summary)

    # ------------------------------------------------------------------ evaluation
    def pair_sampler(self, subjects: list[Subject], augmentation: TargetAugmentation | None, seed: int) -> PairSampler:
        """A `PairSampler` drawing pairs as the config says (`pair_sampler`)."""
        return pair_sampler(self.config, subjects, self.geometry, augmentation, seed)

    def record_curve(self, loss: float | None) -> None:
        """Score the held-out curve sets now and add a point (main process; no-op when ``curve_every`` is 0)."""
        if not (self.config.curve_every and self.config.curve_poses and self.dist.is_main):
            return
        if self._curve_sets is None:
            sampler = self.pair_sampler(self.subjects[:1], None, self.config.seed + CURVE_SEED_OFFSET)
            self._curve_sets = held_out_sets(sampler, self.config.curve_poses)
        similarity = self.similarities[0].eval()
        try:
            cosines = {
                name: gradient_cosines(similarity, pair.to(self.dist.device)) for name, pair in self._curve_sets.items()
            }
        finally:
            similarity.train()
        self.curve.points.append(CurvePoint(self.iteration, self.seconds, loss, cosines))
        if self.curve_path is not None:
            self.curve.write(self.curve_path, title=f"ProST training on {self.subjects[0].name}")

    def validation_pairs(self, subject: int = 0) -> list[Pair]:
        """The held-out pairs of ``subject``: clean targets, a seed no training process uses."""
        sampler = self.pair_sampler([self.subjects[subject]], None, self.config.seed + VALIDATION_SEED_OFFSET)
        n, size = self.config.validation_poses, self.config.batch_size
        return [sampler.draw(min(size, n - k)) for k in range(0, n, size)]

    def validate(self, progress: bool = False, subject: int = 0) -> ValidationReport:
        """The validation pass on the first subject (see `xrender.recipes.training.validation`)."""
        similarity = self.similarities[subject].eval()
        try:
            points = self.subjects[subject].points.to(self.dist.device)
            return validate(similarity, self.validation_pairs(subject), points, self.config.validation_steps, progress)
        finally:
            similarity.train()

    def describe(self) -> str:
        """Parameter counts of the network, one line per part."""
        return describe_parameters(self.network, depth=2)


def train(
    config: TrainConfig,
    subjects: list[Subject],
    *,
    checkpoint: str | Path | None = None,
    resume: str | Path | None = None,
    progress: bool = True,
) -> TrainResult:
    """Train a ProST network on ``subjects`` (see the module docstring); torchrun-aware.

    Args:
        config: the settings (with ``resume``, only ``iterations`` and ``minutes`` are taken).
        subjects: the CTs.
        checkpoint: path of the checkpoint to write.
        resume: path of a checkpoint to continue from.
        progress: show the tqdm bar (main process).

    Raises:
        CheckpointError: an unusable ``resume`` file.
    """
    state = None if resume is None else load_checkpoint(resume)
    trainer = Trainer(
        config,
        subjects,
        distributed=Distributed.from_environment(),
        checkpoint=None if checkpoint is None else Path(checkpoint),
        resume=state,
    )
    return trainer.run(progress=progress)
