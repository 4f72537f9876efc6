"""Problem 4 (FashionMNIST training): glue between analyses/fashion_mnist and the report.

Order of work: validate the grid file, find and verify the data (both fail fast with exit 2), run the
search of analyses/fashion_mnist/selection.py (one axis at a time, the combination, the finalists, the
budget, the choice, the paired tests), train the chosen configuration as the final model (on the
training split, validated after every epoch, which is 4c's run, or on all 60k training images), score
it once on the test set and save it. This module only runs trials, shapes JSON and draws.
"""
from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.ticker import MaxNLocator

from analyses.fashion_mnist import data as fdata
from analyses.fashion_mnist import grid as fgrid
from analyses.fashion_mnist import selection as fsel
from analyses.fashion_mnist import summary as fsum
from analyses.fashion_mnist.model import model_file_bytes
from analyses.fashion_mnist.train import TrialConfig
from analyses.fashion_mnist.trials import rebuild_model
from miniplaces import atomic, resources
from miniplaces.errors import UserError
from miniplaces.inputs import bounded
from miniplaces.inputs.device import pick_device
from miniplaces.outdir import unique_slug
from miniplaces.progress import Ticker
from miniplaces.report import figures
from miniplaces.report.answers.fashion_mnist import (
    PROTOCOL,
    cache_clause,
    combination_notes,
    combination_text,
    conclusion,
    noise_text,
    picked_from_the_grid,
)
from miniplaces.report.context import RunContext, SectionResult
from miniplaces.report.trial_runner import TrialEnv, layout, run_specs
from miniplaces.report.wording import pct, series

GRIDS = resources.folder("grids")
MODEL_FILE = "fashion_mnist_model.pt"
UNIT = "TMAC (10^12 multiply-accumulates)"


def grid_path(ctx: RunContext) -> Path:
    """--grid PATH, else the preset's grid file from grids/ (package data when installed)."""
    if ctx.config.grid:
        return Path(ctx.config.grid)
    return GRIDS / f"{ctx.params('fashion_mnist')['grid']}.toml"


def load_grid(path: Path) -> fgrid.Grid:
    """Read a grid file (bounded: miniplaces/inputs/bounded.py) and validate it; UserError (exit 2) naming the
    file when it cannot be run."""
    text = bounded.read_text(path, bounded.GRID_BYTES, "grid file")
    try:
        return fgrid.grid_from_toml(text, str(path))
    except fgrid.GridError as exc:
        raise UserError(str(exc)) from None


def check(ctx: RunContext) -> fgrid.Grid:
    """Validate the grid file and a --data-dir; bad ones stop the run with exit code 2 before any work."""
    if ctx.config.data_dir:
        try:
            fdata.locate(ctx.config.data_dir, None, offline=True)
        except fdata.DataError as exc:
            raise UserError(f"FashionMNIST: {exc}") from None
    return load_grid(grid_path(ctx))


