"""The robot layer's fast paths against slow references written independently here: the box-limited rasteriser
against ray-plane intersection per pixel, the coarse mesh against the full one (silhouette and depth on the Panda),
render reuse, the box-limited composition against the same composition over the whole image, the fused scene-memory
pass against a numpy memory, the hand-eye crop against the same images padded, and the stage timer's bookkeeping.
(The appearance fit's moments: tests/robot/test_robot_compose_appearance.py.)"""

import textwrap
import time

import numpy as np
import pytest

from model.robot import RobotModel, RobotRender
from model.robot.calibration import measure_hand_eye_offset
from model.robot.compose import compose_robot_view
from model.robot.model import COARSE_CELL_M, cluster_vertices
from model.robot.scene_memory import StaticSceneMemory
from model.robot.stages import StageTimes, stage

H, W = 72, 96
K = np.array([[90.0, 0, 47.3], [0, 85.0, 35.8], [0, 0, 1]])
# a two-link arm of primitives (box, cylinder, sphere) with one revolute joint, 1.5 m in front of the camera
ARM = textwrap.dedent("""\
    <robot name="arm">
      <link name="base"><visual><geometry><box size="0.3 0.2 0.1"/></geometry></visual></link>
      <link name="upper">
        <visual><origin xyz="0 0 0.2"/><geometry><cylinder radius="0.04" length="0.4"/></geometry></visual>
        <visual><origin xyz="0 0 0.42"/><geometry><sphere radius="0.06"/></geometry></visual>
      </link>
      <joint name="shoulder" type="revolute"><parent link="base"/><child link="upper"/>
        <axis xyz="0 1 0"/><limit lower="-2" upper="2"/></joint>
    </robot>""")


def camera(distance=1.5, yaw=0.3, pitch=-0.4):
    """T_cam_root of a camera ``distance`` from the root, looking at (0, 0, 0.2)."""
    eye = distance * np.array([np.cos(pitch) * np.cos(yaw), np.cos(pitch) * np.sin(yaw), -np.sin(pitch)])
    eye[2] += 0.2
    forward = np.array([0, 0, 0.2]) - eye
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, [0, 0, 1.0])
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    T_root_cam = np.eye(4)
    T_root_cam[:3, :3] = np.stack([right, down, forward], axis=1)
    T_root_cam[:3, 3] = eye
    return np.linalg.inv(T_root_cam)


def reference_render(robot, positions, K, T_cam_root, height, width):
    """Depth and mask by intersecting every pixel's ray with every triangle's plane (inside test on the triangle's
    projection), nearest hit wins: no edge functions, no stepping, no box."""
    poses = robot.link_transforms(positions)
    T = np.stack([T_cam_root @ poses[link] for link in robot.links])[robot.vertex_link]
    points = np.einsum("nij,nj->ni", T[:, :3, :3], robot.vertices.astype(float)) + T[:, :3, 3]
    u, v = np.meshgrid(np.arange(width, dtype=float), np.arange(height, dtype=float))
    rays = np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones_like(u)], axis=-1)
    depth = np.full((height, width), np.inf)
    for face, two_sided in zip(robot.faces, robot.face_two_sided):
        a, b, c = points[face]
        if min(a[2], b[2], c[2]) < 0.01:
            continue
        normal = np.cross(b - a, c - a)
        if not two_sided and normal @ a >= 0:  # facing away from the camera
            continue
        projected = [(K @ p)[:2] / p[2] for p in (a, b, c)]
        lo, hi = np.floor(np.min(projected, axis=0)).astype(int), np.ceil(np.max(projected, axis=0)).astype(int)
        lo, hi = np.maximum(lo, 0), np.minimum(hi, [width - 1, height - 1])
        if np.any(lo > hi):
            continue
        pixels = np.stack(np.meshgrid(np.arange(lo[0], hi[0] + 1), np.arange(lo[1], hi[1] + 1)), -1).reshape(-1, 2)
        # inside the projected triangle: the same side of all three edges (either winding)
        sides = []
        for p, q in zip(projected, projected[1:] + projected[:1]):
            sides.append((q[0] - p[0]) * (pixels[:, 1] - p[1]) - (q[1] - p[1]) * (pixels[:, 0] - p[0]))
        sides = np.stack(sides)
        inside = np.all(sides >= -1e-9, axis=0) | np.all(sides <= 1e-9, axis=0)
        pixels = pixels[inside]
        ray = rays[pixels[:, 1], pixels[:, 0]]
        z = (normal @ a) / (ray @ normal)  # the ray (x/z, y/z, 1) meets the plane at this z
        closer = z < depth[pixels[:, 1], pixels[:, 0]]
        depth[pixels[closer, 1], pixels[closer, 0]] = z[closer]
    mask = np.isfinite(depth)
    return np.where(mask, depth, 0), mask


