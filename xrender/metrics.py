r"""Registration error metrics, each named for exactly what it measures.

* `target_registration_error`: the 3-D **mean TRE** — mean distance (mm) between target points
  placed by the estimated pose and by the true pose, measured in the camera frame. This is the TRE
  the ProST paper reports (success = mean TRE < 10 mm, `is_success`).
* `reprojection_distance`: the **mean reprojection distance** — the same points projected to the
  detector by both poses, compared there in detector mm (pixels × pixel spacing). It is *not* a
  TRE: in-plane errors appear enlarged by the magnification sdd/sid, errors along the rays barely
  show — and as most of a single view's error lies in depth, it is usually the smaller number.
* `rotation_error`: the angle (degrees) of the rotation between the two poses.
* `translation_error`: how far (mm) the volume's isocentre is from where the true pose puts it,
  in the camera frame — the translation error of the volume motion about the isocentre, so
  it does not mix in the rotation error the way a camera-centre distance would.
* `depth_error`: the signed part of that isocentre offset along the camera's +z (mm, + when the
  estimate puts the volume farther from the source) — the direction a single view sees least.

And over many registrations, how far from the truth a method still converges:

* `capture_range`: success against the initial mean TRE — per-bin success rates with Wilson
  intervals (`wilson_interval`), a logistic fit of success on the initial TRE, **R50** (the
  initial mean TRE at which the fitted success falls to 50 %) and a bootstrap interval of R50,
  as a `CaptureRange`.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from jaxtyping import Bool, Float
from torch import Tensor

from xrender._checks import check_finite, check_positive, check_shape
from xrender.geometry.camera import ConeBeam, project
from xrender.geometry.se3 import invert, pose_rotation, so3_angle, transform_points

__all__ = [
    "LOGISTIC_SCALE_MM",
    "SUCCESS_TRE_MM",
    "CaptureRange",
    "capture_range",
    "depth_error",
    "is_success",
    "reprojection_distance",
    "rotation_error",
    "target_registration_error",
    "translation_error",
    "wilson_interval",
]

#: A registration succeeds when its mean TRE is below this (mm), as in the ProST paper.
SUCCESS_TRE_MM = 10.0


def target_registration_error(
    estimate: Float[Tensor, "*B 4 4"], truth: Float[Tensor, "*B 4 4"], points: Float[Tensor, "*B N 3"]
) -> Float[Tensor, "*B"]:
    r"""Mean 3-D distance (mm) between ``points`` seen from the estimated and the true camera.

    $$
    \text{TRE} = \frac1N \sum_i \big\| T_\text{est}^{-1} p_i - T_\text{true}^{-1} p_i \big\|
    $$

    Args:
        estimate: estimated camera-to-world poses.
        truth: true camera-to-world poses (batch shape broadcasting with ``estimate``'s).
        points: world points (mm), e.g. anatomical landmarks, ``(N, 3)`` or batched.

    Returns:
        Mean TRE per pose, mm.

    Raises:
        ValueError: malformed shapes, no points, or NaN/inf.
    """
    return _camera_offsets(estimate, truth, points).norm(dim=-1).mean(-1)


def _camera_offsets(estimate: Tensor, truth: Tensor, points: Tensor, name: str = "points") -> Tensor:
    """``T_est⁻¹ p − T_true⁻¹ p`` per point (camera frame, mm), after checking the three inputs."""
    for value, pattern, label in (
        (estimate, "* 4 4", "estimate"),
        (truth, "* 4 4", "truth"),
        (points, "* N 3", name),
    ):
        check_finite(check_shape(value, pattern, label), label)
    if points.shape[-2] == 0:
        raise ValueError(f"{name}: expected at least one point, got 0")
    points = points.to(estimate.dtype)
    return transform_points(invert(estimate), points) - transform_points(invert(truth.to(estimate.dtype)), points)


def _check_poses(estimate: Tensor, truth: Tensor) -> None:
    for value, name in ((estimate, "estimate"), (truth, "truth")):
        check_finite(check_shape(value, "* 4 4", name), name)


def rotation_error(estimate: Float[Tensor, "*B 4 4"], truth: Float[Tensor, "*B 4 4"]) -> Float[Tensor, "*B"]:
    r"""Angle (degrees) of the rotation between the poses: $\angle(R_\text{est}^\top R_\text{true})$.

    Raises:
        ValueError: malformed shapes or NaN/inf.
    """
    _check_poses(estimate, truth)
    return so3_angle(pose_rotation(estimate), pose_rotation(truth.to(estimate.dtype))) * (180.0 / math.pi)


def translation_error(
    estimate: Float[Tensor, "*B 4 4"], truth: Float[Tensor, "*B 4 4"], isocenter: Float[Tensor, "*B 3"]
) -> Float[Tensor, "*B"]:
    r"""Distance (mm) between the isocentre as seen by the estimated and by the true camera.

    $\| T_\text{est}^{-1} c - T_\text{true}^{-1} c \|$ — the translation part of the volume
    motion between the poses, about the isocentre $c$ (world mm).

    Raises:
        ValueError: malformed shapes or NaN/inf.
    """
    check_shape(isocenter, "* 3", "isocenter")
    return _camera_offsets(estimate, truth, isocenter.unsqueeze(-2), "isocenter")[..., 0, :].norm(dim=-1)


def depth_error(
    estimate: Float[Tensor, "*B 4 4"], truth: Float[Tensor, "*B 4 4"], isocenter: Float[Tensor, "*B 3"]
) -> Float[Tensor, "*B"]:
    r"""Signed depth error (mm): the camera-frame +z part of $T_\text{est}^{-1} c - T_\text{true}^{-1} c$.

    The component of `translation_error`'s offset along the rays: positive when the estimated
    pose puts the isocentre $c$ (world mm) farther from the source than the true pose does (a
    smaller projection), negative when nearer.

    Raises:
        ValueError: malformed shapes or NaN/inf.

    Examples:
        >>> import torch
        >>> from xrender.metrics import depth_error
        >>> truth = torch.eye(4, dtype=torch.float64)
        >>> estimate = truth.clone()
        >>> estimate[:3, 3] = torch.tensor([3.0, 0.0, -20.0])  # the camera moved 20 mm back, 3 mm aside
        >>> float(depth_error(estimate, truth, torch.tensor([0.0, 0.0, 600.0])))  # the volume looks farther
        20.0
    """
    check_shape(isocenter, "* 3", "isocenter")
    return _camera_offsets(estimate, truth, isocenter.unsqueeze(-2), "isocenter")[..., 0, 2]


def reprojection_distance(
    estimate: Float[Tensor, "*B 4 4"],
    truth: Float[Tensor, "*B 4 4"],
    points: Float[Tensor, "*B N 3"],
    geometry: ConeBeam,
) -> Float[Tensor, "*B"]:
    r"""Mean distance (detector mm) between ``points`` projected by the estimated and by the true pose.

    $\frac1N \sum_i \| (\pi(T_\text{est}, p_i) - \pi(T_\text{true}, p_i)) \odot s \|$ with $\pi$ the
    projection to pixels $(u, v)$ and $s$ the pixel spacing (mm per column, mm per row). Not a TRE.

    Raises:
        ValueError: malformed shapes, no points, or NaN/inf.
    """
    _check_poses(estimate, truth)
    check_finite(check_shape(points, "* N 3", "points"), "points")
    if points.shape[-2] == 0:
        raise ValueError("points: expected at least one point, got 0")
    points = points.to(estimate.dtype)
    K = geometry.intrinsics(dtype=estimate.dtype, device=estimate.device)
    spacing = estimate.new_tensor([geometry.pixel_spacing[1], geometry.pixel_spacing[0]])  # (u, v) = (column, row)
    difference = project(points, estimate, K) - project(points, truth.to(estimate.dtype), K)
    return (difference * spacing).norm(dim=-1).mean(-1)


def is_success(mean_tre_mm: Float[Tensor, "*B"], threshold_mm: float = SUCCESS_TRE_MM) -> Bool[Tensor, "*B"]:
    """``mean_tre_mm < threshold_mm`` (the ProST paper's success: 10 mm).

    Raises:
        ValueError: a threshold that is not a positive number.
    """
    check_positive(threshold_mm, "threshold_mm")
    return mean_tre_mm < threshold_mm


# --------------------------------------------------------------------------- capture range
#: The logistic fit works on initial TREs in units of this many mm (its ridge penalty is on that scale).
LOGISTIC_SCALE_MM = 100.0


def wilson_interval(successes: int, trials: int, confidence: float = 0.95) -> tuple[float, float]:
    r"""Wilson score interval of a success rate ``successes / trials``.

    $$
    \frac{\hat p + \frac{z^2}{2n} \pm z \sqrt{\frac{\hat p (1 - \hat p)}{n} + \frac{z^2}{4n^2}}}{1 + \frac{z^2}{n}}
    $$

    with $z$ the normal quantile of ``(1 + confidence) / 2`` (1.96 for 95 %). Unlike the normal
    approximation it stays inside [0, 1] and is not empty at 0 or ``n`` successes.

    Raises:
        ValueError: ``trials < 1``, ``successes`` outside ``[0, trials]``, or ``confidence``
            outside (0, 1).
    """
    if not (isinstance(trials, (int, np.integer)) and trials >= 1):
        raise ValueError(f"wilson_interval: expected trials >= 1, got {trials!r}")
    if not (isinstance(successes, (int, np.integer)) and 0 <= successes <= trials):
        raise ValueError(f"wilson_interval: expected 0 <= successes <= trials ({trials}), got {successes!r}")
    if not 0 < confidence < 1:
        raise ValueError(f"wilson_interval: expected 0 < confidence < 1, got {confidence!r}")
    z = statistics.NormalDist().inv_cdf(0.5 + confidence / 2)
    n, rate = float(trials), successes / trials
    centre = (rate + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(rate * (1 - rate) / n + z * z / (4 * n * n))
    return max(0.0, min(rate, centre - half)), min(1.0, max(rate, centre + half))  # it holds the rate; no round-off


def _log_likelihood(theta: np.ndarray, z: np.ndarray, y: np.ndarray, weights: np.ndarray, ridge: float) -> np.ndarray:
    eta = theta[:, :1] + theta[:, 1:] * z
    return (weights * (y * eta - np.logaddexp(0.0, eta))).sum(1) - 0.5 * ridge * (theta**2).sum(1)


def _fit_logistic(z: np.ndarray, y: np.ndarray, weights: np.ndarray, ridge: float) -> np.ndarray:
    """Penalised logistic fits ``(B, 2)`` = (a, b) of ``y ~ σ(a + b z)``, one per row of ``weights`` ``(B, n)``.

    Newton's method (IRLS) with step halving, until the Newton decrement is below 1e-10: the ridge
    makes the objective strictly concave, so it converges, to a finite optimum even for separated data.
    """
    theta = np.zeros((weights.shape[0], 2))
    current = _log_likelihood(theta, z, y, weights, ridge)
    eye = ridge * np.eye(2)
    for _ in range(100):
        eta = theta[:, :1] + theta[:, 1:] * z
        p = np.exp(-np.logaddexp(0.0, -eta))  # σ(η) without overflow
        residual = weights * (y - p)
        gradient = np.stack([residual.sum(1), (residual * z).sum(1)], 1) - ridge * theta
        w = weights * p * (1 - p)
        wz = (w * z).sum(1)
        hessian = np.stack([np.stack([w.sum(1), wz], -1), np.stack([wz, (w * z * z).sum(1)], -1)], 1) + eye
        step = np.linalg.solve(hessian, gradient[..., None])[..., 0]
        active = (gradient * step).sum(1) > 1e-10  # the Newton decrement: what a full step would gain
        if not active.any():
            break
        step[~active] = 0.0
        scale = np.ones(theta.shape[0])
        for _ in range(50):  # halve the step where it would lower the objective
            candidate = theta + scale[:, None] * step
            value = _log_likelihood(candidate, z, y, weights, ridge)
            worse = value < current
            if not worse.any():
                break
            scale = np.where(worse, scale / 2, scale)
        theta = np.where(worse[:, None], theta, candidate)
        current = np.where(worse, current, value)
    return theta


def _r50(intercept: np.ndarray, slope: np.ndarray) -> np.ndarray:
    """The smallest TRE ≥ 0 past which ``σ(a + b x) <= 1/2`` stays: ``max(0, -a/b)`` for ``b < 0``.

    For ``b > 0`` (success rising with the initial error) no such TRE exists: ∞. For ``b = 0``:
    0 when ``a <= 0``, else ∞.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        crossing = np.maximum(0.0, -intercept / np.where(slope < 0, slope, -1.0))
    flat = np.where(intercept <= 0, 0.0, np.inf)
    return np.where(slope < 0, crossing, np.where(slope > 0, np.inf, flat))


def _json_number(value: float) -> float | None:
    return value if math.isfinite(value) else None


@dataclass(frozen=True)
class CaptureRange:
    """Success against the initial mean TRE: binned rates, a logistic fit and R50 (see `capture_range`).

    Attributes:
        edges_mm: bin edges (mm), increasing.
        counts: trials per bin (a trial on the last edge belongs to the last bin).
        successes: successful trials per bin.
        rates: success rate per bin (``None`` for an empty bin).
        intervals: Wilson interval of each rate (``None`` for an empty bin).
        intercept: the logistic fit's ``a`` in ``P(success) = σ(a + b · TRE)``.
        slope_per_mm: its ``b`` (per mm).
        r50_mm: the initial mean TRE (mm) at which the fitted success falls to 50 %: ``-a/b``;
            0 when the fit is below 50 % already at 0 mm, ``inf`` when it never falls to 50 %.
        r50_ci_mm: the bootstrap percentile interval of R50 (mm; either end may be ``inf``).
        trials: trials in the fit (all of them, also those outside the bins).
        resamples: bootstrap resamples.
        confidence: the level of both kinds of interval.
    """

    edges_mm: tuple[float, ...]
    counts: tuple[int, ...]
    successes: tuple[int, ...]
    rates: tuple[float | None, ...]
    intervals: tuple[tuple[float, float] | None, ...]
    intercept: float
    slope_per_mm: float
    r50_mm: float
    r50_ci_mm: tuple[float, float]
    trials: int
    resamples: int
    confidence: float

    def success_probability(self, tre_mm: np.ndarray | Sequence[float] | float) -> np.ndarray:
        """The fitted success probability ``σ(a + b · TRE)`` at initial mean TREs (mm)."""
        eta = self.intercept + self.slope_per_mm * np.asarray(tre_mm, dtype=np.float64)
        return np.exp(-np.logaddexp(0.0, -eta))

    def r50_text(self, unit: str = " mm") -> str:
        """R50 and its interval, rounded to mm: ``"78 mm [72, 85]"``; an infinite value is ``∞``."""

        def mm(value: float) -> str:
            return f"{value:.0f}" if math.isfinite(value) else "∞"

        low, high = self.r50_ci_mm
        return f"{mm(self.r50_mm)}{unit} [{mm(low)}, {mm(high)}]"

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data; an infinite R50 or interval end becomes ``None`` (success never falls to 50 %)."""
        return {
            "bin_edges_mm": list(self.edges_mm),
            "counts": list(self.counts),
            "successes": list(self.successes),
            "rates": list(self.rates),
            "rate_intervals": [None if i is None else list(i) for i in self.intervals],
            "logistic_a": self.intercept,
            "logistic_b_per_mm": self.slope_per_mm,
            "r50_mm": _json_number(self.r50_mm),
            "r50_ci_mm": [_json_number(v) for v in self.r50_ci_mm],
            "trials": self.trials,
            "resamples": self.resamples,
            "confidence": self.confidence,
        }


def _as_vector(values: Tensor | np.ndarray | Sequence[float], name: str) -> np.ndarray:
    array = values.detach().cpu().numpy() if isinstance(values, Tensor) else np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"capture_range: {name}: expected shape (N,), got {array.shape}")
    return array


def capture_range(
    initial_tre_mm: Float[Tensor, " N"] | np.ndarray | Sequence[float],
    success: Bool[Tensor, " N"] | np.ndarray | Sequence[bool],
    edges_mm: Sequence[float],
    *,
    resamples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
    ridge: float = 1e-3,
) -> CaptureRange:
    r"""How far from the truth a method still converges: success against the initial mean TRE.

    * **Bins**: trials are counted per bin of initial mean TRE (``edges_mm``; a trial on the last
      edge belongs to the last bin, trials outside the edges to none), with each bin's success
      rate and its Wilson interval (`wilson_interval`).
    * **Logistic fit**: $P(\text{success} \mid x) = \sigma(a + b x)$ over *all* trials, $x$ the
      initial mean TRE, by Newton's method (IRLS) on the log-likelihood minus a small ridge
      penalty $\frac{\lambda}{2}\,(a^2 + (s\,b)^2)$, $s$ = `LOGISTIC_SCALE_MM` (100 mm), $\lambda$ =
      ``ridge``. The penalty keeps the fit finite when the data are separated: when every success
      has a smaller initial TRE than every failure, the fitted curve is a steep step inside the gap
      between them (R50 lies in the gap); when every trial succeeds, $b \ge 0$ and R50 is
      infinite; when every trial fails, R50 is 0.
    * **R50**: the smallest $x \ge 0$ past which $\sigma(a + b x) \le 1/2$ stays — $-a/b$ for
      $a > 0 > b$, 0 when a falling fit is at or below 50 % already at 0 mm, ``inf`` when it never
      falls to 50 % — including a fit that *rises* with the initial error ($b > 0$: e.g. one early
      failure among successes), which has no such point (no NaN in any case). A value beyond the
      largest initial TRE tried is an extrapolation.
    * **Bootstrap**: the trials are resampled with replacement ``resamples`` times (seeded), the
      fit is repeated on each resample, and the interval is the percentile interval of the
      resampled R50 values (order statistics, so infinite values are handled).

    Args:
        initial_tre_mm: the initial mean TRE of each trial ``(N,)``, mm, finite and ≥ 0.
        success: whether each trial succeeded ``(N,)``.
        edges_mm: increasing bin edges (mm), at least two.
        resamples: bootstrap resamples (≥ 1).
        seed: seeds the bootstrap (any int ≥ 0).
        confidence: the level of the Wilson and bootstrap intervals, in (0, 1).
        ridge: the penalty weight λ (> 0).

    Returns:
        A `CaptureRange`.

    Raises:
        ValueError: inputs of different lengths or no trials, negative or non-finite TREs,
            edges that are not increasing, or a bad ``resamples``, ``seed``, ``confidence`` or ``ridge``.
    """
    tre = _as_vector(initial_tre_mm, "initial_tre_mm").astype(np.float64)
    ok = _as_vector(success, "success").astype(bool)
    if tre.shape != ok.shape:
        raise ValueError(f"capture_range: {tre.size} initial TREs but {ok.size} success values")
    if tre.size == 0:
        raise ValueError("capture_range: expected at least one trial, got 0")
    if not (np.isfinite(tre).all() and (tre >= 0).all()):
        raise ValueError("capture_range: initial_tre_mm: expected finite values >= 0")
    edges = np.asarray(edges_mm, dtype=np.float64)
    if edges.ndim != 1 or edges.size < 2 or not np.isfinite(edges).all() or not (np.diff(edges) > 0).all():
        raise ValueError(f"capture_range: edges_mm: expected at least two increasing finite edges, got {edges_mm!r}")
    if isinstance(resamples, bool) or not isinstance(resamples, int) or resamples < 1:
        raise ValueError(f"capture_range: resamples: expected an int >= 1, got {resamples!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"capture_range: seed: expected an int >= 0, got {seed!r}")
    if not 0 < confidence < 1:
        raise ValueError(f"capture_range: confidence: expected a number in (0, 1), got {confidence!r}")
    if not (math.isfinite(ridge) and ridge > 0):
        raise ValueError(f"capture_range: ridge: expected a positive number, got {ridge!r}")

    counts, _ = np.histogram(tre, edges)
    hits, _ = np.histogram(tre[ok], edges)
    rates = tuple(None if n == 0 else int(k) / int(n) for k, n in zip(hits, counts))
    intervals = tuple(None if n == 0 else wilson_interval(int(k), int(n), confidence) for k, n in zip(hits, counts))

    z, y = tre / LOGISTIC_SCALE_MM, ok.astype(np.float64)
    rng = np.random.default_rng(seed)
    weights = np.vstack([np.ones(tre.size), rng.multinomial(tre.size, np.full(tre.size, 1.0 / tre.size), resamples)])
    theta = _fit_logistic(z, y, weights, ridge)
    r50 = _r50(theta[:, 0], theta[:, 1] / LOGISTIC_SCALE_MM)
    boot = np.sort(r50[1:])
    tail = (1 - confidence) / 2
    low = boot[min(resamples - 1, math.floor(tail * resamples))]
    high = boot[max(0, math.ceil((1 - tail) * resamples) - 1)]
    return CaptureRange(
        edges_mm=tuple(float(e) for e in edges),
        counts=tuple(int(n) for n in counts),
        successes=tuple(int(k) for k in hits),
        rates=rates,
        intervals=intervals,
        intercept=float(theta[0, 0]),
        slope_per_mm=float(theta[0, 1] / LOGISTIC_SCALE_MM),
        r50_mm=float(r50[0]),
        r50_ci_mm=(float(low), float(high)),
        trials=int(tre.size),
        resamples=resamples,
        confidence=float(confidence),
    )
