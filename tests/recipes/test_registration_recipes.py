"""Registration recipes: named methods, seeded evaluation, metrics reports, and the evaluate/register commands."""

from __future__ import annotations

import json
import math
import os
import socket
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch
import torch.multiprocessing as mp
from _tiny_search import TINY, TINY_SET
from typer.testing import CliRunner

from xrender.cli import app
from xrender.geometry import ConeBeam, get_pose_distribution, get_preset, perturb, pose_from_motion, standard_pose
from xrender.io import write_volume
from xrender.metrics import target_registration_error
from xrender.phantom import pelvis_phantom
from xrender.recipes.distributed import Distributed
from xrender.recipes.registration import (
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
from xrender.recipes.registration.command import FixedImage, init_motion, pose_document
from xrender.recipes.registration.evaluation import (
    TrialRecord,
    initial_poses,
    register_within,
    target_points,
    trial_generator,
    trial_seed,
)
from xrender.recipes.registration.methods import spends_time_budget
from xrender.recipes.registration.report import (
    capture_edges,
    capture_ranges,
    capture_table,
    handover_table,
    markdown_table,
)
from xrender.registration import (
    IntensityStage,
    LearnedDescentStage,
    LearnedSearchStage,
    MultiStartStage,
    NevergradOptimizer,
    RegistrationProblem,
    RegistrationResult,
    RegressionStage,
    register,
)
from xrender.render import render
from xrender.subject import phantom_subject

#: A seed above 2**32: per-trial seeds must still fit cma, numpy and torch.
HUGE_SEED = 2**40 + 7


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


def test_prost_stage_optimizers_by_argument():
    network = object()
    context = MethodContext(prost=network)  # type: ignore[arg-type]
    descent, refine = build_method("prost:line-search+cmaes", context)
    assert isinstance(descent, LearnedDescentStage)
    assert descent.descent.line_search
    assert refine.levels[0].optimizer.sigma == MethodSettings().refine_sigma
    (plain,) = build_method("prost:descent", context)
    assert isinstance(plain, LearnedDescentStage)
    assert not plain.descent.line_search
    (search,) = build_method("prost:cmaes", context)
    assert isinstance(search, LearnedSearchStage)
    assert search.network is network
    assert search.optimizer.sigma == MethodSettings().global_sigma  # a first stage searches globally ...
    assert search.prior is None  # ... without the prior scaled for NCC
    assert search.optimizer.seed == 2  # apart from the seeds (0, 1) of the cmaes levels after it
    with pytest.raises(ValueError, match="prost:descent, prost:line-search, prost:cmaes, prost:multistart"):
        build_method("prost:simplex", context)


def test_multistart_takes_the_rest_of_the_chain_as_global_searches():
    network = object()
    context = MethodContext(prost=network)  # type: ignore[arg-type]
    (stage,) = build_method("prost:multistart+cmaes", context)
    assert isinstance(stage, MultiStartStage)
    assert stage.explore.network is network
    assert stage.explore.descent.steps == MethodSettings().multistart_steps
    assert stage.explore.descent.rotation_step_deg == MethodSettings().multistart_rotation_step_deg
    assert stage.explore.descent.translation_step_mm == MethodSettings().multistart_translation_step_mm
    (single,) = build_method("prost", context)  # the single-start descent keeps its own steps
    assert single.descent.rotation_step_deg == MethodSettings().prost_rotation_step_deg
    assert stage.keep == MethodSettings().multistart_keep
    assert stage.keep_learned == MethodSettings().multistart_keep_learned
    settings = MethodSettings(
        multistart_keep=3,
        multistart_keep_learned=0,
        multistart_rotation_step_deg=1.5,
        multistart_translation_step_mm=3.0,
    )
    (other,) = build_method("prost:multistart", MethodContext(settings, network))  # type: ignore[arg-type]
    assert (other.keep, other.keep_learned, other.refine) == (3, 0, ())
    assert (other.explore.descent.rotation_step_deg, other.explore.descent.translation_step_mm) == (1.5, 3.0)
    (search,) = stage.refine  # each kept end is searched about globally: wide widths and a prior
    assert search.levels[0].optimizer.sigma == MethodSettings().global_sigma
    assert search.levels[0].prior is not None
    (alone,) = build_method("prost:multistart", context)
    assert alone.refine == ()
    first, nested = build_method("regression+prost:multistart+cmaes+cmaes", replace(context, regressor=_Regressor()))
    assert isinstance(first, RegressionStage)
    assert [s.levels[0].optimizer.sigma for s in nested.refine] == [
        MethodSettings().global_sigma,
        MethodSettings().refine_sigma,
    ]
    assert not spends_time_budget("prost:multistart+cmaes")


class _Regressor:
    image_size = 16


def test_learned_stages_run_on_a_tiny_network(subject, carm):
    from xrender.similarity.prost import ProSTNetwork

    network = ProSTNetwork((16, 16), head_options={"widths": (2, 4, 4), "inner_widths": (2, 2, 2)}).eval()
    trials = make_trials(subject, carm, EvaluationConfig(trials=1, seed=3))
    problem = RegistrationProblem(subject.full, carm, trials.xrays[:1], subject.moving)
    tiny = MethodSettings().replace(**TINY, prost_steps=3)
    for name in ("prost:line-search", "prost:cmaes"):
        (stage,) = build_method(name, MethodContext(tiny, prost=network, seed=5))
        result = stage.run(problem, trials.initial[0])
        assert result.name == name
        assert result.pose.shape == (4, 4)
        assert torch.isfinite(result.pose).all()
        assert torch.equal(result.trajectory[0], trials.initial[0].to(torch.float64))
        assert result.history
        assert result.evaluations >= len(result.history)
        assert min(result.history) <= result.history[0]  # the search never ends worse than it started


def test_unknown_stage_lists_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown stage 'simplex'.*cmaes"):
        build_method("prost+simplex")


def test_settings_overrides():
    settings = MethodSettings().replace(popsize=[4, 4], prior_weight=0.5)
    assert settings.popsize == (4, 4)
    assert settings.prior_weight == 0.5
    with pytest.raises(ValueError, match="unknown method setting"):
        MethodSettings().replace(population=4)


def test_restarts_reach_the_global_first_level_only():
    assert build_method("cmaes")[0].levels[0].optimizer.restarts == 0  # off by default
    context = MethodContext(MethodSettings().replace(restarts=2))
    (stage,) = build_method("cmaes", context)
    assert [level.optimizer.restarts for level in stage.levels] == [2, 0]
    _, refine = build_method("cmaes+cmaes", context)
    assert [level.optimizer.restarts for level in refine.levels] == [0, 0]


@pytest.mark.parametrize("name", ["restarts", "equal_time_restarts"])
def test_restart_settings_are_checked(name):
    with pytest.raises(ValueError, match=f"method setting {name}: expected an int >= 0"):
        MethodSettings().replace(**{name: -1})


@pytest.mark.parametrize("name", ["multistart_rotation_step_deg", "multistart_translation_step_mm"])
@pytest.mark.parametrize("value", [0.0, -4.0, float("nan"), float("inf"), "4"])
def test_multistart_steps_are_checked(name, value):
    with pytest.raises(ValueError, match=f"method setting {name}: expected a number > 0"):
        MethodSettings().replace(**{name: value})


def test_search_only_methods_spend_a_time_budget():
    assert spends_time_budget("cmaes")
    assert spends_time_budget("cmaes+cmaes")
    assert not spends_time_budget("prost+cmaes")
    assert not spends_time_budget("nevergrad:PSO")
    assert not spends_time_budget("ncc-adam")
    with pytest.raises(ValueError, match="unknown stage 'warp'"):
        spends_time_budget("warp")


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
        last = r.stages[-1]  # the last stage run left the final pose
        assert [s["stage"] for s in r.stages] == [r.method]
        assert last["mtre_mm"] == r.mtre_mm
        assert last["rotation_error_deg"] == r.rotation_error_deg
        assert last["depth_error_mm"] == r.depth_error_mm
        assert abs(r.depth_error_mm) <= r.translation_error_mm + 1e-9
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
    config = EvaluationConfig(trials=1, equal_time="prost+cmaes")
    with pytest.raises(ValueError, match=r"--equal-time \(equal_time\): 'prost\+cmaes' is not one of the methods"):
        evaluate(subject, carm, ["cmaes"], MethodContext(), config, progress=False)


def test_evaluate_with_a_huge_seed(subject, carm):
    context = MethodContext(MethodSettings().replace(**TINY))
    config = EvaluationConfig(trials=1, seed=HUGE_SEED)
    records = evaluate(subject, carm, ["cmaes", "nevergrad:OnePlusOne"], context, config, progress=False)
    assert [r.method for r in records] == ["cmaes", "nevergrad:OnePlusOne"]
    assert all(math.isfinite(r.mtre_mm) for r in records)


def test_equal_time_gives_search_only_methods_the_reference_time(subject, carm):
    context = MethodContext(MethodSettings().replace(**TINY))
    config = EvaluationConfig(trials=2, seed=1, equal_time="ncc-adam")
    records = evaluate(subject, carm, ["cmaes", "ncc-adam"], context, config, progress=False)
    by = {(r.method, r.trial): r for r in records}
    for trial in range(2):
        assert by["ncc-adam", trial].budget_seconds is None  # the reference defines the budget ...
        assert by["cmaes", trial].budget_seconds == by["ncc-adam", trial].seconds  # ... of its own trial
    summary = summarize(records)
    assert summary["cmaes"]["median_budget_seconds"] > 0
    assert summary["ncc-adam"]["median_budget_seconds"] is None
    plain = evaluate(subject, carm, ["cmaes"], context, EvaluationConfig(trials=2, seed=1), progress=False)
    assert [r.budget_seconds for r in plain] == [None, None]


@pytest.fixture(scope="module")
def tiny_problem(subject, carm):
    trials = make_trials(subject, carm, EvaluationConfig(trials=1, seed=2))
    problem = RegistrationProblem(subject.full, carm, trials.xrays[:1], subject.moving)
    stages = build_method("cmaes", MethodContext(MethodSettings().replace(**TINY), seed=11))
    return problem, trials.initial[0], stages


def test_register_within_a_short_budget_is_the_plain_registration(tiny_problem):
    problem, initial, stages = tiny_problem
    plain = register(problem, initial, stages)
    within = register_within(problem, initial, stages, 1e-3)
    torch.testing.assert_close(within.pose, plain.pose, rtol=0, atol=0)
    assert [s.name for s in within.stages] == ["cmaes", "cmaes"]  # the first level, then the rest


def test_register_within_spends_the_budget_on_ipop_restarts(tiny_problem):
    problem, initial, stages = tiny_problem
    plain = register(problem, initial, stages)
    budget = plain.seconds + 1.0
    within = register_within(problem, initial, stages, budget)
    restarted = within.stages[2]
    assert restarted.stop_reason.startswith("time")  # the budget, not the restart count, ended it
    assert restarted.evaluations > within.stages[0].evaluations  # doubled populations
    assert min(restarted.history + within.stages[0].history) <= min(within.stages[0].history)
    assert budget - 0.5 < within.seconds < budget + 0.5
    assert len(within.stages) in (3, 4)  # the fine level reruns only if the restarts did better


@pytest.mark.parametrize(
    ("method", "budget", "restarts", "match"),
    [
        ("ncc-adam", 1.0, 8, "IntensityStage searching with CMAES"),
        ("cmaes", 0.0, 8, "positive budget_seconds"),
        ("cmaes", 1.0, 0, r"restarts \(equal_time_restarts\): expected an int >= 1"),
    ],
)
def test_register_within_errors(tiny_problem, method, budget, restarts, match):
    problem, initial, _ = tiny_problem
    with pytest.raises(ValueError, match=match):
        register_within(problem, initial, build_method(method), budget, restarts=restarts)


def test_capture_edges_and_table(subject, carm):
    context = MethodContext(MethodSettings().replace(**TINY))
    records = evaluate(subject, carm, ["ncc-adam"], context, EvaluationConfig(trials=4, seed=2), progress=False)
    assert capture_edges(records, (0, 20, 40)) == (0.0, 20.0, 40.0)
    edges = capture_edges(records)  # 4 trials: two bins from the smallest to the largest initial TRE
    tre = sorted(r.initial_mtre_mm for r in records)
    assert edges == pytest.approx((tre[0], (tre[0] + tre[-1]) / 2, tre[-1]))
    ranges = capture_ranges(records, (0.0, 100.0, 1000.0), resamples=20)
    capture = ranges["ncc-adam"]
    assert sum(capture.counts) == 4
    lines = capture_table(ranges).splitlines()
    assert lines[0] == "| method | R50 (mm) [95% CI] | 0–100 mm | 100–1000 mm |"
    cells = [f"{k}/{n} ({k / n:.0%})" if n else "—" for k, n in zip(capture.successes, capture.counts)]
    assert lines[2] == f"| ncc-adam | {capture.r50_text(unit='')} | {cells[0]} | {cells[1]} |"


def _two_stage_record(trial: int, success: bool, rotation: float, depth: float) -> TrialRecord:
    def left(stage: str, scale: float) -> dict:
        return {"stage": stage, "mtre_mm": 10 * scale, "rotation_error_deg": scale * rotation,
                "translation_error_mm": abs(depth), "depth_error_mm": scale * depth}  # fmt: skip

    stages = [left("prost:line-search", 1.0), left("cmaes", 0.0), left("cmaes", 0.01)]  # the last name ran twice
    return TrialRecord("prost+cmaes", trial, 50.0, 0.5, 0.1, 0.2, 0.3, success, 1.0, {}, [], stages=stages)


def test_handover_medians_split_by_the_final_outcome():
    records = [
        _two_stage_record(0, True, 2.0, 20.0),
        _two_stage_record(1, True, 4.0, 10.0),
        _two_stage_record(2, False, 90.0, -50.0),
    ]
    handover = summarize(records)["prost+cmaes"]["median_handover"]
    assert set(handover) == {"prost:line-search"}  # the last stage hands over to nobody
    assert handover["prost:line-search"]["success"] == {
        "mtre_mm": 10.0,
        "rotation_error_deg": 3.0,
        "translation_error_mm": 15.0,
        "depth_error_mm": 15.0,
    }
    assert handover["prost:line-search"]["failure"]["rotation_error_deg"] == 90.0
    lines = handover_table(summarize(records)).splitlines()
    assert lines[2] == "| prost+cmaes | prost:line-search | success | 10.0 | 3.0 | +15.0 |"
    assert lines[3] == "| prost+cmaes | prost:line-search | failure | 10.0 | 90.0 | -50.0 |"
    one_stage = [replace(r, stages=r.stages[1:2]) for r in records]
    assert summarize(one_stage)["prost+cmaes"]["median_handover"] == {}
    assert handover_table(summarize(one_stage)) == ""


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"trials": 0}, "trials"),
        ({"seed": -1}, "seed"),
        ({"true_distribution": "nope"}, "pose distribution"),
        ({"stratify": (20.0,)}, r"stratify \(--stratify\): expected two or more finite bin edges >= 0"),
        ({"stratify": ("a", "b")}, r"stratify \(--stratify\): expected two or more finite bin edges >= 0"),
        ({"stratify": (-5.0, 20.0)}, r"stratify \(--stratify\): expected two or more finite bin edges >= 0"),
        ({"stratify": (0.0, math.inf)}, r"stratify \(--stratify\): expected two or more finite bin edges >= 0"),
        ({"stratify": (0.0, 20.0, 20.0)}, r"stratify \(--stratify\): expected increasing bin edges"),
        ({"equal_time": " "}, r"equal_time \(--equal-time\): expected a method name"),
    ],
)
def test_evaluation_config_errors(options, match):
    with pytest.raises(ValueError, match=match):
        EvaluationConfig(**options)


