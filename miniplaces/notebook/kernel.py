"""Run a notebook in a real Jupyter kernel, headless, with the project hidden from it.

The kernel is this interpreter's ipykernel, started through a kernel spec of our own (a global
``python3`` spec may point at another Python), over IPC sockets (no TCP ports for kernels started
side by side to race for), with the inline matplotlib backend forced (``MPLBACKEND=Agg`` in the
environment would drop every figure) and with ``miniplaces``, ``analyses`` and ``generate_report``
made unimportable, so a cell that still needs the project fails here, not on a grader's machine.
Errors, a cell over its timeout and a kernel that dies each end the run with one line.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import tempfile
from pathlib import Path

import nbformat

HIDDEN = ("miniplaces", "analyses", "generate_report")
BLOCKER = f'''"""Installed by miniplaces-report in a kernel that runs its notebook: the project is hidden."""
import sys


class _Hidden:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {HIDDEN!r}:
            raise ImportError(f"{{name}}: the notebook must not import miniplaces-report")
        return None


sys.meta_path.insert(0, _Hidden())
'''


QUIET = logging.getLogger("miniplaces.kernel")   # nbclient's "Executing notebook with kernel" and the like
QUIET.setLevel(logging.WARNING)


class NotebookError(Exception):
    """The notebook did not run to its end: one line saying where and why."""


def kernel_env(folder: Path) -> dict[str, str]:
    """The kernel's environment: the import blocker first on the path, the inline backend."""
    (folder / "sitecustomize.py").write_text(BLOCKER)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MPLBACKEND")}
    env.update(PYTHONPATH=str(folder), MPLBACKEND="module://matplotlib_inline.backend_inline",
               PYTHONNOUSERSITE="1")
    return env


def execute(notebook: nbformat.NotebookNode, cwd: Path, cell_timeout_s: int) -> nbformat.NotebookNode:
    """Run every cell in order in a fresh kernel; NotebookError on the first failure."""
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import AsyncKernelManager
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    with tempfile.TemporaryDirectory(prefix="miniplaces-kernel-") as tmp:
        folder = Path(tmp)
        spec = folder / "kernels" / "miniplaces"
        spec.mkdir(parents=True)
        (spec / "kernel.json").write_text(json.dumps({
            "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "miniplaces", "language": "python"}))
        specs = KernelSpecManager(kernel_dirs=[str(folder / "kernels")])
        manager = AsyncKernelManager(kernel_name="miniplaces", transport="ipc", ip=str(folder / "ipc"),
                                     kernel_spec_manager=specs, connection_file=str(folder / "connection.json"))
        current = [0]      # the cell being run: the one that failed when the kernel dies

        def started(cell, cell_index: int) -> None:
            current[0] = cell_index

        client = NotebookClient(notebook, km=manager, timeout=cell_timeout_s, allow_errors=False,
                                startup_timeout=120, resources={"metadata": {"path": str(cwd)}},
                                on_cell_start=started, log=QUIET)
        try:
            client.execute(env=kernel_env(folder), cwd=str(cwd))
        except CellExecutionError as exc:
            raise NotebookError(f"cell {describe(notebook, current[0])} failed: {exc.ename}: "
                                f"{str(exc.evalue).splitlines()[0] if exc.evalue else ''}") from None
        except CellTimeoutError:
            raise NotebookError(f"cell {describe(notebook, current[0])} ran longer than "
                                f"{cell_timeout_s} s") from None
        except DeadKernelError as exc:
            raise NotebookError(f"the kernel died while running cell {describe(notebook, current[0])} "
                                f"({str(exc).splitlines()[0] if str(exc) else 'no reason given'})") from None
        except RuntimeError as exc:   # the kernel did not start
            raise NotebookError(f"the Jupyter kernel did not start ({str(exc).splitlines()[0]})") from None
        finally:   # nbclient stops only kernels it started itself; Ctrl-C lands here too
            stop(client, manager)
    return notebook


def stop(client, manager) -> None:
    """Close the client's channels and shut the kernel down, whatever state it is in."""
    from jupyter_core.utils import run_sync

    with contextlib.suppress(Exception):
        if client.kc is not None:
            client.kc.stop_channels()
    with contextlib.suppress(Exception):
        if manager.has_kernel:
            run_sync(manager.shutdown_kernel)(now=True)


def describe(notebook: nbformat.NotebookNode, index: int) -> str:
    """'N (tags)' of the notebook's cell N (1-based, counting markdown cells, as Jupyter shows them)."""
    tags = ", ".join(notebook.cells[index].get("metadata", {}).get("tags", []))
    return f"{index + 1}" + (f" ({tags})" if tags else "")
