"""Deletion/insertion on a network whose evidence is known by construction: its class-0 logit is the
high-frequency energy of the image's top-left quadrant and nothing else."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from analyses import cam
from analyses import cam_faithfulness as ff
from analyses.feature_maps import chop, fc_params

SIZE, GRID = 32, 8          # 32 x 32 images, an 8 x 8 feature grid (stride 4)


class QuadrantNet(nn.Module):
    """features -> avgpool -> fc, like a ResNet's tail: the features are |Laplacian| (two ReLU
    channels) pooled to 8 x 8, zeroed outside the top-left quadrant; class 1 is a constant."""

    def __init__(self):
        super().__init__()
        lap = torch.tensor([[0., 1, 0], [1, -4, 1], [0, 1, 0]]) / 3
        conv = nn.Conv2d(3, 2, 3, padding=1, bias=False)
        conv.weight.data = torch.stack([lap.expand(3, 3, 3), -lap.expand(3, 3, 3)])
        self.features = nn.Sequential(conv, nn.ReLU(), nn.AvgPool2d(SIZE // GRID), Quadrant())
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(2, 2)

    def forward(self, x):
        return self.fc(torch.flatten(self.avgpool(self.features(x)), 1))


class Quadrant(nn.Module):
    def forward(self, f):
        mask = torch.zeros_like(f)
        mask[..., : GRID // 2, : GRID // 2] = 1
        return f * mask


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    model = QuadrantNet().eval()
    x = torch.rand(1, 3, SIZE, SIZE)
    with torch.no_grad():   # calibrate: P(class 0) about 0.95 on the image and 0.05 once it is blurred
        sharp, flat = (model.avgpool(model.features(v)).sum().item() for v in (x, ff.blur(x, 1 / 32)))
        scale = 6 / (sharp - flat)
        model.fc.weight.data = torch.tensor([[scale, scale], [0.0, 0.0]])
        model.fc.bias.data = torch.tensor([-scale * (sharp + flat) / 2, 0.0])
        features = chop(model)(x)[0].numpy()
    size = (SIZE, SIZE)
    maps = {"CAM": cam.display_cam(cam.raw_cams(features, fc_params(model)[0], [0])[0], size),
            **ff.gradient_maps(model, model.features, x, 0)}
    wrong = np.zeros((GRID, GRID))
    wrong[GRID // 2:, GRID // 2:] = 1
    maps["wrong quadrant"] = cam.display_cam(wrong, size)
    maps[ff.CENTRE] = ff.centre_prior(size)
    maps.update(ff.random_maps((GRID, GRID), size, seeds=range(5)))
    curves = ff.deletion_insertion(model, x, 0, maps, steps=16, batch_size=64)
    return curves, ff.random_baseline(curves), (model, x, maps)


def test_curves_run_from_the_image_to_its_blurred_copy(setup):
    curves, _, _ = setup
    c = curves["CAM"]
    assert c.fractions[0] == 0 and c.fractions[-1] == 1 and len(c.fractions) == 17
    assert c.deletion[0] == pytest.approx(c.insertion[-1]) and c.deletion[0] > 0.9
    assert c.deletion[-1] == pytest.approx(c.insertion[0]) and c.deletion[-1] < 0.1


def test_maps_on_the_evidence_beat_random_on_deletion_and_insertion(setup):
    curves, baseline, _ = setup
    assert baseline["seeds"] == 5 and baseline["deletion_sd"] > 0 and baseline["insertion_sd"] > 0
    for name in ["CAM", "Grad-CAM", "Grad-CAM++"]:
        verdict = ff.judge(curves[name], baseline, curves[ff.CENTRE])
        assert verdict.effective and verdict.beats_centre, name
        assert curves[name].deletion_auc < baseline["deletion_mean"] - baseline["deletion_sd"], name
        assert curves[name].insertion_auc > baseline["insertion_mean"] + baseline["insertion_sd"], name


def test_a_map_on_the_wrong_quadrant_is_not_effective(setup):
    curves, baseline, _ = setup
    wrong = curves["wrong quadrant"]
    assert not ff.judge(wrong, baseline, curves[ff.CENTRE]).effective
    assert wrong.deletion_auc > baseline["deletion_mean"] and wrong.insertion_auc < baseline["insertion_mean"]


def test_grad_cam_plus_plus_from_the_shared_backward_pass_is_the_packages(setup):
    from pytorch_grad_cam import GradCAMPlusPlus
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    _, _, (model, x, maps) = setup
    with GradCAMPlusPlus(model=model, target_layers=[model.features]) as plus:
        expected = plus(input_tensor=x, targets=[ClassifierOutputTarget(0)])[0]
    assert np.allclose(maps["Grad-CAM++"], expected, atol=1e-6)
    assert not np.allclose(maps["Grad-CAM++"], maps["Grad-CAM"], atol=1e-3)


def test_areas_and_rankings():
    assert ff.trapezoid([0, 0.5, 1], [1, 1, 0]) == pytest.approx(0.75)
    flat = np.zeros((4, 4))
    flat[0, 0] = 1
    order = ff.ranking(flat, seed=0)
    assert order[0] == 0 and sorted(order) == list(range(16))
    assert not np.array_equal(order[1:], np.arange(1, 16))   # ties are not taken in raster order
    with pytest.raises(ValueError, match="two seeds"):
        ff.random_baseline({"random 0": ff.Curves([0, 1], [1, 0], [0, 1])})

