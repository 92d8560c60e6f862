"""Registry of the ProST 2-D heads and parameter counts for the training CLI.

``get_head("embedding")`` builds the MICCAI head (`EmbeddingHead`), ``get_head("cross-attention")``
the journal head (`CrossAttentionHead`). Both factories accept ``image_size`` so callers can
build either the same way; add a head with ``HEADS.register(name, factory)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import nn

from xrender._registry import Registry
from xrender.similarity.prost.crossvit import CrossAttentionHead
from xrender.similarity.prost.embedding import EmbeddingHead

__all__ = ["HEADS", "available_heads", "describe_parameters", "get_head", "parameter_count"]

#: Named ProST heads; every factory takes ``image_size=(H, W)`` and returns an ``nn.Module`` mapping
#: ``(moving (B, 3, H, W), fixed (B, 1, H, W))`` to ``(B,)`` scores, higher is better.
HEADS: Registry[nn.Module] = Registry("ProST head", nn.Module)
HEADS.register("embedding", EmbeddingHead)
HEADS.register("cross-attention", CrossAttentionHead)


def available_heads() -> list[str]:
    """Names accepted by `get_head`, sorted.

    Examples:
        >>> from xrender.similarity.prost import available_heads
        >>> available_heads()
        ['cross-attention', 'embedding']
    """
    return HEADS.names()


def get_head(name: str, image_size: Sequence[int] = (128, 128), **options: Any) -> nn.Module:
    """Build the head ``name`` for ``image_size=(H, W)`` images with keyword ``options``.

    Raises:
        ValueError: unknown name (the message lists the available ones), or an image size the head
            cannot take.
        TypeError: an option the head does not accept.

    Examples:
        >>> import torch
        >>> from xrender.similarity.prost import get_head
        >>> head = get_head("embedding", image_size=(16, 16), embedding_channels=32)
        >>> type(head).__name__, head(torch.rand(2, 3, 16, 16), torch.rand(2, 1, 16, 16)).shape
        ('EmbeddingHead', torch.Size([2]))
    """
    return HEADS.get(name, image_size=image_size, **options)


def parameter_count(module: nn.Module) -> int:
    """Number of trainable parameters (``requires_grad``) of ``module``.

    Examples:
        >>> from torch import nn
        >>> from xrender.similarity.prost import parameter_count
        >>> layer = nn.Linear(3, 4)  # 3 × 4 weights and 4 biases
        >>> parameter_count(layer)
        16
        >>> layer.bias.requires_grad_(False).shape  # frozen parameters are not counted
        torch.Size([4])
        >>> parameter_count(layer)
        12
    """
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def describe_parameters(module: nn.Module, depth: int = 1) -> str:
    """A table of trainable parameters: one line per submodule (dotted name, count), then the total.

    Submodules without trainable parameters (activations, pooling) are left out.

    Args:
        module: the network.
        depth: how many levels of submodules to expand (1: the direct children). Parameters held
            directly by a module rather than a submodule are listed under their own names.

    Returns:
        Lines ``name  count`` with counts right-aligned, the last one ``total``.

    Examples:
        >>> from torch import nn
        >>> from xrender.similarity.prost import describe_parameters
        >>> network = nn.ModuleDict({"encoder": nn.Linear(3, 4), "act": nn.ReLU(), "score": nn.Linear(4, 1)})
        >>> print(describe_parameters(network))
        encoder            16
        score               5
        total              21
    """
    rows = [row for row in _parameter_rows(module, "", depth) if row[1]]
    rows.append(("total", parameter_count(module)))
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {count:>12,}" for name, count in rows)


def _parameter_rows(module: nn.Module, prefix: str, depth: int) -> list[tuple[str, int]]:
    rows = [(prefix + name, p.numel()) for name, p in module.named_parameters(recurse=False) if p.requires_grad]
    for name, child in module.named_children():
        if depth > 1 and any(True for _ in child.children()):
            rows += _parameter_rows(child, f"{prefix}{name}.", depth - 1)
        else:
            rows.append((prefix + name, parameter_count(child)))
    return rows
