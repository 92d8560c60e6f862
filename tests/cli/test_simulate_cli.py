"""`xrender simulate`: a noisy polyenergetic X-ray of the phantom or a CT, seeded; bad input exits 2."""

import numpy as np
import pytest
import torch
from _volumes import water_cube_ct
from PIL import Image
from typer.testing import CliRunner

from xrender.cli import app
from xrender.geometry import get_preset, standard_pose
from xrender.io import read_volume
from xrender.physics import decompose_hu, load_spectrum, render_polyenergetic

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
        (["--out", "x.dcm"], "error: --out x.dcm: unsupported image format; expected one of .png, .npy"),
        (["--view", "lateral"], "error: --view: unknown view 'lateral'; expected one of ap, ll, pa, rl"),
        (["--pose", "1,2"], "error: --pose: expected 6 finite numbers"),
    ],
)
def test_bad_options_are_refused_before_the_volume_is_read(tmp_path, monkeypatch, option, expected):
    import xrender.io
    import xrender.phantom
    import xrender.physics
    import xrender.subject  # binds pelvis_phantom when first imported: import it before the patch

    def never(*args, **kwargs):
        raise AssertionError("did heavy work before checking the options")

    for module, name in (
        (xrender.io, "read_volume"),
        (xrender.phantom, "pelvis_phantom"),
        (xrender.physics, "render_polyenergetic"),
    ):
        monkeypatch.setattr(module, name, never)
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["simulate", "--phantom", *option])
    assert result.exit_code == 2, result.output
    assert expected in result.output
