"""Registration figures: the X-ray with the DRR's edges, capture-range curves, animated GIFs."""

import math

import numpy as np
import pytest
import torch
from matplotlib.container import ErrorbarContainer
from PIL import Image

from xrender.metrics import capture_range, wilson_interval
from xrender.plot import (
    EDGE_COLOR,
    overlay_frame,
    plot_capture_range,
    plot_registration_overlay,
    save_figure,
    write_gif,
)
from xrender.render.output import window_8bit

# a bright square on rows 10–29, columns 15–34 of a 40 × 50 DRR
TOP, BOTTOM, LEFT, RIGHT = 10, 29, 15, 34


def _square(height=40, width=50) -> torch.Tensor:
    drr = torch.zeros(height, width, dtype=torch.float64)
    drr[TOP : BOTTOM + 1, LEFT : RIGHT + 1] = 3.0
    return drr


def _xray(height=40, width=50) -> torch.Tensor:
    return torch.rand(height, width, generator=torch.Generator().manual_seed(0), dtype=torch.float64)


def _edge_mask(rgb: np.ndarray) -> np.ndarray:
    return (rgb == np.asarray(EDGE_COLOR, dtype=np.uint8)).all(axis=-1)


def _distance_to_square_boundary(height=40, width=50) -> np.ndarray:
    """Pixel distance (Chebyshev, in pixels) to the nearest pixel on the square's outline."""
    v, u = np.mgrid[:height, :width]
    inside = (v >= TOP) & (v <= BOTTOM) & (u >= LEFT) & (u <= RIGHT)
    to_side = np.minimum.reduce([np.abs(v - TOP), np.abs(v - BOTTOM), np.abs(u - LEFT), np.abs(u - RIGHT)])
    outside = np.maximum.reduce([TOP - v, v - BOTTOM, LEFT - u, u - RIGHT])
    return np.where(inside, to_side, outside)


def test_overlay_marks_the_drr_outline_and_nothing_else():
    rgb = overlay_frame(_xray(), _square())
    assert rgb.shape == (40, 50, 3)
    assert rgb.dtype == np.uint8
    edges = _edge_mask(rgb)
    distance = _distance_to_square_boundary()
    assert edges.sum() >= 4 * 20 - 8  # about the outline of the 20 × 20 square, corners may be cut
    assert distance[edges].max() <= 1  # every edge pixel lies on or next to the outline
    assert not edges[distance >= 3].any()  # none far from it
    for side in (edges[TOP - 1 : TOP + 1, 20:30], edges[BOTTOM : BOTTOM + 2, 20:30]):
        assert side.any(axis=0).all()  # each column crosses the top and the bottom side
    for side in (edges[15:25, LEFT - 1 : LEFT + 1], edges[15:25, RIGHT : RIGHT + 2]):
        assert side.any(axis=1).all()  # each row crosses the left and the right side


def test_overlay_shows_the_windowed_xray_where_there_are_no_edges():
    xray = _xray()
    rgb = overlay_frame(xray, _square())
    gray = window_8bit(xray)
    plain = ~_edge_mask(rgb)
    for channel in range(3):
        np.testing.assert_array_equal(rgb[..., channel][plain], gray[plain])


def test_overlay_of_a_constant_drr_has_no_edges():
    xray = _xray()
    rgb = overlay_frame(xray, torch.full((40, 50), 2.0))
    np.testing.assert_array_equal(rgb, np.repeat(window_8bit(xray)[..., None], 3, axis=-1))


def test_overlay_accepts_batched_single_images_and_a_colour():
    rgb = overlay_frame(_xray()[None, None], _square()[None, None], color=(0, 0, 255))
    assert (rgb == np.array([0, 0, 255], dtype=np.uint8)).all(axis=-1).any()


