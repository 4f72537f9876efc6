"""What changed since an earlier report: two results.json trees paired number by number.

A CI job compares each run with the last accepted one. Numbers are paired by their path, and list
entries by a stable id (a scene's image, a trial's name, a class index) rather than by position, so
a reordered list is not a change. Each kind of number has its own tolerance:

* Places365 numbers (Problems 1-3) are deterministic given the weights and the image: they must be
  equal up to float32 rounding (``PLACES_RTOL``). Integers and booleans must be equal. The residuals
  of Problem 3's identity checks are rounding errors themselves: they may move as long as they stay
  rounding-sized (``RESIDUAL_ATOL``).
* FashionMNIST accuracies come from retraining: a rerun may move them by sampling noise, so they may
  differ by ``NOISE_SE`` binomial standard errors of the images they were measured on. Other numbers
  of training (losses, p-values, gains) have no noise model: they are listed, never flagged.

A difference beyond tolerance is *explained* when an input it depends on changed too (weights,
scenes, data, grid, the options): then it is listed as such, not flagged. Code and library versions
are listed but explain nothing: a number that moved with only the code changed is what a reviewer
must see.
"""
from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from miniplaces.errors import UserError
from miniplaces.inputs import bounded
from miniplaces.report import sections

# float32 rounding through the 50 layers of a ResNet: another convolution algorithm (memory layout,
# instruction set, thread count) moves a class probability by about 1e-5 relative (NCHW against NHWC
# weights: up to 1.3e-5); a change of weights, image or preprocessing moves it by far more
PLACES_RTOL = 1e-4
PLACES_ATOL = 1e-7
# Largest differences between two float32 computations of the same thing (Problem 3's checks that the
# mean over positions is the logits and that a class column is its CAM plus the bias): about 1e-5
# each time, different each time; 1e-3 means the identity no longer holds
RESIDUALS = {"mean_over_positions_vs_logits", "columns_vs_cam_plus_bias"}
RESIDUAL_ATOL = 1e-3
NOISE_SE = 3                 # retrained accuracies: this many binomial standard errors
SUMMARY_KEYS = ("against", "previous", "notes", "counts")   # what results.json repeats of changes.json
NOT_RESULTS = {"schema_version", "run", "model", "gates", "changes"}   # provenance and verdicts, not answers

# Timings and bookkeeping differ on every run and answer nothing.
NOT_COMPARED = re.compile(r"(^|_)(s|seconds|ms|milliseconds|per_s)$|^(cached|feature_maps_cached|timing"
                          r"|per_image_seconds|threads|final_threads|workers|grid_trials_trained)$")
# List entries are paired by the first of these keys whose values are unique on both sides.
ID_KEYS = ("image", "layer", "name", "concept", "axis", "index", "unit", "epoch", "seed")
ACCURACIES = {"val_acc", "test_acc", "train_acc", "mean", "first_val_acc", "chosen_val_acc", "grid_val_acc"}
# FashionMNIST integers fixed by the grid and the data, not by training: they must not move.
FIXED_COUNTS = {"params", "train_images", "test_images", "val_images", "grid_train_images", "n", "k",
                "seeds", "images", "epochs", "repeats", "count", "seed", "val_split_seed", "depth",
                "batch_size", "hidden"}
# Options that change where and how results are written, not what they are.
OUTPUT_OPTIONS = {"out", "cache_dir", "use_cache", "pdf", "verbosity", "submission", "allow_demo_submission",
                  "gates", "compare", "strict", "executor", "ray_address", "focus_image", "data_dir",
                  "categories"}
# Whose numbers an option or input can move is each section's ``Compare`` (miniplaces/report/sections):
# a scope ("filters", "scenes", "fashion") per section; "sections" only adds or removes whole sections.


def option_scopes(option: str) -> tuple[str, ...]:
    """The scopes whose numbers a run option can move."""
    if option == "sections":
        return ("sections",)
    return tuple(dict.fromkeys(s.compare.scope for s in sections.REGISTRY if option in s.compare.moved_by))


def _scopes(sections_: list) -> tuple[str, ...]:
    return tuple(dict.fromkeys(s.compare.scope for s in sections_))