@pytest.fixture(scope="module")
def arm():
    return RobotModel.from_urdf_string(ARM)


@pytest.mark.parametrize(
    "view",
    [dict(), dict(yaw=2.0, pitch=0.3), dict(distance=0.45)],  # plain, from behind and below, partly out of the image
)
def test_rasteriser_matches_ray_plane_intersection(arm, view):
    positions = {"shoulder": 0.7}
    T_cam_root = camera(**view)
    out = arm.render(positions, K, T_cam_root, H, W)
    depth, mask = reference_render(arm, positions, K, T_cam_root, H, W)
    assert mask.sum() > 100
    # pixel centres exactly on a shared edge may go either way: a handful at most
    assert (out.mask != mask).sum() <= 3, (out.mask != mask).sum()
    both = out.mask & mask
    np.testing.assert_allclose(out.depth[both], depth[both], rtol=1e-5)
    assert np.all(out.depth[~out.mask] == 0) and np.all(out.part[~out.mask] == -1)
    # the box holds every robot pixel and nothing is drawn outside it
    v_lo, v_hi, u_lo, u_hi = out.box
    assert out.mask[v_lo:v_hi, u_lo:u_hi].sum() == out.mask.sum()
    assert np.all(out.rgb[~out.mask] == 0) and np.all(out.normal[~out.mask] == 0)
    np.testing.assert_allclose(np.linalg.norm(out.normal[out.mask], axis=-1), 1.0, atol=1e-5)


def test_back_face_groups_skip_only_faces_that_face_away(panda_robot):
    from model.robot.raster import _groups_facing

    rng = np.random.default_rng(4)
    positions = dict(zip(panda_robot.joint_names, [0.0, -0.3, 0.0, -2.2, 0.0, 2.0, 0.8, 0.03]))
    poses = panda_robot.link_transforms(positions)
    skipped = []
    for coarse in (False, True):
        mesh = panda_robot._meshes[coarse]
        if not coarse:  # the render mesh holds the model's faces, reordered group by group
            assert len(mesh.faces) == len(panda_robot.faces)
            assert np.array_equal(np.unique(mesh.faces, axis=0), np.unique(panda_robot.faces, axis=0))
        for _ in range(5):  # cameras 0.4-2 m away, all around the robot
            direction = rng.normal(size=3)
            eye = rng.uniform(0.4, 2.0) * direction / np.linalg.norm(direction) + [0, 0, 0.4]
            forward = np.array([0, 0, 0.4]) - eye
            forward /= np.linalg.norm(forward)
            right = np.cross(forward, [0, 0, 1.0])
            right /= np.linalg.norm(right)
            T_root_cam = np.eye(4)
            T_root_cam[:3, :3] = np.stack([right, np.cross(forward, right), forward], axis=1)
            T_root_cam[:3, 3] = eye
            T_cam_link = np.stack([np.linalg.inv(T_root_cam) @ poses[link] for link in panda_robot.links])
            facing = np.empty(len(mesh.group_link), bool)
            args = (mesh.group_link, mesh.group_axis, mesh.group_half_angle, mesh.group_centre, mesh.group_radius)
            _groups_facing(np.ascontiguousarray(T_cam_link[:, :3, :]), *args, facing)
            # each face in the camera, written out: it faces away when its normal points along the view ray
            T = T_cam_link[mesh.face_link]
            corner = np.einsum("fij,fj->fi", T[:, :3, :3], mesh.vertices[mesh.faces[:, 0]]) + T[:, :3, 3]
            normal = np.einsum("fij,fj->fi", T[:, :3, :3], mesh.face_normal)
            away = np.einsum("fi,fi->f", normal, corner) > 0
            in_skipped_group = np.repeat(~facing, np.diff(mesh.group_start))
            assert not np.any(in_skipped_group & ~away)
            assert not np.any(in_skipped_group & mesh.two_sided)
            skipped.append(in_skipped_group.mean())
    assert min(skipped) > 0.15  # the groups are worth having


