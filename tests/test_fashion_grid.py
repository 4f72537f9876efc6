"""Grid files: validation before any work, one-axis-at-a-time expansion, combination, final choice."""
from dataclasses import replace
from pathlib import Path

import pytest

import generate_report
from analyses.fashion_mnist import grid as fgrid
from analyses.fashion_mnist.train import TrialConfig

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("name", ["quick", "standard", "full"])
def test_shipped_grids_parse(name):
    grid = fgrid.load_grid(ROOT / "grids" / f"{name}.toml")
    assert grid.axes and {"augmentation", "optimizer", "regularisation"} <= set(grid.axes)
    assert len(fgrid.one_at_a_time(grid, 0)) > len(grid.axes)


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
    ({"final_budget_s": "6 min", "base": {"epochs": 1}}, "final_budget_s"),
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
    code = generate_report.main(["--only", "fashion_mnist", "--grid", str(bad), "--out", str(tmp_path / "out"),
                                 "--cache-dir", str(cache), "--no-pdf", "-q"])
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


def test_combination_takes_each_axis_best_and_final_takes_best_config():
    grid = _grid()
    specs = fgrid.one_at_a_time(grid, 0)
    results = _results({"baseline": [0.80, 0.82], "opt: optimizer=sgd": [0.85, 0.83],
                        "opt: optimizer=adam": [0.70, None], "lr: lr=0.1": [0.84, 0.86]})
    assert fgrid.best_per_axis(grid, results) == {"opt": "opt: optimizer=sgd", "lr": "lr: lr=0.1"}
    (combined, *_), = [fgrid.combination(grid, results, specs, 0)]
    assert combined.config == TrialConfig(epochs=1, lr=0.1, optimizer="sgd")
    specs += fgrid.combination(grid, results, specs, 0)
    results[combined.name] = [{"val_acc": 0.9}, {"val_acc": 0.88}]
    final = fgrid.final_spec(grid, results, specs, 0)
    assert final.stage == "final" and final.config == TrialConfig(epochs=5, lr=0.1, optimizer="sgd")
    with pytest.raises(fgrid.GridError, match="diverged"):
        fgrid.final_spec(grid, {n: [{"val_acc": None}] for n in results}, specs, 0)


def test_finalists_are_the_best_and_the_baseline_and_decide_the_final_model():
    grid = replace(_grid(), finalists=1)
    specs = fgrid.one_at_a_time(grid, 0)
    results = _results({"baseline": [0.80, 0.82], "opt: optimizer=sgd": [0.85, 0.83],
                        "opt: optimizer=adam": [0.95, None], "lr: lr=0.1": [0.84, 0.86]})
    assert fgrid.ranked(results) == ["lr: lr=0.1", "opt: optimizer=sgd", "baseline"]  # a diverged repeat drops out
    finalists = fgrid.finalist_specs(grid, results, specs, 0)
    assert [(s.name, s.seed) for s in finalists] == [("finalist: lr: lr=0.1", 0), ("finalist: lr: lr=0.1", 1),
                                                     ("finalist: baseline", 0), ("finalist: baseline", 1)]
    assert all(s.stage == "finalist" and s.config.epochs == 5 for s in finalists)  # trained as the final will be
    # at full scale the baseline wins: the final model is the baseline, whatever the grid said
    at_scale = _results({"finalist: lr: lr=0.1": [0.90, 0.91], "finalist: baseline": [0.92, 0.92]})
    final = fgrid.final_spec(grid, at_scale, finalists, 0)
    assert final.name == "final (baseline)" and final.config == grid.base.updated({"epochs": 5})
    assert fgrid.finalist_specs(replace(grid, finalists=0), results, specs, 0) == []
    # when the baseline is already among the best, it is not trained twice
    assert len(fgrid.finalist_specs(replace(grid, finalists=3), results, specs, 0)) == 6


def test_final_budget_excludes_candidates_projected_to_train_too_long():
    grid = replace(_grid(), final_budget_s=100.0)  # [final] epochs = 5
    fast = {"config": {"epochs": 5}, "train_s": 40.0, "train_images": 50_000, "history": [{}] * 5, "val_acc": 0.90}
    slow = {**fast, "train_s": 90.0, "val_acc": 0.95}
    results = {"finalist: baseline": [fast], "finalist: wide": [slow, slow]}
    assert fgrid.projected_final_s(grid, [fast], 60_000) == pytest.approx(48.0)  # 40 s x 60k/50k
    assert fgrid.projected_final_s(grid, [slow], 60_000) == pytest.approx(108.0)
    assert list(fgrid.within_budget(grid, results, 60_000)) == ["finalist: baseline"]
    assert fgrid.within_budget(replace(grid, final_budget_s=0.0), results, 60_000) == results
    # a grid trial of 1 epoch on 600 images projects to the final's 5 epochs on 60 000
    short = {"config": {"epochs": 1}, "train_s": 0.6, "train_images": 600, "history": [{}], "val_acc": 0.8}
    assert fgrid.projected_final_s(grid, [short], 60_000) == pytest.approx(300.0)
