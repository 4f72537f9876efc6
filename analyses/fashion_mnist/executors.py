"""Where trials run: here, one after another, or as Ray Tune trials (``--executor ray``).

Both executors call ``trials.run_trial`` with the same cache, so a trial trained by Ray is a
cache hit for a later local run and the other way round; results have the same content. Ray is
an optional extra (``pip install .[ray]``) imported only when asked for.
"""
from __future__ import annotations

import logging
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Callable, Iterable, Sequence

from miniplaces.cache import Cache

from .grid import TrialSpec
from .trials import TrialEnv, run_trial

log = logging.getLogger("miniplaces")
EXECUTORS = ("local", "ray")
REPO_ROOT = Path(__file__).resolve().parents[2]


def run_local(specs: Sequence[TrialSpec], env: TrialEnv,
              iterate: Callable[[Iterable[TrialSpec]], Iterable[TrialSpec]] = iter,
              cache: Cache | None = None) -> list[tuple[dict, bool]]:
    """Run trials in order. Ctrl-C stops at once: every finished trial is already in the cache."""
    results = []
    for spec in iterate(specs):
        def report(row: dict, name: str = spec.name) -> None:
            log.debug("%s epoch %d: %s", name, row["epoch"], row)
        results.append(run_trial(spec, env, report, cache))
    return results


def _tune_trial(config: dict, specs: Sequence[TrialSpec], env: TrialEnv) -> dict:
    """The Ray Tune trainable: one trial, its result written to the shared cache."""
    result, cached = run_trial(specs[config["index"]], env)
    return {"val_acc": result["val_acc"] if result["val_acc"] is not None else -1.0, "cached": cached,
            "status": result["status"]}


def run_ray(specs: Sequence[TrialSpec], env: TrialEnv, address: str | None = None,
            cpus_per_trial: int = 1) -> list[tuple[dict, bool]]:
    """Run trials as Ray Tune trials, each with ``cpus_per_trial`` CPUs (and as many torch threads).

    Workers write results to the cache; the driver then reads them from there, so the content is
    what the local executor would produce. Without a cache (--no-cache) a temporary one carries them.
    """
    try:
        import ray
        from ray import tune
    except ImportError:
        raise RuntimeError("--executor ray needs the ray extra: pip install '.[ray]'") from None
    scratch = None
    if not env.use_cache or not env.cache_dir:
        scratch = tempfile.mkdtemp(prefix="fm-ray-cache-")
        env = replace(env, cache_dir=scratch, use_cache=True)
    env = replace(env, threads=cpus_per_trial)
    started = not ray.is_initialized()
    if started:
        ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False,
                 runtime_env={"env_vars": {"PYTHONPATH": str(REPO_ROOT)}})
    storage = tempfile.mkdtemp(prefix="fm-tune-")
    try:
        trainable = tune.with_resources(tune.with_parameters(_tune_trial, specs=list(specs), env=env),
                                        {"cpu": cpus_per_trial})
        tuner = tune.Tuner(trainable, param_space={"index": tune.grid_search(list(range(len(specs))))},
                           run_config=tune.RunConfig(storage_path=storage, name="fashion_mnist", verbose=0))
        grid = tuner.fit()
        trained = {}
        for result in grid:
            if result.error:
                raise RuntimeError(f"Ray trial failed: {result.error}")
            trained[result.config["index"]] = not result.metrics["cached"]
        out = []
        for i, spec in enumerate(specs):
            value, _ = run_trial(spec, env)  # a cache hit: the worker saved it
            out.append((value, not trained[i]))
        return out
    finally:
        if started:
            ray.shutdown()
        shutil.rmtree(storage, ignore_errors=True)
        if scratch:
            shutil.rmtree(scratch, ignore_errors=True)


def run_specs(specs: Sequence[TrialSpec], env: TrialEnv, executor: str = "local", address: str | None = None,
              iterate: Callable[[Iterable[TrialSpec]], Iterable[TrialSpec]] = iter,
              cache: Cache | None = None) -> list[tuple[dict, bool]]:
    """[(result, was_cached)] in the order of ``specs``; ``cache`` (local only) is the run's Cache."""
    if not specs:
        return []
    if executor == "ray":
        return run_ray(specs, env, address)
    if executor != "local":
        raise ValueError(f"executor {executor!r}: use one of {', '.join(EXECUTORS)}")
    return run_local(specs, env, iterate, cache)