def test_nothing_ahead_of_the_camera_draws_nothing(arm):
    T_cam_root = camera()
    T_cam_root[:3, :] *= -1  # mirrored: everything behind the camera
    T_cam_root[3] = [0, 0, 0, 1]
    out = arm.render({}, K, T_cam_root, H, W)
    assert not out.mask.any() and out.box == (0, 0, 0, 0)


def test_render_is_reused_only_for_the_same_joints_and_camera(arm):
    T_cam_root = camera()
    first = arm.render({"shoulder": 0.2}, K, T_cam_root, H, W)
    assert arm.render({"shoulder": 0.2}, K, T_cam_root.copy(), H, W) is first
    assert not first.depth.flags.writeable and not first.rgb.flags.writeable
    moved = arm.render({"shoulder": 0.25}, K, T_cam_root, H, W)
    assert moved is not first and not np.array_equal(moved.mask, first.mask)
    other_camera = arm.render({"shoulder": 0.25}, K, camera(yaw=0.35), H, W)
    assert not np.array_equal(other_camera.mask, moved.mask)
    # a fresh model (nothing cached) draws the same
    fresh = RobotModel.from_urdf_string(ARM).render({"shoulder": 0.25}, K, T_cam_root, H, W)
    assert np.array_equal(fresh.mask, moved.mask) and np.array_equal(fresh.rgb, moved.rgb)


def test_a_render_without_the_models_colours_draws_the_same_geometry_and_normals(arm):
    T_cam_root = camera()
    full = arm.render({"shoulder": 0.3}, K, T_cam_root, H, W)
    bare = arm.render({"shoulder": 0.3}, K, T_cam_root, H, W, model_colours=False)
    assert bare.rgb is None and full.rgb is not None and bare.mask.sum() > 100
    for name in ("depth", "mask", "part", "normal"):
        assert np.array_equal(getattr(bare, name), getattr(full, name)), name
    for shoulder in (-0.4, 0.5):  # drawn into the arrays of the one before
        bare = arm.render({"shoulder": shoulder}, K, T_cam_root, H, W, model_colours=False)
        expected = RobotModel.from_urdf_string(ARM).render({"shoulder": shoulder}, K, T_cam_root, H, W)
        for name in ("depth", "mask", "part", "normal"):
            assert np.array_equal(getattr(bare, name), getattr(expected, name)), name
        del bare


def test_a_replaced_render_lends_its_arrays_only_when_nothing_holds_them(arm):
    import weakref

    T_cam_root = camera()
    names = ("depth", "mask", "part", "rgb", "normal")

    def render(shoulder):
        return arm.render({"shoulder": shoulder}, K, T_cam_root, H, W)

    held = render(0.1)
    saved = {name: getattr(held, name).copy() for name in names}
    render(0.6)  # a render held by the caller is not drawn over
    assert all(np.array_equal(getattr(held, name), saved[name]) for name in names)
    part_of_one = render(0.2).mask[10:40]  # nor is one whose array (here a slice of it) is held
    kept = part_of_one.copy()
    render(0.7)
    assert np.array_equal(part_of_one, kept)
    # nothing held: the next render of the kind draws into the same arrays, what a fresh model draws
    previous = weakref.ref(render(0.3).depth)
    for shoulder in (0.8, -0.5, 0.35):  # the arm swings across: each drawing clears the last one's box
        out = render(shoulder)
        assert out.depth is previous() and not out.depth.flags.writeable and not out.rgb.flags.writeable
        expected = RobotModel.from_urdf_string(ARM).render({"shoulder": shoulder}, K, T_cam_root, H, W)
        for name in names:
            assert np.array_equal(getattr(out, name), getattr(expected, name)), name
        previous = weakref.ref(out.depth)
        del out


