"""Static-scene memory: what it remembers behind a moving robot, when it forgets (camera moved, scene changed), and
on simulator truth, how much of the disoccluded background of a second view it fills and how well."""

import numpy as np
import pytest

from model.robot.scene_memory import StaticSceneMemory

H, W = 60, 80


def frame(seed=0, noise=0.0):
    rng = np.random.default_rng(seed)
    background = np.random.default_rng(42).integers(0, 256, (H, W, 3)).astype(np.float32)
    rgb = np.clip(background + noise * rng.normal(size=background.shape), 0, 255).astype(np.uint8)
    return rgb, np.full((H, W), 2.0, np.float32)


def robot_at(column):
    mask = np.zeros((H, W), bool)
    mask[10:50, column : column + 15] = True
    return mask


def test_background_behind_the_robot_comes_from_frames_where_it_was_not():
    memory = StaticSceneMemory(dilate_px=2, row_stride=1)
    rgb, depth = frame()
    memory.update(rgb, depth, robot_at(10))
    remembered_rgb, remembered_depth = memory.background()
    # where the robot stands (plus the margin) nothing is known yet; elsewhere the frame itself
    assert np.all(remembered_depth[10:50, 10:25] == 0)
    later = robot_at(50)
    assert np.array_equal(remembered_rgb[later], rgb[later])
    np.testing.assert_allclose(remembered_depth[later], 2.0)
    memory.update(rgb, depth, robot_at(50))  # the robot moved on: its old place is background now
    remembered_rgb, remembered_depth = memory.background()
    assert np.array_equal(remembered_rgb[robot_at(10)], rgb[robot_at(10)])


def test_agreeing_frames_average_out_sensor_noise():
    memory = StaticSceneMemory(row_stride=1)
    clean, depth = frame()
    for seed in range(8):
        memory.update(frame(seed, noise=8.0)[0], depth + np.float32(0.01 * (seed % 2)), np.zeros((H, W), bool))
    rgb, remembered_depth = memory.background()
    assert np.abs(rgb.astype(float) - clean).mean() < 4.0  # one noisy frame is ~6.4 off on average
    np.testing.assert_allclose(remembered_depth, 2.005, atol=0.002)


def test_changed_pixels_are_replaced_and_a_changed_scene_or_moved_camera_clears_it():
    memory = StaticSceneMemory(row_stride=1)
    rgb, depth = frame()
    memory.update(rgb, depth, np.zeros((H, W), bool))
    moved = depth.copy()
    moved[:10, :10] = 1.0  # an object put down: 100 of 4800 pixels
    memory.update(rgb, moved, np.zeros((H, W), bool))
    assert memory.resets == 0 and np.allclose(memory.background()[1][:10, :10], 1.0)
    memory.update(rgb, depth * 1.5, np.zeros((H, W), bool))  # most of the frame disagrees: a new scene
    assert memory.resets == 1 and np.allclose(memory.background()[1], 3.0)
    T = np.eye(4)
    memory.update(rgb, depth, robot_at(10), T)
    T_moved = T.copy()
    T_moved[0, 3] = 0.05
    memory.update(rgb, depth, robot_at(50), T_moved)
    assert memory.resets == 3  # the moved camera's memory starts empty where the robot now stands
    assert np.all(memory.background()[1][robot_at(50)] == 0)


@pytest.mark.parametrize("row_stride", [None, 3])
def test_strided_updates_take_the_whole_first_frame_then_rows_in_turn(row_stride):
    memory = StaticSceneMemory(dilate_px=0, **({} if row_stride is None else {"row_stride": row_stride}))
    stride = memory.row_stride  # the default's (8) or the one given
    rgb, depth = frame()
    memory.update(rgb, depth, np.zeros((H, W), bool))
    assert np.all(memory.background()[1] == 2.0)  # a fresh memory takes the whole frame
    moved = depth.copy()
    moved[: 2 * stride, :10] = 1.0  # an object put down
    for turn in range(stride):
        memory.update(rgb, moved, np.zeros((H, W), bool))
        remembered = memory.background()[1][: 2 * stride, :10]
        rows = np.arange(2 * stride) % stride <= turn  # the rows visited so far: 0 and stride first, then 1, ...
        assert np.all(remembered[rows] == 1.0) and np.all(remembered[~rows] == 2.0)
    assert memory.resets == 0


def test_memory_is_bounded():
    memory = StaticSceneMemory()
    rgb, depth = frame()
    for column in range(0, 60, 5):
        memory.update(rgb, depth, robot_at(column))
    assert memory.rgb.nbytes + memory.depth.nbytes + memory.count.nbytes == H * W * (3 * 4 + 4 + 2)


@pytest.mark.slow
def test_memory_fills_the_background_the_robot_hid_in_the_source(panda_robot):
    """A moving arm seen by a fixed source camera: in a second view, the background the arm hides in the current
    source frame but showed in earlier ones comes back, close to the truth."""
    from model.robot.compose import compose_robot_view
    from offline_training.sim.robot_truth import RobotTruthScene

    height, width = 240, 320
    memory = StaticSceneMemory()
    filled, errors = [], []
    with RobotTruthScene("panda_bullet", height, width, seed=2, root_link="panda_link0") as truth:
        T_world_src, T_world_tgt = truth.robot_layer_cameras(target_side_m=0.0)
        T_dst_src = np.linalg.inv(T_world_tgt) @ T_world_src
        for k, (src, tgt, joints) in enumerate(truth.random_pose_views(5, 0.35, target_side_m=0.0)):
            robot_src = panda_robot.render(joints, src["K"], src["T_cam_root"], height, width, with_colour=False)
            robot_dst = panda_robot.render(joints, tgt["K"], tgt["T_cam_root"], height, width)
            args = (
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
            without = compose_robot_view(*args)
            memory_rgb, memory_depth = memory.background()
            with_memory = compose_robot_view(*args, memory_rgb=memory_rgb, memory_depth=memory_depth)
            memory.update(src["rgb"], src["depth"], robot_src.mask, src["T_cam_root"])
            if k == 0:
                assert np.array_equal(with_memory.mask, without.mask)  # nothing remembered yet
                continue
            new = with_memory.mask & ~without.mask & ~tgt["robot"]
            filled.append(new.sum())
            errors.append(np.abs(with_memory.rgb[new].astype(float) - tgt["rgb"][new]).mean())
    assert min(filled) > 500 and max(errors) < 5.0, (filled, errors)