# --------------------------------------------------------------------------- seeds and trials
def test_trial_seeds_are_31_bit_for_any_seed():
    assert trial_seed(0, 0) == 1484405855  # SeedSequence((0, 0)): pinned, so a run can be repeated
    assert trial_seed(HUGE_SEED, 0) == 119442698
    seeds = [trial_seed(seed, trial) for seed in (0, 1, 4295, HUGE_SEED, 10**30) for trial in range(5)]
    assert all(0 <= s < 2**31 for s in seeds)
    assert len(set(seeds)) == len(seeds)  # no two (seed, trial) pairs share a seed here
    assert EvaluationConfig(seed=HUGE_SEED).seed == HUGE_SEED


def test_unstratified_trials_are_a_plain_draw_per_trial(subject, carm):
    """Trial k: its generator draws the true motion, then the initial offset (the behaviour kept from before)."""
    config = EvaluationConfig(trials=3, seed=HUGE_SEED)
    trials = make_trials(subject, carm, config)
    iso = subject.full.isocenter.double()
    reference = standard_pose("ap", carm.sid, iso)
    for k in range(3):
        generator = trial_generator(config, k)
        true = get_pose_distribution("prost-train").sample(1, generator=generator, dtype=torch.float64)
        offset = get_pose_distribution("prost-initial").sample(1, generator=generator, dtype=torch.float64)
        truth = perturb(reference[None], true, iso)
        torch.testing.assert_close(trials.truth[k : k + 1], truth, rtol=0, atol=0)
        torch.testing.assert_close(trials.initial[k : k + 1], perturb(truth, offset, iso), rtol=0, atol=0)


