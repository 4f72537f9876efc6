"""Problem 3d measured: is a saliency map faithful to the network? Deletion and insertion curves.

Petsiuk et al. (RISE, BMVC 2018): rank the pixels by the map, then remove them most salient first
(deletion: the class probability should fall fast, low area under the curve) or reveal them into a
blank canvas most salient first (insertion: it should rise fast, high area). Removed pixels are
replaced by a blurred copy of the image, so the perturbation takes away detail without adding the
sharp edges of a black patch; insertion starts from that blurred image. A map is only as good as the
baselines beside it: random maps (several seeds, on the CAM's own grid and upsampled the same way,
so that they are as smooth as CAM) give the chance level and its spread, and a centred Gaussian says
how far "the middle of the photo" alone gets.

Grad-CAM and Grad-CAM++ come from the ``grad-cam`` package (pytorch-grad-cam) on the same layer as
CAM. On a network that ends in global average pooling and one linear layer, Grad-CAM of a logit is
CAM with its negative part cut to zero (Selvaraju et al. 2017, section 3.1), so the two differ only
in how the pixels CAM scores below zero are ordered; Grad-CAM++ weighs the units differently.
"""
from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torchvision.transforms import functional as TF

from .concept_units import upsample

RANDOM_PREFIX = "random"
CENTRE = "centre prior"
GRADIENT_METHODS = ("Grad-CAM", "Grad-CAM++")
SCORE_CAM = "Score-CAM"


@dataclass
class Curves:
    """One map's curves: class probability after removing (deletion) or revealing (insertion) the
    most salient ``fractions`` of the pixels; the areas by the trapezoid rule over the fraction."""

    fractions: list[float]
    deletion: list[float]
    insertion: list[float]

    @property
    def deletion_auc(self) -> float:
        return trapezoid(self.fractions, self.deletion)

    @property
    def insertion_auc(self) -> float:
        return trapezoid(self.fractions, self.insertion)


def trapezoid(x: Sequence[float], y: Sequence[float]) -> float:
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    return float(np.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1]) / 2))


