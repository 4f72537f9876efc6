"""Progress reporting: a tqdm bar on a terminal, plain log lines otherwise (CI, pipes).

A log line says how much is done, the seconds so far and, until the end, the time left: at the rate so
far, or for a pool of jobs from when each started (PoolForecast)
("FashionMNIST final model: 5/15 epochs (301.2s, about 10 min left)"). Lines come at most every
``LOG_EVERY_S`` seconds and at the end, so a stage of seconds logs one line and one of minutes one a
step.
"""
from __future__ import annotations

import heapq
import logging
import math
import statistics
import sys
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")
log = logging.getLogger("miniplaces")
LOG_EVERY_S = 30.0
clock = time.perf_counter


def time_left(seconds: float) -> str:
    """'about 40 s left', 'about 12 min left': a projection, rounded up, never more precise than that."""
    if seconds < 90:
        return f"about {max(5, 5 * math.ceil(seconds / 5))} s left"
    return f"about {math.ceil(seconds / 60)} min left"


class Ticker:
    """Progress through ``total`` units of work (trials, epochs, submissions), advanced by ``update``.

    ``settle``: how many units must be done before the time left is projected from the rate so far.
    Trials that run side by side finish in a bunch, and the rate of the first of them alone would double
    the projection. A caller that knows when each job started passes its own (``update(left=...)``)."""

    def __init__(self, desc: str, total: int | None, unit: str = "", quiet: bool = False, settle: int = 1):
        self.desc, self.total, self.unit, self.quiet, self.settle = desc, total, unit, quiet, settle
        self.done = 0
        self.start = self.last_log = clock()
        self.bar = None
        if sys.stderr.isatty() and not quiet:
            from tqdm import tqdm

            self.bar = tqdm(desc=desc, total=total, unit=f" {unit}" if unit else "it", leave=False,
                            dynamic_ncols=True)

    def update(self, n: int = 1, left: float | None = None) -> None:
        """Count ``n`` more units done; ``left``: the seconds still needed, where the caller knows better
        than the rate so far (a pool's PoolForecast)."""
        if n <= 0:
            return
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
            return
        now = clock()
        finished = self.total is not None and self.done >= self.total
        if self.quiet or not (finished or now - self.last_log >= LOG_EVERY_S):
            return
        self.last_log, elapsed = now, now - self.start
        of = f"/{self.total}" if self.total else ""
        unit = f" {self.unit}" if self.unit else ""
        if left is None and self.total and self.done >= self.settle:
            left = elapsed * (self.total - self.done) / self.done
        shown = f", {time_left(left)}" if left is not None and self.total and not finished else ""
        log.info("%s: %d%s%s (%.1fs%s)", self.desc, self.done, of, unit, elapsed, shown)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()

    def __enter__(self) -> Ticker:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class PoolForecast:
    """The time left for ``total`` jobs run ``workers`` at a time, in the order submitted (a process
    pool): the k-th job to finish frees a worker for job ``workers + k``, so every job's start is known.
    The jobs still running or queued are projected at the mean duration of the jobs finished so far.
    The rate so far cannot see that the jobs still running near the end have mostly run already."""

    def __init__(self, total: int, workers: int):
        self.total, self.workers = total, max(1, workers)
        self.starts = [clock()] * min(self.workers, total)   # by job, in the order submitted
        self.running = set(range(len(self.starts)))
        self.durations: list[float] = []

    def finished(self, job: int, timed: bool = True) -> float | None:
        """Record that ``job`` (its index in the order submitted) finished and return the seconds left;
        None until a timed job has finished. ``timed=False``: no real work (a cache hit)."""
        now = clock()
        self.running.discard(job)
        if timed:
            self.durations.append(now - self.starts[job])
        if len(self.starts) < self.total:            # the freed worker takes the next job
            self.running.add(len(self.starts))
            self.starts.append(now)
        if not self.durations:
            return None
        mean = statistics.fmean(self.durations)
        free = [max(now, self.starts[j] + mean) for j in self.running]
        free += [now] * (self.workers - len(free))
        heapq.heapify(free)
        for _ in range(self.total - len(self.starts)):  # each queued job goes to the first worker free
            heapq.heappush(free, heapq.heappop(free) + mean)
        return max(free) - now


def silent(total: int | None, unit: str = "", settle: int = 1) -> Ticker:
    """A Ticker that shows nothing: the default where a caller asks for no progress."""
    return Ticker("", total, unit, quiet=True, settle=settle)


def progress(items: Iterable[T], desc: str, total: int | None = None, quiet: bool = False) -> Iterator[T]:
    """Iterate ``items`` while a Ticker counts them."""
    if total is None:
        try:
            total = len(items)  # type: ignore[arg-type]
        except TypeError:
            total = None
    with Ticker(desc, total, quiet=quiet) as ticker:
        for item in items:
            yield item
            ticker.update()
