"""X-ray DICOM with pydicom: pixels, C-arm geometry tags, and the pose and flip they imply."""

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from _dicom_files import write_dicom
from pydicom.dataset import Dataset

from xrender.geometry.camera import ConeBeam, project
from xrender.geometry.carm import DISPLAY_ORIENTATIONS, VIEW_POSITIONS, CArmTags, CArmView, carm_geometry, carm_view
from xrender.geometry.views import standard_pose
from xrender.image import XRayPreprocessing, preprocess_xray
from xrender.io import LUMINANCE_WEIGHTS, DicomXRay, is_dicom, read_carm, read_dicom_xray, read_xray

#: Tags of a C-arm image that `carm_geometry` and `carm_view` need: SDD, SID, imager spacing.
CARM = {"DistanceSourceToDetector": 1000.0, "DistanceSourceToPatient": 750.0, "ImagerPixelSpacing": [0.4, 0.3]}

ISOCENTER = torch.tensor([10.0, -20.0, 30.0], dtype=torch.float64)


def _ramp(height=3, width=4, scale=1) -> np.ndarray:
    return (np.arange(height * width).reshape(height, width) * scale).astype(np.uint16)


def _xray(height=5, width=7, **tags) -> DicomXRay:
    """A `DicomXRay` with the given tags, without a file."""
    pixels = torch.zeros(height, width, dtype=torch.float64)
    return DicomXRay(Path("x.dcm"), pixels, 0, 1, "XA", "MONOCHROME2", CArmTags(**tags))


def _carm_xray(**tags) -> DicomXRay:
    return _xray(sdd=1000.0, sid=750.0, imager_pixel_spacing=(0.4, 0.3), **tags)


def _geometry_of(xray: DicomXRay, **keywords) -> ConeBeam:
    """`carm_geometry` of a read X-ray's tags, its messages naming the file (as `read_carm` does)."""
    return carm_geometry(xray.tags, xray.shape, origin=str(xray.path), **keywords)


def _view_of(xray: DicomXRay, isocenter: torch.Tensor, **keywords) -> CArmView:
    """`carm_view` of a read X-ray's tags, its messages naming the file (as `read_carm` does)."""
    return carm_view(xray.tags, isocenter, origin=str(xray.path), **keywords)


# ---------------------------------------------------------------------------------------- pixels
@pytest.mark.parametrize("modality", ["DX", "CR", "XA", "RF", "OT"])
def test_pixels_round_trip_for_each_modality(tmp_path, modality):
    array = _ramp(scale=1000)
    xray = read_dicom_xray(write_dicom(tmp_path / "x.dcm", array, modality=modality))
    assert xray.pixels.dtype == torch.float64
    assert xray.shape == (3, 4)
    np.testing.assert_array_equal(xray.pixels.numpy(), array)
    assert (xray.modality, xray.photometric, xray.frame, xray.frames) == (modality, "MONOCHROME2", 0, 1)
    assert xray.path == tmp_path / "x.dcm"
    assert (xray.tags.rows, xray.tags.columns) == (3, 4)


def test_rescale_slope_and_intercept_are_applied(tmp_path):
    path = write_dicom(tmp_path / "x.dcm", _ramp(), RescaleSlope=2, RescaleIntercept=-5)
    np.testing.assert_array_equal(read_dicom_xray(path).pixels.numpy(), 2.0 * _ramp() - 5)


def test_modality_lut_sequence_is_applied(tmp_path):
    lut = Dataset()
    lut.LUTDescriptor = [4, 0, 16]
    lut.add_new("LUTData", "US", [100, 200, 300, 400])
    lut.ModalityLUTType = "US"
    path = write_dicom(tmp_path / "x.dcm", np.array([[0, 1], [2, 3]], np.uint16), ModalityLUTSequence=[lut])
    assert read_dicom_xray(path).pixels.tolist() == [[100.0, 200.0], [300.0, 400.0]]


def test_convention_dicom_monochrome1_is_negated_after_the_rescale(tmp_path):
    path = write_dicom(tmp_path / "x.dcm", _ramp(), photometric="MONOCHROME1", RescaleSlope=2, RescaleIntercept=-5)
    rescaled = 2.0 * _ramp() - 5  # −5 … 17
    xray = read_dicom_xray(path)
    assert xray.photometric == "MONOCHROME1"
    np.testing.assert_array_equal(xray.pixels.numpy(), rescaled.max() - rescaled)


