"""The pose-regression baseline: a CNN trained on synthetic DRRs to read the pose off an X-ray.

`train_regressor` trains a `xrender.registration.regression.PoseRegressor` on DRRs of one volume
(motions drawn from a pose distribution about a standard view) and validates it on held-out
motions; the trained regressor is a baseline and an initial pose for registration.
"""

from xrender.recipes.regression.train import (
    LOSSES,
    RegressionConfig,
    RegressionErrors,
    TrainingSummary,
    evaluate_regressor,
    regression_geometry,
    regression_loss,
    train_regressor,
    validation_motions,
)

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