def load_previous(path: Path) -> tuple[dict | None, str, str | None]:
    """(results, the file read, a note). ``path`` is a results.json or a folder holding one.

    A missing path, a file that cannot be read in bounds (``bounded.RESULTS_BYTES``, a regular file,
    UTF-8), JSON that only a lenient parser reads (NaN, Infinity, ``INT_DIGITS``-long integers,
    nesting past ``MAX_DEPTH``) or a results.json with a wrongly typed key is bad input (exit 2,
    before any work); a file that is not JSON, or JSON but not a results.json of this program, gives
    a note and nothing to compare, never a crash.
    """
    path = Path(path)
    file = path / "results.json" if path.is_dir() else path
    if not file.is_file():
        raise UserError(f"--compare {path}: no such file" + (" (the folder holds no results.json)"
                                                             if path.is_dir() else ""))
    text = bounded.read_text(file, bounded.RESULTS_BYTES, "--compare")
    try:
        data = json.loads(text, parse_int=_bounded_int, parse_float=_finite_float,
                          parse_constant=_no_constant)
    except _Refused as exc:
        raise UserError(f"--compare {file}: {exc}") from None
    except RecursionError:
        raise UserError(f"--compare {file}: nested deeper than {MAX_DEPTH} levels") from None
    except json.JSONDecodeError as exc:
        return None, str(file), (f"{file} is not JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}): "
                                 "nothing compared.")
    if not isinstance(data, dict) or "schema_version" not in data:
        return None, str(file), (f"{file} is not a miniplaces-report results.json (no schema_version): "
                                 "nothing compared.")
    if problem := _depth_problem(data) or shape_problem(data):
        raise UserError(f"--compare {file}: {problem}")
    return data, str(file), None


MAX_DEPTH = 64     # a results.json nests about 8 deep; the comparison walks both trees recursively
INT_DIGITS = 30    # its integers are counts, seeds and sizes; int() of 4 300 digits and more raises
# The keys whose values compare reads as objects (input_differences), parents before children
OBJECTS = ("run", "run.config", "run.versions", "model")   # and each section, and its inputs (objects())


def objects() -> tuple[str, ...]:
    return OBJECTS + tuple(key for s in sections.REGISTRY for key in (s.name, *(
        f"{s.name}.{path[0]}" for _, kind, path in s.compare.inputs if kind == "config" or len(path) > 1)))


class _Refused(ValueError):
    """A JSON value that results.json never holds and that would break the comparison or the report."""


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > INT_DIGITS:
        raise _Refused(f"an integer of {len(text.lstrip('-'))} digits (at most {INT_DIGITS})")
    return int(text)


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _Refused(f"the number {text[:40]} is out of range")
    return value


def _no_constant(name: str) -> float:
    raise _Refused(f"{name} is not a JSON value (results.json holds only finite numbers)")


def _depth_problem(data: Any) -> str | None:
    """Nesting past MAX_DEPTH, found without recursion (None: within it)."""
    level, nodes = 0, [data]
    while nodes:
        level += 1
        if level > MAX_DEPTH:
            return f"nested deeper than {MAX_DEPTH} levels"
        nodes = [child for node in nodes if isinstance(node, (dict, list))
                 for child in (node.values() if isinstance(node, dict) else node)]
    return None


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "true/false",
            type(None): "null"}.get(type(value), "a number")


def shape_problem(data: dict) -> str | None:
    """The first key of a results.json whose value is of a type compare cannot read (None: all fine)."""
    for key in objects():
        value = _get(data, *key.split("."))
        if value is not None and not isinstance(value, dict):
            return f"{key} is {_kind(value)}, not an object"
    scenes = data.get("scenes")
    if scenes is not None and not isinstance(scenes, list):
        return f"scenes is {_kind(scenes)}, not a list"
    for i, scene in enumerate(scenes or []):
        if isinstance(scene, dict) and not isinstance(scene.get("image", ""), str):
            return f"scenes[{i}].image is {_kind(scene['image'])}, not a string"
    return None


# ------------------------------------------------------------------------------------------ inputs

def _scene_hashes(results: dict) -> dict[str, str]:
    return {s.get("image"): s.get("sha256") for s in results.get("scenes") or [] if isinstance(s, dict)}


