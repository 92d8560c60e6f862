"""The peer libraries' cases of the render benchmark: nanodrr and DiffDRR, registered into its harness.

`xrender.cli.benchmark` times any registered `Case` (xrender's own is built in); importing this
file registers ``nanodrr-torch``, ``diffdrr-trilinear`` and ``diffdrr-siddon``. Each imports its
library only when it is built, so this file imports without them; a peer that is not installed
is reported under ``skipped`` (``pip install -e ".[peers]"``, or without their GPU-pulling
dependencies as README.md here shows). ``python benchmarks/render.py`` runs the full comparison.

Every peer integrates xrender's μ volume (its own HU conversion off) along the same rays: the
camera and pose are translated into each library's world frame and pose convention.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from xrender.cli.benchmark import BenchmarkConfig, Case, Scene, register_case, zero_params


#: World frame flip between LPS (xrender) and RAS (torchio, nanodrr, DiffDRR).
def _flip(dtype: torch.dtype) -> Tensor:
    return torch.diag(torch.tensor([-1.0, -1.0, 1.0, 1.0], dtype=dtype))


class NanoDRRCase(Case):
    """nanodrr 0.1.7, pure-PyTorch backend: camera-to-world ``rt_inv`` in the RAS world of torchio."""

    name = "nanodrr-torch"

    def __init__(self, scene: Scene, config: BenchmarkConfig) -> None:
        from nanodrr.data import Subject
        from nanodrr.drr import DRR

        self.scene, self.config = scene, config
        image = scene.volume.to_torchio()  # μ, (1, W, H, D), RAS affine
        self.subject = Subject.from_images(image, convert_to_mu=False)  # integrate our μ as is
        cam = scene.camera
        self.drr = DRR.from_carm_intrinsics(
            sdd=cam.sdd,
            delx=cam.pixel_spacing[1],
            dely=cam.pixel_spacing[0],
            x0=cam.principal_offset[0],
            y0=cam.principal_offset[1],
            height=cam.height,
            width=cam.width,
            dtype=torch.float32,
        )
        self.settings = f"backend='torch', n_samples={config.peer_samples}"
        self.flip = _flip(torch.float64)

    def _render(self, params: Tensor, n_samples: int) -> Tensor:
        # nanodrr's camera frame is ours (source at 0, +z to the detector, +x along columns, +y
        # along rows, pixel centres at index + 0.5 with c = W/2); only the world differs (RAS).
        rt_inv = (self.flip @ self.scene.pose_fn(params)).to(torch.float32)[None]
        return self.drr(self.subject, rt_inv, n_samples=n_samples, backend="torch")[0, 0]

    def render(self, params: Tensor) -> Tensor:
        return self._render(params, self.config.peer_samples)

    def render_dense(self) -> Tensor:
        with torch.no_grad():
            return self._render(zero_params(), self.config.ref_samples)

    def samples_per_render(self) -> int:
        return self.scene.camera.height * self.scene.camera.width * self.config.peer_samples


class DiffDRRCase(Case):
    """DiffDRR 0.6.1 (``renderer`` = ``"trilinear"`` or ``"siddon"``).

    DiffDRR moves the volume's centre to its world origin (RAS) and renders with the camera pose
    ``extrinsic · reorient``; its detector rows and columns run opposite to ours (with the default
    ``reverse_x_axis=True``), a rotation of π about the principal ray.
    """

    def __init__(self, scene: Scene, config: BenchmarkConfig, renderer: str) -> None:
        import torchio as tio
        from diffdrr.data import read
        from diffdrr.drr import DRR
        from diffdrr.pose import RigidTransform

        self.scene, self.config, self.renderer = scene, config, renderer
        self.name = f"diffdrr-{renderer}"
        image = scene.volume.to_torchio()
        center_ras = torch.tensor(image.get_center(), dtype=torch.float64)
        subject = read(tio.ScalarImage(tensor=image.data, affine=image.affine), orientation="AP")
        subject.density.set_data(image.data.clone())  # our μ, not DiffDRR's normalised density
        cam = scene.camera
        self.drr = DRR(
            subject,
            sdd=cam.sdd,
            height=cam.height,
            width=cam.width,
            delx=cam.pixel_spacing[1],
            dely=cam.pixel_spacing[0],
            renderer=renderer,
        )
        shift = torch.eye(4, dtype=torch.float64)
        shift[:3, 3] = -center_ras
        rz_pi = torch.diag(torch.tensor([-1.0, -1.0, 1.0, 1.0], dtype=torch.float64))
        reorient_inv = torch.linalg.inv(subject.reorient.to(torch.float64))
        self.left = shift @ _flip(torch.float64)
        self.right = rz_pi @ reorient_inv
        self.rigid = RigidTransform
        self.settings = f"n_points={config.peer_samples}" if renderer == "trilinear" else "exact (no samples)"

    def _render(self, params: Tensor, **kwargs: Any) -> Tensor:
        extrinsic = (self.left @ self.scene.pose_fn(params) @ self.right).to(torch.float32)
        return self.drr(self.rigid(extrinsic[None]), **kwargs)[0, 0]

    def render(self, params: Tensor) -> Tensor:
        if self.renderer == "trilinear":
            return self._render(params, n_points=self.config.peer_samples)
        return self._render(params)

    def render_dense(self) -> Tensor | None:
        if self.renderer != "trilinear":
            return None
        with torch.no_grad():
            return self._render(zero_params(), n_points=self.config.ref_samples)

    def samples_per_render(self) -> int | None:
        if self.renderer == "trilinear":
            return self.scene.camera.height * self.scene.camera.width * self.config.peer_samples
        return None


register_case("nanodrr-torch", NanoDRRCase, requires="nanodrr")
register_case("diffdrr-trilinear", lambda scene, config: DiffDRRCase(scene, config, "trilinear"), requires="diffdrr")
register_case("diffdrr-siddon", lambda scene, config: DiffDRRCase(scene, config, "siddon"), requires="diffdrr")
