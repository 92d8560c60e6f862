"""The pose-regression baseline: `PoseRegressor` (shapes, identity start, files) and its training recipe."""

from __future__ import annotations

import math

import pytest
import torch

from xrender.geometry import (
    get_pose_distribution,
    get_preset,
    make_pose,
    perturb,
    rotation_6d_to_matrix,
    standard_pose,
)
from xrender.io import CheckpointError, load_state, save_state
from xrender.metrics import rotation_error, translation_error
from xrender.recipes.regression import (
    RegressionConfig,
    evaluate_regressor,
    regression_geometry,
    regression_loss,
    train_regressor,
    validation_motions,
)
from xrender.registration.regression import REGRESSOR_FORMAT, PoseRegressor
from xrender.render import DRR
from xrender.subject import phantom_subject

SIZE = 32
TINY = RegressionConfig(
    image_size=SIZE, volume_size=32, batch_size=8, iterations=80, widths=(8, 16, 32), lr=3e-3, validation_poses=32
)


@pytest.fixture(scope="module")
def volume():
    return phantom_subject(TINY.volume_size, None).full  # μ (mm⁻¹): the subject converts the phantom's HU


@pytest.fixture(scope="module")
def trained(volume):
    return train_regressor(volume, TINY.replace(augment=False), progress=False)


def _model(seed: int = 0, randomize: bool = True) -> PoseRegressor:
    """A small regressor on the AP view; ``randomize`` gives its last layer random weights (not identity)."""
    torch.manual_seed(seed)
    iso = torch.tensor([1.0, -2.0, 3.0], dtype=torch.float64)
    model = PoseRegressor(SIZE, standard_pose("ap", 620.0, iso), iso, widths=(8, 16, 32))
    if randomize:
        with torch.no_grad():
            model.head[-1].weight.normal_(0.0, 0.3)
    return model.eval()


def _images(n: int, seed: int = 1) -> torch.Tensor:
    return torch.rand(n, 1, SIZE, SIZE, generator=torch.Generator().manual_seed(seed))


def _rigid_and_proper(T: torch.Tensor) -> None:
    R = T[..., :3, :3].double()
    eye = torch.eye(3, dtype=torch.float64).expand_as(R)
    torch.testing.assert_close(R.transpose(-1, -2) @ R, eye, atol=1e-5, rtol=0)
    torch.testing.assert_close(torch.linalg.det(R), torch.ones(R.shape[:-2], dtype=torch.float64), atol=1e-5, rtol=0)
    assert torch.equal(T[..., 3, :], torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=T.dtype).expand_as(T[..., 3, :]))


# ------------------------------------------------------------------------------------------- network


def test_forward_returns_rigid_motions_in_the_weights_dtype():
    model = _model()
    delta = model(_images(3))
    assert delta.shape == (3, 4, 4)
    assert delta.dtype == torch.float32
    _rigid_and_proper(delta)
    assert model(_images(2).double()).dtype == torch.float32  # images follow the weights
    pose = model.predict_pose(_images(2))
    assert pose.shape == (2, 4, 4)
    assert pose.dtype == torch.float64
    _rigid_and_proper(pose)


def test_untrained_network_predicts_the_reference_pose():
    model = _model(randomize=False)
    delta = model(_images(4) * 100 + 7)
    torch.testing.assert_close(delta, torch.eye(4).expand(4, 4, 4), atol=1e-6, rtol=0)
    torch.testing.assert_close(model.predict_pose(_images(4)), model.reference.expand(4, 4, 4), atol=1e-6, rtol=0)


def test_predict_pose_is_the_reference_perturbed_by_forward():
    model = _model()
    images = _images(3)
    delta = model(images).double()
    assert not torch.allclose(delta, torch.eye(4, dtype=torch.float64).expand(3, 4, 4), atol=1e-2)
    expected = perturb(model.reference.expand(3, 4, 4), delta, model.isocenter)
    torch.testing.assert_close(model.predict_pose(images), expected, atol=1e-10, rtol=0)


def test_prediction_is_invariant_to_the_intensity_scale():
    model = _model()
    images = _images(2)
    torch.testing.assert_close(model(3.0 * images + 5.0), model(images), atol=1e-3, rtol=1e-3)  # mm: float32 noise


def test_batched_equals_one_by_one():
    model = _model()
    images = _images(5)
    batched = model(images)
    single = torch.cat([model(image[None]) for image in images])
    torch.testing.assert_close(batched, single, atol=1e-4, rtol=1e-5)
    assert not torch.allclose(batched[0], batched[1], atol=1e-4)  # different images, different answers


