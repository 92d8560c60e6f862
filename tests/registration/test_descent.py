"""Gradient descent on a pose similarity (stage 1 of the ProST registration)."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from torch import nn

from xrender.geometry import get_pose_distribution, perturb, standard_pose
from xrender.metrics import target_registration_error
from xrender.registration import DescentOptions, pose_descent
from xrender.similarity.gradient_loss import target_gradient

ISO = torch.tensor([0.0, 0.0, 0.0], dtype=torch.float64)
POINTS = torch.tensor([[50.0, 0, 0], [0, 50.0, 0], [0, 0, 50.0], [-50.0, -50.0, 0]], dtype=torch.float64)


class GeodesicScore(nn.Module):
    """An ideal similarity: minus the squared geodesic distance to a known true pose (ignores the image)."""

    def __init__(self, truth):
        super().__init__()
        self.truth = truth
        self.isocenter = ISO

    def forward(self, pose, fixed):  # a batch of k poses per true pose, in order (the line search's candidates)
        truth = self.truth.repeat_interleave(pose.shape[0] // self.truth.shape[0], dim=0)
        return -(target_gradient(pose, truth, ISO) ** 2).sum(-1)


def _poses(n=4):
    truth = standard_pose("ap", 620.0, ISO).expand(n, 4, 4)
    start = perturb(truth, get_pose_distribution("prost-initial").sample(n, seed=0, dtype=torch.float64), ISO)
    return truth, start


def test_descent_with_an_ideal_similarity_converges():
    truth, start = _poses()
    result = pose_descent(GeodesicScore(truth), torch.zeros(4, 1, 2, 2), start, DescentOptions(steps=150))
    before = target_registration_error(start, truth, POINTS)
    after = target_registration_error(result.pose, truth, POINTS)
    assert (before > 20).all()
    assert (after < 2).all(), after
    assert result.trajectory.shape == (151, 4, 4, 4)
    assert result.scores.shape == (151, 4)
    assert torch.equal(result.trajectory[0], start)
    assert (result.scores[-1] > result.scores[0]).all()


def test_line_search_converges_and_never_lowers_the_score():
    truth, start = _poses()
    result = pose_descent(
        GeodesicScore(truth), torch.zeros(4, 1, 2, 2), start, DescentOptions(steps=60, line_search=True)
    )
    after = target_registration_error(result.pose, truth, POINTS)
    assert (after < 1).all(), after
    assert (result.scores.diff(dim=0) >= -1e-12).all()  # every accepted move raises the score (to rounding)
    plain = pose_descent(GeodesicScore(truth), torch.zeros(4, 1, 2, 2), start, DescentOptions(steps=60))
    assert (after < target_registration_error(plain.pose, truth, POINTS)).all()  # longer steps where they pay
    assert plain.evaluations == 60 + 1  # a score per gradient, and the last pose's
    steps_run = result.trajectory.shape[0] - 1
    assert steps_run < 60  # every pose converged (both step lengths below 1/64) before the budget
    assert result.evaluations == steps_run * (1 + 9) + 1  # and the nine candidates of every step


def test_line_search_does_not_move_when_no_step_helps():
    truth, start = _poses(2)

    class Peaked(GeodesicScore):  # the start is a strict local maximum: every move lowers the score
        def forward(self, pose, fixed):
            peak = start.repeat_interleave(pose.shape[0] // start.shape[0], dim=0)
            return -(target_gradient(pose, peak, ISO) ** 2).sum(-1)

    result = pose_descent(Peaked(truth), torch.zeros(2, 1, 2, 2), start, DescentOptions(steps=3, line_search=True))
    assert torch.allclose(result.pose, start, atol=1e-9)


def test_batched_equals_one_by_one():
    truth, start = _poses(2)
    both = pose_descent(GeodesicScore(truth), torch.zeros(2, 1, 2, 2), start, DescentOptions(steps=10)).pose
    for i in range(2):
        one = pose_descent(
            GeodesicScore(truth[i : i + 1]), torch.zeros(1, 1, 2, 2), start[i : i + 1], DescentOptions(steps=10)
        ).pose
        assert torch.allclose(both[i], one[0])


def test_plateau_stops_a_flat_score():
    truth, start = _poses(2)

    class Flat(GeodesicScore):
        def forward(self, pose, fixed):
            return pose[..., 0, 3] * 0 + 1.0

    result = pose_descent(
        Flat(truth), torch.zeros(2, 1, 2, 2), start, DescentOptions(steps=30, plateau_window=5, plateau_tol=1e-6)
    )
    assert (result.steps_taken == 4).all()  # scores 1..4 are not yet a full window; the 5th stops it
    assert result.trajectory.shape[0] == 5  # every pose stopped: the loop ends instead of idling
    assert result.scores.shape[0] == 5
    assert torch.allclose(result.pose, result.trajectory[-1])


def test_nan_gradient_does_not_move_the_pose():
    truth, start = _poses(1)

    class Broken(GeodesicScore):
        def forward(self, pose, fixed):
            return pose[..., 0, 3] * torch.nan

    result = pose_descent(Broken(truth), torch.zeros(1, 1, 2, 2), start, DescentOptions(steps=3))
    assert torch.allclose(result.pose, start)


@pytest.mark.parametrize(
    ("option", "value"),
    [("steps", -1), ("decay", 1.5), ("momentum", 1.0), ("rotation_step_deg", 0.0), ("plateau_window", 1)],
)
def test_bad_options(option, value):
    with pytest.raises(ValueError, match=option.split("_")[0]):
        DescentOptions(**{option: value})


def test_the_multistart_descent_travels_from_its_farthest_start_home():
    """`prost:multistart`'s steps (recipes) carry a steady direction past 62.8° and 150 mm in 60 steps."""
    from xrender.geometry import euler_to_matrix, make_pose
    from xrender.metrics import rotation_error, translation_error
    from xrender.recipes.registration.methods import MethodContext, build_method

    truth = standard_pose("ap", 620.0, ISO)[None]
    turn = euler_to_matrix(
        torch.tensor([[62.8, 0.0, 0.0]], dtype=torch.float64), "xyz", degrees=True
    )  # the cube's reach
    offset = make_pose(turn, torch.tensor([[30.0, -30.0, 150.0]], dtype=torch.float64))  # ... and 150 mm in depth
    start = perturb(truth, offset, ISO)
    (stage,) = build_method("prost:multistart", MethodContext(prost=object()))  # type: ignore[arg-type]
    steps = stage.explore.descent
    half = replace(
        steps, rotation_step_deg=steps.rotation_step_deg / 2, translation_step_mm=steps.translation_step_mm / 2
    )
    ends = {
        name: pose_descent(GeodesicScore(truth), torch.zeros(1, 1, 2, 2), start, options).pose
        for name, options in (("full", steps), ("half", half))
    }
    assert float(rotation_error(start, truth)) == pytest.approx(62.8)
    assert float(rotation_error(ends["full"], truth)) < 12  # within a refining CMA-ES's reach
    assert float(translation_error(ends["full"], truth, ISO[None])) < 10
    assert float(rotation_error(ends["half"], truth)) > 25  # half the steps stop short
    assert float(translation_error(ends["half"], truth, ISO[None])) > 40
