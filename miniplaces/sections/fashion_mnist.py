"""Problem 4 (FashionMNIST training): glue between analyses/fashion_mnist and the report.

Order of work: validate the grid file, find and verify the data (both fail fast with exit 2), run the
search of analyses/fashion_mnist/selection.py (one axis at a time, the combination, the finalists, the
budget, the choice, the paired tests), retrain the chosen configuration on all 60k training images,
score it once on the test set and save it. This module only runs trials, shapes JSON and draws.
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
from analyses.fashion_mnist import selection as fsel
from analyses.fashion_mnist.model import model_file_bytes
from analyses.fashion_mnist.trials import rebuild_model

from .. import atomic, bounded, figures, resources
from ..context import RunContext, SectionResult
from ..device import pick_device
from ..errors import UserError
from ..outdir import unique_slug
from ..progress import progress
from ..trial_runner import TrialEnv, layout, run_specs

TITLE = "FashionMNIST training"
TOC = [("fm-4a", "4a. train"), ("fm-4b", "4b. get_prediction and evaluate"),
       ("fm-4c", "4c. optimizer and 10-epoch baseline"), ("fm-4d", "4d. hyperparameter grid"),
       ("fm-final", "Final model")]
GRIDS = resources.folder("grids")
MODEL_FILE = "fashion_mnist_model.pt"
PROTOCOL = ("Model selection uses a fixed validation split of the 60 000 training images (the same images "
            "for every trial and seed); within a run, the official 10 000-image test set is scored once, on "
            "the finished final model, and chooses nothing. The grid's design did see it once: the test score "
            "of an earlier grid's final model (91.9 %, after its winning combination overfitted at full scale) "
            "led to the finalist stage and to a new baseline, so the reported test accuracy is not an "
            "untouched estimate.")
UNIT = "TMAC (10^12 multiply-accumulates)"


def grid_path(ctx: RunContext) -> Path:
    """--grid PATH, else the preset's grid file from grids/ (package data when installed)."""
    if ctx.config.grid:
        return Path(ctx.config.grid)
    return GRIDS / f"{ctx.config.params('fashion_mnist')['grid']}.toml"


