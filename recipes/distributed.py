"""Data-parallel training under ``torchrun``: one process per GPU (or CPU worker), gradients averaged.

`Distributed.from_environment` reads the variables ``torchrun`` sets (``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``MASTER_ADDR``…) and joins the process group — NCCL on GPUs, gloo on CPUs. Without
them it is a single process and every collective is a no-op.

Why not `torch.nn.parallel.DistributedDataParallel`'s wrapper: its gradient hooks do not support
the double backward the ProST loss needs. Measured here: with defaults it raises "Expected to
have finished reduction in the prior iteration", and with ``static_graph=True`` it trains but the
ranks' weights drift apart. So the recipe keeps the engine (torchrun, the process group, the
collectives) and averages gradients itself after ``loss.backward()``: one flattened
``all_reduce`` per iteration, the same arithmetic DDP's reducer performs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

__all__ = ["Distributed"]


@dataclass(frozen=True)
class Distributed:
    """This process's place in the job.

    Attributes:
        rank: global rank (0 in a single process).
        world_size: number of processes.
        device: the device this process trains on.
    """

    rank: int = 0
    world_size: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def is_main(self) -> bool:
        """Whether this process writes files and shows progress."""
        return self.rank == 0

    @classmethod
    def from_environment(cls) -> Distributed:
        """Join the ``torchrun`` job described by the environment, or run alone."""
        world_size = int(os.environ.get("WORLD_SIZE", "1"))
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        device = torch.device("cuda", local_rank) if torch.cuda.is_available() else torch.device("cpu")
        if world_size == 1:
            return cls(device=device)
        if not dist.is_initialized():
            if device.type == "cuda":
                torch.cuda.set_device(device)
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        return cls(dist.get_rank(), dist.get_world_size(), device)

    def broadcast_parameters(self, module: nn.Module) -> None:
        """Give every process rank 0's weights."""
        if self.world_size > 1:
            for tensor in module.state_dict().values():
                dist.broadcast(tensor, src=0)

    def average_gradients(self, module: nn.Module) -> None:
        """Average ``.grad`` over the processes (missing gradients count as zero)."""
        if self.world_size == 1:
            return
        params = [p for p in module.parameters() if p.requires_grad]
        for p in params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        flat = torch.cat([p.grad.reshape(-1) for p in params])
        dist.all_reduce(flat)
        flat /= self.world_size
        for p, chunk in zip(params, flat.split([p.numel() for p in params])):
            p.grad.copy_(chunk.view_as(p))

    def gather(self, value: Any) -> list[Any]:
        """Every process's ``value``, in rank order (a one-element list when alone)."""
        if self.world_size == 1:
            return [value]
        values: list[Any] = [None] * self.world_size
        dist.all_gather_object(values, value)
        return values

    def agree(self, flag: bool) -> bool:
        """Rank 0's ``flag`` on every process (so all stop on the same iteration)."""
        if self.world_size == 1:
            return flag
        tensor = torch.tensor([float(flag)], device=self.device)
        dist.broadcast(tensor, src=0)
        return bool(tensor[0] > 0)

    def mean(self, value: float) -> float:
        """The mean of a number over the processes."""
        if self.world_size == 1:
            return value
        tensor = torch.tensor([value], dtype=torch.float64, device=self.device)
        dist.all_reduce(tensor)
        return float(tensor[0]) / self.world_size

    def close(self) -> None:
        """Leave the process group."""
        if self.world_size > 1 and dist.is_initialized():
            dist.destroy_process_group()
