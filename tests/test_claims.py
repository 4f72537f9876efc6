"""Claims against chance are stated as tests: a count, a detector or a verdict is called beyond chance
only where its test says so, and the sentence says what the test could not decide."""
from __future__ import annotations

import pytest

from analyses.filters import binomial_at_least
from miniplaces import answers


def _filters(colour: int, grey: int, n: int = 64) -> dict:
    from analyses.filters import SIGNIFICANCE, TAIL

    layer = {"layer": "conv1", "shape": [n, 3, 7, 7], "colour_filters": colour, "grey_filters": grey,
             "colour_fraction_median": 0.66,
             "colour_chance": {"median": 0.67, "p05": 0.57, "p95": 0.76, "layer_median_p05": 0.65,
                               "layer_median_p95": 0.68},
             "count_test": {"expected": TAIL * n, "alpha": SIGNIFICANCE,
                            "colour_p": binomial_at_least(colour, n, TAIL),
                            "grey_p": binomial_at_least(grey, n, TAIL)}}
    return {"filters": {"layers": [layer, {"layer": "layer1.0.conv2", "shape": [64, 64, 3, 3]}]}}


def test_binomial_tail_matches_the_referees_number():
    assert binomial_at_least(6, 64, 0.05) == pytest.approx(0.100, abs=5e-4)   # the referee: 0.10
    assert binomial_at_least(0, 64, 0.05) == 1.0


def test_1b_counts_are_tested_against_the_five_percent_per_tail():
    a = answers.answer_1b(_filters(colour=6, grey=30))
    text = a.text
    assert "about 3.2 filters beyond each percentile" in text
    assert "6 colour filters of 64, no more than chance (p = 0.100)" in text
    assert "30 grey filters, beyond chance (p < 0.001)" in text
    assert "6 colour filters of 64, no more than chance" in a.glance and "beyond chance of" not in a.glance
    assert "1 colour filter of 64, no more than chance" in answers.answer_1b(_filters(1, 0)).text
