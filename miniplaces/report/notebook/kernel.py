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
QUIET.setLevel(logging.CRITICAL)


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

    with tempfile.TemporaryDirectory(prefix="miniplaces-kernel-") as tmp:
        folder = Path(tmp)
        spec = folder / "kernels" / "miniplaces"
        spec.mkdir(parents=True)
        (spec / "kernel.json").write_text(json.dumps({
            "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "miniplaces", "language": "python"}))
        specs = KernelSpecManager(kernel_dirs=[str(folder / "kernels")])
        manager = AsyncKernelManager(kernel_name="miniplaces", transport="ipc", ip=str(folder / "ipc"),
                                     kernel_spec_manager=specs,
                                     connection_file=str(folder / "connection.json"))
        current = [0]      # the cell being run: the one that failed when the kernel dies

        def started(cell, cell_index: int) -> None:
            current[0] = cell_index

        client = NotebookClient(notebook, km=manager, timeout=cell_timeout_s, allow_errors=False,
                                startup_timeout=120, resources={"metadata": {"path": str(cwd)}},
                                on_cell_start=started, log=QUIET)
        log = folder / "kernel.log"      # the kernel's own output: not the user's terminal
        try:
            with open(log, "w") as output:
                client.execute(env=kernel_env(folder), cwd=str(cwd), stdout=output, stderr=output)
        except Exception as exc:  # noqa: BLE001 - each kind becomes one line below
            # on Ctrl-C (or SIGTERM) nbclient's own handler shuts the kernel down, which surfaces as a dead
            # kernel: it records that by setting this attribute, and the run must end as interrupted
            if getattr(client, "_async_cleanup_kernel_future", None) is not None:
                raise KeyboardInterrupt from None
            last = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
            raise NotebookError(why(exc, describe(notebook, current[0]), cell_timeout_s,
                                    last[-1][:200] if last else "")) from None
        finally:   # nbclient stops only kernels it started itself
            stop(client, manager)
    return notebook


def why(exc: Exception, cell: str, cell_timeout_s: int, last_words: str) -> str:
    """One line: which cell, and what went wrong (with the kernel's last output line when it died)."""
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    if isinstance(exc, CellExecutionError):
        value = str(exc.evalue).splitlines()[0] if exc.evalue else ""
        return f"cell {cell} failed: {exc.ename}: {value}"
    if isinstance(exc, CellTimeoutError):
        return f"cell {cell} ran longer than {cell_timeout_s} s"
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    said = f"; the kernel's last words: {last_words}" if last_words else ""
    if isinstance(exc, DeadKernelError):
        return f"the kernel died while running cell {cell} ({first}){said}"
    return f"the Jupyter kernel failed before or while running cell {cell} ({first}){said}"


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
