r"""Level of detail: a pyramid of ever coarser copies of a volume, and the level a view needs.

Level $l$ averages blocks of $2^l \times 2^l \times 2^l$ voxels of level 0. Its voxel
$x'$ is centred where the block's centre was, so the affine becomes

$$
A_l = 2^l A_0, \qquad b_l = A_0 \left(\tfrac{2^l - 1}{2}, \tfrac{2^l - 1}{2}, \tfrac{2^l - 1}{2}\right)^\top + b_0,
$$

i.e. fine index $x = 2^l x' + (2^l - 1)/2$: voxel centres stay exact in the world, and the
isocentre is kept.

**Edges.** A size that is not a multiple of $2^l$ leaves a partial block at the high-index end.
It is padded with zeros — the renderer's value outside the grid — to an even size before
``avg_pool3d`` (kernel 2, stride 2) at each level, so every coarse voxel is the mean of a full
block and the volume's integral (mass) is conserved.

`auto_level` picks, like mip-mapping, the coarsest level whose voxels are no larger than a
detector pixel's footprint at the isocentre.
"""

from __future__ import annotations

import math

import torch
from jaxtyping import Float
from torch import Tensor
from torch.nn.functional import avg_pool3d, pad

from xrender._checks import check_shape
from xrender.geometry.camera import ConeBeam
from xrender.render.rays import ContentBox, content_box
from xrender.volume import Volume

__all__ = ["FIT_TOLERANCE", "VolumePyramid", "auto_level", "downsample_volume", "max_level"]

#: Relative slack with which a voxel counts as fitting in a pixel's footprint, so an exact
#: power-of-two ratio (1 mm voxels, 2 mm footprint) is not lost to rounding.
FIT_TOLERANCE = 1e-6


def max_level(shape: tuple[int, int, int]) -> int:
    """The coarsest level of a ``(D, H, W)`` grid: the first at which it is one voxel.

    Examples:
        >>> from xrender.render.pyramid import max_level
        >>> max_level((8, 8, 8)), max_level((5, 16, 16)), max_level((1, 1, 1))
        (3, 4, 0)
    """
    return math.ceil(math.log2(max(shape)))


def downsample_volume(volume: Volume) -> Volume:
    """The next pyramid level: 2×2×2 blocks averaged, zero-padded at the high-index end.

    Args:
        volume: any volume.

    Returns:
        A volume of ``ceil(size / 2)`` voxels per axis, twice the spacing, voxel centres at the
        blocks' centres, and the same isocentre; differentiable in ``volume.data``.

    Examples:
        >>> import torch
        >>> from xrender import Volume
        >>> from xrender.render import downsample_volume
        >>> volume = Volume(torch.ones(1, 8, 8, 8, dtype=torch.float64), torch.diag(torch.tensor([2.0, 2.0, 2.0, 1.0])))
        >>> coarse = downsample_volume(volume)
        >>> coarse.shape, coarse.spacing.tolist()
        ((4, 4, 4), [4.0, 4.0, 4.0])
        >>> torch.equal(coarse.isocenter, volume.isocenter), coarse.data.unique().tolist()
        (True, [1.0])
    """
    d, h, w = volume.shape
    padded = pad(volume.data, (0, w % 2, 0, h % 2, 0, d % 2))  # zeros, the value outside the grid
    data = avg_pool3d(padded[None], kernel_size=2, stride=2)[0]
    affine = volume.affine.clone()
    affine[:3, 3] = volume.voxel_to_world(torch.full((3,), 0.5, dtype=affine.dtype, device=affine.device))
    affine[:3, :3] = 2 * volume.affine[:3, :3]
    return Volume(data, affine, volume.isocenter)


