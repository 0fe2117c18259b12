"""A real ROS 2 graph around the virtual camera node, for the end-to-end tests and bench/bench_ros.py.

The node runs as its own process (`python -m embody4d_ros.node --ros-args ...`), the camera as another
(tests/ros/rgbd_publisher.py), and `Probe` subscribes in the calling process like any ROS 2 consumer would.
Every participant is pinned to loopback (embody4d_ros.dds.loopback) before rclpy starts.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from embody4d_ros.allocator import keep_freed_memory
from embody4d_ros.conversions import stamp_to_ns
from embody4d_ros.dds.loopback import pin_to_loopback
from model.geometry import pose_to_matrix

pin_to_loopback()
keep_freed_memory()  # the subscribers take a megabyte image per frame: as the node does, keep freed blocks
# a DDS domain of this run's own (the node and publisher processes inherit it): two runs on one machine, e.g. two
# engineers' test runs, would otherwise hear each other's cameras
os.environ.setdefault("ROS_DOMAIN_ID", str(1 + os.getpid() % 100))

import rclpy  # noqa: E402
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image  # noqa: E402
from tf2_msgs.msg import TFMessage  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
PUBLISHER = ROOT / "tests" / "ros" / "rgbd_publisher.py"
sys.path.insert(0, str(PUBLISHER.parent))
from cdr_header import read_image_head  # noqa: E402
from rgbd_publisher import ROBOT_CUBE_M, ROBOT_JOINT_POSITION, ROBOT_ROOT_IN_CAMERA  # noqa: E402


@dataclass
class Received:
    stamp_ns: int
    received_ns: int
    frame_id: str
    width: int
    height: int
    encoding: str


class Probe:
    """An rclpy node in this process recording the virtual camera's images, camera_infos and /diagnostics.

    It shares the machine's cores with the node it watches, so it takes images raw and reads only their header and
    size (cdr_header) unless `keep_pixels` asks for the pixels: rclpy's deserialisation of every 640x480 image would
    cost the node milliseconds of CPU per frame."""

    def __init__(self, namespace: str = "/virtual_camera", depth: int = 200, keep_pixels: bool = False) -> None:
        if not rclpy.ok():
            rclpy.init()
        self.node = rclpy.create_node(f"probe_{os.getpid()}_{time.monotonic_ns() % 10**6}")
        self.lock = threading.Lock()
        self.images: list[Received] = []
        self.pixels: dict[int, np.ndarray] = {}  # rgb8 (H, W, 3) by stamp, with keep_pixels
        self.infos: dict[int, CameraInfo] = {}
        self.diagnostics: list[Any] = []
        reliable = QoSProfile(depth=depth, reliability=ReliabilityPolicy.RELIABLE)
        self.image_sub = self.node.create_subscription(
            Image,
            f"{namespace}/color/image_raw",
            self._on_image if keep_pixels else self._on_raw_image,
            reliable,
            raw=not keep_pixels,
        )
        self.node.create_subscription(CameraInfo, f"{namespace}/color/camera_info", self._on_info, reliable)
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 50)
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()

    def _on_image(self, msg: Image) -> None:
        received = time.time_ns()
        with self.lock:
            self.images.append(
                Received(
                    stamp_to_ns(msg.header.stamp), received, msg.header.frame_id, msg.width, msg.height, msg.encoding
                )
            )
            rows = np.frombuffer(bytes(msg.data), np.uint8).reshape(msg.height, msg.step)
            self.pixels[stamp_to_ns(msg.header.stamp)] = rows[:, : msg.width * 3].reshape(msg.height, msg.width, 3)

    def _on_raw_image(self, cdr: bytes) -> None:
        received = time.time_ns()
        head = read_image_head(cdr)
        with self.lock:
            self.images.append(Received(head.stamp_ns, received, head.frame_id, head.width, head.height, head.encoding))

    def _on_info(self, msg: CameraInfo) -> None:
        with self.lock:
            self.infos[stamp_to_ns(msg.header.stamp)] = msg

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        with self.lock:
            self.diagnostics.extend(msg.status)

    def wait_for_node(self, process: subprocess.Popen, timeout_s: float = 180.0) -> None:
        """Until the node's image publisher is matched (it has warmed up); fails with its stderr if it exits."""
        deadline = time.monotonic() + timeout_s
        while self.image_sub.get_publisher_count() == 0:
            if process.poll() is not None:
                raise RuntimeError(f"the node exited with {process.returncode}: {process.stderr.read()[-3000:]}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"the node did not come up in {timeout_s} s")
            time.sleep(0.1)

    def wait_for_images(self, count: int, timeout_s: float) -> None:
        """Until `count` images and the camera_info of each have arrived, or `timeout_s` passes."""

        def paired() -> int:
            with self.lock:
                return sum(image.stamp_ns in self.infos for image in self.images)

        deadline = time.monotonic() + timeout_s
        while paired() < count and time.monotonic() < deadline:
            time.sleep(0.1)

    def latched_tf_static(self, timeout_s: float = 10.0) -> list[Any]:
        """Transforms on /tf_static as a subscriber that joins late receives them (transient local)."""
        got: list[Any] = []
        qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        subscription = self.node.create_subscription(
            TFMessage, "/tf_static", lambda msg: got.extend(msg.transforms), qos
        )
        deadline = time.monotonic() + timeout_s
        while not got and time.monotonic() < deadline:
            time.sleep(0.1)
        self.node.destroy_subscription(subscription)
        return got

    def close(self) -> None:
        self.executor.shutdown()
        self.thread.join(timeout=10)
        self.node.destroy_node()


def _cube_box_in_virtual_view(info: Any, transform: Any, width: int, height: int) -> tuple[int, int, int, int]:
    """(u0, v0, u1, v1): the bounding box of the cube's 8 corners projected into the virtual camera, in the image."""
    half = ROBOT_CUBE_M / 2
    corners = np.array([[x, y, z] for x in (-half, half) for y in (-half, half) for z in (-half, half)])
    c, s = np.cos(ROBOT_JOINT_POSITION), np.sin(ROBOT_JOINT_POSITION)
    in_source = corners @ np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]]).T + np.array(ROBOT_ROOT_IN_CAMERA)
    t, q = transform.transform.translation, transform.transform.rotation
    T_src_dst = pose_to_matrix([t.x, t.y, t.z, q.x, q.y, q.z, q.w])  # the virtual frame's pose in the source's
    in_virtual = (np.linalg.inv(T_src_dst) @ np.c_[in_source, np.ones(8)].T)[:3].T
    K = np.array(info.k).reshape(3, 3)
    uv = (in_virtual @ K.T)[:, :2] / in_virtual[:, 2:]
    (u0, v0), (u1, v1) = np.floor(uv.min(0)).astype(int), np.ceil(uv.max(0)).astype(int)
    return max(u0, 0), max(v0, 0), min(u1, width), min(v1, height)


