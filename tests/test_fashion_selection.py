"""Problem 4d's selection: the paired tests, Holm's correction, the compute budget and the final choice
(every branch), the one-sentence conclusions, and the MAC count the budget rests on."""
import itertools
import zlib
from dataclasses import replace

import numpy as np
import pytest
import torch

from analyses.fashion_mnist import grid as fgrid
from analyses.fashion_mnist import selection as fsel
from analyses.fashion_mnist import summary as fsum
from analyses.fashion_mnist.model import ModelConfig, build_model, count_macs
from analyses.fashion_mnist.train import TrialConfig
from miniplaces.report.answers import fashion_mnist as sentences
from miniplaces.report.sections import fashion_mnist as section

scipy_stats = pytest.importorskip("scipy.stats")


# --- the tests themselves -----------------------------------------------------------------------

@pytest.mark.parametrize("b, c", [(0, 6), (6, 0), (3, 3), (0, 0), (1, 12), (40, 5), (480, 540), (2500, 2610)])
def test_exact_mcnemar_is_the_two_sided_binomial_test_on_the_discordant_pairs(b, c):
    expected = 1.0 if b + c == 0 else scipy_stats.binomtest(b, b + c, 0.5).pvalue
    assert fsel.exact_mcnemar(b, c) == pytest.approx(expected, rel=1e-9)


def test_exact_mcnemar_by_hand():
    assert fsel.exact_mcnemar(0, 6) == 2 / 64          # both tails of 6 coin flips all the same way
    assert fsel.exact_mcnemar(1, 5) == pytest.approx(2 * 7 / 64)


def _brute_force_sign_flip(d):
    """Every sign pattern of the non-zero differences, equally likely: P(|sum| >= |observed|)."""
    nonzero = [x for x in d if x]
    observed = abs(sum(d))
    hits = sum(abs(sum(s * x for s, x in zip(signs, nonzero))) >= observed
               for signs in itertools.product((1, -1), repeat=len(nonzero)))
    return hits / 2 ** len(nonzero)


@pytest.mark.parametrize("seed", range(12))
def test_sign_flip_test_is_exact_against_enumeration(seed):
    rng = np.random.default_rng(seed)
    d = rng.integers(-3, 4, size=int(rng.integers(1, 15)))
    assert fsel.sign_flip_p(d) == pytest.approx(_brute_force_sign_flip(d.tolist()), rel=1e-9, abs=1e-15)


def test_sign_flip_with_one_seed_is_mcnemar():
    d = np.array([1] * 30 + [-1] * 12 + [0] * 900)
    assert fsel.sign_flip_p(d) == fsel.exact_mcnemar(30, 12)
    assert fsel.sign_flip_p(np.zeros(5, dtype=int)) == 1.0


def test_holm_by_hand():
    assert fsel.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert fsel.holm([0.5]) == [0.5]
    assert fsel.holm([0.2, 0.6]) == pytest.approx([0.4, 0.6])   # adjusted values never decrease with p
    assert fsel.holm([0.3, 0.9, 0.8]) == pytest.approx([0.9, 1.0, 1.0])   # 3 x 0.3; 2 x 0.8 capped at 1


def _correct(n, wrong, flip_to_right=(), flip_to_wrong=()):
    """A per-image correctness array: everything right except ``wrong``, then the given changes."""
    ok = np.ones(n, dtype=bool)
    ok[list(wrong)] = False
    ok[list(flip_to_right)] = True
    ok[list(flip_to_wrong)] = False
    return ok


def _result(seed, ok):
    return {"seed": seed, "val_correct": ok, "val_acc": float(ok.mean()), "status": "ok"}


def test_paired_test_counts_discordant_images_and_matches_seeds():
    base0 = _correct(1000, range(100))
    base1 = _correct(1000, range(50, 150))
    baseline = [_result(0, base0), _result(1, base1)]
    variant = [_result(1, _correct(1000, range(50, 150), flip_to_right=range(50, 80), flip_to_wrong=[900])),
               _result(0, _correct(1000, range(100), flip_to_right=range(50, 70), flip_to_wrong=[990, 991]))]
    test = fsel.paired_test(variant, baseline)
    assert test["per_seed"][0]["seed"] == 1 and test["per_seed"][0]["discordant"] == [30, 1]
    assert test["per_seed"][1]["discordant"] == [20, 2]
    assert test["per_seed"][1]["p_value"] == fsel.exact_mcnemar(20, 2)
    assert test["discordant"] == [50, 3] and test["seeds"] == 2 and test["images"] == 1000
    assert test["delta_pp"] == pytest.approx((2.9 + 1.8) / 2)
    assert test["seed_delta_std_pp"] == pytest.approx(np.std([2.9, 1.8], ddof=1))
    # images 50-69 flip in both seeds: their per-image sums are 2, so this is the sign-flip test, which keeps
    # an image one unit, not a binomial test on 53 pooled discordant pairs
    assert test["p_value"] < 1e-6 and test["p_value"] != fsel.exact_mcnemar(50, 3)
    assert fsel.paired_test([{"seed": 0, "val_correct": None, "val_acc": None}], baseline) is None
    with pytest.raises(ValueError, match="paired"):
        fsel.paired_test([_result(0, np.ones(999, dtype=bool))], baseline)