def test_unchecked_6d_rotation_matches_the_checked_one():
    d6 = torch.randn(100, 6, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    torch.testing.assert_close(rotation_6d_to_matrix(d6, eps=1e-8), rotation_6d_to_matrix(d6), atol=1e-12, rtol=0)
    assert torch.isfinite(rotation_6d_to_matrix(torch.zeros(2, 6), eps=1e-8)).all()  # degenerate: finite, no error


def test_gradients_reach_every_weight_after_one_step():
    model = _model(randomize=False).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    target = get_pose_distribution("prost-train").sample(4, seed=0)
    for _ in range(2):  # the zero last layer lets gradients through from the second step on
        optimizer.zero_grad()
        regression_loss(model(_images(4)), target, TINY).mean().backward()
        optimizer.step()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None, name
        assert torch.isfinite(parameter.grad).all(), name
        assert parameter.grad.abs().sum() > 0, name


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (torch.zeros(1, 1, 16, 16), r"expected shape \(B, 1, 32, 32\), got \(1, 1, 16, 16\)"),
        (torch.zeros(1, 3, 32, 32), r"expected shape \(B, 1, 32, 32\), got \(1, 3, 32, 32\)"),
        (torch.zeros(1, 32, 32), r"expected shape \(B, 1, 32, 32\), got \(1, 32, 32\)"),
    ],
)
def test_bad_image_shape_says_expected_and_got(image, message):
    model = _model()
    with pytest.raises(ValueError, match=message):
        model(image)
    with pytest.raises(ValueError, match=message):
        model.predict_pose(image)


def test_non_tensor_image_is_a_type_error():
    with pytest.raises(TypeError, match=r"image: expected a torch\.Tensor"):
        _model()([[0.0]])


def test_constructor_rejects_bad_arguments():
    iso = torch.zeros(3, dtype=torch.float64)
    ref = standard_pose("ap", 620.0, iso)
    with pytest.raises(ValueError, match="image_size"):
        PoseRegressor(0, ref, iso)
    with pytest.raises(ValueError, match="widths"):
        PoseRegressor(SIZE, ref, iso, widths=())
    with pytest.raises(ValueError, match="translation_scale_mm"):
        PoseRegressor(SIZE, ref, iso, translation_scale_mm=0.0)
    with pytest.raises(ValueError, match="reference: expected a rigid"):
        PoseRegressor(SIZE, make_pose(2 * torch.eye(3, dtype=torch.float64), iso), iso)
    with pytest.raises(ValueError, match=r"reference: expected shape \(4, 4\)"):
        PoseRegressor(SIZE, ref[:3], iso)
    with pytest.raises(ValueError, match=r"isocenter: expected shape \(3\)"):
        PoseRegressor(SIZE, ref, torch.zeros(2))


# ------------------------------------------------------------------------------------------- files


def test_save_load_round_trip_reproduces_outputs_exactly(tmp_path):
    model = _model()
    path = model.save(tmp_path / "regressor.pt", summary={"iterations": 3})
    loaded = PoseRegressor.load(path)
    images = _images(3)
    assert torch.equal(loaded(images), model(images))
    assert torch.equal(loaded.predict_pose(images), model.predict_pose(images))
    assert torch.equal(loaded.reference, model.reference)
    assert torch.equal(loaded.isocenter, model.isocenter)
    assert loaded.config == model.config
    state = load_state(path, file_format=REGRESSOR_FORMAT, version=1)
    assert state["summary"] == {"iterations": 3}
    assert not list(tmp_path.glob("*.tmp*"))  # written atomically: no staging file left


def test_unusable_files_raise_checkpoint_error_naming_the_path(tmp_path):
    missing = tmp_path / "missing.pt"
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"not a torch file at all")
    foreign = tmp_path / "foreign.pt"
    save_state(foreign, {"weights": {}}, file_format="xrender.prost-network", version=1)
    newer = tmp_path / "newer.pt"
    save_state(newer, _model().to_state(), file_format=REGRESSOR_FORMAT, version=2)
    misfit = tmp_path / "misfit.pt"
    state = _model().to_state()
    state["config"]["widths"] = (4, 4)
    save_state(misfit, state, file_format=REGRESSOR_FORMAT, version=1)
    no_weights = tmp_path / "no_weights.pt"
    save_state(no_weights, {"config": _model().config}, file_format=REGRESSOR_FORMAT, version=1)
    truncated = tmp_path / "truncated.pt"
    _model().save(truncated)
    truncated.write_bytes(truncated.read_bytes()[:200])
    for path in (missing, corrupt, foreign, newer, misfit, no_weights, truncated):
        with pytest.raises(CheckpointError, match=str(path.name)) as error:
            PoseRegressor.load(path)
        assert str(path) in str(error.value)


# ------------------------------------------------------------------------------------------- training


def test_config_round_trip_and_validation():
    config = TINY.replace(widths=[4, 8], loss="split")
    assert config.widths == (4, 8)
    assert RegressionConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="unknown RegressionConfig field"):
        TINY.replace(learning_rate=1.0)
    for bad in ({"loss": "l2"}, {"view": "top"}, {"pose_distribution": "nope"}, {"lr": 0.0}, {"batch_size": 0}):
        with pytest.raises(ValueError):
            TINY.replace(**bad)
    with pytest.raises(ValueError, match="divisor"):
        regression_geometry(TINY.replace(image_size=48))
    carm = regression_geometry(TINY)
    assert (carm.height, carm.width, carm.sid) == (SIZE, SIZE, get_preset("prost").sid)


