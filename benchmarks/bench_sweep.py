#!/usr/bin/env python3
"""How the Problem 2d sweep's cost grows with k (medians of repeated runs), against one forward pass.

    .venv/bin/python benchmarks/bench_sweep.py [--arch resnet50] [--repeats 15]

The sweep works on the cached pooled layer4 vector: removing a unit subtracts its contribution from
the logits, so k units cost O(k x classes) on top of one (classes x c) product, with no forward pass.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torchvision

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from analyses import unit_ablation  # noqa: E402


def median_ms(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--arch", default="resnet50", choices=["resnet50", "resnet18"])
    p.add_argument("--repeats", type=int, default=15)
    a = p.parse_args()
    torch.manual_seed(0)
    model = getattr(torchvision.models, a.arch)(num_classes=365).eval()
    weight = model.fc.weight.detach().numpy()
    bias = model.fc.bias.detach().numpy()
    pooled = np.random.default_rng(0).gamma(0.5, 1.0, weight.shape[1]).astype(np.float32)
    with torch.no_grad():
        x = torch.randn(1, 3, 256, 256)
        forward = median_ms(lambda: model(x), max(3, a.repeats // 5))
    print(f"{a.arch}: one forward pass at 256 x 256 (what a naive sweep pays per k): {forward:.1f} ms")
    print(f"{'k':>6} {'both sweeps (ms)':>17} {'naive estimate (ms)':>20}")
    for k in [1, 5, 10, 50, 100, 300, 1000, weight.shape[1]]:
        ms = median_ms(lambda k=k: unit_ablation.both_sweeps(pooled, weight, bias, k), a.repeats)
        print(f"{k:>6} {ms:>17.2f} {2 * k * forward:>20.0f}")


if __name__ == "__main__":
    main()
