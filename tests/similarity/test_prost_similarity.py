"""ProSTSimilarity and ProSTNetwork: a pose similarity, cached in eval mode, saved and loaded safely."""

from __future__ import annotations

import pytest
import torch
from _prost_fixtures import TINY_HEAD, tiny_setup

from xrender.io import CheckpointError, save_state
from xrender.render import RenderOptions, render
from xrender.similarity.pose import PoseSimilarity
from xrender.similarity.prost import NETWORK_FORMAT, ProSTNetwork, ProSTSimilarity, standardize


@pytest.fixture(scope="module")
def setup():
    volume, carm, similarity, true, initial = tiny_setup()
    with torch.no_grad():
        target = render(volume, carm, true, options=RenderOptions(n_samples=12))
    return volume, carm, similarity, true, initial, target


def test_is_a_pose_similarity_with_batched_scores(setup):
    _, _, similarity, _, initial, target = setup
    assert isinstance(similarity, PoseSimilarity)
    scores = similarity(initial, target)
    assert scores.shape == (2,)
    one = torch.stack([similarity(initial[i : i + 1], target[i : i + 1])[0] for i in range(2)])
    assert torch.allclose(scores, one)


def test_projection_at_init_is_the_drr_when_the_residual_is_zero():
    volume, carm, _, true, _ = tiny_setup()
    network = ProSTNetwork((8, 8), head_options=TINY_HEAD, feature_widths=(2, 2)).double()  # zero-initialised residual
    similarity = ProSTSimilarity(volume, carm, network, options=RenderOptions(n_samples=12))
    projected = similarity.project(true)
    full_box = volume.with_data(volume.data.clone().requires_grad_())  # the features' box: the whole grid
    drr = render(full_box, carm, true, options=RenderOptions(n_samples=12)).detach() * network.config["input_scale"]
    assert torch.allclose(projected, drr.expand(-1, 3, -1, -1), rtol=1e-10)


def test_eval_mode_caches_the_feature_volume_and_scores_the_same(setup):
    _, _, similarity, _, initial, target = setup
    calls = []
    handle = similarity.network.features.register_forward_hook(lambda *_: calls.append(1))
    try:
        training = similarity(initial, target)
        similarity.eval()
        first, second = similarity(initial, target), similarity(initial, target)
        assert len(calls) == 2  # one in train mode, one for the cache
        assert torch.allclose(first, training)
        assert torch.equal(first, second)
        with torch.no_grad():
            similarity.network.features.convs[0].bias += 0.1  # a weight changed: recompute
        similarity(initial, target)
        assert len(calls) == 3
    finally:
        with torch.no_grad():
            similarity.network.features.convs[0].bias -= 0.1
        handle.remove()
        similarity.train()


def test_pose_gradient_flows_in_eval_mode(setup):
    _, _, similarity, _, initial, target = setup
    similarity.eval()
    try:
        pose = initial.clone().requires_grad_(True)
        similarity(pose, target).sum().backward()
        assert torch.isfinite(pose.grad).all()
        assert pose.grad.abs().sum() > 0
    finally:
        similarity.train()


def test_standardize_constant_image_is_zero_without_nan():
    x = torch.full((1, 1, 4, 4), 3.0, requires_grad=True)
    y = standardize(x)
    y.sum().backward()
    assert torch.equal(y, torch.zeros_like(y))
    assert torch.isfinite(x.grad).all()


def test_save_and_load_round_trip(setup, tmp_path):
    _, carm, similarity, _, initial, target = setup
    path = similarity.network.save(tmp_path / "net.pt", summary={"iterations": 3})
    loaded = ProSTNetwork.load(path).double()
    again = ProSTSimilarity(_volume(similarity), carm, loaded, options=RenderOptions(n_samples=12))
    assert torch.allclose(again(initial, target), similarity(initial, target))


def _volume(similarity):
    from xrender.volume import Volume

    return Volume(similarity.data, similarity.affine, similarity.isocenter)


def test_load_rejects_foreign_and_mismatched_files(setup, tmp_path):
    _, _, similarity, _, _, _ = setup
    foreign = save_state(tmp_path / "f.pt", {}, file_format="something-else", version=1)
    with pytest.raises(CheckpointError, match=r"f\.pt"):
        ProSTNetwork.load(foreign)
    state = similarity.network.to_state()
    state["weights"] = {k: v[..., :1] for k, v in state["weights"].items()}
    broken = save_state(tmp_path / "b.pt", state, file_format=NETWORK_FORMAT, version=1)
    with pytest.raises(CheckpointError, match="not a usable ProST network"):
        ProSTNetwork.load(broken)


def test_errors(setup):
    volume, carm, similarity, _, initial, target = setup
    with pytest.raises(ValueError, match="one channel"):
        ProSTSimilarity(volume.with_data(volume.data.expand(2, -1, -1, -1)), carm, similarity.network)
    with pytest.raises(ValueError, match="8×8 detector"):
        ProSTSimilarity(volume, carm.downsample(2), similarity.network)
    with pytest.raises(TypeError, match="ProSTNetwork"):
        ProSTSimilarity(volume, carm, torch.nn.Linear(1, 1))
    with pytest.raises(ValueError, match="fixed"):
        similarity(initial, target[:, :, :4])
    with pytest.raises(ValueError, match="pose"):
        similarity(initial[:1], target)


def test_unknown_backend_and_malformed_inputs_of_the_pose_gradient_are_refused(setup):
    volume, carm, similarity, _, initial, target = setup
    with pytest.raises(ValueError, match="grid_sample"):
        ProSTSimilarity(volume, carm, similarity.network, options=RenderOptions(backend="bogus"))
    with pytest.raises(ValueError, match="beer_lambert=False"):
        ProSTSimilarity(volume, carm, similarity.network, options=RenderOptions(beer_lambert=True))
    with pytest.raises(TypeError, match="options: expected a RenderOptions"):
        ProSTSimilarity(volume, carm, similarity.network, options={"n_samples": 12})
    with pytest.raises(ValueError, match="fixed"):
        similarity.value_and_pose_gradient(initial, target[:, :, :4])
    with pytest.raises(ValueError, match="pose"):
        similarity.value_and_pose_gradient(initial[:1], target)
