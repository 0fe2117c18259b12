"""augment-bag on a bag with the standard robot topics (`/robot_description`, `/joint_states` at their own rate,
`/tf_static`): the robot-aware view is made by default (`robot.enable: auto`), it draws the robot's far side that the
plain warp leaves as a hole, and without the robot topics the output is the plain one."""

import cv2
import numpy as np

from embody4d_ros.augment_bag import TF_STATIC_QOS, augment_bag
from embody4d_ros.bag_io import RECORDED_QOS, CameraTopics, RecordedTopic, read_rgbd_frames, typestore, write_rgbd_bag
from embody4d_ros.conversions import make_header, make_transform, rosbags_types
from embody4d_ros.params import resolve
from model.engines.base import Engine
from model.geometry import OrbitTarget, matrix_to_pose, target_transform
from model.robot import RobotModel

T, H, W = 3, 96, 128
K = np.array([[120.0, 0, 63.5], [0, 120.0, 47.5], [0, 0, 1]])
ARM = """<robot name="arm"><link name="base"/><link name="arm"><visual><origin xyz="0 0 0.2"/>
<geometry><box size="0.12 0.12 0.4"/></geometry></visual></link>
<joint name="shoulder" type="revolute"><parent link="base"/><child link="arm"/><axis xyz="0 1 0"/>
<limit lower="-2" upper="2"/></joint></robot>"""
# the arm's base 1.5 m ahead of the camera, its z axis up the image
T_CAM_BASE = np.array([[1, 0, 0, 0], [0, 0, -1, 0.2], [0, 1, 0, 1.5], [0, 0, 0, 1]], float)
VIRTUAL = CameraTopics(
    color="/virtual_camera/color/image_raw",
    camera_info="/virtual_camera/color/camera_info",
    depth="/virtual_camera/none",
    frame_id="virtual_camera_color_optical_frame",
)
STAMPS = [1_700_000_000_000_000_000 + i * 100_000_000 for i in range(T)]


class WarpOnly(Engine):
    name = "warp_only"

    def generate(self, request):
        return request.warped_rgb  # holes stay 0: what the layer drew is visible as is


def sensor_clip(robot):
    """What an RGB-D camera sees: a textured wall at 3 m with the arm (at shoulder angle 0) in front of it."""
    rng = np.random.default_rng(0)
    rgb = rng.integers(30, 256, (T, H, W, 3), dtype=np.uint8)
    depth = np.full((T, H, W), 3.0, np.float32)
    seen = robot.render({"shoulder": 0.0}, K, T_CAM_BASE, H, W, with_colour=False)
    depth[:, seen.mask] = seen.depth[seen.mask]
    return rgb, depth


def bag_with_robot_topics(
    tmp_path, rgb, depth, urdf=ARM, joint_states_until=None, shoulder=lambda stamp: 0.0, phase_ns=7_000_000
):
    """The camera-only bag and the same with the robot's topics (joint states at 50 Hz from `phase_ns` after the
    description until `joint_states_until`, the shoulder at `shoulder(stamp)`)."""
    source = write_rgbd_bag(tmp_path / "camera_only", rgb, depth, K, STAMPS)
    store = typestore()
    types = rosbags_types(store)
    start = STAMPS[0] - 50_000_000
    # TF: the camera's optical frame is the parent of the URDF root here (a camera-mounted setup)
    tf = make_transform(types, matrix_to_pose(T_CAM_BASE), start, "camera_color_optical_frame", "base")
    until = STAMPS[-1] + 40_000_000 if joint_states_until is None else joint_states_until
    joint_states = [
        (
            stamp,
            store.types["sensor_msgs/msg/JointState"](
                header=make_header(types, stamp, ""),
                name=["shoulder"],
                position=np.array([shoulder(stamp)]),
                velocity=np.zeros(0),
                effort=np.zeros(0),
            ),
        )
        for stamp in range(start + phase_ns, until, 20_000_000)  # 50 Hz, not aligned with the frames
    ]
    robot_topics = [
        RecordedTopic(
            "/robot_description",
            "std_msgs/msg/String",
            TF_STATIC_QOS,
            [(start, store.types["std_msgs/msg/String"](data=urdf))],
        ),
        RecordedTopic(
            "/tf_static",
            "tf2_msgs/msg/TFMessage",
            TF_STATIC_QOS,
            [(start, store.types["tf2_msgs/msg/TFMessage"](transforms=[tf]))],
        ),
        RecordedTopic("/joint_states", "sensor_msgs/msg/JointState", RECORDED_QOS, joint_states),
    ]
    path = write_rgbd_bag(tmp_path / "with_robot", rgb, depth, K, STAMPS, others=robot_topics)
    return source, path


