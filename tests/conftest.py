import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("MPLBACKEND", "Agg")


import json
import subprocess

import pytest

ARTIFACTS = ROOT / "test-artifacts"


def run_cli(*args: str, cache: Path, out: Path, torch_home: Path) -> subprocess.CompletedProcess:
    """Run generate_report.py as a user would, with a private cache and no download attempts."""
    env = {**os.environ, "TORCH_HOME": str(torch_home)}
    return subprocess.run([sys.executable, str(ROOT / "generate_report.py"), "--offline", "--cache-dir", str(cache),
                           "--out", str(out), *args], capture_output=True, text=True, env=env, timeout=900)


def run_here(*args: str, tmp_path: Path, monkeypatch, capsys) -> subprocess.CompletedProcess:
    """generate_report's main in this process, for runs that stop early (no interpreter or torch start),
    from ``tmp_path`` as the working directory (restored afterwards)."""
    import generate_report

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with monkeypatch.context() as inside:
        inside.chdir(tmp_path)
        try:
            code = generate_report.main(["--cache-dir", str(tmp_path / "cache"), *args])
        except SystemExit as exc:  # argparse
            code = exc.code
    return subprocess.CompletedProcess(list(args), code, "", capsys.readouterr().err)


@pytest.fixture(scope="session")
def quick_report(tmp_path_factory):
    """One full quick-preset run (all sections, HTML + PDF), shared by the end-to-end, PDF and browser tests."""
    base = tmp_path_factory.mktemp("quick")
    out = base / "out"
    result = run_cli("--preset", "quick", cache=base / "cache", out=out, torch_home=base / "torch")
    assert result.returncode == 0, result.stderr[-3000:]
    return {"out": out, "cache": base / "cache", "torch_home": base / "torch", "stderr": result.stderr,
            "results": json.loads((out / "results.json").read_text())}
