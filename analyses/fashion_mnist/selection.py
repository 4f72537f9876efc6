"""Problem 4d's model selection as plain computation: one axis at a time around the baseline, the
combination of each axis's best value, the finalists at full scale, a compute budget, the final
choice, and the paired tests that say which validation differences are beyond chance.

The caller runs the trials (``execute(specs, label) -> [(result, was_cached)]``), so nothing here
knows about caches or executors. Every configuration is validated on the same images, so two
configurations are compared image by image (McNemar's test), not as two independent accuracies.
The compute budget is counted in multiply-accumulates, so the same grid and seed choose the same
final model on any machine and executor.
"""
from __future__ import annotations

import math
import statistics
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np

from .grid import TRAIN_PASSES, Grid, GridError, TrialSpec, describe, training_tmacs, variant_config
from .train import TrialConfig
from .trials import train_images

ALPHA = 0.05
TEST_NAME = "exact McNemar (two-sided)"
TEST_NAME_SEEDS = ("exact sign-flip test (two-sided) on the per-image differences summed over matched seeds, "
                   "which is McNemar's test for one seed")
CORRECTION = "Holm over all {k} variants of the grid"          # {k}: filled in by family_info
FINALIST_CORRECTION = "Holm over the {k} finalists compared with the baseline"
NO_CORRECTION = "one comparison, so no correction"
BUDGET_FORMULA = (f"multiply-accumulates of one image's forward pass x {TRAIN_PASSES} (forward and backward) "
                  f"x training images x epochs")

Results = dict[str, list[dict[str, Any]]]
Outcomes = list[tuple[dict, bool]]
Execute = Callable[[list[TrialSpec], str], Outcomes]


# --- paired tests -------------------------------------------------------------------------------

