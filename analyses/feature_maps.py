"""Problem 2a: the chopped ResNet and the layer4 feature maps every later analysis reuses.

The feature maps of the last conv layer are the only network forward pass Problems 2 and 3 need:
global average pooling and the FC layer are linear, so the prediction, every unit ablation and
every CAM are cheap functions of the (c, h, w) map. This module computes that map once per image.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from torch import nn
from torchvision import transforms

# ImageNet statistics, as the Places365 models were trained with (the problem set's Normalize).
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def chop(model: nn.Module) -> nn.Sequential:
    """All children of the ResNet but ``avgpool`` and ``fc``: its output is layer4's (after the last ReLU)."""
    return nn.Sequential(*[m for name, m in model.named_children() if name not in ("avgpool", "fc")])


def preprocess(image: Image.Image, size: int) -> torch.Tensor:
    """(1, 3, size, size) tensor as in the problem set's notebook: Resize((S, S)), ToTensor, Normalize."""
    transform = transforms.Compose([
        transforms.Resize((size, size)),
        transforms.ToTensor(),
        transforms.Normalize(MEAN, STD),
    ])
    return transform(image.convert("RGB")).unsqueeze(0)


@dataclass
class FeatureMaps:
    """layer4 output of one image and the model's prediction from it.

    ``maps`` is (c, h, w) float32; ``logits`` (num_classes,) are the full model's output, i.e.
    fc(avgpool(maps)); ``input_shape`` and ``chopped_shape`` are the shapes shown for Problem 2a.
    """

    maps: np.ndarray
    logits: np.ndarray
    input_shape: tuple[int, ...]
    chopped_shape: tuple[int, ...]

    @property
    def pooled(self) -> np.ndarray:
        """Global average pool of the maps: the (c,) vector the FC layer sees."""
        return self.maps.mean(axis=(1, 2), dtype=np.float64).astype(np.float32)

    @property
    def probs(self) -> np.ndarray:
        return softmax(self.logits)


def fc_params(model: nn.Module) -> tuple[np.ndarray, np.ndarray]:
    """(W, b) of the ResNet's FC layer as float32 numpy: W is (num_classes, c)."""
    return (model.fc.weight.detach().cpu().numpy().astype(np.float32),
            model.fc.bias.detach().cpu().numpy().astype(np.float32))


@torch.no_grad()
def compute_feature_maps(model: nn.Module, image: Image.Image, size: int,
                         device: torch.device | str | None = None) -> FeatureMaps:
    """One forward pass of the chopped model; the logits come from the model's own avgpool and fc."""
    model.eval()
    device = torch.device(device) if device is not None else next(model.parameters()).device
    x = preprocess(image, size).to(device)
    features = chop(model)(x)                     # (1, c, h, w)
    logits = model.fc(torch.flatten(model.avgpool(features), 1))
    return FeatureMaps(maps=features[0].float().cpu().numpy(), logits=logits[0].float().cpu().numpy(),
                       input_shape=tuple(x.shape), chopped_shape=tuple(features.shape))


def softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    """Numerically stable softmax in float64 (probabilities near 1/365 must not round to equal values)."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=axis, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=axis, keepdims=True)


def top_k(probs: np.ndarray, labels: list[str], k: int = 5) -> list[dict]:
    """[{"index", "label", "prob"}] of the k most probable classes, best first (ties by index: stable)."""
    order = np.argsort(-np.asarray(probs), kind="stable")[:k]
    return [{"index": int(i), "label": labels[int(i)], "prob": float(probs[int(i)])} for i in order]
