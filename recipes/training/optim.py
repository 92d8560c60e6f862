"""Optimisers and learning-rate schedules of the training recipe, by name.

* `OPTIMIZERS`: ``"sgd"`` (momentum ``config.momentum``; the paper's) and ``"adam"``.
* `SCHEDULES`: ``"cyclic"`` (the paper's triangular cycle between ``lr_min`` and ``lr_max``,
  ``lr_half_cycle`` iterations up), ``"cosine"`` (a linear warm-up over ``warmup_iterations`` to
  ``lr_max``, then a half cosine down to ``lr_min`` at ``config.schedule_iterations``, then flat)
  and ``"constant"`` (``lr_max``).

Every schedule is a function of the iteration and of settings a checkpoint keeps, so an
interrupted run resumes bit for bit.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

import torch
from torch.optim import Optimizer
from torch.optim.lr_scheduler import CyclicLR, LambdaLR, LRScheduler

from xrender._registry import Registry

if TYPE_CHECKING:  # config.py validates names against these registries
    from xrender.recipes.training.config import TrainConfig

__all__ = ["OPTIMIZERS", "SCHEDULES", "build_optimizer", "build_schedule", "cosine_factor"]

Parameters = Iterable[torch.nn.Parameter]

#: Optimiser factories ``(parameters, config) -> Optimizer``; the learning rate is the schedule's.
OPTIMIZERS: Registry[Callable[[Parameters, TrainConfig], Optimizer]] = Registry("optimizer", object)
OPTIMIZERS.register("sgd", lambda: lambda params, c: torch.optim.SGD(params, lr=c.lr_max, momentum=c.momentum))
OPTIMIZERS.register("adam", lambda: lambda params, c: torch.optim.Adam(params, lr=c.lr_max))


def cosine_factor(iteration: int, config: TrainConfig) -> float:
    """The ``"cosine"`` schedule's learning rate at ``iteration``, as a fraction of ``lr_max``."""
    warm = min(1.0, (iteration + 1) / max(1, config.warmup_iterations))
    length = config.schedule_iterations or config.iterations or 1
    progress = min(1.0, iteration / max(1, length))
    floor = config.lr_min / config.lr_max
    return warm * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress)))


def _cyclic(optimizer: Optimizer, config: TrainConfig) -> LRScheduler:
    return CyclicLR(
        optimizer,
        base_lr=config.lr_min,
        max_lr=config.lr_max,
        step_size_up=config.lr_half_cycle,
        cycle_momentum=False,
    )


#: Schedule factories ``(optimizer, config) -> LRScheduler``, stepped once per iteration.
SCHEDULES: Registry[Callable[[Optimizer, TrainConfig], LRScheduler]] = Registry("learning-rate schedule", object)
SCHEDULES.register("cyclic", lambda: _cyclic)
SCHEDULES.register("cosine", lambda: lambda opt, c: LambdaLR(opt, lambda k: cosine_factor(k, c)))
SCHEDULES.register("constant", lambda: lambda opt, c: LambdaLR(opt, lambda k: 1.0))


def build_optimizer(parameters: Parameters, config: TrainConfig) -> Optimizer:
    """``config.optimizer`` over ``parameters``.

    Raises:
        ValueError: unknown name (the message lists the optimisers).
    """
    return OPTIMIZERS.get(config.optimizer)(parameters, config)


def build_schedule(optimizer: Optimizer, config: TrainConfig) -> LRScheduler:
    """``config.lr_schedule`` on ``optimizer``.

    Raises:
        ValueError: unknown name (the message lists the schedules).
    """
    return SCHEDULES.get(config.lr_schedule)(optimizer, config)
