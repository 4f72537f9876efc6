"""The run configuration: one plain dataclass built from the command line, plus the presets.

A preset says how much compute each section may spend; analyses read their knobs from
``RunConfig.params(section)`` so the numbers live in one visible table.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from miniplaces.report.sections import NAMES

ARCHS = ("resnet50", "resnet18")

# Per-preset knobs of every section. quick: CI smoke run; standard: the full answer on a laptop CPU;
# full: larger grids and repeated seeds.
PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "quick": {
        "filters": {"layers": ["conv1", "layer1.0.conv2"], "max_filters": 64},
        "units": {"sweep_limit": 100, "top_units": 5},
        "cam": {"top_k": 5, "faithfulness": {"steps": 4, "random_seeds": 3, "max_scenes": 1}},
        "fashion_mnist": {"grid": "quick"},
    },
    "standard": {
        "filters": {"layers": ["conv1", "layer1.0.conv2", "layer4.0.conv2"], "max_filters": 64},
        "units": {"sweep_limit": 100, "top_units": 5},
        "cam": {"top_k": 5, "faithfulness": {"steps": 5, "random_seeds": 3}},
        "fashion_mnist": {"grid": "standard"},
    },
    "full": {
        "filters": {"layers": ["conv1", "layer1.0.conv2", "layer2.0.conv2", "layer3.0.conv2",
                               "layer4.0.conv2"],
                    "max_filters": 64},
        "units": {"sweep_limit": 300, "top_units": 5},
        "cam": {"top_k": 5, "faithfulness": {"steps": 20, "random_seeds": 5, "score_cam": True}},
        "fashion_mnist": {"grid": "full"},
    },
}


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
    sections: tuple[str, ...] = NAMES
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

    def params(self, section: str) -> dict[str, Any]:
        """The preset's knobs for one section, with command-line overrides applied."""
        params = dict(PRESETS[self.preset][section])
        if section == "filters" and self.filter_layers:
            params["layers"] = list(self.filter_layers)
        if section == "units" and self.sweep_limit is not None:
            params["sweep_limit"] = self.sweep_limit
        return params

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        return {k: (str(v) if isinstance(v, Path) else [str(x) for x in v] if isinstance(v, tuple) else v)
                for k, v in out.items()}
