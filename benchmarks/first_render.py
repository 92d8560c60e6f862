"""The first render of a fresh process: the demo's AP DRR, timed as ``recipes/demo.py`` times it.

    NUMBA_CACHE_DIR=$(mktemp -d) python benchmarks/first_render.py   # cold: the kernels compile
    python benchmarks/first_render.py                                  # warm: run it twice, read the second

Prints the first and the second render's wall time and whether the fused kernel came from numba's
on-disk cache. See benchmarks/README.md ("Kernel cache").
"""

from __future__ import annotations

import os
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the command line sets it

from xrender.attenuation import hu_to_mu
from xrender.geometry import get_preset, standard_pose
from xrender.phantom import pelvis_phantom
from xrender.render import render
from xrender.render.fused_cpu import _forward_c1


def main() -> None:
    volume = pelvis_phantom().to_volume(128)
    carm = get_preset("prost")
    pose = standard_pose("ap", carm.sid, volume.isocenter)
    seconds = []
    for _ in range(2):
        start = time.perf_counter()
        render(hu_to_mu(volume), carm, pose)
        seconds.append(time.perf_counter() - start)
    loaded = sum(_forward_c1.stats.cache_hits.values()) > 0
    print(f"first render {seconds[0]:.3f} s, second {seconds[1]:.3f} s, kernel loaded from the cache: {loaded}")


if __name__ == "__main__":
    main()
