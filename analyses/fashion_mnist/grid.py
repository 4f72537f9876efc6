"""Problem 4d grids: a TOML file -> a validated ``Grid`` -> trial specs.

A grid is plain data. ``[base]`` is the baseline configuration (Problem 4c); ``[axes]`` maps an
axis name to a list of partial configs, each tried on its own around the baseline (one axis at a
time); ``combine`` then trains the baseline with every axis set to its best value; ``finalists`` retrains
the best few and the baseline as the final model would be trained (``[final]`` overrides, the whole
training split) and picks among them by validation; the pick is retrained on all 60k images. The
search itself is in selection.py. Everything is checked before any training, and a bad key or value
is named in the error.
"""
from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field
from typing import Any

from . import data as fdata
from .model import INITS, ModelConfig, count_macs
from .train import FIELDS, OPTIMIZERS, PRECISIONS, SCHEDULES, TrialConfig

TOP_KEYS = {"description", "repeats", "combine", "finalists", "final_budget_tmacs", "final_min_epochs",
            "final_validated", "noise_seeds", "data", "base", "axes", "final"}
RENAMED = {"final_budget_s": "final_budget_tmacs (the budget is counted in multiply-accumulates now, the "
                             "same on every machine: see docs/fashion_mnist.md)"}
DATA_KEYS = {"val_size", "train_subset"}
CHOICES = {"optimizer": OPTIMIZERS, "schedule": SCHEDULES, "init": INITS, "precision": PRECISIONS}
# The sizes a grid may ask for, (least, most): generous for 28 x 28 images, small enough that no value
# fails at allocation or trains for years. Channels and depth bound each stage's entry.
SIZES = {"epochs": (1, 1000), "batch_size": (1, 60_000), "hidden": (0, 16_384), "channels": (1, 1024),
         "depth": (1, 16), "repeats": (1, 100), "finalists": (0, 100), "noise_seeds": (0, 100),
         "final_min_epochs": (0, 1000), "val_size": (1, 59_999),
         "train_subset": (0, 60_000), "curve_images": (0, 59_999)}
MAX_PARAMETERS = 50_000_000   # 200 MB of float32 weights (x4 with gradients and Adam's moments)
MAX_TRIAL_TMACS = 10_000      # one configuration trained on all 60 000 images; the standard final model: 33
MAX_TRIALS = 2_000            # trials of the one-axis-at-a-time search (configurations x repeats)
TRAIN_PASSES = 3   # a training step costs about three forward passes:
                   # the forward and a backward twice as dear
TMAC = 1e12


class GridError(ValueError):
    """A grid file that cannot be run; the message names the file, the key and the bad value."""


@dataclass(frozen=True)
class TrialSpec:
    """One training run: ``name`` groups repeats of the same config (they differ in ``seed`` only).

    ``stage`` says what it trains on: "grid" the grid's subset of the training split, "finalist" the
    whole training split (both validate), "final" all 60k images, "final_split" the whole training split,
    validated after every epoch (both final stages are scored once on the test set).
    """

    name: str
    axis: str | None
    overrides: dict[str, Any]
    config: TrialConfig
    seed: int
    stage: str = "grid"
    coupled: dict[str, Any] = field(default_factory=dict)   # settings changed with the axis, and "why"


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
    final_budget_tmacs: float = 0.0   # compute budget of the final model's training, 10^12 MACs (0: none)
    final_min_epochs: int = 0         # a final training over the budget trains fewer epochs, down to this
                                      # (0: never; selection.final_config)
    val_size: int = 10_000
    train_subset: int = 0
    final_validated: bool = False     # the final model trains on the training split, validated on the
                                      # hold-out after every epoch (stage "final_split": 4c's run)
    noise_seeds: int = 0              # extra seeds of the baseline's grid trial: its retraining spread

    def seeds(self, seed: int) -> list[int]:
        return [seed + i for i in range(self.repeats)]


