"""FashionMNIST trials as cached units of work, run here, in a pool of processes or on Ray Tune.

The computation is ``analyses/fashion_mnist/trials.py``; this module adds the infrastructure: the
cache key, the torch thread count, where a trial runs, and counting every trial in the run's cache
statistics whichever executor ran it.

Numbers depend on the torch thread count (a reduction split over more threads rounds differently),
so every executor runs a trial with ``TrialEnv.threads`` threads and the cache key names that count:
a trial trained on Ray is a cache hit for the local executor, with the same numbers, and the other
way round. Each trial is its own atomic cache entry, so an interrupted grid resumes.
"""
from __future__ import annotations

import ctypes
import functools
import logging
import os
import shutil
import signal
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, replace
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import torch

from analyses.fashion_mnist import data as fdata
from analyses.fashion_mnist import trials as ftrials
from analyses.fashion_mnist.grid import TrialSpec
from miniplaces import resources
from miniplaces.cache import Cache, code_version, digest
from miniplaces.errors import UserError
from miniplaces.memory import reuse_freed_memory
from miniplaces.progress import PoolForecast, Ticker, silent

log = logging.getLogger("miniplaces")
NAMESPACE = "fashion_mnist_trial"
EXECUTORS = ("local", "ray")
REPO_ROOT = resources.ROOT
Outcome = tuple[dict, bool]  # (result, was_cached)
Track = Callable[[int, str, int], Ticker]   # (total, unit, settle) -> a progress counter (progress.Ticker)


@dataclass(frozen=True)
class TrialEnv:
    """What every worker needs besides the spec (plain values, so it pickles to a worker).

    ``threads``: torch threads per trial (part of the cache key); ``workers``: trials at once on the
    local executor (Ray runs as many as its CPUs hold ``threads`` each)."""

    data_folder: str
    data_sha256: str
    cache_dir: str | None
    use_cache: bool
    val_size: int
    train_subset: int
    device: str
    threads: int
    workers: int = 1


def cores() -> int:
    """The cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS
        return os.cpu_count() or 1


POOL_MIN_TMACS = 2.0   # work per worker that pays for starting it
                       # (importing torch, reading the data: ~7 s here)


def layout(device: str, tmacs: Sequence[float], available: int | None = None) -> tuple[int, int]:
    """(workers, threads per trial) for trials costing ``tmacs`` (10^12 multiply-accumulates each)
    on ``device``.

    On a CPU, nets this small use one core better than two (measured: benchmarks/bench_trial_layout.py),
    so several trials run side by side, one process per core with one thread each. A single trial
    (the final model), or trials too small to pay for starting the processes (the quick preset, the
    tests), run here with every core. The choice depends only on the trials, never on what is cached,
    and the thread count is in the cache key, so layouts never mix numbers."""
    if torch.device(device).type != "cpu":
        return 1, 1
    available = available or cores()
    workers = min(available, len(tmacs))
    if workers < 2 or sum(tmacs) / workers < POOL_MIN_TMACS:
        return 1, available
    return workers, 1


@functools.lru_cache(maxsize=2)
def load_data(folder: str) -> fdata.FashionData:
    """Read the IDX files once per process (a worker reuses them across its trials)."""
    return fdata.load(Path(folder))


@functools.lru_cache(maxsize=1)
def trial_code() -> str:
    """The trainer code's version, once per process: the code that runs is the code imported at start."""
    return code_version(*ftrials.CODE)


def cache_parts(spec: TrialSpec, env: TrialEnv) -> dict[str, Any]:
    """Everything a trial's numbers depend on (docs/fashion_mnist.md, "Cache")."""
    return {"config": spec.config.to_dict(), "seed": spec.seed, "data": env.data_sha256,
            "split": {**ftrials.split_args(spec.stage, env.val_size, env.train_subset),
                      "val_seed": fdata.VAL_SPLIT_SEED},
            "device": torch.device(env.device).type, "threads": env.threads, "torch": torch.__version__,
            "code": trial_code(),
            # a final trial keeps its model and test score: a finalist trained alike has neither
            "final": spec.stage in ftrials.FINAL_STAGES}


def run_trial(spec: TrialSpec, env: TrialEnv, on_epoch: Callable[[dict], None] | None = None,
              cache: Cache | None = None) -> Outcome:
    """(result, was_cached) through ``cache`` (the run's) or one on ``env.cache_dir``."""
    torch.set_num_threads(env.threads)
    reuse_freed_memory()  # here too for pool and Ray workers, which are fresh processes
    cache = cache or Cache(env.cache_dir, enabled=env.use_cache)

    def compute() -> dict:
        data = load_data(env.data_folder)
        if data.sha256 != env.data_sha256:
            raise RuntimeError(f"{env.data_folder} changed during the run (SHA-256 differs)")
        result = ftrials.compute(spec, data, env.val_size, env.train_subset, torch.device(env.device),
                                 on_epoch)
        return {**result, "threads": torch.get_num_threads()}

    return cache.get_or_compute(NAMESPACE, cache_parts(spec, env), compute)


