"""Grid files: validation before any work, one-axis-at-a-time expansion, combination, finalists, final choice
(the budget and the paired tests: test_fashion_selection.py)."""
from dataclasses import replace
from pathlib import Path

import pytest

import generate_report
from analyses.fashion_mnist import grid as fgrid
from analyses.fashion_mnist import selection as fsel
from analyses.fashion_mnist.train import TrialConfig
from miniplaces.report.sections.fashion_mnist import load_grid

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("name", ["quick", "standard", "full"])
def test_shipped_grids_parse(name):
    grid = load_grid(ROOT / "grids" / f"{name}.toml")
    assert grid.axes and {"augmentation", "optimizer", "regularisation"} <= set(grid.axes)
    assert len(fgrid.one_at_a_time(grid, 0)) > len(grid.axes)


def test_the_standard_final_is_4cs_run_within_the_old_compute():
    """What grids/standard.toml's comments promise: the final model trains 10 epochs on the 50 000-image
    training split, validated after every epoch on all 10 000 held-out images (4c's run); the budget buys
    the baseline's and the deeper network, not the wider; and the run's whole training compute with the
    deeper network chosen stays within the 103.06 TMAC the standard run cost before."""
    grid = load_grid(ROOT / "grids" / "standard.toml")
    specs = fgrid.one_at_a_time(grid, 0)
    images = fsel.final_images(grid)
    assert images == 50_000 and fsel.final_stage(grid) == "final_split"
    finals = {s.name: fsel.final_config(grid, s.config, images)
              for s in specs if s.axis in (None, "depth_width")}
    assert {c.epochs for c in finals.values()} == {10} and {c.curve_images for c in finals.values()} == {0}
    results = {s.name: [{"val_acc": 0.9}] for s in specs}
    assert fsel.budget_split(grid, results, specs, images).over == ["depth_width: channels=48x96x192"]
    cost = fsel.trial_tmacs
    grid_tmacs = sum(cost(s, grid.val_size, grid.train_subset) for s in specs + fsel.noise_specs(grid, 0))
    deeper = finals["depth_width: depth=1x2x2"]
    # the combination (the deeper network at the grid's scale) and the final model
    total = (grid_tmacs + fgrid.training_tmacs(deeper, grid.train_subset)
             + fgrid.training_tmacs(deeper, images))
    assert len(fsel.noise_specs(grid, 0)) == 3 and total <= 103.06


@pytest.mark.parametrize("raw, bad", [
    ({"base": {"epochs": 1}, "colour": 1}, "colour"),
    ({"base": {"epoch": 3}}, "epoch"),
    ({"base": {"lr": "fast"}}, "fast"),
    ({"base": {"epochs": -2}}, "-2"),
    ({"base": {"epochs": 2.5}}, "2.5"),
    ({"axes": {"lr_schedule": [{"lr": -0.1}]}}, "-0.1"),
    ({"axes": {"lr_schedule": [{"lr": 0}]}}, "lr"),
    ({"axes": {"optimizer": [{"optimizer": "lbfgs"}]}}, "lbfgs"),
    ({"axes": {"augmentation": [{"augment": "flip+rotate"}]}}, "rotate"),
    ({"axes": {"depth_width": [{"channels": [16, 0]}]}}, "[16, 0]"),
    ({"axes": {"depth_width": [{"depth": [1, 0]}]}}, "[1, 0]"),
    ({"axes": {"depth_width": [{"channels": [8, 16], "depth": [1, 1, 2]}]}}, "one entry per stage"),
    ({"base": {"depth": [1, 2]}}, "one entry per stage"),
    ({"finalists": -1, "base": {"epochs": 1}}, "finalists"),
    ({"final_budget_tmacs": "60", "base": {"epochs": 1}}, "final_budget_tmacs"),
    ({"final_budget_tmacs": -1, "base": {"epochs": 1}}, "multiply-accumulates"),
    ({"final_budget_s": 360, "base": {"epochs": 1}}, "replaced by final_budget_tmacs"),
    ({"final_validated": 1, "base": {"epochs": 1}}, "final_validated"),
    ({"noise_seeds": -1, "base": {"epochs": 1}}, "noise_seeds"),
    ({"axes": {"empty": []}}, "empty"),
    ({"base": {"dropout": 1.5}}, "1.5"),
    ({"base": {"batch_size": True}}, "True"),
    ({"data": {"val_size": 60000}, "base": {"epochs": 1}}, "60000"),
    ({}, "empty grid"),
])
def test_bad_grids_are_rejected_naming_the_value(raw, bad):
    with pytest.raises(fgrid.GridError, match=None) as info:
        fgrid.parse_grid(raw, "g.toml")
    assert bad in str(info.value) and "g.toml" in str(info.value)


