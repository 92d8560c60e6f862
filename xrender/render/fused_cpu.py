r"""The fused CPU backend: one numba kernel marches every ray, with analytic gradients.

`FusedCPUBackend` implements the `xrender.render.backend` contract (midpoint rule, trilinear
interpolation with zero padding exactly like ``grid_sample(align_corners=False,
padding_mode="zeros")``) without materialising the ``(R, n, 3)`` sample grid: a
``numba.prange`` loop over rays walks each ray's samples, interpolates all ``C`` channels and
accumulates them in registers. Memory stays at the size of the inputs and outputs.

Gradients (first order only) come from a `torch.autograd.Function`. With
$t_k = \mathrm{near} + (k + \tfrac12)\Delta$, $\Delta = L / n$, $L = \mathrm{far} - \mathrm{near}$,
$x_k = o + t_k e$, output $I_c = \Delta \sum_k V_c(x_k)$ and the incoming gradient $g_c$,
write $s_k = \sum_c g_c V_c(x_k)$ and $G_k = \sum_c g_c \nabla V_c(x_k)$ (the trilinear
gradient in index units, one-sided at cell faces as in ``grid_sample``). Then

$$
\frac{\partial \ell}{\partial o} = \Delta \sum_k G_k,\qquad
\frac{\partial \ell}{\partial e} = \Delta \sum_k t_k G_k,
$$
$$
\frac{\partial \ell}{\partial \mathrm{far}} = \frac1n \sum_k s_k + \Delta \sum_k a_k\, e\cdot G_k,\qquad
\frac{\partial \ell}{\partial \mathrm{near}} = -\frac1n \sum_k s_k + \Delta \sum_k (1 - a_k)\, e\cdot G_k,
$$

with $a_k = (k + \tfrac12)/n$ (from $\partial t_k/\partial \mathrm{far} = a_k$,
$\partial \Delta / \partial \mathrm{far} = 1/n$, and the mirror terms for ``near``). These per-ray sums do not depend on
$g$: when a ray parameter requires grad, the forward pass accumulates them alongside the value
(one more pass over the same eight voxels is not needed), storing each ray's Jacobian
``(R, C, 8)``; the backward to the rays, and so to a pose, is then a small contraction, and a
forward + backward costs about 1.1 forwards. The volume
gradient scatters $\Delta\, g_c\, w_j(x_k)$ onto the eight neighbours $j$ of every sample; it is
only computed when the volume requires grad (pose-only registration skips it). To scatter
in parallel without atomics or per-thread copies of the volume, the volume is cut into slabs
along one axis and each thread owns whole slabs: it visits every ray but only the samples whose
neighbours fall in its slabs (a contiguous range of ``k``, since the position is linear in ``k``),
and writes only those neighbours. The result is race-free and deterministic.

**Ray Jacobians as outputs** (`fused_march_jacobian`, the pose-Jacobian render of
`xrender.render.jacobian`): the same forward pass returns the per-ray Jacobians ``(R, C, 8)``
themselves. They are linear in the volume; with incoming gradients $\gamma$ on them and $g$ on the
integrals, every sample $k$ of a ray contributes $\beta\, V(x_k) + (a_0 + (k+\tfrac12) a_1)\cdot
\nabla V(x_k)$ to the loss, with per-ray $\beta = \Delta g + (\gamma_\text{far} -
\gamma_\text{near})/n$, $a_0 = \Delta(\gamma_o + \mathrm{near}\,\gamma_e + \gamma_\text{near} e)$
and $a_1 = \Delta(\Delta \gamma_e + (\gamma_\text{far} - \gamma_\text{near}) e / n)$ (from
`_write_jac`). The same slab-parallel scatter then adds $\beta w_j + (a_0 + (k+\tfrac12)a_1)\cdot\nabla
w_j$ to each neighbour $j$, so the volume gradient of a loss on the pose Jacobian costs one first-order
pass, not a double backward.

Numerics. Sample positions and sums are computed in float64 whatever the volume's dtype; a
float32 volume is read as float32 and the result rounded to float32 once, so float32 output is
at least as accurate as ``grid_sample``'s. The kernels are compiled with two of LLVM's fast-math
flags, ``reassoc`` and ``contract`` (re-association and fused multiply-add): on the benchmark CT
they cut one thread's forward from ~210 ms to ~133 ms and the forward-with-Jacobian from ~286 ms
to ~137 ms, change the image by 8e-16 (relative) and keep agreement with float64 ``grid_sample``
at ~1e-14. Full ``fastmath=True`` is no faster and adds ``nnan``/``ninf``, which would allow LLVM
to drop the range test that sends NaN sample positions to zero; it is not used.

Channel counts: one and three (the materials of `xrender.physics.decompose_hu`) have their own
kernels that keep the per-ray sums in registers (`_KERNELS`); the others share a general kernel
with a per-ray accumulator array, about twice as slow at three channels. The kernels read the volume
channels last, ``(D, H, W, C)``: a view of a one-channel or channels-last tensor, otherwise a copy
per render, which `xrender.render.VolumePyramid` makes once (`RenderBackend.channels_last`).
LLVM vectorises the loop over a ray's interior samples with gathers, whose cost grows with the
number of elements gathered; the three-channel kernels read a float32 volume's two neighbours
along x (six floats in a row) as three 64-bit words of a view with 4-byte strides
(`_float_pairs`), half the gathered elements of 24 float32 reads per sample: on the benchmark CT
the forward takes ~1.7× the one-channel kernel instead of ~2.1×, with the ray Jacobians ~2.0×
instead of ~2.6×, and the results are unchanged to the bit.

Compiled code is cached on disk (numba's cache, in the package's ``__pycache__``, else
``NUMBA_CACHE_DIR`` or the user's cache folder), so only the first process after an install or an
edit of this file compiles a kernel (~2.5 s per kernel and dtype); later processes load it. A cache
that cannot be read or written costs a compile, never a failed render (`_DiskCache`).

Threads: the kernels use ``torch.get_num_threads()`` threads (capped by numba's pool), set for
the duration of each call and restored afterwards.
"""

from __future__ import annotations

import math
import sys
import warnings
from collections.abc import Callable
from typing import Any, NamedTuple

import numba
import numpy as np
import torch
from jaxtyping import Float, Int
from numba import njit, prange, types
from numba.core.caching import FunctionCache
from numba.core.runtime import rtsys
from numba.extending import overload
from torch import Tensor

from xrender.render.backend import BACKENDS, RenderBackend

__all__ = ["FusedCPUBackend", "DOUBLE_BACKWARD_MESSAGE", "fused_march", "fused_march_jacobian"]

#: The error raised when a graph through the fused kernel is differentiated twice.
DOUBLE_BACKWARD_MESSAGE = (
    "fused-cpu backend has first-order gradients only; use backend='grid_sample' for second-order gradients"
)

_FASTMATH = {"reassoc", "contract"}  # see the module docstring
_JIT: dict[str, Any] = {"parallel": True, "fastmath": _FASTMATH, "nogil": True}
#: Per-sample helpers: plain functions that LLVM inlines (numba-level ``inline="always"`` was as
#: fast but tripled the compile time).
_HELPER: dict[str, Any] = {"fastmath": _FASTMATH}

#: The warning when numba finds no writable folder for its cache.
_NO_CACHE_MESSAGE = (
    "fused-cpu: numba cannot cache the compiled kernels (no writable folder: the package's __pycache__, "
    "NUMBA_CACHE_DIR or the user cache); each process compiles them on its first render (seconds). "
    "Set NUMBA_CACHE_DIR to a writable folder to cache them"
)