STRATA = (0.0, 20.0, 50.0, 120.0)


def _targets(config: EvaluationConfig, n: int) -> list[float]:
    """The target TRE of each trial, drawn as `make_trials` draws it (after the true motion)."""
    targets = []
    for k in range(n):
        generator = trial_generator(config, k)
        get_pose_distribution(config.true_distribution).sample(1, generator=generator, dtype=torch.float64)
        low, high = STRATA[k % 3], STRATA[k % 3 + 1]
        targets.append(low + (high - low) * float(torch.rand((), generator=generator, dtype=torch.float64)))
    return targets


def test_stratified_trials_hit_their_target_tre_in_their_bin(subject, carm):
    config = EvaluationConfig(trials=6, seed=3, initial_distribution="wide", stratify=STRATA)
    trials = make_trials(subject, carm, config)
    points = target_points(subject, config)
    tre = target_registration_error(trials.initial, trials.truth, points)
    expected = torch.tensor(_targets(config, 6), dtype=torch.float64)
    torch.testing.assert_close(tre, expected, rtol=1e-9, atol=1e-9)
    bins = torch.bucketize(tre, torch.tensor(STRATA[1:-1], dtype=torch.float64))
    assert bins.tolist() == [0, 1, 2, 0, 1, 2]  # trial k in bin k mod 3
    more = make_trials(subject, carm, EvaluationConfig(trials=8, seed=3, initial_distribution="wide", stratify=STRATA))
    torch.testing.assert_close(more.initial[:6], trials.initial, rtol=0, atol=0)  # trial k does not move
    plain = make_trials(subject, carm, EvaluationConfig(trials=6, seed=3, initial_distribution="wide"))
    torch.testing.assert_close(plain.truth, trials.truth, rtol=0, atol=0)  # stratifying leaves the true poses


