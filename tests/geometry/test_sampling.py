"""Seeded pose distributions of the ProST paper."""

import pytest
import torch

from xrender.geometry.rotations import euler_to_matrix
from xrender.geometry.sampling import PoseDistribution, available_pose_distributions, get_pose_distribution


def test_named_distributions_match_the_paper():
    assert available_pose_distributions() == ["prost-initial", "prost-train", "wide"]
    train = get_pose_distribution("prost-train")
    assert train.rotation_std_deg == (9.5, 9.5, 9.5)
    assert train.translation_std_mm == (22.0, 22.0, 22.0)
    initial = get_pose_distribution("prost-initial")
    assert initial.rotation_std_deg == (25.0, 25.0, 25.0)
    assert initial.translation_std_mm == (25.0, 25.0, 60.0)


def test_wide_is_twice_the_journal_distribution():
    wide, journal = get_pose_distribution("wide"), get_pose_distribution("prost-initial")
    assert wide.rotation_std_deg == (50.0, 50.0, 50.0)
    assert wide.translation_std_mm == (50.0, 50.0, 120.0)
    torch.testing.assert_close(wide.sample_params(3, seed=2), 2 * journal.sample_params(3, seed=2))


def test_seeded_draws_are_reproducible():
    dist = get_pose_distribution("prost-initial")
    a = dist.sample(5, seed=7, dtype=torch.float64)
    b = dist.sample(5, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    torch.testing.assert_close(a, b)
    assert not torch.allclose(a, dist.sample(5, seed=8, dtype=torch.float64))


def test_sample_statistics_follow_the_stds():
    params = get_pose_distribution("prost-initial").sample_params(20000, seed=0, dtype=torch.float64)
    std = params.std(dim=0)
    expected = torch.tensor([25.0, 25.0, 25.0, 25.0, 25.0, 60.0], dtype=torch.float64)
    torch.testing.assert_close(std, expected, rtol=0.03, atol=0.0)
    assert params.mean(dim=0).abs().max() < 1.5


def test_draws_are_rigid_motions_with_euler_rotation():
    dist = PoseDistribution((10.0, 20.0, 30.0), (1.0, 2.0, 3.0), convention="ZYX")
    params = dist.sample_params(4, seed=1, dtype=torch.float64)
    deltas = dist.to_matrix(params)
    torch.testing.assert_close(deltas[:, :3, :3], euler_to_matrix(params[:, :3], "ZYX", degrees=True))
    torch.testing.assert_close(deltas[:, :3, 3], params[:, 3:])
    torch.testing.assert_close(deltas[:, 3], torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=torch.float64).expand(4, 4))


def test_means_shift_draws():
    dist = PoseDistribution((0.0, 0.0, 0.0), (0.0, 0.0, 0.0), translation_mean_mm=(0.0, 0.0, 100.0))
    assert dist.sample_params(2, seed=0)[:, 5].tolist() == [100.0, 100.0]


def test_bad_distribution_inputs():
    with pytest.raises(ValueError, match="unknown pose distribution 'x'; available: prost-initial, prost-train, wide"):
        get_pose_distribution("x")
    with pytest.raises(ValueError, match="standard deviations >= 0"):
        PoseDistribution((-1.0, 0.0, 0.0), (0.0, 0.0, 0.0))
    with pytest.raises(ValueError, match="rotation_std_deg: expected three finite numbers"):
        PoseDistribution((1.0, 2.0), (0.0, 0.0, 0.0))
    with pytest.raises(ValueError, match="convention"):
        PoseDistribution((1.0, 1.0, 1.0), (0.0, 0.0, 0.0), convention="abc")
    dist = get_pose_distribution("prost-train")
    with pytest.raises(ValueError, match="non-negative int n"):
        dist.sample(-1)
    with pytest.raises(ValueError, match="generator or seed, not both"):
        dist.sample(1, seed=1, generator=torch.Generator())