def run(ctx: RunContext) -> SectionResult:
    """Provision (grid, data, device), search and train (analyses), then only shape JSON and draw."""
    start = time.perf_counter()
    device = str(pick_device(ctx.config.device))
    grid, folder, data = check(ctx), *_data(ctx)
    execute, envs = _executor(ctx, grid, folder, data.sha256, device)
    sel, (final, final_cached), final_wall_s = _train(ctx, grid, execute)
    summary = fsum.summarise(grid, sel)
    model_file = model_file_bytes(rebuild_model(final), {
        "test_acc": final["test_acc"], "trained_on": final["train_images"], "classes": list(fdata.CLASSES),
        "seed": sel.final_spec.seed})

    for row in summary.trials + summary.finalist_trials:
        if row["status"] == "diverged":
            ctx.warn(f"FashionMNIST trial {row['name']!r} (seed {row['seed']}) diverged: {row['error']}")
    model_path = ctx.out / MODEL_FILE
    atomic.write_bytes(model_path, model_file)
    axes = _axes_json(summary.axes, summary.noise)
    finalists_json = _finalists_json(grid, summary.finalists)
    figs = _figures(ctx, sel, summary.baseline, axes, finalists_json, final)
    trials, finalists = summary.trials, summary.finalist_trials
    combined = next((t for t in trials if t["axis"] == "combined"), None)
    if combined:
        combined["test"] = summary.combined_test
    stage, finals = sel.grid, sel.finalists
    cfg = ctx.config
    data_json = {
        "protocol": PROTOCOL,
        "data": {"source": data.source, "sha256": data.sha256, "train_images": len(data.train_y),
                 "test_images": len(data.test_y), "val_images": grid.val_size,
                 "grid_train_images": summary.baseline["train_images"],
                 "val_split_seed": fdata.VAL_SPLIT_SEED, **_curve_sample(summary.baseline)},
        "grid": {"source": _shown_path(grid.source), "description": grid.description, "repeats": grid.repeats,
                 **summary.grid,
                 "executor": cfg.executor, "threads": envs[0].threads, "workers": envs[0].workers,
                 "final_threads": envs[-1].threads, "device": device,
                 "base_shown": base_settings(summary.grid["base"], summary.baseline["precision"])},
        "baseline": summary.baseline,
        "trials": trials,
        "axes": axes,
        "grid_family": summary.family,
        "combined": combined,
        "combination": summary.combination and {**summary.combination,
                                                "text": combination_text(summary.combination),
                                                "notes": combination_notes(summary.combination,
                                                                           summary.noise)},
        **training_compute(grid, sel, final),
        "seed_noise": summary.noise and {**summary.noise, "trials": summary.noise_trials,
                                         "text": noise_text(summary.noise)},
        "grid_train_s": sum(t["train_s"] for t in trials),
        "grid_trials_trained": sum(not t["cached"] for t in trials),
        "grid_cache": cache_clause(sum(not t["cached"] for t in trials), len(trials)),
        "grid_wall_s": stage.wall_s,
        "finalists": finalists_json and {**finalists_json, "trials": finalists, "wall_s": finals.wall_s,
                                         "train_s": sum(t["train_s"] for t in finalists),
                                         "train_images": finalists[0]["train_images"]},
        "final": {"name": sel.final_spec.name, "config": final["config"],
                  "validated": sel.final_spec.stage == "final_split", "val_acc": final["val_acc"],
                  "val_images": final["val_images"],
                  "last_epoch_test": fsum.last_epoch_test(final["history"]),
                  "overrides": _jsonable(sel.final_spec.overrides),
                  "test_acc": final["test_acc"],
                  "test_interval": list(fsum.accuracy_interval(final["test_acc"], len(data.test_y))),
                  "model_file": ctx.relative(model_path),
                  "params": final["params"],
                  "train_s": final["train_s"], "wall_s": final_wall_s, "train_images": final["train_images"],
                  "seed": sel.final_spec.seed, "threads": final.get("threads", envs[-1].threads),
                  "history": final["history"], "cached": final_cached,
                  "chosen": sel.decision.chosen, "chosen_val_acc": summary.accuracies["chosen"],
                  "chosen_by": "finalists" if finals.specs else "grid",
                  "decision": decision_json(sel.decision, summary.accuracies, fsel.final_images(grid)),
                  "epochs": final_epochs_json(grid, sel.final_spec.config, sel.decision.budget.limit),
                  "load_snippet": f'from analyses.fashion_mnist.model import load_model; '
                                  f'net = load_model("{_shown_path(model_path)}")',
                  "command": f"python -m analyses.fashion_mnist.evaluate_model {_shown_path(model_path)}"},
    }
    cached = final_cached and all(c for _, c in stage.outcomes + finals.outcomes)
    return SectionResult(data_json, figs, cached=cached, seconds=time.perf_counter() - start)


def training_compute(grid: fgrid.Grid, sel: fsel.Selection, final: dict) -> dict[str, Any]:
    """The run's training compute in TMAC (selection.BUDGET_FORMULA) by stage, and ``total_tmacs``:
    every trial as the epochs it completed (a diverged one stops early), a cached one as if trained here."""
    def cost(spec: fgrid.TrialSpec, result: dict) -> float:
        planned = fsel.trial_tmacs(spec, grid.val_size, grid.train_subset)
        return planned * len(result["history"]) / spec.config.epochs

    stages = {"grid": 0.0, "seed_noise": 0.0, "combination": 0.0, "finalists": 0.0,
              "final": cost(sel.final_spec, final)}
    for run in (sel.grid, sel.noise, sel.finalists):
        for spec, (result, _) in zip(run.specs, run.outcomes):
            stage = ("finalists" if spec.stage == "finalist" else "combination" if spec.axis == "combined"
                     else "seed_noise" if spec.axis == "seeds" else "grid")
            stages[stage] += cost(spec, result)
    return {"tmacs": stages, "total_tmacs": sum(stages.values())}