def test_colour_becomes_luminance(tmp_path):
    rgb = np.array([[[255, 0, 0], [0, 255, 0]], [[0, 0, 255], [10, 20, 30]]], dtype=np.uint8)
    xray = read_dicom_xray(write_dicom(tmp_path / "x.dcm", rgb, modality="OT", photometric="RGB"))
    wr, wg, wb = LUMINANCE_WEIGHTS
    np.testing.assert_allclose(xray.pixels.numpy(), [[255 * wr, 255 * wg], [255 * wb, 10 * wr + 20 * wg + 30 * wb]])


def test_multiframe_reads_the_requested_frame(tmp_path):
    frames = np.arange(3 * 2 * 4).reshape(3, 2, 4).astype(np.uint16)
    path = write_dicom(tmp_path / "cine.dcm", frames)
    for k in range(3):
        xray = read_dicom_xray(path, frame=k)
        np.testing.assert_array_equal(xray.pixels.numpy(), frames[k])
        assert (xray.frame, xray.frames) == (k, 3)
    with pytest.raises(ValueError, match=r"cine\.dcm: frame 3 does not exist; the file holds 3 frame\(s\)"):
        read_dicom_xray(path, frame=3)
    with pytest.raises(ValueError, match="non-negative int frame"):
        read_dicom_xray(path, frame=-1)


def test_unreadable_files_name_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nothere\.dcm: no such file"):
        read_dicom_xray(tmp_path / "nothere.dcm")
    with pytest.raises(ValueError, match="is a folder"):
        read_dicom_xray(tmp_path)
    (tmp_path / "junk.dcm").write_bytes(b"\x00\x01 this is not an image " * 20)
    with pytest.raises(ValueError, match=r"junk\.dcm: could not read as DICOM \(pydicom said: .*DICM"):
        read_dicom_xray(tmp_path / "junk.dcm")
    data = write_dicom(tmp_path / "x.dcm", _ramp(20, 20)).read_bytes()
    (tmp_path / "cut.dcm").write_bytes(data[:-100])  # pixel data shorter than Rows × Columns
    with pytest.raises(ValueError, match=r"cut\.dcm: could not decode frame 0 of the pixel data"):
        read_dicom_xray(tmp_path / "cut.dcm")


def test_a_file_without_pixel_data_is_refused(tmp_path):
    path = write_dicom(tmp_path / "x.dcm", _ramp(), modality="DX")
    from pydicom import dcmread

    ds = dcmread(path)
    del ds.PixelData
    ds.save_as(tmp_path / "nopixels.dcm")
    with pytest.raises(
        ValueError, match=r"nopixels\.dcm: expected image pixels \(Pixel Data \(7FE0,0010\)\), found none"
    ):
        read_dicom_xray(tmp_path / "nopixels.dcm")


def test_palette_colour_is_refused(tmp_path):
    path = write_dicom(tmp_path / "x.dcm", _ramp(), photometric="PALETTE COLOR")
    with pytest.raises(ValueError, match=r"x\.dcm: expected a Photometric Interpretation .*MONOCHROME1.*PALETTE COLOR"):
        read_dicom_xray(path)


def test_is_dicom(tmp_path):
    assert is_dicom(write_dicom(tmp_path / "IM0001", _ramp()))
    (tmp_path / "x.png").write_bytes(b"\x89PNG" + bytes(200))
    assert not is_dicom(tmp_path / "x.png")
    assert not is_dicom(tmp_path / "missing")


def test_read_xray_reads_dicom_through_this_module(tmp_path):
    path = write_dicom(tmp_path / "x.dcm", _ramp(), photometric="MONOCHROME1", **CARM)
    image = read_xray(path)
    xray = read_dicom_xray(path)
    assert torch.equal(image.pixels, xray.pixels)
    assert image.spacing == (0.4, 0.3)


