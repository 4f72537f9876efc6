"""Problem 4d grids: a TOML file -> a validated ``Grid`` -> trial specs.

A grid is plain data. ``[base]`` is the baseline configuration (Problem 4c); ``[axes]`` maps an
axis name to a list of partial configs, each tried on its own around the baseline (one axis at a
time); ``combine`` then trains the baseline with every axis set to its best value; ``finalists`` retrains
the best few and the baseline as the final model would be trained (``[final]`` overrides, the whole
training split) and picks among them by validation; the pick is retrained on all 60k images.
Everything is checked before any training, and a bad key or value is named in the error.
"""
from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import data as fdata
from .model import INITS
from .train import FIELDS, OPTIMIZERS, PRECISIONS, SCHEDULES, TrialConfig

TOP_KEYS = {"description", "repeats", "combine", "finalists", "final_budget_s", "data", "base", "axes", "final"}
DATA_KEYS = {"val_size", "train_subset"}
CHOICES = {"optimizer": OPTIMIZERS, "schedule": SCHEDULES, "init": INITS, "precision": PRECISIONS}


class GridError(ValueError):
    """A grid file that cannot be run; the message names the file, the key and the bad value."""


@dataclass(frozen=True)
class TrialSpec:
    """One training run: ``name`` groups repeats of the same config (they differ in ``seed`` only).

    ``stage`` says what it trains on: "grid" the grid's subset of the training split, "finalist" the
    whole training split (both validate), "final" all 60k images (and is scored once on the test set).
    """

    name: str
    axis: str | None
    overrides: dict[str, Any]
    config: TrialConfig
    seed: int
    stage: str = "grid"


@dataclass(frozen=True)
class Grid:
    source: str
    description: str
    base: TrialConfig
    axes: dict[str, list[dict[str, Any]]]
    final: dict[str, Any] = field(default_factory=dict)
    repeats: int = 1
    combine: bool = True
    finalists: int = 0
    final_budget_s: float = 0.0   # training-time budget of the final model (0: none)
    val_size: int = 10_000
    train_subset: int = 0

    def seeds(self, seed: int) -> list[int]:
        return [seed + i for i in range(self.repeats)]


def _fail(where: str, message: str) -> None:
    raise GridError(f"{where}: {message}")


def check_overrides(overrides: Any, where: str) -> dict[str, Any]:
    """Type- and range-check a partial TrialConfig; returns it with channels as a tuple."""
    if not isinstance(overrides, dict):
        _fail(where, f"expected a table of config keys, got {overrides!r}")
    out = {}
    for key, value in overrides.items():
        spot = f"{where}.{key}"
        if key not in FIELDS:
            _fail(spot, f"unknown key {key!r} (known: {', '.join(FIELDS)})")
        default = getattr(TrialConfig(), key)
        if key == "channels":
            if (not isinstance(value, list) or not value
                    or not all(isinstance(c, int) and not isinstance(c, bool) and c > 0 for c in value)):
                _fail(spot, f"{value!r} must be a non-empty list of positive integers")
            if len(value) > 4:
                _fail(spot, f"{value!r}: at most 4 stages (each halves the 28 x 28 image)")
            value = tuple(value)
        elif key == "depth":
            depths = value if isinstance(value, list) else [value]
            if not depths or not all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in depths):
                _fail(spot, f"{value!r} must be a positive integer or a list of them, one per stage")
            value = tuple(value) if isinstance(value, list) else value
        elif isinstance(default, bool) or isinstance(default, str):
            if type(value) is not type(default):
                _fail(spot, f"{value!r} must be a {type(default).__name__}")
        elif isinstance(default, int):
            if isinstance(value, bool) or not isinstance(value, int):
                _fail(spot, f"{value!r} must be an integer")
        elif isinstance(default, float):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                _fail(spot, f"{value!r} must be a number")
            value = float(value)
        if key in ("epochs", "batch_size") and value < 1:
            _fail(spot, f"{value!r} must be at least 1")
        if key == "lr" and not value > 0:
            _fail(spot, f"{value!r} must be positive")
        if key in ("weight_decay", "momentum", "hidden") and not value >= 0:
            _fail(spot, f"{value!r} must not be negative")
        if key in ("dropout", "label_smoothing") and not 0 <= value < 1:
            _fail(spot, f"{value!r} must be in [0, 1)")
        if key in CHOICES and value not in CHOICES[key]:
            _fail(spot, f"{value!r} is not one of {', '.join(CHOICES[key])}")
        if key == "augment":
            try:
                fdata.parse_augment(value)
            except ValueError as exc:
                _fail(spot, str(exc))
        out[key] = value
    return out