def test_overlay_errors():
    with pytest.raises(ValueError, match=r"the X-ray is \(40, 50\) but the DRR is \(40, 49\)"):
        overlay_frame(_xray(), _square(40, 49))
    with pytest.raises(ValueError, match="one image"):
        overlay_frame(torch.zeros(2, 40, 50), torch.zeros(2, 40, 50))
    with pytest.raises(ValueError, match="edge_fraction"):
        overlay_frame(_xray(), _square(), edge_fraction=0.0)
    with pytest.raises(ValueError, match="RGB colour"):
        overlay_frame(_xray(), _square(), color=(300, 0, 0))
    with pytest.raises(ValueError, match="finite"):
        overlay_frame(torch.full((40, 50), math.nan), _square())


def test_registration_overlay_figure_with_landmarks(tmp_path):
    true_uv = torch.tensor([[15.0, 10.0], [34.0, 29.0]])
    estimated_uv = true_uv + torch.tensor([2.0, -1.0])
    figure = plot_registration_overlay(
        _xray(), _square(), title="after", true_pixels=true_uv, estimated_pixels=estimated_uv
    )
    (ax,) = figure.axes
    assert ax.get_title() == "after"
    np.testing.assert_array_equal(ax.images[0].get_array(), overlay_frame(_xray(), _square()))
    assert ax.get_ylim() == (39.5, -0.5)  # row 0 at the top, pixel centres at integers
    assert ax.get_xlim() == (-0.5, 49.5)
    markers = {line.get_marker(): line for line in ax.lines if line.get_marker() in ("o", "x")}
    np.testing.assert_array_equal(markers["o"].get_xdata(), [15.0, 34.0])  # u = column
    np.testing.assert_array_equal(markers["o"].get_ydata(), [10.0, 29.0])  # v = row
    np.testing.assert_array_equal(markers["x"].get_xdata(), [17.0, 36.0])
    np.testing.assert_array_equal(markers["x"].get_ydata(), [9.0, 28.0])
    assert len([line for line in ax.lines if line.get_linestyle() == "-"]) == 2  # true → estimated
    path = save_figure(figure, tmp_path / "overlay.png", dpi=40)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_registration_overlay_without_landmarks_and_bad_points():
    assert not plot_registration_overlay(_xray(), _square()).axes[0].lines
    with pytest.raises(ValueError, match=r"true_pixels: expected shape \(N, 2\)"):
        plot_registration_overlay(_xray(), _square(), true_pixels=torch.zeros(3))


def _capture(rates_ok, edges=(0.0, 10.0, 20.0, 30.0)):
    tre = torch.tensor([1.0, 2.0, 3.0, 11.0, 12.0, 13.0])
    return capture_range(tre, torch.tensor(rates_ok), list(edges), resamples=50)


def test_capture_range_plots_rates_intervals_fit_and_r50(tmp_path):
    ncc = _capture([True, True, False, True, False, False])
    mi = _capture([True] * 6)
    figure = plot_capture_range({"ncc": ncc, "mi": mi}, threshold_mm=5.0)
    (ax,) = figure.axes
    bars = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    ncc_bins, ncc_r50, mi_bins = bars  # mi's R50 is infinite: no diamond
    x, y = ncc_bins.lines[0].get_data()
    np.testing.assert_allclose(y, [2 / 3, 1 / 3])  # the empty bin (20-30 mm) is left out
    np.testing.assert_allclose(x - x[0], [0.0, 10.0])  # at the bin centres, shifted alike
    assert x[0] < 5.0 < mi_bins.lines[0].get_data()[0][0]  # the two methods sit either side of the centre
    low, high = wilson_interval(2, 3)
    segments = ncc_bins.lines[2][0].get_segments()
    np.testing.assert_allclose([segments[0][0][1], segments[0][1][1]], [low, high])  # Wilson error bar
    r50_x, r50_y = ncc_r50.lines[0].get_data()
    assert r50_x[0] == pytest.approx(ncc.r50_mm)
    assert r50_y[0] == 0.5
    curves = [line for line in ax.lines if line.get_label().startswith(("ncc", "mi"))]
    assert [c.get_label().split(" ")[0] for c in curves] == ["ncc", "mi"]
    curve_x, curve_y = curves[0].get_data()
    np.testing.assert_allclose(curve_y, ncc.success_probability(curve_x))
    assert curve_x[0] == 0.0
    assert curve_x[-1] == 30.0
    assert ax.get_xlim() == (0.0, 30.0)  # out to the largest bin edge
    assert curves[0].get_label() == f"ncc (3/6): R50 {ncc.r50_text()}"
    assert curves[1].get_label().endswith("(never below 50 %)")
    assert ax.get_ylabel() == "success rate (final TRE < 5 mm)"
    assert save_figure(figure, tmp_path / "capture.png", dpi=40).exists()


