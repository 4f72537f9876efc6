"""Quality gates: turn a finished run into a pass/fail verdict for CI.

``--gate NAME[=VALUE]`` (repeatable). A gate judges the finished run, so the whole report is
written first; a failed gate then exits with ``EXIT_CODE`` (not 1: nothing crashed; not 2: the
input was fine). ``--strict`` is the early form of ``no-demo``: it stops before any work (exit 2).
"""
from __future__ import annotations

from dataclasses import dataclass

from miniplaces.ci.compare import flagged
from miniplaces.inputs.checkpoint import untrained
from miniplaces.report.sections import REGISTRY, model_section, needing_places, saved_model_accuracy
from miniplaces.report.wording import series

EXIT_CODE = 3
PROBLEM_SET_ACCURACY = 0.90      # the problem set's bar for the saved FashionMNIST model

GATES: dict[str, str] = {
    "min-accuracy": "FashionMNIST test accuracy of the saved model at least VALUE "
                    "(default 0.90, the problem set's bar)",
    "no-demo": "Problems 1-3 used trained Places365 weights: not the untrained demo model, nor a checkpoint "
               "that behaves as untrained (results.json: model.weights_check)",
    "no-skips": "no scene image and no figure of the sections that ran was skipped",
    "unchanged": "no number moved beyond its tolerance since the --compare report, unless an input changed "
                 "(fails when that file could not be compared)",
}


def needs(gate: str) -> str:
    """What a gate needs in a run, in words: derived from the sections' descriptions."""
    model = model_section()
    places = series([s.name for s in REGISTRY if s.places], "or")
    return {"min-accuracy": f"the {model.name if model else 'model'} section", "unchanged": "--compare PATH",
            "no-demo": f"a Places section ({places})"}[gate]


@dataclass(frozen=True)
class Gate:
    name: str
    threshold: float | None = None

    @property
    def label(self) -> str:
        return self.name if self.threshold is None else f"{self.name}={self.threshold:g}"


def parse(spec: str) -> Gate:
    """'min-accuracy=0.9' -> Gate; ValueError with the bad part for anything else."""
    name, _, value = spec.partition("=")
    if name not in GATES:
        raise ValueError(f"--gate {spec}: unknown gate {name!r} (known: {', '.join(GATES)})")
    if name != "min-accuracy":
        if value:
            raise ValueError(f"--gate {spec}: {name} takes no value")
        return Gate(name)
    try:
        threshold = float(value) if value else PROBLEM_SET_ACCURACY
    except ValueError:
        raise ValueError(f"--gate {spec}: {value!r} is not a number") from None
    if not 0 < threshold <= 1:
        raise ValueError(f"--gate {spec}: the accuracy is a fraction in (0, 1], e.g. 0.90")
    return Gate(name, threshold)


def missing_requirement(gate: Gate, sections: tuple[str, ...], compare: bool) -> str | None:
    """Why ``gate`` could not be measured in this run, or None (a gate is never passed unmeasured)."""
    model = model_section()
    has = {"min-accuracy": model is not None and model.name in sections, "unchanged": compare,
           "no-demo": bool(needing_places(sections))}
    if not has.get(gate.name, True):
        return f"--gate {gate.label} needs {needs(gate.name)}"
    return None


def skips(results: dict, sections: list[dict]) -> list[str]:
    """What the run left out of the sections that ran: unreadable scene images, figures not made."""
    found = [f"{s['name']}: {note}" for s in sections for note in s["notes"]]
    files = {item["file"]: item["why"] for s in REGISTRY
             for item in (results.get(s.name) or {}).get("skipped", [])}
    return found + [f"image {file}: {why}" for file, why in files.items()]


def evaluate(gates: list[Gate], results: dict, sections: list[dict], changes: dict | None) -> list[dict]:
    """One verdict per gate: {gate, passed, measured, text}; ``text`` names the gate and the value."""
    verdicts = []
    for gate in gates:
        if gate.name == "min-accuracy":
            accuracy = saved_model_accuracy(results)
            passed = accuracy >= gate.threshold
            measured, text = accuracy, (f"FashionMNIST test accuracy {100 * accuracy:.2f} % "
                                        f"{'>=' if passed else '<'} {100 * gate.threshold:.2f} %")
        elif gate.name == "no-demo":
            model = results["model"]
            bad = untrained(model)
            passed, measured = not bad, bad
            if model["demo"]:
                text = f"Places365 weights are the untrained demo model ({model['demo_reason']})"
            elif bad:
                text = (f"Places365 checkpoint {model['sha256'][:16]}… behaves as untrained: "
                        + "; ".join(model["weights_check"]["reasons"]))
            else:
                text = f"Places365 weights {model['sha256'][:16]}…"
        elif gate.name == "no-skips":
            left_out = skips(results, sections)
            passed, measured = not left_out, len(left_out)
            text = f"{len(left_out)} skipped" + (f": {'; '.join(left_out[:3])}" if left_out else "")
        elif changes["previous"] is None:   # unchanged, with nothing to compare
            passed, measured, text = False, None, changes["notes"][0]
        else:   # unchanged
            beyond = [c for c in changes["changes"] if flagged(c)]
            passed, measured = not beyond, len(beyond)
            text = f"{len(beyond)} number(s) beyond tolerance since {changes['against']}"
            if beyond:
                text += f", e.g. {beyond[0]['path']}: {beyond[0]['old']} -> {beyond[0]['new']}"
        verdicts.append({"gate": gate.label, "passed": passed, "measured": measured, "text": text})
    return verdicts


def failed(verdicts: list[dict]) -> list[dict]:
    return [v for v in verdicts if not v["passed"]]
