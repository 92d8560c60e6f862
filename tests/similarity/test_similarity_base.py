"""The contract every image similarity keeps: shapes, dtypes, masks, errors, gradients, batching, losses, registry.

Each property runs on every metric (global, patch and multiscale NCC, gradient NCC, MI and NMI);
the metric-specific golden values live in the per-metric test files.
"""

import math

import pytest
import torch

from xrender.similarity.base import ImageSimilarity, SimilarityLoss
from xrender.similarity.gradient_ncc import GradientNCCLoss, GradientNCCSimilarity, gradient_ncc
from xrender.similarity.mutual_information import (
    MutualInformationLoss,
    MutualInformationSimilarity,
    mutual_information,
)
from xrender.similarity.ncc import (
    MultiscaleNCCLoss,
    MultiscaleNCCSimilarity,
    NCCLoss,
    NCCSimilarity,
    PatchNCCLoss,
    PatchNCCSimilarity,
    multiscale_ncc,
    ncc,
    patch_ncc,
)
from xrender.similarity.registry import SIMILARITIES, available_similarities, get_similarity

# name: (function of (moving, fixed, mask), value for unrelated / constant images)
METRICS = {
    "ncc": (ncc, 0.0),
    "patch-ncc": (lambda m, f, mask=None: patch_ncc(m, f, 4, mask=mask), 0.0),
    "patch-ncc-overlap": (lambda m, f, mask=None: patch_ncc(m, f, 3, 2, mask), 0.0),
    "multiscale-ncc": (lambda m, f, mask=None: multiscale_ncc(m, f, (None, 4), (1.0, 3.0), mask), 0.0),
    "gradient-ncc": (gradient_ncc, 0.0),
    "patch-gradient-ncc": (lambda m, f, mask=None: gradient_ncc(m, f, mask, patch_size=4), 0.0),
    "mi": (lambda m, f, mask=None: mutual_information(m, f, mask, bins=8), 0.0),
    "nmi": (lambda m, f, mask=None: mutual_information(m, f, mask, bins=8, normalized=True), 1.0),
}
NAMES = list(METRICS)


def image(seed: int, shape=(2, 1, 16, 16), dtype=torch.float64) -> torch.Tensor:
    """Smooth structure plus texture: Gaussian blobs at random places, a little noise."""
    g = torch.Generator().manual_seed(seed)
    B, C, H, W = shape
    v, u = torch.meshgrid(torch.arange(H, dtype=dtype), torch.arange(W, dtype=dtype), indexing="ij")
    out = torch.zeros(shape, dtype=dtype)
    for _ in range(4):
        cu, cv = (
            torch.rand(B, C, 1, 1, generator=g, dtype=dtype) * W,
            torch.rand(B, C, 1, 1, generator=g, dtype=dtype) * H,
        )
        out += torch.exp(-((u - cu) ** 2 + (v - cv) ** 2) / (2 * (0.15 * H) ** 2))
    return out + 0.1 * torch.rand(shape, generator=g, dtype=dtype)


def random_mask(seed: int, shape=(2, 1, 16, 16), dtype=torch.float64) -> torch.Tensor:
    """Weights in [0, 1] with a zero block and some zero pixels."""
    g = torch.Generator().manual_seed(seed)
    mask = torch.rand(shape, generator=g, dtype=dtype)
    mask[..., :5, :6] = 0.0
    return torch.where(mask < 0.15, torch.zeros_like(mask), mask)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_output_is_one_value_per_item_in_the_input_dtype(name, dtype):
    value = METRICS[name][0](image(0, (3, 2, 16, 16), dtype), image(1, (3, 2, 16, 16), dtype))
    assert value.shape == (3,)
    assert value.dtype == dtype
    assert bool(torch.isfinite(value).all())