def _get(tree: Any, *keys: str) -> Any:
    for key in keys:
        tree = tree.get(key) if isinstance(tree, dict) else None
    return tree


def input_differences(old: dict, new: dict) -> list[dict]:
    """Inputs that differ: [{input, kind, old, new, explains}]. ``kind`` tells data from code from
    libraries; ``explains`` says whose numbers (the sections' compare scopes) the difference may move."""
    found: list[dict] = []

    def differ(name: str, kind: str, a: Any, b: Any, explains: tuple[str, ...]) -> None:
        if a != b:
            found.append({"input": name, "kind": kind, "old": a, "new": b, "explains": list(explains)})

    if old.get("model") and new.get("model"):   # inputs of a section that ran in both
        differ("Places365 weights (SHA-256)", "data", old["model"].get("sha256"), new["model"].get("sha256"),
               _scopes([s for s in sections.REGISTRY if s.places]))
    if old.get("scenes") and new.get("scenes"):
        old_scenes, new_scenes = _scene_hashes(old), _scene_hashes(new)
        for image in sorted(set(old_scenes) | set(new_scenes), key=str):
            differ(f"scene {image} (SHA-256)", "data", old_scenes.get(image), new_scenes.get(image),
                   _scopes([s for s in sections.REGISTRY if s.per_scene]))
    for section in sections.REGISTRY:   # a section's own inputs (data files, its grid)
        if not (old.get(section.name) and new.get(section.name)):
            continue
        for label, kind, path in section.compare.inputs:
            values = [_get(r, section.name, *path) for r in (old, new)]
            if kind == "config":   # settings: the machine's are not inputs
                values = [{k: v for k, v in (x or {}).items() if k not in section.compare.ignored_input_keys}
                          for x in values]
                if not all(values):
                    continue
            differ(label, kind, *values, (section.compare.scope,))
    old_config, new_config = _get(old, "run", "config") or {}, _get(new, "run", "config") or {}
    for key in sorted((set(old_config) | set(new_config)) - OUTPUT_OPTIONS):
        differ(f"option {key}", "config", old_config.get(key), new_config.get(key), option_scopes(key))
    differ("code version", "code", _get(old, "run", "version"), _get(new, "run", "version"), ())
    differ("git commit", "code", _get(old, "run", "git_commit"), _get(new, "run", "git_commit"), ())
    old_versions, new_versions = _get(old, "run", "versions") or {}, _get(new, "run", "versions") or {}
    for lib in sorted(set(old_versions) | set(new_versions)):
        differ(f"library {lib}", "library", old_versions.get(lib), new_versions.get(lib), ())
    return found


# ----------------------------------------------------------------------------------------- numbers

def question_of(path: tuple[str, ...]) -> str:
    """The sub-question (1a .. 4d, final) a results.json path answers; "other" when none does."""
    keys = tuple(p for p in path if not p.startswith("["))
    if len(keys) == 1:
        return "sections"     # a whole section run in only one of the two reports
    if keys[0] == "scenes" and keys[1] in sections.names():   # a section's per-scene block: scenes[i].cam
        keys = keys[1:]
    found, longest = "other", 0
    for prefix, question in _question_prefixes():
        if len(prefix) > longest and keys[:len(prefix)] == prefix:
            found, longest = question, len(prefix)
    return found


def _question_prefixes() -> Iterator[tuple[tuple[str, ...], str]]:
    """(results.json path prefix, sub-question) from each section's description; the longest match wins."""
    for section in sections.REGISTRY:
        if section.compare.default_question:
            yield (section.name,), section.compare.default_question
        for question in section.questions:
            for number in question.numbers:
                parts = tuple(number.split("."))
                yield (parts if parts[0] == "scenes" else (section.name, *parts)), question.key


def path_text(path: tuple[str, ...]) -> str:
    return "".join(p if p.startswith("[") else f".{p}" for p in path).lstrip(".")


def _id_key(old: list, new: list) -> str | None:
    """The id that pairs two lists of objects: present in every entry and unique on each side."""
    entries = old + new
    if not entries or not all(isinstance(e, dict) for e in entries):
        return None
    for key in ID_KEYS:
        if all(key in e and isinstance(e[key], (str, int)) for e in entries) and \
                len({e[key] for e in old}) == len(old) and len({e[key] for e in new}) == len(new):
            return key
    return None


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