def test_stratified_trials_aim_at_the_given_points(subject, carm):
    config = EvaluationConfig(trials=3, seed=3, stratify=STRATA)
    points = subject.landmarks[:2].double()
    trials = make_trials(subject, carm, config, points)
    torch.testing.assert_close(
        target_registration_error(trials.initial, trials.truth, points),
        torch.tensor(_targets(config, 3), dtype=torch.float64),
    )


def test_stratified_initial_poses_about_given_truths(subject, carm):
    config = EvaluationConfig(trials=3, seed=1, stratify=STRATA)
    truth = make_trials(subject, carm, EvaluationConfig(trials=3)).truth
    iso = subject.full.isocenter.double()
    points = target_points(subject, config)
    initial = initial_poses(truth, iso, config, points)
    assert bool((target_registration_error(initial, truth, points) < 120.0).all())
    with pytest.raises(ValueError, match=r"stratified draw .* needs the TRE target points"):
        initial_poses(truth, iso, config)


def test_a_bin_out_of_reach_is_an_error(subject, carm):
    config = EvaluationConfig(trials=1, stratify=(1e5, 2e5))
    with pytest.raises(ValueError, match=r"none reaches an initial mean TRE of .* lower the largest bin edge"):
        make_trials(subject, carm, config)


# --------------------------------------------------------------------------- commands
def _invoke_tiny(args: list[str]):
    """Run ``xrender ARGS`` with the tiny search settings; it must succeed."""
    result = CliRunner().invoke(app, [*args, *(arg for item in TINY_SET for arg in ("--set", item))])
    assert result.exit_code == 0, result.output
    return result


