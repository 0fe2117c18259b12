"""The virtual camera node on a real ROS 2 graph (rclpy), warp engine (docs/BENCHMARKS.md, "Node on ROS 2").

    .venv-ros/bin/python bench/bench_ros.py [--rate 30] [--frames 300] [--width 640 --height 480] [--param NAME:=VALUE]

Needs the ROS 2 test environment (`make test-ros` builds .venv-ros). Three processes as on a robot: a RealSense-style
publisher (reliable rgb8 + 16UC1 + camera_info, stamped with the wall clock when published), the node with default
parameters (or those given with --param), and a reliable subscriber (this process, which reads only each image's
header: tests/ros/cdr_header.py). Reports the output rate, frames out of frames in, per frame the stamp-to-publish
latency the node measures (its /diagnostics) and stamp-to-receive at the subscriber, the node process's CPU time per
input frame, and where it goes: CPU per input frame by thread (the executor thread receives, deserialises, pairs and
converts; the worker warps, runs the engine, builds and publishes the messages; Fast DDS's own threads move the bytes)
and the per-stage latencies of /diagnostics. Every participant stays on loopback (config/*_loopback.xml).
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import resource
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "ros")]

from ros_graph import Probe, run_camera, start_node, stop  # noqa: E402  (pins DDS to loopback first)

# the node's /diagnostics latency stages, in the order a frame goes through them (milliseconds); receive: from the
# stamp to the colour message reaching the node's callback, of which reader_wait in the node's DDS reader
STAGES = (
    "receive",
    "reader_wait",
    "convert",
    "queue_wait",
    "warp",
    "handoff_wait",
    "engine",
    "publish",
    "stamp_to_publish",
)


def _stat_cpu_s(stat: str) -> float:
    """User + system CPU seconds from the text of a /proc/.../stat file."""
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def thread_cpu_s(pid: int) -> dict[str, float]:
    """CPU seconds (user + system) of process `pid` as a whole ("total", threads that ended included) and of each
    thread group: its main thread (rclpy's executor, as `rclpy.spin` runs there), Fast DDS's threads (named dds.*),
    and the other Python threads (the worker)."""
    groups = {"total": _stat_cpu_s(Path(f"/proc/{pid}/stat").read_text()), "executor": 0.0, "worker": 0.0, "dds": 0.0}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            stat = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
        except OSError:  # the thread ended meanwhile
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        group = "executor" if tid == str(pid) else "dds" if name.startswith("dds.") else "worker"
        groups[group] += _stat_cpu_s(stat)
    return groups


def process_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=float, default=30.0)
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument(
        "--param", action="append", default=[], metavar="NAME:=VALUE", help="a node parameter other than its default"
    )
    args = parser.parse_args()

    load_before = os.getloadavg()
    probe = Probe()
    node = start_node(*[arg for param in args.param for arg in ("-p", param)])
    try:
        probe.wait_for_node(node)
        cpu_before = thread_cpu_s(node.pid)
        subscriber_before = process_cpu_s()
        camera = run_camera(args.rate, args.frames, args.width, args.height)
        published = camera["stamps"]
        probe.wait_for_images(len(published), timeout_s=10.0)
        cpu_after = thread_cpu_s(node.pid)
        subscriber_cpu_s = process_cpu_s() - subscriber_before
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
    load = ", ".join(f"{v:.1f}" for v in load_before) + " → " + ", ".join(f"{v:.1f}" for v in os.getloadavg())
    now = datetime.datetime.now(datetime.timezone.utc)
    print(
        f"{now:%Y-%m-%d %H:%M} UTC, {platform.machine()} {os.cpu_count()} cores, load average (1, 5, 15 min) {load}\n"
    )
    # the node's CPU time per input frame: on a machine it shares with its camera driver and consumers, CPU is what
    # limits it, and CPU time varies less than wall-clock latency with what else runs there
    cpu_ms = {group: (cpu_after[group] - cpu_before[group]) * 1e3 for group in cpu_after}
    print(
        "| input | frames out / in | output rate | stamp→publish p50 / p99 (node) | stamp→receive p50 / p99 | drops "
        "| node CPU per frame in |"
    )
    print("|---|---|---|---|---|---|---|")
    drops = ", ".join(f"{k[6:]} {v}" for k, v in values.items() if k.startswith("drops ")) or "none"
    print(
        f"| {args.width}×{args.height} at {args.rate:g} Hz | {len(images)} / {len(published)} | {out_hz:.1f} Hz | "
        f"{values.get('latency stamp_to_publish p50/p99 (ms)', '-')} ms | "
        f"{np.percentile(to_receive, 50):.1f} / {np.percentile(to_receive, 99):.1f} ms | {drops} | "
        f"{cpu_ms['total'] / len(published):.1f} ms |"
    )

    # where the node's time goes: CPU of the threads that see every input frame per input frame, of the worker per
    # frame it generated; stage latencies (wall clock) p50 / p99
    per_input = {group: cpu_ms[group] / len(published) for group in ("executor", "dds")}
    per_output = cpu_ms["worker"] / max(1, int(values.get("frames out", 0)))
    print(
        "\n| node CPU: executor / Fast DDS threads per frame in, worker per frame out | "
        + " | ".join(f"{stage} p50 / p99" for stage in STAGES)
        + " |"
    )
    print("|---|" + "---|" * len(STAGES))
    stage_ms = [values.get(f"latency {stage} p50/p99 (ms)", "-").replace("/", " / ") for stage in STAGES]
    print(
        f"| {per_input['executor']:.1f} / {per_input['dds']:.1f} / {per_output:.1f} ms | " + " | ".join(stage_ms) + " |"
    )
    # the other two processes share the machine's cores with the node
    print(
        f"\nCPU per frame in of the other processes: camera publisher {camera['cpu_s'] / len(published) * 1e3:.1f} ms, "
        f"subscriber (this process) {subscriber_cpu_s / len(published) * 1e3:.1f} ms"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