def load_grid(path: Path) -> fgrid.Grid:
    """Read a grid file (bounded: miniplaces/bounded.py) and validate it; UserError (exit 2) naming the
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
    start = time.perf_counter()
    grid = check(ctx)
    cfg = ctx.config
    try:
        folder = fdata.locate(cfg.data_dir, Path(cfg.cache_dir), cfg.offline)
        data = fdata.load(folder)
    except fdata.DataError as exc:
        raise UserError(f"FashionMNIST: {exc}") from None
    device = str(pick_device(cfg.device))
    envs: list[TrialEnv] = []

    def execute(specs: list[fgrid.TrialSpec], stage: str) -> list[tuple[dict, bool]]:
        workers, threads = layout(device, [fsel.trial_tmacs(s, grid.val_size, grid.train_subset) for s in specs])
        envs.append(TrialEnv(str(folder), data.sha256, str(cfg.cache_dir), cfg.use_cache, grid.val_size,
                             grid.train_subset, device, threads, workers))

        def iterate(items):
            return progress(items, f"FashionMNIST {stage}", quiet=not ctx.show_progress)
        return run_specs(specs, envs[-1], cfg.executor, cfg.ray_address, iterate=iterate, cache=ctx.cache)

    final_images = fdata.COUNTS["train"]
    try:
        sel = fsel.select(grid, fgrid.one_at_a_time(grid, cfg.seed), cfg.seed, execute, final_images)
    except fgrid.GridError as exc:
        raise UserError(f"FashionMNIST ({grid.source}): {exc}") from None
    if sel.decision.rule == "none_within_budget":
        ctx.warn(f"FashionMNIST: no candidate's final training fits final_budget_tmacs = "
                 f"{grid.final_budget_tmacs:g}; choosing by validation accuracy alone")
    final_start = time.perf_counter()
    (final, final_cached), = execute([sel.final_spec], "final model")
    final_wall_s = time.perf_counter() - final_start
    if final["status"] != "ok":
        raise UserError(f"FashionMNIST: the final model diverged ({final['error']}); lower the learning rate "
                        f"in {grid.source}")
    stage, finals = sel.grid, sel.finalists
    trials = [_trial_json(s, r, c) for s, (r, c) in zip(stage.specs, stage.outcomes)]
    finalists = [_trial_json(s, r, c) for s, (r, c) in zip(finals.specs, finals.outcomes)]
    for row in trials + finalists:
        if row["status"] == "diverged":
            ctx.warn(f"FashionMNIST trial {row['name']!r} (seed {row['seed']}) diverged: {row['error']}")

    model_path = ctx.out / MODEL_FILE
    atomic.write_bytes(model_path, model_file_bytes(rebuild_model(final), {
        "test_acc": final["test_acc"], "trained_on": final["train_images"], "classes": list(fdata.CLASSES),
        "seed": sel.final_spec.seed}))
    grouped, finalist_results = stage.results, finals.results
    pool = finalist_results if finals.specs else grouped
    figs = {}
    axes = _axes_json(grid, sel)
    baseline = grouped["baseline"][0]
    baseline_title = f"Baseline ({baseline['config']['epochs']} epochs): loss and accuracy per epoch"
    figs["fm_baseline_curves"] = _figure(ctx, "fm_baseline_curves", _draw_history, baseline["history"],
                                         baseline_title)
    for axis in axes:
        figs[axis["figure"]] = _figure(ctx, axis["figure"], _draw_axis, axis, _histories(axis, grouped))
    finalists_json = _finalists_json(grid, sel)
    if finalists_json:
        figs[finalists_json["figure"]] = _figure(ctx, finalists_json["figure"], _draw_axis, finalists_json,
                                                 _histories(finalists_json, finalist_results))
    final_title = (f"Final model on {final['train_images']} images; test accuracy "
                   f"{100 * final['test_acc']:.2f} % (scored once)")
    figs["fm_final_curves"] = _figure(ctx, "fm_final_curves", _draw_history, final["history"], final_title,
                                      final["test_acc"])
    combined = next((t for t in trials if t["axis"] == "combined"), None)
    if combined:
        combined["test"] = _row_test(sel.combined_test)

    data_json = {
        "protocol": PROTOCOL,
        "data": {"source": data.source, "sha256": data.sha256, "train_images": len(data.train_y),
                 "test_images": len(data.test_y), "val_images": grid.val_size,
                 "grid_train_images": baseline["train_images"], "val_split_seed": fdata.VAL_SPLIT_SEED},
        "grid": {"source": _shown_path(grid.source), "description": grid.description, "repeats": grid.repeats,
                 "base": grid.base.to_dict(), "final_overrides": _jsonable(grid.final),
                 "axes": {a: [fgrid.describe(v) for v in vs] for a, vs in grid.axes.items()},
                 "executor": cfg.executor, "threads": envs[0].threads, "workers": envs[0].workers,
                 "final_threads": envs[-1].threads, "device": device},
        "baseline": _baseline_json(grouped["baseline"]),
        "trials": trials,
        "axes": axes,
        "combined": combined,
        "grid_train_s": sum(t["train_s"] for t in trials),
        "grid_trials_trained": sum(not t["cached"] for t in trials),
        "grid_wall_s": stage.wall_s,
        "finalists": finalists_json and {**finalists_json, "trials": finalists, "wall_s": finals.wall_s,
                                         "train_s": sum(t["train_s"] for t in finalists),
                                         "train_images": finalists[0]["train_images"]},
        "final": {"name": sel.final_spec.name, "config": final["config"],
                  "overrides": _jsonable(sel.final_spec.overrides),
                  "test_acc": final["test_acc"], "model_file": ctx.relative(model_path), "params": final["params"],
                  "train_s": final["train_s"], "wall_s": final_wall_s, "train_images": final["train_images"],
                  "seed": sel.final_spec.seed,
                  "history": final["history"], "cached": final_cached,
                  "chosen": sel.decision.chosen, "chosen_val_acc": fsel.mean_val_acc(pool[sel.decision.chosen]),
                  "chosen_by": "finalists" if finals.specs else "grid",
                  "decision": decision_json(sel.decision, grouped, pool, final_images),
                  "load_snippet": f'from analyses.fashion_mnist.model import load_model; '
                                  f'net = load_model("{_shown_path(model_path)}")',
                  "command": f"python -m analyses.fashion_mnist.evaluate_model {_shown_path(model_path)}"},
    }
    cached = final_cached and all(c for _, c in stage.outcomes + finals.outcomes)
    return SectionResult(data_json, figs, cached=cached, seconds=time.perf_counter() - start)


def _shown_path(path: str | Path) -> str:
    """A path relative to the working directory when it is inside it (shorter, and no home dirs in reports)."""
    path = Path(path)
    try:
        return path.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return str(path)


def _trial_json(spec: fgrid.TrialSpec, result: dict, cached: bool) -> dict:
    return {"name": spec.name, "axis": spec.axis, "variant": fgrid.describe(spec.overrides),
            "overrides": _jsonable(spec.overrides), "coupled": spec.coupled or None, "seed": spec.seed,
            "config": result["config"],
            "status": result["status"], "error": result["error"], "val_acc": result["val_acc"],
            "precision": result.get("precision", "fp32"),
            "params": result["params"], "train_s": result["train_s"], "train_images": result["train_images"],
            "threads": result.get("threads"),   # torch threads the trial ran with, wherever it ran
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


def _row_test(test: dict[str, Any] | None) -> dict[str, Any] | None:
    """A row's paired test as results.json holds it (None for the reference row and untestable rows)."""
    if test is None:
        return None
    keys = ("discordant", "p_value", "p_adjusted", "verdict", "delta_pp", "seeds", "seed_delta_std_pp", "per_seed")
    return {k: test[k] for k in keys}


