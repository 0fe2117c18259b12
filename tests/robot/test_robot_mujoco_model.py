"""Robots without a URDF (MJCF) through `MujocoRobotModel`: drawn by the project's rasteriser with MuJoCo's kinematics,
compared with the data engine's own MuJoCo rendering of the same scene (silhouette and depth), at the engine's scale."""

import numpy as np
import pytest

from model.robot.mujoco_model import MujocoRobotModel

pytestmark = pytest.mark.slow  # a data-engine scene rendered by MuJoCo


@pytest.mark.parametrize("robot", ["panda", "fetch"])  # robosuite MJCF (training), gymnasium-robotics MJCF (held out)
def test_mjcf_robot_matches_the_data_engine_rendering(robot):
    from offline_training.sim.camera import look_at
    from offline_training.sim.robot_truth import RobotTruthScene
    from offline_training.sim.robots import HIDDEN_GROUP

    with RobotTruthScene(robot, 240, 320, seed=4) as truth:
        model = MujocoRobotModel(
            truth.scene.model, prefix="robot/", visible_groups=[g for g in range(6) if g != HIDDEN_GROUP]
        )
        assert set(model.joint_names) == set(truth.joint_positions())
        ious = []
        for trial in range(2):
            truth.set_joints(truth.random_offsets(0.2))
            root = truth.root_position()
            centre = root + [0.3, 0, 0.4]
            view = truth.render(
                look_at(centre + [1.8 * np.cos(trial - 0.4), 1.8 * np.sin(trial - 0.4), 0.8], centre), 60.0
            )
            ours = model.render(truth.joint_positions(), view["K"], view["T_cam_root"], 240, 320)
            # the robot alone is drawn; in the scene the floor or table may hide part of it (fetch's base)
            visible = ours.mask & ((view["depth"] == 0) | (ours.depth <= view["depth"] + 0.01))
            ious.append((visible & view["robot"]).sum() / (visible | view["robot"]).sum())
            both = visible & view["robot"]
            assert np.median(np.abs(ours.depth[both] - view["depth"][both])) < 0.005
    assert min(ious) >= 0.95, ious
