"""On-disk result cache keyed by everything that produced a result.

A key is the SHA-256 of a canonical JSON of its parts (weights hash, input hashes, parameters,
code version). Entries are pickles written atomically; a corrupt entry counts as a miss and is
recomputed, so a crash can never poison later runs. The cache directory is the user's own, so
unpickling its entries is as trusted as importing this code.
"""
from __future__ import annotations

import ast
import hashlib
import json
import logging
import pickle
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

from miniplaces import atomic

log = logging.getLogger(__name__)
T = TypeVar("T")


def digest(obj: Any) -> str:
    """SHA-256 of a JSON-able object, with keys sorted so that dict order never changes a key."""
    blob = json.dumps(obj, sort_keys=True, default=str, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()


def file_sha256(path: Path | str, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            h.update(block)
    return h.hexdigest()


def code_version(*sources: ModuleType | Path | str) -> str:
    """Hash of the code of modules or files as Python reads it, so that only edits that can change
    what the code computes invalidate its cache entries.

    A Python file is hashed as its syntax tree without docstrings: comments, docstrings, blank
    lines, line breaks, quotes and other formatting change nothing; any other edit (a number, a
    name, an annotation, a statement) changes the key. A file that is not Python is hashed byte for
    byte. The tree's layout differs between Python versions, which then recompute once.
    """
    h = hashlib.sha256()
    for source in sources:
        path = Path(source.__file__ if isinstance(source, ModuleType) else source)
        h.update(_code_bytes(path))
    return h.hexdigest()[:16]


def _code_bytes(path: Path) -> bytes:
    raw = path.read_bytes()
    if path.suffix != ".py":
        return raw
    try:
        tree = ast.parse(raw, filename=str(path))
    except (SyntaxError, ValueError):
        return raw
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and body
                and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)):
            node.body = body[1:] or [ast.Pass()]
    return ast.dump(tree, include_attributes=False).encode()


@dataclass
class CacheStats:
    hits: list[str] = field(default_factory=list)
    misses: list[str] = field(default_factory=list)


class Cache:
    """``get_or_compute(namespace, parts, compute)`` is the whole interface analyses need."""

    def __init__(self, root: Path | str | None, enabled: bool = True):
        self.root = Path(root) if root else None
        self.enabled = enabled and self.root is not None
        self.stats = CacheStats()

    def remove_leftovers(self, older_than_s: float = 3600.0) -> int:
        """Delete temporary files of cache writes killed in an earlier run (older than an hour: a
        run sharing this cache may be writing a younger one now)."""
        if not self.enabled:
            return 0
        return atomic.remove_leftovers(self.root.glob("results/*"), older_than_s)

    def path(self, namespace: str, key: str) -> Path:
        assert self.root is not None
        return self.root / "results" / namespace / f"{key}.pkl"

    def load(self, namespace: str, key: str) -> Any | None:
        if not self.enabled:
            return None
        path = self.path(namespace, key)
        try:
            with open(path, "rb") as handle:
                return pickle.load(handle)
        except FileNotFoundError:
            return None
        except Exception as exc:  # truncated or from an incompatible version: recompute
            log.warning("cache entry %s unreadable (%s); recomputing", path, exc)
            return None

    def save(self, namespace: str, key: str, value: Any) -> None:
        if not self.enabled:
            return
        try:
            atomic.write_bytes(self.path(namespace, key),
                               pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))
        except OSError as exc:  # a full disk must not lose the computed result of this run
            log.warning("could not write cache entry %s/%s: %s", namespace, key, exc)

    def get_or_compute(self, namespace: str, parts: dict, compute: Callable[[], T]) -> tuple[T, bool]:
        """Return (value, was_cached). ``parts`` must name everything the value depends on."""
        key = digest(parts)
        label = f"{namespace}/{key[:10]}"
        value = self.load(namespace, key)
        if value is not None:
            self.stats.hits.append(label)
            log.debug("cache hit %s", label)
            return value, True
        start = time.perf_counter()
        value = compute()
        log.debug("computed %s in %.2fs", label, time.perf_counter() - start)
        self.save(namespace, key, value)
        self.stats.misses.append(label)
        return value, False
