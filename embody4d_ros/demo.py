"""`embody4d demo`: a simulated RealSense clip through the whole virtual-camera path, scored against ground truth.

1. MuJoCo renders a Franka Panda (pybullet_data's URDF, at its true size) moving on a table from a source camera and
   from the true virtual camera (`offline_training.sim.render_two_view_clip`).
2. The source stream is recorded as a rosbag2 the way realsense-ros records it (rgb8 colour, aligned 16UC1 depth in
   millimetres, camera_info, default topic names, header stamps at the camera rate), next to what the robot
   publishes: `/robot_description` (the URDF, transient local, `package://` mesh URIs), `/joint_states` at their own
   rate (50 Hz, out of phase with the camera) and `/tf_static` (URDF root link -> camera_link from the hand-eye
   calibration, camera_link -> the colour optical frame from the camera driver). The recorded depth is what a
   RealSense-like stereo camera would give (`--depth-model stereo`, model.depth_sensor: noise, edge bands, shadows,
   flying pixels, dropouts). Frames are read back from the bag, so the demo exercises augment-bag's decoding.
3. Every frame is warped to the virtual camera and completed by an engine: by default `torch`, the Embody4D network
   with the shipped tiny weights (model/weights/tiny); `--engine warp` for classical hole filling only.
4. `augment-bag` runs on the recorded bag with its defaults (`robot.enable: auto`): finding the robot topics, it
   draws the robot from its model into the virtual view (the robot layer, docs/ROBOT.md). That view is compared
   with the plain warp engine's on the same frames (robot-region PSNR, robot silhouette IoU, PSNR where the plain
   warp covers and where it leaves holes), both completed by the warp engine.
5. Outputs in --out: `side_by_side.mp4` (source | warp | filled | ground truth), `robot_view.png` (source | plain |
   robot-aware | ground truth), `report.md`, `report.json` (per-frame latency, coverage against what the source can
   see, PSNR against the simulator's virtual view over all pixels and over the disoccluded ones, for the engine and
   for the classical fills push-pull and Telea on the same warps; the robot layer's comparison) and both bags. The
   demo robot (Panda) is a training morphology: held-out numbers are in docs/EVALUATION.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import cv2
import numpy as np

from model.engines.base import Engine, GenerationRequest

if TYPE_CHECKING:
    from embody4d_ros.bag_io import RecordedTopic
    from embody4d_ros.conversions import Frame

LABELS = ("source", "warp", "filled", "ground truth")
ROBOT_LABELS = ("source", "plain warp engine", "robot-aware", "ground truth")
# the sim library's URDF robots, by their path in the pybullet_data wheel: /robot_description carries the URDF
URDF_ROBOTS = {"panda_bullet": "franka_panda/panda.urdf"}
JOINT_STATE_HZ = 50.0
JOINT_STATE_PHASE_NS = 7_000_000  # a robot's clock is not the camera's
CAMERA_LINK = "camera_link"
# camera_link (x forward, z up) -> the optical frame (z forward, y down), as camera drivers publish it
T_LINK_OPTICAL = np.array([[0, 0, 1, 0], [-1, 0, 0, 0], [0, -1, 0, 0], [0, 0, 0, 1]], float)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="outputs/demo", help="output directory (default: %(default)s)")
    parser.add_argument("--frames", type=int, default=30, help="clip length (default: %(default)s)")
    parser.add_argument("--height", type=int, default=480, help="image height (default: %(default)s)")
    parser.add_argument("--width", type=int, default=640, help="image width (default: %(default)s)")
    parser.add_argument(
        "--robot",
        default="panda_bullet",
        choices=sorted(URDF_ROBOTS),
        help="URDF robot from the sim library (default: %(default)s)",
    )
    parser.add_argument("--seed", type=int, default=0, help="scene, motion and camera seed (default: %(default)s)")
    parser.add_argument(
        "--min-yaw", type=float, default=10.0, help="smallest yaw of the virtual camera from the source, degrees"
    )
    parser.add_argument(
        "--max-yaw", type=float, default=20.0, help="largest yaw of the virtual camera from the source, degrees"
    )
    parser.add_argument(
        "--engine", default="torch", help="generation engine (default: %(default)s, the shipped tiny model)"
    )
    parser.add_argument(
        "--inpaint", default="pushpull", choices=("pushpull", "telea"), help="hole filling of the warp engine"
    )
    parser.add_argument(
        "--fps", type=float, default=30.0, help="camera rate of the recorded stamps (default: %(default)s)"
    )
    parser.add_argument(
        "--storage", default="sqlite3", choices=("sqlite3", "mcap"), help="rosbag2 storage (default: %(default)s)"
    )
    parser.add_argument(
        "--depth-model",
        default="stereo",
        choices=("clean", "stereo", "mono"),
        help="depth recorded into the bag: as a RealSense-like stereo camera gives it (default), the "
        "simulator's clean depth, or a monocular estimate (model.depth_sensor)",
    )


def _label(image: np.ndarray, text: str) -> np.ndarray:
    out = image.copy()
    scale = max(0.4, image.shape[0] / 600)
    cv2.putText(out, text, (8, int(24 * scale + 4)), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(out, text, (8, int(24 * scale + 4)), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def _side_by_side(images: Sequence[np.ndarray], labels: Sequence[str]) -> np.ndarray:
    return np.concatenate([_label(image, name) for image, name in zip(images, labels)], axis=1)


def write_side_by_side(path: Path, columns: list[np.ndarray], fps: float) -> None:
    """mp4 of the (T, H, W, 3) uint8 clips in `columns` placed left to right, each labelled with LABELS."""
    import imageio.v2 as imageio

    with imageio.get_writer(path, fps=fps, codec="libx264", quality=8, macro_block_size=8) as writer:
        for frames in zip(*columns):
            writer.append_data(_side_by_side(frames, LABELS))


@dataclass
class RobotRecording:
    """What a robot publishes about itself, for a simulated clip: the URDF as `/robot_description` carries it (mesh
    URIs `package://<package>/...`, found through `mesh_search_path` as a user configures robot.mesh_search_paths),
    its root link, joint positions per camera frame by URDF joint name, and the camera's optical frame in the root
    link's frame (what hand-eye calibration gives)."""

    urdf: str
    mesh_search_path: str
    root_link: str
    joint_names: list[str]
    positions: np.ndarray  # (T, J)
    T_root_camera: np.ndarray

    def topics(self, frame_stamps_ns: Sequence[int], camera_frame: str) -> list[RecordedTopic]:
        """`/robot_description`, `/tf_static` and `/joint_states` as `bag_io.RecordedTopic`s: the latched ones before
        the first frame, joint states at JOINT_STATE_HZ from before the first frame to after the last, interpolated
        from the per-frame positions (the simulator moves the joints linearly between frames)."""
        from embody4d_ros.augment_bag import TF_STATIC_QOS, TF_TYPE
        from embody4d_ros.bag_io import RECORDED_QOS, RecordedTopic, typestore
        from embody4d_ros.conversions import make_header, make_transform, rosbags_types
        from embody4d_ros.robot_layer import JOINT_STATES, ROBOT_DESCRIPTION, TF_STATIC
        from model.geometry import invert_transform, matrix_to_pose

        store = typestore()
        types = rosbags_types(store)
        first, last = int(frame_stamps_ns[0]), int(frame_stamps_ns[-1])
        latched = first - 500_000_000
        hand_eye = make_transform(
            types,
            matrix_to_pose(self.T_root_camera @ invert_transform(T_LINK_OPTICAL)),
            latched,
            self.root_link,
            CAMERA_LINK,
        )
        driver = make_transform(types, matrix_to_pose(T_LINK_OPTICAL), latched, CAMERA_LINK, camera_frame)
        tf_message = store.types[TF_TYPE]
        period_ns = int(round(1e9 / JOINT_STATE_HZ))
        times = np.arange(first - 100_000_000 + JOINT_STATE_PHASE_NS, last + 100_000_000, period_ns)
        values = np.stack([np.interp(times, frame_stamps_ns, column) for column in self.positions.T], axis=1)
        joint_state = store.types["sensor_msgs/msg/JointState"]
        joint_states = [
            (
                int(time),
                joint_state(
                    header=make_header(types, int(time), ""),
                    name=list(self.joint_names),
                    position=value,
                    velocity=np.zeros(0),
                    effort=np.zeros(0),
                ),
            )
            for time, value in zip(times, values)
        ]
        description = store.types["std_msgs/msg/String"](data=self.urdf)
        return [
            RecordedTopic(ROBOT_DESCRIPTION, "std_msgs/msg/String", TF_STATIC_QOS, [(latched, description)]),
            RecordedTopic(
                TF_STATIC,
                TF_TYPE,
                TF_STATIC_QOS,
                [(latched, tf_message(transforms=[hand_eye])), (latched, tf_message(transforms=[driver]))],
            ),
            RecordedTopic(JOINT_STATES, "sensor_msgs/msg/JointState", RECORDED_QOS, joint_states),
        ]


