#!/usr/bin/env python3
"""Wall-clock time of a batch of grid trials in two layouts on this machine's cores: one trial at a
time with every core as torch threads, or one trial per core side by side (a process pool, one
thread each). The local executor and Ray use the faster one (miniplaces/report/trial_runner.py: layout).

Runs the standard grid's baseline with --trials seeds, --epochs epochs on its 12 000-image subset,
without the cache, alternating the layouts --repeats times; prints each wall time and the medians:

    .venv/bin/python benchmarks/bench_trial_layout.py --trials 4 --epochs 2 --repeats 3
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from analyses.fashion_mnist import data as fdata  # noqa: E402
from analyses.fashion_mnist.grid import TrialSpec  # noqa: E402
from miniplaces.report.sections.fashion_mnist import load_grid  # noqa: E402
from miniplaces.report.trial_runner import TrialEnv, cores, run_specs  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--trials", type=int, default=4, help="trials per batch (seeds of the baseline)")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--grid", type=Path, default=ROOT / "grids" / "standard.toml")
    a = p.parse_args()
    grid = load_grid(a.grid)
    folder = fdata.locate(None, None, offline=True)
    n = cores()
    env = TrialEnv(str(folder), fdata.load(folder).sha256, None, False, grid.val_size, grid.train_subset,
                   "cpu", n)
    specs = [TrialSpec("baseline", None, {}, grid.base.updated({"epochs": a.epochs}), seed)
             for seed in range(a.trials)]
    layouts = {f"1 x {n} threads": env, f"{n} x 1 thread": replace(env, threads=1, workers=n)}
    walls: dict[str, list[float]] = {name: [] for name in layouts}
    for r in range(a.repeats):
        for name, layout_env in layouts.items():
            start = time.perf_counter()
            outcomes = run_specs(specs, layout_env)
            walls[name].append(time.perf_counter() - start)
            train_s = sum(result["train_s"] for result, _ in outcomes)
            val_s = sum(result["val_s"] for result, _ in outcomes)
            print(f"repeat {r + 1} {name:>14}: wall {walls[name][-1]:6.1f} s (training {train_s:.1f} s, "
                  f"validation {val_s:.1f} s summed over trials)", flush=True)
    print(f"\nmedians over {a.repeats} repeats, "
          f"{a.trials} trials x {a.epochs} epochs x {grid.train_subset} images:")
    for name, values in walls.items():
        print(f"  {name:>14}: {statistics.median(values):6.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