def exact_mcnemar(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value: the chance, if either model were as likely to be the one
    right on an image they disagree on, of a split of the b + c discordant images at least this uneven."""
    n, low = b + c, min(b, c)
    if n == 0 or b == c:
        return 1.0
    term, tail = 1, 1                     # C(n, 0); the sum of C(n, i) for i <= low, in exact integers
    for i in range(low):
        term = term * (n - i) // (i + 1)
        tail += term
    return min(1.0, float(Fraction(2 * tail, 2 ** n)))


def _binomial_half(k: int) -> np.ndarray:
    """P(X = 0..k) for X ~ Binomial(k, 1/2), from log-factorials (no overflow for large k)."""
    log_fact = np.concatenate([[0.0], np.cumsum(np.log(np.arange(1, k + 1)))])
    return np.exp(log_fact[k] - log_fact - log_fact[::-1] - k * math.log(2))


def sign_flip_p(differences: np.ndarray) -> float:
    """Exact two-sided p-value of the sum of integer per-image differences under the null hypothesis
    that each image's difference is as likely to have either sign. With differences in {-1, 0, 1}
    (one seed) this is McNemar's exact test; with several seeds summed it keeps each image one unit
    (its seeds move together), where pooling discordant pairs would treat them as independent."""
    d = np.asarray(differences, dtype=np.int64)
    magnitudes = np.abs(d[d != 0])
    if magnitudes.size == 0:
        return 1.0
    if magnitudes.max() == 1:
        return exact_mcnemar(int((d > 0).sum()), int((d < 0).sum()))
    # T = sum of |d_i| over the images whose sign is +; the observed sum is 2T - total
    pmf = np.ones(1)
    for m, k in sorted(Counter(magnitudes.tolist()).items()):
        spaced = np.zeros(m * k + 1)
        spaced[::m] = _binomial_half(k)
        pmf = np.convolve(pmf, spaced)
    total, observed = int(magnitudes.sum()), abs(int(d.sum()))
    upper = pmf[math.ceil((total + observed) / 2):].sum()
    lower = pmf[:math.floor((total - observed) / 2) + 1].sum()
    return float(min(1.0, upper + lower))


def holm(p_values: list[float]) -> list[float]:
    """Holm's step-down adjustment: the family-wise error stays at alpha over all k comparisons."""
    k = len(p_values)
    adjusted = [0.0] * k
    running = 0.0
    for rank, i in enumerate(sorted(range(k), key=lambda j: p_values[j])):
        running = max(running, min(1.0, (k - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def paired_test(variant: list[dict[str, Any]], baseline: list[dict[str, Any]]) -> dict[str, Any] | None:
    """A variant against the baseline on the same validation images, seed matched with seed.

    ``discordant`` = [images only the variant gets right, images only the baseline gets right], summed
    over matched seeds; ``per_seed`` holds each seed pair's counts, McNemar p and accuracy difference.
    None when no seed pair has per-image results (a diverged trial)."""
    by_seed = {r["seed"]: r for r in baseline if r.get("val_correct") is not None}
    pairs = [(r, by_seed[r["seed"]]) for r in variant
             if r.get("val_correct") is not None and r["seed"] in by_seed]
    if not pairs:
        return None
    per_seed, summed = [], None
    for v, b in pairs:
        v_ok, b_ok = np.asarray(v["val_correct"], dtype=bool), np.asarray(b["val_correct"], dtype=bool)
        if v_ok.shape != b_ok.shape:
            raise ValueError(f"seed {v['seed']}: {v_ok.size} and {b_ok.size} validation images "
                             "cannot be paired")
        only_v, only_b = int((v_ok & ~b_ok).sum()), int((b_ok & ~v_ok).sum())
        per_seed.append({"seed": v["seed"], "discordant": [only_v, only_b],
                         "p_value": exact_mcnemar(only_v, only_b),
                         "delta_pp": 100 * (only_v - only_b) / v_ok.size})
        step = v_ok.astype(np.int64) - b_ok.astype(np.int64)
        summed = step if summed is None else summed + step
    deltas = [s["delta_pp"] for s in per_seed]
    return {"discordant": [sum(s["discordant"][0] for s in per_seed),
                           sum(s["discordant"][1] for s in per_seed)],
            "p_value": sign_flip_p(summed), "images": int(summed.size), "seeds": len(pairs),
            "delta_pp": statistics.fmean(deltas),
            "seed_delta_std_pp": statistics.stdev(deltas) if len(deltas) > 1 else None,
            "per_seed": per_seed}


def verdict(test: dict[str, Any], alpha: float = ALPHA) -> str:
    """"better" or "worse" only when the Holm-adjusted p is below alpha; the sign says which."""
    only_variant, only_baseline = test["discordant"]
    if test["p_adjusted"] >= alpha or only_variant == only_baseline:
        return "no measurable difference"
    return "better" if only_variant > only_baseline else "worse"


def test_family(results: Results, baseline: str, names: list[str]) -> dict[str, dict[str, Any] | None]:
    """Each of ``names`` against ``baseline``, Holm-adjusted over those that could be tested."""
    return _adjusted({n: paired_test(results[n], results[baseline]) for n in names})


def against_each(results: Results, name: str, references: list[str]) -> dict[str, dict[str, Any] | None]:
    """``name`` against each of ``references`` (the combination against the baseline and against the best
    single variant), Holm-adjusted over those comparisons."""
    return _adjusted({r: paired_test(results[name], results[r]) for r in references})


def _adjusted(tests: dict[str, dict[str, Any] | None]) -> dict[str, dict[str, Any] | None]:
    """Holm's adjusted p and the verdict on each test that could be made."""
    tested = [n for n, t in tests.items() if t is not None]
    for name, adjusted in zip(tested, holm([tests[n]["p_value"] for n in tested])):
        tests[name]["p_adjusted"] = adjusted
        tests[name]["verdict"] = verdict(tests[name])
    return tests


def family_info(tests: dict[str, dict[str, Any] | None], correction: str) -> dict[str, Any]:
    """What a family of tests was: the test's name, the correction, alpha, k, images and seeds."""
    done = [t for t in tests.values() if t is not None]
    seeds = max((t["seeds"] for t in done), default=0)
    return {"name": TEST_NAME if seeds <= 1 else TEST_NAME_SEEDS,
            "correction": correction.format(k=len(done)) if len(done) > 1 else NO_CORRECTION, "alpha": ALPHA,
            "k": len(done), "images": done[0]["images"] if done else 0, "seeds": seeds}


# --- the search ----------------------------------------------------------------------------------

def group(specs: list[TrialSpec], outcomes: Outcomes) -> Results:
    """Results by trial name (one per seed), in the order of ``specs``."""
    grouped: Results = {}
    for spec, (result, _) in zip(specs, outcomes):
        grouped.setdefault(spec.name, []).append(result)
    return grouped


def mean_val_acc(results: list[dict[str, Any]]) -> float:
    """Mean validation accuracy over repeats; a diverged repeat makes the config lose every comparison."""
    accs = [r["val_acc"] for r in results]
    return float("-inf") if not accs or any(a is None for a in accs) else sum(accs) / len(accs)


def ranked(results: Results) -> list[str]:
    """Trial names by mean validation accuracy, best first, diverged ones left out (ties keep order)."""
    ok = [n for n in results if mean_val_acc(results[n]) != float("-inf")]
    return sorted(ok, key=lambda n: -mean_val_acc(results[n]))


def best_per_axis(grid: Grid, results: Results, allowed: set[str] | None = None) -> dict[str, str]:
    """For each axis, the trial name (a variant or "baseline") with the best mean validation accuracy,
    among the ``allowed`` names when given (the baseline stands in when none of the axis is allowed)."""
    best = {}
    for axis in grid.axes:
        names = ["baseline"] + [n for n in results if n.startswith(f"{axis}: ")]
        names = [n for n in names if allowed is None or n in allowed] or ["baseline"]
        best[axis] = max(names, key=lambda n: mean_val_acc(results[n]))  # ties: the baseline (first) wins
    return best


def combined_values(grid: Grid, results: Results, specs: list[TrialSpec],
                    final_images: int) -> dict[str, str]:
    """For each axis, the trial whose value the combination takes: the best whose own final training fits
    the budget, so that the combination stays a candidate for the final model (a value over the budget
    alone, such as a wider network, would make it one unless another axis cut its cost). Every value
    counts when nothing fits, or without a budget."""
    affordable = budget_split(grid, results, specs, final_images).within
    return best_per_axis(grid, results, set(affordable) if affordable else None)


def combined_overrides(specs: list[TrialSpec], values: dict[str, str]) -> dict[str, Any]:
    """The overrides of the trials in ``values`` (axis -> trial name), merged: what the combination
    changes. Where two axes set the same key differently, ``resolve_conflicts`` says which wins."""
    return resolve_conflicts(specs, values)[0]


def resolve_conflicts(specs: list[TrialSpec], values: dict[str, str]) -> tuple[dict[str, Any], list[dict]]:
    """(the merged overrides, the conflicts): a key that two axes' values set differently goes to the axis
    that varies it as its subject (its value's first key) over one that sets it only alongside its own
    subject (the optimizer axis's weight decay against the regularisation axis's); between two of the same
    kind, to the later axis in the grid file. Each conflict: ``key``, ``values`` {axis: value}, ``kept``
    (the axis), ``why``."""
    by_name = {s.name: s for s in specs}
    setters: dict[str, list[tuple[str, Any, bool, str]]] = {}   # key -> (axis, value, subject?, its subject)
    for axis, name in values.items():
        overrides = by_name[name].overrides
        subject = describe(dict(list(overrides.items())[:1]))
        for i, (key, value) in enumerate(overrides.items()):
            setters.setdefault(key, []).append((axis, value, i == 0, subject))
    merged, conflicts = {}, []
    for key, who in setters.items():
        subjects = [w for w in who if w[2]]
        winner = (subjects or who)[-1]
        merged[key] = winner[1]
        if len({repr(w[1]) for w in who}) == 1:
            continue
        losers = [w for w in who if w is not winner]
        if winner[2] and not any(w[2] for w in losers):
            why = (f"{winner[0]} varies {key} itself; " + ", ".join(
                f"{w[0]} sets it only alongside {w[3]}" for w in losers))
        else:
            kind = "varies it as its subject" if winner[2] else "sets it only alongside its subject"
            why = f"each {kind}, and {winner[0]} comes later in the grid file"
        conflicts.append({"key": key, "values": {w[0]: _plain(w[1]) for w in who}, "kept": winner[0],
                          "why": why})
    return merged, conflicts


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


# Adam and AdamW differ only in how they apply weight decay (make_optimizer): without any they are one
SAME_OPTIMIZER = "without weight decay Adam and AdamW are the same optimizer"


def trains_as(config: TrialConfig) -> dict[str, Any]:
    """``config`` as a dict, with settings that train identically written one way, so that a choice that
    changes nothing shows as such (SAME_OPTIMIZER)."""
    out = config.to_dict()
    if out["optimizer"] in ("adam", "adamw") and out["weight_decay"] == 0:
        out["optimizer"] = "adamw"
    return out


def no_ops(base: TrialConfig, specs: list[TrialSpec], values: dict[str, str]) -> list[dict]:
    """The axes whose taken value changes nothing in the combination: without it (that axis at the
    baseline's value) the combination would train the same (another axis won its keys, or
    SAME_OPTIMIZER). Each: ``axis``, ``value`` (the trial name), ``keys`` {key it sets: why it does not
    count}."""
    by_name = {s.name: s for s in specs}

    def combined(chosen: dict[str, str]) -> tuple[dict[str, Any], TrialConfig]:
        merged = resolve_conflicts(specs, chosen)[0]
        return merged, variant_config(base, merged)[0]
    merged, config = combined(values)
    won_by = {x["key"]: x["kept"] for x in resolve_conflicts(specs, values)[1]}
    out = []
    for axis, name in values.items():
        if name == "baseline":
            continue
        without = combined({**values, axis: "baseline"})[1]
        if trains_as(without) != trains_as(config):
            continue
        out.append({"axis": axis, "value": name, "keys": {
            k: f"the {won_by[k]} axis's value won" if repr(merged[k]) != repr(v) else
            "the combination has it without this axis" if getattr(config, k) == getattr(without, k)
            else SAME_OPTIMIZER for k, v in by_name[name].overrides.items()}})
    return out


def same_config(grid: Grid, specs: list[TrialSpec], overrides: dict[str, Any]) -> str | None:
    """The name of the trial in ``specs`` whose configuration the baseline with ``overrides`` equals."""
    config = variant_config(grid.base, overrides)[0]
    return next((s.name for s in specs if s.config == config), None)


def combination(grid: Grid, specs: list[TrialSpec], values: dict[str, str], seed: int) -> list[TrialSpec]:
    """The baseline with every axis at the value of its trial in ``values`` (``combined_values``), unless
    that is a config already trained."""
    if not grid.combine:
        return []
    overrides = combined_overrides(specs, values)
    if same_config(grid, specs, overrides):
        return []
    config, coupling = variant_config(grid.base, overrides)
    return [TrialSpec(f"combined: {describe(overrides)}", "combined", overrides, config, s, coupled=coupling)
            for s in grid.seeds(seed)]


def trial_tmacs(spec: TrialSpec, val_size: int, train_subset: int) -> float:
    """Cost of one trial of the search (its stage decides how many images it trains on)."""
    return training_tmacs(spec.config, train_images(spec.stage, val_size, train_subset))


def final_config(grid: Grid, config: TrialConfig, images: int) -> TrialConfig:
    """``config`` as its final model trains: with the [final] overrides, and, where that training is over
    the budget and the grid sets ``final_min_epochs``, for the most epochs down to that floor that fit.

    The budget then buys a cheap network more epochs and a costly one fewer, instead of one epoch count
    that either wastes the budget on the first or rules out the second."""
    config = config.updated(grid.final)
    limit, floor = grid.final_budget_tmacs, grid.final_min_epochs
    if not (limit and floor):
        return config
    epochs = config.epochs
    while epochs > floor and training_tmacs(config.updated({"epochs": epochs}), images) > limit:
        epochs -= 1
    return config.updated({"epochs": epochs})


def final_tmacs(grid: Grid, config: TrialConfig, images: int) -> float:
    """Cost of training ``config``'s final model, in 10^12 multiply-accumulates (BUDGET_FORMULA):
    the same number on every machine, so the budget chooses the same model everywhere."""
    return training_tmacs(final_config(grid, config, images), images)


@dataclass(frozen=True)
class Budget:
    """The grid's candidates (best first, diverged left out) split by the final-training budget."""

    ranking: list[str]            # every candidate, best first
    within: list[str]
    over: list[str]
    cost: dict[str, float]        # name -> final training cost in TMAC
    limit: float                  # 0: no budget


def budget_split(grid: Grid, results: Results, specs: list[TrialSpec], images: int) -> Budget:
    by_name = {s.name: s for s in specs}
    names = ranked(results)
    cost = {n: final_tmacs(grid, by_name[n].config, images) for n in names}
    limit = grid.final_budget_tmacs
    over = [n for n in names if limit and cost[n] > limit]
    return Budget(names, [n for n in names if n not in over], over, cost, limit)


def finalist_specs(grid: Grid, results: Results, specs: list[TrialSpec], seed: int,
                   budget: Budget, final_images: int) -> list[TrialSpec]:
    """The ``finalists`` best grid configurations within the budget, plus the baseline, trained as the
    final model will be (``final_config`` for ``final_images``; on the whole training split).

    A grid trial is short and sees a subset, which rewards what converges fast; whether that still
    wins with the final model's longer training on more images is measured here, on the same
    validation split. A configuration over the budget could not be chosen, so it is not trained at
    full scale (when nothing fits, the best regardless). The baseline is always a finalist because
    every grid comparison was made against it.
    """
    if not grid.finalists:
        return []
    by_name = {s.name: s for s in specs}
    candidates = budget.within or ranked(results)
    names = candidates[:grid.finalists]
    if "baseline" not in names and "baseline" in ranked(results):
        names.append("baseline")
    return [TrialSpec(f"finalist: {name}", "finalist", by_name[name].overrides,
                      final_config(grid, by_name[name].config, final_images), s, stage="finalist",
                      coupled=by_name[name].coupled)
            for name in names for s in grid.seeds(seed)]


def grid_name(name: str) -> str:
    """The grid trial a finalist retrains ("finalist: X" -> "X")."""
    return name.removeprefix("finalist: ")


@dataclass(frozen=True)
class Decision:
    """Why the final model is what it is.

    ``rule``: "accuracy" (the best by validation accuracy among the candidates, and no better-ranked
    grid configuration was over the budget), "budget" (a grid configuration ranked above the chosen
    one was over the budget: ``excluded`` lists those), "none_within_budget" (nothing fits; the best
    by validation accuracy regardless). ``chosen`` is a name in the pool the choice was made in."""

    chosen: str
    rule: str
    excluded: list[str]
    budget: Budget


def decide(pool: Results, budget: Budget) -> Decision:
    """The final choice among ``pool`` (the finalists, or the grid trials when there are none)."""
    best = ranked(pool)
    if not best:
        raise GridError("every candidate for the final model diverged; nothing to retrain")
    if budget.limit and not budget.within:
        return Decision(best[0], "none_within_budget", [], budget)
    eligible = [n for n in best if grid_name(n) not in budget.over]
    if not eligible:
        raise GridError("every candidate within the final-training budget diverged; nothing to retrain")
    chosen = eligible[0]
    rank = budget.ranking.index
    excluded = [n for n in budget.over if rank(n) < rank(grid_name(chosen))]
    return Decision(chosen, "budget" if excluded else "accuracy", excluded, budget)


def final_stage(grid: Grid) -> str:
    """The final model's stage: all 60k images, or the training split validated on the hold-out."""
    return "final_split" if grid.final_validated else "final"


def final_images(grid: Grid) -> int:
    """How many images the final model trains on (the budget counts them)."""
    return train_images(final_stage(grid), grid.val_size, grid.train_subset)


NOISE_NAME = "baseline (other seeds)"


def noise_specs(grid: Grid, seed: int) -> list[TrialSpec]:
    """The baseline's grid trial again with ``noise_seeds`` other seeds (after the repeats' seeds): how much
    retraining alone moves its validation accuracy, which the paired tests on one seed do not see."""
    first = seed + grid.repeats
    return [TrialSpec(NOISE_NAME, "seeds", {}, grid.base, s) for s in range(first, first + grid.noise_seeds)]


def final_spec(grid: Grid, chosen: str, pool_specs: list[TrialSpec], seed: int, images: int) -> TrialSpec:
    """The chosen configuration as its final model trains (``final_config``), at ``final_stage``."""
    spec = next(s for s in pool_specs if s.name == chosen)
    config = final_config(grid, spec.config, images)
    fitted = {"epochs": config.epochs} if config.epochs != spec.config.updated(grid.final).epochs else {}
    return TrialSpec(f"final ({grid_name(chosen)})", "final", {**spec.overrides, **grid.final, **fitted},
                     config, seed, stage=final_stage(grid), coupled=spec.coupled)


@dataclass
class Stage:
    """Trials run at one stage of the search, with the wall-clock seconds this run spent on them."""

    specs: list[TrialSpec]
    outcomes: Outcomes
    wall_s: float

    @property
    def results(self) -> Results:
        return group(self.specs, self.outcomes)


@dataclass
class Selection:
    grid: Stage                      # one axis at a time, then the combination
    finalists: Stage                 # empty without a finalist stage
    best: dict[str, str]             # axis -> its best trial name (or "baseline")
    combined_from: dict[str, str]    # axis -> the trial whose value the combination took (best within budget)
    # axis -> variant name -> paired test, Holm over every variant of every axis (one family)
    axis_tests: dict[str, dict[str, dict[str, Any] | None]]
    combined_test: dict[str, Any] | None
    finalist_tests: dict[str, dict[str, Any] | None]           # finalist name -> test against the baseline's
    decision: Decision
    final_spec: TrialSpec
    combined_vs_best: dict[str, Any] | None = None   # the combination against the best single variant within
                                                     # the budget (``against``: its name), Holm over the two
    noise: Stage = field(default_factory=lambda: Stage([], [], 0.0))   # the baseline's other seeds


def grid_family(grid: Grid, specs: list[TrialSpec], results: Results) -> dict[str, dict[str, dict | None]]:
    """Every one-axis variant against the baseline as one family, Holm-corrected over all of them, then
    split by axis. A correction per axis would keep the chance of a false "better" at 5 % on each axis,
    about 1 - 0.95^axes over the grid, which is what the report's counts are about."""
    names = {axis: list(dict.fromkeys(s.name for s in specs if s.axis == axis)) for axis in grid.axes}
    tests = test_family(results, "baseline", [n for axis in grid.axes for n in names[axis]])
    return {axis: {n: tests[n] for n in names[axis]} for axis in grid.axes}


def _run(execute: Execute, specs: list[TrialSpec], label: str) -> Stage:
    start = time.perf_counter()
    outcomes = execute(specs, label) if specs else []
    return Stage(specs, outcomes, time.perf_counter() - start)


def select(grid: Grid, one_at_a_time: list[TrialSpec], seed: int, execute: Execute,
           final_images: int) -> Selection:
    """Run the search from the one-axis-at-a-time specs to the final model's spec (not trained here).
    The baseline's other seeds (``noise_specs``) share the grid's run, so the workers stay busy."""
    both = _run(execute, one_at_a_time + noise_specs(grid, seed), "grid")
    n = len(one_at_a_time)
    stage = Stage(both.specs[:n], both.outcomes[:n], both.wall_s)
    noise = Stage(both.specs[n:], both.outcomes[n:], 0.0)   # its wall clock is the grid's
    combined_from = combined_values(grid, stage.results, stage.specs, final_images) if grid.combine else {}
    extra = _run(execute, combination(grid, stage.specs, combined_from, seed), "combination")
    stage = Stage(stage.specs + extra.specs, stage.outcomes + extra.outcomes, stage.wall_s + extra.wall_s)
    results = stage.results
    budget = budget_split(grid, results, stage.specs, final_images)
    finalists = _run(execute, finalist_specs(grid, results, stage.specs, seed, budget, final_images),
                     "finalists")
    pool, pool_specs = (finalists.results, finalists.specs) if finalists.specs else (results, stage.specs)
    decision = decide(pool, budget)
    axis_tests = grid_family(grid, stage.specs, results)
    combined = next((s.name for s in stage.specs if s.axis == "combined"), None)
    best_single = next((n for n in (budget.within or budget.ranking) if n not in ("baseline", combined)),
                       None)
    against = against_each(results, combined, ["baseline", *([best_single] if best_single else [])]) \
        if combined else {}
    combined_test = against.get("baseline")
    vs_best = against.get(best_single) and {**against[best_single], "against": best_single}
    finalist_tests = {}
    if "finalist: baseline" in finalists.results:
        others = [n for n in finalists.results if n != "finalist: baseline"]
        finalist_tests = test_family(finalists.results, "finalist: baseline", others)
    final = final_spec(grid, decision.chosen, pool_specs, seed, final_images)
    return Selection(stage, finalists, best_per_axis(grid, results), combined_from, axis_tests, combined_test,
                     finalist_tests, decision, final, vs_best, noise)
