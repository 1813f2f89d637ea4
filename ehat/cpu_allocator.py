"""glibc malloc settings for CPU inference and training.

PyTorch's CPU tensors come straight from malloc. With glibc's defaults every temporary above the
mmap threshold (32 MB at most) is a fresh ``mmap``, and freed heap tops are returned to the OS, so
each of a transformer's 25-100 MB temporaries costs page faults on first touch; on the 2-core
reference machine that was about half of HAT's CPU time. Keeping freed memory in the process
removes those faults. Call :func:`tune_malloc` once, early; it is a no-op off glibc.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

_M_TRIM_THRESHOLD = -1
_M_TOP_PAD = -2
_M_MMAP_MAX = -4


def tune_malloc(top_pad_mb: int = 256) -> bool:
    """Serve large blocks from the heap and keep freed memory for reuse; True if applied.

    The process's resident size then stays near its peak instead of shrinking between steps;
    the peak itself does not grow.
    """
    if not sys.platform.startswith("linux"):
        return False
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    ok = mallopt(_M_MMAP_MAX, 0)  # no per-allocation mmap: big temporaries reuse heap pages
    ok &= mallopt(_M_TRIM_THRESHOLD, 2**31 - 1)  # never give the heap top back between ops
    ok &= mallopt(_M_TOP_PAD, top_pad_mb << 20)  # grow the heap in large steps
    return bool(ok)