def test_cli_evaluate_writes_json_table_plot_and_overlays(tmp_path):
    out = tmp_path / "eval"
    args = ["evaluate", "--phantom", "--methods", "cmaes,nevergrad:OnePlusOne", "--trials", "2"]
    args += ["--seed", str(HUGE_SEED)]  # seeds from 4295 up used to fail inside cma
    args += ["--volume-size", "24", "--no-progress"]
    result = _invoke_tiny([*args, "--out", str(out), "--overlays", "1"])
    assert result.output.rstrip().endswith("results.md, capture_range.png, overlays/")
    document = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert set(document["methods"]) == {"cmaes", "nevergrad:OnePlusOne"}
    for figures in document["methods"].values():
        for key in ("success_rate", "median_mtre_mm", "median_rotation_error_deg", "median_translation_error_mm"):
            assert key in figures
        assert figures["median_seconds"] > 0
    assert len(document["trials"]) == 4
    assert document["config"]["seed"] == HUGE_SEED
    report = (out / "results.md").read_text(encoding="utf-8")
    assert "| cmaes | 2 |" in report
    assert "## Capture range" in report
    capture = document["methods"]["cmaes"]["capture_range"]
    assert sum(capture["counts"]) == 2
    assert len(capture["bin_edges_mm"]) == 3  # two trials per method: two bins
    assert (out / "capture_range.png").stat().st_size > 0
    assert sorted(p.name for p in (out / "overlays").iterdir()) == [
        "cmaes_trial0.png",
        "nevergrad-OnePlusOne_trial0.png",
    ]
    result = _invoke_tiny([*args, "--out", str(tmp_path / "again"), "--overlays", "0"])
    assert result.output.rstrip().endswith("results.md, capture_range.png")  # no overlays written, none announced
    assert "overlays/" not in result.output
    assert not (tmp_path / "again" / "overlays").exists()
    repeat = json.loads((tmp_path / "again" / "results.json").read_text(encoding="utf-8"))
    assert [t["pose"] for t in repeat["trials"]] == [t["pose"] for t in document["trials"]]


