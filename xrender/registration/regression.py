r"""`PoseRegressor`: a CNN that reads a pose straight off an X-ray — the learning-based baseline.

Registration by regression skips the similarity and the optimiser: one forward pass maps the
image to the pose (the "pose regression" family the ProST paper compares against, Gao et al.,
TMI 2024). Its answer is coarse, so it is mostly useful as a baseline and as an initial pose for
an intensity- or ProST-based registration.

The network predicts the **volume motion** $\delta$ (4×4) in the isocentre frame of a fixed
reference pose $T_0$ — the quantity the pose distributions of `xrender.geometry.sampling` draw —
and the camera-to-world pose follows as `xrender.geometry.perturb` $(T_0, \delta, c)$.

Architecture (small, fast on a CPU):

1. the image is standardised (zero mean, unit variance; its intensity scale carries no pose);
2. two normalised pixel-coordinate channels $(u, v) \in [-1, 1]^2$ are appended (CoordConv), so
   the convolutions, which are blind to position, can tell where a structure lies — the in-plane
   translation is a position;
3. one stage per entry of ``widths``: a stride-2 3×3 convolution, GroupNorm, ReLU, then a 3×3
   convolution, GroupNorm, ReLU;
4. average pooling to a 4×4 grid (`POOLED_GRID`; a global average would discard the layout that
   in-plane rotation and translation are read from) and a two-layer MLP give 9 numbers: a 6-D
   rotation (the first two columns of $R$, Gram–Schmidt) and a translation in units of
   ``translation_scale_mm``.

The last layer starts at zero with a bias of the identity's 6-D rotation, so an untrained
network predicts $\delta = I$ (the reference pose).
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor, nn

from xrender._checks import check_finite, check_positive, check_shape, check_tensor
from xrender.geometry.perturbation import perturb
from xrender.geometry.rotations import rotation_6d_to_matrix
from xrender.io import SavedModule
from xrender.similarity.prost.similarity import standardize

__all__ = ["POOLED_GRID", "REGRESSOR_FORMAT", "PoseRegressor"]

#: Format tag of the files written by `PoseRegressor.save`.
REGRESSOR_FORMAT = "xrender.pose-regressor"

#: Side of the grid the last feature map is average-pooled to before the MLP (keeps a coarse layout).
POOLED_GRID = 4

#: 6-D representation of the identity rotation: its first two columns.
_IDENTITY_6D = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)


def _assemble(R: Float[Tensor, "B 3 3"], t: Float[Tensor, "B 3"]) -> Float[Tensor, "B 4 4"]:
    """``[[R, t], [0, 1]]`` without checks."""
    top = torch.cat((R, t[..., None]), dim=-1)
    bottom = torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=R.dtype, device=R.device).expand(*R.shape[:-2], 1, 4)
    return torch.cat((top, bottom), dim=-2)


def _stage(channels_in: int, channels_out: int) -> nn.Sequential:
    """Stride-2 conv → GroupNorm → ReLU → conv → GroupNorm → ReLU: half the resolution."""
    groups = math.gcd(8, channels_out)
    return nn.Sequential(
        nn.Conv2d(channels_in, channels_out, 3, stride=2, padding=1, bias=False),
        nn.GroupNorm(groups, channels_out),
        nn.ReLU(inplace=True),
        nn.Conv2d(channels_out, channels_out, 3, padding=1, bias=False),
        nn.GroupNorm(groups, channels_out),
        nn.ReLU(inplace=True),
    )


def _check_rigid(reference: Tensor) -> Tensor:
    """A finite 4×4 rigid transform (orthonormal rotation with det +1, last row 0 0 0 1), as float64."""
    check_finite(check_shape(check_tensor(reference, "reference"), "4 4", "reference"), "reference")
    T = reference.detach().to(torch.float64)
    R = T[:3, :3]
    eye = torch.eye(3, dtype=torch.float64, device=T.device)
    bottom = torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=torch.float64, device=T.device)
    orthonormal = bool((R.T @ R - eye).abs().max() < 1e-4) and bool(torch.linalg.det(R) > 0)
    if not (orthonormal and torch.equal(T[3], bottom)):
        raise ValueError("reference: expected a rigid camera-to-world pose (rotation with det +1, last row 0 0 0 1)")
    return T


class PoseRegressor(SavedModule):
    """A CNN from an X-ray ``(B, 1, H, W)`` to the volume motion ``δ`` (see the module docstring).

    `config` holds the constructor's plain arguments; the reference pose and the isocentre are
    buffers (float64) and travel with the weights, so a saved regressor is self-contained.

    Args:
        image_size: side ``H = W`` of the square images it reads (pixels).
        reference: camera-to-world reference pose ``(4, 4)``; ``δ = I`` means this pose.
        isocenter: world point ``(3,)`` (mm) about which ``δ`` rotates the volume.
        widths: channels of the convolution stages (one halving of the resolution each).
        translation_scale_mm: the translation output is multiplied by this (mm), so the raw
            outputs stay of order 1.

    Raises:
        ValueError: a non-positive size or scale, empty or non-positive widths, or a reference
            that is not a rigid 4×4 pose, or an isocentre that is not 3 finite numbers.
        TypeError: ``reference`` or ``isocenter`` is not a tensor.
    """

    file_format = REGRESSOR_FORMAT
    description = "pose regressor"

    def __init__(
        self,
        image_size: int,
        reference: Float[Tensor, "4 4"],
        isocenter: Float[Tensor, "3"],
        widths: tuple[int, ...] = (16, 32, 64, 128),
        translation_scale_mm: float = 50.0,
    ) -> None:
        super().__init__()
        if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1:
            raise ValueError(f"image_size: expected a positive int, got {image_size!r}")
        widths = tuple(widths)
        if not widths or any(isinstance(w, bool) or not isinstance(w, int) or w < 1 for w in widths):
            raise ValueError(f"widths: expected a non-empty sequence of positive ints, got {widths!r}")
        check_positive(translation_scale_mm, "translation_scale_mm")
        reference = _check_rigid(reference)
        check_finite(check_shape(check_tensor(isocenter, "isocenter"), "3", "isocenter"), "isocenter")
        self.config = {
            "image_size": image_size,
            "widths": widths,
            "translation_scale_mm": float(translation_scale_mm),
        }
        self.register_buffer("reference", reference.clone())
        self.register_buffer("isocenter", isocenter.detach().to(device=reference.device, dtype=torch.float64).clone())
        channels = (3, *widths)  # the image and two coordinate channels
        self.encoder = nn.Sequential(*(_stage(a, b) for a, b in itertools.pairwise(channels)))
        width = widths[-1]
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool2d(POOLED_GRID),
            nn.Flatten(),
            nn.Linear(width * POOLED_GRID**2, width),
            nn.ReLU(inplace=True),
            nn.Linear(width, 9),
        )
        last = self.head[-1]
        with torch.no_grad():
            last.weight.zero_()
            last.bias.copy_(torch.tensor((*_IDENTITY_6D, 0.0, 0.0, 0.0)))

    @property
    def image_size(self) -> int:
        """Side ``H = W`` of the images the network reads."""
        return self.config["image_size"]

    def _features_dtype(self) -> torch.dtype:
        return self.head[-1].weight.dtype

    def _check_image(self, image: Tensor) -> Tensor:
        check_tensor(image, "image")
        size = self.image_size
        return check_shape(image, f"B 1 {size} {size}", "image")

    def forward(self, image: Float[Tensor, "B 1 H W"]) -> Float[Tensor, "B 4 4"]:
        """The predicted volume motion ``δ`` in the isocentre frame of `reference`.

        Args:
            image: X-rays as line integrals (a DRR-like image; any intensity scale, it is
                standardised here), ``H = W = image_size``.

        Returns:
            ``δ`` ``(B, 4, 4)`` in the weights' dtype (float32 by default), on the image's device;
            translation in mm.

        Raises:
            ValueError: an image that is not ``(B, 1, image_size, image_size)``.
            TypeError: ``image`` is not a tensor.
        """
        image = self._check_image(image).to(self._features_dtype())
        B, _, H, W = image.shape
        v = torch.linspace(-1.0, 1.0, H, dtype=image.dtype, device=image.device)[:, None].expand(H, W)
        u = torch.linspace(-1.0, 1.0, W, dtype=image.dtype, device=image.device)[None, :].expand(H, W)
        coords = torch.stack((u, v))[None].expand(B, 2, H, W)
        out = self.head(self.encoder(torch.cat((standardize(image), coords), dim=1)))
        R = rotation_6d_to_matrix(out[:, :6], eps=1e-8)  # unchecked: no host sync, no raise
        t = out[:, 6:] * self.config["translation_scale_mm"]
        return _assemble(R, t)

    def predict_pose(self, image: Float[Tensor, "B 1 H W"]) -> Float[Tensor, "B 4 4"]:
        """The predicted camera-to-world pose ``perturb(reference, δ, isocenter)``, float64.

        Raises:
            ValueError: an image that is not ``(B, 1, image_size, image_size)``.
        """
        delta = self(image).to(torch.float64)
        reference = self.reference.to(device=delta.device, dtype=torch.float64)
        isocenter = self.isocenter.to(device=delta.device, dtype=torch.float64)
        return perturb(reference.expand_as(delta), delta, isocenter)

    # ------------------------------------------------------------------------------ files
    @classmethod
    def _from_config(cls, config: dict[str, Any], weights: dict[str, Any]) -> PoseRegressor:
        """The reference pose and isocentre are buffers: they come back with the weights."""
        config["widths"] = tuple(config["widths"])
        return cls(reference=weights["reference"], isocenter=weights["isocenter"], **config)

    def extra_repr(self) -> str:
        c = self.config
        return f"image_size={c['image_size']}, widths={c['widths']}, translation_scale_mm={c['translation_scale_mm']:g}"
