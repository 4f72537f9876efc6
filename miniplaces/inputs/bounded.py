"""The one reader of the user's small input files (grid TOML, concepts JSON, categories list,
--compare results.json).

Bounded in memory and time: only a regular file is read (a FIFO would block forever, /dev/zero never
ends), at most ``limit`` bytes (a larger file is refused, not truncated), and text must be UTF-8.
Every refusal is an ``InputError`` (exit 2) whose one-line message names the file.
"""
from __future__ import annotations

import os
import stat
from pathlib import Path

from miniplaces.errors import UserError

GRID_BYTES = 1 << 20          # the full grid is 2.5 KB
CONCEPTS_BYTES = 2 << 20      # a hand-drawn concepts file is a few KB; 2 MiB holds ~300 000 points
CATEGORIES_BYTES = 1 << 20    # categories_places365.txt is 6.8 KB
RESULTS_BYTES = 16 << 20      # a --compare results.json: the quick preset's is 0.23 MB


class InputError(UserError):
    """An input file that cannot be read as asked; the message names the file and the reason."""


def read_bytes(path: Path | str, limit: int, what: str) -> bytes:
    """The bytes of the regular file ``path``, at most ``limit`` of them; InputError otherwise."""
    where = f"{what} {path}"
    try:  # O_NONBLOCK: opening a FIFO without a writer returns at once instead of waiting for one
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise InputError(f"{where}: cannot open ({exc.strerror or type(exc).__name__})") from None
    with os.fdopen(fd, "rb", buffering=0) as handle:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise InputError(f"{where}: not a regular file (a folder, device or pipe cannot be read as one)")
        if info.st_size > limit:
            raise InputError(f"{where}: {info.st_size} bytes, more than the {limit} this input may have")
        chunks, size = [], 0
        try:
            while size <= limit and (chunk := handle.read(min(limit + 1 - size, 1 << 16))):
                chunks.append(chunk)
                size += len(chunk)
        except OSError as exc:
            raise InputError(f"{where}: cannot read ({exc.strerror or type(exc).__name__})") from None
    if size > limit:   # it grew while being read
        raise InputError(f"{where}: more than the {limit} bytes this input may have")
    return b"".join(chunks)


def read_text(path: Path | str, limit: int, what: str) -> str:
    """``read_bytes`` decoded as UTF-8 (a byte-order mark is dropped); InputError names the first bad byte."""
    data = read_bytes(path, limit, what)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"{what} {path}: not UTF-8 text (byte 0x{data[exc.start]:02x} at offset "
                         f"{exc.start})") from None