# ------------------------------------------------------------------------------------------ tags
def test_geometry_tags_are_read(tmp_path):
    tags = {
        **CARM,
        "PixelSpacing": [0.2, 0.15],
        "PositionerPrimaryAngle": -30.5,
        "PositionerSecondaryAngle": 12.0,
        "PatientOrientation": ["L", "F"],
        "ViewPosition": "AP",
        "PositionerType": "CARM",
        "DetectorPrimaryAngle": 0.0,
    }
    read = read_dicom_xray(write_dicom(tmp_path / "x.dcm", _ramp(), **tags)).tags
    assert read == CArmTags(
        rows=3,
        columns=4,
        sdd=1000.0,
        sid=750.0,
        imager_pixel_spacing=(0.4, 0.3),
        pixel_spacing=(0.2, 0.15),
        primary_angle_deg=-30.5,
        secondary_angle_deg=12.0,
        positioner_type="CARM",
        patient_orientation=("L", "F"),
        view_position="AP",
        detector_primary_angle_deg=0.0,
    )


def test_absent_and_malformed_tags_are_none(tmp_path):
    assert read_dicom_xray(write_dicom(tmp_path / "bare.dcm", _ramp())).tags == CArmTags(rows=3, columns=4)
    path = write_dicom(tmp_path / "x.dcm", _ramp(), ImagerPixelSpacing=[11.5, 22.5], DistanceSourceToDetector=-3)
    path.write_bytes(path.read_bytes().replace(b"11.5\\22.5 ", b"n/a       "))  # same length, not numbers
    tags = read_dicom_xray(path).tags
    assert (tags.imager_pixel_spacing, tags.sdd) == (None, None)  # unreadable; a distance must be > 0


def test_geometry_from_the_tags(tmp_path):
    xray = read_dicom_xray(write_dicom(tmp_path / "x.dcm", _ramp(6, 8), **CARM))
    geometry = _geometry_of(xray)
    assert geometry == ConeBeam(sdd=1000.0, height=6, width=8, pixel_spacing=(0.4, 0.3), sid=750.0)
    # (row, column): the column spacing sets f_u, the row spacing f_v; the principal point is the centre
    assert geometry.focal_length == pytest.approx((1000.0 / 0.3, 1000.0 / 0.4))
    assert geometry.principal_point == (3.5, 2.5)


def test_keywords_fill_in_and_override_the_tags():
    bare = _xray()
    geometry = _geometry_of(bare, sdd=1200.0, sid=800.0, pixel_spacing=(0.2, 0.25))
    assert geometry == ConeBeam(sdd=1200.0, height=5, width=7, pixel_spacing=(0.2, 0.25), sid=800.0)
    assert _geometry_of(_carm_xray(), sdd=900.0).sdd == 900.0
    assert _geometry_of(_carm_xray(), pixel_spacing=(1.0, 2.0)).pixel_spacing == (1.0, 2.0)
    assert _geometry_of(_xray(sdd=1000.0, imager_pixel_spacing=(0.4, 0.3))).sid is None  # optional here


@pytest.mark.parametrize(
    ("tags", "message"),
    [
        (
            {"imager_pixel_spacing": (0.4, 0.3)},
            r"x\.dcm: Distance Source to Detector \(0018,1110\) is missing or unreadable; pass sdd=<mm> "
            r"\(command line: --sdd MM\)",
        ),
        (
            {"sdd": 1000.0, "pixel_spacing": (0.2, 0.2)},  # Pixel Spacing (0028,0030) does not stand in
            r"x\.dcm: Imager Pixel Spacing \(0018,1164\) is missing or unreadable; pass pixel_spacing=\(row, column\) "
            r"in mm \(command line: --spacing ROW,COL\)",
        ),
    ],
)
def test_missing_geometry_names_the_tag_and_the_option(tags, message):
    with pytest.raises(ValueError, match=message):
        _geometry_of(_xray(**tags))


def test_missing_sid_names_the_tag_and_the_option():
    xray = _xray(primary_angle_deg=0.0, secondary_angle_deg=0.0)
    with pytest.raises(ValueError, match=r"Distance Source to Patient \(0018,1111\) is missing .*sid=<mm>.*--sid MM"):
        _view_of(xray, ISOCENTER)
    assert _view_of(xray, ISOCENTER, sid=700.0).pose[:3, 3].sub(ISOCENTER).norm() == pytest.approx(700.0)