def robot_recording(robot: str, sample: dict) -> RobotRecording:
    """The robot of `render_two_view_clip(robot, ...)`'s ``sample`` as it would publish itself: the sample carries
    its joint names, joint positions and the robot's base in the source optical frame (contract 6); the base is the
    URDF's root link. The demo checks the result against the simulator's own robot mask (`model_silhouette_iou` in
    the report)."""
    import pybullet_data

    from model.robot.urdf import parse_urdf

    relative = URDF_ROBOTS[robot]
    package = relative.split("/")[0]
    with open(os.path.join(pybullet_data.getDataPath(), relative)) as f:
        # pybullet's URDFs name meshes `package://meshes/...` relative to the URDF: a robot's description names its
        # package, `package://franka_panda/meshes/...`
        urdf = f.read().replace("package://", f"package://{package}/")
    search_path = pybullet_data.getDataPath()
    return RobotRecording(
        urdf=urdf,
        mesh_search_path=search_path,
        root_link=parse_urdf(urdf, search_paths=[search_path]).root,
        joint_names=list(sample["joint_names"]),
        positions=np.asarray(sample["joint_positions"], float),
        T_root_camera=np.linalg.inv(np.asarray(sample["T_src_base"], float)),
    )


class _Recording(Engine):
    """`inner`, keeping every request it is given (the robot layer's masks, for the report)."""

    def __init__(self, inner: Engine) -> None:
        self.inner, self.name = inner, inner.name
        self.requests: list[GenerationRequest] = []

    def generate(self, request: GenerationRequest) -> np.ndarray:
        self.requests.append(request)
        return self.inner.generate(request)