def test_cli_evaluate_stratified_at_equal_time(tmp_path):
    out = tmp_path / "strata"
    args = ["evaluate", "--phantom", "--methods", "cmaes,ncc-adam", "--equal-time", "ncc-adam"]
    args += ["--stratify", "0:40:20", "--per-bin", "1", "--initial-poses", "wide", "--seed", "5"]
    args += ["--volume-size", "24", "--no-progress", "--overlays", "0", "--out", str(out)]
    result = _invoke_tiny(args)
    document = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert document["config"]["stratify"] == [0.0, 20.0, 40.0]
    assert document["config"]["equal_time"] == "ncc-adam"
    trials = document["trials"]
    assert [t["trial"] for t in trials] == [0, 1, 0, 1]  # --per-bin 1 over two bins: two trials
    assert [t["initial_mtre_mm"] < 20.0 for t in trials] == [True, False, True, False]  # trial k in bin k mod 2
    reference = {t["trial"]: t["seconds"] for t in trials if t["method"] == "ncc-adam"}
    assert {t["trial"]: t["budget_seconds"] for t in trials if t["method"] == "cmaes"} == reference
    for figures in document["methods"].values():
        capture = figures["capture_range"]
        assert capture["bin_edges_mm"] == [0.0, 20.0, 40.0]
        assert capture["counts"] == [1, 1]
        assert {"rates", "rate_intervals", "logistic_a", "logistic_b_per_mm", "r50_mm", "r50_ci_mm"} <= set(capture)
    report = (out / "results.md").read_text(encoding="utf-8")
    assert "| method | R50 (mm) [95% CI] | 0–20 mm | 20–40 mm |" in report
    assert "Equal time: each trial's wall time of ncc-adam is the budget; cmaes used" in report
    assert "R50 (mm)" in result.output
    assert (out / "capture_range.png").stat().st_size > 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["evaluate", "--trials", "1"], "a CT path, --phantom or --deepfluoro"),
        (["evaluate", "--phantom", "--per-bin", "3"], "--per-bin: applies only with --stratify"),
        (["evaluate", "--phantom", "--stratify", "0:40:20", "--per-bin", "3", "--trials", "4"], "leave out --trials"),
        (["evaluate", "--phantom", "--stratify", "0:200"], "--stratify: expected START:STOP:STEP or E0,E1"),
        (["evaluate", "--phantom", "--stratify", "0:10:3"], "STOP − START must be a positive multiple of STEP"),
        (["evaluate", "--phantom", "--stratify", "0:10:-5"], "--stratify: expected START:STOP:STEP"),
        (["evaluate", "--phantom", "--stratify", "a,b"], "--stratify: expected START:STOP:STEP or E0,E1"),
        (["evaluate", "--phantom", "--stratify", "20,10"], "stratify (--stratify): expected increasing bin edges"),
        (["evaluate", "--phantom", "--equal-time", "prost+cmaes"], "'prost+cmaes' is not one of the methods (cmaes)"),
        (
            ["evaluate", "--deepfluoro", "none.h5", "--specimen", "1", "--stratify", "0:20:10"],
            "--stratify: applies to simulated trials",
        ),
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