def _rows(names: list[str], results: dict[str, list[dict]], tests: dict[str, dict | None],
          specs: list[fgrid.TrialSpec]) -> list[dict]:
    """One row per configuration, the reference (baseline) first: accuracy spread, difference, test."""
    base = _spread([r["val_acc"] for r in results[names[0]]])
    spec_of = {s.name: s for s in specs}
    rows = []
    for name in names:
        s = _spread([r["val_acc"] for r in results[name]])
        variant = fsel.grid_name(name)
        rows.append({"name": name, "variant": "baseline" if variant == "baseline" else variant.split(": ", 1)[-1],
                     **s, "status": "diverged" if s["diverged"] else "ok",
                     "delta_pp": None if s["mean"] is None or base["mean"] is None
                     else 100 * (s["mean"] - base["mean"]),
                     "train_s": statistics.fmean(r["train_s"] for r in results[name]),
                     "coupled": spec_of[name].coupled or None,
                     "test": _row_test(tests.get(name))})
    return rows


def _axes_json(grid: fgrid.Grid, sel: fsel.Selection) -> list[dict]:
    """Per axis: every value's validation accuracy, its paired test against the baseline, one conclusion."""
    results, specs = sel.grid.results, sel.grid.specs
    out, taken = [], set()
    for axis in grid.axes:
        tests = sel.axis_tests[axis]
        rows = _rows(["baseline", *tests], results, tests, specs)
        info = fsel.family_info(tests, fsel.CORRECTION)
        out.append({"axis": axis, "figure": "fm_axis_" + unique_slug(axis, taken, "axis"),
                    "rows": rows, "best": sel.best[axis], "test": info, "conclusion": conclusion(rows, info)})
    return out


def _finalists_json(grid: fgrid.Grid, sel: fsel.Selection) -> dict | None:
    """The finalists side by side, shaped like an axis (rows, test, figure) so that one drawing serves both."""
    if not sel.finalists.specs:
        return None
    results, budget = sel.finalists.results, sel.decision.budget
    names = list(results)
    if "finalist: baseline" in names:  # the reference first, as on an axis
        names.insert(0, names.pop(names.index("finalist: baseline")))
    rows = _rows(names, results, sel.finalist_tests, sel.finalists.specs)
    for row in rows:
        row["variant"] = fsel.grid_name(row["name"])
        row["grid_val_acc"] = fsel.mean_val_acc(sel.grid.results[row["variant"]])
        row["final_tmacs"] = budget.cost.get(row["variant"])
        row["over_budget"] = row["variant"] in budget.over
    info = fsel.family_info(sel.finalist_tests, fsel.FINALIST_CORRECTION)
    picked = ("the finalists were picked as the best of the grid on these same validation images, "
              "which this test does not correct for, so a gain here is if anything overstated")
    return {"axis": "finalists", "figure": "fm_finalists", "rows": rows, "chosen": sel.decision.chosen,
            "title": f"Finalists on the whole training split ({results[names[0]][0]['train_images']} images)",
            "count": grid.finalists, "final_overrides": _jsonable(grid.final), "test": info,
            "conclusion": conclusion(rows, info, picked)}


def _pct(x: float) -> str:
    return f"{100 * x:.2f} %"


def _count(n: int) -> str:
    return f"{n:,}".replace(",", " ")


def _names(items: list[str]) -> str:
    """"a", "a and b", "a, b and c"."""
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _evidence(test: dict, info: dict) -> str:
    """How the top gain was established, for the sentence: disagreements, seeds, correction."""
    disagree = sum(test["discordant"])
    if test["seeds"] > 1:
        deltas = [s["delta_pp"] for s in test["per_seed"]]
        seen = (f"averaged over {test['seeds']} seeds whose gains range from {min(deltas):+.2f} to "
                f"{max(deltas):+.2f} pp; the models disagree on {_count(round(disagree / test['seeds']))} of the "
                f"same {_count(info['images'])} images per seed")
    else:
        seen = f"the two models disagree on {_count(disagree)} of the same {_count(info['images'])} images"
    family = f" even after Holm's correction for {info['k']} comparisons" if info["k"] > 1 else ""
    return f"{seen}, and a paired test puts the gain beyond chance{family}"


