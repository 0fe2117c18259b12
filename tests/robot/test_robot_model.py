"""The robot model: URDF parsing and mesh URIs, forward kinematics against MuJoCo's, rasterised depth and mask against
analytic geometry and against the data engine's own MuJoCo rendering of the same robot."""

import os
import textwrap

import numpy as np
import pytest

from model.robot import RobotModel, RobotModelError, parse_urdf, resolve_uri

pybullet_data = pytest.importorskip("pybullet_data")
PANDA_URDF = os.path.join(pybullet_data.getDataPath(), "franka_panda", "panda.urdf")


@pytest.fixture(scope="module")
def panda(panda_robot):
    return panda_robot


def _box_urdf(size=(0.2, 0.4, 0.1), xyz=(0, 0, 0)) -> str:
    return textwrap.dedent(f"""\
        <robot name="box"><link name="base"><visual><origin xyz="{" ".join(map(str, xyz))}"/>
        <geometry><box size="{" ".join(map(str, size))}"/></geometry></visual></link></robot>""")


def test_box_depth_and_mask_match_analytic_projection():
    # a 0.2 x 0.4 x 0.1 box 2 m in front of a camera looking along +x of the root: its near face is a plane at 1.9 m
    robot = RobotModel.from_urdf_string(_box_urdf(size=(0.2, 0.4, 0.1), xyz=(2.0, 0.0, 0.0)))
    T_cam_root = np.array([[0, -1, 0, 0], [0, 0, -1, 0], [1, 0, 0, 0], [0, 0, 0, 1]], float)  # optical from x-forward
    K = np.array([[500.0, 0, 150.3], [0, 450.0, 100.7], [0, 0, 1]])  # off-centre, fx != fy
    out = robot.render({}, K, T_cam_root, 200, 300)
    # the near face spans y in [-0.2, 0.2] (image u) and z in [-0.05, 0.05] (image v) at x = 1.9
    u_lo, u_hi = 150.3 - 500 * 0.2 / 1.9, 150.3 + 500 * 0.2 / 1.9
    v_lo, v_hi = 100.7 - 450 * 0.05 / 1.9, 100.7 + 450 * 0.05 / 1.9
    u, v = np.meshgrid(np.arange(300), np.arange(200))
    expected = (u >= u_lo) & (u <= u_hi) & (v >= v_lo) & (v <= v_hi)
    assert np.array_equal(out.mask, expected)
    np.testing.assert_allclose(out.depth[expected], 1.9, atol=1e-5)
    assert np.all(out.depth[~expected] == 0)
    assert out.rgb[expected].min() > 0 and out.rgb[~expected].max() == 0


def test_visual_meshes_are_drawn_whole(panda):
    # every triangle of every object of each visual OBJ, which MuJoCo 4.0's OBJ import truncates
    import xml.etree.ElementTree as ET

    root = os.path.dirname(PANDA_URDF)
    meshes = [
        m.get("filename").replace("package://", "") for m in ET.parse(PANDA_URDF).findall("link/visual/geometry/mesh")
    ]
    assert panda.num_faces == sum(_obj_triangles(os.path.join(root, m)) for m in meshes)
    assert _obj_triangles(os.path.join(root, "meshes", "visual", "link5.obj")) == 18327


def _obj_triangles(path: str) -> int:
    """Triangles of an OBJ file counted from its own face lines (an n-gon is n - 2 triangles), every object."""
    with open(path) as f:
        return sum(len(line.split()) - 3 for line in f if line.startswith("f "))


def test_data_engine_urdf_robot_compiles_whole_visual_meshes():
    # MuJoCo 4.0 alone compiles 250 of link5.obj's 18,327 triangles (the file's first object)
    model = _mujoco_panda()
    visual = os.path.join(os.path.dirname(PANDA_URDF), "meshes", "visual")
    for name in ("link3", "link5", "link6", "hand", "finger"):
        assert model.mesh_facenum[model.mesh(name).id] == _obj_triangles(os.path.join(visual, f"{name}.obj")), name


def _mujoco_panda():
    from offline_training.sim.robots import load_robot, mujoco_warnings_to_log

    with mujoco_warnings_to_log():
        _, spec = load_robot("panda_bullet")
        return spec.compile()


def test_forward_kinematics_matches_mujoco(panda):
    import mujoco

    model = _mujoco_panda()
    data = mujoco.MjData(model)
    rng = np.random.default_rng(3)
    for _ in range(3):
        positions = {name: float(rng.uniform(-1.5, 1.5)) for name in panda.joint_names}
        positions["panda_finger_joint1"] = float(rng.uniform(0.0, 0.04))
        for j in range(model.njnt):
            name = model.joint(j).name
            # MuJoCo's URDF import does not follow <mimic>: the second finger is set as its leader says
            value = positions["panda_finger_joint1"] if name == "panda_finger_joint2" else positions[name]
            data.qpos[model.jnt_qposadr[j]] = value
        mujoco.mj_kinematics(model, data)
        poses = panda.link_transforms(positions)
        compared = 0
        for b in range(1, model.nbody):
            name = model.body(b).name
            np.testing.assert_allclose(poses[name][:3, 3], data.xpos[b], atol=1e-6, err_msg=name)
            np.testing.assert_allclose(poses[name][:3, :3], data.xmat[b].reshape(3, 3), atol=1e-6, err_msg=name)
            compared += 1
        assert compared >= 10  # links 1-7, hand, fingers


