"""Where ``grade``'s "same predictions" thresholds come from: pairs of independently trained models.

Trains a few small FashionMNIST models (different seeds, and one other architecture), plus a "copy":
one of them trained one more epoch at a low learning rate, which is what a student who took another's
model file and touched it up would hand in. Prints every pair's agreement on the 10 000 test images
and the share of their mistakes that are the same wrong label (miniplaces.grading.similarity). Run:

    PYTHONPATH=$PWD python benchmarks/similarity_calibration.py [--epochs 2]
"""
from __future__ import annotations

import argparse
import dataclasses
import itertools
import time

import torch

from analyses.fashion_mnist import data as fdata
from analyses.fashion_mnist.train import TrialConfig, fit
from miniplaces.grading.grade_worker import load_test_set
from miniplaces.grading.similarity import prediction_likeness


def predictions(net, x) -> str:
    net.eval()
    with torch.inference_mode():
        classes = torch.cat([net(x[i:i + 1000]).argmax(1) for i in range(0, len(x), 1000)])
    return "".join(str(int(c)) for c in classes)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--epochs", type=int, default=2)
    a = p.parse_args()
    torch.set_num_threads(1)
    split = fdata.split(fdata.load(fdata.SYSTEM_DIR), val_size=5000)
    x, y = load_test_set(fdata.SYSTEM_DIR)
    labels = "".join(str(int(c)) for c in y)
    base = TrialConfig(epochs=a.epochs, channels=(16, 32, 64), augment="flip", precision="fp32",
                       curve_images=500)
    runs = {f"seed {s}": (base, s) for s in (0, 1, 2)}
    runs["wider, seed 3"] = (dataclasses.replace(base, channels=(32, 64, 128)), 3)
    preds, nets = {}, {}
    for name, (cfg, seed) in runs.items():
        start = time.perf_counter()
        out = fit(cfg, split, seed, torch.device("cpu"), keep_model=True)
        nets[name] = out["net"]
        preds[name] = predictions(out["net"], x)
        acc = sum(p == t for p, t in zip(preds[name], labels)) / len(labels)
        print(f"{name}: test accuracy {acc:.4f} ({time.perf_counter() - start:.0f} s)", flush=True)
    # the copy: seed 0's model, one more epoch at a hundredth of the learning rate
    copy = nets["seed 0"]
    optimizer = torch.optim.SGD(copy.parameters(), lr=base.lr / 100)
    copy.train()
    order = torch.randperm(len(split.train_y), generator=torch.Generator().manual_seed(9))
    for i in range(0, len(order), 256):
        idx = order[i:i + 256]
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(copy(split.train_x[idx]), split.train_y[idx]).backward()
        optimizer.step()
    preds["seed 0, touched up"] = predictions(copy, x)
    print("pair | agreement | same mistakes")
    for u, v in itertools.combinations(preds, 2):
        agreement, same = prediction_likeness(preds[u], preds[v], labels)
        print(f"{u} / {v} | {100 * agreement:.2f} % | {100 * same:.1f} %")


if __name__ == "__main__":
    main()
