"""Training speed of the ProST recipe: iterations per second at the CPU and the paper scale.

    python benchmarks/train.py                      # both scales, both heads, on this machine
    python benchmarks/train.py --scales cpu --heads embedding --iterations 10

Each row times ``iterations`` training steps (after ``warmup`` untimed ones) of `recipes.training.Trainer`
on the phantom: a pose-pair draw, the target render and augmentation, the 3-D branch, the projection,
the head and the double backward, and the SGD step. It prints the median step time and iterations/s.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch

from recipes.training import Trainer, get_scale, phantom_subject


def measure(scale: str, head: str, iterations: int, warmup: int) -> dict[str, float | str]:
    """Median seconds per training step for one scale and head."""
    config = get_scale(scale).replace(head=head, validation_poses=0, iterations=warmup + iterations)
    subject = phantom_subject(config.volume_size, config.bone_threshold_hu)
    trainer = Trainer(config, [subject])  # on the GPU when there is one
    times: list[float] = []
    for k in range(warmup + iterations):
        pair = trainer.sampler.draw(config.batch_size)
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        start = time.perf_counter()
        trainer.step(pair)
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        if k >= warmup:
            times.append(time.perf_counter() - start)
    median = statistics.median(times)
    return {
        "scale": scale,
        "volume": f"{config.volume_size}³",
        "detector": f"{config.detector_size}²",
        "head": head,
        "batch": config.batch_size,
        "median_s": median,
        "it_per_s": 1 / median,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", nargs="+", default=["cpu", "paper"])
    parser.add_argument("--heads", nargs="+", default=["embedding", "cross-attention"])
    parser.add_argument("--iterations", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args()
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU, {torch.get_num_threads()} threads"
    print(f"# torch {torch.__version__}, {device}, {platform.processor() or platform.machine()}")
    print("| scale | volume | detector | head | batch | median step (s) | it/s |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for scale in args.scales:
        for head in args.heads:
            row = measure(scale, head, args.iterations, args.warmup)
            print(
                f"| {row['scale']} | {row['volume']} | {row['detector']} | {row['head']} | {row['batch']} | "
                f"{row['median_s']:.3f} | {row['it_per_s']:.2f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