def _data(ctx: RunContext) -> tuple[Path, fdata.FashionData]:
    """The IDX files' folder and their content; missing or broken data stops the run with exit code 2."""
    cfg = ctx.config
    try:
        folder = fdata.locate(cfg.data_dir, Path(cfg.cache_dir), cfg.offline)
        return folder, fdata.load(folder)
    except fdata.DataError as exc:
        raise UserError(f"FashionMNIST: {exc}") from None


def _executor(ctx: RunContext, grid: fgrid.Grid, folder: Path, data_sha256: str, device: str):
    """``execute(specs, stage)`` for the search: runs trials (cached, laid out by cost) with a progress bar;
    ``envs`` records each stage's trial environment (threads and workers used)."""
    cfg = ctx.config
    envs: list[TrialEnv] = []

    def execute(specs: list[fgrid.TrialSpec], stage: str) -> list[tuple[dict, bool]]:
        workers, threads = layout(device,
                                  [fsel.trial_tmacs(s, grid.val_size, grid.train_subset) for s in specs])
        envs.append(TrialEnv(str(folder), data_sha256, str(cfg.cache_dir), cfg.use_cache, grid.val_size,
                             grid.train_subset, device, threads, workers))

        def track(total: int, unit: str, settle: int) -> Ticker:
            return Ticker(f"FashionMNIST {stage}", total, unit, quiet=not ctx.show_progress, settle=settle)
        return run_specs(specs, envs[-1], cfg.executor, cfg.ray_address, track=track, cache=ctx.cache)
    return execute, envs


def _train(ctx: RunContext, grid: fgrid.Grid, execute):
    """The search (grid, combination, finalists, choice), then the final model on all training images."""
    try:
        sel = fsel.select(grid, fgrid.one_at_a_time(grid, ctx.config.seed), ctx.config.seed, execute,
                          fsel.final_images(grid))
    except fgrid.GridError as exc:
        raise UserError(f"FashionMNIST ({grid.source}): {exc}") from None
    if sel.decision.rule == "none_within_budget":
        ctx.warn(f"FashionMNIST: no candidate's final training fits final_budget_tmacs = "
                 f"{grid.final_budget_tmacs:g}; choosing by validation accuracy alone")
    final_start = time.perf_counter()
    (final, final_cached), = execute([sel.final_spec], "final model")
    if final["status"] != "ok":
        raise UserError(f"FashionMNIST: the final model diverged ({final['error']}); lower the learning rate "
                        f"in {grid.source}")
    return sel, (final, final_cached), time.perf_counter() - final_start


def _figures(ctx: RunContext, sel: fsel.Selection, baseline: dict, axes: list[dict], finalists: dict | None,
             final: dict) -> dict[str, str]:
    """Every Problem 4 figure, through the run's figure cache."""
    grouped = sel.grid.results
    title = f"Baseline ({baseline['config']['epochs']} epochs): loss and accuracy per epoch"
    figs = {"fm_baseline_curves": _figure(ctx, "fm_baseline_curves", _draw_history, baseline["history"],
                                          title, None, baseline["config"]["augment"])}
    for axis in axes:
        figs[axis["figure"]] = _figure(ctx, axis["figure"], _draw_axis, axis, _histories(axis, grouped))
    if finalists:
        figs[finalists["figure"]] = _figure(ctx, finalists["figure"], _draw_axis, finalists,
                                            _histories(finalists, sel.finalists.results))
    title = (f"Final model on {final['train_images']} images; test accuracy "
             f"{100 * final['test_acc']:.2f} % (scored once)")
    if final["val_images"]:   # trained on the training split: 4c's run, validated after every epoch
        title = (f"Final model (4c's run): {len(final['history'])} epochs on {final['train_images']} "
                 f"training images, validated after each; test accuracy {100 * final['test_acc']:.2f} % "
                 "(scored once)")
    figs["fm_final_curves"] = _figure(ctx, "fm_final_curves", _draw_history, final["history"], title,
                                      final["test_acc"], final["config"]["augment"])
    return figs


def _shown_path(path: str | Path) -> str:
    """A path relative to the working directory when it is inside it (shorter, and no home dirs in
    reports)."""
    path = Path(path)
    try:
        return path.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return str(path)