@pytest.mark.parametrize("name", NAMES)
def test_mixed_dtypes_promote(name):
    value = METRICS[name][0](image(0, dtype=torch.float32), image(1))
    assert value.dtype == torch.float64


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("mask", [None, "float", "bool"])
def test_gradcheck(name, mask):
    fn = METRICS[name][0]
    weights = {None: None, "float": random_mask(5, (2, 1, 8, 8)), "bool": random_mask(5, (2, 1, 8, 8)) > 0}[mask]
    moving = image(0, (2, 1, 8, 8)).requires_grad_()
    fixed = image(1, (2, 1, 8, 8)).requires_grad_()
    assert torch.autograd.gradcheck(lambda m, f: fn(m, f, weights), (moving, fixed))


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("level", [0.0, 3.0, 1234.5])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_constant_images_give_the_unrelated_value_and_finite_gradients(name, level, dtype):
    fn, unrelated = METRICS[name]
    constant = torch.full((2, 1, 16, 16), level, dtype=dtype, requires_grad=True)
    other = image(1, dtype=dtype).requires_grad_()
    for moving, fixed in ((constant, other), (other, constant), (constant, constant)):
        value = fn(moving, fixed)
        (grad_constant, grad_other) = torch.autograd.grad(value.sum(), (constant, other), allow_unused=True)
        torch.testing.assert_close(value.detach(), torch.full_like(value, unrelated), atol=1e-3, rtol=0)
        for grad in (grad_constant, grad_other):
            assert grad is None or bool(torch.isfinite(grad).all())


@pytest.mark.parametrize("name", NAMES)
def test_an_all_zero_mask_gives_the_unrelated_value(name):
    fn, unrelated = METRICS[name]
    mask = torch.ones(2, 1, 16, 16)
    mask[1] = 0.0
    moving = image(0).requires_grad_()
    value = fn(moving, image(1), mask)
    value.sum().backward()
    assert float(value[1].detach()) == pytest.approx(unrelated)
    assert bool(torch.isfinite(moving.grad).all())


@pytest.mark.parametrize("name", NAMES)
def test_batched_equals_one_by_one(name):
    fn = METRICS[name][0]
    moving, fixed, mask = image(0, (3, 2, 16, 16)), image(1, (3, 2, 16, 16)), random_mask(2, (3, 1, 16, 16))
    for weights in (None, mask):
        batched = fn(moving, fixed, weights)
        singles = [
            fn(moving[i : i + 1], fixed[i : i + 1], None if weights is None else weights[i : i + 1]) for i in range(3)
        ]
        torch.testing.assert_close(batched, torch.cat(singles))


@pytest.mark.parametrize("name", NAMES)
def test_one_mask_broadcasts_over_the_batch(name):
    fn = METRICS[name][0]
    mask = random_mask(3, (1, 1, 16, 16))
    torch.testing.assert_close(fn(image(0), image(1), mask), fn(image(0), image(1), mask.expand(2, 1, 16, 16)))


@pytest.mark.parametrize("name", NAMES)
def test_content_under_mask_zero_does_not_matter(name):
    fn = METRICS[name][0]
    moving, fixed, mask = image(0), image(1), random_mask(4)
    hidden = mask == 0
    changed_moving = torch.where(hidden, 100.0 * image(7), moving)
    changed_fixed = torch.where(hidden, -50.0 * image(8), fixed)
    reference = fn(moving, fixed, mask)
    torch.testing.assert_close(fn(changed_moving, changed_fixed, mask), reference)
    torch.testing.assert_close(fn(changed_moving, changed_fixed, mask > 0), fn(moving, fixed, mask > 0))
    # and it does matter without the mask
    assert not torch.allclose(fn(changed_moving, changed_fixed), fn(moving, fixed))


@pytest.mark.parametrize("name", NAMES)
def test_symmetric(name):
    fn = METRICS[name][0]
    moving, fixed, mask = image(0), image(1), random_mask(2)
    torch.testing.assert_close(fn(moving, fixed), fn(fixed, moving))
    torch.testing.assert_close(fn(moving, fixed, mask), fn(fixed, moving, mask))


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(("scale", "offset"), [(3.0, 0.0), (0.01, 5.0), (250.0, -1000.0)])
def test_invariant_to_positive_affine_intensity_changes(name, scale, offset):
    fn = METRICS[name][0]
    moving, fixed, mask = image(0), image(1), random_mask(2)
    for weights in (None, mask):
        reference = fn(moving, fixed, weights)
        torch.testing.assert_close(fn(scale * moving + offset, fixed, weights), reference, atol=1e-9, rtol=0)
        torch.testing.assert_close(fn(moving, scale * fixed + offset, weights), reference, atol=1e-9, rtol=0)


