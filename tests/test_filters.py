"""Problem 1: normalize_tensor properties and the filter grids."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision

from analyses.filters import conv_layer, filter_grid, normalize_tensor


@pytest.mark.parametrize("per", ["filter", "layer"])
def test_range_is_exactly_zero_to_one(per):
    torch.manual_seed(0)
    x = torch.randn(16, 3, 7, 7) * 5 + 2
    y = normalize_tensor(x, per)
    assert y.shape == x.shape and y.min().item() == 0.0 and y.max().item() == 1.0


def test_per_filter_stretches_every_filter_and_keeps_order():
    x = torch.stack([torch.linspace(-1, 1, 27).reshape(3, 3, 3),
                     torch.linspace(0, 0.01, 27).reshape(3, 3, 3)])
    y = normalize_tensor(x, "filter")
    for f in range(2):
        assert y[f].min() == 0 and y[f].max() == 1
        flat_x, flat_y = x[f].flatten(), y[f].flatten()
        assert torch.equal(torch.argsort(flat_x), torch.argsort(flat_y))  # monotone: same ordering
    weak_layer = normalize_tensor(x, "layer")[1]
    assert weak_layer.max() - weak_layer.min() < 0.01  # what per-filter scaling avoids


def test_constant_kernels_do_not_divide_by_zero():
    x = torch.cat([torch.full((1, 3, 3, 3), 4.2), torch.randn(1, 3, 3, 3)])
    y = normalize_tensor(x, "filter")
    assert torch.isfinite(y).all()
    assert torch.all(y[0] == 0.5) and y[1].min() == 0 and y[1].max() == 1
    assert torch.all(normalize_tensor(torch.zeros(4, 3, 3, 3), "layer") == 0.5)


def test_affine_invariance():
    torch.manual_seed(1)
    x = torch.randn(8, 3, 5, 5)
    assert torch.allclose(normalize_tensor(x), normalize_tensor(3 * x + 7), atol=1e-6)


def test_rejects_unknown_mode():
    with pytest.raises(ValueError):
        normalize_tensor(torch.zeros(2, 2), "channel")


def test_grids_for_conv1_and_a_deep_layer():
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=365)
    rgb = filter_grid(model, "conv1")
    assert rgb.rgb.shape == (64, 7, 7, 3) and rgb.shape == (64, 3, 7, 7)
    assert np.allclose(rgb.rgb[5], normalize_tensor(model.conv1.weight)[5].permute(1, 2, 0).numpy())
    deep = filter_grid(model, "layer1.0.conv2", channels_per_filter=8)
    assert deep.rgb is None and deep.slices.shape == (16, 8, 3, 3)
    assert np.abs(deep.slices).max() <= 1.0 + 1e-6
    w = model.layer1[0].conv2.weight.detach()
    strongest = int(w.reshape(64, -1).norm(dim=1).argmax())
    assert deep.slice_filters[0] == strongest
    top_channel = int(w[strongest].reshape(64, -1).norm(dim=1).argmax())
    assert deep.slice_channels[0, 0] == top_channel


def test_unknown_layer_lists_valid_names():
    model = torchvision.models.resnet18(num_classes=10)
    with pytest.raises(ValueError, match="layer1.0.conv1"):
        conv_layer(model, "layer9.conv")
    with pytest.raises(ValueError):
        conv_layer(model, "bn1")  # exists but is not a convolution


def test_colour_fraction_of_grey_and_opponent_filters():
    from analyses.filters import colour_fraction

    pattern = torch.randn(1, 1, 5, 5)
    grey = pattern.expand(1, 3, 5, 5)                                    # the same kernel on R, G and B
    opponent = torch.cat([pattern, -pattern, torch.zeros_like(pattern)], dim=1)   # channels sum to 0
    assert colour_fraction(torch.cat([grey, opponent])) == pytest.approx([0.0, 1.0], abs=1e-12)


def test_colour_is_judged_against_the_layers_own_shuffled_filters():
    from analyses.filters import colour_vs_chance

    torch.manual_seed(0)
    noise = colour_vs_chance(torch.randn(64, 3, 7, 7))
    assert noise.chance_median == pytest.approx(2 / 3, abs=0.03)        # unstructured weights: about 2/3
    inside = [(c.layer_median_p05 <= float(np.median(c.fraction)) <= c.layer_median_p95)
              for c in (colour_vs_chance(torch.randn(64, 3, 7, 7), draws=50) for _ in range(20))]
    assert sum(inside) >= 14   # a random layer is a shuffled layer: inside the 5-95 % range ~90 %
    assert noise.colour_filters + noise.grey_filters <= 12                # about 5 % on each side by chance
    assert colour_vs_chance(torch.randn(64, 3, 7, 7)).draws == noise.draws == 200
    # a layer of 32 grey and 32 colour-opponent filters: every filter falls outside the chance range
    pattern = torch.randn(32, 1, 7, 7)
    layer = torch.cat([pattern.expand(32, 3, 7, 7), torch.cat([pattern, -pattern, 0 * pattern], dim=1)])
    planted = colour_vs_chance(layer)
    assert planted.grey_filters == 32 and planted.colour_filters == 32
    again = colour_vs_chance(layer)
    assert (again.chance_p05, again.chance_p95) == (planted.chance_p05, planted.chance_p95)   # fixed seed


def test_norm_ratio_is_largest_over_smallest_norm():
    model = torch.nn.Sequential()
    model.add_module("conv1", torch.nn.Conv2d(3, 4, 3, bias=False))
    with torch.no_grad():
        model.conv1.weight.copy_(torch.ones(4, 3, 3, 3)
                                 * torch.tensor([1.0, 2.0, 4.0, 0.5])[:, None, None, None])
    grid = filter_grid(model, "conv1")
    assert grid.norm_ratio == pytest.approx(8.0)
    # constant filters shuffle to themselves: chance is 0 too, so none is called grey "against chance"
    assert np.all(grid.colour.fraction == 0) and grid.colour.grey_filters == grid.colour.colour_filters == 0
    with torch.no_grad():
        model.conv1.weight[0] = 0
    assert filter_grid(model, "conv1").norm_ratio is None
