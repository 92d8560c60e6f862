"""Rendering: DRRs by the Projective Spatial Transformer (rays through a moving volume, sampled and summed).

* `render`: the pure function, poses → ``(B, C, H, W)`` line integrals (or intensities).
* `render_jacobian`: the images and their exact Jacobian with respect to pose parameters, in one
  fused march (differentiable with respect to the volume, first order).
* `RenderOptions`: the settings of a render (sampling, level, backend, memory, output), one
  frozen value taken by `render`, `render_jacobian`, `DRR` and the ProST similarity.
* `DRR`: an `torch.nn.Module` holding a volume, a C-arm and the options.
* `VolumePyramid`, `auto_level`: levels of detail.
* `BACKENDS`: the ray-marching backends — ``"grid_sample"`` (reference, any device, second-order
  gradients) and ``"fused-cpu"`` when numba is installed.
"""

from contextlib import suppress

from xrender.render.backend import BACKENDS, RenderBackend
from xrender.render.drr import choose_backend, render
from xrender.render.grid_sample import GridSampleBackend
from xrender.render.jacobian import render_jacobian
from xrender.render.module import DRR
from xrender.render.options import DEFAULT_MAX_MEMORY_MB, DEFAULT_STEP_FRACTION, RenderOptions
from xrender.render.pyramid import VolumePyramid, auto_level, downsample_volume
from xrender.render.rays import (
    ContentBox,
    clip_to_box,
    content_box,
    sample_bound,
    sample_counts,
    to_index_space,
    world_rays,
)

with suppress(ImportError):  # the fused CPU backend needs numba; it registers "fused-cpu" on import
    import xrender.render.fused_cpu  # noqa: F401

__all__ = [
    "BACKENDS",
    "DEFAULT_MAX_MEMORY_MB",
    "DEFAULT_STEP_FRACTION",
    "DRR",
    "ContentBox",
    "GridSampleBackend",
    "RenderBackend",
    "RenderOptions",
    "VolumePyramid",
    "auto_level",
    "choose_backend",
    "clip_to_box",
    "content_box",
    "downsample_volume",
    "render",
    "render_jacobian",
    "sample_bound",
    "sample_counts",
    "to_index_space",
    "world_rays",
]
