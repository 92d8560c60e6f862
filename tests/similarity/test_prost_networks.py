"""ProST networks: shapes, parameter counts, double backward, batching and errors."""

import pytest
import torch

from xrender.similarity.prost import (
    CrossAttentionHead,
    EmbeddingHead,
    FeatureVolumeNet,
    available_heads,
    describe_parameters,
    get_head,
    parameter_count,
)

TINY = {
    "embedding": {"widths": (2, 3, 4), "inner_widths": (2, 2, 3), "embedding_channels": 2},
    "cross-attention": {
        "patch_sizes": (4, 8),
        "dims": (8, 8),
        "depths": (1, 1),
        "blocks": 1,
        "heads": 2,
        "mlp_ratio": 2,
    },
}


def _pair(batch, size, dtype=torch.float32):
    generator = torch.Generator().manual_seed(0)
    moving = torch.randn(batch, 3, *size, generator=generator, dtype=dtype)
    return moving, torch.randn(batch, 1, *size, generator=generator, dtype=dtype)


def _tiny(name):
    torch.manual_seed(0)
    return get_head(name, image_size=(16, 16), **TINY[name]).double()


@pytest.mark.parametrize("name", ["embedding", "cross-attention"])
@pytest.mark.parametrize("size", [(64, 64), (128, 128)])
def test_heads_score_each_pair(name, size):
    head = get_head(name, image_size=size)
    score = head(*_pair(2, size))
    assert score.shape == (2,)
    assert score.dtype == torch.float32
    assert bool(torch.isfinite(score).all())


def test_embedding_head_scores_minus_embedding_distance():
    head = EmbeddingHead()
    moving, fixed = _pair(3, (32, 32))
    assert bool((head(moving, fixed) <= 0).all())
    e_moving, e_fixed = head.embed(moving, fixed)
    assert e_moving.shape == e_fixed.shape == (3, 64, 4, 4)
    # With the fixed encoder equal to the moving one (on a 3-channel "X-ray"), identical images score 0.
    twin = EmbeddingHead(fixed_channels=3)
    twin.fixed_encoder.load_state_dict(twin.moving_encoder.state_dict())
    assert torch.equal(twin(moving, moving), torch.zeros(3))
    assert bool((twin(moving, moving.roll(1, 0)) < 0).all())


def test_siamese_embedding_head_scores_a_repeated_image_against_itself_as_zero():
    """Untrained, the moving encoder on the image repeated over its 3 channels equals the fixed encoder on the image."""
    image = torch.rand(2, 1, 32, 32, dtype=torch.float64)
    head = EmbeddingHead().double()
    e_moving, e_fixed = head.embed(image.expand(-1, 3, -1, -1), image)
    assert torch.allclose(e_moving, e_fixed, rtol=1e-5, atol=1e-7)  # the weights were split in float32
    assert torch.allclose(head(image.expand(-1, 3, -1, -1), image), torch.zeros(2, dtype=torch.float64), atol=1e-10)
    assert bool((head(image.expand(-1, 3, -1, -1), image.flip(0)) < 0).all())
    independent = EmbeddingHead(siamese=False).double()
    assert bool((independent(image.expand(-1, 3, -1, -1), image) < -1e-6).all())


def test_feature_volume_net_is_the_repeated_volume_at_init():
    net = FeatureVolumeNet()
    volume = torch.rand(1, 6, 5, 4)
    out = net(volume)
    assert out.shape == (3, 6, 5, 4)
    assert torch.equal(out, volume.expand(3, -1, -1, -1))
    batch = torch.rand(2, 1, 6, 5, 4)
    assert net(batch).shape == (2, 3, 6, 5, 4)
    torch.nn.init.normal_(net.convs[-1].weight, std=0.1)
    assert not torch.allclose(net(volume), volume.expand(3, -1, -1, -1))


def test_default_parameter_counts_match_the_papers():
    assert parameter_count(FeatureVolumeNet()) == 8_571
    embedding = get_head("embedding", image_size=(128, 128))
    cross = get_head("cross-attention", image_size=(128, 128))
    assert 0.85 * 0.78e6 <= parameter_count(embedding) <= 1.15 * 0.78e6
    assert 0.85 * 2.2e6 <= parameter_count(cross) <= 1.15 * 2.2e6
    assert (parameter_count(embedding), parameter_count(cross)) == (756_224, 2_224_421)
    frozen = EmbeddingHead().requires_grad_(False)
    assert parameter_count(frozen) == 0


def test_describe_parameters_lists_submodules_and_total():
    lines = describe_parameters(get_head("cross-attention")).splitlines()
    assert [line.split()[0] for line in lines] == ["reduce", "tokens", "blocks", "norms", "score", "total"]
    assert lines[-1].split()[1] == "2,224,421"
    nested = describe_parameters(FeatureVolumeNet(), depth=2).splitlines()
    assert [line.split()[0] for line in nested] == ["convs.0", "convs.2", "convs.4", "convs.6", "convs.8", "total"]


@pytest.mark.parametrize("name", ["embedding", "cross-attention"])
def test_score_has_second_derivatives_wrt_moving(name):
    head = _tiny(name)
    moving, fixed = _pair(1, (16, 16), torch.float64)
    moving.requires_grad_(True)
    assert torch.autograd.gradgradcheck(lambda m: head(m, fixed), (moving,), fast_mode=True)


