"""Problem 2 (internal units of layer4): glue between analyses/{feature_maps,concept_units,unit_ablation}.

layer4 is computed once per scene (ctx.feature_maps, cached on disk); the dissection, the top-5
ablation and both sweeps are functions of those maps and cost milliseconds.
"""
from __future__ import annotations

import logging
import time

import numpy as np
from matplotlib.ticker import MaxNLocator

from analyses import concept_units, unit_ablation
from analyses.feature_maps import chop, fc_params, top_k
from miniplaces import atomic
from miniplaces.progress import progress
from miniplaces.report import figures
from miniplaces.report.answers import units as sentences
from miniplaces.report.context import RunContext, SectionResult
from miniplaces.report.figures import colour_scale, display_image, overlay, plain, tint

log = logging.getLogger("miniplaces")


PROBLEM_SET_UNIT = 300     # the problem set's mountain unit, always shown
MASK_SIZE = (112, 112)     # dissection resolution of the masks, as Broden's 112 x 112 segmentations
SHOWN_UNITS = 3            # units drawn per concept in the figure (the table lists ``top_units``)
DISSECTION_FILE = "units/dissection.npz"
ZEROED = ("the whole h x w activation map of each ablated unit in layer4's output (after the last ReLU, "
          "before global average pooling) is set to 0; because average pooling is linear this equals zeroing "
          "the unit's entry of the pooled vector, so every ablation is computed as softmax(W @ pooled' + b) "
          "on the cached maps (no new forward pass). FC weights and the other units are untouched.")


def run(ctx: RunContext) -> SectionResult:
    start = time.perf_counter()
    places = ctx.places()
    scene_set = ctx.scenes()
    params = ctx.params("units")
    n_top = int(params.get("top_units", 5))
    limit = int(params["sweep_limit"])
    weight, bias = fc_params(places.model)

    maps, cached_all, per_image_seconds = {}, True, {}
    for scene in progress(scene_set.scenes, "layer4 feature maps", quiet=not ctx.show_progress):
        t = time.perf_counter()
        fm, cached = ctx.feature_maps(scene)
        maps[scene.name] = fm
        cached_all &= cached
        per_image_seconds[scene.name] = time.perf_counter() - t

    t = time.perf_counter()
    masks = {s.name: s.masks(MASK_SIZE) for s in scene_set.scenes if s.concepts}
    dissection = concept_units.dissect({name: fm.maps for name, fm in maps.items()}, masks)
    dissection_seconds = time.perf_counter() - t
    _save_dissection(ctx.out / DISSECTION_FILE, scene_set.scenes, maps, masks, dissection.thresholds)

    named = _named_units(dissection.overall)
    figs, scenes_json, sweep_ms = {}, [], []
    for scene in scene_set.scenes:
        t = time.perf_counter()
        fm = maps[scene.name]
        entry, scene_figs, ms = _scene(ctx, scene, fm, dissection, weight, bias, n_top, limit, places.labels,
                                       places.demo, named)
        figs.update(scene_figs)
        scenes_json.append(entry)
        sweep_ms.append(ms)
        per_image_seconds[scene.name] += time.perf_counter() - t + dissection_seconds / len(maps)

    example = next(iter(maps.values()))
    c = example.maps.shape[0]
    data = {
        "model": {
            "arch": places.arch,
            "children_kept": [name for name, _ in places.model.named_children()
                              if name not in ("avgpool", "fc")],
            "children_dropped": ["avgpool", "fc"],
            "code": "nn.Sequential(*[m for name, m in model.named_children() "
                    "if name not in ('avgpool', 'fc')])",
            "summary": _describe(chop(places.model)),
            "input_shape": list(example.input_shape),
            "output_shape": list(example.chopped_shape),
            "image_size": ctx.config.image_size,
        },
        "dissection": {
            "quantile": concept_units.QUANTILE,
            "cutoff": concept_units.DETECTOR_IOU,
            "null": {"method": concept_units.NULL_METHOD, "draws": len(concept_units.shifts(MASK_SIZE)),
                     "level": concept_units.NULL_LEVEL},
            "cap_method": "largest IoU any unit's thresholded region could reach with its size fixed: "
                          "sum over images of min(|active|, |mask|) / sum of max(|active|, |mask|), "
                          "best unit",
            "file": DISSECTION_FILE,
            "mask_size": list(MASK_SIZE),
            "images": len(maps),
            "annotated_images": len(masks),
            "positions_per_unit": int(len(maps) * np.prod(example.maps.shape[1:])),
            "overall": _overall_json(dissection.overall, n_top),
            "correction": _correction_json(dissection.overall, c),
        },
        "unit300": PROBLEM_SET_UNIT if PROBLEM_SET_UNIT < c else None,
        "units": c,
        "top_units": n_top,
        "sweep_limit": limit,
        "zeroed": ZEROED,
        "skipped": scene_set.skipped,
        "duplicates": scene_set.duplicates,
        "timing": {
            "per_image_seconds": {k: round(v, 4) for k, v in per_image_seconds.items()},
            "mean_per_image_seconds": float(np.mean(list(per_image_seconds.values()))),
            "feature_maps_cached": cached_all,
            "sweep_ms_per_image": float(np.median(sweep_ms)),
            "dissection_seconds": dissection_seconds,
        },
        "scenes": scenes_json,
    }
    return SectionResult(data, figs, cached=cached_all, seconds=time.perf_counter() - start)


