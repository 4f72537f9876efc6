"""How far a Places365 checkpoint can be trusted: where it came from, and whether it was trained at all.

A file in the official format proves nothing about its weights. ``provenance`` calls a checkpoint
"official" only when its SHA-256 is one the CSAIL release is known to have; ``weights_check`` looks
for the marks an untrained network leaves (PyTorch's default initialisation, BatchNorm statistics
that never moved, the same prediction whatever the image). Both go to results.json under ``model``.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

# SHA-256 of the files of the CSAIL Places365 release (places2.csail.mit.edu/models_places365/), as
# ``sha256sum`` prints them. Neither the release page nor the CSAILVision/places365 repository
# publishes checksums, and none was found elsewhere (searched 2026-12: code, issues, web pages), so
# the table holds only hashes verified against a real download: none yet. Add one as
# ``"resnet50": {"<sha256>"}`` once a run on the genuine file prints it.
KNOWN_SHA256: dict[str, frozenset[str]] = {}

# The behavioural check needs scenes that differ; with fewer, one shared top-1 class means little.
MIN_SCENES = 3
# Mean over scene pairs of the correlation of their log-probability vectors: an untrained ResNet ranks
# the 365 classes almost identically whatever the image (0.97 for resnet18, 0.998 for resnet50 on the
# default scenes); a trained one ranks them by what the image shows.
SAME_RANKING_CORRELATION = 0.95
# |w| may exceed the default bound by float rounding only.
BOUND_SLACK = 1e-4
# The std of U(-b, b) is b / sqrt(3); a trained layer's differs from it by far more than this.
STD_TOLERANCE = 0.05


def provenance(arch: str, sha256: str, demo: bool) -> dict:
    """{"status": "official" | "unverified" | "demo", "label": what the report calls the weights}."""
    if demo:
        return {"status": "demo", "label": "DEMO (untrained, no checkpoint loaded)"}
    if sha256 in KNOWN_SHA256.get(arch, frozenset()):
        return {"status": "official", "label": "official CSAIL Places365 weights (SHA-256 verified)"}
    return {"status": "unverified",
            "label": "Places365-format checkpoint, not verified (its SHA-256 is not a known one "
                     "of the CSAIL release)"}


def _fc_at_default_init(model: torch.nn.Module) -> tuple[str | None, dict]:
    """nn.Linear's default init draws weights from U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    weight = model.fc.weight.detach().float().cpu()
    fan_in = weight.shape[1]
    bound = 1 / math.sqrt(fan_in)
    max_abs, std = float(weight.abs().max()), float(weight.std())
    measured = {"fc_fan_in": fan_in, "fc_default_bound": bound, "fc_max_abs": max_abs, "fc_std": std}
    if max_abs <= bound * (1 + BOUND_SLACK) and abs(std * math.sqrt(3) / bound - 1) <= STD_TOLERANCE:
        return (f"the FC weights are spread uniformly within PyTorch's default initialisation bound "
                f"1/sqrt({fan_in}) = {bound:.4f} (largest |w| {max_abs:.4f}, std {std:.4f}): "
                "the classifier was never trained"), measured
    return None, measured


def _batchnorm_at_defaults(model: torch.nn.Module) -> tuple[str | None, dict]:
    """BatchNorm's running mean and variance start at 0 and 1 and move with the first training batch."""
    import torch

    layers = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    at_default = sum(bool(torch.all(m.running_mean == 0) and torch.all(m.running_var == 1))
                     for m in layers if m.running_mean is not None and m.running_var is not None)
    measured = {"batchnorm_layers": len(layers), "batchnorm_at_defaults": at_default}
    if layers and at_default == len(layers):
        return (f"all {len(layers)} BatchNorm layers keep their initial running statistics (mean 0, "
                "variance 1): no training batch ever passed through the network"), measured
    return None, measured


def _same_prediction(probs: Sequence[np.ndarray], labels: Sequence[str]) -> tuple[str | None, dict]:
    """One top-1 class for every scene, with the classes ranked alike, marks a network blind to its input."""
    if len(probs) < MIN_SCENES:
        return None, {"scenes": len(probs)}
    p = np.asarray(probs, dtype=np.float64)
    top1 = p.argmax(axis=1)
    logp = np.log(np.clip(p, 1e-300, None))
    corr = np.corrcoef(logp)
    mean_corr = float(corr[np.triu_indices(len(p), 1)].mean())
    same = bool(np.all(top1 == top1[0]))
    measured = {"scenes": len(p), "distinct_top1": int(len(set(top1.tolist()))),
                "mean_logprob_correlation": mean_corr}
    if same and mean_corr >= SAME_RANKING_CORRELATION:
        lo, hi = p[:, top1[0]].min(), p[:, top1[0]].max()
        low, high = f"{100 * lo:.0f}", f"{100 * hi:.0f}"
        share = (low if low == high else f"{low}-{high}") + " %"
        return (f"every one of the {len(p)} scenes gets the same top-1 class, {labels[int(top1[0])]}, at "
                f"{share}, and the scenes rank all classes alike (mean correlation of their "
                f"log-probabilities {mean_corr:.3f}): the network does not look at the image"), measured
    return None, measured


def weights_check(model: torch.nn.Module, probs: Sequence[np.ndarray] | None = None,
                  labels: Sequence[str] = ()) -> dict:
    """{"verdict": "untrained" | "no sign of an untrained network", "reasons": [...], "measured": {...}}.

    ``probs``: the class probabilities of the scenes (None when no scene was run: the behavioural
    check is then left out and says so).
    """
    reasons, measured = [], {}
    checks = [_fc_at_default_init(model), _batchnorm_at_defaults(model)]
    if probs is not None:
        names = list(labels) or [f"class {i}" for i in range(len(probs[0]) if len(probs) else 0)]
        checks.append(_same_prediction(probs, names))
    for reason, numbers in checks:
        measured.update(numbers)
        if reason:
            reasons.append(reason)
    return {"verdict": "untrained" if reasons else "no sign of an untrained network", "reasons": reasons,
            "predictions_checked": probs is not None and len(probs) >= MIN_SCENES, "measured": measured}


def untrained(model_json: dict | None) -> bool:
    """Problems 1-3 cannot be interpreted: the demo model, or a checkpoint that behaves as untrained."""
    if not model_json:
        return False
    check = model_json.get("weights_check") or {}
    return bool(model_json.get("demo")) or check.get("verdict") == "untrained"


def untrained_warning(model_json: dict | None) -> str | None:
    """One line for the run summary, or None when the weights look trained."""
    if not untrained(model_json):
        return None
    if model_json.get("demo"):
        return ("Places sections used an untrained DEMO model (no weights): Problems 1-3 cannot be "
                "interpreted")
    return ("the checkpoint behaves as untrained, so Problems 1-3 cannot be interpreted: "
            + model_json["weights_check"]["reasons"][0])
