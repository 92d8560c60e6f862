"""Similarities: how well a pose (or an image) matches an X-ray, higher is better.

* Image similarities ``(moving, fixed, mask) -> (B,)``: `NCCSimilarity`, patch and multiscale NCC,
  gradient NCC and mutual information, each with a minimisable ``...Loss`` twin; by name through
  `get_similarity`.
* Pose similarities ``(pose, fixed) -> (B,)``, what registration optimises: `RenderedSimilarity`
  (an image similarity on DRRs) and the learned `xrender.similarity.prost.ProSTSimilarity`.
* `xrender.similarity.gradient_loss`: the double-backward loss that trains the learned one.
"""

from xrender.similarity.base import ImageSimilarity, SimilarityLoss
from xrender.similarity.gradient_ncc import GradientNCCLoss, GradientNCCSimilarity, gradient_ncc
from xrender.similarity.mutual_information import (
    MIN_BANDWIDTH,
    MutualInformationLoss,
    MutualInformationSimilarity,
    mutual_information,
)
from xrender.similarity.ncc import (
    MultiscaleNCCLoss,
    MultiscaleNCCSimilarity,
    NCCLoss,
    NCCSimilarity,
    PatchNCCLoss,
    PatchNCCSimilarity,
    multiscale_ncc,
    ncc,
    patch_ncc,
)
from xrender.similarity.pose import PoseSimilarity, RenderedSimilarity
from xrender.similarity.registry import SIMILARITIES, available_similarities, get_similarity

__all__ = [
    "MIN_BANDWIDTH",
    "SIMILARITIES",
    "GradientNCCLoss",
    "GradientNCCSimilarity",
    "ImageSimilarity",
    "MultiscaleNCCLoss",
    "MultiscaleNCCSimilarity",
    "MutualInformationLoss",
    "MutualInformationSimilarity",
    "NCCLoss",
    "NCCSimilarity",
    "PatchNCCLoss",
    "PatchNCCSimilarity",
    "PoseSimilarity",
    "RenderedSimilarity",
    "SimilarityLoss",
    "available_similarities",
    "get_similarity",
    "gradient_ncc",
    "multiscale_ncc",
    "mutual_information",
    "ncc",
    "patch_ncc",
]