@pytest.mark.parametrize("name", NAMES)
def test_self_similarity_is_the_maximum(name):
    fn = METRICS[name][0]
    x = image(0)
    g = torch.Generator().manual_seed(3)
    perturbed = {
        "noise": x + 0.1 * torch.randn(x.shape, generator=g, dtype=x.dtype),
        "shift": torch.roll(x, shifts=(1, 2), dims=(2, 3)),
        "blur": torch.nn.functional.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False),
        "square": (x - x.mean()) ** 2,
        "other": image(1),
    }
    best = fn(x, x)
    for label, y in perturbed.items():
        assert bool((fn(x, y) < best - 1e-3).all()), label


# ------------------------------------------------------------------------------------------ errors
@pytest.mark.parametrize("name", NAMES)
def test_mismatched_shapes_raise_with_both_shapes(name):
    fn = METRICS[name][0]
    with pytest.raises(ValueError, match=r"moving \(2, 1, 16, 16\) and fixed \(2, 1, 16, 12\)"):
        fn(image(0), image(1)[..., :12])
    with pytest.raises(ValueError, match=r"moving \(1, 16, 16\)"):
        fn(image(0)[0], image(1)[0])


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("shape", [(2, 2, 16, 16), (3, 1, 16, 16), (2, 1, 16, 8), (1, 16, 16)])
def test_bad_mask_shape_raises(name, shape):
    with pytest.raises(ValueError, match=r"mask: expected shape \(2, 1, 16, 16\) or \(1, 1, 16, 16\)"):
        METRICS[name][0](image(0), image(1), torch.ones(shape))


@pytest.mark.parametrize("name", NAMES)
def test_non_float_or_non_tensor_inputs_raise_type_errors(name):
    fn = METRICS[name][0]
    with pytest.raises(TypeError, match=r"moving: expected a floating-point tensor, got dtype torch\.int64"):
        fn(torch.ones(2, 1, 16, 16, dtype=torch.long), image(1))
    with pytest.raises(TypeError, match=r"fixed: expected a torch\.Tensor, got list"):
        fn(image(0), [1.0])
    with pytest.raises(TypeError, match=r"mask: expected a torch\.Tensor, got float"):
        fn(image(0), image(1), 1.0)


# -------------------------------------------------------------------------------- modules and losses
MODULES = [
    (NCCSimilarity(), NCCLoss(), ncc),
    (PatchNCCSimilarity(4), PatchNCCLoss(4), lambda m, f, mask: patch_ncc(m, f, 4, mask=mask)),
    (
        MultiscaleNCCSimilarity((None, 4), (1, 1)),
        MultiscaleNCCLoss((None, 4), (1, 1)),
        lambda m, f, mask: multiscale_ncc(m, f, (None, 4), (1, 1), mask),
    ),
    (
        GradientNCCSimilarity(4),
        GradientNCCLoss(patch_size=4),
        lambda m, f, mask: gradient_ncc(m, f, mask, patch_size=4),
    ),
    (
        MutualInformationSimilarity(8),
        MutualInformationLoss(bins=8),
        lambda m, f, mask: mutual_information(m, f, mask, bins=8),
    ),
    (
        MutualInformationSimilarity(8, normalized=True),
        MutualInformationLoss(8, normalized=True),
        lambda m, f, mask: mutual_information(m, f, mask, bins=8, normalized=True),
    ),
]
MODULE_IDS = ["ncc", "patch-ncc", "multiscale-ncc", "gradient-ncc", "mi", "nmi"]


