"""Unpack a zip that someone else made (a student's submission) without trusting anything in it.

The whole zip is refused, before a byte is written, when any entry's path could leave the
destination (``..``, an absolute or drive path, a backslash path), when it is a symlink or another
special file, when it has too many entries, or when the sizes its directory declares add up to more
than the limit (a zip bomb). While unpacking, the bytes actually produced are counted as well, so a
zip whose headers understate its sizes is stopped at the limit too.
"""
from __future__ import annotations

import stat
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

CHUNK = 1 << 16


class UnsafeZip(Exception):
    """The zip was refused or could not be read (the message is one line for the grader)."""


@dataclass(frozen=True)
class Limits:
    max_bytes: int = 500 * 2**20     # total uncompressed size
    max_entries: int = 1000


def _member_path(info: zipfile.ZipInfo) -> PurePosixPath:
    """The entry's relative path, or UnsafeZip when it is not a plain file or folder inside the zip."""
    name = info.filename
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        raise UnsafeZip(f"entry {name!r} is a symbolic link")
    if stat.S_IFMT(mode) not in (0, stat.S_IFREG, stat.S_IFDIR):  # 0: no Unix type recorded
        raise UnsafeZip(f"entry {name!r} is a special file")
    if "\\" in name or "\0" in name or (len(name) > 1 and name[1] == ":"):
        raise UnsafeZip(f"entry {name!r} has a Windows or malformed path")
    path = PurePosixPath(name)
    if path.is_absolute() or name.startswith("/"):
        raise UnsafeZip(f"entry {name!r} has an absolute path")
    if ".." in path.parts:
        raise UnsafeZip(f"entry {name!r} points outside the zip ('..')")
    if not path.parts:
        raise UnsafeZip(f"entry {name!r} has an empty path")
    return path


def extract(zip_path: Path, dest: Path, limits: Limits = Limits()) -> list[str]:
    """Unpack ``zip_path`` into the empty folder ``dest``; return the files' relative paths."""
    try:
        archive = zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise UnsafeZip(f"not a readable zip ({type(exc).__name__}: {str(exc)[:120]})") from None
    with archive:
        infos = archive.infolist()
        if len(infos) > limits.max_entries:
            raise UnsafeZip(f"{len(infos)} entries, more than the limit of {limits.max_entries}")
        declared = sum(info.file_size for info in infos)
        if declared > limits.max_bytes:
            raise UnsafeZip(f"unpacks to {declared / 2**20:.0f} MiB, more than the limit of "
                            f"{limits.max_bytes / 2**20:.0f} MiB (a zip bomb?); nothing was unpacked")
        members = [(info, _member_path(info)) for info in infos]
        root = dest.resolve()
        written, files = 0, []
        for info, rel in members:
            target = root.joinpath(*rel.parts)
            try:
                (target if info.is_dir() else target.parent).mkdir(parents=True, exist_ok=True)
            except OSError:  # "a" is a file and "a/b" follows
                raise UnsafeZip(f"entry {info.filename!r} collides with another entry") from None
            if info.is_dir():
                continue
            if target.exists() or not target.parent.resolve().is_relative_to(root):
                raise UnsafeZip(f"entry {info.filename!r} repeats or collides with another entry")
            try:
                with archive.open(info) as src, open(target, "xb") as out:
                    while chunk := src.read(CHUNK):
                        written += len(chunk)
                        if written > limits.max_bytes:
                            raise UnsafeZip(f"unpacks to more than {limits.max_bytes / 2**20:.0f} MiB "
                                            "although its headers declare less (a zip bomb?)")
                        out.write(chunk)
            except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError,
                    RuntimeError) as exc:  # CRC error, unsupported compression, encryption
                raise UnsafeZip(f"entry {info.filename!r} cannot be unpacked "
                                f"({type(exc).__name__}: {str(exc)[:120]})") from None
            files.append(rel.as_posix())
        return files

