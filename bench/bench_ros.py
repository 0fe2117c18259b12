"""The virtual camera node on a real ROS 2 graph (rclpy), warp engine (docs/BENCHMARKS.md, "Node on ROS 2").

    .venv-ros/bin/python bench/bench_ros.py [--rate 30] [--frames 300] [--width 640 --height 480]

Needs the ROS 2 test environment (`make test-ros` builds .venv-ros). Three processes as on a robot: a RealSense-style
publisher (reliable rgb8 + 16UC1 + camera_info, stamped with the wall clock when published), the node with default
parameters, and a reliable subscriber (this process). Reports the output rate, frames out of frames in, and per frame
the stamp-to-publish latency the node measures (its /diagnostics) and stamp-to-receive at the subscriber.
Every participant stays on loopback (config/*_loopback.xml).
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "ros")]

from ros_graph import Probe, publish_camera, start_node, stop  # noqa: E402  (pins DDS to loopback first)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=float, default=30.0)
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    args = parser.parse_args()

    probe = Probe()
    node = start_node()
    try:
        probe.wait_for_node(node)
        published = publish_camera(args.rate, args.frames, args.width, args.height)
        probe.wait_for_images(len(published), timeout_s=10.0)
        diagnostics = [s for s in probe.diagnostics if "virtual camera" in s.name]
    finally:
        code, _, stderr = stop(node)
        probe.close()
    if code != 0:
        print(stderr, file=sys.stderr)
        return 1

    images = list(probe.images)
    values = {kv.key: kv.value for kv in diagnostics[-1].values}
    received = np.array([i.received_ns for i in images], dtype=np.int64)
    span_s = (published[-1] - published[0]) / 1e9
    out_hz = len(images) / (span_s + 1 / args.rate)
    to_receive = (received - np.array([i.stamp_ns for i in images])) / 1e6
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    print(f"{datetime.date.today()}, {platform.machine()} {os.cpu_count()} cores, load {load}\n")
    print(
        "| input | frames out / in | output rate | stamp→publish p50 / p99 (node) | stamp→receive p50 / p99 | drops |"
    )
    print("|---|---|---|---|---|---|")
    drops = ", ".join(f"{k[6:]} {v}" for k, v in values.items() if k.startswith("drops ")) or "none"
    print(
        f"| {args.width}×{args.height} at {args.rate:g} Hz | {len(images)} / {len(published)} | {out_hz:.1f} Hz | "
        f"{values.get('latency stamp_to_publish p50/p99 (ms)', '-')} ms | "
        f"{np.percentile(to_receive, 50):.1f} / {np.percentile(to_receive, 99):.1f} ms | {drops} |"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