class _DiskCache(FunctionCache):
    """numba's on-disk cache of a function's compiled code, with two differences:

    * a cache file that cannot be read or written is passed over with a warning: the function is
      then compiled, never failed;
    * loading a kernel initialises only numba's runtime, not its whole CPU target. numba's own
      loader first refreshes the target, which imports its NumPy, random and BLAS support (and,
      through the BLAS check, scipy.linalg): ~0.45 s, most of the first render of a process.
      Machine code read from the cache needs none of it. When a kernel is not in the cache, the
      compiler refreshes the target itself before it compiles.
    """

    def load_overload(self, sig: Any, target_context: Any) -> Any:
        try:
            rtsys.initialize(target_context)  # the memory runtime the kernels' code calls into
            with self._guard_against_spurious_io_errors():
                return self._load_overload(sig, target_context)
            return None  # an I/O error the guard passed over: compile
        except Exception as exc:  # a corrupt or unreadable file: compile instead
            warnings.warn(f"fused-cpu: numba cache not read ({exc!r}); compiling", RuntimeWarning, stacklevel=2)
            return None

    def save_overload(self, sig: Any, data: Any) -> None:
        try:
            super().save_overload(sig, data)
        except Exception as exc:  # a full disk or a folder made read-only: the code is still in memory
            warnings.warn(f"fused-cpu: numba cache not written ({exc!r})", RuntimeWarning, stacklevel=2)


def _jit(**options: Any) -> Callable[[Callable[..., Any]], Any]:
    """``numba.njit(**options)`` with its compiled code cached on disk (`_DiskCache`, numba's
    ``cache=True``): a process after the first loads the kernels instead of compiling them."""

    def decorate(function: Callable[..., Any]) -> Any:
        dispatcher = njit(**options)(function)
        try:
            dispatcher._cache = _DiskCache(function)  # what ``cache=True`` installs, tolerant of bad files
        except (RuntimeError, OSError):  # numba: "no locator available" (no writable folder)
            warnings.warn(_NO_CACHE_MESSAGE, RuntimeWarning, stacklevel=2)
        return dispatcher

    return decorate


# ----------------------------------------------------------------------------------------------
# Kernels. Layout: ``vol`` is (D, H, W, C) C-contiguous (channels last); geometry is float64;
# position (x, y, z) = (i, j, k) indexes (W, H, D).
#
# Each ray's samples split into three runs of k: [0, ka) and [kb, n) may touch the border (a
# neighbour outside the grid, or a sample outside the support), [ka, kb) is strictly inside
# [0, N-1) on every axis and runs without any test. Keeping the border code out of the inner loop
# makes the loop about 1.6× faster. The split is exact: [ka, kb) is computed with a margin of
# one sample and 1e-4 voxel, far above the rounding of the sample positions.
# ----------------------------------------------------------------------------------------------

_INTERIOR_MARGIN = 1e-4  # voxels


@_jit(**_HELPER)
def _axis_span(o, e, t_first, dt, n, hi):  # pragma: no cover - compiled
    """Samples ``k`` (a half-open range) whose coordinate ``o + t_k e`` lies in [margin, hi - margin]."""
    lo = _INTERIOR_MARGIN
    hi = hi - _INTERIOR_MARGIN
    if not (hi > lo):
        return 0, 0
    p0 = o + (t_first + 0.5 * dt) * e
    dp = dt * e
    if dp == 0.0:
        if p0 >= lo and p0 <= hi:
            return 0, n
        return 0, 0
    ka = (lo - p0) / dp
    kb = (hi - p0) / dp
    k_min = min(ka, kb)
    k_max = max(ka, kb)
    if not (k_max >= 0.0 and k_min <= n):  # also false for NaN
        return 0, 0
    first = max(0, math.ceil(max(k_min, -1.0)) + 1)  # math.ceil/floor give int64 in numba
    stop = min(n, math.floor(min(k_max, n + 1.0)))
    return first, max(first, stop)


@_jit(**_HELPER)
def _interior_span(ox, oy, oz, ex, ey, ez, t_first, dt, n, D, H, W):  # pragma: no cover - compiled
    """``(ka, kb)``: samples ``ka <= k < kb`` have all eight neighbours inside the grid; else ``(n, n)``."""
    a0, b0 = _axis_span(ox, ex, t_first, dt, n, W - 1.0)
    a1, b1 = _axis_span(oy, ey, t_first, dt, n, H - 1.0)
    a2, b2 = _axis_span(oz, ez, t_first, dt, n, D - 1.0)
    ka = max(a0, max(a1, a2))
    kb = min(b0, min(b1, b2))
    if kb <= ka:
        return n, n
    return ka, kb


@_jit(**_HELPER)
def _border_cell(x, y, z, D, H, W):  # pragma: no cover - compiled
    """Clamped neighbour indices, fractions and in-grid masks of a sample near or outside the border.

    Returns ``(inside, i0, i1, j0, j1, k0, k1, ax, ay, az, m000, …, m111)``; ``inside`` is false
    (and the sample contributes nothing) outside the support ``[-1, N)``, or for NaN.
    """
    if not (x >= -1.0 and x < W and y >= -1.0 and y < H and z >= -1.0 and z < D):
        return False, 0, 0, 0, 0, 0, 0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0
    fx0 = math.floor(x)
    fy0 = math.floor(y)
    fz0 = math.floor(z)
    i0 = int(fx0)
    j0 = int(fy0)
    k0 = int(fz0)
    mx0 = 1.0 if i0 >= 0 else 0.0
    mx1 = 1.0 if i0 + 1 < W else 0.0
    my0 = 1.0 if j0 >= 0 else 0.0
    my1 = 1.0 if j0 + 1 < H else 0.0
    mz0 = 1.0 if k0 >= 0 else 0.0
    mz1 = 1.0 if k0 + 1 < D else 0.0
    return (
        True,
        max(i0, 0),
        min(i0 + 1, W - 1),
        max(j0, 0),
        min(j0 + 1, H - 1),
        max(k0, 0),
        min(k0 + 1, D - 1),
        x - fx0,
        y - fy0,
        z - fz0,
        mz0 * my0 * mx0,
        mz0 * my0 * mx1,
        mz0 * my1 * mx0,
        mz0 * my1 * mx1,
        mz1 * my0 * mx0,
        mz1 * my0 * mx1,
        mz1 * my1 * mx0,
        mz1 * my1 * mx1,
    )


@_jit(**_HELPER)
def _interior_cell(x, y, z):  # pragma: no cover - compiled
    """`_border_cell`'s layout for a sample known to be inside ``[0, N-1)`` on every axis (masks all 1)."""
    fx0 = math.floor(x)
    fy0 = math.floor(y)
    fz0 = math.floor(z)
    i0 = int(fx0)
    j0 = int(fy0)
    k0 = int(fz0)
    return (True, i0, i0 + 1, j0, j0 + 1, k0, k0 + 1, x - fx0, y - fy0, z - fz0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0)


@_jit(**_HELPER)
def _corners(vol, c, cell):  # pragma: no cover - compiled
    """Channel ``c``'s eight neighbours of a cell, masked, and the fractions: `_lerp3`'s arguments."""
    _, i0, i1, j0, j1, k0, k1, ax, ay, az, m000, m001, m010, m011, m100, m101, m110, m111 = cell
    return (
        vol[k0, j0, i0, c] * m000,
        vol[k0, j0, i1, c] * m001,
        vol[k0, j1, i0, c] * m010,
        vol[k0, j1, i1, c] * m011,
        vol[k1, j0, i0, c] * m100,
        vol[k1, j0, i1, c] * m101,
        vol[k1, j1, i0, c] * m110,
        vol[k1, j1, i1, c] * m111,
        ax,
        ay,
        az,
    )


