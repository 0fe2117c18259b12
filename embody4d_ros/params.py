"""The one parameter schema of the virtual camera: node parameters, `config/virtual_camera.yaml`, CLI overrides.

Names are the node's; nested ones are dotted (`target.yaw_deg`), in YAML either dotted or as nested mappings.
A parameters file may hold several node sections (`virtual_camera:`, `virtual_camera_left:`, ...): each is one
virtual camera, and a `/**:` section applies to all of them, as in ROS 2.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

import yaml

from model.depth_sensor import DEPTH_SOURCES
from model.engines.base import available_engines

DEFAULT_NODE_NAME = "virtual_camera"


class ParameterError(ValueError):
    """A parameter is unknown or has a bad value; the message names it and says what is accepted."""


@dataclass(frozen=True)
class ParamSpec:
    """One parameter: its name, default (which also fixes its type), description, and accepted values."""

    name: str
    default: Any
    description: str
    choices: tuple[str, ...] = ()
    min_value: float | None = None
    read_only: bool = True  # the node builds its pipeline from these at start-up

    @property
    def kind(self) -> type:
        return list if isinstance(self.default, (list, tuple)) else type(self.default)


SCHEMA: tuple[ParamSpec, ...] = (
    ParamSpec("color_topic", "/camera/camera/color/image_raw", "source colour image (rgb8, bgr8, rgba8, bgra8, mono8)"),
    ParamSpec(
        "depth_topic",
        "/camera/camera/aligned_depth_to_color/image_raw",
        "source depth aligned to colour (16UC1 mm or 32FC1 m); unused when depth.source is an estimator",
    ),
    ParamSpec("camera_info_topic", "/camera/camera/color/camera_info", "camera_info of the colour image"),
    ParamSpec("output_namespace", "/virtual_camera", "outputs go to <ns>/color/image_raw and <ns>/color/camera_info"),
    ParamSpec("virtual_frame_id", "virtual_camera_color_optical_frame", "frame_id of the virtual optical frame"),
    ParamSpec(
        "mode",
        "image",
        "image: one virtual frame per source frame; clip: buffer clip_length frames",
        choices=("image", "clip"),
    ),
    ParamSpec("clip_length", 49, "frames per clip in clip mode (4k+1 for the video VAE)", min_value=1),
    ParamSpec("clip_overlap", 8, "frames shared by consecutive clips in clip mode (< clip_length)", min_value=0),
    ParamSpec("engine", "warp", "generation engine", choices=tuple(available_engines())),
    ParamSpec("model_path", "", "weights / exported model for network engines (empty: the shipped weights)"),
    ParamSpec(
        "engine_fallback",
        True,
        "if the engine cannot start, use the next that can (tensorrt, onnxruntime, torch, warp), logged at ERROR",
    ),
    ParamSpec("force_engine_update", False, "tensorrt: rebuild the cached engine plan even if it matches"),
    ParamSpec(
        "target.mode", "orbit", "viewpoint: orbit around the line of sight, or a fixed pose", choices=("orbit", "pose")
    ),
    ParamSpec("target.yaw_deg", 20.0, "orbit: degrees to the right (negative: left)"),
    ParamSpec("target.pitch_deg", 0.0, "orbit: degrees up (negative: down)"),
    ParamSpec("target.forward_m", 0.0, "orbit: metres towards the scene along the virtual optical axis"),
    ParamSpec(
        "target.pivot_m",
        0.0,
        "orbit: pivot distance along the optical axis in m (0 = median centre depth)",
        min_value=0.0,
    ),
    ParamSpec(
        "target.pose",
        [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0],
        "pose: [x, y, z, qx, qy, qz, qw] of the virtual optical frame in the source optical frame",
    ),
    ParamSpec("output_width", 0, "virtual image width in pixels (0 = the source's)", min_value=0),
    ParamSpec("output_height", 0, "virtual image height in pixels (0 = the source's)", min_value=0),
    ParamSpec("sync_slop_s", 0.02, "max stamp difference between colour and depth to pair them (s)", min_value=0.0),
    ParamSpec(
        "queue_size",
        10,
        "per-topic input queue, and frames waiting for the engine; the oldest are dropped beyond it",
        min_value=1,
    ),
    ParamSpec(
        "warp_threads",
        2,
        "CPU threads of the warp (the result does not depend on it; 1 leaves the other cores to the engine)",
        min_value=1,
    ),
    ParamSpec(
        "qos",
        "reliable",
        "subscriber QoS: reliable (every frame of a reliable publisher such as realsense-ros) "
        "or sensor_data (best effort: matches any publisher, but loses most large images)",
        choices=("reliable", "sensor_data"),
    ),
    ParamSpec("openpi_224", False, "also publish <ns>/openpi/image_raw, 224x224 pad-resized for openpi / pi0 clients"),
    ParamSpec(
        "depth.source",
        "sensor",
        "depth from the depth topic, or a monocular estimator on the colour image",
        choices=("sensor", "depth_anything_v2"),
    ),
    ParamSpec(
        "depth.sensor",
        "d435",
        "what the depth comes from: a RealSense model (its expected error keeps the warp from tearing noisy "
        "surfaces apart), clean (simulated or post-processed to be exact), or mono (a monocular estimate, scaled to "
        "the robot's rendered depth); set to mono by an estimator in depth.source",
        choices=DEPTH_SOURCES,
    ),
    ParamSpec("depth.model_path", "", "local directory of the depth estimator (transformers format)"),
    ParamSpec("depth.device", "cpu", "torch device of the depth estimator (cpu, cuda, cuda:1)"),
    # the robot layer (docs/ROBOT.md): the robot drawn from /robot_description, /joint_states and TF
    ParamSpec(
        "robot.enable",
        "auto",
        "auto: on where a robot description, joint states and the camera's TF are there",
        choices=("auto", "true", "false"),
    ),
    ParamSpec("robot.urdf_path", "", "URDF file used instead of /robot_description"),
    ParamSpec("robot.mesh_search_paths", "", "extra directories (':'-separated) for package:// and relative mesh URIs"),
    ParamSpec("robot.camera_frame", "", "the colour camera's optical frame in TF (empty: the image's frame_id)"),
    ParamSpec(
        "robot.T_camera_root",
        [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
        "[x, y, z, qx, qy, qz, qw] of the URDF root in the camera optical frame, overriding TF (all 0: use TF)",
    ),
    ParamSpec("robot.joint_slop_s", 0.05, "joint states this much older than a frame are stale", min_value=0.0),
    ParamSpec("robot.scene_memory", True, "remember the background behind the robot (fixed camera)"),
    ParamSpec(
        "robot.hand_eye_every", 30, "check the hand-eye calibration every this many frames (0: never)", min_value=0
    ),
    ParamSpec("robot.hand_eye_tolerance_m", 0.01, "hand-eye offset above which a warning is logged", min_value=0.0),
    ParamSpec("robot.gripper_link", "", "link of the gripper: the scene within its reach joins the interaction mask"),
)
SPECS: dict[str, ParamSpec] = {spec.name: spec for spec in SCHEMA}


def defaults() -> dict[str, Any]:
    return {spec.name: list(spec.default) if spec.kind is list else spec.default for spec in SCHEMA}


def _coerce(spec: ParamSpec, value: Any) -> Any:
    """Value converted to the spec's type (int -> float allowed, never float -> int or str -> number)."""
    kind = spec.kind
    bad = ParameterError(
        f"parameter {spec.name} must be {kind.__name__}"
        f"{' of numbers' if kind is list else ''}, got {value!r} ({type(value).__name__})"
    )
    if kind is bool:
        if not isinstance(value, bool):
            raise bad
    elif kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad
    elif kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise bad
        value = float(value)
    elif kind is str:
        if not isinstance(value, str):
            raise bad
    elif kind is list:
        if not isinstance(value, (list, tuple)) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in value
        ):
            raise bad
        value = [float(v) for v in value]
        if len(value) != len(spec.default):
            raise ParameterError(f"parameter {spec.name} needs {len(spec.default)} numbers, got {len(value)}: {value}")
    if spec.choices and value not in spec.choices:
        raise ParameterError(f"parameter {spec.name} must be one of {list(spec.choices)}, got {value!r}")
    if spec.min_value is not None and value < spec.min_value:
        raise ParameterError(f"parameter {spec.name} must be >= {spec.min_value}, got {value!r}")
    return value