def _axes_json(tables: list[dict], noise: dict | None = None) -> list[dict]:
    """Per axis: every value's validation accuracy, its paired test against the baseline, one conclusion."""
    taken: set[str] = set()
    return [{"axis": t["axis"], "figure": "fm_axis_" + unique_slug(t["axis"], taken, "axis"),
             "rows": t["rows"], "best": t["best"], "test": t["test"],
             "conclusion": conclusion(t["rows"], t["test"], noise=noise)}
            for t in tables]


def _finalists_json(grid: fgrid.Grid, table: dict | None) -> dict | None:
    """The finalists side by side, shaped like an axis (rows, test, figure) so that one drawing serves
    both."""
    if table is None:
        return None
    picked = ("the finalists were picked as the best of the grid on these same validation images, "
              "which this test does not correct for, so a gain here is if anything overstated")
    return {"axis": "finalists", "figure": "fm_finalists", "rows": table["rows"], "chosen": table["chosen"],
            "title": f"Finalists on the whole training split ({table['train_images']} images)",
            "count": grid.finalists, "final_overrides": _jsonable(grid.final), "test": table["test"],
            "min_epochs": grid.final_min_epochs or None,
            "conclusion": conclusion(table["rows"], table["test"], picked)}


def final_epochs_json(grid: fgrid.Grid, config: TrialConfig, limit: float) -> dict[str, Any]:
    """How many epochs the final model trained, and why: the [final] count, or with ``final_min_epochs``
    the most of them that fit the budget (selection.final_config)."""
    asked, floor, trained = grid.base.updated(grid.final).epochs, grid.final_min_epochs, config.epochs
    text = f"{trained} epochs"
    if floor and trained < asked and fgrid.training_tmacs(config, fsel.final_images(grid)) > limit:
        text += (f" (the floor: the grid asks for {asked}, or as many as fit the budget of {limit:g} "
                 "TMAC down "
                 f"to {floor}, and even {floor} are over it)")
    elif floor and trained < asked:
        text += (f" (the most that fit the budget of {limit:g} TMAC: the grid asks for {asked}, "
                 f"or as many as fit down to {floor})")
    elif floor:
        text += (f" (the grid's count; a network too costly for {asked} epochs would train as many as fit "
                 f"the budget, down to {floor})")
    return {"asked": asked, "min": floor or None, "trained": trained, "text": text}


def decision_json(decision: fsel.Decision, accuracies: dict[str, Any], images: int) -> dict:
    """Why the final model was chosen: the rule that decided, what the budget excluded, one true sentence."""
    budget = decision.budget
    chosen = fsel.grid_name(decision.chosen)
    from_grid = not decision.chosen.startswith("finalist: ")
    where = "grid configurations" if from_grid else "finalists"
    acc = pct(accuracies["chosen"], 2)
    limit = f"{budget.limit:g} TMAC"
    if decision.rule == "none_within_budget":
        cheapest = min(budget.cost, key=budget.cost.get)
        text = (f"No candidate's final training fits the budget of {limit} (the cheapest, {cheapest}, needs "
                f"{budget.cost[cheapest]:.0f} TMAC), so the final model retrains the one with the best "
                f"validation accuracy of the {where}, {chosen} ({acc}).")
    elif decision.rule == "budget":
        over = decision.excluded
        need = series([f"{budget.cost[n]:.0f}" for n in over])
        ranked_at = series([pct(accuracies["excluded"][n], 2) for n in over])
        text = (f"The final model retrains {chosen} ({acc} validation accuracy), because {series(over)} "
                f"ranked higher in the grid ({ranked_at}) but need{'s' if len(over) == 1 else ''} {need} "
                f"TMAC to train, over the budget of {limit}.")
    elif budget.limit:
        text = (f"The final model retrains {chosen}, which has the best validation accuracy of the {where} "
                f"({acc}) and needs {budget.cost[chosen]:.0f} TMAC to train, within the budget of {limit}.")
    else:
        text = (f"The final model retrains {chosen}, which has the best validation accuracy of the {where} "
                f"({acc}); no compute budget was set.")
    if from_grid and chosen != "baseline":
        text += " " + picked_from_the_grid(accuracies)
    return {"rule": decision.rule, "excluded": decision.excluded, "chosen": decision.chosen,
            "budget": {"limit_tmacs": budget.limit or None, "unit": UNIT, "formula": fsel.BUDGET_FORMULA,
                       "images": images, "cost_tmacs": budget.cost, "over": budget.over,
                       "chosen_tmacs": budget.cost.get(chosen)},
            "text": text}


