"""The hand-eye check's worker thread: live, a check that comes due while the last still runs is skipped (the frame
thread never waits); offline (augment-bag), it waits, so every due check runs and a re-run warns the same."""

import time

import numpy as np
import pytest

from model.robot import calibration


@pytest.mark.parametrize("skip_when_busy, expected_checks", [(True, 1), (False, 3)])
def test_a_check_due_while_one_runs_is_skipped_live_and_waited_for_offline(
    monkeypatch, skip_when_busy, expected_checks
):
    def slow_check(*images):
        time.sleep(0.2)
        return None

    monkeypatch.setattr(calibration, "measure_hand_eye_offset", slow_check)
    checker = calibration.BackgroundHandEyeCheck(calibration.HandEyeMonitor(), skip_when_busy=skip_when_busy)
    images = (np.ones((4, 4)), np.ones((4, 4), bool), np.ones((4, 4)), np.eye(3))
    started = [checker.submit(*images) for _ in range(3)]
    assert checker.wait(timeout_s=5)
    assert checker.checks == expected_checks
    assert started == [True, not skip_when_busy, not skip_when_busy]


def test_augment_bag_runs_every_due_check_before_it_ends(tmp_path, monkeypatch):
    from test_robot_augment_bag import ARM, T, WarpOnly, bag_with_robot_topics, sensor_clip

    from embody4d_ros.augment_bag import augment_bag
    from embody4d_ros.params import resolve
    from model.robot import RobotModel

    finished = []

    def slow_check(*images):
        time.sleep(0.3)  # longer than the three small frames take: a live layer would skip the next two
        finished.append(True)
        return None

    monkeypatch.setattr(calibration, "measure_hand_eye_offset", slow_check)
    _, with_robot = bag_with_robot_topics(tmp_path, *sensor_clip(RobotModel.from_urdf_string(ARM)))
    cameras = resolve(None, ["robot.hand_eye_every=1"])
    run = augment_bag(with_robot, tmp_path / "out", cameras, engine_factory=lambda p: WarpOnly(), progress=False)
    assert run["robot"]["virtual_camera"] == {"drawn": T}
    assert len(finished) == T  # every frame's check ran, and the last one finished before augment_bag returned


def test_a_live_runtime_lets_the_running_check_finish_when_it_stops(monkeypatch):
    from embody4d_ros.params import validate
    from embody4d_ros.runtime import VirtualCameraRuntime

    def slow_check(*images):
        time.sleep(0.3)
        return None

    monkeypatch.setattr(calibration, "measure_hand_eye_offset", slow_check)
    runtime = VirtualCameraRuntime(validate({"robot.enable": "true"}), publish=lambda frame: None)
    runtime.start()
    hand_eye = runtime.robot_layer.hand_eye
    assert hand_eye.submit(np.ones((4, 4)), np.ones((4, 4), bool), np.ones((4, 4)), np.eye(3))
    runtime.stop()
    assert hand_eye.checks == 1
