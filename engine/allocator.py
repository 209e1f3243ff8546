"""glibc ``malloc`` tuning for CPU inference and training (the "allocator tax").

A segmentation forward pass on a batch of 512 px tiles allocates and frees tensors of
25-130 MB many times per batch. glibc serves every allocation above its mmap threshold
(dynamic, at most 32 MiB by default) with a fresh ``mmap`` and returns it with ``munmap`` on
free, and it trims the top of the heap whenever more than the trim threshold is free. Each
batch therefore maps, page-faults (the kernel zeroes every 4 KiB page) and unmaps the same
hundreds of megabytes again: measured on a 2-core VM, half of ``crackwatch infer``'s CPU time
and a third of a training step's was system time (issue 14).

:func:`configure_allocator` raises the mmap threshold to 1 GiB and the trim threshold to
2 GiB through ``mallopt(3)`` (called with :mod:`ctypes` at import of :mod:`engine`, so the
CLI, the scheduler, the dashboard and the tests all get it without environment variables).
Freed tensors then stay in the heap and the next batch reuses the same, already-mapped
pages. Allocations of 1 GiB or more (e.g. a whole-raster array) are still ``mmap``-ed and given
back on free. :func:`release_free_memory` (``malloc_trim(0)``) returns the free heap to the
operating system between jobs, so a long-lived scheduler does not keep its peak.

Why ``mallopt`` and not the alternatives: jemalloc/tcmalloc need ``LD_PRELOAD`` before the
interpreter starts (an environment variable every entry point and user would have to set);
PyTorch has no caching allocator for CPU tensors; the ``MALLOC_*_`` environment variables do
the same as this module but only when set before start-up. Buffers CrackWatch owns itself
(the blending accumulators of :mod:`engine.infer`) are preallocated and reused instead.

Opt out with ``CRACKWATCH_MALLOC_TUNING=0``. When any of glibc's own ``MALLOC_MMAP_THRESHOLD_``,
``MALLOC_TRIM_THRESHOLD_``, ``MALLOC_TOP_PAD_`` or ``GLIBC_TUNABLES`` is set, the user's
settings win and nothing is changed. On a C library other than glibc (macOS, musl) both
functions do nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import platform

log = logging.getLogger(__name__)

# mallopt(3) parameter numbers (glibc malloc.h)
M_TRIM_THRESHOLD = -1
M_TOP_PAD = -2
M_MMAP_THRESHOLD = -3

#: Allocations at or above this size are still served by mmap (bytes).
MMAP_THRESHOLD_BYTES = 1 << 30
#: Free memory at the top of the heap is given back to the OS above this size (bytes).
TRIM_THRESHOLD_BYTES = (1 << 31) - 1  # mallopt takes a C int
#: Extra bytes obtained from the OS each time the heap grows (fewer brk calls).
TOP_PAD_BYTES = 64 << 20

_USER_ENV = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_",
             "GLIBC_TUNABLES")

_state: dict = {"configured": None}


def _glibc():
    """The process's glibc as a ctypes library, or None on another C library."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:  # pragma: no cover - glibc without a loadable libc.so
        return None


def configure_allocator() -> str:
    """Apply the malloc tuning once per process; return what was done.

    Returns one of ``"tuned"`` (thresholds set), ``"user-env"`` (the user's ``MALLOC_*`` /
    ``GLIBC_TUNABLES`` settings kept), ``"disabled"`` (``CRACKWATCH_MALLOC_TUNING=0``),
    ``"not-glibc"`` (nothing to tune), or ``"failed"`` (``mallopt`` refused a value; logged).
    Safe to call many times: the first call decides.
    """
    if _state["configured"] is not None:
        return _state["configured"]
    if os.environ.get("CRACKWATCH_MALLOC_TUNING", "1").strip().lower() in ("0", "false", "no",
                                                                           "off"):
        result = "disabled"
    elif any(k in os.environ for k in _USER_ENV):
        result = "user-env"
    else:
        libc = _glibc()
        if libc is None:
            result = "not-glibc"
        else:
            ok = all(libc.mallopt(p, v) == 1 for p, v in (
                (M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES),
                (M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES),
                (M_TOP_PAD, TOP_PAD_BYTES),
            ))
            result = "tuned" if ok else "failed"
            if not ok:
                log.warning("mallopt refused the allocator settings; CPU inference and "
                            "training will spend more time in the kernel.")
    _state["configured"] = result
    return result


def allocator_status() -> str:
    """What :func:`configure_allocator` did in this process (``"not-configured"`` before)."""
    return _state["configured"] or "not-configured"


def release_free_memory() -> bool:
    """Give the heap's free memory back to the OS (``malloc_trim(0)``); True if any was.

    Call between jobs in a long-lived process (after a survey, after a training run); never
    inside a batch loop, where it would bring back the page faults the tuning removes.
    """
    libc = _glibc()
    if libc is None:
        return False
    return bool(libc.malloc_trim(0))


__all__ = ["allocator_status", "configure_allocator", "release_free_memory"]
