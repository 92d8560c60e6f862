"""Registration: find the pose at which a volume's projection matches an X-ray.

* Search space: motion parameters about the isocentre (`xrender.geometry.motion`: degrees and mm).
* Cost: `PoseObjective` — a pose similarity's distance plus an optional `PosePrior`.
* Optimisers, one interface and a registry (`get_optimizer`): `CMAES` (cma), `NevergradOptimizer`
  (any nevergrad optimiser by name), `GradientOptimizer` (Adam, SGD, L-BFGS); stopped by a `StopRule`.
* Stages: `IntensityStage` (multi-resolution `Level` objects), `LearnedDescentStage` (ProST stage 1,
  `pose_descent` with its `DescentOptions`), `MultiStartStage` (that descent from many turned
  starts, then refinement of the best ends), `LearnedSearchStage` (an optimiser on the learned
  score), `RegressionStage`; chained by `register`.
"""

from xrender.registration.descent import DescentOptions, DescentResult, pose_descent
from xrender.registration.objective import PoseObjective, PosePrior
from xrender.registration.optimizers import (
    CMAES,
    OPTIMIZERS,
    GradientOptimizer,
    NevergradOptimizer,
    OptimizationResult,
    Optimizer,
    available_optimizers,
    get_optimizer,
)
from xrender.registration.pipeline import RegistrationResult, register
from xrender.registration.problem import RegistrationProblem
from xrender.registration.stages import (
    IntensityStage,
    LearnedDescentStage,
    LearnedSearchStage,
    Level,
    MultiStartStage,
    RegressionStage,
    Stage,
    StageResult,
)
from xrender.registration.stopping import StopRule

__all__ = [
    "CMAES",
    "OPTIMIZERS",
    "DescentOptions",
    "DescentResult",
    "GradientOptimizer",
    "IntensityStage",
    "LearnedDescentStage",
    "LearnedSearchStage",
    "Level",
    "MultiStartStage",
    "NevergradOptimizer",
    "OptimizationResult",
    "Optimizer",
    "PoseObjective",
    "PosePrior",
    "RegistrationProblem",
    "RegistrationResult",
    "RegressionStage",
    "Stage",
    "StageResult",
    "StopRule",
    "available_optimizers",
    "get_optimizer",
    "pose_descent",
    "register",
]