@_jit(**_HELPER)
def _lerp3(v000, v001, v010, v011, v100, v101, v110, v111, ax, ay, az):  # pragma: no cover - compiled
    """Trilinear value (``v_zyx`` corners, fractions ``a``)."""
    c00 = v000 + ax * (v001 - v000)
    c01 = v010 + ax * (v011 - v010)
    c10 = v100 + ax * (v101 - v100)
    c11 = v110 + ax * (v111 - v110)
    c0 = c00 + ay * (c01 - c00)
    c1 = c10 + ay * (c11 - c10)
    return c0 + az * (c1 - c0)


@_jit(**_HELPER)
def _lerp3_grad(v000, v001, v010, v011, v100, v101, v110, v111, ax, ay, az):  # pragma: no cover - compiled
    """Trilinear value and its gradient ``(v, ∂v/∂x, ∂v/∂y, ∂v/∂z)`` in index units."""
    d00 = v001 - v000
    d01 = v011 - v010
    d10 = v101 - v100
    d11 = v111 - v110
    c00 = v000 + ax * d00
    c01 = v010 + ax * d01
    c10 = v100 + ax * d10
    c11 = v110 + ax * d11
    e0 = c01 - c00
    e1 = c11 - c10
    c0 = c00 + ay * e0
    c1 = c10 + ay * e1
    dz = c1 - c0
    dx0 = d00 + ay * (d01 - d00)
    dx1 = d10 + ay * (d11 - d10)
    return c0 + az * dz, dx0 + az * (dx1 - dx0), e0 + az * (e1 - e0), dz


@_jit(**_HELPER)
def _value_border(vol, c, x, y, z, D, H, W):  # pragma: no cover - compiled
    cell = _border_cell(x, y, z, D, H, W)
    return _lerp3(*_corners(vol, c, cell)) if cell[0] else 0.0


@_jit(**_HELPER)
def _value_grad_border(vol, c, x, y, z, D, H, W):  # pragma: no cover - compiled
    cell = _border_cell(x, y, z, D, H, W)
    return _lerp3_grad(*_corners(vol, c, cell)) if cell[0] else (0.0, 0.0, 0.0, 0.0)


@_jit(**_HELPER)
def _value_interior(vol, c, x, y, z):  # pragma: no cover - compiled
    return _lerp3(*_corners(vol, c, _interior_cell(x, y, z)))


@_jit(**_HELPER)
def _value_grad_interior(vol, c, x, y, z):  # pragma: no cover - compiled
    return _lerp3_grad(*_corners(vol, c, _interior_cell(x, y, z)))


#: Where float ``m`` sits in the 64-bit word that starts at it (the low word on little-endian machines).
_FIRST_SHIFT = np.uint64(0 if sys.byteorder == "little" else 32)
_SECOND_SHIFT = np.uint64(32) - _FIRST_SHIFT
_LOW_WORD = np.uint64(0xFFFFFFFF)


def _float_pair(pairs, m):  # pragma: no cover - replaced by its overload in compiled code
    """Floats ``m`` and ``m + 1`` of a flat volume, as float64, from `_float_pairs`'s array."""
    raise NotImplementedError("compiled code only")


@overload(_float_pair, jit_options=_HELPER)
def _float_pair_overload(pairs, m):  # pragma: no cover - compiled
    if pairs.dtype == types.uint64:  # a float32 volume: one 64-bit read holds both floats

        def unpack(pairs, m):
            word = pairs[m]
            first = np.uint32((word >> _FIRST_SHIFT) & _LOW_WORD).view(np.float32)
            second = np.uint32((word >> _SECOND_SHIFT) & _LOW_WORD).view(np.float32)
            return np.float64(first), np.float64(second)

        return unpack

    def read(pairs, m):  # a float64 volume: the flat array itself
        return pairs[m], pairs[m + 1]

    return read


@_jit(**_HELPER)
def _row3(pairs, m):  # pragma: no cover - compiled
    """Channels 0, 1, 2 of voxel ``p``, then of its neighbour ``p + 1`` along x: floats ``m = 3p`` to ``m + 5``
    of a three-channel volume, in three `_float_pair` reads."""
    a0, a1 = _float_pair(pairs, m)
    a2, b0 = _float_pair(pairs, m + 2)
    b1, b2 = _float_pair(pairs, m + 4)
    return a0, a1, a2, b0, b1, b2


@_jit(**_HELPER)
def _interior_cell3(x, y, z, H, W):  # pragma: no cover - compiled
    """A three-channel volume's sample inside ``[0, N-1)`` on every axis: the float index ``3p`` of its first
    neighbour ``p`` (for `_row3`), the steps to the rows at ``j + 1`` and ``k + 1``, and the fractions.

    The kernels call `_row3` four times with these and pass the 24 values to `_lerp3` in the
    kernel body itself: a helper returning them, larger, is not inlined, and the loop not vectorised.
    """
    fx0 = math.floor(x)
    fy0 = math.floor(y)
    fz0 = math.floor(z)
    return 3 * ((int(fz0) * H + int(fy0)) * W + int(fx0)), 3 * W, 3 * W * H, x - fx0, y - fy0, z - fz0


@_jit(**_JIT)
def _forward_c1(vol, origins, directions, near, far, n_samples, out):  # pragma: no cover - compiled
    """``out[r, 0] = Δ_r Σ_k V(x_k)`` for a one-channel volume."""
    D, H, W = vol.shape[0], vol.shape[1], vol.shape[2]
    for r in prange(origins.shape[0]):
        n = n_samples[r]
        length = far[r] - near[r]
        acc = 0.0
        if n > 0 and length > 0.0:
            dt = length / n
            ox, oy, oz = origins[r, 0], origins[r, 1], origins[r, 2]
            ex, ey, ez = directions[r, 0], directions[r, 1], directions[r, 2]
            t0 = near[r]
            ka, kb = _interior_span(ox, oy, oz, ex, ey, ez, t0, dt, n, D, H, W)
            for k in range(ka):
                t = t0 + (k + 0.5) * dt
                acc += _value_border(vol, 0, ox + t * ex, oy + t * ey, oz + t * ez, D, H, W)
            for k in range(ka, kb):
                t = t0 + (k + 0.5) * dt
                acc += _value_interior(vol, 0, ox + t * ex, oy + t * ey, oz + t * ez)
            for k in range(kb, n):
                t = t0 + (k + 0.5) * dt
                acc += _value_border(vol, 0, ox + t * ex, oy + t * ey, oz + t * ez, D, H, W)
            acc *= dt
        out[r, 0] = acc


@_jit(**_JIT)
def _forward_cn(vol, origins, directions, near, far, n_samples, out):  # pragma: no cover - compiled
    """``out[r, c] = Δ_r Σ_k V_c(x_k)`` for any number of channels (one cell lookup per sample)."""
    D, H, W, C = vol.shape[0], vol.shape[1], vol.shape[2], vol.shape[3]
    for r in prange(origins.shape[0]):
        n = n_samples[r]
        length = far[r] - near[r]
        acc = np.zeros(C)
        dt = 0.0
        if n > 0 and length > 0.0:
            dt = length / n
            ox, oy, oz = origins[r, 0], origins[r, 1], origins[r, 2]
            ex, ey, ez = directions[r, 0], directions[r, 1], directions[r, 2]
            t0 = near[r]
            ka, kb = _interior_span(ox, oy, oz, ex, ey, ez, t0, dt, n, D, H, W)
            for k in range(n):
                t = t0 + (k + 0.5) * dt
                x, y, z = ox + t * ex, oy + t * ey, oz + t * ez
                cell = _interior_cell(x, y, z) if ka <= k < kb else _border_cell(x, y, z, D, H, W)
                if not cell[0]:
                    continue
                for c in range(C):
                    acc[c] += _lerp3(*_corners(vol, c, cell))
        for c in range(C):
            out[r, c] = dt * acc[c]