def _describe(chopped) -> list[str]:
    return [f"{i}: {type(m).__name__}" + (f" ({len(m)} blocks)" if hasattr(m, "__len__") else "")
            for i, m in enumerate(chopped)]


def _named_units(overall: dict[str, concept_units.ConceptRanking]) -> dict[str, list[int]]:
    """The units 2b's answer names per concept (the set's best unit, then the corrected detectors): the
    figures draw these first, so every unit the text names has its map in the body."""
    found = concept_units.corrected_detectors(overall)
    return {c: list(dict.fromkeys([int(r.order[0]), *(u for u, _ in found[c])])) for c, r in overall.items()}


def _overall_json(overall: dict[str, concept_units.ConceptRanking], n: int) -> dict:
    """2b over the whole set: per concept as ``_concept_json``, plus the best unit's p-value and the
    detectors that survive the correction for every unit and every concept tested."""
    found = concept_units.corrected_detectors(overall)
    tested = sum(1 for r in overall.values() if r.null_draws)
    out = {}
    for concept, r in overall.items():
        p = r.p_value(int(r.order[0]))
        out[concept] = {"images": r.images, **_concept_json(r, n), "best_p": p,
                        "best_p_corrected": None if p is None else min(1.0, p * tested),
                        "smallest_p": r.smallest_p,
                        "corrected_detectors": [{"unit": u, "p_corrected": q} for u, q in found[concept]]}
    return out


def _correction_json(overall: dict[str, concept_units.ConceptRanking], units: int) -> dict:
    tested = sum(1 for r in overall.values() if r.null_draws)
    alpha = 1 - concept_units.NULL_LEVEL
    return {"method": sentences.correction_method(units, tested, alpha),
            "units": units, "concepts_tested": tested, "alpha": alpha,
            "bar": alpha / tested if tested else None}


def _concept_json(ranking: concept_units.ConceptRanking, n: int) -> dict:
    """What 2b says about one concept: the best units, the cap, the null level and both detector counts."""
    calibrated = ranking.null_level is not None
    return {"mask_fraction": ranking.mask_fraction,
            "top": [{"unit": s.unit, "iou": s.iou, "above_null": ranking.above_null(s.unit)}
                    for s in ranking.top(n)],
            "cap": ranking.cap, "null_max_iou": ranking.null_level, "null_draws": ranking.null_draws,
            "detector_count": len(ranking.detectors()) if calibrated else None,
            "netdissect_count": len(ranking.netdissect())}


