#!/usr/bin/env python3
"""Time the project's FashionMNIST trainer against a notebook-style loop on this machine.

Both train the same small CNN (the baseline of grids/standard.toml) on the same 50 000 images and
validate after every epoch on the same fixed 10 000-image validation split. The notebook loop is
what the problem set's notebook does: a torchvision dataset with ToTensor per sample, a DataLoader
with batch size 64, Adam at 1e-3, no schedule, the default (NCHW) memory layout. The project loop:
in-memory tensors, batched augmentation, channels-last, AdamW with a one-cycle schedule, label
smoothing, batch size 256. Also timed: one pass of the notebook's DataLoader without the network,
which bounds what any input pipeline can save per epoch.

Prints, per repeat and as medians: seconds (training plus validation, wall clock) until the
validation accuracy first reaches --target, and the accuracy after --epochs epochs, for both, and
the ratio. A benchmark, not a test (about 4 minutes per repeat at 4 epochs):

    .venv/bin/python benchmarks/bench_fashion_trainer.py --epochs 4 --repeats 3
    .venv/bin/python benchmarks/bench_fashion_trainer.py --skip-notebook --set channels_last=false
"""
from __future__ import annotations

import argparse
import gzip
import statistics
import sys
import tempfile
import tomllib
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from analyses.fashion_mnist import data as fdata  # noqa: E402
from analyses.fashion_mnist.grid import check_overrides  # noqa: E402
from miniplaces.sections.fashion_mnist import load_grid  # noqa: E402
from analyses.fashion_mnist.model import build_model  # noqa: E402
from analyses.fashion_mnist.train import fit  # noqa: E402
from miniplaces.trial_runner import cores  # noqa: E402

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
    parts = fdata.split(fdata.FashionData(index, torch.zeros(n), index[:0], index[:0, 0, 0, 0], "", ""), val_size)
    return parts.train_x.view(-1).long(), parts.val_x.view(-1).long()


def notebook_loaders(root: Path):
    """The notebook's training and validation DataLoaders: ToTensor per sample, batch size 64."""
    from torch.utils.data import DataLoader, Subset
    from torchvision import datasets, transforms

    full = datasets.FashionMNIST(str(root), train=True, download=False, transform=transforms.ToTensor())
    train_idx, val_idx = split_indices(len(full), 10_000)
    return (DataLoader(Subset(full, train_idx.tolist()), batch_size=64, shuffle=True),
            DataLoader(Subset(full, val_idx.tolist()), batch_size=64))


def notebook_loop(root: Path, model_cfg, epochs: int, seed: int) -> list[tuple[float, float]]:
    """[(seconds since start, validation accuracy)] per epoch, the way the notebook trains."""
    torch.manual_seed(seed)
    train_loader, val_loader = notebook_loaders(root)
    net = build_model(model_cfg)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    criterion = nn.CrossEntropyLoss()
    out, start = [], time.perf_counter()
    for _ in range(epochs):
        net.train()
        for x, y in train_loader:
            optimizer.zero_grad()
            loss = criterion(net(x), y)
            loss.backward()
            optimizer.step()
        net.eval()
        correct = total = 0
        with torch.no_grad():
            for x, y in val_loader:
                correct += int((net(x).argmax(1) == y).sum())
                total += len(y)
        out.append((time.perf_counter() - start, correct / total))
        print(f"  notebook epoch {len(out)}: {out[-1][0]:.1f}s val {100 * out[-1][1]:.2f} %", flush=True)
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
    split = fdata.split(data, 10_000)
    out, start = [], time.perf_counter()

    def on_epoch(row: dict) -> None:
        out.append((time.perf_counter() - start, row["val_acc"]))
        print(f"  project epoch {row['epoch']}: {out[-1][0]:.1f}s val {100 * row['val_acc']:.2f} %", flush=True)

    fit(cfg, split, seed, torch.device("cpu"), on_epoch)
    return out


