"""Errors in the user's words: a library or recipe error names the option that changes it (``xrender.cli._fail``)."""

import numpy as np
import pytest
import SimpleITK as sitk
from PIL import Image
from typer.testing import CliRunner

from xrender.cli import app

runner = CliRunner()


def _write_ct(path, *, bone: bool):
    """A 16³ water cube in air (4 mm voxels), with a 300 HU core when ``bone``."""
    array = np.full((16, 16, 16), -1000, dtype=np.int16)
    array[4:12, 4:12, 4:12] = 0
    if bone:
        array[6:10, 6:10, 6:10] = 300
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((4.0, 4.0, 4.0))
    sitk.WriteImage(image, str(path))
    return path


def _write_xray(path, size=64):
    Image.fromarray(np.full((size, size), 128, dtype=np.uint8)).save(path)
    return path


def _fails(args):
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert result.output.startswith("error: ")
    return result.output


@pytest.fixture
def files(tmp_path):
    return {
        "ct": str(_write_ct(tmp_path / "ct.nii.gz", bone=True)),
        "no_bone": str(_write_ct(tmp_path / "soft.nii.gz", bone=False)),
        "xray": str(_write_xray(tmp_path / "xray.png")),
        "out": str(tmp_path / "out"),
    }


def test_an_image_of_another_size_than_the_preset_names_preset_and_geometry(files):
    output = _fails(["register", files["ct"], files["xray"], "--volume-size", "16", "--out", files["out"]])
    assert "the X-ray has 64×64 pixels but the C-arm geometry (--preset or --geometry) describes a 128×128" in output
    assert "deepfluoro, prost" in output
    assert "preprocess_xray" not in output


def test_a_ct_without_bone_asks_for_a_mask(files):
    output = _fails(["register", files["no_bone"], files["xray"], "--volume-size", "16", "--out", files["out"]])
    assert "soft.nii.gz: without --mask, bone is the voxels above 200 HU, and there are none" in output
    assert "pass --mask with a bone segmentation" in output
    assert "labels=None" not in output


def test_an_empty_mask_names_the_option(files, tmp_path):
    mask = tmp_path / "mask.nii.gz"
    empty = sitk.GetImageFromArray(np.zeros((16, 16, 16), dtype=np.uint8))
    empty.SetSpacing((4.0, 4.0, 4.0))
    sitk.WriteImage(empty, str(mask))
    args = ["--volume-size", "16", "--mask", str(mask), "--out", files["out"]]
    output = _fails(["register", files["ct"], files["xray"], *args])
    assert "the --mask segmentation selects no voxel of the CT (it holds only the values [0.0])" in output
    assert "apply_mask" not in output


@pytest.mark.parametrize(("method", "option"), [("prost+cmaes", "--model"), ("regression", "--regressor")])
def test_a_stage_without_its_model_names_only_the_option(files, method, option):
    output = _fails(["evaluate", "--phantom", "--methods", method, "--trials", "1", "--out", files["out"]])
    assert "needs a trained" in output
    assert f"pass {option} FILE" in output
    assert "MethodContext" not in output


@pytest.mark.parametrize(
    ("option", "expected"),
    [
        (["--view", "lateral"], "view (--view): unknown view 'lateral'; expected one of ap, ll, pa, rl"),
        (["--preset", "c-arm"], "preset (--preset): unknown C-arm preset 'c-arm'; expected one of deepfluoro, prost"),
    ],
)
def test_register_refuses_an_unknown_view_or_preset_before_reading(files, monkeypatch, option, expected):
    import xrender.io
    import xrender.subject

    def never(*args, **kwargs):
        raise AssertionError("read a file before checking the options")

    monkeypatch.setattr(xrender.io, "read_volume", never)
    monkeypatch.setattr(xrender.subject, "read_volume", never)
    output = _fails(["register", files["ct"], files["xray"], *option, "--out", files["out"]])
    assert expected in output
