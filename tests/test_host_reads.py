"""Host reads on the hot path: a render, a similarity or an objective evaluation reads at most what its docs promise.

Values are checked at entry points only (`xrender._checks`); `_host_reads.HostReads` counts what is read.
"""

from __future__ import annotations

import pytest
import torch
from _host_reads import HostReads

from xrender._checks import check_finite
from xrender.geometry import get_preset, pose_from_motion, standard_pose
from xrender.registration.descent import pose_descent
from xrender.registration.objective import PoseObjective
from xrender.registration.pipeline import register
from xrender.render import BACKENDS, DRR, RenderOptions, render
from xrender.similarity import get_similarity
from xrender.similarity.pose import RenderedSimilarity
from xrender.volume import Volume

BACKENDS_ON_CPU = [name for name in ("grid_sample", "fused-cpu") if name in BACKENDS]


def _scene():
    volume = Volume(
        torch.zeros(1, 12, 12, 12).index_fill_(1, torch.arange(3, 9), 0.02), torch.diag(torch.tensor([4.0] * 3 + [1]))
    )
    carm = get_preset("prost").downsample(16)
    reference = standard_pose("ap", carm.sid, volume.isocenter)
    return volume, carm, reference


def test_the_counter_sees_every_kind_of_read():
    x = torch.tensor([1.0, -2.0])
    reads = [
        lambda: x.sum().item(),
        lambda: bool(x.sum()),
        lambda: float(x[0]),
        lambda: int(x[0]),
        lambda: (x < 0).any() and None,
        lambda: x.tolist(),
        lambda: x.numpy(),
        lambda: torch.equal(x, x),
        lambda: x.nonzero(),
        lambda: check_finite(x, "x"),
    ]
    for read in reads:
        with HostReads() as counted:
            read()
        assert counted.count == 1, counted.sites
    negative = False
    with HostReads() as counted:
        if (x < 0).any():  # the branch reads the tensor's truth value to the host
            negative = True
    assert counted.count == 1
    assert negative == (x.detach().numpy() < 0).any()


@pytest.mark.parametrize("backend", BACKENDS_ON_CPU)
def test_one_render_forward_and_backward_reads_at_most_two_values(backend):
    volume, carm, reference = _scene()
    params = torch.tensor([[2.0, -1.0, 0.5, 3.0, -2.0, 5.0]], requires_grad=True)
    options = RenderOptions(backend=backend)
    with HostReads() as counted:
        render(volume, carm, pose_from_motion(params, reference, volume.isocenter), options=options).sum().backward()
    # the pose is finite (one boolean) and the plain volume's content box and spacing (one read)
    assert counted.count <= 2, counted.sites
    assert params.grad.abs().sum() > 0


@pytest.mark.parametrize("backend", BACKENDS_ON_CPU)
def test_a_drr_reads_only_the_pose_once_its_volume_is_known(backend):
    volume, carm, reference = _scene()
    drr = DRR(volume, carm, options=RenderOptions(backend=backend))
    params = torch.zeros(3, 6, requires_grad=True)
    drr(reference)  # builds the pyramid: the content box is read here, once
    with HostReads() as counted:
        drr(pose_from_motion(params, reference, volume.isocenter)).square().sum().backward()
    assert counted.count == 1, counted.sites


def test_an_ncc_value_and_gradient_read_nothing():
    moving = torch.rand(2, 1, 16, 16, requires_grad=True)
    fixed = torch.rand(2, 1, 16, 16)
    similarity = get_similarity("ncc")
    with HostReads() as counted:
        similarity(moving, fixed).sum().backward()
    assert counted.count == 0, counted.sites


@pytest.mark.parametrize("backend", BACKENDS_ON_CPU)
def test_a_registration_objective_evaluation_reads_only_the_pose(backend):
    volume, carm, reference = _scene()
    drr = DRR(volume.to(dtype=torch.float64), carm, options=RenderOptions(backend=backend))
    fixed = drr(reference).detach()
    objective = PoseObjective(RenderedSimilarity(drr, get_similarity("ncc")), fixed, reference)
    params = torch.tensor([[1.0, 0.0, -1.0, 2.0, 0.0, 0.0], [0.0] * 6], requires_grad=True)
    with HostReads() as counted:
        objective(params).sum().backward()
    assert counted.count == 1, counted.sites


# -------------------------------------------------------------------------------------------------- entry points


def test_non_finite_inputs_are_refused_where_they_enter():
    volume, carm, reference = _scene()
    nan_pose = torch.full((4, 4), float("nan"))
    drr = DRR(volume, carm)
    objective = PoseObjective(RenderedSimilarity(drr, get_similarity("ncc")), drr(reference).detach(), reference)
    with pytest.raises(ValueError, match="pose: expected finite values"):
        render(volume, carm, pose_from_motion(torch.full((6,), float("nan")), reference, volume.isocenter))
    with pytest.raises(ValueError, match="pose: expected finite values"):
        objective(torch.full((1, 6), float("nan")))  # a NaN candidate reaches the renderer's check
    with pytest.raises(ValueError, match="reference: expected finite values"):
        PoseObjective(objective.similarity, objective.fixed, nan_pose)
    with pytest.raises(ValueError, match="fixed: expected finite values"):
        PoseObjective(objective.similarity, torch.full_like(objective.fixed, float("inf")), reference)
    with pytest.raises(ValueError, match="initial: expected finite values"):
        register(None, nan_pose, [])  # before anything else is looked at
    with pytest.raises(ValueError, match="initial: expected finite values"):
        pose_descent(objective.similarity, objective.fixed, nan_pose[None])
    with pytest.raises(ValueError, match=r"Volume\.isocenter: expected finite values"):
        Volume(volume.data, volume.affine, torch.tensor([0.0, float("nan"), 0.0]))


def test_a_volume_is_checked_with_one_read():
    data, affine = torch.zeros(1, 4, 4, 4), torch.eye(4)
    with HostReads() as counted:
        Volume(data, affine)
    assert counted.count == 1, counted.sites
