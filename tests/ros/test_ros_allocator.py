"""keep_freed_memory: glibc then serves frame-sized blocks from its heap and keeps them when freed, as glibc's own
accounting (mallinfo2) shows; without it, the same block is a mapping of its own, unmapped when freed."""

import ctypes
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's allocator only")

# In a fresh process (the allocator's thresholds are process-wide and move as blocks are freed): malloc a 4 MiB
# block, as a 640x480 float32 RGB frame is, and free it; report the bytes glibc held in mappings of their own while
# it lived and the free bytes it keeps after it is freed.
SCRIPT = """
import ctypes, sys

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")]

libc = ctypes.CDLL(None)
libc.mallinfo2.restype = MallInfo2
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
if sys.argv[1] == "keep":
    from embody4d_ros.allocator import keep_freed_memory
    assert keep_freed_memory()
block = libc.malloc(4 << 20)
mapped = libc.mallinfo2().hblkhd
libc.free(block)
print(mapped, libc.mallinfo2().fordblks)
"""


def _mapped_and_kept(mode):
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, mode],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    mapped, kept = (int(n) for n in done.stdout.split())
    return mapped, kept


def test_frame_sized_blocks_stay_in_the_heap_after_keep_freed_memory():
    assert hasattr(ctypes.CDLL(None), "mallinfo2"), "glibc older than 2.33: no mallinfo2 to check with"
    mapped, kept = _mapped_and_kept("default")
    assert mapped >= 4 << 20 and kept < 4 << 20, (mapped, kept)  # glibc's defaults: mapped, then given back
    mapped, kept = _mapped_and_kept("keep")
    assert mapped < 4 << 20 and kept >= 4 << 20, (mapped, kept)
