"""Problem 3d by measurement: glue between analyses/cam_faithfulness.py and the CAM section.

For each measured scene and its top-1 class: CAM, Grad-CAM and Grad-CAM++ on layer4 (Score-CAM
where the preset allows its 2 048 forward passes), random maps and a centre prior, each scored by
deletion and insertion. The curves cost most of Problem 3's time, so they are cached under
everything that produced them: weights, image, input size, class, settings, seeds and code.
"""
from __future__ import annotations

import time
from importlib import metadata

import numpy as np

from analyses import cam
from analyses import cam_faithfulness as ff
from analyses.feature_maps import chop, preprocess
from miniplaces.report import figures
from miniplaces.report.context import RunContext
from miniplaces.report.wording import series

METHODS = ("CAM", *ff.GRADIENT_METHODS)
DEFAULTS = {"steps": 20, "random_seeds": 5, "max_scenes": None, "score_cam": False,
            "blur_sigma": 1 / 32, "centre_sigma": 0.25, "batch_size": 16}


def settings(ctx: RunContext) -> dict:
    """The preset's faithfulness knobs (the CAM section's presets: faithfulness) and the seeds."""
    s = {**DEFAULTS, **ctx.params("cam").get("faithfulness", {})}
    s["seeds"] = [ctx.config.seed + i for i in range(int(s["random_seeds"]))]
    return s


def measured(scenes: list, s: dict, focus: str | None) -> list:
    """The scenes to measure: all, or the first ``max_scenes`` with the focus scene first."""
    if s["max_scenes"] is None:
        return list(scenes)
    ordered = sorted(scenes, key=lambda sc: focus not in (sc.name, sc.id))
    return ordered[: int(s["max_scenes"])]


def rule(s: dict) -> dict:
    """3d's settings, verdict rule and procedure as the report states them once."""
    methods = series(list(METHODS) + ([ff.SCORE_CAM] if s["score_cam"] else []))
    seeds = ", ".join(map(str, s["seeds"]))
    score_cam = ("" if s["score_cam"] else " Score-CAM needs one forward pass per layer4 unit (2 048 for "
                 "ResNet-50) and runs only in the full preset.")
    return {
        "steps": s["steps"], "random_seeds": s["seeds"], "blur_sigma_fraction": s["blur_sigma"],
        "centre_sigma_fraction": s["centre_sigma"], "score_cam": s["score_cam"],
        "max_scenes": s["max_scenes"], "methods": methods,
        "text": ("a map is effective on a scene when its deletion area is below, and its insertion area "
                 "above, the mean of the random maps by more than their standard deviation over the seeds; "
                 "it beats the centre prior when it clears the centre prior's two areas by the same margins"),
        "procedure": (
            "the pixels a map ranks first are replaced by a blurred copy (Gaussian, sigma "
            f"{s['blur_sigma']:.3f} of the side) in {s['steps']} equal steps (deletion), or revealed in that "
            "order on the blurred image (insertion); each curve is the top-1 class's softmax probability, "
            "its area taken by the trapezoid rule over the fraction of pixels (Petsiuk et al. 2018). Random "
            "maps: uniform values "
            f"on the CAM's grid, upsampled like CAM, seeds {seeds}; centre prior: a Gaussian of sigma "
            f"{s['centre_sigma']} of each side. Ties in a ranking are broken in a seeded random order. "
            f"{methods} of the top-1 logit on layer4; the gradient maps by pytorch-grad-cam. Behind global "
            "average pooling and one linear layer, Grad-CAM is CAM with its negative part set to zero "
            "(Selvaraju et al. 2017), so their curves differ only where CAM is negative." + score_cam),
    }


def measure(ctx: RunContext, scene, raw_top1: np.ndarray, top1: dict, s: dict) -> tuple[dict, str]:
    """(JSON entry, figure path) of one scene's faithfulness measurement, cached."""
    places = ctx.places()
    size = ctx.config.image_size
    parts = {"sha256": places.sha256, "arch": places.arch, "image": scene.sha256, "size": size,
             "class": top1["index"], "settings": {k: v for k, v in s.items() if k != "batch_size"},
             "grad_cam": metadata.version("grad-cam"), "code": _code()}
    value, cached = ctx.cache.get_or_compute(
        "cam_faithfulness", parts, lambda: _compute(places, scene, raw_top1, top1["index"], size, s))
    entry = _entry(value, top1)
    entry["cached"] = cached
    fig_id = f"cam_faithfulness_{scene.id}"
    path = ctx.figure(fig_id, lambda: _draw(scene.name, entry), places.demo,
                      {**parts, "labels": top1["label"]})
    entry["figure"] = fig_id
    return entry, path


