"""Problem 4 (FashionMNIST training): glue between analyses/fashion_mnist and the report.

Order of work: validate the grid file, find and verify the data (both fail fast with exit 2),
run the one-axis-at-a-time trials, the combination of each axis's best value, the finalists (the
best few and the baseline, trained as the final model will be), then retrain the one with the best
validation accuracy on all 60k training images, score it once on the test set and save it.
"""
from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.ticker import MaxNLocator

from analyses.fashion_mnist import data as fdata
from analyses.fashion_mnist import grid as fgrid
from analyses.fashion_mnist.executors import run_specs
from analyses.fashion_mnist.model import save_model
from analyses.fashion_mnist.trials import TrialEnv, default_threads, rebuild_model

from .. import figures
from ..context import RunContext, SectionResult
from ..errors import UserError
from ..places_model import pick_device
from ..progress import progress

TITLE = "FashionMNIST training"
NUMBER = 4
TOC = [("fm-4a", "4a. train"), ("fm-4b", "4b. get_prediction and evaluate"),
       ("fm-4c", "4c. optimizer and 10-epoch baseline"), ("fm-4d", "4d. hyperparameter grid"),
       ("fm-final", "Final model")]
REPO = Path(__file__).resolve().parents[2]
GRIDS = REPO / "grids"
MODEL_FILE = "fashion_mnist_model.pt"
PROTOCOL = ("Model selection uses a fixed validation split of the 60 000 training images (the same images "
            "for every trial and seed); the official 10 000-image test set is scored once, on the finished "
            "final model, and never used to choose anything.")


def grid_path(ctx: RunContext) -> Path:
    """--grid PATH, else the preset's grid file in grids/ (found beside the code, not installed data)."""
    if ctx.config.grid:
        return Path(ctx.config.grid)
    return GRIDS / f"{ctx.config.params('fashion_mnist')['grid']}.toml"


def check(ctx: RunContext) -> fgrid.Grid:
    """Validate the grid file; a bad one stops the run with exit code 2 before any training."""
    try:
        return fgrid.load_grid(grid_path(ctx))
    except fgrid.GridError as exc:
        raise UserError(str(exc)) from None


