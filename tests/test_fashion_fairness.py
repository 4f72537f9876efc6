"""A fair grid: a variant is scored like the baseline except in what its axis names and its stated
couplings; no model is scored with test-time flips unless it trained with flips."""
import re
from pathlib import Path

import pytest

from analyses.fashion_mnist import grid as fgrid
from analyses.fashion_mnist.train import TrialConfig
from miniplaces.report.sections.fashion_mnist import load_grid

GRIDS = sorted((Path(__file__).resolve().parent.parent / "grids").glob("*.toml"))


@pytest.mark.parametrize("path", GRIDS, ids=[p.stem for p in GRIDS])
def test_shipped_grids_score_every_variant_like_the_baseline(path):
    grid = load_grid(path)
    specs = fgrid.one_at_a_time(grid, seed=0)
    for spec in specs:
        assert not (spec.config.flip_tta and "flip" not in spec.config.augment), spec.name
        for key in fgrid.EVALUATION_KEYS:
            if key not in spec.overrides and key not in spec.coupled:
                assert getattr(spec.config, key) == getattr(grid.base, key), spec.name


def test_variant_without_flips_is_not_scored_on_mirror_images():
    grid = fgrid.parse_grid({"base": {"augment": "flip+crop", "flip_tta": True},
                             "axes": {"augmentation": [{"augment": "none"}, {"augment": "crop"},
                                                       {"augment": "flip"}]}},
                            "g.toml")
    specs = {s.name: s for s in fgrid.one_at_a_time(grid, seed=0)}
    for name in ("augmentation: augment=none", "augmentation: augment=crop"):
        assert specs[name].config.flip_tta is False
        assert specs[name].coupled == {"flip_tta": False, "why": fgrid.FLIP_COUPLING}
    assert specs["augmentation: augment=flip"].config.flip_tta is True
    assert specs["augmentation: augment=flip"].coupled == {}
    assert specs["baseline"].config.flip_tta is True


@pytest.mark.parametrize("raw, where", [
    ({"base": {"augment": "crop", "flip_tta": True}}, "base"),
    ({"base": {"flip_tta": True}, "final": {"augment": "none"}}, "final"),
    ({"base": {"flip_tta": False}, "axes": {"a": [{"augment": "none", "flip_tta": True}]}}, "axes.a[0]"),
])
def test_grid_scoring_untrained_flips_is_refused(raw, where):
    with pytest.raises(fgrid.GridError, match=rf"g.toml: {re.escape(where)}.*flip_tta = true"):
        fgrid.parse_grid(raw, "g.toml")


def test_check_fair_catches_an_unstated_change():
    base = TrialConfig(flip_tta=True)
    sneaky = fgrid.TrialSpec("axis: lr=0.1", "axis", {"lr": 0.1},
                             base.updated({"lr": 0.1, "flip_tta": False}), 0)
    with pytest.raises(fgrid.GridError, match="flip_tta = False differs"):
        fgrid.check_fair(base, [sneaky])