def test_family_verdicts_follow_holm_adjusted_p():
    base = _correct(2000, range(200))
    results = {
        "baseline": [_result(0, base)],
        "a: better": [_result(0, _correct(2000, range(200), flip_to_right=range(40),
                                          flip_to_wrong=[1999, 1998]))],
        "a: worse": [_result(0, _correct(2000, range(200), flip_to_wrong=range(1000, 1040)))],
        "a: same": [_result(0, _correct(2000, range(200), flip_to_right=range(6),
                                        flip_to_wrong=[1500, 1501]))],
        # 6 vs 0: p = 2 / 64 alone, too weak once corrected for four comparisons (Holm: 2 x 2 / 64)
        "a: borderline": [_result(0, _correct(2000, range(200), flip_to_right=range(6)))],
        "a: diverged": [{"seed": 0, "val_correct": None, "val_acc": None, "status": "diverged"}],
    }
    tests = fsel.test_family(results, "baseline", [n for n in results if n != "baseline"])
    assert {n: t and t["verdict"] for n, t in tests.items()} == {
        "a: better": "better", "a: worse": "worse", "a: same": "no measurable difference",
        "a: borderline": "no measurable difference", "a: diverged": None}
    assert tests["a: borderline"]["p_value"] < 0.05 <= tests["a: borderline"]["p_adjusted"]
    assert tests["a: better"]["discordant"] == [40, 2]
    info = fsel.family_info(tests, fsel.CORRECTION)
    assert info == {"name": "exact McNemar (two-sided)",
                    "correction": "Holm over all 4 variants of the grid",
                    "alpha": 0.05, "k": 4, "images": 2000, "seeds": 1}
    one = fsel.family_info({"a: better": tests["a: better"]}, fsel.CORRECTION)
    assert one["k"] == 1 and one["correction"] == "one comparison, so no correction"     # no Holm for k = 1


# --- the MAC count ------------------------------------------------------------------------------

def test_count_macs_by_hand():
    # 28x28: conv 1->4 (28*28*4*9); pool to 14; conv 4->8 twice (14*14*8*4*9 + 14*14*8*8*9); pool to 7;
    # hidden 8*7*7 -> 16, classifier 16 -> 10
    config = ModelConfig(channels=(4, 8), depth=(1, 2), hidden=16)
    assert count_macs(config) == (
        28 * 28 * 4 * 9 + 14 * 14 * 8 * 4 * 9 + 14 * 14 * 8 * 8 * 9 + 392 * 16 + 16 * 10)
    # the standard baseline: 32-64-128 channels, depth 1-1-2 (the 7 x 7 stage pools to 3 x 3)
    assert count_macs(ModelConfig(channels=(32, 64, 128), depth=(1, 1, 2))) == (
        28 * 28 * 32 * 9 + 14 * 14 * 64 * 32 * 9 + 7 * 7 * 128 * 64 * 9 + 7 * 7 * 128 * 128 * 9
        + 128 * 9 * 10)


@pytest.mark.parametrize("config", [ModelConfig(), ModelConfig(channels=(16, 32), depth=2, hidden=64),
                                    ModelConfig(channels=(8, 16, 32, 64), depth=(2, 1, 1, 3), flip_tta=True)])
def test_count_macs_matches_torch_flop_counter(config):
    from torch.utils.flop_counter import FlopCounterMode

    net = build_model(config).train()   # one pass: flip TTA is an evaluation-time cost
    with FlopCounterMode(display=False) as counter:
        net(torch.rand(2, 1, 28, 28))        # two images: BatchNorm needs more than one value in training
    assert counter.get_total_flops() == 2 * 2 * count_macs(config)  # torch counts a multiply-add as two FLOPs


# --- budget and final choice --------------------------------------------------------------------

def _budget_grid(budget=0.0, finalists=1):
    return fgrid.parse_grid({"base": {"epochs": 1, "channels": [8, 16]}, "final": {"epochs": 2},
                             "finalists": finalists, "final_budget_tmacs": budget,
                             "axes": {"width": [{"channels": [32, 64]}, {"channels": [4, 8]}],
                                      "lr": [{"lr": 0.01}]}}, "b.toml")


def _grid_results(grid, accs):
    specs = fgrid.one_at_a_time(grid, 0)
    return specs, {s.name: [{"seed": 0, "val_acc": accs[s.name], "train_s": 1.0}] for s in specs}


WIDE, NARROW, LR = "width: channels=32x64", "width: channels=4x8", "lr: lr=0.01"


def test_final_training_cost_is_macs_times_images_times_epochs():
    grid = _budget_grid()
    cost = fsel.final_tmacs(grid, grid.base, 60_000)
    assert cost == pytest.approx(count_macs(ModelConfig(channels=(8, 16))) * 3 * 60_000 * 2 / 1e12)


