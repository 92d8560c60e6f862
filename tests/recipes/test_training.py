"""The ProST training recipe: config, bit-for-bit resume, torchrun data parallelism, the CLI."""

from __future__ import annotations

import itertools
import json
import math
import os
import socket

import pytest
import torch
import torch.multiprocessing as mp
from typer.testing import CliRunner

from xrender.cli import app
from xrender.geometry import get_pose_distribution
from xrender.geometry.perturbation import perturbation_between
from xrender.geometry.rotations import matrix_to_axis_angle
from xrender.io import CheckpointError
from xrender.recipes._config import parse_overrides
from xrender.recipes.distributed import Distributed
from xrender.recipes.training import (
    PairSampler,
    TrainConfig,
    Trainer,
    get_scale,
    load_checkpoint,
    load_config_file,
    training_geometry,
)
from xrender.recipes.training.curve import CURVE_SETS, LearningCurve, offset_motions
from xrender.recipes.training.optim import cosine_factor
from xrender.similarity.prost import ProSTNetwork
from xrender.subject import phantom_subject

TINY = TrainConfig(
    volume_size=16,
    detector_size=16,
    batch_size=2,
    validation_poses=2,
    validation_steps=2,
    checkpoint_every=5,
    curve_every=0,
)


@pytest.fixture(scope="module")
def subjects():
    return [phantom_subject(TINY.volume_size, TINY.bone_threshold_hu)]


def _weights(network):
    return {k: v.clone() for k, v in network.state_dict().items()}


class _Interrupted(Exception):
    """Raised by a step callback to stop a training run as a crash would."""


def _interrupt_at(iteration):
    def on_step(k, loss):
        if k == iteration:
            raise _Interrupted

    return on_step


@pytest.mark.parametrize(("optimizer", "schedule"), [("adam", "cosine"), ("sgd", "cyclic")])
def test_an_interrupted_run_resumes_bit_for_bit(subjects, tmp_path, optimizer, schedule):
    config = TINY.replace(iterations=12, validation_poses=0, optimizer=optimizer, lr_schedule=schedule)
    straight = Trainer(config, subjects).run(progress=False)

    checkpoint = tmp_path / "run.ckpt"
    with pytest.raises(_Interrupted):  # killed after iteration 7: the last checkpoint holds iteration 5
        Trainer(config, subjects, checkpoint=checkpoint).run(progress=False, on_step=_interrupt_at(7))
    state = load_checkpoint(checkpoint)
    assert state["iteration"] == 5
    resumed = Trainer(config, subjects, checkpoint=checkpoint, resume=state).run(progress=False)

    assert resumed.iteration == 12
    assert resumed.losses == straight.losses
    for name, value in _weights(straight.network).items():
        assert torch.equal(resumed.network.state_dict()[name], value), name


@pytest.mark.parametrize("schedule", ["cosine", "constant"])
def test_a_run_continued_to_a_further_goal_keeps_its_schedule(subjects, tmp_path, schedule):
    """Continuing a 6-iteration run to 12 = a 12-iteration run whose schedule was set for 6 (cosine: then flat)."""
    config = TINY.replace(iterations=12, validation_poses=0, lr_schedule=schedule, warmup_iterations=1)
    straight = Trainer(config.replace(schedule_iterations=6), subjects).run(progress=False)
    checkpoint = tmp_path / "run.ckpt"
    first = Trainer(config.replace(iterations=6), subjects, checkpoint=checkpoint)
    assert first.config.schedule_iterations == 6  # fixed when the run starts
    first.run(progress=False)
    resumed = Trainer(config, subjects, checkpoint=checkpoint, resume=load_checkpoint(checkpoint))
    assert resumed.config.schedule_iterations == 6
    result = resumed.run(progress=False)
    assert result.losses == straight.losses
    if schedule == "cosine":
        assert resumed.scheduler.get_last_lr()[0] == pytest.approx(config.lr_min)


def test_a_checkpoint_of_the_previous_version_is_refused(subjects, tmp_path):
    Trainer(TINY.replace(iterations=1, validation_poses=0), subjects, checkpoint=tmp_path / "c.ckpt").run(
        progress=False
    )
    state = torch.load(tmp_path / "c.ckpt", weights_only=True)
    state["version"] = 1
    torch.save(state, tmp_path / "old.ckpt")
    with pytest.raises(CheckpointError, match=r"old\.ckpt"):
        load_checkpoint(tmp_path / "old.ckpt")


