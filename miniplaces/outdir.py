"""The output directory: checked writable before long work starts, and locked against a second run."""
from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shutil
from pathlib import Path
from typing import Iterator

from .errors import UserError

MIN_FREE_BYTES = 50 * 1024 * 1024


@contextlib.contextmanager
def lock_out_dir(out: Path) -> Iterator[None]:
    """Hold an exclusive lock on OUT/.lock; a second run on the same out dir refuses at once."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        handle = open(out / ".lock", "a+")
    except OSError as exc:
        raise UserError(f"--out {out}: cannot create or write there ({exc.strerror})") from None
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EAGAIN, errno.EACCES):
                handle.seek(0)
                owner = handle.read().strip() or "unknown"
                raise UserError(f"--out {out}: another run (pid {owner}) is writing there; "
                                "wait for it to finish or choose another --out") from None
            raise
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        check_writable(out)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def check_writable(out: Path) -> None:
    probe = out / ".write-probe"
    try:
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as exc:
        raise UserError(f"--out {out}: not writable ({exc.strerror})") from None
    free = shutil.disk_usage(out).free
    if free < MIN_FREE_BYTES:
        raise UserError(f"--out {out}: only {free // (1024 * 1024)} MiB free; the report needs at least "
                        f"{MIN_FREE_BYTES // (1024 * 1024)} MiB")