@pytest.mark.parametrize("name", ["embedding", "cross-attention"])
def test_loss_on_score_gradient_trains_head_and_feature_net(name):
    head = _tiny(name)
    net = FeatureVolumeNet(widths=(2, 2)).double()
    volume = torch.rand(1, 4, 16, 16, dtype=torch.float64)

    def loss_on_gradient():
        moving = net(volume).sum(1).unsqueeze(0)  # a parallel projection along D: (1, 3, 16, 16)
        fixed = torch.rand(1, 1, 16, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
        (gradient,) = torch.autograd.grad(head(moving, fixed).sum(), moving, create_graph=True)
        gradient.square().sum().backward()

    first = next(head.parameters())
    loss_on_gradient()
    assert first.grad is not None
    assert bool(torch.isfinite(first.grad).all())
    assert bool(first.grad.abs().sum() > 0)
    last = net.convs[-1].weight
    assert bool(last.grad.abs().sum() > 0)  # the zero-initialised layer still learns
    # After a step away from zero, every layer of the feature net gets a finite, non-zero gradient.
    torch.nn.init.normal_(last, std=0.1)
    net.zero_grad()
    loss_on_gradient()
    for weight in (p for p in net.parameters() if p.ndim > 1):
        assert bool(torch.isfinite(weight.grad).all())
        assert bool(weight.grad.abs().sum() > 0)


@pytest.mark.parametrize("name", ["embedding", "cross-attention"])
def test_batched_scores_equal_one_by_one(name):
    head = get_head(name, image_size=(32, 32), **TINY[name]).eval()
    moving, fixed = _pair(3, (32, 32))
    one_by_one = torch.cat([head(moving[i : i + 1], fixed[i : i + 1]) for i in range(3)])
    torch.testing.assert_close(head(moving, fixed), one_by_one)
    net = FeatureVolumeNet().eval()
    torch.nn.init.normal_(net.convs[-1].weight, std=0.1)
    volumes = torch.rand(2, 1, 5, 6, 7)
    torch.testing.assert_close(net(volumes), torch.stack([net(v) for v in volumes]))


def test_heads_follow_dtype():
    for name in available_heads():
        head = _tiny(name)
        assert head(*_pair(2, (16, 16), torch.float64)).dtype == torch.float64


def test_errors_say_what_was_expected():
    with pytest.raises(ValueError, match=r"unknown ProST head 'vit'; available: cross-attention, embedding"):
        get_head("vit")
    with pytest.raises(ValueError, match="divisible by 16"):
        CrossAttentionHead(image_size=(120, 128))
    with pytest.raises(ValueError, match="divisible by 8"):
        EmbeddingHead(image_size=(100, 100))
    with pytest.raises(ValueError, match="two positive integers"):
        get_head("embedding", image_size=(0, 8))
    with pytest.raises(TypeError, match="unknown option"):
        get_head("embedding", depth=3)
    embedding, cross = EmbeddingHead(), CrossAttentionHead(image_size=(32, 32), **TINY["cross-attention"])
    for head in (embedding, cross):
        moving, fixed = _pair(2, (32, 32))
        with pytest.raises(ValueError, match=r"moving: expected shape \(B, 3, H, W\), got \(2, 1, 32, 32\)"):
            head(fixed, fixed)
        with pytest.raises(ValueError, match=r"fixed: expected shape \(B, 1, H, W\), got \(1, 32, 32\)"):
            head(moving, fixed[0])
        with pytest.raises(ValueError, match="same batch size, got 2 and 1"):
            head(moving, fixed[:1])
        with pytest.raises(ValueError, match="same image size"):
            head(moving, fixed[..., :16])
        with pytest.raises(ValueError, match="same dtype and device"):
            head(moving, fixed.double())
    with pytest.raises(ValueError, match="divisible by 8"):
        embedding(*_pair(1, (36, 36)))
    with pytest.raises(ValueError, match=r"expected image size \(32, 32\), got \(64, 64\)"):
        cross(*_pair(1, (64, 64)))
    with pytest.raises(ValueError, match=r"volume: expected shape \(1, D, H, W\) or \(N, 1, D, H, W\)"):
        FeatureVolumeNet()(torch.zeros(2, 4, 4, 4))
    with pytest.raises(ValueError, match="multiple of heads"):
        CrossAttentionHead(dims=(30, 64))


def test_a_fixed_image_broadcast_over_the_batch_is_encoded_once_with_the_same_scores():
    head = EmbeddingHead().double()
    moving = torch.rand(5, 3, 32, 32, dtype=torch.float64)
    one = torch.rand(1, 1, 32, 32, dtype=torch.float64)
    calls = []
    handle = head.fixed_encoder.register_forward_hook(lambda module, args, out: calls.append(args[0].shape[0]))
    try:
        broadcast = head(moving, one.expand(5, -1, -1, -1))
        copied = head(moving, one.expand(5, -1, -1, -1).contiguous())
    finally:
        handle.remove()
    assert calls == [1, 5]  # the broadcast view is encoded once, a real batch five times
    torch.testing.assert_close(broadcast, copied, rtol=1e-12, atol=1e-12)
