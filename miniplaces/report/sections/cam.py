"""Problem 3 (class activation maps): glue between analyses/cam.py and the report.

CAMs reuse the layer4 maps of Problem 2 (ctx.feature_maps): the FC layer applied at each of the
h x w positions is all that 3a-3c add, one small matrix product per scene. 3d's verdict is measured
by deletion and insertion (sections/cam_faithfulness.py): tens of forward passes per scene, cached.
"""
from __future__ import annotations

import time

import numpy as np
import torch

from analyses import cam as analysis
from analyses.feature_maps import fc_params, top_k
from miniplaces import atomic
from miniplaces.report import figures
from miniplaces.report.answers import cam as sentences
from miniplaces.report.context import RunContext, SectionResult
from miniplaces.report.figures import colour_scale, display_image, overlay, plain
from miniplaces.report.sections import cam_faithfulness

CONTRIBUTORS = 3   # units listed per class


def run(ctx: RunContext) -> SectionResult:
    start = time.perf_counter()
    places = ctx.places()
    scene_set = ctx.scenes()
    k = int(ctx.params("cam").get("top_k", 5))
    weight, bias = fc_params(places.model)
    faithful = cam_faithfulness.settings(ctx)
    measured = {s.id for s in cam_faithfulness.measured(scene_set.scenes, faithful, ctx.config.focus_image)}
    figs, scenes_json, cached_all, shapes = {}, [], True, None
    for scene in scene_set.scenes:
        t = time.perf_counter()
        fm, cached = ctx.feature_maps(scene)
        cached_all &= cached
        entry, scene_figs, scene_shapes = _scene(ctx, scene, fm, weight, bias, k, places)
        shapes = shapes or scene_shapes
        figs.update(scene_figs)
        if scene.id in measured:
            top1 = entry["top5"][0]
            raw_top1 = analysis.raw_cams(fm.maps, weight, [top1["index"]])[0]
            faith, path = cam_faithfulness.measure(ctx, scene, raw_top1, top1, faithful)
            cached_all &= faith["cached"]
            entry["cam"]["faithfulness"], figs[faith["figure"]] = faith, path
        entry["seconds"] = time.perf_counter() - t
        scenes_json.append(entry)
    effective = [s["image"] for s in scenes_json if s["cam"].get("faithfulness", {}).get("effective")]
    data = {
        "method": {
            "definition": "M_j(x, y) = sum_u W[j, u] f_u(x, y) over the units u of layer4 (Zhou et al. 2016)",
            "negative_weights": "kept, as in the problem set (the official Places365 CAM script zeroes them)",
            "bias": "the (hw x 365) output of 3b includes the FC bias b_j; the CAM stored in the .npz files "
                    "leaves it out. b_j is one constant per class, so the normalised maps are identical "
                    "either way.",
            "display": "raw h x w map upsampled bilinearly to the image, then min-max normalised to [0, 1] "
                       "(a constant map is shown as all zeros); colour map jet (blue 0, red 1) "
                       "blended at 50 %",
        },
        "shapes": shapes,
        "faithfulness": cam_faithfulness.rule(faithful),
        "shape_text": "share of the top-1 CAM's mass in its brightest 20 % of pixels (a uniform map: 20 %) "
                      "and mean correlation between the top-5 classes' CAMs: "
                      "a description of the maps, not a verdict",
        "effective_scenes": effective,
        "measured_scenes": [s["image"] for s in scenes_json if "faithfulness" in s["cam"]],
        "top_k": k,
        "skipped": scene_set.skipped,
        "duplicates": scene_set.duplicates,
        "scenes": scenes_json,
    }
    return SectionResult(data, figs, cached=cached_all, seconds=time.perf_counter() - start)