def test_vertex_clustering_moves_no_vertex_more_than_a_cell_diagonal(panda_robot):
    robot = panda_robot
    vertices, vertex_link, faces, kept = cluster_vertices(robot.vertices, robot.vertex_link, robot.faces, 0.006)
    assert len(faces) < 0.5 * len(robot.faces)
    # every original corner of a kept face maps to a clustered vertex of the same link within a cell diagonal
    moved = np.linalg.norm(vertices[faces] - robot.vertices[robot.faces[kept]], axis=-1)
    assert moved.max() <= 0.006 * np.sqrt(3) + 1e-6
    assert np.array_equal(vertex_link[faces], robot.vertex_link[robot.faces[kept]])


def test_coarse_mesh_draws_the_panda_like_the_full_mesh(panda_robot):
    from offline_training.sim.camera import intrinsics, look_at

    height, width = 240, 320
    K_panda = intrinsics(50.0, height, width)
    positions = dict(zip(panda_robot.joint_names, [0.0, -0.3, 0.0, -2.2, 0.0, 2.0, 0.8, 0.03]))
    for eye in ([1.4, 0.5, 0.9], [-0.6, 1.2, 1.1]):
        T_cam_root = np.linalg.inv(look_at(np.array(eye), np.array([0.0, 0.0, 0.45])))
        full = panda_robot.render(positions, K_panda, T_cam_root, height, width, with_colour=False)
        coarse = panda_robot.render(positions, K_panda, T_cam_root, height, width, with_colour=False, coarse=True)
        assert (full.mask & coarse.mask).sum() / (full.mask | coarse.mask).sum() >= 0.99
        both = full.mask & coarse.mask
        error = np.abs(full.depth[both] - coarse.depth[both])
        assert np.percentile(error, 99) <= COARSE_CELL_M  # the composition's model-depth tolerance is 5 mm + 0.5 %
    assert panda_robot.num_coarse_faces < 0.4 * panda_robot.num_faces


def test_composition_over_the_robot_box_equals_the_whole_image(arm):
    rng = np.random.default_rng(3)
    T_cam_root = camera()
    T_dst_src = camera(yaw=0.6) @ np.linalg.inv(T_cam_root)
    positions = {"shoulder": 0.4}
    robot_src = arm.render(positions, K, T_cam_root, H, W, with_colour=False)
    robot_dst = arm.render(positions, K, T_dst_src @ T_cam_root, H, W)
    rgb = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    depth = np.where(robot_src.mask, robot_src.depth, 2.5).astype(np.float32)
    memory_rgb = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    memory_depth = np.full((H, W), 2.5, np.float32)

    def compose(src, dst):
        return compose_robot_view(
            rgb,
            depth,
            K,
            K,
            T_dst_src,
            (H, W),
            src,
            dst,
            arm.part_link,
            memory_rgb=memory_rgb,
            memory_depth=memory_depth,
        )

    def whole(render):
        return RobotRender(render.rgb, render.depth, render.mask, render.part, render.normal, (0, H, 0, W))

    fast, slow = compose(robot_src, robot_dst), compose(whole(robot_src), whole(robot_dst))
    assert fast.robot.sum() > 50 and fast.robot_seen.sum() > 20
    for name in ("rgb", "depth", "mask", "coverage", "robot", "robot_seen", "interaction"):
        assert np.array_equal(getattr(fast, name), getattr(slow, name)), name


class NumpyMemory:
    """The scene memory's rules in plain numpy: agreeing depth averages in (weight 1 / (n + 1), n capped at 15),
    disagreeing replaces, the robot (dilated) and invalid depth leave a pixel alone, and a frame contradicting over
    30 % of the remembered visible pixels starts the memory again. A fresh memory takes the whole frame, later
    updates every ``row_stride``-th row in turn."""

    def __init__(self, shape, row_stride=1):
        self.rgb, self.depth = np.zeros(shape + (3,)), np.zeros(shape)
        self.count = np.zeros(shape, int)
        self.row_stride, self.updates = row_stride, 0

    def update(self, rgb, depth, robot_dilated):
        rows = np.zeros(depth.shape, bool)
        if self.updates == 0:
            rows[:] = True
        else:
            rows[(self.updates - 1) % self.row_stride :: self.row_stride] = True
        self.updates += 1
        visible = ~robot_dilated & (depth > 0) & rows
        known = visible & (self.count > 0)
        agree = known & (np.abs(depth - self.depth) <= 0.03 * depth)
        if known.sum() > 100 and (known & ~agree).sum() > 0.3 * known.sum():
            self.__init__(depth.shape, self.row_stride)
            return self.update(rgb, depth, robot_dilated)
        weight = np.where(agree, 1.0 / (np.minimum(self.count, 15) + 1), 1.0)[visible]
        self.count[visible] = np.where(agree[visible], self.count[visible] + 1, 1)
        self.depth[visible] += weight * (depth[visible] - self.depth[visible])
        self.rgb[visible] += weight[:, None] * (rgb[visible] - self.rgb[visible])