@pytest.mark.parametrize(("similarity", "loss", "fn"), MODULES, ids=MODULE_IDS)
def test_modules_call_their_function_and_losses_are_upper_bound_minus_similarity(similarity, loss, fn):
    moving, fixed, mask = image(0), image(1), random_mask(2)
    value = similarity(moving, fixed, mask)
    torch.testing.assert_close(value, fn(moving, fixed, mask))
    lower, upper = similarity.bounds
    assert bool(((value >= lower) & (value <= upper)).all())
    torch.testing.assert_close(loss(moving, fixed, mask), upper - value)
    assert loss.bounds == (0.0, upper - lower)
    assert bool((loss(moving, fixed) >= 0).all())
    assert bool((loss(moving, moving) < loss(moving, fixed)).all())


@pytest.mark.parametrize(("similarity", "loss", "fn"), MODULES[:4], ids=MODULE_IDS[:4])
def test_ncc_losses_are_zero_at_self_similarity(similarity, loss, fn):
    x = image(0)
    torch.testing.assert_close(loss(x, x), torch.zeros(2, dtype=x.dtype), atol=1e-12, rtol=0)
    torch.testing.assert_close(loss(x, 2.0 * x + 1.0), torch.zeros(2, dtype=x.dtype), atol=1e-12, rtol=0)
    assert bool((loss(x, -x) > 1.9).all())


def test_mutual_information_bounds_depend_on_bins():
    assert MutualInformationSimilarity(16).bounds == (0.0, math.log(16))
    assert MutualInformationSimilarity(16, normalized=True).bounds == (1.0, 2.0)
    assert NCCSimilarity.bounds == (-1.0, 1.0)


def test_similarity_loss_wraps_any_bounded_similarity():
    loss = SimilarityLoss(get_similarity("ncc"))
    x = image(0)
    torch.testing.assert_close(loss(x, image(1)), 1.0 - ncc(x, image(1)))
    with pytest.raises(TypeError, match="SimilarityLoss: expected an ImageSimilarity, got function"):
        SimilarityLoss(ncc)

    class Unbounded(ImageSimilarity):
        def forward(self, moving, fixed, mask=None):
            return -(moving - fixed).square().mean((1, 2, 3))

    with pytest.raises(ValueError, match="expected a similarity with a finite upper bound, got Unbounded"):
        SimilarityLoss(Unbounded())
    with pytest.raises(NotImplementedError, match="ImageSimilarity does not implement forward"):
        ImageSimilarity()(x, x)


def test_modules_show_their_options_and_validate_them_at_construction():
    assert repr(PatchNCCSimilarity(5)) == "PatchNCCSimilarity(patch_size=5, stride=5, eps=None)"
    assert "bins=8, bandwidth=0.5, normalized=False" in repr(MutualInformationLoss(8))
    with pytest.raises(ValueError, match="PatchNCCSimilarity: patch_size: expected an int >= 2, got 0"):
        PatchNCCSimilarity(0)
    with pytest.raises(ValueError, match="GradientNCCSimilarity: stride: expected None without a patch_size"):
        GradientNCCSimilarity(stride=2)
    with pytest.raises(ValueError, match="NCCSimilarity: eps: expected finite values > 0"):
        NCCSimilarity(eps=0.0)


# ----------------------------------------------------------------------------------------- registry
def test_registry_names_and_lookup():
    assert available_similarities() == ["gradient-ncc", "multiscale-ncc", "mutual-information", "ncc", "patch-ncc"]
    assert isinstance(get_similarity("ncc"), NCCSimilarity)
    assert isinstance(get_similarity("patch-ncc", patch_size=9, stride=3), PatchNCCSimilarity)
    assert get_similarity("mutual-information", bins=16, normalized=True).bounds == (1.0, 2.0)
    assert "multiscale-ncc" in SIMILARITIES


def test_registry_errors_list_names_and_options():
    with pytest.raises(ValueError, match="unknown image similarity 'nmi'; available: gradient-ncc, multiscale-ncc"):
        get_similarity("nmi")
    with pytest.raises(TypeError, match=r"image similarity 'ncc': unknown option\(s\) \['bins'\]; accepted options"):
        get_similarity("ncc", bins=3)
    with pytest.raises(ValueError, match="patch_size: expected an int >= 2, got -1"):
        get_similarity("patch-ncc", patch_size=-1)
