"""Keep freed memory in the process for the next batch (glibc only).

glibc's malloc serves blocks above its mmap threshold (128 KiB, raised adaptively up to 32 MiB) with
mappings of their own and unmaps them when they are freed. A validation batch of 1 000 images needs
100 MB of activations, and the Places sections allocate blocks as large, so the kernel mapped and
zeroed the same memory again for every batch: measured here, 8 % of the CPU time of a grid trial and
13 % of the Places sections' went to the kernel (``sys`` time). Raising the mmap and trim thresholds
lets the heap keep those blocks and hand them out again. The arithmetic is unchanged (the same weights
bit for bit, tests/test_memory.py), so the setting is not part of any cache key. Elsewhere (macOS,
musl) this does nothing, and glibc's own ``MALLOC_*_`` or ``GLIBC_TUNABLES`` environment variables,
where a user set them, win.
"""
from __future__ import annotations

import ctypes
import functools
import os

M_TRIM_THRESHOLD = -1    # <malloc.h>: free memory at the top of the heap kept before returning it
M_MMAP_THRESHOLD = -3    # <malloc.h>: requests at least this large get their own mmap
RETAINED_BYTES = 1 << 30
USER_SETTINGS = ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_", "GLIBC_TUNABLES")


@functools.lru_cache(maxsize=1)
def reuse_freed_memory() -> bool:
    """Raise glibc's thresholds once per process; True when they were set."""
    if any(name in os.environ for name in USER_SETTINGS):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    return bool(mallopt(M_MMAP_THRESHOLD, RETAINED_BYTES)) and bool(mallopt(M_TRIM_THRESHOLD, RETAINED_BYTES))
