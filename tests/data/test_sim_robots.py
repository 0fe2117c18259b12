"""The robot library: size, held-out split, failure handling, scaling, and the random joint motion."""

import warnings

import mujoco
import numpy as np
import pytest

from offline_training.sim import robots
from offline_training.sim.motion import random_joint_motion
from offline_training.sim.robots import LIBRARY, MORPHOLOGY, TEST_ROBOTS, available_robots, robot_names


def test_library_has_at_least_15_loadable_morphologies():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # every shipped robot should load here
        names = available_robots()
    assert len({MORPHOLOGY[n] for n in names}) >= 15


def test_test_split_holds_out_whole_morphologies():
    train, test = robot_names("train"), robot_names("test")
    assert set(train) | set(test) == set(LIBRARY) and not set(train) & set(test)
    test_morphologies = {MORPHOLOGY[n] for n in test}
    assert len(test_morphologies) >= 3 and test_morphologies <= set(TEST_ROBOTS)
    assert not test_morphologies & {MORPHOLOGY[n] for n in train}
    with pytest.raises(ValueError, match="split"):
        robot_names("val")


def test_failing_asset_is_skipped_with_a_warning_naming_it(monkeypatch):
    def broken():
        raise FileNotFoundError("meshes/missing.stl")

    monkeypatch.setitem(LIBRARY, "broken_bot", robots.RobotEntry("broken_bot", "nowhere", broken, {}))
    monkeypatch.setitem(MORPHOLOGY, "broken_bot", "broken_bot")
    monkeypatch.setattr(robots, "_LOADABLE", {})
    with pytest.warns(UserWarning, match="broken_bot"):
        names = available_robots("train")
    assert "broken_bot" not in names and "panda" in names
    with pytest.raises(robots.RobotLoadError, match="broken_bot"):
        robots.load_robot("broken_bot")


def test_collision_geoms_are_removed_and_scaling_scales_the_arm():
    lengths = []
    for scale in (1.0, 2.0):
        _, spec = robots.load_robot("panda")
        robots.scale_spec(spec, scale)
        model = spec.compile()
        data = mujoco.MjData(model)
        mujoco.mj_kinematics(model, data)
        lengths.append(np.linalg.norm(data.xpos[model.body("link7").id] - data.xpos[model.body("link0").id]))
        assert model.ngeom > 10 and (model.geom_contype == 0).all(), "collision geoms should be removed"
    assert lengths[1] == pytest.approx(2 * lengths[0], rel=1e-6)


def test_random_motion_is_small_smooth_and_within_limits():
    rng = np.random.default_rng(0)
    ranges = np.array([[-1.0, 1.0], [0.0, 0.5], [-3.0, -2.0]])
    default = np.array([0.95, 0.1, -2.5])
    q = random_joint_motion(default, ranges, 200, rng)
    span = ranges[:, 1] - ranges[:, 0]
    np.testing.assert_array_equal(q[0], default)
    assert (q >= ranges[:, 0] - 1e-12).all() and (q <= ranges[:, 1] + 1e-12).all()
    step = np.abs(np.diff(q, axis=0))
    assert (step <= 0.01 * span + 1e-12).all(), "each step is at most 1/100 of the joint range"
    assert (step.max(axis=0) > 0.002 * span).all(), "every joint moves"
    assert (np.abs(q - default) <= 0.2 * span + 1e-12).all(), "motion stays around the default pose"
    # smooth: the step direction rarely flips (white noise would flip about half the time)
    flips = np.mean(np.sign(np.diff(q, axis=0)[1:]) != np.sign(np.diff(q, axis=0)[:-1]))
    assert flips < 0.2


def test_play_motion_imposes_the_robot_and_lets_it_push_objects():
    from offline_training.sim.motion import play_motion

    model = mujoco.MjModel.from_xml_string("""
    <mujoco><option timestep="0.004"/><worldbody>
      <geom type="plane" size="2 2 0.1"/>
      <body name="pusher" pos="0 0 0.05"><joint name="x" type="slide" axis="1 0 0" range="-1 1"/>
        <geom type="box" size="0.05 0.2 0.05" contype="2" conaffinity="0"/></body>
      <body name="near" pos="0.3 0 0.05"><freejoint/>
        <geom type="box" size="0.05 0.05 0.05" contype="3" conaffinity="3"/></body>
      <body name="far" pos="0.3 1.0 0.05"><freejoint/>
        <geom type="box" size="0.05 0.05 0.05" contype="3" conaffinity="3"/></body>
    </worldbody></mujoco>""")
    data = mujoco.MjData(model)
    trajectory = np.linspace(0.0, 0.5, 26)[:, None]  # the pusher sweeps 0.5 m along x in 2.5 s
    states = play_motion(model, data, np.array([model.jnt_qposadr[0]]), trajectory, fps=10.0)
    np.testing.assert_allclose(states[:, 0], trajectory[:, 0])  # the robot joint follows the trajectory exactly
    near = model.jnt_qposadr[model.body("near").jntadr[0]]
    far = model.jnt_qposadr[model.body("far").jntadr[0]]
    assert states[-1, near] > 0.5, "the object in the sweep is pushed along"
    assert abs(states[-1, far] - 0.3) < 0.01 and abs(states[-1, far + 2] - 0.05) < 0.01, "an untouched object stays"


def test_scene_compile_failure_names_the_robot(monkeypatch):
    from offline_training.sim.scene import build_scene

    def bad_mesh():
        spec = mujoco.MjSpec()
        body = spec.worldbody.add_body(name="base")
        body.add_joint(name="j", type=mujoco.mjtJoint.mjJNT_HINGE, axis=[0, 0, 1])
        body.add_geom(type=mujoco.mjtGeom.mjGEOM_MESH, meshname="no_such_mesh", group=1)
        return spec

    monkeypatch.setitem(LIBRARY, "bad_mesh_bot", robots.RobotEntry("bad_mesh_bot", "nowhere", bad_mesh, {}))
    monkeypatch.setitem(MORPHOLOGY, "bad_mesh_bot", "bad_mesh_bot")
    monkeypatch.setattr(robots, "_LOADABLE", {})
    with pytest.raises(robots.RobotLoadError, match="bad_mesh_bot"):
        build_scene("bad_mesh_bot", np.random.default_rng(0))
    with pytest.warns(UserWarning, match="bad_mesh_bot"):
        assert "bad_mesh_bot" not in available_robots("train")


def test_floating_base_robot_stays_put_while_physics_runs():
    """GR1 ships with a free joint; unfixed, it sank through the floor while the loose objects' physics ran."""
    from offline_training.sim.motion import play_motion
    from offline_training.sim.scene import build_scene

    scene = build_scene("gr1", np.random.default_rng(0))
    base = scene.model.body("robot/" + robots.load_robot("gr1")[1].worldbody.first_body().name).id
    start = scene.data.xpos[base].copy()
    trajectory = np.repeat(scene.default_qpos[None], 10, axis=0)
    play_motion(scene.model, scene.data, scene.robot_qpos_adr, trajectory, fps=10.0)
    np.testing.assert_allclose(scene.data.xpos[base], start, atol=1e-6)
