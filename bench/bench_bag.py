"""augment-bag throughput on a RealSense-style recording: messages/s copied and virtual frames/s made.

    python bench/bench_bag.py [--seconds 30] [--fps 30] [--size 640x480] [--storage sqlite3] [--workdir DIR]

Writes a bag the way realsense-ros records with aligned depth (rgb8 colour, 16UC1 depth, camera_info per frame;
a textured wall with a box moving in front of it), then times, on that bag:
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
from rosbags.rosbag2 import Writer

from embody4d_ros.augment_bag import augment_bag
from embody4d_ros.bag import BagReader, BagWriter
from embody4d_ros.bag_io import BAG_VERSION, CAMERA_INFO_TYPE, IMAGE_TYPE, RECORDED_QOS, REALSENSE, storage_plugin, typestore
from embody4d_ros.conversions import depth_to_image, make_camera_info, rgb_to_image, rosbags_types
from embody4d_ros.params import resolve


def write_realsense_bag(path: Path, seconds: float, fps: int, height: int, width: int, storage: str) -> int:
    """A RealSense-style bag, frames made one at a time (a 30 s 640x480 clip does not fit in memory at once)."""
    store = typestore()
    types = rosbags_types(store)
    rng = np.random.default_rng(0)
    wall = rng.integers(0, 256, (height, width + 200, 3), dtype=np.uint8)
    focal = 0.8 * width
    K = np.array([[focal, 0.0, (width - 1) / 2], [0.0, focal, (height - 1) / 2], [0.0, 0.0, 1.0]])
    frames = int(seconds * fps)
    with Writer(path, version=BAG_VERSION, storage_plugin=storage_plugin(storage)) as writer:
        add = lambda topic, msgtype: writer.add_connection(topic, msgtype, typestore=store, offered_qos_profiles=[RECORDED_QOS])
        info_conn, color_conn, depth_conn = (add(REALSENSE.camera_info, CAMERA_INFO_TYPE), add(REALSENSE.color, IMAGE_TYPE),
                                             add(REALSENSE.depth, IMAGE_TYPE))
        for index in range(frames):
            stamp = 1_700_000_000_000_000_000 + index * 10**9 // fps
            shift = index % 200
            rgb = np.ascontiguousarray(wall[:, shift:shift + width])
            depth = np.full((height, width), 2.0, np.float32)
            left = width // 4 + (index * 3) % (width // 2)
            depth[height // 3: 2 * height // 3, left: left + width // 5] = 1.0
            rgb[height // 3: 2 * height // 3, left: left + width // 5] = (200, 60, 40)
            for conn, msg, msgtype in (
                (info_conn, make_camera_info(types, K, width, height, stamp, REALSENSE.frame_id), CAMERA_INFO_TYPE),
                (color_conn, rgb_to_image(types, rgb, stamp, REALSENSE.frame_id), IMAGE_TYPE),
                (depth_conn, depth_to_image(types, depth, stamp, REALSENSE.frame_id, "16UC1"), IMAGE_TYPE),
            ):
                writer.write(conn, stamp, store.serialize_cdr(msg, msgtype))
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
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores visible, 1-min load average {load_before[0]:.1f} "
          f"before, {load_after[0]:.1f} after; input: {args.seconds:g} s {width}x{height} at {args.fps} Hz, {frames} frames, "
          f"{messages} messages, {size_mb:.0f} MB {args.storage}")
    print("| step | wall s | messages/s | MB/s | virtual frames | virtual frames/s |\n|---|---:|---:|---:|---:|---:|")
    print(f"| copy (no camera) | {copy_s:.1f} | {messages / copy_s:.0f} | {size_mb / copy_s:.0f} | - | - |")
    print(f"| augment, warp engine | {augment_s:.1f} | {messages / augment_s:.0f} | {size_mb / augment_s:.0f} | {made} | "
          f"{made / augment_s:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