@pytest.mark.parametrize("row_stride", [1, 2, 8])
def test_fused_memory_pass_matches_a_numpy_memory(row_stride):
    import cv2

    rng = np.random.default_rng(1)
    height, width = 40, 50
    background = rng.uniform(0, 255, (height, width, 3))
    memory = StaticSceneMemory(dilate_px=2, row_stride=row_stride)
    reference = NumpyMemory((height, width), row_stride)
    for frame in range(12):
        depth = np.full((height, width), 2.0) + rng.normal(0, 0.01, (height, width))
        depth[rng.random((height, width)) < 0.05] = 0  # sensor dropouts
        if frame >= 4:
            depth[5:15, 5:15] = 1.2  # an object put down
        if frame == 9:
            depth *= 1.5  # a new scene: the memory starts again
        rgb = np.clip(background + rng.normal(0, 6, background.shape), 0, 255).astype(np.uint8)
        robot = np.zeros((height, width), bool)
        robot[10:35, 3 * frame : 3 * frame + 8] = True  # the arm sweeps across
        depth = depth.astype(np.float32)
        memory.update(rgb, depth, robot)
        reference.update(rgb.astype(float), depth.astype(float), cv2.dilate(robot.view(np.uint8), np.ones((5, 5))) > 0)
        remembered_rgb, remembered_depth = memory.background()
        known = reference.count > 0
        assert np.array_equal(remembered_depth > 0, known)
        np.testing.assert_allclose(remembered_depth[known], reference.depth[known], atol=1e-4)
        assert np.abs(remembered_rgb[known].astype(float) - np.round(reference.rgb[known])).max() <= 1
    assert memory.resets == 2  # the new scene at frame 9, the old one back at frame 10


def test_hand_eye_crop_gives_the_whole_images_answer(arm):
    # the check works on the silhouette's surroundings only: padding the images around it changes nothing
    T_cam_root = camera(distance=1.0)
    drawn = arm.render({"shoulder": 0.5}, K, T_cam_root, H, W, with_colour=False)
    T_error = np.eye(4)
    T_error[:3, 3] = [0.015, -0.01, 0.0]
    sensor = arm.render({"shoulder": 0.5}, K, T_error @ T_cam_root, H, W, with_colour=False).depth
    sensor = np.where(sensor > 0, sensor, 1.6).astype(np.float32)  # a wall behind
    pad = 30
    K_padded = K.copy()
    K_padded[:2, 2] += pad

    def padded(image):
        return np.pad(image, pad)

    plain = measure_hand_eye_offset(drawn.depth, drawn.mask, sensor, K, search_px=20)
    wide = measure_hand_eye_offset(padded(drawn.depth), padded(drawn.mask), padded(sensor), K_padded, search_px=20)
    assert plain is not None and wide is not None
    np.testing.assert_allclose(wide.offset_m, plain.offset_m, atol=1e-9)
    assert wide.points == plain.points and wide.inliers == plain.inliers


def test_stage_times_add_up_and_cost_nothing_when_off():
    def spin(seconds):
        end = time.thread_time() + seconds
        while time.thread_time() < end:
            pass

    times = StageTimes()
    with stage("outside"):  # not collecting: nothing recorded anywhere
        spin(0.001)
    start = time.thread_time_ns()
    with times.collect():
        for _ in range(2):
            with stage("frame"):
                spin(0.01)
                with stage("inner"):
                    spin(0.02)
    total = time.thread_time_ns() - start
    assert set(times.ns) == {"frame", "frame/inner"} and times.calls["frame/inner"] == 2
    assert 0.035e9 <= times.ns["frame/inner"] <= total
    assert 0.015e9 <= times.ns["frame"] <= total - times.ns["frame/inner"]
    assert abs(times.ms(per=2)["frame/inner"] - times.ns["frame/inner"] / 2e6) < 1e-9