@_jit(**_JIT)
def _forward_c3(vol, pairs, origins, directions, near, far, n_samples, out):  # pragma: no cover - compiled
    """`_forward_cn` for three channels (the materials of `xrender.physics.decompose_hu`).

    The sums live in three scalars and the channel indices are constants: on the benchmark CT
    this is ~2× faster than `_forward_cn`'s per-ray accumulator array, whose loop over ``c``
    keeps LLVM from vectorising the loop over samples. Interior samples read their neighbours
    through ``pairs`` (`_float_pairs`, `_row3`), borders through ``vol``.
    """
    D, H, W = vol.shape[0], vol.shape[1], vol.shape[2]
    for r in prange(origins.shape[0]):
        n = n_samples[r]
        length = far[r] - near[r]
        a0 = a1 = a2 = 0.0
        dt = 0.0
        if n > 0 and length > 0.0:
            dt = length / n
            ox, oy, oz = origins[r, 0], origins[r, 1], origins[r, 2]
            ex, ey, ez = directions[r, 0], directions[r, 1], directions[r, 2]
            t0 = near[r]
            ka, kb = _interior_span(ox, oy, oz, ex, ey, ez, t0, dt, n, D, H, W)
            for k in range(ka):
                t = t0 + (k + 0.5) * dt
                cell = _border_cell(ox + t * ex, oy + t * ey, oz + t * ez, D, H, W)
                if cell[0]:
                    a0 += _lerp3(*_corners(vol, 0, cell))
                    a1 += _lerp3(*_corners(vol, 1, cell))
                    a2 += _lerp3(*_corners(vol, 2, cell))
            for k in range(ka, kb):
                t = t0 + (k + 0.5) * dt
                m, dj, dk, ax, ay, az = _interior_cell3(ox + t * ex, oy + t * ey, oz + t * ez, H, W)
                p000, q000, r000, p001, q001, r001 = _row3(pairs, m)
                p010, q010, r010, p011, q011, r011 = _row3(pairs, m + dj)
                p100, q100, r100, p101, q101, r101 = _row3(pairs, m + dk)
                p110, q110, r110, p111, q111, r111 = _row3(pairs, m + dk + dj)
                a0 += _lerp3(p000, p001, p010, p011, p100, p101, p110, p111, ax, ay, az)
                a1 += _lerp3(q000, q001, q010, q011, q100, q101, q110, q111, ax, ay, az)
                a2 += _lerp3(r000, r001, r010, r011, r100, r101, r110, r111, ax, ay, az)
            for k in range(kb, n):
                t = t0 + (k + 0.5) * dt
                cell = _border_cell(ox + t * ex, oy + t * ey, oz + t * ez, D, H, W)
                if cell[0]:
                    a0 += _lerp3(*_corners(vol, 0, cell))
                    a1 += _lerp3(*_corners(vol, 1, cell))
                    a2 += _lerp3(*_corners(vol, 2, cell))
        out[r, 0] = dt * a0
        out[r, 1] = dt * a1
        out[r, 2] = dt * a2


@_jit(**_HELPER)
def _write_jac(out, jac, r, c, n, dt, t0, ex, ey, ez, s, gx, gy, gz, qx, qy, qz):  # pragma: no cover - compiled
    """From ``s = Σ V``, ``g = Σ ∇V`` and ``q = Σ (k+½) ∇V`` write the output and ``∂out/∂(o, e, near, far)``.

    With ``t_k = near + (k+½)Δ``: ``Σ t_k ∇V = near·g + Δ·q`` and ``Σ a_k ∇V = q / n``.
    """
    out[r, c] = dt * s
    jac[r, c, 0] = dt * gx
    jac[r, c, 1] = dt * gy
    jac[r, c, 2] = dt * gz
    jac[r, c, 3] = dt * (t0 * gx + dt * qx)
    jac[r, c, 4] = dt * (t0 * gy + dt * qy)
    jac[r, c, 5] = dt * (t0 * gz + dt * qz)
    if n > 0:
        e_g = ex * gx + ey * gy + ez * gz
        e_p = (ex * qx + ey * qy + ez * qz) / n
        jac[r, c, 6] = -s / n + dt * (e_g - e_p)
        jac[r, c, 7] = s / n + dt * e_p
    else:
        jac[r, c, 6] = 0.0
        jac[r, c, 7] = 0.0


@_jit(**_HELPER)
def _add_sample(s, gx, gy, gz, qx, qy, qz, h, v, dx, dy, dz):  # pragma: no cover - compiled
    """Add one sample to a ray's Jacobian sums: Σ V, Σ ∇V and Σ (k+½) ∇V (``h = k + ½``)."""
    return s + v, gx + dx, gy + dy, gz + dz, qx + h * dx, qy + h * dy, qz + h * dz


@_jit(**_JIT)
def _forward_jac_c1(vol, origins, directions, near, far, n_samples, out, jac):  # pragma: no cover - compiled
    """`_forward_c1` that also writes each ray's Jacobian ``jac[r, 0]`` (see `_forward_jac_cn`)."""
    D, H, W = vol.shape[0], vol.shape[1], vol.shape[2]
    for r in prange(origins.shape[0]):
        n = n_samples[r]
        length = far[r] - near[r]
        s = gx = gy = gz = qx = qy = qz = 0.0
        dt = 0.0
        t0 = near[r]
        ex, ey, ez = directions[r, 0], directions[r, 1], directions[r, 2]
        if n > 0 and length > 0.0:
            dt = length / n
            ox, oy, oz = origins[r, 0], origins[r, 1], origins[r, 2]
            ka, kb = _interior_span(ox, oy, oz, ex, ey, ez, t0, dt, n, D, H, W)
            for k in range(ka):
                h = k + 0.5
                t = t0 + h * dt
                v, dx, dy, dz = _value_grad_border(vol, 0, ox + t * ex, oy + t * ey, oz + t * ez, D, H, W)
                s, gx, gy, gz, qx, qy, qz = _add_sample(s, gx, gy, gz, qx, qy, qz, h, v, dx, dy, dz)
            for k in range(ka, kb):
                h = k + 0.5
                t = t0 + h * dt
                v, dx, dy, dz = _value_grad_interior(vol, 0, ox + t * ex, oy + t * ey, oz + t * ez)
                s, gx, gy, gz, qx, qy, qz = _add_sample(s, gx, gy, gz, qx, qy, qz, h, v, dx, dy, dz)
            for k in range(kb, n):
                h = k + 0.5
                t = t0 + h * dt
                v, dx, dy, dz = _value_grad_border(vol, 0, ox + t * ex, oy + t * ey, oz + t * ez, D, H, W)
                s, gx, gy, gz, qx, qy, qz = _add_sample(s, gx, gy, gz, qx, qy, qz, h, v, dx, dy, dz)
        else:
            n = 0
        _write_jac(out, jac, r, 0, n, dt, t0, ex, ey, ez, s, gx, gy, gz, qx, qy, qz)


