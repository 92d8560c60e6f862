"""The DeepFluoro reader: the file's camera model in xrender's conventions, preprocessing, errors, info, download."""

import json
import urllib.error
import zipfile

import h5py
import numpy as np
import pytest
import torch
from _tiny_search import TINY_SET
from typer.testing import CliRunner

from xrender.attenuation import hu_to_mu
from xrender.cli import app
from xrender.datasets import download as download_module
from xrender.datasets.deepfluoro import (
    DEEPFLUORO_FILE_NAME,
    LANDMARK_NAMES,
    PAPER_SPECIMENS,
    DeepFluoro,
    ProjectionParameters,
    convert_projection,
    describe_deepfluoro,
    preprocess_projection,
)
from xrender.datasets.download import DownloadError, download_deepfluoro
from xrender.datasets.simulated import write_simulated_deepfluoro
from xrender.geometry import project
from xrender.geometry.rotations import euler_to_matrix
from xrender.info import describe
from xrender.metrics import target_registration_error
from xrender.render import RenderOptions, render

# The real release's intrinsics (negative focal lengths) and detector.
REAL_K = np.array([[-5257.7319, 0.0, 767.5], [0.0, -5257.7319, 767.5], [0.0, 0.0, 1.0]])
REAL_SIZE, REAL_SPACING = 1536, 0.194


def _rigid(angles_deg, translation) -> np.ndarray:
    matrix = np.eye(4)
    matrix[:3, :3] = euler_to_matrix(torch.tensor(angles_deg, dtype=torch.float64), "xyz", degrees=True).numpy()
    matrix[:3, 3] = translation
    return matrix


def _file_pixels(K, extrinsic, cam_to_volume, points) -> np.ndarray:
    """The file's own projection formula, K_f [E G⁻¹ X], written from the layout's documentation."""
    homogeneous = np.concatenate([points, np.ones((len(points), 1))], axis=1).T
    in_frame = (extrinsic @ np.linalg.inv(cam_to_volume) @ homogeneous)[:3]
    pixels = K @ in_frame
    return (pixels[:2] / pixels[2]).T


def _real_like_case():
    """An extrinsic and a ground truth that put a pelvis-sized cloud of points in front of the detector."""
    extrinsic = _rigid((10.0, -80.0, 5.0), (30.0, -20.0, 400.0))
    points = np.random.default_rng(0).normal([90.0, 40.0, -940.0], 60.0, size=(14, 3))
    # Place the points ~650 mm in front of the source: pick the camera-world → volume pose so that the
    # projective frame sees their centre at (0, 0, −650).
    centre_in_frame = np.array([0.0, 0.0, -650.0, 1.0])
    rotation = _rigid((20.0, 35.0, -70.0), (0.0, 0.0, 0.0))
    volume_to_frame = rotation.copy()
    volume_to_frame[:3, 3] = centre_in_frame[:3] - rotation[:3, :3] @ points.mean(0)
    cam_to_volume = np.linalg.inv(volume_to_frame) @ extrinsic  # G = (E G⁻¹)⁻¹ E
    return extrinsic, cam_to_volume, points


@pytest.mark.parametrize("rot180", [False, True])
def test_converted_geometry_lands_3d_landmarks_on_the_files_2d_landmarks(rot180):
    extrinsic, gt, points = _real_like_case()
    params = ProjectionParameters(REAL_K, extrinsic, REAL_SIZE, REAL_SIZE, (REAL_SPACING, REAL_SPACING))
    stored = _file_pixels(REAL_K, extrinsic, gt, points)
    geometry, pose, flip = convert_projection(params, gt, rot180)
    ours = project(torch.from_numpy(points), pose, geometry.intrinsics(dtype=torch.float64)).numpy()
    u, v = stored.T
    expected = np.stack([u, REAL_SIZE - 1 - v] if rot180 else [REAL_SIZE - 1 - u, v], axis=1)
    np.testing.assert_allclose(ours, expected, atol=1e-6)
    assert flip == ("vertical" if rot180 else "horizontal")


def test_convention_deepfluoro_real_intrinsics_give_sdd_1020_and_a_proper_pose():
    extrinsic, gt, _ = _real_like_case()
    params = ProjectionParameters(REAL_K, extrinsic, REAL_SIZE, REAL_SIZE, (REAL_SPACING, REAL_SPACING))
    geometry, pose, _ = convert_projection(params, gt, False)
    assert geometry.sdd == pytest.approx(1020.0, abs=0.01)
    assert geometry.principal_point == pytest.approx((767.5, 767.5))
    R = pose[:3, :3]
    assert torch.allclose(R.T @ R, torch.eye(3, dtype=torch.float64), atol=1e-12)
    assert float(torch.linalg.det(R)) == pytest.approx(1.0)


