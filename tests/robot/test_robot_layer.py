"""The robot layer as the transports use it: bad robot descriptions, missing or stale joint states and missing TF
make the frame the plain way (counted, said once) and never raise; with everything present the view has the robot,
and on simulator truth fed through TF and 50 Hz joint states it matches the second camera's robot silhouette."""

import logging

import numpy as np
import pytest

from embody4d_ros.robot_layer import RobotLayer, RobotLayerConfig

H, W = 120, 160
K = np.array([[150.0, 0, 79.5], [0, 150.0, 59.5], [0, 0, 1]])
ARM = """<robot name="arm"><link name="base"/><link name="arm"><visual><origin xyz="0 0 0.2"/>
<geometry><box size="0.1 0.1 0.4"/></geometry></visual></link>
<joint name="shoulder" type="revolute"><parent link="base"/><child link="arm"/><axis xyz="0 1 0"/>
<limit lower="-2" upper="2"/></joint></robot>"""
MS = 1_000_000


def frame():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (H, W, 3), dtype=np.uint8), np.full((H, W), 3.0, np.float32)


def camera_sees_base(layer, stamp_ns=0):
    """The camera optical frame 1.5 m in front of the arm's base (optical z along the base's -x... here simply
    the base 1.5 m ahead on the optical axis, base z pointing up the image)."""
    T_cam_base = np.array([[1, 0, 0, 0], [0, 0, -1, 0.2], [0, 1, 0, 1.5], [0, 0, 0, 1]], float)
    layer.add_transform("camera_color_optical_frame", "base", T_cam_base, stamp_ns, static=True)


def test_unparsable_urdf_and_missing_mesh_are_one_warning_each_and_frames_still_come(caplog):
    rgb, depth = frame()
    for text, named in [
        ("<robot name='x'><link name='a'>", "not valid XML"),
        (
            "<robot name='x'><link name='a'><visual><geometry><mesh filename='package://ghost/a.stl'/>"
            "</geometry></visual></link></robot>",
            "package://ghost/a.stl",
        ),
    ]:
        caplog.clear()
        layer = RobotLayer(RobotLayerConfig(enable="auto"))
        with caplog.at_level(logging.INFO, logger="embody4d_ros.robot_layer"):
            layer.set_robot_description(text)
            layer.set_robot_description(text)  # latched topics repeat: still one warning
            views = [layer.virtual_view(rgb, depth, K, "cam", k * MS, np.eye(4), (H, W)) for k in range(3)]
        assert views == [None, None, None] and not layer.active
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1 and named in warnings[0] and "robot layer off" in warnings[0]
        assert layer.counters["no_robot_model"] == 3


def test_missing_or_stale_joint_states_and_missing_tf_are_counted_per_frame():
    rgb, depth = frame()
    layer = RobotLayer(RobotLayerConfig(enable="auto", joint_slop_s=0.02))
    layer.set_robot_description(ARM)
    assert layer.active
    assert layer.virtual_view(rgb, depth, K, "camera_color_optical_frame", 100 * MS, np.eye(4), (H, W)) is None
    assert layer.counters["joint_state_missing"] == 1
    layer.add_joint_state(100 * MS, ["shoulder"], [0.3])
    assert layer.virtual_view(rgb, depth, K, "camera_color_optical_frame", 100 * MS, np.eye(4), (H, W)) is None
    assert layer.counters["tf_missing"] == 1  # the camera frame is not in TF yet
    camera_sees_base(layer)
    assert layer.virtual_view(rgb, depth, K, "camera_color_optical_frame", 200 * MS, np.eye(4), (H, W)) is None
    assert layer.counters["joint_state_stale"] == 1  # 100 ms old, the slop is 20 ms
    view = layer.virtual_view(rgb, depth, K, "camera_color_optical_frame", 110 * MS, np.eye(4), (H, W))
    assert view is not None and layer.counters["drawn"] == 1


