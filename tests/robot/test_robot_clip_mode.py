"""Clip mode with the robot layer: a clip spans many `/joint_states` messages (50 Hz, not aligned with the 10 Hz
frames), and each frame of the clip must show the arm at the joint state of its own stamp, not at the clip's first
or last. A frame whose joint state is stale is made the plain way inside the same clip."""

import numpy as np

from embody4d_ros.bag_io import typestore
from embody4d_ros.conversions import (
    depth_to_image,
    make_camera_info,
    make_header,
    make_transform,
    rgb_to_image,
    rosbags_types,
)
from embody4d_ros.params import validate
from embody4d_ros.runtime import VirtualCameraRuntime
from model.engines.base import Engine
from model.geometry import OrbitTarget, matrix_to_pose, target_transform
from model.robot import RobotModel

T, H, W = 5, 96, 128
K = np.array([[120.0, 0, 63.5], [0, 120.0, 47.5], [0, 0, 1]])
ARM = """<robot name="arm"><link name="base"/><link name="arm"><visual><origin xyz="0 0 0.2"/>
<geometry><box size="0.1 0.1 0.4"/></geometry></visual></link>
<joint name="shoulder" type="revolute"><parent link="base"/><child link="arm"/><axis xyz="0 1 0"/>
<limit lower="-2" upper="2"/></joint></robot>"""
# the arm's base 1.5 m ahead of the camera, its z axis up the image; the shoulder turns it in the image plane
T_CAM_BASE = np.array([[1, 0, 0, 0], [0, 0, -1, 0.2], [0, 1, 0, 1.5], [0, 0, 0, 1]], float)
FRAME = "camera_color_optical_frame"
MS = 1_000_000
START = 1_700_000_000 * 1_000_000_000
STAMPS = [START + i * 100 * MS for i in range(T)]
RED = np.array([255, 0, 0], np.uint8)


def shoulder(stamp_ns: int) -> float:
    """The arm sweeps at 2 rad/s: 0.2 rad between frames."""
    return -0.4 + 2.0 * (stamp_ns - START) / 1e9


class WarpOnly(Engine):
    name = "warp_only"

    def generate(self, request):
        return request.warped_rgb  # holes stay 0: what the layer drew is visible as is


def red(image: np.ndarray) -> np.ndarray:
    return (image[..., 0] > 120) & (image[..., 1] < 60) & (image[..., 2] < 60)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def test_each_frame_of_a_clip_shows_the_arm_at_its_own_stamp():
    robot = RobotModel.from_urdf_string(ARM)
    store = typestore()
    types = rosbags_types(store)
    published = []
    params = {
        "mode": "clip",
        "clip_length": T,
        "clip_overlap": 0,
        "target.yaw_deg": 20.0,
        "target.pivot_m": 1.5,
        "robot.joint_slop_s": 0.02,
        "robot.hand_eye_every": 0,
    }
    runtime = VirtualCameraRuntime(validate(params), publish=published.append, engine=WarpOnly(), log=lambda _: None)
    layer = runtime.robot_layer
    layer.feed_message("/robot_description", store.types["std_msgs/msg/String"](data=ARM))
    tf = make_transform(types, matrix_to_pose(T_CAM_BASE), 0, FRAME, "base")
    layer.feed_message("/tf_static", store.types["tf2_msgs/msg/TFMessage"](transforms=[tf]))
    # joint states at 50 Hz, 7 ms out of phase with the frames, until 30 ms after frame 3: frame 4 has none within
    # the 20 ms slop
    for stamp in range(START - 13 * MS, STAMPS[3] + 30 * MS, 20 * MS):
        layer.feed_message(
            "/joint_states",
            store.types["sensor_msgs/msg/JointState"](
                header=make_header(types, stamp, ""),
                name=["shoulder"],
                position=np.array([shoulder(stamp)]),
                velocity=np.zeros(0),
                effort=np.zeros(0),
            ),
        )
    # the camera sees a blue-green wall at 3 m and the red arm where it is at each frame's stamp
    rng = np.random.default_rng(0)
    for stamp in STAMPS:
        rgb = np.stack([rng.integers(0, 60, (H, W)), rng.integers(60, 256, (H, W)), rng.integers(60, 256, (H, W))], -1)
        rgb = rgb.astype(np.uint8)
        depth = np.full((H, W), 3.0, np.float32)
        seen = robot.render({"shoulder": shoulder(stamp)}, K, T_CAM_BASE, H, W, with_colour=False)
        rgb[seen.mask], depth[seen.mask] = RED, seen.depth[seen.mask]
        runtime.on_synced(
            rgb_to_image(types, rgb, stamp, FRAME),
            depth_to_image(types, depth, stamp, FRAME),
            make_camera_info(types, K, W, H, stamp, FRAME),
        )
        runtime.drain()
    assert [frame.stamp_ns for frame in published] == STAMPS  # one clip of T frames
    counts = runtime.stats.summary()["counts"]
    assert (counts["robot_drawn"], counts["robot_joint_state_stale"]) == (T - 1, 1)

    T_dst_src = target_transform(OrbitTarget(yaw_deg=20.0, pivot_m=1.5))
    silhouettes = [
        robot.render({"shoulder": shoulder(stamp)}, K, T_dst_src @ T_CAM_BASE, H, W, with_colour=False).mask
        for stamp in STAMPS
    ]
    for index, frame in enumerate(published[: T - 1]):
        arm = red(frame.rgb)
        own = iou(arm, silhouettes[index])
        others = [iou(arm, silhouettes[j]) for j in (0, T - 2) if j != index]
        assert own >= 0.9 and all(own - other > 0.15 for other in others), (index, own, others)
    # frame 4 had no joint state within the slop: the plain warp, whose arm has its far side missing
    plain_arm = red(published[-1].rgb)
    assert 0.2 < plain_arm.sum() / silhouettes[-1].sum() < 0.98 and iou(plain_arm, silhouettes[-1]) < 0.9
