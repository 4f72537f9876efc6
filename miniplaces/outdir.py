"""The output directory: checked writable before long work starts, and locked against a second run."""
from __future__ import annotations

import contextlib
import datetime as dt
import errno
import fcntl
import os
import re
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

from miniplaces.atomic import remove_leftovers
from miniplaces.errors import UserError

MIN_FREE_BYTES = 50 * 1024 * 1024
REPORT_FILES = ("results.json", "report.html", "report.pdf", "report.ipynb")   # one set, written by one run


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
        remove_leftovers([out, out / "figures"])   # the lock says no other run is writing here
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def new_run_id() -> str:
    """'20261126T0102Z-3f9a1c': written into results.json, the HTML and the PDF, so that files of
    two runs are told apart."""
    return dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)


def remove_stale_reports(out: Path) -> None:
    """Remove an earlier run's report files once this run starts its work: a run killed half way then
    leaves no new report.html beside an old results.json."""
    for name in REPORT_FILES:
        with contextlib.suppress(FileNotFoundError):
            (out / name).unlink()


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


def unique_slug(text: str, taken: set[str], fallback: str = "item", length: int = 40) -> str:
    """A file-name stem of [A-Za-z0-9_-] only, at most ``length`` characters, unique among ``taken``
    (which it joins) case-insensitively: two names must not write one file, on macOS/Windows disks too."""
    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-_")[:length] or fallback
    candidate, n = slug, 2
    while candidate.lower() in taken:
        candidate, n = f"{slug}-{n}", n + 1
    taken.add(candidate.lower())
    return candidate