def _code() -> str:
    from analyses import concept_units, feature_maps
    from miniplaces.cache import code_version
    from miniplaces.inputs import scenes

    return code_version(ff, cam, concept_units, feature_maps, scenes, __file__)


def _compute(places, scene, raw_top1, cls, size, s) -> dict:
    start, cpu = time.perf_counter(), time.process_time()
    x = preprocess(scene.image, size)
    hw = (size, size)
    maps = {"CAM": cam.display_cam(raw_top1, hw),
            **ff.gradient_maps(places.model, chop(places.model)[-1], x, cls, s["score_cam"], s["batch_size"]),
            ff.CENTRE: ff.centre_prior(hw, s["centre_sigma"]),
            **ff.random_maps(raw_top1.shape, hw, s["seeds"])}
    curves = ff.deletion_insertion(places.model, x, cls, maps, s["steps"], s["blur_sigma"], s["batch_size"],
                                   seed=s["seeds"][0])
    return {"curves": {name: {"fractions": c.fractions, "deletion": c.deletion, "insertion": c.insertion}
                       for name, c in curves.items()},
            "seconds": time.perf_counter() - start, "cpu_seconds": time.process_time() - cpu}


def _entry(value: dict, top1: dict) -> dict:
    curves = {name: ff.Curves(**c) for name, c in value["curves"].items()}
    baseline = ff.random_baseline(curves)
    centre = curves[ff.CENTRE]
    methods = {}
    for name, c in curves.items():
        row = {"deletion_auc": c.deletion_auc, "insertion_auc": c.insertion_auc,
               "deletion": c.deletion, "insertion": c.insertion}
        if name not in (ff.CENTRE,) and not name.startswith(ff.RANDOM_PREFIX):
            j = ff.judge(c, baseline, centre)
            row.update(effective=j.effective, beats_centre=j.beats_centre)
        methods[name] = row
    cam_curve = curves["CAM"]
    return {"class": top1, "fractions": next(iter(curves.values())).fractions, "methods": methods,
            "random": baseline, "effective": methods["CAM"]["effective"],
            # all blurred: where P hardly moves, every curve is flat and the test cannot decide
            "decidable": ff.decidable(cam_curve),
            "prob_original": cam_curve.deletion[0], "prob_all_blurred": cam_curve.deletion[-1],
            "beats_centre": methods["CAM"]["beats_centre"], "seconds": value["seconds"],
            "cpu_seconds": value["cpu_seconds"]}


def _draw(name: str, entry: dict):
    """Deletion and insertion curves of every map for one scene; random seeds thin and grey."""
    fig, axes = figures.plt.subplots(1, 2, figsize=(9.0, 3.4), sharey=True)
    x = entry["fractions"]
    styles = {"CAM": ("tab:red", "-"), "Grad-CAM": ("tab:blue", "--"), "Grad-CAM++": ("tab:green", "-."),
              ff.SCORE_CAM: ("tab:purple", ":"), ff.CENTRE: ("black", ":")}
    random = entry["random"]
    for ax, curve in zip(axes, ("deletion", "insertion")):
        first = True
        for method, row in entry["methods"].items():
            if method.startswith(ff.RANDOM_PREFIX):
                label = (f"random, {random['seeds']} seeds ({random[curve + '_mean']:.3f} ± "
                         f"{random[curve + '_sd']:.3f})") if first else None
                ax.plot(x, row[curve], color="0.6", lw=0.8, label=label)
                first = False
            else:
                colour, dash = styles.get(method, ("tab:orange", "-"))
                ax.plot(x, row[curve], color=colour, ls=dash, lw=1.6,
                        label=f"{method} ({row[curve + '_auc']:.3f})")
        ax.set_title(f"{curve} (area in legend)", fontsize=9)
        ax.set_xlabel("fraction of pixels " + ("removed" if curve == "deletion" else "revealed"))
        ax.legend(fontsize=6.5, loc="upper right" if curve == "deletion" else "lower right")
    axes[0].set_ylabel(f"P({figures.plain(entry['class']['label'], 24)})")
    fig.suptitle(figures.plain(name, 40), fontsize=9)
    fig.tight_layout()
    return fig
