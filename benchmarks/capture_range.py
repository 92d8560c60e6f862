"""Capture range of learned-gradient descent vs NCC-gradient descent on the phantom.

    python benchmarks/capture_range.py prost-phantom.pt --poses 24 --steps 60

For a network trained on the phantom (``xrender train --phantom``), draw true poses from the
training distribution and initial poses offset from them by the paper's initial-pose
distribution (``prost-initial``: N(0, 25°) rotations, N(0, 25/25/60 mm) translations). Run the same
`xrender.registration.pose_descent` from each initial pose with:

* the trained ProST similarity,
* the same network untrained (the initialisation, for reference),
* NCC and gradient NCC of DRRs of the full volume.

Print the fraction of poses ending with mean TRE < 10 mm (the paper's success), the median TRE
before and after, and the mean gradient cosines with the geodesic gradient at the initial poses.
"""

from __future__ import annotations

import argparse
import time

import torch

from xrender.geometry import get_pose_distribution, perturb, standard_pose
from xrender.io import load_state
from xrender.metrics import target_registration_error
from xrender.recipes.training import SUCCESS_TRE_MM, TrainConfig, training_geometry
from xrender.recipes.training.validation import part_cosines
from xrender.registration import DescentOptions, pose_descent
from xrender.render import DRR, RenderOptions, render
from xrender.similarity import RenderedSimilarity, get_similarity
from xrender.similarity.gradient_loss import similarity_value_and_gradient, target_gradient
from xrender.similarity.prost import NETWORK_FORMAT, ProSTNetwork, ProSTSimilarity
from xrender.subject import phantom_subject


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="a network written by xrender train --phantom")
    parser.add_argument("--poses", type=int, default=24)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--seed", type=int, default=2024)
    args = parser.parse_args()

    state = load_state(args.model, file_format=NETWORK_FORMAT, version=1)
    trained = ProSTNetwork.from_state(state, origin=args.model)
    config = TrainConfig.from_dict(state["summary"]["config"])
    torch.manual_seed(config.seed)
    untrained = ProSTNetwork(trained.image_size, head=config.head, feature_widths=config.feature_widths)
    carm = training_geometry(config)
    subject = phantom_subject(config.volume_size, config.bone_threshold_hu)
    iso, step = subject.full.isocenter, config.step_voxels * float(subject.moving.spacing.min())

    reference = standard_pose("ap", carm.sid, iso)
    truth = perturb(reference, get_pose_distribution(config.true_poses).sample(args.poses, seed=args.seed), iso)
    start = perturb(truth, get_pose_distribution("prost-initial").sample(args.poses, seed=args.seed + 1), iso)
    with torch.no_grad():
        xrays = render(subject.full, carm, truth)
    points = subject.points
    before = target_registration_error(start, truth, points)

    drr = DRR(subject.full, carm)
    methods = {
        "ProST (trained)": ProSTSimilarity(subject.moving, carm, trained, options=RenderOptions(step_mm=step)).eval(),
        "ProST (untrained)": ProSTSimilarity(
            subject.moving, carm, untrained, options=RenderOptions(step_mm=step)
        ).eval(),
        "NCC": RenderedSimilarity(drr, get_similarity("ncc")),
        "gradient NCC": RenderedSimilarity(drr, get_similarity("gradient-ncc")),
    }
    print(
        f"# {args.poses} poses, initial median TRE {float(before.median()):.1f} mm, "
        f"{float((before < SUCCESS_TRE_MM).double().mean()):.0%} already < {SUCCESS_TRE_MM:g} mm; {args.steps} steps"
    )
    print("| similarity | cos rot | cos trans | TRE < 10 mm | median TRE after (mm) | improved | seconds |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, similarity in methods.items():
        t0 = time.perf_counter()
        _, g_net = similarity_value_and_gradient(similarity, start, xrays, create_graph=False)
        cos = part_cosines(g_net, target_gradient(start, truth, iso)).mean(0)
        result = pose_descent(similarity, xrays, start, DescentOptions(steps=args.steps), progress=True)
        after = target_registration_error(result.pose, truth, points)
        print(
            f"| {name} | {float(cos[0]):+.3f} | {float(cos[1]):+.3f} | "
            f"{float((after < SUCCESS_TRE_MM).double().mean()):.0%} | {float(after.median()):.1f} | "
            f"{float((after < before).double().mean()):.0%} | {time.perf_counter() - t0:.0f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
