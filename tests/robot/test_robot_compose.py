"""Composition of the robot-aware virtual view: exact invariants on a synthetic scene (a box robot before a wall), and
simulator truth (the data engine's Panda scene seen by a second camera): silhouette IoU, robot-region PSNR against
the plain warp engine's, colour of the seen surface."""

import numpy as np
import pytest

from model.inpaint import fill_holes
from model.robot import RobotModel
from model.robot.compose import CompositionSettings, compose_robot_view, scene_source

H, W = 120, 160
K = np.array([[150.0, 0, 79.5], [0, 150.0, 59.5], [0, 0, 1]])
BOX = """<robot name="box"><link name="base"><visual><origin xyz="0 0 1.5"/><geometry><box size="0.4 0.3 0.2"/>
</geometry></visual></link></robot>"""  # the root frame is the camera's optical frame: the box 1.4-1.6 m ahead


def wall_scene(seed=0):
    """A textured wall 3 m ahead with the box robot in front of it, as an RGB-D camera would see them."""
    rng = np.random.default_rng(seed)
    robot = RobotModel.from_urdf_string(BOX)
    rgb = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    depth = np.full((H, W), 3.0, np.float32)
    seen = robot.render({}, K, np.eye(4), H, W, with_colour=False)
    depth[seen.mask] = seen.depth[seen.mask]
    return robot, rgb, depth, seen


def test_identity_view_copies_the_source_robot_and_scene():
    robot, rgb, depth, robot_src = wall_scene()
    robot_dst = robot.render({}, K, np.eye(4), H, W)
    out = compose_robot_view(rgb, depth, K, K, np.eye(4), (H, W), robot_src, robot_dst, robot.part_link)
    assert np.array_equal(out.robot, robot_src.mask)
    interior = out.robot_seen
    # every robot pixel but the silhouette's outer ring takes the source colour, exactly
    assert interior.sum() >= 0.8 * robot_src.mask.sum()
    assert np.array_equal(out.rgb[interior], rgb[interior])
    # the scene is the source minus the (dilated) robot
    scene = out.mask & ~out.robot
    assert np.array_equal(out.rgb[scene], rgb[scene])
    np.testing.assert_allclose(out.depth[out.robot], robot_src.depth[out.robot], atol=1e-6)
    assert np.array_equal(out.interaction > 0, out.robot)


def test_robot_far_side_is_not_taken_from_the_source_and_scene_occludes_by_depth():
    robot, rgb, depth, robot_src = wall_scene(1)
    # the virtual camera 0.6 m to the right, turned 25 degrees back towards the box
    angle = np.deg2rad(-25)
    T_src_dst = np.eye(4)
    T_src_dst[:3, :3] = [[np.cos(angle), 0, np.sin(angle)], [0, 1, 0], [-np.sin(angle), 0, np.cos(angle)]]
    T_src_dst[:3, 3] = [0.6, 0, 0.15]
    T_dst_src = np.linalg.inv(T_src_dst)
    robot_dst = robot.render({}, K, T_dst_src, H, W)
    out = compose_robot_view(rgb, depth, K, K, T_dst_src, (H, W), robot_src, robot_dst, robot.part_link)
    # the box's +x side faces the virtual camera but is edge-on to the source: drawn, never coloured from the source
    T_dst_root = T_dst_src
    v, u = np.nonzero(out.robot)
    points = np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones_like(u, float)], 1)
    points *= out.depth[v, u][:, None]
    in_root = (points - T_dst_root[:3, 3]) @ T_dst_root[:3, :3]
    on_side = np.abs(in_root[:, 0] - 0.2) < 0.003
    assert on_side.sum() > 50
    assert not out.robot_seen[v[on_side], u[on_side]].any()
    assert out.robot_seen[v[~on_side], u[~on_side]].mean() > 0.8  # the front face the source saw
    # z-test: nothing of the wall (3 m) is drawn over the robot, and robot pixels never sit behind the scene
    assert np.all(out.depth[out.robot] < 2.0)
    assert np.all(out.depth[out.mask & ~out.robot] > 2.5)


