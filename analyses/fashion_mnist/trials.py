"""One cached trial: the unit of work that both executors (local, Ray) run.

A trial's cache key names its config, seed, the data's SHA-256, the split, the device type and the
source of the training code, so an interrupted grid resumes at the first unfinished trial and a
rerun with nothing changed trains nothing. Each trial is written as its own atomic cache entry.
"""
from __future__ import annotations

import functools
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from miniplaces.cache import Cache, code_version

from . import data as fdata
from . import model as fmodel
from . import train as ftrain
from .grid import TrialSpec

NAMESPACE = "fashion_mnist_trial"


@dataclass(frozen=True)
class TrialEnv:
    """What every worker needs besides the spec (plain values, so it pickles to a Ray worker)."""

    data_folder: str
    data_sha256: str
    cache_dir: str | None
    use_cache: bool
    val_size: int
    train_subset: int
    device: str
    threads: int


@functools.lru_cache(maxsize=2)
def load_data(folder: str) -> fdata.FashionData:
    """Read the IDX files once per process (a Ray worker reuses them across its trials)."""
    return fdata.load(Path(folder))


def split_args(spec: TrialSpec, env: TrialEnv) -> dict[str, Any]:
    """data.split's arguments for a spec's stage: only grid trials use the subset; only the final trains on all."""
    return {"val_size": env.val_size, "train_subset": env.train_subset if spec.stage == "grid" else 0,
            "full_train": spec.stage == "final"}


def cache_parts(spec: TrialSpec, env: TrialEnv) -> dict[str, Any]:
    return {"config": spec.config.to_dict(), "seed": spec.seed, "data": env.data_sha256,
            "split": {**split_args(spec, env), "val_seed": fdata.VAL_SPLIT_SEED},
            "device": torch.device(env.device).type,
            "code": code_version(fdata, fmodel, ftrain, sys.modules[__name__])}


def run_trial(spec: TrialSpec, env: TrialEnv, on_epoch: Callable[[dict], None] | None = None,
              cache: Cache | None = None) -> tuple[dict, bool]:
    """(result, was_cached), through ``cache`` (the run's, for its hit/miss counts) or one on ``env.cache_dir``.

    A final trial also carries ``test_acc`` and ``state_dict``: the test set is scored here, once, on
    the finished model and on nothing else."""
    torch.set_num_threads(env.threads)
    cache = cache or Cache(env.cache_dir, enabled=env.use_cache)

    def compute() -> dict:
        data = load_data(env.data_folder)
        if data.sha256 != env.data_sha256:
            raise RuntimeError(f"{env.data_folder} changed during the run (SHA-256 differs)")
        split = fdata.split(data, **split_args(spec, env))
        device = torch.device(env.device)
        result = ftrain.fit(spec.config, split, spec.seed, device, on_epoch, keep_model=spec.stage == "final")
        net = result.pop("net", None)
        if net is not None and result["status"] == "ok":
            result["test_acc"] = ftrain.evaluate(net, data.test_x, data.test_y).accuracy
            result["model_config"] = net.config.to_dict()
            result["state_dict"] = {k: v.detach().cpu() for k, v in net.state_dict().items()}
        return result

    return cache.get_or_compute(NAMESPACE, cache_parts(spec, env), compute)


def rebuild_model(result: dict) -> fmodel.SmallCNN:
    """The finished network of a final trial result (from the cache or fresh)."""
    net = fmodel.build_model(fmodel.ModelConfig.from_dict(result["model_config"]))
    net.load_state_dict(result["state_dict"])
    return net.eval()


def default_threads() -> int:
    """Torch threads = the cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS
        return os.cpu_count() or 1