class VolumePyramid:
    """A volume's levels of detail and their content boxes, built lazily and cached.

    Levels and boxes are computed on first use. When the volume's data requires grad (a learned
    feature volume), coarse levels are rebuilt on every call so gradients reach the data, and the
    content box is the full grid (see `xrender.render.rays.content_box`). For a backend that
    reads channels last (`RenderBackend.channels_last`), a multi-channel level is also kept as a
    channels-last copy (as much memory again). What is cached is not refreshed: after changing the
    volume's data in place, build a new pyramid.

    Args:
        volume: level 0.

    Examples:
        >>> import torch
        >>> from xrender import Volume
        >>> from xrender.render import VolumePyramid
        >>> pyramid = VolumePyramid(Volume(torch.ones(1, 8, 8, 8), torch.eye(4)))
        >>> pyramid.max_level, pyramid.level(1).shape, pyramid.level(1).spacing.tolist()
        (3, (4, 4, 4), [2.0, 2.0, 2.0])
        >>> pyramid.level(1) is pyramid.level(1)  # built once, then cached
        True
        >>> pyramid.content_box(0).lower.tolist()
        [-1.0, -1.0, -1.0]
    """

    def __init__(self, volume: Volume) -> None:
        self.volume = volume
        self._levels: dict[int, Volume] = {0: volume}
        self._channels_last: dict[int, Volume] = {}
        self._boxes: dict[int, ContentBox] = {}

    @property
    def max_level(self) -> int:
        """The coarsest valid level (a single voxel)."""
        return max_level(self.volume.shape)

    def _check(self, level: int) -> int:
        if isinstance(level, bool) or not isinstance(level, int) or not 0 <= level <= self.max_level:
            raise ValueError(f"level: expected an int in [0, {self.max_level}] or 'auto', got {level!r}")
        return level

    def level(self, level: int, channels_last: bool = False) -> Volume:
        """The volume at ``level`` (0 = full resolution).

        Args:
            level: the level.
            channels_last: for a multi-channel volume whose data does not require grad, the level
                with its data laid out channels last in memory (``data.permute(1, 2, 3, 0)`` is
                contiguous), copied once and cached; the same values and shape ``(C, D, H, W)``.

        Raises:
            ValueError: ``level`` outside ``[0, max_level]``.
        """
        self._check(level)
        if channels_last and self.volume.channels > 1 and not self.volume.data.requires_grad:
            if level not in self._channels_last:
                grid = self.level(level)
                data = grid.data.permute(1, 2, 3, 0).contiguous().permute(3, 0, 1, 2)
                self._channels_last[level] = grid.with_data(data)
            return self._channels_last[level]
        if level in self._levels:
            return self._levels[level]
        coarse = downsample_volume(self.level(level - 1))
        if not self.volume.data.requires_grad:
            self._levels[level] = coarse
        return coarse

    def content_box(self, level: int) -> ContentBox:
        """The index-space content box and smallest spacing of ``level`` (computed once per level: one host read)."""
        if level not in self._boxes:
            volume = self.level(level)
            self._boxes[level] = content_box(volume.data, volume.affine)
        return self._boxes[level]


def auto_level(volume: Volume, geometry: ConeBeam, pose: Float[Tensor, "*B 4 4"]) -> int:
    r"""The coarsest pyramid level whose voxels are no larger than a pixel's footprint.

    The footprint is the pixel spacing scaled to the isocentre,
    $\min(\Delta_v, \Delta_u)\,\mathrm{sid} / \mathrm{sdd}$, with sid the distance from the
    source to the volume's isocentre along the principal ray, read from the pose (the smallest
    over a batch). A level's voxel size is its largest spacing. Reads the pose on the host: one
    device sync per call. The pose is not checked (`xrender.render.render` checks it).

    Args:
        volume: level 0.
        geometry: the C-arm.
        pose: camera-to-world pose(s).

    Returns:
        A level in ``[0, max_level]``; 0 when the isocentre is at or behind the source.
        A voxel within `FIT_TOLERANCE` (relative) of the footprint counts as fitting.

    Examples:
        >>> import torch
        >>> from xrender import Volume
        >>> from xrender.geometry import ConeBeam, standard_pose
        >>> from xrender.render import auto_level
        >>> volume = Volume(torch.ones(1, 16, 16, 16), torch.eye(4))  # 1 mm voxels
        >>> geometry = ConeBeam(sdd=1000.0, height=8, width=8, pixel_spacing=(4.0, 4.0), sid=500.0)
        >>> auto_level(volume, geometry, standard_pose("ap", 500.0, volume.isocenter))  # 2 mm pixels at the volume
        1
        >>> auto_level(volume, geometry, standard_pose("ap", 250.0, volume.isocenter))  # source closer: 1 mm
        0
    """
    check_shape(pose, "* 4 4", "pose")
    iso = volume.isocenter.to(pose.dtype)  # type: ignore[union-attr]
    depth = ((iso - pose[..., :3, 3]) * pose[..., :3, 2]).sum(-1)  # along the camera's +z
    largest = volume.spacing.max()
    wide = torch.promote_types(depth.dtype, largest.dtype)
    sid, spacing = torch.stack([depth.detach().min().to(wide), largest.to(wide)]).tolist()  # one host read
    footprint = min(geometry.pixel_spacing) * sid / geometry.sdd
    ratio = footprint / spacing * (1 + FIT_TOLERANCE)
    return 0 if ratio < 1 else min(math.floor(math.log2(ratio)), max_level(volume.shape))
