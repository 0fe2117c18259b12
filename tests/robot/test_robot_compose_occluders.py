"""The robot layer keeps what stands in front of the robot: a surface the sensor measures nearer than the rendered
robot (a table edge, an object, the robot's base behind furniture) is scene, not robot, and still hides the robot in
the virtual view."""

import numpy as np

from model.robot import RobotModel
from model.robot.compose import compose_robot_view

H, W = 120, 160
K = np.array([[150.0, 0, 79.5], [0, 150.0, 59.5], [0, 0, 1]])
BOX = """<robot name="box"><link name="base"><visual><origin xyz="0 0 1.5"/><geometry><box size="0.4 0.3 0.2"/>
</geometry></visual></link></robot>"""  # the root frame is the camera's optical frame: the box 1.4-1.6 m ahead


def test_a_surface_in_front_of_the_robot_stays_scene_and_hides_the_robot():
    rng = np.random.default_rng(0)
    robot = RobotModel.from_urdf_string(BOX)
    robot_src = robot.render({}, K, np.eye(4), H, W, with_colour=False)
    rgb = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    depth = np.full((H, W), 3.0, np.float32)
    depth[robot_src.mask] = robot_src.depth[robot_src.mask]
    # a post 1 m ahead covers the left third of the box's silhouette (and the wall beside it)
    v, u = np.nonzero(robot_src.mask)
    post = np.zeros((H, W), bool)
    post[:, u.min() - 5 : u.min() + (u.max() - u.min()) // 3] = True
    depth[post] = 1.0
    rgb[post] = (200, 30, 30)

    robot_dst = robot.render({}, K, np.eye(4), H, W)
    out = compose_robot_view(rgb, depth, K, K, np.eye(4), (H, W), robot_src, robot_dst, robot.part_link)
    hidden = post & robot_src.mask  # up to the edge where the visible box begins (the cut's dilation stops there)
    assert hidden.sum() > 200
    assert not out.robot[hidden].any()
    assert np.all(out.rgb[hidden] == (200, 30, 30))
    np.testing.assert_allclose(out.depth[hidden], 1.0, atol=1e-3)
    # the visible rest of the box is still the robot
    visible = robot_src.mask & ~post
    assert out.robot[visible].mean() > 0.95