def count(cache: Cache | None, spec: TrialSpec, env: TrialEnv, cached: bool) -> None:
    """Add a trial run elsewhere (a worker process, Ray) to the run's hit/computed counts."""
    if cache is not None:
        label = f"{NAMESPACE}/{digest(cache_parts(spec, env))[:10]}"
        (cache.stats.hits if cached else cache.stats.misses).append(label)


def _worker_init(parent: int) -> None:
    """A pool worker leaves Ctrl-C to the parent, which stops it, and dies with it (Linux)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: no orphan trains on after a kill
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:   # the parent died while this worker started, before prctl could see it
        os._exit(1)


def _run_in_worker(spec: TrialSpec, env: TrialEnv) -> Outcome:
    return run_trial(spec, env)


def run_pool(specs: Sequence[TrialSpec], env: TrialEnv, track: Track = silent,
             cache: Cache | None = None) -> list[Outcome]:
    """Run trials ``env.workers`` at a time in fresh processes, counting finished trials. Ctrl-C stops
    them all at once: every finished trial is already in the cache."""
    pool = ProcessPoolExecutor(env.workers, mp_context=get_context("spawn"), initializer=_worker_init,
                               initargs=(os.getpid(),))
    try:
        futures = {pool.submit(_run_in_worker, spec, env): job for job, spec in enumerate(specs)}
        forecast = PoolForecast(len(futures), env.workers)
        with track(len(futures), "trials", env.workers) as ticker:   # settle: while only cache hits finished
            for future in as_completed(futures):
                _, cached = future.result()  # a failed trial stops the run now
                ticker.update(left=forecast.finished(futures[future], timed=not cached))
        outcomes = [future.result() for future in futures]
    except BaseException:
        _kill_workers(pool)
        raise
    pool.shutdown()
    for spec, (_, cached) in zip(specs, outcomes):
        count(cache, spec, env, cached)
    return outcomes


def _kill_workers(pool: ProcessPoolExecutor) -> None:
    """Stop the pool's workers now. ``shutdown`` alone lets each running trial finish first (the
    interpreter's exit waits for them), and it forgets the processes, so they are killed before it."""
    workers = list((getattr(pool, "_processes", None) or {}).values())  # no public way before 3.14
    for process in workers:
        process.kill()
    for process in workers:
        process.join(5)
    pool.shutdown(wait=False, cancel_futures=True)


def run_local(specs: Sequence[TrialSpec], env: TrialEnv, track: Track = silent,
              cache: Cache | None = None) -> list[Outcome]:
    """Run trials here, one after another (``env.workers`` == 1) or in a pool of processes. Here the
    progress counts epochs: the final model is one trial of many minutes."""
    if env.workers > 1 and len(specs) > 1:
        return run_pool(specs, env, track, cache)
    outcomes = []
    with track(sum(spec.config.epochs for spec in specs), "epochs", 1) as ticker:
        for spec in specs:
            def report(row: dict, name: str = spec.name) -> None:
                log.debug("%s epoch %d: %s", name, row["epoch"], row)
                ticker.update()
            before = ticker.done
            outcomes.append(run_trial(spec, env, report, cache))
            ticker.update(spec.config.epochs - (ticker.done - before))  # a diverged or cached trial's rest
    return outcomes


def _tune_trial(config: dict, specs: Sequence[TrialSpec], env: TrialEnv) -> dict:
    """The Ray Tune trainable: one trial, its result written to the shared cache."""
    result, cached = run_trial(specs[config["index"]], env)
    return {"val_acc": result["val_acc"] if result["val_acc"] is not None else -1.0, "cached": cached,
            "status": result["status"]}


def import_ray():
    """Ray and Ray Tune, or a UserError (exit 2) with the install hint: Ray is an optional extra."""
    try:
        import ray
        from ray import tune
    except ImportError:
        raise UserError("--executor ray needs Ray: pip install '.[ray]' "
                        "(or pip install 'ray[tune]')") from None
    return ray, tune


TUNE_PREFIX = "fm-tune-"   # + the driver's pid: a folder whose driver is gone is removed by the next run


