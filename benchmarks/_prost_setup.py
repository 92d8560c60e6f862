"""What the ProST benchmarks share: a trained network, the subject it was trained on, and its training pairs.

from _prost_setup import add_model_arguments, trained_setup   # a sibling of the benchmark scripts
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from xrender.geometry import ConeBeam
from xrender.recipes.registration.command import load_models
from xrender.recipes.training.config import TrainConfig
from xrender.recipes.training.pairs import PairSampler
from xrender.recipes.training.train import pair_sampler, training_geometry
from xrender.similarity.prost import ProSTSimilarity
from xrender.subject import Subject, ct_subject, phantom_subject


@dataclass(frozen=True)
class TrainedSetup:
    """A network's similarity on the subject it was trained on, at the training C-arm, and a pair sampler
    drawing as `xrender train` draws (the default `TrainConfig`)."""

    subject: Subject
    geometry: ConeBeam
    sampler: PairSampler
    similarity: ProSTSimilarity


def add_model_arguments(parser: argparse.ArgumentParser, seed: int) -> None:
    """``--model``, ``--ct`` and ``--seed`` (default ``seed``)."""
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--ct", type=Path, default=None, help="the CT the model was trained on (default: the phantom)")
    parser.add_argument("--seed", type=int, default=seed, help="seed of the pose pairs")


def trained_setup(args: argparse.Namespace) -> TrainedSetup:
    """The `TrainedSetup` of ``args.model`` on ``args.ct`` (the phantom if ``None``), the bone volume at
    the network's training size."""
    config = TrainConfig()
    models = load_models(args.model, None)
    size = models.prost_volume_size or config.volume_size
    if args.ct is None:
        subject = phantom_subject(size, config.bone_threshold_hu)
    else:
        subject = ct_subject(args.ct, size, config.bone_threshold_hu)
    geometry = training_geometry(config)
    sampler = pair_sampler(config, [subject], geometry, None, args.seed)
    return TrainedSetup(subject, geometry, sampler, ProSTSimilarity(subject.moving, geometry, models.prost).eval())
