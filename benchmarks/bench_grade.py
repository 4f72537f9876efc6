#!/usr/bin/env python3
"""Time and peak memory of ``grade``: one Gradescope submission, or a class of N zips on W workers.

Each submission is realistic in cost: the problem set's notebook (run, ~10 code cells), a model file
of the default architecture (32-64-128 channels, the size the report trains; its weights are random,
which costs the same to score) and a report.html. The grader runs as a subprocess; its whole process
tree (parent, fork server, children) is sampled every 20 ms and the peak of the summed PSS
(proportional set size: pages shared by forked children are counted once) is reported.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/bench_grade.py --gradescope
    PYTHONPATH=$PWD .venv/bin/python benchmarks/bench_grade.py --class 100 --workers 2
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import notebooks  # noqa: E402

from analyses.fashion_mnist.model import ModelConfig, build_model, model_file_bytes  # noqa: E402


def submission_files(seed: int) -> dict[str, bytes]:
    import torch

    torch.manual_seed(seed)
    code = [notebooks.TRAIN_A, notebooks.TRAIN_B] if seed % 2 else [notebooks.TRAIN_B, notebooks.TRAIN_A]
    return {"fashion_mnist_model.pt": model_file_bytes(build_model(ModelConfig())),
            f"s{seed}.ipynb": notebooks.to_bytes(notebooks.with_code(*code)),
            "report.html": b"<!DOCTYPE html><html><body><p>report</p></body></html>"}


def _tree(pid: int) -> list[int]:
    pids, stack = [], [pid]
    while stack:
        p = stack.pop()
        pids.append(p)
        for task in Path(f"/proc/{p}/task").glob("*/children"):
            try:
                stack += [int(c) for c in task.read_text().split()]
            except OSError:
                pass
    return pids


def _pss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def measure(cmd: list[str]) -> tuple[float, float, str]:
    """(wall seconds, peak summed PSS in MiB, stderr's tail) of the command and its descendants."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    peak = [0]

    def sample():
        while proc.poll() is None:
            peak[0] = max(peak[0], sum(_pss_kb(p) for p in _tree(proc.pid)))
            time.sleep(0.02)

    sampler = threading.Thread(target=sample)
    sampler.start()
    _, err = proc.communicate()
    sampler.join()
    if proc.returncode:
        sys.exit(f"the grader failed ({proc.returncode}): {err[-2000:]}")
    return time.perf_counter() - start, peak[0] / 1024, err[-300:]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--gradescope", action="store_true", help="one submission in Gradescope's layout")
    p.add_argument("--class", dest="n", type=int, default=0, help="a folder of N submissions")
    p.add_argument("--workers", type=int, default=2)
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        if a.gradescope:
            (work / "submission").mkdir()
            for name, content in submission_files(0).items():
                (work / "submission" / name).write_bytes(content)
            due = datetime(2022, 3, 29, 23, 59, tzinfo=UTC)
            metadata = {"created_at": (due + timedelta(days=1)).isoformat(),
                        "assignment": {"due_date": due.isoformat()}}
            (work / "submission_metadata.json").write_text(json.dumps(metadata))
            seconds, peak, _ = measure([sys.executable, "-m", "generate_report", "grade", "--gradescope",
                                        "--autograder-root", str(work)])
            result = json.loads((work / "results" / "results.json").read_text())
            print(f"gradescope, one submission: {seconds:.1f} s wall, peak {peak:.0f} MiB (PSS, whole tree); "
                  f"results.json execution_time {result['execution_time']} s")
            return
        folder = work / "submissions"
        folder.mkdir()
        for i in range(a.n):
            with zipfile.ZipFile(folder / f"s{i:03d}.zip", "w", zipfile.ZIP_DEFLATED) as archive:
                for name, content in submission_files(i).items():
                    archive.writestr(name, content)
        seconds, peak, _ = measure([sys.executable, "-m", "generate_report", "grade", str(folder),
                                    "--out", str(work / "grades"), "--workers", str(a.workers)])
        print(f"{a.n} submissions, {a.workers} workers: {seconds:.1f} s wall, {seconds / a.n:.2f} s per "
              f"submission, peak {peak:.0f} MiB (PSS, whole tree)")


if __name__ == "__main__":
    main()
