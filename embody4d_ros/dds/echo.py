"""Receive a virtual camera over DDS and record, per image, its stamp, arrival time and header.

    python -m embody4d_ros.dds.echo [--namespace /virtual_camera] [--count 30] [--timeout 60] [--out received.json]

Writes a JSON list of {stamp_ns, received_ns, frame_id, width, height, encoding, info_frame_id} and exits after
`--count` images or `--timeout` seconds. Prints `ready` once subscribed.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from typing import Any, Sequence

from embody4d_ros.conversions import stamp_to_ns
from embody4d_ros.dds import messages
from embody4d_ros.dds.transport import DdsNode


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m embody4d_ros.dds.echo", description=__doc__.split("\n")[0])
    parser.add_argument("--namespace", default="/virtual_camera", help="the virtual camera's output_namespace")
    parser.add_argument("--count", type=int, default=30, help="stop after this many images")
    parser.add_argument("--timeout", type=float, default=60.0, help="stop after this many seconds")
    parser.add_argument("--out", help="JSON file for the records (default: stdout)")
    args = parser.parse_args(argv)

    records: list[dict[str, Any]] = []
    info_frames: dict[int, str] = {}  # stamp -> camera_info frame_id
    lock = threading.Lock()
    done = threading.Event()

    def on_image(msg: messages.Image) -> None:
        received = time.time_ns()
        with lock:
            records.append(
                {
                    "stamp_ns": stamp_to_ns(msg.header.stamp),
                    "received_ns": received,
                    "frame_id": msg.header.frame_id,
                    "width": msg.width,
                    "height": msg.height,
                    "encoding": msg.encoding,
                }
            )
            if len(records) >= args.count:
                done.set()

    def on_info(msg: messages.CameraInfo) -> None:
        with lock:
            info_frames[stamp_to_ns(msg.header.stamp)] = msg.header.frame_id

    node = DdsNode()
    ns = args.namespace.rstrip("/")
    node.create_subscription(messages.Image, f"{ns}/color/image_raw", on_image, qos="reliable", depth=args.count)
    node.create_subscription(messages.CameraInfo, f"{ns}/color/camera_info", on_info, qos="reliable", depth=args.count)
    print("ready", flush=True)
    done.wait(args.timeout)
    time.sleep(0.2)  # the camera_info of the last image may still be in flight
    with lock:
        for record in records:
            record["info_frame_id"] = info_frames.get(record["stamp_ns"])
        text = json.dumps(records)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