def _fail(where: str, message: str) -> None:
    text = f"{where}: {message}"
    raise GridError(text if len(text) <= 400 else text[:400] + "...")   # one line, however long the value


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
        if key in ("channels", "depth"):
            items = value if isinstance(value, list) else [value]
            if (not items or (key == "channels" and not isinstance(value, list))
                    or not all(_in_range(n, *SIZES[key]) for n in items)):
                shape = "a non-empty list" if key == "channels" else "an integer or a non-empty list"
                _fail(spot, f"{value!r} must be {shape} of integers from {SIZES[key][0]} to {SIZES[key][1]}")
            if key == "channels" and len(value) > 4:
                _fail(spot, f"{value!r}: at most 4 stages (each halves the 28 x 28 image)")
            value = tuple(value) if isinstance(value, list) else value
        elif isinstance(default, bool) or isinstance(default, str):
            if type(value) is not type(default):
                _fail(spot, f"{value!r} must be a {type(default).__name__}")
        elif isinstance(default, int):
            if not _in_range(value, *SIZES[key]):
                _fail(spot, f"{value!r} must be an integer from {SIZES[key][0]} to {SIZES[key][1]}")
        elif isinstance(default, float):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                _fail(spot, f"{value!r} must be a finite number")
            value = float(value)
        if key == "lr" and not value > 0:
            _fail(spot, f"{value!r} must be positive")
        if key in ("weight_decay", "momentum") and not value >= 0:
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


