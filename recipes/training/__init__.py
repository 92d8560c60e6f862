"""The ProST training recipe: a learned similarity trained with the double-backward, gradient-driven loss.

`train` (or ``xrender train``) assembles xrender's parts: `xrender.subject.Subject` CTs
(`xrender.subject.phantom_subject`, `xrender.subject.ct_subject`), on-the-fly pose pairs
(`PairSampler`), `xrender.similarity.prost.ProSTNetwork`, the loss of
`xrender.similarity.gradient_loss`, an optimiser and learning-rate schedule by name
(`xrender.recipes.training.optim`), learning curves (`xrender.recipes.training.curve`), atomic
checkpoints that resume bit for bit, data parallelism under ``torchrun`` (`xrender.recipes.distributed`), and a
validation pass.
"""

from xrender.recipes.training.config import SCALES, TrainConfig, get_scale, load_config_file
from xrender.recipes.training.pairs import Pair, PairSampler
from xrender.recipes.training.train import (
    CHECKPOINT_FORMAT,
    Trainer,
    TrainResult,
    load_checkpoint,
    pair_sampler,
    train,
    training_geometry,
)
from xrender.recipes.training.validation import SUCCESS_TRE_MM, ValidationReport, validate

__all__ = [
    "CHECKPOINT_FORMAT",
    "SCALES",
    "SUCCESS_TRE_MM",
    "Pair",
    "PairSampler",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "ValidationReport",
    "get_scale",
    "load_checkpoint",
    "load_config_file",
    "pair_sampler",
    "train",
    "training_geometry",
    "validate",
]
