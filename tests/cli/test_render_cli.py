"""`xrender render`: writes PNG, NPY and NIfTI images of the phantom or a CT; bad input exits 2."""

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from _volumes import water_cube_ct
from PIL import Image
from typer.testing import CliRunner

from xrender.attenuation import hu_to_mu
from xrender.cli import app
from xrender.geometry import get_preset, pose_from_motion, standard_pose
from xrender.io import read_volume
from xrender.render import render

runner = CliRunner()


def test_render_phantom_writes_a_windowed_png(tmp_path):
    out = tmp_path / "drr.png"
    result = runner.invoke(app, ["render", "--phantom", "--preset", "prost", "--size", "64", "--out", str(out)])
    assert result.exit_code == 0, result.output
    pixels = np.asarray(Image.open(out))
    assert pixels.shape == (64, 64)
    assert pixels.dtype == np.uint8
    assert pixels.min() == 0
    assert pixels.max() == 255
    assert "source-to-detector  1020 mm" in result.output
    assert "64 rows × 64 columns" in result.output
    assert str(out) in result.output


def test_render_ct_npy_round_trips_the_raw_values(tmp_path):
    path = water_cube_ct(tmp_path)
    out = tmp_path / "drr.npy"
    result = runner.invoke(app, ["render", str(path), "--size", "32", "--pose", "0,0,0,0,0,0", "--out", str(out)])
    assert result.exit_code == 0, result.output
    saved = np.load(out)
    assert saved.dtype == np.float32
    volume = hu_to_mu(read_volume(path))
    carm = get_preset("prost").downsample(4)
    expected = render(volume, carm, standard_pose("ap", carm.sid, volume.isocenter.double()))[0]
    np.testing.assert_allclose(saved, expected.numpy(), rtol=1e-5, atol=1e-6)
    assert saved.max() > 0.5  # 40 mm of water at 0.02 mm⁻¹ ≈ 0.82