@_jit(**_JIT)
def _forward_jac_cn(vol, origins, directions, near, far, n_samples, out, jac):  # pragma: no cover - compiled
    """The forward pass plus each ray's Jacobian ``jac[r, c] = ∂out[r, c] / ∂(o, e, near, far)`` (8 numbers)."""
    D, H, W, C = vol.shape[0], vol.shape[1], vol.shape[2], vol.shape[3]
    for r in prange(origins.shape[0]):
        n = n_samples[r]
        length = far[r] - near[r]
        acc = np.zeros((C, 7))  # per channel: Σ V, Σ ∇V (3), Σ (k+½) ∇V (3)
        dt = 0.0
        t0 = near[r]
        ex, ey, ez = directions[r, 0], directions[r, 1], directions[r, 2]
        if n > 0 and length > 0.0:
            dt = length / n
            ox, oy, oz = origins[r, 0], origins[r, 1], origins[r, 2]
            ka, kb = _interior_span(ox, oy, oz, ex, ey, ez, t0, dt, n, D, H, W)
            for k in range(n):
                h = k + 0.5
                t = t0 + h * dt
                x, y, z = ox + t * ex, oy + t * ey, oz + t * ez
                cell = _interior_cell(x, y, z) if ka <= k < kb else _border_cell(x, y, z, D, H, W)
                if not cell[0]:
                    continue
                for c in range(C):
                    v, dx, dy, dz = _lerp3_grad(*_corners(vol, c, cell))
                    acc[c, 0] += v
                    acc[c, 1] += dx
                    acc[c, 2] += dy
                    acc[c, 3] += dz
                    acc[c, 4] += h * dx
                    acc[c, 5] += h * dy
                    acc[c, 6] += h * dz
        else:
            n = 0
        for c in range(C):
            _write_jac(
                out, jac, r, c, n, dt, t0, ex, ey, ez,
                acc[c, 0], acc[c, 1], acc[c, 2], acc[c, 3], acc[c, 4], acc[c, 5], acc[c, 6],
            )  # fmt: skip


@_jit(**_JIT)
def _forward_jac_c3(vol, pairs, origins, directions, near, far, n_samples, out, jac):  # pragma: no cover - compiled
    """`_forward_jac_cn` for three channels, with the sums in registers and the reads of `_forward_c3`."""
    D, H, W = vol.shape[0], vol.shape[1], vol.shape[2]
    for r in prange(origins.shape[0]):
        n = n_samples[r]
        length = far[r] - near[r]
        s0 = s1 = s2 = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
        dt = 0.0
        t0 = near[r]
        ex, ey, ez = directions[r, 0], directions[r, 1], directions[r, 2]
        if n > 0 and length > 0.0:
            dt = length / n
            ox, oy, oz = origins[r, 0], origins[r, 1], origins[r, 2]
            ka, kb = _interior_span(ox, oy, oz, ex, ey, ez, t0, dt, n, D, H, W)
            for k in range(ka):
                h = k + 0.5
                t = t0 + h * dt
                cell = _border_cell(ox + t * ex, oy + t * ey, oz + t * ez, D, H, W)
                if cell[0]:
                    s0 = _add_sample(*s0, h, *_lerp3_grad(*_corners(vol, 0, cell)))
                    s1 = _add_sample(*s1, h, *_lerp3_grad(*_corners(vol, 1, cell)))
                    s2 = _add_sample(*s2, h, *_lerp3_grad(*_corners(vol, 2, cell)))
            for k in range(ka, kb):
                h = k + 0.5
                t = t0 + h * dt
                m, dj, dk, ax, ay, az = _interior_cell3(ox + t * ex, oy + t * ey, oz + t * ez, H, W)
                p000, q000, r000, p001, q001, r001 = _row3(pairs, m)
                p010, q010, r010, p011, q011, r011 = _row3(pairs, m + dj)
                p100, q100, r100, p101, q101, r101 = _row3(pairs, m + dk)
                p110, q110, r110, p111, q111, r111 = _row3(pairs, m + dk + dj)
                s0 = _add_sample(*s0, h, *_lerp3_grad(p000, p001, p010, p011, p100, p101, p110, p111, ax, ay, az))
                s1 = _add_sample(*s1, h, *_lerp3_grad(q000, q001, q010, q011, q100, q101, q110, q111, ax, ay, az))
                s2 = _add_sample(*s2, h, *_lerp3_grad(r000, r001, r010, r011, r100, r101, r110, r111, ax, ay, az))
            for k in range(kb, n):
                h = k + 0.5
                t = t0 + h * dt
                cell = _border_cell(ox + t * ex, oy + t * ey, oz + t * ez, D, H, W)
                if cell[0]:
                    s0 = _add_sample(*s0, h, *_lerp3_grad(*_corners(vol, 0, cell)))
                    s1 = _add_sample(*s1, h, *_lerp3_grad(*_corners(vol, 1, cell)))
                    s2 = _add_sample(*s2, h, *_lerp3_grad(*_corners(vol, 2, cell)))
        else:
            n = 0
        _write_jac(out, jac, r, 0, n, dt, t0, ex, ey, ez, *s0)
        _write_jac(out, jac, r, 1, n, dt, t0, ex, ey, ez, *s1)
        _write_jac(out, jac, r, 2, n, dt, t0, ex, ey, ez, *s2)


@_jit(**_JIT)
def _volume_adjoint(
    grad_vol, beta, a0, a1, origins, directions, near, far, n_samples, axis, bounds
):  # pragma: no cover - compiled
    """Scatter each sample's adjoint onto its eight neighbours in ``grad_vol`` (D, H, W, C).

    Sample ``k`` of ray ``r`` adds, for channel ``c`` and neighbour ``j``,
    ``beta[r, c] w_j + (a0[r, c] + (k + ½) a1[r, c]) · ∇w_j``, with ``w_j`` its trilinear weight and
    ``∇w_j`` the weight's gradient in index units: the adjoint of ``V(x_k)`` (the march) and of
    ``∇V(x_k)`` (the ray Jacobians). ``a0`` and ``a1`` may have zero rows: value terms only.
    Slab ``s`` owns the voxels with ``bounds[s] <= index[axis] < bounds[s + 1]``.
    """
    D, H, W, C = grad_vol.shape[0], grad_vol.shape[1], grad_vol.shape[2], grad_vol.shape[3]
    R = origins.shape[0]
    deriv = a0.shape[0] == R
    for s in prange(bounds.shape[0] - 1):
        lo = bounds[s]
        hi = bounds[s + 1]
        coef = np.empty((C, 3))
        for r in range(R):
            n = n_samples[r]
            length = far[r] - near[r]
            if n <= 0 or not (length > 0.0):
                continue
            any_term = False
            for c in range(C):
                if beta[r, c] != 0.0:
                    any_term = True
                if deriv:
                    for a in range(3):
                        if a0[r, c, a] != 0.0 or a1[r, c, a] != 0.0:
                            any_term = True
            if not any_term:
                continue
            dt = length / n
            # Samples whose neighbours can land in [lo, hi): position[axis] in (lo - 1, hi).
            p0 = origins[r, axis] + (near[r] + 0.5 * dt) * directions[r, axis]
            dp = dt * directions[r, axis]
            if dp == 0.0:
                if not (p0 > lo - 1.0 and p0 < hi):
                    continue
                k_lo, k_hi = 0, n
            else:
                ka = (lo - 1.0 - p0) / dp
                kb = (hi - p0) / dp
                k_min = min(ka, kb)
                k_max = max(ka, kb)
                if not (k_max >= -1.0 and k_min <= n + 1.0):
                    continue
                k_lo = int(max(0.0, math.floor(k_min) - 1.0))
                k_hi = int(min(float(n), math.ceil(k_max) + 2.0))
            ox, oy, oz = origins[r, 0], origins[r, 1], origins[r, 2]
            ex, ey, ez = directions[r, 0], directions[r, 1], directions[r, 2]
            t_first = near[r]
            for k in range(k_lo, k_hi):
                h = k + 0.5
                t = t_first + h * dt
                x = ox + t * ex
                y = oy + t * ey
                z = oz + t * ez
                if not (x >= -1.0 and x < W and y >= -1.0 and y < H and z >= -1.0 and z < D):
                    continue
                fx0 = math.floor(x)
                fy0 = math.floor(y)
                fz0 = math.floor(z)
                ax = x - fx0
                ay = y - fy0
                az = z - fz0
                idx0 = (int(fx0), int(fy0), int(fz0))
                i0, j0, k0 = idx0
                # Ownership along the slab axis, validity along the others.
                own0 = idx0[axis] >= lo and idx0[axis] < hi
                own1 = idx0[axis] + 1 >= lo and idx0[axis] + 1 < hi
                if not (own0 or own1):
                    continue
                wx = (1.0 - ax, ax)
                wy = (1.0 - ay, ay)
                wz = (1.0 - az, az)
                sign = (-1.0, 1.0)  # d w / d fraction, per corner side
                if deriv:  # this sample's gradient coefficients, per channel
                    for c in range(C):
                        for a in range(3):
                            coef[c, a] = a0[r, c, a] + h * a1[r, c, a]
                for cz in range(2):
                    kk = k0 + cz
                    if kk < 0 or kk >= D:
                        continue
                    for cy in range(2):
                        jj = j0 + cy
                        if jj < 0 or jj >= H:
                            continue
                        for cx in range(2):
                            ii = i0 + cx
                            if ii < 0 or ii >= W:
                                continue
                            corner = (cx, cy, cz)
                            if not (own1 if corner[axis] == 1 else own0):
                                continue
                            w = wz[cz] * wy[cy] * wx[cx]
                            if deriv:
                                gwx = sign[cx] * wy[cy] * wz[cz]
                                gwy = wx[cx] * sign[cy] * wz[cz]
                                gwz = wx[cx] * wy[cy] * sign[cz]
                                for c in range(C):
                                    grad_vol[kk, jj, ii, c] += (
                                        beta[r, c] * w + coef[c, 0] * gwx + coef[c, 1] * gwy + coef[c, 2] * gwz
                                    )
                            else:
                                for c in range(C):
                                    grad_vol[kk, jj, ii, c] += beta[r, c] * w


