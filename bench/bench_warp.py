"""Forward-warp speed: ms per frame of the CPU kernel (numba, one thread) at three sizes and for a 49-frame clip, and
on depth as cameras give it (480x640) side by side with a plain compiled nearest-point z-buffer splat of the same input:
the depth repair alone, the warp alone, and both as the node runs them per frame (`prepare_virtual_view`).

    python bench/bench_warp.py [--repeats 20] [--torch] [--json out.json] [--threads 2]

The scene is a textured wall at 2 m with a box at 1 m in front of it, seen from a virtual camera orbiting 10 deg to
the right and 0.1 m forward (disocclusions, magnification and out-of-view regions all occur). Reported: median
and best wall time of `model.geometry.forward_warp` (validation included) after one warm-up call, and the median
CPU time of the calling thread, which stays meaningful when other jobs share the cores (not for the row on several
threads, whose wall time is the point); optionally the torch path.
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

import numba  # noqa: E402
import numpy as np  # noqa: E402

from model.depth_sensor import StereoSensor  # noqa: E402
from model.geometry import OrbitTarget, forward_warp, forward_warp_clip, repair_depth, target_transform  # noqa: E402
from model.inpaint import fill_holes  # noqa: E402
from model.virtual_view import prepare_virtual_view  # noqa: E402

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


@numba.njit(cache=True, nogil=True)
def nearest_point_splat(image, depth, K_src, K_dst, T, out_colour, out_depth):  # pragma: no cover - compiled
    """The reference: every valid source pixel projected to its nearest target pixel, z-buffered (no mesh, no
    discontinuity handling, cracks and ghosts left as they fall). out_depth must be filled with inf."""
    height, width = depth.shape
    out_h, out_w = out_depth.shape
    for v in range(height):
        yn = (v - K_src[1, 2]) / K_src[1, 1]
        for u in range(width):
            z = depth[v, u]
            if not (z > 0.0):
                continue
            xn = (u - K_src[0, 2]) / K_src[0, 0]
            x = T[0, 0] * xn * z + T[0, 1] * yn * z + T[0, 2] * z + T[0, 3]
            y = T[1, 0] * xn * z + T[1, 1] * yn * z + T[1, 2] * z + T[1, 3]
            zd = T[2, 0] * xn * z + T[2, 1] * yn * z + T[2, 2] * z + T[2, 3]
            if zd <= 1e-3:
                continue
            px = int(K_dst[0, 0] * x / zd + K_dst[0, 2] + 0.5)
            py = int(K_dst[1, 1] * y / zd + K_dst[1, 2] + 0.5)
            if 0 <= px < out_w and 0 <= py < out_h and zd < out_depth[py, px]:
                out_depth[py, px] = zd
                out_colour[py, px, 0] = image[v, u, 0]
                out_colour[py, px, 1] = image[v, u, 1]
                out_colour[py, px, 2] = image[v, u, 2]


def real_depth_cases(T: np.ndarray) -> list[tuple[str, np.ndarray, np.ndarray, np.ndarray]]:
    """(name, image, depth, K) at 480x640 with depth as cameras give it: the bench scene through the stereo sensor
    model, and Middlebury Motorcycle's real disparity (scikit-image's copy, cropped) when scikit-image is there."""
    image, depth, K = scene(480, 640)
    cases = [("stereo-sensor depth", image, StereoSensor().corrupt(depth, K, np.random.default_rng(0)), K)]
    try:
        from skimage.data import stereo_motorcycle
    except ImportError:
        return cases
    left, _, disparity = stereo_motorcycle()
    focal, baseline, doffs = 3979.911 / 4, 0.193001, 124.343 / 4
    with np.errstate(divide="ignore"):
        metres = np.where(np.isfinite(disparity), focal * baseline / (disparity + doffs), 0.0).astype(np.float32)
    top, left_col = (metres.shape[0] - 480) // 2, (metres.shape[1] - 640) // 2
    K_moto = np.array([[focal, 0.0, 319.5], [0.0, focal, 239.5], [0.0, 0.0, 1.0]])
    crop = (slice(top, top + 480), slice(left_col, left_col + 640))
    image, depth = np.ascontiguousarray(left[crop]), np.ascontiguousarray(metres[crop])
    cases.append(("Middlebury Motorcycle depth", image, depth, K_moto))
    return cases


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
    parser.add_argument(
        "--threads", type=int, default=2, help="also time prepare_virtual_view with the warp on this many threads"
    )
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
        rows.append(
            {
                "case": f"forward_warp {height}x{width}",
                **timed(lambda: forward_warp(image, depth, K, K, T, (height, width)), args.repeats),
            }
        )
        if (height, width) == (480, 640):
            warped = forward_warp(image, depth, K, K, T, (height, width))
            for method in ("pushpull", "telea"):
                case = f"fill_holes {method} {height}x{width} ({1 - warped.mask.mean():.1%} holes)"
                rows.append(
                    {"case": case, **timed(lambda: fill_holes(warped.image, warped.mask, method=method), args.repeats)}
                )
            if args.torch:
                torch_warp = lambda: forward_warp_clip(
                    image[None], depth[None], K, K, T, (height, width), backend="torch"
                )
                rows.append({"case": f"forward_warp torch {height}x{width}", **timed(torch_warp, args.repeats)})

    # real depth: the whole virtual-view preparation (depth repair + warp) against the plain nearest-point splat
    for name, image, depth, K in real_depth_cases(T):
        colour, zbuffer = np.zeros_like(image), np.empty((480, 640))

        def splat():
            zbuffer.fill(np.inf)
            nearest_point_splat(image, depth, K, K, T, colour, zbuffer)

        reference = timed(splat, args.repeats)
        rows.append({"case": f"nearest-point splat (reference), {name}", **reference})
        for label, call in (
            ("repair_depth (flying pixels, colour-guided filling, reliability)", lambda: repair_depth(depth, image)),
            ("forward_warp", lambda: forward_warp(image, depth, K, K, T, (480, 640))),
            ("prepare_virtual_view (repair + warp)", lambda: prepare_virtual_view(image, depth, K, T)),
        ):
            row = {"case": f"{label}, {name}", **timed(call, args.repeats)}
            row["case"] += f" ({row['cpu_ms'] / reference['cpu_ms']:.1f}x the splat's CPU time)"
            rows.append(row)
        if args.threads > 1:  # the calling thread's CPU time says nothing here: compare wall times
            call = lambda: prepare_virtual_view(image, depth, K, T, threads=args.threads)
            row = {"case": f"prepare_virtual_view, warp on {args.threads} threads, {name}", **timed(call, args.repeats)}
            row["case"] += f" ({row['median_ms'] / reference['median_ms']:.1f}x the splat's wall time)"
            rows.append(row)

    frames, height, width = CLIP
    image, depth, K = scene(height, width)
    images = np.repeat(image[None], frames, axis=0)
    depths = np.repeat(depth[None], frames, axis=0)
    for fuse in (0, 2):
        clip = timed(
            lambda: forward_warp_clip(images, depths, K, K, T, (height, width), fuse_frames=fuse),
            max(1, args.repeats // 5),
        )
        per_frame = {key: value / frames for key, value in clip.items()}
        rows.append({"case": f"forward_warp_clip {frames}x{height}x{width} fuse_frames={fuse}, per frame", **per_frame})

    load_after = os.getloadavg()
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores visible, 1-min load average "
        f"{load_before[0]:.1f} before, {load_after[0]:.1f} after; numba kernel serial; "
        f"first call {first_call_s:.2f} s (compile or cache load)"
    )
    print("| case | median wall ms | best wall ms | median thread-CPU ms |\n|---|---:|---:|---:|")
    for row in rows:
        print(f"| {row['case']} | {row['median_ms']:.2f} | {row['best_ms']:.2f} | {row['cpu_ms']:.2f} |")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(
                {"load_before": load_before, "load_after": load_after, "first_call_s": first_call_s, "rows": rows},
                handle,
                indent=2,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