def test_drawn_view_has_the_robot_where_its_model_and_tf_put_it():
    rgb, depth = frame()
    layer = RobotLayer(RobotLayerConfig(enable="true", scene_memory=False))
    layer.set_robot_description(ARM)
    camera_sees_base(layer)
    layer.add_joint_state(0, ["shoulder"], [0.0])
    view = layer.virtual_view(rgb, depth, K, "camera_color_optical_frame", 0, np.eye(4), (H, W))
    request = view.request
    assert request.warped_rgb.shape == (1, H, W, 3) and request.warp_mask.shape == (1, H, W)
    # the upright 0.1 x 0.1 x 0.4 m arm stands 1.45 m ahead, from the base up to 0.4 m above it (up the image)
    robot = request.target_interaction[0] > 0
    v, u = np.nonzero(robot)
    assert abs(u.mean() - K[0, 2]) < 1.0
    expected_top = K[1, 2] + K[1, 1] * (0.2 - 0.4) / 1.45
    expected_bottom = K[1, 2] + K[1, 1] * 0.2 / 1.45
    assert abs(v.min() - expected_top) <= 1.5 and abs(v.max() - expected_bottom) <= 1.5
    np.testing.assert_allclose(request.warped_depth[0][robot].min(), 1.45, atol=2e-3)


def test_parameter_override_replaces_tf_and_disabled_layer_does_nothing():
    rgb, depth = frame()
    layer = RobotLayer(RobotLayerConfig(T_camera_root=[0, 0.2, 1.5, 0.7071068, 0, 0, 0.7071068]))
    layer.set_robot_description(ARM)
    layer.add_joint_state(0, ["shoulder"], [0.0])
    assert layer.virtual_view(rgb, depth, K, "no_such_frame", 0, np.eye(4), (H, W)) is not None
    off = RobotLayer(RobotLayerConfig(enable="false"))
    off.set_robot_description(ARM)
    assert not off.active and off.virtual_view(rgb, depth, K, "cam", 0, np.eye(4), (H, W)) is None
    with pytest.raises(ValueError, match="robot.enable"):
        RobotLayerConfig(enable="yes")


@pytest.mark.slow
def test_simulated_robot_through_tf_and_joint_states_at_their_own_rate(panda_robot):
    from offline_training.sim.robot_truth import RobotTruthScene

    height, width = 240, 320
    layer = RobotLayer(RobotLayerConfig(gripper_link="panda_hand"))
    layer.model = panda_robot  # the session's Panda (the URDF file path would load the same)
    with RobotTruthScene("panda_bullet", height, width, seed=3, root_link="panda_link0") as truth:
        T_world_src, T_world_tgt = truth.robot_layer_cameras()
        T_dst_src = np.linalg.inv(T_world_tgt) @ T_world_src
        # TF as a robot publishes it: root -> camera_link (hand-eye), camera_link -> optical frame
        T_link_optical = np.array([[0, 0, 1, 0], [-1, 0, 0, 0], [0, -1, 0, 0], [0, 0, 0, 1]], float)
        T_root_link = np.linalg.inv(truth.T_world_root()) @ T_world_src @ np.linalg.inv(T_link_optical)
        layer.add_transform("panda_link0", "camera_link", T_root_link, 0, static=True)
        layer.add_transform("camera_link", "camera_color_optical_frame", T_link_optical, 0, static=True)
        ious = []
        offsets = truth.random_offsets(0.25)
        for stamp in [100 * MS, 133 * MS, 166 * MS]:
            # joint states at 50 Hz around the frame: the state at the frame's stamp is interpolated
            before, after = offsets * (stamp - 10 * MS) / (200 * MS), offsets * (stamp + 10 * MS) / (200 * MS)
            for when, value in ((stamp - 10 * MS, before), (stamp + 10 * MS, after)):
                truth.set_joints(value)
                joints = truth.joint_positions()
                layer.add_joint_state(when, list(joints), list(joints.values()))
            truth.set_joints((before + after) / 2)
            src, tgt = truth.render(T_world_src, 55.0), truth.render(T_world_tgt, 55.0)
            view = layer.virtual_view(
                src["rgb"],
                src["depth"],
                src["K"],
                "camera_color_optical_frame",
                stamp,
                T_dst_src,
                (height, width),
                K_dst=tgt["K"],
            )
            robot = view.request.target_interaction[0] > 0
            ious.append((robot & tgt["robot"]).sum() / (robot | tgt["robot"]).sum())
    assert layer.counters["drawn"] == 3 and min(ious) >= 0.9, (ious, dict(layer.counters))


def test_unknown_gripper_link_and_errors_inside_the_layer_never_raise(caplog):
    rgb, depth = frame()
    layer = RobotLayer(RobotLayerConfig(gripper_link="tool0"))
    with caplog.at_level(logging.WARNING, logger="embody4d_ros.robot_layer"):
        layer.set_robot_description(ARM)
    assert not layer.active and "robot.gripper_link 'tool0' is not a link" in caplog.records[-1].getMessage()
    layer = RobotLayer(RobotLayerConfig())
    layer.set_robot_description(ARM)
    camera_sees_base(layer)
    layer.add_joint_state(0, ["shoulder"], [0.0])
    # depth of another size than the colour: the layer fails inside, the frame is left to the plain path
    assert layer.virtual_view(rgb, depth[:60], K, "camera_color_optical_frame", 0, np.eye(4), (H, W)) is None
    assert layer.counters["robot_layer_error"] == 1


