"""What produced this report: versions, git commit, config, per-step timings, cache use."""
from __future__ import annotations

import datetime as dt
import platform
import subprocess
import sys
import time
from importlib import metadata

from miniplaces import resources
from miniplaces.config import RunConfig
from miniplaces.report.context import RunContext


def package_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def git_commit() -> str | None:
    root = resources.ROOT
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"], capture_output=True,
                             text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True, timeout=5).stdout.strip()
    return out.stdout.strip() + ("-dirty" if dirty else "")


def run_info(config: RunConfig, ctx: RunContext, model: dict | None, steps: list[dict], start: float,
             version: str) -> dict:
    import torch

    from miniplaces.inputs.device import pick_device
    return {
        "version": version,
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "preset": config.preset,
        "seed": config.seed,
        "sections": list(config.sections),
        "device": model["device"] if model else str(pick_device(config.device)),
        "git_commit": git_commit(),
        "argv": " ".join(sys.argv),
        "cache_dir": str(config.cache_dir) if config.use_cache else "disabled (--no-cache)",
        "versions": {"python": platform.python_version(), "torch": torch.__version__,
                     "torchvision": package_version("torchvision"), "numpy": package_version("numpy"),
                     "jinja2": package_version("jinja2"), "weasyprint": package_version("weasyprint"),
                     "platform": platform.platform()},
        "config": config.to_json(),
        "steps": steps,
        "cache": {"hits": ctx.cache.stats.hits, "misses": ctx.cache.stats.misses},
        "analysis_seconds": time.perf_counter() - start,   # what the report shows: rendering excluded
    }
