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
    """What registration needs from a similarity: a batched pose score and an isocentre.

    Examples:
        >>> import torch
        >>> from xrender import Volume
        >>> from xrender.geometry import ConeBeam
        >>> from xrender.render import DRR
        >>> from xrender.similarity import NCCSimilarity, PoseSimilarity, RenderedSimilarity
        >>> volume = Volume(torch.ones(1, 8, 8, 8), torch.eye(4))
        >>> drr = DRR(volume, ConeBeam(sdd=1000.0, height=8, width=8, pixel_spacing=(1.0, 1.0), sid=500.0))
        >>> similarity = RenderedSimilarity(drr, NCCSimilarity())
        >>> isinstance(similarity, PoseSimilarity), similarity.isocenter.tolist()  # a score and an isocentre
        (True, [3.5, 3.5, 3.5])
        >>> isinstance(NCCSimilarity(), PoseSimilarity)  # an image similarity is not one
        False
    """

    isocenter: Tensor

    def __call__(self, pose: Float[Tensor, "B 4 4"], fixed: Float[Tensor, "B 1 H W"]) -> Float[Tensor, " B"]:
        """Score ``pose`` against ``fixed``: ``(B,)``, higher is better."""
        ...


@runtime_checkable
class PoseGradientSimilarity(PoseSimilarity, Protocol):
    """A pose similarity that computes its own pose gradient (faster than autograd through the score).

    `xrender.similarity.gradient_loss.similarity_value_and_gradient` uses it when present.

    Examples:
        >>> import torch
        >>> from xrender import Volume
        >>> from xrender.geometry import ConeBeam
        >>> from xrender.render import DRR
        >>> from xrender.similarity import NCCSimilarity, RenderedSimilarity
        >>> from xrender.similarity.pose import PoseGradientSimilarity
        >>> from xrender.similarity.prost import ProSTNetwork, ProSTSimilarity
        >>> volume = Volume(torch.ones(1, 8, 8, 8), torch.eye(4))
        >>> geometry = ConeBeam(sdd=1000.0, height=16, width=16, pixel_spacing=(1.0, 1.0), sid=500.0)
        >>> isinstance(ProSTSimilarity(volume, geometry, ProSTNetwork((16, 16))), PoseGradientSimilarity)
        True
        >>> isinstance(RenderedSimilarity(DRR(volume, geometry), NCCSimilarity()), PoseGradientSimilarity)  # autograd
        False
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

    Examples:
        >>> import torch
        >>> from xrender import Volume
        >>> from xrender.geometry import ConeBeam, pose_from_motion, standard_pose
        >>> from xrender.render import DRR
        >>> from xrender.similarity import NCCSimilarity, RenderedSimilarity
        >>> data = torch.rand(1, 8, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
        >>> volume = Volume(data, torch.diag(torch.tensor([2.0, 2.0, 2.0, 1.0])))
        >>> geometry = ConeBeam(sdd=1000.0, height=8, width=8, pixel_spacing=(4.0, 4.0), sid=500.0)
        >>> similarity = RenderedSimilarity(DRR(volume, geometry), NCCSimilarity())
        >>> true_pose = standard_pose("ap", 500.0, volume.isocenter)[None]
        >>> xray = similarity.drr(true_pose)  # the target: a DRR at the true pose
        >>> motion = torch.tensor([[0.0, 0.0, 10.0, 3.0, 0.0, 0.0]], dtype=torch.float64)  # 10° about the beam, 3 mm
        >>> moved = pose_from_motion(motion, true_pose, volume.isocenter)
        >>> similarity(true_pose, xray).round(decimals=6).tolist(), bool(similarity(moved, xray) < 0.9)
        ([1.0], True)
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
