"""Training speed of the ProST recipe: seconds per pose pair, the pose-Jacobian path against the double backward.

    python benchmarks/train.py                                   # the table below, on this machine
    python benchmarks/train.py --batches 2 16 32 --iterations 5

Each row times ``iterations`` training steps (after ``warmup`` untimed ones) of
`xrender.recipes.training.Trainer` on the phantom at a 64³ volume and a 64² detector (``--size``): a
pose-pair draw, the target render, the 3-D branch, the projection and its pose gradient, the
head, the loss's backward to the weights, and the optimiser step. Two paths compute the same loss
and the same weight gradients (``tests/similarity/test_gradient_loss.py``):

* ``double backward`` (the previous path, the reference): ``grid_sample`` renders, autograd
  differentiates the score with respect to the pose with ``create_graph=True`` and the loss's
  backward differentiates that graph again;
* ``pose Jacobian``: the fused kernel renders the projection and its pose Jacobian in one march
  (`xrender.render.render_jacobian`); only the 2-D head is differentiated twice.

It prints the median step, the seconds per pose pair and the ratio of the reference's seconds per
pair (at the reference's batch, measured in the same run) to each row's.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch

from xrender.recipes.distributed import Distributed
from xrender.recipes.training import Trainer, get_scale
from xrender.subject import phantom_subject

PATHS = {"double backward": "grid_sample", "pose Jacobian": "fused-cpu"}


def measure(path: str, size: int, batch: int, iterations: int, warmup: int, scale: str) -> dict[str, float | str]:
    """Median seconds per training step and per pose pair for one path and batch."""
    config = get_scale(scale).replace(
        volume_size=size,
        detector_size=size,
        batch_size=batch,
        render_backend=PATHS[path],
        validation_poses=0,
        curve_every=0,
        iterations=warmup + iterations,
    )
    subject = phantom_subject(config.volume_size, config.bone_threshold_hu)
    trainer = Trainer(config, [subject], distributed=Distributed())  # one process on the CPU
    times: list[float] = []
    for k in range(warmup + iterations):
        pair = trainer.sampler.draw(config.batch_size)
        start = time.perf_counter()
        trainer.step(pair)
        if k >= warmup:
            times.append(time.perf_counter() - start)
    median = statistics.median(times)
    return {"path": path, "batch": batch, "median_s": median, "per_pair_s": median / batch}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=64, help="volume and detector size (voxels/pixels per side)")
    parser.add_argument("--reference-batch", type=int, default=2, help="batch of the double-backward reference")
    parser.add_argument("--batches", type=int, nargs="+", default=[2, 16, 32], help="batches of the Jacobian path")
    parser.add_argument("--iterations", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--scale", default="cpu", help="the training scale whose other settings are used")
    args = parser.parse_args()
    device = f"CPU, {torch.get_num_threads()} threads"
    print(f"# torch {torch.__version__}, {device}, {platform.processor() or platform.machine()}")
    print(f"# phantom, {args.size}³ volume, {args.size}² detector, scale {args.scale!r} otherwise")
    print("| path | batch | median step (s) | s per pair | speed-up per pair |")
    print("| --- | ---: | ---: | ---: | ---: |")
    rows = [("double backward", args.reference_batch)] + [("pose Jacobian", b) for b in args.batches]
    reference = None
    for path, batch in rows:
        row = measure(path, args.size, batch, args.iterations, args.warmup, args.scale)
        reference = reference or row["per_pair_s"]
        print(
            f"| {path} | {batch} | {row['median_s']:.3f} | {row['per_pair_s']:.4f} | "
            f"{reference / row['per_pair_s']:.1f}× |",
            flush=True,
        )


if __name__ == "__main__":
    main()