def run(ctx: RunContext) -> SectionResult:
    start = time.perf_counter()
    grid = check(ctx)
    cfg = ctx.config
    try:
        folder = fdata.locate(cfg.data_dir, Path(cfg.cache_dir), cfg.offline)
        data = fdata.load(folder)
    except fdata.DataError as exc:
        raise UserError(f"FashionMNIST: {exc}") from None
    env = TrialEnv(str(folder), data.sha256, str(cfg.cache_dir), cfg.use_cache, grid.val_size, grid.train_subset,
                   str(pick_device(cfg.device)), default_threads())

    def execute(specs: list[fgrid.TrialSpec], desc: str) -> list[tuple[dict, bool]]:
        return run_specs(specs, env, cfg.executor, cfg.ray_address,
                         iterate=lambda items: progress(items, desc, quiet=not ctx.show_progress), cache=ctx.cache)

    specs = fgrid.one_at_a_time(grid, cfg.seed)
    grid_start = time.perf_counter()
    outcomes = execute(specs, "FashionMNIST grid")
    grouped = _group(specs, outcomes)
    extra = fgrid.combination(grid, grouped, specs, cfg.seed)
    if extra:
        outcomes += execute(extra, "FashionMNIST combination")
        specs += extra
        grouped = _group(specs, outcomes)
    grid_wall_s = time.perf_counter() - grid_start
    finalist_specs = fgrid.finalist_specs(grid, grouped, specs, cfg.seed)
    finalists_start = time.perf_counter()
    finalist_outcomes = execute(finalist_specs, "FashionMNIST finalists") if finalist_specs else []
    finalists_wall_s = time.perf_counter() - finalists_start
    finalist_results = _group(finalist_specs, finalist_outcomes)
    pool, pool_specs = (finalist_results, finalist_specs) if finalist_specs else (grouped, specs)
    final_images = fdata.COUNTS["train"]
    eligible = fgrid.within_budget(grid, pool, final_images)
    if grid.final_budget_s and not fgrid.ranked(eligible):
        fastest = min(fgrid.projected_final_s(grid, r, final_images) for r in pool.values())
        ctx.warn(f"FashionMNIST: no candidate's final model fits final_budget_s = {grid.final_budget_s:.0f} s "
                 f"(fastest: {fastest:.0f} s projected); choosing by validation accuracy alone")
        eligible = pool
    try:
        final_spec = fgrid.final_spec(grid, eligible, pool_specs, cfg.seed)
    except fgrid.GridError as exc:  # every candidate diverged
        raise UserError(f"FashionMNIST: {exc}") from None
    chosen = fgrid.ranked(eligible)[0]
    final_start = time.perf_counter()
    (final, final_cached), = execute([final_spec], "FashionMNIST final model")
    final_wall_s = time.perf_counter() - final_start
    if final["status"] != "ok":
        raise UserError(f"FashionMNIST: the final model diverged ({final['error']}); lower the learning rate "
                        f"in {grid.source}")
    trials = [_trial_json(s, r, c) for s, (r, c) in zip(specs, outcomes)]
    finalists = [_trial_json(s, r, c) for s, (r, c) in zip(finalist_specs, finalist_outcomes)]
    for row in trials + finalists:
        if row["status"] == "diverged":
            ctx.warn(f"FashionMNIST trial {row['name']!r} (seed {row['seed']}) diverged: {row['error']}")

    model_path = ctx.out / MODEL_FILE
    net = rebuild_model(final)
    save_model(net, model_path, {"test_acc": final["test_acc"], "trained_on": final["train_images"],
                                 "classes": list(fdata.CLASSES), "seed": final_spec.seed})
    figs = {}
    axes = _axes_json(grid, grouped, specs)
    baseline = grouped["baseline"][0]
    figs["fm_baseline_curves"] = _save(ctx, "fm_baseline_curves", _draw_history(
        baseline["history"], f"Baseline ({baseline['config']['epochs']} epochs): loss and accuracy per epoch"))
    for axis in axes:
        figs[axis["figure"]] = _save(ctx, axis["figure"], _draw_axis(axis, grouped))
    finalists_json = _finalists_json(grid, grouped, finalist_specs, finalist_results, chosen, final_images)
    if finalists_json:
        figs[finalists_json["figure"]] = _save(ctx, finalists_json["figure"], _draw_axis(finalists_json, finalist_results))
    figs["fm_final_curves"] = _save(ctx, "fm_final_curves", _draw_history(
        final["history"], f"Final model on {final['train_images']} images; test accuracy "
                          f"{100 * final['test_acc']:.2f} % (scored once)", test_acc=final["test_acc"]))

    data_json = {
        "protocol": PROTOCOL,
        "data": {"source": data.source, "sha256": data.sha256, "train_images": len(data.train_y),
                 "test_images": len(data.test_y), "val_images": grid.val_size,
                 "grid_train_images": baseline["train_images"], "val_split_seed": fdata.VAL_SPLIT_SEED},
        "grid": {"source": _shown_path(grid.source), "description": grid.description, "repeats": grid.repeats,
                 "base": grid.base.to_dict(), "final_overrides": _jsonable(grid.final),
                 "axes": {a: [fgrid.describe(v) for v in vs] for a, vs in grid.axes.items()},
                 "executor": cfg.executor, "threads": env.threads, "device": env.device},
        "baseline": _baseline_json(grouped["baseline"]),
        "trials": trials,
        "axes": axes,
        "combined": next((t for t in trials if t["axis"] == "combined"), None),
        "grid_train_s": sum(t["train_s"] for t in trials),
        "grid_trials_trained": sum(not t["cached"] for t in trials),
        "grid_wall_s": grid_wall_s,
        "finalists": finalists_json and {**finalists_json, "trials": finalists, "wall_s": finalists_wall_s,
                                         "train_s": sum(t["train_s"] for t in finalists),
                                         "train_images": finalists[0]["train_images"]},
        "final": {"name": final_spec.name, "config": final["config"], "overrides": _jsonable(final_spec.overrides),
                  "test_acc": final["test_acc"], "model_file": ctx.relative(model_path), "params": final["params"],
                  "train_s": final["train_s"], "wall_s": final_wall_s, "train_images": final["train_images"],
                  "seed": final_spec.seed,
                  "history": final["history"], "cached": final_cached,
                  "chosen": chosen, "chosen_val_acc": fgrid.mean_val_acc(pool[chosen]),
                  "chosen_by": "finalists" if finalist_specs else "grid", "budget_s": grid.final_budget_s,
                  "projected_s": fgrid.projected_final_s(grid, pool[chosen], final_images),
                  "load_snippet": f'from analyses.fashion_mnist.model import load_model; '
                                  f'net = load_model("{_shown_path(model_path)}")',
                  "command": f"python -m analyses.fashion_mnist.evaluate_model {_shown_path(model_path)}"},
    }
    cached = final_cached and all(c for _, c in outcomes + finalist_outcomes)
    return SectionResult("fashion_mnist", TITLE, data_json, figs, cached=cached, seconds=time.perf_counter() - start)


def _group(specs: list[fgrid.TrialSpec], outcomes: list[tuple[dict, bool]]) -> dict[str, list[dict]]:
    grouped: dict[str, list[dict]] = {}
    for spec, (result, _) in zip(specs, outcomes):
        grouped.setdefault(spec.name, []).append(result)
    return grouped


