"""Latency and throughput of the virtual camera node's runtime with the warp engine (docs/BENCHMARKS.md, "Node").

    python bench/bench_node.py [--height 480 --width 640] [--rate 30] [--frames 300] [--json out.json]

Feeds realsense-like colour, 16UC1 depth and camera_info messages into `VirtualCameraRuntime` with its worker
thread as the DDS transport delivers them (deserialised from CDR, stamped with the wall clock when fed), and
publishes every virtual frame through real DDS writers. Two runs:
  paced      -- input at --rate Hz: per-frame latency from source stamp to published (p50/p99/max), output rate, drops;
  saturated  -- input at 4x --rate: the output rate the node sustains when it has to drop (the oldest waiting go).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from embody4d_ros.dds.loopback import pin_to_loopback  # noqa: E402

pin_to_loopback()  # CYCLONEDDS_URI: this benchmark's DDS traffic stays on 127.0.0.1

from embody4d_ros.conversions import depth_to_image, make_camera_info, rgb_to_image  # noqa: E402
from embody4d_ros.dds import messages  # noqa: E402
from embody4d_ros.dds.transport import DdsNode, dds_types  # noqa: E402
from embody4d_ros.dds.virtual_camera import DdsVirtualCamera  # noqa: E402
from embody4d_ros.params import validate  # noqa: E402

FRAME_ID = "camera_color_optical_frame"


def scene(height: int, width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A textured wall at 2 m with a box at 1.2 m: rgb (H, W, 3) uint8, depth (H, W) m, K (3, 3)."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:height, 0:width]
    rgb = np.stack([xx * 255 // width, yy * 255 // height, rng.integers(0, 256, (height, width))], -1).astype(np.uint8)
    depth = np.full((height, width), 2.0, np.float32)
    depth[height // 3 : 2 * height // 3, width // 3 : 2 * width // 3] = 1.2
    K = np.array([[1.0 * width, 0, (width - 1) / 2], [0, 1.0 * width, (height - 1) / 2], [0, 0, 1]])
    return rgb, depth, K


def run(
    camera: DdsVirtualCamera, rgb: np.ndarray, depth: np.ndarray, K: np.ndarray, rate_hz: float, frames: int
) -> dict:
    """Feed `frames` frames at `rate_hz` and report what came out; the runtime's counters are reset first."""
    runtime = camera.runtime
    types = dds_types()
    height, width = rgb.shape[:2]
    # serialised once; each frame is deserialised and restamped, which is what the transport does per message
    wire = {
        "info": (messages.CameraInfo, make_camera_info(types, K, width, height, 0, FRAME_ID).serialize()),
        "depth": (messages.Image, depth_to_image(types, depth, 0, FRAME_ID).serialize()),
        "color": (messages.Image, rgb_to_image(types, rgb, 0, FRAME_ID).serialize()),
    }
    published: list[int] = []  # latency ns of each published frame
    publish = camera._publish

    def timed_publish(frame):
        publish(frame)
        published.append(time.time_ns() - frame.stamp_ns)

    runtime.publish = timed_publish
    before = runtime.stats.summary()
    period = 1.0 / rate_hz
    started = time.perf_counter()
    for index in range(frames):
        time.sleep(max(0.0, started + index * period - time.perf_counter()))
        stamp = time.time_ns()
        received = {}
        for name, (msg_type, data) in wire.items():
            received[name] = msg_type.deserialize(data)
            received[name].header.stamp = messages.Time(sec=stamp // 1_000_000_000, nanosec=stamp % 1_000_000_000)
        runtime.on_camera_info(received["info"])
        runtime.on_depth(received["depth"])
        runtime.on_color(received["color"])
    time.sleep(0.5)  # let the last frame through
    elapsed = time.perf_counter() - started - 0.5
    after = runtime.stats.summary()
    latency_ms = np.array(published) / 1e6
    drops = {k: v - before["drops"].get(k, 0) for k, v in after["drops"].items() if v > before["drops"].get(k, 0)}
    return {
        "input_hz": rate_hz,
        "frames_in": frames,
        "frames_out": len(published),
        "output_hz": len(published) / elapsed,
        "latency_ms": {
            "p50": float(np.percentile(latency_ms, 50)),
            "p99": float(np.percentile(latency_ms, 99)),
            "max": float(latency_ms.max()),
        }
        if len(published)
        else None,
        "drops": drops,
        "stages_ms": {
            stage: {"p50": round(s["p50"], 2), "p99": round(s["p99"], 2)} for stage, s in after["latency_ms"].items()
        },
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--rate", type=float, default=30.0, help="paced input rate (Hz)")
    parser.add_argument("--frames", type=int, default=300, help="frames per run")
    parser.add_argument("--param", action="append", default=[], metavar="NAME=VALUE", help="node parameter override")
    parser.add_argument("--json", help="write the results here too")
    args = parser.parse_args()

    from embody4d_ros.params import parse_override

    params = validate(dict(parse_override(text) for text in args.param))
    # a domain of its own so the benchmark's traffic reaches nobody else
    node = DdsNode(domain_id=int(os.environ.get("ROS_DOMAIN_ID", "77")))
    camera = DdsVirtualCamera(node, params, log=lambda message: None)
    rgb, depth, K = scene(args.height, args.width)
    run(camera, rgb, depth, K, args.rate, 30)  # warm-up at the real size
    results = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"load avg {os.getloadavg()[0]:.1f} at start",
        "size": [args.height, args.width],
        "engine": params["engine"],
        "paced": run(camera, rgb, depth, K, args.rate, args.frames),
        "saturated": run(camera, rgb, depth, K, 4 * args.rate, args.frames),
    }
    results["load_avg_end"] = round(os.getloadavg()[0], 1)
    camera.close()
    print(json.dumps(results, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