def _figure(ctx: RunContext, fig_id: str, draw, *data) -> str:
    """Draw through the run's figure cache, keyed by exactly the data the drawing is given."""
    return ctx.figure(fig_id, lambda: draw(*data), False, {"fashion_mnist": _jsonable(data)})


def _jsonable(value: Any) -> Any:
    """``value`` as JSON data: tuples and NumPy arrays as lists (results.json, figure cache keys)."""
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value.tolist() if isinstance(value, np.ndarray) else value


def _histories(axis: dict, grouped: dict[str, list[dict]]) -> dict[str, list[dict]]:
    """The first seed's learning curve of each row of an axis (what ``_draw_axis`` plots)."""
    return {r["name"]: grouped[r["name"]][0]["history"] for r in axis["rows"]}


def _curve_sample(baseline: dict) -> dict[str, Any]:
    """How many validation images the epochs before the last were scored on, and the binomial
    standard error that gives at the baseline's accuracy (empty when they used the whole split)."""
    sample, p = baseline["curve_images"], baseline["val_acc"]
    if sample is None or p is None:
        return {}
    return {"curve_images": sample, "curve_se": math.sqrt(p * (1 - p) / sample)}


def _val_curve(history: list[dict]) -> tuple[list[float], str]:
    """Validation accuracy (%) per epoch on the same images, and what they are: the epochs before the
    last are scored on a sample of the split (train.fit), so the last epoch's point is its score on
    that sample too; its score on the whole split is drawn apart."""
    points = [100 * h.get("curve_acc", h["val_acc"]) for h in history]
    sample, whole = history[0].get("val_images"), history[-1].get("val_images")
    return points, (f"validation ({sample:,}-image sample)" if sample and whole and sample < whole
                    else f"validation (all {whole:,} images)" if whole else "validation")


def _val_loss_curve(history: list[dict]) -> tuple[list[tuple[int, float]], str]:
    """(epoch, validation loss) on one set of images, and which: the curve's sample when the epochs
    before the last were scored on one (the last epoch's loss, on the whole split only, is left out)."""
    sample = history[0].get("val_images")
    on_sample = [r for r in history if r.get("val_images") == sample]
    label = (f"validation ({sample:,}-image sample)" if len(on_sample) < len(history)
             else f"validation (all {sample:,} images)" if sample else "validation")
    return [(r["epoch"], r["val_loss"]) for r in on_sample], label


def base_settings(base: dict[str, Any], trained_precision: str) -> list[str]:
    """The baseline's settings as 'key=value', the precision with what it really trained in where the
    machine could not do what the config asked (bf16 without native support trains in fp32)."""
    shown = [f"{key}={value}" for key, value in base.items()]
    if base.get("precision", trained_precision) != trained_precision:
        at = list(base).index("precision")
        shown[at] += f" (trained in {trained_precision}: this machine has no native {base['precision']})"
    return shown


def train_label(augment: str) -> str:
    """The training series' legend: 'augmented batches' only for a model trained with augmentation."""
    return "train" if augment == "none" else f"train (augmented batches: {augment})"