def _save_dissection(path, scenes, maps, masks, thresholds) -> None:
    """Everything needed to recompute every IoU of 2b: thresholds, layer4 maps and masks per scene."""
    arrays = {"thresholds": thresholds, "quantile": np.float64(concept_units.QUANTILE),
              "mask_size": np.array(MASK_SIZE), "scene_ids": np.array([s.id for s in scenes]),
              "scene_images": np.array([s.name for s in scenes])}
    for scene in scenes:
        arrays[f"maps_{scene.id}"] = maps[scene.name].maps
        concepts = masks.get(scene.name, {})
        arrays[f"concepts_{scene.id}"] = np.array(list(concepts), dtype=str)
        arrays[f"masks_{scene.id}"] = (np.stack(list(concepts.values())) if concepts
                                       else np.zeros((0, *MASK_SIZE), dtype=bool))
    atomic.write_with(path, lambda handle: np.savez_compressed(handle, **arrays))


def _scene(ctx, scene, fm, dissection, weight, bias, n_top, limit, labels, demo, named):
    """Everything Problem 2 says about one scene: (results entry, figures, sweep milliseconds)."""
    pooled = fm.pooled
    c = fm.maps.shape[0]
    figs = {}
    inputs = ctx.places_inputs(with_scenes=True)
    entry = {**scene.identity(), "top5": top_k(fm.probs, labels)}

    # 2b: concept units (per-image IoU with the set's thresholds) or, without masks, the most active units
    rankings = dissection.per_image.get(scene.name, {})
    entry["concept_units"] = {concept: [{"unit": s.unit, "iou": s.iou} for s in r.top(n_top)]
                              for concept, r in rankings.items()}
    entry["concepts"] = [{
        "concept": concept, **_concept_json(r, n_top),
        "detectors": [{"unit": s.unit, "iou": s.iou} for s in r.detectors()[:n_top]],
        "unit300": ({"iou": float(r.iou[PROBLEM_SET_UNIT]), "rank": r.rank_of(PROBLEM_SET_UNIT),
                     "above_null": r.above_null(PROBLEM_SET_UNIT)} if PROBLEM_SET_UNIT < c else None),
    } for concept, r in rankings.items()]
    # the figure's units per concept: those 2b names for the whole set first, then this image's best
    entry["figure_units"] = {concept: list(dict.fromkeys(
        [*named.get(concept, []), *(s.unit for s in r.top(SHOWN_UNITS) if s.iou > 0)]))[:SHOWN_UNITS]
        for concept, r in rankings.items()}
    entry["most_active"] = [{"unit": u, "mean": m} for u, m in concept_units.most_active(fm.maps, n_top)]
    if PROBLEM_SET_UNIT < c:
        m = fm.maps[PROBLEM_SET_UNIT]
        entry["unit300"] = {"mean": float(m.mean()), "max": float(m.max()),
                            "threshold": float(dissection.thresholds[PROBLEM_SET_UNIT]),
                            "activity_rank": concept_units.activity_rank(fm.maps, PROBLEM_SET_UNIT)}
    fig_id = f"units_{scene.id}_concepts"
    figs[fig_id] = ctx.figure(fig_id,
                              lambda: _draw_concepts(scene, fm.maps, dissection.thresholds, rankings, entry),
                              demo, inputs)
    entry["figures"] = {"concepts": fig_id}

    # 2c: top-5 units by FC weight of the top-1 class, zeroed
    ab = unit_ablation.ablate_top_units(pooled, weight, bias, 5)
    entry["ablation"] = {
        "class": {"index": ab.cls, "label": labels[ab.cls]},
        "units": [int(u) for u in ab.units],
        "weights": [float(w) for w in ab.weights],
        "mean_activation": [float(pooled[u]) for u in ab.units],
        "top5_before": top_k(ab.probs_before, labels),
        "top5_after": top_k(ab.probs_after, labels),
        "prob_before": float(ab.probs_before[ab.cls]),
        "prob_after": float(ab.probs_after[ab.cls]),
        "rank_after": ab.rank_after,
        "top1_changed": ab.top1_changed,
    }
    fig_id = f"units_{scene.id}_ablation"
    figs[fig_id] = ctx.figure(fig_id, lambda: _draw_ablation(scene, fm.maps, entry["ablation"]), demo, inputs)
    entry["figures"]["ablation"] = fig_id

    # 2d: the exact minimum and both greedy sweeps (timed: the "milliseconds, not a forward per k" claim)
    t = time.perf_counter()
    fewest = unit_ablation.fewest_units(pooled, weight, bias, limit)
    ms = 1000 * (time.perf_counter() - t)
    entry["sweep"] = {name: _sweep_json(s, labels) for name, s in fewest.sweeps.items()}
    entry["sweep"]["exact"] = _exact_json(fewest.exact, labels)
    entry["sweep"]["greedy_excess"] = fewest.greedy_excess
    entry["sweep"]["milliseconds"] = ms
    fig_id = f"units_{scene.id}_sweep"
    figs[fig_id] = ctx.figure(fig_id, lambda: _draw_sweep(scene, fewest, labels), demo, inputs)
    entry["figures"]["sweep"] = fig_id
    return entry, figs, ms


