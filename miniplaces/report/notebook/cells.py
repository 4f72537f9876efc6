"""The notebook's own code: loading its inputs and drawing, around the project's analyses.

Every function here is copied into the notebook by ``source.Program`` (with the analyses it calls),
so it may use only the libraries a grader has (torch, torchvision, numpy, matplotlib, pillow) and
names the notebook defines; the imports from ``analyses`` below exist for linting and for the
tests that call these functions directly, and are not copied. Function names follow the problem
set's where it names one (``visualize_filters``, ``generate_featuremap_unit``).
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch
import torchvision
from PIL import Image

from analyses.cam import display_cam, raw_cams, reshape_hw_c
from analyses.feature_maps import chop, compute_feature_maps, fc_params, preprocess, top_k
from analyses.filters import filter_grid
from analyses.unit_ablation import ablate_top_units

PLACES_CLASSES = 365


def load_places_model(weights: str | None, arch: str = "resnet50", seed: int = 0) -> torch.nn.Module:
    """torchvision's ResNet with 365 outputs and the checkpoint's weights, read without running code
    (``weights_only=True``); with no weights, untrained and seeded exactly as the report's demo model."""
    if weights is None:
        torch.manual_seed(seed)
        return getattr(torchvision.models, arch)(num_classes=PLACES_CLASSES).eval()
    try:
        blob = torch.load(weights, map_location="cpu", weights_only=True)
    except UnicodeDecodeError:   # the official checkpoints were pickled by Python 2
        blob = torch.load(weights, map_location="cpu", weights_only=True, encoding="latin1")
    state = blob.get("state_dict", blob)
    model = getattr(torchvision.models, arch)(num_classes=PLACES_CLASSES)
    model.load_state_dict({k.removeprefix("module."): v for k, v in state.items()})
    return model.eval()


def load_categories(path: str | None) -> list[str]:
    """Class names from categories_places365.txt (``/a/airfield 0``); indices when there is no file."""
    if path is None:
        return [f"class {i}" for i in range(PLACES_CLASSES)]
    labels = {}
    with open(path) as handle:
        for line in handle:
            if line.strip():
                name, index = line.split()
                labels[int(index)] = name[3:] if name.startswith("/") and len(name) > 3 else name
    return [labels[i] for i in range(PLACES_CLASSES)]


def load_image(path: str) -> Image.Image:
    return Image.open(path).convert("RGB")