def _check_stages(config: TrialConfig, where: str) -> None:
    """A per-stage depth list must have one entry per stage of channels."""
    try:
        config.model_config().stage_depths()
    except ValueError as exc:
        _fail(where, str(exc))


def _int_setting(table: dict, key: str, where: str, default: int, minimum: int) -> int:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        _fail(f"{where}.{key}", f"{value!r} must be an integer >= {minimum}")
    return value


def parse_grid(raw: dict[str, Any], source: str) -> Grid:
    """Validate a grid given as a dict (a parsed TOML file)."""
    unknown = set(raw) - TOP_KEYS
    if unknown:
        _fail(source, f"unknown key {sorted(unknown)[0]!r} (known: {', '.join(sorted(TOP_KEYS))})")
    if not raw.get("base") and not raw.get("axes"):
        _fail(source, "empty grid: give a [base] configuration and/or [axes]")
    for table in ("data", "base", "axes", "final"):
        if not isinstance(raw.get(table, {}), dict):
            _fail(f"{source}: {table}", "must be a table")
    data = raw.get("data", {})
    bad = set(data) - DATA_KEYS
    if bad:
        _fail(f"{source}: data.{sorted(bad)[0]}", f"unknown key (known: {', '.join(sorted(DATA_KEYS))})")
    val_size = _int_setting(data, "val_size", f"{source}: data", 10_000, 1)
    if val_size >= fdata.COUNTS["train"]:
        _fail(f"{source}: data.val_size", f"{val_size} must be below {fdata.COUNTS['train']}")
    train_subset = _int_setting(data, "train_subset", f"{source}: data", 0, 0)
    base = TrialConfig().updated(check_overrides(raw.get("base", {}), f"{source}: base"))
    axes = {}
    for axis, values in raw.get("axes", {}).items():
        where = f"{source}: axes.{axis}"
        if not isinstance(values, list) or not values:
            _fail(where, f"{values!r} must be a non-empty list of tables like {{lr = 0.01}}")
        axes[axis] = [check_overrides(v, f"{where}[{i}]") for i, v in enumerate(values)]
        for i, overrides in enumerate(axes[axis]):
            _check_stages(base.updated(overrides), f"{where}[{i}]")
    final = check_overrides(raw.get("final", {}), f"{source}: final")
    _check_stages(base, f"{source}: base")
    _check_stages(base.updated(final), f"{source}: final")
    combine = raw.get("combine", True)
    if not isinstance(combine, bool):
        _fail(f"{source}: combine", f"{combine!r} must be true or false")
    description = raw.get("description", "")
    if not isinstance(description, str):
        _fail(f"{source}: description", f"{description!r} must be a string")
    budget = raw.get("final_budget_s", 0.0)
    if isinstance(budget, bool) or not isinstance(budget, (int, float)) or not budget >= 0:
        _fail(f"{source}: final_budget_s", f"{budget!r} must be a number of seconds >= 0 (0: no budget)")
    return Grid(source, description, base, axes, final, _int_setting(raw, "repeats", source, 1, 1), combine,
                _int_setting(raw, "finalists", source, 0, 0), float(budget), val_size, train_subset)


