"""Problem 2b: which units of the last conv layer detect a concept (Network Dissection style).

Following Bau et al. (Network Dissection, CVPR 2017; NetDissect-Lite):

* each unit k gets one threshold T_k, the top 0.5 % quantile (0.995 quantile) of its activations
  over every position of every image of the set (the raw h x w maps);
* a unit's map is upsampled bilinearly to the mask's resolution and thresholded at T_k;
* IoU_k,c = |act_k > T_k  AND  mask_c| / |act_k > T_k  OR  mask_c|, the counts summed over the images
  annotated with c;
* Network Dissection calls a unit a detector of c when IoU >= 0.04 (``netdissect`` here).

That cut-off is meant for thousands of images. With a handful of images an 8 x 8 map gives few
positions (5 images x 64 = 320 per unit), so the quantile sits between a unit's two or three largest
activations and the thresholded region is the neighbourhood of its peak: its size, not its placement,
then bounds the IoU, and a large concept (sky over 70 % of an image) may be unable to reach 0.04. So:

* ``cap``: the largest IoU any unit's region could reach with its size fixed by its threshold,
  sum_i min(|active_i|, |mask_i|) / sum_i max(|active_i|, |mask_i|) over the images i, best unit;
* ``null_level``: a unit is a detector (calibrated) when its IoU exceeds the 0.95 quantile, over the
  masks moved by circular shifts (multiples of 1/8 of the image, the same shift for every image; shifts
  that leave the masks mostly in place, IoU with the original >= 0.5, are not used), of the largest IoU
  of ANY unit with the moved masks: picking the best of c units is part of the null;
* ``corrected_detectors``: the same null as a p-value per unit (the share of shifts whose best unit does
  at least as well), Bonferroni-corrected for the number of concepts tested, so that "a detector was
  found" is a claim at 5 % for the whole table, not per concept. With d shifts no p-value is below
  1 / (d + 1): with many concepts and few draws the test cannot find any detector, and says so.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields

import numpy as np
import torch
import torch.nn.functional as F

QUANTILE = 0.995
DETECTOR_IOU = 0.04   # Network Dissection's cut-off, reported for comparison
NULL_LEVEL = 0.95     # quantile of the null's best-unit IoU a detector must exceed
SHIFT_STEPS = 8       # null masks are shifted by multiples of 1/SHIFT_STEPS of the image
MAX_SELF_IOU = 0.5    # a shift whose masks keep IoU >= this with the originals is not a null draw
NULL_METHOD = (f"every circular shift of the concept's masks by multiples of 1/{SHIFT_STEPS} of the image "
               "(the same shift on every image), except shifts whose moved masks keep an IoU of "
               f"{MAX_SELF_IOU} or more with the originals; per shift, the largest IoU of any unit; the "
               f"level is the {NULL_LEVEL} quantile of those maxima over the shifts")
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
        active = (up > torch.from_numpy(thresholds[start:stop])[:, None, None]).reshape(
            up.shape[0], -1).float()
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
    """All units ranked by IoU with one concept (best first), over ``images`` annotated images.

    ``null_level`` is None when no shift moves the masks enough to be a null draw (a mask covering
    nearly the whole image); no unit is then called a detector by the calibrated rule.
    """

    concept: str
    order: np.ndarray          # unit indices, best first
    iou: np.ndarray            # IoU of every unit (indexed by unit)
    images: int
    mask_fraction: float = 0.0 # mean fraction of the image the concept covers
    cap: float = 1.0           # largest IoU any unit's thresholded region could reach (module doc)
    null_level: float | None = None
    null_draws: int = 0
    cutoff: float = DETECTOR_IOU
    null_maxima: np.ndarray | None = None   # per usable shift, the best IoU of any unit with the moved masks

    def top(self, n: int) -> list[UnitScore]:
        return [UnitScore(int(u), float(self.iou[u])) for u in self.order[:n]]

    def above_null(self, unit: int) -> bool:
        return self.null_level is not None and bool(self.iou[unit] > self.null_level)

    def p_value(self, unit: int) -> float | None:
        """How often a moved mask gives some unit an IoU at least this unit's: a p-value already corrected
        for picking the best of all units (the max-statistic null), None without null draws."""
        if self.null_maxima is None or not len(self.null_maxima):
            return None
        return float((1 + np.sum(self.null_maxima >= self.iou[unit])) / (1 + len(self.null_maxima)))

    @property
    def smallest_p(self) -> float | None:
        """The smallest p-value ``p_value`` can give with this many draws: 1 / (draws + 1)."""
        return 1 / (1 + self.null_draws) if self.null_draws else None

    def detectors(self) -> list[UnitScore]:
        """Calibrated detectors: IoU above the null level, best first."""
        return [UnitScore(int(u), float(self.iou[u])) for u in self.order if self.above_null(int(u))]

    def netdissect(self) -> list[UnitScore]:
        """Network Dissection's detectors: IoU >= 0.04, best first."""
        return [UnitScore(int(u), float(self.iou[u])) for u in self.order if self.iou[u] >= self.cutoff]

    def rank_of(self, unit: int) -> int:
        """1-based rank of ``unit``."""
        return int(np.nonzero(self.order == unit)[0][0]) + 1


