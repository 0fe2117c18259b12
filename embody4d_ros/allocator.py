"""Keep freed frame buffers in the process instead of handing them back to the kernel after every frame (glibc).

glibc serves each allocation above its mmap threshold (128 KiB at first, raised as large blocks are freed) with a
fresh mapping and unmaps it when freed, and gives the top of its heaps back to the kernel above its trim threshold.
A camera process allocates and frees megabytes per frame (incoming messages, their arrays, the warp's buffers, the
outgoing messages), so every frame faults its pages back in and the kernel zeroes them: in the node at 30 Hz
640x480, 650-1200 minor page faults and 2.8-4.5 ms of system CPU per frame; with the thresholds below, 30-55 faults
and ~1 ms (docs/BENCHMARKS.md, "CPU per frame of the node and its harness"). The price is memory: freed blocks up to
the trim threshold stay mapped in each arena.
"""

from __future__ import annotations

import ctypes
import platform

# mallopt parameters (malloc.h)
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
# large enough for any frame buffer up to 1280x720 float32 RGB (11 MB); glibc's ceiling for the mmap threshold is
# 32 MiB on 64-bit machines
MMAP_THRESHOLD_BYTES = 16 << 20
TRIM_THRESHOLD_BYTES = 64 << 20


def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds for this process; False (and nothing changed) on another C library."""
    if platform.libc_ver()[0] != "glibc":  # musl, macOS: their allocators have other knobs
        return False
    libc = ctypes.CDLL(None)
    return bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)) and bool(
        libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)
    )
