"""Problem 2 analyses on hand-built feature maps and FC weights whose right answers are known."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision

from analyses import concept_units, unit_ablation
from analyses.feature_maps import chop, compute_feature_maps, fc_params, softmax


def planted_set(n: int = 20, c: int = 16, unit: int = 7, seed: int = 0):
    """n images: weak noise in every unit; ``unit`` has a bump centred on each image's concept, a 2 x 2-cell
    block (1/16 of the image) at a random place. Returns (maps, masks at 32 x 32, the strongest image)."""
    rng = np.random.default_rng(seed)
    maps, masks, peak = {}, {}, (None, -1.0)
    for i in range(n):
        m = rng.uniform(0, 0.1, (c, 8, 8)).astype(np.float32)
        r, q = rng.integers(0, 7, 2)
        amplitude = rng.uniform(3, 5)
        m[unit, r:r + 2, q:q + 2] = amplitude + rng.uniform(0, 0.01, (2, 2))
        mask = np.zeros((32, 32), dtype=bool)
        mask[4 * r: 4 * r + 8, 4 * q: 4 * q + 8] = True
        maps[f"img{i}"], masks[f"img{i}"] = m, {"sky": mask}
        peak = max(peak, (f"img{i}", amplitude), key=lambda t: t[1])
    return maps, masks, peak[0]


def test_concept_ranking_puts_the_planted_unit_first():
    maps, masks, strongest = planted_set()
    result = concept_units.dissect(maps, masks)
    for ranking in [result.overall["sky"], result.per_image[strongest]["sky"]]:
        assert ranking.order[0] == 7
        assert ranking.iou[7] >= concept_units.DETECTOR_IOU
        assert [d.unit for d in ranking.detectors()] == [7]
    assert result.overall["sky"].images == 20


def test_shift_null_and_cap_equal_a_direct_computation():
    maps, masks, _ = planted_set(n=3)
    result = concept_units.dissect(maps, masks)
    ranking = result.per_image["img1"]["sky"]
    mask = masks["img1"]["sky"]
    moves = concept_units.shifts(mask.shape)
    assert len(moves) == 63 and all(dy % 4 == 0 and dx % 4 == 0 for dy, dx in moves)   # 32 px / 8 steps
    best, used = [], 0
    for move in moves:
        moved = np.roll(mask, move, axis=(0, 1))
        if (moved & mask).sum() / (moved | mask).sum() >= concept_units.MAX_SELF_IOU:
            continue
        used += 1
        inter, union = concept_units.iou_counts(maps["img1"], result.thresholds, moved)
        best.append((inter / union).max())
    assert ranking.null_draws == used and ranking.null_level == pytest.approx(np.quantile(best, 0.95))
    # the cap: each unit's region size is fixed by its threshold; the best overlap is min/max of the areas
    active = np.stack([concept_units.upsample(maps["img1"][u], mask.shape) > result.thresholds[u]
                       for u in range(16)]).reshape(16, -1).sum(axis=1)
    area = mask.sum()
    assert ranking.cap == pytest.approx(max(min(a, area) / max(a, area) for a in active))


def test_noise_units_are_not_detectors_but_a_planted_one_is():
    maps, masks, _ = planted_set(n=6, seed=4)
    noise = {name: np.random.default_rng(i).uniform(0, 1, m.shape).astype(np.float32)
             for i, (name, m) in enumerate(maps.items())}
    assert concept_units.dissect(noise, masks).overall["sky"].detectors() == []
    planted = concept_units.dissect(maps, masks).overall["sky"]
    assert ([d.unit for d in planted.detectors()] == [7] and planted.above_null(7)
            and not planted.above_null(0))


def test_a_mask_that_no_shift_moves_has_no_null_and_no_calibrated_detector():
    maps, masks, _ = planted_set(n=2)
    band = np.zeros((32, 32), dtype=bool)
    band[:, :] = True
    whole = {name: {"sky": band} for name in masks}
    ranking = concept_units.dissect(maps, whole).overall["sky"]
    assert ranking.null_level is None and ranking.null_draws == 0 and ranking.detectors() == []
    top = np.zeros((32, 32), dtype=bool)
    top[:12] = True                                     # full width: horizontal shifts leave it in place
    ranking = concept_units.dissect(maps, {name: {"sky": top} for name in masks}).overall["sky"]
    assert 0 < ranking.null_draws < 63


def test_activity_rank_counts_units_with_a_larger_mean():
    maps = np.stack([np.full((2, 2), v, dtype=np.float32) for v in [0.5, 3.0, 1.0, 3.0]])
    assert [concept_units.activity_rank(maps, u) for u in range(4)] == [4, 1, 3, 2]   # ties by index


def test_thresholds_are_the_top_half_percent_quantile_over_all_images():
    maps = [np.arange(64, dtype=np.float32).reshape(1, 8, 8),
            np.arange(64, 128, dtype=np.float32).reshape(1, 8, 8)]
    assert concept_units.unit_thresholds(maps)[0] == pytest.approx(np.quantile(np.arange(128), 0.995))


def test_iou_counts_match_a_direct_computation():
    maps = np.random.default_rng(3).uniform(0, 1, (5, 8, 8)).astype(np.float32)
    thresholds = np.full(5, 0.6, dtype=np.float32)
    mask = np.zeros((24, 24), dtype=bool)
    mask[:12, :12] = True
    inter, union = concept_units.iou_counts(maps, thresholds, mask)
    for u in range(5):
        active = concept_units.upsample(maps[u], (24, 24)) > 0.6
        assert inter[0, u] == (active & mask).sum() and union[0, u] == (active | mask).sum()


def separable_head(c: int = 10):
    """pooled = 1 everywhere; class 0 logit = 12 - 3k after removing k of units 0..3; class 1 fixed at 7.5."""
    weight = np.zeros((3, c), dtype=np.float32)
    weight[0, :4] = 3.0
    weight[2, 4:] = -1.0
    bias = np.array([0.0, 7.5, 0.0], dtype=np.float32)
    return np.ones(c, dtype=np.float32), weight, bias


def test_sweep_smallest_k_equals_the_known_value():
    pooled, weight, bias = separable_head()
    s = unit_ablation.both_sweeps(pooled, weight, bias, limit=10)["by_weight"]
    assert s.cls == 0 and s.min_k == 2 and s.new_top1 == 1       # 12 - 3 = 9 > 7.5; 12 - 6 = 6 < 7.5
    assert list(s.order[:4]) == [0, 1, 2, 3]
    assert len(s.k) == 11 and s.k[0] == 0


def test_sweep_equals_zeroing_each_prefix_directly():
    rng = np.random.default_rng(5)
    pooled = rng.gamma(1.0, 1.0, 64).astype(np.float32)
    weight = rng.normal(0, 0.3, (20, 64)).astype(np.float32)
    bias = rng.normal(0, 0.1, 20).astype(np.float32)
    for name, s in unit_ablation.both_sweeps(pooled, weight, bias, limit=30).items():
        for k in range(31):
            direct = softmax(unit_ablation.ablated_logits(pooled, weight, bias, s.order[:k]))
            assert s.prob[k] == pytest.approx(direct[s.cls], abs=1e-9), (name, k)
            assert s.top1[k] == np.argmax(direct)


def test_no_flip_within_the_limit_is_reported_as_none():
    pooled, weight, bias = separable_head()
    bias[1] = -100.0
    s = unit_ablation.sweep(pooled, weight, bias, unit_ablation.rank_by_weight(weight, 0), limit=1)
    assert s.min_k is None and s.new_top1 is None


def test_contribution_ranking_can_need_fewer_units():
    # units 0..3: big weight, tiny activation; units 4..5: small weight, big activation
    pooled = np.array([0.01, 0.01, 0.01, 0.01, 10.0, 10.0], dtype=np.float32)
    weight = np.array([[1.0, 1.0, 1.0, 1.0, 0.5, 0.5], [0, 0, 0, 0, 0, 0]], dtype=np.float32)
    bias = np.array([0.0, 6.0], dtype=np.float32)
    sweeps = unit_ablation.both_sweeps(pooled, weight, bias, limit=6)
    assert sweeps["by_contribution"].min_k == 1
    assert sweeps["by_weight"].min_k == 5


def test_ablating_zero_units_changes_nothing():
    pooled, weight, bias = separable_head()
    logits = unit_ablation.logits_of(pooled, weight, bias)
    assert np.array_equal(unit_ablation.ablated_logits(pooled, weight, bias, []), logits)
    s = unit_ablation.both_sweeps(pooled, weight, bias, limit=5)["by_weight"]
    assert s.prob[0] == pytest.approx(softmax(logits)[0], abs=1e-12)


def test_top5_ablation_zeroes_the_five_largest_weights_of_the_top1_class():
    rng = np.random.default_rng(2)
    pooled = rng.gamma(1.0, 1.0, 32).astype(np.float32)
    weight = rng.normal(0, 1, (6, 32)).astype(np.float32)
    ab = unit_ablation.ablate_top_units(pooled, weight, np.zeros(6, np.float32))
    assert ab.cls == int(np.argmax(weight @ pooled))
    assert set(ab.units) == set(np.argsort(-weight[ab.cls])[:5])
    kept = pooled.copy()
    kept[ab.units] = 0
    assert np.allclose(ab.probs_after, softmax(weight.astype(np.float64) @ kept))


@pytest.fixture(scope="module")
def tiny_resnet():
    torch.manual_seed(0)
    return torchvision.models.resnet18(num_classes=365).eval()


def test_chopped_model_and_feature_maps_reproduce_the_full_model(tiny_resnet):
    from PIL import Image

    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 50, 3), dtype=np.uint8))
    fm = compute_feature_maps(tiny_resnet, image, 64, "cpu")
    assert fm.chopped_shape == (1, 512, 2, 2) and fm.input_shape == (1, 3, 64, 64)
    assert [type(m).__name__ for m in chop(tiny_resnet)][-1] == "Sequential"   # ends with layer4
    from analyses.feature_maps import preprocess
    with torch.no_grad():
        full = tiny_resnet(preprocess(image, 64))[0].numpy()
    assert np.allclose(fm.logits, full, atol=1e-4)
    weight, bias = fc_params(tiny_resnet)
    assert np.allclose(unit_ablation.logits_of(fm.pooled, weight, bias), full, atol=1e-4)


def test_zeroing_feature_maps_equals_zeroing_the_pooled_entries(tiny_resnet):
    rng = np.random.default_rng(1)
    maps = rng.gamma(1.0, 1.0, (512, 8, 8)).astype(np.float32)
    units = [3, 100, 511]
    zeroed = torch.from_numpy(maps.copy())[None]
    zeroed[0, units] = 0
    with torch.no_grad():
        expected = tiny_resnet.fc(torch.flatten(tiny_resnet.avgpool(zeroed), 1))[0].double().numpy()
    weight, bias = fc_params(tiny_resnet)
    got = unit_ablation.ablated_logits(maps.mean(axis=(1, 2)), weight, bias, units)
    assert np.allclose(got, expected, atol=1e-4)


# ------------------------------------------------------------------ 2d: the exact minimum against brute force

def brute_force_minimum(pooled, weight, bias) -> int | None:
    """Fewest units of any subset whose zeroing changes the argmax of the recomputed logits (None: none
    does)."""
    from itertools import combinations

    cls = int(np.argmax(unit_ablation.logits_of(pooled, weight, bias)))
    for k in range(1, len(pooled) + 1):
        if any(unit_ablation.top1_changes(pooled, weight, bias, units, cls)
               for units in combinations(range(len(pooled)), k)):
            return k
    return None


def check_against_brute_force(pooled, weight, bias):
    exact = unit_ablation.exact_minimum(pooled, weight, bias)
    assert exact.k == brute_force_minimum(pooled, weight, bias)
    if exact.k is None:
        assert len(exact.units) == 0 and exact.new_top1 is None and exact.prob_after is None
        return exact
    assert len(set(exact.units.tolist())) == exact.k == len(exact.units)
    after = unit_ablation.ablated_logits(pooled, weight, bias, exact.units)
    assert exact.new_top1 == int(np.argmax(after)) != exact.cls
    assert exact.prob_after == pytest.approx(softmax(after)[exact.cls], abs=1e-12)
    return exact


@pytest.mark.parametrize("seed", range(150))
def test_exact_minimum_equals_brute_force_on_random_layers(seed):
    rng = np.random.default_rng(seed)
    pooled = rng.gamma(0.8, 1.0, 10) * (rng.uniform(size=10) > 0.2)   # some units silent, as after ReLU
    weight = rng.normal(0, 1, (6, 10))
    bias = rng.normal(0, 2 if seed % 3 else 8, 6)                      # large biases: often nothing flips
    exact = check_against_brute_force(pooled, weight, bias)
    for name, s in unit_ablation.both_sweeps(pooled, weight, bias, limit=10).items():
        assert s.min_k is None or exact.k <= s.min_k, name                 # the rankings are upper bounds


def test_random_layers_cover_both_outcomes():
    """The parametrised seeds above include layers where a subset flips and layers where none does."""
    outcomes = set()
    for seed in range(150):
        rng = np.random.default_rng(seed)
        pooled = rng.gamma(0.8, 1.0, 10) * (rng.uniform(size=10) > 0.2)
        weight, bias = rng.normal(0, 1, (6, 10)), rng.normal(0, 2 if seed % 3 else 8, 6)
        outcomes.add(unit_ablation.exact_minimum(pooled, weight, bias).k is None)
    assert outcomes == {True, False}


def test_exact_tie_with_a_lower_index_rival_flips():
    # integer weights, exact in float64: class 1 leads class 0 by 2; zeroing unit 0 makes them level,
    # and np.argmax then picks class 0: the top-1 class changes with one unit
    pooled = np.ones(4)
    weight = np.array([[0.0, 1, 1, 1], [2.0, 1, 1, 1], [0.0, 0, 0, 0]])
    bias = np.array([0.0, 0.0, -10.0])
    after = unit_ablation.ablated_logits(pooled, weight, bias, [0])
    assert int(np.argmax(unit_ablation.logits_of(pooled, weight, bias))) == 1 and after[0] == after[1]
    exact = check_against_brute_force(pooled, weight, bias)
    assert exact.k == 1 and list(exact.units) == [0] and exact.rival == 0 and exact.new_top1 == 0


def test_exact_tie_with_a_higher_index_rival_does_not_flip():
    # class 0 leads class 2 by 2; zeroing unit 0 makes them level, which keeps class 0 (lowest index):
    # unit 1 (margin drop 0.5) is needed too
    pooled = np.ones(4)
    weight = np.array([[2.0, 1, 1, 1], [0.0, 0, 0, 0], [0.0, 0.5, 1, 1]])
    bias = np.array([0.0, -10.0, 0.5])
    after = unit_ablation.ablated_logits(pooled, weight, bias, [0])
    assert after[0] == after[2] and not unit_ablation.top1_changes(pooled, weight, bias, [0], 0)
    exact = check_against_brute_force(pooled, weight, bias)
    assert exact.k == 2 and sorted(exact.units) == [0, 1] and exact.rival == 2


def test_no_subset_flips_when_the_bias_decides():
    pooled, weight = np.ones(5), np.abs(np.random.default_rng(0).normal(0, 1, (4, 5)))
    bias = np.array([100.0, 0.0, 0.0, 0.0])
    exact = check_against_brute_force(pooled, weight, bias)
    assert exact.k is None and exact.rival in (1, 2, 3)
    few = unit_ablation.fewest_units(pooled, weight, bias, limit=5)
    assert few.greedy_excess == {"by_weight": None, "by_contribution": None}


def test_greedy_rankings_can_need_more_units_than_the_exact_minimum():
    # unit 0: largest weight AND contribution for class 0, but the rival has the same weight: zeroing it
    # moves no margin. Unit 1 alone closes class 1's margin of 3 by 4.
    pooled = np.array([1.0, 1.0])
    weight = np.array([[5.0, 1.0], [5.0, -3.0], [5.0, 0.0]])
    bias = np.array([0.0, 1.0, -100.0])
    few = unit_ablation.fewest_units(pooled, weight, bias, limit=2)
    assert few.exact.k == 1 and list(few.exact.units) == [1] and few.exact.new_top1 == 1
    assert few.sweeps["by_weight"].min_k == 2 and few.sweeps["by_contribution"].min_k == 2
    assert few.greedy_excess == {"by_weight": 1, "by_contribution": 1}
    check_against_brute_force(pooled, weight, bias)


def test_exact_minimum_is_fast_at_places365_size():
    import time

    rng = np.random.default_rng(0)
    pooled = rng.gamma(1.0, 1.0, 2048).astype(np.float32)
    weight = rng.normal(0, 0.05, (365, 2048)).astype(np.float32)
    start = time.perf_counter()
    exact = unit_ablation.exact_minimum(pooled, weight, np.zeros(365, np.float32))
    assert time.perf_counter() - start < 2.0   # one sort per class; a forward per subset would be hopeless
    assert exact.k is not None and unit_ablation.top1_changes(pooled, weight, np.zeros(365), exact.units,
                                                              exact.cls)


def test_ablation_rank_and_change_flags():
    pooled, weight, bias = separable_head()          # logits 12, 7.5, -6
    ab = unit_ablation.ablate_top_units(pooled, weight, bias, 4)
    assert ab.top1_changed and ab.rank_after == 2     # class 0 falls to 0: below 7.5, above -6
    kept = unit_ablation.ablate_top_units(pooled, weight, bias, 1)
    assert not kept.top1_changed and kept.rank_after == 1
