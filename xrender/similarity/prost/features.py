"""The 3-D branch of ProST: a small residual CNN that turns a CT volume into a feature volume.

The renderer projects the feature volume channel by channel, so the 2-D heads compare a
multi-channel "feature DRR" with the X-ray.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch
from jaxtyping import Float
from torch import Tensor, nn

from xrender._checks import check_tensor

__all__ = ["FeatureVolumeNet"]


class FeatureVolumeNet(nn.Module):
    """Residual 3-D CNN: ``out = x repeated to channels + convs(x)``.

    A stack of 3×3×3 convolutions (padding 1, so the grid is unchanged) with SiLU between them,
    ``1 → widths[0] → … → widths[-1] → channels``. Its output is added to the input volume
    repeated ``channels`` times.

    The last convolution starts with zero weights and bias, so at initialisation the network is
    exactly the identity (repeated): the projection of the feature volume is the plain DRR
    ``channels`` times, a working similarity before any training, and training departs from it
    smoothly. The zero layer still receives a non-zero gradient, so the first optimiser step makes
    it non-zero and the gradient then reaches the earlier layers too (the usual zero-initialised
    residual branch).

    Args:
        channels: output channels (3 in ProST).
        widths: channels of the hidden layers.

    Input is either one volume ``(1, D, H, W)`` (output ``(channels, D, H, W)``) or a batch
    ``(N, 1, D, H, W)`` (output ``(N, channels, D, H, W)``). The convolutions act on the values as
    given (μ or normalised HU): nothing is rescaled.

    Examples:
        >>> import torch
        >>> from xrender.similarity.prost import FeatureVolumeNet
        >>> net = FeatureVolumeNet(channels=3)
        >>> volume = torch.rand(1, 8, 8, 8)  # (1, D, H, W)
        >>> features = net(volume)
        >>> features.shape
        torch.Size([3, 8, 8, 8])
        >>> torch.equal(features, volume.expand(3, 8, 8, 8))  # the identity, repeated, until trained
        True
    """

    def __init__(self, channels: int = 3, widths: Sequence[int] = (4, 8, 16, 8)) -> None:
        super().__init__()
        if channels < 1 or not all(w >= 1 for w in widths):
            raise ValueError(f"channels and widths: expected positive integers, got {channels} and {tuple(widths)}")
        self.channels = channels
        sizes = [1, *widths]
        layers: list[nn.Module] = []
        for c_in, c_out in itertools.pairwise(sizes):
            layers += [nn.Conv3d(c_in, c_out, 3, padding=1), nn.SiLU()]
        last = nn.Conv3d(sizes[-1], channels, 3, padding=1)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        # Channels-last 3-D tensors take oneDNN's convolutions, also for the thin first layers: on a
        # 2-core CPU, forward + backward of a 64³ volume take 0.33 s instead of 0.51 s.
        self.convs = nn.Sequential(*layers, last).to(memory_format=torch.channels_last_3d)

    def forward(self, volume: Float[Tensor, "*N 1 D H W"]) -> Float[Tensor, "*N C D H W"]:
        """Feature volume of ``volume``: ``(1, D, H, W) → (C, D, H, W)`` or ``(N, 1, D, H, W) → (N, C, D, H, W)``.

        Raises:
            ValueError: not 4-D or 5-D, or not one input channel.
        """
        check_tensor(volume, "volume")
        if volume.ndim not in (4, 5) or volume.shape[-4] != 1:
            raise ValueError(f"volume: expected shape (1, D, H, W) or (N, 1, D, H, W), got {tuple(volume.shape)}")
        batch = volume if volume.ndim == 5 else volume.unsqueeze(0)
        features = self.convs(batch.contiguous(memory_format=torch.channels_last_3d))
        out = batch.expand(-1, self.channels, -1, -1, -1) + features
        return out if volume.ndim == 5 else out.squeeze(0)