class _Missing:
    """A path that one of the two trees does not have."""

    def __repr__(self) -> str:
        return "MISSING"


MISSING = _Missing()


def pairs(old: Any, new: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any, Any]]:
    """Every (path, old leaf, new leaf) of two trees; a side without the path gives ``MISSING``."""
    if isinstance(old, dict) and isinstance(new, dict):
        for key in list(old) + [k for k in new if k not in old]:
            if NOT_COMPARED.search(key) or (not path and key in NOT_RESULTS):
                continue
            yield from pairs(old.get(key, MISSING), new.get(key, MISSING), path + (key,))
    elif isinstance(old, list) and isinstance(new, list):
        key = _id_key(old, new)
        if key is None:
            for i in range(max(len(old), len(new))):
                yield from pairs(old[i] if i < len(old) else MISSING, new[i] if i < len(new) else MISSING,
                                 path + (f"[{i}]",))
            return
        old_by, new_by = {e[key]: e for e in old}, {e[key]: e for e in new}
        for ident in list(old_by) + [i for i in new_by if i not in old_by]:
            yield from pairs(old_by.get(ident, MISSING), new_by.get(ident, MISSING), path + (f"[{ident}]",))
    else:
        yield path, old, new


def tolerance(path: tuple[str, ...], old: Any, new_results: dict) -> tuple[str, float | None]:
    """(kind, allowed absolute difference) of the number at ``path``; None: listed, never flagged."""
    key = path[-1]
    section = sections.get(path[0]) if path[0] in sections.names() else None
    noise = "places" if path[0] == "scenes" else section.compare.noise if section else None
    if noise == "places":
        if key in RESIDUALS:
            return "rounding residual", RESIDUAL_ATOL
        if _is_number(old) and isinstance(old, float):
            return "places", PLACES_ATOL + PLACES_RTOL * abs(old)
        return "places", 0.0
    if noise == "retrained":
        data = _get(new_results, path[0], "data") or {}
        if key in ACCURACIES and _is_number(old) and 0 <= old <= 1:
            images = data.get("test_images" if key == "test_acc" else
                              "train_images" if key == "train_acc" else "val_images")
            if images:
                se = math.sqrt(max(old * (1 - old), 1 / images) / images)
                return "retrained accuracy", NOISE_SE * se
        if key in FIXED_COUNTS or not (_is_number(old) or isinstance(old, bool)):
            return "fixed by the grid", 0.0
        return "retrained (no noise model)", None
    return "other", 0.0


def _leaf(x: Any) -> bool:
    """Numbers, booleans and null are compared; strings are labels and sentences built from them."""
    return x is None or isinstance(x, (int, float, bool))


def _differs(a: Any, b: Any) -> bool:
    if _is_number(a) and _is_number(b):
        return a != b and not (math.isnan(a) and math.isnan(b))
    return type(a) is not type(b) or a != b


def _explained(path: tuple[str, ...], inputs: list[dict]) -> list[str]:
    """The changed inputs that can move the number at ``path`` (a whole section: the sections run)."""
    scope = ("sections" if len(path) == 1 else sections.get(path[0]).compare.scope
             if path[0] in sections.names() else "scenes")
    return [i["input"] for i in inputs if scope in i["explains"]]


def _status(a: Any, b: Any, allowed: float | None) -> str:
    if a is MISSING or b is MISSING or allowed == 0.0:
        return "beyond tolerance"
    if allowed is None:
        return "listed (no noise model)"
    if _is_number(a) and _is_number(b) and abs(b - a) <= allowed:
        return "within tolerance"
    return "beyond tolerance"