def visualize_filters(model: torch.nn.Module, layer: str, max_filters: int = 64) -> None:
    """Problem 1: the kernels of one convolution, each normalised by ``normalize_tensor``; a layer that
    sees many channels shows, for its strongest filters, the slices of its strongest input channels."""
    grid = filter_grid(model, layer, max_filters=max_filters)
    if grid.rgb is not None:
        tiles, cmap, limits = grid.rgb, None, {}
        title = f"{layer} {tuple(grid.shape)}: each filter as RGB, min-max per filter"
    else:
        tiles = grid.slices.reshape(-1, *grid.slices.shape[2:])
        cmap, limits = "RdBu_r", {"vmin": -1, "vmax": 1}
        title = (f"{layer} {tuple(grid.shape)}: rows = strongest filters, columns = their strongest "
                 "input channels (signed)")
    columns = 8
    rows = -(-len(tiles) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(columns * 0.9, rows * 0.9 + 0.4), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < len(tiles):
            ax.imshow(tiles[i], cmap=cmap, interpolation="nearest", **limits)
    fig.suptitle(title, fontsize=9)
    plt.show()


@torch.no_grad()
def generate_featuremap_unit(model: torch.nn.Module, image: Image.Image, unit: int,
                             size: int = 256) -> np.ndarray:
    """Problem 2a: one unit's activation map in the chopped ResNet's output (layer4, 8 x 8 at 256 px)."""
    model.eval()
    x = preprocess(image, size).to(next(model.parameters()).device)
    return chop(model)(x)[0, unit].float().cpu().numpy()


def overlay(image: Image.Image, heat: np.ndarray, size: int = 256) -> np.ndarray:
    """A map upsampled to the network's input and laid over the resized image, in [0, 1]."""
    picture = np.asarray(image.resize((size, size)), dtype=np.float64) / 255
    colour = plt.get_cmap("jet")(display_cam(heat, (size, size)))[..., :3]
    return 0.5 * picture + 0.5 * colour


def show_maps(image: Image.Image, maps: dict[str, np.ndarray], size: int = 256) -> None:
    """Each map over the image, titled by what it is."""
    fig, axes = plt.subplots(1, len(maps), figsize=(2.6 * len(maps), 2.9), squeeze=False)
    for ax, (title, heat) in zip(axes[0], maps.items()):
        ax.imshow(overlay(image, heat, size))
        ax.set_title(title, fontsize=8)
        ax.axis("off")
    plt.show()


def print_top5(title: str, probs: np.ndarray, labels: list[str]) -> None:
    print(title)
    for row in top_k(probs, labels, 5):
        print(f"  {row['prob']:7.2%}  {row['label']} ({row['index']})")


def ablate_and_compare(model: torch.nn.Module, image: Image.Image, labels: list[str], size: int = 256):
    """Problem 2c: zero the top-5 units by FC weight for the top-1 class; top-5 before and after."""
    maps = compute_feature_maps(model, image, size)
    weight, bias = fc_params(model)
    ablation = ablate_top_units(maps.pooled, weight, bias, n=5)
    print(f"top-1 class: {labels[ablation.cls]}; units with the largest FC weight for it: "
          f"{[int(u) for u in ablation.units]}")
    print_top5("top-5 before:", ablation.probs_before, labels)
    print_top5("top-5 with those 5 units zeroed:", ablation.probs_after, labels)
    print(f"{labels[ablation.cls]} falls to rank {ablation.rank_after}; "
          f"top-1 changed: {ablation.top1_changed}")
    show_maps(image, {f"unit {int(u)}": maps.maps[u] for u in ablation.units}, size)
    return maps, weight, bias


def show_cams(image: Image.Image, maps: torch.Tensor, weight: np.ndarray, classes: list[int],
              labels: list[str], probs: np.ndarray, size: int = 256) -> None:
    """Problem 3c: the class activation map of each class over the image."""
    features = maps[0].float().cpu().numpy()
    cams = raw_cams(features, weight, classes)
    show_maps(image, {f"{labels[c]} ({probs[c]:.1%})": cam for c, cam in zip(classes, cams)}, size)


def print_table(rows: list[dict], title: str) -> None:
    """Recorded rows as an aligned text table, one column per key."""
    def shown(value) -> str:
        return "" if value is None else f"{value:.4g}" if isinstance(value, float) else str(value)

    print(title)
    if not rows:
        return
    columns = list(rows[0])
    widths = {c: max(len(c), *(len(shown(r.get(c))) for r in rows)) for c in columns}
    print("  ".join(c.ljust(widths[c]) for c in columns))
    for row in rows:
        print("  ".join(shown(row.get(c)).ljust(widths[c]) for c in columns))


def plot_curves(curves: dict[str, tuple[list[int], list[float]]], title: str) -> None:
    """Accuracy by epoch, one line per label (each label says what it was measured on)."""
    fig, ax = plt.subplots(figsize=(6, 3.4))
    for label, (epochs, values) in curves.items():
        ax.plot(epochs, [100 * v for v in values], marker="o", label=label)
    ax.set_xlabel("epoch")
    ax.set_ylabel("accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title(title, fontsize=9)
    plt.show()


def plot_grid(rows: list[dict], baseline: float, title: str) -> None:
    """Problem 4d: validation accuracy of every variant against the baseline's, one bar each."""
    fig, ax = plt.subplots(figsize=(7, 0.28 * len(rows) + 1))
    names = [f"{r['axis']}: {r['variant']}" for r in rows]
    values = [100 * r["val_acc"] if r["val_acc"] is not None else 0.0 for r in rows]
    ax.barh(names, values, color=["tab:green" if v > 100 * baseline else "tab:grey" for v in values])
    ax.axvline(100 * baseline, color="black", linewidth=1, label="baseline")
    ax.set_xlim(max(0.0, min(values + [100 * baseline]) - 2), max(values + [100 * baseline]) + 1)
    ax.invert_yaxis()
    ax.tick_params(axis="y", labelsize=7)
    ax.set_xlabel("validation accuracy (%)")
    ax.legend(fontsize=7)
    ax.set_title(title, fontsize=9)
    plt.show()


def hw_by_c(model: torch.nn.Module, image: Image.Image, size: int = 256):
    """Problems 3a and 3b on one image: the chopped output, its (hw x c) view, the FC at each position."""
    x = preprocess(image, size).to(next(model.parameters()).device)
    with torch.no_grad():
        maps = chop(model)(x)
    return maps, reshape_hw_c(maps)


def top1_cam(model: torch.nn.Module, image: Image.Image, labels: list[str], size: int = 256) -> dict:
    """Problem 3d: the top-1 class and its CAM on one scene."""
    maps = compute_feature_maps(model, image, size)
    weight, _ = fc_params(model)
    cls = int(np.argmax(maps.logits))
    return {"label": labels[cls], "prob": float(maps.probs[cls]),
            "map": raw_cams(maps.maps, weight, [cls])[0]}