# ----------------------------------------------------------------------------------------------
# Host side
# ----------------------------------------------------------------------------------------------


class _Threads:
    """Run numba kernels with ``torch.get_num_threads()`` threads, restoring numba's setting after."""

    def __enter__(self) -> None:
        self._saved = numba.get_num_threads()
        numba.set_num_threads(max(1, min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS)))

    def __exit__(self, *exc: object) -> None:
        numba.set_num_threads(self._saved)


def _channels_last(data: Tensor) -> np.ndarray:
    """``(C, D, H, W)`` tensor → ``(D, H, W, C)`` C-contiguous numpy array: a view when ``C == 1`` or when
    ``data`` is channels-last in memory already (`VolumePyramid.level` with ``channels_last=True``), else a copy."""
    last = data.detach().permute(1, 2, 3, 0)
    return last.numpy() if last.is_contiguous() else last.contiguous().numpy()


def _geometry(origins: Tensor, directions: Tensor, near: Tensor, far: Tensor, n_samples: Tensor):
    f64 = torch.float64
    return (
        origins.detach().to(f64).contiguous().numpy(),
        directions.detach().to(f64).contiguous().numpy(),
        near.detach().to(f64).contiguous().numpy(),
        far.detach().to(f64).contiguous().numpy(),
        n_samples.detach().to(torch.int64).contiguous().numpy(),
    )


def _slabs(shape_dhw: tuple[int, int, int], directions: np.ndarray, threads: int) -> tuple[int, np.ndarray]:
    """Pick the slab axis (the one rays travel most along, so every ray spreads over all slabs) and bounds."""
    D, H, W = shape_dhw
    sizes = (W, H, D)  # along x, y, z
    travel = np.abs(directions).sum(axis=0) if directions.shape[0] else np.zeros(3)
    # Prefer the axis the rays run along; fall back to the largest if that axis is too thin to split.
    order = sorted(range(3), key=lambda a: (-travel[a], -sizes[a]))
    axis = next((a for a in order if sizes[a] >= 2 * threads), max(range(3), key=lambda a: sizes[a]))
    count = max(1, min(sizes[axis], 8 * threads))
    bounds = np.linspace(0, sizes[axis], count + 1).round().astype(np.int64)
    return axis, np.unique(bounds)


def _double_backward_guard(backward: Callable[..., tuple]) -> Callable[..., tuple]:
    """Like `torch.autograd.function.once_differentiable`, but with our message, and raising even
    when the incoming gradient is a constant (as in ``autograd.grad(out.sum(), pose, create_graph=True)``),
    where ``once_differentiable`` would silently drop this op's second-order terms."""

    def wrapper(ctx: Any, *grad_outputs: Tensor) -> tuple:
        with torch.no_grad():
            grads = backward(ctx, *grad_outputs)
        if not torch.is_grad_enabled():
            return grads
        delayed = getattr(getattr(torch._C, "_functions", None), "DelayedError", None)
        if delayed is None:  # pragma: no cover - every supported torch has it
            raise RuntimeError(DOUBLE_BACKWARD_MESSAGE)
        present = [i for i, g in enumerate(grads) if g is not None]
        if not present:
            return grads
        err_fn = delayed(DOUBLE_BACKWARD_MESSAGE.encode(), len(present))
        wrapped = err_fn(*[grads[i].detach().requires_grad_(True) for i in present])
        wrapped = wrapped if isinstance(wrapped, tuple) else (wrapped,)
        out = list(grads)
        for i, g in zip(present, wrapped):
            out[i] = g
        return tuple(out)

    wrapper.__name__ = backward.__name__
    wrapper.__doc__ = backward.__doc__
    return wrapper


def _volume_only(vol: np.ndarray) -> tuple[np.ndarray, ...]:
    return (vol,)


def _with_float_pairs(vol: np.ndarray) -> tuple[np.ndarray, ...]:
    return vol, _float_pairs(vol)


def _float_pairs(vol: np.ndarray) -> np.ndarray:
    """The flat volume as `_float_pair` reads it: a float32 volume as overlapping 64-bit words, word ``m``
    holding floats ``m`` and ``m + 1`` (a view with 4-byte strides, not aligned to 8); a float64 one as is."""
    flat = vol.reshape(-1)
    if flat.dtype != np.float32:
        return flat
    return np.ndarray(shape=(flat.size - 1,), dtype=np.uint64, buffer=flat, strides=(4,))


class _Kernels(NamedTuple):
    """The forward kernels of a channel count and the arrays they read."""

    forward: Callable[..., None]  #: ``forward(*reads(vol), origins, directions, near, far, n_samples, out)``
    forward_jac: Callable[..., None]  #: the same with the ray Jacobians: ``(…, out, jac)``
    reads: Callable[[np.ndarray], tuple[np.ndarray, ...]]  #: from the ``(D, H, W, C)`` volume


#: The kernels specialised for a channel count; `_GENERAL_KERNELS` serve the others.
_KERNELS: dict[int, _Kernels] = {
    1: _Kernels(_forward_c1, _forward_jac_c1, _volume_only),
    3: _Kernels(_forward_c3, _forward_jac_c3, _with_float_pairs),
}
_GENERAL_KERNELS = _Kernels(_forward_cn, _forward_jac_cn, _volume_only)


def _march(
    data: Tensor, origins: Tensor, directions: Tensor, near: Tensor, far: Tensor, n_samples: Tensor, need_jac: bool
) -> tuple[Tensor, Tensor | None]:
    """Run the forward kernel: the integrals ``(R, C)`` and, if ``need_jac``, the ray Jacobians ``(R, C, 8)``."""
    out_dtype = _result_dtype(data, origins, directions, near, far)
    C = data.shape[0]
    vol = _channels_last(data)
    geo = _geometry(origins, directions, near, far, n_samples)
    R = geo[0].shape[0]
    out = np.empty((R, C), dtype=np.float64)
    jac = np.zeros((R, C, 8), dtype=np.float64) if need_jac else None
    if R:
        with _Threads():
            kernels = _KERNELS.get(C, _GENERAL_KERNELS)
            if jac is not None:
                kernels.forward_jac(*kernels.reads(vol), *geo, out, jac)
            else:
                kernels.forward(*kernels.reads(vol), *geo, out)
    return torch.from_numpy(out).to(out_dtype), None if jac is None else torch.from_numpy(jac)


