"""The command line: `xrender demo` and `xrender info`, through Typer's test runner."""

import json

import numpy as np
import pytest
import SimpleITK as sitk
from typer.testing import CliRunner

from xrender.cli import app

runner = CliRunner()


def test_demo_writes_the_figures(tmp_path):
    result = runner.invoke(app, ["demo", "--out", str(tmp_path), "--size", "32", "--trials", "0"])
    assert result.exit_code == 0, result.output
    figure = tmp_path / "phantom_slices.png"
    assert figure.stat().st_size > 10_000
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "shape=(32, 32, 32)" in result.output
    assert str(figure) in result.output
    drr = tmp_path / "phantom_drr.png"
    assert drr.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert str(drr) in result.output


@pytest.mark.slow  # ~50 s: 24 learned descents and equal-time CMA-ES; `.ci/run` runs the full demo
def test_demo_registers_with_the_shipped_model(tmp_path):
    result = runner.invoke(app, ["demo", "--out", str(tmp_path), "--size", "32", "--trials", "1", "--no-progress"])
    assert result.exit_code == 0, result.output
    document = json.loads((tmp_path / "results.json").read_text())
    assert list(document["methods"]) == ["cmaes", "prost:multistart+cmaes"]
    two_stage = document["methods"]["prost:multistart+cmaes"]
    assert two_stage["median_stage_seconds"]["prost:multistart"] > 0
    # CMA-ES alone gets the two-stage method's time (equal time)
    assert document["methods"]["cmaes"]["median_budget_seconds"] == pytest.approx(two_stage["median_seconds"])
    assert "## Capture range" in (tmp_path / "results.md").read_text()
    assert "| prost:multistart+cmaes | 1 |" in result.output
    assert (tmp_path / "overlays" / "prost-multistart_cmaes_trial0.png").stat().st_size > 0


def test_demo_rejects_bad_size(tmp_path):
    result = runner.invoke(app, ["demo", "--out", str(tmp_path), "--size", "2"])
    assert result.exit_code == 2
    assert not (tmp_path / "phantom_slices.png").exists()


def test_info_describes_a_volume(tmp_path):
    image = sitk.GetImageFromArray(np.full((4, 5, 6), 40, dtype=np.int16))
    image.SetSpacing((0.5, 0.75, 2.0))
    path = tmp_path / "ct.nii.gz"
    sitk.WriteImage(image, str(path))
    result = runner.invoke(app, ["info", str(path)])
    assert result.exit_code == 0, result.output
    assert "0.5" in result.output
    assert "0.75" in result.output
    assert "40" in result.output


def test_info_missing_file_is_a_one_line_error(tmp_path):
    missing = tmp_path / "nope.nii.gz"
    result = runner.invoke(app, ["info", str(missing)])
    assert result.exit_code == 2
    assert "error:" in result.output
    assert str(missing) in result.output
    assert "Traceback" not in result.output


def test_no_arguments_shows_help():
    result = runner.invoke(app, [])
    assert "demo" in result.output
    assert "info" in result.output