def test_bad_grid_file_exits_2_before_any_work(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text("[base]\nepochs = -1\n")
    cache = tmp_path / "cache"
    code = generate_report.main(["--only", "fashion_mnist", "--grid", str(bad), "--out",
                                 str(tmp_path / "out"), "--cache-dir", str(cache), "--no-pdf", "-q"])
    assert code == 2
    assert "epochs" in capsys.readouterr().err
    assert not (cache / "results").exists()
    (tmp_path / "broken.toml").write_text("[base\n")
    assert generate_report.main(["--only", "fashion_mnist", "--grid", str(tmp_path / "broken.toml"), "--out",
                                  str(tmp_path / "out"), "--cache-dir", str(cache), "--no-pdf", "-q"]) == 2


def _grid():
    return fgrid.parse_grid({"repeats": 2, "base": {"epochs": 1, "lr": 0.01},
                             "axes": {"opt": [{"optimizer": "sgd"}, {"optimizer": "adam"}],
                                      "lr": [{"lr": 0.01}, {"lr": 0.1}]},
                             "final": {"epochs": 5}}, "t.toml")


def test_one_at_a_time_skips_the_baseline_value_and_repeats_seeds():
    specs = fgrid.one_at_a_time(_grid(), seed=7)
    names = list(dict.fromkeys(s.name for s in specs))
    assert names == ["baseline", "opt: optimizer=sgd", "opt: optimizer=adam", "lr: lr=0.1"]
    assert [s.seed for s in specs if s.name == "baseline"] == [7, 8]
    assert all(s.config.epochs == 1 for s in specs)


def _results(accs):
    return {name: [{"val_acc": a} for a in values] for name, values in accs.items()}


def _budget(grid, results, specs):
    return fsel.budget_split(grid, results, specs, 60_000)


def test_combination_takes_each_axis_best_and_final_takes_best_config():
    grid = _grid()
    specs = fgrid.one_at_a_time(grid, 0)
    results = _results({"baseline": [0.80, 0.82], "opt: optimizer=sgd": [0.85, 0.83],
                        "opt: optimizer=adam": [0.70, None], "lr: lr=0.1": [0.84, 0.86]})
    assert fsel.best_per_axis(grid, results) == {"opt": "opt: optimizer=sgd", "lr": "lr: lr=0.1"}
    values = fsel.combined_values(grid, results, specs, 60_000)
    (combined, *_), = [fsel.combination(grid, specs, values, 0)]
    assert combined.config == TrialConfig(epochs=1, lr=0.1, optimizer="sgd")
    specs += fsel.combination(grid, specs, values, 0)
    results[combined.name] = [{"val_acc": 0.9}, {"val_acc": 0.88}]
    decision = fsel.decide(results, _budget(grid, results, specs))
    final = fsel.final_spec(grid, decision.chosen, specs, 0, 60_000)
    assert final.stage == "final" and final.config == TrialConfig(epochs=5, lr=0.1, optimizer="sgd")
    assert fsel.combination(replace(grid, combine=False), specs, values, 0) == []
    diverged = {n: [{"val_acc": None}] for n in results}
    with pytest.raises(fgrid.GridError, match="diverged"):
        fsel.decide(diverged, _budget(grid, diverged, specs))


def test_finalists_are_the_best_and_the_baseline_and_decide_the_final_model():
    grid = replace(_grid(), finalists=1)
    specs = fgrid.one_at_a_time(grid, 0)
    results = _results({"baseline": [0.80, 0.82], "opt: optimizer=sgd": [0.85, 0.83],
                        "opt: optimizer=adam": [0.95, None], "lr: lr=0.1": [0.84, 0.86]})
    assert fsel.ranked(results) == ["lr: lr=0.1", "opt: optimizer=sgd",
                                    "baseline"]  # a diverged repeat drops out
    finalists = fsel.finalist_specs(grid, results, specs, 0, _budget(grid, results, specs), 60_000)
    assert [(s.name, s.seed) for s in finalists] == [("finalist: lr: lr=0.1", 0), ("finalist: lr: lr=0.1", 1),
                                                     ("finalist: baseline", 0), ("finalist: baseline", 1)]
    assert all(s.stage == "finalist" and s.config.epochs == 5
               for s in finalists)  # trained as the final will be
    # at full scale the baseline wins: the final model is the baseline, whatever the grid said
    at_scale = _results({"finalist: lr: lr=0.1": [0.90, 0.91], "finalist: baseline": [0.92, 0.92]})
    decision = fsel.decide(at_scale, _budget(grid, results, specs))
    assert (decision.chosen, decision.rule) == ("finalist: baseline", "accuracy")
    final = fsel.final_spec(grid, decision.chosen, finalists, 0, 60_000)
    assert final.name == "final (baseline)" and final.config == grid.base.updated({"epochs": 5})
    assert fsel.finalist_specs(replace(grid, finalists=0), results, specs, 0,
                               _budget(grid, results, specs), 60_000) == []
    # when the baseline is already among the best, it is not trained twice
    assert len(fsel.finalist_specs(replace(grid, finalists=3), results, specs, 0,
                                   _budget(grid, results, specs), 60_000)) == 6