def blur(x: torch.Tensor, sigma_fraction: float) -> torch.Tensor:
    """Gaussian blur with sigma = ``sigma_fraction`` of the shorter side (linear, so blurring the
    normalised tensor equals normalising the blurred image)."""
    sigma = max(1e-3, sigma_fraction * min(x.shape[-2:]))
    kernel = min(2 * math.ceil(3 * sigma) + 1, 2 * ((min(x.shape[-2:]) - 1) // 2) + 1)
    return TF.gaussian_blur(x, [kernel, kernel], [sigma, sigma])


def ranking(saliency: np.ndarray, seed: int) -> np.ndarray:
    """Flat pixel indices, most salient first; ties (e.g. Grad-CAM's zeros) in a seeded random order,
    so that a flat region is not removed in raster order."""
    flat = np.asarray(saliency, dtype=np.float64).ravel()
    tiebreak = np.random.default_rng(seed).permutation(flat.size)
    return np.lexsort((tiebreak, -flat))


def _perturbed(x: torch.Tensor, canvas: torch.Tensor, orders: list[np.ndarray],
               counts: list[int]) -> Iterator[torch.Tensor]:
    """For each (order, count): ``x`` with its ``count`` top-ranked pixels taken from ``canvas``."""
    h, w = x.shape[-2:]
    for order in orders:
        for count in counts:
            mask = torch.zeros(h * w, dtype=x.dtype)
            mask[torch.from_numpy(order[:count])] = 1
            mask = mask.view(1, 1, h, w)
            yield x * (1 - mask) + canvas * mask


@torch.inference_mode()
def class_probability(model: nn.Module, images: Iterator[torch.Tensor], cls: int,
                      batch_size: int) -> np.ndarray:
    """Softmax probability of ``cls`` for each (1, 3, H, W) image, in batches of ``batch_size``."""
    model.eval()
    device = next(model.parameters()).device
    out, batch = [], []

    def flush() -> None:
        logits = model(torch.cat(batch).to(device)).float()
        out.append(torch.softmax(logits, dim=1)[:, cls].double().cpu().numpy())
        batch.clear()

    for image in images:
        batch.append(image)
        if len(batch) == batch_size:
            flush()
    if batch:
        flush()
    return np.concatenate(out) if out else np.zeros(0)


def deletion_insertion(model: nn.Module, x: torch.Tensor, cls: int, maps: dict[str, np.ndarray],
                       steps: int = 20, sigma_fraction: float = 1 / 32, batch_size: int = 16,
                       seed: int = 0) -> dict[str, Curves]:
    """Deletion and insertion curves of class ``cls`` for every map (each (H, W), the size of ``x``).

    The unperturbed and the fully blurred image are shared by every curve, so a map costs
    2 (steps - 1) forward passes, all batched.
    """
    if steps < 2:
        raise ValueError(f"steps must be at least 2, got {steps}")
    x = x.detach().cpu().float()
    h, w = x.shape[-2:]
    for name, saliency in maps.items():
        if saliency.shape != (h, w):
            raise ValueError(f"map {name!r} is {saliency.shape}, the image {(h, w)}")
    blurred = blur(x, sigma_fraction)
    counts = [round(h * w * i / steps) for i in range(1, steps)]
    orders = [ranking(m, seed) for m in maps.values()]
    ends = class_probability(model, iter([x, blurred]), cls, batch_size)
    deleted = class_probability(model, _perturbed(x, blurred, orders, counts), cls, batch_size)
    inserted = class_probability(model, _perturbed(blurred, x, orders, counts), cls, batch_size)
    n = steps - 1
    fractions = [0.0] + [c / (h * w) for c in counts] + [1.0]
    return {name: Curves(fractions, [ends[0], *deleted[i * n:(i + 1) * n], ends[1]],
                         [ends[1], *inserted[i * n:(i + 1) * n], ends[0]])
            for i, name in enumerate(maps)}


def random_maps(grid: tuple[int, int], size: tuple[int, int], seeds: Sequence[int]) -> dict[str, np.ndarray]:
    """Uniform random values on the CAM's (h, w) grid, upsampled bilinearly like CAM, one per seed."""
    return {f"{RANDOM_PREFIX} {s}": upsample(np.random.default_rng(s).random(grid, dtype=np.float32), size)
            for s in seeds}


def centre_prior(size: tuple[int, int], sigma_fraction: float = 0.25) -> np.ndarray:
    """A Gaussian blob at the image centre, sigma = ``sigma_fraction`` of each side."""
    ys = (np.arange(size[0]) + 0.5) / size[0] - 0.5
    xs = (np.arange(size[1]) + 0.5) / size[1] - 0.5
    return np.exp(-(ys[:, None] ** 2 + xs[None, :] ** 2) / (2 * sigma_fraction ** 2))


def gradient_maps(model: nn.Module, layer: nn.Module, x: torch.Tensor, cls: int,
                  score_cam: bool = False, batch_size: int = 16) -> dict[str, np.ndarray]:
    """Grad-CAM and Grad-CAM++ (and Score-CAM if asked: one forward pass per unit of ``layer``) of
    the logit of ``cls`` at ``layer``, each (H, W) in [0, 1], by pytorch-grad-cam.

    Grad-CAM++ needs the same activations and gradients as Grad-CAM, so it reuses Grad-CAM's one
    backward pass (half the cost on a CPU) and applies the package's own weights and scaling to them.
    """
    from pytorch_grad_cam import GradCAM, GradCAMPlusPlus, ScoreCAM
    from pytorch_grad_cam.utils.image import scale_cam_image
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    targets = [ClassifierOutputTarget(cls)]
    x = x.detach().to(next(model.parameters()).device)
    out = {}
    with torch.enable_grad(), GradCAM(model=model, target_layers=[layer]) as gradcam:
        out["Grad-CAM"] = gradcam(input_tensor=x, targets=targets)[0].astype(np.float64)
        acts = gradcam.activations_and_grads.activations[0].cpu().numpy()
        grads = gradcam.activations_and_grads.gradients[0].cpu().numpy()
    weights = GradCAMPlusPlus.get_cam_weights(None, x, [layer], targets, acts, grads)
    plus = np.maximum((weights[:, :, None, None] * acts).sum(axis=1), 0)
    resized = scale_cam_image(plus, (x.shape[-1], x.shape[-2]))   # then min-max again, as the package does
    out["Grad-CAM++"] = scale_cam_image(np.maximum(resized, 0))[0].astype(np.float64)
    if score_cam:
        with torch.enable_grad(), ScoreCAM(model=model, target_layers=[layer]) as scorecam:
            scorecam.batch_size = batch_size
            out[SCORE_CAM] = scorecam(input_tensor=x, targets=targets)[0].astype(np.float64)
    model.zero_grad(set_to_none=True)
    return out


@dataclass
class Judgement:
    """A method against the random maps (mean and spread over seeds) and the centre prior."""

    effective: bool
    beats_centre: bool


def random_baseline(curves: dict[str, Curves]) -> dict[str, float]:
    """Mean and sample standard deviation of the random maps' areas (at least two seeds)."""
    rand = [c for name, c in curves.items() if name.startswith(RANDOM_PREFIX)]
    if len(rand) < 2:
        raise ValueError("the random baseline needs at least two seeds to have a spread")
    deletion = [c.deletion_auc for c in rand]
    insertion = [c.insertion_auc for c in rand]
    return {"seeds": len(rand),
            "deletion_mean": float(np.mean(deletion)), "deletion_sd": float(np.std(deletion, ddof=1)),
            "insertion_mean": float(np.mean(insertion)), "insertion_sd": float(np.std(insertion, ddof=1))}


# Deleting every pixel must move the class probability by at least this share of its larger end; less,
# and every map's curves are flat, so no map can be told from a random one on that scene.
MIN_SWING = 0.1


def decidable(curve: Curves) -> bool:
    """Whether the test can judge any map on this scene: the curves' ends (the image and its fully
    blurred copy, shared by every map) must differ enough for a map's ordering to matter."""
    start, end = curve.deletion[0], curve.deletion[-1]
    return bool(abs(start - end) >= MIN_SWING * max(start, end))


def judge(curve: Curves, baseline: dict[str, float], centre: Curves) -> Judgement:
    """Effective: deletion area below the random mean and insertion area above it, each by more than
    the random maps' standard deviation. Beats the centre prior: the same margins against its areas."""
    d_margin, i_margin = baseline["deletion_sd"], baseline["insertion_sd"]
    effective = (curve.deletion_auc < baseline["deletion_mean"] - d_margin
                 and curve.insertion_auc > baseline["insertion_mean"] + i_margin)
    beats_centre = (curve.deletion_auc < centre.deletion_auc - d_margin
                    and curve.insertion_auc > centre.insertion_auc + i_margin)
    return Judgement(effective, beats_centre)