def conclusion(rows: list[dict], info: dict, note: str = "") -> str:
    """One sentence from the rows' fields (rows[0] is the reference): the best significant gain with its
    evidence, then what changed nothing measurable, what was worse, what diverged."""
    base, variants = rows[0], rows[1:]
    if base["mean"] is None:
        return "The baseline diverged, so nothing here could be compared with it."

    def with_verdict(verdict: str) -> list[dict]:
        return sorted((r for r in variants if r["test"] and r["test"]["verdict"] == verdict),
                      key=lambda r: -r["delta_pp"])

    def accs(group: list[dict]) -> str:
        return _names([_pct(r["mean"]) for r in group])

    def subject(group: list[dict]) -> tuple[str, str]:
        return _names([r["variant"] for r in group]), "s" if len(group) == 1 else ""

    better, same, worse = with_verdict("better"), with_verdict("no measurable difference"), with_verdict("worse")
    clauses = []
    if len(better) > 1:
        names, s = subject(better[1:])
        clauses.append(f"{names} also raise{s} it, to {accs(better[1:])}")
    if same:
        names, s = subject(same)
        clauses.append(f"{names} change{s} nothing measurable ({accs(same)})")
    if worse:
        names, s = subject(worse[::-1])
        clauses.append(f"{names} lower{s} it to {accs(worse[::-1])}")
    diverged = [r for r in variants if r["status"] == "diverged"]
    if diverged:
        clauses.append(f"{_names([r['variant'] for r in diverged])} diverged")
    untested = [r for r in variants if r["test"] is None and r["status"] != "diverged"]
    if untested:
        names, s = subject(untested)
        clauses.append(f"{names} reach{'es' if s else ''} {accs(untested)} but had no per-image results to test")
    if better:
        top = better[0]
        text = (f"{top['variant']} raises validation accuracy from {_pct(base['mean'])} to {_pct(top['mean'])} "
                f"({top['delta_pp']:+.2f} pp; {_evidence(top['test'], info)})")
        text += f", while {_names(clauses)}" if clauses else ""
    elif info["k"]:
        family = f", Holm-corrected for {info['k']} comparisons" if info["k"] > 1 else ""
        text = (f"No variant beats the baseline's {_pct(base['mean'])} beyond chance (a paired test on the same "
                f"{_count(info['images'])} images{family}): {_names(clauses)}")
    else:
        text = f"No variant could be tested against the baseline's {_pct(base['mean'])}: {_names(clauses)}"
    text = text[0].upper() + text[1:]
    return text + ("; " + note if note else "") + "."


def decision_json(decision: fsel.Decision, grid_results: dict[str, list[dict]], pool: dict[str, list[dict]],
                  images: int) -> dict:
    """Why the final model was chosen: the rule that decided, what the budget excluded, one true sentence."""
    budget = decision.budget
    chosen = fsel.grid_name(decision.chosen)
    where = "finalists" if decision.chosen.startswith("finalist: ") else "grid configurations"
    acc = _pct(fsel.mean_val_acc(pool[decision.chosen]))
    limit = f"{budget.limit:g} TMAC"
    if decision.rule == "none_within_budget":
        cheapest = min(budget.cost, key=budget.cost.get)
        text = (f"No candidate's final training fits the budget of {limit} (the cheapest, {cheapest}, needs "
                f"{budget.cost[cheapest]:.0f} TMAC), so the final model retrains the one with the best validation "
                f"accuracy of the {where}, {chosen} ({acc}).")
    elif decision.rule == "budget":
        over = decision.excluded
        need = _names([f"{budget.cost[n]:.0f}" for n in over])
        ranked_at = _names([_pct(fsel.mean_val_acc(grid_results[n])) for n in over])
        text = (f"The final model retrains {chosen} ({acc} validation accuracy), because {_names(over)} ranked "
                f"higher in the grid ({ranked_at}) but need{'s' if len(over) == 1 else ''} {need} TMAC to train, "
                f"over the budget of {limit}.")
    elif budget.limit:
        text = (f"The final model retrains {chosen}, which has the best validation accuracy of the {where} "
                f"({acc}) and needs {budget.cost[chosen]:.0f} TMAC to train, within the budget of {limit}.")
    else:
        text = (f"The final model retrains {chosen}, which has the best validation accuracy of the {where} "
                f"({acc}); no compute budget was set.")
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


def _draw_axis(axis: dict, histories: dict[str, list[dict]]):
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
        history = histories[r["name"]]
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