def test_with_final_min_epochs_the_budget_sets_each_networks_epochs_down_to_the_floor():
    raw = {"base": {"epochs": 1, "channels": [8, 16]}, "final": {"epochs": 10}, "final_min_epochs": 4,
           "axes": {"width": [{"channels": [32, 64]}, {"channels": [4, 8]}, {"channels": [12, 24]}]}}
    per_epoch = fgrid.training_tmacs(TrialConfig(epochs=1, channels=(8, 16)), 60_000)
    grid = fgrid.parse_grid({**raw, "final_budget_tmacs": 6.5 * per_epoch}, "b.toml")  # 6 epochs fit
    specs, results = _grid_results(grid, {"baseline": 0.80, WIDE: 0.90, NARROW: 0.70,
                                          "width: channels=12x24": 0.85})
    epochs = {s.name: fsel.final_config(grid, s.config, 60_000).epochs for s in specs}
    # the narrow net keeps its 10 epochs, the baseline gets the 6 that fit; the 12-24 net would need
    # fewer than 4 (about 2.25 times the baseline's cost per epoch) and the wide one far fewer: both over
    assert epochs == {"baseline": 6, NARROW: 10, "width: channels=12x24": 4, WIDE: 4}
    budget = fsel.budget_split(grid, results, specs, 60_000)
    assert budget.over == [WIDE, "width: channels=12x24"]
    assert budget.cost["baseline"] == pytest.approx(6 * per_epoch) and budget.cost["baseline"] <= budget.limit
    decision = fsel.decide(results, budget)
    final = fsel.final_spec(grid, decision.chosen, specs, 0, 60_000)
    assert decision.chosen == "baseline" and final.config.epochs == 6 and final.overrides["epochs"] == 6
    # idempotent, so a finalist (already at its final epochs) becomes the same final model
    assert fsel.final_config(grid, final.config, 60_000) == final.config
    # the report says how many epochs and why
    limit = budget.limit
    assert section.final_epochs_json(grid, final.config, limit)["text"] == (
        f"6 epochs (the most that fit the budget of {limit:g} TMAC: the grid asks for 10, or as many as fit "
        "down to 4)")
    narrow = fsel.final_config(grid, next(s.config for s in specs if s.name == NARROW), 60_000)
    assert section.final_epochs_json(grid, narrow, limit)["text"].startswith("10 epochs (the grid's count;")
    wide = fsel.final_config(grid, next(s.config for s in specs if s.name == WIDE), 60_000)
    assert section.final_epochs_json(grid, wide, limit)["text"].startswith(
        "4 epochs (the floor: the grid asks for 10, or as many as fit the budget")
    # without the floor the [final] epochs stand and the budget only rules out
    fixed = replace(grid, final_min_epochs=0)
    assert fsel.final_config(fixed, grid.base, 60_000).epochs == 10
    assert fsel.budget_split(fixed, results, specs, 60_000).within == [NARROW]
    assert section.final_epochs_json(fixed, narrow, limit) == {"asked": 10, "min": None, "trained": 10,
                                                               "text": "10 epochs"}


@pytest.mark.parametrize("raw, message", [
    ({"final_min_epochs": 4, "final": {"epochs": 10}}, "final_budget_tmacs, which is not set"),
    ({"final_min_epochs": 12, "final_budget_tmacs": 50, "final": {"epochs": 10}},
     "more than the final model's 10"),
    ({"final_min_epochs": -1, "final_budget_tmacs": 50}, "must be an integer from 0 to 1000"),
])
def test_final_min_epochs_is_checked(raw, message):
    with pytest.raises(fgrid.GridError, match=message):
        fgrid.parse_grid({"base": {"epochs": 1}, **raw}, "b.toml")


def test_decision_by_accuracy_without_and_within_budget():
    grid = _budget_grid(finalists=0)
    specs, results = _grid_results(grid, {"baseline": 0.80, WIDE: 0.90, NARROW: 0.70, LR: 0.85})
    budget = fsel.budget_split(grid, results, specs, 60_000)
    decision = fsel.decide(results, budget)
    assert (decision.chosen, decision.rule, decision.excluded) == (WIDE, "accuracy", [])
    text = section.decision_json(decision, fsum.decision_accuracies(decision, results, results),
                                 60_000)["text"]
    assert text == (f"The final model retrains {WIDE}, which has the best validation accuracy of the grid "
                    f"configurations (90.00 %); no compute budget was set. It was picked from 4 grid "
                    f"configurations by the same validation images that measure its lead over the "
                    f"baseline, so that lead is biased upward, and no finalist stage retrained the two at "
                    f"full scale to check it (the full preset does).")
    # a budget every configuration fits: the choice is by accuracy, and the sentence says it fits
    limited = replace(grid, final_budget_tmacs=budget.cost[WIDE] + 1)
    budget = fsel.budget_split(limited, results, specs, 60_000)
    decision = fsel.decide(results, budget)
    assert (decision.chosen, decision.rule) == (WIDE, "accuracy")
    shown = section.decision_json(decision, fsum.decision_accuracies(decision, results, results), 60_000)
    assert shown["rule"] == "accuracy" and shown["budget"]["limit_tmacs"] == limited.final_budget_tmacs
    assert "within the budget of" in shown["text"] and f"{budget.cost[WIDE]:.0f} TMAC" in shown["text"]


def test_a_choice_made_in_the_grid_cites_its_paired_test_and_says_it_was_the_best_of_k():
    grid = _budget_grid(finalists=0)
    specs, results = _grid_results(grid, {"baseline": 0.80, WIDE: 0.90, NARROW: 0.70, LR: 0.85})
    decision = fsel.decide(results, fsel.budget_split(grid, results, specs, 60_000))
    test = {"discordant": [40, 10], "p_value": 1e-5, "p_adjusted": 2e-5, "verdict": "better", "delta_pp": 0.3,
            "seeds": 1, "seed_delta_std_pp": None, "per_seed": []}
    accuracies = fsum.decision_accuracies(decision, results, results, {WIDE: test, NARROW: None, LR: None})
    assert accuracies["chosen_test"]["p_adjusted"] == 2e-5 and accuracies["pool_size"] == 4
    text = section.decision_json(decision, accuracies, 60_000)["text"]
    assert "It was picked from 4 grid configurations" in text
    assert ("its lead over the baseline (+0.30 pp; paired test: better, adjusted p < 0.001), so that lead is "
            "biased upward") in text
    # the baseline chosen, or a choice among finalists (retrained against the baseline): no such caveat
    _, base_wins = _grid_results(grid, {"baseline": 0.95, WIDE: 0.90, NARROW: 0.70, LR: 0.85})
    decision = fsel.decide(base_wins, fsel.budget_split(grid, base_wins, specs, 60_000))
    assert decision.chosen == "baseline"
    accuracies = fsum.decision_accuracies(decision, base_wins, base_wins)
    text = section.decision_json(decision, accuracies, 60_000)["text"]
    assert "was picked from" not in text
    finalists = {f"finalist: {WIDE}": results[WIDE], "finalist: baseline": results["baseline"]}
    decision = fsel.decide(finalists, fsel.budget_split(grid, results, specs, 60_000))
    accuracies = fsum.decision_accuracies(decision, results, finalists)
    text = section.decision_json(decision, accuracies, 60_000)["text"]
    assert "of the finalists" in text and "was picked from" not in text


