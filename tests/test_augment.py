"""Target augmentations: reproducible, in range, and each one really applied."""

from __future__ import annotations

import pytest
import torch

from xrender.augment import TargetAugmentation, rescale_unit


def _images():
    return torch.linspace(0, 5, 2 * 16 * 16).reshape(2, 1, 16, 16)


def test_same_generator_state_same_images():
    aug = TargetAugmentation()
    a = aug(_images(), torch.Generator().manual_seed(1))
    b = aug(_images(), torch.Generator().manual_seed(1))
    c = aug(_images(), torch.Generator().manual_seed(2))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_p_zero_only_rescales():
    out = TargetAugmentation(p=0.0)(_images(), torch.Generator().manual_seed(0))
    assert torch.equal(out, rescale_unit(_images()))
    assert float(out.amin()) == 0.0
    assert float(out.amax()) == 1.0


def test_p_one_inverts_and_adds_noise():
    aug = TargetAugmentation(p=1.0, gamma=(1.0, 1.0), noise_std=(0.01, 0.01), box_noise_std=(0.0, 0.0))
    out = aug(_images(), torch.Generator().manual_seed(0))
    residual = out - (1 - rescale_unit(_images()))
    assert 0.007 < float(residual.std()) < 0.013


def test_gamma_only():
    aug = TargetAugmentation(p=1.0, gamma=(2.0, 2.0), noise_std=(0, 0), box_noise_std=(0, 0))
    out = aug(_images(), torch.Generator().manual_seed(0))
    assert torch.allclose(out, 1 - rescale_unit(_images()) ** 2, atol=1e-6)


def test_boxes_are_local():
    aug = TargetAugmentation(p=1.0, gamma=(1, 1), noise_std=(0, 0), boxes=(1, 1), box_fraction=(0.25, 0.25))
    out = aug(_images(), torch.Generator().manual_seed(0))
    changed = (out - (1 - rescale_unit(_images()))).abs() > 0
    assert 0 < int(changed[0].sum()) <= 5 * 5


def test_constant_image_is_finite():
    out = TargetAugmentation(p=1.0)(torch.ones(1, 1, 8, 8), torch.Generator().manual_seed(0))
    assert torch.isfinite(out).all()


@pytest.mark.parametrize(
    ("option", "value"),
    [("p", 1.5), ("gamma", (1.3, 0.7)), ("boxes", (0, 2)), ("box_fraction", (0.5, 2.0)), ("noise_std", (-1, 0))],
)
def test_bad_options(option, value):
    with pytest.raises(ValueError, match=option):
        TargetAugmentation(**{option: value})


def test_bad_images():
    with pytest.raises(ValueError, match="images"):
        TargetAugmentation()(torch.ones(8, 8), torch.Generator())