def _sweep_json(s: unit_ablation.Sweep, labels: list[str]) -> dict:
    return {"class": {"index": s.cls, "label": labels[s.cls]}, "min_k": s.min_k, "new_top1": s.new_top1,
            "new_top1_label": labels[s.new_top1] if s.new_top1 is not None else None,
            "units": [int(u) for u in s.order[: (s.min_k or len(s.order))]],
            "k": [int(k) for k in s.k], "prob": [float(p) for p in s.prob],
            "prob_at_min_k": float(s.prob[s.min_k]) if s.min_k is not None else None}


def _exact_json(e: unit_ablation.ExactMinimum, labels: list[str]) -> dict:
    return {"k": e.k, "units": [int(u) for u in e.units],
            "rival": {"index": e.rival, "label": labels[e.rival]},
            "new_top1": ({"index": e.new_top1, "label": labels[e.new_top1]}
                         if e.new_top1 is not None else None),
            "prob_before": e.prob_before, "prob_after": e.prob_after}


# ------------------------------------------------------------------------------------------- figures

def _unit_panel(ax, rgb, unit_map, threshold, mask, title):
    """A unit's upsampled map above its threshold (cyan) and, if given, the concept mask's outline
    (yellow)."""
    size = rgb.shape[:2]
    active = concept_units.upsample(unit_map, size) > threshold
    overlay(ax, rgb)
    tint(ax, active, (0.0, 1.0, 1.0, 0.55))
    if mask is not None and mask.any() and not mask.all():
        ax.contour(mask.astype(float), levels=[0.5], colors=["yellow"], linewidths=1.2)
    ax.set_title(title, fontsize=7, pad=2)


