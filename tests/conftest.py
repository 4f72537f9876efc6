import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("MPLBACKEND", "Agg")
# Tests share the cores with the background quick report and with each other (pytest-xdist): an OpenMP
# thread that waits for work sleeps instead of spinning, or three processes' torch threads on two
# cores slow each other down more than tenfold. It changes no number, only how idle threads wait.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


import json
import subprocess
import time

import pytest

ARTIFACTS = ROOT / "test-artifacts"


def cli_command(*args: str, cache: Path, out: Path, notebook: bool = False) -> list[str]:
    """generate_report.py as a user runs it, with a private cache and no download attempts; without
    the notebook (a kernel run of ~30 s) unless the test is about it (the quick report has it)."""
    return [sys.executable, str(ROOT / "generate_report.py"), "--offline", "--cache-dir", str(cache),
            "--out", str(out), *([] if notebook else ["--no-notebook"]), *args]


def run_cli(*args: str, cache: Path, out: Path, torch_home: Path,
            notebook: bool = False) -> subprocess.CompletedProcess:
    """Run generate_report.py as a user would (``cli_command``) and wait for it."""
    env = {**os.environ, "TORCH_HOME": str(torch_home)}
    return subprocess.run(cli_command(*args, cache=cache, out=out, notebook=notebook), capture_output=True,
                          text=True, env=env, timeout=900)


def run_here(*args: str, tmp_path: Path, monkeypatch, capsys, cache: Path | None = None,
             torch_home: Path | None = None, cwd: Path | None = None,
             notebook: bool = False) -> subprocess.CompletedProcess:
    """generate_report's main in this process, from ``cwd`` (default ``tmp_path``; restored afterwards):
    for runs that stop early, and for runs whose numbers come from a cache, where starting an
    interpreter and importing torch and torchvision would cost more than the run (about 6 s here)."""
    import generate_report

    monkeypatch.setenv("TORCH_HOME", str(torch_home or tmp_path / "torch"))
    with monkeypatch.context() as inside:
        inside.chdir(cwd or tmp_path)
        try:
            code = generate_report.main(["--cache-dir", str(cache or tmp_path / "cache"),
                                         *([] if notebook else ["--no-notebook"]), *args])
        except SystemExit as exc:  # argparse
            code = exc.code
    return subprocess.CompletedProcess(list(args), code, "", capsys.readouterr().err)


QUICK_TIMEOUT_S = 900


def _shared_folder(factory) -> Path:
    """The session's temporary folder that every pytest-xdist worker sees (each has its own below it)."""
    base = factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def start_quick_report(shared: Path) -> Path:
    """Start the one quick-preset run of the session in the background, unless a process already did.

    It starts as soon as a process collects a test that reads it, and the tests that read it run
    last (``pytest_collection_modifyitems``), so the other tests run while it builds, with or without
    pytest-xdist. The run writes ``rc`` (its exit status) when it ends."""
    from filelock import FileLock

    base = shared / "quick"
    with FileLock(str(shared / "quick.lock")):
        if not base.exists():
            base.mkdir()
            env = {**os.environ, "TORCH_HOME": str(base / "torch")}
            command = cli_command("--preset", "quick", cache=base / "cache", out=base / "out", notebook=True)
            script = '"$@" 2> "$0/stderr.txt"; echo $? > "$0/rc.tmp" && mv "$0/rc.tmp" "$0/rc"'
            subprocess.Popen(["sh", "-c", script, str(base), *command], env=env, stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, start_new_session=True)
    return base


@pytest.fixture(scope="session")
def quick_report(tmp_path_factory):
    """One full quick-preset run (all sections, HTML + PDF) as a user runs it, shared by the end-to-end,
    PDF, browser and writeup tests: built once per session, whatever the number of workers."""
    base = start_quick_report(_shared_folder(tmp_path_factory))
    deadline = time.monotonic() + QUICK_TIMEOUT_S
    while not (base / "rc").exists():
        assert time.monotonic() < deadline, f"the quick report did not finish in {QUICK_TIMEOUT_S} s"
        time.sleep(0.2)
    stderr = (base / "stderr.txt").read_text()
    assert (base / "rc").read_text().strip() == "0", stderr[-3000:]
    out = base / "out"
    return {"out": out, "cache": base / "cache", "torch_home": base / "torch", "stderr": stderr,
            "results": json.loads((out / "results.json").read_text())}


@pytest.hookimpl(trylast=True)   # after -k and -m have deselected what will not run
def pytest_collection_modifyitems(session, config, items):
    """The tests that read the quick report run last (``start_quick_report_early`` starts its run)."""
    readers = [item for item in items if "quick_report" in getattr(item, "fixturenames", ())]
    if readers:
        items[:] = [item for item in items if item not in readers] + readers


@pytest.fixture(scope="session", autouse=True)
def start_quick_report_early(request, tmp_path_factory):
    """Start the quick report's run in the background before the first test of the session (of each
    pytest-xdist worker; the first to get there starts it), when a test that reads it will run."""
    if any("quick_report" in getattr(item, "fixturenames", ()) for item in request.session.items):
        start_quick_report(_shared_folder(tmp_path_factory))
