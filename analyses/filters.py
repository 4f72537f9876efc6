"""Problem 1: convolution kernels made displayable, and how much of conv1 is colour.

Kernels are normalised per filter by default, so each filter's pattern is visible whatever its norm;
one scale for the whole layer draws a weak filter with proportionally less contrast. Per-layer
scaling is available for comparing magnitudes across filters.

A filter of an RGB layer is called colour when the share of its squared weight in the differences
between its channels (``colour_fraction``) is high. That share is about 2/3 for unstructured weights
(two of the three channel directions are not grey), so it is judged against chance: the same statistic
on the layer's own filters with their entries shuffled (``colour_vs_chance``).
"""
from __future__ import annotations

import math
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


CHANCE_DRAWS = 200    # shuffles of every filter for the colour statistic's chance distribution
CHANCE_SEED = 0


def colour_fraction(weight: torch.Tensor) -> np.ndarray:
    """Per filter of an (n, 3, kh, kw) tensor: the share of its squared weight left after subtracting
    the per-pixel mean over the 3 channels (0: grey, 1: no grey component)."""
    weight = weight.detach().to(torch.float64)
    grey = weight.mean(dim=1, keepdim=True)
    energy = weight.pow(2).sum(dim=(1, 2, 3))
    return ((weight - grey).pow(2).sum(dim=(1, 2, 3)) / energy.clamp_min(1e-300)).numpy()


@dataclass
class ColourVsChance:
    """The layer's colour fractions against those of its own filters with their entries shuffled.

    ``chance_*`` are quantiles over every shuffled filter of every draw; ``layer_median_p05/p95`` the
    5-95 % range, over draws, of the median over the layer's shuffled filters (to place the layer's median).
    """

    fraction: np.ndarray
    method: str
    draws: int
    chance_median: float
    chance_p05: float
    chance_p95: float
    layer_median_p05: float
    layer_median_p95: float

    @property
    def colour_filters(self) -> int:
        """Filters above the chance distribution's 95th percentile."""
        return int((self.fraction > self.chance_p95).sum())

    @property
    def grey_filters(self) -> int:
        """Filters below its 5th percentile."""
        return int((self.fraction < self.chance_p05).sum())

    @property
    def colour_p(self) -> float:
        """P(at least ``colour_filters`` of the layer's filters above the 95th percentile | chance)."""
        return binomial_at_least(self.colour_filters, len(self.fraction), TAIL)

    @property
    def grey_p(self) -> float:
        return binomial_at_least(self.grey_filters, len(self.fraction), TAIL)


TAIL = 0.05     # each percentile cuts off this share of shuffled filters: by chance, a filter lands beyond
SIGNIFICANCE = 0.05


def binomial_at_least(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p), exactly: how likely chance alone puts k of n filters in a tail."""
    if k <= 0:
        return 1.0
    return float(min(1.0, sum(math.comb(n, i) * p ** i * (1 - p) ** (n - i) for i in range(k, n + 1))))


def colour_vs_chance(weight: torch.Tensor, draws: int = CHANCE_DRAWS,
                     seed: int = CHANCE_SEED) -> ColourVsChance:
    """Shuffle each filter's 3 x kh x kw entries (channels and positions together), ``draws`` times with a
    fixed seed: same values, same norm, no structure; the colour fraction of each shuffled filter is
    chance."""
    weight = weight.detach().cpu().to(torch.float64)
    n = weight.shape[0]
    flat = weight.reshape(n, -1)
    generator = torch.Generator().manual_seed(seed)
    permutation = torch.argsort(torch.rand(draws, n, flat.shape[1], generator=generator), dim=2)
    shuffled = flat.expand(draws, n, -1).gather(2, permutation).reshape(draws * n, *weight.shape[1:])
    chance = colour_fraction(shuffled).reshape(draws, n)
    medians = np.median(chance, axis=1)
    method = (f"each filter's {flat.shape[1]} weights permuted at random across channels and positions, "
              f"{draws} draws (seed {seed}); the colour fraction of every shuffled filter")
    return ColourVsChance(colour_fraction(weight), method, draws, float(np.median(chance)),
                          float(np.quantile(chance, 0.05)), float(np.quantile(chance, 0.95)),
                          float(np.quantile(medians, 0.05)), float(np.quantile(medians, 0.95)))


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
    colour: ColourVsChance | None = None      # RGB layers: every filter's colour fraction against chance

    @property
    def norm_ratio(self) -> float | None:
        """Largest over smallest filter L2 norm (None when a filter is all zeros)."""
        low = float(self.filter_norms.min())
        return float(self.filter_norms.max()) / low if low > 0 else None


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
        grid.colour = colour_vs_chance(weight)
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
