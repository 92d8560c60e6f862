"""Does a ProST similarity trained on DRRs still point home on realistic X-rays?

    python benchmarks/prost_domain_gap.py --model prost-cxr.pt --ct cxr.nii.gz
    python benchmarks/prost_domain_gap.py --model recipes/data/prost-phantom.pt   # the phantom

Held-out pose pairs drawn as `xrender train`'s learning curve draws them (the default
`TrainConfig`'s distributions; the training pairs and exact 5°/10 mm and 10°/20 mm offsets). For
each pair the network's pose gradient is taken against three fixed images of the same true pose:
the DRR it was trained on, and a realistic X-ray (`xrender.physics.simulate_xray`: polyenergetic,
scatter, CsI, blur, noise) at a high and at a low photon fluence. Printed: the mean cosine between
that gradient and the geodesic one (rotation and translation parts, as in the learning curve),
and the mean cosine between the DRR-target and realistic-target gradients themselves.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the command line sets it

import torch
from _prost_setup import add_model_arguments, trained_setup

from xrender.physics import Detector, ScatterModel, Scintillator, decompose_hu, load_spectrum, simulate_xray
from xrender.recipes.training.curve import held_out_sets
from xrender.recipes.training.validation import part_cosines
from xrender.render import VolumePyramid
from xrender.similarity.gradient_loss import similarity_value_and_gradient, target_gradient

#: Photon fluences (photons/mm² at the detector without the patient) of the realistic targets.
FLUENCES = {"realistic, 10⁴ photons/mm²": 1e4, "realistic, 300 photons/mm²": 3e2}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_model_arguments(parser, seed=11)
    parser.add_argument("--pairs", type=int, default=32, help="pairs per set")
    parser.add_argument("--kvp", type=int, default=80)
    args = parser.parse_args()

    setup = trained_setup(args)
    subject, geometry, sampler, similarity = setup.subject, setup.geometry, setup.sampler, setup.similarity
    densities = VolumePyramid(decompose_hu(subject.hu))
    spectrum = load_spectrum(args.kvp)
    pixel_mm2 = geometry.pixel_spacing[0] * geometry.pixel_spacing[1]
    generator = torch.Generator().manual_seed(args.seed)
    print(f"{args.model} on {subject.name}: {args.pairs} pairs per set, {geometry.height}² detector, {args.kvp} kVp")
    print("\n| pairs | fixed image | cos rotation | cos translation | cos(g_DRR, g_realistic) |")
    print("| --- | --- | ---: | ---: | ---: |")
    for name, pair in held_out_sets(sampler, args.pairs).items():
        geodesic = target_gradient(pair.initial_pose, pair.true_pose, similarity.isocenter)
        images = {"DRR (as trained)": pair.fixed}
        for label, fluence in FLUENCES.items():
            detector = Detector(fluence * pixel_mm2, electronic_sigma=2.0, psf_sigma_px=0.5)
            with torch.no_grad():
                images[label] = simulate_xray(
                    densities,
                    geometry,
                    pair.true_pose,
                    spectrum,
                    detector,
                    scatter=ScatterModel(),
                    scintillator=Scintillator(),
                    generator=generator,
                ).to(pair.fixed.dtype)
        gradients = {}
        for label, fixed in images.items():
            _, g = similarity_value_and_gradient(similarity, pair.initial_pose, fixed, create_graph=False)
            gradients[label] = g.detach()
            rot, trans = part_cosines(gradients[label], geodesic).mean(0).tolist()
            agree = torch.nn.functional.cosine_similarity(gradients[label], gradients["DRR (as trained)"], dim=-1)
            print(f"| {name} | {label} | {rot:+.3f} | {trans:+.3f} | {float(agree.mean()):+.3f} |")


if __name__ == "__main__":
    main()