def _scene(ctx, scene, fm, weight, bias, k, places):
    labels = places.labels
    c, h, w = fm.maps.shape
    # 3a, 3b exactly as the problem set: the FC module applied to the (hw x c) tensor
    maps_t = torch.from_numpy(fm.maps)[None].to(places.device)
    reshaped = analysis.reshape_hw_c(maps_t)
    per_position = analysis.fc_per_position(maps_t, places.model.fc).float().cpu().numpy()
    top = top_k(fm.probs, labels, k)
    classes = [t["index"] for t in top]
    raw = analysis.raw_cams(fm.maps, weight, classes)
    shapes = {"chopped": [1, c, h, w], "reshaped": list(reshaped.shape),
              "fc_output": list(per_position.shape),
              # checks that 3b is what CAM and the classifier say it is (float32 round-off only)
              "mean_over_positions_vs_logits": float(np.abs(per_position.mean(axis=0) - fm.logits).max()),
              "columns_vs_cam_plus_bias": float(np.abs(
                  per_position[:, classes].T.reshape(len(classes), h, w)
                  - (raw + bias[classes, None, None])).max())}

    npz_path = ctx.out / "cam" / f"{scene.id}.npz"
    arrays = {str(cls): raw[i].astype(np.float32) for i, cls in enumerate(classes)}
    atomic.write_with(npz_path, lambda handle: np.savez(handle, **arrays))

    rgb = display_image(scene.image)
    size = rgb.shape[:2]
    shown = [analysis.display_cam(r, size) for r in raw]
    masks = scene.masks(size)
    explanations = [_explain(t, fm.maps, weight, shown[i], raw[i], masks) for i, t in enumerate(top)]
    fig_id = f"cam_{scene.id}"
    fig_path = ctx.figure(fig_id, lambda: _draw(scene, rgb, shown, top), places.demo,
                          ctx.places_inputs(with_scenes=True))
    entry = {**scene.identity(), "top5": top_k(fm.probs, labels, 5),
             "cam": {"classes": classes, "file": ctx.relative(npz_path), "raw_shape": [h, w],
                     "explanations": explanations,
                     "shape": {"concentration": analysis.concentration(shown[0]),
                               "correlation": analysis.mean_pairwise_correlation(raw)},
                     "shapes": shapes, "figure": fig_id}}
    return entry, {fig_id: fig_path}, shapes


def _explain(t, maps, weight, shown, raw, masks) -> dict:
    """Measured reasons for one class's map: its top contributing units and the concept regions it covers."""
    units = [{"unit": u, "contribution": v, "share": s}
             for u, v, s in analysis.top_contributors(maps, weight, t["index"], CONTRIBUTORS)]
    concepts = []
    for name, mask in masks.items():
        area = float(mask.mean())
        mass = analysis.mass_in_mask(shown, mask)
        concepts.append({"concept": name, "mass": mass, "area": area,
                         "lift": mass / area if area > 0 else None})
    concepts.sort(key=lambda d: -d["mass"])
    peak = [int(i) for i in np.unravel_index(int(np.argmax(raw)), raw.shape)]
    explained = {"index": t["index"], "label": t["label"], "prob": t["prob"], "units": units,
                 "concepts": concepts, "peak": peak}
    return {**explained, "text": sentences.explanation(explained, raw.shape)}


def _draw(scene, rgb, shown, top):
    """The image and its top-5 CAMs in a 2 x 3 grid, so each panel prints at a readable size."""
    n = len(shown)
    cols = 3
    rows = (n + 1 + cols - 1) // cols
    aspect = rgb.shape[0] / rgb.shape[1]
    fig = figures.plt.figure(figsize=(3.0 * cols + 0.6, rows * (3.0 * aspect + 0.6)))
    grid = fig.add_gridspec(rows, cols + 1, width_ratios=[1] * cols + [0.05])
    ax = fig.add_subplot(grid[0, 0])
    overlay(ax, rgb)
    ax.set_title(plain(scene.name, 30), fontsize=9)
    for i, (cam, t) in enumerate(zip(shown, top)):
        ax = fig.add_subplot(grid[(i + 1) // cols, (i + 1) % cols])
        overlay(ax, rgb, cam, alpha=0.5)
        ax.set_title(f"{i + 1}. {plain(t['label'], 28)}\np = {t['prob']:.4f}", fontsize=9)
    fig.colorbar(colour_scale(0.0, 1.0), cax=fig.add_subplot(grid[:, cols]), label="CAM (min-max)")
    return fig


def notebook_record(results: dict) -> dict:
    """What the notebook shows of 3d without recomputing it: each scene's deletion and insertion areas."""
    return {"faithfulness": [
        {"scene": s["image"], "class": s["cam"]["faithfulness"]["class"]["label"], "map": method,
         "deletion_auc": round(v["deletion_auc"], 4), "insertion_auc": round(v["insertion_auc"], 4),
         "effective": v.get("effective")}
        for s in results.get("scenes", []) if (s.get("cam") or {}).get("faithfulness")
        for method, v in s["cam"]["faithfulness"]["methods"].items()]}
