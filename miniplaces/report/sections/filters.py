"""Problem 1 (filter visualisation): glue between analyses/filters.py and the report."""
from __future__ import annotations

import time

import numpy as np

from analyses import filters as analysis
from miniplaces.cache import code_version
from miniplaces.errors import UserError
from miniplaces.report import figures
from miniplaces.report.context import RunContext, SectionResult


def run(ctx: RunContext) -> SectionResult:
    start = time.perf_counter()
    places = ctx.places()
    params = ctx.params("filters")
    parts = {"sha256": places.sha256, "arch": places.arch, "params": params, "code": code_version(analysis)}

    def compute() -> list[analysis.FilterGrid]:
        try:
            return [analysis.filter_grid(places.model, layer, params["max_filters"])
                    for layer in params["layers"]]
        except ValueError as exc:
            raise UserError(f"filter layers (--filter-layers or the preset): {exc}") from None

    grids, cached = ctx.cache.get_or_compute("filters", parts, compute)
    layers, figs = [], {}
    for grid in grids:
        fig_id = "filters_" + grid.layer.replace(".", "_")
        draw = _draw_rgb if grid.rgb is not None else _draw_slices
        figs[fig_id] = ctx.figure(fig_id, lambda draw=draw, grid=grid: draw(grid), places.demo,
                                  ctx.places_inputs(with_scenes=False))
        layers.append(_layer_json(grid, fig_id))
    data = {"normalization": {"method": "min-max per output filter", "why": _why_per_filter(grids)},
            "layers": layers}
    return SectionResult(data, figs, cached=cached, seconds=time.perf_counter() - start)


def _why_per_filter(grids: list[analysis.FilterGrid]) -> str:
    """Why each filter gets its own scale, with this run's measured spread of filter norms."""
    ratios = [(g.norm_ratio, g.layer) for g in grids if g.norm_ratio is not None]
    measured = ""
    if ratios:
        ratio, layer = max(ratios)
        measured = (f" In this run the largest filter L2 norm of a layer is {ratio:.1f} times its smallest "
                    f"({layer}).")
    return ("Each filter is stretched to [0, 1] on its own, so its pattern is visible whatever its norm; one "
            "scale for the whole layer would draw every filter with contrast in proportion to its weights, "
            "which compares magnitudes but can leave weak filters nearly flat." + measured +
            " A constant filter maps to 0.5 (no division by zero).")


def _layer_json(grid: analysis.FilterGrid, fig_id: str) -> dict:
    norms = grid.filter_norms
    out = {"layer": grid.layer, "shape": list(grid.shape), "figure": fig_id,
           "display": "RGB image per filter" if grid.rgb is not None else
           "signed slices of the strongest input channels of the strongest filters",
           "filters_shown": int(len(grid.rgb) if grid.rgb is not None else len(grid.slice_filters)),
           "norm_min": float(norms.min()), "norm_median": float(np.median(norms)),
           "norm_max": float(norms.max()), "norm_ratio": grid.norm_ratio}
    if grid.colour is not None:
        colour = grid.colour
        out.update({
            "filters": int(len(colour.fraction)),
            "colour_fraction_median": float(np.median(colour.fraction)),
            "colour_chance": {"method": colour.method, "median": colour.chance_median,
                              "p05": colour.chance_p05, "p95": colour.chance_p95, "draws": colour.draws,
                              "layer_median_p05": colour.layer_median_p05,
                              "layer_median_p95": colour.layer_median_p95},
            "colour_filters": colour.colour_filters,
            "grey_filters": colour.grey_filters,
            # by chance each filter lands beyond a percentile with probability 5 %: the count's binomial tail
            "count_test": {"method": f"binomial: P(at least the count of {len(colour.fraction)} filters "
                                     f"beyond a percentile), each with chance {analysis.TAIL:g}",
                           "expected": analysis.TAIL * len(colour.fraction), "alpha": analysis.SIGNIFICANCE,
                           "colour_p": colour.colour_p, "grey_p": colour.grey_p},
        })
    else:
        out["slice_filters"] = [int(f) for f in grid.slice_filters]
    return out


def _draw_rgb(grid: analysis.FilterGrid):
    n, cols = len(grid.rgb), 8
    rows = int(np.ceil(n / cols))
    tiles = np.ones((rows * cols, *grid.rgb.shape[1:]))
    tiles[:n] = grid.rgb
    image, anchors = figures.mosaic(tiles.reshape(rows, cols, *grid.rgb.shape[1:]), gap=2, fill=1.0)
    fig = figures.plt.figure(figsize=(cols * 0.9, rows * 0.9 + 0.5))
    ax = fig.add_axes((0.01, 0.01, 0.98, 1 - 0.5 / (rows * 0.9 + 0.5)))   # the title above, nothing else
    ax.imshow(image, interpolation="nearest")
    for i, (x, y) in enumerate(anchors[:n]):
        ax.text(x, y, str(i), fontsize=6, ha="center", va="bottom")
    figures.bare(ax)
    fig.suptitle(f"{grid.layer} {tuple(grid.shape)}: filters as RGB, min-max per filter", fontsize=9)
    return fig


def _draw_slices(grid: analysis.FilterGrid):
    rows, cols, h = grid.slices.shape[:3]
    image, anchors = figures.mosaic(grid.slices, gap=1)
    width, height = cols * 0.8 + 1.6, rows * 0.8 + 0.7
    fig = figures.plt.figure(figsize=(width, height))
    ax = fig.add_axes((0.4 / width, 0.01, cols * 0.8 / width,
                       1 - 0.7 / height))  # row labels left, title above
    cmap = figures.plt.get_cmap("RdBu_r").with_extremes(bad="white")
    shown = ax.imshow(image, cmap=cmap, vmin=-1, vmax=1, interpolation="nearest")
    for (x, y), channel in zip(anchors, grid.slice_channels.ravel()):
        ax.text(x, y, f"in {channel}", fontsize=5, ha="center", va="bottom")
    figures.bare(ax)
    ax.set_yticks([r * (h + 1) + (h - 1) / 2 for r in range(rows)], [f"f{f}" for f in grid.slice_filters],
                  fontsize=6)
    colour_bar = fig.add_axes(((cols * 0.8 + 0.55) / width, 0.2, 0.15 / width, 0.6))
    fig.colorbar(shown, cax=colour_bar, label="weight / max |weight| of the filter")
    fig.suptitle(f"{grid.layer} {tuple(grid.shape)}: strongest filters (rows) x their strongest input "
                 "channels", fontsize=9)
    return fig


def notebook_parameters(results: dict) -> dict:
    """The notebook's parameter for 1b: the layers the report drew."""
    return {"FILTER_LAYERS": [layer["layer"] for layer in results["filters"]["layers"]]}
