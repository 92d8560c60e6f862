"""``xrender register`` with a DICOM X-ray: the C-arm and the reference pose come from the tags."""

import json

import numpy as np
import pytest
import torch
from _dicom_files import write_dicom
from _tiny_search import TINY_SET
from typer.testing import CliRunner

from xrender.cli import app
from xrender.geometry import ConeBeam, standard_pose
from xrender.image import XRayPreprocessing
from xrender.io import write_volume
from xrender.phantom import pelvis_phantom
from xrender.recipes.registration.command import RegistrationRequest, fixed_image
from xrender.render import render
from xrender.subject import phantom_subject

I0 = 4000.0
CARM = ConeBeam(sdd=1020.0, height=128, width=128, pixel_spacing=(2.92, 2.92), sid=620.0)
TAGS = {
    "DistanceSourceToDetector": CARM.sdd,
    "DistanceSourceToPatient": CARM.sid,
    "ImagerPixelSpacing": list(CARM.pixel_spacing),
    "PositionerPrimaryAngle": 0.0,
    "PositionerSecondaryAngle": 0.0,
}


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    """A CT file and a PA fluoroscopy image of it, stored as a C-arm stores it (seen from the detector)."""
    folder = tmp_path_factory.mktemp("dicom-register")
    ct = folder / "ct.nii.gz"
    write_volume(pelvis_phantom().to_volume(24), ct)
    subject = phantom_subject(24, 200.0)
    iso = subject.full.isocenter.double()
    truth = standard_pose("pa", CARM.sid, iso)  # primary = secondary = 0: the patient faces the detector
    with torch.no_grad():
        drr = render(subject.full, CARM, truth)[0, 0].double()
    intensities = np.round(I0 * np.exp(-drr.numpy()))  # what a detector counts, to integers
    xray = write_dicom(folder / "fluoro.dcm", intensities[:, ::-1].astype(np.uint16), modality="XA", **TAGS)
    return ct, xray, iso, truth, torch.from_numpy(-np.log(intensities / I0))  # stored seen from the detector


def test_the_tags_give_the_geometry_the_flip_and_the_pose_of_the_image(case):
    ct, xray, iso, truth, drr = case
    request = RegistrationRequest(ct, xray, ct.parent, preprocessing=XRayPreprocessing(negative_log=True, i0=I0))
    assert request.from_dicom_tags
    fixed = fixed_image(request, iso)
    assert fixed.geometry == ConeBeam(1020.0, 128, 128, (2.92, 2.92), sid=620.0)
    torch.testing.assert_close(fixed.reference, truth)
    # The image, brought to the view from the source, is the DRR at the tags' pose.
    torch.testing.assert_close(fixed.image[0, 0], drr)
    assert "flip 'horizontal'" in fixed.source


def test_tag_options_need_a_dicom_read_through_its_tags(case):
    ct, xray, iso, *_ = case
    with pytest.raises(ValueError, match="--sdd: fill in a DICOM X-ray's tags"):
        fixed_image(RegistrationRequest(ct, xray, ct.parent, preset="prost", sdd=1000.0), iso)
    with pytest.raises(ValueError, match="--flip: the DICOM tags decide the flip"):
        fixed_image(RegistrationRequest(ct, xray, ct.parent, preprocessing=XRayPreprocessing(flip="vertical")), iso)


def test_cli_register_a_dicom_xray(case, tmp_path):
    ct, xray, *_ = case
    args = ["register", str(ct), str(xray), "--negative-log", "--binning", "4", "--init", "2,0,0,5,0,10"]
    args += ["--volume-size", "24", "--out", str(tmp_path), "--no-progress"]
    for item in TINY_SET:
        args += ["--set", item]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "X-ray geometry from DICOM" in result.output
    document = json.loads((tmp_path / "pose.json").read_text(encoding="utf-8"))
    assert document["reference"].startswith("DICOM")
    assert (tmp_path / "overlay.png").stat().st_size > 0


def test_cli_register_dicom_missing_tag_is_one_clear_line(case, tmp_path):
    ct, _, *_ = case
    bare = write_dicom(tmp_path / "bare.dcm", np.ones((8, 8), dtype=np.uint16), modality="XA")
    result = CliRunner().invoke(app, ["register", str(ct), str(bare), "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "(0018,1110)" in result.output or "(0018,1164)" in result.output
    assert "--sdd" in result.output or "--spacing" in result.output