def test_decision_when_the_budget_excludes_the_better_configuration():
    grid = _budget_grid(finalists=0)
    specs, results = _grid_results(grid, {"baseline": 0.80, WIDE: 0.90, NARROW: 0.70, LR: 0.85})
    cost = fsel.budget_split(grid, results, specs, 60_000).cost
    grid = replace(grid, final_budget_tmacs=cost["baseline"])          # the wide net is over, the rest fit
    budget = fsel.budget_split(grid, results, specs, 60_000)
    assert budget.over == [WIDE] and budget.within == [LR, "baseline", NARROW]
    decision = fsel.decide(results, budget)
    assert (decision.chosen, decision.rule, decision.excluded) == (LR, "budget", [WIDE])
    shown = section.decision_json(decision, fsum.decision_accuracies(decision, results, results), 60_000)
    assert shown["excluded"] == [WIDE] and shown["budget"]["over"] == [WIDE]
    assert shown["text"].startswith(   # then the caveat of any choice made in the grid
        f"The final model retrains {LR} (85.00 % validation accuracy), because {WIDE} ranked higher in the "
        f"grid (90.00 %) but needs {cost[WIDE]:.0f} TMAC to train, over the budget of "
        f"{grid.final_budget_tmacs:g} TMAC. It was picked from 4 grid configurations")


def test_decision_when_nothing_fits_the_budget():
    grid = _budget_grid(finalists=0)
    specs, results = _grid_results(grid, {"baseline": 0.80, WIDE: 0.90, NARROW: 0.70, LR: 0.85})
    grid = replace(grid, final_budget_tmacs=1e-9)
    budget = fsel.budget_split(grid, results, specs, 60_000)
    decision = fsel.decide(results, budget)
    assert (decision.chosen, decision.rule, budget.within) == (WIDE, "none_within_budget", [])
    text = section.decision_json(decision, fsum.decision_accuracies(decision, results, results),
                                 60_000)["text"]
    assert text.startswith("No candidate's final training fits the budget of 1e-09 TMAC (the cheapest, "
                           f"{NARROW}, needs")
    assert f"grid configurations, {WIDE} (90.00 %). It was picked from" in text


def test_over_budget_configurations_are_not_finalists_and_the_baseline_always_is():
    grid = _budget_grid(finalists=1)
    specs, results = _grid_results(grid, {"baseline": 0.80, WIDE: 0.90, NARROW: 0.70, LR: 0.85})
    free = fsel.finalist_specs(grid, results, specs, 0, fsel.budget_split(grid, results, specs, 60_000),
                                60_000)
    assert [s.name for s in free] == [f"finalist: {WIDE}", "finalist: baseline"]
    assert all(s.stage == "finalist" and s.config.epochs == 2 for s in free)
    cost = fsel.budget_split(grid, results, specs, 60_000).cost
    grid = replace(grid, final_budget_tmacs=cost["baseline"])
    limited = fsel.finalist_specs(grid, results, specs, 0, fsel.budget_split(grid, results, specs, 60_000),
                                60_000)
    assert [s.name for s in limited] == [f"finalist: {LR}", "finalist: baseline"]


def _fake_execute(accuracy, n=4000):
    """Trials without training: each config's per-image correctness is drawn with a seed of its own, at
    the accuracy ``accuracy(config)`` gives; ``train_s`` varies as on a busy machine."""
    calls = []

    def execute(specs, stage):
        calls.append((stage, [s.name for s in specs]))
        out = []
        for spec in specs:
            key = zlib.crc32(repr((spec.config, spec.seed, spec.stage)).encode())
            rng = np.random.default_rng(key)
            ok = rng.random(n) < accuracy(spec.config)
            out.append(({"seed": spec.seed, "val_correct": ok, "val_acc": float(ok.mean()), "status": "ok",
                         "train_s": float(rng.random() * 100)}, False))
        return out
    return execute, calls


def _accuracy(config):
    return 0.80 + 0.06 * (config.channels[0] >= 32) + 0.02 * (config.lr == 0.01) + 0.04 * (config.epochs > 1)


def test_holm_corrects_over_every_variant_of_the_grid_not_per_axis():
    """The report counts better/worse over the whole grid, so the correction runs over all its variants:
    a per-axis correction would leave the lr axis's single variant uncorrected."""
    grid = _budget_grid(finalists=0)
    execute, _ = _fake_execute(_accuracy)
    sel = fsel.select(grid, fgrid.one_at_a_time(grid, 0), 0, execute, 60_000)
    tests = {name: test for family in sel.axis_tests.values() for name, test in family.items()}
    assert list(tests) == [WIDE, NARROW, LR]
    assert [tests[n]["p_adjusted"] for n in tests] == fsel.holm([tests[n]["p_value"] for n in tests])
    assert tests[LR]["p_adjusted"] > tests[LR]["p_value"]
    family = fsum.grid_family_info(sel)
    assert family["k"] == 3 and family["members"] == [WIDE, NARROW, LR]
    assert family["correction"] == "Holm over all 3 variants of the grid"
    assert all(axis["test"]["k"] == 3 for axis in fsum.axis_tables(grid, sel))


