"""NCC, patch NCC and multiscale NCC: golden values, references, patch layout and option errors."""

import numpy as np
import pytest
import torch
from _noise import noise

from xrender.similarity.ncc import multiscale_ncc, ncc, patch_ncc


def weighted_ncc_reference(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> float:
    """Textbook weighted Pearson correlation, in numpy."""
    mx, my = np.average(x, weights=w), np.average(y, weights=w)
    cov = np.average((x - mx) * (y - my), weights=w)
    return cov / np.sqrt(np.average((x - mx) ** 2, weights=w) * np.average((y - my) ** 2, weights=w))


def test_golden_values(device):
    x = noise(0).to(device)
    ones = torch.ones(2, dtype=x.dtype, device=device)
    torch.testing.assert_close(ncc(x, -x), -ones, atol=1e-12, rtol=0)
    torch.testing.assert_close(ncc(x, x), ones, atol=1e-12, rtol=0)
    u = torch.arange(8.0, dtype=torch.float64, device=device)
    checkerboard = ((u[:, None] + u[None, :]) % 2 * 2 - 1).expand(1, 1, 8, 8)
    stripes = (u[None, :] % 2 * 2 - 1).expand(1, 1, 8, 8)  # zero-mean and orthogonal to the checkerboard
    assert float(ncc(checkerboard, stripes)) == 0.0
    assert float(ncc(stripes + 5.0, 3.0 * stripes)) == pytest.approx(1.0, abs=1e-12)


def test_matches_numpy_corrcoef_over_all_channels():
    x, y = noise(0, (3, 2, 5, 7)), noise(1, (3, 2, 5, 7)) + 0.5 * noise(0, (3, 2, 5, 7))
    expected = [np.corrcoef(x[i].flatten().numpy(), y[i].flatten().numpy())[0, 1] for i in range(3)]
    torch.testing.assert_close(ncc(x, y), torch.tensor(expected, dtype=x.dtype))


def test_mask_weights_match_the_weighted_correlation():
    x, y = noise(0, (1, 2, 6, 6)), noise(1, (1, 2, 6, 6)) + noise(0, (1, 2, 6, 6))
    mask = torch.rand(1, 1, 6, 6, generator=torch.Generator().manual_seed(3), dtype=x.dtype)
    weights = mask.expand(1, 2, 6, 6).flatten().numpy()
    expected = weighted_ncc_reference(x.flatten().numpy(), y.flatten().numpy(), weights)
    assert float(ncc(x, y, mask)) == pytest.approx(expected, abs=1e-12)
    selected = mask > 0.5
    expected = np.corrcoef(x[selected.expand_as(x)].numpy(), y[selected.expand_as(y)].numpy())[0, 1]
    assert float(ncc(x, y, selected)) == pytest.approx(expected, abs=1e-12)


def test_self_similarity_is_one_in_both_precisions(device):
    x = noise(0).to(device) * 0.01 + 5.0  # a strong offset: the floors are relative to the RMS
    torch.testing.assert_close(ncc(x, x), torch.ones(2, dtype=x.dtype, device=device), atol=1e-12, rtol=0)
    x32 = x.float()
    ones = torch.ones(2, device=device)
    torch.testing.assert_close(ncc(x32, x32), ones, atol=1e-4, rtol=0)
    torch.testing.assert_close(patch_ncc(x32, x32, 4), ones, atol=1e-4, rtol=0)


def test_constant_images_are_exactly_zero_and_eps_is_a_floor():
    constant = torch.full((2, 1, 12, 12), 0.1)
    assert torch.equal(ncc(constant, noise(1).float()), torch.zeros(2))
    assert torch.equal(patch_ncc(noise(1).float(), constant, 3), torch.zeros(2))
    x = noise(0)
    # a larger eps pulls self-similarity below 1 by eps² · rms² / var
    rms2, var = float(x[0].square().mean()), float(x[0].var(unbiased=False))
    assert float(ncc(x, x, eps=1e-2)[0]) == pytest.approx(var / (var + 1e-4 * rms2), abs=1e-12)


def patch_reference(x, y, p, stride, mask=None):
    """Mean of per-patch NCCs by explicit slicing, weighted by the mask coverage."""
    B, _, H, W = x.shape
    mask = torch.ones(B, 1, H, W, dtype=x.dtype) if mask is None else mask
    values, coverages = [], []
    for top in range(0, H - p + 1, stride):
        for left in range(0, W - p + 1, stride):
            window = (..., slice(top, top + p), slice(left, left + p))
            values.append(ncc(x[window], y[window], mask[window]))
            coverages.append(mask[window].mean((1, 2, 3)))
    values, coverages = torch.stack(values, 1), torch.stack(coverages, 1)
    return (values * coverages).sum(1) / coverages.sum(1)


@pytest.mark.parametrize(("p", "stride"), [(4, 4), (3, 3), (5, 2), (12, 1)])
@pytest.mark.parametrize("masked", [False, True])
def test_patch_ncc_is_the_coverage_weighted_mean_of_patch_nccs(p, stride, masked):
    x, y = noise(0, (2, 2, 12, 12)), noise(1, (2, 2, 12, 12)) + noise(0, (2, 2, 12, 12))
    mask = torch.rand(2, 1, 12, 12, generator=torch.Generator().manual_seed(4), dtype=x.dtype) if masked else None
    torch.testing.assert_close(patch_ncc(x, y, p, stride, mask), patch_reference(x, y, p, stride, mask))


def test_patch_ncc_drops_the_border_remainder_and_whole_image_patch_is_global():
    x, y = noise(0, (1, 1, 11, 11)), noise(1, (1, 1, 11, 11))
    changed = y.clone()
    changed[..., 9:, :] = 100.0  # the last two rows and columns lie outside every 3 × 3 patch
    changed[..., :, 9:] = -7.0
    assert torch.equal(patch_ncc(x, y, 3), patch_ncc(x, changed, 3))
    assert not torch.equal(patch_ncc(x, y, 3, stride=2), patch_ncc(x, changed, 3, stride=2))
    torch.testing.assert_close(
        patch_ncc(x[..., :10, :10], y[..., :10, :10], 10), ncc(x[..., :10, :10], y[..., :10, :10])
    )


def test_patch_ncc_sees_local_structure_that_global_ncc_misses():
    # y follows x in the left half and is anti-correlated in the right half: global NCC ≈ 0
    x = noise(0, (1, 1, 8, 8))
    y = x.clone()
    y[..., 4:] *= -1
    assert abs(float(ncc(x, y))) < 0.3
    assert float(patch_ncc(x, y, 4)) == pytest.approx(0.0, abs=1e-12)
    assert float(patch_ncc(x.abs() + 1, (x.abs() + 1) * torch.linspace(1, 9, 8, dtype=x.dtype), 2)) < 1.0


def test_multiscale_is_the_normalised_weighted_sum():
    x, y = noise(0), noise(1) + noise(0)
    expected = 0.25 * ncc(x, y) + 0.75 * patch_ncc(x, y, 4)
    torch.testing.assert_close(multiscale_ncc(x, y, (None, 4), (1.0, 3.0)), expected)
    torch.testing.assert_close(multiscale_ncc(x, y, (None, 4), (0.25, 0.75)), expected)
    torch.testing.assert_close(multiscale_ncc(x, y, (6,), (2.0,)), patch_ncc(x, y, 6))
    default = 0.5 * ncc(x, y) + 0.5 * patch_ncc(x, y, 9)
    torch.testing.assert_close(multiscale_ncc(x, y), default)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"patch_size": 0}, ValueError, "patch_ncc: patch_size: expected an int >= 2, got 0"),
        ({"patch_size": 1}, ValueError, "patch_ncc: patch_size: expected an int >= 2, got 1"),
        ({"patch_size": -3}, ValueError, "patch_ncc: patch_size: expected an int >= 2, got -3"),
        (
            {"patch_size": 13},
            ValueError,
            r"expected at most the image size 12 \(images of shape \(2, 1, 12, 16\)\), got 13",
        ),
        ({"patch_size": 4.0}, TypeError, "patch_ncc: patch_size: expected an int, got float"),
        ({"patch_size": True}, TypeError, "patch_ncc: patch_size: expected an int, got bool"),
        ({"patch_size": 4, "stride": 0}, ValueError, "patch_ncc: stride: expected an int >= 1, got 0"),
        ({"patch_size": 4, "eps": -1.0}, ValueError, r"patch_ncc: eps: expected finite values > 0, got -1.0"),
    ],
)
def test_patch_options_raise(kwargs, error, message):
    with pytest.raises(error, match=message):
        patch_ncc(noise(0, (2, 1, 12, 16)), noise(1, (2, 1, 12, 16)), **kwargs)


@pytest.mark.parametrize(
    ("patch_sizes", "weights", "message"),
    [
        ((None, 4), (1.0,), r"one weight per patch size and at least one scale, got 2 patch size\(s\) and 1 weight"),
        ((), (), r"got 0 patch size\(s\)"),
        ((None, 4), (1.0, 0.0), r"multiscale_ncc: weights: expected finite values > 0, got \[1.0, 0.0\]"),
        ((None, 4), (1.0, -2.0), "expected finite values > 0"),
        ((None, 20), (1.0, 1.0), "patch_size: expected at most the image size 12"),
        ((None, 1), (1.0, 1.0), "patch_size: expected an int >= 2, got 1"),
    ],
)
def test_multiscale_options_raise(patch_sizes, weights, message):
    with pytest.raises(ValueError, match=message):
        multiscale_ncc(noise(0), noise(1), patch_sizes, weights)