def test_training_changes_the_weights_and_validates(subjects):
    trainer = Trainer(TINY.replace(iterations=3), subjects)
    before = _weights(trainer.network)
    result = trainer.run(progress=False)
    changed = [k for k, v in trainer.network.state_dict().items() if not torch.equal(v, before[k])]
    assert changed
    assert len(result.losses) == 3
    assert all(0 <= loss <= 8 for loss in result.losses)
    report = result.validation
    assert report.poses == 2
    assert -1 <= report.rotation_cosine <= 1
    assert 0 <= report.improved_fraction <= 1
    assert report.median_tre_before_mm > 0


def test_minutes_limit_stops_before_the_iterations(subjects):
    config = TINY.replace(iterations=None, minutes=1e-4, validation_poses=0, lr_schedule="constant")
    result = Trainer(config, subjects).run(progress=False)
    assert result.iteration <= 1


def _ddp_worker(rank, world_size, port, folder):
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world_size)
    )
    torch.set_num_threads(1)
    dist = Distributed.from_environment()
    subjects = [phantom_subject(TINY.volume_size, TINY.bone_threshold_hu)]
    trainer = Trainer(TINY.replace(iterations=2, validation_poses=0), subjects, distributed=dist)
    first_pair = trainer.sampler.draw(1).true_pose
    result = trainer.run(progress=False)
    torch.save(
        {"weights": result.network.state_dict(), "pair": first_pair, "losses": result.losses}, f"{folder}/{rank}.pt"
    )
    dist.close()


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_data_parallel_gloo_two_processes_stay_in_sync(tmp_path):
    mp.spawn(_ddp_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"{r}.pt", weights_only=True) for r in range(2)]
    assert not torch.equal(ranks[0]["pair"], ranks[1]["pair"])  # each process draws its own poses
    assert ranks[0]["losses"] == ranks[1]["losses"]  # the reported loss is the mean over processes
    for name, value in ranks[0]["weights"].items():
        assert torch.equal(ranks[1]["weights"][name], value), name
    single = Trainer(TINY.replace(iterations=2, validation_poses=0), [phantom_subject(16, 200.0)]).run(progress=False)
    assert any(not torch.equal(single.network.state_dict()[k], v) for k, v in ranks[0]["weights"].items())


def test_config_overrides_and_files(tmp_path):
    assert parse_overrides(["lr_max=1e-3", "head=cross-attention", "minutes=null"]) == {
        "lr_max": 1e-3,
        "head": "cross-attention",
        "minutes": None,
    }
    (tmp_path / "c.toml").write_text('head = "cross-attention"\nbatch_size = 4\n')
    (tmp_path / "c.json").write_text(json.dumps({"feature_widths": [2, 2]}))
    config = TINY.replace(**load_config_file(tmp_path / "c.toml"), **load_config_file(tmp_path / "c.json"))
    assert (config.head, config.batch_size, config.feature_widths) == ("cross-attention", 4, (2, 2))
    assert get_scale("paper").volume_size == 128
    with pytest.raises(ValueError, match="unknown TrainConfig field"):
        TINY.replace(learning_rate=1)
    with pytest.raises(ValueError, match=r"batch_size"):
        TINY.replace(batch_size=0)
    with pytest.raises(ValueError, match="iterations or minutes"):
        TINY.replace(iterations=None, minutes=None)
    with pytest.raises(ValueError, match="key=value"):
        parse_overrides(["lr_max"])
    (tmp_path / "bad.toml").write_text("head = ")
    with pytest.raises(ValueError, match=r"bad\.toml"):
        load_config_file(tmp_path / "bad.toml")
    with pytest.raises(ValueError, match=r"toml or \.json"):
        load_config_file(tmp_path / "c.yaml")
    with pytest.raises(ValueError, match="divisor"):
        training_geometry(TINY.replace(detector_size=100))
    for name, value in (("optimizer", "rmsprop"), ("lr_schedule", "step"), ("pairing", "random")):
        with pytest.raises(ValueError, match=rf"TrainConfig\.{name}: expected one of"):
            TINY.replace(**{name: value})
    with pytest.raises(ValueError, match=r"cosine.*needs iterations"):
        TINY.replace(iterations=None, minutes=1.0)
    with pytest.raises(ValueError, match="offset_scale"):
        TINY.replace(offset_scale=(0.5, 0.1))
    assert TINY.replace(offset_scale=[0.2, 0.4]).offset_scale == (0.2, 0.4)  # lists from JSON become tuples