def load_grid(path: Path) -> Grid:
    """Read and validate a grid TOML file; GridError (one line) when it is missing or invalid."""
    try:
        raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise GridError(f"grid file {path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise GridError(f"grid file {path}: not valid TOML ({exc})") from None
    return parse_grid(raw, str(path))


def describe(overrides: dict[str, Any]) -> str:
    """'lr=0.01, schedule=constant' - the name of a variant."""
    def show(v: Any) -> str:
        return "x".join(map(str, v)) if isinstance(v, (list, tuple)) else str(v)
    return ", ".join(f"{k}={show(v)}" for k, v in overrides.items()) or "baseline"


def one_at_a_time(grid: Grid, seed: int) -> list[TrialSpec]:
    """The baseline, then each axis value applied alone to it; a value equal to the baseline is skipped."""
    specs = [TrialSpec("baseline", None, {}, grid.base, s) for s in grid.seeds(seed)]
    seen = {grid.base}
    for axis, variants in grid.axes.items():
        for overrides in variants:
            config = grid.base.updated(overrides)
            if config in seen:
                continue
            seen.add(config)
            specs += [TrialSpec(f"{axis}: {describe(overrides)}", axis, overrides, config, s) for s in grid.seeds(seed)]
    return specs


def mean_val_acc(results: list[dict[str, Any]]) -> float:
    """Mean validation accuracy over repeats; a diverged repeat makes the config lose every comparison."""
    accs = [r["val_acc"] for r in results]
    return float("-inf") if not accs or any(a is None for a in accs) else sum(accs) / len(accs)


def best_per_axis(grid: Grid, results: dict[str, list[dict[str, Any]]]) -> dict[str, str]:
    """For each axis, the trial name (a variant or "baseline") with the best mean validation accuracy."""
    best = {}
    for axis in grid.axes:
        names = ["baseline"] + [n for n in results if n.startswith(f"{axis}: ")]
        best[axis] = max(names, key=lambda n: mean_val_acc(results[n]))  # ties: the baseline (first) wins
    return best


def combination(grid: Grid, results: dict[str, list[dict[str, Any]]], specs: list[TrialSpec],
                seed: int) -> list[TrialSpec]:
    """The baseline with every axis at its best value, unless that is a config already trained."""
    if not grid.combine:
        return []
    by_name = {s.name: s for s in specs}
    overrides: dict[str, Any] = {}
    for axis, name in best_per_axis(grid, results).items():
        overrides.update(by_name[name].overrides)
    config = grid.base.updated(overrides)
    if config in {s.config for s in specs}:
        return []
    return [TrialSpec(f"combined: {describe(overrides)}", "combined", overrides, config, s) for s in grid.seeds(seed)]


def ranked(results: dict[str, list[dict[str, Any]]]) -> list[str]:
    """Trial names by mean validation accuracy, best first, diverged ones left out (ties keep order)."""
    ok = [n for n in results if mean_val_acc(results[n]) != float("-inf")]
    return sorted(ok, key=lambda n: -mean_val_acc(results[n]))


def finalist_specs(grid: Grid, results: dict[str, list[dict[str, Any]]], specs: list[TrialSpec],
                   seed: int) -> list[TrialSpec]:
    """The ``finalists`` best grid configurations plus the baseline, trained as the final model will be.

    A grid trial is short and sees a subset, which rewards what converges fast (less augmentation,
    less regularisation, higher learning rates); whether that still wins over the final model's
    longer training on more images is measured here, on the same validation split, rather than
    assumed. The baseline is always a finalist because every grid comparison was made against it.
    """
    if not grid.finalists:
        return []
    by_name = {s.name: s for s in specs}
    candidates = ranked(results)
    names = candidates[:grid.finalists]
    if "baseline" not in names and "baseline" in candidates:
        names.append("baseline")
    return [TrialSpec(f"finalist: {name}", "finalist", by_name[name].overrides,
                      by_name[name].config.updated(grid.final), s, stage="finalist")
            for name in names for s in grid.seeds(seed)]


def projected_final_s(grid: Grid, results: list[dict[str, Any]], final_images: int) -> float:
    """Seconds the final model of this configuration would train: the measured seconds per image and
    epoch (mean over repeats) times the final model's images and epochs."""
    per_image_epoch = [r["train_s"] / (r["train_images"] * max(len(r["history"]), 1)) for r in results]
    epochs = grid.final.get("epochs", results[0]["config"]["epochs"])
    return sum(per_image_epoch) / len(per_image_epoch) * final_images * epochs


def within_budget(grid: Grid, results: dict[str, list[dict[str, Any]]],
                  final_images: int) -> dict[str, list[dict[str, Any]]]:
    """The candidates whose final model is projected to train within ``final_budget_s`` (all without a budget)."""
    if not grid.final_budget_s:
        return results
    return {n: r for n, r in results.items() if projected_final_s(grid, r, final_images) <= grid.final_budget_s}


def final_spec(grid: Grid, results: dict[str, list[dict[str, Any]]], specs: list[TrialSpec],
               seed: int) -> TrialSpec:
    """The best configuration by mean validation accuracy among ``results`` (the finalists when there
    are any, else every grid trial), with [final] overrides, on all training images."""
    by_name = {s.name: s for s in specs}
    best = ranked(results)
    if not best:
        raise GridError(f"{grid.source}: every trial diverged; nothing to retrain")
    chosen = by_name[best[0]]
    label = best[0].removeprefix("finalist: ")
    return TrialSpec(f"final ({label})", "final", {**chosen.overrides, **grid.final},
                     chosen.config.updated(grid.final), seed, stage="final")
