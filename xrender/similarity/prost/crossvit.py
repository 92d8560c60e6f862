"""The journal ProST head: a small two-scale cross-attention vision transformer (CrossViT-style).

Chen, Fan & Panda, "CrossViT: Cross-Attention Multi-Scale Vision Transformer for Image
Classification", ICCV 2021, as used by the journal version of ProST: the projected feature image
(reduced to one channel by a 1×1 conv) and the X-ray form a 2-channel image, tokenised by a
small-patch and a large-patch branch; the branches exchange information through their CLS
tokens, and a linear layer on the two CLS tokens gives the score.

Attention is written with ``torch.matmul`` and ``softmax`` rather than ``nn.MultiheadAttention``
or ``F.scaled_dot_product_attention``, whose fused kernels lack second derivatives: training
differentiates the score's gradient with respect to the pose.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from jaxtyping import Float
from torch import Tensor, nn

from xrender.similarity.prost._inputs import check_image_pair, check_image_size

__all__ = ["Attention", "TransformerBlock", "CrossAttention", "MultiScaleBlock", "CrossAttentionHead"]


class Attention(nn.Module):
    """Multi-head attention of ``query`` tokens on ``context`` tokens, ``softmax(q kᵀ / √d) v``.

    Args:
        dim: token width (divisible by ``heads``).
        heads: number of heads.
        dropout: dropout on the attention weights and the output.

    Examples:
        >>> import torch
        >>> from xrender.similarity.prost.crossvit import Attention
        >>> attention = Attention(dim=8, heads=2)
        >>> query, context = torch.randn(1, 3, 8), torch.randn(1, 5, 8)  # (B, tokens, width)
        >>> attention(query, context).shape  # one output per query token
        torch.Size([1, 3, 8])
    """

    def __init__(self, dim: int, heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim: expected a multiple of heads={heads}, got {dim}")
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.out = nn.Linear(dim, dim)
        self.dropout = nn.Dropout(dropout)

    def _split(self, x: Tensor) -> Tensor:
        return x.unflatten(-1, (self.heads, -1)).transpose(1, 2)  # (B, heads, N, d)

    def forward(self, query: Float[Tensor, "B Q D"], context: Float[Tensor, "B N D"]) -> Float[Tensor, "B Q D"]:
        q = self._split(self.q(query))
        k, v = (self._split(t) for t in self.kv(context).chunk(2, dim=-1))
        weights = self.dropout(torch.softmax(torch.matmul(q, k.transpose(-2, -1)) * self.scale, dim=-1))
        mixed = torch.matmul(weights, v).transpose(1, 2).flatten(2)
        return self.dropout(self.out(mixed))


class TransformerBlock(nn.Module):
    """Pre-norm encoder block: ``x + attn(LN(x))`` then ``x + MLP(LN(x))`` (GELU MLP).

    Examples:
        >>> import torch
        >>> from xrender.similarity.prost.crossvit import TransformerBlock
        >>> block = TransformerBlock(dim=8, heads=2, mlp_ratio=2.0)
        >>> block(torch.randn(2, 5, 8)).shape
        torch.Size([2, 5, 8])
    """

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0, dropout: float = 0.0) -> None:
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads, dropout)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(
            nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, dim), nn.Dropout(dropout)
        )

    def forward(self, x: Float[Tensor, "B N D"]) -> Float[Tensor, "B N D"]:
        y = self.norm1(x)
        x = x + self.attn(y, y)
        return x + self.mlp(self.norm2(x))


class CrossAttention(nn.Module):
    """Update one branch's CLS token from the other branch's patch tokens.

    The CLS token (width ``dim``) is projected to the other branch's width ``other_dim``, attends
    to itself and the other branch's patch tokens there, and the result is projected back and
    added to the CLS token.

    Examples:
        >>> import torch
        >>> from xrender.similarity.prost.crossvit import CrossAttention
        >>> fusion = CrossAttention(dim=8, other_dim=16, heads=2)
        >>> tokens, other = torch.randn(1, 5, 8), torch.randn(1, 9, 16)  # CLS token first in each
        >>> fusion(tokens, other).shape  # the new CLS token of the first branch
        torch.Size([1, 1, 8])
    """

    def __init__(self, dim: int, other_dim: int, heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.to_other = nn.Sequential(nn.LayerNorm(dim), nn.GELU(), nn.Linear(dim, other_dim))
        self.norm = nn.LayerNorm(other_dim)
        self.attn = Attention(other_dim, heads, dropout)
        self.back = nn.Sequential(nn.LayerNorm(other_dim), nn.GELU(), nn.Linear(other_dim, dim))

    def forward(self, tokens: Float[Tensor, "B N D"], other: Float[Tensor, "B M E"]) -> Float[Tensor, "B 1 D"]:
        cls = self.to_other(tokens[:, :1])
        context = self.norm(torch.cat([cls, other[:, 1:]], dim=1))
        return tokens[:, :1] + self.back(cls + self.attn(context[:, :1], context))


class MultiScaleBlock(nn.Module):
    """Transformer blocks on each branch, then CLS-token cross-attention between the branches.

    Examples:
        >>> import torch
        >>> from xrender.similarity.prost.crossvit import MultiScaleBlock
        >>> block = MultiScaleBlock(dims=(8, 16), depths=(1, 1), heads=2, mlp_ratio=2.0)
        >>> small, large = block(torch.randn(1, 17, 8), torch.randn(1, 5, 16))
        >>> small.shape, large.shape
        (torch.Size([1, 17, 8]), torch.Size([1, 5, 16]))
    """

    def __init__(
        self, dims: Sequence[int], depths: Sequence[int], heads: int, mlp_ratio: float, dropout: float = 0.0
    ) -> None:
        super().__init__()
        self.branches = nn.ModuleList(
            nn.Sequential(*(TransformerBlock(dim, heads, mlp_ratio, dropout) for _ in range(depth)))
            for dim, depth in zip(dims, depths)
        )
        self.fusions = nn.ModuleList(
            [CrossAttention(dims[0], dims[1], heads, dropout), CrossAttention(dims[1], dims[0], heads, dropout)]
        )

    def forward(self, small: Tensor, large: Tensor) -> tuple[Tensor, Tensor]:
        small, large = self.branches[0](small), self.branches[1](large)
        cls_small, cls_large = self.fusions[0](small, large), self.fusions[1](large, small)
        return torch.cat([cls_small, small[:, 1:]], dim=1), torch.cat([cls_large, large[:, 1:]], dim=1)


class PatchTokens(nn.Module):
    """Patches of ``patch`` px → tokens of width ``dim``, with a CLS token and learned positional embeddings."""

    def __init__(self, in_channels: int, dim: int, patch: int, image_size: tuple[int, int]) -> None:
        super().__init__()
        count = (image_size[0] // patch) * (image_size[1] // patch)
        self.embed = nn.Conv2d(in_channels, dim, patch, stride=patch)
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        self.position = nn.Parameter(torch.randn(1, count + 1, dim) * 0.02)

    def forward(self, image: Float[Tensor, "B C H W"]) -> Float[Tensor, "B N D"]:
        patches = self.embed(image).flatten(2).transpose(1, 2)
        return torch.cat([self.cls.expand(len(image), -1, -1), patches], dim=1) + self.position


class CrossAttentionHead(nn.Module):
    """Journal ProST head: a two-branch cross-attention ViT scores ``[reduce(moving), fixed]``.

    Args:
        image_size: ``(H, W)`` of the inputs, divisible by both patch sizes (fixes the token counts).
        moving_channels: channels of the projected feature image, reduced to 1 by a 1×1 conv.
        fixed_channels: channels of the X-ray.
        patch_sizes: patch size of the small- and the large-patch branch.
        dims: token width of the two branches.
        depths: transformer blocks per branch in each multi-scale block.
        blocks: number of multi-scale blocks (branch blocks + cross-attention).
        heads: attention heads (divides both ``dims``).
        mlp_ratio: MLP hidden width / token width.
        dropout: dropout rate (0 keeps the score deterministic).

    With the defaults at 128² the head has 2,224,421 parameters (the paper reports 2.2 M).

    Raises:
        ValueError: ``image_size`` not divisible by both patch sizes, or ``dims`` not divisible by ``heads``.

    Examples:
        >>> import torch
        >>> from xrender.similarity.prost import CrossAttentionHead
        >>> head = CrossAttentionHead(image_size=(32, 32), dims=(16, 32), depths=(1, 1), blocks=1, heads=2)
        >>> moving, fixed = torch.randn(2, 3, 32, 32), torch.randn(2, 1, 32, 32)  # projected features, X-rays
        >>> head(moving, fixed).shape  # one score per pair
        torch.Size([2])
    """

    def __init__(
        self,
        image_size: Sequence[int] = (128, 128),
        moving_channels: int = 3,
        fixed_channels: int = 1,
        patch_sizes: Sequence[int] = (8, 16),
        dims: Sequence[int] = (64, 128),
        depths: Sequence[int] = (1, 3),
        blocks: int = 3,
        heads: int = 4,
        mlp_ratio: float = 3.5,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if not (len(patch_sizes) == len(dims) == len(depths) == 2):
            raise ValueError(
                f"patch_sizes, dims, depths: expected two values each (small, large branch), got "
                f"{tuple(patch_sizes)}, {tuple(dims)}, {tuple(depths)}"
            )
        self.image_size = check_image_size(image_size, patch_sizes)
        self.moving_channels = moving_channels
        self.fixed_channels = fixed_channels
        self.reduce = nn.Conv2d(moving_channels, 1, 1)
        self.tokens = nn.ModuleList(
            PatchTokens(1 + fixed_channels, dim, patch, self.image_size) for dim, patch in zip(dims, patch_sizes)
        )
        self.blocks = nn.ModuleList(MultiScaleBlock(dims, depths, heads, mlp_ratio, dropout) for _ in range(blocks))
        self.norms = nn.ModuleList(nn.LayerNorm(dim) for dim in dims)
        self.score = nn.Linear(sum(dims), 1)

    def forward(self, moving: Float[Tensor, "B Cm H W"], fixed: Float[Tensor, "B Cf H W"]) -> Float[Tensor, " B"]:
        """Score each pair (higher is better).

        Args:
            moving: projected feature images ``(B, moving_channels, H, W)``.
            fixed: X-ray images ``(B, fixed_channels, H, W)``.

        Returns:
            ``(B,)`` scores, unbounded.

        Raises:
            ValueError: wrong ranks or channels, different batch or image sizes, or ``(H, W)`` not
                the ``image_size`` the head was built for.
        """
        size = check_image_pair(moving, fixed, self.moving_channels, self.fixed_channels)
        if size != self.image_size:
            raise ValueError(f"moving and fixed: expected image size {self.image_size}, got {size}")
        image = torch.cat([self.reduce(moving), fixed], dim=1)
        small, large = (tokens(image) for tokens in self.tokens)
        for block in self.blocks:
            small, large = block(small, large)
        cls = torch.cat([self.norms[0](small[:, 0]), self.norms[1](large[:, 0])], dim=-1)
        return self.score(cls).squeeze(-1)
