"""The double-backward, gradient-driven loss: gradients, targets, loss forms, and the second derivative."""

from __future__ import annotations

import math

import pytest
import torch
from _prost_fixtures import tiny_setup

from xrender.geometry import perturb, se3_exp
from xrender.render import RenderOptions, render
from xrender.similarity.gradient_loss import (
    GRADIENT_LOSSES,
    get_gradient_loss,
    normalize_twist,
    pose_gradient,
    pose_value_and_gradient,
    similarity_value_and_gradient,
    target_gradient,
)

ISO = torch.tensor([10.0, -20.0, 30.0], dtype=torch.float64)


def _pose(seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return se3_exp(torch.randn(6, generator=g, dtype=torch.float64) * torch.tensor([0.3] * 3 + [50.0] * 3))


def test_target_gradient_half_step_lands_on_the_true_pose():
    pose, true = _pose(0), _pose(1)
    g = target_gradient(pose, true, ISO)
    assert torch.allclose(perturb(pose, se3_exp(-g / 2), ISO), true, atol=1e-9)


def test_target_gradient_is_zero_at_the_true_pose():
    pose = _pose(2)
    assert torch.allclose(target_gradient(pose, pose, ISO), torch.zeros(6, dtype=torch.float64), atol=1e-12)


def test_pose_gradient_matches_central_differences():
    true = _pose(3)
    weights = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)

    def score(T):  # smooth, non-trivial function of the whole pose
        return -(((T[..., :3, 3] - true[:3, 3]) * weights) ** 2).sum(-1) / 100 + T[..., 0, 1] * 5

    pose = torch.stack([_pose(4), _pose(5)])
    value, g = pose_value_and_gradient(score, pose, ISO, create_graph=False)
    assert torch.allclose(value, score(pose))
    h = 1e-6
    for i in range(6):
        e = torch.zeros(6, dtype=torch.float64)
        e[i] = h
        plus, minus = score(perturb(pose, se3_exp(e), ISO)), score(perturb(pose, se3_exp(-e), ISO))
        assert torch.allclose(g[:, i], -(plus - minus) / (2 * h), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("part", ["rotation", "translation"])
def test_pose_gradient_of_the_geodesic_distance_is_the_geodesic_gradient(part):
    """For the score −‖log δ*‖², g_net is g_geo exactly when the offset is a pure rotation or translation."""
    pose = _pose(6)
    offset = torch.zeros(6, dtype=torch.float64)
    offset[:3] = torch.tensor([0.2, -0.1, 0.3]) if part == "rotation" else 0
    offset[3:] = torch.tensor([5.0, -3.0, 8.0]) if part == "translation" else 0
    true = perturb(pose, se3_exp(offset), ISO)

    def score(T):
        return -(target_gradient(T, true, ISO) ** 2).sum(-1) / 4

    g_net = pose_gradient(score, pose[None], ISO)
    g_geo = target_gradient(pose[None], true, ISO)
    assert torch.allclose(g_net, g_geo, atol=1e-7)


def test_pose_gradient_is_zero_for_a_pose_independent_score():
    pose = _pose(7)[None]
    g = pose_gradient(lambda T: torch.ones(T.shape[0], dtype=T.dtype), pose, ISO)
    assert torch.equal(g, torch.zeros(1, 6, dtype=torch.float64))


def test_pose_gradient_rejects_a_score_of_the_wrong_shape():
    with pytest.raises(ValueError, match="score"):
        pose_gradient(lambda T: T.sum(), _pose(8)[None], ISO)


def test_normalize_twist_gives_unit_parts_and_keeps_zero_parts_zero():
    g = torch.tensor([[3.0, 4.0, 0.0, 0.0, 0.0, 0.0]], dtype=torch.float64, requires_grad=True)
    n = normalize_twist(g)
    assert torch.allclose(n, torch.tensor([[0.6, 0.8, 0, 0, 0, 0]], dtype=torch.float64))
    (grad,) = torch.autograd.grad(n.sum(), g, create_graph=True)
    assert torch.isfinite(grad).all()
    assert torch.autograd.gradgradcheck(normalize_twist, (torch.randn(2, 6, dtype=torch.float64, requires_grad=True),))


@pytest.mark.parametrize("name", GRADIENT_LOSSES.names())
def test_losses_are_zero_for_parallel_gradients_and_scale_invariant_per_part(name):
    loss = get_gradient_loss(name)
    g = torch.randn(4, 6, dtype=torch.float64)
    scaled = g * torch.tensor([3.0] * 3 + [0.01] * 3, dtype=torch.float64)
    assert torch.allclose(loss(scaled, g), torch.zeros(4, dtype=torch.float64), atol=1e-7)
    assert (loss(-g, g) > 1).all()


def test_direction_loss_golden_values():
    loss = get_gradient_loss("direction")
    g = torch.tensor([1.0, 0, 0, 0, 1.0, 0], dtype=torch.float64)
    assert float(loss(-g, g)) == pytest.approx(8.0)  # both parts opposite: 4 + 4
    assert float(loss(torch.tensor([0, 1.0, 0, 0, 1.0, 0], dtype=torch.float64), g)) == pytest.approx(2.0)


def test_geodesic_loss_golden_value_for_opposite_rotations():
    loss = get_gradient_loss("geodesic")
    g = torch.tensor([0, 0, 1.0, 0, 0, 0], dtype=torch.float64)
    # exp of ±1 rad about z: relative angle 2 rad; both translation parts are zero
    assert float(loss(-g, g)) == pytest.approx(2.0, abs=1e-9)


def test_unknown_loss_lists_the_available_ones():
    with pytest.raises(ValueError, match="direction, geodesic"):
        get_gradient_loss("cosine")


def test_loss_rejects_malformed_gradients():
    with pytest.raises(ValueError, match="g_net"):
        get_gradient_loss("direction")(torch.zeros(2, 5), torch.zeros(2, 6))


@pytest.mark.parametrize("name", GRADIENT_LOSSES.names())
def test_double_backward_reaches_the_weights_as_finite_differences_say(name):
    """d loss / d weight through the second derivative equals the central difference of the loss."""
    volume, carm, similarity, true, initial = tiny_setup()
    with torch.no_grad():
        target = render(volume, carm, true, options=RenderOptions(n_samples=12))
    loss_fn = get_gradient_loss(name)

    def loss_value() -> torch.Tensor:
        g_net = pose_gradient(lambda T: similarity(T, target), initial, similarity.isocenter)
        return loss_fn(g_net, target_gradient(initial, true, similarity.isocenter)).mean()

    weights = {
        "head": similarity.network.head.moving_encoder[0][0].weight,
        "features": similarity.network.features.convs[0].weight,
    }
    loss_value().backward()
    h = 1e-6
    for part, w in weights.items():
        analytic = float(w.grad.flatten()[1])
        assert analytic != 0, part
        with torch.no_grad():
            w.view(-1)[1] += h
            plus = loss_value()
            w.view(-1)[1] -= 2 * h
            minus = loss_value()
            w.view(-1)[1] += h
        numeric = float(plus - minus) / (2 * h)
        assert math.isclose(analytic, numeric, rel_tol=1e-4, abs_tol=1e-10), (part, analytic, numeric)


@pytest.mark.parametrize("name", GRADIENT_LOSSES.names())
def test_jacobian_path_gives_the_reference_g_net_and_weight_gradients(name):
    """The pose-Jacobian render (fused, first order) against the double backward through grid_sample, float64."""
    results = {}
    for backend in ("grid_sample", "fused-cpu"):
        volume, carm, similarity, true, initial = tiny_setup(backend=backend)
        with torch.no_grad():
            target = render(volume, carm, true, options=RenderOptions(n_samples=12))
        values, g_net = similarity_value_and_gradient(similarity, initial, target, create_graph=True)
        loss = get_gradient_loss(name)(g_net, target_gradient(initial, true, similarity.isocenter)).mean()
        loss.backward()
        grads = {k: p.grad.clone() for k, p in similarity.network.named_parameters()}
        results[backend] = (values.detach(), g_net.detach(), loss.detach(), grads)
    (v_ref, g_ref, loss_ref, w_ref), (v, g, loss, w) = results["grid_sample"], results["fused-cpu"]
    assert torch.allclose(v, v_ref, rtol=1e-10)
    assert g_ref.abs().max() > 0
    assert torch.allclose(g, g_ref, rtol=1e-8, atol=1e-12)
    assert torch.allclose(loss, loss_ref, rtol=1e-9)
    assert set(w) == set(w_ref)
    for key in w_ref:
        assert torch.allclose(w[key], w_ref[key], rtol=1e-7, atol=1e-12), key
    assert w_ref["features.convs.0.weight"].abs().max() > 0  # the 3-D branch's first layer is reached


def test_similarity_gradient_without_a_fast_path_is_autograd():
    """A plain pose similarity is differentiated by autograd: the same as `pose_value_and_gradient`."""

    class Score(torch.nn.Module):
        isocenter = ISO

        def forward(self, pose: torch.Tensor, fixed: torch.Tensor) -> torch.Tensor:
            return -(pose[:, :3, 3] - fixed.flatten(1)[:, :3]).square().sum(-1)

    pose, fixed = _pose(4)[None], torch.ones(1, 1, 2, 2, dtype=torch.float64)
    value, g = similarity_value_and_gradient(Score(), pose, fixed, create_graph=False)
    expected = pose_value_and_gradient(lambda T: Score()(T, fixed), pose, ISO, create_graph=False)
    assert torch.equal(value, expected[0])
    assert torch.equal(g, expected[1])
    assert g.abs().max() > 0