def _jsonable(overrides: dict[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in overrides.items()}


def _shown_path(path: str | Path) -> str:
    """A path relative to the working directory when it is inside it (shorter, and no home dirs in reports)."""
    path = Path(path)
    try:
        return path.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return str(path)


def _trial_json(spec: fgrid.TrialSpec, result: dict, cached: bool) -> dict:
    return {"name": spec.name, "axis": spec.axis, "variant": fgrid.describe(spec.overrides),
            "overrides": _jsonable(spec.overrides), "seed": spec.seed, "config": result["config"],
            "status": result["status"], "error": result["error"], "val_acc": result["val_acc"],
            "precision": result.get("precision", "fp32"),
            "params": result["params"], "train_s": result["train_s"], "train_images": result["train_images"],
            "epochs_run": len(result["history"]), "history": result["history"], "cached": cached}


def _spread(accs: list[float | None]) -> dict[str, Any]:
    ok = [a for a in accs if a is not None]
    return {"mean": statistics.fmean(ok) if ok else None,
            "std": statistics.stdev(ok) if len(ok) > 1 else None, "n": len(ok), "diverged": len(accs) - len(ok)}


def _baseline_json(results: list[dict]) -> dict:
    first = results[0]
    epoch_s = [r["train_s"] for r in first["history"]]
    return {"config": first["config"], "history": first["history"], "val_acc": first["val_acc"],
            "epochs": len(first["history"]), "spread": _spread([r["val_acc"] for r in results]),
            "final_train_loss": first["history"][-1]["train_loss"] if first["history"] else None,
            "first_val_acc": first["history"][0]["val_acc"] if first["history"] else None,
            "median_epoch_s": float(np.median(epoch_s)) if epoch_s else None,
            "images_per_s": first["train_images"] / float(np.median(epoch_s)) if epoch_s else None,
            "train_images": first["train_images"]}


def _axes_json(grid: fgrid.Grid, grouped: dict[str, list[dict]], specs: list[fgrid.TrialSpec]) -> list[dict]:
    """Per axis: every value's mean (± spread) validation accuracy and a measured one-line conclusion."""
    best = fgrid.best_per_axis(grid, grouped)
    base = _spread([r["val_acc"] for r in grouped["baseline"]])
    out = []
    for axis in grid.axes:
        names = ["baseline"] + list(dict.fromkeys(s.name for s in specs if s.axis == axis))
        rows = []
        for name in names:
            s = _spread([r["val_acc"] for r in grouped[name]])
            variant = "baseline" if name == "baseline" else name.split(": ", 1)[1]
            rows.append({"name": name, "variant": variant, **s,
                         "status": "diverged" if s["diverged"] else "ok",
                         "delta_pp": None if s["mean"] is None or base["mean"] is None
                         else 100 * (s["mean"] - base["mean"]),
                         "train_s": statistics.fmean(r["train_s"] for r in grouped[name])})
        out.append({"axis": axis, "figure": "fm_axis_" + "".join(c if c.isalnum() else "_" for c in axis),
                    "rows": rows, "best": best[axis],
                    "conclusion": _conclusion(rows, best[axis], grid.repeats, grid.val_size)})
    return out


def _finalists_json(grid: fgrid.Grid, grouped: dict[str, list[dict]], specs: list[fgrid.TrialSpec],
                    results: dict[str, list[dict]], chosen: str, final_images: int) -> dict | None:
    """The finalists side by side, shaped like an axis (rows, figure) so that one drawing serves both."""
    if not specs:
        return None
    rows = []
    for name in dict.fromkeys(s.name for s in specs):
        grid_name = name.removeprefix("finalist: ")
        s = _spread([r["val_acc"] for r in results[name]])
        rows.append({"name": name, "variant": grid_name, **s, "status": "diverged" if s["diverged"] else "ok",
                     "grid_val_acc": fgrid.mean_val_acc(grouped[grid_name]),
                     "projected_final_s": fgrid.projected_final_s(grid, results[name], final_images),
                     "train_s": statistics.fmean(r["train_s"] for r in results[name])})
    return {"axis": "finalists", "figure": "fm_finalists", "rows": rows, "chosen": chosen,
            "title": f"Finalists on the whole training split ({results[specs[0].name][0]['train_images']} images)",
            "count": grid.finalists, "final_overrides": _jsonable(grid.final), "budget_s": grid.final_budget_s}


def _conclusion(rows: list[dict], best: str, repeats: int, val_size: int) -> str:
    """Best and worst value against the baseline, and whether the gap exceeds the validation noise:
    two binomial standard errors of an accuracy measured on ``val_size`` images."""
    ok = [r for r in rows if r["mean"] is not None]
    diverged = [r["variant"] for r in rows if r["status"] == "diverged"]
    base = rows[0]
    top = next(r for r in rows if r["name"] == best)
    worst = min(ok, key=lambda r: r["mean"])
    noise = f" (spread over {repeats} seeds up to {100 * max(r['std'] or 0 for r in ok):.2f} pp)" if repeats > 1 else ""
    if best == "baseline":
        text = f"No value beat the baseline ({100 * base['mean']:.2f} %)"
    else:
        text = f"Best: {top['variant']} at {100 * top['mean']:.2f} % ({top['delta_pp']:+.2f} pp vs the baseline)"
    if worst is not top and worst is not base:
        text += f"; worst: {worst['variant']} at {100 * worst['mean']:.2f} % ({worst['delta_pp']:+.2f} pp)"
    if diverged:
        text += f"; diverged: {', '.join(diverged)}"
    if best != "baseline" and base["mean"] is not None:
        p = base["mean"]
        two_se = 200 * (2 * p * (1 - p) / (val_size * repeats)) ** 0.5
        verdict = "larger" if top["delta_pp"] > two_se else "not larger"
        text += f"; the gain is {verdict} than the validation noise (2 s.e. of a difference: {two_se:.2f} pp)"
    return text + noise + "."


def _save(ctx: RunContext, fig_id: str, fig) -> str:
    path = ctx.figure_path(fig_id)
    figures.save(fig, path)
    return ctx.relative(path)


def _draw_history(history: list[dict], title: str, test_acc: float | None = None):
    fig, (ax_loss, ax_acc) = figures.plt.subplots(1, 2, figsize=(9, 3.2))
    epochs = [r["epoch"] for r in history]
    ax_loss.plot(epochs, [r["train_loss"] for r in history], "o-", label="train (with label smoothing)")
    if history and "val_loss" in history[0]:
        ax_loss.plot(epochs, [r["val_loss"] for r in history], "s-", label="validation")
    ax_acc.plot(epochs, [100 * r["train_acc"] for r in history], "o-", label="train (augmented batches)")
    if history and "val_acc" in history[0]:
        ax_acc.plot(epochs, [100 * r["val_acc"] for r in history], "s-", label="validation")
    if test_acc is not None:
        ax_acc.axhline(100 * test_acc, color="k", ls="--", lw=1, label=f"test (once): {100 * test_acc:.2f} %")
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy loss")
    ax_acc.set(xlabel="epoch", ylabel="accuracy (%)")
    for ax in (ax_loss, ax_acc):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def _draw_axis(axis: dict, grouped: dict[str, list[dict]]):
    """Left: final validation accuracy per value (mean ± std over seeds); right: the learning curves."""
    rows = axis["rows"]
    fig, (ax_bar, ax_curve) = figures.plt.subplots(1, 2, figsize=(10, 3.4), gridspec_kw={"width_ratios": [1, 1.2]})
    y = np.arange(len(rows))
    means = [100 * r["mean"] if r["mean"] is not None else 0 for r in rows]
    errs = [100 * r["std"] if r["std"] else 0 for r in rows]
    colours = ["#888" if r["variant"] == "baseline" else "#c33" if r["status"] == "diverged" else "#369" for r in rows]
    ax_bar.barh(y, means, xerr=errs, color=colours)
    ok = [m for m, r in zip(means, rows) if r["mean"] is not None]
    lo = min(ok) - 2 if ok else 0
    ax_bar.set_xlim(max(lo, 0), 100 if not ok else min(100, max(ok) + 1.5))
    for i, r in enumerate(rows):
        label = "DIVERGED" if r["status"] == "diverged" and r["mean"] is None else f"{means[i]:.2f}"
        ax_bar.text(max(means[i], ax_bar.get_xlim()[0]) + 0.05, i, label, va="center", fontsize=7)
    ax_bar.set_yticks(y, [r["variant"] for r in rows], fontsize=7)
    ax_bar.invert_yaxis()
    ax_bar.set_xlabel("validation accuracy (%)")
    for r in rows:
        history = grouped[r["name"]][0]["history"]
        if history:
            ax_curve.plot([h["epoch"] for h in history], [100 * h["val_acc"] for h in history], "o-", ms=3,
                          label=r["variant"] + (" (diverged)" if r["status"] == "diverged" else ""))
    ax_curve.set(xlabel="epoch", ylabel="validation accuracy (%)")
    ax_curve.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax_curve.grid(alpha=0.3)
    ax_curve.legend(fontsize=6)
    fig.suptitle(axis.get("title", f"Axis: {axis['axis']}"), fontsize=9)
    fig.tight_layout()
    return fig
