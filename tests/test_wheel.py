"""`pip install .` (a wheel, not an editable install) gives a command that runs from any directory:
the templates, grid files and scene concept files travel in the wheel as package data."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ("pyproject.toml", "README.md", "generate_report.py", "analyses", "miniplaces", "templates",
           "grids", "data")
pytestmark = pytest.mark.slow


def _run(*args, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=300, **kwargs)


def test_wheel_installs_and_its_command_runs_from_another_directory(tmp_path):
    src = tmp_path / "src"   # a copy, so that building leaves nothing in the checkout
    src.mkdir()
    for name in SHIPPED:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(ROOT / name, src / name)
    built = _run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                 "-w", tmp_path / "dist", src)
    assert built.returncode == 0, built.stderr[-2000:]
    wheel = next((tmp_path / "dist").glob("miniplaces_report-*.whl"))

    env = tmp_path / "venv"
    venv.create(env, with_pip=False)
    python = env / "bin" / "python"
    purelib = Path(_run(python, "-c",
                        "import sysconfig; print(sysconfig.get_paths()['purelib'])").stdout.strip())
    # torch and the other dependencies come from the test environment (a .pth line adds its site-packages
    # after the venv's own; the editable install of this checkout there is not activated that way)
    (purelib / "test-env.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    installed = _run(sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-deps", wheel)
    assert installed.returncode == 0, installed.stderr[-2000:]

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    where = _run(python, "-c", "import miniplaces.resources as r, miniplaces as m; print(m.__file__); "
                 "print(*(r.folder(n) for n in ('templates', 'grids', 'scenes')), sep='\\n')", cwd=elsewhere)
    assert where.returncode == 0, where.stderr
    module, templates, grids, scenes = [Path(line) for line in where.stdout.split()]
    for path in (module, templates, grids, scenes):
        assert path.is_relative_to(purelib), path          # the wheel's copy, not the checkout's
    assert (templates / "report.css").is_file() and (grids / "standard.toml").is_file()
    assert (scenes / "rocket.concepts.json").is_file() and (scenes / "evening_glow.jpg").is_file()
    assert (scenes / "SOURCES.md").is_file() and (scenes / "LGPL-3.0.txt").is_file()   # its licence

    result = _run(env / "bin" / "miniplaces-report", "--preset", "quick", "--only", "filters",
                  "--arch", "resnet18",
                  "--offline", "--cache-dir", tmp_path / "cache", "--out", "out", "-q", cwd=elsewhere,
                  env={**os.environ, "TORCH_HOME": str(tmp_path / "torch")})
    assert result.returncode == 0, result.stderr[-2000:]
    out = elsewhere / "out"
    assert (out / "report.html").stat().st_size > 1000 and (out / "report.pdf").stat().st_size > 1000
    assert "normalize_tensor" in (out / "report.html").read_text()
