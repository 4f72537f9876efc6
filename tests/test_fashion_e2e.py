"""Problem 4 end to end on a data subset: the section, the saved model, the cache (resume after
SIGINT and SIGKILL, nothing retrained on a warm rerun) and the Ray executor."""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from analyses.fashion_mnist import data as fdata
from miniplaces.report.trial_runner import NAMESPACE  # the Ray experiment's folder name

ROOT = Path(__file__).resolve().parent.parent
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not fdata.SYSTEM_DIR.is_dir(), reason="needs dataset-fashion-mnist")]
TINY_GRID = """
description = "test grid"
[data]
val_size = 500
train_subset = {subset}
[base]
epochs = {epochs}
batch_size = 64
channels = [4, 8]
[final]              # the finalists and the final model see ~60 000 images: large batches keep that short
epochs = 1
batch_size = 1024
[axes]
augmentation = [{{augment = "none"}}]
optimizer = [{{optimizer = "sgd", lr = 0.05}}, {{optimizer = "sgd", lr = 1e30, schedule = "constant"}}]
regularisation = [{{dropout = 0.2}}]
"""


def _grid(tmp_path: Path, subset: int = 600, epochs: int = 1) -> Path:
    path = tmp_path / f"grid-{subset}-{epochs}.toml"
    path.write_text(TINY_GRID.format(subset=subset, epochs=epochs))
    return path


def _command(grid: Path, out: Path, cache: Path, *extra: str) -> list[str]:
    return [sys.executable, str(ROOT / "generate_report.py"), "--only", "fashion_mnist", "--grid", str(grid),
            "--out", str(out), "--cache-dir", str(cache), "--no-pdf", "--no-notebook", *extra]


def _entries(cache: Path) -> dict[str, bytes]:
    folder = cache / "results" / "fashion_mnist_trial"
    return {p.name: p.read_bytes() for p in folder.glob("*.pkl")} if folder.is_dir() else {}


def test_section_end_to_end_and_warm_rerun(tmp_path):
    grid, out, cache = _grid(tmp_path), tmp_path / "out", tmp_path / "cache"
    subprocess.run(_command(grid, out, cache, "-q"), check=True, cwd=ROOT, timeout=240)
    results = json.loads((out / "results.json").read_text())["fashion_mnist"]
    trials = {t["name"]: t for t in results["trials"]}
    diverged = trials["optimizer: optimizer=sgd, lr=1e+30, schedule=constant"]
    assert diverged["status"] == "diverged" and diverged["val_acc"] is None
    assert all(t["status"] == "ok" and 0 < t["val_acc"] <= 1 for n, t in trials.items() if t is not diverged)
    assert {"epoch", "train_s", "val_acc"} <= set(trials["baseline"]["history"][0])
    final = results["final"]
    assert (final["model_file"] == "fashion_mnist_model.pt"
            and final["train_images"] == 60000)  # all, not the subset
    html = (out / "report.html").read_text()
    row = html[html.index(f'<tr data-name="{diverged["name"]}">'):]
    assert "<b>diverged</b>" in row[:row.index("</tr>")]   # the diverged trial's row in 4d's table says so
    assert 'id="fm-4d"' in html and "validation split" in html
    printed = subprocess.run([sys.executable, "-m", "analyses.fashion_mnist.evaluate_model",
                              str(out / final["model_file"])], cwd=ROOT, capture_output=True, text=True,
                             check=True)
    assert f"{100 * final['test_acc']:.2f} %" in printed.stdout
    before = _entries(cache)
    subprocess.run(_command(grid, out, cache, "-q"), check=True, cwd=ROOT, timeout=120)
    assert _entries(cache) == before
    again = json.loads((out / "results.json").read_text())["fashion_mnist"]
    assert all(t["cached"] for t in again["trials"]) and again["final"]["cached"]
    assert again["final"]["test_acc"] == final["test_acc"]


