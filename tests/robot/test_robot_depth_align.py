"""`depth.sensor: mono` in the runtime: a monocular estimate with a known scale error is scaled back to metres by
fitting it to the robot's rendered depth (RobotLayer.source_depth, model.depth_align)."""

import numpy as np
import pytest
from box_arm_topics import ARM, T_CAM_BASE, feed_description_and_tf, feed_joint_state, synced_frame

from embody4d_ros.bag_io import typestore
from embody4d_ros.conversions import rosbags_types
from embody4d_ros.params import validate
from embody4d_ros.runtime import VirtualCameraRuntime
from model.depth_sensor import MonoEstimate
from model.robot import RobotModel

H, W = 120, 160
K = np.array([[150.0, 0, 79.5], [0, 150.0, 59.5], [0, 0, 1]])
WALL_M = 2.5


def test_mono_depth_is_scaled_to_the_robots_rendered_depth():
    store = typestore()
    types = rosbags_types(store)
    arm = RobotModel.from_urdf_string(ARM).render({"shoulder": 0.2}, K, T_CAM_BASE, H, W, with_colour=False).depth
    truth = np.where(arm > 0, arm, WALL_M).astype(np.float32)
    assert (arm > 0).sum() > 300
    logged = []
    runtime = VirtualCameraRuntime(validate({"depth.sensor": "mono"}), publish=lambda _: None, log=logged.append)
    rng = np.random.default_rng(0)

    def frame(stamp):
        rgb = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
        estimate = MonoEstimate().corrupt(truth, K, rng, affine=(1.2, 0.0))  # 1/z_est = 1.2 / z: 17 % too near
        synced_frame(runtime, types, rgb, estimate, K, stamp)

    frame(1_000_000_000)  # no robot yet: the estimate is used as it is, and the log says so
    assert runtime.depth_alignment is not None and runtime.depth_alignment.fit is None
    assert any("depth.sensor is mono" in line for line in logged)
    layer = runtime.robot_layer
    feed_description_and_tf(layer, store, types)
    for stamp in (2_000_000_000, 3_000_000_000):
        feed_joint_state(layer, store, types, stamp - 10_000_000, 0.2)
        frame(stamp)
    counts = runtime.stats.summary()["counts"]
    assert (counts["depth_not_fitted"], counts["depth_aligned"], counts["robot_drawn"]) == (1, 2, 2)
    fit = runtime.depth_alignment.fit
    assert fit.shift_inv_m == 0.0  # the robot spans too narrow a range of depths for a shift
    assert fit.scale == pytest.approx(1 / 1.2, rel=0.03)
    aligned = runtime.depth_alignment.apply(MonoEstimate().corrupt(truth, K, rng, affine=(1.2, 0.0)))
    assert np.median(np.abs(aligned / truth - 1)) < 0.03
