"""Pose similarities: score a camera pose against a target X-ray — what registration optimises.

A *pose similarity* is any callable ``similarity(pose, fixed) -> (B,)`` (higher is better) with
an ``isocenter`` (world mm) about which its poses are perturbed (`PoseSimilarity`). Two kinds
ship with xrender, and registration treats them alike:

* `RenderedSimilarity`: render a DRR at the pose, compare it with the target by an image
  similarity (NCC, gradient NCC, mutual information …, `xrender.similarity.get_similarity`).
* `xrender.similarity.prost.ProSTSimilarity`: the learned ProST similarity, which projects a
  learned feature volume at the pose and scores it against the target with a network head.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from jaxtyping import Float
from torch import Tensor, nn

from xrender._checks import check_shape
from xrender.render.module import DRR

__all__ = ["PoseGradientSimilarity", "PoseSimilarity", "RenderedSimilarity"]


@runtime_checkable
class PoseSimilarity(Protocol):
    """What registration needs from a similarity: a batched pose score and an isocentre."""

    isocenter: Tensor

    def __call__(self, pose: Float[Tensor, "B 4 4"], fixed: Float[Tensor, "B 1 H W"]) -> Float[Tensor, " B"]:
        """Score ``pose`` against ``fixed``: ``(B,)``, higher is better."""
        ...


@runtime_checkable
class PoseGradientSimilarity(PoseSimilarity, Protocol):
    """A pose similarity that computes its own pose gradient (faster than autograd through the score).

    `xrender.similarity.gradient_loss.similarity_value_and_gradient` uses it when present.
    """

    def value_and_pose_gradient(
        self, pose: Float[Tensor, "B 4 4"], fixed: Float[Tensor, "B 1 H W"], *, create_graph: bool = True
    ) -> tuple[Float[Tensor, " B"], Float[Tensor, "B 6"]]:
        """The scores ``(B,)`` and the gradients of ``-score`` w.r.t. the volume twist ``(B, 6)``.

        Same chart, values and graph semantics as
        `xrender.similarity.gradient_loss.pose_value_and_gradient`.
        """
        ...


class RenderedSimilarity(nn.Module):
    """``similarity(drr(pose), fixed)``: an image similarity evaluated on DRRs.

    Args:
        drr: renders the moving volume (its ``isocenter`` is this similarity's).
        similarity: an image similarity module ``(moving, fixed, mask) -> (B,)``, higher is better.
        mask: optional pixel weights ``(1 or B, 1, H, W)`` passed to ``similarity``.
    """

    def __init__(self, drr: DRR, similarity: nn.Module, mask: Float[Tensor, "*B 1 H W"] | None = None) -> None:
        super().__init__()
        if not isinstance(drr, DRR):
            raise TypeError(f"drr: expected an xrender.render.DRR, got {type(drr).__name__}")
        if not isinstance(similarity, nn.Module):
            raise TypeError(f"similarity: expected an image similarity nn.Module, got {type(similarity).__name__}")
        self.drr = drr
        self.similarity = similarity
        self.register_buffer("mask", mask)

    @property
    def isocenter(self) -> Float[Tensor, "3"]:
        """The rendered volume's isocentre (world mm)."""
        return self.drr.isocenter

    def forward(self, pose: Float[Tensor, "B 4 4"], fixed: Float[Tensor, "B C H W"]) -> Float[Tensor, " B"]:
        """Render at ``pose`` and score against ``fixed`` (same shape as the DRRs)."""
        check_shape(fixed, "B C H W", "fixed")
        return self.similarity(self.drr(pose).to(fixed.dtype), fixed, self.mask)
