"""Tiny ProST set-ups shared by the learned-similarity and training tests (float64 where gradients are checked)."""

from __future__ import annotations

import torch

from xrender.attenuation import hu_to_mu
from xrender.geometry import get_pose_distribution, get_preset, perturb, standard_pose
from xrender.phantom import pelvis_phantom
from xrender.render import RenderOptions
from xrender.similarity.prost import ProSTNetwork, ProSTSimilarity

TINY_HEAD = {"widths": (2, 4, 4), "inner_widths": (2, 2, 2), "embedding_channels": 3}


def tiny_setup(
    size: int = 8, detector: int = 8, dtype: torch.dtype = torch.float64, batch: int = 2, backend: str = "grid_sample"
):
    """A phantom μ volume, a binned ProST C-arm, a small network and a batch of (true, initial) poses.

    The similarity renders with ``backend`` (default the second-order reference, ``grid_sample``).
    """
    torch.manual_seed(0)
    volume = hu_to_mu(pelvis_phantom().to_volume(size, dtype=dtype))
    carm = get_preset("prost").downsample(128 // detector)
    network = ProSTNetwork((detector, detector), head_options=TINY_HEAD, feature_widths=(2, 2)).to(dtype)
    for p in network.features.convs[-1].parameters():  # leave the zero init: every layer then has a gradient
        torch.nn.init.normal_(p, std=0.1)
    similarity = ProSTSimilarity(volume, carm, network, options=RenderOptions(n_samples=12, backend=backend))
    reference = standard_pose("ap", carm.sid, volume.isocenter)
    draws = get_pose_distribution("prost-train").sample(2 * batch, seed=3, dtype=dtype)
    true, initial = perturb(reference, draws, volume.isocenter).split(batch)
    return volume, carm, similarity, true, initial