def _interrupt(command: list[str], cache: Path, sig: int, after: dict[str, bytes]) -> dict[str, bytes]:
    """Start ``command``, send ``sig`` once a trial beyond ``after`` is in the cache, and return the
    cache's entries once the run has stopped, after checking how it stopped."""
    # SIGINT back to its default in the child: a runner started in the background ('cmd &') ignores it,
    # and a Python started with SIGINT ignored never raises KeyboardInterrupt
    proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 120
    while len(_entries(cache)) <= len(after) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be interrupted"
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == (130 if sig == signal.SIGINT else -signal.SIGKILL), err
    assert not list((cache / "results" / "fashion_mnist_trial").glob(".*.tmp"))  # no half-written entries
    finished = _entries(cache)
    assert {k: finished[k] for k in after} == after   # what earlier runs finished is untouched
    return finished


def test_interrupted_grid_resumes_without_retraining(tmp_path):
    """Ctrl-C, then a kill of the resumed run, then a run to the end: each keeps what was finished."""
    grid, out, cache = _grid(tmp_path, subset=1500), tmp_path / "out", tmp_path / "cache"
    command = _command(grid, out, cache, "-q")
    finished = _interrupt(command, cache, signal.SIGINT, {})
    finished = _interrupt(command, cache, signal.SIGKILL, finished)
    subprocess.run(command, check=True, cwd=ROOT, timeout=240)
    after = _entries(cache)
    assert {k: after[k] for k in finished} == finished  # finished trials untouched, not retrained
    results = json.loads((out / "results.json").read_text())["fashion_mnist"]
    assert sum(t["cached"] for t in results["trials"]) + results["final"]["cached"] == len(finished)


# Two trials of seconds and one of minutes: their mean cost puts them in a pool of two workers, one core
# and one thread each (trial_runner.layout), so Ctrl-C comes while a worker trains the long one.
LONG_TRIAL = ', {channels = [64, 128], epochs = 100}'
POOL_GRID = """
description = "interrupt test"
combine = false
finalists = 0
[data]
val_size = 1000
train_subset = 1000
[base]
epochs = 1
batch_size = 128
schedule = "constant"
channels = [4, 8]
augment = "none"
[final]
epochs = 1
batch_size = 1024
[axes]
width = [{{channels = [6, 8]}}{long}]
"""


def _running_in_session(sid: int) -> list[int]:
    """Processes of session ``sid`` that still run (a zombie has ended: only nobody has reaped it). A
    session, not a process group: Ray starts each trial's worker in a group of its own."""
    running = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            state, _, _, session = stat.read_text().rsplit(")", 1)[1].split()[:4]
        except (OSError, ValueError):
            continue
        if int(session) == sid and state != "Z":
            running.append(int(stat.parent.name))
    return running


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity") or len(os.sched_getaffinity(0)) < 2,
                    reason="needs Linux and two cores")
