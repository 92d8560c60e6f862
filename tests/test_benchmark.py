"""`xrender benchmark render` on a tiny CT: the report has the keys the issue asks for."""

import json

import torch
from typer.testing import CliRunner

from xrender.benchmark import BenchmarkConfig, load_scene
from xrender.cli import app
from xrender.geometry import pose_from_motion
from xrender.io import write_volume
from xrender.phantom import pelvis_phantom


def test_render_benchmark_json_report(tmp_path):
    ct = tmp_path / "ct.nii.gz"
    write_volume(pelvis_phantom().to_volume(24), ct)
    out = tmp_path / "report.json"
    args = ["benchmark", "render", "--ct", str(ct), "--size", "16", "--runs", "1", "--warmup", "0"]
    args += ["--ref-samples", "64", "--peers", "", "--json", "--out", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    for key in ("forward_ms", "forward_backward_ms", "rel_error", "peak_rss_mb", "peers"):
        assert key in report, sorted(report)
    assert report["forward_ms"] > 0
    assert report["forward_backward_ms"] > 0
    assert 0 <= report["rel_error"] < 0.05
    assert report["peers"] == {}
    assert report["peak_rss_mb"] > 0


def test_render_benchmark_missing_ct_is_one_line_error(tmp_path):
    result = CliRunner().invoke(app, ["benchmark", "render", "--ct", str(tmp_path / "nope.nii.gz"), "--peers", ""])
    assert result.exit_code == 2
    assert "nope.nii.gz" in result.output


def test_convention_render_benchmark_pose_parameters_are_a_motion(tmp_path):
    ct = tmp_path / "ct.nii.gz"
    write_volume(pelvis_phantom().to_volume(16), ct)
    scene = load_scene(BenchmarkConfig(ct=str(ct), size=8))
    motion = torch.tensor([10.0, -20.0, 30.0, 5.0, 6.0, 7.0], dtype=torch.float64)
    iso = scene.volume.isocenter.double()
    torch.testing.assert_close(scene.pose_fn(motion), pose_from_motion(motion, scene.pose0, iso))
