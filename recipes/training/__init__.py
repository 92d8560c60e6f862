"""The ProST training recipe: a learned similarity trained with the double-backward, gradient-driven loss.

`train` (or ``xrender train``) assembles xrender's parts: `Subject` CTs (`phantom_subject`,
`ct_subject`), on-the-fly pose pairs (`PairSampler`), `xrender.similarity.prost.ProSTNetwork`, the
loss of `xrender.similarity.gradient_loss`, an optimiser and learning-rate schedule by name
(`recipes.training.optim`), learning curves (`recipes.training.curve`), atomic checkpoints that
resume bit for bit, data parallelism under ``torchrun``, and a validation pass.
"""

from recipes.training.config import SCALES, TrainConfig, get_scale, load_config_file, parse_overrides
from recipes.training.distributed import Distributed
from recipes.training.pairs import Pair, PairSampler, Subject, ct_subject, phantom_subject, volume_subject
from recipes.training.train import CHECKPOINT_FORMAT, Trainer, TrainResult, load_checkpoint, train, training_geometry
from recipes.training.validation import SUCCESS_TRE_MM, ValidationReport, validate

__all__ = [
    "CHECKPOINT_FORMAT",
    "SCALES",
    "SUCCESS_TRE_MM",
    "Distributed",
    "Pair",
    "PairSampler",
    "Subject",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "ValidationReport",
    "ct_subject",
    "get_scale",
    "load_checkpoint",
    "load_config_file",
    "parse_overrides",
    "phantom_subject",
    "volume_subject",
    "train",
    "training_geometry",
    "validate",
]