class _FusedMarch(torch.autograd.Function):
    """Forward: march every ray; when a ray parameter needs a gradient, the same pass also returns
    each ray's Jacobian ``(R, C, 8)`` with respect to its own origin, direction, near and far, so
    the backward for a pose is a small contraction. The volume gradient is a separate scatter pass."""

    @staticmethod
    def forward(ctx: Any, data, origins, directions, near, far, n_samples):  # type: ignore[override]
        out, jac = _march(data, origins, directions, near, far, n_samples, need_jac=any(ctx.needs_input_grad[1:5]))
        ctx.jac = jac
        ctx.save_for_backward(data, origins, directions, near, far, n_samples)
        return out

    @staticmethod
    @_double_backward_guard
    def backward(ctx: Any, grad_out: Tensor):  # type: ignore[override]
        data, origins, directions, near, far, n_samples = ctx.saved_tensors
        need_data, need_o, need_e, need_near, need_far, _ = ctx.needs_input_grad
        go = grad_out.detach().to(torch.float64).contiguous()
        g_data = g_o = g_e = g_near = g_far = None
        if ctx.jac is not None and (need_o or need_e or need_near or need_far):
            g = torch.einsum("rc,rck->rk", go, ctx.jac)  # (R, 8)
            g_o = g[:, 0:3].to(origins.dtype) if need_o else None
            g_e = g[:, 3:6].to(directions.dtype) if need_e else None
            g_near = g[:, 6].to(near.dtype) if need_near else None
            g_far = g[:, 7].to(far.dtype) if need_far else None
        if need_data:
            beta = _ray_steps(near, far, n_samples)[0][:, None] * go
            g_data = _scatter_adjoint(data, origins, directions, near, far, n_samples, beta)
        return g_data, g_o, g_e, g_near, g_far, None


def _ray_steps(near: Tensor, far: Tensor, n_samples: Tensor) -> tuple[Tensor, Tensor]:
    """Each ray's ``Δ = L / n`` and ``1 / n`` in float64; both 0 for a ray the kernels skip (``n = 0``, ``L <= 0``)."""
    length = far.detach().to(torch.float64) - near.detach().to(torch.float64)
    counts = n_samples.detach().to(torch.float64)
    marched = (counts > 0) & (length > 0)
    inverse = torch.where(marched, 1.0 / counts.clamp(min=1.0), 0.0)
    return torch.where(marched, length * inverse, 0.0), inverse


def _scatter_adjoint(
    data: Tensor,
    origins: Tensor,
    directions: Tensor,
    near: Tensor,
    far: Tensor,
    n_samples: Tensor,
    beta: Tensor,
    a0: Tensor | None = None,
    a1: Tensor | None = None,
) -> Tensor:
    """The volume gradient ``(C, D, H, W)`` from per-ray coefficients (see `_volume_adjoint`), in ``data``'s dtype."""
    geo = _geometry(origins, directions, near, far, n_samples)
    C, D, H, W = data.shape
    grad_vol = np.zeros((D, H, W, C), dtype=data.detach().numpy().dtype)
    none = torch.zeros(0, C, 3, dtype=torch.float64)
    terms = [beta] + [none if a is None else a for a in (a0, a1)]
    beta_np, a0_np, a1_np = (t.detach().to(torch.float64).contiguous().numpy() for t in terms)
    if geo[0].shape[0]:
        with _Threads():
            axis, bounds = _slabs((D, H, W), geo[1], numba.get_num_threads())
            _volume_adjoint(grad_vol, beta_np, a0_np, a1_np, *geo, axis, bounds)
    return torch.from_numpy(grad_vol).permute(3, 0, 1, 2).contiguous()


class _FusedMarchJacobian(torch.autograd.Function):
    """Forward: every ray's integrals ``(R, C)`` and its Jacobian ``(R, C, 8)`` with respect to its origin,
    direction, near and far (the `_FusedMarch` forward pass). Both outputs are linear in the volume; the
    backward is their adjoint to the volume: one scatter pass (`_volume_adjoint`). The rays are constants."""

    @staticmethod
    def forward(ctx: Any, data, origins, directions, near, far, n_samples):  # type: ignore[override]
        out, jac = _march(data, origins, directions, near, far, n_samples, need_jac=True)
        ctx.save_for_backward(data, origins, directions, near, far, n_samples)
        return out, jac.to(out.dtype)

    @staticmethod
    @_double_backward_guard
    def backward(ctx: Any, grad_out: Tensor, grad_jac: Tensor):  # type: ignore[override]
        data, origins, directions, near, far, n_samples = ctx.saved_tensors
        if not ctx.needs_input_grad[0]:
            return None, None, None, None, None, None
        # Per ray and channel, Σ_k [β V(x_k) + (a0 + (k+½) a1) · ∇V(x_k)] reproduces
        # Σ grad_out · out + Σ grad_jac · jac (see `_write_jac` for the eight Jacobian entries).
        go = grad_out.detach().to(torch.float64)
        gj = grad_jac.detach().to(torch.float64)
        step, inverse = (t[:, None] for t in _ray_steps(near, far, n_samples))
        e = directions.detach().to(torch.float64)[:, None, :]
        g_o, g_e, g_near, g_far = gj[..., 0:3], gj[..., 3:6], gj[..., 6], gj[..., 7]
        ends = (g_far - g_near) * inverse  # (R, C)
        beta = step * go + ends
        a0 = step[..., None] * (g_o + near.detach().to(torch.float64)[:, None, None] * g_e + g_near[..., None] * e)
        a1 = step[..., None] * (step[..., None] * g_e + ends[..., None] * e)
        return (
            _scatter_adjoint(data, origins, directions, near, far, n_samples, beta, a0, a1),
            None,
            None,
            None,
            None,
            None,
        )


def _result_dtype(*tensors: Tensor) -> torch.dtype:
    dtype = tensors[0].dtype
    for t in tensors[1:]:
        dtype = torch.promote_types(dtype, t.dtype)
    return dtype


def _check_inputs(
    data: Tensor, origins: Tensor, directions: Tensor, near: Tensor, far: Tensor, n_samples: Tensor, max_samples: int
) -> None:
    named = {
        "data": data,
        "origins": origins,
        "directions": directions,
        "near": near,
        "far": far,
        "n_samples": n_samples,
    }
    for name, t in named.items():
        if not isinstance(t, Tensor):
            raise TypeError(f"fused-cpu march: {name}: expected a torch.Tensor, got {type(t).__name__}")
        if t.device.type != "cpu":
            raise ValueError(
                f"fused-cpu march: {name} is on device {t.device}; the fused-cpu backend runs on the CPU only "
                "(move the tensors with .cpu(), or use backend='grid_sample' on other devices)"
            )
    if data.dim() != 4 or min(data.shape) < 1:
        raise ValueError(
            f"fused-cpu march: data: expected shape (C, D, H, W) with every size >= 1, got {tuple(data.shape)}"
        )
    if data.dtype not in (torch.float32, torch.float64):
        raise ValueError(f"fused-cpu march: data: expected float32 or float64, got {data.dtype}")
    if origins.dim() != 2 or origins.shape[1] != 3:
        raise ValueError(f"fused-cpu march: origins: expected shape (R, 3), got {tuple(origins.shape)}")
    R = origins.shape[0]
    for name, t, shape in (
        ("directions", directions, (R, 3)),
        ("near", near, (R,)),
        ("far", far, (R,)),
        ("n_samples", n_samples, (R,)),
    ):
        if tuple(t.shape) != shape:
            raise ValueError(f"fused-cpu march: {name}: expected shape {shape} (R = {R} rays), got {tuple(t.shape)}")
    for name, t in (("origins", origins), ("directions", directions), ("near", near), ("far", far)):
        if t.dtype not in (torch.float32, torch.float64):
            raise ValueError(f"fused-cpu march: {name}: expected float32 or float64, got {t.dtype}")
    if n_samples.is_floating_point() or n_samples.is_complex() or n_samples.dtype == torch.bool:
        raise ValueError(f"fused-cpu march: n_samples: expected an integer tensor, got {n_samples.dtype}")
    if isinstance(max_samples, bool) or not isinstance(max_samples, int) or max_samples < 0:
        raise ValueError(f"fused-cpu march: max_samples: expected an int >= 0, got {max_samples!r}")
    if R:  # the counts are CPU memory the kernel reads anyway: a numpy view, no device sync
        counts = n_samples.detach().numpy()
        lo, hi = int(counts.min()), int(counts.max())
        if lo < 0 or hi > max_samples:
            raise ValueError(
                f"fused-cpu march: n_samples: expected values in [0, max_samples = {max_samples}], got [{lo}, {hi}]"
            )


