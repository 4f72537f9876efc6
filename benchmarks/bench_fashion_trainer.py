#!/usr/bin/env python3
"""Time the project's FashionMNIST trainer against a notebook-style loop on this machine.

Both train on the same 50 000 images and validate after every epoch on all of the same fixed
10 000-image validation split. The notebook loop is what the problem set's notebook does: a
torchvision dataset with ToTensor per sample, a DataLoader with batch size 64, Adam at 1e-3, no
schedule, the default (NCHW) memory layout, and the small two-conv CNN (3x3 convolutions of 32 and 64
channels, each with BatchNorm, ReLU and 2x2 pooling, then one linear layer), scored without test-time
flips because it trains without them. The project loop is ``train.fit`` (in-memory tensors, batched
augmentation, channels-last, AdamW with a one-cycle schedule, label smoothing) with the grid's [base]
settings, ``--net``'s network and each ``--project``'s overrides. ``--net notebook`` (default) starts
from the notebook's two-conv CNN, so the first of DEFAULT_PROJECTS differs from the notebook loop only
in the pipeline and the schedule, and the other two also narrow the network; ``--net baseline``
starts from the grid's own network. Also timed: one pass of the notebook's DataLoader alone.

The measure (issue 17): training seconds, summed over the epochs up to the first whose validation
accuracy reaches --target (validation time left out on both sides), medians over repeats, and their
ratio. A loop that never reaches the target counts with all its training seconds, as a lower bound.
A benchmark, not a test:

    .venv/bin/python benchmarks/bench_fashion_trainer.py      # 3 repeats: DEFAULT_PROJECTS and the notebook
    .venv/bin/python benchmarks/bench_fashion_trainer.py --project "" --epochs 3   # [base]'s recipe instead
    .venv/bin/python benchmarks/bench_fashion_trainer.py --skip-notebook --net baseline --epochs 4
"""
from __future__ import annotations

import argparse
import gzip
import statistics
import sys
import tempfile
import time
import tomllib
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from analyses.fashion_mnist import data as fdata  # noqa: E402
from analyses.fashion_mnist.grid import check_overrides  # noqa: E402
from analyses.fashion_mnist.model import ModelConfig, build_model  # noqa: E402
from analyses.fashion_mnist.train import fit  # noqa: E402
from miniplaces.report.sections.fashion_mnist import load_grid  # noqa: E402
from miniplaces.report.trial_runner import cores  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def torchvision_root(folder: Path, scratch: Path) -> Path:
    """torchvision's FashionMNIST wants the decompressed files in ROOT/FashionMNIST/raw."""
    raw = scratch / "FashionMNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for stem in fdata.FILES.values():
        source = folder / (stem + ".gz")
        (raw / stem).write_bytes(gzip.decompress(source.read_bytes()) if source.exists()
                                 else (folder / stem).read_bytes())
    return scratch


def split_indices(n: int, val_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The image indices of data.split's training and validation parts: split a tensor of indices."""
    index = torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1)
    parts = fdata.split(fdata.FashionData(index, torch.zeros(n), index[:0], index[:0, 0, 0, 0], "", ""),
                        val_size)
    return parts.train_x.view(-1).long(), parts.val_x.view(-1).long()


def notebook_loaders(root: Path):
    """The notebook's training and validation DataLoaders: ToTensor per sample, batch size 64."""
    from torch.utils.data import DataLoader, Subset
    from torchvision import datasets, transforms

    full = datasets.FashionMNIST(str(root), train=True, download=False, transform=transforms.ToTensor())
    train_idx, val_idx = split_indices(len(full), 10_000)
    return (DataLoader(Subset(full, train_idx.tolist()), batch_size=64, shuffle=True),
            DataLoader(Subset(full, val_idx.tolist()), batch_size=64))


NOTEBOOK_NET = {"channels": (32, 64), "depth": 1, "hidden": 0, "dropout": 0.0, "init": "default"}
# The project configurations timed by default (over [base] and the notebook's network): the same network,
# then two narrower ones, each trained by a one-cycle schedule over a single epoch without augmentation.
FAST = "augment='none' flip_tta=false epochs=1"
DEFAULT_PROJECTS = [f"{FAST} batch_size=128", f"{FAST} batch_size=64 channels=[24,48]",
                    f"{FAST} batch_size=64 channels=[16,32]"]


def notebook_loop(root: Path, epochs: int, seed: int) -> list[tuple[float, float]]:
    """[(training seconds so far, validation accuracy)] per epoch, the way the notebook trains."""
    torch.manual_seed(seed)
    train_loader, val_loader = notebook_loaders(root)
    net = build_model(ModelConfig(**NOTEBOOK_NET, flip_tta=False))
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    criterion = nn.CrossEntropyLoss()
    out, train_s = [], 0.0
    for _ in range(epochs):
        start = time.perf_counter()
        net.train()
        for x, y in train_loader:
            optimizer.zero_grad()
            loss = criterion(net(x), y)
            loss.backward()
            optimizer.step()
        train_s += time.perf_counter() - start
        net.eval()
        correct = total = 0
        with torch.no_grad():
            for x, y in val_loader:
                correct += int((net(x).argmax(1) == y).sum())
                total += len(y)
        out.append((train_s, correct / total))
        print(f"  notebook epoch {len(out)}: {train_s:.1f} s of training, val {100 * out[-1][1]:.2f} %",
              flush=True)
    return out


def notebook_loading_s(root: Path) -> float:
    """Seconds for one pass over the notebook's training DataLoader alone, without the network: the
    most any input pipeline could save per epoch; the rest of an epoch is the network's compute."""
    train_loader, _ = notebook_loaders(root)
    start = time.perf_counter()
    for _ in train_loader:
        pass
    return time.perf_counter() - start


