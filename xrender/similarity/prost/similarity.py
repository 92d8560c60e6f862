r"""`ProSTSimilarity`: the learned similarity of ProST, a pose similarity like any other.

For a pose $T$ and a target X-ray $I$ (line integrals, e.g. $-\log(I/I_0)$):

1. the 3-D branch (`FeatureVolumeNet`) turns the moving volume (μ, usually masked to bone) into
   a 3-channel feature volume $F$ — pose-independent, computed once per call;
2. the Projective Spatial Transformer (`xrender.render.render`) projects $F$ at $T$ into a
   3-channel image;
3. the projection and the target are standardised per image and channel (zero mean, unit
   variance — the intensity scale of an X-ray carries no pose information);
4. a head (``"embedding"``: MICCAI, ``"cross-attention"``: journal; `get_head`) scores them,
   higher is better.

The weights live in a `ProSTNetwork` (3-D branch + head), which knows no CT; `ProSTSimilarity`
binds it to a volume and a C-arm.

**Pose gradients** (`ProSTSimilarity.value_and_pose_gradient`), which the gradient-driven loss
(`xrender.similarity.gradient_loss`) trains and registration follows, come two ways with the same
values:

* with a backend that has a Jacobian march (``"fused-cpu"``, the CPU default), the projection and
  its exact pose Jacobian $J = \partial P/\partial\xi$ are rendered in one pass
  (`xrender.render.render_jacobian`), and $g = -\sum_\text{pixels} \partial s/\partial P \cdot J$.
  Both $P$ and $J$ are linear in $F$ with first-order adjoints, so training back-propagates into
  the 3-D branch without differentiating the renderer twice; only the 2-D head is differentiated
  twice.
* with ``backend="grid_sample"`` (any device; the reference), autograd differentiates the score
  with respect to the pose with ``create_graph=True``, and the loss's backward is a double
  backward through ``grid_sample``.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor, nn

from xrender._checks import check_positive, check_shape
from xrender.attenuation import MU_WATER
from xrender.geometry.camera import ConeBeam
from xrender.io import SavedModule
from xrender.render.drr import choose_backend, render
from xrender.render.jacobian import render_jacobian
from xrender.render.module import tensor_versions
from xrender.render.options import RenderOptions
from xrender.render.pyramid import VolumePyramid
from xrender.similarity.gradient_loss import pose_value_and_gradient, twist_chart
from xrender.similarity.prost._inputs import broadcast_once
from xrender.similarity.prost.features import FeatureVolumeNet
from xrender.similarity.prost.heads import get_head
from xrender.volume import Volume

__all__ = ["NETWORK_FORMAT", "ProSTNetwork", "ProSTSimilarity", "standardize"]

#: Format tag of the files written by `ProSTNetwork.save`.
NETWORK_FORMAT = "xrender.prost-network"


def standardize(images: Float[Tensor, "B C H W"], eps: float = 1e-6) -> Float[Tensor, "B C H W"]:
    """Zero mean and unit variance per image and channel; a constant image becomes 0 (finite gradients).

    Examples:
        >>> import torch
        >>> from xrender.similarity.prost import standardize
        >>> noise = torch.rand(2, 1, 16, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
        >>> images = 100.0 + 5.0 * noise
        >>> out = standardize(images)
        >>> out.mean(dim=(2, 3)).abs().max().item() < 1e-9, out.std(dim=(2, 3), correction=0).round(decimals=4).tolist()
        (True, [[1.0], [1.0]])
        >>> standardize(torch.full((1, 1, 4, 4), 7.0)).abs().max().item()  # a constant image becomes 0
        0.0
    """
    centered = images - images.mean(dim=(-2, -1), keepdim=True)
    return centered / torch.sqrt(centered.pow(2).mean(dim=(-2, -1), keepdim=True) + eps)


class ProSTNetwork(SavedModule):
    """The trainable part of ProST, independent of any one CT: the 3-D branch and a 2-D head.

    One network serves many volumes (training on several CTs, registering a new one): bind it
    to a volume and a C-arm with `ProSTSimilarity`. `config` holds the constructor's arguments,
    so a saved network is rebuilt with ``ProSTNetwork(**config)``.

    Args:
        image_size: detector ``(height, width)`` the head is built for.
        head: a registered head name (`xrender.similarity.prost.available_heads`).
        head_options: keyword options for the head.
        feature_widths: hidden channels of the 3-D branch.
        input_scale: factor applied to the μ volume before the 3-D branch (default: water = 1).

    Examples:
        >>> import torch
        >>> from xrender.similarity.prost import ProSTNetwork
        >>> network = ProSTNetwork((16, 16), head="embedding", head_options={"embedding_channels": 32})
        >>> network.image_size, network.config["head"]
        ((16, 16), 'embedding')
        >>> moving, fixed = torch.rand(2, 3, 16, 16), torch.rand(2, 1, 16, 16)  # projected features, X-rays
        >>> network(moving, fixed).shape
        torch.Size([2])
        >>> rebuilt = ProSTNetwork(**network.config)  # the config rebuilds the same architecture
        >>> rebuilt.image_size
        (16, 16)
    """

    file_format = NETWORK_FORMAT
    description = "ProST network"

    def __init__(
        self,
        image_size: tuple[int, int] = (128, 128),
        *,
        head: str = "embedding",
        head_options: dict[str, Any] | None = None,
        feature_widths: tuple[int, ...] = (4, 8, 16, 8),
        input_scale: float = 1.0 / MU_WATER,
    ) -> None:
        super().__init__()
        check_positive(input_scale, "input_scale")
        self.config = {
            "image_size": tuple(int(n) for n in image_size),
            "head": head,
            "head_options": dict(head_options or {}),
            "feature_widths": tuple(int(n) for n in feature_widths),
            "input_scale": float(input_scale),
        }
        self.features = FeatureVolumeNet(widths=self.config["feature_widths"])
        self.head = get_head(head, image_size=self.config["image_size"], **self.config["head_options"])

    @property
    def image_size(self) -> tuple[int, int]:
        """Detector ``(height, width)`` the head expects."""
        return self.config["image_size"]

    def feature_volume(self, volume: Volume) -> Volume:
        """The 3-channel feature volume of a one-channel μ ``volume``, on its grid."""
        return volume.with_data(self.features(volume.data * self.config["input_scale"]))

    def forward(self, moving: Float[Tensor, "B 3 H W"], fixed: Float[Tensor, "B 1 H W"]) -> Float[Tensor, " B"]:
        """Score projected features against a target, both standardised per image and channel here.

        A target broadcast over the batch (``fixed.expand(B, …)`` of one image, as registration
        passes it) is standardised once and stays a broadcast view, so a head can encode it once.
        """
        return self.head(standardize(moving), broadcast_once(standardize, fixed.to(moving.dtype)))


class ProSTSimilarity(nn.Module):
    """The learned ProST similarity ``score(pose, fixed) -> (B,)``: a `ProSTNetwork` bound to a volume and a C-arm.

    Args:
        volume: the moving volume, one channel of μ (mm⁻¹, air 0), usually masked to bone.
        geometry: the C-arm; its detector size must be the network's ``image_size``.
        network: the trained (or fresh) network.
        options: how the feature volume is projected (`RenderOptions`; line integrals, so
            ``beer_lambert`` must stay false). Its backend: ``"auto"`` (``"fused-cpu"`` on the
            CPU: pose gradients through the pose-Jacobian render) or ``"grid_sample"`` (any
            device; the score itself is then differentiable twice with respect to the pose).

    In ``eval()`` mode the feature volume is computed once without weight gradients and cached
    until a weight or the volume changes, so registration pays the 3-D branch once; in
    ``train()`` mode it is recomputed on every call (its graph reaches the weights).

    Raises:
        ValueError: a volume with more than one channel, a detector that is not the
            network's image size, or ``beer_lambert`` options.
        TypeError: arguments of the wrong type.

    Examples:
        >>> import torch
        >>> from xrender import Volume
        >>> from xrender.geometry import ConeBeam, standard_pose
        >>> from xrender.similarity.prost import ProSTNetwork, ProSTSimilarity
        >>> data = 0.02 * torch.rand(1, 8, 8, 8, generator=torch.Generator().manual_seed(0))  # μ, mm⁻¹
        >>> volume = Volume(data, torch.diag(torch.tensor([2.0, 2.0, 2.0, 1.0])))
        >>> geometry = ConeBeam(sdd=1000.0, height=16, width=16, pixel_spacing=(2.0, 2.0), sid=500.0)
        >>> similarity = ProSTSimilarity(volume, geometry, ProSTNetwork((16, 16))).eval()
        >>> pose = standard_pose("ap", 500.0, volume.isocenter)[None]
        >>> xray = torch.rand(1, 1, 16, 16, generator=torch.Generator().manual_seed(1))
        >>> similarity(pose, xray).shape  # (B,), higher is better
        torch.Size([1])
        >>> score, g = similarity.value_and_pose_gradient(pose, xray, create_graph=False)  # the fast pose gradient
        >>> g.shape  # d(-score) / d(volume twist (ω, v))
        torch.Size([1, 6])
    """

    def __init__(
        self,
        volume: Volume,
        geometry: ConeBeam,
        network: ProSTNetwork,
        *,
        options: RenderOptions = RenderOptions(),
    ) -> None:
        super().__init__()
        for value, kind, name in ((volume, Volume, "volume"), (geometry, ConeBeam, "geometry")):
            if not isinstance(value, kind):
                raise TypeError(f"{name}: expected a {kind.__name__}, got {type(value).__name__}")
        if not isinstance(network, ProSTNetwork):
            raise TypeError(f"network: expected a ProSTNetwork, got {type(network).__name__}")
        if not isinstance(options, RenderOptions):
            raise TypeError(f"options: expected a RenderOptions, got {type(options).__name__}")
        if options.beer_lambert:
            raise ValueError("options: expected beer_lambert=False (ProST projects features as line integrals)")
        if volume.channels != 1:
            raise ValueError(f"volume: expected one channel (μ), got {volume.channels}")
        if (geometry.height, geometry.width) != network.image_size:
            raise ValueError(
                f"geometry: expected a {network.image_size[0]}×{network.image_size[1]} detector (the network's "
                f"image size), got {geometry.height}×{geometry.width}"
            )
        self.register_buffer("data", volume.data)
        self.register_buffer("affine", volume.affine)
        self.register_buffer("isocenter", volume.isocenter)
        self.geometry = geometry
        self.network = network
        self.options = options
        self._cache: tuple[tuple[object, ...], VolumePyramid] | None = None

    def feature_volume(self) -> VolumePyramid:
        """The feature volume ``(3, D, H, W)`` of the moving volume, as a pyramid ready to render."""
        if self.training:
            self._cache = None
            return VolumePyramid(self.network.feature_volume(Volume(self.data, self.affine, self.isocenter)))
        key = tensor_versions(self.data, self.affine, self.isocenter, *self.network.features.parameters())
        if self._cache is None or self._cache[0] != key:
            with torch.no_grad():
                volume = Volume(self.data, self.affine, self.isocenter)
                self._cache = (key, VolumePyramid(self.network.feature_volume(volume)))
        return self._cache[1]

    def project(self, pose: Float[Tensor, "B 4 4"]) -> Float[Tensor, "B 3 H W"]:
        """The feature volume's projection (line integrals) at camera-to-world ``pose``."""
        return render(self.feature_volume(), self.geometry, pose, options=self.options)

    def forward(self, pose: Float[Tensor, "B 4 4"], fixed: Float[Tensor, "B 1 H W"]) -> Float[Tensor, " B"]:
        """Score ``pose`` against the target ``fixed`` (line integrals), higher is better.

        Raises:
            ValueError: ``fixed`` not ``(B, 1, height, width)`` of the geometry, or a pose batch
                that does not match it.
        """
        pose, fixed = self._checked(pose, fixed)
        return self.network(self.project(pose), fixed)

    def _checked(self, pose: Tensor, fixed: Tensor) -> tuple[Tensor, Tensor]:
        """``pose`` in the volume's dtype, after the shape checks of `forward` (no value is read: a hot path)."""
        check_shape(fixed, f"B 1 {self.geometry.height} {self.geometry.width}", "fixed")
        check_shape(pose, f"{fixed.shape[0]} 4 4", "pose")
        return pose.to(self.data.dtype), fixed

    def value_and_pose_gradient(
        self, pose: Float[Tensor, "B 4 4"], fixed: Float[Tensor, "B 1 H W"], *, create_graph: bool = True
    ) -> tuple[Float[Tensor, " B"], Float[Tensor, "B 6"]]:
        r"""The scores and $g_\text{net}$, the gradient of ``-score`` with respect to the volume twist.

        The chart and semantics are those of
        `xrender.similarity.gradient_loss.pose_value_and_gradient`; the computation depends on the
        backend (see the module docstring), the result does not.

        Args:
            pose: camera-to-world poses ``(B, 4, 4)``.
            fixed: target images ``(B, 1, height, width)``.
            create_graph: keep the graph, so a loss on the gradient reaches the weights.

        Returns:
            ``(B,)`` scores and ``(B, 6)`` gradients ordered ``(ω, v)``, per radian and per mm.

        Raises:
            ValueError: malformed ``pose`` or ``fixed`` (see `forward`).
        """
        pose, fixed = self._checked(pose, fixed)
        if choose_backend(self.options.backend, self.data.device).supports_jacobian:
            values, gradient = self._value_and_jacobian_gradient(pose, fixed, create_graph)
        else:
            score = partial(self, fixed=fixed)
            values, gradient = pose_value_and_gradient(score, pose, self.isocenter, create_graph=create_graph)
        return (values, gradient) if create_graph else (values.detach(), gradient.detach())

    def _value_and_jacobian_gradient(self, pose: Tensor, fixed: Tensor, create_graph: bool) -> tuple[Tensor, Tensor]:
        """Scores and ``∂(−score)/∂ξ`` through the pose-Jacobian render (see the module docstring)."""
        with torch.enable_grad():
            xi = pose.new_zeros(pose.shape[0], 6)
            chart = twist_chart(pose, self.isocenter)
            images, jacobian = render_jacobian(self.feature_volume(), self.geometry, chart, xi, options=self.options)
            if not images.requires_grad:  # eval mode: cached features without a graph
                images = images.detach().requires_grad_(True)
            values = self.network(images, fixed)
            (d_images,) = torch.autograd.grad(values.sum(), images, create_graph=create_graph)
            return values, -torch.einsum("bchw,bchwp->bp", d_images, jacobian)
