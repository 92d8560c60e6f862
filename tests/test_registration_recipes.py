"""Registration recipes: named methods, seeded evaluation, metrics reports, and the evaluate/register commands."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch
import torch.multiprocessing as mp
from _tiny_search import TINY, TINY_SET
from typer.testing import CliRunner

from recipes.registration import (
    EvaluationConfig,
    MethodContext,
    MethodSettings,
    available_stages,
    bone_points,
    build_method,
    evaluate,
    make_trials,
    summarize,
)
from recipes.registration.report import markdown_table
from recipes.training import Distributed, phantom_subject
from xrender.cli import app
from xrender.geometry import get_preset, perturb, standard_pose
from xrender.io import write_volume
from xrender.phantom import pelvis_phantom
from xrender.registration import IntensityStage, LearnedDescentStage, NevergradOptimizer, RegressionStage
from xrender.render import render


@pytest.fixture(scope="module")
def subject():
    return phantom_subject(24, 200.0)


@pytest.fixture(scope="module")
def carm():
    return get_preset("prost").downsample(8)  # 16 × 16


def test_method_names_build_stage_lists():
    assert set(available_stages()) == {"cmaes", "nevergrad", "ncc-adam", "prost", "regression"}
    (cmaes,) = build_method("cmaes")
    assert isinstance(cmaes, IntensityStage)
    assert cmaes.levels[0].prior is not None  # a global search has a prior ...
    assert cmaes.levels[0].optimizer.sigma == MethodSettings().global_sigma
    (ng,) = build_method("nevergrad:PSO")
    assert isinstance(ng.levels[0].optimizer, NevergradOptimizer)
    assert ng.levels[0].optimizer.name == "PSO"


def test_a_search_after_another_stage_refines(subject):
    class Regressor:
        image_size = 16

    first, second = build_method("regression+cmaes", MethodContext(regressor=Regressor()))
    assert isinstance(first, RegressionStage)
    assert second.levels[0].prior is None  # ... a refinement has none, and narrow widths
    assert second.levels[0].optimizer.sigma == MethodSettings().refine_sigma


def test_prost_stage_needs_a_model_and_gets_it():
    with pytest.raises(ValueError, match="ProST model"):
        build_method("prost+cmaes")
    with pytest.raises(ValueError, match="pose regressor"):
        build_method("regression")
    network = object()
    stage, _ = build_method("prost+cmaes", MethodContext(prost=network))  # type: ignore[arg-type]
    assert isinstance(stage, LearnedDescentStage)
    assert stage.network is network


def test_unknown_stage_lists_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown stage 'simplex'.*cmaes"):
        build_method("prost+simplex")


def test_settings_overrides():
    settings = MethodSettings().replace(popsize=[4, 4], prior_weight=0.5)
    assert settings.popsize == (4, 4)
    assert settings.prior_weight == 0.5
    with pytest.raises(ValueError, match="unknown method setting"):
        MethodSettings().replace(population=4)


def test_trials_are_seeded_and_follow_the_distributions(subject, carm):
    config = EvaluationConfig(trials=3, seed=5)
    a, b = make_trials(subject, carm, config), make_trials(subject, carm, config)
    torch.testing.assert_close(a.truth, b.truth, rtol=0, atol=0)
    torch.testing.assert_close(a.xrays, b.xrays, rtol=0, atol=0)
    c = make_trials(subject, carm, EvaluationConfig(trials=3, seed=6))
    assert not torch.equal(a.initial, c.initial)
    with torch.no_grad():
        expected = render(subject.full, carm, a.truth[1:2])
    torch.testing.assert_close(a.xrays[1:2], expected.float())
    reference = standard_pose("ap", carm.sid, subject.full.isocenter.double())
    assert not torch.allclose(a.truth, reference.expand(3, 4, 4))


def test_bone_points_lie_in_bone(subject):
    points = bone_points(subject, n=10, seed=1)
    voxels = subject.moving.world_to_voxel(points).round().long()
    values = subject.moving.data[0, voxels[:, 2], voxels[:, 1], voxels[:, 0]]
    assert points.shape == (10, 3)
    assert bool((values > 0).all())
    torch.testing.assert_close(points, bone_points(subject, n=10, seed=1))


def test_evaluate_records_and_summary(subject, carm):
    context = MethodContext(MethodSettings().replace(**TINY))
    config = EvaluationConfig(trials=2, seed=1)
    seen = []
    records = evaluate(
        subject, carm, ["cmaes", "ncc-adam"], context, config, progress=False, on_result=lambda *a: seen.append(a[:2])
    )
    assert [(r.method, r.trial) for r in records] == [("cmaes", 0), ("cmaes", 1), ("ncc-adam", 0), ("ncc-adam", 1)]
    assert sorted(seen) == sorted((r.method, r.trial) for r in records)
    for r in records:
        assert r.success == (r.mtre_mm < 10.0)
        assert r.initial_mtre_mm > 0
        assert set(r.stage_seconds) == {r.method}
    again = evaluate(subject, carm, ["cmaes"], context, config, progress=False)
    assert [r.pose for r in again] == [r.pose for r in records if r.method == "cmaes"]  # seeded: identical
    summary = summarize(records)
    assert summary["cmaes"]["trials"] == 2
    assert summary["cmaes"]["success_rate"] == sum(r.success for r in records[:2]) / 2
    assert summary["cmaes"]["median_mtre_mm"] == pytest.approx(float(np.median([r.mtre_mm for r in records[:2]])))
    table = markdown_table(summary)
    assert table.count("\n") == 4
    assert "| cmaes | 2 |" in table


def test_evaluate_fails_fast_on_a_bad_method(subject, carm):
    with pytest.raises(ValueError, match="unknown stage"):
        evaluate(subject, carm, ["cmaes", "nope"], MethodContext(), EvaluationConfig(trials=1), progress=False)


@pytest.mark.parametrize(
    ("options", "match"),
    [({"trials": 0}, "trials"), ({"seed": -1}, "seed"), ({"true_distribution": "wide"}, "pose distribution")],
)
def test_evaluation_config_errors(options, match):
    with pytest.raises(ValueError, match=match):
        EvaluationConfig(**options)


# --------------------------------------------------------------------------- commands
def test_cli_evaluate_writes_json_table_plot_and_overlays(tmp_path):
    out = tmp_path / "eval"
    args = ["evaluate", "--phantom", "--methods", "cmaes,nevergrad:OnePlusOne", "--trials", "2", "--seed", "3"]
    args += ["--volume-size", "24", "--no-progress"]
    for item in TINY_SET:
        args += ["--set", item]
    result = CliRunner().invoke(app, [*args, "--out", str(out), "--overlays", "1"])
    assert result.exit_code == 0, result.output
    document = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert set(document["methods"]) == {"cmaes", "nevergrad:OnePlusOne"}
    for figures in document["methods"].values():
        for key in ("success_rate", "median_mtre_mm", "median_rotation_error_deg", "median_translation_error_mm"):
            assert key in figures
        assert figures["median_seconds"] > 0
    assert len(document["trials"]) == 4
    assert document["config"]["seed"] == 3
    assert "| cmaes | 2 |" in (out / "results.md").read_text(encoding="utf-8")
    assert (out / "capture_range.png").stat().st_size > 0
    assert sorted(p.name for p in (out / "overlays").iterdir()) == [
        "cmaes_trial0.png",
        "nevergrad-OnePlusOne_trial0.png",
    ]
    again = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "again"), "--overlays", "0"])
    assert again.exit_code == 0, again.output
    repeat = json.loads((tmp_path / "again" / "results.json").read_text(encoding="utf-8"))
    assert [t["pose"] for t in repeat["trials"]] == [t["pose"] for t in document["trials"]]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["evaluate", "--trials", "1"], "a CT path, --phantom or --deepfluoro"),
        (["evaluate", "--phantom", "--specimen", "1"], "--specimen: applies only with --deepfluoro"),
        (["evaluate", "--phantom", "--methods", "warp"], "unknown stage"),
        (["evaluate", "--phantom", "--methods", "prost"], "ProST model"),
        (["evaluate", "--phantom", "--set", "speed=3"], "unknown method setting"),
    ],
)
def test_cli_evaluate_errors_are_one_line(args, message):
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    assert message in result.output


def test_cli_register_a_png_xray(tmp_path):
    subject = phantom_subject(24, 200.0)
    ct = tmp_path / "ct.nii.gz"
    write_volume(pelvis_phantom().to_volume(24), ct)  # HU, as a CT file
    carm = get_preset("prost")  # the full 128 × 128 image; --binning 4 registers at 32 × 32
    iso = subject.full.isocenter.double()
    truth = perturb(standard_pose("ap", carm.sid, iso), torch.eye(4, dtype=torch.float64), iso)
    with torch.no_grad():
        drr = render(subject.full, carm, truth)[0, 0].numpy()
    image = np.round(drr / drr.max() * 60000).astype(np.uint16)  # a 16-bit PNG of line integrals
    sitk.WriteImage(sitk.GetImageFromArray(image), str(tmp_path / "xray.png"))
    out = tmp_path / "reg"
    args = ["register", str(ct), str(tmp_path / "xray.png"), "--binning", "4", "--init", "2,0,0,5,0,10"]
    args += ["--volume-size", "24", "--out", str(out), "--gif", "--no-progress"]
    for item in TINY_SET:
        args += ["--set", item]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    document = json.loads((out / "pose.json").read_text(encoding="utf-8"))
    pose = torch.tensor(document["pose_camera_to_world"], dtype=torch.float64)
    assert pose.shape == (4, 4)
    torch.testing.assert_close(pose[3], torch.tensor([0, 0, 0, 1.0], dtype=torch.float64))
    assert len(document["motion_about_isocenter"]["translation_mm"]) == 3
    assert document["stages"][0]["name"] == "cmaes"
    assert (out / "overlay.png").stat().st_size > 0
    assert (out / "registration.gif").stat().st_size > 0


def test_cli_register_errors(tmp_path):
    result = CliRunner().invoke(app, ["register", str(tmp_path / "ct.nii"), str(tmp_path / "x.png"), "--crop", "1,2"])
    assert result.exit_code == 2
    assert "--crop" in result.output
    result = CliRunner().invoke(app, ["register", str(tmp_path / "ct.nii"), str(tmp_path / "x.png")])
    assert result.exit_code == 2
    assert "x.png" in result.output or "ct.nii" in result.output


def _shard_worker(rank, world_size, port, folder):
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world_size)
    )
    torch.set_num_threads(1)
    job = Distributed.from_environment()
    context = MethodContext(MethodSettings().replace(**TINY))
    carm = get_preset("prost").downsample(8)
    records = evaluate(phantom_subject(24, 200.0), carm, ["cmaes"], context, EvaluationConfig(trials=3), progress=False)
    (Path(folder) / f"{rank}.json").write_text(json.dumps([r.to_dict() for r in records]))
    job.close()


def test_evaluation_sharded_over_two_processes_gives_the_same_records(tmp_path, subject, carm):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_shard_worker, args=(2, port, str(tmp_path)), nprocs=2, join=True)
    sharded = [json.loads((tmp_path / f"{r}.json").read_text(encoding="utf-8")) for r in range(2)]
    assert sharded[0] == sharded[1]  # every rank holds the merged records
    context = MethodContext(MethodSettings().replace(**TINY))
    single = evaluate(subject, carm, ["cmaes"], context, EvaluationConfig(trials=3), progress=False)
    assert [r["trial"] for r in sharded[0]] == [0, 1, 2]
    assert [r["pose"] for r in sharded[0]] == [r.pose for r in single]
    assert [r["mtre_mm"] for r in sharded[0]] == [r.mtre_mm for r in single]


def test_trial_k_does_not_depend_on_the_number_of_trials(subject, carm):
    few = make_trials(subject, carm, EvaluationConfig(trials=2, seed=4))
    many = make_trials(subject, carm, EvaluationConfig(trials=5, seed=4))
    torch.testing.assert_close(many.truth[:2], few.truth, rtol=0, atol=0)
    torch.testing.assert_close(many.initial[:2], few.initial, rtol=0, atol=0)
