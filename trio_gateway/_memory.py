"""Give large freed buffers back to the operating system (glibc's allocator).

glibc serves allocations above its *mmap threshold* with their own mappings, returned to the
system on free. The threshold is dynamic: each freed mapping raises it (up to 32 MiB), after which
blocks of that size come from the heap and their pages stay with the process once freed. A
gateway that buffered a few request bodies of some megabytes (hooks that read the body, gRPC
messages) then kept hundreds of megabytes it no longer used (docs/reliability.md). A fixed
threshold keeps large buffers in their own mappings; small allocations (everything on the request
path) are unaffected.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

#: glibc's ``M_MMAP_THRESHOLD`` (malloc.h); setting it also turns the dynamic threshold off.
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 1 << 20


def return_large_blocks_to_os() -> bool:
    """Fix glibc's mmap threshold at 1 MiB; False where the C library is not glibc."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False  # musl and others: no mallopt, nothing to tune
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD))