@pytest.mark.parametrize("executor", ["local", pytest.param("ray", marks=pytest.mark.ray)])
def test_ctrl_c_stops_the_trial_workers_within_seconds(tmp_path, executor):
    """Ctrl-C to the process group while two workers train: exit 130 within 10 s, no process of the run
    (its session) left, and a rerun reads the finished trials from the cache (a rerun without the long
    trial, on one core: the same layout, one thread per trial, so the same cache keys)."""
    if executor == "ray":
        pytest.importorskip("ray")
    two_cores, one_core = sorted(os.sched_getaffinity(0))[:2], sorted(os.sched_getaffinity(0))[:1]
    grid, out, cache, log = tmp_path / "grid.toml", tmp_path / "out", tmp_path / "cache", tmp_path / "log"
    grid.write_text(POOL_GRID.format(long=LONG_TRIAL))

    def on_cores(cores):
        def start() -> None:
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            os.sched_setaffinity(0, cores)
        return start
    with open(log, "w") as err:
        proc = subprocess.Popen(_command(grid, out, cache, "--executor", executor), cwd=ROOT, stdout=err,
                                stderr=err, start_new_session=True, preexec_fn=on_cores(two_cores))
    try:
        deadline = time.monotonic() + 240
        while not _entries(cache) and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)
        assert proc.poll() is None and _entries(cache), log.read_text()
        finished = _entries(cache)
        os.killpg(proc.pid, signal.SIGINT)
        sent = time.monotonic()
        try:
            code = proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            code = None
        assert code == 130, log.read_text()
        while _running_in_session(proc.pid) and time.monotonic() < sent + 10:
            time.sleep(0.1)
        assert not _running_in_session(proc.pid), "a process of the interrupted run still runs"
    finally:
        for pid in _running_in_session(proc.pid):
            os.kill(pid, signal.SIGKILL)
    assert {k: v for k, v in _entries(cache).items() if k in finished} == finished
    grid.write_text(POOL_GRID.format(long=""))
    subprocess.run(_command(grid, out, cache, "-q"), check=True, cwd=ROOT, timeout=240,
                   preexec_fn=on_cores(one_core))
    hits = json.loads((out / "results.json").read_text())["run"]["cache"]["hits"]
    assert {f"fashion_mnist_trial/{name[:10]}" for name in finished} <= set(hits)


TIMING_KEYS = ("train_s", "val_s")


def _numbers(result: dict) -> dict:
    """A trial's result without its timings (seconds differ between any two runs)."""
    plain = {k: v for k, v in result.items() if k not in TIMING_KEYS and k != "val_correct"}
    plain["history"] = [{k: v for k, v in row.items() if k not in TIMING_KEYS} for row in result["history"]]
    plain["val_correct"] = None if result["val_correct"] is None else result["val_correct"].tolist()
    return plain


@pytest.mark.ray
def test_ray_and_local_executors_train_identical_numbers(tmp_path):
    """Each executor trains every trial itself, into its own cache; the numbers must be equal."""
    pytest.importorskip("ray")
    from dataclasses import replace

    from analyses.fashion_mnist import grid as fgrid
    from miniplaces.progress import silent
    from miniplaces.report.sections.fashion_mnist import load_grid
    from miniplaces.report.trial_runner import TrialEnv, layout, run_specs

    grid = load_grid(_grid(tmp_path, subset=400))
    specs = fgrid.one_at_a_time(grid, 0)[:2]
    folder = fdata.locate(None, None, offline=True)
    workers, threads = layout("cpu", [0.01] * len(specs))   # what a run of these trials uses: every core
    env = TrialEnv(str(folder), fdata.load(folder).sha256, str(tmp_path / "ray-cache"), True, grid.val_size,
                   grid.train_subset, "cpu", threads=threads, workers=workers)
    tickers = []

    def track(total, unit, settle):
        tickers.append(silent(total, unit, settle))
        return tickers[-1]
    on_ray = run_specs(specs, env, "ray", track=track)
    assert [(t.total, t.unit, t.done) for t in tickers] == [(2, "trials", 2)]   # Tune counts finished trials
    local = run_specs(specs, replace(env, cache_dir=str(tmp_path / "local-cache")), "local")
    assert [cached for _, cached in on_ray + local] == [False] * 4   # both trained, neither read the other
    assert all(r["status"] == "ok" and r["history"] and r["threads"] == threads for r, _ in on_ray + local)
    assert [_numbers(r) for r, _ in local] == [_numbers(r) for r, _ in on_ray]


