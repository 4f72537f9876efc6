"""Progress reporting: a tqdm bar on a terminal, plain log lines otherwise (CI, pipes)."""
from __future__ import annotations

import logging
import sys
import time
from typing import Iterable, Iterator, TypeVar

T = TypeVar("T")
log = logging.getLogger("miniplaces")


def progress(items: Iterable[T], desc: str, total: int | None = None, quiet: bool = False) -> Iterator[T]:
    """Iterate ``items`` while showing progress; on a non-terminal log about every 25 % and at the end."""
    if total is None:
        try:
            total = len(items)  # type: ignore[arg-type]
        except TypeError:
            total = None
    if sys.stderr.isatty() and not quiet:
        from tqdm import tqdm

        yield from tqdm(items, desc=desc, total=total, leave=False, dynamic_ncols=True)
        return
    start = time.perf_counter()
    step = max(1, (total or 4) // 4)
    done = 0
    for item in items:
        yield item
        done += 1
        if not quiet and total and (done % step == 0 or done == total):
            log.info("%s: %d/%d (%.1fs)", desc, done, total, time.perf_counter() - start)