def _stats_ms(seconds: list[float]) -> dict[str, float]:
    ms = np.asarray(seconds) * 1000.0
    return {
        "mean": float(ms.mean()),
        "p50": float(np.median(ms)),
        "p95": float(np.percentile(ms, 95)),
        "max": float(ms.max()),
    }


def run(args: argparse.Namespace) -> int:
    from embody4d_ros.bag_io import REALSENSE, read_rgbd_frames, write_rgbd_bag
    from model.depth_sensor import expected_inverse_depth_error, sensor_depth
    from model.engines import EngineError, create_engine
    from model.engines.warp import WarpEngine
    from model.geometry import WarpSettings, invert_transform
    from model.virtual_view import prepare_virtual_view
    from offline_training.metrics import psnr, visible_in_source
    from offline_training.sim import CameraConfig, SceneConfig, render_two_view_clip

    try:
        engine = create_engine(args.engine, **({"inpaint": args.inpaint} if args.engine == "warp" else {}))
    except EngineError as exc:
        print(f"[demo] error: {exc}")
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()

    print(
        f"[demo] rendering {args.frames} frames of {args.robot} at {args.width}x{args.height} "
        "(source and true virtual view)"
    )
    # a virtual camera a moderate orbit away from the real one, as a robot set-up would place it
    cameras = CameraConfig(yaw_deg=(args.min_yaw, args.max_yaw), pitch_deg=(0.0, 8.0))
    scene_config = SceneConfig(robot_scale=(1.0, 1.0))  # the robot at its URDF's size, as a real one is
    sample = render_two_view_clip(
        robot=args.robot,
        num_frames=args.frames,
        height=args.height,
        width=args.width,
        seed=args.seed,
        scene_config=scene_config,
        camera_config=cameras,
    )
    robot = robot_recording(args.robot, sample)
    render_s = time.perf_counter() - started

    bag_path = out / "source_bag"
    if bag_path.exists():
        shutil.rmtree(bag_path)  # the demo's own output from an earlier run
    period_ns = int(round(1e9 / args.fps))
    stamps = [1_700_000_000 * 10**9 + i * period_ns for i in range(args.frames)]
    # the camera's depth, not the simulator's: a real RealSense records noise, edge bands, shadows and holes
    recorded_depth = sensor_depth(sample["src_depth"], sample["K_src"], args.depth_model, seed=args.seed)
    write_rgbd_bag(
        bag_path,
        sample["src_rgb"],
        recorded_depth,
        sample["K_src"],
        stamps,
        storage=args.storage,
        others=robot.topics(stamps, REALSENSE.frame_id),
    )
    frames = list(read_rgbd_frames(bag_path))
    if len(frames) != args.frames:
        print(f"[demo] error: wrote {args.frames} frames to {bag_path} but read back {len(frames)}")
        return 1
    print(
        f"[demo] recorded and read back {len(frames)} RGB-D frames from {bag_path} ({args.storage}), with "
        f"/robot_description, /tf_static and /joint_states at {JOINT_STATE_HZ:.0f} Hz"
    )

    K_dst, T_dst_src = sample["K_tgt"], sample["T_tgt_src"]
    out_hw = sample["tgt_rgb"].shape[1:3]
    # the warp is told how noisy the camera's depth is, as a user configures it for theirs
    noise = expected_inverse_depth_error(args.depth_model, sample["K_src"], args.width)
    settings = WarpSettings(depth_noise_inv_m=noise)

    def process(index: int):
        frame = frames[index]
        assert frame.depth is not None  # read_rgbd_frames requires depth by default
        t0 = time.perf_counter()
        view = prepare_virtual_view(
            frame.rgb, frame.depth, frame.K, T_dst_src[index], out_hw=out_hw, K_dst=K_dst, settings=settings
        )
        t1 = time.perf_counter()
        filled = engine.generate(view.request)[0]
        t2 = time.perf_counter()
        return view, filled, t1 - t0, t2 - t1

    process(0)  # compiles (or loads) the numba kernels once, as a node does at start-up
    classical = {"pushpull": WarpEngine(), "telea": WarpEngine(inpaint="telea")}
    warped_frames: list[np.ndarray] = []
    mask_frames: list[np.ndarray] = []
    filled_frames: list[np.ndarray] = []
    warp_s: list[float] = []
    fill_s: list[float] = []
    classical_filled: dict[str, list[np.ndarray]] = {name: [] for name in classical}
    for index in range(len(frames)):
        view, image, seconds_warp, seconds_fill = process(index)
        warped_frames.append(view.warp.image[0])
        mask_frames.append(view.warp.mask[0])
        filled_frames.append(image)
        warp_s.append(seconds_warp)
        fill_s.append(seconds_fill)
        for name, baseline in classical.items():
            classical_filled[name].append(baseline.generate(view.request)[0])
    warped, masks, filled = np.stack(warped_frames), np.stack(mask_frames), np.stack(filled_frames)

    truth = sample["tgt_rgb"]
    visible = np.stack(
        [
            visible_in_source(
                sample["tgt_depth"][t], sample["src_depth"][t], K_dst, sample["K_src"], invert_transform(T_dst_src[t])
            )
            for t in range(args.frames)
        ]
    )
    source_rgb = np.stack([f.rgb for f in frames])
    video_path = out / "side_by_side.mp4"
    write_side_by_side(video_path, [source_rgb, warped, filled, truth], fps=min(args.fps, 10.0))
    print("[demo] augment-bag on the recording (robot.enable: auto) and the plain warp engine on the same frames")
    robot_report = compare_robot_layer(args, out, bag_path, frames, sample, robot)

    report = {
        "robot": args.robot,
        "seed": args.seed,
        "frames": args.frames,
        "resolution": [args.width, args.height],
        "engine": engine.name,
        "inpaint": args.inpaint if args.engine == "warp" else None,
        "target": {
            "yaw_offset_deg": sample["meta"]["yaw_offset_deg"],
            "pitch_offset_deg": sample["meta"]["pitch_offset_deg"],
            "baseline_m": sample["meta"]["baseline_m"],
            "view_angle_deg": sample["meta"]["view_angle_deg"],
        },
        "bag": {
            "path": str(bag_path),
            "storage": args.storage,
            "color": REALSENSE.color,
            "depth": REALSENSE.depth,
            "camera_info": REALSENSE.camera_info,
            "depth_encoding": "16UC1 (mm)",
            "depth_model": args.depth_model,
        },
        "latency_ms": {
            "warp": _stats_ms(warp_s),
            "fill": _stats_ms(fill_s),
            "total": _stats_ms([a + b for a, b in zip(warp_s, fill_s)]),
        },
        "coverage": float(masks.mean()),
        "source_visible_fraction": float(visible.mean()),
        "psnr_db": {
            "filled_all_pixels": psnr(filled, truth),
            "filled_disoccluded": psnr(filled, truth, ~masks),
            "warp_covered_pixels": psnr(warped, truth, masks),
            "warp_covered_and_visible": psnr(warped, truth, masks & visible),
            **{
                f"{name}_{key}": value
                for name, images in classical_filled.items()
                for key, value in (
                    ("all_pixels", psnr(np.stack(images), truth)),
                    ("disoccluded", psnr(np.stack(images), truth, ~masks)),
                )
            },
        },
        "robot_layer": robot_report,
        "render_s": render_s,
        "wall_s": time.perf_counter() - started,
        "machine": _machine_description(),
    }
    (out / "report.json").write_text(json.dumps(report, indent=2))
    (out / "report.md").write_text(_markdown(report, video_path.name))
    latency, psnr_db = report["latency_ms"], report["psnr_db"]
    print(
        f"[demo] latency {latency['total']['mean']:.1f} ms/frame (warp {latency['warp']['mean']:.1f}, "
        f"fill {latency['fill']['mean']:.1f}); coverage {report['coverage']:.3f} of "
        f"{report['source_visible_fraction']:.3f} visible; PSNR covered {psnr_db['warp_covered_pixels']:.2f} dB, "
        f"filled {psnr_db['filled_all_pixels']:.2f} dB (disoccluded {psnr_db['filled_disoccluded']:.2f}; "
        f"Telea {psnr_db['telea_disoccluded']:.2f}, push-pull {psnr_db['pushpull_disoccluded']:.2f})"
    )
    plain, aware = robot_report["plain"], robot_report["robot_aware"]
    if robot_report["model_silhouette_iou_source"] < 0.95:  # the scene rebuilt for the recording is not the clip's
        print(
            f"[demo] warning: the recorded robot (joints, TF) matches the simulator's robot mask only with IoU "
            f"{robot_report['model_silhouette_iou_source']:.3f}; the robot layer's numbers below are not meaningful"
        )
    print(
        f"[demo] robot layer: drawn in {robot_report['frames_drawn']} of {args.frames} frames; robot-region PSNR "
        f"{aware['robot_region_psnr_db']:.2f} dB (plain {plain['robot_region_psnr_db']:.2f}), silhouette IoU "
        f"{aware['silhouette_iou']:.3f} (plain {plain['silhouette_iou']:.3f}), disoccluded "
        f"{aware['psnr_plain_disoccluded_db']:.2f} dB (plain {plain['psnr_plain_disoccluded_db']:.2f})"
    )
    print(f"[demo] wrote {video_path}, {out / robot_report['picture']}, {out / 'report.md'}, {out / 'report.json'}")
    return 0


