"""How far from the true pose does a ProST similarity's pose gradient still point home?

    python benchmarks/prost_reach.py --model recipes/data/prost-phantom.pt   # the phantom
    python benchmarks/prost_reach.py --model prost-cxr.pt --ct cxr.nii.gz

True poses and DRR targets are drawn as `xrender train` draws them (the default `TrainConfig`);
each initial pose is the true one moved by exactly a given rotation (about a random axis through
the isocentre) and translation (in a random direction). Printed per offset: the mean cosine of the
network's pose gradient with the geodesic one, rotation and translation parts, and how often each
points the right way (cosine > 0). A part with no offset has no direction to find: its columns
show "—".

Then, at the true poses, where the learned score peaks along the depth axis and along u, against
gradient NCC of the bone DRR the network projects: a similarity whose peak sits off the true pose
hands the next stage a biased pose.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the command line sets it

import torch
from _prost_setup import add_model_arguments, trained_setup

from xrender.geometry import perturb, se3_exp
from xrender.recipes.training.curve import offset_motions
from xrender.recipes.training.validation import part_cosines
from xrender.render import DRR
from xrender.similarity import get_similarity
from xrender.similarity.gradient_loss import similarity_value_and_gradient, target_gradient

#: (rotation degrees, translation mm) offsets of the initial poses.
OFFSETS = ((10, 0), (30, 0), (60, 0), (90, 0), (120, 0), (0, 20), (0, 60), (0, 120), (30, 60), (60, 60))
#: Offsets (mm) along one axis at which the peak of a score is looked for.
SCAN_MM = torch.arange(-60.0, 61.0, 5.0, dtype=torch.float64)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_model_arguments(parser, seed=5)
    parser.add_argument("--pairs", type=int, default=24, help="pose pairs per offset")
    args = parser.parse_args()

    setup = trained_setup(args)
    subject, geometry, sampler, similarity = setup.subject, setup.geometry, setup.sampler, setup.similarity
    isocenter = subject.full.isocenter
    print(f"{args.model} on {subject.name}: {args.pairs} pairs per offset, {geometry.height}² detector")

    print("\n| rotation offset | translation offset | cos rotation | right way | cos translation | right way |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: |")
    for rotation, translation in OFFSETS:
        pair = sampler.draw(args.pairs)
        motion = offset_motions(args.pairs, rotation, translation, sampler.generator, pair.true_pose.dtype)
        initial = perturb(pair.true_pose, motion, isocenter)
        _, g_net = similarity_value_and_gradient(similarity, initial, pair.fixed, create_graph=False)
        cosine = part_cosines(g_net.detach(), target_gradient(initial, pair.true_pose, similarity.isocenter))
        cells = []
        for part, offset in ((0, rotation), (1, translation)):
            values = cosine[:, part]
            right = (values > 0).to(torch.float64).mean()
            cells += [f"{float(values.mean()):+.2f}", f"{float(right):.0%}"] if offset else ["—", "—"]
        print(f"| {rotation}° | {translation} mm | " + " | ".join(cells) + " |")

    pair = sampler.draw(args.pairs)
    gradient_ncc = get_similarity("gradient-ncc")
    drr = DRR(subject.moving, geometry)
    print(f"\nPeak of each score along one axis at the {args.pairs} true poses (mm; scanned ±60 mm in 5 mm steps):\n")
    print("| axis | score | median peak | peaks at 0 |")
    print("| --- | --- | ---: | ---: |")
    for axis, label in ((5, "depth (+: farther from the source)"), (3, "u")):
        peaks: dict[str, list[float]] = {"learned (ProST)": [], "gradient NCC, bone DRR": []}
        for k in range(args.pairs):
            true_pose = pair.true_pose[k]
            twist = torch.zeros(len(SCAN_MM), 6, dtype=true_pose.dtype)
            twist[:, axis] = SCAN_MM.to(true_pose.dtype)
            poses = perturb(true_pose.expand(len(SCAN_MM), 4, 4), se3_exp(twist), isocenter.to(true_pose.dtype))
            fixed = pair.fixed[k : k + 1].expand(len(SCAN_MM), -1, -1, -1)
            with torch.no_grad():
                scores = {
                    "learned (ProST)": similarity(poses, fixed),
                    "gradient NCC, bone DRR": gradient_ncc(drr(poses), fixed),
                }
            for name, score in scores.items():
                peaks[name].append(float(SCAN_MM[int(score.argmax())]))
        for name, values in peaks.items():
            median = float(torch.tensor(values).median())
            at_zero = sum(v == 0 for v in values) / len(values)
            print(f"| {label} | {name} | {median:+.0f} | {at_zero:.0%} |")


if __name__ == "__main__":
    main()
