"""The runtime's TF buffer against transforms composed independently here: static chains, time-stamped links
(interpolated), branches, latest common time, missing and unconnected frames, extrapolation."""

import numpy as np
import pytest

from embody4d_ros.tf_buffer import TfBuffer, TfError, camera_from_root


def rot_z(angle):
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def rigid(R=None, t=(0, 0, 0)):
    T = np.eye(4)
    T[:3, :3], T[:3, 3] = np.eye(3) if R is None else R, t
    return T


def random_rigid(rng):
    q = rng.normal(size=4)
    q /= np.linalg.norm(q)
    x, y, z, w = q
    R = np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )
    return rigid(R, rng.normal(size=3))


S = 1_000_000_000  # ns per second


def test_static_chain_and_branches_compose():
    rng = np.random.default_rng(0)
    # panda_link0 -> camera_link -> camera_color_optical_frame, and panda_link0 -> panda_link1 (another branch)
    T_root_cam, T_cam_opt, T_root_l1 = random_rigid(rng), random_rigid(rng), random_rigid(rng)
    tf = TfBuffer()
    tf.set_transform("panda_link0", "camera_link", T_root_cam, static=True)
    tf.set_transform("/camera_link", "camera_color_optical_frame", T_cam_opt, static=True)  # leading '/' ignored
    tf.set_transform("panda_link0", "panda_link1", T_root_l1, static=True)
    expected = np.linalg.inv(T_root_cam @ T_cam_opt)
    np.testing.assert_allclose(tf.lookup("camera_color_optical_frame", "panda_link0", 123 * S), expected, atol=1e-12)
    np.testing.assert_allclose(
        tf.lookup("panda_link0", "camera_color_optical_frame"), np.linalg.inv(expected), atol=1e-12
    )
    np.testing.assert_allclose(tf.lookup("camera_color_optical_frame", "panda_link1"), expected @ T_root_l1, atol=1e-12)
    np.testing.assert_allclose(tf.lookup("camera_link", "camera_link"), np.eye(4))


def test_time_stamped_link_is_interpolated_at_the_stamp():
    # odom -> base turns 90 degrees about z and moves 1 m along x between t = 10 s and t = 11 s
    tf = TfBuffer()
    T_base_cam = rigid(rot_z(0.3), (0.1, 0.0, 0.5))
    tf.set_transform("base", "cam", T_base_cam, static=True)
    tf.set_transform("odom", "base", rigid(rot_z(np.pi / 2), (1, 0, 0)), 11 * S)
    tf.set_transform("odom", "base", rigid(), 10 * S)  # out of order on purpose
    at = tf.lookup("odom", "cam", 10 * S + S // 4)
    np.testing.assert_allclose(at, rigid(rot_z(np.pi / 8), (0.25, 0, 0)) @ T_base_cam, atol=1e-9)
    # stamp 0: the latest time of the time-stamped links
    np.testing.assert_allclose(tf.lookup("odom", "cam"), rigid(rot_z(np.pi / 2), (1, 0, 0)) @ T_base_cam, atol=1e-9)


def test_extrapolation_raises_unless_within_tolerance():
    tf = TfBuffer()
    tf.set_transform("world", "cam", rigid(t=(1, 2, 3)), 5 * S)
    tf.set_transform("world", "cam", rigid(t=(2, 2, 3)), 6 * S)
    with pytest.raises(TfError, match="after the newest"):
        tf.lookup("world", "cam", 6 * S + S // 10)
    tolerant = TfBuffer(tolerance_ns=S // 5)
    tolerant.set_transform("world", "cam", rigid(t=(2, 2, 3)), 6 * S)
    np.testing.assert_allclose(tolerant.lookup("world", "cam", 6 * S + S // 10)[:3, 3], [2, 2, 3])
    with pytest.raises(TfError, match="before the oldest"):
        tolerant.lookup("world", "cam", 5 * S)


def test_missing_frames_and_unconnected_trees_are_named():
    tf = TfBuffer()
    tf.set_transform("panda_link0", "panda_link1", rigid(), static=True)
    tf.set_transform("camera_link", "camera_color_optical_frame", rigid(), static=True)
    with pytest.raises(TfError, match="'base_link' does not exist"):
        tf.lookup("camera_color_optical_frame", "base_link")
    with pytest.raises(TfError, match="roots 'panda_link0' and 'camera_link'"):
        tf.lookup("camera_color_optical_frame", "panda_link1")


def test_history_is_bounded_by_the_cache_window():
    tf = TfBuffer(cache_s=2.0)
    for second in range(10):
        tf.set_transform("world", "cam", rigid(t=(second, 0, 0)), second * S)
    np.testing.assert_allclose(tf.lookup("world", "cam", 8 * S + S // 2)[:3, 3], [8.5, 0, 0])
    with pytest.raises(TfError, match="before the oldest"):
        tf.lookup("world", "cam", 6 * S)


def test_parameter_override_wins_over_tf():
    tf = TfBuffer()
    tf.set_transform("cam", "root", rigid(t=(0, 0, 1)), static=True)
    override = rigid(rot_z(0.2), (0.5, 0, 0))
    np.testing.assert_allclose(camera_from_root(tf, "cam", "root", 0), rigid(t=(0, 0, 1)))
    np.testing.assert_allclose(camera_from_root(tf, "cam", "missing_root", 0, override), override)
