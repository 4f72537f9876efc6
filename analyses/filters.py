"""Problem 1: convolution kernels made displayable.

Kernels are normalised per filter by default: filter norms in one layer differ by an order of
magnitude, so a single per-layer scale leaves the weak filters a flat grey. Per-layer scaling is
available for comparing magnitudes across filters.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn


def normalize_tensor(kernels: torch.Tensor, per: str = "filter") -> torch.Tensor:
    """Map kernels to [0, 1] by min-max scaling, per output filter (dim 0) or over the whole tensor.

    A constant filter (max == min) maps to 0.5 everywhere instead of dividing by zero.
    """
    if per not in ("filter", "layer"):
        raise ValueError(f"per must be 'filter' or 'layer', got {per!r}")
    x = kernels.detach().to(torch.float32)
    if per == "layer" or x.dim() == 0:
        lo, hi = x.min(), x.max()
    else:
        flat = x.reshape(x.shape[0], -1)
        shape = (x.shape[0],) + (1,) * (x.dim() - 1)
        lo, hi = flat.min(dim=1).values.reshape(shape), flat.max(dim=1).values.reshape(shape)
    span = hi - lo
    safe = torch.where(span > 0, span, torch.ones_like(span))
    return torch.where(span > 0, (x - lo) / safe, torch.full_like(x, 0.5))


def conv_layer(model: nn.Module, name: str) -> nn.Conv2d:
    """The Conv2d named ``name`` (e.g. ``conv1`` or ``layer1.0.conv2``); ValueError lists valid names."""
    modules = dict(model.named_modules())
    module = modules.get(name)
    if not isinstance(module, nn.Conv2d):
        convs = [n for n, m in modules.items() if isinstance(m, nn.Conv2d)]
        raise ValueError(f"no convolution named {name!r}; valid names include {', '.join(convs[:8])}, ...")
    return module


@dataclass
class FilterGrid:
    """One layer's kernels, ready to draw.

    ``rgb`` (conv1 only): filters as (n, kh, kw, 3) images in [0, 1]. ``slices``: for a layer with
    many input channels, each shown filter's strongest input channels as (rows, cols, kh, kw)
    signed weights scaled to [-1, 1] per filter, with the channel indices in ``slice_channels``.
    """

    layer: str
    shape: tuple[int, ...]
    per: str
    filter_norms: np.ndarray
    rgb: np.ndarray | None = None
    slices: np.ndarray | None = None
    slice_filters: np.ndarray | None = None
    slice_channels: np.ndarray | None = None
    colour_fraction: np.ndarray | None = None


def filter_grid(model: nn.Module, layer: str, max_filters: int = 64, channels_per_filter: int = 8,
                per: str = "filter") -> FilterGrid:
    """Kernels of ``layer`` arranged for display; RGB when the layer sees the 3 image channels."""
    weight = conv_layer(model, layer).weight.detach().cpu().float()
    out_c, in_c = weight.shape[:2]
    norms = weight.reshape(out_c, -1).norm(dim=1).numpy()
    grid = FilterGrid(layer=layer, shape=tuple(weight.shape), per=per, filter_norms=norms)
    if in_c == 3:
        shown = weight[:max_filters]
        grid.rgb = normalize_tensor(shown, per).permute(0, 2, 3, 1).numpy()
        grey = shown.mean(dim=1, keepdim=True)
        energy = shown.pow(2).sum(dim=(1, 2, 3))
        grid.colour_fraction = ((shown - grey).pow(2).sum(dim=(1, 2, 3)) / energy.clamp_min(1e-12)).numpy()
        return grid
    # Many input channels: no colour to show. For the strongest filters, show the input-channel
    # slices that carry most of each filter's weight, keeping the sign (diverging colour map).
    rows = min(max_filters, out_c, 16)
    filters = np.argsort(-norms, kind="stable")[:rows]
    cols = min(channels_per_filter, in_c)
    slices, channels = [], []
    for f in filters:
        kernel = weight[f]                                        # (in_c, kh, kw)
        chan_norm = kernel.reshape(in_c, -1).norm(dim=1)
        top = torch.argsort(-chan_norm, stable=True)[:cols]
        chosen = kernel[top]
        scale = chosen.abs().max()
        slices.append((chosen / scale if scale > 0 else chosen).numpy())
        channels.append(top.numpy())
    grid.slices = np.stack(slices)
    grid.slice_filters = filters
    grid.slice_channels = np.stack(channels)
    return grid