def seconds_to(curve: list[tuple[float, float]], target: float) -> float | None:
    return next((t for t, acc in curve if acc >= target), None)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--epochs", type=int, default=4, help="epochs per loop (N)")
    p.add_argument("--target", type=float, default=0.90, help="validation accuracy to reach")
    p.add_argument("--repeats", type=int, default=1, help="runs of each loop; medians are printed")
    p.add_argument("--grid", type=Path, default=ROOT / "grids" / "standard.toml", help="grid whose [base] is used")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                   help="override the project's config, TOML values: --set batch_size=128 augment='\"flip\"'")
    p.add_argument("--skip-notebook", action="store_true", help="time only the project's trainer")
    p.add_argument("--data-dir", type=Path)
    a = p.parse_args()
    torch.set_num_threads(cores())
    folder = fdata.locate(a.data_dir, None, offline=True)
    data = fdata.load(folder)
    overrides = {}
    for item in a.set:
        key, _, value = item.partition("=")
        overrides.update(tomllib.loads(f"{key} = {value}"))
    cfg = load_grid(a.grid).base.updated({**check_overrides(overrides, "--set"), "epochs": a.epochs})
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        root = torchvision_root(folder, Path(scratch))
        for r in range(a.repeats):
            print(f"repeat {r + 1}/{a.repeats} ({torch.get_num_threads()} threads)", flush=True)
            project = project_loop(data, cfg, seed=r)
            notebook = [(float("nan"), float("nan"))] if a.skip_notebook else \
                notebook_loop(root, cfg.model_config(), a.epochs, seed=r)
            loading_s = float("nan") if a.skip_notebook else notebook_loading_s(root)
            rows.append({"project_s": seconds_to(project, a.target), "notebook_s": seconds_to(notebook, a.target),
                         "notebook_loading_s": loading_s,
                         "project_total_s": project[-1][0], "notebook_total_s": notebook[-1][0],
                         "project_acc": project[-1][1], "notebook_acc": notebook[-1][1],
                         "project_epoch_s": project[-1][0] / a.epochs, "notebook_epoch_s": notebook[-1][0] / a.epochs})
            print(f"  {rows[-1]}", flush=True)

    def median(key: str) -> float | None:
        values = [row[key] for row in rows if row[key] is not None]
        return statistics.median(values) if len(values) == len(rows) else None

    def to_target(who: str) -> tuple[float, bool]:
        """Median seconds to the target; a run that never reached it counts with its whole time, as a
        lower bound (the flag says whether any run did that)."""
        values = [row[f"{who}_s"] if row[f"{who}_s"] is not None else row[f"{who}_total_s"] for row in rows]
        return statistics.median(values), any(row[f"{who}_s"] is None for row in rows)

    pct = f"{100 * a.target:.0f} %"
    print(f"\nmedians over {a.repeats} repeat(s), model {cfg.model_config().channels}, {a.epochs} epochs, "
          f"project config {cfg.to_dict()}:")
    for who in ("project", "notebook"):
        s, bound = to_target(who)
        missed = sum(row[f"{who}_s"] is None for row in rows)
        reached = f"> {s:.1f} s (not reached within {a.epochs} epochs in {missed} of {len(rows)} runs)" if bound \
            else f"{s:7.1f} s"
        print(f"  {who:<8}: {reached} to {pct} validation accuracy; "
              f"{100 * median(f'{who}_acc'):.2f} % after {a.epochs} epochs; {median(f'{who}_epoch_s'):.1f} s/epoch")
    print(f"  notebook data loading alone (ToTensor per sample, batch 64): {median('notebook_loading_s'):.1f} s/epoch")
    (project_s, project_bound), (notebook_s, notebook_bound) = to_target("project"), to_target("notebook")
    if not project_bound and not a.skip_notebook:
        print(f"  ratio   : the project reaches {pct} {'at least ' if notebook_bound else ''}"
              f"{notebook_s / project_s:.1f}x sooner")
    return 0


if __name__ == "__main__":
    sys.exit(main())
