"""Figures a person would rather look at than read: orthogonal slices with landmarks, and the
results of a registration — an X-ray with the DRR's edges on top, capture-range curves, and
animated GIFs of an optimisation.

Figures are built with `matplotlib.figure.Figure` directly (no pyplot state, no GUI
backend), so they work on headless machines and inside libraries.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import torch
from jaxtyping import Float, UInt8
from matplotlib.figure import Figure
from PIL import Image
from torch import Tensor
from torch.nn.functional import conv2d, pad

from xrender._checks import check_finite, check_shape
from xrender.io import atomic_output, match_suffix
from xrender.landmarks import Landmarks
from xrender.metrics import CaptureRange
from xrender.render.output import window_8bit
from xrender.volume import Volume

__all__ = [
    "EDGE_COLOR",
    "EDGE_FRACTION",
    "overlay_frame",
    "plot_capture_range",
    "plot_drr_with_landmarks",
    "plot_orthogonal_slices",
    "plot_registration_overlay",
    "save_figure",
    "write_gif",
]

# (title, world axis fixed by the slice, world axes shown (horizontal, vertical), vertical axis points up)
_PLANES = (
    ("axial", 2, (0, 1), False),
    ("coronal", 1, (0, 2), True),
    ("sagittal", 0, (1, 2), True),
)
_AXIS_LABELS = ("x: right → left (mm)", "y: anterior → posterior (mm)", "z: inferior → superior (mm)")


def _in_plane_labels(landmarks: Landmarks | None, h: int, v: int) -> dict[tuple[float, float], str]:
    """Landmarks projected onto the plane of world axes ``(h, v)``; names landing within 1 mm share a label."""
    labels: dict[tuple[float, float], str] = {}
    if landmarks is None:
        return labels
    for name, point in zip(landmarks.names, landmarks.points.detach().cpu().double().tolist()):
        key = (round(point[h]), round(point[v]))
        labels[key] = f"{labels[key]}/{name}" if key in labels else name
    return labels


def plot_orthogonal_slices(
    volume: Volume,
    landmarks: Landmarks | None = None,
    *,
    window: tuple[float, float] = (-400.0, 1200.0),
    title: str | None = None,
) -> Figure:
    """Axial, coronal and sagittal slices through the isocentre, with landmarks overlaid.

    Shown in the radiological convention: the patient's right on the image's left, anterior up
    in the axial view, superior up in the coronal and sagittal views; axes in world mm (LPS).
    The volume is first reoriented to the closest world-aligned (LPS) voxel order with
    SimpleITK's ``DICOMOrient`` (exact for axis-aligned scans). Every landmark is drawn at its
    in-plane position on every view (projected along the slice's normal) and labelled.

    Args:
        volume: the volume; its first channel is shown.
        landmarks: named world points in mm (LPS) to overlay.
        window: display range of the voxel values (default: a bone-and-tissue HU window).
        title: figure title.

    Returns:
        A matplotlib figure with three panels.
    """
    image = sitk.DICOMOrient(volume.with_data(volume.data[:1]).to_sitk(), "LPS")
    array = sitk.GetArrayFromImage(image).transpose(2, 1, 0)  # world-ordered (x, y, z)
    origin, spacing = np.array(image.GetOrigin()), np.array(image.GetSpacing())
    lower, upper = origin - spacing / 2, origin + spacing * (np.array(image.GetSize()) - 0.5)
    iso = np.round((volume.isocenter.detach().cpu().double().numpy() - origin) / spacing).astype(int)
    iso = np.clip(iso, 0, np.array(array.shape) - 1)

    fig = Figure(figsize=(15, 5.4), layout="constrained")
    for ax, (name, fixed, (h, v), up) in zip(fig.subplots(1, 3), _PLANES):
        plane = np.take(array, iso[fixed], axis=fixed).T  # rows along the vertical world axis
        extent = (lower[h], upper[h], lower[v], upper[v]) if up else (lower[h], upper[h], upper[v], lower[v])
        ax.imshow(plane, cmap="gray", vmin=window[0], vmax=window[1], extent=extent, origin="lower" if up else "upper")
        for (x, y), label in _in_plane_labels(landmarks, h, v).items():
            ax.plot(x, y, "o", ms=5, mfc="none", mec="tab:orange", mew=1.5)
            ax.annotate(label, (x, y), xytext=(3, 3), textcoords="offset points", fontsize=7, color="tab:orange")
        ax.set_title(name)
        ax.set_xlabel(_AXIS_LABELS[h])
        ax.set_ylabel(_AXIS_LABELS[v])
    if title:
        fig.suptitle(title)
    return fig


def plot_drr_with_landmarks(
    image: Tensor,
    pixels: Tensor | None = None,
    names: tuple[str, ...] = (),
    *,
    title: str | None = None,
) -> Figure:
    """A DRR ``(H, W)`` shown as the detector sees it, with points ``(N, 2)`` in pixels ``(u, v)`` marked.

    Pixel ``(0, 0)`` is the centre of the top-left pixel, as everywhere in xrender.
    """
    fig = Figure(figsize=(6, 6), layout="constrained")
    ax = fig.subplots()
    height, width = image.shape[-2:]
    ax.imshow(image.detach().cpu().numpy(), cmap="gray", extent=(-0.5, width - 0.5, height - 0.5, -0.5))
    if pixels is not None:
        uv = pixels.detach().cpu().double().numpy()
        ax.plot(uv[:, 0], uv[:, 1], "+", color="tab:orange", ms=8, mew=1.5)
        for name, (u, v) in zip(names, uv):
            ax.annotate(name, (u, v), xytext=(3, 3), textcoords="offset points", fontsize=7, color="tab:orange")
    ax.set_xlabel("u (columns)")
    ax.set_ylabel("v (rows)")
    if title:
        ax.set_title(title)
    return fig


def save_figure(figure: Figure, path: str | os.PathLike, dpi: int = 120) -> Path:
    """Save ``figure`` to ``path`` atomically (`xrender.io.atomic_output`), creating parent folders."""
    with atomic_output(path) as staging:
        figure.savefig(staging, dpi=dpi)
    return Path(path)


# ------------------------------------------------------------------------------ registration
#: RGB colour of the DRR's edges in `overlay_frame`.
EDGE_COLOR = (255, 140, 0)

#: A DRR edge needs a gradient magnitude of at least this fraction of the DRR's largest.
EDGE_FRACTION = 0.2


def _image_2d(image: Tensor, name: str) -> Tensor:
    """``image`` as a finite float64 ``(H, W)`` tensor; leading dimensions of size 1 are dropped."""
    check_shape(image, "* H W", name)
    if image.dim() > 2 and image.shape[:-2].numel() != 1:
        raise ValueError(f"{name}: expected one image (H, W) or (1, …, 1, H, W), got shape {tuple(image.shape)}")
    return check_finite(image.detach().cpu().double().reshape(image.shape[-2:]), name)


#: Neighbour offsets ``(row, column)`` across an edge whose gradient points at 0°, 45°, 90°, 135°.
_ACROSS = ((0, 1), (1, 1), (1, 0), (1, -1))


def _gaussian_sobel_kernels(dtype: torch.dtype) -> Tensor:
    """``(2, 1, 7, 7)``: a 5-tap Gaussian (σ = 1 pixel) followed by Sobel ``d/du`` and ``d/dv`` (÷ 8)."""
    taps = torch.exp(-0.5 * torch.arange(-2.0, 3.0, dtype=dtype) ** 2)
    gaussian = torch.outer(taps, taps) / taps.sum() ** 2
    smooth = torch.tensor([1.0, 2.0, 1.0], dtype=dtype)
    slope = torch.tensor([-1.0, 0.0, 1.0], dtype=dtype)
    sobel_u, sobel_v = torch.outer(smooth, slope) / 8, torch.outer(slope, smooth) / 8
    # smoothing then differentiating (two correlations) is one correlation with the kernels'
    # convolution, which conv2d (itself a correlation) computes with the Sobel kernels flipped
    sobel = torch.stack([sobel_u, sobel_v]).flip(-2, -1)[:, None]
    return conv2d(pad(gaussian[None, None], (1, 1, 1, 1)), sobel, padding=1)[0][:, None]


def _edges(drr: Tensor, fraction: float) -> Tensor:
    """Boolean ``(H, W)``: thin edges of ``drr`` (a Canny detector without hysteresis).

    The DRR is smoothed (Gaussian, σ = 1 pixel), its Sobel gradient taken (borders replicated),
    and a pixel is an edge where the gradient magnitude is a local maximum across the edge
    (along the gradient, quantised to 45°) and at least ``fraction`` of the largest magnitude.
    """
    height, width = drr.shape
    padded_drr = pad(drr[None, None], (3, 3, 3, 3), mode="replicate")
    gradient = conv2d(padded_drr, _gaussian_sobel_kernels(drr.dtype))[0]  # (2, H, W): d/du, d/dv
    magnitude = torch.linalg.vector_norm(gradient, dim=0)
    peak = magnitude.max()
    if not bool(peak > 1e-9 * drr.abs().max()):  # a constant DRR has no edges, only rounding errors
        return torch.zeros_like(drr, dtype=torch.bool)
    angle = torch.rad2deg(torch.atan2(gradient[1], gradient[0])) % 180
    sector = torch.round(angle / 45).long() % 4
    padded = pad(magnitude[None], (1, 1, 1, 1))[0]
    local_max = torch.zeros_like(drr, dtype=torch.bool)
    for index, (dv, du) in enumerate(_ACROSS):
        ahead = padded[1 + dv : 1 + dv + height, 1 + du : 1 + du + width]
        behind = padded[1 - dv : 1 - dv + height, 1 - du : 1 - du + width]
        local_max |= (sector == index) & (magnitude >= ahead) & (magnitude > behind)
    return local_max & (magnitude >= fraction * peak)


def overlay_frame(
    xray: Float[Tensor, "H W"],
    drr: Float[Tensor, "H W"],
    *,
    color: tuple[int, int, int] = EDGE_COLOR,
    edge_fraction: float = EDGE_FRACTION,
) -> UInt8[np.ndarray, "H W 3"]:
    """The X-ray in grey with the DRR's edges painted on it, as an RGB array.

    The X-ray is windowed to 8 bits between its 1st and 99th percentiles
    (`xrender.render.output.window_8bit`). The DRR's edges are one pixel wide: after Gaussian
    smoothing (σ = 1 pixel), the pixels where the Sobel gradient magnitude peaks across the edge
    and reaches ``edge_fraction`` of the DRR's largest (Canny's detector without hysteresis); a
    constant DRR has none. Where the edges lie on the anatomy's edges in the X-ray, the poses
    agree.

    Args:
        xray: the X-ray ``(H, W)``, any intensity scale (``(1, 1, H, W)`` and other shapes with
            leading ones are accepted too).
        drr: the DRR ``(H, W)`` rendered on the same detector.
        color: RGB of the edges, 0–255.
        edge_fraction: edge threshold relative to the largest gradient, in ``(0, 1]``.

    Returns:
        ``(H, W, 3)`` uint8, row 0 at the top (pixel ``(u, v)`` is ``[v, u]``).

    Raises:
        ValueError: a wrong shape, NaN or infinite values, images of different sizes, a colour
            outside 0–255, or an ``edge_fraction`` outside ``(0, 1]``.
    """
    xray, drr = _image_2d(xray, "xray"), _image_2d(drr, "drr")
    if xray.shape != drr.shape:
        raise ValueError(f"overlay_frame: the X-ray is {tuple(xray.shape)} but the DRR is {tuple(drr.shape)}")
    if len(color) != 3 or not all(0 <= c <= 255 for c in color):
        raise ValueError(f"overlay_frame: expected an RGB colour of three values in 0–255, got {color!r}")
    if not 0 < edge_fraction <= 1:
        raise ValueError(f"overlay_frame: expected edge_fraction in (0, 1], got {edge_fraction!r}")
    gray = window_8bit(xray)
    rgb = np.repeat(gray[..., None], 3, axis=-1)
    rgb[_edges(drr, edge_fraction).numpy()] = np.asarray(color, dtype=np.uint8)
    return rgb


def _landmark_pixels(points: Tensor | None, name: str) -> np.ndarray | None:
    if points is None:
        return None
    return check_shape(points, "N 2", name).detach().cpu().double().numpy()


def plot_registration_overlay(
    xray: Float[Tensor, "H W"],
    drr: Float[Tensor, "H W"],
    *,
    title: str = "",
    true_pixels: Float[Tensor, "N 2"] | None = None,
    estimated_pixels: Float[Tensor, "N 2"] | None = None,
) -> Figure:
    """The X-ray in grey with the DRR's edges overlaid (`overlay_frame`), and landmarks.

    Landmarks are pixels ``(u, v)`` = (column, row), ``(0, 0)`` the centre of the top-left
    pixel: true positions as circles, estimated ones (e.g. projected with the registered pose)
    as crosses, and, when both hold the same number of points, a line from each true point to
    its estimate.

    Args:
        xray: the X-ray ``(H, W)``.
        drr: the DRR ``(H, W)`` at the pose to show.
        title: the axes title.
        true_pixels: ``(N, 2)`` true landmark pixels, or ``None``.
        estimated_pixels: ``(M, 2)`` estimated landmark pixels, or ``None``.

    Returns:
        A figure with one axes.

    Raises:
        ValueError: wrong shapes or images of different sizes.
    """
    rgb = overlay_frame(xray, drr)
    true_uv = _landmark_pixels(true_pixels, "true_pixels")
    estimated_uv = _landmark_pixels(estimated_pixels, "estimated_pixels")
    height, width = rgb.shape[:2]
    fig = Figure(figsize=(6, 6), layout="constrained")
    ax = fig.subplots()
    ax.imshow(rgb, extent=(-0.5, width - 0.5, height - 0.5, -0.5))
    if true_uv is not None and estimated_uv is not None and len(true_uv) == len(estimated_uv):
        for (u0, v0), (u1, v1) in zip(true_uv, estimated_uv):
            ax.plot([u0, u1], [v0, v1], "-", color="tab:cyan", lw=0.8)
    if true_uv is not None:
        ax.plot(true_uv[:, 0], true_uv[:, 1], "o", ms=7, mfc="none", mec="tab:green", mew=1.5, label="true")
    if estimated_uv is not None:
        ax.plot(estimated_uv[:, 0], estimated_uv[:, 1], "x", ms=7, color="tab:red", mew=1.5, label="estimated")
    if true_uv is not None or estimated_uv is not None:
        ax.legend(loc="upper right", fontsize=8)
    ax.set_xlim(-0.5, width - 0.5)
    ax.set_ylim(height - 0.5, -0.5)
    ax.set_xlabel("u (columns)")
    ax.set_ylabel("v (rows)")
    if title:
        ax.set_title(title)
    return fig


def plot_capture_range(ranges: Mapping[str, CaptureRange], *, threshold_mm: float = 10.0) -> Figure:
    """Success against the initial mean TRE, per method: how far from the truth it still converges.

    For each method (`xrender.metrics.capture_range`): the success rate of each bin at the bin
    centre, with its Wilson interval as an error bar (empty bins are left out; methods are offset
    a little sideways so their bars do not hide each other), the fitted logistic curve, and R50 —
    where the curve crosses 50 % — as a diamond on the dashed 50 % line with its bootstrap interval
    as a horizontal bar (clipped to the axis). The legend, below the axes, gives each method's successes and R50.
    The x axis runs from the smallest to the largest bin edge, in mm.

    Args:
        ranges: method name → its `CaptureRange`, in legend order.
        threshold_mm: the final TRE below which a run counts as a success, for the axis label.

    Returns:
        A figure with one axes.

    Raises:
        ValueError: no methods, or something that is not a `CaptureRange`.
    """
    if not ranges:
        raise ValueError("plot_capture_range: expected at least one method")
    for method, capture in ranges.items():
        if not isinstance(capture, CaptureRange):
            raise ValueError(
                f"plot_capture_range: {method!r}: expected a CaptureRange (xrender.metrics.capture_range), "
                f"got {type(capture).__name__}"
            )
    low = min(c.edges_mm[0] for c in ranges.values())
    high = max(c.edges_mm[-1] for c in ranges.values())
    narrowest = min(float(np.diff(c.edges_mm).min()) for c in ranges.values())
    curve = np.linspace(low, high, 400)

    fig = Figure(figsize=(7, 4.2 + 0.2 * len(ranges)), layout="constrained")
    ax = fig.subplots()
    ax.axhline(0.5, color="0.6", lw=0.8, ls="--")
    for k, (method, capture) in enumerate(ranges.items()):
        color = f"C{k}"
        edges = np.asarray(capture.edges_mm)
        shift = (k - (len(ranges) - 1) / 2) * 0.12 * narrowest / max(1, len(ranges) - 1)
        filled = [i for i, rate in enumerate(capture.rates) if rate is not None]
        centres = (edges[:-1] + edges[1:])[filled] / 2 + shift
        rates = np.array([capture.rates[i] for i in filled], dtype=np.float64)
        bounds = np.array([capture.intervals[i] for i in filled], dtype=np.float64).reshape(-1, 2)
        ax.errorbar(centres, rates, yerr=[rates - bounds[:, 0], bounds[:, 1] - rates], fmt="o", color=color, capsize=3)
        never = "" if math.isfinite(capture.r50_mm) else " (never below 50 %)"
        label = f"{method} ({sum(capture.successes)}/{sum(capture.counts)}): R50 {capture.r50_text()}{never}"
        ax.plot(curve, capture.success_probability(curve), "-", color=color, label=label)
        if low <= capture.r50_mm <= high:
            ci = np.clip(np.asarray(capture.r50_ci_mm), low, high)
            ax.errorbar(
                [capture.r50_mm],
                [0.5],
                xerr=[[capture.r50_mm - min(ci[0], capture.r50_mm)], [max(ci[1], capture.r50_mm) - capture.r50_mm]],
                fmt="D",
                color=color,
                ms=7,
                mec="black",
                capsize=4,
            )
    ax.set_xlim(low, high)
    ax.set_ylim(-0.03, 1.03)
    ax.set_xlabel("initial mean TRE (mm)")
    ax.set_ylabel(f"success rate (final TRE < {threshold_mm:g} mm)")
    ax.grid(alpha=0.3)
    fig.legend(fontsize=8, loc="outside lower center")
    return fig


def _gif_frames(frames: Sequence[Tensor | np.ndarray]) -> list[np.ndarray]:
    """uint8 ``(H, W)`` or ``(H, W, 3)`` arrays; grey float frames share one window."""
    arrays = [f.detach().cpu().numpy() if isinstance(f, Tensor) else np.asarray(f) for f in frames]
    for index, array in enumerate(arrays):
        rgb = array.ndim == 3 and array.shape[-1] == 3 and array.dtype == np.uint8
        if array.ndim != 2 and not rgb:
            raise ValueError(
                f"write_gif: frame {index}: expected a grey (H, W) image or a uint8 RGB (H, W, 3) image, "
                f"got shape {array.shape} and dtype {array.dtype}"
            )
        if not np.isfinite(array).all():
            raise ValueError(f"write_gif: frame {index} holds NaN or infinite values")
    sizes = {array.shape[:2] for array in arrays}
    if len(sizes) > 1:
        raise ValueError(f"write_gif: the frames differ in size: {sorted(sizes)} (H, W)")
    gray = [i for i, a in enumerate(arrays) if a.ndim == 2 and a.dtype != np.uint8]
    if gray:
        stacked = window_8bit(torch.from_numpy(np.stack([arrays[i] for i in gray]).astype(np.float64)))
        for i, windowed in zip(gray, stacked):
            arrays[i] = windowed
    if any(a.ndim == 3 for a in arrays):
        arrays = [np.repeat(a[..., None], 3, axis=-1) if a.ndim == 2 else a for a in arrays]
    return arrays


def write_gif(
    frames: Sequence[Float[Tensor, "H W"]] | Sequence[np.ndarray],
    path: str | os.PathLike,
    *,
    fps: float = 8.0,
) -> Path:
    """Write an animated GIF that loops forever, e.g. of `overlay_frame` during an optimisation.

    Frames are grey images ``(H, W)`` (tensors or arrays) or RGB ``(H, W, 3)`` uint8 arrays.
    Grey frames that are not already uint8 are windowed to 8 bits together, with one window for
    the whole sequence (`xrender.render.output.window_8bit` of all of them), so brightness can be
    compared between frames. Pillow stores identical consecutive frames once, with their summed
    duration, so the animation plays the same. The file is written atomically
    (`xrender.io.atomic_output`).

    Args:
        frames: the frames, all of the same ``H × W``.
        path: the output ``.gif`` file; parent folders are created.
        fps: frames per second (> 0). GIF counts time in hundredths of a second, so each frame
            lasts ``100 / fps`` of them rounded (at least one): 8 fps plays at 120 ms a frame.

    Returns:
        ``path`` as a `Path`.

    Raises:
        ValueError: no frames, frames of another shape or of different sizes, NaN or infinite
            values, a non-positive ``fps``, or a path not ending in ``.gif``.
    """
    path = Path(path)
    if match_suffix(path, (".gif",)) is None:
        raise ValueError(f"{path}: write_gif writes .gif files")
    if isinstance(fps, bool) or not (isinstance(fps, (int, float)) and 0 < fps < math.inf):
        raise ValueError(f"write_gif: expected fps > 0, got {fps!r}")
    if len(frames) == 0:
        raise ValueError("write_gif: expected at least one frame, got none")
    images = [Image.fromarray(array) for array in _gif_frames(frames)]
    with atomic_output(path) as staging:
        images[0].save(
            staging,
            format="GIF",
            save_all=True,
            append_images=images[1:],
            duration=10 * max(1, round(100 / fps)),
            loop=0,
        )
    return path