def test_select_runs_the_search_and_tests_each_stage():
    grid = replace(_budget_grid(finalists=1), repeats=2)
    execute, calls = _fake_execute(_accuracy)
    sel = fsel.select(grid, fgrid.one_at_a_time(grid, 0), 0, execute, 60_000)
    combined = "combined: channels=32x64, lr=0.01"
    assert [stage for stage, _ in calls] == ["grid", "combination", "finalists"]
    assert sel.best == {"width": WIDE, "lr": LR} and combined in sel.grid.results
    assert sel.axis_tests["width"][WIDE]["verdict"] == "better"
    assert sel.axis_tests["width"][NARROW]["verdict"] == "no measurable difference"
    assert sel.combined_test["verdict"] == "better"
    assert list(sel.finalists.results) == [f"finalist: {combined}", "finalist: baseline"]
    assert sel.finalist_tests[f"finalist: {combined}"]["seeds"] == 2
    assert sel.decision.chosen == f"finalist: {combined}" and sel.decision.rule == "accuracy"
    assert sel.final_spec.name == f"final ({combined})" and sel.final_spec.stage == "final"
    assert sel.combined_from == sel.best    # without a budget the combination takes each axis's best
    # a budget the wide network is over: the combination takes the best width within it, which keeps it
    # a candidate; the wide network is not retrained at full scale, and the budget decided
    cost = sel.decision.budget.cost
    limited = replace(grid, final_budget_tmacs=cost[LR])
    sel = fsel.select(limited, fgrid.one_at_a_time(limited, 0), 0, execute, 60_000)
    results = sel.grid.results
    assert fsel.mean_val_acc(results[NARROW]) > fsel.mean_val_acc(results["baseline"])  # the fake's draws
    assert sel.best["width"] == WIDE and sel.combined_from == {"width": NARROW, "lr": LR}
    assert "combined: channels=4x8, lr=0.01" in results and combined not in results
    assert sel.decision.rule == "budget" and sel.decision.excluded == [WIDE]
    assert all(fsel.grid_name(n) not in sel.decision.budget.over for n in sel.finalists.results)


def test_the_report_says_which_best_value_the_combination_left_out_for_the_budget():
    def accuracy(config):   # the narrow net is worse: the best affordable width is the baseline's
        return _accuracy(config) - 0.04 * (config.channels[0] < 8)
    grid = replace(_budget_grid(finalists=0), repeats=2)
    execute, calls = _fake_execute(accuracy)
    limit = fsel.final_tmacs(grid, grid.base, 60_000)   # the baseline's width fits, the wide one does not
    grid = replace(grid, final_budget_tmacs=limit)
    sel = fsel.select(grid, fgrid.one_at_a_time(grid, 0), 0, execute, 60_000)
    assert [stage for stage, _ in calls] == ["grid"]   # the combination is a trained config: nothing ran
    c = fsum.combination_summary(grid, sel)
    assert c["from"] == {"width": "the baseline's value", "lr": "lr=0.01"} and c["same_as"] == LR
    assert not any(s.axis == "combined" for s in sel.grid.specs)
    wide = sel.decision.budget.cost[WIDE]
    assert sentences.combination_text(c) == (
        f"then the combination of each axis's best value whose final training fits the budget of {limit:g} "
        f"TMAC is the grid's {LR}, so it was not trained again (channels=32x64, the best of width, needs "
        f"{wide:.3g} TMAC, so it kept the baseline's value)")
    unlimited = replace(grid, final_budget_tmacs=0.0)
    sel = fsel.select(unlimited, fgrid.one_at_a_time(unlimited, 0), 0, execute, 60_000)
    c = fsum.combination_summary(unlimited, sel)
    assert c["left_out"] == []
    assert sentences.combination_text(c) == "then the combination of each axis's best value was trained"
    assert fsum.combination_summary(replace(unlimited, combine=False), sel) is None


def test_same_inputs_give_the_same_final_model_whatever_the_speed():
    grid = replace(_budget_grid(finalists=1), final_budget_tmacs=0.5)   # the 32-64 nets (1.4 TMAC) are over
    chosen = set()
    for slowdown in (1, 7):
        execute, _ = _fake_execute(_accuracy)

        def slow(specs, stage, execute=execute, slowdown=slowdown):
            return [({**r, "train_s": r["train_s"] * slowdown}, c) for r, c in execute(specs, stage)]
        sel = fsel.select(grid, fgrid.one_at_a_time(grid, 0), 0, slow, 60_000)
        chosen.add((sel.final_spec.config, sel.decision.rule))
    assert len(chosen) == 1


# --- the sentences ------------------------------------------------------------------------------

def _row(variant, mean, verdict=None, discordant=(0, 0), base=0.911, seeds=1, status="ok"):
    test = None if verdict is None else {"discordant": list(discordant), "p_value": 0.001,
                                         "p_adjusted": 0.003,
                                         "verdict": verdict, "delta_pp": 100 * (mean - base), "seeds": seeds,
                                         "seed_delta_std_pp": None,
                                         "per_seed": [{"delta_pp": 100 * (mean - base)}] * seeds}
    return {"variant": variant, "mean": mean, "status": status,
            "delta_pp": None if mean is None else 100 * (mean - base), "test": test}


