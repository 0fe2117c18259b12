"""The robot layer in the rclpy node on a real ROS 2 graph (`make test-ros`): /robot_description, /joint_states and
/tf_static from a robot publisher process reach the layer, which draws the robot into the virtual view.

The robot (tests/ros/rgbd_publisher.py) is a 0.2 m cube on one revolute joint, in front of the camera's scene but
absent from its depth and colour. Until its joint states start, the node makes the plain view (counted as
joint_state_missing); after, the cube's model is drawn: those frames differ from the plain ones where the cube
projects into the virtual camera (its corners projected here with the virtual camera_info and the node's /tf_static)
and nowhere far from it.
"""
import os

import numpy as np
import pytest

if os.environ.get("EMBODY4D_REQUIRE_ROS"):
    import rclpy  # noqa: F401  (make test-ros: a missing ROS 2 fails here instead of skipping)
else:
    pytest.importorskip("rclpy")

from rgbd_publisher import ROBOT_CUBE_M, ROBOT_JOINT_POSITION, ROBOT_ROOT_IN_CAMERA  # noqa: E402
from ros_graph import Probe, publish_camera, start_node, stop  # noqa: E402

from model.geometry import pose_to_matrix  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.ros]
FRAMES, ROBOT_FROM, WIDTH, HEIGHT = 24, 8, 320, 240


def _cube_box_in_virtual_view(info, transform) -> tuple[int, int, int, int]:
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
    return max(u0, 0), max(v0, 0), min(u1, WIDTH), min(v1, HEIGHT)


@pytest.mark.timeout(600)
def test_the_node_draws_the_robot_from_its_topics():
    probe = Probe(keep_pixels=True)
    node = start_node("-p", "robot.hand_eye_every:=0")
    try:
        probe.wait_for_node(node)
        published = publish_camera(5.0, FRAMES, WIDTH, HEIGHT, robot_from=ROBOT_FROM)
        probe.wait_for_images(len(published), timeout_s=20.0)
        (transform,) = probe.latched_tf_static()  # the node's own (the robot publisher has exited)
    finally:
        code, _, stderr = stop(node)
        probe.close()
    assert code == 0 and "Traceback" not in stderr, stderr

    statuses = [s for s in probe.diagnostics if "virtual camera /virtual_camera" in s.name]
    values = {kv.key: kv.value for kv in statuses[-1].values}
    # frames with their joint state drawn with the robot, the ones before made without it and counted (under load
    # the node may drop a frame for a newer one, and the first drawn frame waits for the rasteriser's compilation)
    drawn, missing = int(values.get("robot layer drawn", 0)), int(values.get("robot layer joint_state_missing", 0))
    assert FRAMES - ROBOT_FROM >= drawn >= (FRAMES - ROBOT_FROM) // 2 and ROBOT_FROM >= missing >= 1, values

    plain = [probe.pixels[stamp] for stamp in published[:ROBOT_FROM] if stamp in probe.pixels]
    robot = [probe.pixels[stamp] for stamp in published[ROBOT_FROM:] if stamp in probe.pixels]
    assert plain and len(robot) >= drawn, f"{len(plain)} plain and {len(robot)} robot frames arrived; {values}"
    assert all(np.array_equal(view, plain[0]) for view in plain), "the plain view of a static scene changed"
    u0, v0, u1, v1 = _cube_box_in_virtual_view(next(iter(probe.infos.values())), transform)
    assert (u1 - u0) * (v1 - v0) > 0.05 * WIDTH * HEIGHT, ("the cube is hardly in the virtual view", u0, v0, u1, v1)
    # Near the cube the view changes too: the source pixels the cube covers are cut from the scene (the wall behind
    # it, seen from the side, is a hole), and holes are filled from their borders, which now include the cube.
    # Columns 64 px right of it lie beyond both (the cut region moves < 50 px at this yaw); they must not change.
    far = np.zeros((HEIGHT, WIDTH), bool)
    far[:, u1 + 64:] = True
    assert far.mean() > 0.3, "too little of the view is far from the cube to check"
    for view in robot:
        changed = np.abs(view.astype(int) - plain[0].astype(int)).max(-1) > 12
        inside = changed[v0:v1, u0:u1].mean()
        assert inside > 0.5, f"only {inside:.0%} of the cube's box in the virtual view differs from the plain view"
        assert changed[far].mean() < 0.01, f"{changed[far].mean():.1%} of the view far from the cube changed"