def test_capture_range_axis_spans_every_method():
    short = _capture([True] * 6, edges=(0.0, 20.0))
    long = _capture([True] * 6, edges=(0.0, 50.0, 200.0))
    assert plot_capture_range({"a": short, "b": long}).axes[0].get_xlim() == (0.0, 200.0)


def test_capture_range_errors():
    with pytest.raises(ValueError, match="at least one method"):
        plot_capture_range({})
    with pytest.raises(ValueError, match="'a': expected a CaptureRange"):
        plot_capture_range({"a": [0.5, 0.5]})


def _read_gif(path) -> tuple[list[np.ndarray], list[int]]:
    frames, durations = [], []
    with Image.open(path) as image:
        for index in range(image.n_frames):
            image.seek(index)
            frames.append(np.asarray(image.convert("RGB")))
            durations.append(image.info["duration"])
    return frames, durations


def test_gif_has_every_frame_at_the_right_size_and_speed(tmp_path):
    frames = [torch.full((12, 20), float(i)) + torch.linspace(0, 1, 20) for i in range(5)]
    path = write_gif(frames, tmp_path / "out" / "run.gif", fps=5.0)
    assert path == tmp_path / "out" / "run.gif"
    read, durations = _read_gif(path)
    assert len(read) == 5
    assert all(frame.shape == (12, 20, 3) for frame in read)
    assert durations == [200] * 5
    assert [p.name for p in path.parent.iterdir()] == ["run.gif"]  # nothing staged left behind


def test_gif_windows_grey_frames_together(tmp_path):
    ramp = torch.linspace(0.0, 1.0, 16).expand(8, 16)
    read, _ = _read_gif(write_gif([ramp, 3 * ramp], tmp_path / "x.gif"))
    assert len(read) == 2  # one window for both, so the frames differ
    assert read[1].mean() > read[0].mean()


def test_gif_mixes_rgb_overlays_and_grey_frames(tmp_path):
    overlays = [overlay_frame(_xray(), torch.roll(_square(), shift, 1)) for shift in (0, 3)]
    read, _ = _read_gif(write_gif([*overlays, _xray().numpy()], tmp_path / "mixed.gif", fps=8))
    assert len(read) == 3
    assert read[0].shape == (40, 50, 3)
    orange = np.abs(read[0].astype(int) - np.array(EDGE_COLOR)).sum(axis=-1) < 40  # palette may round
    assert orange[_edge_mask(overlays[0])].mean() > 0.9


def test_gif_errors(tmp_path):
    with pytest.raises(ValueError, match="at least one frame"):
        write_gif([], tmp_path / "x.gif")
    with pytest.raises(ValueError, match=r"differ in size: \[\(8, 8\), \(8, 9\)\]"):
        write_gif([torch.zeros(8, 8), torch.zeros(8, 9)], tmp_path / "x.gif")
    with pytest.raises(ValueError, match="frame 1: expected a grey"):
        write_gif([torch.zeros(8, 8), np.zeros((8, 8, 3))], tmp_path / "x.gif")  # RGB must be uint8
    with pytest.raises(ValueError, match="fps > 0"):
        write_gif([torch.zeros(8, 8)], tmp_path / "x.gif", fps=0)
    with pytest.raises(ValueError, match=r"x\.png: write_gif writes \.gif files"):
        write_gif([torch.zeros(8, 8)], tmp_path / "x.png")
    assert not list(tmp_path.iterdir())