@pytest.mark.slow
def test_render_matches_data_engine_robot_mask_and_depth(panda):
    """The data engine's scene (panda_bullet at scale 1) rendered by MuJoCo vs this rasteriser: same joint state and
    camera, robot silhouette IoU and depth on the shared pixels."""
    from offline_training.sim.camera import look_at
    from offline_training.sim.robot_truth import RobotTruthScene

    ious = []
    with RobotTruthScene("panda_bullet", 240, 320, seed=0, root_link="panda_link0") as truth:
        for trial in range(3):
            truth.set_joints(truth.random_offsets())
            root = truth.root_position()
            view = truth.render(
                look_at(root + [1.3 * np.cos(trial), 1.3 * np.sin(trial), 0.6], root + [0, 0, 0.4]), 55.0
            )
            ours = panda.render(truth.joint_positions(), view["K"], view["T_cam_root"], 240, 320)
            ious.append((ours.mask & view["robot"]).sum() / (ours.mask | view["robot"]).sum())
            both = ours.mask & view["robot"]
            assert np.median(np.abs(ours.depth[both] - view["depth"][both])) < 0.005
    assert min(ious) >= 0.9, ious


def test_mimic_joint_follows_its_leader(panda):
    poses = panda.link_transforms({"panda_finger_joint1": 0.03})
    left = np.linalg.inv(poses["panda_hand"]) @ poses["panda_leftfinger"]
    right = np.linalg.inv(poses["panda_hand"]) @ poses["panda_rightfinger"]
    # the two fingers slide apart symmetrically: 2 x 0.03 m between them
    assert np.linalg.norm(left[:3, 3] - right[:3, 3]) == pytest.approx(0.06, abs=1e-9)


def test_mesh_uris_resolve_through_ament_index_search_paths_and_files(tmp_path, monkeypatch):
    prefix = tmp_path / "install"
    (prefix / "share" / "ament_index" / "resource_index" / "packages").mkdir(parents=True)
    (prefix / "share" / "ament_index" / "resource_index" / "packages" / "my_robot").touch()
    mesh = prefix / "share" / "my_robot" / "meshes" / "arm.stl"
    mesh.parent.mkdir(parents=True)
    mesh.touch()
    monkeypatch.setenv("AMENT_PREFIX_PATH", f"/nonexistent:{prefix}")
    assert resolve_uri("package://my_robot/meshes/arm.stl", None) == str(mesh)
    monkeypatch.setenv("AMENT_PREFIX_PATH", "")
    assert resolve_uri("package://my_robot/meshes/arm.stl", None, [str(prefix / "share")]) == str(mesh)
    assert resolve_uri(f"file://{mesh}", None) == str(mesh)
    assert resolve_uri("meshes/arm.stl", str(prefix / "share" / "my_robot")) == str(mesh)
    with pytest.raises(RobotModelError, match="package://other/arm.stl"):
        resolve_uri("package://other/arm.stl", None, [str(prefix / "share")])


@pytest.mark.parametrize(
    "text, message",
    [
        ("<robot><link name='a'>", "not valid XML"),
        (
            "<robot name='r'><link name='a'><visual><geometry><mesh filename='package://nowhere/x.stl'/></geometry>"
            "</visual></link></robot>",
            "package://nowhere/x.stl",
        ),
        (
            "<robot><link name='a'/><joint name='j' type='fixed'><parent link='a'/><child link='b'/></joint></robot>",
            "link 'b'",
        ),
        ("<robot><link name='a'/><link name='b'/></robot>", "2 root links"),
        (
            "<robot><link name='a'/><link name='b'/><joint name='j' type='revolute'><parent link='a'/><child link='b'/>"
            "<mimic joint='ghost'/></joint></robot>",
            "ghost",
        ),
    ],
)
def test_bad_descriptions_raise_one_clear_error(text, message):
    with pytest.raises(RobotModelError, match=message):
        RobotModel(parse_urdf(text))


def test_back_face_culling_changes_almost_nothing_visible(panda):
    import copy

    assert not panda.face_two_sided.any()  # every Panda visual mesh is closed and wound outwards
    two_sided = copy.copy(panda)
    two_sided.face_two_sided = np.ones_like(panda.face_two_sided)
    from offline_training.sim.camera import intrinsics, look_at

    K = intrinsics(50.0, 240, 320)
    for eye in ([1.4, 0.5, 0.9], [-0.8, -1.0, 1.5]):
        T_cam_root = np.linalg.inv(look_at(np.array(eye), np.array([0.0, 0.0, 0.45])))
        positions = {"panda_joint2": -0.4, "panda_joint4": -2.0, "panda_joint6": 1.8}
        culled, full = (
            panda.render(positions, K, T_cam_root, 240, 320),
            two_sided.render(positions, K, T_cam_root, 240, 320),
        )
        # the meshes are not watertight: a few pixels look through an opening onto a culled inside
        differ = culled.mask != full.mask
        assert differ.sum() <= 0.002 * full.mask.sum()
        same = culled.mask & full.mask
        assert np.mean(np.abs(culled.depth[same] - full.depth[same]) < 1e-6) > 0.998
