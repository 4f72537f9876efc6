"""Problem 2b: which units of the last conv layer detect a concept (Network Dissection style).

Following Bau et al. (Network Dissection, CVPR 2017; NetDissect-Lite):

* each unit k gets one threshold T_k, the top 0.5 % quantile (0.995 quantile) of its activations
  over every position of every image of the set (the raw h x w maps);
* a unit's map is upsampled bilinearly to the mask's resolution and thresholded at T_k;
* IoU_k,c = |act_k > T_k  AND  mask_c| / |act_k > T_k  OR  mask_c|, the counts summed over the images
  annotated with c;
* a unit is called a detector of c only when IoU >= 0.04.

With a handful of images an 8 x 8 map gives few positions (5 images x 64 = 320 per unit), so the
quantile sits between a unit's two or three largest activations and the thresholded region is the
neighbourhood of its peak. The numbers are honest for these images but noisier than a dissection
over the Broden data set; the report says so.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

QUANTILE = 0.995
DETECTOR_IOU = 0.04
UNIT_CHUNK = 256   # units upsampled at once: bounds memory to chunk x mask pixels floats


def unit_thresholds(maps: Sequence[np.ndarray], quantile: float = QUANTILE) -> np.ndarray:
    """Per-unit threshold T_k: the ``quantile`` of unit k's activations over all positions of all maps."""
    if not maps:
        raise ValueError("no feature maps")
    c = maps[0].shape[0]
    values = np.concatenate([np.asarray(m, dtype=np.float32).reshape(c, -1) for m in maps], axis=1)
    return np.quantile(values, quantile, axis=1).astype(np.float32)


def upsample(maps: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear upsampling of (c, h, w) or (h, w) maps to ``size`` = (H, W) (align_corners=False)."""
    x = torch.from_numpy(np.ascontiguousarray(maps, dtype=np.float32))
    squeeze = x.dim() == 2
    x = x[None, None] if squeeze else x[None]
    y = F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)[0]
    return (y[0] if squeeze else y).numpy()


def iou_counts(maps: np.ndarray, thresholds: np.ndarray, masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(intersection, union) pixel counts, each (n_masks, c), of one image's thresholded, upsampled maps.

    ``masks`` is (n_masks, H, W) bool (or one (H, W) mask). Each chunk of units is upsampled and
    thresholded once for all masks; intersections are one matrix product.
    """
    masks = np.asarray(masks, dtype=bool)
    if masks.ndim == 2:
        masks = masks[None]
    flat = torch.from_numpy(masks.reshape(len(masks), -1).astype(np.float32))       # (m, HW)
    mask_area = flat.sum(dim=1, keepdim=True).numpy().astype(np.int64)              # (m, 1)
    inter = np.zeros((len(masks), maps.shape[0]), dtype=np.int64)
    active_area = np.zeros(maps.shape[0], dtype=np.int64)
    for start in range(0, maps.shape[0], UNIT_CHUNK):
        stop = start + UNIT_CHUNK
        up = torch.from_numpy(upsample(maps[start:stop], masks.shape[1:]))
        active = (up > torch.from_numpy(thresholds[start:stop])[:, None, None]).reshape(up.shape[0], -1).float()
        inter[:, start:stop] = (flat @ active.T).round().numpy().astype(np.int64)
        active_area[start:stop] = active.sum(dim=1).numpy().astype(np.int64)
    return inter, mask_area + active_area[None, :] - inter


def safe_iou(inter: np.ndarray, union: np.ndarray) -> np.ndarray:
    return np.where(union > 0, inter / np.maximum(union, 1), 0.0)


@dataclass
class UnitScore:
    unit: int
    iou: float


@dataclass
class ConceptRanking:
    """All units ranked by IoU with one concept (best first), over ``images`` annotated images."""

    concept: str
    order: np.ndarray          # unit indices, best first
    iou: np.ndarray            # IoU of every unit (indexed by unit)
    images: int
    mask_fraction: float = 0.0 # mean fraction of the image the concept covers
    cutoff: float = DETECTOR_IOU

    def top(self, n: int) -> list[UnitScore]:
        return [UnitScore(int(u), float(self.iou[u])) for u in self.order[:n]]

    def detectors(self) -> list[UnitScore]:
        return [UnitScore(int(u), float(self.iou[u])) for u in self.order if self.iou[u] >= self.cutoff]

    def rank_of(self, unit: int) -> int:
        """1-based rank of ``unit``."""
        return int(np.nonzero(self.order == unit)[0][0]) + 1


def _ranking(concept: str, inter: np.ndarray, union: np.ndarray, images: int, coverage: float,
             cutoff: float) -> ConceptRanking:
    """Rank by IoU, best first; ties (e.g. units that never fire) by unit index, so the order is deterministic."""
    iou = safe_iou(inter, union)
    order = np.lexsort((np.arange(len(iou)), -iou))
    return ConceptRanking(concept, order, iou, images, coverage, cutoff)


def most_active(maps: np.ndarray, n: int) -> list[tuple[int, float]]:
    """The ``n`` units with the largest mean activation (for images without concept masks)."""
    mean = np.asarray(maps, dtype=np.float64).mean(axis=(1, 2))
    order = np.lexsort((np.arange(len(mean)), -mean))[:n]
    return [(int(u), float(mean[u])) for u in order]


@dataclass
class Dissection:
    """Concept rankings for one image and for the whole annotated set, sharing the thresholds."""

    thresholds: np.ndarray
    per_image: dict[str, dict[str, ConceptRanking]] = field(default_factory=dict)   # image -> concept -> ranking
    overall: dict[str, ConceptRanking] = field(default_factory=dict)               # concept -> ranking


def dissect(maps: dict[str, np.ndarray], masks: dict[str, dict[str, np.ndarray]],
            quantile: float = QUANTILE, cutoff: float = DETECTOR_IOU) -> Dissection:
    """Network Dissection over a small image set.

    ``maps``: image -> (c, h, w); ``masks``: image -> concept -> bool mask. Thresholds use every image
    in ``maps`` (annotated or not); IoU per image ranks the units for the problem set's "in the image"
    question, and the IoU summed over all annotated images is the dissection proper.
    """
    thresholds = unit_thresholds(list(maps.values()), quantile)
    result = Dissection(thresholds)
    totals: dict[str, tuple[np.ndarray, np.ndarray, int, float]] = {}
    for image, concept_masks in masks.items():
        if not concept_masks:
            continue
        names = list(concept_masks)
        inter, union = iou_counts(maps[image], thresholds, np.stack([concept_masks[n] for n in names]))
        for row, concept in enumerate(names):
            coverage = float(np.mean(concept_masks[concept]))
            result.per_image.setdefault(image, {})[concept] = _ranking(concept, inter[row], union[row], 1, coverage,
                                                                       cutoff)
            i0, u0, n0, c0 = totals.get(concept, (0, 0, 0, 0.0))
            totals[concept] = (i0 + inter[row], u0 + union[row], n0 + 1, c0 + coverage)
    for concept, (inter, union, images, coverage) in sorted(totals.items()):
        result.overall[concept] = _ranking(concept, inter, union, images, coverage / images, cutoff)
    return result