INFO = {"name": "exact McNemar (two-sided)", "k": 3, "images": 10000, "seeds": 1,
        "correction": "Holm over all 3 variants of the grid"}


def test_conclusion_names_the_significant_gain_with_its_evidence():
    rows = [_row("baseline", 0.911), _row("augment=flip", 0.920, "better", (610, 520)),
            _row("augment=flip+crop+erase", 0.909, "no measurable difference", (300, 320)),
            _row("augment=none", 0.880, "worse", (100, 410))]
    text = sentences.conclusion(rows, INFO)
    assert text == ("Augment=flip raises validation accuracy from 91.10 % to 92.00 % (+0.90 pp; the two "
                    "models disagree on 1 130 of the same 10 000 images, and a paired test puts the gain "
                    "beyond validation-sample noise even after correction (Holm over all 3 variants of the "
                    "grid); retraining (seed) noise is not measured), while "
                    "augment=flip+crop+erase changes nothing measurable (90.90 %) "
                    "and augment=none lowers it to 88.00 %.")
    assert text.count(".") == 1 + text.count(" %") + text.count("pp")   # one sentence: decimals and its end


def test_conclusion_without_a_measurable_gain_says_so_and_lists_divergence():
    rows = [_row("baseline", 0.911), _row("init=kaiming", 0.914, "no measurable difference", (200, 170)),
            _row("lr=1e30", None, status="diverged")]
    text = sentences.conclusion(rows, {**INFO, "k": 1})
    assert text == ("No variant beats the baseline's 91.10 % beyond validation-sample noise (a paired "
                    "test on "
                    "the same 10 000 images): init=kaiming changes nothing measurable (91.40 %) and "
                    "lr=1e30 diverged.")
    assert sentences.conclusion([_row("baseline", None, status="diverged"), rows[1]], INFO).startswith(
        "The baseline diverged")


def test_test_accuracy_interval_is_the_exact_binomial_one():
    """Clopper-Pearson: at the lower bound the chance of scoring at least as high is 2.5 %, at the
    upper bound the chance of scoring at most as high is 2.5 %; textbook values at the edges."""
    from scipy.stats import binom
    low, high = fsum.accuracy_interval(0.9395, 10_000)
    assert 0.9345 < low < 0.9395 < high < 0.9445
    assert binom.sf(9394, 10_000, low) == pytest.approx(0.025, rel=1e-6)
    assert binom.cdf(9395, 10_000, high) == pytest.approx(0.025, rel=1e-6)
    assert fsum.accuracy_interval(0.0, 10) == (0.0, pytest.approx(0.3085, abs=1e-4))
    assert fsum.accuracy_interval(1.0, 10) == (pytest.approx(0.6915, abs=1e-4), 1.0)
    wider = fsum.accuracy_interval(0.9395, 1000)
    assert wider[0] < low and wider[1] > high   # fewer test images, more noise


def test_every_setting_a_variant_changes_is_named_from_the_configs():
    """The standard grid's couplings (flip TTA with augment=none, the optimizers' weight decay and SGD's
    learning rate, weight decay with label smoothing) come from diffing the full configs, not the names."""
    grid = section.load_grid(section.GRIDS / "standard.toml")
    specs = fgrid.one_at_a_time(grid, 0)
    results = {s.name: [{"seed": 0, "val_acc": 0.9, "train_s": 1.0}] for s in specs}
    table = {r["name"]: r for r in fsum.rows(list(dict.fromkeys(s.name for s in specs)), results, {}, specs)}
    none = table["augmentation: augment=none"]
    assert none["changes"] == {"augment": ["flip+crop", "none"], "flip_tta": [True, False]}
    assert none["label"] == "augment=none (with flip_tta True → False)"
    sgd = table["optimizer: optimizer=sgd, lr=0.05, weight_decay=0.0005"]
    assert sgd["changes"] == {"optimizer": ["adamw", "sgd"], "lr": [0.003, 0.05],
                              "weight_decay": [0.05, 0.0005]}
    assert sgd["label"] == "optimizer=sgd (with lr 0.003 → 0.05 and weight_decay 0.05 → 0.0005)"
    assert table["optimizer: optimizer=adam, weight_decay=0.0005"]["label"] == (
        "optimizer=adam (with weight_decay 0.05 → 0.0005)")
    assert table["regularisation: weight_decay=0.0, label_smoothing=0.0"]["label"] == (
        "weight_decay=0.0 (with label_smoothing 0.1 → 0.0)")
    lr = table["lr_schedule: lr=0.01"]
    assert lr["label"] == "lr=0.01" and lr["changes"] == {"lr": [0.003, 0.01]}
    assert table["baseline"]["changes"] == {} and table["baseline"]["label"] == "baseline"
    worse = {**_row("augment=none", 0.880, "worse", (100, 410)), "label": none["label"]}
    text = sentences.conclusion([_row("baseline", 0.911), worse], INFO)
    assert text.startswith("Augment=none (with flip_tta True → False) lowers validation accuracy")


def _conflict_grid(axes):
    return fgrid.parse_grid({"base": {"epochs": 1, "channels": [8, 16], "optimizer": "adamw",
                                      "weight_decay": 0.05, "label_smoothing": 0.1}, "axes": axes}, "c.toml")


