"""What the live transports share (the rclpy node, the DDS node, the launch file), kept free of ROS imports.

Output topic names, the messages of one virtual frame, the static-TF pose, diagnostics, engine warm-up and the
launch file's parameter resolution live here, so each transport is only wiring and each piece is tested without ROS.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from embody4d_ros.conversions import MessageTypes, make_camera_info, rgb_to_image
from embody4d_ros.params import ParameterError, resolve
from embody4d_ros.runtime import VirtualFrame, pad_resize
from model.engines.base import Engine
from model.geometry import OrbitTarget, invert_transform, matrix_to_pose
from model.virtual_view import render_virtual_view

OPENPI_SIZE = 224


@dataclass(frozen=True)
class OutputTopics:
    """Where one virtual camera publishes (docs/DESIGN.md contract 5); `openpi` is None unless openpi_224 is set."""

    image: str
    camera_info: str
    openpi: str | None


def output_topics(params: Mapping[str, Any]) -> OutputTopics:
    ns = params["output_namespace"].rstrip("/")
    if not ns.startswith("/"):
        raise ParameterError(f"output_namespace must be absolute (start with '/'), got {params['output_namespace']!r}")
    return OutputTopics(
        f"{ns}/color/image_raw", f"{ns}/color/camera_info", f"{ns}/openpi/image_raw" if params["openpi_224"] else None
    )


def frame_messages(types: MessageTypes, frame: VirtualFrame, topics: OutputTopics) -> dict[str, Any]:
    """Topic -> message for one virtual frame: rgb8 image, its camera_info, and the 224x224 openpi image if wanted.

    All carry the source frame's stamp and the virtual frame id (docs/DESIGN.md conventions).
    """
    height, width = frame.rgb.shape[:2]
    messages = {
        topics.image: rgb_to_image(types, frame.rgb, frame.stamp_ns, frame.frame_id),
        topics.camera_info: make_camera_info(types, frame.K, width, height, frame.stamp_ns, frame.frame_id),
    }
    if topics.openpi is not None:
        messages[topics.openpi] = rgb_to_image(
            types, pad_resize(frame.rgb, OPENPI_SIZE), frame.stamp_ns, frame.frame_id
        )
    return messages


def static_tf_pose(T_dst_src: np.ndarray) -> np.ndarray:
    """[x, y, z, qx, qy, qz, qw] of the virtual optical frame in the source optical frame (parent = source)."""
    return matrix_to_pose(invert_transform(T_dst_src))


# Drop reasons that are faults of the node itself (the rest is input the node could not use).
FAULTS = ("generation_failed", "engine_error")
# Image mode: a WARN when fewer virtual frames than colour frames come out over one report, beyond this slack.
RATE_GAP = 0.1
INPUT_TOPICS = ("color", "depth", "camera_info")
PUBLISHER_DEPTH = 5
ROBOT_PREFIX = "robot_"  # the runtime's counts of robot-layer outcomes: "robot_drawn" and the reasons for a skip


def publisher_depth(params: Mapping[str, Any]) -> int:
    """Keep-last depth of the output publishers. A clip goes out back to back, so the history must hold it whole,
    or a reliable publisher overwrites its oldest frames before subscribers have them (and camera_infos unpair); it
    holds two, because a sample lost on the wire is resent only after the next heartbeat (Fast DDS: up to 3 s), by
    which time the next clip may have gone out (one camera_info of 90 was lost with room for one clip)."""
    return max(PUBLISHER_DEPTH, 2 * params["clip_length"]) if params["mode"] == "clip" else PUBLISHER_DEPTH


def diagnostic_status(
    summary: Mapping[str, Any],
    previous: Mapping[str, Any] | None,
    elapsed_s: float,
    requested_engine: str,
    running_engine: str,
    clip_fill: tuple[int, int] | None = None,
) -> tuple[str, str, dict[str, str]]:
    """(level 'OK'|'WARN'|'ERROR', message, key -> value) from two `RuntimeStats.summary()` snapshots.

    ERROR only for faults of the node: a fallback engine running in place of the requested one (visible, never
    silent) and generation failures. WARN when input was dropped (unpaired colour or depth, lost in transport, the
    engine busy, ...), when the robot layer skipped frames (no model, joint states missing or stale, TF missing),
    and, in image mode, when fewer frames came out than colour frames went in. A filling clip is
    OK. `clip_fill` is `VirtualCameraRuntime.clip_fill()` (None in image mode).
    """
    counts, drops = summary["counts"], summary["drops"]
    before_counts = previous["counts"] if previous else {}
    before_drops = previous["drops"] if previous else {}

    def new(name: str) -> int:
        return counts.get(name, 0) - before_counts.get(name, 0)

    def rate(name: str) -> str:
        return f"{new(name) / elapsed_s:.2f}" if elapsed_s > 0 else "0"

    out_now, in_now = new("frames_out"), new("color_in")
    new_drops = {k: v - before_drops.get(k, 0) for k, v in drops.items() if v > before_drops.get(k, 0)}
    values = {
        "engine": running_engine,
        "requested engine": requested_engine,
        "output rate (Hz)": rate("frames_out"),
        "frames out": str(counts.get("frames_out", 0)),
    }
    for topic in INPUT_TOPICS:
        values[f"input {topic} rate (Hz)"] = rate(f"{topic}_in")
        values[f"input {topic} messages"] = str(counts.get(f"{topic}_in", 0))
    if clip_fill is not None:
        values["clip fill"] = f"{clip_fill[0]}/{clip_fill[1]}"
    for stage, stat in summary["latency_ms"].items():
        values[f"latency {stage} p50/p99 (ms)"] = f"{stat['p50']:.1f}/{stat['p99']:.1f}"
    values.update({f"drops {k}": str(v) for k, v in sorted(drops.items())})
    if "fill_stage_busy" in counts:  # image mode's warp waited for the engine: frames queue before it
        values["fill stage busy"] = str(counts["fill_stage_busy"])
    # the robot layer: frames drawn with the robot, and why others were made without it
    robot = {k[len(ROBOT_PREFIX) :]: k for k in sorted(counts) if k.startswith(ROBOT_PREFIX)}
    values.update({f"robot layer {outcome}": str(counts[key]) for outcome, key in robot.items()})
    robot_skips = {outcome: new(key) for outcome, key in robot.items() if outcome != "drawn" and new(key) > 0}
    if running_engine != requested_engine:
        return "ERROR", f"engine {requested_engine!r} could not start; running the fallback {running_engine!r}", values
    faults = {k: v for k, v in new_drops.items() if k in FAULTS}
    if faults:
        return "ERROR", "generation failed: " + ", ".join(f"{k} {v}" for k, v in sorted(faults.items())), values
    problems = ["dropped " + ", ".join(f"{k} {v}" for k, v in sorted(new_drops.items()))] if new_drops else []
    if clip_fill is None and in_now and out_now < (1 - RATE_GAP) * in_now - 1:
        problems.append(f"output {rate('frames_out')} Hz below colour input {rate('color_in')} Hz")
    if robot_skips:  # frames went out, but without the robot the user asked for (or with a stopped arm)
        problems.append("robot layer skipped " + ", ".join(f"{k} {v}" for k, v in robot_skips.items()))
    if problems:
        return "WARN", "; ".join(problems), values
    if clip_fill is not None and not out_now and in_now:
        return "OK", f"filling the clip ({clip_fill[0]}/{clip_fill[1]} frames)", values
    return "OK", "publishing" if out_now else "waiting for input", values


def warm_up(engine: Engine, height: int = 48, width: int = 64) -> float:
    """Render one synthetic frame through the runtime's path (virtual_view glue, warp, engine) so that JIT
    compilation happens before real input. Returns the seconds it took (numba compiles unless cached on disk)."""
    started = time.perf_counter()
    K = np.array([[width, 0.0, (width - 1) / 2], [0.0, width, (height - 1) / 2], [0.0, 0.0, 1.0]])
    rgb = np.full((1, height, width, 3), 128, np.uint8)
    render_virtual_view(engine, rgb, np.ones((1, height, width), np.float32), K, OrbitTarget(yaw_deg=5.0, pivot_m=1.0))
    return time.perf_counter() - started


def launch_cameras(params_file: str | None, arguments: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """Node name -> validated parameters for each node section of `params_file`, with the launch arguments that are
    set (non-empty text, parameter name -> value text) applied to every section."""
    return resolve(params_file or None, [f"{name}={text}" for name, text in arguments.items() if text != ""])
