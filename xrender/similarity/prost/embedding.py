"""The MICCAI ProST head: two CNN encoders and a distance between their embeddings.

Gao et al., "Generalizing Spatial Transformers to Projective Geometry with Applications to 2D/3D
Registration", MICCAI 2020: the projected feature image and the X-ray are encoded separately and
the score is minus the mean squared difference of the two embeddings.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from jaxtyping import Float
from torch import Tensor, nn

from xrender.similarity.prost._inputs import broadcast_once, check_image_pair, check_image_size

__all__ = ["Bottleneck", "Encoder", "EmbeddingHead"]


class Bottleneck(nn.Module):
    """Residual block ``x + expand(conv3×3(reduce(x)))`` with SiLU after each convolution.

    Args:
        channels: input and output channels.
        inner: channels of the 1×1-reduced 3×3 convolution (may exceed ``channels``).

    Examples:
        >>> import torch
        >>> from xrender.similarity.prost.embedding import Bottleneck
        >>> Bottleneck(channels=8, inner=16)(torch.randn(1, 8, 12, 12)).shape  # same shape in and out
        torch.Size([1, 8, 12, 12])
    """

    def __init__(self, channels: int, inner: int) -> None:
        super().__init__()
        self.reduce = nn.Conv2d(channels, inner, 1)
        self.conv = nn.Conv2d(inner, inner, 3, padding=1)
        self.expand = nn.Conv2d(inner, channels, 1)
        self.act = nn.SiLU()

    def forward(self, x: Float[Tensor, "B C H W"]) -> Float[Tensor, "B C H W"]:
        y = self.act(self.conv(self.act(self.reduce(x))))
        return self.act(x + self.expand(y))


class Encoder(nn.Sequential):
    """Stages of 3×3 conv → `Bottleneck` → 2×2 max-pool, then a 1×1 conv to the embedding.

    Args:
        in_channels: channels of the input image.
        widths: output channels of each stage.
        inner_widths: inner channels of each stage's bottleneck.
        embedding_channels: channels of the embedding.

    Maps ``(B, in_channels, H, W)`` to ``(B, embedding_channels, H / 2^S, W / 2^S)`` for ``S`` stages.

    Examples:
        >>> import torch
        >>> from xrender.similarity.prost.embedding import Encoder
        >>> encoder = Encoder(in_channels=1, widths=(8, 16), inner_widths=(8, 8), embedding_channels=4)
        >>> encoder(torch.randn(1, 1, 32, 32)).shape  # two stages halve the size twice
        torch.Size([1, 4, 8, 8])
    """

    def __init__(
        self, in_channels: int, widths: Sequence[int], inner_widths: Sequence[int], embedding_channels: int
    ) -> None:
        if len(widths) != len(inner_widths):
            raise ValueError(
                f"widths and inner_widths: expected the same length, got {len(widths)} and {len(inner_widths)}"
            )
        stages: list[nn.Module] = []
        for c_in, c_out, inner in zip([in_channels, *widths[:-1]], widths, inner_widths):
            stages.append(
                nn.Sequential(
                    nn.Conv2d(c_in, c_out, 3, padding=1), nn.SiLU(), Bottleneck(c_out, inner), nn.MaxPool2d(2)
                )
            )
        super().__init__(*stages, nn.Conv2d(widths[-1], embedding_channels, 1))


class EmbeddingHead(nn.Module):
    """MICCAI ProST head: score = −mean((E_moving(moving) − E_fixed(fixed))²), higher is better, ≤ 0.

    Two separate encoders (`Encoder`; one for the multi-channel projection, one for the X-ray) map each
    image to an embedding at ``H/8 × W/8`` (64×16×16 for 128² images with the defaults).

    Args:
        moving_channels: channels of the projected feature image.
        fixed_channels: channels of the X-ray.
        widths: channels of the three encoder stages.
        inner_widths: inner channels of the stages' bottlenecks; the defaults bring the head to
            756,224 parameters (the paper reports 0.78 M).
        embedding_channels: channels of the embedding.
        image_size: optional ``(H, W)``, only checked for divisibility by ``2^stages``; the head
            works at any such size.
        siamese: start the moving encoder as a copy of the fixed one, its first convolution's
            weights split evenly over the moving channels. The untrained 3-D branch projects the
            plain DRR into every channel, so the untrained head then compares the two images
            through one and the same encoder: a similarity that peaks at the true pose before any
            training, instead of a random one. ``False``: independent initial weights.

    Raises:
        ValueError: ``image_size`` not divisible by ``2^stages``.

    Examples:
        >>> import torch
        >>> from xrender.similarity.prost import EmbeddingHead, parameter_count
        >>> head = EmbeddingHead(image_size=(16, 16))
        >>> parameter_count(head)  # at any image size
        756224
        >>> xray = torch.rand(1, 1, 16, 16, generator=torch.Generator().manual_seed(0))
        >>> same = head(xray.expand(1, 3, 16, 16), xray)  # siamese at initialisation: one encoder for both
        >>> other = head(torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(1)), xray)
        >>> bool(other < same <= 0)  # the same image scores highest
        True
    """

    def __init__(
        self,
        moving_channels: int = 3,
        fixed_channels: int = 1,
        widths: Sequence[int] = (16, 64, 128),
        inner_widths: Sequence[int] = (32, 96, 128),
        embedding_channels: int = 64,
        image_size: Sequence[int] | None = None,
        siamese: bool = True,
    ) -> None:
        super().__init__()
        self.moving_channels = moving_channels
        self.fixed_channels = fixed_channels
        self.divisor = 2 ** len(widths)
        if image_size is not None:
            check_image_size(image_size, [self.divisor])
        self.moving_encoder = Encoder(moving_channels, widths, inner_widths, embedding_channels)
        self.fixed_encoder = Encoder(fixed_channels, widths, inner_widths, embedding_channels)
        if siamese:
            self._copy_fixed_to_moving()

    @torch.no_grad()
    def _copy_fixed_to_moving(self) -> None:
        """Moving encoder := fixed encoder; the first convolution's weights are summed over the fixed
        channels and divided evenly among the moving ones, so equal images give equal embeddings."""
        state = self.fixed_encoder.state_dict()
        first = "0.0.weight"  # stage 0's 3×3 convolution (`Encoder`'s layout)
        per_channel = state[first].sum(1, keepdim=True) / self.moving_channels
        state[first] = per_channel.expand(-1, self.moving_channels, -1, -1).clone()
        self.moving_encoder.load_state_dict(state)

    def embed(
        self, moving: Float[Tensor, "B Cm H W"], fixed: Float[Tensor, "B Cf H W"]
    ) -> tuple[Float[Tensor, "B E h w"], Float[Tensor, "B E h w"]]:
        """The two embeddings, ``(B, E, H/8, W/8)`` each (after the checks of `forward`).

        A fixed batch that repeats one image (a stride-0 view) is encoded once.
        """
        size = check_image_pair(moving, fixed, self.moving_channels, self.fixed_channels)
        check_image_size(size, [self.divisor], "moving and fixed image size")
        return self.moving_encoder(moving), broadcast_once(self.fixed_encoder, fixed)

    def forward(self, moving: Float[Tensor, "B Cm H W"], fixed: Float[Tensor, "B Cf H W"]) -> Float[Tensor, " B"]:
        """Score each pair: minus the mean squared difference of the embeddings.

        Args:
            moving: projected feature images ``(B, moving_channels, H, W)``.
            fixed: X-ray images ``(B, fixed_channels, H, W)``.

        Returns:
            ``(B,)`` scores, ≤ 0, 0 when the embeddings agree.

        Raises:
            ValueError: wrong ranks or channels, different batch or image sizes, or ``H``/``W`` not
                divisible by 8 (``2^stages``).
        """
        e_moving, e_fixed = self.embed(moving, fixed)
        return -(e_moving - e_fixed).square().flatten(1).mean(1)
