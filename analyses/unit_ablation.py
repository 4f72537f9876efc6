"""Problems 2c and 2d: switch off units of the last conv layer and watch the prediction.

"Deactivating" unit u means setting its whole (h x w) activation map in layer4's output (after the
final ReLU, before global average pooling) to zero. Average pooling is linear, so this is exactly
the same as zeroing entry u of the pooled (c,) vector; the logits then are W @ pooled' + b. Every
ablation here therefore works on the cached pooled vector, and the k = 1..K sweep is a cumulative
sum of the removed units' contributions pooled[u] * W[:, u]: O(K x classes), not K network forwards.

The same linearity gives Problem 2d's answer exactly (``exact_minimum``): zeroing unit u lowers the
margin logit_c - logit_r of the top-1 class c over a rival r by (W[c, u] - W[r, u]) * pooled[u], so
the fewest removals that overtake c by r are the largest of those terms, and the minimum over r is the
fewest units of any subset. The two rankings of ``both_sweeps`` are upper bounds, kept as comparisons.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .feature_maps import softmax


def rank_by_weight(weight: np.ndarray, cls: int) -> np.ndarray:
    """All units, largest FC weight for class ``cls`` first (the problem set's ranking; ties by index)."""
    w = weight[cls]
    return np.lexsort((np.arange(len(w)), -w))


def rank_by_contribution(weight: np.ndarray, pooled: np.ndarray, cls: int) -> np.ndarray:
    """All units, largest contribution W[cls, u] * mean activation u to the class's logit first."""
    contribution = weight[cls].astype(np.float64) * pooled
    return np.lexsort((np.arange(len(contribution)), -contribution))


def logits_of(pooled: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """W @ pooled + b in float64.

    einsum rather than BLAS: for one (classes x c) mat-vec a multithreaded BLAS waits on its worker
    threads, which costs a scheduler tick (~8 ms) on a busy machine; einsum stays well under 1 ms.
    """
    return np.einsum("ij,j->i", weight, np.asarray(pooled, dtype=np.float64), dtype=np.float64) + bias


def ablated_logits(pooled: np.ndarray, weight: np.ndarray, bias: np.ndarray, units) -> np.ndarray:
    """Logits with the activation maps of ``units`` zeroed (via the pooled vector; see module doc)."""
    kept = np.array(pooled, dtype=np.float64)
    kept[np.asarray(list(units), dtype=np.int64)] = 0.0
    return logits_of(kept, weight, bias)


@dataclass
class Ablation:
    """Problem 2c: the top-5 units by FC weight for the top-1 class, and the prediction without them."""

    cls: int
    units: np.ndarray
    weights: np.ndarray        # W[cls, units]
    probs_before: np.ndarray
    probs_after: np.ndarray

    @property
    def rank_after(self) -> int:
        """1-based rank of the original top-1 class after the ablation (ties count in its favour)."""
        return int((self.probs_after > self.probs_after[self.cls]).sum()) + 1

    @property
    def top1_changed(self) -> bool:
        return int(np.argmax(self.probs_after)) != self.cls


def ablate_top_units(pooled: np.ndarray, weight: np.ndarray, bias: np.ndarray, n: int = 5) -> Ablation:
    probs = softmax(logits_of(pooled, weight, bias))
    cls = int(np.argmax(probs))
    units = rank_by_weight(weight, cls)[:n]
    after = softmax(ablated_logits(pooled, weight, bias, units))
    return Ablation(cls, units, weight[cls, units], probs, after)


@dataclass
class Sweep:
    """Problem 2d: ablate the first k units of ``order`` for k = 0..limit.

    ``prob[k]`` is the original top-1 class's probability with k units removed; ``top1[k]`` the new
    top-1 class; ``min_k`` the smallest k whose top-1 differs from the original (None if none did
    up to ``limit``) and ``new_top1`` the class it became.
    """

    ranking: str
    cls: int
    order: np.ndarray          # the first ``limit`` units, in ablation order
    k: np.ndarray
    prob: np.ndarray
    top1: np.ndarray
    min_k: int | None
    new_top1: int | None


def sweep(pooled: np.ndarray, weight: np.ndarray, bias: np.ndarray, order: np.ndarray, limit: int,
          ranking: str = "") -> Sweep:
    """Incremental: removing unit u subtracts pooled[u] * W[:, u] from the logits, so the logits with
    order[:k] zeroed are the full logits minus a cumulative sum: O(limit x classes), no forward pass.
    """
    limit = int(min(limit, len(order)))
    order = np.asarray(order[:limit], dtype=np.int64)
    full = logits_of(pooled, weight, bias)
    removed = (weight[:, order].T.astype(np.float64)
               * pooled[order, None].astype(np.float64))   # (limit, classes)
    logits = full[None, :] - np.concatenate([np.zeros((1, len(full))), np.cumsum(removed, axis=0)])
    probs = softmax(logits, axis=1)
    top1 = np.argmax(logits, axis=1)          # as ``top1_changes``: the logits decide, lowest index on ties
    cls = int(top1[0])
    changed = np.nonzero(top1 != cls)[0]
    min_k = int(changed[0]) if len(changed) else None
    return Sweep(ranking, cls, order, np.arange(limit + 1), probs[:, cls], top1,
                 min_k, int(top1[min_k]) if min_k is not None else None)


def both_sweeps(pooled: np.ndarray, weight: np.ndarray, bias: np.ndarray, limit: int) -> dict[str, Sweep]:
    """The sweep with units ranked by FC weight (as in 2c) and by contribution W x mean activation."""
    cls = int(np.argmax(logits_of(pooled, weight, bias)))
    return {"by_weight": sweep(pooled, weight, bias, rank_by_weight(weight, cls), limit, "by_weight"),
            "by_contribution": sweep(pooled, weight, bias, rank_by_contribution(weight, pooled, cls), limit,
                                     "by_contribution")}


@dataclass
class ExactMinimum:
    """Problem 2d: the fewest units of any subset whose zeroing changes the top-1 class.

    ``k`` is None when no subset does (every rival's margin survives zeroing all units that lower it);
    ``units`` are then empty and ``rival`` is the class that comes closest. ``new_top1`` is the argmax
    of the logits recomputed with ``units`` zeroed (it can differ from ``rival``: another class may
    overtake by more). Probabilities are of the original top-1 class ``cls``.
    """

    cls: int
    k: int | None
    units: np.ndarray
    rival: int
    new_top1: int | None
    prob_before: float
    prob_after: float | None


def top1_changes(pooled: np.ndarray, weight: np.ndarray, bias: np.ndarray, units, cls: int) -> bool:
    """The definition every answer of 2d is checked against: the argmax (lowest index on ties) of the
    logits recomputed with ``units`` zeroed is not ``cls``."""
    return int(np.argmax(ablated_logits(pooled, weight, bias, units))) != cls


def exact_minimum(pooled: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> ExactMinimum:
    """The exact answer to 2d: one sort per class of the margin drops d_r[u] = (W[c,u] - W[r,u]) pooled[u].

    Against rival r, a set S overtakes c when the margin m_r - sum(d_r[S]) is negative, or zero with
    r < c (np.argmax picks the lowest index). The largest terms first reach that with the fewest units;
    the answer is the minimum over r. Candidates are verified by recomputing the logits (``top1_changes``);
    float64 round-off can only matter at an exact tie, where the neighbouring prefix sizes are tried too.
    """
    pooled = np.asarray(pooled, dtype=np.float64)
    logits = logits_of(pooled, weight, bias)
    cls = int(np.argmax(logits))
    classes = len(logits)
    drops = (weight[cls].astype(np.float64)[None, :] - weight.astype(np.float64)) * pooled[None, :]
    margins = logits[cls] - logits                                           # (classes,), >= 0
    gained = np.cumsum(-np.sort(-drops, axis=1), axis=1)    # gained[r, j]: margin lost to the j + 1
                                                            # largest drops
    lower = (np.arange(classes) < cls)[:, None]
    flips = (gained > margins[:, None]) | ((gained == margins[:, None]) & lower)
    flips[cls] = False
    first = np.where(flips.any(axis=1), flips.argmax(axis=1) + 1, 0)         # fewest units per rival;
                                                                             # 0: never
    # round-off guard: besides each rival's k, try k - 1 and k + 1 when the margin is within round-off
    slack = 1e-9 * (np.abs(logits).max() + np.abs(drops).sum(axis=1))
    candidates = set()
    for r in np.nonzero(first)[0]:
        candidates.add((int(first[r]), int(r)))
        for k in (int(first[r]) - 1, int(first[r]) + 1):
            if 1 <= k <= drops.shape[1] and abs(gained[r, k - 1] - margins[r]) <= slack[r]:
                candidates.add((k, int(r)))
    probs = softmax(logits)
    for k, rival in sorted(candidates):
        units = np.argsort(-drops[rival], kind="stable")[:k]     # the k largest drops (ties by unit index)
        after = ablated_logits(pooled, weight, bias, units)
        if int(np.argmax(after)) != cls:
            return ExactMinimum(cls, k, units, rival, int(np.argmax(after)), float(probs[cls]),
                                float(softmax(after)[cls]))
    closest = np.where(np.arange(classes) == cls, -np.inf, gained.max(axis=1) - margins)
    return ExactMinimum(cls, None, np.zeros(0, dtype=np.int64), int(np.argmax(closest)), None,
                        float(probs[cls]), None)


@dataclass
class FewestUnits:
    """Problem 2d in full: the exact minimum, the two greedy sweeps, and how many units more each needs.

    ``greedy_excess[ranking]`` is sweep.min_k - exact.k, None when that ranking never changes the top-1
    class within the sweep's limit.
    """

    exact: ExactMinimum
    sweeps: dict[str, Sweep]
    greedy_excess: dict[str, int | None]


def fewest_units(pooled: np.ndarray, weight: np.ndarray, bias: np.ndarray, limit: int) -> FewestUnits:
    exact = exact_minimum(pooled, weight, bias)
    sweeps = both_sweeps(pooled, weight, bias, limit)
    excess = {name: (s.min_k - exact.k if s.min_k is not None and exact.k is not None else None)
              for name, s in sweeps.items()}
    return FewestUnits(exact, sweeps, excess)