def _draw_concepts(scene, maps, thresholds, rankings, entry):
    """Per concept, the units of ``entry["figure_units"]``, titled with this image's IoU."""
    rgb = display_image(scene.image)
    size = rgb.shape[:2]
    masks = scene.masks(size) if rankings else {}
    rows = []   # (row label, mask, [(unit, mask or None, title)])
    for concept, r in rankings.items():
        level = f"\nchance IoU {r.null_level:.3f}" if r.null_level is not None else ""
        rows.append((f"{plain(concept, 24)} (mask){level}", masks[concept],
                     [(u, masks[concept], f"unit {u}\nIoU {r.iou[u]:.3f}")
                      for u in entry["figure_units"][concept]]))
    if not rankings:
        rows.append(("no masks: most active", None,
                     [(d["unit"], None, f"unit {d['unit']}\nmean {d['mean']:.2f}")
                      for d in entry["most_active"][:SHOWN_UNITS]]))
    if "unit300" in entry:   # the problem set's unit against each concept (or alone without masks)
        u = PROBLEM_SET_UNIT
        panels = [(u, masks[c["concept"]], f"unit {u} vs {c['concept']}\nIoU {c['unit300']['iou']:.3f}")
                  for c in entry["concepts"][:SHOWN_UNITS]] or [(u, None, f"unit {u} above threshold")]
        rows.append((f"unit {u} (mean {entry['unit300']['mean']:.2f})", None, panels))
    cols = SHOWN_UNITS + 1
    aspect = size[0] / size[1]
    fig, axes = figures.plt.subplots(len(rows), cols, figsize=(cols * 2.0, len(rows) * 2.0 * aspect + 0.7),
                                     squeeze=False, layout="constrained")
    for r, (label, mask, units) in enumerate(rows):
        ax = axes[r, 0]
        if mask is not None:
            overlay(ax, rgb)
            tint(ax, mask, (1.0, 0.85, 0.0, 0.5))
        else:   # the row's first unit as a heat map, so a unit that never passes its threshold still shows
            unit_map = concept_units.upsample(maps[units[0][0]], size)
            overlay(ax, rgb, unit_map / max(float(thresholds[units[0][0]]), 1e-6), vmin=0, vmax=1)
        ax.set_title(label, fontsize=8, pad=2, weight="bold")
        for i in range(SHOWN_UNITS):
            ax = axes[r, i + 1]
            if i < len(units):
                unit, unit_mask, title = units[i]
                _unit_panel(ax, rgb, maps[unit], thresholds[unit], unit_mask, title)
            elif i == 0:
                ax.axis("off")
                ax.text(0.5, 0.5, "no unit's region\noverlaps the mask", ha="center", va="center", fontsize=7,
                        transform=ax.transAxes)
            else:
                ax.axis("off")
        if mask is None:
            cax = axes[r, 0].inset_axes([0.05, -0.16, 0.9, 0.07])
            fig.colorbar(colour_scale(0, 1), cax=cax, orientation="horizontal")
            cax.tick_params(labelsize=6)
            cax.set_xlabel("activation / threshold", fontsize=6, labelpad=1)
    fig.suptitle(f"{plain(scene.name)}: cyan = unit's upsampled map above its Network Dissection threshold; "
                 "yellow = concept mask", fontsize=8)
    return fig


def _draw_ablation(scene, maps, ab):
    rgb = display_image(scene.image)
    size = rgb.shape[:2]
    ups = [concept_units.upsample(maps[u], size) for u in ab["units"]]
    vmax = max(float(max(u.max() for u in ups)), 1e-6)
    fig = figures.plt.figure(figsize=(11, 5.4))
    grid = fig.add_gridspec(2, 6, height_ratios=[1.0, 1.0], width_ratios=[1, 1, 1, 1, 1, 0.08])
    for i, (unit, up) in enumerate(zip(ab["units"], ups)):
        ax = fig.add_subplot(grid[0, i])
        overlay(ax, rgb, up, vmin=0.0, vmax=vmax, alpha=0.55)
        ax.set_title(f"unit {unit}\nW={ab['weights'][i]:.3f}, mean {ab['mean_activation'][i]:.2f}",
                     fontsize=7)
    fig.colorbar(colour_scale(0.0, vmax), cax=fig.add_subplot(grid[0, 5]), label="activation")
    for col, (key, title) in enumerate([("top5_before", "before"),
                                        ("top5_after", "after zeroing the 5 units")]):
        ax = fig.add_subplot(grid[1, col * 3: col * 3 + 2])
        rows = ab[key][::-1]
        colours = ["#b3261e" if r["index"] == ab["class"]["index"] else "#2457a6" for r in rows]
        ax.barh(range(len(rows)), [r["prob"] for r in rows], color=colours)
        ax.set_yticks(range(len(rows)), [plain(r["label"]) for r in rows], fontsize=7)
        for y, r in enumerate(rows):
            ax.text(r["prob"], y, f" {r['prob']:.4f}", va="center", fontsize=7)
        ax.set_xlabel("probability", fontsize=7)
        ax.set_xlim(0, max(r["prob"] for r in rows) * 1.35)
        ax.tick_params(axis="x", labelsize=7)
        ax.set_title(f"top-5 {title}", fontsize=8)
    fig.suptitle(f"{plain(scene.name)}: the 5 units with the largest FC weight for "
                 f"'{plain(ab['class']['label'])}' (layer4 maps, upsampled bilinearly) and the prediction "
                 "without them (red: original top-1)", fontsize=8)
    return fig


