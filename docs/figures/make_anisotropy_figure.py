"""Why an image similarity's steepest descent is not the way home: NCC's curvature in the twist chart.

Run: ``python docs/figures/make_anisotropy_figure.py [--model prost.pt]``. On the pelvis phantom
(64³ μ volume, the ProST C-arm binned to 64²), it measures

* the Hessian of NCC's distance ``1 − NCC`` with respect to the volume twist ξ = (ω, v) at the
  true pose (central differences of the analytic pose gradient, ±1e-3 rad / ±0.05 mm), and prints
  the curvature ratios quoted on the concept page;
* the cosine between each similarity's steepest-descent direction and the geodesic direction,
  rotation and translation parts, on held-out training-distribution pairs and at fixed
  5°/10 mm offsets (NCC, the untrained Siamese ProST, and ``--model`` if given);

and draws ``anisotropy.png`` beside this script.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import torch
from matplotlib.figure import Figure

from xrender.geometry import perturb, se3_exp
from xrender.plot import save_figure
from xrender.recipes.training import pair_sampler, training_geometry
from xrender.recipes.training.config import TrainConfig
from xrender.recipes.training.curve import CURVE_SETS, gradient_cosines, held_out_sets
from xrender.render import DRR, RenderOptions
from xrender.similarity import RenderedSimilarity, get_similarity
from xrender.similarity.gradient_loss import similarity_value_and_gradient
from xrender.similarity.prost import ProSTNetwork, ProSTSimilarity
from xrender.subject import phantom_subject

HERE = Path(__file__).parent
NAMES = ("ω_u", "ω_v", "ω_depth", "v_u", "v_v", "v_depth")


def ncc_hessian(similarity: RenderedSimilarity, pose: torch.Tensor, fixed: torch.Tensor) -> torch.Tensor:
    """The 6×6 Hessian of ``−NCC`` in the twist chart at ``pose`` (per rad and per mm), by central differences."""
    steps = torch.tensor([1e-3] * 3 + [0.05] * 3, dtype=torch.float64)
    columns = []
    for k in range(6):
        xi = torch.zeros(1, 6, dtype=torch.float64)
        xi[0, k] = steps[k]
        plus, minus = (perturb(pose, se3_exp(sign * xi), similarity.isocenter) for sign in (1, -1))
        g_plus = similarity_value_and_gradient(similarity, plus, fixed, create_graph=False)[1]
        g_minus = similarity_value_and_gradient(similarity, minus, fixed, create_graph=False)[1]
        columns.append(((g_plus - g_minus) / (2 * steps[k]))[0])
    hessian = torch.stack(columns, 1)
    return (hessian + hessian.T) / 2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="a trained ProST network (64² detector) to add to the cosines")
    parser.add_argument("--poses", type=int, default=32, help="held-out pairs per set")
    args = parser.parse_args()
    torch.manual_seed(0)
    config = TrainConfig()
    subject = phantom_subject(config.volume_size, config.bone_threshold_hu)
    carm = training_geometry(config)
    step = float(subject.full.spacing.min())
    ncc = RenderedSimilarity(
        DRR(subject.full.to(dtype=torch.float64), carm, options=RenderOptions(step_mm=step)), get_similarity("ncc")
    )

    sampler = pair_sampler(config, [subject], carm, None, 12345)
    sets = held_out_sets(sampler, args.poses)
    truth = sets["training pairs"].true_pose[:1].double()
    fixed = sets["training pairs"].fixed[:1].double()
    hessian = ncc_hessian(ncc, truth, fixed)
    diagonal = hessian.diagonal()
    print("NCC Hessian diagonal (per rad², per mm²):", [f"{v:.3g}" for v in diagonal.tolist()])
    in_plane = float(diagonal[3:5].mean())
    print(f"in-plane / depth translation curvature: {in_plane / float(diagonal[5]):.1f}")
    rotation = diagonal[:3] / diagonal[:3].min()
    print("rotation curvatures, relative:", [f"{v:.1f}" for v in rotation.tolist()])
    correlation = hessian / torch.sqrt(diagonal.abs()[:, None] * diagonal.abs()[None, :])
    print(f"ω_u–v_v coupling (correlation): {float(correlation[0, 4]):+.2f}")

    similarities = {"NCC": ncc}
    untrained = ProSTNetwork((carm.height, carm.width))
    similarities["ProST, untrained"] = ProSTSimilarity(
        subject.moving, carm, untrained, options=RenderOptions(step_mm=step)
    ).eval()
    if args.model is not None:
        trained = ProSTNetwork.load(args.model)
        similarities["ProST, trained"] = ProSTSimilarity(
            subject.moving, carm, trained, options=RenderOptions(step_mm=step)
        ).eval()
    cosines = {
        name: {key: gradient_cosines(sim, pair.to("cpu")) for key, pair in sets.items()}
        for name, sim in similarities.items()
    }
    for name, values in cosines.items():
        print(name, {k: tuple(round(c, 2) for c in v) for k, v in values.items()})

    fig = Figure(figsize=(12, 4.2), layout="constrained")
    left, middle, right = fig.subplots(1, 3, width_ratios=(1.1, 1, 1.3))
    image = left.imshow(correlation.numpy(), cmap="RdBu_r", vmin=-1, vmax=1)
    left.set_xticks(range(6), NAMES, rotation=45)
    left.set_yticks(range(6), NAMES)
    left.set_title("NCC Hessian at the true pose\n(normalised: H_ij / √(H_ii H_jj))", fontsize=10)
    fig.colorbar(image, ax=left, shrink=0.8)
    scale = torch.tensor([math.radians(1.0) ** 2] * 3 + [1.0] * 3, dtype=torch.float64)
    middle.bar(range(6), (diagonal * scale).numpy(), color=["tab:blue"] * 3 + ["tab:orange"] * 3)
    middle.set_yscale("log")
    middle.set_xticks(range(6), NAMES, rotation=45)
    middle.set_title("curvature per axis\n(per degree², per mm²)", fontsize=10)
    middle.grid(alpha=0.3, axis="y")
    width = 0.8 / len(cosines)
    for k, (name, values) in enumerate(cosines.items()):
        xs = [i + (k - (len(cosines) - 1) / 2) * width for i in range(2 * len(CURVE_SETS))]
        heights = [values[s][part] for s in CURVE_SETS for part in (0, 1)]
        right.bar(xs, heights, width, label=name)
    labels = [f"{s}\n{part}" for s in CURVE_SETS for part in ("rot", "trans")]
    right.set_xticks(range(len(labels)), labels, fontsize=7)
    right.axhline(0, color="0.5", lw=0.8)
    right.set_ylim(-0.2, 1)
    right.set_title("cosine(steepest descent, geodesic direction)", fontsize=10)
    right.legend(fontsize=8)
    print("wrote", save_figure(fig, HERE / "anisotropy.png", dpi=100))


if __name__ == "__main__":
    main()