def _png_case(tmp_path) -> tuple[Path, Path, torch.Tensor]:
    """A 24³ phantom CT file, a 128² PNG of its AP DRR (prost C-arm) and the CT's isocentre."""
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
    return ct, tmp_path / "xray.png", iso


def test_cli_register_a_png_xray(tmp_path):
    ct, xray, _ = _png_case(tmp_path)
    out = tmp_path / "reg"
    args = ["register", str(ct), str(xray), "--binning", "4", "--init", "2,0,0,5,0,10"]
    args += ["--volume-size", "24", "--out", str(out), "--gif", "--no-progress"]
    _invoke_tiny(args)
    document = json.loads((out / "pose.json").read_text(encoding="utf-8"))
    pose = torch.tensor(document["pose_camera_to_world"], dtype=torch.float64)
    assert pose.shape == (4, 4)
    torch.testing.assert_close(pose[3], torch.tensor([0, 0, 0, 1.0], dtype=torch.float64))
    assert document["reference"] == "view ap"
    assert ConeBeam(**document["geometry"]) == get_preset("prost").downsample(4)  # --geometry's format
    assert document["stages"][0]["name"] == "cmaes"
    assert (out / "overlay.png").stat().st_size > 0
    assert (out / "registration.gif").stat().st_size > 0


def _pose_json(out: Path) -> dict:
    return json.loads((out / "pose.json").read_text(encoding="utf-8"))


