"""A full-size DeepFluoro detector (1536 × 1536) renders, forward and backward, in bounded memory.

Slow (about a minute on two cores): run with ``python -m pytest -m slow tests/test_render_memory.py``.
The render runs in a fresh process so its peak resident memory can be read. That process fixes
glibc's mmap threshold (``MALLOC_MMAP_THRESHOLD_``) so that freed chunk buffers go back to the
system and the peak measures live memory: with the default allocator glibc keeps them in its heap
for reuse, and the same run peaks at about +1.6 GB resident.
"""

import json
import os
import subprocess
import sys

import pytest

BUDGET_MB = 256
# Beyond the chunk: the pixel grid, the output and its gradient (a few floats per pixel, ~50 MB
# for 2.36 M pixels) and the interpreter's own growth.
OVERHEAD_MB = 200

SCRIPT = f"""
import json, resource, torch
from xrender.attenuation import hu_to_mu
from xrender.geometry import get_parameterization, get_preset, standard_pose
from xrender.phantom import pelvis_phantom
from xrender.render import VolumePyramid, render

torch.set_num_threads(2)
volume = hu_to_mu(pelvis_phantom().to_volume(64))
pyramid = VolumePyramid(volume)
pyramid.content_box(0)
carm = get_preset("deepfluoro")
euler = get_parameterization("euler", convention="xyz")
params = euler.from_pose(standard_pose("ap", carm.sid, volume.isocenter)).requires_grad_()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
image = render(pyramid, carm, params, parameterization=euler, backend="grid_sample", max_memory_mb={BUDGET_MB})
image.square().mean().backward()
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({{"shape": list(image.shape), "grad": params.grad.tolist(), "peak_mb": after - before}}))
"""


@pytest.mark.slow
def test_deepfluoro_detector_forward_and_backward_stay_within_the_budget():
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=900, check=True, env=env
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"\n1536² forward + backward: peak resident memory +{result['peak_mb']:.0f} MB (budget {BUDGET_MB} MB)")
    assert result["shape"] == [1, 1, 1536, 1536]
    assert all(abs(g) > 0 for g in result["grad"][3:])
    assert result["peak_mb"] < BUDGET_MB + OVERHEAD_MB
