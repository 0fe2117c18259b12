"""The hand-eye check on simulator truth: the rendered source-view robot against the sensor depth of the data
engine's scene (table, walls and all) finds a 2 cm calibration error, its direction, and no error when there is none."""

import logging

import numpy as np
import pytest

from model.robot.calibration import HandEyeMonitor, measure_hand_eye_offset

pytestmark = pytest.mark.slow  # a data-engine scene rendered by MuJoCo


@pytest.fixture(scope="module")
def views(panda_robot):
    from offline_training.sim.camera import look_at
    from offline_training.sim.robot_truth import RobotTruthScene

    frames = []
    with RobotTruthScene("panda_bullet", 240, 320, seed=1, root_link="panda_link0") as truth:
        for k in range(3):
            truth.set_joints(truth.random_offsets())
            root = truth.root_position()
            eye = root + np.array([1.4 * np.cos(0.7 * k - 0.7), 1.4 * np.sin(0.7 * k - 0.7), 0.7])
            view = truth.render(look_at(eye, root + [0, 0, 0.4]), 55.0)
            view["joints"] = truth.joint_positions()
            frames.append(view)
    return panda_robot, frames


def _offset(robot, view, T_error=None):
    # the model is drawn with the (possibly wrong) calibration T_error @ T_cam_root
    T_error = np.eye(4) if T_error is None else T_error
    drawn = robot.render(view["joints"], view["K"], T_error @ view["T_cam_root"], 240, 320, with_colour=False)
    return measure_hand_eye_offset(drawn.depth, drawn.mask, view["depth"], view["K"])


def test_correct_calibration_measures_no_offset(views):
    robot, frames = views
    for view in frames:
        result = _offset(robot, view)
        assert result.distance_m < 0.003
        assert result.inliers > 0.9


def test_a_2cm_hand_eye_error_is_measured_with_its_direction(views):
    robot, frames = views
    rng = np.random.default_rng(5)
    for view in frames:
        error = rng.normal(size=3)
        error *= 0.02 / np.linalg.norm(error)
        T_error = np.eye(4)
        T_error[:3, 3] = error  # the camera believes the robot is 2 cm off along `error`
        result = _offset(robot, view, T_error)
        # sensor minus model: the model must move back by the error
        assert np.linalg.norm(result.offset_m + error) < 0.003, (result.offset_m, error)


def test_monitor_warns_once_with_the_offset_and_recovers(views, caplog):
    robot, frames = views
    T_error = np.eye(4)
    T_error[:3, 3] = [0.02, 0.0, 0.0]
    monitor = HandEyeMonitor(tolerance_m=0.01, window=3)
    with caplog.at_level(logging.INFO, logger="model.robot.calibration"):
        states = [monitor.update(_offset(robot, view, T_error)) for view in frames + frames[:1]]
        assert states == [False, False, True, True]
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1 and "cm from where the depth sensor sees it" in warnings[0].getMessage()
        assert "x=-2.0" in warnings[0].getMessage() or "x=-1.9" in warnings[0].getMessage()
        states = [monitor.update(_offset(robot, view)) for view in frames]
        assert states[-1] is False and "agree again" in caplog.records[-1].getMessage()