# The viewpoint parameters each target.mode uses (DESIGN.md contract 2).
TARGET_PARAMETERS = {
    "orbit": ("target.yaw_deg", "target.pitch_deg", "target.forward_m", "target.pivot_m"),
    "pose": ("target.pose",),
}


def with_target_mode(values: Mapping[str, Any]) -> dict[str, Any]:
    """`values` with target.mode set by the viewpoint parameters they hold, when they do not set it themselves.

    `target.pose=[...]` alone means pose mode and `target.yaw_deg=30` alone orbit mode: a viewpoint that is set must
    not be ignored silently. Parameters of both modes without target.mode are refused as ambiguous.
    """
    values = dict(values)
    if "target.mode" in values:
        return values
    modes = sorted(mode for mode, names in TARGET_PARAMETERS.items() if any(name in values for name in names))
    if len(modes) > 1:
        given = sorted(name for names in TARGET_PARAMETERS.values() for name in names if name in values)
        raise ParameterError(
            f"parameters {given} are viewpoints of both target.mode orbit and pose; "
            "set target.mode to say which one to use"
        )
    if modes:
        values["target.mode"] = modes[0]
    return values


def validate(values: Mapping[str, Any]) -> dict[str, Any]:
    """Schema defaults updated with `values` (dotted names), each checked and coerced; cross-checks too.

    Viewpoint parameters set without target.mode select their mode (`with_target_mode`).
    """
    unknown = sorted(set(values) - set(SPECS))
    if unknown:
        raise ParameterError(f"unknown parameter(s) {unknown}; known: {sorted(SPECS)}")
    values = with_target_mode(values)
    params = defaults()
    params.update({name: _coerce(SPECS[name], value) for name, value in values.items()})
    if params["clip_overlap"] >= params["clip_length"]:
        raise ParameterError(f"clip_overlap ({params['clip_overlap']}) must be < clip_length ({params['clip_length']})")
    if params["depth.source"] != "sensor":  # an estimator on the colour image gives a monocular estimate
        if values.get("depth.sensor", "mono") != "mono":
            raise ParameterError(
                f"depth.source {params['depth.source']} is a monocular estimator, but depth.sensor is "
                f"{values['depth.sensor']!r}: set depth.sensor to mono or leave it out"
            )
        params["depth.sensor"] = "mono"
    if params["target.mode"] == "pose" and not any(params["target.pose"][3:]):
        raise ParameterError("target.pose quaternion [qx, qy, qz, qw] is all zero; identity is [0, 0, 0, 1]")
    return params


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{'target': {'yaw_deg': 5}} -> {'target.yaw_deg': 5}; dotted keys pass through."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def load_params_file(path: str | Path) -> dict[str, dict[str, Any]]:
    """Node name -> raw flat parameters of each section of a ROS 2 parameters file (`/**` merged into each)."""
    path = Path(path)
    try:
        document = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ParameterError(f"parameters file {path} does not exist") from None
    except yaml.YAMLError as exc:
        raise ParameterError(f"parameters file {path} is not valid YAML: {exc}") from None
    if not isinstance(document, Mapping):
        raise ParameterError(f"parameters file {path} must map node names to {{ros__parameters: ...}}")
    sections: dict[str, dict[str, Any]] = {}
    for node, body in document.items():
        if not isinstance(body, Mapping) or "ros__parameters" not in body:
            raise ParameterError(f"section {node!r} of {path} has no ros__parameters mapping")
        sections[str(node).strip("/")] = flatten(body["ros__parameters"] or {})
    shared = sections.pop("**", {})
    if not sections:
        sections[DEFAULT_NODE_NAME] = {}
    return {node: {**shared, **values} for node, values in sections.items()}


