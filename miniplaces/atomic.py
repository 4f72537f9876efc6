"""Atomic file writes: write to a temporary file beside the target, then rename over it.

An interrupted run therefore never leaves a half-written cache entry, report or model file.
"""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any


@contextlib.contextmanager
def atomic_open(path: Path | str, mode: str = "wb") -> Iterator[IO]:
    """Yield a file handle whose content replaces ``path`` only when the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def remove_leftovers(folders: Iterable[Path], older_than_s: float = 0.0) -> int:
    """Delete the temporary files that killed writes left in ``folders`` (SIGKILL skips the cleanup
    above); ``older_than_s`` spares a write another run may have in progress. Returns how many."""
    removed, now = 0, time.time()
    for folder in folders:
        for tmp in Path(folder).glob(".*.tmp"):
            with contextlib.suppress(OSError):
                if now - tmp.stat().st_mtime >= older_than_s:
                    tmp.unlink()
                    removed += 1
    return removed


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_bytes(path: Path | str, data: bytes) -> None:
    with atomic_open(path, "wb") as handle:
        handle.write(data)


def write_text(path: Path | str, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_json(path: Path | str, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False, allow_nan=False) + "\n")


def write_with(path: Path | str, writer: Callable[[IO], None]) -> None:
    """Atomically write a file with a library writer that takes a binary handle (np.savez, torch.save,
    savefig)."""
    with atomic_open(path, "wb") as handle:
        writer(handle)