def _draw_sweep(scene, fewest: unit_ablation.FewestUnits, labels):
    """Both greedy curves, and the exact minimum as a vertical line with the probability it leaves."""
    fig, ax = figures.plt.subplots(figsize=(7.5, 3.4))
    styles = {"by_weight": ("#2457a6", "units ranked by FC weight"),
              "by_contribution": ("#d97a00", "units ranked by W x mean activation")}
    for name, s in fewest.sweeps.items():
        colour, label = styles[name]
        flip = f", top-1 changes at k={s.min_k}" if s.min_k is not None else ", top-1 never changes"
        ax.plot(s.k, s.prob, color=colour, label=label + flip, lw=1.6)
        if s.min_k is not None:
            ax.axvline(s.min_k, color=colour, ls="--", lw=0.9)
    exact = fewest.exact
    if exact.k is not None:
        ax.axvline(exact.k, color="#b3261e", lw=1.4,
                   label=f"exact minimum: k={exact.k} (any units; dot: P after), "
                         f"new top-1 '{plain(labels[exact.new_top1], 28)}'")
        ax.plot([exact.k], [exact.prob_after], "o", color="#b3261e", ms=5)
    else:
        ax.plot([], [], color="#b3261e", label="exact minimum: no set of units changes the top-1 class")
    flips = [s.min_k for s in fewest.sweeps.values()]
    if all(k is not None for k in flips):   # zoom on where the class changes; the rest of the curve is flat
        ax.set_xlim(-0.5, min(len(s.k) - 1, max(10, 3 * max(flips))) + 0.5)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("k = number of units zeroed")
    ax.set_ylabel(f"P('{plain(labels[exact.cls])}')")
    ax.set_title(f"{plain(scene.name)}: probability of the original top-1 class "
                 "while zeroing the top-k units", fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return fig


# ------------------------------------------------------------------------------- the notebook's view

NOTEBOOK_CONCEPTS = ("sky", "building", "mountain")   # the problem set's three


def notebook_record(results: dict) -> dict:
    """What the notebook shows of 2b without recomputing it: each concept's best units over the annotated
    scenes, and the scene to draw them on."""
    overall = results["units"]["dissection"]["overall"]
    return {"units": {c: {"scene": scene_with(results, c),
                          "units": [{"unit": t["unit"], "iou": round(t["iou"], 4),
                                     "detector (corrected test)": t["unit"] in detectors(overall[c])}
                                    for t in overall[c]["top"][:5] if t["iou"] > 0]}
                      for c in NOTEBOOK_CONCEPTS if c in overall}}


def scene_with(results: dict, concept: str) -> str | None:
    """The id of the scene to show ``concept``'s units on: the focus scene when it has the concept (the
    problem set asks about "the image"), else the scene whose mask of it covers the most."""
    shares = [(s["image"] == results["run"].get("focus_scene"), c["mask_fraction"], s["id"])
              for s in results.get("scenes", []) for c in s.get("concepts", []) if c["concept"] == concept]
    return max(shares)[2] if shares else None


def detectors(concept: dict) -> set[int]:
    """The units the report's test, corrected for every unit and concept, calls detectors."""
    return {d["unit"] for d in concept.get("corrected_detectors", [])}
