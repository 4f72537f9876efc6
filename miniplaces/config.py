"""The run configuration: one plain dataclass built from the command line.

A preset names how much compute each section may spend; each section declares its knobs per preset
(``miniplaces.report.sections``) and reads them with ``Section.params(config)``.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ARCHS = ("resnet50", "resnet18")
PRESETS = ("quick", "standard", "full")   # quick: CI smoke run; standard: the full answer
# on a laptop CPU; full: larger grids and repeated seeds


def default_cache_dir() -> Path:
    """$MINIPLACES_CACHE, else $XDG_CACHE_HOME/miniplaces-report, else ~/.cache/miniplaces-report."""
    if env := os.environ.get("MINIPLACES_CACHE"):
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "miniplaces-report"


@dataclass
class RunConfig:
    out: Path = Path("reports")
    preset: str = "standard"
    sections: tuple[str, ...] = ()       # the sections to run, in report order (the CLI fills them)
    weights: Path | None = None
    categories: Path | None = None
    arch: str = "resnet50"
    images: tuple[Path, ...] = ()
    replace_images: bool = False
    focus_image: str | None = None      # the scene shown in the main body (default: the first)
    image_size: int = 256
    data_dir: Path | None = None
    device: str = "auto"
    seed: int = 0
    strict: bool = False
    pdf: bool = True
    notebook: bool = True                # write report.ipynb with its cells run
    offline: bool = False
    cache_dir: Path = field(default_factory=default_cache_dir)
    use_cache: bool = True
    filter_layers: tuple[str, ...] = ()
    sweep_limit: int | None = None
    grid: Path | None = None
    executor: str = "local"
    ray_address: str | None = None
    submission: str | None = None
    allow_demo_submission: bool = False
    verbosity: int = 0
    gates: tuple[str, ...] = ()         # --gate specs, e.g. "min-accuracy=0.9" (miniplaces/ci/gates.py)
    compare: Path | None = None         # --compare: an earlier results.json or its folder

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        return {k: (str(v) if isinstance(v, Path) else [str(x) for x in v] if isinstance(v, tuple) else v)
                for k, v in out.items()}