def _in_range(value: Any, least: int, most: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and least <= value <= most


def _check_stages(config: TrialConfig, where: str) -> None:
    """A per-stage depth list must have one entry per stage of channels, and the network must be of a
    size that trains: at most MAX_PARAMETERS weights and MAX_TRIAL_TMACS on all training images."""
    model = config.model_config()
    try:
        model.stage_depths()
    except ValueError as exc:
        _fail(where, str(exc))
    if (weights := count_weights(model)) > MAX_PARAMETERS:
        _fail(where, f"the network has {weights:,} weights, more than the {MAX_PARAMETERS:,} allowed; "
                     "use fewer channels, stages or hidden units")
    if (cost := training_tmacs(config, fdata.COUNTS["train"])) > MAX_TRIAL_TMACS:
        _fail(where, f"training it on {fdata.COUNTS['train']} images costs {cost:,.0f} TMAC (10^12 "
                     f"multiply-accumulates), more than the {MAX_TRIAL_TMACS:,} allowed; use fewer epochs, "
                     "channels or stages")


def count_weights(config: ModelConfig) -> int:
    """Weights of the convolutions and linear layers (those that can be large), from the config alone:
    nothing is allocated, so an absurd size is refused instead of failing at allocation."""
    weights, c_in = 0, 1
    for c_out, depth in zip(config.channels, config.stage_depths()):
        for _ in range(depth):
            weights += c_in * c_out * 3 * 3
            c_in = c_out
    width = c_in * (28 >> len(config.channels)) ** 2
    for units in ([config.hidden] if config.hidden else []) + [config.num_classes]:
        weights += width * units
        width = units
    return weights


def training_tmacs(config: TrialConfig, images: int) -> float:
    """Cost of training ``config`` on ``images`` images in 10^12 multiply-accumulates
    (selection.BUDGET_FORMULA)."""
    return count_macs(config.model_config()) * TRAIN_PASSES * images * config.epochs / TMAC


def _bool_setting(table: dict, key: str, source: str, default: bool) -> bool:
    value = table.get(key, default)
    if not isinstance(value, bool):
        _fail(f"{source}: {key}", f"{value!r} must be true or false")
    return value


def _int_setting(table: dict, key: str, where: str, default: int) -> int:
    value = table.get(key, default)
    if not _in_range(value, *SIZES[key]):
        _fail(f"{where}.{key}", f"{value!r} must be an integer from {SIZES[key][0]} to {SIZES[key][1]}")
    return value


def parse_grid(raw: dict[str, Any], source: str) -> Grid:
    """Validate a grid given as a dict (a parsed TOML file)."""
    for old in set(raw) & set(RENAMED):
        _fail(f"{source}: {old}", f"this key was replaced by {RENAMED[old]}")
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
    val_size = _int_setting(data, "val_size", f"{source}: data", 10_000)
    train_subset = _int_setting(data, "train_subset", f"{source}: data", 0)
    base = TrialConfig().updated(check_overrides(raw.get("base", {}), f"{source}: base"))
    axes = {}
    for axis, values in raw.get("axes", {}).items():
        where = f"{source}: axes.{axis}"
        if not isinstance(values, list) or not values:
            _fail(where, f"{values!r} must be a non-empty list of tables like {{lr = 0.01}}")
        axes[axis] = [check_overrides(v, f"{where}[{i}]") for i, v in enumerate(values)]
    final = check_overrides(raw.get("final", {}), f"{source}: final")
    for axis, values in axes.items():
        for i, overrides in enumerate(values):
            _check_stages(base.updated(overrides), f"{source}: axes.{axis}[{i}]")
            check_evaluation(variant_config(base, overrides)[0].updated(final), f"{source}: axes.{axis}[{i}]")
    _check_stages(base, f"{source}: base")
    _check_stages(base.updated(final), f"{source}: final")
    check_evaluation(base, f"{source}: base")
    check_evaluation(base.updated(final), f"{source}: final")
    combine, validated = (_bool_setting(raw, key, source, default)
                          for key, default in (("combine", True), ("final_validated", False)))
    description = raw.get("description", "")
    if not isinstance(description, str):
        _fail(f"{source}: description", f"{description!r} must be a string")
    budget = raw.get("final_budget_tmacs", 0.0)
    if isinstance(budget, bool) or not isinstance(budget, (int, float)) or not 0 <= budget < math.inf:
        _fail(f"{source}: final_budget_tmacs", f"{budget!r} must be a number of 10^12 multiply-accumulates "
                                               ">= 0 (0: no budget)")
    repeats = _int_setting(raw, "repeats", source, 1)
    noise_seeds = _int_setting(raw, "noise_seeds", source, 0)
    trials = (1 + sum(map(len, axes.values()))) * repeats + noise_seeds
    if trials > MAX_TRIALS:
        _fail(source, f"{trials} trials (configurations x repeats + noise_seeds), more than the {MAX_TRIALS} "
                      "allowed")
    finalists = _int_setting(raw, "finalists", source, 0)
    min_epochs = _int_setting(raw, "final_min_epochs", source, 0)
    if min_epochs and not budget:
        _fail(f"{source}: final_min_epochs", "fits the final model's epochs to final_budget_tmacs, which is "
                                             "not set")
    if min_epochs > (epochs := base.updated(final).epochs):
        _fail(f"{source}: final_min_epochs", f"{min_epochs} is more than the final model's {epochs} epochs")
    return Grid(source, description, base, axes, final, repeats, combine, finalists, float(budget),
                min_epochs, val_size, train_subset, validated, noise_seeds)


def grid_from_toml(text: str, source: str) -> Grid:
    """Parse and validate a grid file's text (the caller reads the file, within a size limit); GridError
    (one line naming ``source``) for anything that is not a valid grid."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise GridError(f"grid file {source}: not valid TOML ({exc})") from None
    except RecursionError:
        raise GridError(f"grid file {source}: nested too deeply to be a grid") from None
    except ValueError as exc:   # e.g. an integer of more than 4300 digits
        raise GridError(f"grid file {source}: not valid TOML ({str(exc).splitlines()[0][:120]})") from None
    return parse_grid(raw, source)


def shown_value(value: Any) -> str:
    """A setting's value as a variant's name writes it: 32x64 for a list."""
    return "x".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)


def describe(overrides: dict[str, Any]) -> str:
    """'lr=0.01, schedule=constant' - the name of a variant."""
    return ", ".join(f"{k}={shown_value(v)}" for k, v in overrides.items()) or "baseline"


def config_changes(base: dict[str, Any], config: dict[str, Any]) -> dict[str, list[Any]]:
    """Every setting in which ``config`` differs from ``base`` (two full configs as dicts): key ->
    [base's value, config's value]. Derived from the configs, not the variant's name, so a coupling
    (flip_tta with augment) or a key the variant sets besides its axis's shows up in any grid."""
    return {k: [base.get(k), v] for k, v in config.items() if base.get(k) != v}


def changes_text(changes: dict[str, list[Any]]) -> str:
    """'lr 0.003 → 0.05 and weight_decay 0.05 → 0.0005': each change with the baseline's value."""
    parts = [f"{k} {shown_value(old)} → {shown_value(new)}" for k, (old, new) in changes.items()]
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def change_label(overrides: dict[str, Any], changes: dict[str, list[Any]]) -> str:
    """A variant as a sentence names it: its name when it changes one setting, else its first changed
    setting with every other change and the baseline's value in parentheses (lists of labels stay readable),
    'optimizer=sgd (with lr 0.003 → 0.05 and weight_decay 0.05 → 0.0005)'."""
    if len(changes) <= 1:
        return describe(overrides)
    first = next((k for k in overrides if k in changes), next(iter(changes)))
    rest = {k: v for k, v in changes.items() if k != first}
    return f"{first}={shown_value(changes[first][1])} (with {changes_text(rest)})"


# config fields that change how a trained model is scored, not how it trains
EVALUATION_KEYS = ("flip_tta", "curve_images")
FLIP_COUPLING = "test-time flips only for a model trained on mirrored images (augment without flip)"


def coupled(base: TrialConfig, overrides: dict[str, Any]) -> dict[str, Any]:
    """Settings a variant must change besides ``overrides`` to stay a fair comparison, with "why".

    The one coupling: a baseline with flip test-time augmentation would score a variant trained
    without flips on mirror images it never saw (the standard grid's augment = "none" lost 10 pp
    that way), so such a variant is scored without test-time flips. Empty when nothing couples."""
    config = base.updated(overrides)
    if config.flip_tta and "flip" not in fdata.parse_augment(config.augment) and "flip_tta" not in overrides:
        return {"flip_tta": False, "why": FLIP_COUPLING}
    return {}


def variant_config(base: TrialConfig, overrides: dict[str, Any]) -> tuple[TrialConfig, dict[str, Any]]:
    """(the config of ``overrides`` applied to ``base`` with its couplings, the couplings)."""
    coupling = coupled(base, overrides)
    return base.updated({**overrides, **{k: v for k, v in coupling.items() if k != "why"}}), coupling


def check_evaluation(config: TrialConfig, where: str) -> None:
    """No configuration is scored with test-time flips unless it trains with flips."""
    if config.flip_tta and "flip" not in fdata.parse_augment(config.augment):
        _fail(where, f"flip_tta = true with augment = {config.augment!r}: the model would be scored on "
                     "mirror images it never trained on; add flip to augment or set flip_tta = false")


def check_fair(base: TrialConfig, specs: list[TrialSpec]) -> None:
    """Every variant is scored like the baseline except in what its axis names and its stated couplings."""
    for spec in specs:
        check_evaluation(spec.config, spec.name)
        for key in EVALUATION_KEYS:
            stated = key in spec.overrides or key in spec.coupled
            if not stated and getattr(spec.config, key) != getattr(base, key):
                _fail(spec.name, f"{key} = {getattr(spec.config, key)!r} differs from the baseline's without "
                                 "its axis naming it or a stated coupling")


def one_at_a_time(grid: Grid, seed: int) -> list[TrialSpec]:
    """The baseline, then each axis value applied alone to it (with its couplings); a value equal to
    the baseline is skipped."""
    specs = [TrialSpec("baseline", None, {}, grid.base, s) for s in grid.seeds(seed)]
    seen = {grid.base}
    for axis, variants in grid.axes.items():
        for overrides in variants:
            config, coupling = variant_config(grid.base, overrides)
            if config in seen:
                continue
            seen.add(config)
            specs += [TrialSpec(f"{axis}: {describe(overrides)}", axis, overrides, config, s,
                                coupled=coupling)
                      for s in grid.seeds(seed)]
    check_fair(grid.base, specs)
    return specs
