"""`MultiStartStage`: the learned descent from turned starts, a shortlist of its ends, and refinement."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch

from xrender.geometry import axis_angle_to_matrix, cube_rotations, get_preset, make_pose, perturb, so3_angle
from xrender.metrics import rotation_error
from xrender.recipes.registration import EvaluationConfig, make_trials
from xrender.registration import (
    DescentOptions,
    LearnedDescentStage,
    MultiStartStage,
    RegistrationProblem,
    Stage,
    StageResult,
)
from xrender.similarity.prost import ProSTNetwork
from xrender.subject import phantom_subject

F64 = torch.float64
SHORT = DescentOptions(steps=2, rotation_step_deg=0.5, translation_step_mm=1.0)


@pytest.fixture(scope="module")
def case():
    """A 24³ phantom, a 16 × 16 C-arm, one trial's X-ray, initial and true poses, and an untrained network."""
    subject = phantom_subject(24, 200.0)
    carm = get_preset("prost").downsample(8)
    trials = make_trials(subject, carm, EvaluationConfig(trials=1, seed=3))
    problem = RegistrationProblem(subject.full, carm, trials.xrays[:1], subject.moving)
    torch.manual_seed(0)
    network = ProSTNetwork((16, 16), head_options={"widths": (2, 4, 4), "inner_widths": (2, 2, 2)}).eval()
    return problem, trials.initial[0].to(F64), trials.truth[0].to(F64), LearnedDescentStage(network, SHORT)


@dataclass(frozen=True)
class SnapToTruth(Stage):
    """A stand-in refinement: jumps to the true pose from within ``reach_deg`` of it, else stays."""

    truth: torch.Tensor
    reach_deg: float = 30.0
    name: str = "snap"

    def run(self, problem, pose, *, progress=False) -> StageResult:
        near = float(rotation_error(pose, self.truth)) < self.reach_deg
        end = self.truth if near else pose
        return StageResult(self.name, end, torch.stack([pose, end]), [0.0], 1, 0.0, "snap")


def test_a_batched_descent_equals_the_descents_one_by_one(case):
    problem, initial, _, explore = case
    turn = make_pose(cube_rotations()[5], torch.zeros(3, dtype=F64))
    poses = torch.stack([initial, perturb(initial, turn, problem.isocenter.to(F64))])
    together = explore.descend(problem, poses).pose
    for k in range(2):
        torch.testing.assert_close(together[k], explore.run(problem, poses[k]).pose)


def test_the_starts_are_the_pose_turned_by_each_rotation_about_the_isocentre(case):
    problem, initial, _, explore = case
    starts = MultiStartStage(explore).starts(problem, initial)
    assert starts.shape == (24, 4, 4)
    torch.testing.assert_close(starts[0], initial)
    angles = so3_angle(cube_rotations()).rad2deg()  # 0°, 90°, 120° or 180°
    torch.testing.assert_close(rotation_error(starts, initial.expand_as(starts)), angles)
    iso = problem.isocenter.to(F64)  # the isocentre stays where each camera sees it
    seen = [torch.linalg.solve(start, torch.cat([iso, iso.new_ones(1)]))[:3] for start in starts]
    for point in seen:
        assert float((point - seen[0]).norm()) < 1e-6


def test_one_start_without_refinement_is_the_learned_descent(case):
    problem, initial, _, explore = case
    stage = MultiStartStage(explore, rotations=torch.eye(3, dtype=F64)[None])
    result, single = stage.run(problem, initial), explore.run(problem, initial)
    torch.testing.assert_close(result.pose, single.pose)
    torch.testing.assert_close(result.trajectory, single.trajectory)
    assert result.stop_reason == "best of 1 ends"