@dataclass
class _Counts:
    """Pixel counts of one concept, summed over its images: the real masks and every shifted copy."""

    inter: np.ndarray          # (c,)
    union: np.ndarray          # (c,)
    best: np.ndarray           # (c,) sum_i min(|active_i|, |mask_i|)
    worst: np.ndarray          # (c,) sum_i max(|active_i|, |mask_i|)
    shift_inter: np.ndarray    # (shifts, c)
    shift_union: np.ndarray    # (shifts, c)
    self_inter: np.ndarray     # (shifts,) |shifted mask AND mask|
    self_union: np.ndarray     # (shifts,)
    images: int = 0
    coverage: float = 0.0

    def __add__(self, other: _Counts) -> _Counts:
        return _Counts(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))


def shifts(size: tuple[int, int], steps: int = SHIFT_STEPS) -> list[tuple[int, int]]:
    """Every non-zero circular shift (rows, cols) by multiples of 1/steps of an image of ``size``."""
    h, w = size
    return [(round(i * h / steps), round(j * w / steps)) for i in range(steps) for j in range(steps)
            if i or j]


def null_maxima(shift_inter: np.ndarray, shift_union: np.ndarray, self_inter: np.ndarray,
                self_union: np.ndarray) -> np.ndarray:
    """Per usable shift, the best unit's IoU with the moved masks (empty when no shift is usable)."""
    usable = safe_iou(self_inter, self_union) < MAX_SELF_IOU
    if not usable.any():
        return np.zeros(0)
    return safe_iou(shift_inter[usable], shift_union[usable]).max(axis=1)


def corrected_detectors(rankings: dict[str, ConceptRanking], alpha: float = 1 - NULL_LEVEL
                        ) -> dict[str, list[tuple[int, float]]]:
    """Per concept, the units whose p-value stays below ``alpha`` after Bonferroni over the concepts
    tested (each p-value already accounts for every unit): [(unit, corrected p)], best first."""
    tested = [r for r in rankings.values() if r.null_draws]
    found = {}
    for concept, r in rankings.items():
        units = []
        for u in r.order:
            p = r.p_value(int(u))
            if p is None or p * len(tested) >= alpha:
                break       # p grows down the IoU order
            units.append((int(u), min(1.0, p * len(tested))))
        found[concept] = units
    return found


