"""The registration recipes: the ProST paper's two-stage method, its baselines, and their evaluation.

* `methods`: named methods as stage lists (``cmaes``, ``prost+cmaes``, ``ncc-adam``, ``regression``,
  ``nevergrad:<name>`` …) with all their settings in `MethodSettings`.
* `evaluation`: seeded simulated trials, every method on the same trials, per-trial metrics and
  per-method summaries (sharded under ``torchrun``).
* `report`: the JSON results, a markdown table, the capture-range plot and overlays.
* `command`: ``xrender evaluate`` and ``xrender register``.
"""

from xrender.recipes.registration.evaluation import (
    EvaluationConfig,
    TrialRecord,
    TrialSet,
    bone_points,
    evaluate,
    make_trials,
    summarize,
)
from xrender.recipes.registration.methods import (
    METHODS_IN_PAPER,
    STAGES,
    MethodContext,
    MethodSettings,
    available_stages,
    build_method,
)

__all__ = [
    "METHODS_IN_PAPER",
    "STAGES",
    "EvaluationConfig",
    "MethodContext",
    "MethodSettings",
    "TrialRecord",
    "TrialSet",
    "available_stages",
    "bone_points",
    "build_method",
    "evaluate",
    "make_trials",
    "summarize",
]
