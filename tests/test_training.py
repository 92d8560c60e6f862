"""The ProST training recipe: config, bit-for-bit resume, torchrun data parallelism, the CLI."""

from __future__ import annotations

import json
import os
import socket

import pytest
import torch
import torch.multiprocessing as mp
from typer.testing import CliRunner

from recipes.training import (
    Distributed,
    TrainConfig,
    Trainer,
    get_scale,
    load_checkpoint,
    load_config_file,
    parse_overrides,
    phantom_subject,
    training_geometry,
)
from xrender.checkpoint import CheckpointError
from xrender.cli import app
from xrender.similarity.prost import ProSTNetwork

TINY = TrainConfig(volume_size=16, detector_size=16, validation_poses=2, validation_steps=2, checkpoint_every=5)


@pytest.fixture(scope="module")
def subjects():
    return [phantom_subject(TINY.volume_size, TINY.bone_threshold_hu)]


def _weights(network):
    return {k: v.clone() for k, v in network.state_dict().items()}


def test_resume_continues_bit_for_bit(subjects, tmp_path):
    config = TINY.replace(iterations=20, validation_poses=0)
    straight = Trainer(config, subjects).run(progress=False)

    checkpoint = tmp_path / "run.ckpt"
    Trainer(config.replace(iterations=10), subjects, checkpoint=checkpoint).run(progress=False)
    state = load_checkpoint(checkpoint)
    assert state["iteration"] == 10
    resumed = Trainer(config, subjects, checkpoint=checkpoint, resume=state).run(progress=False)

    assert resumed.iteration == 20
    assert resumed.losses == straight.losses
    for name, value in _weights(straight.network).items():
        assert torch.equal(resumed.network.state_dict()[name], value), name


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
    result = Trainer(TINY.replace(iterations=None, minutes=1e-4, validation_poses=0), subjects).run(progress=False)
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
    from recipes.training import ct_subject
    from xrender.io import write_volume
    from xrender.phantom import pelvis_phantom

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