def _draw_history(history: list[dict], title: str, test_acc: float | None = None, augment: str = "none",
                  test_images: int = fdata.COUNTS["test"]):
    fig, (ax_loss, ax_acc) = figures.plt.subplots(1, 2, figsize=(9, 3.2))
    epochs = [r["epoch"] for r in history]
    ax_loss.plot(epochs, [r["train_loss"] for r in history], "o-", label="train (with label smoothing)")
    if history and "val_loss" in history[0]:
        points, label = _val_loss_curve(history)
        ax_loss.plot([e for e, _ in points], [v for _, v in points], "s-", label=label)
        last = history[-1]
        if "curve_acc" in last:   # the last epoch's loss is on the whole split only: a point of its own
            ax_loss.plot([last["epoch"]], [last["val_loss"]], "*", ms=10, color="C3",
                         label=f"last epoch, all {last['val_images']:,}")
    ax_acc.plot(epochs, [100 * r["train_acc"] for r in history], "o-", label=train_label(augment))
    if history and "val_acc" in history[0]:
        points, label = _val_curve(history)
        ax_acc.plot(epochs, points, "s-", label=label)
        if "curve_acc" in history[-1]:
            last = history[-1]
            ax_acc.plot([last["epoch"]], [100 * last["val_acc"]], "*", ms=10, color="C3",
                        label=f"last epoch, all {last['val_images']:,}: {100 * last['val_acc']:.2f} %")
    if test_acc is not None:
        ax_acc.axhline(100 * test_acc, color="k", ls="--", lw=1,
                       label=f"test set, {test_images:,} images, scored once: {100 * test_acc:.2f} %")
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy loss")
    ax_acc.set(xlabel="epoch", ylabel="accuracy (%)")
    for ax in (ax_loss, ax_acc):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def _draw_axis(axis: dict, histories: dict[str, list[dict]]):
    """Left: final validation accuracy per value (mean ± std over seeds); right: the learning curves."""
    rows = axis["rows"]
    fig, (ax_bar, ax_curve) = figures.plt.subplots(1, 2, figsize=(10, 3.4),
                                                   gridspec_kw={"width_ratios": [1, 1.2]})
    y = np.arange(len(rows))
    means = [100 * r["mean"] if r["mean"] is not None else 0 for r in rows]
    errs = [100 * r["std"] if r["std"] else 0 for r in rows]
    colours = ["#888" if r["variant"] == "baseline" else "#c33" if r["status"] == "diverged" else "#369"
               for r in rows]
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
    ylabel = "validation"
    for r in rows:
        history = histories[r["name"]]
        if history:
            points, ylabel = _val_curve(history)
            ax_curve.plot([h["epoch"] for h in history], points, "o-", ms=3,
                          label=r["variant"] + (" (diverged)" if r["status"] == "diverged" else ""))
    ax_curve.set(xlabel="epoch", ylabel=f"{ylabel} accuracy (%)")
    ax_curve.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax_curve.grid(alpha=0.3)
    ax_curve.legend(fontsize=6)
    fig.suptitle(axis.get("title", f"Axis: {axis['axis']}"), fontsize=9)
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------------------- the notebook's view

def notebook_parameters(results: dict) -> dict:
    """The notebook's parameters for Problem 4: the data, the saved model, and whether to retrain it."""
    fashion = results["fashion_mnist"]
    return {"FASHION_MNIST_DIR": fashion["data"]["source"], "MODEL_FILE": fashion["final"]["model_file"],
            "RETRAIN": False}


def notebook_record(results: dict) -> dict:
    """What the notebook shows of 4c and 4d without recomputing it: the curves, the grid's rows, and the
    final configuration (which ``RETRAIN`` trains again)."""
    fashion, record = results["fashion_mnist"], {}
    base, final = fashion["baseline"], fashion["final"]
    sample = base["history"][0].get("val_images")    # the curve's images: the same every epoch
    record["curves"] = {
        f"baseline: validation accuracy on the same {sample} validation images each epoch": {
            "epoch": [r["epoch"] for r in base["history"]],
            "accuracy": [r.get("curve_acc", r["val_acc"]) for r in base["history"]]},
        f"final model: training accuracy on its {final['train_images']} training images": {
            "epoch": [r["epoch"] for r in final["history"]],
            "accuracy": [r["train_acc"] for r in final["history"]]}}
    if final.get("validated"):   # 4c's run: validated on the whole hold-out after every epoch
        record["curves"][f"final model (4c's run): validation accuracy on all {final['val_images']} "
                       "held-out images each epoch"] = {
            "epoch": [r["epoch"] for r in final["history"]],
            "accuracy": [r["val_acc"] for r in final["history"]]}
    record["grid"] = [{"axis": a["axis"], "variant": r.get("label", r["variant"]), "val_acc": r["mean"],
                       "delta_pp": round(r["delta_pp"], 2) if r.get("delta_pp") is not None else None,
                       "p (Holm over the grid)": (r.get("test") or {}).get("p_adjusted"),
                       "verdict": (r.get("test") or {}).get("verdict")}
                      for a in fashion["axes"] for r in a["rows"] if r["variant"] != "baseline"]
    record["baseline_val_acc"] = base["val_acc"]
    record["val_images"] = fashion["data"]["val_images"]
    record["final"] = {"config": final["config"], "seed": final["seed"], "test_acc": final["test_acc"],
                       "validated": bool(final.get("validated"))}
    return record
