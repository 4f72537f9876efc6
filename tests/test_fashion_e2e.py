"""Problem 4 end to end on a data subset: the section, the saved model, the cache (resume after
SIGINT and SIGKILL, nothing retrained on a warm rerun) and the Ray executor."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from analyses.fashion_mnist import data as fdata

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
[final]
epochs = 1
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
            "--out", str(out), "--cache-dir", str(cache), "--no-pdf", *extra]


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
    assert final["model_file"] == "fashion_mnist_model.pt" and final["train_images"] == 60000  # all, not the subset
    html = (out / "report.html").read_text()
    assert "DIVERGED" in html and 'id="fm-4d"' in html and "validation split" in html
    printed = subprocess.run([sys.executable, "-m", "analyses.fashion_mnist.evaluate_model",
                              str(out / final["model_file"])], cwd=ROOT, capture_output=True, text=True, check=True)
    assert f"{100 * final['test_acc']:.2f} %" in printed.stdout
    before = _entries(cache)
    subprocess.run(_command(grid, out, cache, "-q"), check=True, cwd=ROOT, timeout=120)
    assert _entries(cache) == before
    again = json.loads((out / "results.json").read_text())["fashion_mnist"]
    assert all(t["cached"] for t in again["trials"]) and again["final"]["cached"]
    assert again["final"]["test_acc"] == final["test_acc"]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL])
def test_interrupted_grid_resumes_without_retraining(tmp_path, sig):
    grid, out, cache = _grid(tmp_path, subset=1500), tmp_path / "out", tmp_path / "cache"
    # SIGINT back to its default in the child: a runner started in the background ('cmd &') ignores it,
    # and a Python started with SIGINT ignored never raises KeyboardInterrupt
    proc = subprocess.Popen(_command(grid, out, cache, "-q"), cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 120
    while not _entries(cache) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    finished = _entries(cache)
    assert finished, "no trial finished before the signal"
    assert proc.returncode == (130 if sig == signal.SIGINT else -signal.SIGKILL), err
    assert not list((cache / "results" / "fashion_mnist_trial").glob(".*.tmp"))  # no half-written entries
    subprocess.run(_command(grid, out, cache, "-q"), check=True, cwd=ROOT, timeout=240)
    after = _entries(cache)
    assert {k: after[k] for k in finished} == finished  # finished trials untouched, not retrained
    results = json.loads((out / "results.json").read_text())["fashion_mnist"]
    assert sum(t["cached"] for t in results["trials"]) + results["final"]["cached"] == len(finished)


@pytest.mark.ray
def test_ray_executor_matches_local_through_the_cache(tmp_path):
    pytest.importorskip("ray")
    from analyses.fashion_mnist import grid as fgrid
    from analyses.fashion_mnist.executors import run_specs
    from analyses.fashion_mnist.trials import TrialEnv

    grid = fgrid.load_grid(_grid(tmp_path, subset=400))
    specs = fgrid.one_at_a_time(grid, 0)[:2]
    folder = fdata.locate(None, None, offline=True)
    env = TrialEnv(str(folder), fdata.load(folder).sha256, str(tmp_path / "cache"), True, grid.val_size,
                   grid.train_subset, "cpu", 2)
    on_ray = run_specs(specs, env, "ray")
    assert [cached for _, cached in on_ray] == [False, False]
    local = run_specs(specs, env, "local")
    assert [cached for _, cached in local] == [True, True]
    assert [r for r, _ in local] == [r for r, _ in on_ray]
    assert all(r["status"] == "ok" and r["history"] for r, _ in on_ray)