def _ranking(concept: str, counts: _Counts, cutoff: float) -> ConceptRanking:
    """Rank by IoU, best first; ties (e.g. units that never fire) by unit index, so the order is
    deterministic."""
    iou = safe_iou(counts.inter, counts.union)
    order = np.lexsort((np.arange(len(iou)), -iou))
    maxima = null_maxima(counts.shift_inter, counts.shift_union, counts.self_inter, counts.self_union)
    level = float(np.quantile(maxima, NULL_LEVEL)) if len(maxima) else None
    cap = float(safe_iou(counts.best, counts.worst).max())
    return ConceptRanking(concept, order, iou, counts.images, counts.coverage / max(counts.images, 1), cap,
                          level, int(len(maxima)), cutoff, maxima)


def _concept_counts(maps: np.ndarray, thresholds: np.ndarray,
                    masks: dict[str, np.ndarray]) -> dict[str, _Counts]:
    """Counts of one image for each of its concepts, the real mask and all its shifts in one pass."""
    names = list(masks)
    size = next(iter(masks.values())).shape
    moves = shifts(size)
    stack = [masks[n] for n in names] + [np.roll(masks[n], move, axis=(0, 1)) for n in names
                                         for move in moves]
    inter, union = iou_counts(maps, thresholds, np.stack(stack))
    result = {}
    for row, name in enumerate(names):
        mask = masks[name]
        area = int(mask.sum())
        active = union[row] + inter[row] - area                                  # |active| of every unit
        rows = slice(len(names) + row * len(moves), len(names) + (row + 1) * len(moves))
        moved = np.stack([np.roll(mask, move, axis=(0, 1)) for move in moves])
        self_inter = (moved & mask).sum(axis=(1, 2))
        result[name] = _Counts(inter[row], union[row], np.minimum(active, area), np.maximum(active, area),
                               inter[rows], union[rows], self_inter, 2 * area - self_inter, 1,
                               float(mask.mean()))
    return result


def most_active(maps: np.ndarray, n: int) -> list[tuple[int, float]]:
    """The ``n`` units with the largest mean activation (for images without concept masks)."""
    mean = np.asarray(maps, dtype=np.float64).mean(axis=(1, 2))
    order = np.lexsort((np.arange(len(mean)), -mean))[:n]
    return [(int(u), float(mean[u])) for u in order]


def activity_rank(maps: np.ndarray, unit: int) -> int:
    """1-based rank of ``unit`` by mean activation over the map (ties by unit index)."""
    mean = np.asarray(maps, dtype=np.float64).mean(axis=(1, 2))
    order = np.lexsort((np.arange(len(mean)), -mean))
    return int(np.nonzero(order == unit)[0][0]) + 1


@dataclass
class Dissection:
    """Concept rankings for one image and for the whole annotated set, sharing the thresholds."""

    thresholds: np.ndarray
    per_image: dict[str, dict[str, ConceptRanking]] = field(default_factory=dict)   # image -> concept
                                                                                    # -> ranking
    overall: dict[str, ConceptRanking] = field(default_factory=dict)               # concept -> ranking


def dissect(maps: dict[str, np.ndarray], masks: dict[str, dict[str, np.ndarray]],
            quantile: float = QUANTILE, cutoff: float = DETECTOR_IOU) -> Dissection:
    """Network Dissection over a small image set, with the cap and the shift null of the module doc.

    ``maps``: image -> (c, h, w); ``masks``: image -> concept -> bool mask (one size for all). Thresholds
    use every image in ``maps`` (annotated or not); IoU per image ranks the units for the problem set's
    "in the image" question, and the IoU summed over all annotated images is the dissection proper.
    """
    thresholds = unit_thresholds(list(maps.values()), quantile)
    result = Dissection(thresholds)
    totals: dict[str, _Counts] = {}
    for image, concept_masks in masks.items():
        if not concept_masks:
            continue
        for concept, counts in _concept_counts(maps[image], thresholds, concept_masks).items():
            result.per_image.setdefault(image, {})[concept] = _ranking(concept, counts, cutoff)
            totals[concept] = totals[concept] + counts if concept in totals else counts
    for concept, counts in sorted(totals.items()):
        result.overall[concept] = _ranking(concept, counts, cutoff)
    return result