def test_losses_are_zero_at_the_truth_and_grow_with_the_error():
    true = get_pose_distribution("prost-train").sample(6, seed=4, dtype=torch.float64)
    for loss in ("geodesic", "split"):
        config = TINY.replace(loss=loss)
        torch.testing.assert_close(regression_loss(true, true, config), torch.zeros(6, dtype=torch.float64))
        shifted = true.clone()
        shifted[:, 0, 3] += config.translation_scale_mm
        torch.testing.assert_close(regression_loss(shifted, true, config), torch.ones(6, dtype=torch.float64))


def test_training_lowers_the_loss_and_the_held_out_translation_error(trained):
    model, summary = trained
    assert summary.iterations == TINY.iterations
    assert len(summary.losses) == TINY.iterations
    first = sum(summary.losses[:10]) / 10
    last = sum(summary.losses[-20:]) / 20
    assert last < 0.85 * first, (first, last)
    before, after = summary.validation_before, summary.validation
    assert before.poses == after.poses == TINY.validation_poses
    assert after.median_translation_mm < 0.75 * before.median_translation_mm, (before, after)
    assert math.isfinite(after.median_rotation_deg)
    assert not model.training


def test_validation_before_training_is_the_size_of_the_motions(volume):
    # the untrained network predicts δ = I, so its errors are the held-out motions' own sizes
    model = PoseRegressor(SIZE, standard_pose("ap", 620.0, volume.isocenter.double()), volume.isocenter, widths=(8,))
    motions = validation_motions(TINY)
    errors = evaluate_regressor(model, volume, regression_geometry(TINY), motions)
    shifts = torch.linalg.vector_norm(motions[:, :3, 3], dim=-1)
    assert errors.median_translation_mm == pytest.approx(float(shifts.median()), abs=1e-4)
    assert errors.poses == TINY.validation_poses


def test_training_writes_a_loadable_regressor_with_its_summary(volume, tmp_path):
    config = TINY.replace(iterations=3, validation_poses=4)
    path = tmp_path / "run" / "regressor.pt"
    path.parent.mkdir()
    model, summary = train_regressor(volume, config, progress=False, out=path)
    loaded = PoseRegressor.load(path)
    images = _images(2)
    assert torch.equal(loaded(images), model(images))
    state = load_state(path, file_format=REGRESSOR_FORMAT, version=1)
    assert RegressionConfig.from_dict(state["training_config"]) == config
    assert state["summary"]["iterations"] == summary.iterations == 3
    assert state["summary"]["validation"] == summary.validation.to_dict()


def test_seeded_training_is_reproducible(volume):
    config = TINY.replace(iterations=4, validation_poses=0)  # augmented (the default), no validation
    a, summary_a = train_regressor(volume, config, progress=False)
    b, summary_b = train_regressor(volume, config, progress=False)
    c, _ = train_regressor(volume, config.replace(seed=1), progress=False)
    assert summary_a.losses == summary_b.losses
    assert summary_a.validation is None
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(x, y), name
    assert any(not torch.equal(x, z) for x, z in zip(a.parameters(), c.parameters()))


def test_training_stops_when_the_minutes_run_out(volume):
    _, summary = train_regressor(volume, TINY.replace(validation_poses=0), minutes=1e-9, progress=False)
    assert summary.iterations < TINY.iterations


def test_training_rejects_a_volume_of_another_size(volume):
    with pytest.raises(ValueError, match="expected one channel of 16³ voxels"):
        train_regressor(volume, TINY.replace(volume_size=16), progress=False)
    with pytest.raises(TypeError, match="volume: expected a Volume"):
        train_regressor(volume.data, TINY, progress=False)
    with pytest.raises(ValueError, match="minutes"):
        train_regressor(volume, TINY, minutes=0, progress=False)


def test_validation_errors_are_the_pose_errors_of_xrender_metrics(trained, volume):
    # the δ-based errors equal rotation_error / translation_error of the camera-to-world poses
    model, _ = trained
    motions = validation_motions(TINY)[:6]
    errors = evaluate_regressor(model, volume, regression_geometry(TINY), motions)
    drr = DRR(volume, regression_geometry(TINY))
    truth = perturb(model.reference.expand(6, 4, 4), motions, model.isocenter)
    with torch.no_grad():
        estimate = model.predict_pose(drr(truth.float()))
    assert errors.mean_rotation_deg == pytest.approx(float(rotation_error(estimate, truth).mean()), abs=1e-3)
    shift = translation_error(estimate, truth, model.isocenter)
    assert errors.mean_translation_mm == pytest.approx(float(shift.mean()), abs=1e-3)
    assert errors.median_translation_mm > 0
