"""The report's sections, in report order: ``REGISTRY`` is the one list of them.

Each section module exposes ``TITLE``, ``TOC`` and ``run(ctx: RunContext) -> SectionResult``, and
optionally ``check(ctx)``, which validates inputs before any section runs. A section module is the
glue between an analysis (pure computation in ``analyses/``) and the report: it fetches inputs from
the RunContext, calls the analysis through the cache, draws figures and returns JSON-able data.
Templates display exactly that data, so every number shown is in results.json.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType


@dataclass(frozen=True)
class Section:
    """A section: its ``--only``/``--skip`` name, the problem it answers, whether it needs the Places365
    network (loaded, and checked by ``--strict``, only when one that does runs), and its module,
    imported only when the section runs (Problem 4 alone never imports torchvision)."""

    name: str
    problem: int
    places: bool = True

    def load(self) -> ModuleType:
        return importlib.import_module(f"{__name__}.{self.name}")


REGISTRY: tuple[Section, ...] = (
    Section("filters", 1),
    Section("units", 2),
    Section("cam", 3),
    Section("fashion_mnist", 4, places=False),
)
NAMES: tuple[str, ...] = tuple(s.name for s in REGISTRY)
BY_NAME: dict[str, Section] = {s.name: s for s in REGISTRY}


def needing_places(names) -> list[str]:
    """The sections among ``names`` that need the Places365 network."""
    return [name for name in names if BY_NAME[name].places]
