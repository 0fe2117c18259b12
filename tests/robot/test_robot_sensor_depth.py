"""The robot layer's scene warp on stereo-camera depth: repaired and warped like the plain path's (`repair_depth`,
the sensor's `WarpSettings`, the reliability map), so a depth edge in the scene leaves no foreground ghosts on the
background. Truth: the scene is three planes ray-cast in the virtual camera."""

import numpy as np

from embody4d_ros.robot_layer import RobotLayer, RobotLayerConfig
from model.depth_sensor import StereoSensor
from model.geometry import WarpSettings, fill_depth_holes, forward_warp
from model.robot import RobotModel
from model.robot.compose import scene_source
from model.virtual_view import prepare_virtual_view

H, W = 120, 160
K = np.array([[150.0, 0, 79.5], [0, 150.0, 59.5], [0, 0, 1]])
# a box robot 1.4-1.6 m ahead on the right of the image (its root is the camera's optical frame moved 0.3 m right)
BOX = """<robot name="box"><link name="base"><visual><origin xyz="0 0 1.5"/><geometry><box size="0.4 0.3 0.2"/>
</geometry></visual></link></robot>"""
T_CAM_ROOT = [0.3, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0]
BAR_X_M, BAR_Z_M, WALL_Z_M = (-0.55, -0.35), 1.5, 3.0  # a red bar (full height) before a textured wall, on the left
BAR_RGB, ROBOT_RGB = (200, 30, 20), (30, 200, 40)


def ray_cast(camera_x_m: float) -> tuple[np.ndarray, np.ndarray]:
    """Colour and depth of the bar and the wall (no robot) seen by a camera at x = ``camera_x_m`` looking along z."""
    v, u = np.mgrid[0:H, 0:W].astype(float)
    ray_x = (u - K[0, 2]) / K[0, 0]
    bar_x = camera_x_m + BAR_Z_M * ray_x
    on_bar = (bar_x >= BAR_X_M[0]) & (bar_x <= BAR_X_M[1])
    wall_x = camera_x_m + WALL_Z_M * ray_x
    rgb = np.zeros((H, W, 3), np.uint8)
    rgb[..., 0] = 20
    rgb[..., 1] = (60 + 100 * (0.5 + 0.5 * np.sin(wall_x * 12.0))).astype(np.uint8)  # smooth: warps interpolate it
    rgb[..., 2] = 200
    rgb[on_bar] = BAR_RGB
    depth = np.where(on_bar, BAR_Z_M, WALL_Z_M).astype(np.float32)
    return rgb, depth


def ghosts_and_psnr(rgb, mask, truth, region):
    """Foreground (red bar) colour on pixels where the truth is the wall, and the PSNR of the covered wall pixels."""
    covered = mask & region
    ghosts = int(np.count_nonzero(covered & (rgb[..., 0] > 110)))
    error = rgb[covered].astype(float) - truth[covered].astype(float)
    return ghosts, float(10 * np.log10(255.0**2 / np.mean(error**2)))


def source_frame():
    """The box robot, its pose in the source camera, the ray-cast source colour and depth, and the robot's render."""
    robot = RobotModel.from_urdf_string(BOX)
    T_cam_root = np.eye(4)
    T_cam_root[0, 3] = T_CAM_ROOT[0]
    rgb, depth = ray_cast(0.0)
    return robot, T_cam_root, rgb, depth, robot.render({}, K, T_cam_root, H, W, with_colour=False)


def test_robot_layer_scene_warp_repairs_stereo_depth_like_the_plain_path():
    robot, T_cam_root, rgb, clean, robot_src = source_frame()
    front = robot_src.mask & (robot_src.depth < clean)
    rgb[front], clean[front] = ROBOT_RGB, robot_src.depth[front]
    # D435-like depth: invalid bands and flying pixels at the edges, the left shadow, noise, misregistration
    sensor = StereoSensor(native_width=W, edge_band_px=2.0, flying_fraction=0.5)
    depth = sensor.corrupt(clean, K, np.random.default_rng(3))
    settings = WarpSettings(depth_noise_inv_m=sensor.inverse_depth_sigma(K, W))

    # the virtual camera 0.12 m to the right: the wall left of the bar's edge opens up beside it
    T_dst_src = np.eye(4)
    T_dst_src[0, 3] = -0.12
    truth, _ = ray_cast(0.12)
    robot_dst = robot.render({}, K, T_dst_src @ T_cam_root, H, W, with_colour=False)
    # the wall in the virtual view, off the robot (with a margin for its cut-out edge) and off the bar
    near_robot = np.zeros((H, W), bool)
    v, u = np.nonzero(robot_dst.mask)
    near_robot[:, max(u.min() - 6, 0) :] = True
    region = (truth[..., 0] < 110) & ~near_robot

    layer = RobotLayer(RobotLayerConfig(enable="true", T_camera_root=T_CAM_ROOT, scene_memory=False, hand_eye_every=0))
    layer.set_model(robot)
    view = layer.virtual_view(rgb, depth, K, "cam", 0, T_dst_src, (H, W), settings=settings)
    assert view is not None and layer.counters["drawn"] == 1
    plain = prepare_virtual_view(rgb, depth, K, T_dst_src, out_hw=(H, W), settings=settings)

    robot_ghosts, robot_psnr = ghosts_and_psnr(view.warp.image[0], view.warp.mask[0], truth, region)
    plain_ghosts, plain_psnr = ghosts_and_psnr(plain.warp.image[0], plain.warp.mask[0], truth, region)
    # what the layer did before: holes filled from the farther side, flying pixels kept, noise-blind settings
    naive = forward_warp(rgb, fill_depth_holes(depth), K, K, T_dst_src, (H, W))
    naive_ghosts, naive_psnr = ghosts_and_psnr(naive.image, naive.mask, truth, region)
    print(f"robot layer: {robot_ghosts} ghosts, {robot_psnr:.2f} dB; plain: {plain_ghosts} ghosts, {plain_psnr:.2f} dB")
    print(f"naive: {naive_ghosts} ghosts, {naive_psnr:.2f} dB")
    assert robot_ghosts <= naive_ghosts / 3 and robot_psnr >= naive_psnr + 3.0
    # off the robot the two paths warp the same repaired depth with the same settings
    assert robot_ghosts <= plain_ghosts
    assert robot_psnr >= plain_psnr - 0.1
    # the reliability map reaches the scene warp: guessed depth at the edge lowers the coverage there
    np.testing.assert_allclose(view.warp.coverage[0][region], plain.warp.coverage[0][region], atol=1e-6)


def test_scene_cut_from_memory_is_reliable_and_the_rest_keeps_the_repairs_reliability():
    _, _, rgb, depth, robot_src = source_frame()
    depth[robot_src.mask] = robot_src.depth[robot_src.mask]
    memory_rgb, memory_depth = np.full((H, W, 3), 90, np.uint8), np.full((H, W), 4.0, np.float32)
    unreliable = np.zeros((H, W), np.float32)  # every source pixel a guess of the repair
    _, out_depth, out_reliability, _ = scene_source(
        rgb, depth, robot_src, 3, memory_rgb, memory_depth, reliability=unreliable
    )
    from_memory = out_depth == 4.0  # the memory is behind everything: every cut pixel takes it
    assert from_memory.sum() > robot_src.mask.sum()  # the dilated robot
    np.testing.assert_array_equal(out_reliability, from_memory.astype(np.float32))
    assert scene_source(rgb, depth, robot_src, 3)[2] is None
