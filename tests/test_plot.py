"""Orthogonal-slice figures: panels, orientation, landmark labels."""

import torch

from xrender import Volume
from xrender.landmarks import Landmarks
from xrender.plot import plot_orthogonal_slices, save_figure


def _volume() -> Volume:
    data = torch.zeros(1, 8, 10, 12)
    data[0, :, :, 9:] = 1000.0  # high i = patient left
    return Volume(data, torch.diag(torch.tensor([2.0, 2.0, 2.0, 1.0])))


def test_three_panels_with_world_extents():
    figure = plot_orthogonal_slices(_volume(), title="t")
    axes = figure.axes
    assert [ax.get_title() for ax in axes[:3]] == ["axial", "coronal", "sagittal"]
    # axial: patient right (low x) on the left of the image
    assert axes[0].get_xlim() == (-1.0, 23.0)
    image = axes[0].images[0].get_array()
    assert image[:, -1].max() == 1000.0  # the bright left side sits at the right of the image
    assert image[:, 0].max() == 0.0


def test_coincident_landmarks_share_a_label():
    marks = Landmarks(("A-l", "A-r", "B"), torch.tensor([[5.0, 4.0, 6.0], [-5.0, 4.0, 6.0], [1.0, 2.0, 3.0]]))
    figure = plot_orthogonal_slices(_volume(), marks)
    sagittal = {t.get_text() for t in figure.axes[2].texts}
    axial = {t.get_text() for t in figure.axes[0].texts}
    assert sagittal == {"A-l/A-r", "B"}  # mirror pair projects to one point in the sagittal plane
    assert axial == {"A-l", "A-r", "B"}


def test_flipped_volume_is_shown_in_world_orientation():
    volume = _volume()
    # voxel axis i now runs toward patient right: bright voxels (i <= 2) sit at x in [-4, 0], the high-x end
    flipped = Volume(volume.data.flip(-1), volume.affine @ torch.diag(torch.tensor([-1.0, 1.0, 1.0, 1.0])))
    axial = plot_orthogonal_slices(flipped).axes[0]
    assert axial.get_xlim() == (-23.0, 1.0)
    image = axial.images[0].get_array()
    assert image[:, -1].max() == 1000.0
    assert image[:, 0].max() == 0.0


def test_save_figure_writes_atomically_into_new_folders(tmp_path):
    path = save_figure(plot_orthogonal_slices(_volume()), tmp_path / "new" / "slices.png", dpi=40)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in path.parent.iterdir()] == ["slices.png"]  # no staging left behind
