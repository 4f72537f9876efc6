"""Problem 3: class activation maps (Zhou et al., CVPR 2016) from the cached layer4 maps.

The problem set's recipe: reshape the (1, c, h, w) output of the chopped ResNet to (hw, c) and feed
it to the FC layer, giving (hw, 365): column j reshaped to (h, w) is W_j . f(x, y) + b_j. CAM is
the standard M_j(x, y) = sum_u W[j, u] f_u(x, y): negative weights are KEPT (the official
Places365 script zeroes them; the problem set does not), and the bias is left out of the stored raw
map. The bias is one constant per class, so after min-max normalisation the problem set's map and
the standard CAM are identical. Displayed maps are upsampled bilinearly to the image and min-max
normalised to [0, 1]; a constant map becomes all zeros instead of dividing by zero.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from .concept_units import upsample


def reshape_hw_c(maps: torch.Tensor) -> torch.Tensor:
    """(1, c, h, w) -> (hw, c): one row per spatial position (row-major over h, then w)."""
    b, c, h, w = maps.shape
    if b != 1:
        raise ValueError(f"expected a batch of one, got {tuple(maps.shape)}")
    return maps.reshape(c, h * w).T


@torch.no_grad()
def fc_per_position(maps: torch.Tensor, fc: nn.Linear) -> torch.Tensor:
    """Problem 3b: the FC layer applied at every position, (hw, num_classes); includes fc's bias."""
    return fc(reshape_hw_c(maps))


def raw_cams(maps: np.ndarray, weight: np.ndarray, classes: Sequence[int]) -> np.ndarray:
    """(k, h, w) standard CAMs sum_u W[j, u] maps[u] for each class j in ``classes`` (no bias)."""
    c, h, w = maps.shape
    selected = weight[np.asarray(classes, dtype=np.int64)].astype(np.float64)   # (k, c)
    return (selected @ maps.reshape(c, h * w).astype(np.float64)).reshape(len(classes), h, w)


def normalise(cam: np.ndarray) -> np.ndarray:
    """Min-max to [0, 1]; a constant map (max - min below float resolution) becomes zeros."""
    cam = np.asarray(cam, dtype=np.float64)
    lo, hi = float(cam.min()), float(cam.max())
    span = hi - lo
    if not np.isfinite(span) or span <= 1e-12 * max(1.0, abs(hi), abs(lo)):
        return np.zeros_like(cam)
    return (cam - lo) / span


def display_cam(raw: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Raw (h, w) CAM -> bilinear upsampling to ``size`` = (H, W) -> min-max normalised [0, 1]."""
    return normalise(upsample(raw.astype(np.float32), size))


def mass_in_mask(cam: np.ndarray, mask: np.ndarray) -> float:
    """Fraction of a normalised CAM's mass inside ``mask`` (same resolution); 0 for an all-zero CAM."""
    total = float(cam.sum())
    return float(cam[mask].sum()) / total if total > 0 else 0.0


def concentration(cam: np.ndarray, area: float = 0.2) -> float:
    """Fraction of a normalised CAM's mass in its brightest ``area`` of pixels (a flat map gives ``area``)."""
    flat = np.sort(np.asarray(cam, dtype=np.float64).ravel())[::-1]
    total = flat.sum()
    if total <= 0:
        return 0.0
    return float(flat[: max(1, int(round(area * flat.size)))].sum() / total)


def mean_pairwise_correlation(cams: np.ndarray) -> float | None:
    """Mean Pearson correlation between the raw maps of different classes (1.0: all classes look alike)."""
    flat = np.asarray(cams, dtype=np.float64).reshape(len(cams), -1)
    flat = flat - flat.mean(axis=1, keepdims=True)
    norms = np.linalg.norm(flat, axis=1)
    keep = norms > 0
    if keep.sum() < 2:
        return None
    unit = flat[keep] / norms[keep, None]
    corr = unit @ unit.T
    upper = corr[np.triu_indices(len(unit), k=1)]
    return float(upper.mean())


def top_contributors(maps: np.ndarray, weight: np.ndarray, cls: int,
                     n: int = 5) -> list[tuple[int, float, float]]:
    """Units contributing most to class ``cls``'s logit: (unit, W x mean activation, share of the sum of
    positives)."""
    contribution = weight[cls].astype(np.float64) * maps.mean(axis=(1, 2), dtype=np.float64)
    order = np.lexsort((np.arange(len(contribution)), -contribution))[:n]
    positive = contribution[contribution > 0].sum()
    return [(int(u), float(contribution[u]), float(contribution[u] / positive) if positive > 0 else 0.0)
            for u in order]