def check_robot_drawn(probe: Probe, published: list[int], robot_from: int, transform: Any, drawn: int) -> None:
    """The frames published from `robot_from` on (with joint states, rgbd_publisher.py) differ from the plain ones
    before where the publisher's cube projects into the virtual camera (its corners projected here with the virtual
    camera_info and the camera's /tf_static `transform`) and nowhere far from it; `drawn` frames were reported drawn."""
    height, width = next(iter(probe.pixels.values())).shape[:2]
    plain = [probe.pixels[stamp] for stamp in published[:robot_from] if stamp in probe.pixels]
    robot = [probe.pixels[stamp] for stamp in published[robot_from:] if stamp in probe.pixels]
    assert plain and len(robot) >= drawn, f"{len(plain)} plain and {len(robot)} robot frames arrived, {drawn} drawn"
    assert all(np.array_equal(view, plain[0]) for view in plain), "the plain view of a static scene changed"
    u0, v0, u1, v1 = _cube_box_in_virtual_view(next(iter(probe.infos.values())), transform, width, height)
    assert (u1 - u0) * (v1 - v0) > 0.05 * width * height, ("the cube is hardly in the virtual view", u0, v0, u1, v1)
    # Near the cube the view changes too: the source pixels the cube covers are cut from the scene (the wall behind
    # it, seen from the side, is a hole), and holes are filled from their borders, which now include the cube.
    # Columns 64 px right of it lie beyond both (the cut region moves < 50 px at this yaw); they must not change.
    far = np.zeros((height, width), bool)
    far[:, u1 + 64 :] = True
    assert far.mean() > 0.3, "too little of the view is far from the cube to check"
    for view in robot:
        changed = np.abs(view.astype(int) - plain[0].astype(int)).max(-1) > 12
        inside = changed[v0:v1, u0:u1].mean()
        assert inside > 0.5, f"only {inside:.0%} of the cube's box in the virtual view differs from the plain view"
        assert changed[far].mean() < 0.01, f"{changed[far].mean():.1%} of the view far from the cube changed"


def start_node(*ros_args: str) -> subprocess.Popen:
    """The virtual camera node as a process, parameters as after `--ros-args` (e.g. '-p', 'mode:=clip')."""
    command = [sys.executable, "-m", "embody4d_ros.node", "--ros-args", *ros_args]
    return subprocess.Popen(
        command,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"},
    )


def publish_camera(rate_hz: float, frames: int, width: int = 640, height: int = 480, robot_from: int = -1) -> list[int]:
    """Run the RealSense-style publisher until it has published `frames` frames; returns their stamps. With
    `robot_from` >= 0 it also publishes its robot, with joint states from that frame on (rgbd_publisher.py)."""
    return run_camera(rate_hz, frames, width, height, robot_from)["stamps"]


def run_camera(rate_hz: float, frames: int, width: int = 640, height: int = 480, robot_from: int = -1) -> dict:
    """`publish_camera`, returning the publisher's whole report: {"stamps": [...], "cpu_s": CPU seconds of its
    publishing loop}."""
    done = subprocess.run(
        [
            sys.executable,
            str(PUBLISHER),
            "--rate",
            str(rate_hz),
            "--frames",
            str(frames),
            "--width",
            str(width),
            "--height",
            str(height),
            "--robot-from",
            str(robot_from),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120 + 2 * frames / rate_hz,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    if done.returncode != 0:
        raise RuntimeError(f"the camera publisher failed ({done.returncode}): {done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def stop(process: subprocess.Popen, sig: int = signal.SIGINT, timeout_s: float = 30.0) -> tuple[int, str, str]:
    """Signal the process and wait: (exit code, stdout, stderr)."""
    process.send_signal(sig)
    try:
        stdout, stderr = process.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        stdout, stderr = process.communicate()
    return process.returncode, stdout, stderr