def test_convention_deepfluoro_images_become_views_from_the_source():
    # The file's projective frame has +x along columns and +z toward the source: seen from the source
    # (xrender's convention) the columns run the other way, so unflagged images are mirrored.
    extrinsic, gt, _ = _real_like_case()
    params = ProjectionParameters(REAL_K, extrinsic, REAL_SIZE, REAL_SIZE, (REAL_SPACING, REAL_SPACING))
    _, pose, _ = convert_projection(params, gt, False)
    frame_to_volume = gt @ np.linalg.inv(extrinsic)  # projective frame → volume
    axes = torch.from_numpy(frame_to_volume[:3, :3])
    assert torch.allclose(pose[:3, 0], -axes[:, 0])  # image right = the file's −x
    assert torch.allclose(pose[:3, 1], axes[:, 1])  # image down = the file's +y (rows)
    assert torch.allclose(pose[:3, 2], -axes[:, 2])  # beam = away from the source = the file's −z


def test_convert_projection_rejects_non_rigid_and_skewed_matrices():
    extrinsic, gt, _ = _real_like_case()
    params = ProjectionParameters(REAL_K, extrinsic, REAL_SIZE, REAL_SIZE, (REAL_SPACING, REAL_SPACING))
    scaled = gt.copy()
    scaled[:3, :3] *= 1.1
    with pytest.raises(ValueError, match="cam-to-pelvis-vol: expected a rigid transform"):
        convert_projection(params, scaled, False)
    skewed = REAL_K.copy()
    skewed[0, 1] = 3.0
    with pytest.raises(ValueError, match="intrinsic: expected no skew"):
        convert_projection(ProjectionParameters(skewed, extrinsic, 1536, 1536, (0.194, 0.194)), gt, False)


# ------------------------------------------------------------------------------------ a file
@pytest.fixture(scope="module")
def sim_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("deepfluoro") / "sim.h5"
    return write_simulated_deepfluoro(
        path, projections=2, detector=128, pixel_spacing=2.328, volume_size=48, border=8, i0=1000.0
    )


def test_simulated_file_has_the_release_layout(sim_file):
    with h5py.File(sim_file, "r") as file:
        assert set(file) == {"proj-params", "phantom"}
        assert float(file["proj-params/intrinsic"][0, 0]) < 0
        projection = file["phantom/projections/001"]
        assert {"image", "gt-poses", "gt-landmarks", "rot-180-for-up"} <= set(projection)
        assert int(projection["rot-180-for-up"][()]) == 1
        assert file["phantom/vol/pixels"].shape == (48, 48, 48)
        assert file["phantom/vol-landmarks/FH-l"].shape == (3, 1)


def test_reader_lists_specimens_projections_and_landmarks(sim_file):
    with DeepFluoro(sim_file) as data:
        assert data.specimens() == ["phantom"]
        assert data.projection_indices("phantom") == [0, 1]
        landmarks = data.landmarks("phantom")
        assert landmarks.names == LANDMARK_NAMES
        params = data.projection_parameters()
        assert (params.rows, params.columns, params.pixel_spacing) == (128, 128, (2.328, 2.328))


@pytest.mark.parametrize("index", [0, 1])
def test_read_projection_landmarks_agree_with_projected_3d_landmarks(sim_file, index):
    with DeepFluoro(sim_file) as data:
        projection = data.projection("phantom", index)
        points = data.landmarks("phantom").points
    uv = project(points, projection.pose, projection.geometry.intrinsics(dtype=torch.float64))
    assert torch.allclose(uv, projection.landmarks_2d, atol=1e-6)
    assert projection.flip == ("vertical" if index else "horizontal")
    assert projection.rot180_for_up is bool(index)


@pytest.mark.parametrize("index", [0, 1])
def test_drr_at_the_ground_truth_matches_the_image(sim_file, index):
    with DeepFluoro(sim_file) as data:
        projection = data.projection("phantom", index)
        ct = data.volume("phantom")
    with torch.no_grad():
        drr = render(
            hu_to_mu(ct), projection.geometry, projection.pose, options=RenderOptions(beer_lambert=True, i0=1000.0)
        )[0, 0]
    inner = (slice(8, -8), slice(8, -8))  # the collimator border is dark in the image only
    error = (drr.double() - projection.image)[inner].abs().max() / projection.image[inner].max()
    assert float(error) < 1e-5
    # The correction moves the stored CT by +0.5 mm along each axis, nothing else.
    with DeepFluoro(sim_file) as data:
        stored_origin = data.volume("phantom", xreg_alignment=False)
    assert torch.allclose(stored_origin.origin + 0.5, ct.origin)