def test_the_combination_resolves_a_key_two_axes_set_and_shows_a_choice_that_changes_nothing():
    """The issue's case: the optimizer axis's Adam brings weight decay 5e-4, the regularisation axis's best
    removes it; the regularisation axis wins the key (it varies it), and Adam without weight decay is the
    baseline's AdamW: a no-op, said so. The combination is also tested against the best single variant."""
    grid = _conflict_grid({"optimizer": [{"optimizer": "adam", "weight_decay": 0.0005}],
                           "regularisation": [{"weight_decay": 0.0, "label_smoothing": 0.0}],
                           "lr": [{"lr": 0.01}]})

    def accuracy(config):
        return (0.80 + 0.01 * (config.optimizer == "adam") + 0.02 * (config.weight_decay == 0)
                + 0.03 * (config.lr == 0.01))
    execute, _ = _fake_execute(accuracy)
    sel = fsel.select(grid, fgrid.one_at_a_time(grid, 0), 0, execute, 60_000)
    c = fsum.combination_summary(grid, sel)
    assert c["conflicts"] == [{"key": "weight_decay", "values": {"optimizer": 0.0005, "regularisation": 0.0},
                               "kept": "regularisation",
                               "why": "regularisation varies weight_decay itself; optimizer sets it only "
                                      "alongside optimizer=adam"}]
    assert c["no_ops"] == [{"axis": "optimizer", "value": "optimizer=adam, weight_decay=0.0005",
                            "keys": {"optimizer": fsel.SAME_OPTIMIZER,
                                     "weight_decay": "the regularisation axis's value won"}}]
    best = fsel.ranked({n: r for n, r in sel.grid.results.items() if n.split(":")[0] in grid.axes})[0]
    assert c["vs_best"]["against"] == best == "lr: lr=0.01"
    combined = next(n for n in sel.grid.results if n.startswith("combined"))
    direct = fsel.paired_test(sel.grid.results[combined], sel.grid.results[best])
    assert c["vs_best"]["p_value"] == direct["p_value"]
    assert c["vs_best"]["p_adjusted"] == fsel.holm([sel.combined_test["p_value"], direct["p_value"]])[1]
    notes = " ".join(sentences.combination_notes(c))
    assert ("Two axes set weight_decay (optimizer to 0.0005 and regularisation to 0.0): the combination "
            "keeps "
            "regularisation's, because regularisation varies weight_decay itself") in notes
    assert ("It takes optimizer=adam, weight_decay=0.0005 (optimizer) and weight_decay=0.0, "
            "label_smoothing=0.0 "
            "(regularisation), although the grid's test found neither measurably better") in notes
    assert ("The optimizer axis's optimizer=adam, weight_decay=0.0005 changes nothing in the "
            "combination") in notes
    assert "Against the best single variant, lr=0.01, the combination differs by" in notes   # no budget set
    combined_row = fsum.rows(["baseline", combined], sel.grid.results, {}, sel.grid.specs)[1]
    assert combined_row["label"] == ("the combination (optimizer adamw → adam, lr 0.003 → 0.01, "
                                     "weight_decay 0.05 → 0.0 and label_smoothing 0.1 → 0.0)")


def test_a_key_goes_to_the_axis_that_varies_it_whatever_the_order_of_the_axes():
    grid = _conflict_grid({"regularisation": [{"weight_decay": 0.1}],
                           "optimizer": [{"optimizer": "sgd", "weight_decay": 0.001}]})
    specs = fgrid.one_at_a_time(grid, 0)
    values = {"regularisation": "regularisation: weight_decay=0.1",
              "optimizer": "optimizer: optimizer=sgd, weight_decay=0.001"}
    merged, conflicts = fsel.resolve_conflicts(specs, values)
    assert merged == {"weight_decay": 0.1, "optimizer": "sgd"}
    assert [x["kept"] for x in conflicts] == ["regularisation"]
    assert fsel.no_ops(grid.base, specs, values) == []


def test_the_validation_loss_curve_stays_on_one_set_of_images():
    history = [{"epoch": 1, "val_loss": 0.5, "val_images": 1000},
               {"epoch": 2, "val_loss": 0.45, "val_images": 1000},
               {"epoch": 3, "val_loss": 0.30, "val_images": 10_000, "curve_acc": 0.9}]
    assert section._val_loss_curve(history) == ([(1, 0.5), (2, 0.45)], "validation (1,000-image sample)")
    whole = [{**r, "val_images": 10_000} for r in history]
    assert section._val_loss_curve(whole) == ([(1, 0.5), (2, 0.45), (3, 0.30)],
                                              "validation (all 10,000 images)")


def test_the_runs_training_compute_is_counted_by_stage_from_the_epochs_each_trial_ran():
    grid = _budget_grid(finalists=1)
    execute, _ = _fake_execute(_accuracy)

    def with_history(specs, stage):   # one of the grid's trials stops (diverges) before its one epoch ends
        out = execute(specs, stage)
        return [({**r, "history": [{}] * (0 if s.name == NARROW else s.config.epochs)}, c)
                for s, (r, c) in zip(specs, out)]
    sel = fsel.select(grid, fgrid.one_at_a_time(grid, 0), 0, with_history, 60_000)
    final = {"history": [{}] * sel.final_spec.config.epochs}
    compute = section.training_compute(grid, sel, final)

    def tmacs(config, images, epochs):
        return 3 * count_macs(config.model_config()) * images * epochs / 1e12
    rest = 60_000 - grid.val_size
    one_axis = [s for s in sel.grid.specs if s.axis != "combined" and s.name != NARROW]
    assert compute["tmacs"]["grid"] == pytest.approx(sum(tmacs(s.config, rest, 1) for s in one_axis))
    combined = next(s for s in sel.grid.specs if s.axis == "combined")
    assert compute["tmacs"]["combination"] == pytest.approx(tmacs(combined.config, rest, 1))
    finalists = sum(tmacs(s.config, rest, 2) for s in sel.finalists.specs)
    assert compute["tmacs"]["finalists"] == pytest.approx(finalists)
    assert compute["tmacs"]["final"] == pytest.approx(tmacs(sel.final_spec.config, 60_000, 2))
    assert compute["total_tmacs"] == pytest.approx(sum(compute["tmacs"].values()))


