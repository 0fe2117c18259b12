"""A one-joint box arm as the robot's topics bring it to the runtime (`/robot_description`, `/tf_static`,
`/joint_states`, synced RGB-D frames), shared by the runtime-level robot tests."""

from __future__ import annotations

import numpy as np

from embody4d_ros.conversions import depth_to_image, make_camera_info, make_header, make_transform, rgb_to_image
from model.geometry import matrix_to_pose

ARM = """<robot name="arm"><link name="base"/><link name="arm"><visual><origin xyz="0 0 0.2"/>
<geometry><box size="0.12 0.12 0.4"/></geometry></visual></link>
<joint name="shoulder" type="revolute"><parent link="base"/><child link="arm"/><axis xyz="0 1 0"/></joint></robot>"""
# the camera's optical frame 1.5 m in front of the arm's base, base z pointing up the image
T_CAM_BASE = np.array([[1, 0, 0, 0], [0, 0, -1, 0.2], [0, 1, 0, 1.5], [0, 0, 0, 1]], float)
FRAME = "camera_color_optical_frame"


def feed_description_and_tf(layer, store, types) -> None:
    """The latched topics: the arm's URDF and the camera→base transform."""
    layer.feed_message("/robot_description", store.types["std_msgs/msg/String"](data=ARM))
    tf = make_transform(types, matrix_to_pose(T_CAM_BASE), 0, FRAME, "base")
    layer.feed_message("/tf_static", store.types["tf2_msgs/msg/TFMessage"](transforms=[tf]))


def feed_joint_state(layer, store, types, stamp_ns: int, shoulder: float) -> None:
    layer.feed_message(
        "/joint_states",
        store.types["sensor_msgs/msg/JointState"](
            header=make_header(types, stamp_ns, ""),
            name=["shoulder"],
            position=np.array([shoulder]),
            velocity=np.zeros(0),
            effort=np.zeros(0),
        ),
    )


def synced_frame(runtime, types, rgb: np.ndarray, depth: np.ndarray, K: np.ndarray, stamp_ns: int) -> None:
    """One synced colour/depth/camera_info triple into the runtime, made at once."""
    height, width = depth.shape
    runtime.on_synced(
        rgb_to_image(types, rgb, stamp_ns, FRAME),
        depth_to_image(types, depth, stamp_ns, FRAME),
        make_camera_info(types, K, width, height, stamp_ns, FRAME),
    )
    runtime.drain()