@pytest.mark.parametrize("tilt", [{"detector_primary_angle_deg": 5.0}, {"detector_secondary_angle_deg": -2.0}])
def test_tilted_detector_is_refused(tilt):
    xray = _carm_xray(primary_angle_deg=0.0, secondary_angle_deg=0.0, **tilt)
    with pytest.raises(
        ValueError, match=r"Detector (Primary|Secondary) Angle \(0018,153[01]\).*tilted detector is not"
    ):
        _geometry_of(xray)
    with pytest.raises(ValueError, match="tilted detector is not supported"):
        _view_of(xray, ISOCENTER)
    _geometry_of(_carm_xray(detector_primary_angle_deg=0.0))  # 0 is an untilted detector


# ------------------------------------------------------------------------------------------ pose
def _view(primary, secondary, **tags):
    return _view_of(_carm_xray(primary_angle_deg=primary, secondary_angle_deg=secondary, **tags), ISOCENTER)


@pytest.mark.parametrize(("primary", "view"), [(0.0, "pa"), (90.0, "ll"), (-90.0, "rl")])
def test_convention_dicom_angles_reproduce_the_standard_views(primary, view):
    result = _view(primary, 0.0)
    torch.testing.assert_close(result.pose, standard_pose(view, 750.0, ISOCENTER), atol=1e-12, rtol=0)
    assert result.flip == "horizontal"  # no Patient Orientation: stored as seen from the detector


def test_convention_dicom_cranial_tilts_the_beam_toward_the_head():
    pose = _view(0.0, 30.0).pose
    source, beam = pose[:3, 3], pose[:3, 2]
    assert source[2] < ISOCENTER[2]  # the source moves toward the feet
    assert beam[2] == pytest.approx(math.sin(math.radians(30.0)))  # the beam toward the head
    assert _view(0.0, -30.0).pose[2, 3] > ISOCENTER[2]  # caudal: the other way


@pytest.mark.parametrize(("primary", "secondary"), [(0.0, 0.0), (37.0, -21.0), (-120.0, 45.0), (180.0, 80.0)])
def test_convention_dicom_beam_source_and_rotation(primary, secondary):
    pose = _view(primary, secondary).pose
    alpha, beta = math.radians(primary), math.radians(secondary)
    d = torch.tensor(
        [math.sin(alpha) * math.cos(beta), -math.cos(alpha) * math.cos(beta), math.sin(beta)], dtype=torch.float64
    )
    R = pose[:3, :3]
    torch.testing.assert_close(R[:, 2], d, atol=1e-12, rtol=0)  # isocentre → detector
    torch.testing.assert_close(pose[:3, 3], ISOCENTER - 750.0 * d, atol=1e-9, rtol=0)
    torch.testing.assert_close(R.T @ R, torch.eye(3, dtype=torch.float64), atol=1e-12, rtol=0)
    assert torch.linalg.det(R) == pytest.approx(1.0)
    assert pose.dtype == torch.float64


def _stored_pixel(view, geometry: ConeBeam, point: torch.Tensor) -> torch.Tensor:
    """Where a world point lands in the image as stored in the file: projected, then un-flipped."""
    u, v = project(point[None], view.pose, geometry.intrinsics(dtype=torch.float64))[0]
    flipped = {"none": (u, v), "horizontal": (geometry.width - 1 - u, v)}[view.flip]
    return torch.stack(flipped)


_WORLD = {"L": (1, 0, 0), "R": (-1, 0, 0), "P": (0, 1, 0), "A": (0, -1, 0), "H": (0, 0, 1), "F": (0, 0, -1)}


def _toward(letters: str) -> torch.Tensor:
    return 50.0 * sum(torch.tensor(_WORLD[c], dtype=torch.float64) for c in letters)


def _geometry_and_view(primary, secondary, orientation, **tags):
    """A 64 × 64 detector of 0.5 mm pixels at the given angles and Patient Orientation."""
    xray = _xray(
        64,
        64,
        sdd=1000.0,
        sid=750.0,
        imager_pixel_spacing=(0.5, 0.5),
        primary_angle_deg=primary,
        secondary_angle_deg=secondary,
        patient_orientation=orientation,
        **tags,
    )
    return _geometry_of(xray), _view_of(xray, ISOCENTER)


