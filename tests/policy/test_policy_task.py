"""The reach task: the scripted expert succeeds, and a camera offset moves the rendered view by the requested angle."""

import numpy as np
import pytest

from model.geometry import OrbitTarget, PinholeCamera, invert_transform, target_transform
from offline_training.policy_bench.task import ReachTask, TaskConfig, camera_pose, expert_action, sample_start_states


@pytest.fixture(scope="module")
def task():
    task = ReachTask()
    yield task
    task.close()


def test_scripted_expert_reaches_every_goal(task):
    config = task.config
    states = sample_start_states(config, 25, np.random.default_rng(7))
    for state in states:
        data = task.reset(state)
        start_error = np.linalg.norm(task.ee_position(data) - state.goal)
        for _ in range(config.max_steps):
            task.step(data, expert_action(task.ee_position(data), state.goal, config.max_step_m))
        # the arm's real forward kinematics (not the commanded point) must end inside the success radius
        assert start_error > 3 * config.success_radius_m
        assert np.linalg.norm(task.ee_position(data) - state.goal) < config.success_radius_m


def test_actions_are_clipped_base_frame_displacements(task):
    state = sample_start_states(task.config, 1, np.random.default_rng(3))[0]
    data = task.reset(state)
    before = task.ee_position(data)
    after = task.step(data, np.array([0.0, 1.0, 0.0]))  # 1 m along base y: clipped to max_step_m
    np.testing.assert_allclose(after - before, [0.0, task.config.max_step_m, 0.0], atol=2e-3)


def _red_centroid(rgb: np.ndarray) -> np.ndarray:
    r, g, b = (rgb[..., c].astype(int) for c in range(3))
    v, u = np.nonzero((r > 90) & (r > 2 * g) & (r > 2 * b))
    assert len(u) > 5, "the red cube is not visible"
    return np.array([u.mean(), v.mean()])


@pytest.mark.parametrize("yaw, pitch", [(30.0, 0.0), (-20.0, 0.0), (0.0, 15.0)])
def test_camera_offset_moves_the_view_as_the_geometry_core_says(task, yaw, pitch):
    """Render the red cube from the training camera and from the orbited one; its image position in each must be the
    projection of its known 3D centre through the geometry core's orbit transform (target_transform)."""
    config = task.config
    size = config.render_size
    K = PinholeCamera(task.K_render, size, size).K
    state = sample_start_states(config, 1, np.random.default_rng(11))[0]
    state.cubes[0] = [0.68, 0.2, config.cube_half_m]  # far from the orbit pivot, so it moves in the image
    state.ee_start[:] = [0.35, -0.2, 0.35]  # gripper away from the cube
    data = task.reset(state)
    T_world_src = camera_pose(config)
    T_dst_src = target_transform(OrbitTarget(yaw_deg=yaw, pitch_deg=pitch, pivot_m=config.pivot_m))
    centre_src = invert_transform(T_world_src) @ np.append(state.cubes[0], 1.0)
    expected = []
    for T in (np.eye(4), T_dst_src):
        p = (T @ centre_src)[:3]
        expected.append((K @ p)[:2] / p[2])
    seen = [_red_centroid(task.render(data, camera_pose(config, *offset))[0]) for offset in ((0, 0), (yaw, pitch))]
    for e, s in zip(expected, seen):
        np.testing.assert_allclose(s, e, atol=2.0)  # pixels at 128x128 (cube faces vs its centre)
    assert np.linalg.norm(seen[1] - seen[0]) > 4.0  # the offset really moved the view (2x the tolerance)
    # the rendering camera's optical axis turned by the requested angle
    axis_src, axis_dst = T_world_src[:3, 2], camera_pose(config, yaw, pitch)[:3, 2]
    angle = np.degrees(np.arccos(np.clip(axis_src @ axis_dst, -1, 1)))
    assert angle == pytest.approx(np.hypot(yaw, pitch), abs=0.5)


def test_task_config_pivot_is_the_camera_to_table_distance():
    config = TaskConfig(camera_eye=(1.0, 0.0, 0.4), camera_target=(0.4, 0.0, 0.0))
    assert config.pivot_m == pytest.approx(np.hypot(0.6, 0.4))
