"""Keep freed memory in the process for the next training step (glibc only).

glibc's malloc serves blocks above its mmap threshold (128 KiB, raised adaptively up to 32 MiB) with
fresh ``mmap`` calls and unmaps them when they are freed. A training step frees its activations and
gradients and allocates the same sizes again in the next step, and evaluation batches of 1 000
images exceed even the raised threshold, so the kernel maps and zeroes the same memory again and
again: measured here, a sixth of the CPU time of training the small CNN went to the kernel (``sys``
time). Raising the mmap and trim thresholds lets the heap keep those blocks and hand them out again.
The arithmetic is unchanged (the same weights bit for bit, with one and with two threads), so the
setting is not part of any cache key. Elsewhere (macOS, musl) this does nothing, and glibc's own
``MALLOC_*_`` or ``GLIBC_TUNABLES`` environment variables, where a user set them, win.
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
