"""When an optimiser stops: iteration and time budgets and the ProST paper's plateau rule.

A `StopRule` is checked once per iteration (a descent step, a CMA-ES generation) with the
history of the iteration's best cost. The plateau rule is the paper's: stop when the standard
deviation of the last ``plateau_window`` values falls below ``plateau_tol``. The time budget is
a limit not to pass: the optimisers stop when the next iteration, expected to last as long as the
last one, would end after it.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["StopRule"]


@dataclass(frozen=True)
class StopRule:
    """Budgets and the plateau rule of one optimisation.

    Attributes:
        max_iterations: the most iterations (steps or generations).
        max_seconds: stop after this much wall time (``None``: no limit).
        plateau_window: how many recent values the plateau test looks at.
        plateau_tol: stop when the std of the last ``plateau_window`` values is below this
            (``None``: never).
    """

    max_iterations: int = 100
    max_seconds: float | None = None
    plateau_window: int = 10
    plateau_tol: float | None = None

    def __post_init__(self) -> None:
        if isinstance(self.max_iterations, bool) or not isinstance(self.max_iterations, int) or self.max_iterations < 1:
            raise ValueError(f"StopRule.max_iterations: expected an int >= 1, got {self.max_iterations!r}")
        if self.max_seconds is not None and not (math.isfinite(self.max_seconds) and self.max_seconds > 0):
            raise ValueError(f"StopRule.max_seconds: expected a positive number or None, got {self.max_seconds!r}")
        if isinstance(self.plateau_window, bool) or not isinstance(self.plateau_window, int) or self.plateau_window < 2:
            raise ValueError(f"StopRule.plateau_window: expected an int >= 2, got {self.plateau_window!r}")
        if self.plateau_tol is not None and not (math.isfinite(self.plateau_tol) and self.plateau_tol >= 0):
            raise ValueError(f"StopRule.plateau_tol: expected a number >= 0 or None, got {self.plateau_tol!r}")

    def reason(self, history: Sequence[float], seconds: float, next_seconds: float = 0.0) -> str | None:
        """Why to stop after the iterations in ``history`` (costs, one per iteration), or ``None`` to go on.

        Args:
            history: the best cost of each iteration so far.
            seconds: wall time spent so far.
            next_seconds: how long the next iteration is expected to take: ``"time"`` when
                ``seconds + next_seconds`` reaches ``max_seconds``.
        """
        if len(history) >= self.max_iterations:
            return "iterations"
        if self.max_seconds is not None and seconds + next_seconds >= self.max_seconds:
            return "time"
        window = history[-self.plateau_window :]
        plateau = self.plateau_tol is not None and len(window) == self.plateau_window
        return "plateau" if plateau and statistics.pstdev(window) < self.plateau_tol else None