def test_convention_register_init_and_pose_json_motion_round_trip(tmp_path):
    ct, xray, iso = _png_case(tmp_path)
    common = ["register", str(ct), str(xray), "--binning", "4", "--volume-size", "24", "--no-progress"]
    _invoke_tiny([*common, "--init", "2,-3,4,5,-6,10", "--out", str(tmp_path / "first")])
    first = _pose_json(tmp_path / "first")
    reference = torch.tensor(first["reference_pose_camera_to_world"], dtype=torch.float64)
    torch.testing.assert_close(reference, standard_pose("ap", get_preset("prost").sid, iso))
    # --init is a motion about the isocentre (rotation vector in degrees, mm), as pose.json's motion
    init = torch.tensor([2.0, -3.0, 4.0, 5.0, -6.0, 10.0], dtype=torch.float64)
    initial = torch.tensor(first["initial_pose_camera_to_world"], dtype=torch.float64)
    torch.testing.assert_close(initial, pose_from_motion(init, reference, iso))
    registered = torch.tensor(first["pose_camera_to_world"], dtype=torch.float64)
    torch.testing.assert_close(pose_from_motion(torch.tensor(first["motion"]).double(), reference, iso), registered)
    # fed back, as numbers or as the file, it starts at the registered pose
    numbers = ",".join(repr(v) for v in first["motion"])
    _invoke_tiny([*common, "--init", numbers, "--out", str(tmp_path / "numbers")])
    _invoke_tiny([*common, "--init", str(tmp_path / "first" / "pose.json"), "--out", str(tmp_path / "file")])
    for run in ("numbers", "file"):
        again = torch.tensor(_pose_json(tmp_path / run)["initial_pose_camera_to_world"], dtype=torch.float64)
        torch.testing.assert_close(again, registered, rtol=0.0, atol=1e-9)


def test_init_motion_reads_a_pose_json_of_the_same_reference_only(tmp_path):
    iso = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    ap, ll = standard_pose("ap", 620.0, iso), standard_pose("ll", 620.0, iso)
    motion = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0, 6.0], dtype=torch.float64)
    fixed = FixedImage(torch.zeros(1, 1, 8, 8), get_preset("prost"), ap, "view ap")
    result = RegistrationResult(pose_from_motion(motion, ap, iso), ap, (), 0.0)
    path = tmp_path / "pose.json"
    path.write_text(json.dumps(pose_document("cmaes", result, fixed, iso)), encoding="utf-8")
    torch.testing.assert_close(init_motion(path, ap, iso), motion)
    torch.testing.assert_close(init_motion(tuple(motion.tolist()), ap, iso), motion)
    with pytest.raises(ValueError, match=r"--init .*pose.json: its motion is about the reference 'view ap'"):
        init_motion(path, ll, iso)
    with pytest.raises(ValueError, match="this run's reference pose or isocentre differs"):
        init_motion(path, ap, iso + 1.0)
    path.write_text(json.dumps({"motion": [1, 2, 3]}), encoding="utf-8")
    with pytest.raises(ValueError, match=r"expected a pose\.json written by xrender register"):
        init_motion(path, ap, iso)
    path.write_text(
        json.dumps({"motion": [1, 2, 3], "reference_pose_camera_to_world": ap.tolist(), "isocenter_mm": [0, 0, 0]})
    )
    with pytest.raises(ValueError, match=r"expected motion of 6 finite numbers"):
        init_motion(path, ap, iso)
    path.write_text("not json", encoding="utf-8")
    with pytest.raises(ValueError, match=r"expected a pose\.json written by xrender register"):
        init_motion(path, ap, iso)
    with pytest.raises(FileNotFoundError):
        init_motion(tmp_path / "missing.json", ap, iso)


def test_cli_register_init_file_errors_are_one_line(tmp_path):
    result = CliRunner().invoke(app, ["register", str(tmp_path / "ct.nii"), str(tmp_path / "x.png"), "--init", "1,2"])
    assert result.exit_code == 2
    assert "error: --init: expected 6 finite numbers 'rx,ry,rz,tu,tv,tdepth'" in result.output


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
