"""A toy Problem 5, registered by tests/test_sections.py: everything a new section needs, in one module
(its description, its glue and its sentences) beside one template (_toy.html.j2)."""
from __future__ import annotations

import random
import time
from pathlib import Path

from miniplaces.report.answers import Answer
from miniplaces.report.context import RunContext, SectionResult
from miniplaces.report.sections import Compare, Question, Section

SECTION = Section(
    "toy", 5, "A toy problem", "Toy Problem",
    presets={"quick": {"draws": 10}, "standard": {"draws": 100}, "full": {"draws": 1000}},
    places=False, module=__name__, answers=__name__,
    template=str(Path(__file__).with_name("_toy.html.j2")),
    compare=Compare("toy", "places", moved_by=("seed", "preset"), default_question="5a"),
    questions=(Question("5a", "5a. The mean of uniform draws", "5a. The mean of uniform draws",
                        "mean of uniform draws", "1 pt", "Draw uniform numbers and report their mean."),))


def run(ctx: RunContext) -> SectionResult:
    start = time.perf_counter()
    draws = ctx.params("toy")["draws"]
    rng = random.Random(ctx.config.seed)
    mean = sum(rng.random() for _ in range(draws)) / draws
    return SectionResult({"draws": draws, "mean": mean}, seconds=time.perf_counter() - start)


def answer_5a(results: dict, scene: dict | None) -> Answer:
    toy = results["toy"]
    return Answer("5a", [f"The mean of {toy['draws']} uniform draws is {toy['mean']:.3f}."],
                  f"mean {toy['mean']:.3f} over {toy['draws']} draws")