def test_resume_with_another_process_count_is_refused(subjects, tmp_path):
    Trainer(TINY.replace(iterations=1, validation_poses=0), subjects, checkpoint=tmp_path / "c.ckpt").run(
        progress=False
    )
    state = load_checkpoint(tmp_path / "c.ckpt")
    state["generators"] = state["generators"] * 2
    with pytest.raises(CheckpointError, match="2 process"):
        Trainer(TINY, subjects, resume=state)


def test_cli_trains_writes_a_loadable_network_and_resumes(tmp_path):
    runner = CliRunner()
    out = tmp_path / "net.pt"
    args = ["train", "--phantom", "--out", str(out), "--iterations", "2", "--no-progress"]
    tiny = [f"--set={k}={v}" for k, v in {"volume_size": 16, "detector_size": 16, "validation_poses": 2}.items()]
    result = runner.invoke(app, args + tiny + ["--set=validation_steps=2"])
    assert result.exit_code == 0, result.output
    assert "total" in result.output  # parameter counts
    assert "validation: gradient cosine" in result.output
    network = ProSTNetwork.load(out)
    assert network.image_size == (16, 16)
    checkpoint = tmp_path / "net.ckpt"
    result = runner.invoke(
        app,
        ["train", "--phantom", "--out", str(out), "--iterations", "3", "--resume", str(checkpoint), "--no-progress"],
    )
    assert result.exit_code == 0, result.output
    assert "3 iterations" in result.output
    result = runner.invoke(app, ["train", "--phantom", "--out", str(out), "--resume", str(checkpoint), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "3 iterations" in result.output  # no new goal: the checkpoint's own (3, reached)


@pytest.mark.parametrize("kind", ["missing", "corrupt", "foreign"])
def test_cli_bad_resume_is_a_one_line_error(tmp_path, kind):
    path = tmp_path / "x.ckpt"
    if kind == "corrupt":
        path.write_bytes(b"\x00garbage")
    if kind == "foreign":
        torch.save({"format": "someone-else", "version": 1}, path)
    result = CliRunner().invoke(app, ["train", "--phantom", "--out", str(tmp_path / "n.pt"), "--resume", str(path)])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error: ")
    assert "x.ckpt" in lines[0]


def test_cli_needs_a_ct_or_the_phantom(tmp_path):
    result = CliRunner().invoke(app, ["train", "--out", str(tmp_path / "n.pt")])
    assert result.exit_code == 2
    assert "--phantom" in result.output


def test_ct_subject_from_files_with_and_without_a_segmentation(tmp_path):
    from xrender.io import write_volume
    from xrender.phantom import pelvis_phantom
    from xrender.subject import ct_subject

    hu = pelvis_phantom().to_volume((20, 24, 28))  # not a cube: the subject is resampled to one
    write_volume(hu, tmp_path / "ct.nii.gz")
    write_volume(hu.with_data((hu.data > 500).float()), tmp_path / "bone.nii.gz")
    by_threshold = ct_subject(tmp_path / "ct.nii.gz", 16, bone_threshold_hu=200.0)
    by_mask = ct_subject(tmp_path / "ct.nii.gz", 16, bone_threshold_hu=None, mask_path=tmp_path / "bone.nii.gz")
    whole = ct_subject(tmp_path / "ct.nii.gz", 16, bone_threshold_hu=None)
    for subject in (by_threshold, by_mask, whole):
        assert subject.full.shape == (16, 16, 16)
        assert subject.points.shape == (8, 3)
    assert torch.equal(whole.moving.data, whole.full.data)
    assert (by_mask.moving.data > 0).sum() < (by_threshold.moving.data > 0).sum() < (whole.full.data > 0).sum()
    extent = float((torch.tensor(hu.shape[::-1], dtype=torch.float64) * hu.spacing.double()).max())
    assert torch.allclose(by_threshold.full.spacing.double(), torch.full((3,), extent / 16, dtype=torch.float64))


def test_training_on_several_subjects_draws_from_each(subjects):
    second = phantom_subject(TINY.volume_size, None)  # the whole CT as moving volume
    trainer = Trainer(TINY.replace(iterations=2, validation_poses=0), [subjects[0], second])
    drawn = {trainer.sampler.draw(1).subject for _ in range(20)}
    assert drawn == {0, 1}
    assert len(trainer.similarities) == 2
    assert trainer.similarities[0].network is trainer.similarities[1].network  # one set of weights
    assert trainer.run(progress=False).iteration == 2


def test_learning_curve_is_scored_at_start_every_n_and_end_and_written(subjects, tmp_path):
    config = TINY.replace(iterations=5, validation_poses=0, curve_every=2, curve_poses=2)
    trainer = Trainer(config, subjects, curve_path=tmp_path / "curve")
    trainer.run(progress=False)
    points = trainer.curve.points
    assert [p.iteration for p in points] == [0, 2, 4, 5]
    assert points[0].loss is None
    assert all(p.loss is not None for p in points[1:])
    assert [p.seconds for p in points] == sorted(p.seconds for p in points)
    assert points[-1].seconds > 0
    for point in points:
        assert set(point.cosines) == set(CURVE_SETS)
        assert all(-1 <= c <= 1 for pair in point.cosines.values() for c in pair)
    data = json.loads((tmp_path / "curve.json").read_text())
    assert data["sets"] == list(CURVE_SETS)
    assert len(data["points"]) == 4
    assert (tmp_path / "curve.png").stat().st_size > 10_000
    assert LearningCurve.from_dict(data) == trainer.curve


def test_a_resumed_run_continues_the_curve(subjects, tmp_path):
    config = TINY.replace(iterations=4, validation_poses=0, curve_every=2, curve_poses=2)
    Trainer(config.replace(iterations=2), subjects, checkpoint=tmp_path / "c.ckpt").run(progress=False)
    resumed = Trainer(config, subjects, resume=load_checkpoint(tmp_path / "c.ckpt"))
    resumed.run(progress=False)
    assert [p.iteration for p in resumed.curve.points] == [0, 2, 4]


def test_offset_motions_have_the_exact_magnitudes():
    motions = offset_motions(50, 5.0, 10.0, torch.Generator().manual_seed(0), torch.float64)
    angles = matrix_to_axis_angle(motions[:, :3, :3]).norm(dim=-1)
    assert torch.allclose(angles, torch.full((50,), math.radians(5.0), dtype=torch.float64))
    assert torch.allclose(motions[:, :3, 3].norm(dim=-1), torch.full((50,), 10.0, dtype=torch.float64))
    assert motions[:, :3, 3].abs().amax(0).min() > 5  # directions spread over every axis


def test_offset_pairing_scales_the_initial_distribution(subjects):
    """With offset_scale (s, s), the initial pose is the true pose moved by s × a draw of the distribution."""
    geometry = training_geometry(TINY)
    iso = subjects[0].full.isocenter
    for scale in (1.0, 0.25):
        sampler = PairSampler(
            subjects,
            geometry,
            true_poses="prost-train",
            initial_poses="prost-initial",
            augmentation=None,
            seed=3,
            pairing="offset",
            offset_scale=(scale, scale),
        )
        pair = sampler.draw(4)
        replay = torch.Generator().manual_seed(3)
        torch.randint(1, (1,), generator=replay)  # the subject draw
        get_pose_distribution("prost-train").sample(4, generator=replay, dtype=torch.float32)
        params = get_pose_distribution("prost-initial").sample_params(4, generator=replay, dtype=torch.float64)
        expected = get_pose_distribution("prost-initial").to_matrix(params * scale)
        moved = perturbation_between(pair.initial_pose.double(), pair.true_pose.double(), iso)
        assert torch.allclose(moved, expected, atol=1e-4)


@pytest.mark.parametrize("scale", [(0.0, 1.0), (0.5, 0.1), (1.0, math.inf)])
def test_pair_sampler_refuses_a_bad_offset_scale(subjects, scale):
    with pytest.raises(ValueError, match="offset_scale"):
        PairSampler(
            subjects,
            training_geometry(TINY),
            true_poses="prost-train",
            initial_poses="prost-initial",
            augmentation=None,
            seed=0,
            pairing="offset",
            offset_scale=scale,
        )


def test_cosine_schedule_warms_up_then_decays_to_lr_min(subjects):
    config = TINY.replace(iterations=100, warmup_iterations=10, lr_min=1e-5, lr_max=1e-3)
    factors = [cosine_factor(k, config) for k in range(101)]
    assert factors[0] == pytest.approx(0.1 * (0.01 + 0.99 * 0.5 * (1 + math.cos(0))), rel=1e-12)
    assert max(factors) == pytest.approx(factors[9])
    assert factors[9] < 1
    assert factors[100] == pytest.approx(0.01)
    assert all(a >= b for a, b in itertools.pairwise(factors[9:]))
    trainer = Trainer(config.replace(iterations=3, validation_poses=0, optimizer="sgd", lr_schedule="cyclic"), subjects)
    assert isinstance(trainer.optimizer, torch.optim.SGD)