def test_preprocessing_crops_logs_bins_and_moves_landmarks_with_the_geometry(sim_file):
    with DeepFluoro(sim_file) as data:
        raw = data.projection("phantom", 1)
        points = data.landmarks("phantom").points
    done = preprocess_projection(raw, binning=4, border=8)
    assert done.image.shape == ((128 - 16) // 4,) * 2
    assert done.line_integrals
    assert float(done.image.min()) >= 0.0  # −log(I / max I) ≥ 0
    uv = project(points, done.pose, done.geometry.intrinsics(dtype=torch.float64))
    assert torch.allclose(uv, done.landmarks_2d, atol=1e-9)
    assert done.geometry.pixel_spacing == (2.328 * 4, 2.328 * 4)
    expected = -torch.log(raw.image[8:12, 8:12] / raw.image[8:-8, 8:-8].max()).mean()
    assert float(done.image[0, 0]) == pytest.approx(float(expected))
    with pytest.raises(ValueError, match="already preprocessed"):
        preprocess_projection(done)


# ------------------------------------------------------------------------------------ errors
def test_missing_and_non_hdf5_files_name_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nope\.h5"):
        DeepFluoro(tmp_path / "nope.h5")
    (tmp_path / "bad.h5").write_bytes(b"not an hdf5 file")
    with pytest.raises(ValueError, match=r"bad\.h5: not a readable HDF5 file"):
        DeepFluoro(tmp_path / "bad.h5")
    with h5py.File(tmp_path / "other.h5", "w") as file:
        file["x"] = 1
    with pytest.raises(ValueError, match=r"other\.h5: no 'proj-params' group"):
        DeepFluoro(tmp_path / "other.h5")


def test_unknown_specimen_and_projection_are_clear_errors(sim_file):
    with DeepFluoro(sim_file) as data:
        with pytest.raises(ValueError, match="no specimen '17-1882'; available: phantom"):
            data.resolve("17-1882")
        with pytest.raises(ValueError, match="no specimen 1; available: phantom"):
            data.resolve(1)
        with pytest.raises(ValueError, match="missing 'phantom/projections/007'"):
            data.projection("phantom", 7)


def test_paper_numbers_resolve_to_the_release_ids(tmp_path):
    path = write_simulated_deepfluoro(
        tmp_path / "x.h5", projections=1, detector=32, pixel_spacing=9.0, volume_size=16, border=2, specimen="18-1109"
    )
    with DeepFluoro(path) as data:
        assert data.resolve(2) == data.resolve("2") == "18-1109" == PAPER_SPECIMENS[2]


def test_a_projection_whose_landmarks_are_behind_the_camera_is_refused(tmp_path, sim_file):
    broken = tmp_path / "broken.h5"
    broken.write_bytes(sim_file.read_bytes())
    with h5py.File(broken, "r+") as file:
        gt = file["phantom/projections/000/gt-poses/cam-to-pelvis-vol"]
        flipped = gt[()] @ np.diag([-1.0, 1.0, -1.0, 1.0])  # a half-turn: the volume behind the source
        gt[...] = flipped
    with DeepFluoro(broken) as data, pytest.raises(ValueError, match="behind the converted camera"):
        data.projection("phantom", 0)


def test_image_of_the_wrong_size_is_refused(tmp_path, sim_file):
    broken = tmp_path / "small.h5"
    broken.write_bytes(sim_file.read_bytes())
    with h5py.File(broken, "r+") as file:
        del file["phantom/projections/000/image/pixels"]
        file["phantom/projections/000/image/pixels"] = np.ones((5, 5), dtype=np.float32)
    with DeepFluoro(broken) as data, pytest.raises(ValueError, match=r"expected 128×128 pixels .* got shape \(5, 5\)"):
        data.projection("phantom", 0)


# ------------------------------------------------------------------------------------ info
def test_info_lists_specimens_with_projections_and_landmarks(sim_file):
    text = describe(sim_file)
    assert text == describe_deepfluoro(sim_file)
    row = next(line for line in text.splitlines() if line.startswith("phantom"))
    assert row.split()[:4] == ["phantom", "-", "2", "14"]
    assert "sdd 1020.0 mm" in text


# ------------------------------------------------------------------------------------ download
def test_download_returns_the_cached_file_without_network(tmp_path, monkeypatch):
    cached = tmp_path / "deepfluoro" / DEEPFLUORO_FILE_NAME
    cached.parent.mkdir()
    cached.write_bytes(b"cached")
    monkeypatch.setattr(download_module, "_fetch", lambda *a: pytest.fail("must not download"))
    assert download_deepfluoro(tmp_path) == cached


def test_download_extracts_the_file_from_the_archive(tmp_path, sim_file):
    archive = tmp_path / "served.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.write(sim_file, f"ipcai_2020_full_res_data/{DEEPFLUORO_FILE_NAME}")
    path = download_deepfluoro(tmp_path / "cache", url=archive.as_uri(), progress=False)
    assert path == tmp_path / "cache" / "deepfluoro" / DEEPFLUORO_FILE_NAME
    assert path.read_bytes() == sim_file.read_bytes()
    assert sorted(p.name for p in path.parent.iterdir()) == [DEEPFLUORO_FILE_NAME]  # no staging left


def test_download_without_network_says_where_to_put_the_file(tmp_path):
    with pytest.raises(DownloadError) as caught:
        download_deepfluoro(tmp_path, url="http://deepfluoro.invalid/data.zip", timeout=5, progress=False)
    message = str(caught.value)
    assert "https://doi.org/10.7281/T1/IFSXNV" in message
    assert str(tmp_path / "deepfluoro" / DEEPFLUORO_FILE_NAME) in message
    assert not (tmp_path / "deepfluoro" / DEEPFLUORO_FILE_NAME).exists()


def test_download_refuses_an_archive_without_the_file(tmp_path):
    archive = tmp_path / "served.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.writestr("README.txt", "nothing here")
    with pytest.raises(DownloadError, match=f"holds no {DEEPFLUORO_FILE_NAME}"):
        download_deepfluoro(tmp_path / "cache", url=archive.as_uri(), progress=False)


def test_cache_folder_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("XRENDER_DATA", str(tmp_path))
    assert download_module.cache_folder() == tmp_path


# ------------------------------------------------------------------------------------ commands
def test_cli_info_and_evaluate_on_a_deepfluoro_file(sim_file, tmp_path):
    info = CliRunner().invoke(app, ["info", str(sim_file)])
    assert info.exit_code == 0, info.output
    assert "phantom" in info.output
    out = tmp_path / "eval"
    args = ["evaluate", "--deepfluoro", str(sim_file), "--specimen", "phantom", "--methods", "cmaes", "--binning", "2"]
    args += ["--volume-size", "24", "--overlays", "1", "--out", str(out), "--no-progress"]
    for item in TINY_SET:
        args += ["--set", item]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    document = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert document["config"]["trials"] == 2  # every projection of the specimen
    assert document["config"]["specimen"] == "phantom"
    assert document["methods"]["cmaes"]["trials"] == 2
    with DeepFluoro(sim_file) as data:
        truth = [data.projection("phantom", k).pose for k in (0, 1)]
        landmarks = data.landmarks("phantom").points
    for record, pose in zip(document["trials"], truth):
        estimate = torch.tensor(record["pose"], dtype=torch.float64)
        assert record["mtre_mm"] == pytest.approx(float(target_registration_error(estimate, pose, landmarks)))
    assert (out / "overlays" / "cmaes_trial0.png").stat().st_size > 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--methods", "cmaes"], "expected --specimen"),
        (["--specimen", "9", "--methods", "cmaes"], "no specimen '9'; available: phantom"),
    ],
)
def test_cli_evaluate_deepfluoro_errors(sim_file, args, message):
    result = CliRunner().invoke(app, ["evaluate", "--deepfluoro", str(sim_file), *args])
    assert result.exit_code == 2
    assert message in result.output


def test_cli_download_without_network_fails_with_the_manual_route(tmp_path, monkeypatch):
    def offline(*args):
        raise urllib.error.URLError("offline")

    monkeypatch.setattr(download_module, "_fetch", offline)
    result = CliRunner().invoke(app, ["download", "deepfluoro", "--folder", str(tmp_path), "--no-progress"])
    assert result.exit_code == 2
    assert "https://doi.org/10.7281/T1/IFSXNV" in result.output
    unknown = CliRunner().invoke(app, ["download", "lidc"])
    assert unknown.exit_code == 2
    assert "unknown dataset 'lidc'; available: deepfluoro" in unknown.output
