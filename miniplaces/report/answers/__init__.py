"""Every answer sentence of the report, built from the numbers in results.json.

Each section's sentences live in ``answers/<section>.py`` (its ``Section.answers``): one function
``answer_<key>(results, scene)`` per sub-question returns an ``Answer``: at most three sentences that
answer the
question with its key numbers (the report's answer block), one sentence for the "Answers at a
glance" table, and, where the problem set asks to explain, a short reading of what the numbers mean.
Templates only display these strings; a sentence here must be true for the official Places365
weights as well as for the untrained demo weights (the report marks the latter once per answer).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from miniplaces.report import sections


@dataclass
class Answer:
    key: str                        # "2d"
    sentences: list[str]            # the answer block: at most three sentences
    glance: str                     # one sentence for "Answers at a glance"
    reading: list[str] = field(default_factory=list)   # what the numbers mean, where the question asks why
    places: bool = False            # computed with the Places365 network (the report marks demo weights)

    @property
    def question(self) -> sections.Question:
        return sections.questions()[self.key][1]

    @property
    def anchor(self) -> str:
        section, question = sections.questions()[self.key]
        return section.anchor_of(question)

    @property
    def points(self) -> str:
        return self.question.points

    @property
    def topic(self) -> str:
        return self.question.topic

    @property
    def text(self) -> str:
        return " ".join(self.sentences)


# ----------------------------------------------------------------------------------------- wording

UNTRAINED_TAG = "Untrained weights, not interpretable:"


def untrained_tag(model: dict | None) -> str:
    """The words that open every Places answer when its network is untrained (demo or a checkpoint that
    fails model.weights_check), else ""."""
    from miniplaces.inputs.checkpoint import untrained

    return UNTRAINED_TAG if untrained(model) else ""


def name(cls: dict) -> str:
    """A class by its name (the demo model has none: 'class 262')."""
    return cls["label"]


def scene_name(scene: dict) -> str:
    return scene.get("id") or scene["image"]


def count_of(n: int, total: int, what: str) -> str:
    if n == total:
        return f"every {what}" if total > 1 else f"the {what}"
    return f"{n} of {total} {what}s"


# -------------------------------------------------------------------------------------- assembly

def focus_scene(results: dict, focus: str | None) -> dict | None:
    """The representative scene: ``focus`` (its file name or id) or the first scene."""
    scenes = results.get("scenes") or []
    if not scenes:
        return None
    if focus:
        for scene in scenes:
            if focus in (scene["image"], scene.get("id")):
                return scene
    return scenes[0]


def build(results: dict, focus: str | None = None) -> dict[str, Answer]:
    """Every answer whose section ran, keyed by sub-question, in report order."""
    scene = focus_scene(results, focus)
    answers = {}
    for section in sections.REGISTRY:
        if section.name not in results:
            continue
        for question in section.questions:
            answers[question.key] = answer(question.key, results, scene)
    return answers


def answer(key: str, results: dict, scene: dict | None = None) -> Answer:
    """One sub-question's answer: ``answer_<key>`` of its section's sentences module."""
    section, _ = sections.questions()[key]
    made = getattr(section.answer_module(), f"answer_{key}")(results, scene)
    made.places = section.places
    return made