def test_robot_topics_turn_the_robot_layer_on_by_default(tmp_path):
    robot = RobotModel.from_urdf_string(ARM)
    rgb, depth = sensor_clip(robot)
    camera_only, with_robot = bag_with_robot_topics(tmp_path, rgb, depth)
    cameras = resolve(None, ["target.yaw_deg=25.0"])
    assert cameras["virtual_camera"]["robot.enable"] == "auto"
    robot_run = augment_bag(
        with_robot, tmp_path / "out_robot", cameras, engine_factory=lambda p: WarpOnly(), progress=False
    )
    plain_run = augment_bag(
        camera_only, tmp_path / "out_plain", cameras, engine_factory=lambda p: WarpOnly(), progress=False
    )
    assert robot_run["robot"]["virtual_camera"] == {"drawn": T}
    assert plain_run["robot"]["virtual_camera"] == {}  # auto and no robot topics: a camera without a robot
    # the arm in the virtual camera, placed independently of the runtime: the orbit it uses, the TF of the bag
    T_dst_src = target_transform(OrbitTarget(yaw_deg=25.0), depth=depth[0], K=K)
    silhouette = robot.render({"shoulder": 0.0}, K, T_dst_src @ T_CAM_BASE, H, W, with_colour=False).mask
    inside = cv2.erode(silhouette.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    robot_frames = list(read_rgbd_frames(tmp_path / "out_robot", VIRTUAL, require_depth=False))
    plain_frames = list(read_rgbd_frames(tmp_path / "out_plain", VIRTUAL, require_depth=False))
    assert [f.stamp_ns for f in robot_frames] == STAMPS
    for drawn, plain in zip(robot_frames, plain_frames):
        assert np.all(drawn.rgb[inside].max(axis=1) > 0)  # the whole arm, its far side included
        assert (plain.rgb[inside].max(axis=1) == 0).sum() > 0.05 * inside.sum()  # the plain warp's hole there


def test_disabled_robot_layer_gives_the_plain_output(tmp_path):
    robot = RobotModel.from_urdf_string(ARM)
    rgb, depth = sensor_clip(robot)
    camera_only, with_robot = bag_with_robot_topics(tmp_path, rgb, depth)
    summary = augment_bag(
        with_robot,
        tmp_path / "off",
        resolve(None, ["robot.enable=false"]),
        engine_factory=lambda p: WarpOnly(),
        progress=False,
    )
    plain = augment_bag(
        camera_only, tmp_path / "plain", resolve(None, []), engine_factory=lambda p: WarpOnly(), progress=False
    )
    assert summary["robot"] == {} and plain["cameras"] == summary["cameras"]
    off = list(read_rgbd_frames(tmp_path / "off", VIRTUAL, require_depth=False))
    reference = list(read_rgbd_frames(tmp_path / "plain", VIRTUAL, require_depth=False))
    for a, b in zip(off, reference):
        np.testing.assert_array_equal(a.rgb, b.rgb)


def test_bad_robot_description_or_stale_joint_states_still_give_every_frame(tmp_path, capsys):
    robot = RobotModel.from_urdf_string(ARM)
    rgb, depth = sensor_clip(robot)
    missing_mesh = ARM.replace('<box size="0.12 0.12 0.4"/>', '<mesh filename="package://arm_description/arm.stl"/>')
    _, bad_urdf = bag_with_robot_topics(tmp_path / "bad", rgb, depth, urdf=missing_mesh)
    # joint states stop 10 ms after the second frame: the third has none within the slop
    _, stale = bag_with_robot_topics(tmp_path / "stale", rgb, depth, joint_states_until=STAMPS[1] + 10_000_000)
    cameras = resolve(None, ["target.yaw_deg=25.0", "robot.joint_slop_s=0.02"])
    capsys.readouterr()
    bad_run = augment_bag(bad_urdf, tmp_path / "out_bad", cameras, engine_factory=lambda p: WarpOnly(), progress=False)
    # one warning on augment-bag's console, naming the mesh
    warnings = [line for line in capsys.readouterr().err.splitlines() if "robot layer" in line]
    assert len(warnings) == 1 and "package://arm_description/arm.stl" in warnings[0], warnings
    assert warnings[0].startswith("[virtual_camera] robot layer off")
    assert bad_run["cameras"]["virtual_camera"] == T and bad_run["robot"]["virtual_camera"] == {"no_robot_model": T}
    stale_run = augment_bag(stale, tmp_path / "out_stale", cameras, engine_factory=lambda p: WarpOnly(), progress=False)
    warnings = [line for line in capsys.readouterr().err.splitlines() if "robot layer" in line]
    assert len(warnings) == 1 and "stale joint state for shoulder" in warnings[0], warnings
    assert "older than the frame" in warnings[0]
    assert stale_run["cameras"]["virtual_camera"] == T
    assert stale_run["robot"]["virtual_camera"] == {"drawn": T - 1, "joint_state_stale": 1}
    for out in ("out_bad", "out_stale"):
        assert [f.stamp_ns for f in read_rgbd_frames(tmp_path / out, VIRTUAL, require_depth=False)] == STAMPS


def test_each_frame_waits_for_the_joint_states_after_its_stamp(tmp_path):
    """Offline the arm is drawn at the state interpolated at the frame's stamp, not at the last one before it: joint
    states come 15 ms before and 5 ms after each frame, the arm sweeps 10 rad/s."""
    robot = RobotModel.from_urdf_string(ARM)

    def shoulder(stamp):
        return -0.5 + 10.0 * (stamp - STAMPS[0]) / 1e9

    rng = np.random.default_rng(1)
    rgb = np.stack(
        [rng.integers(0, 60, (T, H, W)), rng.integers(60, 256, (T, H, W)), rng.integers(60, 256, (T, H, W))], -1
    )
    rgb = rgb.astype(np.uint8)  # a blue-green wall at 3 m, the red arm where it is at each frame's stamp
    depth = np.full((T, H, W), 3.0, np.float32)
    for index, stamp in enumerate(STAMPS):
        seen = robot.render({"shoulder": shoulder(stamp)}, K, T_CAM_BASE, H, W, with_colour=False)
        rgb[index][seen.mask], depth[index][seen.mask] = (255, 0, 0), seen.depth[seen.mask]
    _, bag = bag_with_robot_topics(tmp_path, rgb, depth, shoulder=shoulder, phase_ns=35_000_000)
    cameras = resolve(None, ["target.yaw_deg=20.0", "target.pivot_m=1.5", "robot.joint_slop_s=0.02"])
    summary = augment_bag(bag, tmp_path / "out", cameras, engine_factory=lambda p: WarpOnly(), progress=False)
    assert summary["robot"]["virtual_camera"] == {"drawn": T}
    T_dst_src = target_transform(OrbitTarget(yaw_deg=20.0, pivot_m=1.5))
    frames = list(read_rgbd_frames(tmp_path / "out", VIRTUAL, require_depth=False))
    for stamp, frame in zip(STAMPS, frames):
        arm = (frame.rgb[..., 0] > 120) & (frame.rgb[..., 1] < 60) & (frame.rgb[..., 2] < 60)
        exact, before = (
            robot.render({"shoulder": angle}, K, T_dst_src @ T_CAM_BASE, H, W, with_colour=False).mask
            for angle in (shoulder(stamp), shoulder(stamp - 15_000_000))
        )
        iou_exact = (arm & exact).sum() / (arm | exact).sum()
        iou_before = (arm & before).sum() / (arm | before).sum()
        assert iou_exact >= 0.9 and iou_exact > iou_before + 0.05, (iou_exact, iou_before)
