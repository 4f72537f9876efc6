"""One trial as a pure computation: a spec, the data and the split settings -> a plain result.

``miniplaces/report/trial_runner.py`` caches trials and runs them here, in a process pool or on Ray; this
module only computes. ``CODE`` lists the modules whose code the numbers depend on: the runner keys
its cache on them.
"""
from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import torch

from . import data as fdata
from . import model as fmodel
from . import train as ftrain
from .grid import TrialSpec

# stages whose model is kept and scored once on the test set: "final" trains on all 60k images,
# "final_split" on the training split only and is validated on the hold-out (Problem 4c's run)
FINAL_STAGES = ("final", "final_split")


def split_args(stage: str, val_size: int, train_subset: int) -> dict[str, Any]:
    """data.split's arguments for a stage: only grid trials use the subset; only "final" trains on all."""
    return {"val_size": val_size, "train_subset": train_subset if stage == "grid" else 0,
            "full_train": stage == "final"}


def train_images(stage: str, val_size: int, train_subset: int) -> int:
    """How many images a trial of ``stage`` trains on (what ``data.split`` gives with ``split_args``)."""
    if stage == "final":
        return fdata.COUNTS["train"]
    rest = fdata.COUNTS["train"] - val_size
    return min(train_subset, rest) if stage == "grid" and train_subset else rest


def compute(spec: TrialSpec, data: fdata.FashionData, val_size: int, train_subset: int, device: torch.device,
            on_epoch: Callable[[dict], None] | None = None) -> dict[str, Any]:
    """Train one spec and return ``fit``'s plain result.

    A final trial (FINAL_STAGES) also carries ``test_acc``, ``model_config`` and ``state_dict``: the test
    set is scored here, once, on the finished model and on nothing else."""
    split = fdata.split(data, **split_args(spec.stage, val_size, train_subset))
    result = ftrain.fit(spec.config, split, spec.seed, device, on_epoch,
                        keep_model=spec.stage in FINAL_STAGES)
    net = result.pop("net", None)
    if net is not None and result["status"] == "ok":
        result["test_acc"] = ftrain.evaluate(net, data.test_x, data.test_y).accuracy
        result["model_config"] = net.config.to_dict()
        result["state_dict"] = {k: v.detach().cpu() for k, v in net.state_dict().items()}
    return result


def rebuild_model(result: dict[str, Any]) -> fmodel.SmallCNN:
    """The finished network of a final trial result (from the cache or fresh)."""
    net = fmodel.build_model(fmodel.ModelConfig.from_dict(result["model_config"]))
    net.load_state_dict(result["state_dict"])
    return net.eval()


CODE = (fdata, fmodel, ftrain, sys.modules[__name__])