@pytest.mark.ray
def test_ctrl_c_under_ray_exits_130_and_removes_the_run_folders(tmp_path):
    """SIGINT during Ray Tune trials: exit 130 "interrupted" (not Tune's half result), this run's
    fm-tune-* folders removed, and a killed run's stale folder removed at the start."""
    pytest.importorskip("ray")
    grid, out, cache = _grid(tmp_path, subset=3000), tmp_path / "out", tmp_path / "cache"
    tmp = Path(tempfile.mkdtemp(prefix="fm-e2e-"))   # short: Ray's socket paths must stay under 108 bytes
    stale = tmp / "fm-tune-999999999-abc"             # above any pid_max: its run is gone
    stale.mkdir()
    env = {**os.environ, "TMPDIR": str(tmp), "RAY_TMPDIR": "/tmp"}
    try:
        proc = subprocess.Popen(_command(grid, out, cache, "-q", "--executor", "ray"), cwd=ROOT, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        deadline = time.monotonic() + 180
        while not list(tmp.glob(f"fm-tune-{proc.pid}-*/{NAMESPACE}")) and time.monotonic() < deadline \
                and proc.poll() is None:
            time.sleep(0.1)
        assert proc.poll() is None, proc.communicate()[1]
        time.sleep(1)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 130 and "interrupted" in err and "KeyError" not in err, err
        assert not list(tmp.glob("fm-tune-*"))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def test_process_pool_matches_in_process_and_a_warm_rerun_starts_no_worker(tmp_path, monkeypatch):
    from dataclasses import replace

    from analyses.fashion_mnist import grid as fgrid
    from miniplaces.progress import Ticker
    from miniplaces.report import trial_runner
    from miniplaces.report.sections.fashion_mnist import load_grid
    from miniplaces.report.trial_runner import TrialEnv, run_specs

    grid = load_grid(_grid(tmp_path, subset=400))
    specs = fgrid.one_at_a_time(grid, 0)[:2]
    folder = fdata.locate(None, None, offline=True)
    env = TrialEnv(str(folder), fdata.load(folder).sha256, str(tmp_path / "pool-cache"), True, grid.val_size,
                   grid.train_subset, "cpu", threads=1, workers=2)
    tickers = []

    class Recording(Ticker):
        def update(self, n=1, left=None):
            self.steps.append(n)
            super().update(n, left)

    def track(total, unit, settle):
        tickers.append(Recording("", total, unit, quiet=True, settle=settle))
        tickers[-1].steps = []
        return tickers[-1]
    pooled = run_specs(specs, env, track=track)
    here = run_specs(specs, replace(env, cache_dir=str(tmp_path / "here-cache"), workers=1), track=track)
    assert [cached for _, cached in pooled + here] == [False] * 4
    assert [_numbers(r) for r, _ in pooled] == [_numbers(r) for r, _ in here]
    # progress: a pool counts finished trials; in process, where the final model runs, each epoch as it ends
    assert [(t.total, t.unit, t.settle, t.done) for t in tickers] == [(2, "trials", 2, 2),
                                                                       (2, "epochs", 1, 2)]
    assert [t.steps for t in tickers] == [[1, 1], [1, 0, 1, 0]]   # 0: no epoch left to add after a trial

    def no_worker(*args, **kwargs):
        raise AssertionError("a cached trial was sent to a worker")
    monkeypatch.setattr(trial_runner, "run_pool", no_worker)
    monkeypatch.setattr(trial_runner, "run_ray", no_worker)
    for executor in ("local", "ray"):
        again = run_specs(specs, env, executor, track=track)
        assert [cached for _, cached in again] == [True, True]
        assert [_numbers(r) for r, _ in again] == [_numbers(r) for r, _ in pooled]
    assert len(tickers) == 2   # a warm rerun trains nothing and shows no progress


def test_trials_run_side_by_side_only_when_the_work_pays_for_the_workers():
    from miniplaces.report.trial_runner import POOL_MIN_TMACS, layout

    big, small = 2 * POOL_MIN_TMACS, POOL_MIN_TMACS / 10
    assert layout("cpu", [big] * 5, available=2) == (2, 1)       # grid trials: one core each
    assert layout("cpu", [big], available=2) == (1, 2)           # the final model: every core
    assert layout("cpu", [small] * 5, available=2) == (1, 2)     # tiny trials: starting workers costs more
    assert layout("cpu", [big] * 5, available=1) == (1, 1)
    assert layout("cuda", [big] * 5, available=8) == (1, 1)
