"""Does a learned descent from many starting rotations reach trials beyond the gradient's ~60°?

    python benchmarks/prost_multistart.py --model recipes/data/prost-phantom.pt --trials 5,13,22,14,6,7,23,0,10,12

The exploration that led to `xrender.registration.MultiStartStage` (``prost:multistart+cmaes``),
which refines several ends instead of trusting gradient NCC's first choice. The trials are those of
``xrender evaluate --phantom --stratify 0:200:25 --per-bin 3 --initial-poses wide --seed 1``.
For each trial, the initial pose is turned about the isocentre by each of the 24 rotations of the
cube (the octahedral group: every rotation of SO(3) is within 62.8° of one of them). Two ways of
choosing where CMA-ES (the ``cmaes`` stage, as in ``prost+cmaes``) then starts are compared:

* ``learned``: descend the learned similarity from all 24 starts at once (normalised descent,
  `xrender.registration.LearnedDescentStage.descend`), then take the end pose whose DRR scores best in
  gradient NCC against the X-ray;
* ``raw``: take the best of the 24 starts in gradient NCC as they are (the same budget of
  hypotheses without the learned gradient).

and, as the baseline at equal cost, ``cmaes`` alone from the initial pose, given the learned
variant's wall time on the trial and spending it on IPOP restarts (``xrender evaluate
--equal-time``'s `register_within`).

Printed per trial: the initial rotation error, how close the best of the 24 poses came, which pose
gradient NCC chose, and the mean TRE after CMA-ES; then the successes of each variant.
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the command line sets it

import torch

from xrender.metrics import rotation_error, target_registration_error
from xrender.recipes.registration.command import EvaluationRequest, load_models, trial_source
from xrender.recipes.registration.evaluation import EvaluationConfig, register_within, target_points, trial_seed
from xrender.recipes.registration.methods import MethodContext, MethodSettings, build_method, with_seed
from xrender.registration import DescentOptions, LearnedDescentStage, MultiStartStage, RegistrationProblem, register
from xrender.render import DRR
from xrender.similarity import get_similarity

#: The development trials: 3 per 25 mm bin of initial mean TRE up to 200 mm, directions from ``wide``.
CONFIG = EvaluationConfig(seed=1, stratify=tuple(float(e) for e in range(0, 201, 25)), initial_distribution="wide")
#: Image size (pixels) at which gradient NCC chooses among the poses.
CHOOSE_SIZE = 64


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="a ProST model trained on the phantom")
    parser.add_argument(
        "--trials", default="5,13,22,14,6,7,23,0,10,12", help="comma-separated trial numbers, or 'all' (the 24)"
    )
    parser.add_argument("--steps", type=int, default=60, help="learned descent steps")
    args = parser.parse_args()
    bins = len(CONFIG.stratify) - 1
    chosen_trials = list(range(3 * bins)) if args.trials == "all" else [int(k) for k in args.trials.split(",")]

    config = replace(CONFIG, trials=max(chosen_trials) + 1)
    request = EvaluationRequest(phantom=True, config=config, model=args.model, progress=False)
    models = load_models(args.model, None)
    source = trial_source(request)
    subject = source.subject_at(128)
    moving = source.subject_at(models.prost_volume_size or 128).moving
    trials = source.trials(subject)
    points = target_points(subject, config)
    # the stage's starts and batched descent with the exploration's first steps (DescentOptions' 2°, 4 mm;
    # the stage now takes 4°, 10 mm: benchmarks/README.md, "Steps that reach"); the choice among the ends
    # is this script's own
    multistart = MultiStartStage(LearnedDescentStage(models.prost, DescentOptions(steps=args.steps, decay=0.96)))
    gradient_ncc = get_similarity("gradient-ncc")
    context = MethodContext(MethodSettings(), models.prost, None)

    print("| trial | initial rotation | start | nearest of 24 | chosen by gNCC | after CMA-ES | s |")
    print("| ---: | ---: | --- | --- | --- | ---: | ---: |")
    successes: dict[str, int] = {}
    for k in chosen_trials:
        truth = trials.truth[k]
        problem = RegistrationProblem(subject.full, source.geometry, trials.xrays[k : k + 1], moving)
        starts = multistart.starts(problem, trials.initial[k])
        choose_geometry, choose_xray = problem.at_size(CHOOSE_SIZE)
        drr = DRR(subject.full, choose_geometry)
        initial_angle = float(rotation_error(trials.initial[k], truth))
        budget = 0.0
        for label in ("learned", "raw", "cmaes, equal time"):
            start = time.perf_counter()
            stages = build_method("cmaes", with_seed(context, trial_seed(config.seed, k)))
            if label == "cmaes, equal time":
                pose = register_within(problem, trials.initial[k], stages, budget).pose
                final = float(target_registration_error(pose, truth, points))
                cells = "— | —"
            else:
                poses = multistart.explore.descend(problem, starts).pose if label == "learned" else starts
                with torch.no_grad():
                    images = drr(poses.to(choose_xray.dtype))
                    scores = gradient_ncc(images, choose_xray.expand_as(images))
                mtre = target_registration_error(poses, truth.expand_as(poses), points)
                angle = rotation_error(poses, truth.expand_as(poses))
                nearest, pick = int(mtre.argmin()), int(scores.argmax())
                final = float(target_registration_error(register(problem, poses[pick], stages).pose, truth, points))
                cells = (
                    f"{float(mtre[nearest]):.0f} mm, {float(angle[nearest]):.0f}° "
                    f"| {float(mtre[pick]):.0f} mm, {float(angle[pick]):.0f}°"
                )
            seconds = time.perf_counter() - start
            budget = seconds if label == "learned" else budget
            success = final < config.success_mm
            successes[label] = successes.get(label, 0) + success
            print(
                f"| {k} | {initial_angle:.0f}° | {label} | {cells} | {final:.1f} mm "
                f"{'(success)' if success else ''} | {seconds:.0f} |",
                flush=True,
            )
    print("\nsuccesses: " + ", ".join(f"{label} {n}/{len(chosen_trials)}" for label, n in successes.items()))


if __name__ == "__main__":
    main()