def test_render_nifti_keeps_the_pixel_spacing(tmp_path):
    out = tmp_path / "drr.nii.gz"
    result = runner.invoke(
        app, ["render", str(water_cube_ct(tmp_path)), "--size", "32", "--view", "ll", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    image = sitk.ReadImage(str(out))
    assert image.GetSize() == (32, 32)
    np.testing.assert_allclose(image.GetSpacing(), (11.68, 11.68))


def test_render_pose_moves_the_image(tmp_path):
    path = water_cube_ct(tmp_path)
    images = []
    for pose in ("0,0,0,0,0,0", "0,0,0,30,0,0"):  # 30 mm toward image right
        out = tmp_path / f"{len(images)}.npy"
        assert (
            runner.invoke(app, ["render", str(path), "--size", "32", "--pose", pose, "--out", str(out)]).exit_code == 0
        )
        images.append(torch.from_numpy(np.load(out))[0])
    columns = [image.sum(0) for image in images]
    centroid = [float((c * torch.arange(32)).sum() / c.sum()) for c in columns]
    assert centroid[1] - centroid[0] > 3  # 30 mm × 1.65 magnification / 11.68 mm pixels ≈ 4.2 px


def test_convention_render_pose_is_a_motion_about_the_isocentre(tmp_path):
    path = water_cube_ct(tmp_path)
    out = tmp_path / "drr.npy"
    pose = "10,-20,30,5,6,7"  # rotation vector (deg), then mm along image right, down and depth
    result = runner.invoke(
        app, ["render", str(path), "--size", "32", "--view", "ll", "--pose", pose, "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    volume = hu_to_mu(read_volume(path))
    carm = get_preset("prost").downsample(4)
    iso = volume.isocenter.double()
    motion = torch.tensor([10.0, -20.0, 30.0, 5.0, 6.0, 7.0], dtype=torch.float64)
    expected = render(volume, carm, pose_from_motion(motion, standard_pose("ll", carm.sid, iso), iso))[0]
    np.testing.assert_allclose(np.load(out), expected.numpy(), rtol=1e-5, atol=1e-6)


def test_bad_pose_string_is_a_one_line_error(tmp_path):
    out = tmp_path / "drr.png"
    result = runner.invoke(app, ["render", "--phantom", "--pose", "1,2,x", "--out", str(out)])
    assert result.exit_code == 2
    assert "error: --pose" in result.output
    assert "Traceback" not in result.output
    assert not out.exists()


def test_render_needs_exactly_one_source_and_a_known_format(tmp_path):
    assert runner.invoke(app, ["render", "--out", str(tmp_path / "a.png")]).exit_code == 2
    both = runner.invoke(app, ["render", str(water_cube_ct(tmp_path)), "--phantom", "--out", str(tmp_path / "a.png")])
    assert both.exit_code == 2
    missing = runner.invoke(app, ["render", str(tmp_path / "nope.nii.gz"), "--out", str(tmp_path / "a.png")])
    assert missing.exit_code == 2
    assert "nope.nii.gz" in missing.output
    bad_suffix = runner.invoke(
        app, ["render", str(water_cube_ct(tmp_path)), "--size", "8", "--out", str(tmp_path / "a.jpg")]
    )
    assert bad_suffix.exit_code == 2
    assert "unsupported image format" in bad_suffix.output


def test_render_refuses_a_ct_with_nan_before_rendering(tmp_path, monkeypatch):
    import xrender.render

    def never(*args, **kwargs):
        raise AssertionError("rendered a CT with NaN voxels")

    monkeypatch.setattr(xrender.render, "render", never)
    array = np.zeros((8, 8, 8), dtype=np.float32)
    array[4, 4, 4] = np.nan
    path = tmp_path / "nan.nii.gz"
    sitk.WriteImage(sitk.GetImageFromArray(array), str(path))
    result = runner.invoke(app, ["render", str(path), "--out", str(tmp_path / "drr.png")])
    assert result.exit_code == 2, result.output
    assert f"error: {path}: 1 of 512 voxel values are not finite (1 NaN, 0 ±Inf)" in result.output
    assert not (tmp_path / "drr.png").exists()


@pytest.mark.parametrize(
    ("option", "expected"),
    [
        (["--out", "drr.jpg"], "error: --out drr.jpg: unsupported image format; expected one of .png, .npy"),
        (["--view", "lateral"], "error: --view: unknown view 'lateral'; expected one of ap, ll, pa, rl"),
        (["--hu-model", "cubic"], "error: --hu-model: unknown model 'cubic'; expected one of bilinear, linear"),
        (["--preset", "c-arm"], "error: unknown C-arm preset 'c-arm'"),
    ],
)
@pytest.mark.parametrize("source", ["ct", "phantom"])
def test_bad_options_are_refused_before_the_volume_is_read(tmp_path, monkeypatch, option, expected, source):
    import xrender.io
    import xrender.phantom
    import xrender.render
    import xrender.subject  # binds pelvis_phantom when first imported: import it before the patch

    def never(*args, **kwargs):
        raise AssertionError("did heavy work before checking the options")

    for module, name in ((xrender.io, "read_volume"), (xrender.phantom, "pelvis_phantom"), (xrender.render, "render")):
        monkeypatch.setattr(module, name, never)
    monkeypatch.chdir(tmp_path)
    first = [str(water_cube_ct(tmp_path))] if source == "ct" else ["--phantom"]
    result = runner.invoke(app, ["render", *first, *option])
    assert result.exit_code == 2, result.output
    assert expected in result.output


def test_render_with_a_geometry_file_renders_on_that_c_arm(tmp_path):
    import json
    from dataclasses import asdict

    from xrender.geometry import ConeBeam
    from xrender.io import read_dicom_xray

    carm = ConeBeam(sdd=1100.0, height=24, width=20, pixel_spacing=(9.0, 9.0), sid=750.0)
    geometry = tmp_path / "carm.json"
    geometry.write_text(json.dumps(asdict(carm)))
    out = tmp_path / "drr.dcm"
    path = water_cube_ct(tmp_path)
    result = CliRunner().invoke(app, ["render", str(path), "--geometry", str(geometry), "--out", str(out)])
    assert result.exit_code == 0, result.output
    read = read_dicom_xray(out)
    assert read.shape == (24, 20)
    volume = hu_to_mu(read_volume(path))
    with torch.no_grad():
        expected = render(volume, carm, standard_pose("ap", carm.sid, volume.isocenter.double()))[0, 0]
    np.testing.assert_allclose(read.pixels.numpy(), expected.double().numpy(), atol=float(expected.max()) / 65535)


def test_a_bad_geometry_file_is_refused_before_the_ct_is_read(tmp_path, monkeypatch):
    import xrender.io

    def never(*args, **kwargs):
        raise AssertionError("read the CT before checking --geometry")

    monkeypatch.setattr(xrender.io, "read_volume", never)
    bad = tmp_path / "carm.json"
    bad.write_text('{"sdd": 1000.0, "height": 4}')
    result = CliRunner().invoke(app, ["render", str(tmp_path / "ct.nii.gz"), "--geometry", str(bad)])
    assert result.exit_code == 2
    assert f"{bad}: not a C-arm geometry" in result.output