def test_a_model_built_in_process_is_checked_like_a_description(caplog):
    from model.robot import RobotModel

    model = RobotModel.from_urdf_string(ARM)
    layer = RobotLayer(RobotLayerConfig(enable="true", gripper_link="hand"))
    with caplog.at_level(logging.WARNING, logger="embody4d_ros.robot_layer"):
        layer.set_model(model, "the test arm")
    assert (
        not layer.active and "robot.gripper_link 'hand' is not a link" in caplog.text and "the test arm" in caplog.text
    )
    layer = RobotLayer(RobotLayerConfig(enable="true", gripper_link="arm", scene_memory=False))
    layer.set_model(model, "the test arm")
    assert layer.active and layer.model is model
    camera_sees_base(layer)
    layer.add_joint_state(0, ["shoulder"], [0.0])
    rgb, depth = frame()
    assert layer.virtual_view(rgb, depth, K, "camera_color_optical_frame", 0, np.eye(4), (H, W)) is not None


@pytest.mark.parametrize("error_m", [0.0, 0.02])
def test_the_hand_eye_check_runs_beside_the_frames_and_warns_about_a_2cm_error(caplog, error_m):
    from model.robot import RobotModel

    layer = RobotLayer(RobotLayerConfig(enable="true", scene_memory=False, hand_eye_every=1))
    layer.set_robot_description(ARM)
    camera_sees_base(layer)  # what TF believes
    T_believed = np.array([[1, 0, 0, 0], [0, 0, -1, 0.2], [0, 1, 0, 1.5], [0, 0, 0, 1]], float)
    T_true = T_believed.copy()
    T_true[2, 3] += error_m  # the robot really stands this much farther from the camera
    rgb, _ = frame()
    with caplog.at_level(logging.INFO, logger="embody4d_ros.robot_layer"):
        for k in range(6):
            shoulder = 0.1 * k
            layer.add_joint_state(k * MS, ["shoulder"], [shoulder])
            # the sensor sees the arm where it really is, before a wall 3 m away
            seen = RobotModel.from_urdf_string(ARM).render({"shoulder": shoulder}, K, T_true, H, W, with_colour=False)
            depth = np.where(seen.mask, seen.depth, 3.0).astype(np.float32)
            view = layer.virtual_view(rgb, depth, K, "camera_color_optical_frame", k * MS, np.eye(4), (H, W))
            assert view is not None
            assert layer.hand_eye.wait(timeout_s=30)
    assert layer.hand_eye.checks == 6  # one per frame: each finished before the next frame came
    warnings = [r for r in caplog.records if "hand-eye calibration looks wrong" in r.getMessage()]
    if error_m == 0:
        assert warnings == []
        return
    # once, from the worker thread, with the offset (sensor minus model: +2 cm along the optical axis)
    assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING
    assert warnings[0].threadName == "hand-eye check" and "z=+2.0" in warnings[0].getMessage()


def test_scene_warp_runs_on_the_threads_asked_for_and_gives_the_one_thread_view(monkeypatch):
    import model.robot.compose as compose

    asked = []
    warp = compose.forward_warp_clip
    monkeypatch.setattr(compose, "forward_warp_clip", lambda *a, **k: asked.append(k["threads"]) or warp(*a, **k))
    rgb, depth = frame()
    views = []
    for threads in (1, 3):
        layer = RobotLayer(RobotLayerConfig(enable="true", scene_memory=False, warp_threads=threads))
        layer.set_robot_description(ARM)
        camera_sees_base(layer)
        layer.add_joint_state(0, ["shoulder"], [0.2])
        T_dst_src = np.eye(4)
        T_dst_src[0, 3] = -0.1
        views.append(layer.virtual_view(rgb, depth, K, "camera_color_optical_frame", 0, T_dst_src, (H, W)))
    assert asked == [1, 3]
    one, three = (view.request for view in views)
    np.testing.assert_array_equal(three.warped_rgb, one.warped_rgb)
    np.testing.assert_array_equal(three.coverage, one.coverage)
