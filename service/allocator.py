"""The C allocator of a process that moves large buffers: keep freed memory for the next one.

The embedded server handles documents of hundreds of kilobytes (a GridFS chunk is 255 KiB of
bytes, ~520 KB of JSON text, copied several times per write by mongoeco and SQLite). glibc's
malloc serves such sizes with a fresh ``mmap`` (above ``M_MMAP_THRESHOLD``, 128 KiB at first)
and gives memory back to the kernel when a free leaves enough at the top of a heap
(``M_TRIM_THRESHOLD``). So every large buffer cost a map, a page fault for each 4 KiB page
(which the kernel zeroes) and an unmap: measured with 4 MiB GridFS writes through the server,
40-60% of its CPU was system time, and the write rate swung between 13 and 30 MiB/s from run
to run with how often glibc's adaptive threshold happened to be high.

``keep_large_buffers`` sets both thresholds at start, so buffers up to ``MMAP_THRESHOLD`` come
from the heap and up to ``TRIM_THRESHOLD`` of free memory stays mapped for reuse. (Setting only
the trim threshold is worse: it turns off the adaptive mmap threshold, and every buffer above
128 KiB is mapped anew; 13 MiB/s.) The price is that the process keeps up to
``TRIM_THRESHOLD`` of freed memory instead of returning it. On a C library without ``mallopt``
(not glibc) nothing changes.
"""

from __future__ import annotations

import ctypes
import logging

log = logging.getLogger(__name__)

M_TRIM_THRESHOLD = -1  # glibc's <malloc.h>
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 * 2**20  # glibc's own ceiling for its adaptive threshold (64-bit)
TRIM_THRESHOLD = 128 * 2**20


def keep_large_buffers() -> bool:
    """Set the thresholds (module docstring); True when the C library took them."""
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the C library this process already runs on
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    took = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )
    if not took:
        log.warning("the C library refused mallopt: large buffers are mapped anew each time")
    return took
