"""Problem 1's answer sentences, from results.json's numbers."""
from __future__ import annotations

from miniplaces.report.answers import Answer
from miniplaces.report.wording import p_value, plural, series


def answer_1a(results: dict, focus: dict | None) -> Answer:
    layers = results["filters"]["layers"]
    first = layers[0]
    ratio = first["norm_ratio"]
    return Answer("1a", [
        "normalize_tensor rescales each output filter on its own to [0, 1] (min-max per filter); "
        "a constant filter maps to 0.5 instead of dividing by zero.",
        f"In {first['layer']} the largest filter norm is {ratio:.1f} times the smallest, so one scale "
        "for the whole layer would show weak filters with less contrast than strong ones; per filter, "
        "every pattern uses the full range.",
    ], glance=f"Min-max per filter, so each of {first['layer']}'s filters (norms spanning a factor of "
              f"{ratio:.1f}) shows its pattern at full contrast.")


def _median_vs_chance(median: float, low: float, high: float) -> str:
    """Where a layer's median colour share stands against the 5-95 % range of shuffled layers' medians."""
    where = (f"it lies within the {low:.2f} to {high:.2f} that 90 % of shuffled layers give, so the layer as "
             "a whole is no more and no less colourful than chance" if low <= median <= high else
             f"it lies {'above' if median > high else 'below'} the {low:.2f} to {high:.2f} that 90 % of "
             "shuffled layers give, so the layer as a whole leans to "
             f"{'colour' if median > high else 'luminance'}")
    return where + "."




def _tail_count(count: int, what: str, test: dict, of: int | None = None) -> str:
    """'6 colour filters of 64, no more than chance (p = 0.100)': a count with its binomial test's verdict."""
    p = test[f"{what}_p"]
    verdict = "beyond chance" if p < test["alpha"] else "no more than chance"
    return f"{plural(count, what + ' filter')}{f' of {of}' if of else ''}, {verdict} ({p_value(p)})"


def answer_1b(results: dict, focus: dict | None) -> Answer:
    layers = results["filters"]["layers"]
    rgb = [layer for layer in layers if "colour_chance" in layer]
    deeper = [layer for layer in layers if "colour_chance" not in layer]
    sentences, reading = [], []
    if rgb:
        layer = rgb[0]
        chance, n, test = layer["colour_chance"], layer["shape"][0], layer["count_test"]
        sentences.append(
            f"{layer['layer']} has {_tail_count(layer['colour_filters'], 'colour', test, n)}, "
            f"and {_tail_count(layer['grey_filters'], 'grey', test)}: chance alone puts about "
            f"{test['expected']:.1f} filters beyond each percentile of the same weights shuffled "
            "(binomial test of each count).")
        reading.append(
            "A colour (grey) filter is one whose share of colour contrast lies above the 95th (below the "
            f"5th) percentile of shuffled filters, {chance['p95']:.2f} ({chance['p05']:.2f}). Shuffling "
            "keeps a filter's values but destroys their arrangement, so a count is structure that training "
            f"put there only when chance is unlikely to reach it (p below {test['alpha']:g}). The layer's "
            f"median colour share is {layer['colour_fraction_median']:.2f}, against "
            f"{chance['median']:.2f} for shuffled "
            "filters; " + _median_vs_chance(layer['colour_fraction_median'], chance['layer_median_p05'],
                                             chance['layer_median_p95']))
    if deeper:
        names = series([f"{d['layer']} ({d['shape'][1]} input channels)" for d in deeper])
        sentences.append(f"Deeper filters are drawn as signed slices of their strongest input channels: "
                         f"{names}.")
    if rgb:
        layer, test = rgb[0], rgb[0]["count_test"]
        colour = _tail_count(layer["colour_filters"], "colour", test, layer["shape"][0])
        glance = (f"{layer['layer']}: {colour}; {_tail_count(layer['grey_filters'], 'grey', test)}; "
                  "deeper layers as signed weight slices.")
    else:
        glance = f"{series([d['layer'] for d in deeper])} shown as signed weight slices."
    return Answer("1b", sentences, glance, reading)
