"""Gradient NCC: the Sobel-derivative definition, mask erosion, patches, golden values, errors."""

import pytest
import torch
from _noise import noise
from kornia.filters import spatial_gradient

from xrender.similarity.gradient_ncc import gradient_ncc
from xrender.similarity.ncc import ncc, patch_ncc


def sobel(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    g = spatial_gradient(x, mode="sobel", order=1, normalized=True)
    return g[:, :, 0], g[:, :, 1]


def test_is_the_mean_of_the_nccs_of_the_sobel_derivatives():
    x, y = noise(0, (2, 2, 12, 12)), noise(1, (2, 2, 12, 12)) + noise(0, (2, 2, 12, 12))
    (xu, xv), (yu, yv) = sobel(x), sobel(y)
    torch.testing.assert_close(gradient_ncc(x, y), 0.5 * (ncc(xu, yu) + ncc(xv, yv)))
    expected = 0.5 * (patch_ncc(xu, yu, 4) + patch_ncc(xv, yv, 4))
    torch.testing.assert_close(gradient_ncc(x, y, patch_size=4), expected)
    expected = 0.5 * (patch_ncc(xu, yu, 5, 3) + patch_ncc(xv, yv, 5, 3))
    torch.testing.assert_close(gradient_ncc(x, y, patch_size=5, stride=3), expected)


def test_mask_is_eroded_by_the_derivative_stencil():
    x, y = noise(0), noise(1) + noise(0)
    mask = torch.ones(2, 1, 12, 12, dtype=x.dtype)
    mask[0, :, 3:6, 4:9] = 0.0
    mask[1, :, :, 10:] = 0.25
    eroded = torch.ones_like(mask)
    for i in range(12):
        for j in range(12):
            eroded[..., i, j] = mask[..., max(i - 1, 0) : i + 2, max(j - 1, 0) : j + 2].amin((-2, -1))
    (xu, xv), (yu, yv) = sobel(x), sobel(y)
    expected = 0.5 * (ncc(xu, yu, eroded) + ncc(xv, yv, eroded))
    torch.testing.assert_close(gradient_ncc(x, y, mask), expected)
    assert eroded[0, 0, 2, 3] == 0
    assert eroded[0, 0, 1, 3] == 1
    assert eroded[1, 0, 0, 9] == 0.25


def test_golden_values_for_one_dimensional_structure():
    u = torch.linspace(0, 3, 12, dtype=torch.float64)
    ramp_like = torch.sin(u).expand(1, 1, 12, 12)  # varies along u only: ∂v is zero
    # ∂u correlates perfectly, ∂v is rounding noise below the variance floor (NCC ≈ 0): the mean is 1/2
    for dtype in (torch.float32, torch.float64):
        image = ramp_like.to(dtype)
        assert float(gradient_ncc(image, image)) == pytest.approx(0.5, abs=1e-5)
        assert float(gradient_ncc(image, -image)) == pytest.approx(-0.5, abs=1e-5)
        assert float(gradient_ncc(image, image.transpose(-1, -2))) == pytest.approx(0.0, abs=1e-5)
    x = noise(0)
    assert float(gradient_ncc(x, x)[0]) == pytest.approx(1.0, abs=1e-12)
    assert float(gradient_ncc(x, -x)[0]) == pytest.approx(-1.0, abs=1e-12)


def test_ignores_smooth_intensity_offsets_that_global_ncc_sees():
    # adding a constant shifts NCC nowhere, but adding a tilted plane changes NCC much more than gradient NCC
    x = noise(0)
    v, u = torch.meshgrid(torch.arange(12.0, dtype=x.dtype), torch.arange(12.0, dtype=x.dtype), indexing="ij")
    tilted = x + 0.3 * (u + v)
    assert 1 - float(gradient_ncc(x, tilted)[0]) < 0.1 * (1 - float(ncc(x, tilted)[0]))


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"stride": 2}, ValueError, "gradient_ncc: stride: expected None without a patch_size, got 2"),
        ({"patch_size": 1}, ValueError, "gradient_ncc: patch_size: expected an int >= 2, got 1"),
        ({"patch_size": 0}, ValueError, "gradient_ncc: patch_size: expected an int >= 2, got 0"),
        ({"patch_size": 13}, ValueError, "gradient_ncc: patch_size: expected at most the image size 12"),
        ({"patch_size": 4, "stride": -1}, ValueError, "gradient_ncc: stride: expected an int >= 1, got -1"),
        ({"patch_size": "4"}, TypeError, "gradient_ncc: patch_size: expected an int, got str"),
        ({"eps": 0.0}, ValueError, "gradient_ncc: eps: expected finite values > 0, got 0.0"),
    ],
)
def test_options_raise(kwargs, error, message):
    with pytest.raises(error, match=message):
        gradient_ncc(noise(0), noise(1), **kwargs)
