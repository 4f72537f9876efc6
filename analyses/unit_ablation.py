"""Problems 2c and 2d: switch off units of the last conv layer and watch the prediction.

"Deactivating" unit u means setting its whole (h x w) activation map in layer4's output (after the
final ReLU, before global average pooling) to zero. Average pooling is linear, so this is exactly
the same as zeroing entry u of the pooled (c,) vector; the logits then are W @ pooled' + b. Every
ablation here therefore works on the cached pooled vector, and the k = 1..K sweep is a cumulative
sum of the removed units' contributions pooled[u] * W[:, u]: O(K x classes), not K network forwards.
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
    removed = weight[:, order].T.astype(np.float64) * pooled[order, None].astype(np.float64)   # (limit, classes)
    logits = full[None, :] - np.concatenate([np.zeros((1, len(full))), np.cumsum(removed, axis=0)])
    probs = softmax(logits, axis=1)
    top1 = np.argmax(probs, axis=1)
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
