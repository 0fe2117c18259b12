"""Forward-warp speed: ms per frame of the CPU kernel (numba, one thread) at three sizes and for a 49-frame clip.

    python bench/bench_warp.py [--repeats 20] [--torch] [--json out.json]

The scene is a textured wall at 2 m with a box at 1 m in front of it, seen from a virtual camera orbiting 10 deg to
the right and 0.1 m forward (disocclusions, magnification and out-of-view regions all occur). Reported: median
and best wall time of `model.geometry.forward_warp` (validation included) after one warm-up call, and the median
CPU time of the calling thread, which stays meaningful when other jobs share the cores; optionally the torch path.
The classical hole filling of the `warp` engine is timed alongside.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

# The kernel is serial; keep numba and BLAS from spreading onto other cores while timing.
os.environ.setdefault("NUMBA_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from model.geometry import OrbitTarget, forward_warp, forward_warp_clip, target_transform  # noqa: E402
from model.inpaint import fill_holes  # noqa: E402

SIZES = ((240, 320), (480, 640), (720, 1280))
CLIP = (49, 480, 640)


def scene(height: int, width: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(image (H, W, 3) uint8, depth (H, W) float32 m, K (3, 3)) of a wall with a box in front."""
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    depth = np.full((height, width), 2.0, np.float32)
    depth[height // 4 : 3 * height // 4, width // 3 : 2 * width // 3] = 1.0
    focal = 0.8 * width
    K = np.array([[focal, 0.0, (width - 1) / 2], [0.0, focal, (height - 1) / 2], [0.0, 0.0, 1.0]])
    return image, depth, K


def timed(function, repeats: int) -> dict[str, float]:
    """Median and best wall milliseconds and median thread-CPU milliseconds of `function()` after one warm-up."""
    function()
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.thread_time()
        function()
        wall.append((time.perf_counter() - start) * 1000.0)
        cpu.append((time.thread_time() - start_cpu) * 1000.0)
    return {"median_ms": statistics.median(wall), "best_ms": min(wall), "cpu_ms": statistics.median(cpu)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--torch", action="store_true", help="also time the torch path (CUDA if available)")
    parser.add_argument("--json", help="write the results here too")
    args = parser.parse_args()

    target = OrbitTarget(yaw_deg=10.0, forward_m=0.1, pivot_m=1.5)
    T = target_transform(target)
    load_before = os.getloadavg()
    image, depth, K = scene(240, 320)
    start = time.perf_counter()
    forward_warp(image, depth, K, K, T, (240, 320))
    first_call_s = time.perf_counter() - start  # includes compiling the kernel, or loading it from numba's cache
    rows = []
    for height, width in SIZES:
        image, depth, K = scene(height, width)
        rows.append({"case": f"forward_warp {height}x{width}", **timed(lambda: forward_warp(image, depth, K, K, T, (height, width)), args.repeats)})
        if (height, width) == (480, 640):
            warped = forward_warp(image, depth, K, K, T, (height, width))
            for method in ("pushpull", "telea"):
                case = f"fill_holes {method} {height}x{width} ({1 - warped.mask.mean():.1%} holes)"
                rows.append({"case": case, **timed(lambda: fill_holes(warped.image, warped.mask, method=method), args.repeats)})
            if args.torch:
                torch_warp = lambda: forward_warp_clip(image[None], depth[None], K, K, T, (height, width), backend="torch")
                rows.append({"case": f"forward_warp torch {height}x{width}", **timed(torch_warp, args.repeats)})

    frames, height, width = CLIP
    image, depth, K = scene(height, width)
    images = np.repeat(image[None], frames, axis=0)
    depths = np.repeat(depth[None], frames, axis=0)
    for fuse in (0, 2):
        clip = timed(lambda: forward_warp_clip(images, depths, K, K, T, (height, width), fuse_frames=fuse), max(1, args.repeats // 5))
        per_frame = {key: value / frames for key, value in clip.items()}
        rows.append({"case": f"forward_warp_clip {frames}x{height}x{width} fuse_frames={fuse}, per frame", **per_frame})

    load_after = os.getloadavg()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores visible, 1-min load average "
          f"{load_before[0]:.1f} before, {load_after[0]:.1f} after; numba kernel serial; first call {first_call_s:.2f} s (compile or cache load)")
    print("| case | median wall ms | best wall ms | median thread-CPU ms |\n|---|---:|---:|---:|")
    for row in rows:
        print(f"| {row['case']} | {row['median_ms']:.2f} | {row['best_ms']:.2f} | {row['cpu_ms']:.2f} |")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"load_before": load_before, "load_after": load_after, "first_call_s": first_call_s, "rows": rows}, handle, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