def remove_stale_tune_folders(root: Path | str | None = None) -> list[Path]:
    """Remove the Ray Tune folders of runs that were killed (SIGKILL skips every cleanup): a folder
    named after a pid that no longer runs. Returns the folders removed."""
    removed = []
    for folder in Path(root or tempfile.gettempdir()).glob(f"{TUNE_PREFIX}*-*"):
        pid = folder.name[len(TUNE_PREFIX):].split("-")[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:   # another user's process
        return True
    return True


def _counting(tune, ticker: Ticker):
    """A Tune callback that counts finished trials (Tune calls it here, in the driver process)."""
    class Counting(tune.Callback):
        def on_trial_complete(self, iteration, trials, trial, **info) -> None:
            ticker.update()
    return Counting()


def run_ray(specs: Sequence[TrialSpec], env: TrialEnv, address: str | None = None,
            cache: Cache | None = None, track: Track = silent) -> list[Outcome]:
    """Run trials as Ray Tune trials with ``env.threads`` CPUs (and torch threads) each.

    Workers write results to the cache; the driver then reads them from there, so the content is
    what the local executor would produce. Without a cache (--no-cache) a temporary one carries them.
    Ctrl-C is left to Python (Tune's own handler would stop the trials, report a resume folder that is
    deleted here, and return half a result): it raises KeyboardInterrupt, and every exit path removes
    this run's folders and stops the Ray it started.
    """
    ray, tune = import_ray()
    remove_stale_tune_folders()
    scratch = storage = None
    started = not ray.is_initialized()
    saved_sigint = os.environ.get("TUNE_DISABLE_SIGINT_HANDLER")
    try:
        if not env.use_cache or not env.cache_dir:
            scratch = tempfile.mkdtemp(prefix=f"{TUNE_PREFIX}{os.getpid()}-cache-")
            env = replace(env, cache_dir=scratch, use_cache=True)
        storage = tempfile.mkdtemp(prefix=f"{TUNE_PREFIX}{os.getpid()}-")
        if started:
            ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False,
                     runtime_env={"env_vars": {"PYTHONPATH": str(REPO_ROOT)}})
        cpus = ray.cluster_resources().get("CPU", 0)
        if cpus < env.threads:
            raise UserError(f"--executor ray: the cluster has {cpus:g} CPUs, a trial needs {env.threads} "
                            "(the local executor's thread count, which the numbers depend on)")
        os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"
        trainable = tune.with_resources(tune.with_parameters(_tune_trial, specs=list(specs), env=env),
                                        {"cpu": env.threads})
        with track(len(specs), "trials", max(1, int(cpus // env.threads))) as ticker:
            tuner = tune.Tuner(trainable, param_space={"index": tune.grid_search(list(range(len(specs))))},
                               run_config=tune.RunConfig(storage_path=storage, name=NAMESPACE, verbose=0,
                                                         callbacks=[_counting(tune, ticker)]))
            results = tuner.fit()
        trained = {}
        for result in results:
            if result.error or "cached" not in (result.metrics or {}):
                raise RuntimeError(f"Ray trial {result.config['index']} failed: "
                                   f"{result.error or 'it ended without a result'}")
            trained[result.config["index"]] = not result.metrics["cached"]
        outcomes = []
        for i, spec in enumerate(specs):
            value, _ = run_trial(spec, env)  # a cache hit: the worker saved it
            outcomes.append((value, not trained[i]))
            count(cache, spec, env, not trained[i])
        return outcomes
    finally:
        if saved_sigint is None:
            os.environ.pop("TUNE_DISABLE_SIGINT_HANDLER", None)
        else:
            os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = saved_sigint
        if started and ray.is_initialized():
            ray.shutdown()
        for folder in (storage, scratch):
            if folder:
                shutil.rmtree(folder, ignore_errors=True)


def run_specs(specs: Sequence[TrialSpec], env: TrialEnv, executor: str = "local", address: str | None = None,
              track: Track = silent, cache: Cache | None = None) -> list[Outcome]:
    """[(result, was_cached)] in the order of ``specs``; every trial is counted in ``cache``'s stats.

    Cached trials are read here; only the others go to a worker process or to Ray, so a warm rerun
    starts neither."""
    if executor not in EXECUTORS:
        raise ValueError(f"executor {executor!r}: use one of {', '.join(EXECUTORS)}")
    store = Cache(env.cache_dir, enabled=env.use_cache)
    outcomes: dict[int, Outcome] = {}
    for i, spec in enumerate(specs):
        value = store.load(NAMESPACE, digest(cache_parts(spec, env)))
        if value is not None:
            outcomes[i] = (value, True)
            count(cache, spec, env, True)
    todo = [i for i in range(len(specs)) if i not in outcomes]
    if todo:
        missing = [specs[i] for i in todo]
        ran = (run_ray(missing, env, address, cache, track) if executor == "ray"
               else run_local(missing, env, track, cache))
        outcomes.update(zip(todo, ran))
    return [outcomes[i] for i in range(len(specs))]
