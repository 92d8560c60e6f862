"""Standard C-arm views: conventions of the AP/PA/lateral poses."""

import math

import pytest
import torch

from xrender.geometry.camera import ConeBeam, project, world_to_camera
from xrender.geometry.views import VIEW_AXES, available_views, standard_pose

CARM = ConeBeam(sdd=1020.0, height=128, width=128, pixel_spacing=(2.92, 2.92), sid=620.0)
ISO = torch.tensor([10.0, -20.0, 30.0], dtype=torch.float64)


def test_convention_ap_view_patient_left_on_image_right_head_up():
    pose = standard_pose("ap", 620.0, ISO)
    K = CARM.intrinsics(dtype=torch.float64)
    cu, cv = CARM.principal_point
    left, posterior, superior = ISO + torch.eye(3, dtype=torch.float64) * 50
    uv = project(torch.stack([ISO, left, superior]), pose, K)
    torch.testing.assert_close(uv[0], torch.tensor([cu, cv], dtype=torch.float64))
    assert uv[1, 0] > cu  # patient's left (+x) → image right
    assert uv[2, 1] < cv  # superior (+z) → image top
    depth = world_to_camera(torch.stack([ISO, posterior]), pose)[:, 2]
    assert depth[1] > depth[0]  # the beam runs anterior → posterior
    assert pose[1, 3] < ISO[1]  # the source is anterior (smaller y)


@pytest.mark.parametrize("view", available_views())
def test_views_are_proper_and_look_at_isocenter(view):
    pose = standard_pose(view, 620.0, ISO)
    R = pose[:3, :3]
    torch.testing.assert_close(R.T @ R, torch.eye(3, dtype=torch.float64))
    assert torch.linalg.det(R) == pytest.approx(1.0)
    iso_cam = world_to_camera(ISO[None], pose)[0]
    torch.testing.assert_close(iso_cam, torch.tensor([0.0, 0.0, 620.0], dtype=torch.float64))


def test_convention_view_axes_table():
    # camera z (beam) directions in LPS
    beams = {name: axes[2] for name, axes in VIEW_AXES.items()}
    assert beams == {"ap": (0.0, 1.0, 0.0), "pa": (0.0, -1.0, 0.0), "ll": (1.0, 0.0, 0.0), "rl": (-1.0, 0.0, 0.0)}
    assert all(axes[1] == (0.0, 0.0, -1.0) for axes in VIEW_AXES.values())  # image down = inferior


def test_batched_isocenters():
    isos = torch.randn(2, 3, 3, dtype=torch.float64)
    poses = standard_pose("ll", 500.0, isos)
    assert poses.shape == (2, 3, 4, 4)
    torch.testing.assert_close(poses[1, 2], standard_pose("ll", 500.0, isos[1, 2]))
    assert standard_pose("ap", 500.0, torch.zeros(3)).dtype == torch.float32


def test_bad_view_inputs():
    with pytest.raises(ValueError, match="unknown view 'lateral'; available: ap, ll, pa, rl"):
        standard_pose("lateral", 600.0, ISO)
    with pytest.raises(ValueError, match="sid: expected finite values > 0"):
        standard_pose("ap", -1.0, ISO)
    with pytest.raises(ValueError, match="isocenter: expected finite"):
        standard_pose("ap", 600.0, torch.tensor([math.nan, 0.0, 0.0]))
    with pytest.raises(ValueError, match=r"isocenter: expected shape \(\*, 3\)"):
        standard_pose("ap", 600.0, torch.zeros(2))
