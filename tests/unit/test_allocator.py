"""The allocator tuning (issue 14): freed large buffers are reused without new page faults."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

import engine  # noqa: F401 - importing engine applies the tuning
from engine.allocator import allocator_status, configure_allocator, release_free_memory

PROBE = r"""
import ctypes, json, resource, sys
import numpy as np
import engine
from engine.allocator import allocator_status

class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd",
                "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]
libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = MallInfo2
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
a = np.ones(200 * 2**20, np.uint8)                 # 200 MB, as a batch's activations
mmapped = libc.mallinfo2().hblkhd
del a
f0 = faults()
for _ in range(5):
    b = np.ones(200 * 2**20, np.uint8); del b
print(json.dumps({"status": allocator_status(), "mmapped_bytes": mmapped,
                  "faults_per_alloc": (faults() - f0) / 5}))
"""


def _probe(**env) -> dict:
    e = {k: v for k, v in os.environ.items() if not k.startswith(("MALLOC_", "GLIBC_TUN",
                                                                  "CRACKWATCH_MALLOC"))}
    e.update(env)
    out = subprocess.run([sys.executable, "-c", PROBE], env=e, capture_output=True, text=True,
                         check=True, timeout=120)
    return json.loads(out.stdout.strip().splitlines()[-1])


glibc = pytest.mark.skipif(
    not sys.platform.startswith("linux") or __import__("platform").libc_ver()[0] != "glibc",
    reason="mallopt tuning is glibc-only")


@glibc
def test_importing_engine_tunes_this_process():
    if any(k.startswith(("MALLOC_", "GLIBC_TUN", "CRACKWATCH_MALLOC")) for k in os.environ):
        pytest.skip("the user's own allocator settings are in the environment")
    assert configure_allocator() == "tuned" == allocator_status()


@glibc
def test_freed_buffers_are_reused_without_page_faults():
    tuned = _probe()
    untuned = _probe(CRACKWATCH_MALLOC_TUNING="0")
    assert tuned["status"] == "tuned" and untuned["status"] == "disabled"
    # Untuned, glibc serves 200 MB with its own mmap and unmaps it on free, so every
    # allocation faults its pages in again (51,200 pages of 4 KiB, or 100 huge pages where
    # transparent huge pages are on); tuned, it comes from the heap and is reused.
    assert untuned["mmapped_bytes"] >= 200 * 2**20 and tuned["mmapped_bytes"] < 2**20
    assert untuned["faults_per_alloc"] >= 100
    assert tuned["faults_per_alloc"] < untuned["faults_per_alloc"] / 10


@glibc
def test_users_own_malloc_settings_win():
    r = _probe(MALLOC_MMAP_THRESHOLD_="131072")
    assert r["status"] == "user-env"


@glibc
def test_release_free_memory_returns_the_heap():
    import numpy as np

    a = np.ones(300 * 2**20, np.uint8)
    del a
    assert release_free_memory() is True
