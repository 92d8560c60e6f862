"""`xrender simulate`: a noisy polyenergetic X-ray of the phantom or a CT, seeded; bad input exits 2."""

import json

import numpy as np
import pytest
import torch
from _volumes import water_cube_ct
from PIL import Image
from typer.testing import CliRunner

from xrender.cli import app
from xrender.geometry import get_preset, standard_pose
from xrender.io import read_volume
from xrender.physics import ScatterModel, Scintillator, decompose_hu, load_spectrum, render_polyenergetic

runner = CliRunner()


def test_simulate_phantom_writes_a_png(tmp_path):
    out = tmp_path / "xray.png"
    result = runner.invoke(
        app, ["simulate", "--phantom", "--size", "16", "--kvp", "80", "--dose", "1e4", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    pixels = np.asarray(Image.open(out))
    assert pixels.shape == (16, 16)
    assert (pixels.min(), pixels.max()) == (0, 255)
    assert "80 kVp" in result.output
    assert str(out) in result.output


def test_simulate_is_seeded_and_matches_the_expected_line_integrals(tmp_path):
    path = water_cube_ct(tmp_path)
    images = {}
    for name, seed in (("a", "0"), ("b", "0"), ("c", "1")):
        out = tmp_path / f"{name}.npy"
        args = [
            "simulate",
            str(path),
            "--size",
            "32",
            "--kvp",
            "80",
            "--dose",
            "1e6",
            "--seed",
            seed,
            "--no-scatter",
            "--csi-mm",
            "0",
            "--psf",
            "0",
            "--electronic-noise",
            "0",
            "--out",
            str(out),
        ]
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        images[name] = np.load(out)
    np.testing.assert_array_equal(images["a"], images["b"])
    assert not np.array_equal(images["a"], images["c"])
    densities = decompose_hu(read_volume(path))
    carm = get_preset("prost").downsample(4)
    pose = standard_pose("ap", carm.sid, densities.isocenter.double())
    expected = -torch.log(render_polyenergetic(densities, carm, pose, load_spectrum(80)))[0].numpy()
    assert images["a"].shape == expected.shape == (1, 32, 32)
    # Poisson at 1e6 photons: σ(−log I) = 1/√(10⁶ I) < 0.002 through 40 mm of water (I ≈ 0.45)
    np.testing.assert_allclose(images["a"], expected, atol=0.01)
    assert images["a"].max() > 0.6  # 4 cm of water at an effective μ ≈ 0.2 cm⁻¹


@pytest.mark.parametrize(
    ("option", "expected"),
    [
        (["--kvp", "90"], "error: --kvp: no shipped spectrum at 90 kVp; expected one of 60, 80, 100, 120"),
        (["--dose", "0"], "error: --dose: expected a finite number of photons per pixel > 0, got 0"),
        (["--out", "x.jpg"], "error: --out x.jpg: unsupported image format; expected one of .png, .npy"),
        (["--poses", "narrow"], "error: --poses: unknown pose distribution 'narrow'"),
        (["--view", "lateral"], "error: --view: unknown view 'lateral'; expected one of ap, ll, pa, rl"),
        (["--pose", "1,2"], "error: --pose: expected 6 finite numbers"),
    ],
)
def test_bad_options_are_refused_before_the_volume_is_read(tmp_path, monkeypatch, option, expected):
    import xrender.cli.simulate
    import xrender.io
    import xrender.phantom
    import xrender.subject  # binds pelvis_phantom when first imported: import it before the patch

    def never(*args, **kwargs):
        raise AssertionError("did heavy work before checking the options")

    for module, name in (
        (xrender.io, "read_volume"),
        (xrender.phantom, "pelvis_phantom"),
        (xrender.cli.simulate, "write_simulations"),
    ):
        monkeypatch.setattr(module, name, never)
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["simulate", "--phantom", *option])
    assert result.exit_code == 2, result.output
    assert expected in result.output


def test_simulate_count_writes_a_dataset_with_its_poses_and_geometry(tmp_path):
    from xrender.geometry import ConeBeam, pose_from_motion
    from xrender.io import read_dicom_xray
    from xrender.physics import Detector, simulate_xray

    path = water_cube_ct(tmp_path)
    out = tmp_path / "set" / "xray.dcm"
    args = ["simulate", str(path), "--size", "16", "--count", "3", "--poses", "wide", "--seed", "4", "--out", str(out)]
    result = runner.invoke(app, [*args, "--dose", "1e7", "--electronic-noise", "0"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.parent.iterdir()) == ["xray.json", *(f"xray_000{k}.dcm" for k in range(3))]
    document = json.loads((out.parent / "xray.json").read_text())
    carm = ConeBeam(**document["geometry"])
    assert carm == get_preset("prost").downsample(8)
    reference = torch.tensor(document["reference_pose_camera_to_world"], dtype=torch.float64)
    iso = torch.tensor(document["isocenter_mm"], dtype=torch.float64)
    densities = decompose_hu(read_volume(path))
    poses = []
    for k, entry in enumerate(document["images"]):
        assert entry["file"] == f"xray_000{k}.dcm"
        pose = torch.tensor(entry["pose_camera_to_world"], dtype=torch.float64)
        motion = torch.tensor(entry["motion"], dtype=torch.float64)
        torch.testing.assert_close(pose_from_motion(motion, reference, iso), pose)  # --pose's six numbers
        poses.append(pose)
        # the image is the expected simulation at that pose (1e7 photons: noise < 1e-3)
        read = read_dicom_xray(out.parent / entry["file"])
        expected = simulate_xray(
            densities, carm, pose[None], load_spectrum(100), Detector(1e7, 0.0, 0.5), noise=False,
            scatter=ScatterModel(), scintillator=Scintillator(),
        )  # fmt: skip
        np.testing.assert_allclose(read.pixels.numpy(), expected[0, 0].numpy(), atol=5e-3)
    assert not torch.allclose(poses[0], poses[1])
    assert document["options"]["kvp"] == 100
    assert document["options"]["seed"] == 4


def test_simulate_defaults_are_the_realistic_evaluation_targets():
    """One detector chain: ``xrender simulate``'s defaults are ``evaluate --targets realistic``'s."""
    import inspect

    from xrender.cli import simulate_command
    from xrender.recipes.registration.targets import RealisticTargets

    defaults = {k: p.default for k, p in inspect.signature(simulate_command).parameters.items()}
    realistic = RealisticTargets()
    assert defaults["psf"] == realistic.psf_sigma_px
    assert defaults["electronic_noise"] == realistic.electronic_sigma
    assert defaults["scatter"] == (realistic.scatter == ScatterModel())
    assert realistic.scintillator == Scintillator(thickness_mm=defaults["csi_mm"])