def project_loop(data: fdata.FashionData, cfg, seed: int) -> list[tuple[float, float]]:
    """[(training seconds so far, validation accuracy on all 10 000 images)] per epoch of ``train.fit``."""
    split = fdata.split(data, 10_000)
    out = []

    def on_epoch(row: dict) -> None:
        out.append(((out[-1][0] if out else 0.0) + row["train_s"], row["val_acc"]))
        print(f"  project epoch {row['epoch']}: {out[-1][0]:.1f} s of training, val "
              f"{100 * row['val_acc']:.2f} %", flush=True)

    fit(cfg, split, seed, torch.device("cpu"), on_epoch)
    return out


def project_config(base, spec: str, net: str, epochs: int):
    """[base] with the notebook's network (``net`` "notebook"), then ``spec``'s TOML KEY=VALUE pairs; every
    epoch scored on all 10 000 images, so the target is crossed on the same images as the notebook's."""
    overrides = {"epochs": epochs, **(NOTEBOOK_NET if net == "notebook" else {})}
    for item in spec.split():
        key, _, value = item.partition("=")
        overrides.update(tomllib.loads(f"{key} = {value}"))
    overrides = {k: list(v) if isinstance(v, tuple) else v for k, v in overrides.items()}
    return base.updated({**check_overrides(overrides, "--project"), "curve_images": 0})


def seconds_to(curve: list[tuple[float, float]], target: float) -> float | None:
    return next((t for t, acc in curve if acc >= target), None)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--epochs", type=int, default=3,
                   help="the project's epochs (its one-cycle schedule's length)")
    p.add_argument("--notebook-epochs", type=int, default=3, help="the notebook loop's epochs")
    p.add_argument("--net", choices=("notebook", "baseline"), default="notebook",
                   help="the project's network: the notebook's two-conv CNN, or the grid's baseline")
    p.add_argument("--target", type=float, default=0.90, help="validation accuracy to reach")
    p.add_argument("--repeats", type=int, default=3, help="runs of each loop; medians are printed")
    p.add_argument("--threads", type=int, default=cores(), help="torch threads (default: every core)")
    p.add_argument("--grid", type=Path, default=ROOT / "grids" / "standard.toml",
                   help="grid whose [base] is used")
    p.add_argument("--project", action="append", default=None, metavar="'KEY=VALUE ...'",
                   help="a project configuration to time: TOML values over the grid's [base] (and --net), "
                        "e.g. --project \"augment='none' flip_tta=false epochs=1\"; repeat the option for "
                        "several, all timed in the same repeats (default: the three of DEFAULT_PROJECTS; "
                        "--project \"\" is [base] as it is)")
    p.add_argument("--skip-notebook", action="store_true", help="time only the project's trainer")
    p.add_argument("--data-dir", type=Path)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    folder = fdata.locate(a.data_dir, None, offline=True)
    data = fdata.load(folder)
    base = load_grid(a.grid).base
    configs = [project_config(base, spec, a.net, a.epochs) for spec in a.project or DEFAULT_PROJECTS]
    rows, loading = [], []
    with tempfile.TemporaryDirectory() as scratch:
        root = torchvision_root(folder, Path(scratch))
        for r in range(a.repeats):
            print(f"repeat {r + 1}/{a.repeats} ({torch.get_num_threads()} threads)", flush=True)
            curves = {f"project {i + 1}": project_loop(data, cfg, seed=r) for i, cfg in enumerate(configs)}
            if not a.skip_notebook:
                curves["notebook"] = notebook_loop(root, a.notebook_epochs, seed=r)
                loading.append(notebook_loading_s(root))
            rows.append(curves)

    def summary(who: str) -> tuple[float, int, float, float]:
        """Median over repeats of: training seconds to the target (all of them where it was missed),
        the runs that missed it, the last epoch's accuracy and the training seconds per epoch."""
        curves = [row[who] for row in rows]
        to_target = [seconds_to(c, a.target) for c in curves]
        seconds = [t if t is not None else c[-1][0] for t, c in zip(to_target, curves)]
        return (statistics.median(seconds), sum(t is None for t in to_target),
                statistics.median(c[-1][1] for c in curves),
                statistics.median(c[-1][0] / len(c) for c in curves))

    pct = f"{100 * a.target:.0f} %"
    print(f"\nmedians over {a.repeats} repeat(s), {a.threads} thread(s):")
    for i, cfg in enumerate(configs):
        print(f"  project {i + 1}: {cfg.to_dict()}")
    results = {}
    for who in [f"project {i + 1}" for i in range(len(configs))] + ([] if a.skip_notebook else ["notebook"]):
        seconds, missed, acc, epoch_s = results[who] = summary(who)
        epochs = len(rows[0][who])
        reached = (f"> {seconds:.1f} s (not reached within {epochs} epochs in {missed} of {len(rows)} runs)"
                   if missed else f"{seconds:7.1f} s")
        print(f"  {who:<9}: {reached} of training to {pct} validation accuracy; {100 * acc:.2f} % after "
              f"{epochs} epochs; {epoch_s:.1f} s of training per epoch")
    if "notebook" in results:
        print("  notebook data loading alone (ToTensor per sample, batch 64): "
              f"{statistics.median(loading):.1f} s/epoch")
        notebook_s, notebook_missed, *_ = results["notebook"]
        for who, (project_s, project_missed, *_) in results.items():
            if who != "notebook" and not project_missed:
                print(f"  ratio {who}: reaches {pct} {'at least ' if notebook_missed else ''}"
                      f"{notebook_s / project_s:.1f}x sooner than the notebook loop (training seconds)")
    return 0

if __name__ == "__main__":
    sys.exit(main())