def test_convention_dicom_pa_default_shows_the_patients_left_on_the_stored_right():
    geometry, view = _geometry_and_view(0.0, 0.0, None)  # no Patient Orientation
    centre = _stored_pixel(view, geometry, ISOCENTER)
    assert centre.tolist() == pytest.approx([31.5, 31.5])
    left = _stored_pixel(view, geometry, ISOCENTER + _toward("L"))
    head = _stored_pixel(view, geometry, ISOCENTER + _toward("H"))
    assert left[0] > centre[0]  # the patient's left: the stored image's right
    assert left[1] == pytest.approx(centre[1])
    assert head[1] < centre[1]  # the head at the top
    assert head[0] == pytest.approx(centre[0])
    # in xrender's view from the source (the flipped image), the patient's left is on the left
    u, _ = project((ISOCENTER + _toward("L"))[None], view.pose, geometry.intrinsics(dtype=torch.float64))[0]
    assert u < 31.5


@pytest.mark.parametrize(
    ("primary", "secondary", "orientation", "flip"),
    [
        (0.0, 0.0, ("L", "F"), "horizontal"),  # the usual display of a frontal C-arm image
        (0.0, 0.0, ("R", "F"), "none"),  # already a view from the source
        (0.0, 0.0, ("L", "H"), "none"),  # upside-down mirror = a view from the source turned 180°
        (0.0, 0.0, ("R", "H"), "horizontal"),  # upside down
        (0.0, 0.0, ("H", "L"), "horizontal"),  # turned 90°
        (0.0, 0.0, ("F", "L"), "none"),
        (90.0, 0.0, ("P", "F"), "horizontal"),  # LAO 90
        (-90.0, 0.0, ("A", "F"), "horizontal"),  # RAO 90
        (30.0, 0.0, ("LP", "F"), "horizontal"),  # combined letters
        (0.0, 25.0, ("L", "FA"), "horizontal"),
        (-45.0, -20.0, ("RP", "F"), "none"),
    ],
)
def test_convention_dicom_patient_orientation_decides_flip_and_in_plane_rotation(primary, secondary, orientation, flip):
    geometry, view = _geometry_and_view(primary, secondary, orientation)
    assert view.flip == flip
    centre = _stored_pixel(view, geometry, ISOCENTER)
    along_rows = _stored_pixel(view, geometry, ISOCENTER + _toward(orientation[0])) - centre
    along_columns = _stored_pixel(view, geometry, ISOCENTER + _toward(orientation[1])) - centre
    assert along_rows[0] > 5 * abs(along_rows[1])  # the first letter: toward increasing columns
    assert along_columns[1] > 5 * abs(along_columns[0])  # the second: toward increasing rows
    R = view.pose[:3, :3]
    assert torch.linalg.det(R) == pytest.approx(1.0)
    beam = _view(primary, secondary).pose[:3, 2]
    torch.testing.assert_close(R[:, 2], beam)  # only the image turns; the beam stays


@pytest.mark.parametrize(
    "orientation", [("L",), ("L", "F", "A"), ("L", "X"), ("LR", "F"), ("L", "L"), ("", "F"), ("LPHA", "F")]
)
def test_malformed_patient_orientation_is_refused(orientation):
    with pytest.raises(ValueError, match=r"x\.dcm: Patient Orientation \(0020,0020\) is .*expected two values"):
        _geometry_and_view(0.0, 0.0, orientation)


def test_patient_orientation_along_the_beam_is_refused():
    with pytest.raises(ValueError, match=r"L\\F describes an image plane nearly parallel to the beam of LAO 90°"):
        _geometry_and_view(90.0, 0.0, ("L", "F"))  # LAO 90: the beam runs toward L


# ----------------------------------------------------------------------------- standard views
@pytest.mark.parametrize(("position", "view"), list(VIEW_POSITIONS.items()))
def test_view_position_gives_the_standard_view_shown_as_usual(position, view):
    xray = _xray(64, 64, sdd=1000.0, sid=750.0, imager_pixel_spacing=(0.5, 0.5), view_position=position)
    geometry, result = _geometry_of(xray), _view_of(xray, ISOCENTER)
    torch.testing.assert_close(result.pose, standard_pose(view, 750.0, ISOCENTER), atol=1e-12, rtol=0)
    assert result.flip == ("none" if view == "ap" else "horizontal")
    rows, columns = DISPLAY_ORIENTATIONS[view]
    centre = _stored_pixel(result, geometry, ISOCENTER)
    assert (_stored_pixel(result, geometry, ISOCENTER + _toward(rows)) - centre)[0] > 1
    assert (_stored_pixel(result, geometry, ISOCENTER + _toward(columns)) - centre)[1] > 1
    if view in ("ap", "pa"):  # a frontal radiograph: the patient's left on the viewer's right
        assert (_stored_pixel(result, geometry, ISOCENTER + _toward("L")) - centre)[0] > 1


