"""augment-bag throughput on a RealSense-style recording: messages/s copied and virtual frames/s made.

    python bench/bench_bag.py [--seconds 30] [--fps 30] [--size 640x480] [--storage sqlite3] [--workdir DIR]

Writes a bag the way realsense-ros records with aligned depth (`bag_io.write_rgbd_bag`: rgb8 colour, 16UC1 depth,
camera_info per frame; a textured wall with a box moving in front of it), then times, on that bag:
- copy: every message through `BagReader` -> `BagWriter` (what augment-bag does for each input message, count check
  and metadata included), no virtual camera;
- augment: `embody4d augment-bag` in-process with the `warp` engine (no network) and default parameters.
Prints a markdown table with the machine and the load average before and after. The bags are removed at the end.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from embody4d_ros.augment_bag import augment_bag
from embody4d_ros.bag import BagReader, BagWriter
from embody4d_ros.bag_io import write_rgbd_bag
from embody4d_ros.params import resolve


def write_realsense_bag(path: Path, seconds: float, fps: int, height: int, width: int, storage: str) -> int:
    """A RealSense-style bag of a textured wall with a box moving in front of it; returns the frame count.

    The clip is laid out in memory-mapped scratch files beside the bag: 30 s at 640x480 is 2 GB of arrays.
    """
    frames = int(seconds * fps)
    rgb = np.lib.format.open_memmap(path.parent / "rgb.npy", "w+", np.uint8, (frames, height, width, 3))
    depth = np.lib.format.open_memmap(path.parent / "depth.npy", "w+", np.float32, (frames, height, width))
    wall = np.random.default_rng(0).integers(0, 256, (height, width + 200, 3), dtype=np.uint8)
    box_rows, box_width = slice(height // 3, 2 * height // 3), width // 5
    for index in range(frames):
        shift, left = index % 200, width // 4 + (index * 3) % (width // 2)
        rgb[index] = wall[:, shift : shift + width]
        rgb[index, box_rows, left : left + box_width] = (200, 60, 40)
        depth[index] = 2.0
        depth[index, box_rows, left : left + box_width] = 1.0
    focal = 0.8 * width
    K = np.array([[focal, 0.0, (width - 1) / 2], [0.0, focal, (height - 1) / 2], [0.0, 0.0, 1.0]])
    stamps = [1_700_000_000_000_000_000 + index * 10**9 // fps for index in range(frames)]
    write_rgbd_bag(path, rgb, depth, K, stamps, storage=storage)
    return frames


def copy_bag(source: Path, output: Path) -> int:
    """Copy every message as augment-bag does, without a virtual camera; returns the message count."""
    copied = 0
    with BagReader(source) as reader:
        writer = BagWriter(output, reader)
        for file_index, message in reader.messages():
            writer.write(message, file_index)
            copied += 1
        writer.close()
    return copied


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--size", default="640x480", help="WIDTHxHEIGHT")
    parser.add_argument("--storage", choices=("sqlite3", "mcap"), default="sqlite3")
    parser.add_argument("--workdir", type=Path, help="where the bags go (default: a temporary directory)")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    workdir = Path(tempfile.mkdtemp(prefix="bench-bag-", dir=args.workdir))
    try:
        source = workdir / "realsense"
        frames = write_realsense_bag(source, args.seconds, args.fps, height, width, args.storage)
        size_mb = sum(f.stat().st_size for f in source.iterdir()) / 1e6
        load_before = os.getloadavg()

        start = time.perf_counter()
        messages = copy_bag(source, workdir / "copy")
        copy_s = time.perf_counter() - start

        start = time.perf_counter()
        summary = augment_bag(source, workdir / "augmented", resolve(None, ["engine=warp"]), progress=False)
        augment_s = time.perf_counter() - start
        load_after = os.getloadavg()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    made = summary["cameras"]["virtual_camera"]
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores visible, 1-min load average {load_before[0]:.1f} "
        f"before, {load_after[0]:.1f} after; input: {args.seconds:g} s {width}x{height} at {args.fps} Hz, "
        f"{frames} frames, {messages} messages, {size_mb:.0f} MB {args.storage}"
    )
    print("| step | wall s | messages/s | MB/s | virtual frames | virtual frames/s |\n|---|---:|---:|---:|---:|---:|")
    print(f"| copy (no camera) | {copy_s:.1f} | {messages / copy_s:.0f} | {size_mb / copy_s:.0f} | - | - |")
    print(
        f"| augment, warp engine | {augment_s:.1f} | {messages / augment_s:.0f} | {size_mb / augment_s:.0f} | "
        f"{made} | {made / augment_s:.2f} |"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