def parse_override(text: str) -> tuple[str, Any]:
    """'target.yaw_deg=15' -> ('target.yaw_deg', 15); values parse as YAML scalars, lists as [a,b,c]."""
    name, sep, raw = text.partition("=")
    name = name.strip()
    if not sep or not name:
        raise ParameterError(f"--param needs NAME=VALUE, got {text!r}")
    if name not in SPECS:
        raise ParameterError(f"unknown parameter {name!r} in --param {text!r}; known: {sorted(SPECS)}")
    if SPECS[name].kind is str:
        return name, raw  # a topic such as /a:b or a value like 'on' stays text
    try:
        return name, yaml.safe_load(raw)
    except yaml.YAMLError:
        raise ParameterError(f"cannot parse the value of --param {text!r}") from None


def resolve(params_file: str | Path | None = None, overrides: Iterable[str] = ()) -> dict[str, dict[str, Any]]:
    """Validated parameters of every virtual camera: node name -> full parameter dict.

    Schema defaults, then the file's section (if any), then `--param` overrides (applied to every camera).
    Each layer's viewpoint parameters select their target.mode unless that layer sets it (`with_target_mode`):
    `--param target.pose=[...]` over a file in orbit mode renders that pose. Several cameras must differ in
    output_namespace.
    """
    sections = load_params_file(params_file) if params_file else {DEFAULT_NODE_NAME: {}}
    extra = with_target_mode(dict(parse_override(text) for text in overrides))
    cameras = {}
    for node, values in sections.items():
        try:
            cameras[node] = validate({**with_target_mode(values), **extra})
        except ParameterError as exc:
            raise ParameterError(f"{node}: {exc}") from None
    namespaces = [p["output_namespace"] for p in cameras.values()]
    if len(set(namespaces)) != len(namespaces):
        raise ParameterError(f"virtual cameras need distinct output_namespace values, got {namespaces}")
    return cameras