def fused_march(
    data: Float[Tensor, "C D H W"],
    origins: Float[Tensor, "R 3"],
    directions: Float[Tensor, "R 3"],
    near: Float[Tensor, " R"],
    far: Float[Tensor, " R"],
    n_samples: Int[Tensor, " R"],
    max_samples: int,
) -> Float[Tensor, "R C"]:
    """Integrate ``data`` along rays with the fused CPU kernel (see `RenderBackend.march`).

    Differentiable (first order) in ``data``, ``origins``, ``directions``, ``near`` and ``far``.
    The result has the promoted floating dtype of those five tensors.

    Raises:
        ValueError: a tensor not on the CPU (including ``meta``), wrong shapes or dtypes,
            sample counts outside ``[0, max_samples]``.
        TypeError: an argument that is not a tensor.

    Examples:
        >>> import torch
        >>> from xrender.render.fused_cpu import fused_march
        >>> data = torch.ones(1, 4, 4, 4, dtype=torch.float64, requires_grad=True)
        >>> origins = torch.tensor([[-1.0, 1.5, 1.5]], dtype=torch.float64)  # index space (i, j, k)
        >>> directions = torch.tensor([[1.0, 0.0, 0.0]], dtype=torch.float64)  # one voxel per step along i
        >>> near, far = torch.tensor([0.0], dtype=torch.float64), torch.tensor([5.0], dtype=torch.float64)
        >>> integral = fused_march(data, origins, directions, near, far, torch.tensor([50]), 50)
        >>> round(integral.item(), 6)  # 3 voxels inside plus two half-voxel ramps to the zero padding
        4.0
        >>> integral.sum().backward()  # first-order gradients reach the volume
        >>> round(data.grad.sum().item(), 6)
        4.0
    """
    _check_inputs(data, origins, directions, near, far, n_samples, max_samples)
    if torch.is_grad_enabled() and any(t.requires_grad for t in (data, origins, directions, near, far)):
        return _FusedMarch.apply(data, origins, directions, near, far, n_samples)
    return _march(data, origins, directions, near, far, n_samples, need_jac=False)[0]  # no graph to record


def fused_march_jacobian(
    data: Float[Tensor, "C D H W"],
    origins: Float[Tensor, "R 3"],
    directions: Float[Tensor, "R 3"],
    near: Float[Tensor, " R"],
    far: Float[Tensor, " R"],
    n_samples: Int[Tensor, " R"],
    max_samples: int,
) -> tuple[Float[Tensor, "R C"], Float[Tensor, "R C 8"]]:
    """The integrals of `fused_march` and each ray's Jacobian with respect to its own geometry.

    ``jacobian[r, c]`` is ``∂ out[r, c] / ∂ (origin (3), direction (3), near, far)`` — what
    `RenderBackend.march_jacobian` returns. Both outputs are linear in ``data`` and
    differentiable with respect to it (first order, one scatter pass); the rays are constants.

    Raises:
        ValueError: as `fused_march`, or ray tensors that require grad.

    Examples:
        >>> import torch
        >>> from xrender.render.fused_cpu import fused_march, fused_march_jacobian
        >>> data = torch.rand(1, 4, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
        >>> origins = torch.tensor([[-1.0, 1.5, 1.2]], dtype=torch.float64)
        >>> directions = torch.tensor([[1.0, 0.1, 0.0]], dtype=torch.float64)
        >>> near, far = torch.tensor([0.0], dtype=torch.float64), torch.tensor([5.0], dtype=torch.float64)
        >>> counts = torch.tensor([32])
        >>> integrals, jacobian = fused_march_jacobian(data, origins, directions, near, far, counts, 32)
        >>> jacobian.shape  # (R, C, origin 3 + direction 3 + near + far)
        torch.Size([1, 1, 8])
        >>> h = 1e-6
        >>> step = torch.tensor([[0.0, h, 0.0]], dtype=torch.float64)
        >>> shifted = fused_march(data, origins + step, directions, near, far, counts, 32)
        >>> torch.allclose(jacobian[..., 1], (shifted - integrals) / h, atol=1e-4)  # ∂ / ∂ origin j
        True
    """
    _check_inputs(data, origins, directions, near, far, n_samples, max_samples)
    for name, t in (("origins", origins), ("directions", directions), ("near", near), ("far", far)):
        if t.requires_grad:
            raise ValueError(
                f"fused-cpu march_jacobian: {name} requires grad, but the ray Jacobian is differentiable only with "
                "respect to the volume; detach the rays (their derivatives are the Jacobian itself)"
            )
    if torch.is_grad_enabled() and data.requires_grad:
        return _FusedMarchJacobian.apply(data, origins, directions, near, far, n_samples)
    out, jac = _march(data, origins, directions, near, far, n_samples, need_jac=True)
    return out, jac.to(out.dtype)


class FusedCPUBackend(RenderBackend):
    """Fused numba ray marcher for CPU tensors (first-order gradients only).

    Each ray is marched by one thread without materialising its samples; volume gradients are
    computed only when the volume requires grad. Use ``backend="grid_sample"`` for second-order
    gradients or non-CPU devices.

    Examples:
        >>> import torch
        >>> from xrender.render import BACKENDS, GridSampleBackend
        >>> fused = BACKENDS.get("fused-cpu")
        >>> fused, fused.supports_jacobian, fused.supports_double_backward
        (FusedCPUBackend(), True, False)
        >>> data = torch.rand(1, 4, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
        >>> origins = torch.tensor([[-1.0, 1.5, 1.2], [0.3, -1.0, 2.0]], dtype=torch.float64)
        >>> directions = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.8, 0.6]], dtype=torch.float64)
        >>> near, far = torch.zeros(2, dtype=torch.float64), torch.full((2,), 5.0, dtype=torch.float64)
        >>> rays = (origins, directions, near, far, torch.tensor([20, 20]), 20)
        >>> torch.allclose(fused.march(data, *rays), GridSampleBackend().march(data, *rays))
        True
    """

    supports_double_backward = False
    supports_jacobian = True
    channels_last = True
    device_types = ("cpu",)

    #: `RenderBackend.march`: `fused_march`.
    march = staticmethod(fused_march)

    #: `RenderBackend.march_jacobian`: `fused_march_jacobian`.
    march_jacobian = staticmethod(fused_march_jacobian)

    def __repr__(self) -> str:
        return "FusedCPUBackend()"


if "fused-cpu" not in BACKENDS:
    BACKENDS.register("fused-cpu", FusedCPUBackend)
