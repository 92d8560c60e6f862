"""Seeded Gaussian test images (float64 by default), shared by the similarity tests."""

import torch


def noise(seed: int, shape=(2, 1, 12, 12), dtype=torch.float64) -> torch.Tensor:
    """A standard-normal tensor of ``shape`` from its own generator seeded with ``seed``."""
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)
