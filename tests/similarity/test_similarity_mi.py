"""Mutual information: entropy and independence golden values, ranges, mask weighting, the kornia kernel, errors."""

import math

import pytest
import torch
from kornia.enhance.histogram import histogram

from xrender.similarity.mutual_information import MIN_BANDWIDTH, mutual_information


def levels(seed: int, bins: int, shape=(2, 1, 24, 24)) -> torch.Tensor:
    """Images whose values sit exactly on the bin centres after min–max normalisation."""
    g = torch.Generator().manual_seed(seed)
    values = torch.randint(0, bins, shape, generator=g).to(torch.float64)
    values[..., 0, 0], values[..., 0, 1] = 0, bins - 1  # the full range, so the normalisation is k / (bins - 1)
    return values


def parzen_entropy(x: torch.Tensor, bins: int, bandwidth: float) -> torch.Tensor:
    """Entropy (nats) of kornia's own Parzen pdf of the min–max normalised image."""
    flat = x.flatten(1)
    low, high = flat.amin(1, keepdim=True), flat.amax(1, keepdim=True)
    centers = torch.linspace(0, 1, bins, dtype=x.dtype)
    pdf = histogram((flat - low) / (high - low), centers, torch.tensor(bandwidth / (bins - 1), dtype=x.dtype))
    return -(pdf * pdf.clamp_min(1e-300).log()).sum(1)


def test_identical_images_give_their_entropy():
    x = levels(0, 8)
    entropy = parzen_entropy(x, 8, 0.1)
    torch.testing.assert_close(mutual_information(x, x, bins=8, bandwidth=0.1), entropy, atol=1e-9, rtol=0)
    torch.testing.assert_close(
        mutual_information(x, x, bins=8, bandwidth=0.1, normalized=True), torch.full_like(entropy, 2.0)
    )
    assert bool((entropy > 0.95 * math.log(8)).all())  # near-uniform levels: close to the maximum
    # a wider kernel smooths the joint off its diagonal: self-MI drops below the entropy
    wide = mutual_information(x, x, bins=8)
    assert bool((wide < parzen_entropy(x, 8, 0.5)).all())
    assert bool((wide > 0.5 * entropy).all())


def test_independent_images_give_about_zero():
    g = torch.Generator().manual_seed(1)
    x, y = torch.rand(2, 1, 96, 96, generator=g, dtype=torch.float64), torch.rand(2, 1, 96, 96, generator=g)
    mi = mutual_information(x, y, bins=8)
    assert bool((mi >= 0).all())
    assert bool((mi < 0.01).all())
    nmi = mutual_information(x, y, bins=8, normalized=True)
    assert bool((nmi >= 1).all())
    assert bool((nmi < 1.005).all())


def test_values_stay_in_range():
    x, y = levels(0, 16), levels(1, 16) + levels(0, 16)
    for other in (x, y, -x, x.square()):
        mi = mutual_information(x, other, bins=16)
        assert bool(((mi >= -1e-12) & (mi <= math.log(16))).all())
        nmi = mutual_information(x, other, bins=16, normalized=True)
        assert bool(((nmi >= 1 - 1e-12) & (nmi <= 2)).all())


def test_a_decreasing_map_keeps_the_dependence():
    # min–max normalisation and centres symmetric about 1/2: x and -x have the same mutual information
    x = levels(0, 8) + 0.3 * torch.rand(2, 1, 24, 24, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    torch.testing.assert_close(mutual_information(x, -x, bins=8), mutual_information(x, x, bins=8))


def test_bool_mask_equals_mi_of_the_selected_pixels():
    x, y = levels(0, 8, (1, 2, 16, 16)), levels(1, 8, (1, 2, 16, 16)) + levels(0, 8, (1, 2, 16, 16))
    mask = torch.rand(1, 1, 16, 16, generator=torch.Generator().manual_seed(3)) > 0.4
    selected = mask.expand_as(x)
    expected = mutual_information(x[selected].view(1, 1, 1, -1), y[selected].view(1, 1, 1, -1), bins=8)
    torch.testing.assert_close(mutual_information(x, y, mask, bins=8), expected)


def test_float_mask_weights_count_like_repeated_pixels():
    # weights 1 and 1/2 are the same as weights 2 and 1: repeating the heavy pixels once
    x, y = levels(0, 8, (1, 1, 1, 40)), levels(1, 8, (1, 1, 1, 40)) + levels(0, 8, (1, 1, 1, 40))
    heavy = torch.arange(40) % 3 == 0
    mask = torch.where(heavy, 1.0, 0.5).view(1, 1, 1, 40).to(x.dtype)
    repeated_x, repeated_y = torch.cat([x, x[..., heavy]], -1), torch.cat([y, y[..., heavy]], -1)
    torch.testing.assert_close(
        mutual_information(x, y, mask, bins=8), mutual_information(repeated_x, repeated_y, bins=8)
    )


def test_more_bins_resolve_more_information():
    x = levels(0, 32)
    assert float(mutual_information(x, x, bins=32)[0]) > float(mutual_information(x, x, bins=8)[0])


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"bins": 1}, ValueError, "mutual_information: bins: expected an int >= 2, got 1"),
        ({"bins": 8.0}, TypeError, "mutual_information: bins: expected an int, got float"),
        ({"bandwidth": 0.0}, ValueError, r"mutual_information: bandwidth: expected finite values > 0, got 0.0"),
        ({"bandwidth": MIN_BANDWIDTH / 2}, ValueError, "bandwidth: expected at least 0.1 bin widths, got 0.05"),
    ],
)
def test_options_raise(kwargs, error, message):
    with pytest.raises(error, match=message):
        mutual_information(levels(0, 8), levels(1, 8), **kwargs)
