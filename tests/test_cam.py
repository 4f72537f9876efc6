"""Problem 3: CAM against an independent computation, planted activations, the guard, colours."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from analyses import cam


def test_cam_equals_an_independent_computation():
    rng = np.random.default_rng(0)
    maps = rng.gamma(1.0, 1.0, (32, 8, 8)).astype(np.float32)
    weight = rng.normal(0, 1, (10, 32)).astype(np.float32)   # negative weights kept
    classes = [3, 0, 7]
    got = cam.raw_cams(maps, weight, classes)
    for i, cls in enumerate(classes):
        expected = np.zeros((8, 8))
        for u in range(32):   # the definition, one unit at a time
            expected += float(weight[cls, u]) * maps[u].astype(np.float64)
        assert np.allclose(got[i], expected, rtol=1e-10, atol=1e-10)
    # display: torch's bilinear upsampling then min-max, computed independently
    up = torch.nn.functional.interpolate(torch.tensor(got[0])[None, None].float(), size=(40, 30),
                                         mode="bilinear", align_corners=False)[0, 0].double().numpy()
    assert np.allclose(cam.display_cam(got[0], (40, 30)), (up - up.min()) / (up.max() - up.min()), atol=1e-6)


def test_fc_per_position_is_cam_plus_bias_and_averages_to_the_logits():
    torch.manual_seed(0)
    fc = nn.Linear(16, 5)
    maps = torch.rand(1, 16, 4, 6)
    per_position = cam.fc_per_position(maps, fc)
    assert tuple(cam.reshape_hw_c(maps).shape) == (24, 16) and tuple(per_position.shape) == (24, 5)
    raw = cam.raw_cams(maps[0].numpy(), fc.weight.detach().numpy(), [2])
    column = per_position[:, 2].reshape(4, 6).numpy()
    assert np.allclose(column, raw[0] + fc.bias[2].item(), atol=1e-5)
    logits = fc(maps.mean(dim=(2, 3)))[0]
    assert torch.allclose(per_position.mean(dim=0), logits, atol=1e-5)


def test_cam_of_a_planted_activation_peaks_where_it_was_planted():
    maps = np.zeros((8, 8, 8), dtype=np.float32)
    maps[3, 2, 5] = 4.0
    maps[1] = 1.0                       # a constant unit moves the level, not the peak
    weight = np.zeros((4, 8), dtype=np.float32)
    weight[2, 3], weight[2, 1] = 1.5, -0.5
    raw = cam.raw_cams(maps, weight, [2])[0]
    assert np.unravel_index(np.argmax(raw), raw.shape) == (2, 5)
    shown = cam.display_cam(raw, (64, 64))
    row, col = np.unravel_index(np.argmax(shown), shown.shape)
    assert 16 <= row < 24 and 40 <= col < 48 and shown.max() == pytest.approx(1.0)


def test_constant_maps_are_guarded():
    for value in [0.0, 3.0, -1e9]:
        out = cam.normalise(np.full((8, 8), value))
        assert np.array_equal(out, np.zeros((8, 8)))
    assert cam.concentration(np.zeros((4, 4))) == 0.0
    assert cam.mass_in_mask(np.zeros((4, 4)), np.ones((4, 4), bool)) == 0.0


def test_measures_of_a_maps_shape():
    flat = np.ones((10, 10))
    assert cam.concentration(flat) == pytest.approx(0.2)
    peaked = np.zeros((10, 10))
    peaked[:2, :] = 1.0
    assert cam.concentration(peaked) == pytest.approx(1.0)
    mask = np.zeros((10, 10), bool)
    mask[:5] = True
    assert cam.mass_in_mask(peaked, mask) == pytest.approx(1.0)
    same = np.stack([peaked, peaked * 2 + 1])
    assert cam.mean_pairwise_correlation(same) == pytest.approx(1.0)
    assert cam.mean_pairwise_correlation(np.stack([peaked, peaked.T])) < 0.5


def test_top_contributors_rank_weight_times_activation():
    maps = np.ones((4, 2, 2), dtype=np.float32) * np.array([1, 10, 2, 5], dtype=np.float32)[:, None, None]
    weight = np.array([[3.0, 0.1, -1.0, 1.0]], dtype=np.float32)
    units = cam.top_contributors(maps, weight, 0, 2)
    # contributions 3, 1, -2, 5: unit 3 then unit 0; shares of the positive sum 9
    assert [u for u, _, _ in units] == [3, 0]
    assert units[0][1] == pytest.approx(5.0) and units[0][2] == pytest.approx(5 / 9)


def test_overlay_colours_are_rgb_not_bgr():
    """A CAM of 1.0 (hot) must come out red and 0.0 blue in the rendered PNG pixels."""
    from miniplaces.report import figures
    from miniplaces.report.figures import overlay

    fig, axes = figures.plt.subplots(1, 2, figsize=(2, 1), dpi=50)
    black = np.zeros((8, 8, 3), dtype=np.float32)
    overlay(axes[0], black, np.ones((8, 8)), alpha=1.0)
    overlay(axes[1], black, np.zeros((8, 8)), alpha=1.0)
    fig.canvas.draw()
    pixels = np.asarray(fig.canvas.buffer_rgba())[..., :3].astype(int)
    figures.plt.close(fig)
    def centre(ax):
        box = ax.get_window_extent()
        return pixels[pixels.shape[0] - int((box.y0 + box.y1) / 2), int((box.x0 + box.x1) / 2)]
    hot, cold = centre(axes[0]), centre(axes[1])
    assert hot[0] > 100 and hot[2] < 50
    assert cold[2] > 100 and cold[0] < 50