def test_patient_orientation_overrides_the_display_default_of_a_view():
    xray = _carm_xray(view_position="AP", patient_orientation=("R", "F"))  # an AP stored mirrored
    result = _view_of(xray, ISOCENTER)
    assert result.flip == "horizontal"
    torch.testing.assert_close(result.pose, standard_pose("ap", 750.0, ISOCENTER), atol=1e-12, rtol=0)


@pytest.mark.parametrize("position", ["LATERAL", "RLD", "LLO"])
def test_view_positions_without_a_direction_are_refused(position):
    with pytest.raises(ValueError, match=rf"View Position \(0018,5101\) is '{position}', which fixes no beam.*--view"):
        _view_of(_carm_xray(view_position=position), ISOCENTER)


def test_keywords_choose_the_direction_before_the_tags():
    xray = _carm_xray(primary_angle_deg=90.0, secondary_angle_deg=0.0, view_position="AP")
    torch.testing.assert_close(_view_of(xray, ISOCENTER).pose, standard_pose("ll", 750.0, ISOCENTER))
    given = _view_of(xray, ISOCENTER, angles=(-90.0, 0.0))
    torch.testing.assert_close(given.pose, standard_pose("rl", 750.0, ISOCENTER))
    assert given.flip == "horizontal"
    by_view = _view_of(xray, ISOCENTER, view="ap")
    torch.testing.assert_close(by_view.pose, standard_pose("ap", 750.0, ISOCENTER))
    assert by_view.flip == "none"
    with pytest.raises(ValueError, match="pass angles or view, not both"):
        _view_of(xray, ISOCENTER, angles=(0.0, 0.0), view="ap")
    with pytest.raises(ValueError, match="unknown view 'lao'"):
        _view_of(xray, ISOCENTER, view="lao")
    with pytest.raises(ValueError, match=r"expected angles=\(primary, secondary\)"):
        _view_of(xray, ISOCENTER, angles=(0.0,))


def test_no_direction_names_the_tags_and_the_options():
    message = (
        r"x\.dcm: no beam direction: Positioner Primary Angle \(0018,1510\) and Positioner Secondary Angle "
        r"\(0018,1511\) of a C-arm and View Position \(0018,5101\) are missing; pass angles=.*--angles "
        r"PRIMARY,SECONDARY.*--view"
    )
    with pytest.raises(ValueError, match=message):
        _view_of(_carm_xray(), ISOCENTER)
    with pytest.raises(ValueError, match=message):  # one angle alone is not a direction
        _view_of(_carm_xray(primary_angle_deg=30.0), ISOCENTER)
    with pytest.raises(ValueError, match=message):  # angles of a non-C-arm positioner mean something else
        _view_of(_carm_xray(primary_angle_deg=0.0, secondary_angle_deg=0.0, positioner_type="COLUMN"), ISOCENTER)


# ------------------------------------------------------------------------------ dynamic runs
@pytest.mark.parametrize(
    ("tags", "expected"),
    [
        (
            {"PositionerPrimaryAngleIncrement": 2.5, "PositionerSecondaryAngleIncrement": -1.0},
            [(-10 + 2.5 * k, 5 - k) for k in range(4)],
        ),
        (
            {"PositionerPrimaryAngleIncrement": [0, 1, 5, 9], "PositionerSecondaryAngleIncrement": [0, 0, -2, -4]},
            [(-10.0, 5.0), (-9.0, 5.0), (-5.0, 3.0), (-1.0, 1.0)],
        ),
    ],
)
def test_dynamic_runs_give_each_frame_its_angles(tmp_path, tags, expected):
    frames = np.zeros((4, 2, 3), np.uint16)
    path = write_dicom(
        tmp_path / "spin.dcm",
        frames,
        PositionerMotion="DYNAMIC",
        PositionerPrimaryAngle=-10.0,
        PositionerSecondaryAngle=5.0,
        **tags,
    )
    angles = [
        (xray.tags.primary_angle_deg, xray.tags.secondary_angle_deg)
        for xray in (read_dicom_xray(path, frame=k) for k in range(4))
    ]
    np.testing.assert_allclose(angles, expected)


