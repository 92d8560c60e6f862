"""Image similarities by name: `get_similarity` builds a registered `ImageSimilarity` with options.

========================  ====================================================================
name                      similarity (options)
========================  ====================================================================
``"ncc"``                 `NCCSimilarity` (``eps``)
``"patch-ncc"``           `PatchNCCSimilarity` (``patch_size``, ``stride``, ``eps``)
``"multiscale-ncc"``      `MultiscaleNCCSimilarity` (``patch_sizes``, ``weights``, ``eps``)
``"gradient-ncc"``        `GradientNCCSimilarity` (``patch_size``, ``stride``, ``eps``)
``"mutual-information"``  `MutualInformationSimilarity` (``bins``, ``bandwidth``, ``normalized``)
========================  ====================================================================

Add your own with ``SIMILARITIES.register(name, factory)``; wrap any of them in
`xrender.similarity.base.SimilarityLoss` to get a loss.
"""

from __future__ import annotations

from typing import Any

from xrender._registry import Registry
from xrender.similarity.base import ImageSimilarity
from xrender.similarity.gradient_ncc import GradientNCCSimilarity
from xrender.similarity.mutual_information import MutualInformationSimilarity
from xrender.similarity.ncc import MultiscaleNCCSimilarity, NCCSimilarity, PatchNCCSimilarity

__all__ = ["SIMILARITIES", "available_similarities", "get_similarity"]

SIMILARITIES: Registry[ImageSimilarity] = Registry("image similarity", ImageSimilarity)
"""Registered similarities by name; ``SIMILARITIES.get(name, **options)`` builds one."""
SIMILARITIES.register("ncc", NCCSimilarity)
SIMILARITIES.register("patch-ncc", PatchNCCSimilarity)
SIMILARITIES.register("multiscale-ncc", MultiscaleNCCSimilarity)
SIMILARITIES.register("gradient-ncc", GradientNCCSimilarity)
SIMILARITIES.register("mutual-information", MutualInformationSimilarity)


def available_similarities() -> list[str]:
    """Names accepted by `get_similarity`, sorted.

    Examples:
        >>> from xrender.similarity import available_similarities
        >>> available_similarities()
        ['gradient-ncc', 'multiscale-ncc', 'mutual-information', 'ncc', 'patch-ncc']
    """
    return SIMILARITIES.names()


def get_similarity(name: str, **options: Any) -> ImageSimilarity:
    """Build the similarity registered as ``name`` with keyword ``options`` (see the table above).

    Raises:
        ValueError: unknown name (the message lists the available ones) or a bad option value.
        TypeError: an option the similarity does not take (the message lists the accepted ones).

    Examples:
        >>> from xrender.similarity import get_similarity
        >>> get_similarity("patch-ncc", patch_size=9)
        PatchNCCSimilarity(patch_size=9, stride=9, eps=None)
        >>> get_similarity("mutual-information", bins=64).bounds[0]
        0.0
    """
    return SIMILARITIES.get(name, **options)