def compare_robot_layer(
    args: argparse.Namespace, out: Path, bag_path: Path, frames: list[Frame], sample: dict, robot: RobotRecording
) -> dict[str, Any]:
    """augment-bag on the recording with its defaults (`robot.enable: auto`: the robot topics are there) against the
    plain warp engine on the same frames, both scored against the simulator's virtual view; writes the picture."""
    from embody4d_ros.augment_bag import augment_bag
    from embody4d_ros.bag_io import CameraTopics, read_rgbd_frames
    from embody4d_ros.live import output_topics
    from embody4d_ros.params import validate
    from model.engines.warp import WarpEngine
    from model.geometry import invert_transform, matrix_to_pose
    from model.robot import RobotModel
    from model.virtual_view import prepare_virtual_view
    from offline_training.metrics import psnr

    compare_started = time.perf_counter()
    T_dst_src = sample["T_tgt_src"][0]  # the cameras are fixed
    truth, robot_truth = sample["tgt_rgb"], sample["tgt_robot_mask"] > 0
    out_hw = truth.shape[1:3]
    # what a user runs: the virtual camera's pose, where to find the meshes; everything else the defaults
    params = validate(
        {
            "target.pose": list(matrix_to_pose(invert_transform(T_dst_src))),
            "robot.mesh_search_paths": robot.mesh_search_path,
        }
    )
    engine = _Recording(WarpEngine(inpaint=args.inpaint))
    augmented = out / "augmented_bag"
    if augmented.exists():
        shutil.rmtree(augmented)  # the demo's own output from an earlier run
    started = time.perf_counter()
    summary = augment_bag(
        bag_path, augmented, {"virtual_camera": params}, engine_factory=lambda _: engine, progress=False
    )
    augment_s = time.perf_counter() - started
    topics = output_topics(params)
    virtual = CameraTopics(topics.image, topics.image + "/no_depth", topics.camera_info, params["virtual_frame_id"])
    aware = np.stack([frame.rgb for frame in read_rgbd_frames(augmented, virtual, require_depth=False)])
    aware_covered = np.concatenate([request.warp_mask for request in engine.requests])
    aware_robot = np.concatenate(
        [
            request.target_interaction > 0.5
            if request.target_interaction is not None
            else np.zeros(request.warp_mask.shape, bool)  # a frame made without the robot layer
            for request in engine.requests
        ]
    )

    # the plain warp engine as augment-bag makes it without the robot layer (same warp, same fill); the simulator's
    # robot mask warped alongside is where that view shows the robot
    plain_engine = WarpEngine(inpaint=args.inpaint)
    plain_frames, covered_frames, plain_robot_frames = [], [], []
    for frame, mask in zip(frames, sample["src_robot_mask"]):
        assert frame.depth is not None  # read_rgbd_frames requires depth by default
        view = prepare_virtual_view(frame.rgb, frame.depth, frame.K, T_dst_src, out_hw=out_hw, source_interaction=mask)
        assert view.request.target_interaction is not None  # source_interaction was given
        plain_frames.append(plain_engine.generate(view.request)[0])
        covered_frames.append(view.warp.mask[0])
        plain_robot_frames.append(view.request.target_interaction[0] > 0.5)
    plain, covered, plain_robot = np.stack(plain_frames), np.stack(covered_frames), np.stack(plain_robot_frames)

    def scores(images: np.ndarray, coverage: np.ndarray, robot_mask: np.ndarray) -> dict[str, float]:
        return {
            "robot_region_psnr_db": psnr(images, truth, robot_truth),
            "silhouette_iou": _iou(robot_mask, robot_truth),
            "psnr_all_db": psnr(images, truth),
            "psnr_plain_covered_db": psnr(images, truth, covered),
            "psnr_plain_disoccluded_db": psnr(images, truth, ~covered),
            "coverage": float(coverage.mean()),
        }

    # the recording checked against the simulator: the model, at the recorded joints and TF, on the source camera
    model = RobotModel.from_urdf_string(robot.urdf, [robot.mesh_search_path])
    height, width = sample["src_rgb"].shape[1:3]
    drawn_source = np.stack(
        [
            model.render(
                dict(zip(robot.joint_names, positions)),
                sample["K_src"],
                invert_transform(robot.T_root_camera),
                height,
                width,
                with_colour=False,
            ).mask
            for positions in robot.positions
        ]
    )
    middle = len(frames) // 2
    picture = "robot_view.png"
    sheet = _side_by_side([frames[middle].rgb, plain[middle], aware[middle], truth[middle]], ROBOT_LABELS)
    cv2.imwrite(str(out / picture), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    outcomes = summary["robot"]["virtual_camera"]
    return {
        "urdf": f"pybullet_data/{URDF_ROBOTS[args.robot]}",
        "root_link": robot.root_link,
        "joints": robot.joint_names,
        "joint_state_hz": JOINT_STATE_HZ,
        "outcomes": outcomes,
        "frames_drawn": outcomes.get("drawn", 0),
        "model_silhouette_iou_source": _iou(drawn_source, sample["src_robot_mask"] > 0),
        "augment_bag_s": augment_s,
        "comparison_s": time.perf_counter() - compare_started,  # what the robot layer's part adds to the demo
        "engine": f"warp ({args.inpaint})",
        "picture": picture,
        "picture_frame": middle,
        "plain": scores(plain, covered, plain_robot),
        "robot_aware": scores(aware, aware_covered, aware_robot),
    }


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def _machine_description() -> str:
    """CPU, core count and load: latency on a shared machine means little without them."""
    parts = [platform.machine(), platform.processor(), f"{os.cpu_count()} cores", "CPU only"]
    if hasattr(os, "getloadavg"):
        parts.append(f"1-min load average {os.getloadavg()[0]:.1f}")
    return ", ".join(part for part in parts if part)


def _markdown(report: dict, video_name: str) -> str:
    latency = report["latency_ms"]
    rows = "\n".join(
        f"| {name} | " + " | ".join(f"{latency[name][stat]:.1f}" for stat in ("mean", "p50", "p95", "max")) + " |"
        for name in ("warp", "fill", "total")
    )
    psnr_db = report["psnr_db"]
    target = report["target"]
    width, height = report["resolution"]

    def all_and_disoccluded(method: str) -> str:
        return f"{psnr_db[method + '_all_pixels']:.2f} / {psnr_db[method + '_disoccluded']:.2f} dB"

    fill = f"{report['inpaint']} fill" if report["inpaint"] else "the shipped tiny weights"
    return f"""# Embody4D-ROS demo

{report["frames"]} frames of a simulated {report["robot"]} at {width}x{height}, recorded as a
realsense-style rosbag2 ({report["bag"]["storage"]}: `{report["bag"]["color"]}`, `{report["bag"]["depth"]}` in
{report["bag"]["depth_encoding"]}, `{report["bag"]["camera_info"]}`), read back, warped to the simulator's true virtual
camera ({target["view_angle_deg"]:.1f} deg from the source, {target["baseline_m"]:.2f} m baseline) and completed by the
`{report["engine"]}` engine ({fill}). Video: `{video_name}` (source | warp | filled | ground truth).

## Latency per frame (ms, after warm-up; {report["machine"]})

| stage | mean | p50 | p95 | max |
|---|---|---|---|---|
{rows}

## Quality against the simulator's virtual view

| metric | value |
|---|---|
| coverage (warp mask) | {report["coverage"]:.3f} |
| fraction of the target the source can see | {report["source_visible_fraction"]:.3f} |
| PSNR, warp on covered pixels | {psnr_db["warp_covered_pixels"]:.2f} dB |
| PSNR, warp on covered pixels the source sees | {psnr_db["warp_covered_and_visible"]:.2f} dB |
| PSNR, `{report["engine"]}` engine, all pixels / disoccluded | {all_and_disoccluded("filled")} |
| PSNR, warp + push-pull fill, all pixels / disoccluded | {all_and_disoccluded("pushpull")} |
| PSNR, warp + Telea, all pixels / disoccluded | {all_and_disoccluded("telea")} |

{_robot_markdown(report["robot_layer"], report["frames"])}
The demo robot is a training morphology; held-out numbers (unseen morphologies) are in docs/EVALUATION.md.

Rendering took {report["render_s"]:.1f} s; the whole demo {report["wall_s"]:.1f} s.
"""


def _robot_markdown(robot: dict, frames: int) -> str:
    plain, aware = robot["plain"], robot["robot_aware"]
    rows = [
        ("robot-region PSNR (the simulator's robot mask)", "robot_region_psnr_db", "{:.2f} dB"),
        ("robot silhouette IoU", "silhouette_iou", "{:.3f}"),
        ("PSNR where the plain warp covers", "psnr_plain_covered_db", "{:.2f} dB"),
        ("PSNR where the plain warp leaves holes (disoccluded)", "psnr_plain_disoccluded_db", "{:.2f} dB"),
        ("PSNR, all pixels", "psnr_all_db", "{:.2f} dB"),
        ("coverage (warp mask, the drawn robot included)", "coverage", "{:.3f}"),
    ]
    table = "\n".join(f"| {name} | {fmt.format(plain[key])} | {fmt.format(aware[key])} |" for name, key, fmt in rows)
    outcomes = ", ".join(f"{name} {count}" for name, count in sorted(robot["outcomes"].items())) or "none"
    return f"""## The robot layer: augment-bag with `robot.enable: auto`

The bag also holds what the robot publishes: `/robot_description` (`{robot["urdf"]}`, root link
`{robot["root_link"]}`, `package://` mesh URIs), `/joint_states` at {robot["joint_state_hz"]:.0f} Hz and `/tf_static`
({robot["root_link"]} -> camera_link -> the colour optical frame). `embody4d augment-bag` with its defaults and the
true virtual camera's pose drew the robot from its model in {robot["frames_drawn"]} of {frames} frames (outcomes:
{outcomes}). The plain warp engine is what the same command makes with `robot.enable: false`; both are completed by
the `{robot["engine"]}` engine and scored against the simulator's virtual view. augment-bag took
{robot["augment_bag_s"]:.1f} s for the whole bag, the comparison {robot["comparison_s"]:.1f} s in all. Picture:
`{robot["picture"]}` (source | plain warp engine | robot-aware | ground truth, frame {robot["picture_frame"]}).

| metric | plain warp engine | robot-aware |
|---|---|---|
{table}

The robot model at the recorded joint states and TF, drawn in the source camera, matches the simulator's robot mask
with IoU {robot["model_silhouette_iou_source"]:.3f}.
"""
