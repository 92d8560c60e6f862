"""The render benchmark's harness (`xrender benchmark render`) on a tiny CT, with xrender alone and with
registered peer cases (benchmarks/peers.py registers nanodrr's and DiffDRR's)."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from xrender.cli import app
from xrender.cli import benchmark as harness
from xrender.geometry import pose_from_motion
from xrender.io import write_volume
from xrender.phantom import pelvis_phantom

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
TINY = ["--size", "16", "--runs", "1", "--warmup", "0", "--ref-samples", "64"]

#: A peer case for the tests: xrender's own render at half the step, in a file a fresh process can load.
FAKE_PEER = """
from xrender.cli.benchmark import XRenderCase, register_case


class HalfStepCase(XRenderCase):
    name = "half-step"

    def __init__(self, scene, config):
        super().__init__(scene, config)
        self.step_mm /= 2


register_case("half-step", HalfStepCase, requires="xrender")
register_case("missing-peer", HalfStepCase, requires="a_library_that_is_not_installed")
"""


@pytest.fixture
def ct(tmp_path):
    path = tmp_path / "ct.nii.gz"
    write_volume(pelvis_phantom().to_volume(24), path)
    return path


@pytest.fixture
def cases(monkeypatch):
    """A private copy of the case registry, with xrender's own case only."""
    monkeypatch.setattr(harness, "CASES", {"xrender": harness.CASES["xrender"]})
    return monkeypatch


def _load(monkeypatch, path):
    """`harness.load_cases`, undone after the test."""
    monkeypatch.setitem(sys.modules, path.stem, None)  # removed again on undo
    harness.load_cases(path)


def test_render_benchmark_json_report(tmp_path, ct):
    out = tmp_path / "report.json"
    args = ["benchmark", "render", "--ct", str(ct), *TINY, "--peers", "", "--json", "--out", str(out)]
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


def test_convention_render_benchmark_pose_parameters_are_a_motion(ct):
    scene = harness.load_scene(harness.BenchmarkConfig(ct=str(ct), size=8))
    motion = torch.tensor([10.0, -20.0, 30.0, 5.0, 6.0, 7.0], dtype=torch.float64)
    iso = scene.volume.isocenter.double()
    torch.testing.assert_close(scene.pose_fn(motion), pose_from_motion(motion, scene.pose0, iso))


def test_the_command_line_benchmarks_xrender_alone(ct, cases):
    result = CliRunner().invoke(app, ["benchmark", "render", "--ct", str(ct), *TINY, "--no-memory", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["peers"] == {}
    assert report["skipped"] == {}
    assert report["config"]["peers"] == []


def test_an_unregistered_peer_names_the_script_that_registers_them(ct, cases):
    result = CliRunner().invoke(app, ["benchmark", "render", "--ct", str(ct), "--peers", "nanodrr-torch"])
    assert result.exit_code == 2
    assert "nanodrr-torch" in result.output
    assert "benchmarks/render.py" in result.output


def test_registered_peers_are_measured_and_missing_ones_skipped(tmp_path, ct, cases):
    source = tmp_path / "fake_peers.py"
    source.write_text(FAKE_PEER)
    _load(cases, source)
    assert harness.peer_names() == ("half-step", "missing-peer")
    report = harness.run_render_benchmark(
        harness.BenchmarkConfig(ct=str(ct), size=16, runs=1, warmup=0, ref_samples=64, progress=False)
    )
    assert list(report["peers"]) == ["half-step"]
    assert report["skipped"] == {"missing-peer": "not installed"}
    peer = report["peers"]["half-step"]
    assert peer["samples_per_render"] > report["samples_per_render"]
    assert peer["rel_diff_vs_xrender_dense"] < 1e-3  # the same dense render
    # the memory probe's fresh process loaded the file to register the case again
    assert peer["peak_rss_mb"] > 0, peer.get("peak_rss_error")
    assert peer["peak_rss_mb_ratio"] > 0
    table = harness.format_table(report)
    assert "half-step" in table
    assert "skipped missing-peer: not installed" in table


def test_a_case_is_registered_once(cases):
    with pytest.raises(ValueError, match="'xrender' is already registered"):
        harness.register_case("xrender", harness.XRenderCase, requires="xrender")


def test_the_peer_cases_register_without_their_libraries(ct, cases):
    _load(cases, BENCHMARKS / "peers.py")
    assert harness.peer_names() == ("nanodrr-torch", "diffdrr-trilinear", "diffdrr-siddon")
    for name in harness.peer_names():
        assert harness.CASES[name].source == str((BENCHMARKS / "peers.py").resolve())
    if any(importlib.util.find_spec(module) for module in ("nanodrr", "diffdrr")):
        pytest.skip("a peer library is installed: the comparison itself is run by benchmarks/render.py")
    report = harness.run_render_benchmark(
        harness.BenchmarkConfig(ct=str(ct), size=16, runs=1, warmup=0, ref_samples=64, memory=False, progress=False)
    )
    assert report["peers"] == {}
    assert report["skipped"] == dict.fromkeys(harness.peer_names(), "not installed")


@pytest.mark.parametrize(
    ("script", "option"),
    [
        ("render.py", "--peers"),
        ("prost_domain_gap.py", "--model"),
        ("prost_reach.py", "--model"),
        ("prost_multistart.py", "--trials"),
    ],
)
def test_the_benchmark_scripts_run(script, option):
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), "--help"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert option in result.stdout