def test_increments_apply_only_to_dynamic_runs_and_must_fit_the_frames(tmp_path):
    frames = np.zeros((4, 2, 3), np.uint16)
    static = write_dicom(
        tmp_path / "static.dcm",
        frames,
        PositionerMotion="STATIC",
        PositionerPrimaryAngle=-10.0,
        PositionerPrimaryAngleIncrement=2.5,
    )
    assert read_dicom_xray(static, frame=3).tags.primary_angle_deg == -10.0
    wrong = write_dicom(
        tmp_path / "wrong.dcm",
        frames,
        PositionerMotion="DYNAMIC",
        PositionerPrimaryAngle=-10.0,
        PositionerPrimaryAngleIncrement=[1, 2, 3],  # neither 1 value nor one per frame
    )
    assert read_dicom_xray(wrong, frame=1).tags.primary_angle_deg is None


# ---------------------------------------------------------------------------------- end to end
def test_read_carm_and_preprocess(tmp_path):
    tags = {**CARM, "PositionerPrimaryAngle": 20.0, "PositionerSecondaryAngle": -10.0, "PatientOrientation": ["L", "F"]}
    path = write_dicom(tmp_path / "x.dcm", _ramp(6, 8, scale=100), **tags)
    xray, geometry, view = read_carm(path, ISOCENTER)
    assert geometry == _geometry_of(xray)
    torch.testing.assert_close(view.pose, _view_of(xray, ISOCENTER).pose)
    assert view.flip == "horizontal"
    fixed, fixed_geometry = preprocess_xray(xray.pixels, geometry, XRayPreprocessing(flip=view.flip))
    assert torch.equal(fixed[0, 0], xray.pixels.flip(-1))
    assert fixed_geometry == geometry  # a centred principal point stays centred
    text = view.describe()
    assert "LAO 20°, CAU 10° (Positioner Angles)" in text
    assert "Patient Orientation L\\F" in text
    assert "flip 'horizontal'" in text
    _, other, given = read_carm(path, ISOCENTER, sdd=1100.0, sid=700.0, pixel_spacing=(0.2, 0.2), view="pa")
    assert (other.sdd, other.sid, other.pixel_spacing) == (1100.0, 700.0, (0.2, 0.2))
    torch.testing.assert_close(given.pose, standard_pose("pa", 700.0, ISOCENTER))


def test_isocenter_is_checked():
    with pytest.raises(ValueError, match=r"isocenter: expected shape \(3\)"):
        _view_of(_carm_xray(primary_angle_deg=0.0, secondary_angle_deg=0.0), torch.zeros(1, 3))


def test_geometry_from_tags_alone_names_the_tags_in_its_messages():
    tags = CArmTags(sdd=1000.0, sid=750.0, imager_pixel_spacing=(0.4, 0.3), primary_angle_deg=0.0)
    assert carm_geometry(tags, (5, 7)) == ConeBeam(sdd=1000.0, height=5, width=7, pixel_spacing=(0.4, 0.3), sid=750.0)
    with pytest.raises(ValueError, match=r"^CArmTags: no beam direction: Positioner Primary Angle \(0018,1510\)"):
        carm_view(tags, ISOCENTER)
    with pytest.raises(ValueError, match=r"^run 7: Distance Source to Detector \(0018,1110\) is missing"):
        carm_geometry(CArmTags(), (5, 7), origin="run 7")


def test_read_carm_names_the_file_in_the_tag_messages(tmp_path):
    path = write_dicom(tmp_path / "bare.dcm", _ramp())
    with pytest.raises(ValueError, match=r"bare\.dcm: Distance Source to Detector \(0018,1110\) is missing"):
        read_carm(path, ISOCENTER)


def test_the_attribute_names_in_messages_are_pydicoms():
    from pydicom.datadict import dictionary_description
    from pydicom.tag import Tag

    from xrender.geometry.carm import _ATTRIBUTES

    for keyword, named in _ATTRIBUTES.items():
        tag = Tag(keyword)
        assert named == f"{dictionary_description(tag)} ({tag.group:04X},{tag.element:04X})"