def compare(new: dict, old: dict | None, source: str, note: str | None = None) -> dict:
    """changes.json: inputs that differ and every number that differs, old -> new, by sub-question.
    ``old``, ``source`` and ``note`` are what ``load_previous`` returns."""
    notes = [note] if note else []
    report: dict[str, Any] = {"against": source, "previous": None, "notes": notes, "inputs": [],
                              "changes": [], "not_comparable": [], "tolerances": TOLERANCES}
    if old is None:
        return _finish(report, compared=0)
    report["previous"] = {"date": _get(old, "run", "date"), "git_commit": _get(old, "run", "git_commit"),
                          "schema_version": old.get("schema_version")}
    same_schema = old.get("schema_version") == new.get("schema_version")
    if not same_schema:
        notes.append(f"{source} has schema_version {old.get('schema_version')!r}, this run "
                     f"{new.get('schema_version')!r}: numbers are compared where their paths still match; "
                     "the rest is listed as not comparable.")
    report["inputs"] = inputs = input_differences(old, new)
    compared = 0
    for path, a, b in pairs(old, new):
        one_sided = a is MISSING or b is MISSING
        if one_sided and not same_schema:
            side = "new" if a is MISSING else "old"
            report["not_comparable"].append({"path": path_text(path), "why": f"only in the {side} file"})
            continue
        if not one_sided and not (_leaf(a) and _leaf(b)):
            if not isinstance(a, str) or not isinstance(b, str):
                report["not_comparable"].append({"path": path_text(path), "why": "a different kind of value"})
            continue
        if one_sided and isinstance(b if a is MISSING else a, str):
            continue
        compared += 1
        if not one_sided and not _differs(a, b):
            continue
        kind, allowed = tolerance(path, b if a is MISSING else a, new)
        shown = [x if _leaf(x) else "(absent)" if x is MISSING else f"({type(x).__name__})" for x in (a, b)]
        change = {"question": question_of(path), "path": path_text(path), "old": shown[0], "new": shown[1],
                  "kind": kind, "tolerance": allowed, "status": _status(a, b, allowed)}
        if change["status"] == "beyond tolerance" and (explained := _explained(path, inputs)):
            change["status"], change["explained_by"] = "explained by inputs", explained
        report["changes"].append(change)
    return _finish(report, compared)


TOLERANCES = {
    "places": f"Problems 1-3, same weights and image: equal up to {PLACES_RTOL:g} relative "
              f"(+{PLACES_ATOL:g}) for floats, exactly for integers and booleans",
    "rounding residual": f"Problem 3's identity checks (largest float32 difference between two ways of "
                         f"computing the same numbers): may move by up to {RESIDUAL_ATOL:g}",
    "retrained accuracy": f"FashionMNIST accuracies: {NOISE_SE} binomial standard errors, "
                          "sqrt(p (1 - p) / images), of the images they were measured on",
    "retrained (no noise model)": "other numbers of training (losses, gains, p-values): listed, "
                                  "never flagged",
    "fixed by the grid": "FashionMNIST counts fixed by the grid and the data: exactly equal",
}


def flagged(change: dict) -> bool:
    """A change beyond tolerance that no input change explains: what the ``unchanged`` gate fails on."""
    return change["status"] == "beyond tolerance"


def _finish(report: dict, compared: int) -> dict:
    changes = report["changes"]
    report["counts"] = {"compared": compared, "changed": len(changes),
                        "beyond_tolerance": sum(flagged(c) for c in changes),
                        "explained": sum(c["status"] == "explained by inputs" for c in changes),
                        "within_tolerance": sum(c["status"] == "within tolerance" for c in changes),
                        "listed": sum(c["status"] == "listed (no noise model)" for c in changes),
                        "inputs": len(report["inputs"]), "not_comparable": len(report["not_comparable"])}
    questions: dict[str, list[dict]] = {}
    for change in changes:
        questions.setdefault(change["question"], []).append(change)
    report["by_question"] = {q: {"changed": len(cs), "beyond_tolerance": sum(flagged(c) for c in cs)}
                             for q, cs in questions.items()}
    return report


def summary(report: dict) -> str:
    """One line for the log and the report: how much moved since the compared report."""
    c = report["counts"]
    if report["previous"] is None:
        return f"changes since {report['against']}: nothing compared ({report['notes'][0]})"
    return (f"changes since {report['against']}: {c['changed']} of {c['compared']} numbers differ, "
            f"{c['beyond_tolerance']} beyond tolerance, {c['explained']} explained by "
            f"{c['inputs']} changed input(s), {c['not_comparable']} not comparable")
