"""The `Volume` value: voxels plus the affine that places them in the world.

Conventions (see *Conventions* in the docs):

* ``data`` has shape ``(C, D, H, W)``: channels, then slices, rows, columns — the order of
  ``SimpleITK.GetArrayFromImage`` and of PyTorch's 5-D ``grid_sample`` input.
* The voxel index ``(i, j, k)`` counts along ``W``, ``H`` and ``D`` respectively (ITK's index
  order, and the ``(x, y, z)`` order of a ``grid_sample`` grid). Integer indices are voxel
  *centres*; the volume covers ``[-0.5, W - 0.5] × [-0.5, H - 0.5] × [-0.5, D - 0.5]``.
* ``affine`` maps homogeneous voxel indices ``(i, j, k, 1)`` to world points in millimetres,
  in the LPS frame of ITK and DICOM: ``affine[:3, :3] = direction @ diag(spacing)`` and
  ``affine[:3, 3] = origin`` (the centre of voxel ``(0, 0, 0)``).
* ``isocenter`` is a world point (mm) about which poses are perturbed; it defaults to the
  centre of the volume.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np
import SimpleITK as sitk
import torch
from jaxtyping import Float
from torch import Tensor

from xrender._checks import check_finite, check_shape

if TYPE_CHECKING:
    import torchio as tio

__all__ = ["Volume", "LPS_FROM_RAS"]

#: Diagonal flip between the RAS frame (NIfTI, nibabel, torchio, Slicer) and LPS (ITK, DICOM).
#: It is its own inverse: ``LPS_FROM_RAS @ p_ras = p_lps`` and ``LPS_FROM_RAS @ p_lps = p_ras``.
LPS_FROM_RAS = torch.diag(torch.tensor([-1.0, -1.0, 1.0, 1.0], dtype=torch.float64))


@dataclass(frozen=True, eq=False)
class Volume:
    """A C-channel 3-D image placed in the world frame (mm, LPS).

    Attributes:
        data: voxel values, shape ``(C, D, H, W)``.
        affine: voxel-index-to-world matrix, shape ``(4, 4)``, mm, LPS; follows ``data``'s
            device and is stored in ``data``'s floating dtype.
        isocenter: world point ``(3,)`` in mm used as the centre of pose perturbations;
            ``None`` at construction means the centre of the volume.

    Raises:
        ValueError: wrong shapes, non-finite or singular affine, or a last row other than
            ``(0, 0, 0, 1)``.
    """

    data: Float[Tensor, "C D H W"]
    affine: Float[Tensor, "4 4"]
    isocenter: Float[Tensor, "3"] | None = field(default=None)

    def __post_init__(self) -> None:
        check_shape(self.data, "C D H W", "Volume.data")
        if min(self.data.shape) < 1:
            raise ValueError(f"Volume.data: expected every dimension >= 1, got {tuple(self.data.shape)}")
        check_shape(self.affine, "4 4", "Volume.affine")
        dtype = self.data.dtype if self.data.is_floating_point() else torch.get_default_dtype()
        affine = self.affine.to(device=self.data.device, dtype=dtype)
        object.__setattr__(self, "affine", affine)
        if self.isocenter is None:
            iso = self.center
        else:
            iso = check_shape(torch.as_tensor(self.isocenter), "3", "Volume.isocenter")
            iso = iso.to(device=affine.device, dtype=dtype)
        object.__setattr__(self, "isocenter", iso)
        bottom = torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=dtype, device=affine.device)
        det = torch.linalg.det(affine[:3, :3].double())
        valid = torch.isfinite(affine).all() & (affine[3] == bottom).all() & (det.abs() > 1e-12)
        if not bool(valid & torch.isfinite(iso).all()):  # one host read; the messages below only on failure
            check_finite(affine, "Volume.affine")
            if not torch.equal(affine[3], bottom):
                raise ValueError(f"Volume.affine: expected last row (0, 0, 0, 1), got {affine[3].tolist()}")
            if not bool(det.abs() > 1e-12):
                raise ValueError(f"Volume.affine: expected an invertible 3x3 part, got determinant {float(det):.3g}")
            check_finite(iso, "Volume.isocenter")

    # ----------------------------------------------------------------------------- geometry
    @property
    def shape(self) -> tuple[int, int, int]:
        """Spatial shape ``(D, H, W)``."""
        return tuple(self.data.shape[1:])  # type: ignore[return-value]

    @property
    def channels(self) -> int:
        """Number of channels ``C``."""
        return self.data.shape[0]

    @property
    def spacing(self) -> Float[Tensor, "3"]:
        """Voxel size in mm along ``(i, j, k)`` = along ``(W, H, D)``."""
        return self.affine[:3, :3].norm(dim=0)

    @property
    def direction(self) -> Float[Tensor, "3 3"]:
        """Direction cosines: column ``n`` is the world direction of voxel axis ``n``."""
        return self.affine[:3, :3] / self.spacing

    @property
    def origin(self) -> Float[Tensor, "3"]:
        """World position (mm) of the centre of voxel ``(0, 0, 0)``."""
        return self.affine[:3, 3]

    @property
    def center(self) -> Float[Tensor, "3"]:
        """World position (mm) of the volume's centre, index ``((W-1)/2, (H-1)/2, (D-1)/2)``."""
        d, h, w = self.shape
        half = torch.tensor([(w - 1) / 2, (h - 1) / 2, (d - 1) / 2], dtype=self.affine.dtype, device=self.affine.device)
        return self.voxel_to_world(half)

    @property
    def orientation(self) -> str:
        """Three-letter orientation code of the voxel axes in LPS terms, e.g. ``"LPS"`` or ``"RAS"``."""
        letters = (("L", "R"), ("P", "A"), ("S", "I"))
        out = []
        for col in self.direction.T.detach().cpu():
            axis = int(col.abs().argmax())
            out.append(letters[axis][0] if col[axis] > 0 else letters[axis][1])
        return "".join(out)

    def voxel_to_world(self, ijk: Float[Tensor, "*N 3"]) -> Float[Tensor, "*N 3"]:
        """Map continuous voxel indices ``(i, j, k)`` to world points (mm, LPS)."""
        check_shape(ijk, "* 3", "ijk")
        a = self.affine.to(ijk.dtype) if ijk.is_floating_point() else self.affine
        return ijk.to(a.dtype) @ a[:3, :3].T + a[:3, 3]

    def world_to_voxel(self, xyz: Float[Tensor, "*N 3"]) -> Float[Tensor, "*N 3"]:
        """Map world points (mm, LPS) to continuous voxel indices ``(i, j, k)``."""
        check_shape(xyz, "* 3", "xyz")
        a = self.affine.to(xyz.dtype) if xyz.is_floating_point() else self.affine
        return (xyz.to(a.dtype) - a[:3, 3]) @ torch.linalg.inv(a[:3, :3]).T

    def bounding_box(self) -> tuple[Float[Tensor, "3"], Float[Tensor, "3"]]:
        """World-axis-aligned box ``(lower, upper)`` (mm) enclosing every voxel's full extent."""
        d, h, w = self.shape
        corners = torch.tensor(
            [[x, y, z] for x in (-0.5, w - 0.5) for y in (-0.5, h - 0.5) for z in (-0.5, d - 0.5)],
            dtype=self.affine.dtype,
            device=self.affine.device,
        )
        world = self.voxel_to_world(corners)
        return world.amin(0), world.amax(0)

    # ----------------------------------------------------------------------------- copies
    def with_data(self, data: Float[Tensor, "C D H W"]) -> Volume:
        """A volume with new voxel values and the same placement and isocentre."""
        if tuple(data.shape[-3:]) != self.shape:
            raise ValueError(f"with_data: expected spatial shape {self.shape}, got {tuple(data.shape[-3:])}")
        return replace(self, data=data)

    def with_isocenter(self, isocenter: Float[Tensor, "3"]) -> Volume:
        """A volume with a new isocentre (world mm)."""
        return replace(self, isocenter=isocenter)

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> Volume:
        """Move data, affine and isocentre to a device and/or floating dtype."""
        data = self.data.to(device=device, dtype=dtype)
        return Volume(data, self.affine.to(device=data.device), self.isocenter.to(device=data.device))  # type: ignore[union-attr]

    def __repr__(self) -> str:
        sp = ", ".join(f"{s:.4g}" for s in self.spacing.tolist())
        iso = ", ".join(f"{s:.1f}" for s in self.isocenter.tolist())  # type: ignore[union-attr]
        return (
            f"Volume(channels={self.channels}, shape={self.shape}, spacing=({sp}) mm, "
            f"orientation={self.orientation}, isocenter=({iso}) mm, dtype={self.data.dtype})"
        )

    # ----------------------------------------------------------------------------- interop
    @classmethod
    def from_sitk(cls, image: sitk.Image, dtype: torch.dtype = torch.float32) -> Volume:
        """Build a volume from a 3-D SimpleITK image (scalar or vector pixels), keeping its direction."""
        if image.GetDimension() != 3:
            raise ValueError(f"from_sitk: expected a 3-D image, got {image.GetDimension()}-D")
        array = sitk.GetArrayFromImage(image)  # (D, H, W) or (D, H, W, C)
        array = array[None] if image.GetNumberOfComponentsPerPixel() == 1 else np.moveaxis(array, -1, 0)
        data = torch.from_numpy(np.ascontiguousarray(array)).to(dtype)
        direction = np.asarray(image.GetDirection(), dtype=np.float64).reshape(3, 3)
        affine = np.eye(4)
        affine[:3, :3] = direction @ np.diag(image.GetSpacing())
        affine[:3, 3] = image.GetOrigin()
        return cls(data, torch.from_numpy(affine))

    def to_sitk(self) -> sitk.Image:
        """A SimpleITK image (vector pixels when ``C > 1``) with this volume's geometry."""
        array = self.data.detach().cpu().numpy()
        if self.channels == 1:
            image = sitk.GetImageFromArray(array[0])
        else:
            image = sitk.GetImageFromArray(np.moveaxis(array, 0, -1), isVector=True)
        affine = self.affine.detach().cpu().double()
        image.SetSpacing(self.spacing.detach().cpu().double().tolist())
        image.SetOrigin(affine[:3, 3].tolist())
        image.SetDirection(self.direction.detach().cpu().double().flatten().tolist())
        return image

    @classmethod
    def from_torchio(cls, image: tio.Image, dtype: torch.dtype = torch.float32) -> Volume:
        """Build a volume from a torchio image (tensor ``(C, W, H, D)``, RAS affine)."""
        data = image.data.permute(0, 3, 2, 1).to(dtype).contiguous()
        affine = LPS_FROM_RAS @ torch.as_tensor(np.asarray(image.affine), dtype=torch.float64)
        return cls(data, affine)

    def to_torchio(self) -> tio.ScalarImage:
        """A torchio ``ScalarImage`` (tensor ``(C, W, H, D)``, RAS affine) of this volume."""
        import torchio as tio

        affine = (LPS_FROM_RAS @ self.affine.detach().cpu().double()).numpy()
        return tio.ScalarImage(tensor=self.data.detach().cpu().permute(0, 3, 2, 1), affine=affine)