def test_interaction_mask_adds_the_scene_within_reach_of_the_gripper():
    robot, rgb, depth, robot_src = wall_scene()
    robot_dst = robot.render({}, K, np.eye(4), H, W)
    gripper = np.array([0.7, 0.0, 2.95])  # just in front of the wall, beside the box
    out = compose_robot_view(
        rgb,
        depth,
        K,
        K,
        np.eye(4),
        (H, W),
        robot_src,
        robot_dst,
        robot.part_link,
        CompositionSettings(reach_m=0.2),
        gripper_src=gripper,
    )
    extra = (out.interaction > 0) & ~out.robot
    v, u = np.nonzero(extra)
    points = np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones_like(u, float)], 1) * 3.0
    assert extra.sum() > 0 and np.all(np.linalg.norm(points - gripper, axis=1) < 0.2 + 1e-6)


def test_a_robot_filling_the_whole_source_leaves_no_scene_to_warp():
    # a wall-sized box 0.5 m ahead: the source sees nothing else, so the view is the robot and holes
    robot = RobotModel.from_urdf_string(BOX.replace('xyz="0 0 1.5"', 'xyz="0 0 0.6"').replace("0.4 0.3 0.2", "3 3 0.2"))
    robot_src = robot.render({}, K, np.eye(4), H, W, with_colour=False)
    assert robot_src.mask.all()
    rgb = np.full((H, W, 3), 77, np.uint8)
    depth = robot_src.depth.copy()
    T_dst_src = np.eye(4)
    T_dst_src[0, 3] = -0.05
    robot_dst = robot.render({}, K, T_dst_src, H, W)
    assert scene_source(rgb, depth, robot_src, 3)[3] is False  # no pixel keeps a depth
    assert scene_source(*wall_scene()[1:], 3)[3] is True
    out = compose_robot_view(rgb, depth, K, K, T_dst_src, (H, W), robot_src, robot_dst, robot.part_link)
    assert np.array_equal(out.robot, robot_dst.mask) and np.array_equal(out.mask, robot_dst.mask)
    assert np.all(out.rgb[out.robot_seen] == 77) and out.robot_seen.sum() > 0.8 * robot_dst.mask.sum()


def _psnr(a, b, mask):
    return 10 * np.log10(255.0**2 / np.mean((a[mask].astype(float) - b[mask].astype(float)) ** 2))


@pytest.mark.slow
def test_simulated_second_view_robot_region_beats_the_plain_warp(panda_robot):
    from model.geometry import forward_warp
    from offline_training.sim.robot_truth import RobotTruthScene

    height, width = 240, 320
    rows = []
    with RobotTruthScene("panda_bullet", height, width, seed=2, root_link="panda_link0") as truth:
        T_world_src, T_world_tgt = truth.robot_layer_cameras()
        T_dst_src = np.linalg.inv(T_world_tgt) @ T_world_src
        for src, tgt, joints in truth.random_pose_views(3, 0.3):
            robot_src = panda_robot.render(joints, src["K"], src["T_cam_root"], height, width, with_colour=False)
            robot_dst = panda_robot.render(joints, tgt["K"], tgt["T_cam_root"], height, width)
            out = compose_robot_view(
                src["rgb"],
                src["depth"],
                src["K"],
                tgt["K"],
                T_dst_src,
                (height, width),
                robot_src,
                robot_dst,
                panda_robot.part_link,
            )
            plain = forward_warp(src["rgb"], src["depth"], src["K"], tgt["K"], T_dst_src, (height, width))
            truth_robot = tgt["robot"]
            plain_filled = fill_holes(plain.image, plain.mask, plain.depth)
            ours_filled = fill_holes(out.rgb, out.mask, out.depth)
            rows.append(
                (
                    (out.robot & truth_robot).sum() / (out.robot | truth_robot).sum(),
                    _psnr(ours_filled, tgt["rgb"], truth_robot),
                    _psnr(plain_filled, tgt["rgb"], truth_robot),
                    _psnr(out.rgb, tgt["rgb"], out.robot_seen & truth_robot),
                    _psnr(out.rgb, tgt["rgb"], out.robot & ~out.robot_seen & truth_robot),
                )
            )
    iou, ours, plain, seen, unseen = np.array(rows).T
    assert iou.min() >= 0.95
    assert np.all(ours >= plain + 3.0), rows
    assert seen.min() >= 24.0, rows
    # the far side, coloured by the fitted appearance under the scene's random tint and lights (the additive model
    # linear in the normal that it replaced: 23.1-23.3 dB here)
    assert unseen.min() >= 24.5, rows
    assert ours.min() >= 25.0, rows  # the goal on the robot region