# ----------------------------------------------------------------------------------- the writer
def test_written_dicom_reads_back_its_pixels_and_its_geometry(tmp_path):
    from xrender.geometry import ConeBeam
    from xrender.geometry.carm import carm_geometry
    from xrender.io import write_dicom_xray

    carm = ConeBeam(sdd=1100.0, height=12, width=20, pixel_spacing=(0.5, 0.75), sid=700.0)
    image = torch.linspace(-0.3, 6.2, 240, dtype=torch.float64).reshape(12, 20)
    path = write_dicom_xray(tmp_path / "x.dcm", image, carm)
    read = read_dicom_xray(path)
    assert read.modality == "DX"
    assert read.photometric == "MONOCHROME2"
    torch.testing.assert_close(read.pixels, image, rtol=0, atol=6.5 / 65535 / 2 * 1.001)  # half a grey step
    assert carm_geometry(read.tags, read.shape) == carm
    constant = write_dicom_xray(tmp_path / "c.dcm", torch.full((12, 20), 2.5), carm)
    assert torch.equal(read_dicom_xray(constant).pixels, torch.full((12, 20), 2.5, dtype=torch.float64))


def test_write_image_dcm_goes_through_the_dicom_writer(tmp_path):
    from xrender.geometry import ConeBeam
    from xrender.render.output import write_image

    carm = ConeBeam(sdd=1000.0, height=4, width=6, pixel_spacing=(1.0, 1.0), sid=600.0)
    image = torch.arange(24, dtype=torch.float32).reshape(1, 4, 6)
    read = read_dicom_xray(write_image(image, carm, tmp_path / "drr.DCM"))
    torch.testing.assert_close(read.pixels, image[0].double(), rtol=0, atol=23 / 65535)
    with pytest.raises(ValueError, match="one channel"):
        write_image(image.expand(2, 4, 6), carm, tmp_path / "two.dcm")


def test_dicom_writer_errors(tmp_path):
    from xrender.geometry import ConeBeam
    from xrender.io import write_dicom_xray

    carm = ConeBeam(sdd=1000.0, height=4, width=6, pixel_spacing=(1.0, 1.0), sid=600.0)
    with pytest.raises(ValueError, match="2-D"):
        write_dicom_xray(tmp_path / "a.dcm", torch.zeros(1, 4, 6), carm)
    with pytest.raises(ValueError, match="4×6"):
        write_dicom_xray(tmp_path / "a.dcm", torch.zeros(6, 4), carm)
    with pytest.raises(ValueError, match="NaN"):
        write_dicom_xray(tmp_path / "a.dcm", torch.full((4, 6), float("nan")), carm)
    off = ConeBeam(sdd=1000.0, height=4, width=6, pixel_spacing=(1.0, 1.0), sid=600.0, principal_offset=(2.0, 0.0))
    with pytest.raises(ValueError, match="principal_offset"):
        write_dicom_xray(tmp_path / "a.dcm", torch.zeros(4, 6), off)
    assert not list(tmp_path.iterdir())  # nothing half-written


@pytest.mark.parametrize("view", ["ap", "pa", "ll", "rl"])
def test_convention_dicom_written_image_reads_back_as_the_view_from_the_source(tmp_path, view):
    """`write_dicom_xray(pose=…)` writes that pose's Patient Orientation: read with the view, no flip, same axes."""
    from xrender.geometry import ConeBeam, standard_pose
    from xrender.geometry.carm import patient_orientation
    from xrender.io import read_carm, write_dicom_xray

    carm = ConeBeam(sdd=1000.0, height=4, width=6, pixel_spacing=(1.0, 1.0), sid=600.0)
    iso = torch.tensor([1.0, -2.0, 3.0], dtype=torch.float64)
    pose = standard_pose(view, carm.sid, iso)
    path = write_dicom_xray(tmp_path / "x.dcm", torch.rand(4, 6, dtype=torch.float64), carm, pose=pose)
    xray, geometry, read = read_carm(path, iso, view=view)
    assert xray.tags.patient_orientation == patient_orientation(pose)
    assert read.flip == "none"
    torch.testing.assert_close(read.pose, pose)
    assert geometry == carm