def test_the_cache_clause_is_true_when_nothing_or_everything_was_trained():
    assert sentences.cache_clause(19, 19) == "all trained in this run"
    assert sentences.cache_clause(0, 19) == "all from the cache"
    assert sentences.cache_clause(3, 19) == "3 trained in this run, the rest from the cache"


# --- 4c's run and the baseline's retraining noise (issue 35) -------------------------------------------

NOISE_ROWS = [_row("baseline", 0.911), _row("augment=flip", 0.920, "better", (610, 520)),
              _row("augment=none", 0.905, "worse", (300, 360))]


def test_noise_seeds_share_the_grids_run_but_choose_nothing_and_a_validated_final_trains_on_the_split():
    grid = replace(_budget_grid(finalists=0), noise_seeds=2, final_validated=True)
    fake, calls = _fake_execute(_accuracy)

    def execute(specs, stage):
        return [({**r, "history": [{}] * s.config.epochs, "val_images": 4000, "train_images": 6000}, c)
                for s, (r, c) in zip(specs, fake(specs, stage))]
    sel = fsel.select(grid, fgrid.one_at_a_time(grid, 0), 0, execute, fsel.final_images(grid))
    assert calls[0][0] == "grid" and calls[0][1][-2:] == [fsel.NOISE_NAME] * 2    # one pool for both
    assert [r["seed"] for r in sel.noise.results[fsel.NOISE_NAME]] == [1, 2]
    assert fsel.NOISE_NAME not in sel.grid.results and fsel.NOISE_NAME not in sel.decision.budget.ranking
    assert sel.final_spec.stage == "final_split" and fsel.final_images(grid) == 60_000 - grid.val_size
    assert fsel.final_stage(replace(grid, final_validated=False)) == "final"
    compute = section.training_compute(grid, sel, {"history": [{}] * sel.final_spec.config.epochs})
    rest = 60_000 - grid.val_size
    assert compute["tmacs"]["seed_noise"] == pytest.approx(2 * fgrid.training_tmacs(grid.base, rest))
    assert compute["tmacs"]["final"] == pytest.approx(fgrid.training_tmacs(sel.final_spec.config, rest))
    noise = fsum.seed_noise(sel)
    accs = [r["val_acc"] for r in sel.grid.results["baseline"] + sel.noise.results[fsel.NOISE_NAME]]
    assert noise["seeds"] == [0, 1, 2] and noise["val_acc"] == accs
    assert noise["band_pp"] == pytest.approx(2 * 2 ** 0.5 * 100 * np.std(accs, ddof=1))
    assert all(f > 0 for f in noise["flips"])        # another seed gets other images right
    axes = fsum.mark_retraining(fsum.axis_tables(grid, sel), noise)
    rows = [r for axis in axes for r in axis["rows"] if r["variant"] != "baseline"]
    assert rows and all(r["retraining"] == ("beyond" if abs(r["delta_pp"]) > noise["band_pp"] else "within")
                        for r in rows)
    assert fsum.seed_noise(replace(sel, noise=fsel.Stage([], [], 0.0))) is None


def test_each_verdict_is_set_against_the_retraining_band_where_it_was_measured():
    noise = {"band_pp": 0.5, "n": 4}
    rows = [NOISE_ROWS[0], {**NOISE_ROWS[1], "retraining": "beyond"},
            {**NOISE_ROWS[2], "retraining": "within"}]
    text = sentences.conclusion(rows, INFO, noise=noise)
    assert ("beyond validation-sample noise even after correction (Holm over all 3 variants of the grid); "
            "beyond retraining noise (±0.50 pp, from 4 seeds of the baseline, a rough estimate)") in text
    assert "not measured" not in text
    worse_only = sentences.conclusion([rows[0], rows[2]], INFO, noise=noise)
    assert "but within retraining noise (±0.50 pp" in worse_only
    assert sentences.UNMEASURED in sentences.conclusion(rows, INFO)     # without seeds it is said unmeasured
    assert fsum.against_noise(-0.6, noise) == "beyond" and fsum.against_noise(0.4, noise) == "within"
    assert fsum.against_noise(0.6, None) is None


def test_a_final_trial_is_never_a_finalist_trained_alike_from_the_cache():
    """A validated final trains on the same split as a finalist of its config, but keeps its model and
    test score: the two cache keys differ (the quick preset's final model failed on this)."""
    from miniplaces.report.trial_runner import TrialEnv, cache_parts
    env = TrialEnv("data", "sha", "cache", True, 2000, 2000, "cpu", 1, 1)
    spec = fgrid.TrialSpec("x", None, {}, TrialConfig(), 0, stage="finalist")
    keys = [cache_parts(replace(spec, stage=stage), env) for stage in ("finalist", "final_split", "final")]
    assert keys[0]["split"] == keys[1]["split"] != keys[2]["split"] and keys[0] != keys[1]
