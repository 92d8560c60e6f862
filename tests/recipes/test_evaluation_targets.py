"""Evaluation targets: DRRs (the inverse crime) and realistic X-rays the registration did not render."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from xrender.physics import SHIPPED_KVP, Detector, decompose_hu, load_spectrum, simulate_xray
from xrender.recipes.registration import EvaluationConfig, make_trials
from xrender.recipes.registration.command import EvaluationRequest
from xrender.recipes.registration.targets import TARGETS, DRRTargets, RealisticTargets, target_generator
from xrender.similarity import ncc


def test_targets_registry_names_both_models():
    assert TARGETS.names() == ["drr", "realistic"]
    assert isinstance(TARGETS.get("drr"), DRRTargets)
    assert isinstance(TARGETS.get("realistic"), RealisticTargets)


def test_realistic_trials_share_the_poses_of_drr_trials_and_differ_in_the_image(subject, carm):
    drr = make_trials(subject, carm, EvaluationConfig(trials=3, seed=4))
    real = make_trials(subject, carm, EvaluationConfig(trials=3, seed=4, targets="realistic"))
    torch.testing.assert_close(real.truth, drr.truth, rtol=0, atol=0)
    torch.testing.assert_close(real.initial, drr.initial, rtol=0, atol=0)
    assert real.xrays.shape == drr.xrays.shape
    assert real.xrays.dtype == torch.float32
    assert drr.drawn == ({}, {}, {})
    for k, drawn in enumerate(real.drawn):
        assert drawn["kvp"] in SHIPPED_KVP
        assert 3e2 <= drawn["photons_per_mm2"] <= 1.5e5
        assert drawn["dose"] == pytest.approx(drawn["photons_per_mm2"] * carm.pixel_spacing[0] * carm.pixel_spacing[1])
        similarity = float(ncc(real.xrays[k : k + 1].double(), drr.xrays[k : k + 1].double()))
        assert 0.5 < similarity < 0.999  # the same anatomy, not the same image
    again = make_trials(subject, carm, EvaluationConfig(trials=3, seed=4, targets="realistic"))
    torch.testing.assert_close(again.xrays, real.xrays, rtol=0, atol=0)  # the noise is seeded too


def test_realistic_target_is_simulate_xray_with_the_drawn_kvp_dose_and_generator(subject, carm):
    model = RealisticTargets(kvps=(60, 120), fluence_range=(20.0, 20.0), scatter=None, scintillator=None)
    dose = 20.0 * carm.pixel_spacing[0] * carm.pixel_spacing[1]
    truth = make_trials(subject, carm, EvaluationConfig(trials=2, seed=1)).truth
    xrays, drawn = model.make(subject, carm, truth, seed=1)
    generator = target_generator(1, 1)
    kvp = (60, 120)[int(torch.randint(2, (), generator=generator))]
    torch.rand((), generator=generator, dtype=torch.float64)  # the dose draw
    assert drawn[1] == {"kvp": kvp, "photons_per_mm2": pytest.approx(20.0), "dose": pytest.approx(dose)}
    expected = simulate_xray(
        decompose_hu(subject.hu), carm, truth[1:2], load_spectrum(kvp), Detector(dose, 2.0, 0.5), generator=generator
    )
    torch.testing.assert_close(xrays[1:2], expected.float())


def test_target_errors(subject, carm):
    with pytest.raises(ValueError, match=r"--targets.*'mc'.*drr, realistic"):
        EvaluationConfig(targets="mc")
    with pytest.raises(ValueError, match="kvps"):
        RealisticTargets(kvps=(70,))
    with pytest.raises(ValueError, match="fluence_range"):
        RealisticTargets(fluence_range=(1e4, 1e3))
    with pytest.raises(ValueError, match="psf_sigma_px"):
        RealisticTargets(psf_sigma_px=-1.0)
    without_hu = replace(subject, hu=None)
    with pytest.raises(ValueError, match=r"Subject.hu"):
        make_trials(without_hu, carm, EvaluationConfig(trials=1, targets="realistic"))
    with pytest.raises(ValueError, match="--targets: applies to simulated trials"):
        EvaluationRequest(
            deepfluoro="f.h5", specimen="1", config=EvaluationConfig(targets="realistic")
        )  # fmt: skip