def test_the_refined_end_that_fits_the_xray_best_wins(case):
    problem, _, truth, explore = case
    flipped = perturb(truth, make_pose(cube_rotations()[7], torch.zeros(3, dtype=F64)), problem.isocenter.to(F64))
    assert float(rotation_error(flipped, truth)) > 90  # far beyond any single start's reach
    stage = MultiStartStage(explore, refine=(SnapToTruth(truth),), keep=24, separation_deg=0.0)
    result = stage.run(problem, flipped)
    torch.testing.assert_close(result.pose, truth)
    assert result.stop_reason == "best of 24 refined ends"
    torch.testing.assert_close(result.trajectory[-1], truth)
    assert float(rotation_error(result.trajectory[0], truth)) < 1e-6  # the start turned back onto the truth
    assert result.evaluations >= 24 * (SHORT.steps + 1)


def _turned(pose: torch.Tensor, degrees: float) -> torch.Tensor:
    """``pose`` turned by ``degrees`` about the camera's z axis through the world origin."""
    rotation = axis_angle_to_matrix(torch.tensor([0.0, 0.0, degrees], dtype=F64).deg2rad())
    return perturb(pose, make_pose(rotation, torch.zeros(3, dtype=F64)), torch.zeros(3, dtype=F64))


def test_the_shortlist_takes_the_best_separated_ends_and_the_unturned_one(case):
    _, initial, _, explore = case
    a = _turned(initial, 90.0)
    ends = torch.stack([initial, a, _turned(a, 5.0), _turned(initial, -90.0)])
    scores = torch.tensor([0.1, 0.9, 0.8, 0.5], dtype=F64)
    flat = torch.zeros(4, dtype=F64)
    by_score = {"keep_learned": 0}
    assert MultiStartStage(explore, keep=2, **by_score)._shortlist(ends, scores, flat) == [1, 3, 0]  # 2 is near 1
    assert MultiStartStage(explore, keep=2, separation_deg=0.0, **by_score)._shortlist(ends, scores, flat) == [1, 2, 0]
    first = torch.tensor([0.9, 0.1, 0.1, 0.1], dtype=F64)
    assert MultiStartStage(explore, keep=1, **by_score)._shortlist(ends, first, flat) == [0]


def test_the_shortlist_adds_the_best_ends_by_learned_score(case):
    _, initial, _, explore = case
    a = _turned(initial, 90.0)
    ends = torch.stack([initial, a, _turned(a, 5.0), _turned(initial, -90.0), _turned(initial, 180.0)])
    scores = torch.tensor([0.1, 0.9, 0.8, 0.5, 0.2], dtype=F64)
    learned = torch.tensor([0.0, 0.3, 0.7, 0.1, 0.6], dtype=F64)
    stage = MultiStartStage(explore, keep=1, keep_learned=1)
    assert stage._shortlist(ends, scores, learned) == [1, 4, 0]  # 2 leads the learned ranking but is near 1
    assert MultiStartStage(explore, keep=0, keep_learned=2)._shortlist(ends, scores, learned) == [2, 4, 0]
    # an end the first ranking kept fills the second's quota when the second reaches it
    assert MultiStartStage(explore, keep=1, keep_learned=1)._shortlist(ends, scores, scores) == [1, 0]
    assert MultiStartStage(explore, keep=0, keep_learned=0)._shortlist(ends, scores, learned) == [0]


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        ({"rotations": torch.eye(3)}, ValueError, "rotations"),
        ({"rotations": torch.diag(torch.tensor([1.0, 1.0, -1.0]))[None]}, ValueError, "det \\+1"),
        ({"rotations": torch.zeros(0, 3, 3)}, ValueError, "one or more"),
        ({"keep": -1}, ValueError, "keep"),
        ({"keep_learned": 1.5}, ValueError, "keep_learned"),
        ({"keep": True}, ValueError, "keep"),
        ({"separation_deg": -1.0}, ValueError, "separation_deg"),
        ({"size": 0}, ValueError, "size"),
        ({"similarity": "mutual-info-xyz"}, ValueError, "mutual-info-xyz"),
        ({"refine": ("cmaes",)}, TypeError, "refine"),
    ],
)
def test_bad_options_are_refused(case, options, error, match):
    explore = case[3]
    with pytest.raises(error, match=match):
        MultiStartStage(explore, **options)


def test_explore_must_be_a_learned_descent():
    with pytest.raises(TypeError, match="LearnedDescentStage"):
        MultiStartStage(object())  # type: ignore[arg-type]
